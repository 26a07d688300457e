//! The HTTP/JSON API on the gRPC address, called the way HMA's users call HMA: with `curl`
//! (no Redline code on the client side), over HTTP/1.1 and HTTP/2 on the very port gRPC
//! platforms use, with the same tokens. A platform follows a hotline over real gRPC; the
//! platform's `/status` is 503 until it has caught up, HMA lookups name the origin (bank), the
//! index (content id) and the distance, a photo is hashed and looked up from an upload, and a
//! batch of 10,000 hashes over HTTP answers exactly what 10,000 single gRPC Match calls answer.

#[path = "cli_support.rs"]
mod support;

use rand::{Rng, SeedableRng};
use redline_e2e::curl::{bearer, curl, json};
use redline_e2e::{eventually, federated_config, identity, reserve, temp_dir, trust_key, TestNode};
use redline_proto::pb;
use redline_server::config::{Policy, Scope, TokenConfig};
use std::time::Duration;

const TOKEN: &str = "platform-match-token";

fn auth() -> [String; 2] {
    bearer(TOKEN)
}

async fn get(url: String, token: bool, http2: bool) -> (u16, String) {
    let mut args: Vec<String> = Vec::new();
    if token {
        args.extend(auth());
    }
    args.push(
        if http2 {
            "--http2-prior-knowledge"
        } else {
            "--http1.1"
        }
        .into(),
    );
    args.push(url);
    curl(args).await
}

