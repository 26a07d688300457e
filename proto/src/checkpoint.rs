//! Signed checkpoints: C2SP `tlog-checkpoint` text (origin, size, base64 root) signed as a C2SP
//! `signed-note` with Ed25519, so standard transparency-log tools can verify Redline's logs.
//!
//! The note format is the `signed_note` crate (a port of Go's `sumdb/note`, checked against Go's
//! vector in the tests). Verification goes through [`OriginKey`], which uses *strict* Ed25519
//! (`verify_strict`: no small-order keys, no non-canonical signatures) rather than the crate's
//! lenient `StandardVerifier`, so one signed root cannot have two valid encodings.

use crate::merkle::Hash;
use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use signed_note::{Note, Signer, Verifier, VerifierList};
use std::fmt;
use thiserror::Error;
use tlog_tiles::Checkpoint as CheckpointText;

/// Algorithm byte of Ed25519 keys in C2SP signed-note key strings.
const ALG_ED25519: u8 = 0x01;

/// Upper bound on a signed checkpoint we are willing to parse (a real one is ~200 bytes).
pub const MAX_SIGNED_NOTE_BYTES: usize = 16 * 1024;

/// Why a key or checkpoint was refused.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error(
        "malformed verifier key {0:?}: expected name+hex(keyid)+base64(0x01||ed25519 public key)"
    )]
    MalformedVerifierKey(String),
    #[error("verifier key {0:?}: key id does not match name and key")]
    KeyIdMismatch(String),
    #[error("malformed private key (expected PRIVATE+KEY+name+hex(keyid)+base64(0x01||seed))")]
    MalformedPrivateKey,
    #[error("origin name {0:?} is not a valid key name (no spaces or '+')")]
    BadOriginName(String),
    #[error("signed note is {0} bytes, over the {MAX_SIGNED_NOTE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    #[error("no valid signature by {0} on the checkpoint: {1}")]
    BadSignature(String, String),
    #[error("malformed checkpoint text")]
    MalformedCheckpoint,
    #[error("checkpoint names origin {found:?}, expected {expected:?}")]
    WrongOrigin { expected: String, found: String },
}

fn key_id(name: &str, pubkey_with_alg: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(pubkey_with_alg);
    u32::from_be_bytes(h.finalize()[..4].try_into().expect("4 bytes"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(char::is_whitespace) && !name.contains('+')
}

/// An origin's public key, as configured by operators and auditors: what provenance rests on.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl fmt::Debug for OriginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.verifier_key())
    }
}

impl OriginKey {
    /// Parses a C2SP verifier key `name+hex(keyid)+base64(0x01||pubkey)`.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        let bad = || CheckpointError::MalformedVerifierKey(vkey.chars().take(200).collect());
        let (name, rest) = vkey.split_once('+').ok_or_else(bad)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(bad)?;
        if id_hex.len() != 8 || !valid_name(name) {
            return Err(bad());
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad())?;
        let key = BASE64_STANDARD.decode(key_b64).map_err(|_| bad())?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(bad());
        }
        if id != key_id(name, &key) {
            return Err(CheckpointError::KeyIdMismatch(vkey.to_owned()));
        }
        let bytes: [u8; 32] = key[1..].try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        if key.is_weak() {
            return Err(bad());
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Builds the key of `name` from a raw Ed25519 public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadOriginName(name.to_owned()));
        }
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(key.as_bytes());
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &with_alg),
            key,
        })
    }

    /// The origin name the key signs for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The C2SP key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The C2SP verifier key string.
    pub fn verifier_key(&self) -> String {
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64_STANDARD.encode(with_alg)
        )
    }

    /// Verifies a signed checkpoint of this origin: the note must carry a valid signature by
    /// this key, and its text must be a checkpoint whose origin line is this key's name.
    pub fn verify(&self, signed_note: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        if signed_note.len() > MAX_SIGNED_NOTE_BYTES {
            return Err(CheckpointError::TooLarge(signed_note.len()));
        }
        let note = Note::from_bytes(signed_note)
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        let verifiers = VerifierList::new(vec![Box::new(self.clone())]);
        note.verify(&verifiers)
            .map_err(|e| CheckpointError::BadSignature(self.name.clone(), e.to_string()))?;
        let text = CheckpointText::from_bytes(note.text())
            .map_err(|_| CheckpointError::MalformedCheckpoint)?;
        if text.origin() != self.name {
            return Err(CheckpointError::WrongOrigin {
                expected: self.name.clone(),
                found: text.origin().to_owned(),
            });
        }
        Ok(SignedCheckpoint {
            origin: self.name.clone(),
            size: text.size(),
            root: *text.hash(),
            note: signed_note.to_vec(),
        })
    }
}

/// The tree size a signed note *states*, read without verifying any signature: for a tool that
/// stores a note to be verified later with a key it does not have yet (a dump of an origin no key
/// was given for). Never decide anything else on it.
pub fn unverified_size(signed_note: &[u8]) -> Result<u64, CheckpointError> {
    if signed_note.len() > MAX_SIGNED_NOTE_BYTES {
        return Err(CheckpointError::TooLarge(signed_note.len()));
    }
    let note =
        Note::from_bytes(signed_note).map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
    CheckpointText::from_bytes(note.text())
        .map(|t| t.size())
        .map_err(|_| CheckpointError::MalformedCheckpoint)
}

