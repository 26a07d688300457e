//! The deployment files in `deploy/` agree with the binary they deploy and with each other:
//!
//! - every `deploy/config/*.toml` (and every `node.toml` in a Kubernetes Secret) parses
//!   with the node's own `Config::from_toml_str` (unknown keys are errors there), passes the
//!   node's own exposure check for its non-loopback listener (TLS and tokens; only the lone
//!   standalone config says `insecure`), and marks its example keys and tokens for replacement;
//! - every peer token a config sends is, hashed, a `federate` token of the node it pulls from,
//!   and every TLS file a config names is mounted where it says (compose, Kubernetes);
//! - the example configs federate for real over TLS with certificates from
//!   `deploy/make-certs.sh` and their example tokens;
//! - the Dockerfile's `ENTRYPOINT`, `EXPOSE`, `VOLUME`, `USER` and `--bin`s, the compose
//!   services, the Kubernetes workloads and the systemd unit use only flags `redline-node`
//!   accepts (read from `server/src/main.rs`), one image name, container ports equal to the
//!   listen port of the config they mount, a volume at that config's `data_dir`, and
//!   Kubernetes probes on the metrics port's `/livez` and `/readyz`;
//! - the compose federation is the documented one: a uk -> kr -> br -> uk ring of hotlines
//!   that trust each other, and a platform that follows all three;
//! - `deploy/local-federation.sh` runs to completion: three hotlines and a platform as local
//!   processes, a submission at one hotline matched at the platform.

use clap::ValueEnum;
use redline_server::config::{Config, Policy};
use redline_server::telemetry::LogFormat;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The image every deployment runs: `redline:<workspace version>`.
const IMAGE: &str = concat!("redline:", env!("CARGO_PKG_VERSION"));
/// Where the image's entrypoint reads its config.
const CONFIG_PATH: &str = "/etc/redline/node.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse_config(text: &str, what: &str) -> Config {
    Config::from_toml_str(text, Path::new(what)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Files in `dir` ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.{ext} in {}", dir.display());
    v
}

// ------------------------------------------------------------------ the binary's flags

/// Long flags of `redline-node`, read from the clap `Args` struct in `server/src/main.rs`
/// (every field there is an `#[arg(long)]`), each with whether it takes a value (`bool`
/// fields are switches), plus clap's own `--help` and `--version`.
fn node_flags() -> BTreeMap<String, bool> {
    let src = read(&repo().join("server/src/main.rs"));
    let body = src
        .split_once("struct Args {")
        .expect("server/src/main.rs has `struct Args {`")
        .1;
    let body = &body[..body.find("\n}").expect("end of struct Args")];
    let mut flags = BTreeMap::from([
        ("--help".to_owned(), false),
        ("--version".to_owned(), false),
    ]);
    let mut long: Option<Option<String>> = None;
    for line in body.lines().map(str::trim) {
        if line.starts_with("#[arg(") {
            if line.contains("long") {
                // `long = "name"` renames the flag; plain `long` uses the field name.
                let renamed = line
                    .split_once("long = \"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(name, _)| name.to_owned());
                long = Some(renamed);
            }
        } else if line.starts_with("//") || line.starts_with("#[") || line.is_empty() {
            continue;
        } else if let Some((field, ty)) = line.split_once(':') {
            let field = field.trim().trim_start_matches("pub ").trim();
            if let Some(renamed) = long.take() {
                let name = renamed.unwrap_or_else(|| field.replace('_', "-"));
                let takes_value = ty.trim().trim_end_matches(',') != "bool";
                flags.insert(format!("--{name}"), takes_value);
            }
        }
    }
    for f in [
        "--config",
        "--data-dir",
        "--listen",
        "--origin",
        "--log-format",
    ] {
        assert_eq!(
            flags.get(f),
            Some(&true),
            "{f} (with a value) not found in server/src/main.rs: {flags:?}"
        );
    }
    flags
}

/// Flags that make `redline-node` print something and exit instead of serving.
const ONE_SHOT_FLAGS: [&str; 3] = ["--help", "--version", "--hash-token"];

/// Checks `redline-node` arguments (after the program name): every flag is one the binary
/// accepts, with a value when it takes one, and the values parse; returns flag -> value
/// (empty for switches).
fn check_node_args(args: &[String], what: &str) -> BTreeMap<String, String> {
    let known = node_flags();
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let takes_value = *known.get(&flag).unwrap_or_else(|| {
            panic!(
                "{what}: redline-node has no flag {flag:?} (it has {:?})",
                known.keys()
            )
        });
        assert!(
            !ONE_SHOT_FLAGS.contains(&flag.as_str()),
            "{what}: {flag} would only print and exit"
        );
        let value = if takes_value {
            value
                .or_else(|| it.next().cloned())
                .unwrap_or_else(|| panic!("{what}: {flag} needs a value"))
        } else {
            assert!(
                value.is_none(),
                "{what}: {flag} is a switch, it takes no value"
            );
            String::new()
        };
        match flag.as_str() {
            "--log-format" => {
                LogFormat::from_str(&value, false)
                    .unwrap_or_else(|e| panic!("{what}: --log-format {value}: {e}"));
            }
            "--listen" => {
                value
                    .parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("{what}: --listen {value}: {e}"));
            }
            _ => {}
        }
        assert!(
            out.insert(flag.clone(), value).is_none(),
            "{what}: {flag} given twice"
        );
    }
    out
}

