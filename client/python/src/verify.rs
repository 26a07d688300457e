//! Verifying an origin's log through the Rust `Auditor` (signature first, then every leaf
//! against the signed root, the protocol's replay for retractions, extension of what an
//! earlier verification saw), and what it yields to Python: the active entries, or the
//! updates past a checkpoint in log order (what the python-threatexchange exchange stores).
//!
//! Nothing a node says is trusted: only the verifier key given here. Results are built from
//! the leaves as they verify and handed out only once the whole log verified.

use crate::errors::{audit_error, InputError};
use crate::hashing::pytx_signal_str;
use pyo3::prelude::*;
use redline_client::lists::ListBuilder;
use redline_client::{AuditError, Auditor, TrustedSize};
use redline_proto::checkpoint::OriginKey;
use redline_proto::merkle::{CompactRange, Hash};
use redline_proto::pb::AddEntry;
use redline_proto::replay::Effect;
use redline_proto::signal::SignalType;

/// An origin key from its C2SP verifier key; with `origin`, the key must be that origin's.
pub fn origin_key(verifier_key: &str, origin: Option<&str>) -> PyResult<OriginKey> {
    let key = OriginKey::parse(verifier_key.trim())
        .map_err(|e| InputError::new_err(format!("not a verifier key: {e}")))?;
    if let Some(origin) = origin {
        if key.name() != origin {
            return Err(InputError::new_err(format!(
                "the verifier key is {:?}'s, not {origin:?}'s",
                key.name()
            )));
        }
    }
    Ok(key)
}

/// A `(size, root_hex)` pair as what an earlier verification established.
pub fn trusted(previous: Option<(u64, String)>) -> PyResult<Option<TrustedSize>> {
    let Some((size, root)) = previous else {
        return Ok(None);
    };
    let root = root.trim().to_ascii_lowercase();
    if size > 0 && (root.len() != 64 || hex::decode(&root).is_err()) {
        return Err(InputError::new_err(format!(
            "the previous root {root:?} is not 64 hex digits"
        )));
    }
    Ok(Some(TrustedSize { size, root }))
}

/// One listed hash of a verified log.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct ListedEntry {
    /// Origin that signed it.
    pub origin: String,
    /// Log index of the ADD.
    pub index: u64,
    /// Redline signal type name.
    pub signal_type: String,
    /// The hash, lowercase hex (vPDQ: the wire form, 74 digits a frame).
    pub value: String,
    /// The value as python-threatexchange writes it (vPDQ: its JSON signal string; others hex).
    pub signal_str: String,
    /// PDQ quality (0: unknown).
    pub quality: u32,
    /// Labels.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
    /// The origin's case reference.
    pub case_ref: String,
    /// When the origin listed it, ms since the epoch.
    pub created_at_ms: u64,
}

#[pymethods]
impl ListedEntry {
    fn __repr__(&self) -> String {
        format!(
            "ListedEntry(origin={:?}, index={}, signal_type={:?}, value={:?}, labels={:?}, legal_basis={:?})",
            self.origin, self.index, self.signal_type, self.value, self.labels, self.legal_basis
        )
    }
}

fn listed(
    origin: &str,
    index: u64,
    t: SignalType,
    add: &AddEntry,
    created_at_ms: u64,
) -> ListedEntry {
    ListedEntry {
        origin: origin.to_owned(),
        index,
        signal_type: t.name().to_owned(),
        value: hex::encode(&add.hash),
        signal_str: pytx_signal_str(t, &add.hash),
        quality: add.quality,
        labels: add.labels.clone(),
        legal_basis: add.legal_basis.clone(),
        case_ref: add.case_ref.clone(),
        created_at_ms,
    }
}

/// An origin's log that verified.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// Origin name (from the key).
    pub origin: String,
    /// Verified tree size.
    pub size: u64,
    /// Verified root, hex.
    pub root: String,
    /// Size the origin's note signs (larger than `size` when the node holds a proven prefix).
    pub signed_size: u64,
    /// ADD entries.
    pub adds: u64,
    /// RETRACT entries.
    pub retracts: u64,
    /// Leaves the origin signed that break a rule of the log (kept, never active).
    pub invalid: u64,
    /// Inclusion proofs from the node checked against the signed root.
    pub inclusion_proofs_checked: u64,
    /// The active (not retracted) entries, in log order.
    pub entries: Vec<ListedEntry>,
}

#[pymethods]
impl VerifiedLog {
    /// `(size, root)`: what to pass as `previous` next time, so a rewritten history is caught.
    #[getter]
    fn checkpoint(&self) -> (u64, String) {
        (self.size, self.root.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "VerifiedLog(origin={:?}, size={}, root={:?}, adds={}, retracts={}, active={})",
            self.origin,
            self.size,
            self.root,
            self.adds,
            self.retracts,
            self.entries.len()
        )
    }
}

