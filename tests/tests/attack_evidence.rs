//! Attack: fill the node's disk with evidence, and hide real evidence behind the flood.
//!
//! Tried, against a `redline-node` child process with default limits (only sync timing is
//! shortened by the harness) and no tokens (so every caller is one address, the weakest
//! position for the budgets): 40 `Gossip` calls, each on a new connection, each carrying one
//! checkpoint of a trusted origin whose signed note is 4,000,000 bytes of random text (so no
//! two are alike), with a different caller-chosen `from` name and unsigned size and root every
//! time. Before the fixes each such note was stored whole (40 calls of 3 MB notes grew the data
//! dir by 215 MiB) and `ListEvidence` then failed past the response limit, hiding the
//! equivocation recorded before the flood.
//!
//! Bounds that hold:
//! - the data dir grows by less than 16 MiB over the flood (`du` of the data dir after sled's
//!   flush interval): notes are kept as a 4 KiB prefix with length and SHA-256, and the caller's
//!   gossip budget drops what is over it;
//! - `ListEvidence` answers, page by page, and a real equivocation recorded before the flood is
//!   still listed after it, proven, with both notes whole and verifying against the origin's key;
//! - every flood record is truncated, none keeps more than 4 KiB of its note, and no more are
//!   kept than the caller's `[gossip] evidence_burst` (8);
//! - `Status` counts the same records as the listing;
//! - Match from another client keeps answering throughout ([`Latencies::assert_responsive`]).

use rand::RngCore;
use redline_e2e::adversary::{
    disk_usage, evidence, evidence_pages, head, report, seed_catalog, status, ChildNode, Hostile,
    Latencies, Sampler, Script,
};
use redline_e2e::eventually;
use redline_proto::checkpoint::OriginSigner;
use redline_proto::pb::{self, federation_client::FederationClient};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const LONG: Duration = Duration::from_secs(30);
/// Gossip calls in the flood, and the size of each one's note.
const CALLS: usize = 40;
const NOTE_BYTES: usize = 4_000_000;
/// Growth of the data dir the flood may cause.
const BOUND: u64 = 16 * MIB;
/// Longer than sled's flush interval (500 ms), so `du` sees what the node wrote.
const FLUSHED: Duration = Duration::from_millis(1500);

/// Gossips `checkpoints` to the node at `url` as `from`, on a new connection.
async fn gossip(url: &str, from: &str, checkpoints: Vec<pb::Checkpoint>) {
    let mut c = FederationClient::connect(url.to_owned())
        .await
        .expect("federation connects");
    c.gossip(pb::GossipRequest {
        from: from.to_owned(),
        checkpoints,
    })
    .await
    .expect("gossip answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossip_flood_of_huge_notes_neither_fills_the_disk_nor_hides_equivocation() {
    let began = Instant::now();
    let hostile = Hostile::start("hostile.example", 8, Script::honest()).await;
    let flooded = OriginSigner::generate("flooded.example").unwrap();
    let node = ChildNode::spawn(
        &[&hostile.url],
        &[(hostile.key(), "accept"), (flooded.public(), "accept")],
        "",
    )
    .await;
    let spawned = began.elapsed();
    let pdq = seed_catalog(&node.url, 1000, 7).await[500].clone();
    let honest = hostile.honest_head();
    eventually(LONG, "the node replicates the hostile origin", || async {
        head(&node.url, hostile.origin()).await == honest
    })
    .await;

    // A real equivocation: the origin's key signs another root for the size the node holds.
    gossip(&node.url, "a whistleblower", vec![hostile.claim(honest.0)]).await;
    let proof = eventually(LONG, "the equivocation is kept", || async {
        evidence(&node.url, hostile.origin())
            .await
            .iter()
            .any(|e| e.reason == "equivocation")
    })
    .await;
    let (origin, key) = (hostile.origin().to_owned(), hostile.key().clone());
    hostile.stop().await;
    tokio::time::sleep(FLUSHED).await;
    let before = disk_usage(&node.data_dir());

    // The flood, while another client matches.
    let sampler = Sampler::start(&node.url, &pdq, false);
    let flood_began = Instant::now();
    let mut rng = rand::thread_rng();
    for i in 0..CALLS {
        let mut note = vec![0u8; NOTE_BYTES];
        rng.fill_bytes(&mut note);
        note[..16].copy_from_slice(b"flooded.example\n");
        let cp = pb::Checkpoint {
            origin: "flooded.example".into(),
            tree_size: rng.next_u64(),
            root_hash: (0..32).map(|_| rng.next_u32() as u8).collect(),
            signed_note: note,
            prefix: None,
        };
        gossip(
            &node.url,
            &format!("caller {i} {}", rng.next_u64()),
            vec![cp],
        )
        .await;
    }
    let flood_took = flood_began.elapsed();
    while sampler.answered() < Latencies::MIN_SAMPLES as u64
        && flood_began.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latencies = sampler.finish().await;
    tokio::time::sleep(FLUSHED).await;
    let after = disk_usage(&node.data_dir());
    let growth = after.saturating_sub(before);

    // Every page answers; the equivocation is still there, whole.
    let pages = evidence_pages(&node.url, "", 0).await;
    let all: Vec<&pb::Evidence> = pages.iter().flatten().collect();
    let equivocation = all
        .iter()
        .find(|e| e.reason == "equivocation" && e.origin == origin)
        .expect("the equivocation recorded before the flood is still listed");
    assert!(equivocation.proven && !equivocation.truncated);
    assert_eq!(equivocation.signed_notes.len(), 2);
    for note in &equivocation.signed_notes {
        key.verify(note)
            .expect("both notes of the equivocation verify");
    }
    let flood: Vec<&&pb::Evidence> = all
        .iter()
        .filter(|e| e.origin == "flooded.example")
        .collect();
    assert!(!flood.is_empty(), "the flood's refusals are recorded");
    // One address, one budget: at most `[gossip] evidence_burst` (8) refusals in a burst.
    assert!(flood.len() <= 8, "{} flood records kept", flood.len());
    for e in &flood {
        assert!(e.truncated && e.signed_note_lengths == vec![NOTE_BYTES as u64]);
        assert!(e.signed_notes[0].len() <= 4096);
    }
    let counted = status(&node.url).await.expect("status").evidence_count;
    assert_eq!(counted, all.len() as u64, "Status counts what is listed");

    report(
        "evidence flood (gossip)",
        &format!(
            "{CALLS} x {:.1} MB notes in {:.1}s: {} record(s) kept, data dir +{:.2} MiB ({:.2} -> {:.2} MiB)",
            NOTE_BYTES as f64 / 1e6,
            flood_took.as_secs_f64(),
            flood.len(),
            growth as f64 / MIB as f64,
            before as f64 / MIB as f64,
            after as f64 / MIB as f64,
        ),
        &latencies,
        node.peak(),
        node.rss(),
    );
    latencies.assert_responsive("gossip flood of huge notes");
    assert!(
        growth < BOUND,
        "the data dir grew by {:.1} MiB over the flood, bound {} MiB\n{}",
        growth as f64 / MIB as f64,
        BOUND / MIB,
        node.log_tail()
    );
    println!(
        "equivocation listed {:.1}s after it was gossiped; node up after {:.1}s (incl. building it); test took {:.1}s",
        proof.as_secs_f64(),
        spawned.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
