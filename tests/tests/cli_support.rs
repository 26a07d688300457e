//! Helpers shared by the `cli_*` tests (included with `#[path]`): the `redline` binary, built
//! once per test process with the same cargo and profile, and a way to run it without blocking
//! the runtime that serves the in-process nodes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// Path of the `redline` binary. A test crate's dependencies do not build their binaries, so
/// this asks cargo to build it (a no-op when it is fresh) and reads the path from its output.
pub fn redline_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| redline_e2e::cargo_bin("redline-client", "redline"))
}

/// A `redline` command with a clean environment (no REDLINE_* from the caller).
pub fn redline() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(redline_bin());
    c.env_remove("REDLINE_NODE")
        .env_remove("REDLINE_TOKEN")
        .env_remove("REDLINE_CA")
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// Result of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }
    pub fn fails(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "no panics or backtraces: {self:#?}"
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `redline ARGS` on a blocking thread (the nodes keep serving meanwhile).
pub async fn run(args: &[&str]) -> Run {
    run_with(args, &[]).await
}

/// Like [`run`], with extra environment variables.
pub async fn run_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut c = redline();
        c.args(&args);
        for (k, v) in env {
            c.env(k, v);
        }
        to_run(c.output().expect("run redline"))
    })
    .await
    .expect("join")
}

/// Writes a deterministic test image (a smooth pattern, so PDQ quality is high) as PNG.
pub fn write_image(path: &Path, seed: u32) {
    // Smooth, low-frequency content (like a photo): PDQ's dihedral hashes of a rotated copy
    // then land within a few bits of the original's, as they do for real images. (A
    // high-frequency pattern aliases differently after rotation and drifts 30+ bits.)
    let img = image::RgbImage::from_fn(256, 256, |x, y| {
        let v = |k: u32| {
            let (fx, fy, k, s) = (x as f32 / 256.0, y as f32 / 256.0, k as f32, seed as f32);
            let wave = (fx * (3.0 + (seed % 5) as f32) + k).sin()
                * (fy * (2.0 + (seed % 3) as f32) * fx + 0.5 * k).cos()
                + ((fx - 0.3) * (fy - 0.6) * (9.0 + s)).sin();
            ((wave + 2.0) * 60.0).clamp(0.0, 255.0) as u8
        };
        image::Rgb([v(1), v(2), v(5)])
    });
    img.save(path).expect("write test image");
}

/// A random PDQ hash in hex.
pub fn random_pdq(rng: &mut impl rand::Rng) -> String {
    let b: [u8; 32] = rng.gen();
    hex::encode(b)
}
