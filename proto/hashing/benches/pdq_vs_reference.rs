//! PDQ speed against the reference C++ hasher (PyPI `pdqhash`), on the same ~1-megapixel JPEG, in
//! one run, single core. Not a test: run `proto/hashing/benches/run-pdq-bench.sh`, which sets up
//! the Python side in a virtualenv and pins both to one CPU.
//!
//! Prints images/s with decoding included (Rust: `image` decoding and PDQ; Python: Pillow
//! decoding, numpy luma and C++ PDQ) and excluded (from decoded pixels), the ratios, and checks that both
//! give the same hash on identical pixels. Without `REDLINE_PDQ_PYTHON` only Rust is timed.
//!
//! Environment: `REDLINE_PDQ_PYTHON` (python with pdqhash, numpy, pillow), `REDLINE_SHARED`
//! (reference images; a drawn picture is used without them), `REDLINE_BENCH_SECONDS` (per timing,
//! default 3).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, RgbImage};
use redline_hashing::{decode_image, pdq_dihedral_from_image, pdq_from_image, DecodeLimits};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let seconds: f64 = std::env::var("REDLINE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(seconds);
    let dir = std::env::temp_dir().join(format!("redline-pdq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let (jpeg, source) = make_jpeg();
    let jpeg_path = dir.join("bench.jpg");
    std::fs::write(&jpeg_path, &jpeg).expect("write jpeg");
    let limits = DecodeLimits::default();
    let img = decode_image(&jpeg, &limits).expect("decode bench jpeg");
    let rgb_path = dir.join("bench.rgb");
    std::fs::write(&rgb_path, img.to_rgb8().as_raw()).expect("write rgb");
    println!(
        "image: {WIDTH}x{HEIGHT} JPEG, {} bytes ({source}); files in {}",
        jpeg.len(),
        dir.display()
    );

    let rust_incl = rate(budget, || {
        let img = decode_image(black_box(&jpeg), &limits).expect("decode");
        black_box(pdq_from_image(&img));
    });
    let rust_excl = rate(budget, || {
        black_box(pdq_from_image(black_box(&img)));
    });
    let rust_dih = rate(budget, || {
        black_box(pdq_dihedral_from_image(black_box(&img)));
    });
    let rust_decode = rate(budget, || {
        black_box(decode_image(black_box(&jpeg), &limits).expect("decode"));
    });
    let ours = pdq_from_image(&img);
    println!("rust   decode+PDQ   {rust_incl:8.1} images/s");
    println!("rust   PDQ only     {rust_excl:8.1} images/s   (8 dihedral hashes: {rust_dih:.1}/s; decode alone: {rust_decode:.1}/s)");
    println!(
        "rust   hash {} quality {}",
        ours.hash.to_hex(),
        ours.quality
    );

    let Some(python) = std::env::var_os("REDLINE_PDQ_PYTHON") else {
        println!("REDLINE_PDQ_PYTHON not set: reference not timed (use benches/run-pdq-bench.sh)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pdq_reference_bench.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&jpeg_path)
        .arg(&rgb_path)
        .arg(WIDTH.to_string())
        .arg(HEIGHT.to_string())
        .arg(seconds.to_string())
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .expect("run python reference bench");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("python reference bench failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("python output lacks {name}: {text}"))
            .trim()
            .to_owned()
    };
    let num = |name: &str| -> f64 { field(name).parse().expect("number") };
    let (ref_incl, ref_excl) = (num("decode_incl_ips"), num("decode_excl_ips"));
    let ref_dih = num("dihedral_ips");
    println!(
        "ref    decode+PDQ   {ref_incl:8.1} images/s   (Pillow + numpy + C++ pdqhash {})",
        field("version")
    );
    println!("ref    PDQ only     {ref_excl:8.1} images/s   (8 dihedral hashes: {ref_dih:.1}/s)");
    println!(
        "ratio  decode+PDQ {:.2}x   PDQ only {:.2}x   dihedral {:.2}x   (target >= 2x)",
        rust_incl / ref_incl,
        rust_excl / ref_excl,
        rust_dih / ref_dih
    );

    // Identical pixels: the reference hashed exactly the RGB bytes we decoded.
    let raw_hash = field("raw_hash");
    let raw_quality: u8 = field("raw_quality").parse().expect("quality");
    let same = raw_hash == ours.hash.to_hex() && raw_quality == ours.quality;
    println!(
        "identical pixels: reference {raw_hash} q{raw_quality} -> {}",
        if same { "IDENTICAL" } else { "DIFFERENT" }
    );
    // Each side decoding the JPEG itself (libjpeg-turbo vs zune-jpeg) may differ by a few bits.
    let pil_hash = field("pil_hash");
    let pil = redline_hashing::PdqHash::from_hex(&pil_hash).expect("hex");
    println!(
        "own decoders: reference (Pillow) {pil_hash}, {} bits from ours",
        pil.distance(&ours.hash)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(same, "hash differs from the reference on identical pixels");
}

/// Calls `f` repeatedly for about `budget` (after one warm-up call) and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget || n < 5 {
        f();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// A 1024x768 JPEG: the reference bridge photo resized, or a drawn picture without the shared
/// folder.
fn make_jpeg() -> (Vec<u8>, String) {
    let shared = std::env::var_os("REDLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let photo = shared.join("pdq-reference/images/bridge-mods__aaa-orig.jpg");
    let (img, source) = match std::fs::read(&photo)
        .ok()
        .and_then(|b| decode_image(&b, &DecodeLimits::default()).ok())
    {
        Some(img) => (
            img.resize_exact(WIDTH, HEIGHT, image::imageops::FilterType::Triangle),
            format!("{} resized", photo.display()),
        ),
        None => (
            DynamicImage::ImageRgb8(RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
                let v = ((x * 7 + y * 3) % 256) as u8;
                image::Rgb([v, (x % 256) as u8, ((x ^ y) % 256) as u8])
            })),
            "drawn".to_owned(),
        ),
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img.to_rgb8())
        .expect("encode jpeg");
    (out, source)
}
