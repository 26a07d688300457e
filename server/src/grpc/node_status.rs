//! `redline.v1.Node`: the operator's view of a node.

use crate::node::Node;
use redline_proto::pb::{node_server, OriginStatus, PeerStatus, StatusRequest, StatusResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Handlers.
#[derive(Debug, Clone)]
pub struct NodeService {
    node: Arc<Node>,
}

impl NodeService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl node_server::Node for NodeService {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let node = self.node.clone();
        let resp = tokio::task::spawn_blocking(move || {
            let mut origins = Vec::new();
            for (name, log) in node.logs() {
                let state = log.state();
                let policy = node
                    .trust()
                    .get(&name)
                    .map_or("untrusted", |t| t.policy_name());
                origins.push(OriginStatus {
                    origin: name.clone(),
                    policy: policy.to_owned(),
                    tree_size: state.size(),
                    frozen: node.is_frozen(&name),
                    active_entries: node.catalog().active_count(state.id),
                });
            }
            for name in node.peers().untrusted() {
                if !origins.iter().any(|o| o.origin == name) {
                    origins.push(OriginStatus {
                        origin: name,
                        policy: "untrusted".to_owned(),
                        ..Default::default()
                    });
                }
            }
            let peers = node
                .peers()
                .snapshot()
                .into_iter()
                .map(|(url, s)| PeerStatus {
                    url,
                    last_sync_ms: s.last_sync_ms,
                    last_error: s.last_error,
                })
                .collect();
            StatusResponse {
                origin: node.origin().to_owned(),
                verifier_key: node.public_key().verifier_key(),
                origins,
                peers,
                evidence_count: node.evidence_count() as u64,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }
        })
        .await
        .map_err(|_| Status::internal("internal error"))?;
        Ok(Response::new(resp))
    }
}
