//! Bearer tokens with scopes over real gRPC: every service refuses a call without a token or
//! with an unknown one (UNAUTHENTICATED), refuses a valid token without its scope
//! (PERMISSION_DENIED), and serves the right scope; health and reflection stay open; a token
//! over its rate gets RESOURCE_EXHAUSTED; a follower sends its peer token and replicates, while
//! one with a wrong token gets nothing.

#[path = "ops_support.rs"]
mod ops_support;

use ops_support::{eventually, follower_config, size_of};
use redline_e2e::{temp_dir, TestNode};
use redline_proto::pb::{self, Signal};
use redline_server::config::{PeerConfig, Scope, Secret, TokenConfig};
use redline_server::grpc::auth::hash_token;
use redline_server::Config;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn token(name: &str, secret: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hash_token(secret),
        scopes: scopes.to_vec(),
        rate_per_sec: None,
        burst: None,
    }
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
        );
    }
    req
}

fn pdq(seed: u8) -> Signal {
    Signal {
        signal_type: "pdq".into(),
        value: hex::encode([seed; 32]),
        quality: 100,
    }
}

/// One call per service, returning its status code.
async fn call(channel: &Channel, scope: Scope, token: Option<&str>) -> Code {
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    match scope {
        Scope::Submit => code(
            pb::submission_client::SubmissionClient::new(channel.clone())
                .submit(with_token(
                    pb::SubmitRequest {
                        signals: vec![pdq(7)],
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
        ),
        Scope::Match => code(
            pb::matching_client::MatchingClient::new(channel.clone())
                .r#match(with_token(
                    pb::MatchRequest {
                        signals: vec![pdq(7)],
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
        ),
        Scope::Audit => code(
            pb::audit_client::AuditClient::new(channel.clone())
                .list_origins(with_token(pb::ListOriginsRequest::default(), token))
                .await
                .map(drop),
        ),
        Scope::Federate => code(
            pb::federation_client::FederationClient::new(channel.clone())
                .get_checkpoints(with_token(pb::GetCheckpointsRequest::default(), token))
                .await
                .map(drop),
        ),
        Scope::Admin => code(
            pb::node_client::NodeClient::new(channel.clone())
                .status(with_token(pb::StatusRequest::default(), token))
                .await
                .map(drop),
        ),
    }
}

const ALL: [Scope; 5] = [
    Scope::Submit,
    Scope::Match,
    Scope::Audit,
    Scope::Federate,
    Scope::Admin,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_checks_token_and_scope() {
    let dir = temp_dir();
    let mut config = Config::new("hotline-a.example", dir.path());
    config.tokens = ALL
        .iter()
        .map(|s| token(s.name(), &format!("token-{}", s.name()), &[*s]))
        .collect();
    config.tokens.push(token(
        "analysts",
        "analyst-token",
        &[Scope::Submit, Scope::Audit],
    ));
    let node = TestNode::start(config).await;
    let channel = Channel::from_shared(node.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    for scope in ALL {
        let right = format!("token-{}", scope.name());
        assert_eq!(
            call(&channel, scope, None).await,
            Code::Unauthenticated,
            "{scope:?} without a token"
        );
        assert_eq!(
            call(&channel, scope, Some("not-a-token")).await,
            Code::Unauthenticated,
            "{scope:?} with an unknown token"
        );
        // A prefix or a case change of a valid token is just as wrong.
        assert_eq!(
            call(&channel, scope, Some(&right[..right.len() - 1])).await,
            Code::Unauthenticated
        );
        for other in ALL.iter().filter(|o| **o != scope) {
            let wrong = format!("token-{}", other.name());
            assert_eq!(
                call(&channel, scope, Some(&wrong)).await,
                Code::PermissionDenied,
                "{scope:?} with the {other:?} token"
            );
        }
        assert_eq!(
            call(&channel, scope, Some(&right)).await,
            Code::Ok,
            "{scope:?} with its own token"
        );
    }
    // A token with several scopes gets exactly those.
    assert_eq!(
        call(&channel, Scope::Submit, Some("analyst-token")).await,
        Code::Ok
    );
    assert_eq!(
        call(&channel, Scope::Audit, Some("analyst-token")).await,
        Code::Ok
    );
    assert_eq!(
        call(&channel, Scope::Match, Some("analyst-token")).await,
        Code::PermissionDenied
    );

    // Health and reflection need no token.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "redline.v1.Submission".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            channel.clone(),
        );
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter(vec![
            tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                        String::new(),
                    ),
                ),
            },
        ]))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_resource_exhausted() {
    let dir = temp_dir();
    let mut config = Config::new("hotline-a.example", dir.path());
    let mut slow = token("platform", "platform-token", &[Scope::Match]);
    slow.rate_per_sec = Some(0.01);
    slow.burst = Some(3);
    config.tokens = vec![slow, token("other", "other-token", &[Scope::Match])];
    let node = TestNode::start(config).await;
    let channel = Channel::from_shared(node.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            call(&channel, Scope::Match, Some("platform-token")).await,
            Code::Ok
        );
    }
    assert_eq!(
        call(&channel, Scope::Match, Some("platform-token")).await,
        Code::ResourceExhausted
    );
    // Buckets are per token.
    assert_eq!(
        call(&channel, Scope::Match, Some("other-token")).await,
        Code::Ok
    );
    // Refusals carry google.rpc details a program can act on: when to retry (one unit at
    // 0.01/s: 100 s), and which signal of a request is malformed.
    let matching = |secret: &'static str| {
        redline_proto::pb::matching_client::MatchingClient::with_interceptor(
            channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {secret}").parse().unwrap());
                Ok(r)
            },
        )
    };
    let signal = |t: &str| redline_proto::pb::Signal {
        signal_type: t.into(),
        value: "ab".repeat(32),
        quality: 0,
    };
    let over = matching("platform-token")
        .r#match(redline_proto::pb::MatchRequest {
            signals: vec![signal("pdq")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    use tonic_types::StatusExt as _;
    assert_eq!(
        over.get_details_error_info().unwrap().reason,
        "RATE_LIMITED"
    );
    assert_eq!(
        over.get_details_retry_info().unwrap().retry_delay,
        Some(std::time::Duration::from_secs(100))
    );
    let bad = matching("other-token")
        .r#match(redline_proto::pb::MatchRequest {
            signals: vec![signal("pdq"), signal("no-such-type")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let info = bad.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("BAD_SIGNAL", "redline.v1")
    );
    assert_eq!(
        bad.get_details_bad_request().unwrap().field_violations[0].field,
        "signals[1]"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_send_their_token_and_a_wrong_one_replicates_nothing() {
    let (da, db, dc) = (temp_dir(), temp_dir(), temp_dir());
    let mut config = Config::new("hotline-a.example", da.path());
    config.tokens = vec![
        token("hotline-b", "b-federates", &[Scope::Federate]),
        token("analyst", "submits", &[Scope::Submit]),
    ];
    let a = TestNode::start(config).await;
    a.node
        .submit(
            vec![redline_server::node::NewSignal {
                signal_type: redline_proto::signal::SignalType::Pdq,
                hash: vec![9; 32],
                quality: 100,
            }],
            Default::default(),
        )
        .await
        .unwrap();

    let peer = |token: &str| {
        let mut p = PeerConfig::new(a.url.clone());
        p.token = Some(Secret(token.into()));
        vec![p]
    };
    let good = follower_config(
        "hotline-b.example",
        db.path(),
        peer("b-federates"),
        &[&a.node],
    );
    // A token of A's, but without the federate scope.
    let bad = follower_config("hotline-c.example", dc.path(), peer("submits"), &[&a.node]);
    let b = TestNode::start(good).await;
    let c = TestNode::start(bad).await;
    eventually(
        Duration::from_secs(20),
        "B replicates A with its token",
        || async { size_of(&b.node, "hotline-a.example") == 1 },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "C's sync reports the refusal",
        || async {
            c.node.peers().snapshot().iter().any(|(_, s)| {
                s.last_error
                    .contains("token 'analyst' lacks the 'federate' scope")
            })
        },
    )
    .await;
    assert_eq!(size_of(&c.node, "hotline-a.example"), 0);
    for n in [c, b, a] {
        n.stop().await;
    }
}
