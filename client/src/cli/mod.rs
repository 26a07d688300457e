//! Argument parsing, output and error reporting shared by every subcommand, and the small
//! commands (`status`, `retract`). Errors are printed as one `error: ...` line that says what
//! to do next (never a backtrace or a `Debug` dump), with exit code 1; usage errors are clap's
//! (exit code 2).

mod audit;
mod docs;
mod hashes;
mod lists;
mod proof;
mod resume;
mod trail;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use redline_client::{HotlineClient, NodeTarget};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const TOP_EXAMPLES: &str = "\
Examples:
  redline status --node http://127.0.0.1:7443
  redline hash photo.jpg
  redline submit photo.jpg --label ncii --legal-basis 'consent withdrawn' --case-ref C-1
  redline match --pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22
  redline audit --trust-file trust.toml --state audit-state.json
  redline proof hotline-a.example 42 --trust-file trust.toml --out entry-42.tlog-proof

Every command talks to --node (default http://127.0.0.1:7443, or $REDLINE_NODE) and sends
--token (or $REDLINE_TOKEN) as a bearer token. Add --json for output meant for scripts.";

/// Redline: exchange of perceptual-hash lists between hotlines fighting NCII.
#[derive(Debug, Parser)]
#[command(name = "redline", version, after_help = TOP_EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// URL of the node to talk to.
    #[arg(
        long,
        global = true,
        env = "REDLINE_NODE",
        default_value = "http://127.0.0.1:7443",
        value_name = "URL"
    )]
    node: String,
    /// Bearer token sent with every call (`authorization: Bearer TOKEN`).
    #[arg(
        long,
        global = true,
        env = "REDLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// PEM file of the CA that signs the node's TLS certificate, for an `https://` node whose
    /// certificate is not from a public CA.
    #[arg(long, global = true, env = "REDLINE_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    /// Write the output to FILE instead of stdout (left untouched if the command errors out).
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    output: Option<PathBuf>,
}

impl Global {
    /// The node these options name.
    pub(crate) fn target(&self) -> NodeTarget {
        NodeTarget {
            url: self.node.clone(),
            token: self.token.clone(),
            ca: self.ca.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    Hash(hashes::HashArgs),
    Submit(hashes::SubmitArgs),
    Retract(RetractArgs),
    Match(hashes::MatchArgs),
    Status(StatusArgs),
    Audit(audit::AuditArgs),
    Proof(proof::ProofArgs),
    Export(lists::ExportArgs),
    Import(lists::ImportArgs),
    Trail(trail::TrailArgs),
    Resume(resume::ResumeArgs),
    Completions(docs::CompletionsArgs),
    Manpage(docs::ManpageArgs),
}

/// Withdraw an earlier hash of this hotline's own list (a false positive).
///
/// Appends a RETRACT entry naming the ADD at INDEX; the log keeps both, and every node that
/// receives the retraction stops matching the hash.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  redline retract 42 --reason 'false positive: stock photo'

INDEX is the log index `redline submit` printed for the hash.")]
struct RetractArgs {
    /// Log index of the ADD entry to withdraw.
    #[arg(value_name = "INDEX")]
    index: u64,
    /// Why (kept in the log for everyone to read).
    #[arg(long, required = true)]
    reason: String,
}

/// Show the node's origins, their sizes and policies, peers and evidence count.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  redline status --node http://127.0.0.1:7443
  redline status --json | jq '.origins[] | select(.policy == \"own\")'")]
struct StatusArgs {}

/// Where a command's output goes: stdout, or a file replaced only on success.
pub struct Out {
    w: Box<dyn Write>,
    tmp: Option<(tempfile::NamedTempFile, PathBuf)>,
    /// `--json` was given.
    pub json: bool,
}

impl Out {
    fn open(global: &Global) -> Result<Self> {
        match &global.output {
            None => Ok(Self {
                w: Box::new(std::io::stdout().lock()),
                tmp: None,
                json: global.json,
            }),
            Some(path) => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => PathBuf::from("."),
                };
                let tmp = tempfile::Builder::new()
                    .prefix(".redline-out")
                    .tempfile_in(&dir)
                    .with_context(|| {
                        format!(
                            "cannot write in {} for --output; check the folder exists and is writable",
                            dir.display()
                        )
                    })?;
                let file = tmp.reopen()?;
                Ok(Self {
                    w: Box::new(std::io::BufWriter::new(file)),
                    tmp: Some((tmp, path.clone())),
                    json: global.json,
                })
            }
        }
    }

    /// Writes one line.
    pub fn line(&mut self, s: impl std::fmt::Display) -> Result<()> {
        writeln!(self.w, "{s}").context("cannot write the output")
    }

    /// Writes a JSON document.
    pub fn json_value(&mut self, v: &impl Serialize) -> Result<()> {
        serde_json::to_writer_pretty(&mut self.w, v).context("cannot write the output")?;
        self.line("")
    }

