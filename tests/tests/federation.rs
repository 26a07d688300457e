//! Federation end to end: real nodes on loopback, real sled dirs, real signatures.
//!
//! - Propagation: hotlines A and B and a platform node P (submits nothing), in a line
//!   (A -> B -> P) and in a triangle. A hash submitted at A is verified at P within 2 s through
//!   pushes alone (every pull interval is 60 s), a retraction follows, and P's copy of A's log
//!   passes the client's `Auditor` against A's key.
//! - A lying relay between A and C ([`redline_e2e::relay`]): altered, dropped and reordered
//!   entries, a replayed old checkpoint, a checkpoint forged with the relay's own key, and a
//!   different history under A's real checkpoint. C merges none of it, keeps evidence naming
//!   the relay, and converges once it has an honest path. The honest path is C restarted on
//!   the same data dir with A as a second peer (so the attack is seen alone first, and the
//!   evidence is shown to survive a restart).
//! - An origin that equivocates (two nodes with one identity, never talking) is caught by a
//!   third node that follows both, which keeps both signed notes and freezes the origin.

use rand::{Rng, SeedableRng};
use redline_client::{Auditor, HotlineClient};
use redline_e2e::relay::{altered_hash, fabricated_hash, Lie, Relay};
use redline_e2e::{
    eventually, federated_config, identity, reserve, temp_dir, trust_key, trust_of, TestNode,
};
use redline_proto::checkpoint::OriginKey;
use redline_proto::pb::{self, audit_client::AuditClient, Signal};
use redline_proto::signal::SignalType;
use redline_server::config::Policy;
use std::time::Duration;

/// Pull interval in the propagation tests: longer than the test, so only pushes can deliver.
const NO_POLL_MS: u64 = 60_000;
/// Pull interval where pushes are not what is tested.
const FAST_POLL_MS: u64 = 100;
/// The push bound the propagation tests hold nodes to.
const PUSH_BOUND: Duration = Duration::from_secs(2);
/// Generous bound for everything else (debug build, 2 shared cores).
const LONG: Duration = Duration::from_secs(20);

fn pdqs(rng: &mut impl Rng, n: usize) -> Vec<Signal> {
    (0..n)
        .map(|_| Signal {
            signal_type: "pdq".into(),
            value: hex::encode(rng.gen::<[u8; 32]>()),
            quality: 100,
        })
        .collect()
}

fn raw(s: &Signal) -> Vec<u8> {
    hex::decode(&s.value).unwrap()
}

/// Whether `node`'s catalog lists exactly `hash` for `origin`.
fn lists(node: &TestNode, origin: &str, hash: &[u8]) -> bool {
    node.node
        .matching()
        .search(SignalType::Pdq, hash, 0)
        .iter()
        .any(|h| h.origin == origin)
}

async fn submit(url: &str, signals: Vec<Signal>) -> pb::SubmitResponse {
    let mut c = HotlineClient::connect(url).await.unwrap();
    c.submit(signals, vec!["ncii".into()], "consent withdrawn", "")
        .await
        .unwrap()
}

async fn audit_size(url: &str, origin: &str) -> u64 {
    let mut a = AuditClient::connect(url.to_owned()).await.unwrap();
    a.get_checkpoint(pb::GetCheckpointRequest {
        origin: origin.to_owned(),
    })
    .await
    .map_or(0, |r| r.into_inner().tree_size)
}

