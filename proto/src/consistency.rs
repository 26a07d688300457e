//! "Does this signed checkpoint extend what I hold?" — the one rule every holder applies to a
//! newly verified checkpoint of an origin: the node judging a peer's offer, the auditor comparing
//! with its previous audit, a platform checking a cosigned head.
//!
//! Both functions take tree heads whose signatures the caller has already verified
//! ([`crate::checkpoint::OriginKey::verify`]); nothing here looks at unsigned fields.

use crate::merkle::{self, Hash, ProofError, EMPTY_HASH};
use thiserror::Error;

/// A tree size and its root, as a verified checkpoint states them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeHead {
    /// Number of leaves.
    pub size: u64,
    /// RFC 9162 root.
    pub root: Hash,
}

impl TreeHead {
    /// The empty tree (every tree extends it).
    pub const EMPTY: TreeHead = TreeHead {
        size: 0,
        root: EMPTY_HASH,
    };
}

impl From<&crate::checkpoint::SignedCheckpoint> for TreeHead {
    fn from(c: &crate::checkpoint::SignedCheckpoint) -> Self {
        TreeHead {
            size: c.size,
            root: c.root,
        }
    }
}

/// Why `newer` does not extend `older`.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ExtendsError {
    #[error("the log shrank from size {older} to {newer}")]
    Shrank { older: u64, newer: u64 },
    #[error("two different roots for size {size}: {} and {}", hex::encode(.older.0), hex::encode(.newer.0))]
    Fork { size: u64, older: Hash, newer: Hash },
    #[error("the empty tree's root is not SHA-256 of nothing")]
    BadEmptyRoot,
    #[error("no consistency from size {older} to {newer}: {source}")]
    Proof {
        older: u64,
        newer: u64,
        source: ProofError,
    },
}

/// Checks with an RFC 9162 consistency proof that `newer` extends `older`. Equal sizes need equal
/// roots (and an empty proof); every tree extends the empty one.
pub fn extends(
    older: TreeHead,
    newer: TreeHead,
    proof: &[impl AsRef<[u8]>],
) -> Result<(), ExtendsError> {
    if older.size > newer.size {
        return Err(ExtendsError::Shrank {
            older: older.size,
            newer: newer.size,
        });
    }
    if older.size == 0 {
        return if older.root == EMPTY_HASH {
            Ok(())
        } else {
            Err(ExtendsError::BadEmptyRoot)
        };
    }
    if older.size == newer.size {
        return if older.root == newer.root {
            Ok(())
        } else {
            Err(ExtendsError::Fork {
                size: older.size,
                older: older.root,
                newer: newer.root,
            })
        };
    }
    merkle::verify_consistency(older.size, newer.size, &older.root.0, &newer.root.0, proof).map_err(
        |source| ExtendsError::Proof {
            older: older.size,
            newer: newer.size,
            source,
        },
    )
}

/// What a verified checkpoint means to a holder of the same origin's log.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Exactly the head held.
    Current,
    /// Older than the head held, and a prefix of it.
    Stale,
    /// Newer: fetch up to it (its leaves must then give its root).
    Ahead,
    /// Newer than what a node holds *of its own origin*: only that node signs it, so its key is
    /// in use elsewhere.
    OwnOriginAhead,
    /// Not a prefix of what is held: the origin signed two histories.
    Equivocation(ExtendsError),
    /// Newer than the prefix held, older than the signed checkpoint the holder is catching up
    /// to ([`judge_towards`]): nothing proves yet whether it is a prefix of that one, and it
    /// has nothing the target lacks. It is judged like any older checkpoint once the holder
    /// holds the target (peers offer their latest checkpoint on every poll).
    BelowTarget,
}

