//! The fuzz targets' committed inputs as a normal test: every seed in `tests/fuzz/corpus/<target>/`
//! and every kept crash input in `tests/fuzz/regressions/<target>/` goes through the same body
//! the fuzzer runs (`redline_e2e::fuzz`), so a fixed bug stays fixed without `cargo fuzz`.
//! (The fuzz targets add a heap bound and a leak check through their own allocator; here the
//! properties are checked, not the memory.)
//!
//! The seed corpus is made by `regenerate_seed_corpus` below, an ignored test:
//! `cargo test -p redline-e2e --test fuzz_regressions -- --ignored regenerate_seed_corpus`.

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use redline_e2e::fuzz::{
    checkpoint_signer, image_limits, impostor_signer, proof_input_raw, Target, TARGETS,
};
use redline_proto::checkpoint::OriginSigner;
use redline_proto::entry::{encode_add, encode_retract, MAX_LABELS, MAX_TEXT_BYTES};
use redline_proto::merkle::{consistency_proof, inclusion_proof, leaf_hash, MemoryHashes};
use redline_proto::pb::AddEntry;
use redline_proto::signal::SignalType;
use std::collections::BTreeSet;
use std::fs;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Input files of a corpus directory, sorted; a missing directory has none.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_kept_crash_input_passes() {
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for Target { name, run, .. } in TARGETS {
        let seeds = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "no seed corpus for fuzz target {name}");
        let kept = inputs(&fuzz_dir().join("regressions").join(name));
        counts.push(format!(
            "{name}: {} seeds, {} regressions",
            seeds.len(),
            kept.len()
        ));
        for file in seeds.iter().chain(&kept) {
            let data = fs::read(file).expect("read input");
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    println!("{}", counts.join("\n"));
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
}

/// `run.sh` builds what `Cargo.toml` declares; the replay above runs what `TARGETS` lists:
/// they must be the same set, each with its one-line target file and its corpus directory.
#[test]
fn fuzz_crate_declares_every_target() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let declared: BTreeSet<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "redline-fuzz" && *n != "redline_fuzz")
        .collect();
    let listed: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(declared, listed);
    for name in listed {
        let src = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("target source");
        assert!(
            src.contains(&format!("redline_fuzz::run(\"{name}\", data)")),
            "{name}"
        );
        let dir = fuzz_dir().join("corpus").join(name);
        assert!(dir.is_dir(), "{}", dir.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Seed corpus generation.

/// Writes the seed corpus: real entries from the codec, real checkpoints signed with the
/// target's key, real proofs from a real tree, the example configs, and small real images.
/// Replaces the files it names and leaves others (e.g. hand-minimised inputs) alone.
#[test]
#[ignore = "writes tests/fuzz/corpus; run by hand after a format change"]
fn regenerate_seed_corpus() {
    let mut total = 0;
    for (target, name, data) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(&name), &data).expect("write seed");
        total += data.len();
    }
    println!("wrote {total} bytes of seeds");
}

/// Every seed passes its target, whether or not the committed corpus is up to date.
#[test]
fn generated_seeds_pass() {
    for (target, name, data) in seeds() {
        let t = TARGETS.iter().find(|t| t.name == target).expect("target");
        assert!(
            catch_unwind(AssertUnwindSafe(|| (t.run)(&data))).is_ok(),
            "{target}/{name}"
        );
    }
}

