//! Crash harness: runs `redline-node` as a child process that can be SIGKILLed at any moment,
//! and inspects its sled store cold (no node running) after the kill.
//!
//! [`NodeProcess`] starts the real binary (built once by [`crate::node_bin`]) on a TOML config written
//! by [`ChildConfig`], reports when it is serving (its `listening on` stdout line, printed only
//! once the catalog is loaded), and [`NodeProcess::kill`]s it with SIGKILL, returning what it
//! logged since it started so a test can tell where in its life the kill landed.
//! [`inspect_cold`] reopens the store the way a restarting node would and checks every
//! registered log: a checkpoint signed by the origin's key, stored leaves and stored hashes that
//! both hash to its root, and nothing stored past it.

use redline_client::audit::{verify_log, AuditError};
use redline_proto::checkpoint::{OriginKey, SignedCheckpoint};
use redline_proto::consistency::{self, TreeHead};
use redline_proto::merkle::{self, HashReader, MemoryHashes};
use redline_server::store::Store;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The config file of a child node: its origin, data dir, the peers it follows and the origins
/// it trusts, with sync timing suited to tests.
#[derive(Debug, Clone)]
pub struct ChildConfig {
    /// Origin name.
    pub origin: String,
    /// Data dir (identity key and `db/`).
    pub data_dir: PathBuf,
    /// Peer URLs it follows.
    pub peers: Vec<String>,
    /// `(origin, verifier key)` of every origin it accepts.
    pub trust: Vec<(String, String)>,
    /// Pull interval, milliseconds (pushes are the fast path).
    pub poll_interval_ms: u64,
}

impl ChildConfig {
    /// The TOML text; the node listens on `127.0.0.1:0` and prints the port it got.
    pub fn toml(&self) -> String {
        let mut s = format!(
            "origin = {:?}\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n",
            self.origin,
            self.data_dir.display().to_string()
        );
        for p in &self.peers {
            s.push_str(&format!("\n[[peers]]\nurl = {p:?}\n"));
        }
        for (origin, key) in &self.trust {
            s.push_str(&format!(
                "\n[[trust]]\norigin = {origin:?}\nkey = {key:?}\npolicy = \"accept\"\n"
            ));
        }
        s.push_str(&format!(
            "\n[sync]\npoll_interval_ms = {}\nbackoff_initial_ms = 20\nbackoff_max_ms = 200\n",
            self.poll_interval_ms
        ));
        s
    }

    /// Writes the TOML to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.toml()).expect("write child config");
    }
}

/// Where a child is in its life, as read from its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Life {
    Starting,
    Serving(String),
    Exited,
}

/// A `redline-node` child process. Dropping it kills it.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    started: Instant,
    life: watch::Receiver<Life>,
    log: PathBuf,
    log_from: u64,
}

/// What is known of a child after its SIGKILL.
#[derive(Debug)]
pub struct Killed {
    /// How long it had run.
    pub uptime: Duration,
    /// Whether it had reported serving (printed `listening on`).
    pub was_serving: bool,
    /// Everything it logged (stderr) since it started.
    pub log: String,
}

impl NodeProcess {
    /// Starts `redline-node --config config`, appending its stderr (`RUST_LOG=info`) to `log`.
    /// Returns at once; [`NodeProcess::serving`] waits until it serves.
    pub fn spawn(config: &Path, log: &Path) -> NodeProcess {
        Self::spawn_logging(config, log, "info")
    }

