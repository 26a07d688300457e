//! A platform's long-lived client across the node's maximum connection age: the node ends each
//! connection with a GOAWAY after `[limits] max_connection_age_ms`, and a Match racing that
//! GOAWAY fails with a transport error that tonic does not retry by itself. `PlatformClient`
//! sends a Match once more when its connection closed under it; this test drives one client
//! through ~30 connection ages back to back and asserts that no Match fails. Without the retry
//! a call is lost every few ages (seen as "Unknown: transport error").

use redline_client::platform::{MatchOptions, PlatformClient};
use redline_e2e::{submit_pdq, temp_dir, TestNode};
use redline_server::Config;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_survive_the_maximum_connection_age() {
    let dir = temp_dir();
    let mut config = Config::new("hotline-a.example", dir.path());
    config.limits.max_connection_age_ms = 250;
    config.limits.max_connection_age_grace_ms = 100;
    let node = TestNode::start(config).await;
    let hex = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash).expect("hex");
    submit_pdq(&node.node, &[hash]).await;

    let mut client = PlatformClient::connect(&node.url).await.expect("connect");
    let started = Instant::now();
    let (mut answered, mut failed) = (0u64, Vec::new());
    while started.elapsed() < Duration::from_secs(8) {
        match client.match_pdq(hex, MatchOptions::default()).await {
            Ok(r) => {
                assert_eq!(r.results.len(), 1, "one result per signal");
                assert!(!r.results[0].matches.is_empty(), "the listed hash matches");
                answered += 1;
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    println!(
        "{answered} matches over ~{} connection ages, {} failed",
        8000 / 250,
        failed.len()
    );
    assert!(answered > 100, "the client kept matching ({answered})");
    assert!(
        failed.is_empty(),
        "matches lost at connection ends: {failed:?}"
    );
    node.stop().await;
}
