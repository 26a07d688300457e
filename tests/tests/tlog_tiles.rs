//! Redline logs as C2SP tlog-tiles, read by someone else's implementation: a Go program built
//! on Go's own `golang.org/x/mod/sumdb/tlog` and `note` (`tests/go/tlogverify`, built here
//! against Debian's `golang-golang-x-mod-dev`) verifies the signed checkpoint, every tile
//! against its root, an inclusion proof of every entry and a consistency proof from an older
//! checkpoint — from a live node, from a follower serving the log it replicated, and from the
//! static tree the node publishes, served by a plain static web server (Python's
//! `http.server`). A tile altered on that server is refused.
//!
//! Go is found at `$REDLINE_GO` or on `PATH`, its packages at `$REDLINE_GOPATH` (default
//! Debian's `/usr/share/gocode`). `.ci/run` installs both and sets `REDLINE_REQUIRE_GO=1`,
//! which turns their absence into a failure; elsewhere the Go checks are skipped, saying so,
//! and the node's side (paths, scopes, headers, the published tree) is still checked.

use base64::prelude::{Engine, BASE64_STANDARD};
use redline_e2e::go::build_go_verifier;
use redline_e2e::{eventually, federated_config, temp_dir, trust_of, TestNode};
use redline_server::config::{Config, Policy, Scope, TokenConfig};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ORIGIN: &str = "hotline.example/list";
const AUDIT_TOKEN: &str = "tiles-audit-token";
const MATCH_TOKEN: &str = "tiles-match-token";
const PEER_TOKEN: &str = "tiles-peer-token";

fn token(name: &str, secret: &str, scope: Scope) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: redline_server::grpc::auth::hash_token(secret),
        scopes: vec![scope],
        rate_per_sec: None,
        burst: None,
    }
}

/// What `tlogverify` printed, or its error.
fn go_verify(
    bin: &Path,
    prefix: &str,
    vkey: &str,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let out = Command::new(bin)
        .args(["-url", prefix, "-vkey", vkey])
        .args(args)
        .output()
        .expect("tlogverify runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("tlogverify prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `GET url` with an optional bearer token: status, response headers (lower-cased), body.
fn get(url: &str, bearer: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-D",
        "/dev/stderr",
        "-o",
        "-",
        url,
    ]);
    if let Some(t) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("curl runs");
    assert!(out.status.success(), "curl {url}: {out:?}");
    let headers = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, headers, out.stdout)
}

async fn get_async(url: String, bearer: Option<&'static str>) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || get(&url, bearer))
        .await
        .expect("curl task")
}

