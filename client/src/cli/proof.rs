//! `redline proof ORIGIN INDEX`: an offline proof that an entry is in an origin's signed list
//! (a C2SP tlog-proof, `redline_proto::proof`), and `redline audit --proof FILE`, which checks
//! one with nothing but the origin's key: a platform can show a regulator which signed version
//! of which list a match came from, long after, without either of them asking a node.

use super::audit::key_ring;
use super::{Global, Out};
use anyhow::{bail, Context, Result};
use clap::Args;
use redline_client::{Auditor, KeyRing};
use redline_proto::entry::{self, Decoded};
use redline_proto::proof::{TlogProof, VerifiedProof, MAX_TLOG_PROOF_BYTES};
use serde_json::json;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

/// Write an offline proof that entry INDEX is in ORIGIN's signed list.
///
/// Asks the node for the origin's latest signed checkpoint, the entry and its inclusion proof,
/// verifies them here against the origin's key (from --key / --trust-file, never from the
/// node), and writes them as one C2SP tlog-proof (https://c2sp.org/tlog-proof): the entry's
/// exact bytes, its index, the inclusion proof and the origin's signed note. Anyone with the
/// origin's key can then verify the file offline: `redline audit --proof FILE`, or any C2SP
/// reader (the entry is the `extra` line, hashed as the RFC 9162 leaf). Needs a token with the
/// `audit` scope. The file holds the whole entry (hash, labels, legal basis, case reference):
/// share it as you would the entry.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline proof hotline-a.example 42 --trust-file trust.toml --out entry-42.tlog-proof
  redline audit --proof entry-42.tlog-proof --trust-file trust.toml")]
pub struct ProofArgs {
    /// The origin (list) the entry is in.
    #[arg(value_name = "ORIGIN")]
    origin: String,
    /// The entry's log index (as `redline submit` or a match printed it).
    #[arg(value_name = "INDEX")]
    index: u64,
    /// Write the proof to FILE (replaced only once verified; `.tlog-proof` by convention)
    /// instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The origin's verifier key (`name+keyid+base64`); repeatable.
    #[arg(long = "key", value_name = "VERIFIER_KEY")]
    keys: Vec<String>,
    /// TOML file with `[[trust]] origin = .. key = ..` entries (a node config works); repeatable.
    #[arg(long, value_name = "FILE")]
    trust_file: Vec<PathBuf>,
}

/// Runs `redline proof`.
pub async fn prove(a: ProofArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let ring = key_ring(&a.keys, &a.trust_file)?;
    let Some(key) = ring.get(&a.origin) else {
        bail!(
            "no key given for origin {}: pass its verifier key with --key or --trust-file (the proof is verified against it before it is written)",
            a.origin
        );
    };
    let mut auditor = Auditor::connect_to(&global.target()).await?;
    let (proof, verified) = auditor.prove_entry(key, a.index).await?;
    let text = proof.to_bytes();
    match &a.out {
        Some(path) => {
            write_atomically(path, &text)?;
            if out.json {
                let mut v = describe_json(&verified);
                v["file"] = json!(path.display().to_string());
                out.json_value(&v)?;
            } else {
                out.line(format!("wrote {}", path.display()))?;
                describe(out, &verified)?;
            }
        }
        None if out.json => {
            let mut v = describe_json(&verified);
            v["tlog_proof"] = json!(String::from_utf8_lossy(&text));
            out.json_value(&v)?;
        }
        None => out
            .writer()
            .write_all(&text)
            .context("cannot write the output")?,
    }
    Ok(true)
}

/// `redline audit --proof FILE`: verifies a proof offline against the trusted key of the origin
/// its checkpoint names. Any failure is an error (exit code 1) saying what is wrong.
pub fn audit_proof(
    file: &Path,
    keys: &[String],
    trust_files: &[PathBuf],
    out: &mut Out,
) -> Result<bool> {
    let ring = key_ring(keys, trust_files)?;
    let verified = verify_file(file, &ring)?;
    if out.json {
        let mut v = describe_json(&verified);
        v["ok"] = json!(true);
        v["file"] = json!(file.display().to_string());
        out.json_value(&v)?;
    } else {
        out.line(format!("proof {}: OK", file.display()))?;
        describe(out, &verified)?;
    }
    Ok(true)
}

