//! Victims' reports: the cases behind the public `/report/` page.
//!
//! A person hashes her images on her own device and sends only the hashes. The node opens a
//! case with a random case number and a random PIN, shown to her once; with both she can later
//! see what became of it and withdraw it. A case is kept beside the logs, never in them: the
//! signed log carries only the entries made from it (their `case_ref` is the case number), so
//! nothing about the reporter is federated. Per the hotline's `[report] mode`, a case is
//! listed at once or waits in a review queue an analyst approves or rejects.
//!
//! The reporter has no token, so the calls are bounded per client address instead
//! ([`AddressBudget`]), and the same answer is given for an unknown case number and a wrong
//! PIN, so neither can be probed.

use super::own_log::OwnLog;
use super::{now_ms, Listing, NewSignal, NodeError, Result};
use crate::config::{ReportConfig, ReportMode};
use crate::store::Store;
use rand::Rng;
use redline_proto::signal::SignalType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// A report refused.
#[derive(Debug, Error)]
pub enum ReportError {
    #[error("this node does not take reports (`[report] enabled` is off)")]
    Disabled,
    #[error("no case with this number and PIN")]
    NoSuchCase,
    #[error("case {id} is {status}, not waiting for review")]
    NotQueued { id: String, status: &'static str },
    #[error("a report needs at least one hash")]
    Empty,
    #[error("{got} hashes in one report; at most {max}")]
    TooManySignals { got: usize, max: usize },
    #[error("the context is {len} bytes; at most {max}")]
    ContextTooLong { len: usize, max: usize },
    #[error(
        "too many report calls from this address; wait a minute and try again \
         ({per_min} a minute, {burst} at once)"
    )]
    OverRate { per_min: f64, burst: u32 },
}

/// Where a case stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CaseStatus {
    /// Waiting for an analyst.
    Queued,
    /// In the list: the own log's entries made from it.
    Listed { indices: Vec<u64> },
    /// An analyst declined it; nothing was listed.
    Rejected { reason: String },
    /// The reporter withdrew it; what was listed is retracted.
    Withdrawn,
}

impl CaseStatus {
    /// Its name, as the API says it.
    pub fn name(&self) -> &'static str {
        match self {
            CaseStatus::Queued => "queued",
            CaseStatus::Listed { .. } => "listed",
            CaseStatus::Rejected { .. } => "rejected",
            CaseStatus::Withdrawn => "withdrawn",
        }
    }
}

/// A hash as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedSignal {
    /// Its type's name.
    pub signal_type: String,
    /// Lowercase hex.
    pub value: String,
    /// PDQ quality, 0 when unknown.
    pub quality: u32,
}

/// One case, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The case number.
    pub id: String,
    /// SHA-256 of the PIN, hex. The PIN is 80 random bits, so a digest is enough to keep it
    /// from whoever reads the store, and the reporter is the only one who ever saw it.
    pin_sha256: String,
    /// When it was opened.
    pub created_ms: u64,
    /// The hashes.
    pub signals: Vec<ReportedSignal>,
    /// What the reporter chose to add.
    pub context: String,
    /// Where it stands.
    #[serde(flatten)]
    pub status: CaseStatus,
    /// When it last changed.
    pub updated_ms: u64,
}

/// A case just opened: the only time its PIN exists outside the reporter's hands.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The case.
    pub case: Case,
    /// Its PIN.
    pub pin: String,
}

