//! Offline proofs: a C2SP [`tlog-proof`](https://c2sp.org/tlog-proof) that one entry is in an
//! origin's signed log, verifiable with nothing but the origin's key. A platform keeps one per
//! match to show a regulator exactly which signed version of which list the match came from.
//!
//! The text, as the spec fixes it, is a sequence of `\n`-terminated lines:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry's exact leaf bytes>
//! index <decimal, no leading zeroes>
//! <base64 inclusion proof hash, leaf's sibling first, one per line, zero or more>
//!
//! <the checkpoint: the origin's signed note, verbatim, signatures and cosignatures included>
//! ```
//!
//! **Where the entry goes.** The spec's proof names an index but not the data; it reads like a
//! detached signature, checked against data the verifier already holds. A Redline proof must be
//! readable on its own (a regulator has the file, not the log), so it carries the entry's exact
//! leaf bytes in the `extra` line. The spec provides `extra` for "additional data necessary to
//! reconstruct the record hash" and says applications must not implicitly trust it; we do not:
//! the verifier takes the RFC 9162 leaf hash of those bytes and accepts only if that hash is
//! included at `index` under the signed root, so the bytes are trusted because the proof covers
//! them, never because they are there. A second file (or an envelope around the proof) would
//! keep the spec's text bare, but would be one more thing to pair up and lose, and would no
//! longer be the plain `tlog-proof` every other reader parses. Parsing accepts a proof without
//! `extra` (it is valid C2SP); [`TlogProof::verify`] refuses it, since it proves nothing a
//! reader could see.
//!
//! **One encoding.** Everything before the checkpoint is parsed strictly so that a proof has
//! exactly one textual form: the exact header, `extra` present only with non-empty data, no
//! leading zeroes or signs in the index, every hash exactly 44 characters of canonical padded
//! base64 (RFC 4648 §4), no `\r`, no blank or unknown lines, and bounded sizes (at most
//! [`MAX_PROOF_HASHES`] hashes, an entry of at most [`MAX_ENTRY_BYTES`], a checkpoint of at
//! most [`MAX_SIGNED_NOTE_BYTES`], a whole file of at most [`MAX_TLOG_PROOF_BYTES`]). The
//! checkpoint is the rest of the file, byte for byte; the note parser and the origin's key
//! decide about it (a trailing line that is not a signature makes the note malformed).
//!
//! Verification reuses the protocol's one checkpoint verifier ([`OriginKey::verify`]: strict
//! Ed25519, origin line equal to the key's name) and its RFC 9162 inclusion check
//! ([`merkle::verify_inclusion`]).

use crate::checkpoint::{CheckpointError, OriginKey, SignedCheckpoint, MAX_SIGNED_NOTE_BYTES};
use crate::entry::MAX_ENTRY_BYTES;
use crate::merkle::{self, Hash, ProofError, HASH_SIZE};
use base64::prelude::{Engine, BASE64_STANDARD};
use thiserror::Error;

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion proof hashes a proof may carry: a tree of fewer than 2^63 leaves needs at
/// most 63, and no log comes near that.
pub const MAX_PROOF_HASHES: usize = 63;

/// Characters of one base64 SHA-256 hash (with its `=` padding).
const HASH_B64_LEN: usize = 44;

/// Padded base64 length of `n` bytes.
const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Upper bound on a whole proof: the header, an `extra` line with the largest entry, the
/// largest index, [`MAX_PROOF_HASHES`] hashes, the empty line and the largest checkpoint.
/// About 104 KiB; a proof of a PDQ entry is under 1 KiB.
pub const MAX_TLOG_PROOF_BYTES: usize = HEADER.len()
    + 1
    + "extra ".len()
    + base64_len(MAX_ENTRY_BYTES)
    + 1
    + "index ".len()
    + 20 // u64::MAX has 20 digits
    + 1
    + MAX_PROOF_HASHES * (HASH_B64_LEN + 1)
    + 1
    + MAX_SIGNED_NOTE_BYTES;

