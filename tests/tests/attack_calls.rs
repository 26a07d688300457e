//! Hostile callers against the gRPC request layer: what one call, or one stream, may cost the
//! node. Each attack runs against a `redline-node` child process with default limits (with
//! `[[tokens]]`, so the layer under attack is the one a node facing a network has) while a
//! [`Sampler`] keeps asking it a Match question from another client, and ends with
//! [`Latencies::assert_responsive`] plus the bound the attack is about:
//!
//! - junk paths (unknown methods of known services, unknown services, health and reflection
//!   paths that do not exist, with and without tokens) add no metric series: the `method`
//!   label comes from a fixed list of the served methods ([`redline_server::grpc::methods`]);
//! - a Match or a Submit of 10,000,000 empty signals (20 MB on the wire, ~0.9 GiB decoded)
//!   is refused while its bytes arrive, and the node's peak memory grows by < 64 MiB
//!   ([`redline_server::grpc::wire`]);
//! - a MatchStream under a 10/s token pays for each query, so 100,000 queries in one stream
//!   get a few answers and then RESOURCE_EXHAUSTED, and one Match of 1,024 signals spends
//!   1,024 units ([`redline_server::grpc::auth::Budget`]);
//! - streams without a token (health `Watch`, reflection) and idle streams end by themselves.
//!
//! The tests take turns ([`SERIAL`]): on two cores, two attacks at once would measure each
//! other. Each prints an `ADVERSARY …` line (what was refused, Match latency, peak memory).

use futures::StreamExt;
use prost::bytes::{Buf, BufMut, Bytes};
use redline_e2e::adversary::{ChildNode, Latencies, Sampler};
use redline_proto::pb::{self, MatchRequest, Signal};
use redline_server::grpc::auth::hash_token;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const MIB: u64 = 1 << 20;
/// The memory bound of the decode attacks (the issue's): the scan refuses the message after a
/// few KiB, so what is left is connection buffers and allocator slack.
const DECODE_BOUND: u64 = 64 * MIB;
/// Shortest phase: enough Match samples to judge (≥ 50 at ~10 ms each).
const MIN_PHASE: Duration = Duration::from_millis(1500);

/// One attack at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tokens every node here accepts: `(name, secret, scopes, rate_per_sec)`.
const TOKENS: [(&str, &str, &str, Option<u32>); 5] = [
    ("operator", "admin-token", "\"admin\"", None),
    ("sampler", "match-token", "\"match\"", None),
    ("analyst", "submit-token", "\"submit\"", None),
    ("slow", "slow-token", "\"match\"", Some(10)),
    ("slow-batch", "slow-batch-token", "\"match\"", Some(10)),
];

fn tokens_toml() -> String {
    TOKENS
        .iter()
        .map(|(name, secret, scopes, rate)| {
            let rate = rate.map_or(String::new(), |r| format!("rate_per_sec = {r}\n"));
            format!(
                "\n[[tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [{scopes}]\n{rate}",
                hash_token(secret)
            )
        })
        .collect()
}