/// Fetches and verifies `key`'s log; `previous` must be a prefix of it.
pub async fn verify_origin(
    mut auditor: Auditor,
    key: OriginKey,
    previous: Option<TrustedSize>,
) -> PyResult<VerifiedLog> {
    let mut list = ListBuilder::default();
    let verified = auditor
        .audit_origin_with(&key, previous.as_ref(), Some(16), |_, _, replayed| {
            list.take(replayed);
            Ok(())
        })
        .await
        .map_err(audit_error)?;
    let r = verified.report;
    let entries = list
        .finish()
        .into_iter()
        .filter(|h| h.active())
        .map(|h| {
            let t = SignalType::from_name(&h.signal_type).unwrap_or(SignalType::Pdq);
            let bytes = hex::decode(&h.value).unwrap_or_default();
            ListedEntry {
                origin: r.origin.clone(),
                index: h.index,
                signal_type: h.signal_type,
                signal_str: pytx_signal_str(t, &bytes),
                value: h.value,
                quality: h.quality,
                labels: h.labels,
                legal_basis: h.legal_basis,
                case_ref: h.case_ref,
                created_at_ms: h.created_at_ms,
            }
        })
        .collect();
    Ok(VerifiedLog {
        origin: r.origin,
        size: r.size,
        root: r.root,
        signed_size: r.signed_size,
        adds: r.adds,
        retracts: r.retracts,
        invalid: r.invalid,
        inclusion_proofs_checked: r.inclusion_proofs_checked,
        entries,
    })
}

/// One change a verified leaf makes to the origin's list.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct LogUpdate {
    /// The leaf's index.
    pub index: u64,
    /// `"add"` or `"retract"`.
    pub kind: String,
    /// The ADD the change is about: `index` itself for an add, the retracted ADD's for a retract.
    pub target: u64,
    /// The listed entry, for an add.
    pub entry: Option<ListedEntry>,
    /// The origin's reason, for a retract.
    pub reason: String,
}

#[pymethods]
impl LogUpdate {
    fn __repr__(&self) -> String {
        format!(
            "LogUpdate(index={}, kind={:?}, target={})",
            self.index, self.kind, self.target
        )
    }
}

/// Updates that end at a verified prefix of the log.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct UpdateBatch {
    /// Origin name.
    pub origin: String,
    /// Size of the prefix these updates bring a copy to.
    pub size: u64,
    /// Root of that prefix, hex (the root the origin signed, for the last batch).
    pub root: String,
    /// The changes of leaves in the batch, in log order (invalid leaves change nothing).
    pub updates: Vec<LogUpdate>,
}

#[pymethods]
impl UpdateBatch {
    fn __repr__(&self) -> String {
        format!(
            "UpdateBatch(origin={:?}, size={}, root={:?}, updates={})",
            self.origin,
            self.size,
            self.root,
            self.updates.len()
        )
    }
}

/// Verifies `key`'s whole log (extending `since`) and returns the changes of the leaves past
/// `since`, in log order, in batches of `batch_size` leaves, each ending at a prefix whose size
/// and root are a resume point (a later `since`). At least one batch, empty when nothing is new.
pub async fn log_updates(
    mut auditor: Auditor,
    key: OriginKey,
    since: Option<TrustedSize>,
    batch_size: u64,
) -> PyResult<Vec<UpdateBatch>> {
    let origin = key.name().to_owned();
    let from = since.as_ref().map_or(0, |s| s.size);
    let mut updates: Vec<LogUpdate> = Vec::new();
    let verified = auditor
        .audit_origin_with(&key, since.as_ref(), Some(16), |index, _, replayed| {
            if index < from {
                return Ok(());
            }
            match &replayed.effect {
                Effect::Activate {
                    signal_type,
                    add,
                    created_at_ms,
                } => updates.push(LogUpdate {
                    index,
                    kind: "add".into(),
                    target: index,
                    entry: Some(listed(&origin, index, *signal_type, add, *created_at_ms)),
                    reason: String::new(),
                }),
                Effect::Deactivate {
                    target, retract, ..
                } => updates.push(LogUpdate {
                    index,
                    kind: "retract".into(),
                    target: *target,
                    entry: None,
                    reason: retract.reason.clone(),
                }),
                Effect::Invalid(_) => {}
            }
            Ok::<(), AuditError>(())
        })
        .await
        .map_err(audit_error)?;
    let size = verified.report.size;
    let batch_size = batch_size.max(1);
    // Resume points inside the new leaves: roots of the prefixes at each batch end, from the
    // verified leaf hashes (the protocol's tree, one pass).
    let mut ends: Vec<u64> = (1..)
        .map(|k| from.saturating_add(k * batch_size))
        .take_while(|&end| end < size)
        .collect();
    ends.push(size.max(from));
    let roots = prefix_roots(&verified.leaf_hashes, &ends);
    let mut batches = Vec::with_capacity(ends.len());
    let mut rest = updates.into_iter().peekable();
    for (end, root) in ends.into_iter().zip(roots) {
        let mut batch = Vec::new();
        while let Some(u) = rest.next_if(|u| u.index < end) {
            batch.push(u);
        }
        batches.push(UpdateBatch {
            origin: origin.clone(),
            size: end,
            root,
            updates: batch,
        });
    }
    // The last batch ends at the verified size: its root is the verified one.
    if let Some(last) = batches.last_mut() {
        last.root = verified.report.root.clone();
    }
    Ok(batches)
}

/// Hex roots of the prefixes of sizes `ends` (ascending) of the tree over `leaves`.
fn prefix_roots(leaves: &[Hash], ends: &[u64]) -> Vec<String> {
    let mut tree = CompactRange::new();
    let mut out = Vec::with_capacity(ends.len());
    let mut leaves = leaves.iter();
    for &end in ends {
        while tree.size() < end {
            match leaves.next() {
                Some(h) => tree.push(*h),
                None => break,
            }
        }
        out.push(hex::encode(tree.root().0));
    }
    out
}
