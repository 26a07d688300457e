//! Kill mid-sync: a `redline-node` child process follows an in-process source node whose log
//! grows to 200,000 entries in signed batches of 10,000. The child is SIGKILLed while it is
//! replicating, its sled store is inspected cold, and it is restarted on the same data dir.
//!
//! Checked: every state of the child ever observed (over gRPC while it runs, and on disk after
//! the kill) is a size and root the source actually signed, with no leaf stored past it; after
//! the restart it resumes from there (its size never goes back) and ends identical to the
//! source (same size, same root).

use rand::{Rng, SeedableRng};
use redline_e2e::crash::NodeProcess;
use redline_e2e::{eventually, submit_pdq, temp_dir, TestNode};
use redline_proto::merkle;
use redline_proto::pb::{audit_client::AuditClient, GetCheckpointRequest};
use redline_server::store::Store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BATCH: usize = 10_000;
const BATCHES: usize = 20;

/// Starts `redline-node --config config` (stderr appended to `log`) and waits until it
/// serves; returns the process and its URL.
async fn spawn_node(config: &Path, log: &Path) -> (NodeProcess, String) {
    let mut child = NodeProcess::spawn(config, log);
    let url = child.serving(Duration::from_secs(60)).await;
    (child, url)
}

/// The child's committed `(size, root)` of `origin`, over gRPC; `None` while unreachable.
async fn observe(url: &str, origin: &str) -> Option<(u64, Vec<u8>)> {
    let mut a = AuditClient::connect(url.to_owned()).await.ok()?;
    let cp = a
        .get_checkpoint(GetCheckpointRequest {
            origin: origin.to_owned(),
        })
        .await
        .ok()?
        .into_inner();
    Some((cp.tree_size, cp.root_hash))
}