impl Verifier for OriginKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

/// An origin's signing identity.
pub struct OriginSigner {
    name: String,
    key: SigningKey,
    public: OriginKey,
}

impl fmt::Debug for OriginSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginSigner")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl OriginSigner {
    /// A signer for `name` with the given Ed25519 key.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CheckpointError> {
        let public = OriginKey::new(name, key.verifying_key())?;
        Ok(Self {
            name: name.to_owned(),
            key,
            public,
        })
    }

    /// A fresh random identity (feature `keygen`, on by default: it needs the OS RNG, which
    /// wasm32-unknown-unknown lacks).
    #[cfg(feature = "keygen")]
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        Self::new(name, SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Parses a C2SP private key `PRIVATE+KEY+name+hex(keyid)+base64(0x01||seed)`.
    pub fn parse(skey: &str) -> Result<Self, CheckpointError> {
        let bad = || CheckpointError::MalformedPrivateKey;
        let rest = skey
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(bad)?;
        let (name, rest) = rest.split_once('+').ok_or_else(bad)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(bad)?;
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad())?;
        let key = BASE64_STANDARD.decode(key_b64).map_err(|_| bad())?;
        if id_hex.len() != 8 || key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(bad());
        }
        let seed: [u8; 32] = key[1..].try_into().map_err(|_| bad())?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if signer.public.id != id {
            return Err(bad());
        }
        Ok(signer)
    }

    /// The C2SP private key string (secret: store with mode 0600).
    pub fn private_key(&self) -> String {
        let mut with_alg = vec![ALG_ED25519];
        with_alg.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.public.id,
            BASE64_STANDARD.encode(with_alg)
        )
    }

    /// The matching public key.
    pub fn public(&self) -> &OriginKey {
        &self.public
    }

    /// Signs arbitrary note text (must end in a newline) as a C2SP signed note.
    pub fn sign_note(&self, text: &[u8]) -> Result<Vec<u8>, CheckpointError> {
        let mut note =
            Note::new(text, &[]).map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        note.add_sigs(&[self])
            .map_err(|e| CheckpointError::MalformedNote(e.to_string()))?;
        Ok(note.to_bytes())
    }

    /// Signs the checkpoint of a tree of `size` leaves with root `root`.
    pub fn sign_checkpoint(
        &self,
        size: u64,
        root: Hash,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let text = CheckpointText::new(&self.name, size, root, "")
            .map_err(|_| CheckpointError::MalformedCheckpoint)?;
        let note = self.sign_note(&text.to_bytes())?;
        Ok(SignedCheckpoint {
            origin: self.name.clone(),
            size,
            root,
            note,
        })
    }
}

impl Signer for OriginSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.public.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A checkpoint whose signature has been checked (or that we signed), with its parsed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    /// Origin name (the checkpoint's first line).
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// RFC 9162 root hash.
    pub root: Hash,
    /// The exact signed-note bytes.
    pub note: Vec<u8>,
}

impl SignedCheckpoint {
    /// The wire form.
    pub fn to_pb(&self) -> crate::pb::Checkpoint {
        crate::pb::Checkpoint {
            origin: self.origin.clone(),
            tree_size: self.size,
            root_hash: self.root.0.to_vec(),
            signed_note: self.note.clone(),
            prefix: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_verifies_and_tampering_fails() {
        let signer = OriginSigner::generate("hotline-a.example").unwrap();
        let cp = signer.sign_checkpoint(42, Hash([9; 32])).unwrap();
        let key = OriginKey::parse(&signer.public().verifier_key()).unwrap();
        assert_eq!(key.verify(&cp.note).unwrap(), cp);
        let text = String::from_utf8(cp.note.clone()).unwrap();
        assert!(text.starts_with("hotline-a.example\n42\n"), "{text}");

        // A relay changes the size in the text: the signature no longer covers it.
        let forged = text.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            key.verify(forged.as_bytes()),
            Err(CheckpointError::BadSignature(..))
        ));
        // A relay signs with its own key under the origin's name.
        let impostor = OriginSigner::generate("hotline-a.example").unwrap();
        let cp2 = impostor.sign_checkpoint(42, Hash([9; 32])).unwrap();
        assert!(matches!(
            key.verify(&cp2.note),
            Err(CheckpointError::BadSignature(..))
        ));
        // Garbage is a clear error, not a panic.
        assert!(key.verify(b"\xff\xfe").is_err());
        assert!(matches!(
            key.verify(&vec![b'a'; MAX_SIGNED_NOTE_BYTES + 1]),
            Err(CheckpointError::TooLarge(_))
        ));
    }

    #[test]
    fn private_key_round_trips() {
        let s = OriginSigner::generate("kr.example").unwrap();
        let again = OriginSigner::parse(&s.private_key()).unwrap();
        assert_eq!(again.public(), s.public());
        assert!(OriginSigner::parse("PRIVATE+KEY+x+00000000+AAAA").is_err());
    }
}