/// Why a proof was refused. Parse errors name the line (1-based), so a person can find what was
/// altered or cut.
#[derive(Debug, Error)]
pub enum TlogProofError {
    #[error("the proof is {0} bytes, over the {MAX_TLOG_PROOF_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a C2SP tlog-proof: the first line must be exactly {HEADER:?}")]
    BadHeader,
    #[error("the proof is truncated: it ends {0}")]
    Truncated(&'static str),
    #[error("line {line}: {detail}")]
    Malformed { line: usize, detail: String },
    #[error("more than {MAX_PROOF_HASHES} inclusion proof hashes ({0} or more): no tree has such a proof")]
    TooManyHashes(usize),
    #[error("the entry (extra data) is {0} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    EntryTooLarge(usize),
    #[error("the checkpoint is {0} bytes, over the {MAX_SIGNED_NOTE_BYTES}-byte limit")]
    CheckpointTooLarge(usize),
    #[error("the proof carries no entry (no `extra` line): a Redline proof carries the entry's leaf bytes there, without them it proves nothing readable")]
    NoEntry,
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("index {index} is not below the tree size {size} the checkpoint signs")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the entry is not at index {index} of {origin}'s signed tree of size {size} (root {root}): {source}")]
    NotIncluded {
        origin: String,
        index: u64,
        size: u64,
        root: String,
        source: ProofError,
    },
}

/// A parsed (not yet verified) tlog-proof.
#[derive(Debug, Clone, PartialEq)]
pub struct TlogProof {
    /// The `extra` data: in a Redline proof, the entry's exact leaf bytes (see the module
    /// documentation). Unauthenticated until [`TlogProof::verify`].
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry in the log.
    pub index: u64,
    /// RFC 9162 §2.1.3 inclusion proof, from the leaf's sibling up to the root's child.
    pub hashes: Vec<Hash>,
    /// The origin's signed checkpoint, verbatim.
    pub checkpoint: Vec<u8>,
}

/// A proof that verified: the entry at `index` is in the tree the checkpoint signs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProof {
    /// The checkpoint, verified against the origin's key.
    pub checkpoint: SignedCheckpoint,
    /// Index of the entry.
    pub index: u64,
    /// The entry's exact leaf bytes (an encoded `EntryBody`; decode with
    /// [`crate::entry::decode`]).
    pub entry: Vec<u8>,
    /// RFC 9162 leaf hash of `entry`.
    pub leaf_hash: Hash,
}

