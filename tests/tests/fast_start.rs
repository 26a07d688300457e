//! Fast start: a node restarted gracefully loads its catalog snapshot and replays nothing; one
//! whose snapshot is older than its logs (a crash after later commits) replays only the leaves
//! after it, retractions of snapshotted entries included; a damaged or foreign snapshot is
//! ignored and every log replayed. Each time, Match over gRPC answers exactly as before the
//! restart, so what the snapshot holds is what the logs say.

use rand::{Rng, SeedableRng};
use redline_e2e::{submit_pdq, temp_dir, TestNode};
use redline_proto::pb::{matching_client::MatchingClient, MatchRequest, Signal};
use redline_server::node::catalog_snapshot::FILE;
use redline_server::node::Listing;

fn random_hashes(rng: &mut impl Rng, n: usize) -> Vec<[u8; 32]> {
    (0..n)
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            h
        })
        .collect()
}

/// `(index, distance)` of every PDQ match of each query, over gRPC.
async fn answers(url: &str, queries: &[[u8; 32]]) -> Vec<Vec<(u64, u32)>> {
    let mut client = MatchingClient::connect(url.to_owned()).await.unwrap();
    let mut out = Vec::new();
    for q in queries {
        let resp = client
            .r#match(MatchRequest {
                signals: vec![Signal {
                    signal_type: "pdq".into(),
                    value: hex::encode(q),
                    quality: 0,
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.push(
            resp.results
                .iter()
                .flat_map(|r| r.matches.iter().map(|m| (m.index, m.distance)))
                .collect(),
        );
    }
    out
}

/// A query near each of `hashes` (a few bits flipped), so matching goes through the tables.
fn near(rng: &mut impl Rng, hashes: &[[u8; 32]]) -> Vec<[u8; 32]> {
    hashes
        .iter()
        .map(|h| {
            let mut q = *h;
            for _ in 0..5 {
                let bit = rng.gen_range(0..256);
                q[bit / 8] ^= 1 << (bit % 8);
            }
            q
        })
        .collect()
}

async fn retract(node: &TestNode, index: u64) {
    node.node
        .retract(index, "false positive")
        .await
        .expect("retract");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_load_the_snapshot_and_replay_only_what_came_after() {
    let dir = temp_dir();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let first = random_hashes(&mut rng, 5_000);
    for chunk in first.chunks(2_500) {
        submit_pdq(&node.node, chunk).await;
    }
    retract(&node, 7).await;
    let probe: Vec<[u8; 32]> = [&first[..40], &near(&mut rng, &first[40..80])[..]].concat();
    let before = answers(&node.url, &probe).await;
    assert!(
        before[7].is_empty() && !before[8].is_empty(),
        "retracted 7, listed 8"
    );

    // A graceful stop saves the snapshot; the restart loads it and replays no leaf.
    let config = node.stop().await;
    let snapshot = config.data_dir.join(FILE);
    assert!(snapshot.exists(), "a graceful stop saves {FILE}");
    let node = TestNode::start(config).await;
    let s = node.node.startup();
    assert!(s.from_snapshot, "{s:?}");
    assert_eq!(s.replayed_leaves, 0, "{s:?}");
    assert_eq!(answers(&node.url, &probe).await, before);

    // Keep this snapshot aside, commit more (including a retraction of a snapshotted entry),
    // then put the old snapshot back: a node killed before it saved again.
    let old = std::fs::read(&snapshot).unwrap();
    let more = random_hashes(&mut rng, 1_000);
    submit_pdq(&node.node, &more).await;
    retract(&node, 8).await;
    let probe_more: Vec<[u8; 32]> = [&probe[..], &more[..20]].concat();
    let after = answers(&node.url, &probe_more).await;
    assert!(after[8].is_empty(), "8 retracted");
    assert!(
        after[80..].iter().all(|a| !a.is_empty()),
        "new entries match"
    );
    let config = node.stop().await;
    std::fs::write(&snapshot, &old).unwrap();
    let node = TestNode::start(config).await;
    let s = node.node.startup();
    assert!(s.from_snapshot, "{s:?}");
    // 5,000 adds + 1 retraction were covered; 1,000 adds + 1 retraction came after.
    assert_eq!(s.replayed_leaves, 1_001, "{s:?}");
    assert_eq!(answers(&node.url, &probe_more).await, after);

    // A damaged snapshot is ignored: every leaf is replayed, the answers are the same.
    let config = node.stop().await;
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&snapshot, &bytes).unwrap();
    let node = TestNode::start(config).await;
    let s = node.node.startup();
    assert!(!s.from_snapshot, "{s:?}");
    assert_eq!(s.replayed_leaves, 6_002, "{s:?}");
    assert_eq!(answers(&node.url, &probe_more).await, after);
    node.stop().await;
}

/// A snapshot that does not describe this store — another node's, saved under another origin —
/// is refused as stale, and the node's own logs are replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_snapshot_is_not_loaded() {
    let (da, db) = (temp_dir(), temp_dir());
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let b = TestNode::start_in("hotline-b.example", db.path()).await;
    let ha = random_hashes(&mut rng, 300);
    submit_pdq(&a.node, &ha).await;
    let listing = Listing {
        labels: vec!["other".into()],
        legal_basis: "other".into(),
        case_ref: String::new(),
    };
    let signals = random_hashes(&mut rng, 200)
        .iter()
        .map(|h| redline_server::node::NewSignal {
            signal_type: redline_proto::signal::SignalType::Pdq,
            hash: h.to_vec(),
            quality: 100,
        })
        .collect();
    b.node.submit(signals, listing).await.unwrap();
    let before = answers(&a.url, &ha[..30]).await;
    let (ca, cb) = (a.stop().await, b.stop().await);
    std::fs::copy(cb.data_dir.join(FILE), ca.data_dir.join(FILE)).unwrap();
    let a = TestNode::start(ca).await;
    let s = a.node.startup();
    assert!(!s.from_snapshot, "{s:?}");
    assert_eq!(s.replayed_leaves, 300);
    assert_eq!(answers(&a.url, &ha[..30]).await, before);
    a.stop().await;
}
