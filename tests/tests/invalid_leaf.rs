//! A validly signed log with invalid leaves gets the same verdict from the node, `redline audit`
//! and `redline export` (issue 15): every holder keeps the log byte for byte, an invalid ADD is
//! never active (never matched, never exported) and an invalid RETRACT retracts nothing (its
//! target stays active). The rule lives once, in `redline_proto::replay`; these tests check
//! each component that applies it, one test each, over the same log.
//!
//! The log, of origin `bad.example`, signed in full by the origin's (fixed) key:
//!
//! | index | leaf                                                   | verdict             |
//! | ----- | ------------------------------------------------------ | ------------------- |
//! | 0     | ADD A                                                  | active              |
//! | 1     | ADD X with PDQ quality 101                             | invalid, not active |
//! | 2     | ADD B                                                  | retracted by 5      |
//! | 3     | RETRACT of index 0 naming a wrong leaf hash            | invalid, A stays    |
//! | 4     | ADD C                                                  | active              |
//! | 5     | RETRACT of index 2 (B) with its leaf hash              | valid               |
//!
//! So the active hashes are exactly {A, C} and the invalid leaves exactly {1, 3}. A scripted
//! Federation peer ([`Served`]) holds the origin's key and serves that log; a real follower
//! node trusting `bad.example` replicates it, and the CLI is pointed at the follower.

#[path = "cli_support.rs"]
mod support;

use ed25519_dalek::SigningKey;
use prost::Message;
use redline_e2e::adversary::{evidence, lists, status};
use redline_e2e::{eventually, federated_config, temp_dir, trust_key, ScriptedServer, TestNode};
use redline_proto::checkpoint::OriginSigner;
use redline_proto::entry::{self, Decoded};
use redline_proto::merkle::{leaf_hash, Hash, MemoryHashes};
use redline_proto::pb::{
    self, federation_server::Federation, federation_server::FederationServer, Checkpoint,
    ConsistencyProof, Entry, GetCheckpointsRequest, GetCheckpointsResponse,
    GetConsistencyProofRequest, GetEntriesRequest, GossipRequest, GossipResponse,
    WatchCheckpointsRequest,
};
use redline_server::config::Policy;
use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use support::run;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The origin whose signed log holds invalid leaves.
const ORIGIN: &str = "bad.example";
/// Generous bound for the follower to replicate (debug build, shared cores).
const LONG: Duration = Duration::from_secs(60);
/// When the origin says it created each entry.
const CREATED_AT_MS: u64 = 1_700_000_000_000;

/// The listed hashes: A, X (the invalid ADD), B, C. Far apart (random-looking bytes, over 100
/// bits from each other), so a Match within the default radius finds only the exact one.
const A: [u8; 32] = hash_of(0x1d);
const X: [u8; 32] = hash_of(0x52);
const B: [u8; 32] = hash_of(0x9b);
const C: [u8; 32] = hash_of(0xe4);

/// A fixed pseudo-random 32-byte PDQ hash from `seed` (xorshift over bytes).
const fn hash_of(seed: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut s: u32 = 0x9e37_79b9 ^ ((seed as u32) * 0x0101_0101);
    let mut i = 0;
    while i < 32 {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        out[i] = (s >> 24) as u8;
        i += 1;
    }
    out
}

/// The indexes of the invalid leaves in [`bad_log`].
const INVALID: [u64; 2] = [1, 3];

/// What the rule says the log holds: the active hashes (hex), exactly A and C.
fn expected_active() -> BTreeSet<String> {
    [A, C].iter().map(hex::encode).collect()
}

/// Every hash the log mentions: what the node is asked to match.
fn all_hashes() -> [[u8; 32]; 4] {
    [A, X, B, C]
}

/// The origin's signer: a fixed key, so every test serves the very same signed note.
fn signer() -> OriginSigner {
    OriginSigner::new(ORIGIN, SigningKey::from_bytes(&[0x5B; 32])).expect("signer")
}

fn pdq_add(hash: [u8; 32], quality: u32) -> pb::AddEntry {
    pb::AddEntry {
        signal_type: "pdq".into(),
        hash: hash.to_vec(),
        quality,
        labels: vec!["ncii".into()],
        legal_basis: "consent withdrawn".into(),
        case_ref: String::new(),
    }
}

