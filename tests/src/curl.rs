//! HTTP calls the way HMA's users and hotline scripts make them: with `curl`, so the HTTP API
//! is tested from a client that holds no Redline code (and on real sockets, HTTP/1.1 or 2).

use std::process::Command;

/// Runs `curl -sS` with `args` (options, then the URL) on the blocking pool; returns the HTTP
/// status and the body. Panics when curl itself fails (no connection, a timeout): the tests
/// assert on answers, and an unanswered call is a failure of its own.
pub async fn curl(args: Vec<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || curl_now(&args))
        .await
        .expect("curl task")
}

/// [`curl`] on the calling thread, for tests that are not async.
pub fn curl_now(args: &[String]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8 body");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.parse().expect("status"), body.to_owned())
}

/// The `-H` arguments of a bearer token.
pub fn bearer(token: &str) -> [String; 2] {
    ["-H".into(), format!("Authorization: Bearer {token}")]
}

/// `body` as JSON; panics with the body when it is not.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// POSTs `body` as JSON to `url`, with a bearer `token` when given; the status and the answer
/// as JSON.
pub async fn post_json(
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut args: Vec<String> = token.map(|t| bearer(t).to_vec()).unwrap_or_default();
    args.extend([
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        body.to_string(),
        url,
    ]);
    let (code, body) = curl(args).await;
    (code, json(&body))
}
