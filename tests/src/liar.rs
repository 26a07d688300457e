//! A lying node for auditors: a real tonic `Audit` server on `127.0.0.1:0` that holds one real
//! origin, [`ORIGIN`] — a real signing key, [`SIZE`] real ADD leaves, their real tree and the
//! checkpoint signed over it — and serves it as an honest node would, except for the one
//! [`Lie`] it is scripted to tell. Only the signed note and the leaf bytes are something an
//! auditor can check; the lies are all in the fields a node makes up (`Checkpoint.tree_size`,
//! `Checkpoint.root_hash`, the proofs, how many leaves a stream holds), so an auditor that
//! trusts only signatures catches every one of them.
//!
//! Leaves are made on demand from their index ([`crate::adversary::honest_leaf`]), so the
//! lies that offer 2^40 of them ([`Lie::HugeTreeSize`], [`Lie::ExtraLeaves`]) stream lazily and
//! the liar's own memory stays small however long the auditor keeps reading.

use crate::adversary::honest_leaf;
use crate::relay::fabricated_leaf;
use crate::ScriptedServer;
use futures::StreamExt;
use redline_proto::checkpoint::{OriginSigner, SignedCheckpoint};
use redline_proto::merkle::{self, MemoryHashes};
use redline_proto::pb::{
    audit_server::Audit, audit_server::AuditServer, Checkpoint, ConsistencyProof, Entry,
    GetCheckpointRequest, GetConsistencyProofRequest, GetEntriesRequest, GetInclusionProofRequest,
    InclusionProof, ListEvidenceRequest, ListEvidenceResponse, ListOriginsRequest,
    ListOriginsResponse, OriginInfo,
};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The liar's origin.
pub const ORIGIN: &str = "liar.example";

/// Size of the origin's real, signed log.
pub const SIZE: u64 = 5;

/// The size [`Lie::HugeTreeSize`] advertises and how far [`Lie::ExtraLeaves`] streams: 2^40.
pub const HUGE: u64 = 1 << 40;

/// What the liar lies about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// Nothing: a valid node (the control, so a failure elsewhere comes from the lie).
    None,
    /// The true signed note and the true leaves, but `Checkpoint.root_hash` is the root of
    /// another 5-leaf tree and every inclusion proof is made in that tree: valid for the fake
    /// root, not for the signed one. The fake tree keeps the real leaves at the first and last
    /// index (only the middle three differ), so an auditor that checks proofs against
    /// `root_hash` and samples only those two indexes is fooled completely.
    FakeRootProofs,
    /// `Checkpoint.tree_size` is [`HUGE`] beside the signed note of size [`SIZE`] (root_hash
    /// true), and entries are served for any range below [`HUGE`], made on the fly.
    HugeTreeSize,
    /// Honest checkpoint, but every entries stream goes on past the end asked for, with valid
    /// leaves at increasing indexes, up to [`HUGE`] or until the auditor hangs up.
    ExtraLeaves,
}

/// The fake tree of [`Lie::FakeRootProofs`]: the real first and last leaves around fabricated
/// middle ones.
fn fake_leaf(index: u64) -> Vec<u8> {
    if index == 0 || index == SIZE - 1 {
        honest_leaf(index)
    } else {
        fabricated_leaf(index)
    }
}

fn tree_of(leaf: impl Fn(u64) -> Vec<u8>) -> MemoryHashes {
    let mut tree = MemoryHashes::new();
    for i in 0..SIZE {
        tree.push_leaf(&leaf(i));
    }
    tree
}

struct Shared {
    lie: Lie,
    signer: OriginSigner,
    signed: SignedCheckpoint,
    /// The real tree (its root is the signed one).
    tree: MemoryHashes,
    /// The tree [`Lie::FakeRootProofs`] proves against.
    fake: MemoryHashes,
    /// Entries put on the wire so far (all streams).
    served: AtomicU64,
}

impl Shared {
    /// The checkpoint as this node presents it.
    fn checkpoint(&self) -> Checkpoint {
        let mut cp = self.signed.to_pb();
        match self.lie {
            Lie::FakeRootProofs => cp.root_hash = self.fake.root().0.to_vec(),
            Lie::HugeTreeSize => cp.tree_size = HUGE,
            Lie::None | Lie::ExtraLeaves => {}
        }
        cp
    }

    /// The size this node claims (what `end`/`tree_size` 0 stands for).
    fn claimed_size(&self) -> u64 {
        self.checkpoint().tree_size
    }

    fn origin(&self, origin: &str) -> Result<(), Status> {
        if origin == ORIGIN {
            Ok(())
        } else {
            Err(Status::not_found(format!("unknown origin {origin:?}")))
        }
    }