/// The leaves of the table in the module documentation.
fn bad_log() -> Vec<Vec<u8>> {
    let valid_add = |h| entry::encode_add(pdq_add(h, 100), CREATED_AT_MS).expect("valid ADD");
    let a = valid_add(A);
    // `entry::encode_add` refuses quality 101, so the origin's bytes are encoded directly.
    let x = pb::EntryBody {
        format_version: entry::FORMAT_VERSION,
        created_at_ms: CREATED_AT_MS,
        kind: Some(pb::entry_body::Kind::Add(pdq_add(X, 101))),
    }
    .encode_to_vec();
    let b = valid_add(B);
    // A well-formed RETRACT of index 0 that names a leaf hash index 0 does not have.
    let wrong = entry::encode_retract(0, &Hash([0xEE; 32]), "false positive", CREATED_AT_MS)
        .expect("well-formed RETRACT");
    let c = valid_add(C);
    let retract_b = entry::encode_retract(2, &leaf_hash(&b), "false positive", CREATED_AT_MS)
        .expect("valid RETRACT");
    let leaves = vec![a, x, b, wrong, c, retract_b];
    // The fixture is what the table says: leaf 1 is an ADD the codec refuses; leaf 3 decodes
    // (it is invalid only by the retraction rule, against index 0's real leaf hash).
    assert!(
        entry::decode(&leaves[1]).is_err(),
        "leaf 1 is an invalid ADD"
    );
    assert!(matches!(entry::decode(&leaves[3]), Ok(Decoded::Retract(_))));
    assert_ne!(leaf_hash(&leaves[0]).0, [0xEE; 32]);
    let hashes = all_hashes();
    for (i, h) in hashes.iter().enumerate() {
        for g in &hashes[i + 1..] {
            let bits: u32 = h.iter().zip(g).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert!(bits > 64, "the listed hashes are {bits} bits apart");
        }
    }
    leaves
}

/// A Federation peer holding one signed log of [`ORIGIN`]: its one checkpoint on every
/// checkpoint call (and as the first push of a watch), its leaves on `GetEntries`.
#[derive(Clone)]
struct Served(Arc<ServedLog>);

struct ServedLog {
    leaves: Vec<Vec<u8>>,
    checkpoint: Checkpoint,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for Served {
    async fn get_checkpoints(
        &self,
        _req: Request<GetCheckpointsRequest>,
    ) -> Result<Response<GetCheckpointsResponse>, Status> {
        Ok(Response::new(GetCheckpointsResponse {
            checkpoints: vec![self.0.checkpoint.clone()],
        }))
    }

    type GetEntriesStream = Boxed<Entry>;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let req = req.into_inner();
        if req.origin != ORIGIN {
            return Err(Status::not_found("no such origin"));
        }
        let end = req.end.min(self.0.leaves.len() as u64);
        let entries: Vec<Result<Entry, Status>> = (req.start..end)
            .map(|i| {
                Ok(Entry {
                    index: i,
                    data: self.0.leaves[i as usize].clone(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(entries))))
    }

    async fn get_consistency_proof(
        &self,
        _req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        // One checkpoint only: a follower starting from nothing needs no consistency proof.
        Err(Status::unimplemented("one checkpoint only"))
    }

    type WatchCheckpointsStream = Boxed<Checkpoint>;

    async fn watch_checkpoints(
        &self,
        _req: Request<WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        let first = tokio_stream::iter([Ok(self.0.checkpoint.clone())]);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::chain(
            first,
            futures::stream::pending(),
        ))))
    }

    async fn gossip(
        &self,
        _req: Request<GossipRequest>,
    ) -> Result<Response<GossipResponse>, Status> {
        Ok(Response::new(GossipResponse {
            checkpoints: vec![self.0.checkpoint.clone()],
        }))
    }
}

/// A follower node that has replicated the whole signed [`bad_log`] from a [`Served`] peer.
struct Setup {
    follower: TestNode,
    /// The origin's verifier key, as an auditor brings it.
    key: String,
    /// Size and root the origin signed.
    signed: (u64, [u8; 32]),
    _dir: tempfile::TempDir,
    _peer: ScriptedServer,
}

/// Serves the signed log and starts a follower trusting [`ORIGIN`] (`accept`) that follows the
/// peer; returns once the follower has committed the whole log.
async fn setup() -> Setup {
    let leaves = bad_log();
    let signer = signer();
    let mut tree = MemoryHashes::new();
    for l in &leaves {
        tree.push_leaf(l);
    }
    let signed = signer
        .sign_checkpoint(tree.size(), tree.root())
        .expect("sign the whole log");
    let served = Served(Arc::new(ServedLog {
        leaves,
        checkpoint: signed.to_pb(),
    }));
    let peer = ScriptedServer::start(
        tonic::transport::Server::builder().add_service(FederationServer::new(served)),
    )
    .await;
    let peer_url = peer.url.clone();

    let dir = temp_dir();
    let config = federated_config(
        "follower.example",
        dir.path(),
        &[&peer_url],
        vec![trust_key(signer.public(), Policy::Accept)],
        50,
    );
    let follower = TestNode::start(config).await;
    eventually(
        LONG,
        "the follower replicates bad.example's signed log",
        || {
            let done = follower.size_of(ORIGIN) == signed.size;
            async move { done }
        },
    )
    .await;
    Setup {
        follower,
        key: signer.public().verifier_key(),
        signed: (signed.size, signed.root.0),
        _dir: dir,
        _peer: peer,
    }
}