/// Reads, parses and verifies the proof in `file` with the key `ring` holds for its origin.
fn verify_file(file: &Path, ring: &KeyRing) -> Result<VerifiedProof> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut bytes = Vec::new();
    // One byte over the limit is enough to refuse it; a huge file is not read whole.
    f.take(MAX_TLOG_PROOF_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let invalid = || format!("{} is not a valid proof", file.display());
    let proof = TlogProof::parse(&bytes).with_context(invalid)?;
    let origin = proof
        .unverified_origin()
        .with_context(|| format!("{}: the checkpoint names no origin", invalid()))?;
    let Some(key) = ring.get(origin) else {
        bail!(
            "{}: no key given for origin {origin:?}, which the proof's checkpoint names; pass the origin's verifier key with --key or --trust-file",
            file.display()
        );
    };
    proof
        .verify(key)
        .with_context(|| format!("{} does not verify", file.display()))
}

/// Replaces `path` with `bytes` only once they are all on disk.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".redline-proof")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Hex of a signal value, shortened past this many characters in text output (a vPDQ value
/// is 74 hex digits a frame).
const SHOWN_HEX: usize = 128;

fn describe(out: &mut Out, v: &VerifiedProof) -> Result<()> {
    let cp = &v.checkpoint;
    out.line(format!("origin:    {}", cp.origin))?;
    out.line(format!("index:     {}", v.index))?;
    out.line(format!("tree size: {}", cp.size))?;
    out.line(format!("root:      {}", hex::encode(cp.root.0)))?;
    out.line(format!("leaf hash: {}", hex::encode(v.leaf_hash.0)))?;
    match entry::decode_leaf(&v.entry) {
        Ok((created_at_ms, Decoded::Add { signal_type, add })) => {
            let mut value = signal_type
                .format_hex(&add.hash)
                .unwrap_or_else(|_| hex::encode(&add.hash));
            if value.len() > SHOWN_HEX {
                value = format!(
                    "{}… ({} hex digits; --json for all)",
                    &value[..SHOWN_HEX],
                    value.len()
                );
            }
            out.line(format!("entry:     ADD {} {value}", signal_type.name()))?;
            out.line(format!(
                "           quality {}, labels [{}], legal basis {:?}, case reference {:?}, created at {created_at_ms} ms",
                add.quality,
                add.labels.join(", "),
                add.legal_basis,
                add.case_ref
            ))?;
        }
        Ok((created_at_ms, Decoded::Retract(r))) => {
            out.line(format!(
                "entry:     RETRACT of index {} (reason {:?}), created at {created_at_ms} ms",
                r.target_index, r.reason
            ))?;
        }
        Err(e) => out.line(format!(
            "entry:     not a valid entry (in the signed log, but never matched by any node): {e}"
        ))?,
    }
    Ok(())
}

fn describe_json(v: &VerifiedProof) -> serde_json::Value {
    let cp = &v.checkpoint;
    let entry = match entry::decode_leaf(&v.entry) {
        Ok((created_at_ms, Decoded::Add { signal_type, add })) => json!({
            "kind": "ADD",
            "signal_type": signal_type.name(),
            "value": signal_type.format_hex(&add.hash).unwrap_or_else(|_| hex::encode(&add.hash)),
            "quality": add.quality,
            "labels": add.labels,
            "legal_basis": add.legal_basis,
            "case_ref": add.case_ref,
            "created_at_ms": created_at_ms,
        }),
        Ok((created_at_ms, Decoded::Retract(r))) => json!({
            "kind": "RETRACT",
            "target_index": r.target_index,
            "reason": r.reason,
            "created_at_ms": created_at_ms,
        }),
        Err(e) => json!({ "kind": "INVALID", "error": e.to_string() }),
    };
    json!({
        "origin": cp.origin,
        "index": v.index,
        "tree_size": cp.size,
        "root": hex::encode(cp.root.0),
        "leaf_hash": hex::encode(v.leaf_hash.0),
        "entry": entry,
    })
}
