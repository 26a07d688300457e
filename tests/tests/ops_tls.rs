//! TLS and mutual TLS between peers, with certificates made at test time: a follower that
//! trusts the hotline's CA and presents a client certificate signed by the CA the hotline
//! trusts replicates over https; one presenting a certificate from another CA is refused at
//! the handshake (its sync fails and nothing replicates), and so is one without a certificate.
//! The `redline` command reaches a TLS node with `--ca`, and refuses one whose certificate it
//! cannot verify.

#[path = "cli_support.rs"]
mod cli_support;
#[path = "ops_support.rs"]
mod ops_support;

use ops_support::{eventually, follower_config, head_of, size_of};
use redline_e2e::tls::Ca;
use redline_e2e::{temp_dir, TestNode};
use redline_server::config::{PeerConfig, TlsConfig};
use redline_server::node::NewSignal;
use redline_server::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_peers_sync_and_an_untrusted_client_certificate_is_refused() {
    let certs = temp_dir();
    let server_ca = Ca::new(certs.path(), "server-ca");
    let client_ca = Ca::new(certs.path(), "client-ca");
    let rogue_ca = Ca::new(certs.path(), "rogue-ca");
    let (server_cert, server_key) = server_ca.sign("hotline-a", &["localhost", "127.0.0.1"]);
    let (good_cert, good_key) = client_ca.sign("hotline-b", &["hotline-b.example"]);
    let (rogue_cert, rogue_key) = rogue_ca.sign("hotline-c", &["hotline-c.example"]);

    let (da, db, dc, dd) = (temp_dir(), temp_dir(), temp_dir(), temp_dir());
    let mut config = Config::new("hotline-a.example", da.path());
    config.tls = Some(TlsConfig {
        cert: server_cert,
        key: server_key,
        client_ca: Some(server_ca.file("client-ca", "ca.pem")),
    });
    let a = TestNode::start(config).await;
    let plain_url = a.url.clone();
    let url = plain_url.replace("http://", "https://");
    let signals = |seed: u8| {
        (0..10u8)
            .map(|i| NewSignal {
                signal_type: redline_proto::signal::SignalType::Pdq,
                hash: vec![seed * 16 + i; 32],
                quality: 100,
            })
            .collect::<Vec<_>>()
    };
    a.node.submit(signals(1), Default::default()).await.unwrap();

    let peer = |cert: Option<(PathBuf, PathBuf)>| {
        let mut p = PeerConfig::new(url.clone());
        p.ca = Some(server_ca.file("server-ca", "ca.pem"));
        if let Some((c, k)) = cert {
            p.cert = Some(c);
            p.key = Some(k);
        }
        p
    };
    let follower =
        |origin: &str, dir: &Path, p: PeerConfig| follower_config(origin, dir, vec![p], &[&a.node]);
    let b = TestNode::start(follower(
        "hotline-b.example",
        db.path(),
        peer(Some((good_cert, good_key))),
    ))
    .await;
    let c = TestNode::start(follower(
        "hotline-c.example",
        dc.path(),
        peer(Some((rogue_cert, rogue_key))),
    ))
    .await;
    let d = TestNode::start(follower("hotline-d.example", dd.path(), peer(None))).await;

    eventually(
        Duration::from_secs(30),
        "B replicates over mTLS",
        || async { size_of(&b.node, "hotline-a.example") == 10 },
    )
    .await;
    // Pushes arrive over the same TLS connection.
    a.node.submit(signals(2), Default::default()).await.unwrap();
    eventually(Duration::from_secs(30), "B follows a push", || async {
        size_of(&b.node, "hotline-a.example") == 20
    })
    .await;
    assert_eq!(
        head_of(&b.node, "hotline-a.example"),
        head_of(&a.node, "hotline-a.example")
    );

    for (n, what) in [
        (&c, "rogue client certificate"),
        (&d, "no client certificate"),
    ] {
        eventually(
            Duration::from_secs(30),
            &format!("the {what} is refused"),
            || async {
                n.node
                    .peers()
                    .snapshot()
                    .iter()
                    .any(|(_, s)| !s.last_error.is_empty())
            },
        )
        .await;
        let peers = n.node.peers().snapshot();
        assert_eq!(peers[0].1.last_sync_ms, 0, "{what}: {peers:?}");
        assert_eq!(size_of(&n.node, "hotline-a.example"), 0, "{what}");
    }
    // And a plaintext client cannot talk to the TLS port at all.
    let plain = tonic::transport::Channel::from_shared(plain_url)
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let r = redline_proto::pb::federation_client::FederationClient::new(ch)
            .get_checkpoints(redline_proto::pb::GetCheckpointsRequest::default())
            .await;
        assert!(r.is_err(), "plaintext call to a TLS port answered");
    }
    for n in [d, c, b, a] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_tls_with_a_private_ca_and_refuses_an_unverified_node() {
    let certs = temp_dir();
    let ca = Ca::new(certs.path(), "hotline-ca");
    let other_ca = Ca::new(certs.path(), "other-ca");
    let (cert, key) = ca.sign("hotline-a", &["localhost"]);
    let dir = temp_dir();
    let mut config = Config::new("hotline-a.example", dir.path());
    config.tls = Some(TlsConfig {
        cert,
        key,
        client_ca: None,
    });
    let a = TestNode::start(config).await;
    let url = format!("https://localhost:{}", a.addr.port());
    let ca_pem = ca.file("hotline-ca", "ca.pem");
    let ca_pem = ca_pem.to_str().unwrap();

    // With the node's CA: a submission goes through and status reads it back.
    let hash = "ab".repeat(32);
    cli_support::run(&[
        "--node", &url, "--ca", ca_pem, "submit", "--pdq", &hash, "--json",
    ])
    .await
    .ok();
    let v = cli_support::run(&["--node", &url, "--ca", ca_pem, "status", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v["origin"], "hotline-a.example");
    assert_eq!(v["origins"][0]["tree_size"], 1, "{v}");
    // REDLINE_CA works like --ca.
    cli_support::run_with(&["--node", &url, "status"], &[("REDLINE_CA", ca_pem)])
        .await
        .ok();

    // Without it (Mozilla roots) or with another CA, the handshake fails and nothing is sent.
    let wrong = other_ca.file("other-ca", "ca.pem");
    let other = "cd".repeat(32);
    for extra in [vec![], vec!["--ca", wrong.to_str().unwrap()]] {
        let mut args = vec!["--node", url.as_str(), "submit", "--pdq", other.as_str()];
        args.extend(extra);
        let r = cli_support::run(&args).await.fails(1);
        assert!(
            r.stderr.contains("cannot reach the node") && r.stderr.contains("ertificate"),
            "{r:#?}"
        );
    }
    assert_eq!(
        size_of(&a.node, "hotline-a.example"),
        1,
        "nothing else was added"
    );
    // A CA file given for a plain http node is a mistake, said as such.
    let plain = format!("http://127.0.0.1:{}", a.addr.port());
    let r = cli_support::run(&["--node", &plain, "--ca", ca_pem, "status"])
        .await
        .fails(1);
    assert!(r.stderr.contains("plain http"), "{r:#?}");
    a.stop().await;
}
