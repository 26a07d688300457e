//! The victim's page (`/report/`) in a real browser: headless Chromium (Debian's), driven by
//! Playwright (npm `playwright-core`) through `web/tests/report.mjs`, against a live node
//! serving the page built by `web/build.sh` (the hasher is `redline-hashing` compiled to
//! WebAssembly).
//!
//! Tried, and what must hold:
//! - every image of `../shared/pdq-reference/images` chosen in the page is hashed there to
//!   exactly the PDQ hash and quality `redline hash` prints for it;
//! - over the whole session, no request the browser makes goes anywhere but the node, and no
//!   request URL or body carries any 64-byte window of any image file (the images never leave
//!   the device); the page sets no cookie and stores nothing;
//! - sending opens a case (number and PIN shown once) waiting for review; after an analyst
//!   approves it its hashes are in the node's own log with the case number as `case_ref`, the
//!   PIN (typed in lower case, without dashes) shows it listed, a wrong PIN is refused, and
//!   withdrawal retracts every entry it listed;
//! - the page is served with a strict Content-Security-Policy, and axe-core finds no serious
//!   or critical accessibility violation before hashing, with the case shown, and after
//!   withdrawal; screenshots are written to `target/web-test/`.
//!
//! Needs `chromium`, `node`, `web/tests/node_modules` (`npm ci` there) and `target/web`
//! (`web/build.sh`); `.ci/run` provides all and sets `REDLINE_REQUIRE_BROWSER=1`, which turns
//! their absence into a failure. Elsewhere the test is skipped, saying what is missing.

use redline_e2e::curl::{bearer, curl, json};
use redline_e2e::{browser, cargo_bin, shared_dir, temp_dir, token_config, TestNode};
use redline_server::config::{Config, ReportMode, Scope};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORIGIN: &str = "hotline.example";
const ANALYST: &str = "analyst-secret";

/// Whether `haystack` holds any `WINDOW`-byte run of `needle`.
fn shares_a_window(needle: &[u8], haystack: &[u8]) -> bool {
    const WINDOW: usize = 64;
    if needle.len() < WINDOW || haystack.len() < WINDOW {
        return false;
    }
    // Index the (small) request by each window's first 8 bytes, then walk the image once.
    let mut starts: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
    for at in 0..=haystack.len() - WINDOW {
        let key: [u8; 8] = haystack[at..at + 8].try_into().unwrap();
        starts.entry(key).or_default().push(at);
    }
    (0..=needle.len() - WINDOW).any(|i| {
        let key: [u8; 8] = needle[i..i + 8].try_into().unwrap();
        starts.get(&key).is_some_and(|hits| {
            hits.iter()
                .any(|&at| haystack[at..at + WINDOW] == needle[i..i + WINDOW])
        })
    })
}

