//! Exact signals: MD5 and SHA-256 of the encoded bytes, for lists that only need byte-identical
//! matches (and for interchange with lists that carry only these).

use md5::{Digest, Md5};
use sha2::Sha256;

/// MD5 of `bytes`. Only for matching lists that use MD5; never for anything security related.
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::to_hex;

    #[test]
    fn known_vectors() {
        // RFC 1321 and FIPS 180-2 test vectors.
        assert_eq!(to_hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(to_hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            to_hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            to_hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
