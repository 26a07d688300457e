//! The HTTP/JSON API, served on the gRPC address itself: the node's listener speaks HTTP/1.1
//! and HTTP/2, and the [`guard`](crate::grpc::guard) sends every request whose content type is
//! not `application/grpc*` here, so one address, one TLS configuration and one set of tokens
//! serve both (platforms that run HMA or plain HTTP clients need no second port).
//!
//! - [`hma`]: Meta's Hasher-Matcher-Actioner paths and response shapes (`/m/lookup`,
//!   `/m/raw_lookup`, `/h/hash`, `/m/index/status`, `/status`, `/status/live`); an origin plays
//!   an HMA bank and its log index the bank content id.
//! - [`v1`]: Redline's own JSON API under `/v1/`, one lookup shape with provenance;
//!   [`v1_proof`]: `/v1/proof`, an entry's offline proof (C2SP tlog-proof); [`v1_submit`]:
//!   submit and retract; [`v1_logs`]: origins, checkpoints, entries and evidence;
//!   [`v1_status`]: the operator's status. [`params`] reads their query strings strictly.
//! - [`openapi`]: the OpenAPI 3.1 document of both, generated from the handlers.
//! - [`report`]: the victims' report API; [`pages`]: the report page and the hotline's
//!   console, static files.
//! - [`tlog`]: every log as C2SP tlog-tiles under `/tlog/<origin>/` (checkpoint, hash tiles,
//!   entry bundles), for transparency-log tools and CDNs; specified by C2SP, not in the
//!   OpenAPI document.
//!
//! Every handler converts to the gRPC request type and calls the same domain code the gRPC
//! handler calls (`grpc::matching::answer`), so there is no second matching path, and every
//! refusal is a gRPC status first (mapped once, in `grpc::error`) and then an HTTP status by
//! the table in [`error`].

pub mod error;
pub mod hma;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod report;
pub mod tlog;
pub mod v1;
pub mod v1_logs;
pub mod v1_proof;
pub mod v1_status;
pub mod v1_submit;

use crate::config::Scope;
use crate::node::Node;
pub use error::ApiError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// One path of the API: who may call it and its metric label (the path itself, from this fixed
/// table, so callers cannot mint label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The request path.
    pub path: &'static str,
    /// The token scopes any one of which admits a call; empty: anyone (the probes, and public
    /// tlog resources).
    pub scopes: &'static [Scope],
}

/// Every path served, with its scope. Matching-side calls need `match`, as `Matching` does in
/// gRPC; the probes are open like gRPC health.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/status",
        scopes: &[],
    },
    Route {
        path: "/status/live",
        scopes: &[],
    },
    Route {
        path: "/openapi.json",
        scopes: &[],
    },
    Route {
        path: "/m/index/status",
        scopes: &[Scope::Match],
    },
    Route {
        path: "/m/lookup",
        scopes: &[Scope::Match],
    },
    Route {
        path: "/m/raw_lookup",
        scopes: &[Scope::Match],
    },
    Route {
        path: "/h/hash",
        scopes: &[Scope::Match],
    },
    Route {
        path: "/v1/match",
        scopes: &[Scope::Match],
    },
    Route {
        path: "/v1/match/batch",
        scopes: &[Scope::Match],
    },
    // Writing to the own log, as the Submission service does.
    Route {
        path: "/v1/submit",
        scopes: &[Scope::Submit],
    },
    Route {
        path: "/v1/retract",
        scopes: &[Scope::Submit],
    },
    // Proofs, checkpoints, entries and evidence are read from the logs, as the Audit service
    // serves them.
    Route {
        path: "/v1/proof",
        scopes: &[Scope::Audit],
    },
    Route {
        path: "/v1/origins",
        scopes: &[Scope::Audit],
    },
    Route {
        path: "/v1/checkpoints",
        scopes: &[Scope::Audit],
    },
    Route {
        path: "/v1/entries",
        scopes: &[Scope::Audit],
    },
    Route {
        path: "/v1/evidence",
        scopes: &[Scope::Audit],
    },
    Route {
        path: "/v1/growth",
        scopes: &[Scope::Audit],
    },
    // The victim's page: no token (the reporter has none); bounded per address instead.
    Route {
        path: "/report/api/cases",
        scopes: &[],
    },
    Route {
        path: "/report/api/status",
        scopes: &[],
    },
    Route {
        path: "/report/api/withdraw",
        scopes: &[],
    },
    // Its review queue: changes to the list, like Submission.
    Route {
        path: "/v1/reports",
        scopes: &[Scope::Submit],
    },
    Route {
        path: "/v1/reports/approve",
        scopes: &[Scope::Submit],
    },
    Route {
        path: "/v1/reports/reject",
        scopes: &[Scope::Submit],
    },
    // The operator's view, as `Node.Status`.
    Route {
        path: "/v1/status",
        scopes: &[Scope::Admin],
    },
    Route {
        path: "/v1/origins/resume",
        scopes: &[Scope::Admin],
    },
];

