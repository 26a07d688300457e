//! The operator audit trail over real gRPC and sled: a submit and a retract under two named
//! tokens appear in `ListOperatorEvents` with the right token names, calls and log indexes,
//! oldest first, paged; the trail holds no hash bytes; it survives a restart; only an `admin`
//! token reads it (a `match` or `submit` token is refused, no token is unauthenticated); and
//! refused calls leave no record. `redline trail` shows the same events.

#[path = "cli_support.rs"]
mod cli;

use redline_e2e::{temp_dir, TestNode};
use redline_proto::pb::{self, OperatorEvent, Signal};
use redline_server::config::{Scope, TokenConfig};
use redline_server::grpc::auth::hash_token;
use redline_server::Config;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn token(name: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hash_token(&format!("secret-of-{name}")),
        scopes: scopes.to_vec(),
        rate_per_sec: None,
        burst: None,
    }
}

fn as_<T>(name: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer secret-of-{name}")).unwrap(),
    );
    req
}

fn pdq(seed: u8) -> (Signal, [u8; 32]) {
    let mut h = [seed; 32];
    h[0] = 0xA5;
    (
        Signal {
            signal_type: "pdq".into(),
            value: hex::encode(h),
            quality: 100,
        },
        h,
    )
}

async fn trail(channel: &Channel, who: &str) -> Result<Vec<OperatorEvent>, tonic::Status> {
    let mut c = pb::node_client::NodeClient::new(channel.clone());
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .list_operator_events(as_(who, pb::ListOperatorEventsRequest { after, limit: 2 }))
            .await?
            .into_inner();
        assert!(page.events.len() <= 2);
        events.extend(page.events);
        if page.next_after == 0 {
            return Ok(events);
        }
        after = page.next_after;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_retract_are_recorded_under_their_tokens() {
    let dir = temp_dir();
    let mut config = Config::new("trail.example", dir.path());
    config.tokens = vec![
        token("alice", &[Scope::Submit]),
        token("bob", &[Scope::Submit]),
        token("ops", &[Scope::Admin]),
        token("platform", &[Scope::Match]),
    ];
    let node = TestNode::start(config).await;
    let channel = redline_client::connect(&node.url).await.unwrap();
    let mut sub = pb::submission_client::SubmissionClient::new(channel.clone());

    let (a, a_hash) = pdq(1);
    let (b, b_hash) = pdq(2);
    let submitted = sub
        .submit(as_(
            "alice",
            pb::SubmitRequest {
                signals: vec![a.clone(), b],
                labels: vec!["ncii".into()],
                legal_basis: "consent withdrawn".into(),
                case_ref: "CASE-SECRET-17".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = submitted.entries[0].index;
    let retracted = sub
        .retract(as_(
            "bob",
            pb::RetractRequest {
                index: first,
                reason: "withdrawn".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // Refused calls change nothing and leave no record.
    let refused = sub
        .retract(as_(
            "bob",
            pb::RetractRequest {
                index: first,
                reason: "again".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let no_token = sub
        .submit(pb::SubmitRequest {
            signals: vec![a],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);

    // Only admin reads it.
    for who in ["platform", "alice"] {
        let err = trail(&channel, who).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err}");
    }
    let err = pb::node_client::NodeClient::new(channel.clone())
        .list_operator_events(pb::ListOperatorEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let events = trail(&channel, "ops").await.unwrap();
    // Reading the trail is recorded too (each page after it is read, so the first read
    // already sees its own first page).
    let (writes, reads): (Vec<&OperatorEvent>, Vec<&OperatorEvent>) = events
        .iter()
        .partition(|e| e.call.starts_with("redline.v1.Submission/"));
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|e| e.token == "ops" && e.call == "redline.v1.Node/ListOperatorEvents"),
        "{reads:#?}"
    );
    let calls: Vec<(&str, &str)> = writes
        .iter()
        .map(|e| (e.token.as_str(), e.call.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("alice", "redline.v1.Submission/Submit"),
            ("bob", "redline.v1.Submission/Retract"),
        ],
        "{events:#?}"
    );
    let (s, r) = (writes[0], writes[1]);
    assert_eq!((s.first_index, s.written, s.duplicates), (first, 2, 0));
    assert_eq!(s.tree_size, first + 2);
    assert_eq!(s.retracted, None);
    assert_eq!((r.first_index, r.written), (retracted.retract_index, 1));
    assert_eq!(r.retracted, Some(first));
    assert_eq!(r.tree_size, retracted.retract_index + 1);
    assert!(s.id < r.id && s.time_ms <= r.time_ms && s.time_ms > 0);
    assert!(s.remote.starts_with("127.0.0.1:"), "{}", s.remote);

    // Nothing of what was listed: no hash bytes (raw or hex), no case reference.
    let bytes = prost::Message::encode_to_vec(&pb::ListOperatorEventsResponse {
        events: events.clone(),
        next_after: 0,
    });
    for secret in [&a_hash[..], &b_hash[..], b"CASE-SECRET-17", b"ncii"] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret));
    }
    let text = format!("{events:?}");
    assert!(!text.contains(&hex::encode(a_hash)) && !text.contains(&hex::encode(b_hash)));

    // It survives a restart; the reads of the trail were recorded too.
    let config = node.stop().await;
    let node = TestNode::start(config).await;
    let channel = redline_client::connect(&node.url).await.unwrap();
    let again = trail(&channel, "ops").await.unwrap();
    assert_eq!(&again[..events.len()], &events[..]);
    assert!(
        again[events.len()..]
            .iter()
            .all(|e| e.token == "ops" && e.call == "redline.v1.Node/ListOperatorEvents"),
        "{again:#?}"
    );
    assert!(
        again.len() > events.len(),
        "the pages read before the restart were recorded"
    );

    // `redline trail` prints the same events (with an admin token only).
    let r = cli::run(&[
        "trail",
        "--node",
        &node.url,
        "--token",
        "secret-of-ops",
        "--json",
    ])
    .await
    .ok();
    let shown = r.json();
    let shown = shown.as_array().expect("a JSON array");
    assert!(shown.len() >= again.len());
    assert_eq!(shown[0]["token"], "alice");
    assert_eq!(shown[1]["call"], "redline.v1.Submission/Retract");
    assert_eq!(shown[1]["retracted"], first);
    let r = cli::run(&["trail", "--node", &node.url, "--token", "secret-of-ops"])
        .await
        .ok();
    assert!(
        r.stdout.contains(&format!(
            "  bob  redline.v1.Submission/Retract  retracted {first} at index {}",
            retracted.retract_index
        )),
        "{}",
        r.stdout
    );
    let r = cli::run(&[
        "trail",
        "--node",
        &node.url,
        "--token",
        "secret-of-platform",
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("admin"), "{}", r.stderr);
    node.stop().await;
}
