//! Public test vectors, read in place from `../shared` (or `$REDLINE_SHARED`):
//! transparency-dev/merkle's RFC 6962/9162 inclusion and consistency cases, and Go's
//! `sumdb/note` Ed25519 signing vector. A machine without that folder skips with a message.

use base64::prelude::{Engine, BASE64_STANDARD};
use redline_proto::checkpoint::{OriginKey, OriginSigner};
use redline_proto::merkle::{verify_consistency, verify_inclusion};
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("REDLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("tlog-vectors").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} has no tlog-vectors/ (set REDLINE_SHARED to the shared folder)",
            dir.display()
        );
        None
    }
}

fn b64(s: &str) -> Vec<u8> {
    BASE64_STANDARD.decode(s).expect("vector base64")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read vector dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

/// Every inclusion case gives its `wantErr` verdict. (The `subtree*` folders hold proofs of the
/// later subtree draft, not RFC 9162 §2.1.3-2.1.4, and are not used by Redline.)
#[test]
fn transparency_dev_inclusion_vectors() {
    let Some(shared) = shared_dir() else { return };
    let files = json_files(&shared.join("tlog-vectors/testdata/inclusion"));
    assert!(
        files.len() > 30,
        "found only {} inclusion vectors",
        files.len()
    );
    for f in &files {
        let c: InclusionCase = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.unwrap_or_default().iter().map(|p| b64(p)).collect();
        let got = verify_inclusion(
            c.leaf_idx,
            c.tree_size,
            &b64(&c.leaf_hash),
            &proof,
            &b64(&c.root),
        );
        assert_eq!(got.is_err(), c.want_err, "{}: got {got:?}", f.display());
    }
    eprintln!("{} inclusion vectors agree", files.len());
}

#[test]
fn transparency_dev_consistency_vectors() {
    let Some(shared) = shared_dir() else { return };
    let files = json_files(&shared.join("tlog-vectors/testdata/consistency"));
    assert!(
        files.len() > 30,
        "found only {} consistency vectors",
        files.len()
    );
    for f in &files {
        let c: ConsistencyCase = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let proof: Vec<Vec<u8>> = c.proof.unwrap_or_default().iter().map(|p| b64(p)).collect();
        let got = verify_consistency(c.size1, c.size2, &b64(&c.root1), &b64(&c.root2), &proof);
        assert_eq!(got.is_err(), c.want_err, "{}: got {got:?}", f.display());
    }
    eprintln!("{} consistency vectors agree", files.len());
}

#[derive(Deserialize)]
struct NoteVector {
    signer_key: String,
    verifier_key: String,
    text: String,
    signed_note: String,
    bad_verifier_keys: Vec<String>,
    sum_golang_org_vkey: String,
}

/// Go's `TestSign` vector is reproduced byte for byte, it verifies, and malformed keys fail.
#[test]
fn go_signed_note_vector() {
    let Some(shared) = shared_dir() else { return };
    let v: NoteVector = serde_json::from_slice(
        &std::fs::read(shared.join("tlog-vectors/signed-note.json")).unwrap(),
    )
    .unwrap();
    let signer = OriginSigner::parse(&v.signer_key).expect("signer key parses");
    assert_eq!(signer.public().verifier_key(), v.verifier_key);
    assert_eq!(signer.private_key(), v.signer_key);
    let note = signer.sign_note(v.text.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(note).unwrap(), v.signed_note);

    let key = OriginKey::parse(&v.verifier_key).expect("verifier key parses");
    assert_eq!(key.verifier_key(), v.verifier_key);
    // sum.golang.org's real key parses too.
    OriginKey::parse(&v.sum_golang_org_vkey).expect("sum.golang.org key parses");
    for bad in &v.bad_verifier_keys {
        assert!(OriginKey::parse(bad).is_err(), "accepted bad key {bad}");
    }
}