#[test]
fn windows_are_found_wherever_they_are() {
    let image: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut request = b"{\"signals\":[]}".to_vec();
    assert!(!shares_a_window(&image, &request));
    request.extend_from_slice(&image[1000..1064]);
    assert!(shares_a_window(&image, &request));
    assert!(
        !shares_a_window(&image, &image[1000..1063]),
        "63 bytes are no window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_victim_hashes_on_her_device_reports_checks_and_withdraws() {
    if !browser::available("report") {
        return;
    }
    let shared = shared_dir().expect("checked by available");
    let images = shared.join("pdq-reference/images");

    // What `redline hash` prints for every reference image.
    let redline = cargo_bin("redline-client", "redline");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out = Command::new(&redline)
        .arg("hash")
        .args(&files)
        .output()
        .expect("redline hash runs");
    assert!(out.status.success(), "{out:?}");
    let expected: HashMap<String, (String, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(3, ',');
            let (pdq, quality, file) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let name = Path::new(file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, (pdq.to_owned(), quality.parse().unwrap()))
        })
        .collect();
    assert_eq!(expected.len(), files.len());

    let dir = temp_dir();
    let mut config = Config::new(ORIGIN, dir.path());
    config.report.enabled = true;
    config.report.mode = ReportMode::Review;
    config.web.assets = Some(browser::assets());
    config.tokens = vec![token_config("analyst", ANALYST, vec![Scope::Submit])];
    let node = TestNode::start(config).await;

    let report = browser::run(
        "report.mjs",
        "report.json",
        vec![
            ("REDLINE_URL", node.url.clone().into()),
            ("REDLINE_IMAGES", images.clone().into()),
            ("REDLINE_TOKEN", ANALYST.into()),
        ],
    )
    .await;
    let steps = &report["steps"];
    eprintln!(
        "hashed {} images in the browser in {} ms",
        files.len(),
        steps["hash_ms"]
    );

    // The page and its policy.
    assert_eq!(steps["page_status"], 200);
    let csp = steps["csp"].as_str().unwrap();
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }

    // Hashes: bit for bit what `redline hash` prints, for every image.
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        files.len(),
        "every image hashed: {}",
        steps["error_after_hashing"]
    );
    for row in rows {
        let file = row["file"].as_str().unwrap();
        let (pdq, quality) = &expected[file];
        assert_eq!(row["pdq"].as_str(), Some(pdq.as_str()), "{file}");
        assert_eq!(row["quality"].as_u64(), Some(*quality), "{file}");
    }

    // Nothing but hashes left the device, and only to the node.
    let requests = report["requests"].as_array().unwrap();
    assert!(requests.len() >= 5, "{requests:?}");
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    use base64::Engine as _;
    for r in requests {
        let u = r["url"].as_str().unwrap();
        assert!(
            u.starts_with(&format!("{}/", node.url)),
            "a request to another host: {u}"
        );
        let body = base64::engine::general_purpose::STANDARD
            .decode(r["body_base64"].as_str().unwrap())
            .unwrap();
        for (file, image) in files.iter().zip(&originals) {
            assert!(
                !shares_a_window(image, u.as_bytes()),
                "{u} carries bytes of {file:?}"
            );
            assert!(
                !shares_a_window(image, &body),
                "a body to {u} carries bytes of {file:?}"
            );
        }
    }
    assert_eq!(report["cookies"], serde_json::json!([]));
    assert_eq!(
        report["storage"],
        serde_json::json!({"local": 0, "session": 0})
    );

    // The case: queued, approved into the log under its number, listed, withdrawn.
    let case_id = report["case"]["id"].as_str().unwrap().to_owned();
    assert!(case_id.starts_with("RL-"), "{case_id}");
    assert!(report["case"]["status"]
        .as_str()
        .unwrap()
        .contains("waiting for review"));
    assert_eq!(steps["approve_status"], 200, "{}", steps["approved"]);
    let indices: Vec<u64> = steps["approved"]["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    let distinct: std::collections::HashSet<&String> = expected.values().map(|(p, _)| p).collect();
    assert_eq!(indices.len(), files.len());
    assert_eq!(
        indices
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        distinct.len(),
        "one entry per distinct hash"
    );
    assert_eq!(steps["checked"], "listed");
    assert!(steps["wrong_pin_error"]
        .as_str()
        .unwrap()
        .contains("no case with this number and PIN"));
    assert_eq!(steps["withdrawn"], "withdrawn");

    // The log: the case's entries carry its number, and each is retracted.
    let (code, body) = curl(
        [
            bearer(ANALYST).to_vec(),
            vec![format!("{}/v1/reports", node.url)],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body)["cases"],
        serde_json::json!([]),
        "nothing left to review"
    );
    let size = node.size_of(ORIGIN);
    assert_eq!(
        size,
        2 * distinct.len() as u64,
        "one ADD and one RETRACT per hash"
    );
    let id = node.node.log(ORIGIN).unwrap().state().id;
    for index in 0..size {
        let leaf = node.node.logs().leaf(id, index).unwrap().expect("a leaf");
        match redline_proto::entry::decode_leaf(&leaf).unwrap().1 {
            redline_proto::entry::Decoded::Add { add, .. } => {
                assert_eq!(add.case_ref, case_id);
                assert!(add.labels.contains(&"victim-report".to_owned()));
            }
            redline_proto::entry::Decoded::Retract(r) => {
                assert!(indices.contains(&r.target_index));
                assert!(r.reason.contains("withdrawn"));
            }
        }
    }

    // Accessibility: no serious or critical violation in any state of the page.
    browser::assert_accessible(&report, &["axe_empty", "axe_case", "axe_check"]);
    browser::assert_screenshots(&["report-page.png", "report-withdrawn.png"]);
    node.stop().await;
}