    /// The raw writer (for CSV and the like).
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.w
    }

    fn finish(mut self) -> Result<()> {
        self.w.flush().context("cannot write the output")?;
        drop(self.w);
        if let Some((tmp, path)) = self.tmp {
            tmp.persist(&path)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Parses arguments, runs the command, prints any error, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command; `Ok(false)` means it reported its own failure (exit code 1).
async fn run(cli: Cli) -> Result<bool> {
    let Cli { global, command } = cli;
    let mut out = Out::open(&global)?;
    let ok = match command {
        Command::Hash(a) => hashes::hash(a, &mut out)?,
        Command::Submit(a) => hashes::submit(a, &global, &mut out).await?,
        Command::Match(a) => hashes::matches(a, &global, &mut out).await?,
        Command::Retract(a) => retract(a, &global, &mut out).await?,
        Command::Status(_) => status(&global, &mut out).await?,
        Command::Audit(a) => audit::audit(a, &global, &mut out).await?,
        Command::Proof(a) => proof::prove(a, &global, &mut out).await?,
        Command::Export(a) => lists::export(a, &global, &mut out).await?,
        Command::Import(a) => lists::import(a, &global, &mut out).await?,
        Command::Trail(a) => trail::trail(a, &global, &mut out).await?,
        Command::Resume(a) => resume::resume(a, &global, &mut out).await?,
        Command::Completions(a) => docs::completions(a, &mut out)?,
        Command::Manpage(a) => docs::manpage(a, &mut out)?,
    };
    // A command that reports its own failure (an audit that found a problem) still writes
    // its report; only an error leaves --output untouched.
    out.finish()?;
    Ok(ok)
}

/// A hotline client for `global`.
async fn hotline(global: &Global) -> Result<HotlineClient> {
    Ok(HotlineClient::connect_to(&global.target()).await?)
}

fn checkpoint_json(cp: Option<&redline_proto::pb::Checkpoint>) -> serde_json::Value {
    match cp {
        Some(cp) => json!({
            "origin": cp.origin,
            "size": cp.tree_size,
            "root": hex::encode(&cp.root_hash),
        }),
        None => serde_json::Value::Null,
    }
}

fn checkpoint_line(cp: Option<&redline_proto::pb::Checkpoint>) -> String {
    match cp {
        Some(cp) => format!(
            "checkpoint: {} size {} root {}",
            cp.origin,
            cp.tree_size,
            hex::encode(&cp.root_hash)
        ),
        None => "checkpoint: (none returned)".into(),
    }
}

async fn retract(a: RetractArgs, global: &Global, out: &mut Out) -> Result<bool> {
    if a.reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the hash is withdrawn");
    }
    let mut client = hotline(global).await?;
    let resp = client.retract(a.index, &a.reason).await?;
    if out.json {
        out.json_value(&json!({
            "retracted_index": a.index,
            "retract_index": resp.retract_index,
            "checkpoint": checkpoint_json(resp.checkpoint.as_ref()),
        }))?;
    } else {
        out.line(format!(
            "retracted index {} (RETRACT entry at index {})",
            a.index, resp.retract_index
        ))?;
        out.line(checkpoint_line(resp.checkpoint.as_ref()))?;
    }
    Ok(true)
}

async fn status(global: &Global, out: &mut Out) -> Result<bool> {
    let mut client = hotline(global).await?;
    let s = client.status().await?;
    if out.json {
        out.json_value(&json!({
            "origin": s.origin,
            "verifier_key": s.verifier_key,
            "version": s.version,
            "evidence_count": s.evidence_count,
            "origins": s.origins.iter().map(|o| json!({
                "origin": o.origin,
                "policy": o.policy,
                "tree_size": o.tree_size,
                "active_entries": o.active_entries,
                "frozen": o.frozen,
            })).collect::<Vec<_>>(),
            "peers": s.peers.iter().map(|p| json!({
                "url": p.url,
                "last_sync_ms": p.last_sync_ms,
                "last_error": p.last_error,
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(true);
    }
    out.line(format!(
        "node:      {} (redline-node {})",
        s.origin, s.version
    ))?;
    out.line(format!("key:       {}", s.verifier_key))?;
    out.line(format!("evidence:  {} record(s)", s.evidence_count))?;
    out.line(format!("origins:   {}", s.origins.len()))?;
    let width = s.origins.iter().map(|o| o.origin.len()).max().unwrap_or(0);
    for o in &s.origins {
        out.line(format!(
            "  {:width$}  {:10}  size {:>8}  active {:>8}{}",
            o.origin,
            o.policy,
            o.tree_size,
            o.active_entries,
            if o.frozen {
                "  FROZEN (equivocation evidence)"
            } else {
                ""
            },
        ))?;
    }
    if !s.peers.is_empty() {
        out.line(format!("peers:     {}", s.peers.len()))?;
        for p in &s.peers {
            let sync = if p.last_sync_ms == 0 {
                "never synced".to_owned()
            } else {
                format!("last sync at {} ms", p.last_sync_ms)
            };
            let err = if p.last_error.is_empty() {
                String::new()
            } else {
                format!("  last error: {}", p.last_error)
            };
            out.line(format!("  {}  {sync}{err}", p.url))?;
        }
    }
    Ok(true)
}
