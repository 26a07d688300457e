//! Redline's own `/v1/` JSON API, driven the way a hotline's case system and an auditor's
//! script would drive it: `curl` against live nodes on loopback, with tokens of each scope.
//!
//! A hotline lists hashes (`POST /v1/submit`) and withdraws one (`POST /v1/retract`); a
//! platform follows it over real gRPC. What is tried and what must hold:
//! - submit: indices in order, an in-batch repeat answered as a duplicate of the first, a
//!   checkpoint whose signed note verifies under the hotline's key; a match-only token (403),
//!   no token (401), a malformed hash and an unknown JSON field (400) write nothing;
//! - entries: pages of `limit` with `next_start`, decoded fields equal to what was sent, and
//!   leaf bytes whose RFC 9162 root is the signed root; bad `limit`/`start`, an unknown
//!   parameter (400) and an unknown origin (404) refused;
//! - retract: the RETRACT's index and checkpoint; the platform stops matching the entry; a
//!   second retraction (400) and an index past the log (404) are refused;
//! - origins and checkpoints on the platform: the hotline's key and policy, its checkpoint at
//!   the hotline's size with a note that verifies;
//! - evidence: a split view gossiped to the platform (the hotline's own key signing another
//!   root at the size held) is listed as proven equivocation with both notes, byte for byte
//!   what gRPC `Audit.ListEvidence` returns, and each note verifies under the key;
//! - status (admin scope only): the hotline frozen, its size and active count, the peer;
//! - the operator trail on the hotline records the HTTP submit and retract with the token's name
//!   and the caller's address, as it does gRPC calls.

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use redline_e2e::curl::{bearer, curl, json, post_json as post};
use redline_e2e::{
    authed, eventually, federated_config, reserve, temp_dir, token_config, TestNode,
};
use redline_proto::checkpoint::OriginKey;
use redline_proto::merkle::{Hash, MemoryHashes};
use redline_proto::pb;
use redline_server::config::{Config, Policy, Scope, Secret};
use std::time::Duration;

const HOTLINE: &str = "hotline.example";
const PLATFORM: &str = "platform.example";
const ANALYST: &str = "analyst-secret";
const AUDITOR: &str = "auditor-secret";
const OPERATOR: &str = "operator-secret";
const PEER: &str = "peer-secret";
const MATCHER: &str = "matcher-secret";
const LONG: Duration = Duration::from_secs(30);

fn tokens() -> Vec<redline_server::config::TokenConfig> {
    vec![
        token_config("analyst", ANALYST, vec![Scope::Submit]),
        token_config("auditor", AUDITOR, vec![Scope::Audit]),
        token_config("operator", OPERATOR, vec![Scope::Admin]),
        token_config("peer", PEER, vec![Scope::Federate]),
        token_config("matcher", MATCHER, vec![Scope::Match]),
    ]
}

async fn get(url: String, token: &str) -> (u16, serde_json::Value) {
    let (code, body) = curl([bearer(token).to_vec(), vec![url]].concat()).await;
    (code, json(&body))
}

/// Verifies a checkpoint object's signed note under `key` and checks the fields beside it
/// say the same; returns the size.
fn verified(key: &OriginKey, cp: &serde_json::Value) -> u64 {
    let note = cp["signed_note"].as_str().expect("signed_note");
    let signed = key.verify(note.as_bytes()).expect("the note verifies");
    assert_eq!(cp["tree_size"].as_u64(), Some(signed.size), "{cp}");
    assert_eq!(cp["root_hex"].as_str(), Some(&*hex::encode(signed.root.0)));
    signed.size
}