impl TlogProof {
    /// A Redline proof of `entry` (exact leaf bytes) at `index`, included in the tree that
    /// `checkpoint` (the signed note) signs by `hashes`. Checks the sizes [`TlogProof::parse`]
    /// would refuse, so that whatever is built can be read back; the proof itself is not
    /// checked here (see [`TlogProof::verify`]).
    pub fn new(
        entry: Vec<u8>,
        index: u64,
        hashes: Vec<Hash>,
        checkpoint: Vec<u8>,
    ) -> Result<Self, TlogProofError> {
        if entry.is_empty() {
            return Err(TlogProofError::NoEntry);
        }
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(TlogProofError::EntryTooLarge(entry.len()));
        }
        if hashes.len() > MAX_PROOF_HASHES {
            return Err(TlogProofError::TooManyHashes(hashes.len()));
        }
        if checkpoint.len() > MAX_SIGNED_NOTE_BYTES {
            return Err(TlogProofError::CheckpointTooLarge(checkpoint.len()));
        }
        if checkpoint.is_empty() {
            return Err(TlogProofError::Truncated("without a checkpoint"));
        }
        Ok(Self {
            extra: Some(entry),
            index,
            hashes,
            checkpoint,
        })
    }

    /// The proof's text (the one encoding [`TlogProof::parse`] accepts).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER.len()
                + self.extra.as_ref().map_or(0, |e| base64_len(e.len()) + 7)
                + 28
                + self.hashes.len() * (HASH_B64_LEN + 1)
                + self.checkpoint.len(),
        );
        out.extend_from_slice(HEADER.as_bytes());
        out.push(b'\n');
        if let Some(extra) = &self.extra {
            out.extend_from_slice(b"extra ");
            out.extend_from_slice(BASE64_STANDARD.encode(extra).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(format!("index {}\n", self.index).as_bytes());
        for h in &self.hashes {
            out.extend_from_slice(BASE64_STANDARD.encode(h.0).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a proof strictly (see the module documentation): any deviation from the one
    /// encoding is an error naming the line.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        if bytes.len() > MAX_TLOG_PROOF_BYTES {
            return Err(TlogProofError::TooLarge(bytes.len()));
        }
        let mut lines = Lines { rest: bytes, n: 0 };
        let header = lines
            .next()
            .ok_or(TlogProofError::Truncated("in its first line"))?;
        if header != HEADER.as_bytes() {
            return Err(TlogProofError::BadHeader);
        }

        let mut line = lines
            .next()
            .ok_or(TlogProofError::Truncated("before the index line"))?;
        let extra = match line.strip_prefix(b"extra ") {
            Some(b64) => {
                let at = lines.n;
                if b64.is_empty() {
                    return Err(malformed(
                        at,
                        "an `extra` line with no data (leave the line out instead)",
                    ));
                }
                // Refuse what could not be an entry before decoding it.
                if b64.len() > base64_len(MAX_ENTRY_BYTES) {
                    return Err(TlogProofError::EntryTooLarge(b64.len() / 4 * 3));
                }
                let data = canonical_base64(b64).ok_or_else(|| {
                    malformed(at, "the `extra` data is not canonical padded base64")
                })?;
                line = lines
                    .next()
                    .ok_or(TlogProofError::Truncated("before the index line"))?;
                Some(data)
            }
            None => None,
        };

        let index = line
            .strip_prefix(b"index ")
            .and_then(canonical_decimal)
            .ok_or_else(|| {
                malformed(
                    lines.n,
                    "expected `index N` (a decimal with no sign and no leading zeroes)",
                )
            })?;

        let mut hashes = Vec::new();
        loop {
            let line = lines.next().ok_or(TlogProofError::Truncated(
                "before the empty line that precedes the checkpoint",
            ))?;
            if line.is_empty() {
                break;
            }
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::TooManyHashes(MAX_PROOF_HASHES + 1));
            }
            let hash = (line.len() == HASH_B64_LEN)
                .then(|| canonical_base64(line))
                .flatten()
                .and_then(|b| merkle::hash_from_slice(&b).ok())
                .ok_or_else(|| {
                    malformed(
                        lines.n,
                        "expected an inclusion proof hash (44 characters of canonical base64 of 32 bytes) or the empty line before the checkpoint",
                    )
                })?;
            hashes.push(hash);
        }

        let checkpoint = lines.rest;
        if checkpoint.is_empty() {
            return Err(TlogProofError::Truncated("without a checkpoint"));
        }
        if checkpoint[0] == b'\n' {
            // A checkpoint starts with its origin line, never empty.
            return Err(malformed(
                lines.n + 1,
                "a second empty line before the checkpoint",
            ));
        }
        if checkpoint.len() > MAX_SIGNED_NOTE_BYTES {
            return Err(TlogProofError::CheckpointTooLarge(checkpoint.len()));
        }
        if let Some(e) = &extra {
            if e.len() > MAX_ENTRY_BYTES {
                return Err(TlogProofError::EntryTooLarge(e.len()));
            }
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint: checkpoint.to_vec(),
        })
    }

    /// The origin the checkpoint *names* (its first line), read without verifying anything:
    /// only to pick which trusted key to verify with. Never decide anything else on it.
    pub fn unverified_origin(&self) -> Option<&str> {
        let line = self.checkpoint.split(|&b| b == b'\n').next()?;
        std::str::from_utf8(line).ok().filter(|s| !s.is_empty())
    }

    /// Verifies the proof with nothing but `key`: the checkpoint must be the origin's signed
    /// note (strict Ed25519, origin line = the key's name), and the RFC 9162 leaf hash of the
    /// carried entry must be included at `index` under the signed root.
    pub fn verify(&self, key: &OriginKey) -> Result<VerifiedProof, TlogProofError> {
        let checkpoint = key.verify(&self.checkpoint)?;
        let entry = self.extra.as_ref().ok_or(TlogProofError::NoEntry)?;
        if self.index >= checkpoint.size {
            return Err(TlogProofError::IndexOutOfRange {
                index: self.index,
                size: checkpoint.size,
            });
        }
        let leaf_hash = merkle::leaf_hash(entry);
        let hashes: Vec<[u8; HASH_SIZE]> = self.hashes.iter().map(|h| h.0).collect();
        merkle::verify_inclusion(
            self.index,
            checkpoint.size,
            &leaf_hash.0,
            &hashes,
            &checkpoint.root.0,
        )
        .map_err(|source| TlogProofError::NotIncluded {
            origin: checkpoint.origin.clone(),
            index: self.index,
            size: checkpoint.size,
            root: hex::encode(checkpoint.root.0),
            source,
        })?;
        Ok(VerifiedProof {
            index: self.index,
            entry: entry.clone(),
            leaf_hash,
            checkpoint,
        })
    }
}

