//! `redline-node`: clap -> Config::load -> telemetry::init -> run(config, listener, shutdown).

use clap::Parser;
use redline_server::config::Config;
use redline_server::telemetry::{self, LogFormat};
use redline_server::NodeSource;
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
    /// Allow listening off loopback without [[tokens]] or [tls] (config `insecure = true`),
    /// e.g. behind a proxy that authenticates and encrypts.
    #[arg(long)]
    insecure: bool,
    /// Prometheus /metrics address, e.g. 127.0.0.1:9464 (config `metrics_listen`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Print the SHA-256 of TOKEN for a `[[tokens]] sha256 = ...` entry and exit; `-` reads
    /// the token from standard input (keeps it out of the process list and shell history).
    #[arg(long, value_name = "TOKEN")]
    hash_token: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(token) = &args.hash_token {
        return hash_token(token);
    }
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
    if args.insecure {
        config.insecure = true;
    }
    if let Some(m) = args.metrics_listen {
        config.metrics_listen = Some(m);
    }
    config.validate()?;
    config.check_exposure(config.listen)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let metrics = redline_server::bind_metrics(&config).await?;
    let addr = listener.local_addr()?;
    let metrics_addr = metrics.as_ref().and_then(|m| m.local_addr().ok());
    redline_server::launch(
        NodeSource::Open(Box::new(config)),
        listener,
        metrics,
        shutdown_signal(),
        move |node| {
            // Printed on stdout once the node is loaded, so scripts can pick up the key to put
            // in their peers' trust lists, and wait for this line before calling.
            println!("origin {}", node.origin());
            println!("verifier key {}", node.public_key().verifier_key());
            if let Some(m) = metrics_addr {
                println!("metrics on http://{m}/metrics");
            }
            println!("listening on {addr}");
        },
    )
    .await
}

fn hash_token(token: &str) -> std::process::ExitCode {
    let token = if token == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            eprintln!("redline-node: reading the token from stdin: {e}");
            return std::process::ExitCode::FAILURE;
        }
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        token.to_owned()
    };
    if token.is_empty() {
        eprintln!("redline-node: the token is empty");
        return std::process::ExitCode::FAILURE;
    }
    println!("{}", redline_server::grpc::auth::hash_token(&token));
    std::process::ExitCode::SUCCESS
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
