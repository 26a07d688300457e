//! Matching end to end: a platform node replicating two hotlines matches an *edited* reference
//! image to the entries that list the original, names both hotlines when both list it, and stops
//! naming one after its retraction reaches the platform. Also: images sent to a node are hashed
//! and dropped; no 64-byte window of them ever reaches the data dir.

use redline_e2e::{shared_dir, temp_dir, TestNode};
use redline_proto::pb::{
    matching_client::MatchingClient, submission_client::SubmissionClient, MatchRequest,
    RetractRequest, SubmitRequest,
};
use redline_server::config::{PeerConfig, Policy, TrustConfig};
use redline_server::Config;
use sha2::Digest;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit_image(url: &str, image: &[u8], label: &str) -> Vec<u64> {
    let mut client = SubmissionClient::connect(url.to_owned()).await.unwrap();
    let resp = client
        .submit(SubmitRequest {
            image: image.to_vec(),
            labels: vec![label.into()],
            legal_basis: "consent withdrawn".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    resp.entries.iter().map(|e| e.index).collect()
}

/// `(origin, index, distance)` of the PDQ matches of `image` at `url`.
async fn pdq_matches(url: &str, image: &[u8]) -> Vec<(String, u64, u32)> {
    let mut client = MatchingClient::connect(url.to_owned()).await.unwrap();
    let resp = client
        .r#match(MatchRequest {
            image: image.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let pdq = resp
        .results
        .iter()
        .find(|r| r.query.as_ref().unwrap().signal_type == "pdq")
        .expect("the image's PDQ is queried");
    pdq.matches
        .iter()
        .map(|m| (m.origin.clone(), m.index, m.distance))
        .collect()
}

fn read(shared: &Path, name: &str) -> Vec<u8> {
    std::fs::read(shared.join("pdq-reference/images").join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_matches_edited_images_to_both_hotlines_until_retracted() {
    let Some(shared) = shared_dir().filter(|d| d.join("pdq-reference/images").is_dir()) else {
        eprintln!("SKIP: no shared/pdq-reference/images (set REDLINE_SHARED)");
        return;
    };
    let (da, db, dp) = (temp_dir(), temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-uk.example", da.path()).await;
    let b = TestNode::start_in("hotline-kr.example", db.path()).await;
    let mut pc = Config::new("platform.example", dp.path());
    pc.sync.poll_interval_ms = 60_000; // only pushes can meet the deadlines below
    for (n, origin) in [(&a, "hotline-uk.example"), (&b, "hotline-kr.example")] {
        pc.peers.push(PeerConfig::new(n.url.clone()));
        pc.trust.push(TrustConfig {
            origin: origin.into(),
            key: n.node.public_key().verifier_key(),
            policy: Policy::Accept,
        });
    }
    let p = TestNode::start(pc).await;

    let original = read(&shared, "bridge-mods__aaa-orig.jpg");
    let other = read(&shared, "labelme-subset__q0746.jpg");
    let a_bridge = submit_image(&a.url, &original, "ncii").await[0];
    submit_image(&a.url, &other, "ncii").await;
    let b_bridge = submit_image(&b.url, &original, "ncii").await[0];

    let edited = read(&shared, "bridge-mods__blur-a-lot.jpg");
    let both = eventually(Duration::from_secs(5), || async {
        let m = pdq_matches(&p.url, &edited).await;
        m.iter().any(|x| x.0 == "hotline-uk.example")
            && m.iter().any(|x| x.0 == "hotline-kr.example")
    })
    .await;
    let matches = pdq_matches(&p.url, &edited).await;
    assert!(both, "edited image should match both hotlines: {matches:?}");
    for (origin, index, distance) in &matches {
        assert!(*distance <= 31, "{origin} {index} {distance}");
        let want = if origin == "hotline-uk.example" {
            a_bridge
        } else {
            b_bridge
        };
        assert_eq!(*index, want, "{matches:?}");
    }
    eprintln!("edited bridge matches: {matches:?}");
    // A different picture listed only at uk matches only uk.
    let other_matches = pdq_matches(&p.url, &read(&shared, "labelme-subset__q0746.jpg")).await;
    assert_eq!(
        other_matches
            .iter()
            .map(|m| m.0.as_str())
            .collect::<Vec<_>>(),
        vec!["hotline-uk.example"]
    );

    // uk retracts its bridge entry: the platform stops naming uk, kr still matches.
    SubmissionClient::connect(a.url.clone())
        .await
        .unwrap()
        .retract(RetractRequest {
            index: a_bridge,
            reason: "false positive".into(),
        })
        .await
        .unwrap();
    let gone = eventually(Duration::from_secs(5), || async {
        let m = pdq_matches(&p.url, &edited).await;
        !m.iter().any(|x| x.0 == "hotline-uk.example")
            && m.iter().any(|x| x.0 == "hotline-kr.example")
    })
    .await;
    assert!(
        gone,
        "retraction not applied: {:?}",
        pdq_matches(&p.url, &edited).await
    );

    p.stop().await;
    b.stop().await;
    a.stop().await;
}

/// A noisy synthetic PNG: its compressed bytes are distinctive, so any stored copy would show.
fn noisy_png() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state & 0x3f) as u8;
        image::Rgb([(x as u8).wrapping_add(n), (y as u8).wrapping_add(n), n])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_bytes_never_reach_the_data_dir() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-uk.example", dir.path()).await;
    let image = noisy_png();
    let indexes = submit_image(&node.url, &image, "ncii").await;
    assert_eq!(indexes.len(), 3, "pdq, md5 and sha256 by default");
    let matches = pdq_matches(&node.url, &image).await;
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].2, 0);
    let config = node.stop().await;

    let windows: HashSet<&[u8]> = image.windows(64).collect();
    let files = files_under(&config.data_dir);
    assert!(!files.is_empty());
    // The scan sees the store: the image's SHA-256 (raw bytes inside its leaf) is on disk.
    let digest: [u8; 32] = sha2::Sha256::digest(&image).into();
    let mut digest_seen = false;
    let mut scanned = 0usize;
    for f in &files {
        let data = std::fs::read(f).unwrap();
        scanned += data.len();
        digest_seen |= data.windows(32).any(|w| w == digest);
        if let Some(pos) = data.windows(64).position(|w| windows.contains(w)) {
            panic!("{} holds image bytes at offset {pos}", f.display());
        }
    }
    assert!(digest_seen, "the scan did not find the stored leaves");
    eprintln!(
        "scanned {} files, {scanned} bytes: no 64-byte window of the {}-byte image",
        files.len(),
        image.len()
    );
}
