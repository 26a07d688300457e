//! Browser tests' harness: Debian's headless Chromium driven by Playwright scripts in
//! `web/tests/` (npm `playwright-core`, `axe-core`), against pages a node serves from
//! `target/web` (`web/build.sh`). A script drives the page and writes what it saw as JSON; the
//! Rust test judges it, so every rule lives in Rust.
//!
//! Without Chromium, Node, `web/tests/node_modules` or the built pages the tests skip, saying
//! what is missing, unless `REDLINE_REQUIRE_BROWSER` is set (as `.ci/run` does), which turns
//! the absence into a failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// The browser: `$CHROMIUM`, or Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The built pages a node serves (`[web] assets`).
pub fn assets() -> PathBuf {
    repo().join("target/web")
}

/// Whether a browser test of `page` (`report`, `console`) can run; when it cannot, says what
/// is missing, and fails instead if `REDLINE_REQUIRE_BROWSER` is set.
pub fn available(page: &str) -> bool {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!("{} (apt install chromium)", chromium().display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (apt install nodejs)".to_owned());
    }
    if !repo()
        .join("web/tests/node_modules/playwright-core")
        .exists()
    {
        missing.push("web/tests/node_modules (npm ci in web/tests)".to_owned());
    }
    if !assets().join(page).join("redline_web.wasm").exists() {
        missing.push(format!("target/web/{page} (web/build.sh)"));
    }
    if crate::shared_dir().is_none() {
        missing.push("../shared (the reference images)".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("REDLINE_REQUIRE_BROWSER").is_none(),
        "REDLINE_REQUIRE_BROWSER is set but the {page} browser test cannot run: {missing:?}"
    );
    eprintln!("SKIPPED the {page} browser test: missing {missing:?}");
    false
}

/// Where the scripts write their JSON and screenshots (kept after the run, for README).
pub fn output_dir() -> PathBuf {
    let dir = repo().join("target/web-test");
    std::fs::create_dir_all(&dir).expect("target/web-test");
    dir
}

/// Runs `web/tests/<script>` with `env` (plus `REDLINE_OUT` and `CHROMIUM`) and returns the
/// JSON it wrote to `<output_dir>/<json>`; panics, with what the page logged, when the script
/// or the session failed.
pub async fn run(
    script: &str,
    json: &str,
    env: Vec<(&'static str, OsString)>,
) -> serde_json::Value {
    let path = repo().join("web/tests").join(script);
    let out = output_dir();
    let out_arg = out.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&path)
            .current_dir(path.parent().expect("web/tests"))
            .envs(env)
            .env("REDLINE_OUT", &out_arg)
            .env("CHROMIUM", chromium())
            .output()
            .expect("node runs")
    })
    .await
    .expect("node task");
    assert!(run.status.success(), "{script}: {run:?}");
    let text = std::fs::read_to_string(out.join(json)).expect("the script's JSON");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(
        report["failure"].is_null(),
        "the browser session failed: {}\npage console: {}",
        report["failure"],
        report["console"]
    );
    report
}

/// axe-core found no serious or critical violation in any of `phases` of `report`.
pub fn assert_accessible(report: &serde_json::Value, phases: &[&str]) {
    for phase in phases {
        let serious: Vec<&serde_json::Value> = report[*phase]
            .as_array()
            .unwrap_or_else(|| panic!("axe ran in {phase}"))
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(serious.is_empty(), "{phase}: {serious:?}");
    }
}

/// Each of `shots` was written to the output directory as a PNG.
pub fn assert_screenshots(shots: &[&str]) {
    for shot in shots {
        let png = std::fs::read(output_dir().join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{shot}");
    }
}

/// No cookie and no storage left by the page, and every request went to `node_url`.
pub fn assert_private(report: &serde_json::Value, node_url: &str) {
    assert_eq!(report["cookies"], serde_json::json!([]));
    assert_eq!(
        report["storage"],
        serde_json::json!({"local": 0, "session": 0})
    );
    for r in report["requests"].as_array().expect("requests") {
        let u = r["url"].as_str().unwrap_or_default();
        assert!(
            u.starts_with(&format!("{node_url}/")),
            "a request to another host: {u}"
        );
    }
}
