//! The node's two web pages, static files from `[web] assets` (built by `web/build.sh`):
//!
//! - `/report/`, the victim's page (only when `[report] enabled`): she hashes her images in it
//!   and sends only hashes to the report API ([`super::report`]);
//! - `/console/`, the hotline's console (when `[web] console`): every panel calls the API with
//!   the analyst's own bearer token, typed into the page and never stored.
//!
//! Each page is a fixed set of file names with their content types, so no request path ever
//! reaches the filesystem, served with a strict Content-Security-Policy (scripts, styles and the
//! WebAssembly hasher from this node only; no frames, no forms, nothing from another host), no
//! caching and no referrer. Both pages are open (a page holds no data); what they call is not.

use super::{HttpGate, Route};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// A page the node can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/report/`.
    Report,
    /// `/console/`.
    Console,
}

impl Page {
    /// Its directory under `[web] assets`, which is also its path.
    pub fn dir(self) -> &'static str {
        match self {
            Page::Report => "report",
            Page::Console => "console",
        }
    }

    /// The metric label of every file of the page.
    fn label(self) -> &'static str {
        match self {
            Page::Report => "/report/ (page)",
            Page::Console => "/console/ (page)",
        }
    }
}

/// Every page's files and their content types.
const FILES: &[(&str, &str)] = &[
    ("index.html", "text/html; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("hashing.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("redline_web.wasm", "application/wasm"),
];

/// The pages' policy: their own scripts and the WebAssembly hasher they compile, their own
/// styles, images picked on the device (shown from `blob:` URLs, never uploaded), and calls
/// back to this node only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' \
    'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; \
    form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The page and file `path` names (`/report/` is the report page's `index.html`), if any.
pub fn file(path: &str) -> Option<(Page, &'static str, &'static str)> {
    [Page::Report, Page::Console].into_iter().find_map(|page| {
        let name = path
            .strip_prefix('/')?
            .strip_prefix(page.dir())?
            .strip_prefix('/')?;
        let name = if name.is_empty() { "index.html" } else { name };
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| (page, *n, *t))
    })
}

/// Who may fetch a page file: anyone.
pub fn route(path: &str) -> Option<Route> {
    file(path).map(|(page, ..)| Route {
        path: page.label(),
        scopes: &[],
    })
}

fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

/// `GET /report/…`, `GET /console/…`: one of a page's files.
pub async fn get(State(gate): State<HttpGate>, uri: Uri) -> Response {
    let Ok(node) = gate.node() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is starting; retry shortly",
        );
    };
    let config = node.config();
    let Some((page, name, content_type)) = file(uri.path()) else {
        return refused(StatusCode::NOT_FOUND, "no such page file");
    };
    let on = match page {
        Page::Report => config.report.enabled,
        Page::Console => config.web.console,
    };
    let Some(assets) = config.web.assets.as_ref().filter(|_| on) else {
        return refused(StatusCode::NOT_FOUND, "this node does not serve this page");
    };
    let path = assets.join(page.dir()).join(name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut resp = Body::from(bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                "cross-origin-opener-policy",
                HeaderValue::from_static("same-origin"),
            );
            h.insert(
                "permissions-policy",
                HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "page file missing");
            refused(
                StatusCode::NOT_FOUND,
                "this page is not built on this node (web/build.sh)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pages_files_are_named() {
        assert_eq!(
            file("/report/"),
            Some((Page::Report, "index.html", "text/html; charset=utf-8"))
        );
        assert_eq!(file("/console/app.js").unwrap().0, Page::Console);
        assert_eq!(
            file("/report/redline_web.wasm").unwrap().2,
            "application/wasm"
        );
        for outside in [
            "/report",
            "/report/../config.toml",
            "/report/%2e%2e/identity",
            "/report/sub/app.js",
            "/reportx/app.js",
            "/console/index.htm",
            "/report/api/cases",
        ] {
            assert_eq!(file(outside), None, "{outside}");
        }
        assert_eq!(route("/console/").unwrap().path, "/console/ (page)");
    }
}
