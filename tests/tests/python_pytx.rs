//! The Redline exchange for python-threatexchange (`client/python/extension`, package
//! `redline_pytx`) against a live TLS node that wants bearer tokens, driven the way pytx
//! drives an exchange: the API class loaded from the extension's `TX_MANIFEST`, built with
//! `for_collab` (token from the credential's environment variable), its `fetch_iter` deltas
//! merged into pytx's own on-disk store (`CliSimpleState`, what `threatexchange fetch` uses)
//! and read back with `get_for_signal_type` in a new process:
//!
//! - pdq and video_md5 entries arrive under pytx's `PdqSignal`/`VideoMD5Signal` with the
//!   origin's labels, legal basis and case reference; an image `md5` (no pytx type) is
//!   skipped and counted; one delta per verified prefix, each checkpointed at its
//!   `(origin, size, root)`, never stale;
//! - after `redline retract`, a fetch resumed from the stored checkpoint yields only the
//!   retraction, as a delete (`None`), and the store drops the entry;
//! - a verifier key with the origin's name that is not the origin's key is refused: the fetch
//!   raises `VerificationError` and neither a fresh store nor a filled one takes anything;
//! - the pytx CLI itself (`threatexchange config extensions add redline_pytx`, a `redline`
//!   collab, `threatexchange fetch`, `threatexchange match`) matches a listed pdq with its
//!   label and not the retracted one.
//!
//! The python is `$REDLINE_PYTX_PYTHON`: a virtualenv with `pip install ./client/python`,
//! the pinned `threatexchange` and `./client/python/extension` (`.ci/run` makes it). Without
//! it the test says so and passes, unless `$REDLINE_REQUIRE_PYTX` is set, when it fails.

#[path = "cli_support.rs"]
mod support;

use redline_e2e::tls::Ca;
use redline_e2e::{temp_dir, token_config as token, TestNode};
use redline_server::config::{Config, Scope, TlsConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::run;

const ADMIN: &str = "pytx-admin-token";
const PLATFORM: &str = "pytx-platform-token";

/// The fetch script: one `threatexchange fetch` pass of the Redline collab, as JSON.
const FETCH: &str = include_str!("../../client/python/extension/tests/pytx_fetch.py");

/// The virtualenv's python with pytx and `redline_pytx`, or `None` when the test is skipped.
fn pytx_python() -> Option<PathBuf> {
    match std::env::var_os("REDLINE_PYTX_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("REDLINE_REQUIRE_PYTX").is_none(),
                "REDLINE_REQUIRE_PYTX is set but REDLINE_PYTX_PYTHON (a python with \
                 `pip install ./client/python threatexchange ./client/python/extension`) is not"
            );
            eprintln!(
                "SKIPPED: set REDLINE_PYTX_PYTHON to a virtualenv's python with ./client/python, \
                 threatexchange and ./client/python/extension installed (.ci/run does)"
            );
            None
        }
    }
}