/// A node with [`TOKENS`] and `extra`, and a catalog of a few hundred hashes to match; returns
/// it and a hash it lists.
async fn node(extra: &str, metrics: Option<std::net::SocketAddr>) -> (ChildNode, String) {
    let node = ChildNode::spawn_authenticated(
        &format!("{}{extra}", tokens_toml()),
        "admin-token",
        metrics,
    )
    .await;
    let hashes: Vec<String> = (0..500u32)
        .map(|i| hex::encode(sha256(&i.to_be_bytes())))
        .collect();
    let mut c = redline_client::HotlineClient::connect_to(&redline_client::NodeTarget::with_token(
        &node.url,
        Some("submit-token"),
    ))
    .await
    .expect("connect");
    let signals = hashes.iter().map(|h| pdq(h)).collect();
    c.submit(signals, vec!["ncii".into()], "consent withdrawn", "")
        .await
        .expect("seed the catalog");
    (node, hashes[250].clone())
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

fn pdq(hex: &str) -> Signal {
    Signal {
        signal_type: "pdq".into(),
        value: hex.to_owned(),
        quality: 100,
    }
}

/// A Match sampler from another client, with an unlimited token.
fn sampler(node: &ChildNode, hash: &str) -> Sampler {
    Sampler::start_to(
        redline_client::NodeTarget::with_token(&node.url, Some("match-token")),
        hash,
        false,
    )
}

/// Lets the sampler run for at least [`MIN_PHASE`] since `began` and for enough samples.
async fn finish(sampler: Sampler, began: Instant) -> Latencies {
    while began.elapsed() < MIN_PHASE
        || (sampler.answered() < Latencies::MIN_SAMPLES as u64 && began.elapsed() < MIN_PHASE * 20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sampler.finish().await
}

fn report(attack: &str, refused: &str, latencies: &Latencies, extra: &str, took: Duration) {
    println!(
        "ADVERSARY {attack:<34} | {refused:<44} | match {} | {extra} | {:.1}s",
        latencies.summary(),
        took.as_secs_f64()
    );
}

async fn channel(node: &ChildNode) -> Channel {
    Channel::from_shared(node.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {t}")).expect("header value"),
        );
    }
    req
}

// ---------------------------------------------------------------------------------------------
// A codec that sends bytes as they are (any path, any message) and decodes `M`.

#[derive(Debug)]
struct Raw<M>(PhantomData<M>);

impl<M> Default for Raw<M> {
    fn default() -> Self {
        Raw(PhantomData)
    }
}

#[derive(Debug)]
struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

#[derive(Debug)]
struct MessageDecoder<M>(PhantomData<M>);

impl<M: prost::Message + Default> Decoder for MessageDecoder<M> {
    type Item = M;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        M::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl<M: prost::Message + Default + Send + 'static> Codec for Raw<M> {
    type Encode = Bytes;
    type Decode = M;
    type Encoder = RawEncoder;
    type Decoder = MessageDecoder<M>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> MessageDecoder<M> {
        MessageDecoder(PhantomData)
    }
}

/// A unary call of `message` (encoded bytes) to `path`; its status code.
async fn raw_call(channel: &Channel, path: &str, message: Bytes, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    if let Err(e) = grpc.ready().await {
        return Status::unavailable(e.to_string()).code();
    }
    let pq = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("a path");
    let r = grpc
        .unary::<_, pb::MatchResponse, _>(
            with_token(message, token),
            pq,
            Raw::<pb::MatchResponse>::default(),
        )
        .await;
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// What became of one junk call: the node's status code, or `transport` when the connection
/// failed under it (h2 closes a connection with GOAWAY `ENHANCE_YOUR_CALM` once too many small
/// request frames it has not read pile up, which a flood of refused calls makes happen; the
/// channel reconnects).
async fn junk_call(channel: &Channel, path: &str, token: Option<&str>) -> String {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if grpc.ready().await.is_err() {
        return "transport".into();
    }
    let pq = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("a path");
    let r = grpc
        .unary::<_, pb::MatchResponse, _>(
            with_token(Bytes::new(), token),
            pq,
            Raw::<pb::MatchResponse>::default(),
        )
        .await;
    match r {
        Ok(_) => "Ok".into(),
        Err(s) if is_transport(&s) => "transport".into(),
        Err(s) => format!("{:?}", s.code()),
    }
}

fn is_transport(s: &Status) -> bool {
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// A free port on 127.0.0.1 (bound and released: the node binds it right after).
fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// `GET /metrics`; the body.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// Every `method` label value of the `redline_rpc_*` series, with the calls counted under it.
fn method_labels(metrics: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("redline_rpc_")) {
        let Some(rest) = line.split_once("method=\"").map(|(_, r)| r) else {
            continue;
        };
        let method = rest.split('"').next().unwrap_or_default().to_owned();
        let calls = if line.starts_with("redline_rpc_calls_total{") {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        *out.entry(method).or_insert(0) += calls;
    }
    out
}

/// Junk paths: 50,000 calls to methods and services that do not exist, under known services
/// (Matching, Node, health, reflection) and unknown ones, half with a valid token, half
/// without. Before, every distinct path under a known service (and every health or
/// reflection path, which needs no token) became a `method` label value and two series kept
/// forever: 5,000 such calls made 5,503 series and an 8.3 MiB `/metrics`. Bound: fewer than 40
/// distinct `method` values (the served methods and `other`), every junk call still counted
/// (under `other`), and Match keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_paths_add_no_metric_series() {
    let _turn = SERIAL.lock().await;
    let metrics = free_port();
    let (node, hash) = node("", Some(metrics)).await;
    let channel = channel(&node).await;
    let sampler = sampler(&node, &hash);
    let began = Instant::now();

    const CALLS: usize = 50_000;
    let paths = |i: usize| -> (String, Option<&'static str>) {
        let token = i.is_multiple_of(2).then_some("match-token");
        let path = match i % 5 {
            0 => format!("/redline.v1.Matching/x{i}"),
            1 => format!("/redline.v1.Node/Status{i}"),
            2 => format!("/junk{i}.Service/Match"),
            3 => format!("/grpc.health.v1.Health/Check{i}"),
            _ => format!("/grpc.reflection.v1.ServerReflection/x{i}"),
        };
        (path, token)
    };
    let codes: BTreeMap<String, usize> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let channel = channel.clone();
            async move {
                let (path, token) = paths(i);
                junk_call(&channel, &path, token).await
            }
        })
        .buffer_unordered(64)
        .fold(BTreeMap::new(), |mut m, code| async move {
            *m.entry(code).or_insert(0) += 1;
            m
        })
        .await;
    let answered = CALLS - codes.get("transport").copied().unwrap_or(0);
    let attack = began.elapsed();
    let text = scrape(metrics).await;
    let latencies = finish(sampler, began).await;

    let labels = method_labels(&text);
    let distinct: BTreeSet<&String> = labels.keys().collect();
    let other = labels.get("other").copied().unwrap_or(0);
    report(
        "junk method paths",
        &format!("{CALLS} calls in {:.1}s: {codes:?}", attack.as_secs_f64()),
        &latencies,
        &format!(
            "{} method labels, /metrics {:.1} KiB",
            distinct.len(),
            text.len() as f64 / 1024.0
        ),
        began.elapsed(),
    );
    assert_eq!(
        codes.get("Ok"),
        None,
        "a junk path was answered as if it existed: {codes:?}"
    );
    assert!(
        distinct.len() < 40,
        "{} distinct method labels: {distinct:?}",
        distinct.len()
    );
    assert!(
        other >= answered as u64,
        "junk calls must still be counted, under `other`: {other} of {answered}"
    );
    assert!(
        answered >= CALLS * 99 / 100,
        "the node answered only {answered} of {CALLS} calls: {codes:?}"
    );
    latencies.assert_responsive("junk method paths");
}