/// Judges `offered` against the `held` head of the same origin. `root_at(n)` gives the root of
/// the first `n < held.size` leaves held (read from the holder's own tree); it is called only for
/// an offer older than what is held. `own_origin` is whether the holder is the origin itself.
pub fn judge<E>(
    held: TreeHead,
    offered: TreeHead,
    own_origin: bool,
    root_at: impl FnOnce(u64) -> Result<Hash, E>,
) -> Result<Judgement, E> {
    if offered.size > held.size {
        return Ok(if own_origin {
            Judgement::OwnOriginAhead
        } else {
            Judgement::Ahead
        });
    }
    let held_root = if offered.size == held.size {
        held.root
    } else if offered.size == 0 {
        EMPTY_HASH
    } else {
        root_at(offered.size)?
    };
    let prefix = TreeHead {
        size: offered.size,
        root: held_root,
    };
    Ok(match extends(offered, prefix, &[] as &[&[u8]]) {
        Ok(()) if offered.size == held.size => Judgement::Current,
        Ok(()) => Judgement::Stale,
        Err(e) => Judgement::Equivocation(e),
    })
}

/// [`judge`] for a holder catching up in steps: it holds `held`, a prefix proven part of the
/// signed `target` it has the note of. An offer of the target's size must have the target's
/// root (two signed roots for one size are equivocation, no proof needed); one between the
/// prefix and the target is [`Judgement::BelowTarget`] (fetching towards it would give up the
/// target's note, the only thing that can later show the two to be one history). Anything
/// else is judged against the prefix by [`judge`]; an offer past the target is `Ahead`, and
/// the holder must check with a consistency proof that it extends the target before fetching.
pub fn judge_towards<E>(
    held: TreeHead,
    target: TreeHead,
    offered: TreeHead,
    own_origin: bool,
    root_at: impl FnOnce(u64) -> Result<Hash, E>,
) -> Result<Judgement, E> {
    if offered.size == target.size {
        return Ok(match extends(offered, target, &[] as &[&[u8]]) {
            Ok(()) => Judgement::Ahead,
            Err(e) => Judgement::Equivocation(e),
        });
    }
    if offered.size > held.size && offered.size < target.size {
        return Ok(Judgement::BelowTarget);
    }
    judge(held, offered, own_origin, root_at)
}

#[cfg(test)]
mod tests {
    //! Table-driven like Go's `tlog_test.go`: every verdict of [`judge`] and every error of
    //! [`extends`], over one small real tree.
    use super::*;
    use crate::merkle::{consistency_proof, MemoryHashes};

    fn tree(n: u64) -> MemoryHashes {
        let mut t = MemoryHashes::new();
        for i in 0..n {
            t.push_leaf(format!("leaf {i}").as_bytes());
        }
        t
    }

    fn head(t: &MemoryHashes, size: u64) -> TreeHead {
        TreeHead {
            size,
            root: t.root_at(size).unwrap(),
        }
    }

    #[test]
    fn judge_gives_every_verdict() {
        let t = tree(10);
        let forked = {
            let mut f = tree(6);
            f.push_leaf(b"other");
            f
        };
        let held = head(&t, 8);
        let root_at = |n: u64| -> Result<Hash, ProofError> { t.root_at(n) };
        let cases: &[(&str, TreeHead, bool, Judgement)] = &[
            ("same head", held, false, Judgement::Current),
            ("same head, own origin", held, true, Judgement::Current),
            ("older prefix", head(&t, 3), false, Judgement::Stale),
            ("empty tree", TreeHead::EMPTY, false, Judgement::Stale),
            ("newer", head(&t, 10), false, Judgement::Ahead),
            (
                "newer, own origin",
                head(&t, 10),
                true,
                Judgement::OwnOriginAhead,
            ),
            (
                "older but not a prefix",
                head(&forked, 7),
                false,
                Judgement::Equivocation(ExtendsError::Fork {
                    size: 7,
                    older: forked.root_at(7).unwrap(),
                    newer: t.root_at(7).unwrap(),
                }),
            ),
            (
                "same size, other root",
                TreeHead {
                    size: 8,
                    root: Hash([1; 32]),
                },
                false,
                Judgement::Equivocation(ExtendsError::Fork {
                    size: 8,
                    older: Hash([1; 32]),
                    newer: held.root,
                }),
            ),
            (
                "empty size, bad root",
                TreeHead {
                    size: 0,
                    root: Hash([2; 32]),
                },
                false,
                Judgement::Equivocation(ExtendsError::BadEmptyRoot),
            ),
        ];
        for (name, offered, own, want) in cases {
            assert_eq!(
                &judge(held, *offered, *own, root_at).unwrap(),
                want,
                "{name}"
            );
        }
        // A held tree that cannot be read is the holder's error, not a verdict.
        let failing = |_: u64| -> Result<Hash, &str> { Err("disk") };
        assert_eq!(judge(held, head(&t, 3), false, failing), Err("disk"));
        // ...and is not read when it is not needed.
        assert_eq!(
            judge(held, head(&t, 10), false, failing),
            Ok(Judgement::Ahead)
        );
    }

