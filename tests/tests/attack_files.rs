//! Attacks on the node's files, against the real `redline-node` binary (a child process) on a
//! real data dir. What is tried, and the bound that holds:
//!
//! - a stale `identity.key.tmp` left world-readable (0666) or planted as a symbolic link to a
//!   file outside the data dir: the node creates its key anyway, the key ends up mode 0600 in
//!   a regular file, and nothing is written through the link (the tmp is created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, after removing the stale one);
//! - `identity.key` replaced by a symbolic link (to a valid key), or made group-readable: the
//!   node refuses to start (non-zero exit) with an error naming the problem;
//! - the key deleted next to a log it signed: the node refuses to start, says to restore the
//!   key from backup or start a new origin, and creates no key; with the key restored it
//!   serves the same log under the same key;
//! - a fresh data dir: created 0700, and its store directory too.

#[path = "ops_support.rs"]
mod ops_support;

use ops_support::node_cmd;
use redline_e2e::adversary::{head, seed_catalog};
use redline_e2e::crash::{ChildConfig, NodeProcess};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const ORIGIN: &str = "files.example";

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn child_config(data_dir: &Path) -> ChildConfig {
    ChildConfig {
        origin: ORIGIN.into(),
        data_dir: data_dir.to_owned(),
        peers: vec![],
        trust: vec![],
        poll_interval_ms: 1000,
    }
}

/// Starts the node on `data_dir` and waits until it serves.
async fn serve(dir: &Path, data_dir: &Path) -> (NodeProcess, String) {
    let config = dir.join("node.toml");
    child_config(data_dir).write(&config);
    tokio::task::spawn_blocking(redline_e2e::node_bin)
        .await
        .unwrap();
    let mut node = NodeProcess::spawn(&config, &dir.join("node.log"));
    let url = node.serving(Duration::from_secs(60)).await;
    (node, url)
}

/// Runs the node on `data_dir`, expecting it to refuse to start: its exit status and output.
fn refused(data_dir: &Path) -> Output {
    let started = Instant::now();
    let out = node_cmd()
        .args(["--origin", ORIGIN, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run redline-node");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refusing took {:?}",
        started.elapsed()
    );
    assert!(
        !out.status.success(),
        "the node started (status {:?}); stdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it served before refusing"
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn key_of(data_dir: &Path) -> PathBuf {
    data_dir.join("identity.key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_world_readable_or_linked_tmp_never_holds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // World-readable stale tmp, as a crash of the old code (or another user) leaves it.
    let data = dir.path().join("a");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    let tmp = data.join("identity.key.tmp");
    std::fs::write(&tmp, "stale half-written key").unwrap();
    chmod(&tmp, 0o666);
    let (node, _) = serve(dir.path(), &data).await;
    drop(node);
    assert_eq!(mode(&key_of(&data)), 0o600, "the key is private");
    assert!(!tmp.exists(), "the stale tmp is gone");
    let text = std::fs::read_to_string(key_of(&data)).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+files.example+"), "{text}");

    // A tmp planted as a link to a file outside the data dir: the key is not written there.
    let data = dir.path().join("b");
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o700);
    let outside = dir.path().join("attacker-readable");
    std::fs::write(&outside, "").unwrap();
    chmod(&outside, 0o644);
    std::os::unix::fs::symlink(&outside, data.join("identity.key.tmp")).unwrap();
    let (node, _) = serve(dir.path(), &data).await;
    drop(node);
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"",
        "nothing written through the link"
    );
    let key = key_of(&data);
    assert!(!std::fs::symlink_metadata(&key)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&key), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_or_loose_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let (node, _) = serve(dir.path(), &real).await;
    drop(node);

    // identity.key as a symbolic link to a valid key (0600, ours): refused all the same.
    let linked = dir.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    chmod(&linked, 0o700);
    std::os::unix::fs::symlink(key_of(&real), key_of(&linked)).unwrap();
    let out = refused(&linked);
    let err = stderr(&out);
    assert!(err.contains("is a symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(key_of(&linked))
        .unwrap()
        .file_type()
        .is_symlink());

    // The real key made group-readable: refused, saying what to do.
    chmod(&key_of(&real), 0o640);
    let out = refused(&real);
    let err = stderr(&out);
    assert!(
        err.contains("mode 0640") && err.contains("chmod 600"),
        "{err}"
    );
    assert_eq!(mode(&key_of(&real)), 0o640, "left as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_key_beside_its_log_is_refused_until_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (node, url) = serve(dir.path(), &data).await;
    seed_catalog(&url, 25, 7).await;
    let (size, root) = head(&url, ORIGIN).await;
    assert_eq!(size, 25);
    // SIGKILL: every commit was flushed before it was acknowledged.
    node.kill();

    let backup = dir.path().join("identity.key.backup");
    std::fs::rename(key_of(&data), &backup).unwrap();
    let out = refused(&data);
    let err = stderr(&out);
    for what in [
        "identity.key is missing",
        "files.example",
        "size 25",
        "Restore identity.key from your backup",
        "start a new origin",
    ] {
        assert!(err.contains(what), "{what:?} not in:\n{err}");
    }
    assert!(!key_of(&data).exists(), "no new key was made");

    // Restored: the same log, under the same key, goes on.
    std::fs::rename(&backup, key_of(&data)).unwrap();
    let (node, url) = serve(dir.path(), &data).await;
    assert_eq!(head(&url, ORIGIN).await, (size, root));
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_dir_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new/data");
    let (node, _) = serve(dir.path(), &data).await;
    drop(node);
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("db")), 0o700, "store dir");
    assert_eq!(mode(&key_of(&data)), 0o600, "key");
}