    /// The tree proofs are made in, for a size up to [`SIZE`].
    fn proving_tree(&self, size: u64) -> Result<&MemoryHashes, Status> {
        if size > SIZE {
            // Even the liar cannot prove anything about leaves it never had a tree for.
            return Err(Status::out_of_range(format!(
                "tree size {size} is past the latest checkpoint ({SIZE})"
            )));
        }
        Ok(if self.lie == Lie::FakeRootProofs {
            &self.fake
        } else {
            &self.tree
        })
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<Entry, Status>> + Send>>;

#[derive(Clone)]
struct LiarService(Arc<Shared>);

#[tonic::async_trait]
impl Audit for LiarService {
    async fn list_origins(
        &self,
        _req: Request<ListOriginsRequest>,
    ) -> Result<Response<ListOriginsResponse>, Status> {
        Ok(Response::new(ListOriginsResponse {
            origins: vec![OriginInfo {
                origin: ORIGIN.to_owned(),
                verifier_key: self.0.signer.public().verifier_key(),
                checkpoint: Some(self.0.checkpoint()),
                policy: "own".to_owned(),
                frozen: false,
            }],
        }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<GetCheckpointRequest>,
    ) -> Result<Response<Checkpoint>, Status> {
        self.0.origin(&req.into_inner().origin)?;
        Ok(Response::new(self.0.checkpoint()))
    }

    type GetEntriesStream = EntryStream;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let req = req.into_inner();
        self.0.origin(&req.origin)?;
        let claimed = self.0.claimed_size();
        let end = if req.end == 0 { claimed } else { req.end };
        if req.start > end || end > claimed {
            return Err(Status::out_of_range(format!(
                "entries [{}, {end}) are not below the latest checkpoint ({claimed})",
                req.start
            )));
        }
        // What is actually streamed: made one leaf at a time as tonic pulls the stream.
        let end = match self.0.lie {
            Lie::ExtraLeaves => HUGE,
            Lie::None | Lie::FakeRootProofs | Lie::HugeTreeSize => end,
        };
        let shared = self.0.clone();
        let entries = futures::stream::iter(req.start..end).map(move |index| {
            shared.served.fetch_add(1, Ordering::Relaxed);
            Ok(Entry {
                index,
                data: honest_leaf(index),
            })
        });
        Ok(Response::new(Box::pin(entries)))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<GetInclusionProofRequest>,
    ) -> Result<Response<InclusionProof>, Status> {
        let req = req.into_inner();
        self.0.origin(&req.origin)?;
        let size = if req.tree_size == 0 {
            SIZE
        } else {
            req.tree_size
        };
        let tree = self.0.proving_tree(size)?;
        let hashes = merkle::inclusion_proof(req.index, size, tree)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(InclusionProof {
            index: req.index,
            tree_size: size,
            hashes: hashes.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        let req = req.into_inner();
        self.0.origin(&req.origin)?;
        let new_size = if req.new_size == 0 {
            SIZE
        } else {
            req.new_size
        };
        let tree = self.0.proving_tree(new_size)?;
        let hashes = merkle::consistency_proof(req.old_size, new_size, tree)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(ConsistencyProof {
            old_size: req.old_size,
            new_size,
            hashes: hashes.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn list_evidence(
        &self,
        _req: Request<ListEvidenceRequest>,
    ) -> Result<Response<ListEvidenceResponse>, Status> {
        Ok(Response::new(ListEvidenceResponse::default()))
    }
}

/// A running lying node.
pub struct LiarNode {
    /// Its `http://127.0.0.1:PORT` URL (the auditor's `--node`).
    pub url: String,
    /// The origin's real verifier key (the auditor's `--key`).
    pub verifier_key: String,
    shared: Arc<Shared>,
    server: ScriptedServer,
}

impl std::fmt::Debug for LiarNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiarNode")
            .field("url", &self.url)
            .field("lie", &self.shared.lie)
            .finish_non_exhaustive()
    }
}

impl LiarNode {
    /// Generates the origin's key, log and signed checkpoint and starts serving them, telling
    /// `lie`.
    pub async fn start(lie: Lie) -> LiarNode {
        let signer = OriginSigner::generate(ORIGIN).expect("origin key");
        let tree = tree_of(honest_leaf);
        let fake = tree_of(fake_leaf);
        assert_ne!(tree.root(), fake.root(), "the fake tree differs");
        let signed = signer
            .sign_checkpoint(SIZE, tree.root())
            .expect("sign the checkpoint");
        let verifier_key = signer.public().verifier_key();
        let shared = Arc::new(Shared {
            lie,
            signer,
            signed,
            tree,
            fake,
            served: AtomicU64::new(0),
        });
        let server = ScriptedServer::start(
            tonic::transport::Server::builder()
                .add_service(AuditServer::new(LiarService(shared.clone()))),
        )
        .await;
        LiarNode {
            url: server.url.clone(),
            verifier_key,
            shared,
            server,
        }
    }

    /// What it lies about.
    pub fn lie(&self) -> Lie {
        self.shared.lie
    }

    /// The checkpoint it presents (with its lie in it).
    pub fn checkpoint(&self) -> Checkpoint {
        self.shared.checkpoint()
    }

    /// The checkpoint the origin really signed.
    pub fn signed(&self) -> &SignedCheckpoint {
        &self.shared.signed
    }

    /// Entries put on the wire so far, over all streams.
    pub fn entries_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Stops serving; endless streams still open are cut.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