    /// [`NodeProcess::spawn`] with `RUST_LOG=rust_log` (e.g. `warn` where an attack would
    /// otherwise fill the log).
    pub fn spawn_logging(config: &Path, log: &Path, rust_log: &str) -> NodeProcess {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("child log file");
        let log_from = stderr.metadata().map(|m| m.len()).unwrap_or(0);
        let started = Instant::now();
        let mut child = Command::new(crate::node_bin())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn redline-node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, life) = watch::channel(Life::Starting);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(Life::Serving(format!("http://{}", addr.trim())));
                }
            }
            let _ = tx.send(Life::Exited);
        });
        NodeProcess {
            child,
            started,
            life,
            log: log.to_owned(),
            log_from,
        }
    }

    /// Waits until the child serves and returns its URL; panics (with its log) if it exits or
    /// takes longer than `timeout`.
    pub async fn serving(&mut self, timeout: Duration) -> String {
        let waited = tokio::time::timeout(
            timeout,
            self.life.wait_for(|l| !matches!(l, Life::Starting)),
        )
        .await;
        let life = match &waited {
            Ok(Ok(l)) => (**l).clone(),
            _ => Life::Exited,
        };
        drop(waited);
        match life {
            Life::Serving(url) => url,
            _ => panic!(
                "redline-node did not come up within {timeout:?} (status {:?}); its log:\n{}",
                self.child.try_wait(),
                self.log_since_start()
            ),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How long ago it was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it has printed `listening on` (it only does once the node is open).
    pub fn is_serving(&self) -> bool {
        matches!(*self.life.borrow(), Life::Serving(_))
    }

    /// SIGKILLs the child (no chance to flush or clean up) and reaps it.
    pub fn kill(mut self) -> Killed {
        let was_serving = self.is_serving();
        self.child.kill().expect("SIGKILL");
        let uptime = self.started.elapsed();
        self.child.wait().expect("reap the child");
        Killed {
            uptime,
            was_serving,
            log: self.log_since_start(),
        }
    }

    fn log_since_start(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(self.log_from));
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One origin's log as found on disk after a crash, fully checked by [`inspect_cold`]. For a
/// prefix committed by a catch-up in steps, `checkpoint` is the larger signed tree the prefix is
/// proven part of, and `leaves` are the prefix.
#[derive(Debug)]
pub struct ColdLog {
    /// Origin name.
    pub origin: String,
    /// Its committed checkpoint; the signature verified under the origin's key.
    pub checkpoint: SignedCheckpoint,
    /// Every stored leaf, `[0, checkpoint.size)`, verbatim.
    pub leaves: Vec<Vec<u8>>,
    /// The tree of those leaves, rebuilt here.
    pub tree: MemoryHashes,
}

/// Opens the sled store in `db` (the node must not be running) as a restarting node would, and
/// checks every registered origin's log: its key is in `keys`; its stored checkpoint's signed
/// note verifies under that key and names the stored size and root (or, for a prefix committed
/// in steps, a larger tree that the stored consistency proof shows the stored prefix is part
/// of); the stored leaves are
/// exactly `[0, size)` and hash to that root; the stored Merkle hashes give the same root and
/// none is stored past the tree; no leaf is stored past the checkpoint. Panics on any breach.
pub fn inspect_cold(db: &Path, keys: &[OriginKey]) -> Vec<ColdLog> {
    let store = Store::open(db).expect("the store reopens after SIGKILL");
    let mut out = Vec::new();
    for rec in store.origins().expect("origin registry readable") {
        let origin = rec.name.clone();
        let key = keys
            .iter()
            .find(|k| k.name() == origin)
            .unwrap_or_else(|| panic!("{origin}: registered in the store but never trusted"));
        let cp = rec
            .checkpoint
            .unwrap_or_else(|| panic!("{origin}: registered without a checkpoint"));
        let mut tree = MemoryHashes::new();
        let mut leaves = Vec::with_capacity(cp.size as usize);
        for item in store.leaves(rec.id, 0, u64::MAX) {
            let (index, data) = item.expect("leaf bundle readable");
            assert_eq!(index, tree.size(), "{origin}: leaves stored out of order");
            assert!(
                index < cp.size,
                "{origin}: leaf {index} is stored past the committed checkpoint (size {})",
                cp.size
            );
            tree.push_leaf(&data);
            leaves.push(data);
        }
        let signed = match &cp.proof {
            // The stored note, size, root and leaves, checked the way an auditor checks a node: the
            // protocol's verifier (signature first, then every leaf through the replay, then the
            // root).
            None => {
                let verified = verify_log(
                    key,
                    &cp.note,
                    leaves
                        .iter()
                        .enumerate()
                        .map(|(i, l)| Ok::<_, AuditError>((i as u64, l.clone()))),
                    None,
                )
                .unwrap_or_else(|e| panic!("{origin}: the stored log does not verify: {e}"));
                let signed = verified.checkpoint;
                assert_eq!(
                    (signed.size, signed.root),
                    (cp.size, cp.root),
                    "{origin}: stored size and root are not the ones the note signs"
                );
                signed
            }
            // A prefix committed by a catch-up in steps: the note signs a larger tree, the
            // stored leaves give the stored prefix root, and the stored consistency proof shows
            // that prefix is part of the signed tree.
            Some(proof) => {
                let signed = key
                    .verify(&cp.note)
                    .unwrap_or_else(|e| panic!("{origin}: the stored note does not verify: {e}"));
                assert_eq!(
                    (signed.size, signed.root),
                    (proof.signed_size, proof.signed_root),
                    "{origin}: the prefix proof names another tree than the note signs"
                );
                assert_eq!(tree.size(), cp.size, "{origin}: stored leaves end early");
                assert_eq!(
                    tree.root(),
                    cp.root,
                    "{origin}: stored leaves do not give the prefix root"
                );
                let path: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.0).collect();
                consistency::extends(
                    TreeHead {
                        size: cp.size,
                        root: cp.root,
                    },
                    TreeHead::from(&signed),
                    &path,
                )
                .unwrap_or_else(|e| {
                    panic!("{origin}: the stored prefix is not proven part of the signed tree: {e}")
                });
                signed
            }
        };
        let hashes = store.hashes(rec.id);
        assert_eq!(
            merkle::tree_root(cp.size, &hashes).expect("stored hashes readable"),
            cp.root,
            "{origin}: stored Merkle hashes do not give the checkpoint root"
        );
        let stored = merkle::stored_hash_index(0, cp.size);
        assert!(
            hashes.read_hashes(&[stored]).is_err(),
            "{origin}: a Merkle hash is stored past the tree of size {}",
            cp.size
        );
        out.push(ColdLog {
            origin,
            checkpoint: signed,
            leaves,
            tree,
        });
    }
    out
}
