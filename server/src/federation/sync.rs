//! One sync task per configured peer. It subscribes to the peer's pushed checkpoints first (so
//! nothing signed between the pull and the subscription is missed), then pulls every
//! checkpoint and exchanges gossip; after that it reacts to each push within the round trip, and
//! pulls + gossips again every `poll_interval_ms` as the fallback. A session that ends is retried
//! after a jittered delay ([`Backoff`]) that grows up to `backoff_max_ms` while sessions fail
//! before completing an exchange, and starts over after one that completed it. Sync is
//! incremental by tree size and resumes from the committed size after a restart or a cut
//! connection: nothing is committed until it verifies. Each completed exchange is reported to
//! the node's [`Readiness`](crate::node::Readiness).

use crate::federation::backoff::Backoff;
use crate::federation::client::{Peer, PeerError};
use crate::federation::peers::{OfferChannel, Offers};
use crate::federation::replicate::{consider, evidence, replicate, ReplicationError};
use crate::node::{Node, Reason};
use redline_proto::pb::{
    federation_client::FederationClient, Checkpoint, GetCheckpointsRequest, GossipRequest,
    WatchCheckpointsRequest,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
// Peer connections carry TLS and the peer's token (`federation::client`).
use crate::federation::client::PeerChannel as Channel;

/// A peer session ended (it is retried with backoff; the error is shown in `Status`).
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Connect(#[from] PeerError),
    #[error("watch: {0}")]
    Watch(tonic::Status),
    #[error("peer closed the watch stream")]
    WatchClosed,
    #[error("get checkpoints: {0}")]
    GetCheckpoints(tonic::Status),
    #[error("gossip: {0}")]
    Gossip(tonic::Status),
    #[error("fetching entries: {0}")]
    Fetch(ReplicationError),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts one task per configured peer; they stop when `shutdown` turns true.
pub fn spawn_all(
    node: Arc<Node>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let offers = Arc::new(Offers::default());
    node.config()
        .peers
        .iter()
        .map(|p| {
            node.peers().register(&p.url);
            tokio::spawn(run_peer(
                node.clone(),
                offers.clone(),
                p.url.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

async fn run_peer(
    node: Arc<Node>,
    offers: Arc<Offers>,
    url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let sync = &node.config().sync;
    let mut backoff = Backoff::new(sync.backoff_initial_ms, sync.backoff_max_ms);
    loop {
        let mut exchanged = false;
        let result = tokio::select! {
            r = session(&node, &offers, &url, &mut exchanged) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if exchanged {
            // A good session: the link worked, so whatever ended it, retry soon.
            backoff.reset();
        }
        let delay = backoff.next_delay();
        if let Err(e) = result {
            tracing::debug!(peer = %url, error = %e, retry_in_ms = delay.as_millis() as u64, "peer session ended");
            node.peers().failed(&url, &e.to_string());
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn connect(node: &Node, url: &str) -> Result<Peer, PeerError> {
    let peer = node.config().peers.iter().find(|p| p.url == url);
    let peer = peer
        .cloned()
        .unwrap_or_else(|| crate::config::PeerConfig::new(url));
    crate::federation::client::connect(&peer).await
}

/// One connection's life: watch, pull, gossip, then follow pushes. Sets `exchanged` once the
/// first exchange completed (the session was good, whatever ends it).
async fn session(
    node: &Arc<Node>,
    offers: &Offers,
    url: &str,
    exchanged: &mut bool,
) -> Result<(), SyncError> {
    let mut peer = connect(node, url).await?;
    let mut pushes = peer
        .federation
        .watch_checkpoints(WatchCheckpointsRequest {})
        .await
        .map_err(SyncError::Watch)?
        .into_inner();
    pull_and_gossip(node, offers, &mut peer, url).await?;
    *exchanged = true;
    let mut tick = tokio::time::interval(Duration::from_millis(
        node.config().sync.poll_interval_ms.max(100),
    ));
    tick.tick().await;
    loop {
        tokio::select! {
            msg = pushes.message() => match msg {
                Ok(Some(cp)) => {
                    handle(node, offers, &mut peer.federation, &cp, url, OfferChannel::Push).await?;
                    node.peers().ok(url, now_ms());
                }
                Ok(None) => return Err(SyncError::WatchClosed),
                Err(e) => return Err(SyncError::Watch(e)),
            },
            _ = tick.tick() => pull_and_gossip(node, offers, &mut peer, url).await?,
        }
    }
}

async fn pull_and_gossip(
    node: &Arc<Node>,
    offers: &Offers,
    peer: &mut Peer,
    url: &str,
) -> Result<(), SyncError> {
    let mut req = tonic::Request::new(GetCheckpointsRequest {});
    req.set_timeout(Duration::from_secs(30));
    let offered = peer
        .checkpoints(req)
        .await
        .map_err(SyncError::GetCheckpoints)?;
    skipped(url, "GetCheckpoints", offered.skipped);
    // Origin -> largest validly signed size this peer offered in this exchange.
    let mut verified = BTreeMap::new();
    let mut note = |offer: Option<(String, u64)>| {
        if let Some((origin, size)) = offer {
            let at = verified.entry(origin).or_insert(size);
            *at = (*at).max(size);
        }
    };
    for cp in &offered.checkpoints {
        note(
            handle(
                node,
                offers,
                &mut peer.federation,
                cp,
                url,
                OfferChannel::Pull,
            )
            .await?,
        );
    }
    let mut req = tonic::Request::new(GossipRequest {
        from: node.origin().to_owned(),
        checkpoints: node.logs().held_checkpoints(),
    });
    req.set_timeout(Duration::from_secs(30));
    let answer = peer.gossip(req).await.map_err(SyncError::Gossip)?;
    skipped(url, "Gossip", answer.skipped);
    for cp in &answer.checkpoints {
        note(
            handle(
                node,
                offers,
                &mut peer.federation,
                cp,
                url,
                OfferChannel::Pull,
            )
            .await?,
        );
    }
    node.peers().ok(url, now_ms());
    node.peers().readiness().exchange_completed(
        url,
        &verified,
        |origin| node.log(origin).map_or(0, |l| l.state().size()),
        |origin| node.is_frozen(origin),
    );
    Ok(())
}

fn skipped(url: &str, call: &str, n: u64) {
    if n > 0 {
        tracing::warn!(
            peer = %url,
            skipped = n,
            "the peer's {call} answer listed more than {} checkpoints; the rest were ignored",
            crate::federation::bounded::MAX_CHECKPOINTS
        );
    }
}

/// Considers one offered checkpoint and replicates up to it when it is ahead. A peer that
/// sends bad entries is abandoned for this round (evidence is kept); other peers may still
/// supply the same checkpoint. A validly signed checkpoint older than one the same peer
/// offered before on the same channel is a replay (an honest peer's logs only grow): it is
/// kept as evidence with both notes, and changes nothing else. Sizes compared are the signed
/// ones; the unsigned `tree_size` beside the note is never looked at. Returns the origin and
/// signed size of the offer when its signature verified.
async fn handle(
    node: &Arc<Node>,
    offers: &Offers,
    client: &mut FederationClient<Channel>,
    cp: &Checkpoint,
    url: &str,
    channel: OfferChannel,
) -> Result<Option<(String, u64)>, SyncError> {
    let verdict = consider(node, cp, url).await;
    let offer = verdict
        .as_ref()
        .ok()
        .and_then(|v| v.verified())
        .map(|v| (v.origin.clone(), v.size));
    if let Some(v) = verdict.as_ref().ok().and_then(|v| v.verified()) {
        if let Some((before, note)) = offers.offered(url, &v.origin, channel, v.size, &v.note) {
            let detail = format!(
                "{url} offered {}'s checkpoint of size {} after offering size {before} on its {}: \
                 an honest peer's logs only grow, so it is replaying an old checkpoint (hiding \
                 newer entries)",
                v.origin,
                v.size,
                channel.name()
            );
            if let Err(e) = evidence(
                node,
                &v.origin,
                url,
                Reason::Rollback,
                detail,
                vec![note, v.note.clone()],
            ) {
                tracing::error!(peer = %url, error = %e, "recording evidence failed");
            }
        }
    }
    match verdict {
        Ok(crate::federation::replicate::Verdict::Ahead(target)) => {
            let origin = target.origin.clone();
            match replicate(node, offers, client, target, url).await {
                Ok(_) => Ok(offer),
                Err(e @ (ReplicationError::Peer(_) | ReplicationError::Deadline { .. })) => {
                    Err(SyncError::Fetch(e))
                }
                Err(e) => {
                    tracing::warn!(peer = %url, %origin, error = %e, "replication refused");
                    Ok(offer)
                }
            }
        }
        Ok(_) => Ok(offer),
        Err(e) => {
            tracing::error!(peer = %url, error = %e, "considering a checkpoint failed");
            Ok(offer)
        }
    }
}