// ------------------------------------------------------------------ Dockerfile

/// What the Dockerfile says about the runtime image.
#[derive(Debug)]
struct Dockerfile {
    /// ENTRYPOINT, exec form.
    entrypoint: Vec<String>,
    exposed: Vec<u16>,
    volumes: Vec<String>,
    /// Numeric uid of USER.
    uid: u64,
    /// `--bin` names of the cargo build.
    bins: Vec<String>,
    /// Repository file copied to the config path.
    default_config: PathBuf,
}

fn dockerfile() -> Dockerfile {
    let text = read(&deploy().join("Dockerfile"));
    // Join continuation lines, drop comments.
    let mut lines = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            lines.push(std::mem::take(&mut cur));
        }
    }
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "the Dockerfile is multi-stage");
    assert!(
        lines[stages[0]].starts_with("FROM rust:"),
        "builder stage: {}",
        lines[stages[0]]
    );
    let runtime = &lines[*stages.last().expect("a stage")..];
    let instr = |name: &str| -> Vec<String> {
        runtime
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|s| s.trim().to_owned())
            .collect()
    };
    let entrypoint: Vec<String> = serde_json::from_str(
        instr("ENTRYPOINT")
            .last()
            .expect("the Dockerfile has an ENTRYPOINT"),
    )
    .expect("ENTRYPOINT in exec (JSON) form");
    let exposed = instr("EXPOSE")
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("EXPOSE port"))
        .collect();
    let volumes = instr("VOLUME")
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    let user = instr("USER");
    let uid = user
        .last()
        .expect("the runtime stage sets USER")
        .split(':')
        .next()
        .expect("uid")
        .parse()
        .expect("USER is numeric (runAsNonRoot needs a numeric uid)");
    let build = lines
        .iter()
        .find(|l| l.starts_with("RUN ") && l.contains("cargo build"))
        .expect("a RUN cargo build");
    let words: Vec<&str> = build.split_whitespace().collect();
    let bins = words
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1].to_owned())
        .collect();
    let default_config = runtime
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 2 && w[1] == CONFIG_PATH).then(|| repo().join(w[0]))
        })
        .expect("the image carries a default config at /etc/redline/node.toml");
    Dockerfile {
        entrypoint,
        exposed,
        volumes,
        uid,
        bins,
        default_config,
    }
}

#[test]
fn dockerfile_matches_the_binary() {
    let d = dockerfile();
    assert_eq!(d.entrypoint[0], "redline-node", "{:?}", d.entrypoint);
    let flags = check_node_args(&d.entrypoint[1..], "Dockerfile ENTRYPOINT");
    assert_eq!(flags.get("--config").map(String::as_str), Some(CONFIG_PATH));

    // The binaries it builds are the workspace's.
    let server = read(&repo().join("server/Cargo.toml"));
    let client = read(&repo().join("client/Cargo.toml"));
    for bin in ["redline-node", "redline"] {
        assert!(d.bins.contains(&bin.to_owned()), "cargo build --bin {bin}");
    }
    assert!(server.contains("name = \"redline-node\""));
    assert!(client.contains("name = \"redline\""));

    // The default config: a port it exposes, a data dir that is its volume.
    let config = parse_config(&read(&d.default_config), "default config");
    assert_eq!(
        d.exposed,
        vec![config.listen.port()],
        "EXPOSE = listen port"
    );
    assert!(
        config.listen.ip().is_unspecified(),
        "a container listens on all interfaces"
    );
    assert_eq!(
        d.volumes,
        vec![config.data_dir.display().to_string()],
        "VOLUME = data_dir"
    );
    assert_ne!(d.uid, 0, "the image runs as a non-root user");
}

// ------------------------------------------------------------------ example configs

#[test]
fn example_configs_parse_and_mark_their_keys() {
    for path in files(&deploy().join("config"), "toml") {
        let what = path.display().to_string();
        let text = read(&path);
        let config = parse_config(&text, &what);
        assert_eq!(config.data_dir, Path::new("/data"), "{what}: data_dir");
        assert_eq!(config.listen.port(), 7443, "{what}: listen port");
        assert!(
            config.listen.ip().is_unspecified(),
            "{what}: listen on 0.0.0.0"
        );
        check_keys_marked(&text, &what);
        check_exposure(&config, &what, path.ends_with("standalone.toml"));
    }
}