/// `python3 -m http.server` serving `dir` on a loopback port: the plain static web server a
/// hotline would put its published tree on (or a CDN in front of it).
struct StaticServer {
    child: Child,
    url: String,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        // Owned from here: dropping it (also by the panic below) stops the server.
        let server = StaticServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("http.server did not listen on {port}");
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("published file");
    bytes[40] ^= 0x01;
    std::fs::write(path, bytes).expect("altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_verifies_the_tiles_of_a_node_a_follower_and_a_static_mirror() {
    let dir = temp_dir();
    let published = dir.path().join("published");
    let mut config = Config::new(ORIGIN, &dir.path().join("hotline"));
    config.tokens = vec![
        token("auditor", AUDIT_TOKEN, Scope::Audit),
        token("platform", MATCH_TOKEN, Scope::Match),
        token("peer", PEER_TOKEN, Scope::Federate),
    ];
    config.tiles.public = true;
    config.tiles.publish_dir = Some(published.clone());
    let hotline = TestNode::start(config).await;
    let vkey = hotline.node.public_key().verifier_key();

    // Two levels of tiles: 701 entries are two full level-0 tiles and one of 189, and a
    // level-1 tile of 2; a retraction is an entry like any other.
    let hashes: Vec<[u8; 32]> = (0..700u32)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            h[31] = 0x5a;
            h
        })
        .collect();
    redline_e2e::submit_pdq(&hotline.node, &hashes[..300]).await;
    let (old_size, old_root) = hotline.head_of(ORIGIN);
    assert_eq!(old_size, 300);
    redline_e2e::submit_pdq(&hotline.node, &hashes[300..]).await;
    hotline
        .node
        .retract(7, "false positive")
        .await
        .expect("retract");
    let (size, root) = hotline.head_of(ORIGIN);
    assert_eq!(size, 701);

    // The node's side, whatever the Go toolchain: media types, cache headers, scopes, 404s.
    let prefix = format!("{}/tlog/{ORIGIN}/", hotline.url);
    let (code, headers, note) = get_async(format!("{prefix}checkpoint"), None).await;
    assert_eq!(code, 200);
    assert!(
        headers.contains("content-type: text/plain; charset=utf-8"),
        "{headers}"
    );
    assert!(headers.contains("cache-control: max-age=2"), "{headers}");
    let verified = hotline
        .node
        .public_key()
        .verify(&note)
        .expect("the served note verifies");
    assert_eq!((verified.size, verified.root.0), (size, root));
    let (code, headers, tile) = get_async(format!("{prefix}tile/0/001"), None).await;
    assert_eq!(code, 200);
    assert_eq!(tile.len(), 8192);
    assert!(
        headers.contains("cache-control: max-age=31536000, immutable"),
        "{headers}"
    );
    assert!(
        headers.contains("content-type: application/octet-stream"),
        "{headers}"
    );
    let (code, _, partial) = get_async(format!("{prefix}tile/0/002.p/189"), None).await;
    assert_eq!((code, partial.len()), (200, 189 * 32));
    // Entry bundles need `audit` (or `federate`) even with public tiles.
    let entries = format!("{prefix}tile/entries/000");
    assert_eq!(get_async(entries.clone(), None).await.0, 401);
    assert_eq!(get_async(entries.clone(), Some(MATCH_TOKEN)).await.0, 403);
    let (code, _, bundle) = get_async(entries, Some(AUDIT_TOKEN)).await;
    assert_eq!(code, 200);
    let leaves = redline_proto::tiles::split_entries(&bundle, 256).expect("a full bundle");
    let id = hotline.node.log(ORIGIN).expect("own log").state().id;
    let first = hotline
        .node
        .logs()
        .leaf(id, 0)
        .expect("read")
        .expect("leaf 0");
    assert_eq!(leaves[0], &first[..]);
    // Not in the tree (yet), not a tile path, not an origin held: 404, nothing read.
    for missing in [
        format!("{prefix}tile/0/002.p/190"),
        format!("{prefix}tile/0/003"),
        format!("{prefix}tile/2/000.p/1"),
        format!("{prefix}tile/0/2"),
        format!("{}/tlog/nobody.example/checkpoint", hotline.url),
    ] {
        let (code, _, body) = get_async(missing.clone(), Some(AUDIT_TOKEN)).await;
        assert_eq!(code, 404, "{missing}: {}", String::from_utf8_lossy(&body));
    }

    // A platform follower holds the hotline's log and serves it as tiles too, behind its own
    // tokens (tiles not public there).
    let mut follower_config = federated_config(
        "platform.example",
        &dir.path().join("platform"),
        &[&hotline.url],
        vec![trust_of(&hotline, Policy::Accept)],
        50,
    );
    follower_config.peers[0].token = Some(redline_server::config::Secret(PEER_TOKEN.into()));
    follower_config.tokens = vec![token("auditor", AUDIT_TOKEN, Scope::Audit)];
    let follower = TestNode::start(follower_config).await;
    eventually(
        Duration::from_secs(30),
        "the follower holds 701 entries",
        || {
            let n = follower.size_of(ORIGIN);
            async move { n == size }
        },
    )
    .await;
    let follower_prefix = format!("{}/tlog/{ORIGIN}/", follower.url);
    assert_eq!(
        get_async(format!("{follower_prefix}checkpoint"), None)
            .await
            .0,
        401
    );

    // The tree the hotline publishes for static hosting reaches the same size.
    let published_checkpoint = published.join(ORIGIN).join("checkpoint");
    eventually(
        Duration::from_secs(30),
        "the published tree reaches 701",
        || {
            let note = std::fs::read(&published_checkpoint).ok();
            async move {
                note.and_then(|n| redline_proto::checkpoint::unverified_size(&n).ok()) == Some(size)
            }
        },
    )
    .await;
    let mirror = StaticServer::start(&published);
    let mirror_prefix = format!("{}/{ORIGIN}/", mirror.url);

    let scratch = temp_dir();
    let Some(go) = build_go_verifier(scratch.path()) else {
        hotline.stop().await;
        follower.stop().await;
        return;
    };
    let old_root = BASE64_STANDARD.encode(old_root);
    let consistency = ["-old-size", "300", "-old-root", &old_root];
    let expect_whole_log = |what: &str, r: Result<serde_json::Value, String>| {
        let r = r.unwrap_or_else(|e| panic!("Go refused {what}: {e}"));
        assert_eq!(r["origin"], ORIGIN, "{what}: {r}");
        assert_eq!(r["size"], size, "{what}: {r}");
        assert_eq!(r["root"], BASE64_STANDARD.encode(root), "{what}: {r}");
        assert_eq!(r["entries_verified"], size, "{what}: {r}");
        assert_eq!(r["consistency_from"], 300, "{what}: {r}");
        r
    };
    let live = {
        let mut args = vec!["-token", AUDIT_TOKEN];
        args.extend(consistency);
        go_verify(&go, &prefix, &vkey, &args)
    };
    let live = expect_whole_log("the live node", live);
    assert_eq!(
        live["cache_control_of_tiles"],
        "max-age=31536000, immutable"
    );
    let relayed = {
        let mut args = vec!["-token", AUDIT_TOKEN];
        args.extend(consistency);
        go_verify(&go, &follower_prefix, &vkey, &args)
    };
    expect_whole_log("the follower", relayed);
    expect_whole_log(
        "the static mirror",
        go_verify(&go, &mirror_prefix, &vkey, &consistency),
    );
    // Without a token, the public checkpoint and hash tiles verify, the entries are refused.
    let tree_only = go_verify(&go, &prefix, &vkey, &["-entries=false"]).expect("public tiles");
    assert_eq!(tree_only["size"], size);
    let err = go_verify(&go, &prefix, &vkey, &[]).expect_err("entries need a token");
    assert!(err.contains("HTTP 401"), "{err}");
    // A claimed older tree that is not a prefix of the log is refused.
    let forged_old = BASE64_STANDARD.encode([7u8; 32]);
    let err = go_verify(
        &go,
        &prefix,
        &vkey,
        &[
            "-entries=false",
            "-old-size",
            "300",
            "-old-root",
            &forged_old,
        ],
    )
    .expect_err("a forged old root");
    assert!(err.contains("does not extend"), "{err}");
    // A key that is not the origin's is refused.
    let other = redline_proto::checkpoint::OriginSigner::generate(ORIGIN).expect("key");
    let err = go_verify(
        &go,
        &mirror_prefix,
        &other.public().verifier_key(),
        &["-entries=false"],
    )
    .expect_err("another key");
    assert!(err.contains("checkpoint signature"), "{err}");

    // The published tree continues across a restart of the hotline: one more entry adds only
    // the tiles that changed, and Go still verifies the whole mirror.
    let config = hotline.stop().await;
    let hotline = TestNode::start_on(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port"),
        config,
    )
    .await;
    let full_tile = published.join(ORIGIN).join("tile/0/000");
    let full_before = std::fs::metadata(&full_tile)
        .expect("full tile")
        .modified()
        .ok();
    redline_e2e::submit_pdq(&hotline.node, &[[0xee; 32]]).await;
    eventually(
        Duration::from_secs(30),
        "the published tree reaches 702",
        || {
            let note = std::fs::read(&published_checkpoint).ok();
            async move {
                note.and_then(|n| redline_proto::checkpoint::unverified_size(&n).ok()) == Some(702)
            }
        },
    )
    .await;
    assert_eq!(
        std::fs::metadata(&full_tile)
            .expect("full tile")
            .modified()
            .ok(),
        full_before,
        "a full tile was written again"
    );
    let grown = go_verify(&go, &mirror_prefix, &vkey, &consistency).expect("the grown mirror");
    assert_eq!(grown["size"], 702);

    // A tile or an entry bundle altered on the static server is refused.
    let entry_bundle = published.join(ORIGIN).join("tile/entries/001");
    let original = std::fs::read(&entry_bundle).expect("bundle");
    flip_a_byte(&entry_bundle);
    let err = go_verify(&go, &mirror_prefix, &vkey, &[]).expect_err("an altered entry");
    assert!(err.contains("is not in the tree"), "{err}");
    std::fs::write(&entry_bundle, original).expect("restored");
    // (The consistency proof from 300 reads inside level-0 tile 1, which Go checks against
    // the level-1 tile above it.)
    flip_a_byte(&published.join(ORIGIN).join("tile/0/001"));
    let mut args = vec!["-entries=false"];
    args.extend(consistency);
    let err = go_verify(&go, &mirror_prefix, &vkey, &args).expect_err("an altered tile");
    // Go's tile reader refuses a tile that does not hash to its parent, or the proof built
    // from it fails: either way the altered tree is refused.
    assert!(
        err.contains("downloaded inconsistent tile") || err.contains("does not extend"),
        "{err}"
    );

    drop(mirror);
    hotline.stop().await;
    follower.stop().await;
}
