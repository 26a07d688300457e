//! Bodies of the fuzz targets in `tests/fuzz/` (cargo-fuzz, libFuzzer), one function per target.
//!
//! Each body takes arbitrary bytes, feeds them to one parser or verifier of Redline, and panics
//! only when a property the code promises does not hold: a panic inside the code under test,
//! a round trip that is not one, a proof or note accepted that must not be, or one refused
//! that must be accepted. The same bodies run in two places:
//! - the fuzz targets (`tests/fuzz/fuzz_targets/*.rs`), which include this file by path and add
//!   a counting allocator that enforces [`Target::max_heap_bytes`] and detects leaks;
//! - `tests/tests/fuzz_regressions.rs`, a normal `cargo test` that replays every committed seed
//!   and every kept crash input (`tests/fuzz/{corpus,regressions}/<target>/`) through them.
//!
//! This file uses only `std`, `prost`, `sha2`, `base64`, `ed25519-dalek` and the three crates
//! under test, never `crate::`, so the fuzz crate can compile it without the e2e harness.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{SigningKey, VerifyingKey};
use prost::Message;
use redline_hashing::{
    decode::probe, hash_image, hash_image_with_dihedral, DecodeLimits, Dihedral, SignalType,
};
use redline_proto::checkpoint::{OriginKey, OriginSigner, SignedCheckpoint};
use redline_proto::entry::{
    self, Decoded, EntryError, MAX_ENTRY_BYTES, MAX_LABELS, MAX_TEXT_BYTES,
};
use redline_proto::merkle::{
    self, consistency_proof, hash_from_slice, inclusion_proof, leaf_hash, Hash, MemoryHashes,
};
use redline_proto::pb::{entry_body::Kind, EntryBody, RetractEntry};
use redline_proto::replay::{Effect, LeafError, Never, Prior, PriorLeaf, Replay, RetractionError};
use redline_server::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

/// One fuzz target: its name (the directory of its corpus and the binary's name), its body,
/// and the most heap one input may use.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the cargo-fuzz target and of its corpus directories.
    pub name: &'static str,
    /// The body: panics when a property is violated.
    pub run: fn(&[u8]),
    /// Largest live heap, in bytes, one call of `run` may reach on an input of the given length
    /// (enforced by the fuzz targets' allocator; the libFuzzer input itself is not counted).
    pub max_heap_bytes: fn(usize) -> usize,
}

/// Every target, in the order `tests/fuzz/run.sh` runs them.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "entry_decode",
        run: entry_decode,
        max_heap_bytes: small_heap,
    },
    Target {
        name: "checkpoint_parse",
        run: checkpoint_parse,
        max_heap_bytes: small_heap,
    },
    Target {
        name: "proof_verify",
        run: proof_verify,
        max_heap_bytes: small_heap,
    },
    Target {
        name: "config_parse",
        run: config_parse,
        max_heap_bytes: small_heap,
    },
    Target {
        name: "image_hash",
        run: image_hash,
        max_heap_bytes: image_heap,
    },
];

/// Parsers of small messages: a few KiB of input never needs more than this. Catches
/// allocations sized by a length field or count read from the input.
fn small_heap(input_len: usize) -> usize {
    16 * 1024 * 1024 + 64 * input_len
}

// ---------------------------------------------------------------------------------------------
// Reading structured values out of fuzz bytes.

/// Reads values from the front of the input; past its end every read gives zeros, so every
/// input means something.
#[derive(Debug)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    /// Little-endian u16.
    pub fn u16(&mut self) -> u16 {
        let mut b = [0; 2];
        let src = self.bytes(2);
        b[..src.len()].copy_from_slice(src);
        u16::from_le_bytes(b)
    }
    /// Little-endian u64.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        let src = self.bytes(8);
        b[..src.len()].copy_from_slice(src);
        u64::from_le_bytes(b)
    }
    /// 32 bytes, zero-padded.
    pub fn hash(&mut self) -> [u8; 32] {
        let mut b = [0; 32];
        let src = self.bytes(32);
        b[..src.len()].copy_from_slice(src);
        b
    }
}

// ---------------------------------------------------------------------------------------------
// entry_decode

