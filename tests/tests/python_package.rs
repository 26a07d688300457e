//! The `redline` Python package (`client/python`, PyO3 bindings of the Rust core, installed
//! with `pip install ./client/python` into a virtualenv) against a live TLS node that wants
//! bearer tokens:
//!
//! - a five-line platform script hashes an image — bits and quality equal to what the
//!   `redline hash` command prints — matches it (origin, index, distance 0, labels), and
//!   verifies the origin's log against its key;
//! - `redline.pdq` gives exactly what `redline hash` prints on every image of
//!   `../shared/pdq-reference`;
//! - `log_updates` returns a later retraction as a removal, in log order, resuming from the
//!   first verification's checkpoint;
//! - refusals are typed: no token → `AuthenticationError`, a match-only token verifying a log →
//!   `PermissionDeniedError`, a key that is not the origin's → `VerificationError`, an
//!   origin the node does not hold → `NodeError`, a node whose
//!   certificate is not from the given CA → `UnreachableError`; a malformed hash →
//!   `InputError`, bytes that are no image → `HashingError`.
//!
//! The virtualenv's python is `$REDLINE_PYTHON_PACKAGE` (`.ci/run` makes it:
//! `python3 -m venv`, then `pip install ./client/python`). Without it the test says so and
//! passes, unless `$REDLINE_REQUIRE_PYTHON_PACKAGE` is set (as `.ci/run` does), when it fails.

#[path = "cli_support.rs"]
mod support;

use redline_e2e::tls::Ca;
use redline_e2e::{temp_dir, token_config as token, TestNode};
use redline_server::config::{Config, Scope, TlsConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{run, write_image};

const ADMIN: &str = "py-admin-token";
const PLATFORM: &str = "py-platform-token";
const MATCH_ONLY: &str = "py-match-only-token";

/// The virtualenv's python with `redline` installed, or `None` when the test is to be skipped.
fn package_python() -> Option<PathBuf> {
    match std::env::var_os("REDLINE_PYTHON_PACKAGE") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("REDLINE_REQUIRE_PYTHON_PACKAGE").is_none(),
                "REDLINE_REQUIRE_PYTHON_PACKAGE is set but REDLINE_PYTHON_PACKAGE (a python with \
                 `pip install ./client/python` done) is not"
            );
            eprintln!(
                "SKIPPED: set REDLINE_PYTHON_PACKAGE to a virtualenv's python in which \
                 `pip install ./client/python` ran (.ci/run does)"
            );
            None
        }
    }
}