/// Every example secret says it must be replaced: `key = ` lines of trust entries, peer
/// `token = ` lines and token `sha256 = ` lines.
fn check_keys_marked(toml_text: &str, what: &str) {
    for line in toml_text.lines() {
        let line = line.trim_start();
        let marker = if line.starts_with("key = \"") && line.contains('+') {
            "EXAMPLE KEY - REPLACE"
        } else if line.starts_with("token =") {
            "EXAMPLE TOKEN - REPLACE"
        } else if line.starts_with("sha256 =") {
            "EXAMPLE TOKEN HASH - REPLACE"
        } else {
            continue;
        };
        assert!(
            line.contains(marker),
            "{what}: example secret not marked {marker:?}: {line}"
        );
    }
}

/// The node's own start-up check passes for the config's listener: TLS and tokens, or, only
/// where `insecure_allowed`, an explicit `insecure = true`. Peers are dialled over https.
fn check_exposure(config: &Config, what: &str, insecure_allowed: bool) {
    config
        .check_exposure(config.listen)
        .unwrap_or_else(|e| panic!("{what}: the node would refuse to start: {e}"));
    if !insecure_allowed {
        assert!(!config.insecure, "{what}: insecure = true");
        assert!(config.tls.is_some() && !config.tokens.is_empty(), "{what}");
    }
    for p in &config.peers {
        assert!(
            p.url.starts_with("https://"),
            "{what}: peer {} over TLS",
            p.url
        );
        assert!(p.token.is_some(), "{what}: peer {} without a token", p.url);
    }
}

/// Whether `token` hashes to a token of `server` with the `federate` scope.
fn accepts_for_federation(server: &Config, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    server
        .tokens
        .iter()
        .any(|t| t.sha256 == hash && t.scopes.contains(&redline_server::config::Scope::Federate))
}

/// Every file path a config reads besides itself: TLS certificate, key and CAs.
fn tls_files(config: &Config) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(t) = &config.tls {
        v.extend([t.cert.clone(), t.key.clone()]);
        v.extend(t.client_ca.clone());
    }
    for p in &config.peers {
        v.extend(p.ca.iter().chain(&p.cert).chain(&p.key).cloned());
    }
    v
}

// ------------------------------------------------------------------ compose

fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::String(x) => x.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(xs) => xs.iter().map(|x| s(x).to_owned()).collect(),
        other => panic!("expected a list of strings, got {other:?}"),
    }
}

/// The port inside the container of a compose `ports` entry (short or long syntax).
fn compose_target_port(p: &Value) -> u16 {
    match p {
        Value::String(x) => x
            .rsplit(':')
            .next()
            .and_then(|t| t.split('/').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("ports entry {x:?}")),
        Value::Number(n) => n.as_u64().expect("port") as u16,
        Value::Mapping(_) => p["target"].as_u64().expect("ports target") as u16,
        other => panic!("ports entry {other:?}"),
    }
}

