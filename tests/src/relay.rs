//! A lying relay: a real tonic `Federation` server on `127.0.0.1:0` that proxies every call to
//! an honest node's Federation service and, depending on its current [`Lie`], tampers with what
//! it forwards about one origin. Nodes that follow it must merge none of the lies, keep
//! evidence naming the relay, and still converge through an honest path.
//!
//! The lie can be changed while the relay runs ([`Relay::set_lie`]), so a test can let a
//! follower sync honestly first and then start lying (a replay needs an older checkpoint the
//! follower has already moved past).

use crate::ScriptedServer;
use futures::StreamExt;
use prost::Message;
use redline_proto::checkpoint::OriginSigner;
use redline_proto::merkle::{Hash, MemoryHashes};
use redline_proto::pb::{
    self, federation_client::FederationClient, federation_server::Federation,
    federation_server::FederationServer, Checkpoint, ConsistencyProof, Entry,
    GetCheckpointsRequest, GetCheckpointsResponse, GetConsistencyProofRequest, GetEntriesRequest,
    GossipRequest, GossipResponse, WatchCheckpointsRequest,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// What the relay lies about (always about one origin; other origins pass through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lie {
    /// Forwards everything unchanged.
    Honest,
    /// Flips one bit of the hash inside the ADD at this index (still a valid entry).
    AlterEntry(u64),
    /// Leaves out the entry at this index and renumbers the ones after it, so the indexes
    /// it sends still look consecutive.
    DropEntry(u64),
    /// Swaps the bytes of the entries at these two indexes (indexes unchanged).
    Swap(u64, u64),
    /// Offers the origin's real signed checkpoint of this size, which it saw earlier, instead
    /// of any newer one (a freeze attack: hiding the origin's later entries).
    Replay(u64),
    /// Signs its own checkpoint under the origin's name with its own key, `extra` entries past
    /// the real size, over the real entries followed by fabricated ones, and serves those.
    Forge {
        /// Fabricated entries appended.
        extra: u64,
    },
    /// Offers the origin's real checkpoint but serves entries of a different history it made
    /// itself (every entry fabricated).
    OtherHistory,
    /// Offers real checkpoints but never answers a request for the origin's entries (the
    /// stream stays open and silent).
    Stall,
}

/// The hash inside the fabricated ADD at `index` (forged and other-history entries), so tests
/// can check no follower ever lists it.
pub fn fabricated_hash(index: u64) -> [u8; 32] {
    let mut h = [0xA5u8; 32];
    h[..8].copy_from_slice(&index.to_be_bytes());
    h[31] = 0x5A;
    h
}

/// A fabricated, well-formed ADD leaf.
pub fn fabricated_leaf(index: u64) -> Vec<u8> {
    pdq_add_leaf(fabricated_hash(index), "made up by a relay")
}

/// A well-formed ADD leaf listing PDQ `hash` as `ncii` under `legal_basis`.
pub fn pdq_add_leaf(hash: [u8; 32], legal_basis: &str) -> Vec<u8> {
    redline_proto::entry::encode_add(
        pb::AddEntry {
            signal_type: "pdq".into(),
            hash: hash.to_vec(),
            quality: 100,
            labels: vec!["ncii".into()],
            legal_basis: legal_basis.into(),
            case_ref: String::new(),
        },
        1,
    )
    .expect("valid entry")
}

/// The hash of `data` (an ADD leaf) with one bit flipped, as [`Lie::AlterEntry`] sends it.
pub fn altered_hash(data: &[u8]) -> Option<Vec<u8>> {
    let body = pb::EntryBody::decode(data).ok()?;
    match body.kind? {
        pb::entry_body::Kind::Add(mut add) => {
            add.hash[0] ^= 1;
            Some(add.hash)
        }
        pb::entry_body::Kind::Retract(_) => None,
    }
}

fn alter(data: &[u8]) -> Vec<u8> {
    let Ok(mut body) = pb::EntryBody::decode(data) else {
        let mut d = data.to_vec();
        d[0] ^= 1;
        return d;
    };
    match body.kind.as_mut() {
        Some(pb::entry_body::Kind::Add(add)) => add.hash[0] ^= 1,
        Some(pb::entry_body::Kind::Retract(r)) => r.reason.push('!'),
        None => body.created_at_ms ^= 1,
    }
    body.encode_to_vec()
}