/// Runs `script` with `python`, the arguments after it in `sys.argv`; its stdout as JSON.
fn python_json(python: &Path, dir: &Path, script: &str, args: &[&str]) -> serde_json::Value {
    let file = dir.join("script.py");
    std::fs::write(&file, script).unwrap();
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

/// The platform's whole integration: five lines after the imports and arguments.
const FIVE_LINES: &str = r#"
import json, sys, redline
url, token, ca, image, key = sys.argv[1:]
node = redline.Client(url, token=token, ca=ca)
value, quality = redline.pdq(image)
matches = node.match_image(image)
log = node.verify_origin(key)
print(json.dumps({"pdq": value, "quality": quality,
    "matches": [{"origin": m.origin, "index": m.index, "distance": m.distance, "labels": m.labels}
                for m in matches],
    "log": {"origin": log.origin, "size": log.size, "root": log.root, "adds": log.adds,
            "active": [e.value for e in log.entries], "checkpoint": list(log.checkpoint)}}))
"#;

const REFUSALS: &str = r#"
import json, sys, redline
url, platform, match_only, ca, other_ca, key, other_key, unknown_key, size, root = sys.argv[1:]
def refusal(call):
    try:
        call()
    except redline.RedlineError as e:
        return type(e).__name__
    return "accepted"
out = {
    "no_token": refusal(lambda: redline.Client(url, ca=ca).match_hash("pdq", "ab" * 32)),
    "match_only_verifies": refusal(lambda: redline.Client(url, token=match_only, ca=ca).verify_origin(key)),
    "wrong_key": refusal(lambda: redline.Client(url, token=platform, ca=ca).verify_origin(other_key)),
    "unknown_origin": refusal(lambda: redline.Client(url, token=platform, ca=ca).verify_origin(unknown_key)),
    "wrong_ca": refusal(lambda: redline.Client(url, token=platform, ca=other_ca).match_hash("pdq", "ab" * 32)),
    "bad_hash": refusal(lambda: redline.Client(url, token=platform, ca=ca).match_hash("pdq", "xyz")),
    "not_an_image": refusal(lambda: redline.pdq(b"\x00" * 4096)),
    "is_subclass": issubclass(redline.VerificationError, redline.RedlineError),
}
node = redline.Client(url, token=platform, ca=ca)
batches = node.log_updates(key, since=(int(size), root))
out["updates"] = [{"index": u.index, "kind": u.kind, "target": u.target}
                  for b in batches for u in b.updates]
out["resume"] = [batches[-1].size, batches[-1].root]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_hashes_matches_and_verifies_in_five_lines() {
    let Some(python) = package_python() else {
        return;
    };
    let (certs, dir, work) = (temp_dir(), temp_dir(), temp_dir());
    let ca = Ca::new(certs.path(), "hotline-ca");
    let other_ca = Ca::new(certs.path(), "other-ca");
    let (cert, tls_key) = ca.sign("hotline-a", &["localhost"]);
    let mut config = Config::new("hotline-a.example", dir.path());
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
        token("platform", PLATFORM, vec![Scope::Match, Scope::Audit]),
        token("match-only", MATCH_ONLY, vec![Scope::Match]),
    ];
    let node = TestNode::start(config).await;
    let url = format!("https://localhost:{}", node.addr.port());
    let ca_pem = ca.file("hotline-ca", "ca.pem");
    let other_pem = other_ca.file("other-ca", "ca.pem");
    let (ca_s, other_s) = (ca_pem.to_str().unwrap(), other_pem.to_str().unwrap());
    let key = node.node.public_key().verifier_key();
    // The same origin name under a key that is not the origin's (a forged list would be
    // signed so), and an origin the node does not hold.
    let forger = temp_dir();
    let other_key = redline_e2e::identity(forger.path(), "hotline-a.example").verifier_key();
    let unknown_key = redline_e2e::identity(work.path(), "hotline-b.example").verifier_key();
    let cli = |args: &[&str]| {
        let mut all = vec!["--node", url.as_str(), "--ca", ca_s, "--token", ADMIN];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // The hotline lists a photo and two other hashes; `redline hash` says what the photo is.
    let photo = work.path().join("photo.png");
    write_image(&photo, 7);
    let photo_s = photo.to_str().unwrap();
    let hashed = run(&["hash", photo_s, "--json"]).await.ok().json();
    let cli_pdq = &hashed[0];
    assert!(
        cli_pdq["pdq"].is_string(),
        "`redline hash --json`: {hashed}"
    );
    let args = cli(&["submit", photo_s, "--label", "ncii", "--json"]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    let (one, two) = ("12".repeat(32), "34".repeat(32));
    let args = cli(&["submit", "--pdq", &one, "--pdq", &two, "--json"]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();

    let v = python_json(
        &python,
        work.path(),
        FIVE_LINES,
        &[&url, PLATFORM, ca_s, photo_s, &key],
    );
    assert_eq!(v["pdq"], cli_pdq["pdq"], "the bits `redline hash` prints");
    assert_eq!(v["quality"], cli_pdq["quality"]);
    assert_eq!(
        v["matches"],
        serde_json::json!([{"origin": "hotline-a.example", "index": 0, "distance": 0, "labels": ["ncii"]}])
    );
    assert_eq!(v["log"]["origin"], "hotline-a.example");
    assert_eq!(v["log"]["size"], 3);
    assert_eq!(v["log"]["adds"], 3);
    assert_eq!(
        v["log"]["active"],
        serde_json::json!([cli_pdq["pdq"], one, two])
    );
    assert_eq!(
        v["log"]["root"],
        hex::encode(node.head_of("hotline-a.example").1)
    );
    let (size, root) = (
        v["log"]["checkpoint"][0].as_u64().unwrap(),
        v["log"]["checkpoint"][1].as_str().unwrap().to_owned(),
    );

    // A retraction after that verification, then the refusals and the updates since it.
    let args = cli(&["retract", "1", "--reason", "false positive"]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    let v = python_json(
        &python,
        work.path(),
        REFUSALS,
        &[
            &url,
            PLATFORM,
            MATCH_ONLY,
            ca_s,
            other_s,
            &key,
            &other_key,
            &unknown_key,
            &size.to_string(),
            &root,
        ],
    );
    assert_eq!(v["no_token"], "AuthenticationError", "{v}");
    assert_eq!(v["match_only_verifies"], "PermissionDeniedError", "{v}");
    assert_eq!(v["wrong_key"], "VerificationError", "{v}");
    assert_eq!(v["unknown_origin"], "NodeError", "{v}");
    assert_eq!(v["wrong_ca"], "UnreachableError", "{v}");
    assert_eq!(v["bad_hash"], "InputError", "{v}");
    assert_eq!(v["not_an_image"], "HashingError", "{v}");
    assert_eq!(v["is_subclass"], true);
    let updates = v["updates"].as_array().unwrap();
    assert_eq!(
        updates.len(),
        1,
        "only the leaf after the resume point: {v}"
    );
    assert_eq!(updates[0]["index"], 3);
    assert_eq!(updates[0]["kind"], "retract");
    assert_eq!(updates[0]["target"], 1);
    assert_eq!(v["resume"][0], 4);
    node.stop().await;
}

/// `redline.pdq` on Meta's reference images: exactly the hash and quality `redline hash`
/// prints for each (one implementation; how close both are to the reference C++ is
/// redline-hashing's `tests/reference.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdq_equals_redline_hash_on_the_reference_images() {
    let Some(python) = package_python() else {
        return;
    };
    let Some(shared) = redline_e2e::shared_dir() else {
        eprintln!("SKIPPED: ../shared is not here");
        return;
    };
    let images = shared.join("pdq-reference/images");
    let mut files: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{files:?}");
    let mut args = vec!["hash", "--json"];
    args.extend(files.iter().map(String::as_str));
    let cli = run(&args).await.ok().json();
    let work = temp_dir();
    let py = python_json(
        &python,
        work.path(),
        r#"
import json, sys, redline
print(json.dumps([dict(zip(("pdq", "quality"), redline.pdq(f)), file=f) for f in sys.argv[1:]]))
"#,
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(py.as_array().unwrap().len(), files.len());
    for (p, c) in py.as_array().unwrap().iter().zip(cli.as_array().unwrap()) {
        assert_eq!(p["file"], c["file"]);
        assert_eq!(
            (&p["pdq"], &p["quality"]),
            (&c["pdq"], &c["quality"]),
            "{}",
            p["file"]
        );
    }
}