fn pdq_signal(hash: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({"signal_type": "pdq", "value": hex::encode(hash), "quality": 90})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hotline_and_its_auditor_run_the_list_over_http_v1() {
    let (hotline_dir, platform_dir) = (temp_dir(), temp_dir());
    let mut config = Config::new(HOTLINE, hotline_dir.path());
    config.tokens = tokens();
    let hotline = TestNode::start(config).await;
    let key = hotline.node.public_key().clone();
    let h = hotline.url.clone();

    // Submit: three PDQ hashes, the first again, and an MD5.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let pdqs: Vec<[u8; 32]> = (0..3).map(|_| rng.gen()).collect();
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let body = serde_json::json!({
        "signals": [
            pdq_signal(&pdqs[0]), pdq_signal(&pdqs[1]), pdq_signal(&pdqs[2]),
            pdq_signal(&pdqs[0]), {"signal_type": "md5", "value": md5},
        ],
        "labels": ["ncii"],
        "legal_basis": "consent withdrawn",
        "case_ref": "case-7",
    });
    let submit = format!("{h}/v1/submit");
    for (token, want) in [(None, 401), (Some(MATCHER), 403), (Some(AUDITOR), 403)] {
        let (code, answer) = post(submit.clone(), token, body.clone()).await;
        assert_eq!(code, want, "{token:?}: {answer}");
    }
    let mut bad = body.clone();
    bad["signals"][1]["value"] = "not-hex".into();
    let (code, answer) = post(submit.clone(), Some(ANALYST), bad).await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (400, Some("invalid_argument")),
        "{answer}"
    );
    let mut unknown = body.clone();
    unknown["lables"] = serde_json::json!(["typo"]);
    let (code, answer) = post(submit.clone(), Some(ANALYST), unknown).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("lables"),
        "{answer}"
    );
    assert_eq!(
        hotline.size_of(HOTLINE),
        0,
        "a refused submit wrote nothing"
    );

    let (code, answer) = post(submit.clone(), Some(ANALYST), body).await;
    assert_eq!(code, 200, "{answer}");
    let entries = answer["entries"].as_array().unwrap();
    let placed: Vec<(u64, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["duplicate"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [(0, false), (1, false), (2, false), (0, true), (3, false)]
    );
    assert_eq!(entries[4]["value"], md5);
    assert_eq!(verified(&key, &answer["checkpoint"]), 4);

    // Entries, a page at a time; the leaves rebuild the signed root.
    let entries_url = |q: &str| format!("{h}/v1/entries?origin={HOTLINE}&{q}");
    let (code, first) = get(entries_url("limit=3"), AUDITOR).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["next_start"].as_u64(), Some(3));
    let (code, rest) = get(entries_url("start=3&limit=3"), AUDITOR).await;
    assert_eq!(code, 200, "{rest}");
    assert_eq!(rest["next_start"], serde_json::Value::Null);
    let all: Vec<serde_json::Value> = [&first, &rest]
        .iter()
        .flat_map(|p| p["entries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(all.len(), 4);
    let mut tree = MemoryHashes::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["index"].as_u64(), Some(i as u64));
        tree.push_leaf(&hex::decode(e["leaf_hex"].as_str().unwrap()).unwrap());
    }
    assert_eq!(
        hex::encode(tree.root().0),
        first["root_hex"].as_str().unwrap()
    );
    assert_eq!(first["tree_size"].as_u64(), Some(4));
    let add = &all[1]["add"];
    assert_eq!(all[1]["kind"], "add");
    assert_eq!(add["hash_hex"].as_str(), Some(&*hex::encode(pdqs[1])));
    assert_eq!(
        (
            add["quality"].as_u64(),
            &add["labels"],
            add["case_ref"].as_str()
        ),
        (Some(90), &serde_json::json!(["ncii"]), Some("case-7"))
    );
    assert_eq!(all[3]["add"]["signal_type"], "md5");
    assert_eq!(all[3]["add"]["hash_hex"], md5);
    for (query, want) in [
        ("limit=0", 400),
        ("limit=1001", 400),
        ("start=5", 400),
        ("start=-1", 400),
        ("strat=2", 400),
    ] {
        let (code, answer) = get(entries_url(query), AUDITOR).await;
        assert_eq!(code, want, "{query}: {answer}");
    }
    let (code, _) = get(format!("{h}/v1/entries?origin=nobody.example"), AUDITOR).await;
    assert_eq!(code, 404);
    let (code, _) = get(entries_url("limit=3"), MATCHER).await;
    assert_eq!(
        code, 403,
        "entries leak perceptual hashes: audit scope only"
    );

    // The platform follows the hotline over gRPC.
    let (platform_listener, platform_url) = reserve().await;
    let mut peer = redline_server::config::PeerConfig::new(h.clone());
    peer.token = Some(Secret(PEER.into()));
    let mut config = federated_config(
        PLATFORM,
        platform_dir.path(),
        &[],
        vec![redline_e2e::trust_key(&key, Policy::Accept)],
        50,
    );
    config.peers = vec![peer];
    config.tokens = tokens();
    let platform = TestNode::start_on(platform_listener, config).await;
    let p = platform_url.clone();
    eventually(LONG, "the platform replicates the hotline", || async {
        platform.size_of(HOTLINE) == 4
    })
    .await;
    let lookup = |hash: [u8; 32]| {
        let p = p.clone();
        async move {
            let (code, answer) = post(
                format!("{p}/v1/match"),
                Some(MATCHER),
                serde_json::json!({"signals": [pdq_signal(&hash)]}),
            )
            .await;
            assert_eq!(code, 200, "{answer}");
            answer["results"][0]["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["index"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(lookup(pdqs[1]).await, [1]);

    // Retract entry 1; the platform stops matching it.
    let retract = format!("{h}/v1/retract");
    let why = serde_json::json!({"index": 1, "reason": "false positive"});
    let (code, answer) = post(retract.clone(), Some(ANALYST), why.clone()).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (
            answer["retracted_index"].as_u64(),
            answer["retract_index"].as_u64()
        ),
        (Some(1), Some(4))
    );
    assert_eq!(verified(&key, &answer["checkpoint"]), 5);
    let (code, again) = post(retract.clone(), Some(ANALYST), why).await;
    assert_eq!(
        (code, again["code"].as_str()),
        (400, Some("failed_precondition")),
        "{again}"
    );
    let past = serde_json::json!({"index": 99, "reason": "typo"});
    let (code, answer) = post(retract, Some(ANALYST), past).await;
    assert_eq!(code, 404, "{answer}");
    let (code, page) = get(entries_url("start=4"), AUDITOR).await;
    assert_eq!(code, 200);
    let r = &page["entries"][0];
    assert_eq!(
        (r["kind"].as_str(), r["retract"]["target_index"].as_u64()),
        (Some("retract"), Some(1))
    );
    assert_eq!(r["retract"]["reason"], "false positive");
    eventually(
        LONG,
        "the platform stops matching the retracted entry",
        || {
            let retracted = pdqs[1];
            async move { lookup(retracted).await.is_empty() }
        },
    )
    .await;
    assert_eq!(lookup(pdqs[0]).await, [0], "the others still match");

    // Origins and checkpoints as the platform holds them.
    let (code, origins) = get(format!("{p}/v1/origins"), AUDITOR).await;
    assert_eq!(code, 200, "{origins}");
    let listed = origins["origins"].as_array().unwrap();
    let of = |name: &str| listed.iter().find(|o| o["origin"] == name).cloned();
    let hotline_info = of(HOTLINE).expect("the hotline is listed");
    assert_eq!(
        hotline_info["verifier_key"].as_str(),
        Some(&*key.verifier_key())
    );
    assert_eq!(hotline_info["policy"], "accept");
    assert_eq!(of(PLATFORM).expect("its own origin")["policy"], "own");
    let (code, cps) = get(format!("{p}/v1/checkpoints?origin={HOTLINE}"), AUDITOR).await;
    assert_eq!(code, 200, "{cps}");
    assert_eq!(verified(&key, &cps["checkpoints"][0]), 5);
    let (code, cps) = get(format!("{p}/v1/checkpoints"), AUDITOR).await;
    assert_eq!(code, 200);
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 2, "{cps}");
    let (code, _) = get(format!("{p}/v1/checkpoints?origin=nobody.example"), AUDITOR).await;
    assert_eq!(code, 404);

    // A split view: the hotline's own key signs another root for the size the platform holds.
    let (signer, _) = redline_server::identity::load_or_create(hotline_dir.path(), HOTLINE)
        .expect("the hotline's identity");
    let forged = signer.sign_checkpoint(5, Hash([9; 32])).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(p.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::federation_client::FederationClient::new(channel.clone())
        .gossip(authed(
            PEER,
            pb::GossipRequest {
                from: "a whistleblower".into(),
                checkpoints: vec![forged.to_pb()],
            },
        ))
        .await
        .expect("gossip answered");
    let evidence_url = format!("{p}/v1/evidence?origin={HOTLINE}&page_size=10");
    eventually(LONG, "the equivocation is kept", || {
        let url = evidence_url.clone();
        async move {
            let (code, page) = get(url, AUDITOR).await;
            assert_eq!(code, 200, "{page}");
            page["evidence"].as_array().is_some_and(|e| !e.is_empty())
        }
    })
    .await;
    let (_, page) = get(evidence_url, AUDITOR).await;
    let records = page["evidence"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(page["next_page_token"], serde_json::Value::Null);
    let record = &records[0];
    assert_eq!(
        (record["reason"].as_str(), record["proven"].as_bool()),
        (Some("equivocation"), Some(true))
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let notes: Vec<Vec<u8>> = record["signed_notes_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| b64.decode(n.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(notes.len(), 2);
    let roots: Vec<_> = notes
        .iter()
        .map(|n| {
            let signed = key
                .verify(n)
                .expect("each note verifies under the hotline's key");
            assert_eq!(signed.size, 5);
            signed.root
        })
        .collect();
    assert_ne!(roots[0], roots[1], "two roots for one size");
    let grpc = pb::audit_client::AuditClient::new(channel.clone())
        .list_evidence(authed(
            AUDITOR,
            pb::ListEvidenceRequest {
                origin: HOTLINE.into(),
                page_size: 10,
                ..Default::default()
            },
        ))
        .await
        .expect("ListEvidence")
        .into_inner();
    assert_eq!(grpc.evidence.len(), 1);
    assert_eq!(
        grpc.evidence[0].signed_notes, notes,
        "HTTP and gRPC show the same bytes"
    );
    assert_eq!(record["id"].as_u64(), Some(grpc.evidence[0].id));
    assert_eq!(
        record["fingerprint_hex"].as_str(),
        Some(&*hex::encode(&grpc.evidence[0].fingerprint))
    );
    for query in ["page_size=abc", "page_size=4294967296", "colour=red"] {
        let (code, answer) = get(format!("{p}/v1/evidence?{query}"), AUDITOR).await;
        assert_eq!(code, 400, "{query}: {answer}");
    }

    // The operator's status: admin scope only.
    let (code, _) = get(format!("{p}/v1/status"), AUDITOR).await;
    assert_eq!(code, 403);
    let (code, status) = get(format!("{p}/v1/status"), OPERATOR).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["origin"], PLATFORM);
    let held = status["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["origin"] == HOTLINE)
        .cloned()
        .expect("the hotline's log");
    assert_eq!(
        (
            held["tree_size"].as_u64(),
            held["active_entries"].as_u64(),
            held["frozen"].as_bool()
        ),
        (Some(5), Some(3), Some(true)),
        "{held}"
    );
    assert_eq!(status["peers"][0]["url"].as_str(), Some(h.as_str()));
    assert_eq!(status["evidence_count"].as_u64(), Some(1));

    // The hotline's operator trail names the HTTP calls, the token and the caller.
    let hotline_channel = tonic::transport::Endpoint::from_shared(h.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let trail = pb::node_client::NodeClient::new(hotline_channel)
        .list_operator_events(authed(
            OPERATOR,
            pb::ListOperatorEventsRequest {
                after: 0,
                limit: 100,
            },
        ))
        .await
        .expect("ListOperatorEvents")
        .into_inner()
        .events;
    let submitted = trail
        .iter()
        .find(|e| e.call == "POST /v1/submit")
        .expect("the HTTP submit is in the trail");
    assert_eq!(
        (submitted.token.as_str(), submitted.written),
        ("analyst", 4)
    );
    assert!(submitted.remote.starts_with("127.0.0.1:"), "{submitted:?}");
    let retracted = trail
        .iter()
        .find(|e| e.call == "POST /v1/retract")
        .expect("the HTTP retract is in the trail");
    assert_eq!(retracted.retracted, Some(1));

    platform.stop().await;
    hotline.stop().await;
}
