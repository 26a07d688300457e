//! The node/log foundation end to end: 10,000 hashes submitted over gRPC, some retracted, the
//! node restarted from the same sled dir, then everything verified through the Audit service
//! with only client-side code (as an auditor would), plus every kind of bad input refused.

use rand::{Rng, SeedableRng};
use redline_client::{Auditor, HotlineClient, TrustedSize};
use redline_e2e::{temp_dir, TestNode};
use redline_proto::checkpoint::OriginKey;
use redline_proto::pb::{self, Signal};
use tonic::Code;

fn pdq(rng: &mut impl Rng) -> Signal {
    let bytes: [u8; 32] = rng.gen();
    Signal {
        signal_type: "pdq".into(),
        value: hex::encode(bytes),
        quality: 100,
    }
}

fn code_of(e: redline_client::ClientError) -> (Code, String) {
    match e {
        redline_client::ClientError::Status(s) => (s.code(), s.message().to_owned()),
        other => panic!("expected a status, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hashes_survive_restart_and_verify_as_an_auditor_would() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    // The auditor takes the key out of band (from the operator), never from ListOrigins.
    let key = OriginKey::parse(&node.node.public_key().verifier_key()).unwrap();
    let mut hotline = HotlineClient::connect(&node.url).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    let mut indexes = Vec::new();
    let mut mid_checkpoint = None;
    for batch in 0..10 {
        let signals: Vec<Signal> = (0..1000).map(|_| pdq(&mut rng)).collect();
        let resp = hotline
            .submit(signals, vec!["ncii".into()], "consent withdrawn", "")
            .await
            .unwrap();
        assert_eq!(resp.entries.len(), 1000);
        assert!(resp.entries.iter().all(|e| !e.duplicate));
        let cp = resp.checkpoint.unwrap();
        assert_eq!(cp.tree_size, (batch + 1) * 1000);
        indexes.extend(resp.entries.iter().map(|e| e.index));
        if batch == 4 {
            mid_checkpoint = Some(cp);
        }
    }
    assert_eq!(indexes.len(), 10_000);
    assert_eq!(indexes, (0..10_000).collect::<Vec<u64>>());

    // A duplicate returns the existing index and adds nothing.
    let dup = hotline
        .submit(
            vec![Signal {
                signal_type: "pdq".into(),
                value: hex::encode([0u8; 32]),
                quality: 0,
            }],
            vec![],
            "",
            "",
        )
        .await
        .unwrap();
    let first_zero = dup.entries[0].index;
    let again = hotline
        .submit(
            vec![Signal {
                signal_type: "pdq".into(),
                value: hex::encode([0u8; 32]),
                quality: 0,
            }],
            vec![],
            "",
            "",
        )
        .await
        .unwrap();
    assert!(again.entries[0].duplicate);
    assert_eq!(again.entries[0].index, first_zero);
    assert_eq!(
        again.checkpoint.unwrap().tree_size,
        dup.checkpoint.unwrap().tree_size
    );

    // Retract 25 entries.
    for &i in indexes.iter().step_by(400) {
        hotline.retract(i, "false positive").await.unwrap();
    }

    // Bad input: each refused with a clear status, nothing changes.
    let size_before = hotline.status().await.unwrap().origins[0].tree_size;
    let bad = |t: &str, v: &str| Signal {
        signal_type: t.into(),
        value: v.into(),
        quality: 0,
    };
    for (signal, needle) in [
        (bad("pdq", &"zz".repeat(32)), "non-hex character"),
        (bad("pdq", "abcd"), "must be 64 hex characters"),
        (bad("sha1", "abcd"), "unknown signal type"),
        (bad("md5", &"g".repeat(32)), "non-hex character"),
    ] {
        let (code, msg) = code_of(
            hotline
                .submit(vec![signal], vec![], "", "")
                .await
                .unwrap_err(),
        );
        assert_eq!(code, Code::InvalidArgument, "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
    let (code, msg) = code_of(hotline.submit(vec![], vec![], "", "").await.unwrap_err());
    assert_eq!(
        (code, msg.contains("no signals")),
        (Code::InvalidArgument, true),
        "{msg}"
    );
    let (code, _) = code_of(hotline.retract(1_000_000, "x").await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    let (code, msg) = code_of(hotline.retract(indexes[0], "again").await.unwrap_err());
    assert_eq!(code, Code::FailedPrecondition, "{msg}");
    assert!(msg.contains("already retracted"), "{msg}");
    let retract_entry = size_before - 1; // the last entry is a RETRACT
    let (code, msg) = code_of(hotline.retract(retract_entry, "x").await.unwrap_err());
    assert_eq!(code, Code::FailedPrecondition, "{msg}");
    let mut audit = pb::audit_client::AuditClient::connect(node.url.clone())
        .await
        .unwrap();
    let err = audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            origin: "hotline-a.example".into(),
            index: 5,
            tree_size: size_before + 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    let err = audit
        .get_checkpoint(pb::GetCheckpointRequest {
            origin: "nobody.example".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        hotline.status().await.unwrap().origins[0].tree_size,
        size_before
    );

    // Restart from the same directory.
    let config = node.stop().await;
    let node = TestNode::start(config).await;
    assert_eq!(
        node.node.public_key(),
        &key,
        "identity reused after restart"
    );

    // Audit with client code only: signature, every leaf, every inclusion proof, and
    // consistency with the checkpoint seen mid-way.
    let mid = mid_checkpoint.unwrap();
    let previous = TrustedSize {
        size: mid.tree_size,
        root: hex::encode(&mid.root_hash),
    };
    let mut auditor = Auditor::connect(&node.url).await.unwrap();
    let report = auditor
        .audit_origin(&key, Some(&previous), None)
        .await
        .unwrap();
    assert_eq!(report.size, size_before);
    assert_eq!(report.adds, 10_001);
    assert_eq!(report.retracts, 25);
    assert_eq!(report.active, 10_001 - 25);
    assert_eq!(report.inclusion_proofs_checked, size_before);
    assert_eq!(report.extends_previous, Some(mid.tree_size));

    // A forged "previous" root is caught as a rewritten history.
    let forged = TrustedSize {
        size: mid.tree_size,
        root: hex::encode([1u8; 32]),
    };
    let err = auditor
        .audit_origin(&key, Some(&forged), Some(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("history rewritten"), "{err}");
    // The wrong key is refused.
    let other = redline_proto::checkpoint::OriginSigner::generate("hotline-a.example").unwrap();
    let err = auditor
        .audit_origin(other.public(), None, Some(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-h.example", dir.path()).await;
    let channel = redline_client::connect(&node.url).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "redline.v1.Audit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Reflection (v1 and v1alpha) lists our services, so grpcurl works without .proto files.
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let channel = redline_client::connect(&node.url).await.unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Ok(resp)) = futures::StreamExt::next(&mut responses).await else {
        panic!("no reflection response");
    };
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "redline.v1.Submission",
        "redline.v1.Audit",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    node.stop().await;
}
