//! `redline export` and `redline import`: an origin's list in python-threatexchange CSV or
//! StopNCII JSON, and such files into the hotline's own list. Formats: `redline_client::lists`.

use super::audit::key_ring;
use super::{checkpoint_json, checkpoint_line, hotline, Global, Out};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use redline_client::hotline::MAX_SUBMIT_BATCH;
use redline_client::lists::{self, ListFormat};
use redline_client::Auditor;
use redline_proto::checkpoint::OriginKey;
use redline_proto::pb::Signal;
use serde_json::json;
use std::path::PathBuf;

/// Write an origin's list in another tool's format (verified first).
///
/// Fetches the origin's log through the Audit service, verifies it (signature, root,
/// retractions) and writes its hashes. The key comes from --key / --trust-file when given;
/// otherwise from the node itself, which proves the log is intact but not whose it is.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline export --format threatexchange-csv -o hotline-a.csv
  redline export --format stopncii-json --origin hotline-b.example --trust-file trust.toml

threatexchange-csv: columns signal_type,signal_str,collab,category,tags (python-threatexchange
`dataset --csv`), active hashes only. stopncii-json: a StopNCII FetchHashes page whose records
carry signalType (ImagePDQ), hashValue, hashStatus (Active, or Withdrawn once retracted) and
caseNumbers; PDQ only, since StopNCII has no type for the others.")]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    format: ListFormat,
    /// Origin whose list to export (default: the node's own).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// Verifier key of the origin; repeatable.
    #[arg(long = "key", value_name = "VERIFIER_KEY")]
    keys: Vec<String>,
    /// TOML file with `[[trust]] origin = .. key = ..` entries.
    #[arg(long, value_name = "FILE")]
    trust_file: Vec<PathBuf>,
}

