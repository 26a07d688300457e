//! `/metrics` over plain HTTP: a follower that replicated a hotline, matched, and refused bad
//! input exports the named series (tree size and active entries per origin, sync lag per peer,
//! matches, rejected inputs by reason, RPC latency by method), and health turns SERVING once
//! the node is loaded.

#[path = "ops_support.rs"]
mod ops_support;

use ops_support::{eventually, follower_config};
use redline_e2e::{temp_dir, TestNode};
use redline_proto::pb::{self, Signal};
use redline_server::config::PeerConfig;
use redline_server::node::NewSignal;
use redline_server::NodeSource;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// `GET /metrics` with a raw HTTP/1.1 request; returns the body.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain"), "{head}");
    body.to_owned()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_the_named_series() {
    let (da, db) = (temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    // Random-looking hashes, far apart (PDQ matches within 31 bits).
    let h = |seed: &str| -> [u8; 32] { Sha256::digest(seed.as_bytes()).into() };
    let hashes: Vec<[u8; 32]> = (1..=5).map(|i| h(&format!("hash {i}"))).collect();
    a.node
        .submit(
            hashes
                .iter()
                .map(|h| NewSignal {
                    signal_type: redline_proto::signal::SignalType::Pdq,
                    hash: h.to_vec(),
                    quality: 100,
                })
                .collect(),
            Default::default(),
        )
        .await
        .unwrap();

    let config = follower_config(
        "platform.example",
        db.path(),
        vec![PeerConfig::new(a.url.clone())],
        &[&a.node],
    );
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(redline_server::launch(
        NodeSource::Open(Box::new(config)),
        grpc,
        Some(metrics),
        async {
            let _ = stopped.await;
        },
        |_| {},
    ));
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    eventually(Duration::from_secs(20), "health SERVING", || {
        let mut health = health.clone();
        async move {
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "redline.v1.Matching".into(),
                })
                .await
                .is_ok_and(|r| {
                    r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                })
        }
    })
    .await;
    eventually(Duration::from_secs(20), "replicated", || async {
        value(
            &scrape(metrics_addr).await,
            "redline_origin_tree_size{origin=\"hotline-a.example\"}",
        ) == Some(5.0)
    })
    .await;

    // Two matches (one exact, one 1 bit away), one miss; then a malformed input.
    let mut near = hashes[2];
    near[0] ^= 1;
    let mut matching = pb::matching_client::MatchingClient::new(channel.clone());
    let resp = matching
        .r#match(pb::MatchRequest {
            signals: [hashes[0], near, h("miss")]
                .iter()
                .map(|h| Signal {
                    signal_type: "pdq".into(),
                    value: hex::encode(h),
                    quality: 100,
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.results.iter().map(|r| r.matches.len()).sum::<usize>(),
        2
    );
    let bad = matching
        .r#match(pb::MatchRequest {
            signals: vec![Signal {
                signal_type: "pdq".into(),
                value: "not hex".into(),
                quality: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let text = scrape(metrics_addr).await;
    for series in [
        "redline_ready",
        "redline_origin_tree_size{origin=\"hotline-a.example\"}",
        "redline_origin_active_entries{origin=\"hotline-a.example\"}",
        "redline_origin_tree_size{origin=\"platform.example\"}",
        "redline_matches_total",
        "redline_match_queries_total",
        "redline_rejected_inputs_total{reason=\"invalid_argument\",source=\"rpc\"}",
        "redline_rpc_calls_total{code=\"ok\",method=\"redline.v1.Matching/Match\"}",
        "redline_rpc_duration_seconds_count{method=\"redline.v1.Matching/Match\"}",
    ] {
        assert!(
            value(&text, series).is_some(),
            "{series} missing in:\n{text}"
        );
    }
    assert_eq!(value(&text, "redline_ready"), Some(1.0));
    assert_eq!(
        value(
            &text,
            "redline_origin_active_entries{origin=\"hotline-a.example\"}"
        ),
        Some(5.0)
    );
    assert_eq!(value(&text, "redline_matches_total"), Some(2.0));
    assert_eq!(value(&text, "redline_match_queries_total"), Some(3.0));
    assert_eq!(
        value(
            &text,
            "redline_rpc_duration_seconds_count{method=\"redline.v1.Matching/Match\"}"
        ),
        Some(2.0)
    );
    assert!(
        text.contains("redline_rpc_duration_seconds_bucket{method=\"redline.v1.Matching/Match\",le=\"0.005\"}"),
        "{text}"
    );
    let lag = text
        .lines()
        .find(|l| l.starts_with("redline_peer_sync_lag_seconds{peer=\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no sync lag in:\n{text}"));
    assert!((0.0..60.0).contains(&lag), "lag {lag}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    // The endpoint is gone with the node.
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
    a.stop().await;
}
