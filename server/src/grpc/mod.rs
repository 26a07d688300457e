//! The gRPC surface: one file per service with thin handlers, the error mapping, and the router
//! that puts them together with health, reflection and limits.

pub mod audit;
pub mod auth;
pub mod convert;
pub mod error;
pub mod federation;
pub mod guard;
pub mod matching;
pub mod methods;
pub mod node_status;
pub mod submission;
pub mod wire;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::Node;
use redline_proto::pb;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::Router;
use tonic::transport::Server;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A service that answers UNAVAILABLE until the node behind it is open, so the listener (and
/// health, which reports NOT_SERVING meanwhile) can serve while the catalog loads.
#[derive(Debug)]
pub struct Gate<S> {
    cell: Arc<OnceLock<S>>,
}

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Self {
            cell: self.cell.clone(),
        }
    }
}

impl<S> Gate<S> {
    fn new() -> Self {
        Self {
            cell: Arc::new(OnceLock::new()),
        }
    }

    fn open(&self, service: S) {
        let _ = self.cell.set(service);
    }
}

impl<S: NamedService> NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for Gate<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.cell.get() {
            Some(service) => {
                let mut service = service.clone();
                Box::pin(async move {
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(req).await
                })
            }
            None => Box::pin(std::future::ready(Ok(Status::unavailable(
                "the node is still loading its catalog; retry shortly",
            )
            .into_http()))),
        }
    }
}

use tonic::Status;

/// The generated Submission server behind a [`wire`] scan of its requests.
type SubmissionServer =
    wire::Scanned<pb::submission_server::SubmissionServer<submission::SubmissionService>>;
type AuditServer = pb::audit_server::AuditServer<audit::AuditService>;
/// The generated Federation server with a capped `Gossip` decoder in front.
type FederationServer = federation::FederationRoutes;
/// The generated Matching server behind a [`wire`] scan of its requests.
type MatchingServer = wire::Scanned<pb::matching_server::MatchingServer<matching::MatchingService>>;
type NodeServer = pb::node_server::NodeServer<node_status::NodeService>;

/// The router with every service, before the node behind them is open.
pub type GrpcRouter = Router<
    tower::layer::util::Stack<
        guard::GuardLayer,
        tower::layer::util::Stack<crate::net::CallTracker, tower::layer::util::Identity>,
    >,
>;

/// The services of a router built by [`router`]: open them once the node is loaded, and mark
/// them not serving when it stops.
#[derive(Debug, Clone)]
pub struct Services {
    health: tonic_health::server::HealthReporter,
    submission: Gate<SubmissionServer>,
    audit: Gate<AuditServer>,
    federation: Gate<FederationServer>,
    matching: Gate<MatchingServer>,
    status: Gate<NodeServer>,
    /// The HTTP/JSON API on the same address ([`crate::http`]).
    http: crate::http::HttpGate,
}

impl Services {
    /// Opens every service on `node` and reports them SERVING.
    ///
    /// Each service decodes requests of at most what its own requests can be: Submission and
    /// Matching what `max_batch`/`max_signals` signals, the label and text limits and one image
    /// add up to (their [`wire`] shapes, which also count the repeated fields as the bytes
    /// arrive, before anything is decoded), Audit and Node 64 KiB. `max_message_bytes` bounds
    /// responses.
    pub async fn open(&self, node: &Arc<Node>) {
        let config = node.config();
        let max = config.limits.max_message_bytes;
        let submit = submission::shapes(
            config.limits.max_batch,
            node.own_log().max_image_bytes(),
            node.own_log().max_video_bytes(),
        );
        let submit_max = wire::Scanned::<()>::max_message(&submit);
        self.submission.open(wire::Scanned::new(
            pb::submission_server::SubmissionServer::new(submission::SubmissionService::new(
                node.clone(),
            ))
            .max_decoding_message_size(submit_max)
            .max_encoding_message_size(max),
            submit,
        ));
        self.audit.open(
            AuditServer::new(audit::AuditService::new(node.clone()))
                .max_decoding_message_size(64 * 1024)
                .max_encoding_message_size(max),
        );
        self.federation.open(federation::FederationRoutes::new(
            node.clone(),
            4 * 1024 * 1024,
            max.max(64 * 1024 * 1024),
        ));
        let shapes = matching::shapes(
            config.matching.max_signals,
            node.matching().max_image_bytes(),
            node.matching().max_video_bytes(),
        );
        let match_max = wire::Scanned::<()>::max_message(&shapes);
        self.matching.open(wire::Scanned::new(
            pb::matching_server::MatchingServer::new(matching::MatchingService::new(node.clone()))
                .max_decoding_message_size(match_max)
                .max_encoding_message_size(max),
            shapes,
        ));
        self.status.open(
            NodeServer::new(node_status::NodeService::new(node.clone()))
                .max_decoding_message_size(64 * 1024),
        );
        self.http.open(node);
        self.set_serving(true).await;
    }