pub async fn export(a: ExportArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let ring = key_ring(&a.keys, &a.trust_file)?;
    let mut auditor = Auditor::connect_to(&global.target()).await?;
    let origins = auditor.list_origins().await?;
    let info = match &a.origin {
        Some(name) => origins
            .iter()
            .find(|o| &o.origin == name)
            .with_context(|| {
                format!(
                    "the node does not hold origin {name}; it holds: {}",
                    origins
                        .iter()
                        .map(|o| o.origin.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        None => origins
            .iter()
            .find(|o| o.policy == "own")
            .context("the node lists no origin of its own; name one with --origin")?,
    };
    let key = match ring.get(&info.origin) {
        Some(k) => k.clone(),
        None => {
            eprintln!(
                "warning: no key given for {}: verified against the key the node advertises, \
                 which shows the log is intact but not that it is the origin's; pass --key to check that too",
                info.origin
            );
            OriginKey::parse(&info.verifier_key).with_context(|| {
                format!("the node advertises a malformed key for {}", info.origin)
            })?
        }
    };
    // The log is verified as it streams; its hashes are collected from the protocol's replay of
    // each leaf and written only once the whole log verified.
    let mut list = lists::ListBuilder::default();
    let verified = auditor
        .audit_origin_with(&key, None, Some(16), |_, _, replayed| {
            list.take(replayed);
            Ok(())
        })
        .await
        .context("not exported: the log does not verify")?;
    let hashes = list.finish();
    let summary = match a.format {
        ListFormat::ThreatExchangeCsv => {
            lists::write_threatexchange_csv(out.writer(), &info.origin, &hashes)
                .context("cannot write the CSV")?
        }
        ListFormat::StopNciiJson => {
            lists::write_stopncii_json(out.writer(), &hashes).context("cannot write the JSON")?
        }
    };
    let invalid = match verified.report.invalid {
        0 => String::new(),
        n => format!("; {n} invalid leaves skipped (kept in the log, never matched)"),
    };
    eprintln!(
        "exported {} record(s) of {} ({} leaves verified{invalid}){}",
        summary.written,
        info.origin,
        verified.report.size,
        if summary.unsupported > 0 {
            format!(
                "; left out {} hash(es) of types the format cannot carry",
                summary.unsupported
            )
        } else {
            String::new()
        }
    );
    Ok(true)
}

/// Add the hashes of a python-threatexchange CSV or StopNCII JSON file to this hotline's list.
///
/// The whole file is validated first (nothing is sent if any record is malformed), duplicates
/// within it are dropped, withdrawn or negative records are skipped, and the rest is submitted
/// in batches of at most 1,000. Hashes already in the list are not added twice, so an
/// interrupted import can simply be run again.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline import --format threatexchange-csv hashes.csv --legal-basis 'court order 2024/17'
  redline import --format stopncii-json stopncii-page.json --label ncii
  redline import --format threatexchange-csv hashes.csv --dry-run

Labels: the file's tags (CSV) or `ncii` (StopNCII), plus every --label. Case reference: the
StopNCII caseNumbers, joined with commas.")]
pub struct ImportArgs {
    /// Input format.
    #[arg(long, value_enum)]
    format: ListFormat,
    /// The file to import.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Extra label for every hash; repeatable.
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Legal basis under which the hotline lists these hashes.
    #[arg(long, value_name = "TEXT", default_value = "")]
    legal_basis: String,
    /// Only read and validate the file; send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Labels and case reference shared by one group of submitted hashes.
type GroupKey = (Vec<String>, String);

pub async fn import(a: ImportArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let plan = lists::read_list(a.format, &text)
        .with_context(|| format!("{} was not imported (nothing was sent)", a.file.display()))?;

    // Submit shares labels and case reference across a call: group records by them, keeping
    // the file's order within each group.
    let mut groups: Vec<(GroupKey, Vec<Signal>)> = Vec::new();
    for r in &plan.records {
        let mut labels = r.labels.clone();
        for l in &a.labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        let key = (labels, r.case_ref.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(r.signal.clone()),
            None => groups.push((key, vec![r.signal.clone()])),
        }
    }
    let total = plan.records.len();
    let mut added = 0usize;
    let mut already = 0usize;
    let mut last_cp = None;
    if !a.dry_run && total > 0 {
        let mut client = hotline(global).await?;
        let bar = if total > MAX_SUBMIT_BATCH {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} hashes ({eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message("importing");
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut sent_before = 0usize;
        for ((labels, case_ref), signals) in groups {
            let n = signals.len();
            let resps = client
                .submit_batched(signals, labels, &a.legal_basis, &case_ref, |done| {
                    bar.set_position((sent_before + done) as u64)
                })
                .await
                .map_err(|(done, e)| {
                    bar.abandon();
                    anyhow::anyhow!(
                        "{e} ({} of {total} hashes were submitted before this failure; running the import again is safe: duplicates are not added twice)",
                        sent_before + done
                    )
                })?;
            sent_before += n;
            for r in resps {
                for e in &r.entries {
                    if e.duplicate {
                        already += 1;
                    } else {
                        added += 1;
                    }
                }
                last_cp = r.checkpoint;
            }
        }
        bar.finish_and_clear();
    }
    let unsupported: usize = plan.skipped_unsupported.values().sum();
    if out.json {
        out.json_value(&json!({
            "file": a.file,
            "dry_run": a.dry_run,
            "read": plan.read,
            "valid": total,
            "added": added,
            "already_listed": already,
            "duplicates_in_file": plan.duplicates_in_file,
            "skipped_not_active": plan.skipped_not_active,
            "skipped_unsupported": plan.skipped_unsupported,
            "checkpoint": checkpoint_json(last_cp.as_ref()),
        }))?;
    } else {
        out.line(format!(
            "read {} record(s) from {}: {} distinct valid hash(es), {} duplicate(s) in the file, \
             {} withdrawn or negative, {} of unsupported types{}",
            plan.read,
            a.file.display(),
            total,
            plan.duplicates_in_file,
            plan.skipped_not_active,
            unsupported,
            if unsupported > 0 {
                format!(
                    " ({})",
                    plan.skipped_unsupported
                        .iter()
                        .map(|(t, n)| format!("{t}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        ))?;
        if a.dry_run {
            out.line("dry run: nothing was sent")?;
        } else {
            out.line(format!("added {added}, already listed {already}"))?;
            if last_cp.is_some() {
                out.line(checkpoint_line(last_cp.as_ref()))?;
            }
        }
    }
    Ok(true)
}