#[test]
fn compose_matches_the_configs_and_the_binary() {
    let compose_dir = deploy();
    let docs = yaml_docs(&compose_dir.join("compose.yaml"));
    assert_eq!(docs.len(), 1);
    let compose = &docs[0];
    let d = dockerfile();
    let named_volumes: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(|k| s(k).to_owned()).collect())
        .unwrap_or_default();
    let services = compose["services"].as_mapping().expect("services");

    // service name -> its config
    let mut configs: BTreeMap<String, Config> = BTreeMap::new();
    for (name, svc) in services {
        let name = s(name).to_owned();
        let what = format!("compose service {name}");
        assert_eq!(svc["image"].as_str(), Some(IMAGE), "{what}: image");
        let build = &svc["build"];
        if !build.is_null() {
            let context = compose_dir.join(s(&build["context"]));
            let dockerfile = context.join(s(&build["dockerfile"]));
            assert_eq!(
                dockerfile.canonicalize().expect("dockerfile exists"),
                deploy().join("Dockerfile").canonicalize().unwrap(),
                "{what}: builds deploy/Dockerfile"
            );
        }
        // The command line: the image's entrypoint unless replaced, plus `command`.
        let mut argv = match &svc["entrypoint"] {
            Value::Null => d.entrypoint.clone(),
            e => strings(e),
        };
        argv.extend(strings(&svc["command"]));
        assert_eq!(argv[0], "redline-node", "{what}: runs redline-node");
        let flags = check_node_args(&argv[1..], &what);
        let config_path = flags.get("--config").expect("--config").clone();

        // Mounts: the config file at --config, a named volume at the config's data_dir.
        let mut config = None;
        let mut mounts = BTreeMap::new();
        for v in svc["volumes"].as_sequence().expect("volumes") {
            let parts: Vec<&str> = s(v).split(':').collect();
            assert!(parts.len() >= 2, "{what}: volume {v:?}");
            mounts.insert(parts[1].to_owned(), parts[0].to_owned());
            if parts[1] == config_path {
                assert_eq!(
                    parts.get(2),
                    Some(&"ro"),
                    "{what}: config mounted read-only"
                );
                let file = compose_dir.join(parts[0]);
                config = Some(parse_config(&read(&file), &file.display().to_string()));
            }
        }
        let mut config =
            config.unwrap_or_else(|| panic!("{what}: no config mounted at {config_path}"));
        // TLS files: under a read-only bind mount of ./tls/<service>, which
        // deploy/make-certs.sh fills with exactly these file names.
        for file in tls_files(&config) {
            let (dir, source) = mounts
                .iter()
                .find(|(target, _)| file.starts_with(target.as_str()))
                .unwrap_or_else(|| panic!("{what}: nothing mounted at {}", file.display()));
            assert_eq!(source, &format!("./tls/{name}"), "{what}: {dir} source");
            let rel = file.strip_prefix(dir).unwrap();
            assert!(
                ["tls.crt", "tls.key", "ca.crt"].contains(&rel.to_str().unwrap()),
                "{what}: deploy/make-certs.sh writes no {}",
                rel.display()
            );
        }
        if let Some(dir) = flags.get("--data-dir") {
            config.data_dir = dir.into();
        }
        if let Some(l) = flags.get("--listen") {
            config.listen = l.parse().unwrap();
        }
        let data = config.data_dir.display().to_string();
        let source = mounts
            .get(&data)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at data_dir {data}"));
        assert!(
            named_volumes.contains(source),
            "{what}: data_dir {data} is on named volume {source:?}, declared in `volumes`"
        );
        assert!(
            d.volumes.contains(&data),
            "{what}: data_dir is the image's VOLUME"
        );

        // Ports: the container side is the config's listen port.
        let ports = svc["ports"].as_sequence().map(Vec::as_slice).unwrap_or(&[]);
        for p in ports {
            assert_eq!(
                compose_target_port(p),
                config.listen.port(),
                "{what}: published port targets the listen port"
            );
        }
        assert!(
            config.listen.ip().is_unspecified(),
            "{what}: listen on 0.0.0.0"
        );
        assert!(
            d.exposed.contains(&config.listen.port()),
            "{what}: EXPOSEd port"
        );
        configs.insert(name, config);
    }

    // Peers are other services, on their listen port; trusted origins are services' origins.
    let by_origin: BTreeMap<&str, &str> = configs
        .iter()
        .map(|(name, c)| (c.origin.as_str(), name.as_str()))
        .collect();
    assert_eq!(by_origin.len(), configs.len(), "one origin per service");
    let peer_service = |url: &str| -> String {
        let rest = url
            .strip_prefix("https://")
            .expect("TLS between containers");
        let (host, port) = rest
            .trim_end_matches('/')
            .split_once(':')
            .expect("host:port");
        let c = configs
            .get(host)
            .unwrap_or_else(|| panic!("peer {url}: no compose service {host}"));
        assert_eq!(
            port.parse::<u16>().unwrap(),
            c.listen.port(),
            "peer {url}: port"
        );
        host.to_owned()
    };
    let mut follows: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, c) in &configs {
        let peers: Vec<String> = c.peers.iter().map(|p| peer_service(&p.url)).collect();
        assert!(!peers.contains(name), "{name} peers with itself");
        for (p, service) in c.peers.iter().zip(&peers) {
            let token = &p.token.as_ref().expect("peer token").0;
            assert!(
                accepts_for_federation(&configs[service], token),
                "{name}'s token for {service} is not one of {service}'s federate tokens"
            );
        }
        for t in &c.trust {
            assert!(
                by_origin.contains_key(t.origin.as_str()),
                "{name} trusts {}, which no service is",
                t.origin
            );
            assert_ne!(t.origin, c.origin, "{name} lists its own origin in trust");
        }
        follows.insert(name, peers);
    }

    // The documented federation: hotlines uk, kr, br in a ring that trust each other with
    // policy accept, and a platform that follows and accepts all three.
    let hotlines = ["hotline-uk", "hotline-kr", "hotline-br"];
    let ring = [
        ("hotline-uk", "hotline-kr"),
        ("hotline-kr", "hotline-br"),
        ("hotline-br", "hotline-uk"),
    ];
    for (from, to) in ring {
        assert_eq!(follows[from], vec![to.to_owned()], "{from} syncs from {to}");
    }
    let accepted = |name: &str| -> BTreeSet<String> {
        configs[name]
            .trust
            .iter()
            .filter(|t| t.policy == Policy::Accept)
            .map(|t| by_origin[t.origin.as_str()].to_owned())
            .collect()
    };
    for h in hotlines {
        let others: BTreeSet<String> = hotlines
            .iter()
            .filter(|o| **o != h)
            .map(|o| o.to_string())
            .collect();
        assert_eq!(accepted(h), others, "{h} accepts the other two hotlines");
    }
    let all: BTreeSet<String> = hotlines.iter().map(|h| h.to_string()).collect();
    assert_eq!(
        accepted("platform"),
        all,
        "the platform accepts all hotlines"
    );
    assert_eq!(
        follows["platform"].iter().cloned().collect::<BTreeSet<_>>(),
        all,
        "the platform syncs from all hotlines"
    );
    for (name, c) in &configs {
        if name.starts_with("hotline-") {
            assert_eq!(format!("{name}.example"), c.origin, "{name}: origin name");
        }
    }
}