/// A log holding one earlier leaf (or none) at `index`, for the retraction rule.
struct OneEarlier {
    index: u64,
    data: Option<Vec<u8>>,
}

impl Prior for OneEarlier {
    type Error = Never;
    fn leaf(&self, index: u64) -> Result<Option<PriorLeaf>, Never> {
        Ok(self
            .data
            .as_deref()
            .filter(|_| index == self.index)
            .map(|d| PriorLeaf::of_stored(d, true)))
    }
}

/// What the protocol's replay makes of RETRACT `r` at index `at` when the log's only earlier
/// leaf is `target` at `r.target_index`: `Ok(())` when it retracts, else the rule it breaks.
fn check_retraction(at: u64, r: &RetractEntry, target: Option<&[u8]>) -> Result<(), LeafError> {
    let hash = hash_from_slice(&r.target_leaf_hash).expect("32-byte target hash");
    let leaf = entry::encode_retract(r.target_index, &hash, &r.reason, 0).expect("valid RETRACT");
    let prior = OneEarlier {
        index: r.target_index,
        data: target.map(<[u8]>::to_vec),
    };
    match Replay::new(prior, at)
        .push(at, &leaf)
        .expect("in order")
        .effect
    {
        Effect::Deactivate { .. } => Ok(()),
        Effect::Invalid(i) => Err(i.reason),
        Effect::Activate { .. } => panic!("a RETRACT activated something"),
    }
}

