//! C2SP `tlog-tiles` for every log the node holds, under `/tlog/<origin>/`: the signed
//! `checkpoint`, hash tiles `tile/<L>/<N>[.p/<W>]` and entry bundles
//! `tile/entries/<N>[.p/<W>]`, so any tlog client (Go's `sumdb/tlog`, a witness, a monitor)
//! reads and verifies a Redline log without speaking gRPC, and a CDN can cache it.
//!
//! Tiles are immutable (a tile's bytes are fixed by the entries below it, partial tiles too)
//! and served as such; the checkpoint changes with every commit and may be cached two
//! seconds. Which tiles a tree holds, and their bytes, is `redline_proto::tiles`.

use super::{ApiError, HttpGate, Route};
use crate::config::Scope;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use redline_proto::tiles::TileRef;

/// Where the tlog-tiles prefixes live: `/tlog/<origin>/`.
pub const PREFIX: &str = "/tlog/";

/// Who may read entry bundles: auditors and peers (perceptual hashes say something about the
/// images they come from).
const ENTRY_READERS: &[Scope] = &[Scope::Audit, Scope::Federate];

/// A tlog-tiles resource, as its path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `<prefix>/checkpoint`.
    Checkpoint { origin: &'a str },
    /// `<prefix>/tile/…`.
    Tile { origin: &'a str, tile: TileRef },
}

impl<'a> Resource<'a> {
    /// The resource at request path `path`, or `None` when it is not a tlog-tiles path. The
    /// origin is everything between `/tlog/` and the resource, so origins with slashes
    /// (`hotline.example/list`, as C2SP suggests) work; a tile path contains no `tile/`
    /// segment of its own, so the last one starts it.
    pub fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix(PREFIX)?;
        if let Some(origin) = rest.strip_suffix("/checkpoint") {
            return (!origin.is_empty()).then_some(Resource::Checkpoint { origin });
        }
        let at = rest.rfind("/tile/")?;
        let origin = &rest[..at];
        let tile = TileRef::parse(&rest[at + 1..]).ok()?;
        (!origin.is_empty()).then_some(Resource::Tile { origin, tile })
    }

    /// Who may read it (see [`crate::config::TilesConfig::public`]), and its metric label.
    pub fn route(&self, public: bool) -> Route {
        let scopes = if public { &[] } else { ENTRY_READERS };
        match self {
            Resource::Checkpoint { .. } => Route {
                path: "/tlog/{origin}/checkpoint",
                scopes,
            },
            Resource::Tile { tile, .. } if tile.is_entries() => Route {
                path: "/tlog/{origin}/tile/entries",
                scopes: ENTRY_READERS,
            },
            Resource::Tile { .. } => Route {
                path: "/tlog/{origin}/tile",
                scopes,
            },
        }
    }
}

/// `GET /tlog/{*resource}`: the guard has admitted the caller by [`Resource::route`].
pub async fn get(State(gate): State<HttpGate>, uri: Uri) -> Result<Response, ApiError> {
    let resource = Resource::parse(uri.path())
        .ok_or_else(|| ApiError::from(tonic::Status::not_found("not a tlog-tiles resource")))?;
    let node = gate.node()?;
    // An origin the node does not hold is `UnknownOrigin` (404) from either read below.
    let logs = node.logs();
    match resource {
        Resource::Checkpoint { origin } => {
            let checkpoint = logs.checkpoint(origin).map_err(tonic::Status::from)?;
            if !checkpoint.offerable() {
                // A follower catching up holds a prefix of the tree its note signs; the note
                // does not describe the tiles it can serve yet.
                return Err(ApiError::from(tonic::Status::unavailable(format!(
                    "{origin} is still being caught up to its checkpoint; retry shortly"
                ))));
            }
            Ok(respond(
                checkpoint.note,
                "text/plain; charset=utf-8",
                "max-age=2",
            ))
        }
        Resource::Tile { origin, tile } => {
            let bytes = logs.tile(origin, tile).await.map_err(tonic::Status::from)?;
            Ok(respond(
                bytes,
                "application/octet-stream",
                "max-age=31536000, immutable",
            ))
        }
    }
}

fn respond(body: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let mut resp = (StatusCode::OK, Body::from(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_origin_and_resource() {
        assert_eq!(
            Resource::parse("/tlog/hotline.example/list/checkpoint"),
            Some(Resource::Checkpoint {
                origin: "hotline.example/list"
            })
        );
        assert_eq!(
            Resource::parse("/tlog/a.example/tile/0/x001/002.p/3"),
            Some(Resource::Tile {
                origin: "a.example",
                tile: TileRef::hashes(0, 1002, 3).unwrap()
            })
        );
        let entries = Resource::parse("/tlog/tile/tile/entries/000").unwrap();
        assert_eq!(
            entries,
            Resource::Tile {
                origin: "tile",
                tile: TileRef::entries(0, 256).unwrap()
            }
        );
        for bad in [
            "/tlog/checkpoint",
            "/tlog//checkpoint",
            "/tlog/a.example/tile/0/5",
            "/tlog/a.example/tile/",
            "/tlog/a.example",
            "/m/lookup",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }

    /// Entry bundles always need `audit` or `federate`; checkpoints and hash tiles only
    /// when the node does not make them public.
    #[test]
    fn entry_bundles_are_never_public() {
        let entries = Resource::parse("/tlog/a/tile/entries/000").unwrap();
        let tile = Resource::parse("/tlog/a/tile/1/000").unwrap();
        let checkpoint = Resource::parse("/tlog/a/checkpoint").unwrap();
        for public in [false, true] {
            assert_eq!(entries.route(public).scopes, ENTRY_READERS);
        }
        assert!(tile.route(true).scopes.is_empty());
        assert!(checkpoint.route(true).scopes.is_empty());
        assert_eq!(tile.route(false).scopes, ENTRY_READERS);
        assert_eq!(checkpoint.route(false).scopes, ENTRY_READERS);
        assert_ne!(entries.route(true).path, tile.route(true).path);
    }
}
