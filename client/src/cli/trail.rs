//! `redline trail`: the node's operator audit trail (needs an `admin` token).

use super::{Global, Out};
use anyhow::Result;
use clap::Args;
use redline_proto::pb::{node_client::NodeClient, ListOperatorEventsRequest, OperatorEvent};
use serde_json::json;

/// Show who submitted, retracted, resumed an origin or read the operator view, oldest first.
///
/// Each line is one call the node recorded: when (ms since the epoch), the token's name
/// (`[[tokens]] name`; `-` when the node has no tokens), the call, and the own-log indexes it
/// wrote. Never hashes or images: the entries at those indexes are in the signed log.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  redline trail --token \"$ADMIN_TOKEN\"
  redline trail --after 4096 --limit 100 --json")]
pub struct TrailArgs {
    /// Only events with an id greater than this.
    #[arg(long, default_value_t = 0, value_name = "ID")]
    after: u64,
    /// Most events shown (default: all).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

/// Runs `redline trail`.
pub async fn trail(a: TrailArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let mut client = NodeClient::new(global.target().connect().await?);
    let mut events: Vec<OperatorEvent> = Vec::new();
    let mut after = a.after;
    let wanted = a.limit.unwrap_or(u64::MAX);
    while (events.len() as u64) < wanted {
        let page = client
            .list_operator_events(ListOperatorEventsRequest {
                after,
                limit: (wanted - events.len() as u64).min(1000) as u32,
            })
            .await?
            .into_inner();
        events.extend(page.events);
        if page.next_after == 0 {
            break;
        }
        after = page.next_after;
    }
    if out.json {
        out.json_value(
            &events
                .iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "time_ms": e.time_ms,
                        "token": e.token,
                        "call": e.call,
                        "remote": e.remote,
                        "first_index": e.first_index,
                        "written": e.written,
                        "duplicates": e.duplicates,
                        "retracted": e.retracted,
                        "tree_size": e.tree_size,
                        "origin": e.origin,
                        "reason": e.reason,
                    })
                })
                .collect::<Vec<_>>(),
        )?;
        return Ok(true);
    }
    for e in &events {
        let token = if e.token.is_empty() { "-" } else { &e.token };
        let mut what = match (e.written, e.retracted) {
            (0, _) => String::new(),
            (1, Some(target)) => format!("  retracted {target} at index {}", e.first_index),
            (n, _) => format!(
                "  wrote {}..{}",
                e.first_index,
                e.first_index.saturating_add(n)
            ),
        };
        if e.duplicates > 0 {
            what.push_str(&format!("  {} already listed", e.duplicates));
        }
        if !e.origin.is_empty() {
            what.push_str(&format!("  {} ({:?})", e.origin, e.reason));
        }
        out.line(format!(
            "{:>8}  {}  {token}  {}{what}  from {}",
            e.id,
            e.time_ms,
            e.call,
            if e.remote.is_empty() { "?" } else { &e.remote }
        ))?;
    }
    Ok(true)
}