/// `n` empty `Signal`s as field 1 (`signals`) of a Match or Submit request: 2 bytes each.
fn empty_signals(n: usize) -> Bytes {
    let mut b = Vec::with_capacity(2 * n);
    for _ in 0..n {
        b.extend_from_slice(&[0x0a, 0x00]);
    }
    Bytes::from(b)
}

/// Decode amplification: a Match, then a Submit (with a `submit` token), of 10,000,000 empty
/// signals, 20 MB on the wire, which prost would decode into ~560 MB of `Signal`s (~0.9 GiB
/// with `Vec` growth); before, the Match was refused only after decoding, and the node's peak
/// memory grew by 555 MiB. Bound: each is refused (INVALID_ARGUMENT or RESOURCE_EXHAUSTED),
/// the node's peak resident memory (`VmHWM`, reset before each) grows by < 64 MiB over its
/// resident size at the start, and Match keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_million_empty_signals_are_refused_before_decoding() {
    let _turn = SERIAL.lock().await;
    let (node, hash) = node("", None).await;
    let channel = channel(&node).await;
    let message = empty_signals(10_000_000);
    for (path, token) in [
        ("/redline.v1.Matching/Match", "match-token"),
        ("/redline.v1.Submission/Submit", "submit-token"),
    ] {
        node.reset_peak();
        let start = node.rss();
        let sampler = sampler(&node, &hash);
        let began = Instant::now();
        let code = raw_call(&channel, path, message.clone(), Some(token)).await;
        let refused_in = began.elapsed();
        let latencies = finish(sampler, began).await;
        let peak = node.peak();
        let growth = peak.saturating_sub(start);
        report(
            &format!(
                "10M empty signals: {}",
                path.rsplit('/').next().unwrap_or(path)
            ),
            &format!("{code:?} in {:.0} ms", refused_in.as_secs_f64() * 1e3),
            &latencies,
            &format!(
                "peak RSS {:.1} MiB (+{:.1} MiB)",
                peak as f64 / MIB as f64,
                growth as f64 / MIB as f64
            ),
            began.elapsed(),
        );
        assert!(
            matches!(code, Code::InvalidArgument | Code::ResourceExhausted),
            "{path}: {code:?}\n{}",
            node.log_tail()
        );
        assert!(
            growth < DECODE_BOUND,
            "{path}: peak resident memory grew by {:.1} MiB, over the {} MiB bound",
            growth as f64 / MIB as f64,
            DECODE_BOUND / MIB
        );
        latencies.assert_responsive(path);
    }
}

