//! `redline audit` end to end: a clean node passes; a node whose sled store was altered on disk
//! between two audits fails, naming the origin and the index; origins without a key fail the
//! audit unless allowed; dumps written with --export verify offline and catch tampering too.

#[path = "cli_support.rs"]
mod support;

use rand::SeedableRng;
use redline_e2e::{temp_dir, TestNode};
use support::{random_pdq, run};

/// Opens a stopped node's sled store and flips one bit of `hash` inside the stored leaf bytes
/// of `origin`, keeping the entry well-formed: only the Merkle root can tell. Leaves live in the
/// `log` tree under keys `E` + origin id (u32 BE) + position (see server/src/store/keys.rs);
/// the search by content works whether a value holds one leaf or a bundle of them.
fn tamper_leaf(data_dir: &std::path::Path, origin: &str, hash: &[u8]) {
    let db = sled::open(data_dir.join("db")).expect("open the stopped node's sled db");
    let log = db.open_tree("log").unwrap();
    let id = log
        .get([b"N".as_slice(), origin.as_bytes()].concat())
        .unwrap()
        .expect("origin id");
    let prefix = [b"E".as_slice(), &id].concat();
    let mut hits = 0;
    for item in log.scan_prefix(&prefix) {
        let (key, value) = item.unwrap();
        let mut value = value.to_vec();
        if let Some(at) = value.windows(hash.len()).position(|w| w == hash) {
            value[at] ^= 0x01;
            log.insert(key, value).unwrap();
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "the leaf is stored once");
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_then_catches_a_leaf_altered_on_disk() {
    let dir = temp_dir();
    let work = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let key = node.node.public_key().verifier_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let pdqs: Vec<String> = (0..20).map(|_| random_pdq(&mut rng)).collect();
    let mut args = vec!["submit", "--node", &node.url, "--label", "ncii"];
    for p in &pdqs {
        args.extend(["--pdq", p.as_str()]);
    }
    run(&args).await.ok();
    run(&["retract", "3", "--reason", "fp", "--node", &node.url])
        .await
        .ok();

    let state = work.path().join("state.json");
    let state_s = state.to_str().unwrap();
    let r = run(&[
        "audit", "--node", &node.url, "--key", &key, "--state", state_s,
    ])
    .await
    .ok();
    assert!(
        r.stdout.contains("ok          hotline-a.example: size 21"),
        "{r:#?}"
    );
    assert!(
        r.stdout.contains("20 adds, 1 retracts, 19 active"),
        "{r:#?}"
    );
    assert!(r.stdout.contains("result: OK"), "{r:#?}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["hotline-a.example"]["size"], 21);

    // The log grows; the next audit checks it extends the previous one.
    let more = random_pdq(&mut rng);
    run(&["submit", "--node", &node.url, "--pdq", &more])
        .await
        .ok();
    let r = run(&[
        "audit", "--node", &node.url, "--key", &key, "--state", state_s, "--json",
    ])
    .await
    .ok();
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["origins"][0]["report"]["size"], 22);
    assert_eq!(v["origins"][0]["report"]["extends_previous"], 21);
    assert!(
        v["origins"][0]["report"]["inclusion_proofs_checked"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Someone with disk access alters leaf 7 while the node is down.
    let config = node.stop().await;
    let hash7 = hex::decode(&pdqs[7]).unwrap();
    tamper_leaf(&config.data_dir, "hotline-a.example", &hash7);
    let node = TestNode::start(config).await;

    let r = run(&[
        "audit", "--node", &node.url, "--key", &key, "--state", state_s,
    ])
    .await
    .fails(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("hotline-a.example"), "{r:#?}");
    assert!(all.contains("index 7"), "names the index: {r:#?}");
    assert!(r.stdout.contains("result: FAILED"), "{r:#?}");
    // The state file still holds what was verified before.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["hotline-a.example"]["size"], 22);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_only_from_the_auditor() {
    let (da, db, work) = (temp_dir(), temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    run(&["submit", "--node", &a.url, "--pdq", &random_pdq(&mut rng)])
        .await
        .ok();
    let key_a = a.node.public_key().verifier_key();

    // No key: unverified, which fails the audit unless allowed.
    let r = run(&["audit", "--node", &a.url]).await.fails(1);
    assert!(
        r.stdout
            .contains("hotline-a.example: unverified (no key given)"),
        "{r:#?}"
    );
    assert!(r.stderr.contains("--allow-unknown"), "{r:#?}");
    run(&["audit", "--node", &a.url, "--allow-unknown"])
        .await
        .ok();

    // The key of another node under the same name: the signature does not verify.
    let impostor = TestNode::start_in("hotline-a.example", db.path()).await;
    let wrong = impostor.node.public_key().verifier_key();
    let r = run(&["audit", "--node", &a.url, "--key", &wrong])
        .await
        .fails(1);
    assert!(
        r.stdout.contains("does not verify against the given key"),
        "{r:#?}"
    );
    // A fresh node's empty log (signed at first start) verifies with its own key.
    let r = run(&["audit", "--node", &impostor.url, "--key", &wrong])
        .await
        .ok();
    assert!(r.stdout.contains("hotline-a.example: size 0"), "{r:#?}");
    impostor.stop().await;

    // A trust file shaped like the node's config.
    let trust = work.path().join("trust.toml");
    std::fs::write(
        &trust,
        format!(
            "[[peers]]\nurl = \"http://x\"\n\n[[trust]]\norigin = \"hotline-a.example\"\nkey = \"{key_a}\"\npolicy = \"accept\"\n"
        ),
    )
    .unwrap();
    run(&[
        "audit",
        "--node",
        &a.url,
        "--trust-file",
        trust.to_str().unwrap(),
    ])
    .await
    .ok();
    // A malformed key is a clear error.
    let r = run(&["audit", "--node", &a.url, "--key", "nonsense"])
        .await
        .fails(1);
    assert!(r.stderr.contains("malformed verifier key"), "{r:#?}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_dump_verifies_offline_and_catches_edits() {
    let (da, work) = (temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let key_a = a.node.public_key().verifier_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..3 {
        run(&["submit", "--node", &a.url, "--pdq", &random_pdq(&mut rng)])
            .await
            .ok();
    }
    let dump = work.path().join("dump");
    let dump_s = dump.to_str().unwrap();
    // Exporting without keys still writes everything (and says it is unverified).
    let r = run(&["audit", "--node", &a.url, "--export", dump_s])
        .await
        .ok();
    assert!(r.stdout.contains("exported"), "{r:#?}");
    assert!(dump.join("FORMAT").is_file());
    let leaves = dump.join("hotline-a.example").join("leaves");
    assert_eq!(std::fs::read_to_string(&leaves).unwrap().lines().count(), 3);
    a.stop().await;

    // Offline, no node running.
    let r = run(&["audit", "--offline", dump_s, "--key", &key_a])
        .await
        .ok();
    assert!(
        r.stdout.contains("ok          hotline-a.example: size 3"),
        "{r:#?}"
    );
    let r = run(&["audit", "--offline", dump_s]).await.fails(1);
    assert!(r.stdout.contains("unverified (no key given)"), "{r:#?}");

    // An edited leaf is caught.
    let text = std::fs::read_to_string(&leaves).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[0].clone();
    std::fs::write(&leaves, lines.join("\n") + "\n").unwrap();
    let r = run(&["audit", "--offline", dump_s, "--key", &key_a])
        .await
        .fails(1);
    assert!(r.stdout.contains("FAILED      hotline-a.example"), "{r:#?}");
    assert!(
        r.stderr.contains("audit failed: hotline-a.example"),
        "{r:#?}"
    );
    // Not a dump at all.
    let r = run(&[
        "audit",
        "--offline",
        work.path().to_str().unwrap(),
        "--key",
        &key_a,
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("redline audit --export"), "{r:#?}");
}
