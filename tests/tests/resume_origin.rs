//! Freeze and resume: an origin frozen after proof of equivocation can be resumed by the
//! operator, and resuming trusts nothing new.
//!
//! A platform follows a hotline over gRPC. Tried, and what must hold:
//! - a split view gossiped to the platform (the hotline's own key signing another root at the
//!   size held) freezes the hotline there: later entries are not replicated;
//! - `POST /v1/origins/resume` needs the `admin` scope (403 with `audit`), a trusted origin
//!   (404) and a reason (400);
//! - resumed (and said to have been frozen), the platform replicates the hotline's later
//!   entries and matches them; the evidence is still listed; the operator trail names the call,
//!   the origin, the reason and the token;
//! - resuming again answers `was_frozen: false`; a fork signed after resuming freezes it
//!   again, and `redline resume` (gRPC `Node.ResumeOrigin`) resumes it the same way, shown
//!   by `redline trail`; an audit token cannot.

#[path = "cli_support.rs"]
mod cli;

use redline_e2e::curl::{bearer, curl, json, post_json};
use redline_e2e::{
    authed, eventually, federated_config, temp_dir, token_config, trust_key, TestNode,
};
use redline_proto::merkle::Hash;
use redline_proto::pb;
use redline_server::config::{Config, PeerConfig, Policy, Scope, Secret};
use std::time::Duration;

const HOTLINE: &str = "hotline.example";
const OPERATOR: &str = "operator-secret";
const AUDITOR: &str = "auditor-secret";
const PEER: &str = "peer-secret";
const LONG: Duration = Duration::from_secs(30);

fn tokens() -> Vec<redline_server::config::TokenConfig> {
    vec![
        token_config("operator", OPERATOR, vec![Scope::Admin]),
        token_config("auditor", AUDITOR, vec![Scope::Audit, Scope::Match]),
        token_config("peer", PEER, vec![Scope::Federate]),
    ]
}

