//! The hotline's console (`/console/`) in a real browser (Debian's headless Chromium, driven
//! by Playwright through `web/tests/console.mjs`), on a live three-node federation: hotline A
//! (the console's node) follows hotline B and a peer that is down; a platform follows A and B.
//!
//! Tried, and what must hold:
//! - with a token of every scope, the console shows A's and B's origins with the sizes A
//!   holds, a growth line per origin, and the federation picture with B synced and the dead
//!   peer in error;
//! - a victim's report queued on A (opened through the public report API) is approved in the
//!   console, leaves the queue, and becomes matchable at the platform two hops away;
//! - an image dropped on the search panel is hashed in the browser to what `redline hash`
//!   prints and found in B's list;
//! - with a `match`-only token every panel that needs another scope says why, and submit and
//!   retract are refused (A's log does not change);
//! - every request goes to A only, no cookie or storage is used, axe-core finds no serious or
//!   critical violation; screenshots are written to `target/web-test/`.
//!
//! Needs what `web_report.rs` needs; skipped (saying so) without it unless
//! `REDLINE_REQUIRE_BROWSER` is set, as in `.ci/run`.

use redline_e2e::curl::{curl, json};
use redline_e2e::{
    browser, cargo_bin, eventually, federated_config, reserve, shared_dir, temp_dir, token_config,
    trust_key, TestNode,
};
use redline_server::config::{Config, PeerConfig, Policy, ReportMode, Scope, Secret};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const A: &str = "hotline-a.example";
const B: &str = "hotline-b.example";
const ANALYST: &str = "analyst-secret";
const WEAK: &str = "platform-secret";
const PEER: &str = "peer-secret";
const LONG: Duration = Duration::from_secs(30);

fn tokens() -> Vec<redline_server::config::TokenConfig> {
    vec![
        token_config(
            "analyst",
            ANALYST,
            vec![Scope::Submit, Scope::Audit, Scope::Admin, Scope::Match],
        ),
        token_config("platform", WEAK, vec![Scope::Match]),
        token_config("peer", PEER, vec![Scope::Federate]),
    ]
}

fn peer(url: &str) -> PeerConfig {
    let mut p = PeerConfig::new(url.to_owned());
    p.token = Some(Secret(PEER.into()));
    p
}