fn flip(hash: &[u8; 32], bits: usize) -> [u8; 32] {
    let mut h = *hash;
    for byte in h.iter_mut().take(bits) {
        *byte ^= 1;
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hma_calls_and_batches_over_http_on_the_grpc_port() {
    let (hotline_dir, platform_dir) = (temp_dir(), temp_dir());
    let hotline_key = identity(hotline_dir.path(), "hotline.example");
    let (hotline_listener, hotline_url) = reserve().await;

    // The platform follows a hotline that is not serving yet: not ready.
    let mut config = federated_config(
        "platform.example",
        platform_dir.path(),
        &[&hotline_url],
        vec![trust_key(&hotline_key, Policy::Accept)],
        50,
    );
    config.tokens = vec![TokenConfig {
        name: "platform".into(),
        sha256: redline_server::grpc::auth::hash_token(TOKEN),
        scopes: vec![Scope::Match],
        rate_per_sec: None,
        burst: None,
    }];
    let platform = TestNode::start(config).await;
    let base = platform.url.clone();
    let (code, body) = get(format!("{base}/status"), false, false).await;
    assert_eq!((code, body.as_str()), (503, "NOT-READY"), "before catch-up");
    let (code, body) = get(format!("{base}/status/live"), false, true).await;
    assert_eq!((code, body.as_str()), (200, "I-AM-ALIVE"));

    // The hotline lists 1,000 hashes and an image's PDQ, hashed by the platform's /h/hash.
    let hotline = TestNode::start_on(
        hotline_listener,
        redline_server::config::Config::new("hotline.example", hotline_dir.path()),
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let listed: Vec<[u8; 32]> = (0..1_000).map(|_| rng.gen()).collect();
    redline_e2e::submit_pdq(&hotline.node, &listed).await;

    let photo = temp_dir();
    let photo_path = photo.path().join("upload.png");
    support::write_image(&photo_path, 7);
    let (code, body) = curl(
        [
            auth().to_vec(),
            vec![
                "-F".into(),
                format!("photo=@{}", photo_path.display()),
                format!("{base}/h/hash"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let hashes = json(&body);
    let photo_pdq = hashes["pdq"].as_str().expect("pdq in /h/hash").to_owned();
    assert_eq!(photo_pdq.len(), 64, "{body}");
    let mut photo_hash = [0u8; 32];
    hex::decode_to_slice(&photo_pdq, &mut photo_hash).unwrap();
    let submitted = redline_e2e::submit_pdq(&hotline.node, &[photo_hash]).await;
    let photo_index = submitted.entries[0].0;
    let total = listed.len() as u64 + 1;

    eventually(Duration::from_secs(30), "the platform catches up", || {
        let base = base.clone();
        async move { get(format!("{base}/status"), false, false).await.0 == 200 }
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "all entries replicated",
        || async { platform.size_of("hotline.example") == total },
    )
    .await;

    // Tokens: the same as gRPC's.
    let lookup = |hex: String, token: bool, http2: bool| {
        let base = base.clone();
        async move {
            get(
                format!("{base}/m/lookup?signal_type=pdq&signal={hex}"),
                token,
                http2,
            )
            .await
        }
    };
    let (code, body) = lookup(hex::encode(listed[5]), false, false).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        json(&body)["message"].as_str().unwrap().contains("bearer"),
        "{body}"
    );

    // HMA lookup: bank = origin, bank_content_id = index, distance as HMA prints it.
    for http2 in [false, true] {
        let (code, body) = lookup(hex::encode(flip(&listed[5], 3)), true, http2).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            json(&body),
            serde_json::json!({"hotline.example": [{"bank_content_id": 5, "distance": "3"}]})
        );
    }
    let (code, body) = get(
        format!(
            "{base}/m/raw_lookup?signal_type=pdq&signal={}&include_distance=true",
            hex::encode(listed[9])
        ),
        true,
        false,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({"matches": [{"bank_content_id": 9, "distance": "0"}]})
    );
    let (code, body) = get(
        format!(
            "{base}/m/raw_lookup?signal_type=pdq&signal={}",
            hex::encode(listed[9])
        ),
        true,
        false,
    )
    .await;
    assert_eq!(
        (code, json(&body)),
        (200, serde_json::json!({"matches": [9]}))
    );
    let (code, body) = lookup("zz".repeat(32), true, false).await;
    assert_eq!(code, 400, "a malformed hash: {body}");
    assert!(json(&body)["message"].is_string());

    // The uploaded photo finds its own listing; nothing is kept of it.
    let (code, body) = curl(
        [
            auth().to_vec(),
            vec![
                "-F".into(),
                format!("photo=@{}", photo_path.display()),
                format!("{base}/m/lookup"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json(&body)["pdq"],
        serde_json::json!({"hotline.example": [{"bank_content_id": photo_index, "distance": "0"}]})
    );

    let (code, body) = get(
        format!("{base}/m/index/status?signal_type=pdq"),
        true,
        false,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let status = json(&body);
    assert_eq!(status["pdq"]["present"], true);
    assert_eq!(status["pdq"]["size"], total);

    let (code, body) = get(format!("{base}/m/nothing-here"), true, false).await;
    assert_eq!(code, 404, "{body}");

    // A batch of 10,000 (listed, near, unlisted) equals 10,000 single gRPC Match calls.
    let queries: Vec<String> = (0..10_000)
        .map(|i| match i % 3 {
            0 => hex::encode(listed[i % listed.len()]),
            1 => hex::encode(flip(&listed[(i * 7) % listed.len()], 1 + i % 20)),
            _ => hex::encode(rng.gen::<[u8; 32]>()),
        })
        .collect();
    let body = serde_json::json!({
        "signals": queries.iter().map(|q| serde_json::json!({"signal_type": "pdq", "value": q})).collect::<Vec<_>>()
    });
    let body_file = photo.path().join("batch.json");
    std::fs::write(&body_file, body.to_string()).unwrap();
    let (code, ndjson) = curl(
        [
            auth().to_vec(),
            vec![
                "--http2-prior-knowledge".into(),
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                format!("@{}", body_file.display()),
                format!("{base}/v1/match/batch"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 200, "{}", &ndjson[..ndjson.len().min(500)]);
    let lines: Vec<serde_json::Value> = ndjson.lines().map(json).collect();
    assert_eq!(lines.len(), queries.len());

    let mut grpc = redline_client::PlatformClient::connect_with_token(&base, Some(TOKEN))
        .await
        .expect("gRPC on the same port");
    let mut matched = 0;
    for (q, line) in queries.iter().zip(&lines) {
        let resp = grpc
            .match_signals(
                vec![pb::Signal {
                    signal_type: "pdq".into(),
                    value: q.clone(),
                    quality: 0,
                }],
                Default::default(),
            )
            .await
            .expect("gRPC Match");
        let r = &resp.results[0];
        let want: Vec<(String, u64, u32)> = r
            .matches
            .iter()
            .map(|m| (m.origin.clone(), m.index, m.distance))
            .collect();
        let got: Vec<(String, u64, u32)> = line["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["origin"].as_str().unwrap().to_owned(),
                    m["index"].as_u64().unwrap(),
                    m["distance"].as_u64().unwrap() as u32,
                )
            })
            .collect();
        assert_eq!(line["value"], q.as_str());
        assert_eq!(got, want, "query {q}");
        assert_eq!(line["truncated"], r.truncated);
        if let Some(m) = line["matches"].as_array().unwrap().first() {
            matched += 1;
            assert_eq!(m["labels"], serde_json::json!(["ncii"]));
            assert_eq!(m["checkpoint"]["size"], total);
        }
    }
    assert!(matched >= 6_000, "listed and near queries match: {matched}");
    eprintln!(
        "batch of {} answered as {} single gRPC calls; {matched} matched",
        queries.len(),
        lines.len()
    );
    platform.stop().await;
    hotline.stop().await;
}
