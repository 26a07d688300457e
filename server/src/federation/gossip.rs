//! Gossip received: a peer lists the checkpoints it holds. Each is considered exactly as a
//! pulled checkpoint would be ([`replicate::consider`]: verified, judged, evidence kept);
//! nothing is fetched here (the sync loop fetches from the peers it follows). The answer is
//! what this node holds, so a split view is caught by either side.

use crate::federation::bounded::MAX_CHECKPOINTS;
use crate::federation::replicate;
use crate::node::Node;
use redline_proto::pb::Checkpoint;

/// Considers `checkpoints` gossiped by `from` at `peer` (`skipped` more were not decoded) and
/// returns the checkpoints this node holds.
pub async fn received(
    node: &Node,
    peer: Option<std::net::SocketAddr>,
    from: &str,
    checkpoints: Vec<Checkpoint>,
    skipped: u64,
) -> Vec<Checkpoint> {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let from = format!(
        "gossip from {:?} at {peer}",
        from.chars().take(64).collect::<String>()
    );
    if skipped > 0 {
        tracing::warn!(%from, skipped, "gossip listed more than {MAX_CHECKPOINTS} checkpoints; the rest were ignored");
    }
    for cp in &checkpoints {
        if let Err(e) = replicate::consider(node, cp, &from).await {
            tracing::error!(error = %e, "considering gossip failed");
        }
    }
    node.logs().held_checkpoints()
}