fn pdq_of(redline: &Path, image: &Path) -> String {
    let out = Command::new(redline)
        .arg("hash")
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

async fn match_at(url: &str, pdq: &str) -> Vec<(String, u64)> {
    let (code, body) = curl(vec![
        "-H".into(),
        format!("Authorization: Bearer {WEAK}"),
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        serde_json::json!({"signals": [{"signal_type": "pdq", "value": pdq}]}).to_string(),
        format!("{url}/v1/match"),
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    json(&body)["results"][0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["origin"].as_str().unwrap().to_owned(),
                m["index"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_runs_the_federation_from_the_console() {
    if !browser::available("console") {
        return;
    }
    let shared = shared_dir().expect("checked by available");
    let images = shared.join("pdq-reference/images");
    let redline = cargo_bin("redline-client", "redline");
    let search_image = images.join("pen-and-coaster.png");
    let search_pdq = pdq_of(&redline, &search_image);

    // B lists hashes (one of them the search image's) in two batches, some time apart.
    let (a_dir, b_dir, p_dir) = (temp_dir(), temp_dir(), temp_dir());
    let mut b_config = Config::new(B, b_dir.path());
    b_config.tokens = tokens();
    let b = TestNode::start(b_config).await;
    let mut listed: Vec<[u8; 32]> = (0..20u8).map(|i| [i.wrapping_mul(37); 32]).collect();
    let mut search_hash = [0u8; 32];
    hex::decode_to_slice(&search_pdq, &mut search_hash).unwrap();
    listed.push(search_hash);
    redline_e2e::submit_pdq(&b.node, &listed[..10]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_submitted = redline_e2e::submit_pdq(&b.node, &listed[10..]).await;
    let search_index = b_submitted.entries.last().unwrap().0;

    // A follows B and a peer that is down; its console and report page are on.
    let (dead_listener, dead_url) = reserve().await;
    drop(dead_listener);
    let (a_listener, a_url) = reserve().await;
    let mut a_config = federated_config(
        A,
        a_dir.path(),
        &[],
        vec![trust_key(b.node.public_key(), Policy::Accept)],
        50,
    );
    a_config.peers = vec![peer(&b.url), peer(&dead_url)];
    a_config.tokens = tokens();
    a_config.sync.ready_after_first_sync = false;
    a_config.web.assets = Some(browser::assets());
    a_config.web.console = true;
    a_config.report.enabled = true;
    a_config.report.mode = ReportMode::Review;
    let a = TestNode::start_on(a_listener, a_config).await;
    let a_key = a.node.public_key().clone();
    redline_e2e::submit_pdq(&a.node, &[[201; 32], [202; 32]]).await;

    // The platform follows A and B.
    let mut p_config = federated_config(
        "platform.example",
        p_dir.path(),
        &[],
        vec![
            trust_key(&a_key, Policy::Accept),
            trust_key(b.node.public_key(), Policy::Accept),
        ],
        50,
    );
    p_config.peers = vec![peer(&a_url)];
    p_config.tokens = tokens();
    let platform = TestNode::start(p_config).await;
    eventually(LONG, "A and the platform replicate B", || async {
        a.size_of(B) == listed.len() as u64 && platform.size_of(B) == listed.len() as u64
    })
    .await;

    // A victim's report, queued on A.
    let reported = "cd".repeat(32);
    let (code, body) = curl(vec![
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        serde_json::json!({"signals": [{"signal_type": "pdq", "value": reported, "quality": 80}]})
            .to_string(),
        format!("{a_url}/report/api/cases"),
    ])
    .await;
    assert_eq!(code, 200, "{body}");
    let case_id = json(&body)["case_id"].as_str().unwrap().to_owned();
    assert!(match_at(&platform.url, &reported).await.is_empty());
    let a_size_before = a.size_of(A);

    let c = browser::run(
        "console.mjs",
        "console.json",
        vec![
            ("REDLINE_URL", a_url.clone().into()),
            ("REDLINE_TOKEN", ANALYST.into()),
            ("REDLINE_WEAK_TOKEN", WEAK.into()),
            ("REDLINE_CASE", case_id.clone().into()),
            ("REDLINE_IMAGE", search_image.clone().into()),
        ],
    )
    .await;

    // Origins, growth, federation.
    let origins = c["origins"].as_array().unwrap();
    for (name, size) in [(A, a_size_before), (B, listed.len() as u64)] {
        let row = origins
            .iter()
            .find(|o| o["origin"] == name)
            .unwrap_or_else(|| panic!("{name} is shown: {origins:?}"));
        assert_eq!(
            row["size"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or(row["size"].as_u64()),
            Some(size),
            "{row}"
        );
    }
    let lines = c["growth_lines"].as_array().unwrap();
    for name in [A, B] {
        assert!(
            lines
                .iter()
                .any(|l| l["origin"] == name && l["points"].as_u64().unwrap_or(0) >= 2),
            "a growth line for {name}: {lines:?}"
        );
    }
    let peers = c["peers"].as_array().unwrap();
    let state = |url: &str| {
        peers
            .iter()
            .find(|p| p["url"] == url)
            .unwrap_or_else(|| panic!("{url} in the picture: {peers:?}"))["state"]
            .clone()
    };
    assert_eq!(state(&b.url), "ok");
    assert_ne!(state(&dead_url), "ok");

    // The review: approved in the console, matchable two hops away.
    assert!(
        c["queue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == &serde_json::json!(case_id)),
        "{}",
        c["queue"]
    );
    assert!(
        c["approved"].as_str().unwrap().contains("listed"),
        "{}",
        c["approved"]
    );
    eventually(
        LONG,
        "the approved report matches at the platform",
        || async {
            match_at(&platform.url, &reported)
                .await
                .iter()
                .any(|(o, _)| o == A)
        },
    )
    .await;

    // Search by an image hashed in the browser.
    assert_eq!(c["search_computed"].as_str(), Some(search_pdq.as_str()));
    assert!(
        c["search_results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["origin"] == B && r["index"].as_u64() == Some(search_index)),
        "{}",
        c["search_results"]
    );

    // A match-only token: every other panel says why; nothing changes.
    let weak = c["weak_errors"].as_object().unwrap();
    for panel in ["origins", "growth", "federation", "evidence", "review"] {
        let text = weak.get(panel).and_then(|e| e.as_str()).unwrap_or_default();
        assert!(
            text.contains("scope"),
            "{panel} with a match-only token: {text:?} ({weak:?})"
        );
    }
    for action in ["weak_submit_error", "weak_retract_error"] {
        assert!(
            c[action].as_str().unwrap_or_default().contains("scope"),
            "{action}: {}",
            c[action]
        );
    }
    assert_eq!(
        a.size_of(A),
        a_size_before + 1,
        "only the approval wrote to A's log"
    );

    // Privacy and accessibility.
    browser::assert_private(&c, &a_url);
    browser::assert_accessible(&c, &["axe_empty", "axe_loaded"]);
    browser::assert_screenshots(&["console.png", "console-weak.png"]);
    platform.stop().await;
    a.stop().await;
    b.stop().await;
}