struct Shared {
    upstream: FederationClient<Channel>,
    origin: String,
    lie: Mutex<Lie>,
    /// Real checkpoints of `origin` seen from upstream, by size.
    seen: Mutex<HashMap<u64, Checkpoint>>,
    forger: OriginSigner,
    lies: AtomicU64,
    /// Watch proxies, aborted on stop so the upstream node is not kept busy by them.
    watchers: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn lie(&self) -> Lie {
        self.lie.lock().expect("lie lock").clone()
    }

    fn told(&self) {
        self.lies.fetch_add(1, Ordering::Relaxed);
    }

    async fn real_entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, Status> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut up = self.upstream.clone();
        let stream = up
            .get_entries(GetEntriesRequest {
                origin: self.origin.clone(),
                start,
                end,
            })
            .await?
            .into_inner();
        stream.collect::<Vec<_>>().await.into_iter().collect()
    }

    /// What the relay offers instead of the real checkpoint `cp`.
    async fn offer(&self, cp: Checkpoint) -> Result<Checkpoint, Status> {
        if cp.origin != self.origin {
            return Ok(cp);
        }
        self.seen
            .lock()
            .expect("seen lock")
            .insert(cp.tree_size, cp.clone());
        match self.lie() {
            Lie::Replay(size) => {
                let old = self.seen.lock().expect("seen lock").get(&size).cloned();
                match old {
                    Some(old) if old.tree_size < cp.tree_size => {
                        self.told();
                        Ok(old)
                    }
                    _ => Ok(cp),
                }
            }
            Lie::Forge { extra } => {
                let real = self.real_entries(0, cp.tree_size).await?;
                let mut tree = MemoryHashes::new();
                for e in &real {
                    tree.push_leaf(&e.data);
                }
                for i in cp.tree_size..cp.tree_size + extra {
                    tree.push_leaf(&fabricated_leaf(i));
                }
                let root: Hash = tree.root();
                let forged = self
                    .forger
                    .sign_checkpoint(tree.size(), root)
                    .map_err(|e| Status::internal(e.to_string()))?;
                self.told();
                Ok(forged.to_pb())
            }
            _ => Ok(cp),
        }
    }

    async fn offers(&self, cps: Vec<Checkpoint>) -> Result<Vec<Checkpoint>, Status> {
        let mut out = Vec::with_capacity(cps.len());
        for cp in cps {
            out.push(self.offer(cp).await?);
        }
        Ok(out)
    }

    /// What the relay serves for entries `[start, end)` of `origin`.
    async fn entries(&self, req: GetEntriesRequest) -> Result<Vec<Entry>, Status> {
        if req.origin != self.origin {
            let mut up = self.upstream.clone();
            let stream = up.get_entries(req).await?.into_inner();
            return stream.collect::<Vec<_>>().await.into_iter().collect();
        }
        let (start, end) = (req.start, req.end);
        match self.lie() {
            Lie::Honest | Lie::Replay(_) | Lie::Stall => self.real_entries(start, end).await,
            Lie::AlterEntry(i) => {
                let mut v = self.real_entries(start, end).await?;
                for e in &mut v {
                    if e.index == i {
                        e.data = alter(&e.data);
                        self.told();
                    }
                }
                Ok(v)
            }
            Lie::DropEntry(i) => {
                let v = self.real_entries(start, end).await?;
                let before = v.len();
                let out: Vec<Entry> = v
                    .into_iter()
                    .filter(|e| e.index != i)
                    .map(|mut e| {
                        if e.index > i {
                            e.index -= 1;
                        }
                        e
                    })
                    .collect();
                if out.len() != before {
                    self.told();
                }
                Ok(out)
            }
            Lie::Swap(a, b) => {
                let mut v = self.real_entries(start, end).await?;
                let pa = v.iter().position(|e| e.index == a);
                let pb = v.iter().position(|e| e.index == b);
                if let (Some(pa), Some(pb)) = (pa, pb) {
                    let da = std::mem::take(&mut v[pa].data);
                    v[pa].data = std::mem::replace(&mut v[pb].data, da);
                    self.told();
                }
                Ok(v)
            }
            Lie::Forge { .. } => {
                let real_size = self
                    .seen
                    .lock()
                    .expect("seen lock")
                    .keys()
                    .copied()
                    .max()
                    .unwrap_or(0);
                let mut v = self.real_entries(start, end.min(real_size)).await?;
                for i in start.max(real_size)..end {
                    v.push(Entry {
                        index: i,
                        data: fabricated_leaf(i),
                    });
                    self.told();
                }
                Ok(v)
            }
            Lie::OtherHistory => {
                self.told();
                Ok((start..end)
                    .map(|i| Entry {
                        index: i,
                        data: fabricated_leaf(i),
                    })
                    .collect())
            }
        }
    }
}