    /// Reports every service (and the whole server, `""`) SERVING or NOT_SERVING.
    pub async fn set_serving(&self, serving: bool) {
        use tonic_health::ServingStatus::{NotServing, Serving};
        let status = if serving { Serving } else { NotServing };
        for name in [
            "",
            <SubmissionServer as NamedService>::NAME,
            <AuditServer as NamedService>::NAME,
            <FederationServer as NamedService>::NAME,
            <MatchingServer as NamedService>::NAME,
            <NodeServer as NamedService>::NAME,
        ] {
            self.health.set_service_status(name, status).await;
        }
    }

    /// Reports the whole server (`""`) and Matching SERVING only once the node has caught up
    /// with its peers after start (`node::Readiness`): until then a Match would miss what the
    /// node has not replicated yet. The other services serve meanwhile (status for
    /// operators, federation and audit of what is held, submissions to the own list).
    pub async fn set_caught_up(&self, caught_up: bool) {
        use tonic_health::ServingStatus::{NotServing, Serving};
        let status = if caught_up { Serving } else { NotServing };
        for name in ["", <MatchingServer as NamedService>::NAME] {
            self.health.set_service_status(name, status).await;
        }
        self.http.set_caught_up(caught_up);
    }
}

/// Builds the router with every service behind the [`guard`] (tokens, scopes, rate limits,
/// metrics) and the call tracker of `connections` (idle timeout, [`crate::net::idle`]),
/// message size limits, the unary deadline and the maximum connection age. TLS is not here:
/// the listener's accept loop does it ([`crate::net`]). The node's services answer
/// UNAVAILABLE and health reports NOT_SERVING until [`Services::open`].
pub async fn router(
    config: &Config,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
    connections: Arc<crate::net::Connections>,
) -> Result<(GrpcRouter, Services), BoxError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let services = Services {
        health,
        submission: Gate::new(),
        audit: Gate::new(),
        federation: Gate::new(),
        matching: Gate::new(),
        status: Gate::new(),
        http: crate::http::HttpGate::default(),
    };
    services.set_serving(false).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let limits = &config.limits;
    let mut builder = Server::builder();
    if limits.max_connection_age_ms > 0 {
        // hyper's graceful shutdown of the connection: GOAWAY, open calls finish, then after
        // the grace the connection is closed anyway (endless streams included).
        builder = builder
            .max_connection_age(Duration::from_millis(limits.max_connection_age_ms))
            .max_connection_age_grace(Duration::from_millis(limits.max_connection_age_grace_ms));
    }
    let guard = guard::GuardLayer::new(auth::Tokens::new(&config.tokens), metrics, stopping)
        .with_streams(guard::StreamLimits::of(&config.limits))
        .with_public_tiles(config.tiles.public);
    let mut routes = tonic::service::RoutesBuilder::default();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(services.submission.clone())
        .add_service(services.audit.clone())
        .add_service(services.federation.clone())
        .add_service(services.matching.clone())
        .add_service(services.status.clone());
    // gRPC paths are `/package.Service/Method`, the API's are `/m/…`, `/h/…`, `/v1/…` and
    // `/status…`: one router holds both, and the guard sends each request to its side by
    // content type before any of them is reached.
    let max_upload = config
        .hashing
        .max_image_bytes
        .max(config.video.max_video_bytes);
    // grpc-web (`application/grpc-web[-text]`, what browser code sends) is translated to
    // gRPC on the gRPC routes only, after the guard (which admits it by content type, checks
    // its token and scope and charges its rate as for gRPC) and before the services and
    // their wire pre-scan (which then read plain gRPC frames, base64 of grpc-web-text
    // decoded). The HTTP API's routes never see the layer (tonic-web answers 400 to plain
    // HTTP/1.1 requests).
    let routes = tonic::service::Routes::from(
        routes
            .routes()
            .into_axum_router()
            .layer(tonic_web::GrpcWebLayer::new())
            .merge(crate::http::router(services.http.clone(), max_upload)),
    );
    let mut server = builder
        // HTTP/1.1 for the HTTP API's clients (HMA scripts, curl); gRPC stays HTTP/2.
        .accept_http1(true)
        .timeout(config.request_timeout())
        .concurrency_limit_per_connection(256)
        .max_concurrent_streams(Some(config.limits.max_concurrent_streams))
        .http2_keepalive_interval(Some(std::time::Duration::from_millis(
            config.limits.keepalive_interval_ms,
        )))
        .http2_keepalive_timeout(Some(std::time::Duration::from_millis(
            config.limits.keepalive_timeout_ms,
        )))
        .layer(crate::net::CallTracker::new(connections))
        .layer(guard);
    let router = server.add_routes(routes);
    Ok((router, services))
}