/// `redline_proto::entry::decode` on arbitrary leaf bytes.
///
/// Checks: no panic; a leaf over [`MAX_ENTRY_BYTES`] is `TooLarge`; an accepted leaf obeys
/// every documented field limit (only a vPDQ ADD over 8 KiB, and its hash a valid frame list), re-encodes with `encode_add`/`encode_retract` to exactly
/// prost's canonical encoding of the same body, that canonical form decodes to the same entry
/// and is a fixed point; `check_retraction` never panics, accepts a retraction of an accepted
/// ADD from any later index only, and never accepts a RETRACT as a target.
pub fn entry_decode(data: &[u8]) {
    let decoded = entry::decode(data);
    let body = EntryBody::decode(data);
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if data.len() > MAX_ENTRY_BYTES {
                assert_eq!(e, EntryError::TooLarge(data.len()));
            }
            return;
        }
    };
    assert!(data.len() <= MAX_ENTRY_BYTES);
    let body = body.expect("entry::decode accepted bytes that prost refuses");
    assert_eq!(body.format_version, entry::FORMAT_VERSION);
    let canonical = body.encode_to_vec();

    let reencoded = match &decoded {
        Decoded::Add { signal_type, add } => {
            assert_eq!(Ok(*signal_type), SignalType::from_name(&add.signal_type));
            if signal_type.is_fixed_len() {
                assert_eq!(add.hash.len(), signal_type.byte_len());
                assert!(data.len() <= entry::MAX_SMALL_ENTRY_BYTES);
            } else {
                // A vPDQ frame list: whole, valid frames (and only it may be a large entry).
                let frames = redline_proto::vpdq::decode(&add.hash).expect("checked frame list");
                assert!(!frames.is_empty() && frames.len() <= redline_proto::vpdq::MAX_FRAMES);
            }
            assert!(add.quality <= 100);
            assert!(add.labels.len() <= MAX_LABELS);
            for text in add.labels.iter().chain([&add.legal_basis, &add.case_ref]) {
                assert!(text.len() <= MAX_TEXT_BYTES);
            }
            assert_eq!(body.kind, Some(Kind::Add(add.clone())));
            // The hash's hex text round-trips through the signal type's parser.
            let hex = signal_type.format_hex(&add.hash).expect("valid length");
            assert_eq!(signal_type.parse_hex(&hex).as_deref(), Ok(&add.hash[..]));
            entry::encode_add(add.clone(), body.created_at_ms).expect("accepted ADD re-encodes")
        }
        Decoded::Retract(r) => {
            assert!(r.reason.len() <= MAX_TEXT_BYTES);
            assert_eq!(body.kind, Some(Kind::Retract(r.clone())));
            let target = hash_from_slice(&r.target_leaf_hash).expect("32-byte target hash");
            entry::encode_retract(r.target_index, &target, &r.reason, body.created_at_ms)
                .expect("accepted RETRACT re-encodes")
        }
    };
    assert_eq!(
        reencoded, canonical,
        "re-encoding differs from prost's encoding"
    );
    assert_eq!(entry::decode(&canonical).as_ref(), Ok(&decoded));
    assert_eq!(
        EntryBody::decode(&canonical[..]).map(|b| b.encode_to_vec()),
        Ok(canonical.clone()),
        "canonical encoding is not a fixed point"
    );

    match &decoded {
        Decoded::Add { .. } => {
            // A retraction of this leaf, by its index and leaf hash, from a later index.
            let target_index = body.created_at_ms % (u64::MAX - 1);
            let r = RetractEntry {
                target_index,
                target_leaf_hash: leaf_hash(data).0.to_vec(),
                reason: String::new(),
            };
            assert_eq!(check_retraction(target_index + 1, &r, Some(data)), Ok(()));
            assert_eq!(check_retraction(u64::MAX, &r, Some(data)), Ok(()));
            assert_eq!(
                check_retraction(target_index, &r, Some(data)),
                Err(RetractionError::NotEarlier {
                    target: target_index,
                    at: target_index
                }
                .into())
            );
            assert_eq!(
                check_retraction(target_index + 1, &r, None),
                Err(RetractionError::Missing(target_index).into())
            );
            // The same entry in another encoding is another leaf: the hash no longer matches.
            if canonical != data {
                assert_eq!(
                    check_retraction(target_index + 1, &r, Some(&canonical)),
                    Err(RetractionError::HashMismatch(target_index).into())
                );
            }
        }
        Decoded::Retract(r) => {
            // Whatever the indexes, a retraction is never a valid target of a retraction,
            // and a missing target is never accepted.
            for at in [
                0,
                r.target_index,
                r.target_index.saturating_add(1),
                u64::MAX,
            ] {
                assert!(check_retraction(at, r, Some(data)).is_err());
                assert!(check_retraction(at, r, Some(&canonical)).is_err());
                assert!(check_retraction(at, r, None).is_err());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// checkpoint_parse

/// Origin of the fixed key the `checkpoint_parse` target verifies against.
pub const CHECKPOINT_ORIGIN: &str = "fuzz.redline.example";
/// Seed of that key (a test key: its private half is public).
pub const CHECKPOINT_SEED: [u8; 32] = [0x42; 32];
/// Seed of a second key that signs under the same origin name (an impostor).
pub const IMPOSTOR_SEED: [u8; 32] = [0x17; 32];

/// The fixed signer of the `checkpoint_parse` target (to make seeds).
pub fn checkpoint_signer() -> &'static OriginSigner {
    static SIGNER: OnceLock<OriginSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        OriginSigner::new(CHECKPOINT_ORIGIN, SigningKey::from_bytes(&CHECKPOINT_SEED))
            .expect("valid origin name")
    })
}

/// A different key signing under the same origin name.
pub fn impostor_signer() -> &'static OriginSigner {
    static SIGNER: OnceLock<OriginSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        OriginSigner::new(CHECKPOINT_ORIGIN, SigningKey::from_bytes(&IMPOSTOR_SEED))
            .expect("valid origin name")
    })
}

/// An independent, minimal reading of a C2SP signed checkpoint: `Some((size, root))` only if
/// the note carries a valid strict-Ed25519 signature of `key` over its text and that text is a
/// checkpoint of `origin`. Written from the specs, not from the code under test, to judge it.
fn independently_verified(
    origin: &str,
    key: &VerifyingKey,
    key_id: u32,
    note: &[u8],
) -> Option<(u64, [u8; 32])> {
    let note = std::str::from_utf8(note).ok()?;
    let (text, sigs) = note.rsplit_once("\n\n")?;
    let text = format!("{text}\n");
    let sigs = sigs.strip_suffix('\n')?;
    let signed = sigs.split('\n').any(|line| {
        let Some((name, b64)) = line.strip_prefix("— ").and_then(|l| l.split_once(' ')) else {
            return false;
        };
        let Ok(sig) = BASE64_STANDARD.decode(b64) else {
            return false;
        };
        name == origin
            && sig.len() == 68
            && sig[..4] == key_id.to_be_bytes()
            && ed25519_dalek::Signature::from_slice(&sig[4..])
                .is_ok_and(|s| key.verify_strict(text.as_bytes(), &s).is_ok())
    });
    if !signed {
        return None;
    }
    checkpoint_text(origin, &text)
}