type Seed = (&'static str, String, Vec<u8>);

fn seeds() -> Vec<Seed> {
    let mut s = Vec::new();
    entry_seeds(&mut s);
    checkpoint_seeds(&mut s);
    proof_seeds(&mut s);
    config_seeds(&mut s);
    image_seeds(&mut s);
    s
}

fn add(signal_type: SignalType, fill: u8) -> AddEntry {
    let hash = if signal_type == SignalType::Vpdq {
        // A vPDQ value is a frame list: three frames a second apart.
        let frames: Vec<redline_proto::vpdq::FrameHash> = (0..3u8)
            .map(|k| redline_proto::vpdq::FrameHash {
                pdq: [fill ^ k.wrapping_mul(31); 32],
                quality: 90,
                timestamp_ms: u32::from(k) * 1000,
            })
            .collect();
        redline_proto::vpdq::encode(&frames).expect("valid frames")
    } else {
        (0..signal_type.byte_len() as u8)
            .map(|i| i.wrapping_mul(31) ^ fill)
            .collect()
    };
    AddEntry {
        signal_type: signal_type.name().to_owned(),
        hash,
        quality: if signal_type == SignalType::Pdq {
            92
        } else {
            0
        },
        labels: vec!["ncii".into()],
        legal_basis: "consent withdrawn".into(),
        case_ref: "case-2026-001".into(),
    }
}

fn entry_seeds(s: &mut Vec<Seed>) {
    let t = "entry_decode";
    let created = 1_764_000_000_000;
    for (i, st) in SignalType::ALL.into_iter().enumerate() {
        let bytes = encode_add(add(st, i as u8), created + i as u64).expect("encode");
        s.push((t, format!("add-{}", st.name()), bytes));
    }
    let target = encode_add(add(SignalType::Pdq, 0), created).expect("encode");
    let retract = encode_retract(0, &leaf_hash(&target), "false positive", created + 9);
    s.push((t, "retract".into(), retract.expect("encode")));
    let mut full = add(SignalType::Pdq, 7);
    full.labels = (0..MAX_LABELS).map(|i| format!("label-{i}")).collect();
    full.legal_basis = "x".repeat(MAX_TEXT_BYTES);
    s.push((t, "add-limits".into(), encode_add(full, 0).expect("encode")));
    // The same ADD with its fields in reverse order plus an unknown field: valid protobuf,
    // accepted, but another leaf than the canonical encoding.
    let canonical = encode_add(add(SignalType::Pdq, 3), created).expect("encode");
    let mut reordered = canonical[2..].to_vec(); // skip format_version (field 1, 1 byte value)
    reordered.extend([0x08, 0x01, 0x78, 0x05]); // format_version = 1; field 15 = 5
    s.push((t, "add-noncanonical".into(), reordered));
    s.push((t, "empty".into(), Vec::new()));
}

fn checkpoint_seeds(s: &mut Vec<Seed>) {
    let t = "checkpoint_parse";
    let signer = checkpoint_signer();
    let mut tree = MemoryHashes::new();
    for i in 0..42u32 {
        tree.push_leaf(&i.to_be_bytes());
    }
    for size in [0u64, 1, 42] {
        let cp = signer.sign_checkpoint(size, tree.root_at(size).expect("root"));
        s.push((t, format!("signed-{size}"), cp.expect("sign").note));
    }
    let cp = signer.sign_checkpoint(u64::MAX, tree.root()).expect("sign");
    s.push((t, "signed-max".into(), cp.note));
    // Cosigned: the origin's signature plus a witness's.
    let witness = OriginSigner::new(
        "witness.example",
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    )
    .expect("witness");
    let text = format!(
        "{}\n7\n{}\nextension line\n",
        signer.public().name(),
        base64_root(&tree.root_at(7).expect("root").0)
    );
    let note = signer.sign_note(text.as_bytes()).expect("sign");
    let witness_note = witness.sign_note(text.as_bytes()).expect("sign");
    let witness_line = &witness_note[text.len() + 1..];
    let mut cosigned = note.clone();
    cosigned.extend_from_slice(witness_line);
    s.push((t, "cosigned-extension".into(), cosigned));
    let forged = impostor_signer()
        .sign_checkpoint(42, tree.root())
        .expect("sign");
    s.push((t, "impostor".into(), forged.note));
    // Checkpoint text alone: the target signs it and must then accept it.
    let root = base64_root(&tree.root_at(5).expect("root").0);
    let plain = format!("{}\n5\n{root}\n", signer.public().name());
    s.push((t, "text-5".into(), plain.into_bytes()));
    s.push((t, "text-extension".into(), text.clone().into_bytes()));
    s.push((
        t,
        "verifier-key".into(),
        signer.public().verifier_key().into(),
    ));
    s.push((t, "private-key".into(), signer.private_key().into()));
}

fn base64_root(root: &[u8]) -> String {
    use base64::prelude::{Engine, BASE64_STANDARD};
    BASE64_STANDARD.encode(root)
}

fn proof_seeds(s: &mut Vec<Seed>) {
    let t = "proof_verify";
    let mut tree = MemoryHashes::new();
    for i in 0..13u32 {
        tree.push_leaf(format!("leaf {i}").as_bytes());
    }
    let root = tree.root();
    let bytes = |p: &[redline_proto::Hash]| p.iter().map(|h| h.0.to_vec()).collect::<Vec<_>>();
    let inclusion = bytes(&inclusion_proof(5, 13, &tree).expect("proof"));
    let refs: Vec<&[u8]> = inclusion.iter().map(Vec::as_slice).collect();
    let leaf = tree.leaf_hash(5).expect("leaf");
    s.push((
        t,
        "raw-inclusion".into(),
        proof_input_raw(5, 13, &leaf.0, &root.0, &refs),
    ));
    let consistency = bytes(&consistency_proof(5, 13, &tree).expect("proof"));
    let refs: Vec<&[u8]> = consistency.iter().map(Vec::as_slice).collect();
    let old = tree.root_at(5).expect("root");
    s.push((
        t,
        "raw-consistency".into(),
        proof_input_raw(5, 13, &old.0, &root.0, &refs),
    ));
    s.push((
        t,
        "raw-huge-sizes".into(),
        proof_input_raw(u64::MAX - 1, u64::MAX, &leaf.0, &root.0, &refs),
    ));
    // Tree mode: [odd mode][n: u16][salt][distinct][size: u64][index: u64][ops][ops...][old: u64]...
    let tree_input = |n: u16, distinct: u8, size: u64, index: u64, ops: &[u8]| {
        let mut v = vec![1u8];
        v.extend(n.to_le_bytes());
        v.extend([0x5a, distinct]);
        v.extend(size.to_le_bytes());
        v.extend(index.to_le_bytes());
        v.extend(ops);
        v
    };
    s.push((t, "tree-clean".into(), tree_input(13, 255, 12, 5, &[0])));
    s.push((t, "tree-dups".into(), tree_input(300, 3, 255, 77, &[0])));
    // One op: flip bit 3 of byte 0 of proof element 1.
    let flip = [1, 0, 1, 0, 0, 0, 3];
    s.push((t, "tree-flip".into(), tree_input(64, 255, 40, 9, &flip)));
}

fn config_seeds(s: &mut Vec<Seed>) {
    let t = "config_parse";
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    for file in inputs(&dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        s.push((t, format!("deploy-{name}"), fs::read(&file).expect("read")));
    }
    let key = checkpoint_signer().public().verifier_key();
    let full = format!(
        r#"origin = "hotline-fuzz.example"
data_dir = "/var/lib/redline"
listen = "0.0.0.0:7443"
metrics_listen = "127.0.0.1:9090"
insecure = false

[[peers]]
url = "https://peer.example:7443"
token = "peer-token-1"
ca = "/etc/redline/ca.pem"
cert = "/etc/redline/client.pem"
key = "/etc/redline/client.key"
tls_server_name = "peer.example"

[[trust]]
origin = "{origin}"
key = "{key}"
policy = "replicate"

[[tokens]]
name = "analyst"
sha256 = "{sha}"
scopes = ["submit", "match", "audit", "federate", "admin"]
rate_per_sec = 2.5
burst = 10

[tls]
cert = "/etc/redline/node.pem"
key = "/etc/redline/node.key"
client_ca = "/etc/redline/clients.pem"

[limits]
max_message_bytes = 4194304
max_batch = 100
request_timeout_ms = 5000
max_concurrent_streams = 64
shutdown_grace_ms = 1000

[sync]
poll_interval_ms = 1000
backoff_initial_ms = 100
backoff_max_ms = 10000
fetch_batch = 500

[hashing]
signal_types = ["pdq", "phash-dct-8x8", "dhash-8x8", "ahash-8x8", "blockhash-16x16", "md5", "sha256"]
max_image_bytes = 1048576
max_dimension = 4096
max_pixels = 10000000
formats = ["jpeg", "png", "webp", "gif", "bmp", "tiff"]

[matching]
max_distance = {{ pdq = 31, "dhash-8x8" = 10 }}
max_signals = 256
"#,
        origin = redline_e2e::fuzz::CHECKPOINT_ORIGIN,
        sha = "ab".repeat(32),
    );
    s.push((t, "full".into(), full.into_bytes()));
}

/// A small picture with structure (gradients and a disc), so hashes are not all zero.
fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as i32 - w as i32 / 2, y as i32 - h as i32 / 3);
        let disc = if dx * dx + dy * dy < (h * h / 9) as i32 {
            120
        } else {
            0
        };
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, disc])
    })
}

fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// CRC-32 (ISO-HDLC) of a PNG chunk's type and data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn image_seeds(s: &mut Vec<Seed>) {
    let t = "image_hash";
    let rgb = DynamicImage::ImageRgb8(picture(32, 24));
    for (name, format) in [
        ("picture.png", ImageFormat::Png),
        ("picture.jpg", ImageFormat::Jpeg),
        ("picture.gif", ImageFormat::Gif),
        ("picture.bmp", ImageFormat::Bmp),
        ("picture.tiff", ImageFormat::Tiff),
        ("picture.webp", ImageFormat::WebP),
    ] {
        s.push((t, name.into(), encoded(&rgb, format)));
    }
    let wide = DynamicImage::ImageRgba16(rgb.to_rgba16());
    s.push((
        t,
        "picture-rgba16.png".into(),
        encoded(&wide, ImageFormat::Png),
    ));
    let grey = DynamicImage::ImageLuma8(rgb.to_luma8());
    s.push((
        t,
        "picture-grey.png".into(),
        encoded(&grey, ImageFormat::Png),
    ));
    // A decompression-bomb header: a 1x1 PNG whose IHDR claims 100000 x 100000 pixels
    // (with a valid CRC, so only the limits stop it).
    let mut bomb = encoded(
        &DynamicImage::ImageLuma8(image::GrayImage::new(1, 1)),
        ImageFormat::Png,
    );
    bomb[16..24].copy_from_slice(&[0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0]);
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    s.push((t, "bomb-header.png".into(), bomb));
    // A JPEG cut in the middle.
    let jpeg = encoded(&rgb, ImageFormat::Jpeg);
    s.push((t, "truncated.jpg".into(), jpeg[..jpeg.len() / 2].to_vec()));
    // Small real photos from the PDQ reference set, when it is at hand.
    let shared = std::env::var_os("REDLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    for name in ["misc-images__small.jpg", "labelme-subset__q0003.jpg"] {
        match fs::read(shared.join("pdq-reference/images").join(name)) {
            Ok(bytes) => s.push((t, format!("pdq-reference-{name}"), bytes)),
            Err(_) => println!("SKIP {name}: reference images not found"),
        }
    }
    assert!(image_limits().max_encoded_bytes > 64 * 1024);
}