#[derive(Clone)]
struct RelayService(Arc<Shared>);

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for RelayService {
    async fn get_checkpoints(
        &self,
        req: Request<GetCheckpointsRequest>,
    ) -> Result<Response<GetCheckpointsResponse>, Status> {
        let mut up = self.0.upstream.clone();
        let real = up.get_checkpoints(req.into_inner()).await?.into_inner();
        Ok(Response::new(GetCheckpointsResponse {
            checkpoints: self.0.offers(real.checkpoints).await?,
        }))
    }

    type GetEntriesStream = Boxed<Entry>;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        let req = req.into_inner();
        if req.origin == self.0.origin && self.0.lie() == Lie::Stall {
            self.0.told();
            return Ok(Response::new(Box::pin(futures::stream::pending())));
        }
        let v = self.0.entries(req).await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            v.into_iter().map(Ok),
        ))))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        let mut up = self.0.upstream.clone();
        up.get_consistency_proof(req.into_inner()).await
    }

    type WatchCheckpointsStream = Boxed<Checkpoint>;

    async fn watch_checkpoints(
        &self,
        req: Request<WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        let mut up = self.0.upstream.clone();
        let mut real = up.watch_checkpoints(req.into_inner()).await?.into_inner();
        let shared = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let proxy = tokio::spawn(async move {
            while let Some(item) = real.next().await {
                let item = match item {
                    Ok(cp) => shared.offer(cp).await,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        self.0.watchers.lock().expect("watchers lock").push(proxy);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn gossip(
        &self,
        req: Request<GossipRequest>,
    ) -> Result<Response<GossipResponse>, Status> {
        let mut up = self.0.upstream.clone();
        let real = up.gossip(req.into_inner()).await?.into_inner();
        Ok(Response::new(GossipResponse {
            checkpoints: self.0.offers(real.checkpoints).await?,
        }))
    }
}

/// A running lying relay.
pub struct Relay {
    /// Its `http://127.0.0.1:PORT` URL (what followers put in `[[peers]]`, and what their
    /// evidence must name).
    pub url: String,
    shared: Arc<Shared>,
    server: ScriptedServer,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("url", &self.url)
            .field("lie", &self.shared.lie())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts a relay in front of the node at `upstream` (its URL), lying about `origin`.
    pub async fn start(upstream: &str, origin: &str, lie: Lie) -> Relay {
        let channel = tonic::transport::Endpoint::from_shared(upstream.to_owned())
            .expect("upstream URL")
            .connect()
            .await
            .expect("relay connects upstream");
        let shared = Arc::new(Shared {
            upstream: FederationClient::new(channel).max_decoding_message_size(64 << 20),
            origin: origin.to_owned(),
            lie: Mutex::new(lie),
            seen: Mutex::new(HashMap::new()),
            forger: OriginSigner::generate(origin).expect("forger key"),
            lies: AtomicU64::new(0),
            watchers: Mutex::new(Vec::new()),
        });
        let svc =
            FederationServer::new(RelayService(shared.clone())).max_encoding_message_size(64 << 20);
        let server =
            ScriptedServer::start(tonic::transport::Server::builder().add_service(svc)).await;
        Relay {
            url: server.url.clone(),
            shared,
            server,
        }
    }

    /// Changes what the relay lies about from now on.
    pub fn set_lie(&self, lie: Lie) {
        *self.shared.lie.lock().expect("lie lock") = lie;
    }

    /// How many times it actually told a lie (served altered material).
    pub fn lies_told(&self) -> u64 {
        self.shared.lies.load(Ordering::Relaxed)
    }

    /// Stops the relay and every stream it proxies.
    pub async fn stop(self) {
        let watchers = std::mem::take(&mut *self.shared.watchers.lock().expect("watchers lock"));
        for w in watchers {
            w.abort();
            let _ = w.await;
        }
        self.server.stop().await;
    }
}
