//! The gRPC surface: one file per service with thin handlers, the error mapping, and the router
//! that puts them together with health, reflection and limits.

pub mod audit;
pub mod convert;
pub mod error;
pub mod federation;
pub mod matching;
pub mod node_status;
pub mod submission;

use crate::node::Node;
use redline_proto::pb;
use std::sync::Arc;
use tonic::transport::server::Router;
use tonic::transport::Server;

/// Builds the router with every service, message size limits and the unary deadline.
pub async fn router(node: Arc<Node>) -> Result<Router, Box<dyn std::error::Error + Send + Sync>> {
    let max = node.config().limits.max_message_bytes;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::audit_server::AuditServer<audit::AuditService>>()
        .await;
    health_reporter
        .set_serving::<pb::submission_server::SubmissionServer<submission::SubmissionService>>()
        .await;
    health_reporter
        .set_serving::<pb::federation_server::FederationServer<federation::FederationService>>()
        .await;
    health_reporter
        .set_serving::<pb::matching_server::MatchingServer<matching::MatchingService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let submission = pb::submission_server::SubmissionServer::new(
        submission::SubmissionService::new(node.clone()),
    )
    .max_decoding_message_size(max.max(node.hasher().max_image_bytes() + 64 * 1024))
    .max_encoding_message_size(max);
    let audit = pb::audit_server::AuditServer::new(audit::AuditService::new(node.clone()))
        .max_decoding_message_size(64 * 1024)
        .max_encoding_message_size(max);
    let federation = pb::federation_server::FederationServer::new(
        federation::FederationService::new(node.clone()),
    )
    .max_decoding_message_size(4 * 1024 * 1024)
    .max_encoding_message_size(max.max(64 * 1024 * 1024));
    let matching =
        pb::matching_server::MatchingServer::new(matching::MatchingService::new(node.clone()))
            .max_decoding_message_size(max.max(node.hasher().max_image_bytes() + 64 * 1024))
            .max_encoding_message_size(max);
    let status = pb::node_server::NodeServer::new(node_status::NodeService::new(node.clone()))
        .max_decoding_message_size(64 * 1024);

    Ok(Server::builder()
        .timeout(node.config().request_timeout())
        .concurrency_limit_per_connection(256)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(submission)
        .add_service(audit)
        .add_service(federation)
        .add_service(matching)
        .add_service(status))
}
