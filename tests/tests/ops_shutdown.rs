//! Graceful shutdown of the real binary: `redline-node` follows a hotline that keeps signing
//! new batches while another node watches it; SIGTERM in the middle of that ends the watch
//! stream, stops sync, flushes sled and exits 0 well within the grace period, and the store it
//! leaves holds exactly one of the hotline's signed checkpoints.

#[path = "ops_support.rs"]
mod ops_support;

use ops_support::{eventually, follower_config, head_of, size_of};
use redline_e2e::{temp_dir, TestNode};
use redline_server::config::PeerConfig;
use redline_server::node::NewSignal;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const A: &str = "hotline-a.example";

/// `(size, root)` of checkpoints.
type Signed = HashSet<(u64, [u8; 32])>;

fn batch(seed: u32) -> Vec<NewSignal> {
    (0..200u32)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&seed.to_be_bytes());
            h[4..8].copy_from_slice(&i.to_be_bytes());
            h[31] = 1;
            NewSignal {
                signal_type: redline_proto::signal::SignalType::Pdq,
                hash: h.to_vec(),
                quality: 100,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_sync_exits_zero_with_a_consistent_store() {
    // Build redline-node first: A's writer below must not run through a (possibly minutes
    // long) build, or B starts hundreds of thousands of entries behind.
    ops_support::node_bin();
    let (da, db, dc) = (temp_dir(), temp_dir(), temp_dir());
    let a = TestNode::start_in(A, da.path()).await;
    // Every checkpoint A ever signed: (size, root).
    let signed: Arc<Mutex<Signed>> = Default::default();
    signed.lock().unwrap().insert(head_of(&a.node, A));
    for seed in 0..5 {
        let s = a
            .node
            .submit(batch(seed), Default::default())
            .await
            .unwrap();
        signed
            .lock()
            .unwrap()
            .insert((s.checkpoint.size, s.checkpoint.root.0));
    }
    // A keeps signing while B syncs and shuts down.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (node, signed, writing) = (a.node.clone(), signed.clone(), writing.clone());
        tokio::spawn(async move {
            let mut seed = 5;
            while writing.load(Ordering::Relaxed) {
                let s = node.submit(batch(seed), Default::default()).await.unwrap();
                signed
                    .lock()
                    .unwrap()
                    .insert((s.checkpoint.size, s.checkpoint.root.0));
                seed += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let config = db.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"origin = "hotline-b.example"
data_dir = "{}"
listen = "127.0.0.1:0"
[[peers]]
url = "{}"
[[trust]]
origin = "{A}"
key = "{}"
policy = "accept"
[sync]
poll_interval_ms = 50
backoff_initial_ms = 20
backoff_max_ms = 200
fetch_batch = 64
[limits]
shutdown_grace_ms = 60000
"#,
            db.path().join("data").display(),
            a.url,
            a.node.public_key().verifier_key()
        ),
    )
    .unwrap();
    let mut child = ops_support::node_cmd()
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start redline-node");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let addr = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("redline-node exited before listening");
            }
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                return a.to_owned();
            }
        }
    })
    .await
    .unwrap();

    // C follows B, so B has a watch stream open (which never ends by itself) at shutdown.
    let c = TestNode::start(follower_config(
        "hotline-c.example",
        dc.path(),
        vec![PeerConfig::new(format!("http://{addr}"))],
        &[&a.node],
    ))
    .await;
    eventually(
        Duration::from_secs(60),
        "C gets A's list through B",
        || async { size_of(&c.node, A) >= 1000 },
    )
    .await;

    let start = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let took = start.elapsed();
    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();
    let stderr = stderr_reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "exit status; stderr:\n{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "shutdown took {took:?}: the watch stream held it up; stderr:\n{stderr}"
    );
    assert!(stderr.contains("store flushed"), "{stderr}");

    // The store B left: A's log is at one of A's signed checkpoints.
    let data = db.path().join("data");
    let (size, root) = {
        let store = redline_server::store::Store::open(&data.join("db")).unwrap();
        let rec = store
            .origins()
            .unwrap()
            .into_iter()
            .find(|o| o.name == A)
            .expect("B holds A's log");
        let cp = rec.checkpoint.expect("B committed a checkpoint of A");
        (cp.size, cp.root.0)
    };
    assert!(size >= 1000, "B had replicated at least what C saw");
    assert!(
        signed.lock().unwrap().contains(&(size, root)),
        "B's head of A ({size}) is not a checkpoint A signed"
    );
    // And it opens as a node again, leaves and all.
    let mut reopened = redline_server::Config::new("hotline-b.example", &data);
    reopened.trust = follower_config("x", &data, vec![], &[&a.node]).trust;
    let node = redline_server::Node::open(reopened).await.unwrap();
    let state = node.log(A).unwrap().state();
    assert_eq!((state.size(), state.root().0), (size, root));
    assert_eq!(
        node.logs().active_count(state.id),
        size,
        "every replicated entry is back in the catalog"
    );
    drop(node);
    c.stop().await;
    a.stop().await;
}
