//! `redline match` (and `PlatformClient`) end to end against a node's Matching service: exact
//! and near PDQ hashes, the distance limit, images hashed locally, rotations with --dihedral,
//! and retracted hashes no longer matching.

#[path = "cli_support.rs"]
mod support;

use rand::SeedableRng;
use redline_client::{MatchOptions, PlatformClient};
use redline_e2e::{temp_dir, TestNode};
use support::{random_pdq, run, write_image};

fn flip_bits(hex_value: &str, n: usize) -> String {
    let mut b = hex::decode(hex_value).unwrap();
    for i in 0..n {
        b[i * 3 % 32] ^= 1 << (i % 8);
    }
    hex::encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_hashes_and_images() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let url = node.url.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let listed = random_pdq(&mut rng);
    run(&[
        "submit",
        "--node",
        &url,
        "--pdq",
        &listed,
        "--label",
        "ncii",
        "--legal-basis",
        "consent withdrawn",
    ])
    .await
    .ok();

    // Exact and near hashes match, with the distance; the limit is honoured.
    let near = flip_bits(&listed, 5);
    let r = run(&[
        "match", "--node", &url, "--pdq", &listed, "--pdq", &near, "--json",
    ])
    .await
    .ok();
    let v = r.json();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    for (res, d) in results.iter().zip([0, 5]) {
        let m = &res["matches"][0];
        assert_eq!(m["origin"], "hotline-a.example");
        assert_eq!(m["index"], 0);
        assert_eq!(m["distance"], d);
        assert_eq!(m["labels"][0], "ncii");
    }
    let r = run(&[
        "match",
        "--node",
        &url,
        "--pdq",
        &near,
        "--max-distance",
        "3",
    ])
    .await
    .ok();
    assert!(r.stdout.contains("no match"), "{r:#?}");
    let far = random_pdq(&mut rng);
    let r = run(&["match", "--node", &url, "--pdq", &far]).await.ok();
    assert!(r.stdout.contains("no match"), "{r:#?}");

    // An image, hashed locally; its rotation matches with --dihedral.
    let img = dir.path().join("upload.png");
    write_image(&img, 7);
    run(&["submit", img.to_str().unwrap(), "--node", &url])
        .await
        .ok();
    let r = run(&["match", img.to_str().unwrap(), "--node", &url])
        .await
        .ok();
    assert!(r.stdout.contains("1 match"), "{r:#?}");
    assert!(r.stdout.contains("index 1  distance 0"), "{r:#?}");
    let rotated = dir.path().join("rotated.png");
    image::open(&img)
        .unwrap()
        .rotate90()
        .save(&rotated)
        .unwrap();
    let r = run(&[
        "match",
        rotated.to_str().unwrap(),
        "--node",
        &url,
        "--dihedral",
        "--json",
    ])
    .await
    .ok();
    let v = r.json();
    let m = &v["results"][0]["matches"][0];
    assert_eq!(m["index"], 1, "{v}");
    assert!(m["distance"].as_u64().unwrap() <= 31, "{v}");
    // The same through the library, sending the image to the node.
    let mut platform = PlatformClient::connect(&url).await.unwrap();
    let resp = platform
        .match_image(std::fs::read(&img).unwrap(), MatchOptions::default())
        .await
        .unwrap();
    assert!(resp
        .results
        .iter()
        .any(|q| q.matches.iter().any(|m| m.index == 1 && m.distance == 0)));

    // Retracted: no longer matched.
    run(&["retract", "0", "--reason", "fp", "--node", &url])
        .await
        .ok();
    let r = run(&["match", "--node", &url, "--pdq", &listed]).await.ok();
    assert!(r.stdout.contains("no match"), "{r:#?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_stream_answers_each_request_in_order() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let pdqs: Vec<String> = (0..3).map(|_| random_pdq(&mut rng)).collect();
    let mut args = vec!["submit", "--node", &node.url];
    for p in &pdqs {
        args.extend(["--pdq", p.as_str()]);
    }
    run(&args).await.ok();
    let mut platform = PlatformClient::connect(&node.url).await.unwrap();
    let reqs: Vec<_> = pdqs
        .iter()
        .map(|p| redline_proto::pb::MatchRequest {
            signals: vec![redline_client::platform::signal("pdq", p).unwrap()],
            ..Default::default()
        })
        .collect();
    let mut stream = platform
        .match_stream(futures::stream::iter(reqs))
        .await
        .unwrap();
    let mut i = 0;
    while let Some(resp) = futures::StreamExt::next(&mut stream).await {
        let resp = resp.unwrap();
        assert_eq!(resp.results[0].matches[0].index, i);
        i += 1;
    }
    assert_eq!(i, 3);
    node.stop().await;
}