    /// A holder of the first 4 leaves of a signed 8-leaf target: every verdict by where the
    /// offer falls.
    #[test]
    fn judge_towards_compares_offers_with_the_target_note() {
        let t = tree(10);
        let (held, target) = (head(&t, 4), head(&t, 8));
        let root_at = |n: u64| -> Result<Hash, ProofError> { t.root_at(n) };
        let other_root = TreeHead {
            size: 8,
            root: Hash([3; 32]),
        };
        let cases: &[(&str, TreeHead, Judgement)] = &[
            ("the target itself", target, Judgement::Ahead),
            (
                "the target's size, another root",
                other_root,
                Judgement::Equivocation(ExtendsError::Fork {
                    size: 8,
                    older: Hash([3; 32]),
                    newer: target.root,
                }),
            ),
            (
                "between prefix and target",
                head(&t, 6),
                Judgement::BelowTarget,
            ),
            ("past the target", head(&t, 10), Judgement::Ahead),
            ("the prefix", held, Judgement::Current),
            ("older than the prefix", head(&t, 2), Judgement::Stale),
        ];
        for (name, offered, want) in cases {
            assert_eq!(
                &judge_towards(held, target, *offered, false, root_at).unwrap(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn extends_accepts_real_proofs_and_names_every_failure() {
        let t = tree(13);
        let proof = |a: u64, b: u64| -> Vec<Vec<u8>> {
            consistency_proof(a, b, &t)
                .unwrap()
                .iter()
                .map(|h| h.0.to_vec())
                .collect()
        };
        let none: Vec<Vec<u8>> = Vec::new();
        for a in 1..=13 {
            for b in a..=13 {
                extends(head(&t, a), head(&t, b), &proof(a, b)).unwrap();
            }
        }
        assert_eq!(extends(TreeHead::EMPTY, head(&t, 5), &none), Ok(()));
        let mut bad_proof = proof(4, 13);
        bad_proof[0][0] ^= 1;
        let fake = TreeHead {
            size: 13,
            root: Hash([3; 32]),
        };
        /// (name, older head, newer head, proof, the error it must give)
        type Case = (&'static str, TreeHead, TreeHead, Vec<Vec<u8>>, ExtendsError);
        let cases: Vec<Case> = vec![
            (
                "shrank",
                head(&t, 9),
                head(&t, 4),
                none.clone(),
                ExtendsError::Shrank { older: 9, newer: 4 },
            ),
            (
                "fork at equal size",
                head(&t, 5),
                TreeHead {
                    size: 5,
                    root: Hash([4; 32]),
                },
                none.clone(),
                ExtendsError::Fork {
                    size: 5,
                    older: t.root_at(5).unwrap(),
                    newer: Hash([4; 32]),
                },
            ),
            (
                "bad empty root",
                TreeHead {
                    size: 0,
                    root: Hash([5; 32]),
                },
                head(&t, 3),
                none.clone(),
                ExtendsError::BadEmptyRoot,
            ),
            (
                "altered proof",
                head(&t, 4),
                head(&t, 13),
                bad_proof,
                ExtendsError::Proof {
                    older: 4,
                    newer: 13,
                    source: ProofError::Mismatch,
                },
            ),
            (
                "proof for another root",
                head(&t, 4),
                fake,
                proof(4, 13),
                ExtendsError::Proof {
                    older: 4,
                    newer: 13,
                    source: ProofError::Mismatch,
                },
            ),
            (
                "short hash in proof",
                head(&t, 4),
                head(&t, 13),
                vec![vec![0; 31]],
                ExtendsError::Proof {
                    older: 4,
                    newer: 13,
                    source: ProofError::BadHashLength(31),
                },
            ),
        ];
        for (name, older, newer, proof, want) in cases {
            assert_eq!(extends(older, newer, &proof), Err(want), "{name}");
        }
    }
}