async fn frozen(url: &str) -> bool {
    let (code, body) =
        curl([bearer(OPERATOR).to_vec(), vec![format!("{url}/v1/status")]].concat()).await;
    assert_eq!(code, 200, "{body}");
    json(&body)["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["origin"] == HOTLINE)
        .is_some_and(|o| o["frozen"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resumes_a_frozen_origin_and_nothing_new_is_trusted() {
    let (hotline_dir, platform_dir) = (temp_dir(), temp_dir());
    let mut config = Config::new(HOTLINE, hotline_dir.path());
    config.tokens = tokens();
    let hotline = TestNode::start(config).await;
    let key = hotline.node.public_key().clone();
    redline_e2e::submit_pdq(&hotline.node, &[[1; 32], [2; 32]]).await;

    let mut peer = PeerConfig::new(hotline.url.clone());
    peer.token = Some(Secret(PEER.into()));
    let mut config = federated_config(
        "platform.example",
        platform_dir.path(),
        &[],
        vec![trust_key(&key, Policy::Accept)],
        50,
    );
    config.peers = vec![peer];
    config.tokens = tokens();
    let platform = TestNode::start(config).await;
    let p = platform.url.clone();
    eventually(LONG, "the platform replicates the hotline", || async {
        platform.size_of(HOTLINE) == 2
    })
    .await;

    // The fork, gossiped: frozen.
    let (signer, _) =
        redline_server::identity::load_or_create(hotline_dir.path(), HOTLINE).unwrap();
    let forged = signer.sign_checkpoint(2, Hash([9; 32])).unwrap().to_pb();
    let channel = tonic::transport::Endpoint::from_shared(p.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let gossip = |cp: pb::Checkpoint| {
        let channel = channel.clone();
        async move {
            pb::federation_client::FederationClient::new(channel)
                .gossip(authed(
                    PEER,
                    pb::GossipRequest {
                        from: "a whistleblower".into(),
                        checkpoints: vec![cp],
                    },
                ))
                .await
                .expect("gossip answered");
        }
    };
    gossip(forged.clone()).await;
    eventually(LONG, "the fork freezes the hotline", || frozen(&p)).await;
    redline_e2e::submit_pdq(&hotline.node, &[[3; 32]]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        platform.size_of(HOTLINE),
        2,
        "a frozen origin is not replicated"
    );

    // Refusals.
    let resume = format!("{p}/v1/origins/resume");
    let body = serde_json::json!({"origin": HOTLINE, "reason": "the hotline restored a backup over a newer log; confirmed by phone"});
    let (code, _) = post_json(resume.clone(), Some(AUDITOR), body.clone()).await;
    assert_eq!(code, 403, "resuming needs the admin scope");
    let (code, _) = post_json(
        resume.clone(),
        Some(OPERATOR),
        serde_json::json!({"origin": "nobody.example", "reason": "x"}),
    )
    .await;
    assert_eq!(code, 404);
    let (code, answer) = post_json(
        resume.clone(),
        Some(OPERATOR),
        serde_json::json!({"origin": HOTLINE, "reason": " "}),
    )
    .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (400, Some("invalid_argument")),
        "{answer}"
    );
    assert!(frozen(&p).await, "a refused resume changes nothing");

    // Resumed: replication goes on from the log held; the evidence stays.
    let (code, answer) = post_json(resume.clone(), Some(OPERATOR), body.clone()).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["was_frozen"], true);
    assert_eq!(answer["checkpoint"]["tree_size"].as_u64(), Some(2));
    eventually(LONG, "the resumed hotline replicates again", || async {
        platform.size_of(HOTLINE) == 3
    })
    .await;
    let (code, matched) = post_json(
        format!("{p}/v1/match"),
        Some(AUDITOR),
        serde_json::json!({"signals": [{"signal_type": "pdq", "value": hex::encode([3u8; 32])}]}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        matched["results"][0]["matches"][0]["index"].as_u64(),
        Some(2)
    );
    let (code, evidence) = curl(
        [
            bearer(AUDITOR).to_vec(),
            vec![format!("{p}/v1/evidence?origin={HOTLINE}")],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        json(&evidence)["evidence"][0]["reason"],
        "equivocation",
        "the evidence is kept"
    );
    let trail = pb::node_client::NodeClient::new(channel.clone())
        .list_operator_events(authed(
            OPERATOR,
            pb::ListOperatorEventsRequest {
                after: 0,
                limit: 100,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let resumed = trail
        .iter()
        .find(|e| e.call == "POST /v1/origins/resume")
        .expect("the resume is in the trail");
    assert_eq!(
        (resumed.origin.as_str(), resumed.token.as_str()),
        (HOTLINE, "operator")
    );
    assert!(resumed.reason.contains("restored a backup"));
    assert_eq!(
        trail.iter().filter(|e| e.call.contains("resume")).count(),
        1,
        "refusals are not recorded"
    );
    let (code, again) = post_json(resume.clone(), Some(OPERATOR), body.clone()).await;
    assert_eq!((code, again["was_frozen"].as_bool()), (200, Some(false)));

    // Nothing new was trusted: the same fork (now behind the held size) still freezes it.
    let fork_at_3 = signer.sign_checkpoint(3, Hash([8; 32])).unwrap().to_pb();
    gossip(fork_at_3).await;
    eventually(LONG, "a fork after resuming freezes again", || frozen(&p)).await;
    // `redline resume` (gRPC `Node.ResumeOrigin`) does the same, and `redline trail` shows it.
    let r = cli::run(&[
        "resume",
        HOTLINE,
        "--reason",
        "checked again",
        "--node",
        &p,
        "--token",
        OPERATOR,
        "--json",
    ])
    .await
    .ok();
    assert_eq!(
        r.json(),
        serde_json::json!({"origin": HOTLINE, "was_frozen": true, "tree_size": 3})
    );
    let r = cli::run(&[
        "resume", HOTLINE, "--reason", "x", "--node", &p, "--token", AUDITOR,
    ])
    .await;
    assert_ne!(r.code, 0, "an audit token cannot resume: {r:?}");
    let r = cli::run(&["trail", "--node", &p, "--token", OPERATOR, "--json"])
        .await
        .ok();
    let shown = r.json();
    let via_grpc = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["call"] == "redline.v1.Node/ResumeOrigin")
        .cloned()
        .expect("the CLI's resume is in the trail");
    assert_eq!(
        (via_grpc["origin"].as_str(), via_grpc["reason"].as_str()),
        (Some(HOTLINE), Some("checked again"))
    );
    assert!(!frozen(&p).await);

    platform.stop().await;
    hotline.stop().await;
}