type Signed = Arc<Mutex<HashMap<u64, Vec<u8>>>>;
type Observed = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Records one observation: it must be a signed state, never behind the previous one.
fn check(signed: &Signed, seen: &mut Vec<u64>, obs: (u64, Vec<u8>), when: &str) {
    let (size, root) = obs;
    let signed = signed.lock().unwrap();
    assert_eq!(
        signed.get(&size),
        Some(&root),
        "{when}: the follower holds size {size}, which the source never signed with that root"
    );
    if let Some(&last) = seen.last() {
        assert!(size >= last, "{when}: size went back from {last} to {size}");
    }
    if seen.last() != Some(&size) {
        seen.push(size);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_mid_sync_resumes_and_ends_identical() {
    // Built (or found fresh) before anything is timed.
    tokio::task::spawn_blocking(redline_e2e::node_bin)
        .await
        .unwrap();
    let (ds, dc) = (temp_dir(), temp_dir());
    let source = TestNode::start_in("source.example", ds.path()).await;
    let origin = source.node.origin().to_owned();
    let signed: Signed = Arc::new(Mutex::new(HashMap::new()));
    signed
        .lock()
        .unwrap()
        .insert(0, merkle::EMPTY_HASH.0.to_vec());
    let submit_batches = {
        let node = source.node.clone();
        let signed = signed.clone();
        move |range: std::ops::Range<usize>| {
            let (node, signed) = (node.clone(), signed.clone());
            async move {
                for b in range {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(b as u64);
                    let hashes: Vec<[u8; 32]> = (0..BATCH).map(|_| rng.gen()).collect();
                    let cp = submit_pdq(&node, &hashes).await.checkpoint;
                    signed.lock().unwrap().insert(cp.size, cp.root.0.to_vec());
                }
            }
        }
    };
    // A quarter of the log exists before the follower starts; the rest is signed while it
    // syncs, a checkpoint per batch.
    let t0 = std::time::Instant::now();
    submit_batches(0..BATCHES / 4).await;
    println!("{:?}: first quarter signed", t0.elapsed());

    let config = dc.path().join("follower.toml");
    let data_dir = dc.path().join("data");
    std::fs::write(
        &config,
        format!(
            r#"origin = "follower.example"
data_dir = "{}"
listen = "127.0.0.1:0"

[[peers]]
url = "{}"

[[trust]]
origin = "{origin}"
key = "{}"
policy = "accept"

[sync]
poll_interval_ms = 200
backoff_initial_ms = 50
backoff_max_ms = 500
"#,
            data_dir.display(),
            source.url,
            source.node.public_key().verifier_key()
        ),
    )
    .unwrap();
    let log = dc.path().join("follower.log");
    let (child, url) = spawn_node(&config, &log).await;
    println!("{:?}: follower started", t0.elapsed());
    let rest = tokio::spawn(submit_batches(BATCHES / 4..BATCHES));

    // Watch it replicate; kill it (SIGKILL) as soon as it has committed something while the
    // source is still signing more.
    let mut seen = Vec::new();
    let observed: Observed = Default::default();
    eventually(Duration::from_secs(120), "the follower replicates", || {
        let (url, origin, observed) = (url.clone(), origin.clone(), observed.clone());
        async move {
            let Some(o) = observe(&url, &origin).await else {
                return false;
            };
            let started = o.0 > 0;
            observed.lock().unwrap().push(o);
            started
        }
    })
    .await;
    child.kill();
    println!(
        "{:?}: killed with the follower at {:?}, the source at {}",
        t0.elapsed(),
        observed.lock().unwrap().last().map(|o| o.0),
        source.size_of(&origin)
    );

    // Cold look at its store: a signed state, no leaf past it, stored hashes give the root.
    let on_disk = {
        let store = Store::open(&data_dir.join("db")).expect("store reopens after SIGKILL");
        let rec = store
            .origins()
            .unwrap()
            .into_iter()
            .find(|o| o.name == origin)
            .expect("the source's log is registered");
        let cp = rec.checkpoint.expect("a committed checkpoint");
        assert_eq!(
            merkle::tree_root(cp.size, &store.hashes(rec.id)).unwrap(),
            cp.root,
            "stored tree matches the committed checkpoint"
        );
        assert!(store.leaf(rec.id, cp.size - 1).unwrap().is_some());
        assert!(
            store.leaf(rec.id, cp.size).unwrap().is_none(),
            "no leaf stored past the committed checkpoint"
        );
        (cp.size, cp.root.0.to_vec())
    };
    // Checked once the source has finished signing (an observation may precede the
    // submitter's bookkeeping of the checkpoint by a moment).
    rest.await.unwrap();
    for o in observed.lock().unwrap().drain(..) {
        check(&signed, &mut seen, o, "before the kill");
    }
    check(
        &signed,
        &mut seen,
        on_disk.clone(),
        "on disk after the kill",
    );
    println!("on disk after the kill: size {}", on_disk.0);
    println!("{:?}: source done", t0.elapsed());
    drop(submit_batches);
    let want = source.head_of(&origin);
    assert_eq!(want.0, (BATCH * BATCHES) as u64);

    // Restart on the same data dir: it resumes from what it committed and ends identical.
    let (child, url) = spawn_node(&config, &log).await;
    eventually(Duration::from_secs(120), "the follower catches up", || {
        let (url, origin, observed) = (url.clone(), origin.clone(), observed.clone());
        let want = want.0;
        async move {
            let Some(o) = observe(&url, &origin).await else {
                return false;
            };
            let done = o.0 == want;
            observed.lock().unwrap().push(o);
            done
        }
    })
    .await;
    for o in observed.lock().unwrap().drain(..) {
        check(&signed, &mut seen, o, "after the restart");
    }
    assert_eq!(seen.last(), Some(&want.0));
    assert_eq!(
        observe(&url, &origin).await.unwrap().1,
        want.1.to_vec(),
        "identical root"
    );
    println!("{:?}: follower sizes observed: {seen:?}", t0.elapsed());
    assert!(seen.len() >= 2);
    drop(child);
    source.stop().await;
}