async fn list_evidence(url: &str, origin: &str) -> Vec<pb::Evidence> {
    redline_e2e::adversary::evidence(url, origin).await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Waits until `node` has completed an exchange with every peer after `after_ms`.
async fn synced_with_all_peers_after(node: &TestNode, after_ms: u64) {
    eventually(LONG, "an exchange with every peer", || async {
        node.node
            .peers()
            .snapshot()
            .iter()
            .all(|(_, s)| s.last_sync_ms > after_ms)
    })
    .await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Topology {
    /// A -> B -> P: B follows A, P follows only B.
    Line,
    /// Everyone follows everyone.
    Triangle,
}

async fn propagation(topology: Topology) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(topology as u64 + 1);
    let (da, db, dp) = (temp_dir(), temp_dir(), temp_dir());
    // Identities and listeners first, so every config can name every peer and key.
    let ka = identity(da.path(), "hotline-a.example");
    let kb = identity(db.path(), "hotline-b.example");
    let ((la, ua), (lb, ub), (lp, up)) = (reserve().await, reserve().await, reserve().await);
    let (a_peers, b_peers, p_peers, a_trust): (Vec<&str>, Vec<&str>, Vec<&str>, _) = match topology
    {
        Topology::Line => (vec![], vec![&ua], vec![&ub], vec![]),
        Topology::Triangle => (
            vec![&ub, &up],
            vec![&ua, &up],
            vec![&ua, &ub],
            vec![trust_key(&kb, Policy::Accept)],
        ),
    };
    let config = |origin: &str, dir: &std::path::Path, peers: &[&str], trust| {
        federated_config(origin, dir, peers, trust, NO_POLL_MS)
    };
    let a = TestNode::start_on(
        la,
        config("hotline-a.example", da.path(), &a_peers, a_trust),
    )
    .await;
    let b = TestNode::start_on(
        lb,
        config(
            "hotline-b.example",
            db.path(),
            &b_peers,
            vec![trust_key(&ka, Policy::Accept)],
        ),
    )
    .await;
    // The platform trusts both hotlines and submits nothing.
    let p = TestNode::start_on(
        lp,
        config(
            "platform-p.example",
            dp.path(),
            &p_peers,
            vec![
                trust_key(&ka, Policy::Accept),
                trust_key(&kb, Policy::Accept),
            ],
        ),
    )
    .await;
    let (oa, ob) = (a.node.origin().to_owned(), b.node.origin().to_owned());
    // Every sync task has subscribed to pushes and finished its first pull.
    for n in [&a, &b, &p] {
        synced_with_all_peers_after(n, 0).await;
    }

    // One hash at A: verified at P within the push bound.
    let signals = pdqs(&mut rng, 3);
    let resp = submit(&a.url, signals.clone()).await;
    let size = resp.checkpoint.unwrap().tree_size;
    let took = eventually(PUSH_BOUND, "A's hashes verified at P", || async {
        audit_size(&p.url, &oa).await >= size && signals.iter().all(|s| lists(&p, &oa, &raw(s)))
    })
    .await;
    println!("{topology:?}: A's submission verified at P after {took:?}");
    assert_eq!(p.head_of(&oa), a.head_of(&oa));
    // B's own list reaches P as well (B is a hotline too).
    let b_signals = pdqs(&mut rng, 2);
    submit(&b.url, b_signals.clone()).await;
    eventually(PUSH_BOUND, "B's hashes verified at P", || async {
        b_signals.iter().all(|s| lists(&p, &ob, &raw(s)))
    })
    .await;

    // A retraction at A is applied at P.
    let target = resp.entries[1].index;
    let mut hotline = HotlineClient::connect(&a.url).await.unwrap();
    let retracted = hotline.retract(target, "false positive").await.unwrap();
    let size = retracted.checkpoint.unwrap().tree_size;
    let took = eventually(PUSH_BOUND, "A's retraction applied at P", || async {
        audit_size(&p.url, &oa).await >= size && !lists(&p, &oa, &raw(&signals[1]))
    })
    .await;
    println!("{topology:?}: A's retraction applied at P after {took:?}");
    assert!(lists(&p, &oa, &raw(&signals[0])));
    assert!(!p
        .node
        .logs()
        .is_active(p.node.log(&oa).unwrap().state().id, target));

    // P's copy of A's log verifies as an auditor would, against A's key taken out of band.
    let key = OriginKey::parse(&a.node.public_key().verifier_key()).unwrap();
    let report = Auditor::connect(&p.url)
        .await
        .unwrap()
        .audit_origin(&key, None, None)
        .await
        .unwrap();
    assert_eq!(report.size, size);
    assert_eq!((report.adds, report.retracts, report.active), (3, 1, 2));
    for n in [&a, &b, &p] {
        assert_eq!(
            n.node.evidence_count(),
            0,
            "no evidence between honest nodes"
        );
    }
    p.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_a_b_p_pushes_a_hash_and_its_retraction_to_p_within_two_seconds() {
    propagation(Topology::Line).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triangle_pushes_a_hash_and_its_retraction_to_p_within_two_seconds() {
    propagation(Topology::Triangle).await;
}

/// Batches of 20 hashes at A: C syncs `honest_batches` of them through the relay while it is
/// honest, then the relay starts telling `lie` and A submits one more batch.
async fn relay_attack(lie: Lie, honest_batches: usize, expected_reason: &str) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let (da, dc) = (temp_dir(), temp_dir());
    let a = TestNode::start(federated_config(
        "hotline-a.example",
        da.path(),
        &[],
        vec![],
        FAST_POLL_MS,
    ))
    .await;
    let oa = a.node.origin().to_owned();
    let relay = Relay::start(&a.url, &oa, Lie::Honest).await;
    let c = TestNode::start(federated_config(
        "hotline-c.example",
        dc.path(),
        &[&relay.url],
        vec![trust_of(&a, Policy::Accept)],
        FAST_POLL_MS,
    ))
    .await;
    // Each honest batch reaches C through the relay before the next is signed, so the relay
    // has seen (and can later replay) every checkpoint C moved past.
    let mut submitted = Vec::new();
    let mut leaves = Vec::new();
    for _ in 0..honest_batches {
        let s = pdqs(&mut rng, 20);
        submit(&a.url, s.clone()).await;
        submitted.extend(s);
        let size = a.size_of(&oa);
        eventually(LONG, "C syncs through the honest relay", || async {
            c.size_of(&oa) == size
        })
        .await;
    }
    let verified = a.size_of(&oa);
    assert_eq!(c.head_of(&oa), a.head_of(&oa));
    let mut commits = c.node.subscribe();

    relay.set_lie(lie.clone());
    let fresh = pdqs(&mut rng, 20);
    submit(&a.url, fresh.clone()).await;
    for i in verified..a.size_of(&oa) {
        let id = a.node.log(&oa).unwrap().state().id;
        leaves.push((i, a.node.logs().leaf(id, i).unwrap().unwrap()));
    }
    // C is told the lie (pushed at once, pulled again every 100 ms) and keeps evidence.
    eventually(LONG, "evidence naming the relay", || async {
        list_evidence(&c.url, &oa)
            .await
            .iter()
            .any(|e| e.peer == relay.url)
    })
    .await;
    let evidence: Vec<pb::Evidence> = list_evidence(&c.url, &oa)
        .await
        .into_iter()
        .filter(|e| e.peer == relay.url)
        .collect();
    assert!(relay.lies_told() > 0, "the relay lied");
    let reasons: Vec<&str> = evidence.iter().map(|e| e.reason.as_str()).collect();
    println!("{lie:?}: evidence reasons {reasons:?}");
    assert!(
        reasons.contains(&expected_reason),
        "{lie:?}: expected {expected_reason}, got {evidence:#?}"
    );
    for e in &evidence {
        assert_eq!(e.origin, oa);
        assert!(!e.detail.is_empty() && !e.signed_notes.is_empty(), "{e:#?}");
    }
    // Let C hear the lie again through the periodic pull, then check it merged nothing.
    synced_with_all_peers_after(&c, now_ms()).await;
    assert_eq!(
        c.size_of(&oa),
        verified,
        "{lie:?}: C went past what verified"
    );
    while let Ok(ev) = commits.try_recv() {
        assert_ne!(ev.origin, oa, "{lie:?}: C committed {ev:?}");
    }
    let bad_hashes = bad_hashes(&lie, &leaves, a.size_of(&oa));
    for h in &bad_hashes {
        assert!(!lists(&c, &oa, h), "{lie:?}: a relay-made hash is listed");
    }
    for s in &fresh {
        assert!(!lists(&c, &oa, &raw(s)), "{lie:?}: unverified entry listed");
    }

    // Honest path: C restarted on the same data dir, following A directly as well.
    let cc = c.stop().await;
    let c = TestNode::start(federated_config(
        "hotline-c.example",
        &cc.data_dir,
        &[&relay.url, &a.url],
        vec![trust_of(&a, Policy::Accept)],
        FAST_POLL_MS,
    ))
    .await;
    eventually(LONG, "C converges through A", || async {
        c.head_of(&oa) == a.head_of(&oa)
    })
    .await;
    for s in submitted.iter().chain(&fresh) {
        assert!(lists(&c, &oa, &raw(s)), "{lie:?}: a real hash is missing");
    }
    for h in &bad_hashes {
        assert!(!lists(&c, &oa, h), "{lie:?}: a relay-made hash is listed");
    }
    let after = list_evidence(&c.url, &oa).await;
    assert!(
        after
            .iter()
            .any(|e| e.peer == relay.url && e.reason == expected_reason),
        "evidence survives the restart"
    );
    c.stop().await;
    relay.stop().await;
    a.stop().await;
}

/// Hashes the relay made up for `lie` (none of which may ever be listed).
fn bad_hashes(lie: &Lie, leaves: &[(u64, Vec<u8>)], real_size: u64) -> Vec<Vec<u8>> {
    match lie {
        Lie::AlterEntry(i) => leaves
            .iter()
            .filter(|(j, _)| j == i)
            .filter_map(|(_, d)| altered_hash(d))
            .collect(),
        Lie::Forge { extra } => (real_size..real_size + extra)
            .map(|i| fabricated_hash(i).to_vec())
            .collect(),
        Lie::OtherHistory => (0..real_size)
            .map(|i| fabricated_hash(i).to_vec())
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_altering_an_entry_is_refused_as_root_mismatch() {
    relay_attack(Lie::AlterEntry(25), 1, "root_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_dropping_an_entry_is_refused_as_bad_entries() {
    relay_attack(Lie::DropEntry(30), 1, "bad_entries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_reordering_entries_is_refused_as_root_mismatch() {
    relay_attack(Lie::Swap(22, 33), 1, "root_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_replaying_an_old_checkpoint_is_refused_as_rollback() {
    // C holds 40 (two honest batches), the relay then keeps offering A's checkpoint of 20.
    relay_attack(Lie::Replay(20), 2, "rollback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_forging_a_checkpoint_with_its_own_key_is_refused_as_bad_signature() {
    relay_attack(Lie::Forge { extra: 5 }, 1, "bad_signature").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_serving_another_history_under_the_real_checkpoint_is_refused_as_root_mismatch() {
    relay_attack(Lie::OtherHistory, 1, "root_mismatch").await;
}

/// A relay that never answers for entries must not hold up replication from an honest peer:
/// C follows both from the start, and A signs several batches, each pushed to C by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_relay_does_not_block_an_honest_peer() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (da, dc) = (temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let oa = a.node.origin().to_owned();
    let relay = Relay::start(&a.url, &oa, Lie::Stall).await;
    let c = TestNode::start(federated_config(
        "hotline-c.example",
        dc.path(),
        &[&relay.url, &a.url],
        vec![trust_of(&a, Policy::Accept)],
        FAST_POLL_MS,
    ))
    .await;
    synced_with_all_peers_after(&c, 0).await;
    for _ in 0..5 {
        submit(&a.url, pdqs(&mut rng, 10)).await;
        let size = a.size_of(&oa);
        // Far below the 120 s a stalled fetch may wait.
        eventually(Duration::from_secs(5), "C replicates through A", || async {
            c.size_of(&oa) == size
        })
        .await;
    }
    assert!(relay.lies_told() > 0, "the relay was asked and stalled");
    assert_eq!(c.head_of(&oa), a.head_of(&oa));
    c.stop().await;
    relay.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_origin_is_caught_with_both_notes_and_frozen() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let (d1, d2, dw) = (temp_dir(), temp_dir(), temp_dir());
    let origin = "hotline-x.example";
    // X1 creates the identity; X2 starts on an empty dir holding a copy of it.
    let x1 = TestNode::start_in(origin, d1.path()).await;
    let key = x1.node.public_key().clone();
    let c1 = x1.stop().await;
    std::fs::copy(
        c1.data_dir.join("identity.key"),
        d2.path().join("identity.key"),
    )
    .unwrap();
    let x1 = TestNode::start_in(origin, d1.path()).await;
    let x2 = TestNode::start_in(origin, d2.path()).await;
    assert_eq!(x2.node.public_key(), &key, "one identity, two nodes");
    // Same size, different hashes: two validly signed, inconsistent checkpoints.
    let r1 = submit(&x1.url, pdqs(&mut rng, 5)).await.checkpoint.unwrap();
    let r2 = submit(&x2.url, pdqs(&mut rng, 5)).await.checkpoint.unwrap();
    assert_eq!(r1.tree_size, r2.tree_size);
    assert_ne!(r1.root_hash, r2.root_hash);

    let w = TestNode::start(federated_config(
        "platform-w.example",
        dw.path(),
        &[&x1.url, &x2.url],
        vec![redline_server::config::TrustConfig {
            origin: origin.into(),
            key: key.verifier_key(),
            policy: Policy::Accept,
        }],
        FAST_POLL_MS,
    ))
    .await;
    eventually(LONG, "W freezes the origin", || async {
        w.node.is_frozen(origin)
    })
    .await;
    let evidence = list_evidence(&w.url, origin).await;
    let eq: Vec<_> = evidence
        .iter()
        .filter(|e| e.reason == "equivocation")
        .collect();
    assert_eq!(eq.len(), 1, "{evidence:#?}");
    let notes = &eq[0].signed_notes;
    assert_eq!(notes.len(), 2);
    let (n1, n2) = (
        key.verify(&notes[0]).unwrap(),
        key.verify(&notes[1]).unwrap(),
    );
    assert_eq!(n1.size, n2.size);
    assert_ne!(n1.root, n2.root, "both notes verify and disagree");
    let mut roots = [n1.root.0.to_vec(), n2.root.0.to_vec()];
    roots.sort();
    let mut want = [r1.root_hash.clone(), r2.root_hash.clone()];
    want.sort();
    assert_eq!(roots, want);
    assert!([x1.url.as_str(), x2.url.as_str()].contains(&eq[0].peer.as_str()));

    let mut audit = AuditClient::connect(w.url.clone()).await.unwrap();
    let origins = audit
        .list_origins(pb::ListOriginsRequest {})
        .await
        .unwrap()
        .into_inner()
        .origins;
    let x = origins.iter().find(|o| o.origin == origin).unwrap();
    assert!(x.frozen, "{x:?}");

    // Later checkpoints of the frozen origin are not merged, from either side.
    let held = w.size_of(origin);
    submit(&x1.url, pdqs(&mut rng, 3)).await;
    submit(&x2.url, pdqs(&mut rng, 4)).await;
    synced_with_all_peers_after(&w, now_ms()).await;
    assert_eq!(w.size_of(origin), held);
    assert_eq!(
        list_evidence(&w.url, origin)
            .await
            .iter()
            .filter(|e| e.reason == "equivocation")
            .count(),
        1,
        "one proof is kept, not one per exchange"
    );
    w.stop().await;
    x2.stop().await;
    x1.stop().await;
}