fn one_query(i: u32) -> MatchRequest {
    MatchRequest {
        signals: vec![pdq(&hex::encode(sha256(&i.to_be_bytes())))],
        ..Default::default()
    }
}

/// Rate limits that count calls: one MatchStream carried unlimited queries under one call of
/// budget, and one Match up to 1,024 searches. Now every query is charged to the token.
/// Tried: a stream of 100,000 queries, sent as fast as the node reads them, under a token of
/// 10 units/s (burst 10); then, under another such token, a Match of 1,024 signals and one of
/// a single signal. Bound: the stream gets far fewer than 100,000 answers (at most its burst
/// plus what the rate refills while it runs, under 1,000) and ends with RESOURCE_EXHAUSTED;
/// the 1,024-signal Match is answered and leaves the token in debt, so the next Match is
/// refused; and Match from another token keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_streams_pay_for_every_query() {
    let _turn = SERIAL.lock().await;
    let (node, hash) = node("", None).await;
    let channel = channel(&node).await;
    let sampler = sampler(&node, &hash);
    let began = Instant::now();

    const QUERIES: u32 = 100_000;
    let mut client = pb::matching_client::MatchingClient::new(channel.clone());
    let queries = futures::stream::iter(0..QUERIES).map(one_query);
    let mut answers = client
        .match_stream(with_token(queries, Some("slow-token")))
        .await
        .expect("the stream opens")
        .into_inner();
    let mut answered = 0u64;
    let end = loop {
        match answers.message().await {
            Ok(Some(_)) => answered += 1,
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    let stream_took = began.elapsed();

    let mut batch = pb::matching_client::MatchingClient::new(channel.clone());
    let big = MatchRequest {
        signals: (0..1024u32)
            .map(|i| one_query(i).signals.remove(0))
            .collect(),
        ..Default::default()
    };
    let big_answer = batch
        .r#match(with_token(big, Some("slow-batch-token")))
        .await
        .map(|r| r.into_inner().results.len());
    let next = batch
        .r#match(with_token(one_query(1), Some("slow-batch-token")))
        .await
        .map(drop)
        .map_err(|s| s.code());
    let latencies = finish(sampler, began).await;

    let code = end.as_ref().map(Status::code);
    report(
        "MatchStream of 100,000 under 10/s",
        &format!(
            "{answered} answered in {:.2}s, then {code:?}; 1,024-signal Match: {:?}, next: {next:?}",
            stream_took.as_secs_f64(),
            big_answer.as_ref().map_err(Status::code),
        ),
        &latencies,
        "",
        began.elapsed(),
    );
    assert_eq!(
        code,
        Some(Code::ResourceExhausted),
        "the stream must end refused: {end:?}"
    );
    assert!(answered < 1_000, "{answered} of {QUERIES} queries answered");
    assert!(answered >= 1, "the burst is served");
    assert_eq!(big_answer.expect("a large Match is admitted"), 1024);
    assert_eq!(
        next,
        Err(Code::ResourceExhausted),
        "1,024 searches cost 1,024 units"
    );
    latencies.assert_responsive("MatchStream under a 10/s token");
}

/// Streams that never end: health `Watch` and reflection need no token, and nothing ended
/// them or an idle MatchStream. Tried (with `stream_idle_ms` and `open_stream_max_ms` lowered
/// from their defaults of 60 s so the test takes seconds; nothing else changed): a health
/// `Watch` without a token that then sits quiet, a reflection stream without a token that
/// keeps asking, and a MatchStream (with a token) that asks once and sits quiet. Bound: each
/// ends with DEADLINE_EXCEEDED by itself, the quiet ones after the idle limit and the busy
/// reflection stream at its lifetime, and Match keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_idle_streams_end_by_themselves() {
    let _turn = SERIAL.lock().await;
    let limits = "\n[limits]\nstream_idle_ms = 1000\nopen_stream_max_ms = 2000\n";
    let (node, hash) = node(limits, None).await;
    let channel = channel(&node).await;
    let sampler = sampler(&node, &hash);
    let began = Instant::now();

    let watch = async {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let mut s = health
            .watch(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch opens")
            .into_inner();
        let t = Instant::now();
        loop {
            match s.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return (None, t.elapsed()),
                Err(e) => return (Some(e.code()), t.elapsed()),
            }
        }
    };
    let reflection = async {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, ServerReflectionRequest,
        };
        let asks = futures::stream::iter(0..).then(|_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }
        });
        let t = Instant::now();
        let mut s = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(asks)
            .await
            .expect("reflection opens")
            .into_inner();
        let mut answers = 0;
        loop {
            match s.message().await {
                Ok(Some(_)) => answers += 1,
                Ok(None) => return (None, t.elapsed(), answers),
                Err(e) => return (Some(e.code()), t.elapsed(), answers),
            }
        }
    };
    let idle_match = async {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(one_query(7)).await.expect("queue");
        let t = Instant::now();
        let mut s = pb::matching_client::MatchingClient::new(channel.clone())
            .match_stream(with_token(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                Some("match-token"),
            ))
            .await
            .expect("stream opens")
            .into_inner();
        let first = s.message().await.map(|m| m.is_some());
        let end = s.message().await.err().map(|e| e.code());
        drop(tx);
        (first, end, t.elapsed())
    };
    let deadline = Duration::from_secs(30);
    let (
        (watch_end, watch_took),
        (refl_end, refl_took, refl_answers),
        (first, idle_end, idle_took),
    ) = tokio::time::timeout(deadline, async {
        tokio::join!(watch, reflection, idle_match)
    })
    .await
    .expect("every stream ends by itself");
    let latencies = finish(sampler, began).await;
    report(
        "open and idle streams",
        &format!(
            "watch {watch_end:?} {:.1}s; reflection {refl_end:?} {:.1}s ({refl_answers} answers); idle MatchStream {idle_end:?} {:.1}s",
            watch_took.as_secs_f64(),
            refl_took.as_secs_f64(),
            idle_took.as_secs_f64()
        ),
        &latencies,
        "",
        began.elapsed(),
    );
    assert_eq!(watch_end, Some(Code::DeadlineExceeded));
    assert_eq!(refl_end, Some(Code::DeadlineExceeded));
    assert!(
        refl_answers >= 5,
        "the busy stream was served until its lifetime ended"
    );
    assert!(
        refl_took >= Duration::from_millis(1900),
        "{refl_took:?}: ended by its lifetime"
    );
    assert_eq!(first.ok(), Some(true));
    assert_eq!(idle_end, Some(Code::DeadlineExceeded));
    latencies.assert_responsive("open and idle streams");
}