// ------------------------------------------------------------------ Kubernetes

/// One pod template of a StatefulSet or Deployment.
struct Workload<'a> {
    kind: String,
    name: String,
    doc: &'a Value,
}

#[test]
fn kubernetes_manifests_match_the_configs_and_the_binary() {
    let d = dockerfile();
    let mut docs = Vec::new();
    for path in files(&deploy().join("k8s"), "yaml") {
        for doc in yaml_docs(&path) {
            docs.push((path.display().to_string(), doc));
        }
    }
    let kinds: Vec<&str> = docs.iter().map(|(_, d)| s(&d["kind"])).collect();
    for k in ["StatefulSet", "Deployment", "Secret", "Service"] {
        assert!(kinds.contains(&k), "a {k} in deploy/k8s: {kinds:?}");
    }

    // Files of ConfigMaps (`data`) and Secrets (`stringData`): (kind, name) -> key -> text.
    // Node configs among them must parse and mark their example secrets.
    let mut objects: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for (file, doc) in &docs {
        let kind = s(&doc["kind"]);
        let field = match kind {
            "ConfigMap" => "data",
            "Secret" => "stringData",
            _ => continue,
        };
        let name = s(&doc["metadata"]["name"]).to_owned();
        let mut entries = BTreeMap::new();
        for (key, text) in doc[field].as_mapping().expect("data") {
            let key = s(key).to_owned();
            if key.ends_with(".toml") {
                let what = format!("{file}: {kind} {name} {key}");
                check_keys_marked(s(text), &what);
                parse_config(s(text), &what);
            }
            entries.insert(key, s(text).to_owned());
        }
        objects.insert((kind.to_owned(), name), entries);
    }

    // Services: name -> (selector, ports: port -> targetPort).
    let services: Vec<(&str, &Value)> = docs
        .iter()
        .filter(|(_, d)| s(&d["kind"]) == "Service")
        .map(|(_, d)| (s(&d["metadata"]["name"]), d))
        .collect();

    let workloads: Vec<Workload> = docs
        .iter()
        .filter(|(_, d)| matches!(s(&d["kind"]), "StatefulSet" | "Deployment"))
        .map(|(file, d)| Workload {
            kind: s(&d["kind"]).to_owned(),
            name: format!("{file}: {} {}", s(&d["kind"]), s(&d["metadata"]["name"])),
            doc: d,
        })
        .collect();
    let mut origin_of_workload = BTreeMap::new();
    let mut configs_of_workload = BTreeMap::new();
    for w in &workloads {
        let what = &w.name;
        let spec = &w.doc["spec"];
        let pod = &spec["template"]["spec"];
        let labels = spec["template"]["metadata"]["labels"]
            .as_mapping()
            .expect("pod labels");
        for (k, v) in spec["selector"]["matchLabels"]
            .as_mapping()
            .expect("selector")
        {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{what}: selector matches the pod labels"
            );
        }
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{what}"
        );
        assert_eq!(
            pod["securityContext"]["runAsUser"].as_u64(),
            Some(d.uid),
            "{what}: runAsUser is the image's USER"
        );
        let containers = pod["containers"].as_sequence().expect("containers");
        assert_eq!(containers.len(), 1, "{what}: one container");
        let c = &containers[0];
        assert_eq!(c["image"].as_str(), Some(IMAGE), "{what}: image");
        let mut argv = match &c["command"] {
            Value::Null => d.entrypoint.clone(),
            cmd => strings(cmd),
        };
        argv.extend(strings(&c["args"]));
        assert_eq!(argv[0], "redline-node", "{what}: runs redline-node");
        let flags = check_node_args(&argv[1..], what);
        let config_path = Path::new(flags.get("--config").expect("--config"));
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{what}");
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{what}"
        );
        assert!(
            c["resources"]["requests"].is_mapping() && c["resources"]["limits"].is_mapping(),
            "{what}: resources requests and limits"
        );

        // The config: a file of a Secret (or ConfigMap) volume at --config.
        let volumes = pod["volumes"].as_sequence().expect("volumes");
        let volume = |name: &str| volumes.iter().find(|v| v["name"].as_str() == Some(name));
        let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
        let mount_of = |path: &Path| {
            mounts
                .iter()
                .find(|m| Path::new(s(&m["mountPath"])) == path)
                .map(|m| s(&m["name"]).to_owned())
        };
        let source = |path: &Path| {
            pod_file(mounts, volumes, path).unwrap_or_else(|| {
                panic!("{what}: no Secret or ConfigMap file at {}", path.display())
            })
        };
        let (kind, object, key) = source(config_path);
        let text = objects
            .get(&(kind.clone(), object.clone()))
            .and_then(|m| m.get(&key))
            .unwrap_or_else(|| panic!("{what}: {kind} {object} has no {key}"));
        let mut config = parse_config(text, &format!("{what}: {kind} {object} {key}"));
        // TLS files: keys of kubernetes.io/tls Secrets (as cert-manager writes them).
        for file in tls_files(&config) {
            let (kind, object, key) = source(&file);
            assert_eq!(
                kind,
                "Secret",
                "{what}: {} from {kind} {object}",
                file.display()
            );
            assert!(
                ["tls.crt", "tls.key", "ca.crt"].contains(&key.as_str()),
                "{what}: {} is {key} of Secret {object}, not a kubernetes.io/tls key",
                file.display()
            );
        }
        if let Some(dir) = flags.get("--data-dir") {
            config.data_dir = dir.into();
        }
        if let Some(l) = flags.get("--listen") {
            config.listen = l.parse().unwrap();
        }
        if let Some(o) = flags.get("--origin") {
            config.origin = o.clone();
        }
        assert!(
            config.listen.ip().is_unspecified(),
            "{what}: listen on 0.0.0.0"
        );
        check_exposure(&config, what, false);
        let port = config.listen.port();

        // Ports and probes: the listen port, gRPC health.
        let ports = c["ports"].as_sequence().expect("container ports");
        assert!(
            ports
                .iter()
                .any(|p| p["containerPort"].as_u64() == Some(port.into())),
            "{what}: containerPort {port}"
        );
        // Probes: HTTP on the metrics listener (kubelet's gRPC probe cannot speak TLS),
        // /livez for liveness, /readyz (503 while the store and index load) for the others.
        let metrics_port = config
            .metrics_listen
            .unwrap_or_else(|| panic!("{what}: probes need metrics_listen"))
            .port();
        let probe_port = |p: &Value| -> u64 {
            match p {
                Value::Number(n) => n.as_u64().unwrap(),
                Value::String(name) => ports
                    .iter()
                    .find(|cp| cp["name"].as_str() == Some(name))
                    .and_then(|cp| cp["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("{what}: no container port named {name}")),
                other => panic!("{what}: probe port {other:?}"),
            }
        };
        for (probe, path, required) in [
            ("livenessProbe", "/livez", true),
            ("readinessProbe", "/readyz", true),
            ("startupProbe", "/readyz", false),
        ] {
            let get = &c[probe]["httpGet"];
            if !required && c[probe].is_null() {
                continue;
            }
            assert_eq!(get["path"].as_str(), Some(path), "{what}: {probe} path");
            assert_eq!(
                probe_port(&get["port"]),
                u64::from(metrics_port),
                "{what}: {probe} on the metrics port"
            );
        }

        // The data dir: a claim template (StatefulSet) or an emptyDir (Deployment).
        let data_volume = mount_of(&config.data_dir).unwrap_or_else(|| {
            panic!(
                "{what}: nothing mounted at data_dir {}",
                config.data_dir.display()
            )
        });
        if w.kind == "StatefulSet" {
            assert_eq!(
                spec["replicas"].as_u64(),
                Some(1),
                "{what}: one writer per identity"
            );
            let claims = spec["volumeClaimTemplates"].as_sequence().expect("claims");
            assert!(
                claims
                    .iter()
                    .any(|t| t["metadata"]["name"].as_str() == Some(&data_volume)),
                "{what}: data_dir on a volumeClaimTemplate"
            );
        } else {
            let v = volume(&data_volume).expect("data volume");
            assert!(
                v["emptyDir"].is_mapping(),
                "{what}: data_dir on an emptyDir"
            );
            assert!(
                spec["replicas"].as_u64().unwrap_or(1) > 1,
                "{what}: several followers"
            );
        }

        // Services that select this pod target a container port.
        for (name, svc) in &services {
            let sel = svc["spec"]["selector"].as_mapping().expect("selector");
            if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            for p in svc["spec"]["ports"].as_sequence().expect("ports") {
                let ok = match &p["targetPort"] {
                    Value::String(n) => ports.iter().any(|cp| {
                        cp["name"].as_str() == Some(n)
                            && cp["containerPort"].as_u64() == Some(port.into())
                    }),
                    Value::Number(n) => n.as_u64() == Some(port.into()),
                    Value::Null => p["port"].as_u64() == Some(port.into()),
                    other => panic!("targetPort {other:?}"),
                };
                assert!(ok, "Service {name} targets {what}'s gRPC port");
            }
        }
        origin_of_workload.insert(w.kind.clone(), config.origin.clone());
        configs_of_workload.insert(w.kind.clone(), config);
    }

    // Followers replicate from the hotline node through a Service of these manifests, and
    // trust the hotline's origin.
    let followers = &configs_of_workload["Deployment"];
    let hotline_origin = &origin_of_workload["StatefulSet"];
    assert!(
        followers
            .trust
            .iter()
            .any(|t| &t.origin == hotline_origin && t.policy == Policy::Accept),
        "followers accept {hotline_origin}"
    );
    assert!(!followers.peers.is_empty(), "followers have a peer");
    for p in &followers.peers {
        let token = &p.token.as_ref().expect("follower token").0;
        assert!(
            accepts_for_federation(&configs_of_workload["StatefulSet"], token),
            "the followers' token is not a federate token of the hotline node"
        );
        let rest = p.url.strip_prefix("https://").expect("in-cluster TLS");
        let (host, port) = rest
            .trim_end_matches('/')
            .split_once(':')
            .expect("host:port");
        let (_, svc) = services
            .iter()
            .find(|(n, _)| *n == host)
            .unwrap_or_else(|| panic!("follower peer {}: no Service {host}", p.url));
        assert_eq!(
            svc["spec"]["selector"]["app.kubernetes.io/component"].as_str(),
            Some("hotline"),
            "follower peer {} is the hotline node",
            p.url
        );
        let port: u64 = port.parse().unwrap();
        assert!(
            svc["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|sp| sp["port"].as_u64() == Some(port)),
            "follower peer {}: Service port",
            p.url
        );
    }
}

/// What backs `path` in a pod: `(kind, object name, key)` of the ConfigMap or Secret file
/// mounted there, through a `configMap`, `secret` or `projected` volume.
fn pod_file(mounts: &[Value], volumes: &[Value], path: &Path) -> Option<(String, String, String)> {
    let mount = mounts
        .iter()
        .find(|m| path.starts_with(s(&m["mountPath"])))?;
    let rel = path.strip_prefix(s(&mount["mountPath"])).ok()?.to_str()?;
    let volume = volumes.iter().find(|v| v["name"] == mount["name"])?;
    // One source: its `items` map keys to paths; without items every key is a file.
    let find = |kind: &str, src: &Value, name: &str| {
        let key = match src["items"].as_sequence() {
            Some(items) => items
                .iter()
                .find(|i| s(&i["path"]) == rel)
                .map(|i| s(&i["key"]).to_owned())?,
            None => rel.to_owned(),
        };
        Some((kind.to_owned(), s(&src[name]).to_owned(), key))
    };
    if volume["configMap"].is_mapping() {
        return find("ConfigMap", &volume["configMap"], "name");
    }
    if volume["secret"].is_mapping() {
        return find("Secret", &volume["secret"], "secretName");
    }
    volume["projected"]["sources"]
        .as_sequence()?
        .iter()
        .find_map(|src| {
            if src["secret"].is_mapping() {
                // Projected sources always list items here (no key collisions).
                find("Secret", &src["secret"], "name")
            } else if src["configMap"].is_mapping() {
                find("ConfigMap", &src["configMap"], "name")
            } else {
                None
            }
        })
}

// ------------------------------------------------------------------ systemd

#[test]
fn systemd_unit_is_hardened_and_uses_the_binary() {
    let text = read(&deploy().join("systemd/redline-node.service"));
    let mut kv: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') || line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        kv.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let one = |k: &str| -> &str {
        let v = kv.get(k).unwrap_or_else(|| panic!("the unit sets {k}="));
        v.last().unwrap()
    };
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        exec[0].ends_with("/redline-node"),
        "ExecStart runs redline-node"
    );
    let flags = check_node_args(&exec[1..], "ExecStart");
    assert_eq!(flags.get("--config").map(String::as_str), Some(CONFIG_PATH));

    for (k, v) in [
        ("StateDirectory", "redline"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(k), v, "{k}=");
    }
    assert!(
        one("DynamicUser") == "yes" || kv.contains_key("User"),
        "DynamicUser or a User"
    );
    let families: BTreeSet<&str> = one("RestrictAddressFamilies").split_whitespace().collect();
    assert_eq!(families, BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]));
    assert!(kv["SystemCallFilter"]
        .iter()
        .any(|v| v == "@system-service"));
    assert!(kv.contains_key("TimeoutStopSec"));
    // The only writable place is the state directory: the working directory is it, and the
    // documented data_dir too.
    assert_eq!(one("WorkingDirectory"), "/var/lib/redline");
    assert!(text.contains("data_dir = \"/var/lib/redline\""));
}