/// What the follower node makes of the log, over its public API.
#[derive(Debug, PartialEq)]
struct NodeVerdict {
    /// Hashes of the log (hex) that Match finds, at distance 0, for [`ORIGIN`].
    matched: BTreeSet<String>,
    /// `active_entries` of [`ORIGIN`] in Status.
    active: u64,
    /// Leaf indexes named by its `invalid_entries` evidence about [`ORIGIN`].
    invalid: BTreeSet<u64>,
}

/// The indexes an `invalid_entries` evidence detail names: each invalid leaf appears as
/// `leaf <index>: <reason>` (`redline_proto::replay::InvalidLeaf`'s display).
fn leaf_indexes(detail: &str) -> BTreeSet<u64> {
    detail
        .split("leaf ")
        .skip(1)
        .filter_map(|rest| rest.split(':').next()?.trim().parse().ok())
        .collect()
}

async fn node_verdict(s: &Setup) -> NodeVerdict {
    let url = &s.follower.url;
    let mut matched = BTreeSet::new();
    for h in all_hashes() {
        if lists(url, ORIGIN, &h).await {
            matched.insert(hex::encode(h));
        }
    }
    let st = status(url).await.expect("the follower answers Status");
    let active = st
        .origins
        .iter()
        .find(|o| o.origin == ORIGIN)
        .map(|o| o.active_entries)
        .expect("Status lists bad.example");
    let invalid = evidence(url, ORIGIN)
        .await
        .iter()
        .filter(|e| e.reason == "invalid_entries")
        .flat_map(|e| leaf_indexes(&e.detail))
        .collect();
    NodeVerdict {
        matched,
        active,
        invalid,
    }
}

