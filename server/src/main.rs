//! `redline-node`: clap -> Config::load -> telemetry::init -> run(config, listener, shutdown).

use clap::Parser;
use redline_server::config::Config;
use redline_server::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A Redline node: one hotline's signed hash list, federated with its peers.
///
/// Example: `redline-node --origin hotline-a.example --data-dir ./a --listen 127.0.0.1:7443`
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// TOML config file; flags given here override its values.
    #[arg(long, env = "REDLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (sled store and identity key) [default: ./redline-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:7443].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// This node's origin name, e.g. hotline-a.example [default: redline.localhost].
    #[arg(long)]
    origin: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redline-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(o) = args.origin {
        config.origin = o;
    }
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let node = redline_server::Node::open(config).await?;
    // Printed on stdout so scripts can pick up the key to put in their peers' trust lists.
    println!("origin {}", node.origin());
    println!("verifier key {}", node.public_key().verifier_key());
    println!("listening on {}", listener.local_addr()?);
    redline_server::serve(node, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight calls");
}