/// Runs the fetch script with `args`; its stdout as JSON.
fn fetch(python: &Path, dir: &Path, args: &[&str]) -> Value {
    let file = dir.join("pytx_fetch.py");
    std::fs::write(&file, FETCH).unwrap();
    let out = Command::new(python)
        .arg(&file)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytx_fetches_the_verified_list_applies_retractions_and_refuses_a_wrong_key() {
    let Some(python) = pytx_python() else {
        return;
    };
    let (certs, dir, work, state, fresh) =
        (temp_dir(), temp_dir(), temp_dir(), temp_dir(), temp_dir());
    let ca = Ca::new(certs.path(), "hotline-ca");
    let (cert, tls_key) = ca.sign("hotline-a", &["localhost"]);
    let origin = "hotline-a.example";
    let mut config = Config::new(origin, dir.path());
    config.tls = Some(TlsConfig {
        cert,
        key: tls_key,
        client_ca: None,
    });
    config.tokens = vec![
        token(
            "hotline",
            ADMIN,
            vec![Scope::Submit, Scope::Match, Scope::Audit],
        ),
        token("hma", PLATFORM, vec![Scope::Match, Scope::Audit]),
    ];
    let node = TestNode::start(config).await;
    let url = format!("https://localhost:{}", node.addr.port());
    let ca_pem = ca.file("hotline-ca", "ca.pem");
    let ca_s = ca_pem.to_str().unwrap();
    let key = node.node.public_key().verifier_key();
    let forger = temp_dir();
    let other_key = redline_e2e::identity(forger.path(), origin).verifier_key();
    let cli = |args: &[&str]| {
        let mut all = vec!["--node", url.as_str(), "--ca", ca_s, "--token", ADMIN];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let submit = |args: &[&str]| {
        let args = cli(args);
        async move {
            run(&args.iter().map(String::as_str).collect::<Vec<_>>())
                .await
                .ok();
        }
    };

    // Log: 0 pdq (labelled), 1 pdq, 2 image md5, 3 video_md5 (via a pytx CSV import).
    let (one, two, three) = ("12".repeat(32), "34".repeat(32), "56".repeat(32));
    let (md5, video_md5) = ("ab".repeat(16), "cd".repeat(16));
    submit(&[
        "submit",
        "--pdq",
        &one,
        "--label",
        "ncii",
        "--legal-basis",
        "consent withdrawn",
        "--case-ref",
        "C-17",
    ])
    .await;
    submit(&["submit", "--pdq", &two]).await;
    submit(&["submit", "--md5", &md5]).await;
    let csv = work.path().join("video.csv");
    let header = "signal_type,signal_str,collab,category,tags";
    let row = format!("video_md5,{video_md5},c,POSITIVE_CLASS,ncii");
    std::fs::write(&csv, format!("{header}\n{row}\n")).unwrap();
    let csv_s = csv.to_str().unwrap();
    submit(&["import", "--format", "threatexchange-csv", csv_s]).await;
    let (state_s, fresh_s) = (
        state.path().to_str().unwrap(),
        fresh.path().to_str().unwrap(),
    );
    let args = |key: &str, dir: &str| -> Vec<String> {
        [url.as_str(), PLATFORM, ca_s, origin, key, dir, "2"]
            .map(str::to_owned)
            .to_vec()
    };
    let go = |key: &str, dir: &str| {
        let a = args(key, dir);
        fetch(
            &python,
            work.path(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    // First fetch: two deltas of two leaves each, at verified prefixes 2 and 4.
    let v = go(&key, state_s);
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(
        (&v["api"], &v["collab_api"]),
        (&json!("redline"), &json!("redline"))
    );
    assert_eq!(v["resumed_from"], Value::Null, "a first fetch: {v}");
    let deltas = v["deltas"].as_array().unwrap();
    let sizes: Vec<_> = deltas.iter().map(|d| d["checkpoint"][1].clone()).collect();
    assert_eq!(
        sizes,
        vec![json!(2), json!(4)],
        "one delta per verified prefix: {v}"
    );
    assert_eq!(deltas[0]["adds"], json!([0, 1]));
    assert_eq!(deltas[1]["adds"], json!([3]), "the md5 (2) is skipped: {v}");
    assert!(deltas
        .iter()
        .all(|d| d["stale"] == false && d["checkpoint"][0] == origin));
    let head = hex::encode(node.head_of(origin).1);
    assert_eq!(v["stored_checkpoint"], json!([origin, 4, head]), "{v}");
    assert_eq!(v["skipped"], json!({"md5": 1}), "{v}");
    let stored = v["stored"].as_object().unwrap();
    let mut keys: Vec<_> = stored.keys().cloned().collect();
    keys.sort();
    let (k_one, k_two, k_video) = (
        format!("pdq:{one}"),
        format!("pdq:{two}"),
        format!("video_md5:{video_md5}"),
    );
    let mut want = vec![k_one.clone(), k_two.clone(), k_video.clone()];
    want.sort();
    assert_eq!(keys, want, "{v}");
    assert_eq!(
        stored[&k_one],
        json!({"entries": [{"index": 0, "origin": origin, "labels": ["ncii"],
            "legal_basis": "consent withdrawn", "case_ref": "C-17", "created": true}],
            "opinion": "POSITIVE_CLASS", "tags": ["ncii"]})
    );
    assert_eq!(stored[&k_two]["entries"][0]["index"], 1);
    assert_eq!(stored[&k_two]["entries"][0]["labels"], json!([]));
    assert_eq!(stored[&k_video]["entries"][0]["index"], 3);
    assert_eq!(
        stored[&k_video]["entries"][0]["labels"],
        json!(["ncii"]),
        "{v}"
    );

    // A retraction, then a fetch resumed (new process) from the stored checkpoint.
    submit(&["retract", "1", "--reason", "false positive"]).await;
    let v = go(&key, state_s);
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["resumed_from"], json!([origin, 4, head]), "{v}");
    assert_eq!(v["stale"], false);
    let head = hex::encode(node.head_of(origin).1);
    assert_eq!(
        v["deltas"],
        json!([{"checkpoint": [origin, 5, head], "stale": false, "adds": [], "deletes": [1]}]),
        "only the retraction, as a delete, nothing refetched: {v}"
    );
    assert_eq!(
        v["skipped"],
        json!({}),
        "the md5 was not fetched again: {v}"
    );
    assert_eq!(v["stored_checkpoint"], json!([origin, 5, head]));
    let mut keys: Vec<_> = v["stored"].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    let mut want = vec![k_one.clone(), k_video.clone()];
    want.sort();
    assert_eq!(keys, want, "the retracted pdq is gone: {v}");

    // A new entry, then the wrong key: refused, neither store takes anything.
    submit(&["submit", "--pdq", &three]).await;
    let v = go(&other_key, fresh_s);
    assert_eq!(v["error"], "VerificationError", "{v}");
    assert_eq!(v["deltas"], json!([]));
    assert_eq!(v["stored_checkpoint"], Value::Null, "{v}");
    assert_eq!(v["state_file"], false, "{v}");
    let v = go(&other_key, state_s);
    assert_eq!(v["error"], "VerificationError", "{v}");
    assert_eq!(v["deltas"], json!([]));
    assert_eq!(v["stored_checkpoint"], json!([origin, 5, head]), "{v}");
    assert!(v["stored"].get(format!("pdq:{three}")).is_none(), "{v}");
    // The right key takes it: the refusal above was the key's, not an empty log's.
    let v = go(&key, state_s);
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["deltas"][0]["adds"], json!([5]), "{v}");
    assert_eq!(
        v["stored"][format!("pdq:{three}")]["entries"][0]["index"],
        5
    );

    // The same collab through pytx's own CLI, as an operator adds it: the extension, a
    // `redline` collab, `threatexchange fetch`, then `threatexchange match`.
    let home = temp_dir();
    let tx = |args: &[&str]| {
        let out = Command::new(&python)
            .args(["-m", "threatexchange.cli.main"])
            .args(args)
            .env("HOME", home.path())
            .env("TX_REDLINE_TOKEN", PLATFORM)
            .output()
            .expect("python runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "threatexchange {args:?}: {text}");
        text
    };
    tx(&["config", "extensions", "add", "redline_pytx"]);
    tx(&[
        "config",
        "collab",
        "edit",
        "redline",
        "--create",
        "--node-url",
        &url,
        "--origin",
        origin,
        "--verifier-key",
        &key,
        "--ca-file",
        ca_s,
        "hotline-a",
    ]);
    let fetched = tx(&["fetch"]);
    assert!(
        fetched.contains("index for pdq with 2 signals")
            && fetched.contains("index for video_md5 with 1 signals"),
        "the active pdqs (0 and 5, not the retracted 1) and the video_md5: {fetched}"
    );
    let m = tx(&["match", "-S", "pdq", "-H", "photo", "--", &one]);
    assert_eq!(m.trim(), "pdq 0 (hotline-a) POSITIVE_CLASS ncii", "{m}");
    let m = tx(&["match", "-S", "pdq", "-H", "photo", "--", &two]);
    assert_eq!(m.trim(), "", "the retracted pdq matches nothing: {m}");
    node.stop().await;
}