// ------------------------------------------------------------------ example PKI, for real

/// `deploy/make-certs.sh` makes certificates the node accepts, and the example configs of
/// hotline-kr and the platform, changed only where a test must (data dirs, loopback
/// addresses, the real verifier key instead of the example one), federate with them: the
/// platform dials https with the example CA and its example token, and replicates kr's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_configs_federate_over_tls_with_the_example_pki() {
    use redline_e2e::{eventually, temp_dir, TestNode};
    use redline_server::node::NewSignal;
    let pki = temp_dir();
    let out = std::process::Command::new("bash")
        .arg(deploy().join("make-certs.sh"))
        .arg(pki.path())
        .output()
        .expect("run make-certs.sh");
    assert!(out.status.success(), "make-certs.sh: {out:?}");
    // A file the config names at /etc/redline/tls/X is the script's OUT/<service>/X.
    let remap = |service: &str, p: &Path| {
        pki.path().join(service).join(
            p.strip_prefix("/etc/redline/tls")
                .expect("under /etc/redline/tls"),
        )
    };
    let load =
        |name: &str| parse_config(&read(&deploy().join(format!("config/{name}.toml"))), name);

    let (kr_dir, platform_dir) = (temp_dir(), temp_dir());
    let mut kr = load("kr");
    kr.data_dir = kr_dir.path().to_owned();
    kr.peers.clear(); // hotline-br is not part of this test
    let tls = kr.tls.as_mut().expect("[tls]");
    tls.cert = remap("hotline-kr", &tls.cert);
    tls.key = remap("hotline-kr", &tls.key);
    let kr = TestNode::start(kr).await;

    let mut platform = load("platform");
    platform.data_dir = platform_dir.path().to_owned();
    let tls = platform.tls.as_mut().expect("[tls]");
    tls.cert = remap("platform", &tls.cert);
    tls.key = remap("platform", &tls.key);
    platform.peers.retain(|p| p.url.contains("hotline-kr"));
    let peer = &mut platform.peers[0];
    peer.url = format!("https://127.0.0.1:{}", kr.addr.port());
    peer.tls_server_name = Some("hotline-kr".into());
    peer.ca = Some(remap("platform", peer.ca.as_ref().expect("peer ca")));
    for t in &mut platform.trust {
        if t.origin == "hotline-kr.example" {
            t.key = kr.node.public_key().verifier_key();
        }
    }
    let platform = TestNode::start(platform).await;

    let signals: Vec<NewSignal> = (0..5u8)
        .map(|i| NewSignal {
            signal_type: redline_proto::signal::SignalType::Pdq,
            hash: vec![0x40 + i; 32],
            quality: 100,
        })
        .collect();
    kr.node.submit(signals, Default::default()).await.unwrap();
    let size = |n: &TestNode| {
        n.node
            .log("hotline-kr.example")
            .map_or(0, |l| l.state().size())
    };
    eventually(
        std::time::Duration::from_secs(30),
        "the platform replicates hotline-kr over TLS with its example token",
        || async { size(&platform) == 5 },
    )
    .await;
    let peers = platform.node.peers().snapshot();
    assert!(
        peers.iter().all(|(_, p)| p.last_error.is_empty()),
        "{peers:?}"
    );
    platform.stop().await;
    kr.stop().await;
}