/// The metric label of HTTP requests to paths not in [`ROUTES`].
pub const OTHER_LABEL: &str = "http other";

/// The route at `path`, if the API serves it.
pub fn route(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path)
}

/// Who may call `path` and its metric label: a [`ROUTES`] entry, or a tlog-tiles resource
/// (whose checkpoints and hash tiles are open when `public_tiles`). `None`: not served.
pub fn access(path: &str, public_tiles: bool) -> Option<Route> {
    match route(path) {
        Some(r) => Some(*r),
        None => tlog::Resource::parse(path)
            .map(|r| r.route(public_tiles))
            .or_else(|| pages::route(path)),
    }
}

/// The node behind the API once it is open, and whether it has caught up with its peers (what
/// `/status` reports, as gRPC health reports Matching).
#[derive(Debug, Clone, Default)]
pub struct HttpGate {
    node: Arc<OnceLock<Arc<Node>>>,
    caught_up: Arc<AtomicBool>,
}

impl HttpGate {
    /// Opens the API on `node`.
    pub fn open(&self, node: &Arc<Node>) {
        let _ = self.node.set(node.clone());
    }

    /// Records whether the node has caught up (Matching SERVING).
    pub fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Release);
    }

    /// Whether lookups would see everything the node should hold.
    pub fn ready(&self) -> bool {
        self.node.get().is_some() && self.caught_up.load(Ordering::Acquire)
    }

    /// The node, or 503 while it loads.
    pub fn node(&self) -> Result<&Arc<Node>, ApiError> {
        self.node.get().ok_or_else(|| {
            ApiError::from(tonic::Status::unavailable(
                "the node is still loading its catalog; retry shortly",
            ))
        })
    }
}

/// Largest body of the report calls and the operator's small actions: a report of `[report]
/// max_signals` hashes is a few KiB (vPDQ ones more); an unauthenticated caller gets no more
/// room than that.
const SMALL_JSON_BODY: usize = 256 * 1024;

/// The API's router; the guard in front of it has already checked the token.
pub fn router(gate: HttpGate, max_upload: usize) -> axum::Router {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    // Uploads (multipart photo/video) may be as large as the hashers accept, plus room for the
    // multipart framing; JSON bodies as large as a batch of 10,000 signals.
    let upload_limit = DefaultBodyLimit::max(max_upload.saturating_add(64 * 1024));
    axum::Router::new()
        .route("/status", get(hma::status))
        .route("/status/live", get(hma::status_live))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/m/index/status", get(hma::index_status))
        .route(
            "/m/lookup",
            get(hma::lookup_get)
                .post(hma::lookup_post)
                .layer(upload_limit),
        )
        .route("/m/raw_lookup", get(hma::raw_lookup))
        .route("/tlog/{*resource}", get(tlog::get))
        .route("/h/hash", post(hma::hash_post).layer(upload_limit))
        .route(
            "/v1/match",
            post(v1::match_one).layer(DefaultBodyLimit::max(v1::MAX_JSON_BODY)),
        )
        .route(
            "/v1/match/batch",
            post(v1::match_batch).layer(DefaultBodyLimit::max(v1::MAX_JSON_BODY)),
        )
        .route("/v1/proof", get(v1_proof::proof))
        .route(
            "/v1/submit",
            post(v1_submit::submit).layer(DefaultBodyLimit::max(v1::MAX_JSON_BODY)),
        )
        .route(
            "/v1/retract",
            post(v1_submit::retract).layer(DefaultBodyLimit::max(v1::MAX_JSON_BODY)),
        )
        .route("/v1/origins", get(v1_logs::origins))
        .route("/v1/checkpoints", get(v1_logs::checkpoints))
        .route("/v1/entries", get(v1_logs::entries))
        .route("/v1/evidence", get(v1_logs::evidence))
        .route("/v1/growth", get(v1_logs::growth))
        .route("/v1/status", get(v1_status::status))
        .route(
            "/v1/origins/resume",
            post(v1_status::resume).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .route("/report/", get(pages::get))
        .route("/report/{file}", get(pages::get))
        .route("/console/", get(pages::get))
        .route("/console/{file}", get(pages::get))
        .route(
            "/report/api/cases",
            post(report::open_case).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .route(
            "/report/api/status",
            post(report::case_status).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .route(
            "/report/api/withdraw",
            post(report::withdraw_case).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .route("/v1/reports", get(report::queue))
        .route(
            "/v1/reports/approve",
            post(report::approve).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .route(
            "/v1/reports/reject",
            post(report::reject).layer(DefaultBodyLimit::max(SMALL_JSON_BODY)),
        )
        .with_state(gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_table_once() {
        let mut paths: Vec<_> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ROUTES.len());
        assert_eq!(route("/m/lookup").unwrap().scopes, [Scope::Match]);
        assert!(route("/status").unwrap().scopes.is_empty());
        assert!(route("/m/lookup/").is_none());
        assert!(route("/redline.v1.Matching/Match").is_none());
    }
}
