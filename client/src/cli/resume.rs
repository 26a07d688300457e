//! `redline resume`: lift the freeze a proven equivocation put on an origin (needs an `admin`
//! token), once the operator has looked into the evidence (`redline status`, `redline audit`).

use super::{Global, Out};
use anyhow::Result;
use clap::Args;
use redline_proto::pb::{node_client::NodeClient, ResumeOriginRequest};
use serde_json::json;

/// Resume an origin frozen after proof of equivocation.
///
/// The evidence stays, and nothing new is trusted: the node keeps the log it holds and judges
/// every later checkpoint against it as before, so a further fork freezes the origin again.
/// The call and its reason are recorded in the operator trail (`redline trail`).
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  redline resume hotline-b.example --reason \"restored from backup; confirmed with their on-call\" \\
    --token \"$ADMIN_TOKEN\"")]
pub struct ResumeArgs {
    /// The frozen origin.
    #[arg(value_name = "ORIGIN")]
    origin: String,
    /// Why it is resumed (required; kept in the operator trail).
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

/// Runs `redline resume`.
pub async fn resume(a: ResumeArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let mut client = NodeClient::new(global.target().connect().await?);
    let answer = client
        .resume_origin(ResumeOriginRequest {
            origin: a.origin.clone(),
            reason: a.reason,
        })
        .await?
        .into_inner();
    let size = answer.checkpoint.as_ref().map_or(0, |c| c.tree_size);
    if out.json {
        out.json_value(&json!({
            "origin": a.origin,
            "was_frozen": answer.was_frozen,
            "tree_size": size,
        }))?;
    } else if answer.was_frozen {
        out.line(format!(
            "resumed {}: replication goes on from the {size} entries held",
            a.origin
        ))?;
    } else {
        out.line(format!("{} was not frozen; nothing changed", a.origin))?;
    }
    Ok(true)
}