/// Case numbers and PINs in Crockford's base32 (no I, L, O, U): read aloud or copied from
/// paper without confusion.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn random_code(groups: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..groups)
        .map(|_| {
            (0..4)
                .map(|_| ALPHABET[rng.gen_range(0..32)] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn digest(pin: &str) -> String {
    // Reporters may type the PIN in lower case or without the dashes.
    let canonical: String = pin
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Per-address call budget: a token bucket per client address, kept for at most
/// [`MAX_ADDRESSES`] addresses (the fullest buckets are forgotten first, which only ever
/// gives an address more room, never less).
#[derive(Debug)]
struct AddressBudget {
    per_min: f64,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

const MAX_ADDRESSES: usize = 100_000;

impl AddressBudget {
    fn take(&self, address: IpAddr) -> std::result::Result<(), ReportError> {
        let mut buckets = self.buckets.lock().expect("report budget lock");
        let now = Instant::now();
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            let burst = f64::from(self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * self.per_min / 60.0 < burst
            });
        }
        let (tokens, at) = buckets
            .entry(address)
            .or_insert((f64::from(self.burst), now));
        let refill = now.duration_since(*at).as_secs_f64() * self.per_min / 60.0;
        *tokens = (*tokens + refill).min(f64::from(self.burst));
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ReportError::OverRate {
                per_min: self.per_min,
                burst: self.burst,
            })
        }
    }
}

/// The reports service.
#[derive(Debug)]
pub struct Reports {
    store: Store,
    config: ReportConfig,
    budget: AddressBudget,
    /// One change to a case at a time (status reads need no lock).
    writer: tokio::sync::Mutex<()>,
}

impl Reports {
    /// Cases kept in `store`, handled as `config` says.
    pub fn new(store: Store, config: ReportConfig) -> Self {
        Self {
            budget: AddressBudget {
                per_min: config.per_address_per_min,
                burst: config.per_address_burst,
                buckets: Mutex::new(HashMap::new()),
            },
            store,
            config,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the page and its API are on.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Charges one public call from `address`; refuses when reports are off.
    pub fn admit(&self, address: Option<IpAddr>) -> Result<()> {
        if !self.config.enabled {
            return Err(ReportError::Disabled.into());
        }
        // No address (a test transport): one shared bucket.
        let address = address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(self.budget.take(address)?)
    }

    fn parse(&self, signals: &[ReportedSignal]) -> Result<Vec<NewSignal>> {
        if signals.is_empty() {
            return Err(ReportError::Empty.into());
        }
        if signals.len() > self.config.max_signals {
            return Err(ReportError::TooManySignals {
                got: signals.len(),
                max: self.config.max_signals,
            }
            .into());
        }
        signals
            .iter()
            .enumerate()
            .map(|(position, s)| {
                let t = SignalType::from_name(&s.signal_type)
                    .map_err(|source| NodeError::BadSignal { position, source })?;
                let hash = t
                    .parse_hex(&s.value)
                    .map_err(|source| NodeError::BadSignal { position, source })?;
                Ok(NewSignal {
                    signal_type: t,
                    hash,
                    quality: s.quality.min(100),
                })
            })
            .collect()
    }

    async fn list(
        &self,
        own: &OwnLog,
        case: &Case,
        labels: Vec<String>,
        legal_basis: String,
    ) -> Result<Vec<u64>> {
        let signals = self.parse(&case.signals)?;
        let listing = Listing {
            labels,
            legal_basis,
            case_ref: case.id.clone(),
        };
        let submitted = own.submit(signals, listing).await?;
        Ok(submitted.entries.into_iter().map(|(i, _)| i).collect())
    }

    /// Opens a case for `signals` (listed at once in `direct` mode).
    pub async fn open(
        &self,
        own: &OwnLog,
        signals: Vec<ReportedSignal>,
        context: String,
    ) -> Result<Opened> {
        if context.len() > self.config.max_context_bytes {
            return Err(ReportError::ContextTooLong {
                len: context.len(),
                max: self.config.max_context_bytes,
            }
            .into());
        }
        // Validated before anything is kept, and stored in canonical form.
        let parsed = self.parse(&signals)?;
        let signals = parsed
            .iter()
            .enumerate()
            .map(|(position, s)| {
                Ok(ReportedSignal {
                    signal_type: s.signal_type.name().to_owned(),
                    value: s
                        .signal_type
                        .format_hex(&s.hash)
                        .map_err(|source| NodeError::BadSignal { position, source })?,
                    quality: s.quality,
                })
            })
            .collect::<Result<_>>()?;
        let _writer = self.writer.lock().await;
        let now = now_ms();
        let pin = random_code(5);
        let mut case = Case {
            id: String::new(),
            pin_sha256: digest(&pin),
            created_ms: now,
            signals,
            context,
            status: CaseStatus::Queued,
            updated_ms: now,
        };
        // 60 random bits: a clash is all but impossible, and is drawn again if it happens.
        loop {
            case.id = format!("RL-{}", random_code(3));
            if self.store.report_create(&case.id, &encode(&case)?).await? {
                break;
            }
        }
        if self.config.mode == ReportMode::Direct {
            let indices = self
                .list(
                    own,
                    &case,
                    self.config.labels.clone(),
                    self.config.legal_basis.clone(),
                )
                .await?;
            case.status = CaseStatus::Listed { indices };
            case.updated_ms = now_ms();
            self.store.report_put(&case.id, &encode(&case)?).await?;
        }
        Ok(Opened { case, pin })
    }

    fn get(&self, id: &str) -> Result<Option<Case>> {
        self.store
            .report_get(id)?
            .map(|bytes| decode(id, &bytes))
            .transpose()
    }

    /// Case `id` if `pin` is its PIN; the same refusal for an unknown case and a wrong PIN.
    pub fn check(&self, id: &str, pin: &str) -> Result<Case> {
        let case = self.get(id.trim())?;
        let given = digest(pin);
        match case {
            Some(c) if bool::from(c.pin_sha256.as_bytes().ct_eq(given.as_bytes())) => Ok(c),
            _ => Err(ReportError::NoSuchCase.into()),
        }
    }

    /// Withdraws case `id`: retracts what was listed from it, or takes it out of the queue.
    pub async fn withdraw(&self, own: &OwnLog, id: &str, pin: &str) -> Result<Case> {
        let _writer = self.writer.lock().await;
        let mut case = self.check(id, pin)?;
        if let CaseStatus::Listed { indices } = &case.status {
            for &index in indices {
                match own
                    .retract(index, "withdrawn by the person who reported it")
                    .await
                {
                    // Already retracted by an analyst, or a duplicate of an entry another
                    // case listed and then withdrew: it no longer matches either way.
                    Ok(_) | Err(NodeError::AlreadyRetracted(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if case.status != CaseStatus::Withdrawn {
            case.status = CaseStatus::Withdrawn;
            case.updated_ms = now_ms();
            self.store.report_put(&case.id, &encode(&case)?).await?;
        }
        Ok(case)
    }

    /// Every case waiting for review, oldest first.
    pub fn queue(&self) -> Result<Vec<Case>> {
        let mut queued: Vec<Case> = self
            .store
            .report_all()?
            .iter()
            .map(|bytes| decode("?", bytes))
            .filter(|c| c.as_ref().map_or(true, |c| c.status == CaseStatus::Queued))
            .collect::<Result<_>>()?;
        queued.sort_by_key(|c| c.created_ms);
        Ok(queued)
    }

    /// Approves queued case `id` into the own list with `labels` and `legal_basis` (the
    /// node's `[report]` ones when empty).
    pub async fn approve(
        &self,
        own: &OwnLog,
        id: &str,
        labels: Vec<String>,
        legal_basis: String,
    ) -> Result<Case> {
        let _writer = self.writer.lock().await;
        let mut case = self.queued(id)?;
        let labels = if labels.is_empty() {
            self.config.labels.clone()
        } else {
            labels
        };
        let legal_basis = if legal_basis.is_empty() {
            self.config.legal_basis.clone()
        } else {
            legal_basis
        };
        let indices = self.list(own, &case, labels, legal_basis).await?;
        case.status = CaseStatus::Listed { indices };
        case.updated_ms = now_ms();
        self.store.report_put(&case.id, &encode(&case)?).await?;
        Ok(case)
    }

    /// Rejects queued case `id`; nothing is listed.
    pub async fn reject(&self, id: &str, reason: String) -> Result<Case> {
        if reason.trim().is_empty() {
            return Err(NodeError::NoReason);
        }
        let _writer = self.writer.lock().await;
        let mut case = self.queued(id)?;
        case.status = CaseStatus::Rejected { reason };
        case.updated_ms = now_ms();
        self.store.report_put(&case.id, &encode(&case)?).await?;
        Ok(case)
    }

    fn queued(&self, id: &str) -> Result<Case> {
        let case = self.get(id)?.ok_or(ReportError::NoSuchCase)?;
        if case.status != CaseStatus::Queued {
            return Err(ReportError::NotQueued {
                id: case.id,
                status: case.status.name(),
            }
            .into());
        }
        Ok(case)
    }
}

fn encode(case: &Case) -> Result<Vec<u8>> {
    serde_json::to_vec(case).map_err(|e| {
        NodeError::Store(crate::store::StoreError::Corrupt {
            what: "report".into(),
            detail: e.to_string(),
        })
    })
}

fn decode(id: &str, bytes: &[u8]) -> Result<Case> {
    serde_json::from_slice(bytes).map_err(|e| {
        NodeError::Store(crate::store::StoreError::Corrupt {
            what: format!("report {id}"),
            detail: e.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unambiguous_and_pins_compare_canonically() {
        let code = random_code(5);
        assert_eq!(code.len(), 5 * 4 + 4);
        assert!(code
            .chars()
            .all(|c| c == '-' || (ALPHABET.contains(&(c as u8)) && !"ILOU".contains(c))));
        assert_eq!(digest("ab12-cd34"), digest("AB12CD34"));
        assert_ne!(digest("AB12CD34"), digest("AB12CD35"));
    }

    #[test]
    fn an_address_over_its_budget_is_refused_and_others_are_not() {
        let budget = AddressBudget {
            per_min: 0.0,
            burst: 3,
            buckets: Mutex::new(HashMap::new()),
        };
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            budget.take(a).unwrap();
        }
        assert!(matches!(budget.take(a), Err(ReportError::OverRate { .. })));
        budget.take(IpAddr::from([10, 0, 0, 2])).unwrap();
    }
}
