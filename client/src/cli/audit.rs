//! `redline audit`: verify, trusting nothing from the node, every origin's log against keys the
//! auditor brings, and that each log extends what the previous audit saw. Also writes and reads
//! plain-file dumps so an audit can be repeated offline.

use super::{Global, Out};
use anyhow::{Context, Result};
use clap::Args;
use redline_client::audit::{verify_log, AuditError};
use redline_client::dump;
use redline_client::{AuditReport, AuditState, Auditor, KeyRing, TrustedSize};
use redline_proto::checkpoint::{self, OriginKey};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Verify every list a node holds, trusting only the keys given here.
///
/// For each origin the node lists: takes the key only from --key / --trust-file (never from
/// the node), fetches the signed checkpoint and every leaf, checks the signature, recomputes
/// the Merkle root, checks every retraction, spot-checks the node's inclusion proofs and, with
/// --state, that the log extends what the previous audit verified (the state file is then
/// updated atomically). Any failure names the origin and the index and makes the exit code 1.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline audit --node http://hotline-a.example:7443 --trust-file trust.toml --state audit-state.json
  redline audit --key 'hotline-a.example+1a2b3c4d+AQ...' --allow-unknown
  redline audit --trust-file trust.toml --export dump/      # also save what was fetched
  redline audit --trust-file trust.toml --offline dump/     # verify a saved dump, no node
  redline audit --trust-file trust.toml --proof entry-42.tlog-proof   # one entry, no node

A trust file is TOML with entries like the node's config (other fields are ignored):
  [[trust]]
  origin = \"hotline-a.example\"
  key = \"hotline-a.example+1a2b3c4d+AQ...\"

