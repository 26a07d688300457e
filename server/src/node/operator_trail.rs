//! The operator audit trail: a local, append-only record of who changed the own log and who
//! looked at the operator view. For every successful Submit and Retract, and every call of the
//! `Node` service (status, this trail, resuming a frozen origin with its reason), it keeps the
//! name of the bearer token, the call, the caller's address, the own-log indexes written, and
//! the time.
//!
//! Never the image, the hashes or the listing's labels and case reference: what was written is
//! named by its indexes, and the entries themselves are in the signed log. The trail is for the
//! hotline's own accountability (which analyst's token retracted entry 1234?), so it is kept in
//! the store beside the log ([`crate::store`], its own tree), not signed and not federated, and
//! read only with the `admin` scope (`ListOperatorEvents`).
//!
//! Refused calls are not recorded: they change nothing, and recording them would let any token
//! grow the trail without writing to the log. A successful call's record (~100 bytes) is small
//! beside the entries it writes. The record is written after the log commit it describes: a
//! crash between the two loses the record, never the entries (the log is the authority on
//! what was written; the trail on who asked).

use super::{blocking, now_ms, Receipt, Result};
use crate::store::{Store, StoreError, StoredCheckpoint};
use prost::Message;
use redline_proto::pb;

/// Most events one page holds.
pub const MAX_PAGE: usize = 1000;

/// Who made a call, as the gRPC layer authenticated it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The token's name; `None` when the node has no tokens.
    pub token: Option<String>,
    /// The peer address of the connection, when known.
    pub remote: Option<String>,
}

/// The trail's service.
#[derive(Debug)]
pub struct OperatorTrail {
    store: Store,
}

impl OperatorTrail {
    pub(super) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records a successful Submit (`call` is its gRPC method).
    pub async fn submitted(&self, actor: &Actor, call: &str, receipt: &Receipt) {
        let new: Vec<u64> = receipt
            .entries
            .iter()
            .filter(|(_, _, duplicate)| !duplicate)
            .map(|(_, index, _)| *index)
            .collect();
        let event = pb::OperatorEvent {
            // A batch's new entries are consecutive, from the log's size before it.
            first_index: new.iter().copied().min().unwrap_or(0),
            written: new.len() as u64,
            duplicates: (receipt.entries.len() - new.len()) as u64,
            tree_size: receipt.checkpoint.size,
            ..event(actor, call)
        };
        self.record(event).await;
    }

    /// Records a successful Retract of `target`, written at `index`.
    pub async fn retracted(
        &self,
        actor: &Actor,
        call: &str,
        target: u64,
        index: u64,
        checkpoint: &StoredCheckpoint,
    ) {
        let event = pb::OperatorEvent {
            first_index: index,
            written: 1,
            retracted: Some(target),
            tree_size: checkpoint.size,
            ..event(actor, call)
        };
        self.record(event).await;
    }

    /// Records a successful ResumeOrigin of `origin` for `reason`.
    pub async fn resumed(&self, actor: &Actor, call: &str, origin: &str, reason: &str) {
        let event = pb::OperatorEvent {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
            ..event(actor, call)
        };
        self.record(event).await;
    }

    /// Records a call that writes nothing (the operator view).
    pub async fn called(&self, actor: &Actor, call: &str) {
        self.record(event(actor, call)).await;
    }

    /// Appends `event`. The call it records has already happened, so a failure is logged
    /// rather than turned into the call's error.
    async fn record(&self, event: pb::OperatorEvent) {
        if let Err(e) = self.store.trail_append(&event.encode_to_vec()).await {
            tracing::error!(
                error = %e,
                call = %event.call,
                token = %event.token,
                first_index = event.first_index,
                written = event.written,
                "could not record an operator call in the trail"
            );
        }
    }

    /// Up to `limit` events (at most [`MAX_PAGE`]; 0 = that many) after id `after`, oldest
    /// first, and the id to pass as `after` for the next page (0 at the end).
    pub async fn page(&self, after: u64, limit: usize) -> Result<(Vec<pb::OperatorEvent>, u64)> {
        let limit = if limit == 0 {
            MAX_PAGE
        } else {
            limit.min(MAX_PAGE)
        };
        let store = self.store.clone();
        let records = blocking(move || store.trail_page(after, limit)).await??;
        let full = records.len() == limit;
        let events = records
            .into_iter()
            .map(|(id, bytes)| {
                let mut e = pb::OperatorEvent::decode(bytes.as_slice()).map_err(|e| {
                    StoreError::Corrupt {
                        what: format!("operator trail record {id}"),
                        detail: e.to_string(),
                    }
                })?;
                e.id = id;
                Ok(e)
            })
            .collect::<Result<Vec<_>>>()?;
        let next = if full {
            events.last().map_or(0, |e| e.id)
        } else {
            0
        };
        Ok((events, next))
    }
}

fn event(actor: &Actor, call: &str) -> pb::OperatorEvent {
    pb::OperatorEvent {
        time_ms: now_ms(),
        token: actor.token.clone().unwrap_or_default(),
        call: call.to_owned(),
        remote: actor.remote.clone().unwrap_or_default(),
        ..Default::default()
    }
}