/// `\n`-terminated lines, counted; `rest` is what follows the last line returned.
struct Lines<'a> {
    rest: &'a [u8],
    n: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its `\n`, or `None` when no complete line is left.
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        self.n += 1;
        Some(line)
    }
}

fn malformed(line: usize, detail: &str) -> TlogProofError {
    TlogProofError::Malformed {
        line,
        detail: detail.to_owned(),
    }
}

/// Standard padded base64 that re-encodes to exactly the same text (no stray trailing bits,
/// no missing or extra padding, no whitespace).
fn canonical_base64(text: &[u8]) -> Option<Vec<u8>> {
    let data = BASE64_STANDARD.decode(text).ok()?;
    (BASE64_STANDARD.encode(&data).as_bytes() == text).then_some(data)
}

/// An ASCII decimal u64 with no sign and no leading zeroes (`0` itself is fine).
fn canonical_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty()
        || !text.iter().all(u8::is_ascii_digit)
        || (text[0] == b'0' && text.len() > 1)
    {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::OriginSigner;
    use crate::merkle::MemoryHashes;

    const ORIGIN: &str = "hotline.example/list";

    struct Fixture {
        signer: OriginSigner,
        leaves: Vec<Vec<u8>>,
        tree: MemoryHashes,
        note: Vec<u8>,
    }

    fn fixture(n: u64) -> Fixture {
        let signer = OriginSigner::generate(ORIGIN).unwrap();
        let mut tree = MemoryHashes::new();
        let leaves: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("leaf {i} bytes").into_bytes())
            .collect();
        for l in &leaves {
            tree.push_leaf(l);
        }
        let note = signer.sign_checkpoint(n, tree.root()).unwrap().note;
        Fixture {
            signer,
            leaves,
            tree,
            note,
        }
    }

    impl Fixture {
        fn proof(&self, index: u64) -> TlogProof {
            let hashes = merkle::inclusion_proof(index, self.tree.size(), &self.tree).unwrap();
            TlogProof::new(
                self.leaves[index as usize].clone(),
                index,
                hashes,
                self.note.clone(),
            )
            .unwrap()
        }
        fn key(&self) -> OriginKey {
            self.signer.public().clone()
        }
        /// The text of the proof of `index`, altered by `f`, then parsed and verified.
        fn altered(
            &self,
            index: u64,
            f: impl FnOnce(String) -> String,
        ) -> Result<VerifiedProof, TlogProofError> {
            let text = String::from_utf8(self.proof(index).to_bytes()).unwrap();
            let altered = f(text.clone());
            assert_ne!(altered, text, "the alteration changed nothing");
            TlogProof::parse(altered.as_bytes())?.verify(&self.key())
        }
    }

    #[test]
    fn every_index_round_trips_and_verifies() {
        for n in [1u64, 2, 3, 7, 8, 9, 33] {
            let f = fixture(n);
            for index in 0..n {
                let proof = f.proof(index);
                let text = proof.to_bytes();
                let parsed = TlogProof::parse(&text).unwrap();
                assert_eq!(parsed, proof);
                assert_eq!(parsed.to_bytes(), text, "one encoding");
                let v = parsed.verify(&f.key()).unwrap();
                assert_eq!(v.index, index);
                assert_eq!(v.entry, f.leaves[index as usize]);
                assert_eq!(v.leaf_hash, merkle::leaf_hash(&f.leaves[index as usize]));
                assert_eq!(v.checkpoint.size, n);
                assert_eq!(v.checkpoint.root, f.tree.root());
                assert_eq!(parsed.unverified_origin(), Some(ORIGIN));
            }
        }
    }

    #[test]
    fn the_text_is_the_specs_layout() {
        let f = fixture(5);
        let text = String::from_utf8(f.proof(2).to_bytes()).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "c2sp.org/tlog-proof@v1");
        assert_eq!(
            lines[1],
            format!("extra {}", BASE64_STANDARD.encode(b"leaf 2 bytes"))
        );
        assert_eq!(lines[2], "index 2");
        // Size 5, index 2: sibling 3, then the subtree [0, 2), then leaf 4.
        assert_eq!(
            lines.len(),
            3 + 3 + 1 + f.note.split(|&b| b == b'\n').count()
        );
        assert_eq!(lines[6], "");
        assert!(text.ends_with(std::str::from_utf8(&f.note).unwrap()));
    }

    #[test]
    fn a_one_leaf_tree_has_an_empty_proof() {
        let f = fixture(1);
        let proof = f.proof(0);
        assert!(proof.hashes.is_empty());
        let text = String::from_utf8(proof.to_bytes()).unwrap();
        assert!(
            text.contains("\nindex 0\n\nhotline.example/list\n1\n"),
            "{text}"
        );
        TlogProof::parse(text.as_bytes())
            .unwrap()
            .verify(&f.key())
            .unwrap();
    }

    #[test]
    fn a_proof_without_extra_parses_but_does_not_verify() {
        let f = fixture(4);
        let mut proof = f.proof(1);
        proof.extra = None;
        let text = proof.to_bytes();
        assert!(text.starts_with(b"c2sp.org/tlog-proof@v1\nindex 1\n"));
        let parsed = TlogProof::parse(&text).unwrap();
        assert_eq!(parsed, proof);
        assert!(matches!(
            parsed.verify(&f.key()),
            Err(TlogProofError::NoEntry)
        ));
    }

    #[test]
    fn forged_proofs_are_refused() {
        let f = fixture(9);
        let b64 = |h: &[u8]| BASE64_STANDARD.encode(h);

        // A flipped bit in a proof hash (re-encoded canonically, so only the math can tell).
        let proof = f.proof(4);
        let mut flipped = proof.clone();
        flipped.hashes[1].0[0] ^= 0x01;
        assert!(matches!(
            TlogProof::parse(&flipped.to_bytes())
                .unwrap()
                .verify(&f.key()),
            Err(TlogProofError::NotIncluded {
                index: 4,
                size: 9,
                ..
            })
        ));
        // A hash left out, or one added.
        let mut short = proof.clone();
        short.hashes.pop();
        assert!(matches!(
            short.verify(&f.key()),
            Err(TlogProofError::NotIncluded { .. })
        ));
        let mut long = proof.clone();
        long.hashes.push(Hash([7; 32]));
        assert!(matches!(
            long.verify(&f.key()),
            Err(TlogProofError::NotIncluded { .. })
        ));

        // Another index: the same entry and proof do not lead to the root from there.
        let r = f.altered(4, |t| t.replacen("\nindex 4\n", "\nindex 5\n", 1));
        assert!(
            matches!(r, Err(TlogProofError::NotIncluded { index: 5, .. })),
            "{r:?}"
        );
        // An index past the signed tree.
        let r = f.altered(4, |t| t.replacen("\nindex 4\n", "\nindex 9\n", 1));
        assert!(
            matches!(
                r,
                Err(TlogProofError::IndexOutOfRange { index: 9, size: 9 })
            ),
            "{r:?}"
        );

        // Another entry under a genuine proof of index 4 (a neighbour's, or an edited one).
        let r = f.altered(4, |t| t.replacen(&b64(&f.leaves[4]), &b64(&f.leaves[5]), 1));
        assert!(
            matches!(r, Err(TlogProofError::NotIncluded { .. })),
            "{r:?}"
        );
        let r = f.altered(4, |t| {
            t.replacen(&b64(&f.leaves[4]), &b64(b"leaf 4 bytez"), 1)
        });
        assert!(
            matches!(r, Err(TlogProofError::NotIncluded { .. })),
            "{r:?}"
        );

        // The checkpoint's size or root edited: its signature no longer covers it.
        let r = f.altered(4, |t| t.replacen("\n9\n", "\n10\n", 1));
        assert!(
            matches!(
                r,
                Err(TlogProofError::Checkpoint(CheckpointError::BadSignature(
                    ..
                )))
            ),
            "{r:?}"
        );
        // A flipped signature byte.
        let r = f.altered(4, |t| {
            let at = t.rfind(' ').unwrap() + 10;
            let mut bytes = t.into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        });
        assert!(matches!(r, Err(TlogProofError::Checkpoint(_))), "{r:?}");

        // The right shape, signed by someone else under the origin's name.
        let impostor = OriginSigner::generate(ORIGIN).unwrap();
        let mut forged = proof.clone();
        forged.checkpoint = impostor.sign_checkpoint(9, f.tree.root()).unwrap().note;
        assert!(matches!(
            forged.verify(&f.key()),
            Err(TlogProofError::Checkpoint(CheckpointError::BadSignature(
                ..
            )))
        ));
        // A genuine proof checked against another origin's key.
        let other = OriginSigner::generate("other.example").unwrap();
        assert!(matches!(
            proof.verify(other.public()),
            Err(TlogProofError::Checkpoint(_))
        ));
        // A genuine proof against a genuine, but older, checkpoint of the same origin.
        let mut older = proof.clone();
        older.checkpoint = f
            .signer
            .sign_checkpoint(8, f.tree.root_at(8).unwrap())
            .unwrap()
            .note;
        assert!(matches!(
            older.verify(&f.key()),
            Err(TlogProofError::NotIncluded { size: 8, .. })
        ));
        proof.verify(&f.key()).unwrap();
    }

    /// `b64` with the lowest bit of the 6-bit value at character `at` flipped: the same bytes
    /// in a non-canonical encoding when that bit lies past the data.
    fn with_stray_bit(b64: &str, at: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bytes = b64.as_bytes().to_vec();
        let v = ALPHABET.iter().position(|&c| c == bytes[at]).unwrap();
        bytes[at] = ALPHABET[v ^ 1];
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn malformed_text_is_refused_with_the_line() {
        let f = fixture(9);
        let text = String::from_utf8(f.proof(4).to_bytes()).unwrap();
        let parse = |t: &str| TlogProof::parse(t.as_bytes());
        let line_of = |r: Result<TlogProof, TlogProofError>| match r {
            Err(TlogProofError::Malformed { line, .. }) => line,
            other => panic!("expected a malformed line, got {other:?}"),
        };
        let hash_line = text.split('\n').nth(3).unwrap().to_owned();

        // Header.
        assert!(matches!(
            parse(&text.replacen("tlog-proof@v1", "tlog-proof@v2", 1)),
            Err(TlogProofError::BadHeader)
        ));
        assert!(matches!(
            parse(&text.replacen("@v1\n", "@v1\r\n", 1)),
            Err(TlogProofError::BadHeader)
        ));
        assert!(matches!(
            parse(&format!("\n{text}")),
            Err(TlogProofError::BadHeader)
        ));
        assert!(matches!(parse(""), Err(TlogProofError::Truncated(_))));
        assert!(matches!(
            parse("c2sp.org/tlog-proof@v1"),
            Err(TlogProofError::Truncated(_))
        ));

        // Extra.
        assert_eq!(
            line_of(parse(&text.replacen("\nextra ", "\nextra  ", 1))),
            2
        );
        let no_data = text.replacen(
            &format!("extra {}\n", BASE64_STANDARD.encode(&f.leaves[4])),
            "extra \n",
            1,
        );
        assert_eq!(line_of(parse(&no_data)), 2);
        // "leaf 4 bytes" is 12 bytes: 16 characters, no padding. Non-canonical variants:
        let extra = BASE64_STANDARD.encode(b"leaf 4 byte"); // 11 bytes: one '='
        let proof11 = text.replacen(&BASE64_STANDARD.encode(&f.leaves[4]), &extra, 1);
        assert!(parse(&proof11).is_ok());
        assert_eq!(
            line_of(parse(&proof11.replacen(
                &extra,
                extra.trim_end_matches('='),
                1
            ))),
            2
        );
        // The character before '=' holds 2 bits past the data: set one.
        let stray = with_stray_bit(&extra, extra.len() - 2);
        assert_eq!(line_of(parse(&proof11.replacen(&extra, &stray, 1))), 2);
        assert_eq!(
            line_of(parse(&text.replacen("\nextra ", "\nextra\t", 1))),
            2,
            "neither extra nor index"
        );

        // Index.
        for bad in [
            "index 04",
            "index +4",
            "index -4",
            "index  4",
            "index 4 ",
            "index",
            "index 18446744073709551616",
            "Index 4",
        ] {
            assert_eq!(
                line_of(parse(&text.replacen("index 4", bad, 1))),
                3,
                "{bad}"
            );
        }
        let max = text.replacen("index 4", "index 18446744073709551615", 1);
        assert_eq!(parse(&max).unwrap().index, u64::MAX);
        assert!(matches!(
            parse(&max).unwrap().verify(&f.key()),
            Err(TlogProofError::IndexOutOfRange { .. })
        ));

        // Hashes: non-canonical base64, wrong length, whitespace, a stray line.
        let unpadded = hash_line.trim_end_matches('=').to_owned();
        assert_eq!(line_of(parse(&text.replacen(&hash_line, &unpadded, 1))), 4);
        // 32 bytes are 43 characters and '=': the 43rd holds 2 bits past the data.
        let stray = with_stray_bit(&hash_line, 42);
        assert_eq!(line_of(parse(&text.replacen(&hash_line, &stray, 1))), 4);
        assert_eq!(
            line_of(parse(&text.replacen(
                &hash_line,
                &format!("{hash_line} "),
                1
            ))),
            4
        );
        assert_eq!(
            line_of(parse(&text.replacen(
                &hash_line,
                &format!("{hash_line}\r"),
                1
            ))),
            4
        );
        let h48 = BASE64_STANDARD.encode([1u8; 33]);
        assert_eq!(line_of(parse(&text.replacen(&hash_line, &h48, 1))), 4);
        assert_eq!(
            line_of(parse(&text.replacen(
                &hash_line,
                &format!("{hash_line}\nnot a hash"),
                1
            ))),
            5
        );
        assert_eq!(
            line_of(parse(&text.replacen(
                "index 4\n",
                "index 4\nextra AAAA\n",
                1
            ))),
            4
        );

        // A second empty line before the checkpoint (hashes on lines 4 to 7).
        let blank = text.replacen("\n\n", "\n\n\n", 1);
        assert_eq!(line_of(parse(&blank)), 9);
        // Lines after the note's signatures.
        let trailing = format!("{text}more\n");
        assert!(matches!(
            parse(&trailing).unwrap().verify(&f.key()),
            Err(TlogProofError::Checkpoint(CheckpointError::MalformedNote(
                _
            )))
        ));
        let trailing = format!("{text}\n");
        assert!(matches!(
            parse(&trailing).unwrap().verify(&f.key()),
            Err(TlogProofError::Checkpoint(_))
        ));

        // Truncated anywhere: refused, never accepted.
        for cut in 0..text.len() {
            let r = TlogProof::parse(&text.as_bytes()[..cut]).and_then(|p| p.verify(&f.key()));
            assert!(r.is_err(), "cut at {cut} verified");
        }
        assert!(matches!(
            parse(&text[..text.find("\n\n").unwrap() + 2]),
            Err(TlogProofError::Truncated(_))
        ));
        assert!(matches!(
            parse(&text[..text.find("\n\n").unwrap() + 1]),
            Err(TlogProofError::Truncated(_))
        ));
    }

    #[test]
    fn sizes_are_bounded() {
        let f = fixture(3);
        let proof = f.proof(1);

        // 63 hashes parse (and fail only the math); 64 are refused while parsing.
        let mut many = proof.clone();
        many.hashes = vec![Hash([3; 32]); MAX_PROOF_HASHES];
        let parsed = TlogProof::parse(&many.to_bytes()).unwrap();
        assert_eq!(parsed.hashes.len(), MAX_PROOF_HASHES);
        assert!(parsed.verify(&f.key()).is_err());
        many.hashes.push(Hash([3; 32]));
        assert!(matches!(
            TlogProof::parse(&many.to_bytes()),
            Err(TlogProofError::TooManyHashes(64))
        ));
        assert!(matches!(
            TlogProof::new(b"x".to_vec(), 0, many.hashes.clone(), f.note.clone()),
            Err(TlogProofError::TooManyHashes(64))
        ));

        // The largest entry parses; one byte more does not.
        let mut big = proof.clone();
        big.extra = Some(vec![0xab; MAX_ENTRY_BYTES]);
        let text = big.to_bytes();
        assert!(text.len() <= MAX_TLOG_PROOF_BYTES);
        assert_eq!(TlogProof::parse(&text).unwrap(), big);
        big.extra = Some(vec![0xab; MAX_ENTRY_BYTES + 1]);
        assert!(matches!(
            TlogProof::parse(&big.to_bytes()),
            Err(TlogProofError::EntryTooLarge(_))
        ));
        assert!(matches!(
            TlogProof::new(vec![0; MAX_ENTRY_BYTES + 1], 0, vec![], f.note.clone()),
            Err(TlogProofError::EntryTooLarge(_))
        ));

        // A checkpoint over the note limit, and a file over the whole limit.
        let mut huge = proof.clone();
        huge.checkpoint = vec![b'a'; MAX_SIGNED_NOTE_BYTES + 1];
        assert!(matches!(
            TlogProof::parse(&huge.to_bytes()),
            Err(TlogProofError::CheckpointTooLarge(_))
        ));
        let mut text = proof.to_bytes();
        text.resize(MAX_TLOG_PROOF_BYTES + 1, b'a');
        assert!(matches!(
            TlogProof::parse(&text),
            Err(TlogProofError::TooLarge(_))
        ));
        // Bytes that are not text at all.
        assert!(matches!(
            TlogProof::parse(&[0xff, 0xfe, b'\n']),
            Err(TlogProofError::BadHeader)
        ));
    }
}