The state file is JSON: {\"origin\": {\"size\": N, \"root\": \"hex\"}}. The dump format is
described in the redline_client::dump documentation: DIR/FORMAT, and per origin
DIR/<origin>/checkpoint (the exact signed note) and DIR/<origin>/leaves (one base64 leaf per
line, index order).")]
pub struct AuditArgs {
    /// An origin's verifier key (`name+keyid+base64`, as the node printed at first start);
    /// repeatable.
    #[arg(long = "key", value_name = "VERIFIER_KEY")]
    keys: Vec<String>,
    /// TOML file with `[[trust]] origin = .. key = ..` entries (a node config works); repeatable.
    #[arg(long, value_name = "FILE")]
    trust_file: Vec<PathBuf>,
    /// JSON file with what the previous audit verified; checked, then updated.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Do not fail because the node lists origins no key was given for.
    #[arg(long)]
    allow_unknown: bool,
    /// Also write each origin's signed checkpoint and leaves to DIR (see below).
    #[arg(long, value_name = "DIR", conflicts_with = "offline")]
    export: Option<PathBuf>,
    /// Verify a dump written by --export instead of asking a node.
    #[arg(long, value_name = "DIR")]
    offline: Option<PathBuf>,
    /// Verify one offline proof written by `redline proof` (a C2SP tlog-proof) instead of a
    /// log: against the key of the origin its checkpoint names, with no node. Prints the
    /// origin, index, tree size, root and the entry.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["offline", "export", "state", "allow_unknown"])]
    proof: Option<PathBuf>,
    /// How many of the node's inclusion proofs to check per origin (0: none).
    #[arg(long, value_name = "N", default_value_t = 64)]
    inclusion_proofs: u64,
}

/// The outcome for one origin.
#[derive(Debug, Serialize)]
struct OriginOutcome {
    origin: String,
    /// "verified", "failed", "unverified" (no key given), "exported" (no key given, dumped),
    /// "not_held" (key given, node does not list it).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<AuditReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

impl OriginOutcome {
    fn new(origin: &str, status: &'static str) -> Self {
        Self {
            origin: origin.to_owned(),
            status,
            report: None,
            error: None,
            notes: Vec::new(),
        }
    }
    fn failed(origin: &str, error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::new(origin, "failed")
        }
    }
}

/// Keys from `--key` and `--trust-file`.
pub fn key_ring(keys: &[String], trust_files: &[PathBuf]) -> Result<KeyRing> {
    let mut ring = KeyRing::new();
    for k in keys {
        ring.add_verifier_key(k)?;
    }
    for f in trust_files {
        ring.add_trust_file(f)?;
    }
    Ok(ring)
}

pub async fn audit(a: AuditArgs, global: &Global, out: &mut Out) -> Result<bool> {
    if let Some(file) = &a.proof {
        return super::proof::audit_proof(file, &a.keys, &a.trust_file, out);
    }
    let ring = key_ring(&a.keys, &a.trust_file)?;
    let previous = match &a.state {
        Some(p) => AuditState::load(p)?,
        None => AuditState::default(),
    };
    let (source, mut outcomes) = match &a.offline {
        Some(dir) => (
            format!("dump {}", dir.display()),
            audit_offline(dir, &ring, &previous)?,
        ),
        None => (
            global.node.clone(),
            audit_online(&a, global, &ring, &previous).await?,
        ),
    };

    // Keys for origins the source does not hold, and origins audited before that vanished.
    let held: Vec<String> = outcomes.iter().map(|o| o.origin.clone()).collect();
    for (origin, prev) in &previous.origins {
        if !held.contains(origin) {
            outcomes.push(OriginOutcome::failed(
                origin,
                format!(
                    "{origin}: no longer listed, but the previous audit verified it at size {}",
                    prev.size
                ),
            ));
        }
    }
    for (origin, _) in ring.iter() {
        if !held.contains(&origin.to_owned()) && !previous.origins.contains_key(origin) {
            outcomes.push(OriginOutcome::new(origin, "not_held"));
        }
    }

    let failed = outcomes.iter().filter(|o| o.status == "failed").count();
    let unverified = outcomes.iter().filter(|o| o.status == "unverified").count();
    let ok = failed == 0 && (unverified == 0 || a.allow_unknown);

    if let Some(path) = &a.state {
        let mut next = previous.clone();
        for o in &outcomes {
            if let Some(r) = &o.report {
                next.origins.insert(o.origin.clone(), r.trusted());
            }
        }
        if next != previous {
            next.save(path)?;
        }
    }

    if out.json {
        out.json_value(&serde_json::json!({
            "source": source,
            "ok": ok,
            "failed": failed,
            "unverified": unverified,
            "origins": outcomes,
        }))?;
    } else {
        print_report(
            out,
            &source,
            &outcomes,
            failed,
            unverified,
            ok,
            a.allow_unknown,
        )?;
    }
    if !ok {
        for o in outcomes.iter().filter(|o| o.status == "failed") {
            eprintln!("audit failed: {}", o.error.as_deref().unwrap_or(&o.origin));
        }
        if unverified > 0 && !a.allow_unknown {
            eprintln!(
                "audit failed: {unverified} origin(s) could not be verified because no key was given; \
                 add them with --key / --trust-file, or pass --allow-unknown"
            );
        }
    }
    Ok(ok)
}

async fn audit_online(
    a: &AuditArgs,
    global: &Global,
    ring: &KeyRing,
    previous: &AuditState,
) -> Result<Vec<OriginOutcome>> {
    let mut auditor = Auditor::connect_to(&global.target()).await?;
    let origins = auditor.list_origins().await?;
    if let Some(dir) = &a.export {
        dump::init(dir)?;
    }
    let mut outcomes = Vec::new();
    for info in origins {
        let origin = info.origin.clone();
        let mut notes = Vec::new();
        let Some(key) = ring.get(&origin) else {
            let status = match &a.export {
                Some(dir) => match export_unverified(&mut auditor, dir, &origin).await {
                    Ok(path) => {
                        notes.push(format!("exported to {}", path.display()));
                        "exported"
                    }
                    Err(e) => {
                        outcomes.push(OriginOutcome::failed(
                            &origin,
                            format!("{origin}: cannot export the log: {e}"),
                        ));
                        continue;
                    }
                },
                None => "unverified",
            };
            outcomes.push(OriginOutcome {
                notes,
                ..OriginOutcome::new(&origin, status)
            });
            continue;
        };
        if !info.verifier_key.is_empty() && info.verifier_key != key.verifier_key() {
            notes.push(format!(
                "the node advertises a different key ({}); only the given key counts",
                info.verifier_key
            ));
        }
        if info.frozen {
            notes.push("the node froze this origin after evidence of equivocation".into());
        }
        let prev = previous.origins.get(&origin);
        let mut o = match audit_one(&mut auditor, a, key, prev).await {
            Ok((report, exported)) => {
                if let Some(path) = exported {
                    notes.push(format!("exported to {}", path.display()));
                }
                OriginOutcome {
                    report: Some(report),
                    ..OriginOutcome::new(&origin, "verified")
                }
            }
            Err(e) => OriginOutcome::failed(&origin, e.to_string()),
        };
        o.notes.extend(notes);
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// Audits one origin on the node, writing each verified leaf to the dump with --export.
async fn audit_one(
    auditor: &mut Auditor,
    a: &AuditArgs,
    key: &OriginKey,
    prev: Option<&TrustedSize>,
) -> Result<(AuditReport, Option<PathBuf>), AuditError> {
    let mut writer: Option<dump::LogWriter> = None;
    let verified = auditor
        .audit_origin_with(key, prev, Some(a.inclusion_proofs), |_, data, _| {
            if let Some(dir) = &a.export {
                if writer.is_none() {
                    // The note is written first; a failed audit leaves its dump incomplete.
                    writer = Some(dump::LogWriter::create(dir, key.name(), &[])?);
                }
                writer.as_mut().expect("created above").push(data)?;
            }
            Ok(())
        })
        .await?;
    let exported = match (&a.export, writer) {
        (Some(_), Some(w)) => Some(w.finish()?),
        (Some(dir), None) => Some(dump::write_log(dir, key.name(), &[], std::iter::empty())?),
        (None, _) => None,
    };
    if let Some(odir) = &exported {
        // The signed note last, so a dump only ever names a checkpoint whose leaves are all in it.
        let cp = odir.join("checkpoint");
        std::fs::write(&cp, &verified.checkpoint.note).map_err(|e| {
            AuditError::Dump(dump::DumpError::Io {
                path: cp.clone(),
                detail: e.to_string(),
            })
        })?;
    }
    Ok((verified.report, exported))
}

/// Dumps an origin no key was given for: its note as served and the leaves up to the size the
/// note states (read, not verified: the dump is verified later, offline, with a key).
async fn export_unverified(
    auditor: &mut Auditor,
    dir: &Path,
    origin: &str,
) -> Result<PathBuf, AuditError> {
    let served = auditor.checkpoint(origin).await?;
    let size = checkpoint::unverified_size(&served.signed_note).map_err(|e| {
        AuditError::BadCheckpoint {
            origin: origin.to_owned(),
            detail: e.to_string(),
        }
    })?;
    let mut w = dump::LogWriter::create(dir, origin, &served.signed_note)?;
    auditor
        .stream_entries(origin, 0, size, |_, data| Ok(w.push(&data)?))
        .await?;
    Ok(w.finish()?)
}

fn audit_offline(dir: &Path, ring: &KeyRing, previous: &AuditState) -> Result<Vec<OriginOutcome>> {
    let logs = dump::read_dump(dir)?;
    let mut seen = BTreeMap::new();
    let mut outcomes = Vec::new();
    for log in logs {
        if let Some(other) = seen.insert(log.origin.clone(), log.dir.clone()) {
            anyhow::bail!(
                "the dump holds origin {} twice ({} and {}); remove one",
                log.origin,
                other.display(),
                log.dir.display()
            );
        }
        let Some(key) = ring.get(&log.origin) else {
            outcomes.push(OriginOutcome::new(&log.origin, "unverified"));
            continue;
        };
        let prev = previous.origins.get(&log.origin);
        let verified = log
            .leaves()
            .map_err(AuditError::from)
            .and_then(|leaves| verify_log(key, &log.signed_note, leaves, prev));
        outcomes.push(match verified {
            Ok(v) => OriginOutcome {
                report: Some(v.report),
                ..OriginOutcome::new(&log.origin, "verified")
            },
            Err(e) => OriginOutcome::failed(&log.origin, e.to_string()),
        });
    }
    Ok(outcomes)
}

fn print_report(
    out: &mut Out,
    source: &str,
    outcomes: &[OriginOutcome],
    failed: usize,
    unverified: usize,
    ok: bool,
    allow_unknown: bool,
) -> Result<()> {
    out.line(format!("audit of {source}: {} origin(s)", outcomes.len()))?;
    for o in outcomes {
        match (o.status, &o.report, &o.error) {
            ("verified", Some(r), _) => {
                let mut extends = match r.extends_previous {
                    Some(p) => format!(", extends previous audit at size {p}"),
                    None => ", no previous audit".to_owned(),
                };
                if r.signed_size > r.size {
                    extends.push_str(&format!(
                        "; a proven prefix of the {} leaves signed (the node is catching up)",
                        r.signed_size
                    ));
                }
                out.line(format!(
                    "  ok          {}: size {}, root {}, {} adds, {} retracts, {} active, {} invalid, {} inclusion proofs checked{extends}",
                    o.origin, r.size, r.root, r.adds, r.retracts, r.active, r.invalid, r.inclusion_proofs_checked
                ))?;
                for leaf in &r.invalid_leaves {
                    out.line(format!(
                        "              invalid leaf {} (kept in the log, never matched): {}",
                        leaf.index, leaf.reason
                    ))?;
                }
            }
            ("failed", _, Some(e)) => out.line(format!("  FAILED      {e}"))?,
            ("unverified", ..) => out.line(format!(
                "  UNVERIFIED  {}: unverified (no key given){}",
                o.origin,
                if allow_unknown { " (allowed)" } else { "" }
            ))?,
            ("exported", ..) => out.line(format!(
                "  exported    {}: not verified (no key given)",
                o.origin
            ))?,
            ("not_held", ..) => out.line(format!(
                "  not held    {}: a key was given, but the source does not list this origin",
                o.origin
            ))?,
            (status, ..) => out.line(format!("  {status}  {}", o.origin))?,
        }
        for n in &o.notes {
            out.line(format!("              note: {n}"))?;
        }
    }
    out.line(if ok {
        "result: OK".to_owned()
    } else {
        format!("result: FAILED ({failed} failed, {unverified} unverified)")
    })
    .context("cannot write the output")
}