/// The verdict the rule gives for [`bad_log`].
fn expected_verdict() -> NodeVerdict {
    NodeVerdict {
        matched: expected_active(),
        active: 2,
        invalid: INVALID.into_iter().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_keeps_the_log_and_never_matches_its_invalid_leaves() {
    let s = setup().await;
    let url = &s.follower.url;

    // Kept byte for byte: the follower committed the whole log and its root is the signed one
    // (the invalid leaves included; a node that dropped or rewrote them would differ).
    assert_eq!(s.follower.head_of(ORIGIN), s.signed);

    // The invalid ADD is never matched.
    assert!(
        !lists(url, ORIGIN, &X).await,
        "the invalid ADD (leaf 1) is matched"
    );
    // The invalid RETRACT (leaf 3) retracted nothing: its target A is still matched.
    assert!(
        lists(url, ORIGIN, &A).await,
        "A (leaf 0) was retracted by the invalid RETRACT at leaf 3"
    );
    // The valid leaves around them still count: C is matched, B is withdrawn by leaf 5.
    assert!(lists(url, ORIGIN, &C).await, "C (leaf 4) is not matched");
    assert!(
        !lists(url, ORIGIN, &B).await,
        "B (leaf 2) is matched after its valid RETRACT"
    );

    // The whole verdict: exactly {A, C} active (in Match and in Status' count), and evidence
    // with reason "invalid_entries" naming exactly leaves 1 and 3.
    let ev = evidence(url, ORIGIN).await;
    assert!(
        ev.iter().any(|e| e.reason == "invalid_entries"),
        "no invalid_entries evidence: {ev:#?}"
    );
    assert_eq!(node_verdict(&s).await, expected_verdict(), "{ev:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_the_log_and_reports_its_invalid_leaves() {
    let s = setup().await;
    let url = s.follower.url.as_str();
    let node = node_verdict(&s).await;

    // The audit accepts the log (a validly signed log with invalid leaves is not a failure):
    // exit 0, and the origin verified.
    let r = run(&[
        "audit",
        "--node",
        url,
        "--key",
        &s.key,
        "--allow-unknown",
        "--json",
    ])
    .await
    .ok();
    let j = r.json();
    assert_eq!(j["ok"], true, "{r:#?}");
    let origin = j["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .find(|o| o["origin"] == ORIGIN)
        .unwrap_or_else(|| panic!("no {ORIGIN} in the audit: {r:#?}"));
    assert_eq!(origin["status"], "verified", "{r:#?}");
    let report = &origin["report"];
    // It verified the whole signed log.
    assert_eq!(report["size"], s.signed.0, "{r:#?}");
    assert_eq!(report["root"], hex::encode(s.signed.1), "{r:#?}");
    // The same invalid leaves as the rule and the node: exactly 1 and 3, each with its reason.
    assert_eq!(report["invalid"], INVALID.len(), "{r:#?}");
    let listed = report["invalid_leaves"].as_array().expect("invalid_leaves");
    let indexes: BTreeSet<u64> = listed.iter().filter_map(|l| l["index"].as_u64()).collect();
    assert_eq!(indexes, INVALID.into_iter().collect(), "{r:#?}");
    assert_eq!(indexes, node.invalid, "the node names other invalid leaves");
    let reason = |i: u64| {
        listed
            .iter()
            .find(|l| l["index"] == i)
            .and_then(|l| l["reason"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(reason(1).contains("quality"), "{r:#?}");
    assert!(reason(3).contains("leaf hash"), "{r:#?}");
    // The same active count as the node (A and C): the invalid ADD is not counted, the target
    // of the invalid RETRACT is.
    assert_eq!(report["active"], 2, "{r:#?}");
    assert_eq!(
        report["active"], node.active,
        "the node counts another active set"
    );

    // The text report says the same, one line per invalid leaf.
    let r = run(&["audit", "--node", url, "--key", &s.key, "--allow-unknown"])
        .await
        .ok();
    for i in INVALID {
        assert!(
            r.stdout.contains(&format!(
                "invalid leaf {i} (kept in the log, never matched): "
            )),
            "{r:#?}"
        );
    }
    assert!(r.stdout.contains("result: OK"), "{r:#?}");

    // Offline, over a dump of the same log, the verdict is the same.
    let work = temp_dir();
    let dump = work.path().join("dump");
    let dump = dump.to_str().expect("utf-8 path");
    run(&[
        "audit",
        "--node",
        url,
        "--key",
        &s.key,
        "--allow-unknown",
        "--export",
        dump,
    ])
    .await
    .ok();
    let r = run(&[
        "audit",
        "--offline",
        dump,
        "--key",
        &s.key,
        "--allow-unknown",
        "--json",
    ])
    .await
    .ok();
    let j = r.json();
    let offline = j["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .find(|o| o["origin"] == ORIGIN)
        .unwrap_or_else(|| panic!("no {ORIGIN} in the offline audit: {r:#?}"));
    assert_eq!(offline["status"], "verified", "{r:#?}");
    assert_eq!(offline["report"]["invalid"], report["invalid"], "{r:#?}");
    assert_eq!(
        offline["report"]["invalid_leaves"], report["invalid_leaves"],
        "{r:#?}"
    );
    assert_eq!(offline["report"]["active"], report["active"], "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_lists_exactly_what_the_node_matches() {
    let s = setup().await;
    let url = s.follower.url.as_str();
    let node = node_verdict(&s).await;

    // The export succeeds (the log verifies, its invalid leaves notwithstanding) and says it
    // skipped them.
    let r = run(&[
        "export",
        "--node",
        url,
        "--origin",
        ORIGIN,
        "--key",
        &s.key,
        "--format",
        "threatexchange-csv",
    ])
    .await
    .ok();
    assert!(
        r.stderr.contains("2 invalid leaves skipped"),
        "the export does not report the invalid leaves: {r:#?}"
    );

    let mut rows = r.stdout.lines();
    assert_eq!(
        rows.next(),
        Some("signal_type,signal_str,collab,category,tags"),
        "{r:#?}"
    );
    let mut exported = BTreeSet::new();
    for row in rows {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols.len(), 5, "{row}");
        assert_eq!((cols[0], cols[2]), ("pdq", ORIGIN), "{row}");
        assert!(exported.insert(cols[1].to_owned()), "listed twice: {row}");
    }
    // Not the invalid ADD (leaf 1), nor B (validly retracted by leaf 5).
    assert!(!exported.contains(&hex::encode(X)), "{r:#?}");
    assert!(!exported.contains(&hex::encode(B)), "{r:#?}");
    // A, the target of the invalid RETRACT (leaf 3), is still listed.
    assert!(exported.contains(&hex::encode(A)), "{r:#?}");
    // Exactly the active hashes, {A, C}: the same set the node matches.
    assert_eq!(exported, expected_active(), "{r:#?}");
    assert_eq!(exported, node.matched, "the node matches another set");
}
