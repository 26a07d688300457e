//! Property tests of the protocol code every party shares: proofs verify for every
//! (index, size) and old/new size pair and fail for any single flipped bit; entries round-trip.

use proptest::prelude::*;
use redline_proto::entry::{self, Decoded};
use redline_proto::merkle::{
    consistency_proof, inclusion_proof, verify_consistency, verify_inclusion, MemoryHashes,
};
use redline_proto::pb::AddEntry;

fn tree(n: u64, salt: u64) -> MemoryHashes {
    let mut t = MemoryHashes::new();
    for i in 0..n {
        t.push_leaf(format!("{salt}/{i}").as_bytes());
    }
    t
}

fn bytes(p: &[redline_proto::Hash]) -> Vec<Vec<u8>> {
    p.iter().map(|h| h.0.to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Inclusion: every leaf of a tree of any size verifies; a flipped bit anywhere in the
    /// proof, the leaf hash or the root is refused.
    #[test]
    fn inclusion_proofs_verify_and_any_flipped_bit_fails(
        size in 1u64..300, salt in any::<u64>(), pick in any::<u64>(), bit in 0usize..256
    ) {
        let t = tree(size, salt);
        let index = pick % size;
        let root = t.root();
        let leaf = t.leaf_hash(index).unwrap();
        let proof = bytes(&inclusion_proof(index, size, &t).unwrap());
        prop_assert!(verify_inclusion(index, size, &leaf.0, &proof, &root.0).is_ok());
        let mut bad_root = root.0;
        bad_root[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(index, size, &leaf.0, &proof, &bad_root).is_err());
        let mut bad_leaf = leaf.0;
        bad_leaf[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(index, size, &bad_leaf, &proof, &root.0).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = (pick as usize / 7) % bad.len();
            bad[k][bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(index, size, &leaf.0, &bad, &root.0).is_err());
        }
        // The right proof for another index does not prove this one.
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(other, size, &leaf.0, &proof, &root.0).is_err());
        }
    }

    /// Consistency: every (old, new) pair verifies; flipped bits in proof or roots fail.
    #[test]
    fn consistency_proofs_verify_and_any_flipped_bit_fails(
        new in 1u64..300, salt in any::<u64>(), pick in any::<u64>(), bit in 0usize..256
    ) {
        let t = tree(new, salt);
        let old = 1 + pick % new;
        let (old_root, new_root) = (t.root_at(old).unwrap(), t.root());
        let proof = bytes(&consistency_proof(old, new, &t).unwrap());
        prop_assert!(verify_consistency(old, new, &old_root.0, &new_root.0, &proof).is_ok());
        let mut bad = old_root.0;
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_consistency(old, new, &bad, &new_root.0, &proof).is_err());
        let mut bad = new_root.0;
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_consistency(old, new, &old_root.0, &bad, &proof).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = (pick as usize / 7) % bad.len();
            bad[k][bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(old, new, &old_root.0, &new_root.0, &bad).is_err());
        }
        // A different history of the same size is not consistent.
        let forked = tree(new, salt.wrapping_add(1));
        if old < new {
            prop_assert!(verify_consistency(old, new, &old_root.0, &forked.root().0, &proof).is_err());
        }
    }

    /// ADD entries survive encode/decode unchanged, and the encoding is deterministic.
    #[test]
    fn add_entries_round_trip(
        hash in proptest::collection::vec(any::<u8>(), 32),
        quality in 0u32..=100,
        labels in proptest::collection::vec("[a-z]{1,12}", 0..5),
        legal in "[ -~]{0,80}",
        case_ref in "[ -~]{0,40}",
        created in any::<u64>(),
    ) {
        let add = AddEntry { signal_type: "pdq".into(), hash, quality, labels, legal_basis: legal, case_ref };
        let bytes = entry::encode_add(add.clone(), created).unwrap();
        prop_assert_eq!(&bytes, &entry::encode_add(add.clone(), created).unwrap());
        match entry::decode(&bytes).unwrap() {
            Decoded::Add { add: back, .. } => prop_assert_eq!(back, add),
            other => prop_assert!(false, "decoded {:?}", other),
        }
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn decoding_garbage_is_an_error_not_a_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = entry::decode(&data);
    }
}