/// The independent checkpoint reading that judges `OriginKey::verify` is itself strict: it
/// refuses exactly the near-misses the C2SP format forbids.
#[test]
fn independent_checkpoint_reading_is_strict() {
    use redline_e2e::fuzz::{checkpoint_text, CHECKPOINT_ORIGIN as O};
    let root = base64_root(&[7; 32]);
    assert_eq!(
        checkpoint_text(O, &format!("{O}\n5\n{root}\n")),
        Some((5, [7; 32]))
    );
    assert_eq!(
        checkpoint_text(O, &format!("{O}\n0\n{root}\next\n")),
        Some((0, [7; 32]))
    );
    let short = base64_root(&[7; 31]);
    for bad in [
        format!("{O}\n5\n{root}"),                      // no final newline
        format!("{O}\n05\n{root}\n"),                   // leading zero
        format!("{O}\n+5\n{root}\n"),                   // sign
        format!("{O}\n18446744073709551616\n{root}\n"), // 2^64
        format!("{O}\n5\n{short}\n"),                   // 31-byte root
        format!("{O}\n5\n{root}\n\next\n"),             // empty extension line
        format!("other.example\n5\n{root}\n"),          // another origin
        format!("{O} \n5\n{root}\n"),                   // trailing space in the origin
        format!("{O}\n5\n"),                            // no root
    ] {
        assert_eq!(checkpoint_text(O, &bad), None, "{bad:?}");
    }
}