/// An independent reading of C2SP `tlog-checkpoint` text: the origin line (which must be
/// `origin`), the tree size in canonical decimal, the base64 root of 32 bytes, then optional
/// non-empty extension lines; every line ends in a newline.
pub fn checkpoint_text(origin: &str, text: &str) -> Option<(u64, [u8; 32])> {
    let body = text.strip_suffix('\n')?;
    let mut lines = body.split('\n');
    let (o, n, h) = (lines.next()?, lines.next()?, lines.next()?);
    if lines.any(str::is_empty) {
        return None;
    }
    let size: u64 = n.parse().ok()?;
    let root: [u8; 32] = BASE64_STANDARD.decode(h).ok()?.try_into().ok()?;
    (o == origin && size.to_string() == n).then_some((size, root))
}

/// `OriginKey::verify` (signed-note and checkpoint parsing plus strict Ed25519) against a
/// fixed key, and the key-string parsers.
///
/// Checks: no panic on any input; anything accepted is independently confirmed to carry a
/// valid signature of the fixed key over a checkpoint of its origin, with the same size and
/// root; a checkpoint signed from the input's values verifies and gives them back; the same
/// note with any one byte changed is refused; the input signed as note text is accepted
/// exactly when it is checkpoint text of the key's origin (with the same size and root).
pub fn checkpoint_parse(data: &[u8]) {
    static VKEY: OnceLock<VerifyingKey> = OnceLock::new();
    let signer = checkpoint_signer();
    let key = signer.public();
    let vkey = VKEY.get_or_init(|| SigningKey::from_bytes(&CHECKPOINT_SEED).verifying_key());

    // 1. The input as a signed note.
    match key.verify(data) {
        Ok(cp) => {
            let confirmed = independently_verified(CHECKPOINT_ORIGIN, vkey, key.id(), data);
            assert_eq!(
                confirmed,
                Some((cp.size, cp.root.0)),
                "accepted a note that is not a checkpoint signed by the key"
            );
            assert_eq!(cp.origin, CHECKPOINT_ORIGIN);
            assert_eq!(cp.note, data);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // 2. The input as key strings: parse, print, parse again gives the same key.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = OriginKey::parse(text) {
            assert_eq!(OriginKey::parse(&k.verifier_key()).as_ref().ok(), Some(&k));
        }
        if let Ok(s) = OriginSigner::parse(text) {
            let again = OriginSigner::parse(&s.private_key()).expect("printed key parses");
            assert_eq!(again.public(), s.public());
        }
    }

    // 3. A checkpoint of the input's size and root: accepted as signed, refused when changed.
    let mut input = Input(data);
    let (size, root) = (input.u64(), Hash(input.hash()));
    let cp = signer.sign_checkpoint(size, root).expect("sign");
    let expected = SignedCheckpoint {
        origin: CHECKPOINT_ORIGIN.to_owned(),
        size,
        root,
        note: cp.note.clone(),
    };
    assert_eq!(key.verify(&cp.note).ok(), Some(expected));
    let mut tampered = cp.note.clone();
    let at = usize::from(input.u16()) % tampered.len();
    tampered[at] ^= input.u8().max(1);
    assert!(
        key.verify(&tampered).is_err(),
        "accepted a note changed at byte {at}"
    );
    // Notes by another key under the same name (the `impostor` seed and its mutations) are
    // refused by part 1: the independent reading does not confirm them.

    // 4. The input as note text, validly signed by the key: this puts the checkpoint text
    // parser behind a good signature. Accepted exactly when it is a checkpoint of the origin.
    if let Ok(note) = signer.sign_note(data) {
        let text = std::str::from_utf8(data).expect("signed note text is UTF-8");
        let got = key.verify(&note).ok().map(|cp| (cp.size, cp.root.0));
        assert_eq!(
            got,
            checkpoint_text(CHECKPOINT_ORIGIN, text),
            "signed text {text:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// proof_verify

/// Builds a `proof_verify` input in "raw" mode (see [`proof_verify`]).
pub fn proof_input_raw(a: u64, b: u64, leaf: &[u8], root: &[u8], proof: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend(a.to_le_bytes());
    v.extend(b.to_le_bytes());
    for field in [leaf, root] {
        v.push(field.len() as u8);
        v.extend(field);
    }
    v.push(proof.len() as u8);
    for h in proof {
        v.push(h.len() as u8);
        v.extend(*h);
    }
    v
}

/// `verify_inclusion` and `verify_consistency` on arbitrary values (first byte even), or on a
/// real tree built from the input and claims mutated from its real proofs (first byte odd).
///
/// Checks, raw mode: no panic whatever the sizes, indexes, hash lengths and proof lengths, and
/// nothing accepted outside `index < size` and `1 <= old <= new`. Tree mode: real proofs verify;
/// a claim against the real root of size `n` is accepted if and only if it *is* the real
/// proof: the right leaf hash and exactly the proof the tree gives for that index (inclusion),
/// or the real old root and exactly the tree's consistency proof (consistency). Any other
/// accepted proof would mean a second valid proof for one statement, or a forged one.
pub fn proof_verify(data: &[u8]) {
    let mut input = Input(data);
    if input.u8() & 1 == 0 {
        proof_raw(input)
    } else {
        proof_tree(input)
    }
}

fn proof_raw(mut input: Input<'_>) {
    let (a, b) = (input.u64(), input.u64());
    let leaf_len = usize::from(input.u8() % 64);
    let leaf = input.bytes(leaf_len);
    let root_len = usize::from(input.u8() % 64);
    let root = input.bytes(root_len);
    let count = input.u8();
    let proof: Vec<&[u8]> = (0..count)
        .map(|_| {
            let len = usize::from(input.u8() % 64);
            input.bytes(len)
        })
        .collect();
    if merkle::verify_inclusion(a, b, leaf, &proof, root).is_ok() {
        assert!(a < b, "inclusion accepted for index {a} of size {b}");
        assert!(leaf.len() == 32 && root.len() == 32 && proof.iter().all(|h| h.len() == 32));
        assert!(proof.len() <= 64);
    }
    if merkle::verify_consistency(a, b, leaf, root, &proof).is_ok() {
        assert!(
            1 <= a && a <= b,
            "consistency accepted for sizes {a} -> {b}"
        );
        if a < b {
            assert!(leaf.len() == 32 && root.len() == 32 && proof.iter().all(|h| h.len() == 32));
        } else {
            assert!(proof.is_empty() && leaf == root);
        }
    }
}

fn proof_bytes(p: &[Hash]) -> Vec<Vec<u8>> {
    p.iter().map(|h| h.0.to_vec()).collect()
}

/// Applies up to 7 input-chosen changes to a claim `(index, hash, proof)`; `pool` offers
/// plausible replacement hashes (real leaves and roots of the same tree).
fn mutate(input: &mut Input<'_>, claim: &mut (u64, Vec<u8>, Vec<Vec<u8>>), pool: &[Hash]) {
    let ops = input.u8() % 8;
    for _ in 0..ops {
        let (op, a, b, bit) = (input.u8(), input.u16(), input.u16(), input.u8());
        let (index, hash, proof) = (&mut claim.0, &mut claim.1, &mut claim.2);
        let len = proof.len();
        let pick = |x: u16| pool[usize::from(x) % pool.len()].0.to_vec();
        match op % 10 {
            0 if len > 0 => proof[usize::from(a) % len][usize::from(b) % 32] ^= 1 << (bit % 8),
            1 => hash[usize::from(b) % 32] ^= 1 << (bit % 8),
            2 if len > 0 => {
                proof.remove(usize::from(a) % len);
            }
            3 => {
                let h = if len > 0 && bit & 1 == 0 {
                    proof[usize::from(b) % len].clone()
                } else {
                    pick(b)
                };
                proof.insert(usize::from(a) % (len + 1), h);
            }
            4 if len > 0 => proof.swap(usize::from(a) % len, usize::from(b) % len),
            5 => *index = u64::from(a),
            6 => *index = index.wrapping_add(u64::from(bit)).wrapping_sub(128),
            7 => proof.truncate(usize::from(a) % (len + 1)),
            8 if len > 0 => proof[usize::from(a) % len] = pick(b),
            9 => *hash = pick(a),
            _ => {}
        }
    }
}

fn proof_tree(mut input: Input<'_>) {
    // A tree of 1..=512 leaves; `distinct` small makes repeated leaves (and equal subtrees).
    let n = 1 + u64::from(input.u16()) % 512;
    let salt = input.u8();
    let distinct = 1 + u64::from(input.u8());
    let mut tree = MemoryHashes::new();
    for i in 0..n {
        let v = i % distinct;
        tree.push_leaf(&[salt, (v >> 8) as u8, v as u8]);
    }
    let size = 1 + input.u64() % n;
    let root = tree.root_at(size).expect("size <= n");
    let leaf = |i: u64| tree.leaf_hash(i).expect("i < n");
    let mut pool: Vec<Hash> = (0..n.min(8)).map(leaf).collect();
    pool.extend((1..=n.min(8)).map(|s| tree.root_at(s).expect("s <= n")));

    // Inclusion: the real proof verifies; a mutated claim only if it is a real proof.
    let index = input.u64() % size;
    let real = inclusion_proof(index, size, &tree).expect("index < size");
    merkle::verify_inclusion(index, size, &leaf(index).0, &proof_bytes(&real), &root.0)
        .expect("a real inclusion proof verifies");
    let mut claim = (index, leaf(index).0.to_vec(), proof_bytes(&real));
    mutate(&mut input, &mut claim, &pool);
    let (ci, cleaf, cproof) = &claim;
    let accepted = merkle::verify_inclusion(*ci, size, cleaf, cproof, &root.0).is_ok();
    let genuine = *ci < size
        && *cleaf == leaf(*ci).0
        && *cproof == proof_bytes(&inclusion_proof(*ci, size, &tree).expect("ci < size"));
    assert_eq!(
        accepted, genuine,
        "inclusion of index {ci} in size {size} (real index {index}, tree of {n}): accepted \
         {accepted}, genuine {genuine}"
    );

    // Consistency from an old size to `size`: the same, with the old root as the claimed hash.
    let old = 1 + input.u64() % size;
    let old_root = tree.root_at(old).expect("old <= n");
    let real = consistency_proof(old, size, &tree).expect("1 <= old <= size");
    merkle::verify_consistency(old, size, &old_root.0, &root.0, &proof_bytes(&real))
        .expect("a real consistency proof verifies");
    let mut claim = (old, old_root.0.to_vec(), proof_bytes(&real));
    mutate(&mut input, &mut claim, &pool);
    let (co, croot, cproof) = &claim;
    let accepted = merkle::verify_consistency(*co, size, croot, &root.0, cproof).is_ok();
    let genuine = (1..=size).contains(co)
        && *croot == tree.root_at(*co).expect("co <= n").0
        && *cproof == proof_bytes(&consistency_proof(*co, size, &tree).expect("valid sizes"));
    assert_eq!(
        accepted, genuine,
        "consistency {co} -> {size} (real old size {old}, tree of {n}): accepted {accepted}, \
         genuine {genuine}"
    );
}

// ---------------------------------------------------------------------------------------------
// config_parse

/// `Config::from_toml_str` (TOML, serde, then `validate`) on arbitrary text.
///
/// Checks: no panic; errors have a message; an accepted config passes `validate` again, has a
/// valid origin name, a usable key for every trust entry (named after its origin), only
/// http(s) peers, well-formed tokens, and `check_exposure` allows loopback always and another
/// address exactly when tokens and TLS are configured or `insecure` is set.
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let config = match Config::from_toml_str(&text, Path::new("fuzz.toml")) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    config
        .validate()
        .expect("an accepted config validates again");
    let origin = &config.origin;
    assert!(!origin.is_empty() && !origin.contains('+'));
    assert!(!origin.chars().any(char::is_whitespace));
    for t in &config.trust {
        let key = config
            .trusted_key(t)
            .expect("accepted trust entry has a key");
        assert_eq!(key.name(), t.origin);
    }
    for p in &config.peers {
        assert!(p.url.starts_with("http://") || p.url.starts_with("https://"));
    }
    for t in &config.tokens {
        assert!(!t.name.is_empty() && !t.scopes.is_empty() && t.sha256.len() == 64);
    }
    let loopback: SocketAddr = "127.0.0.1:7443".parse().expect("addr");
    config
        .check_exposure(loopback)
        .expect("loopback is always allowed");
    let public: SocketAddr = "192.0.2.1:7443".parse().expect("addr");
    let protected = !config.tokens.is_empty() && config.tls.is_some();
    assert_eq!(
        config.check_exposure(public).is_ok(),
        protected || config.insecure
    );
    let _ = config.request_timeout();
}

// ---------------------------------------------------------------------------------------------
// image_hash

/// Limits of the `image_hash` target: the server's defaults scaled down (same code paths, far
/// more inputs per second: hashing a 1-megapixel image with every type takes tens of ms).
pub fn image_limits() -> DecodeLimits {
    DecodeLimits {
        max_encoded_bytes: 1 << 20,
        max_width: 2048,
        max_height: 2048,
        max_pixels: 1 << 18,
        max_alloc_bytes: 8 << 20,
        ..DecodeLimits::default()
    }
}

/// The bound `DecodeLimits` documents for one `hash_image` call: the decoder's allocation cap,
/// about 3 bytes per pixel for conversions (4 here), PDQ's row buffers, plus the input and a
/// small allowance for the small buffers decoders keep.
fn image_heap(input_len: usize) -> usize {
    let l = image_limits();
    let pdq = 4 * l.max_width as usize * (l.max_height as usize / 128 + 90);
    l.max_alloc_bytes as usize + 4 * l.max_pixels as usize + pdq + 2 * input_len + (4 << 20)
}

/// `hash_image_with_dihedral` (every signal type and PDQ's eight rotations/flips) and
/// `hash_image` (exact types only) on arbitrary bytes, under [`image_limits`].
///
/// Checks: no panic; memory within [`Target::max_heap_bytes`] (fuzz targets only); what
/// `probe` refuses, both refuse; an accepted image's header is within the limits, every signal
/// has its type's length, in request order, PDQ's quality is in 0..=100 and its `Original`
/// dihedral hash is the PDQ signal, and md5/sha256 are those of the bytes and the same as the
/// exact-only call gives.
pub fn image_hash(data: &[u8]) {
    let limits = image_limits();
    let probed = probe(data, &limits);
    let exact = hash_image(data, &limits, &[SignalType::Md5, SignalType::Sha256]);
    let full = hash_image_with_dihedral(data, &limits, &SignalType::IMAGE, true);
    if let Err(e) = &probed {
        assert!(
            exact.is_err() && full.is_err(),
            "probe refused ({e}) but hashing did not"
        );
    }
    if let Ok(exact) = &exact {
        assert!(probed.is_ok());
        assert_eq!(exact.len(), 2);
        assert_eq!(exact[0].bytes, redline_hashing::exact::md5(data));
        assert_eq!(exact[1].bytes, redline_hashing::exact::sha256(data));
    }
    let hashes = match full {
        Ok(h) => h,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let info = probed.expect("hashed an image probe refused");
    assert!(info.width >= 1 && info.width <= limits.max_width);
    assert!(info.height >= 1 && info.height <= limits.max_height);
    assert!(u64::from(info.width) * u64::from(info.height) <= limits.max_pixels);
    let exact = exact.expect("exact hashing refused an image full hashing accepted");
    let types: Vec<SignalType> = hashes.signals.iter().map(|s| s.signal_type).collect();
    assert_eq!(types, SignalType::IMAGE);
    for s in &hashes.signals {
        assert_eq!(s.bytes.len(), s.signal_type.byte_len(), "{}", s.signal_type);
        match s.signal_type {
            SignalType::Pdq => assert!(s.quality.is_some_and(|q| q <= 100)),
            _ => assert_eq!(s.quality, None),
        }
    }
    let pdq = &hashes.signals[0];
    let dihedral = hashes.pdq_dihedral.expect("dihedral hashes were asked for");
    assert_eq!(dihedral.get(Dihedral::Original).0.as_slice(), pdq.bytes);
    assert_eq!(Some(dihedral.quality), pdq.quality);
    assert_eq!(hashes.signals[5..], exact[..]);
}
