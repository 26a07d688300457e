//! Hashing speed in the browser against native, on the same 1-megapixel JPEGs in one run:
//! the victim's page's hasher (redline-hashing compiled to WebAssembly, `[profile.wasm]`) in
//! Debian's headless Chromium, timed inside the page by `web/tests/bench.mjs`, and the same
//! `redline_hashing::hash_image` (PDQ + MD5 + SHA-256) natively in this process.
//!
//!   web/build.sh && (cd web/tests && npm ci) && cargo bench -p redline-e2e --bench browser_hashing
//!
//! `IMAGES` (default 20) and `ROUNDS` (default 3) set the work. The JPEGs are made here from a
//! reference photo (`../shared/pdq-reference`), each a different 1155x866 crop, quality 90.

use image::imageops::FilterType;
use redline_e2e::{shared_dir, temp_dir, TestNode};
use redline_hashing::{hash_image, DecodeLimits, SignalType};
use redline_server::config::Config;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (count, rounds) = (env("IMAGES", 20), env("ROUNDS", 3));
    let shared = shared_dir().expect("../shared (the reference images)");
    let source = image::open(shared.join("pdq-reference/images/bridge-mods__aaa-orig.jpg"))
        .expect("the reference photo");
    // Upscaled so every crop is a full megapixel whatever the photo's size.
    let big = source.resize_exact(1600, 1200, FilterType::Triangle);
    let dir = temp_dir();
    for i in 0..count {
        let (x, y) = ((i as u32 * 23) % 445, (i as u32 * 17) % 334);
        let crop = big.crop_imm(x, y, 1155, 866).to_rgb8();
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&crop)
            .unwrap();
        std::fs::write(dir.path().join(format!("{i:03}.jpg")), bytes).unwrap();
    }
    let files: Vec<Vec<u8>> = {
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };

    // Native, the baseline.
    let types = [SignalType::Pdq, SignalType::Md5, SignalType::Sha256];
    hash_image(&files[0], &DecodeLimits::default(), &types).unwrap();
    let started = Instant::now();
    for _ in 0..rounds {
        for bytes in &files {
            hash_image(bytes, &DecodeLimits::default(), &types).unwrap();
        }
    }
    let native = (count * rounds) as f64 / started.elapsed().as_secs_f64();

    // The browser, on a node serving the page.
    let data = temp_dir();
    let mut config = Config::new("bench.example", data.path());
    config.report.enabled = true;
    config.web.assets = Some(repo().join("target/web"));
    let node = TestNode::start(config).await;
    let out = temp_dir();
    let script = repo().join("web/tests/bench.mjs");
    let status = std::process::Command::new("node")
        .arg(&script)
        .current_dir(script.parent().unwrap())
        .env("REDLINE_URL", &node.url)
        .env("REDLINE_IMAGES", dir.path())
        .env("REDLINE_OUT", out.path())
        .env("ROUNDS", rounds.to_string())
        .status()
        .expect("node runs");
    assert!(status.success(), "web/tests/bench.mjs failed");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("bench.json")).unwrap()).unwrap();
    let browser = result["per_second"].as_f64().unwrap();
    node.stop().await;

    println!("{count} JPEGs of 1155x866 (1.0 MP), {rounds} rounds, PDQ + MD5 + SHA-256 each");
    println!("native (redline-hashing, release):       {native:8.1} images/s");
    println!("browser (Chromium, WebAssembly):         {browser:8.1} images/s");
    println!(
        "browser / native:                        {:8.2}x",
        browser / native
    );
}
