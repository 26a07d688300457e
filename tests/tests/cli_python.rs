//! The Python example a platform copies (`client/examples/platform_match.py`) works: it
//! generates stubs from the repository's .proto files and matches a hash and an image against a
//! live node. Needs `python3 -m venv` and `pip install grpcio grpcio-tools`; the venv is cached
//! under the cargo target dir, and the tests print why they skip when it cannot be made.

#[path = "cli_support.rs"]
mod support;

use rand::SeedableRng;
use redline_e2e::{temp_dir, TestNode};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::{random_pdq, run, write_image};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../client/examples/platform_match.py")
}

/// The venv's python, made once (and kept across runs), or why it could not be made.
fn venv_python() -> &'static Result<PathBuf, String> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redline-py-venv");
        let py = dir.join("bin").join("python");
        let ready = |py: &Path| {
            Command::new(py)
                .args(["-c", "import grpc, grpc_tools.protoc"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if ready(&py) {
            return Ok(py);
        }
        let out = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("python3 not runnable: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "python3 -m venv failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "grpcio", "grpcio-tools"])
            .output()
            .map_err(|e| format!("pip not runnable: {e}"))?;
        if !out.status.success() || !ready(&py) {
            return Err(format!(
                "pip install grpcio grpcio-tools failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(py)
    })
}

fn python() -> Option<PathBuf> {
    match venv_python() {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            println!("SKIP: the Python example needs a venv with grpcio: {why}");
            None
        }
    }
}

#[test]
fn python_example_generates_stubs_from_the_protos() {
    let Some(py) = python() else { return };
    let out = Command::new(&py)
        .arg(example())
        .arg("--self-check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stubs ok");

    // An unreachable node is one line saying what to check, exit code 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(&py)
        .arg(example())
        .args([
            "--node",
            &format!("127.0.0.1:{port}"),
            "--pdq",
            &"ab".repeat(32),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot reach the node"), "{err}");
    assert!(!err.contains("Traceback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_matches_a_hash_and_an_image() {
    let Some(py) = tokio::task::spawn_blocking(python).await.unwrap() else {
        return;
    };
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let listed = random_pdq(&mut rng);
    let img = dir.path().join("upload.png");
    write_image(&img, 4);
    run(&[
        "submit",
        img.to_str().unwrap(),
        "--pdq",
        &listed,
        "--label",
        "ncii",
        "--node",
        &node.url,
    ])
    .await
    .ok();

    let args = vec![
        example().to_string_lossy().into_owned(),
        "--node".into(),
        node.url.clone(),
        "--pdq".into(),
        listed.clone(),
        "--image".into(),
        img.to_string_lossy().into_owned(),
        "--token".into(),
        "platform-token".into(),
        "--json".into(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(py).args(args).output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v.as_array().unwrap();
    // The hash: exact match at index 0 (`redline submit` sends --pdq values before files).
    assert_eq!(results[0]["query"]["value"], listed.as_str());
    assert_eq!(results[0]["matches"][0]["origin"], "hotline-a.example");
    assert_eq!(results[0]["matches"][0]["index"], 0);
    assert_eq!(results[0]["matches"][0]["distance"], 0);
    // The image: hashed by the node; its PDQ matches the locally hashed one at index 1.
    assert!(
        results[1..].iter().any(|r| r["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["index"] == 1 && m["distance"] == 0)),
        "{v}"
    );
    node.stop().await;
}

/// The example sends a video: a re-encoded copy of a listed reference video matches the
/// listed vPDQ entry with at least 80 % of its frames. Skips without ffmpeg or `../shared`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_matches_a_video() {
    let Some(py) = tokio::task::spawn_blocking(python).await.unwrap() else {
        return;
    };
    let Some(original) = redline_e2e::shared_dir()
        .map(|d| d.join("vpdq-reference/videos/pattern-hd-no-bar.mp4"))
        .filter(|p| p.exists())
    else {
        println!("SKIP: ../shared/vpdq-reference is absent");
        return;
    };
    let dir = temp_dir();
    let copy = dir.path().join("copy.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&original)
        .args([
            "-vf",
            "scale=360:640",
            "-c:v",
            "libx264",
            "-crf",
            "32",
            "-an",
        ])
        .arg(&copy)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        println!("SKIP: ffmpeg cannot make a copy");
        return;
    }
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    run(&[
        "submit",
        original.to_str().unwrap(),
        "--label",
        "ncii",
        "--node",
        &node.url,
    ])
    .await
    .ok();
    let args = vec![
        example().to_string_lossy().into_owned(),
        "--node".into(),
        node.url.clone(),
        "--video".into(),
        copy.to_string_lossy().into_owned(),
        "--json".into(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(py).args(args).output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vpdq = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["query"]["signal_type"] == "vpdq")
        .expect("a vpdq query");
    let m = &vpdq["matches"][0];
    assert_eq!(m["origin"], "hotline-a.example", "{v}");
    assert_eq!(m["index"], 0, "the CLI lists the vPDQ part first");
    assert!(m["video"]["query_percent"].as_f64().unwrap() >= 80.0, "{v}");
    node.stop().await;
}
