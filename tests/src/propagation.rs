//! Propagation harness: a chain of real `redline-node` processes, each with its own origin, over
//! TLS on loopback, configured the way a deployment is, and what their logs say about when each
//! replicated commit landed.
//!
//! - [`Pki`]: a private CA and one server certificate for `127.0.0.1` (rcgen), the way
//!   `deploy/make-certs.sh` gives every node one.
//! - [`ChainNode`]: `redline-node` started by [`crate::crash::NodeProcess`] on a TOML config
//!   holding only what a deployed node's does (`origin`, `data_dir`, `listen`, `[tls]`,
//!   `[[peers]]` with their CA, `[[trust]]`). There is no `[sync]` section: the defaults apply
//!   (`poll_interval_ms = 10_000`), so a commit reaches a follower by the peer's push
//!   (`WatchCheckpoints`), never by a poll the tests shortened.
//! - [`ChainNode::commits`]: the `replicated` lines of its log (`federation::replicate`, logged
//!   after the commit is published and the catalog applied) with their wall-clock timestamps,
//!   so a benchmark can place each hop of a commit in time.
//! - [`cpu_seconds`] and [`loadavg`]: how busy the processes and the machine were.

use crate::crash::NodeProcess;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use redline_proto::checkpoint::OriginKey;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A CA and the one certificate (for `127.0.0.1` and `localhost`) every node of the chain
/// serves, in a temporary directory.
#[derive(Debug)]
pub struct Pki {
    /// PEM of the CA: what peers and clients verify the nodes against.
    pub ca: PathBuf,
    /// PEM certificate of the nodes.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the CA and signs the nodes' certificate.
    pub fn new() -> Pki {
        let dir = crate::temp_dir();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "redline-bench-ca");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let node_key = KeyPair::generate().expect("node key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
            .expect("node params");
        params
            .distinguished_name
            .push(DnType::CommonName, "redline-node");
        let cert = params
            .signed_by(&node_key, &issuer)
            .expect("node certificate");
        let (ca, cert_path, key) = (
            dir.path().join("ca.pem"),
            dir.path().join("node-cert.pem"),
            dir.path().join("node-key.pem"),
        );
        std::fs::write(&ca, issuer.pem()).expect("write CA");
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key, node_key.serialize_pem()).expect("write key");
        Pki {
            ca,
            cert: cert_path,
            key,
            _dir: dir,
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// A `redline-node` child process of a chain, killed when dropped.
#[derive(Debug)]
pub struct ChainNode {
    /// Its origin name.
    pub origin: String,
    /// Its origin's verifier key (created before it started, so followers can trust it).
    pub key: OriginKey,
    /// How clients reach it: `https://127.0.0.1:PORT` with the chain's CA, no token.
    pub target: redline_client::NodeTarget,
    /// Its stderr (tracing output).
    pub log: PathBuf,
    process: NodeProcess,
    _dir: tempfile::TempDir,
}

impl ChainNode {
    /// Starts `redline-node` for `origin` serving TLS with `pki`'s certificate, following
    /// `follows` (over TLS, verified against `pki`'s CA) and accepting every origin in
    /// `trust`, with `RUST_LOG=rust_log`. Returns once it serves and answers `Status`.
    pub async fn spawn(
        origin: &str,
        follows: &[&ChainNode],
        trust: &[&OriginKey],
        pki: &Pki,
        rust_log: &str,
    ) -> ChainNode {
        let dir = tempfile::Builder::new()
            .prefix("redline-chain-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let key = crate::identity(&data, origin);
        let mut toml = format!(
            "origin = {origin:?}\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\n[tls]\ncert = {:?}\nkey = {:?}\n",
            data.display().to_string(),
            pki.cert.display().to_string(),
            pki.key.display().to_string(),
        );
        for peer in follows {
            toml.push_str(&format!(
                "\n[[peers]]\nurl = {:?}\nca = {:?}\n",
                peer.target.url,
                pki.ca.display().to_string()
            ));
        }
        for k in trust {
            toml.push_str(&format!(
                "\n[[trust]]\norigin = {:?}\nkey = {:?}\npolicy = \"accept\"\n",
                k.name(),
                k.verifier_key()
            ));
        }
        let config = dir.path().join("node.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = dir.path().join("node.log");
        tokio::task::spawn_blocking(crate::node_bin)
            .await
            .expect("join");
        let mut process = NodeProcess::spawn_logging(&config, &log, rust_log);
        let url = process
            .serving(Duration::from_secs(120))
            .await
            .replace("http://", "https://");
        let target = redline_client::NodeTarget {
            url,
            token: None,
            ca: Some(pki.ca.clone()),
        };
        crate::eventually(
            Duration::from_secs(30),
            "the chain node answers Status",
            || {
                let target = target.clone();
                async move { crate::adversary::status_to(&target).await.is_some() }
            },
        )
        .await;
        ChainNode {
            origin: origin.to_owned(),
            key,
            target,
            log,
            process,
            _dir: dir,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Every commit of `origin`'s log this node logged as `replicated`, in log order.
    pub fn commits(&self, origin: &str) -> Vec<LoggedCommit> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(LoggedCommit::parse)
            .filter(|c| c.origin == origin)
            .collect()
    }
}

/// Size of `origin`'s log on the node `target` names (0 when it holds none or does not answer).
pub async fn size_on(target: &redline_client::NodeTarget, origin: &str) -> u64 {
    let Ok(channel) = target.open().await else {
        return 0;
    };
    redline_proto::pb::audit_client::AuditClient::new(channel)
        .get_checkpoint(redline_proto::pb::GetCheckpointRequest {
            origin: origin.to_owned(),
        })
        .await
        .map_or(0, |r| r.into_inner().tree_size)
}

/// One `replicated` line of a node's log: a batch of another origin's log committed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedCommit {
    /// When it was logged (after the commit was published).
    pub at: SystemTime,
    /// The origin whose log grew.
    pub origin: String,
    /// Its size after the commit.
    pub size: u64,
    /// Milliseconds fetching the entries from the peer.
    pub fetch_ms: u64,
    /// Milliseconds planning and hashing them against the signed root.
    pub verify_ms: u64,
    /// Milliseconds writing them and updating the catalog.
    pub commit_ms: u64,
}

impl LoggedCommit {
    /// Parses a line of the node's human log format (ANSI colours stripped), e.g.
    /// `2025-01-02T03:04:05.123456Z  INFO redline_server::federation::replicate: replicated
    /// origin=a.example size=12 peer=https://… fetch_ms=0 verify_ms=0 commit_ms=1`.
    pub fn parse(line: &str) -> Option<LoggedCommit> {
        let line = strip_ansi(line);
        if !line.contains(" replicated ") {
            return None;
        }
        let at = parse_rfc3339(line.split_whitespace().next()?)?;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let num = |name: &str| field(name)?.parse::<u64>().ok();
        Some(LoggedCommit {
            at,
            origin: field("origin")?,
            size: num("size")?,
            fetch_ms: num("fetch_ms")?,
            verify_ms: num("verify_ms")?,
            commit_ms: num("commit_ms")?,
        })
    }
}

/// `line` without ANSI escape sequences (`ESC [ … letter`), which the node's log may carry.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (what `tracing_subscriber` prints) as a time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    Some(UNIX_EPOCH + Duration::new(days * 86_400 + h * 3600 + mi * 60 + sec, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// User plus system CPU time of process `pid` so far, seconds (`/proc/<pid>/stat`; `self` for
/// this process), or 0 when it cannot be read.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, inside parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minute load averages).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_replicated_line_with_colours() {
        let line = "\u{1b}[2m2025-01-02T03:04:05.250000Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \
                    \u{1b}[2mredline_server::federation::replicate\u{1b}[0m\u{1b}[2m:\u{1b}[0m \
                    replicated \u{1b}[3morigin\u{1b}[0m\u{1b}[2m=\u{1b}[0ma.example \
                    \u{1b}[3msize\u{1b}[0m\u{1b}[2m=\u{1b}[0m12 peer=https://127.0.0.1:1 \
                    fetch_ms=3 verify_ms=4 commit_ms=5";
        let c = LoggedCommit::parse(line).expect("parsed");
        assert_eq!(c.origin, "a.example");
        assert_eq!(
            (c.size, c.fetch_ms, c.verify_ms, c.commit_ms),
            (12, 3, 4, 5)
        );
        let since = c.at.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since, Duration::from_millis(1_735_787_045_250));
        assert!(LoggedCommit::parse("2025-01-02T03:04:05Z  WARN something else").is_none());
    }
}