// ------------------------------------------------------------------ local federation

/// Runs `deploy/local-federation.sh` (debug build): three hotlines and a platform as local
/// processes; a submission at hotline-uk must be replicated and matched at the platform.
#[test]
fn local_federation_script_runs_to_completion() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIP: python3 is not installed; deploy/local-federation.sh needs it");
        return;
    }
    let script = deploy().join("local-federation.sh");
    let mut child = std::process::Command::new("bash")
        .arg(&script)
        .current_dir(std::env::temp_dir())
        .env("REDLINE_PROFILE", "debug")
        .env("CARGO", env!("CARGO"))
        .env_remove("REDLINE_BIN_DIR")
        .env_remove("REDLINE_BASE_PORT")
        .env_remove("REDLINE_KEEP_WORK")
        .env_remove("REDLINE_NODE")
        .env_remove("REDLINE_TOKEN")
        .env_remove("REDLINE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bash");
    // The script bounds its own waits; this bounds the build too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    let out_handle = {
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut out, &mut s).ok();
            s
        })
    };
    let err_handle = {
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut err, &mut s).ok();
            s
        })
    };
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the script") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            // SIGTERM lets the script's trap stop the nodes it started.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(15));
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stdout = out_handle.join().unwrap();
    let stderr = err_handle.join().unwrap();
    assert!(
        status.success(),
        "deploy/local-federation.sh failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("OK: the platform matched what hotline-uk submitted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hotline-uk.example  index 0  distance 0"),
        "{stdout}"
    );
}
