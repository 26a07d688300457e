//! The HTTP API's `/openapi.json` checked by someone else's reading of OpenAPI: `schemathesis`
//! (PyPI) generates requests from the document against a live node holding a list, with a
//! token, and checks every answer: no server error, no status code the document does not
//! name, no content type or body that breaks the documented schema.
//!
//! Schemathesis is found at `$REDLINE_SCHEMATHESIS` or on `PATH`; `.ci/run` installs it into a
//! virtualenv and sets `REDLINE_REQUIRE_SCHEMATHESIS=1`, which turns its absence into a
//! failure. Elsewhere the check is skipped, saying so, and the document's own shape is still
//! checked.

use rand::{Rng, SeedableRng};
use redline_e2e::curl::curl;
use redline_e2e::{temp_dir, TestNode};
use redline_server::config::{Config, Scope, TokenConfig};
use std::path::PathBuf;
use std::process::Command;

const TOKEN: &str = "schemathesis-token";

fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REDLINE_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from("schemathesis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_answers_as_its_openapi_document_says() {
    let dir = temp_dir();
    let mut config = Config::new("hotline.example", dir.path());
    config.tokens = vec![TokenConfig {
        name: "schemathesis".into(),
        sha256: redline_server::grpc::auth::hash_token(TOKEN),
        scopes: vec![Scope::Match, Scope::Audit, Scope::Submit, Scope::Admin],
        rate_per_sec: None,
        burst: None,
    }];
    // Reports on, so the public report calls reach their real checks (the budget per address
    // is raised: schemathesis calls from one address, and a 429 would hide the rest).
    config.report.enabled = true;
    config.report.per_address_burst = 1_000_000;
    let node = TestNode::start(config).await;
    // A list to match against, so lookups of listed hashes have answers to check too.
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let listed: Vec<[u8; 32]> = (0..200).map(|_| rng.gen()).collect();
    redline_e2e::submit_pdq(&node.node, &listed).await;

    // A node without peers is ready at once (HMA's readiness probe; it once stayed 503).
    let status_url = format!("{}/status", node.url);
    assert_eq!(curl(vec![status_url]).await, (200, "I-AM-ALIVE".into()));

    // The document is served without a token, is OpenAPI 3.1 and names the bearer scheme.
    let url = format!("{}/openapi.json", node.url);
    let (code, body) = curl(vec![url.clone()]).await;
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/m/lookup"]["get"].is_object());

    let Some(schemathesis) = schemathesis() else {
        assert!(
            std::env::var_os("REDLINE_REQUIRE_SCHEMATHESIS").is_none(),
            "REDLINE_REQUIRE_SCHEMATHESIS is set but schemathesis was not found \
             (set REDLINE_SCHEMATHESIS to its path)"
        );
        eprintln!(
            "SKIPPED the schemathesis run: schemathesis is not installed \
             (pip install schemathesis; .ci/run does)"
        );
        return;
    };
    // Schemathesis keeps a hypothesis example cache in its working directory; run it in
    // a scratch one so a test run leaves nothing in the source tree.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let cwd = scratch.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&schemathesis)
            .current_dir(&cwd)
            .args(["run", &url])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance",
            ])
            // Every operation, with the documented examples, the coverage of each
            // parameter's edges and random generation (~1,400 requests, ~15 s).
            .args(["--phases", "examples,coverage,fuzzing"])
            // One worker: CPython 3.11's ast.parse is not thread-safe (hypothesis calls it
            // to describe strategies; two workers failed with "AST constructor recursion
            // depth mismatch", a SystemError inside schemathesis, not an API failure).
            .args(["--max-examples", "100", "--seed", "21", "--workers", "1"])
            .args(["--request-timeout", "30"])
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .expect("schemathesis task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found answers that break /openapi.json:\n{stdout}\n{stderr}"
    );
    // It really exercised every operation the document describes (not only the open probes).
    let operations: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item");
            methods.keys().map(move |m| format!("{m} {path}"))
        })
        .collect();
    // Schemathesis leaves out the operation that serves the document it was loaded from
    // (`--include-path /openapi.json` alone reports "1 selected / 18 total", a full run
    // "17 selected / 17 total"); every other one must have been tested.
    let count = operations.len() - 1;
    assert!(count >= 17, "{operations:?} documented");
    assert!(
        stdout.contains(&format!("Selected: {count}/{count}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Tested: {count}\n")),
        "schemathesis did not test all {count} operations {operations:?}:\n{stdout}"
    );
    node.stop().await;
}
