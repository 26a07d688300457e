//! grpc-web, what browser code speaks (`tonic-web`), on the node's one address: a real HTTP/1.1
//! client (`curl`) sends `application/grpc-web+proto` and `application/grpc-web-text` calls
//! to `redline.v1.Matching/Match`; the listed hash comes back with `grpc-status: 0` in the
//! grpc-web trailer frame, and the same call without a token is refused UNAUTHENTICATED (16)
//! by the guard, which sees grpc-web calls as plain gRPC after translation.

use base64::prelude::{Engine, BASE64_STANDARD};
use prost::Message;
use redline_e2e::{temp_dir, TestNode};
use redline_proto::pb;
use redline_server::config::{Config, Scope};
use std::process::Command;

const TOKEN: &str = "grpc-web-token";

/// One grpc-web request frame: flag 0, big-endian length, the message.
fn frame(msg: &impl Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Splits a grpc-web response body into its data messages and its trailer block (flag 0x80).
fn frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = body[5..5 + len].to_vec();
        if body[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8(payload).unwrap());
        } else {
            data.push(payload);
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "a whole number of frames");
    (data, trailers)
}

/// POSTs `body` as `content_type` to `url` with curl over HTTP/1.1; `(headers, body)`.
fn post(url: &str, content_type: &str, body: &[u8], token: Option<&str>) -> (String, Vec<u8>) {
    let dir = temp_dir();
    let (req, head) = (dir.path().join("req"), dir.path().join("head"));
    std::fs::write(&req, body).unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http1.1", "-H"])
        .arg(format!("content-type: {content_type}"))
        // The answer's encoding follows `accept`, as grpc-web clients send it.
        .arg("-H")
        .arg(format!("accept: {content_type}"))
        .args(["-H", "x-grpc-web: 1", "--data-binary"])
        .arg(format!("@{}", req.display()))
        .arg("-D")
        .arg(&head);
    if let Some(t) = token {
        cmd.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    assert!(out.status.success(), "{out:?}");
    (
        std::fs::read_to_string(&head).unwrap().to_ascii_lowercase(),
        out.stdout,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_call_matching_over_grpc_web_behind_the_same_guard() {
    let dir = temp_dir();
    let mut config = Config::new("hotline-a.example", dir.path());
    config.tokens = vec![redline_e2e::token_config(
        "browser",
        TOKEN,
        vec![Scope::Submit, Scope::Match],
    )];
    let node = TestNode::start(config).await;
    let listed = [0x5au8; 32];
    redline_e2e::submit_pdq(&node.node, &[listed]).await;
    let url = format!("{}/redline.v1.Matching/Match", node.url);
    let request = pb::MatchRequest {
        signals: vec![pb::Signal {
            signal_type: "pdq".into(),
            value: hex::encode(listed),
            quality: 0,
        }],
        ..Default::default()
    };

    // Binary grpc-web with the token: the match and grpc-status 0 in the trailer frame.
    let (head, body) = post(
        &url,
        "application/grpc-web+proto",
        &frame(&request),
        Some(TOKEN),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/grpc-web"),
        "{head}"
    );
    let (data, trailers) = frames(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?} {head}");
    let resp = pb::MatchResponse::decode(data[0].as_slice()).unwrap();
    let m = &resp.results[0].matches;
    assert_eq!(
        (m.len(), m[0].origin.as_str(), m[0].index, m[0].distance),
        (1, "hotline-a.example", 0, 0)
    );

    // grpc-web-text (base64 both ways), as some browser clients send it.
    let text = BASE64_STANDARD.encode(frame(&request));
    let (head, body) = post(
        &url,
        "application/grpc-web-text",
        text.as_bytes(),
        Some(TOKEN),
    );
    assert!(
        head.contains("content-type: application/grpc-web-text"),
        "{head}"
    );
    let decoded = BASE64_STANDARD
        .decode(String::from_utf8(body).unwrap().trim())
        .expect("base64 response");
    let (data, trailers) = frames(&decoded);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    assert_eq!(
        pb::MatchResponse::decode(data[0].as_slice())
            .unwrap()
            .results[0]
            .matches
            .len(),
        1
    );

    // No token: refused by the guard, as a gRPC call would be.
    let (head, body) = post(&url, "application/grpc-web+proto", &frame(&request), None);
    let (data, trailers) = frames(&body);
    assert!(data.is_empty(), "no answer without a token");
    assert!(
        head.contains("grpc-status: 16") || trailers.contains("grpc-status:16"),
        "UNAUTHENTICATED: {head} {trailers:?}"
    );
    node.stop().await;
}
