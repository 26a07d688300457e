//! The report API behind the victim's page, called as anyone on the internet could call it:
//! with `curl`, no token, on a live node.
//!
//! Tried, and what must hold:
//! - a node without `[report] enabled` answers 404 and keeps nothing;
//! - a malformed hash, too many hashes, a context over the limit, an unknown field: 400, and no
//!   case is opened;
//! - an unknown case number and a wrong PIN get the same 404 and the same words (neither can
//!   be probed), and the PIN is accepted in any case and without its dashes;
//! - one address past its burst gets 429 (`resource_exhausted`), and the node keeps serving
//!   others;
//! - in `direct` mode a case is listed at once and matchable; withdrawal retracts it (no longer
//!   matched) and is idempotent;
//! - the review queue needs the `submit` scope; approving a case twice or rejecting without a
//!   reason is refused; a rejected case lists nothing.

use redline_e2e::curl::{bearer, curl, json, post_json as post};
use redline_e2e::{temp_dir, token_config, TestNode};
use redline_server::config::{Config, ReportMode, Scope};

const ANALYST: &str = "analyst-secret";
const MATCHER: &str = "matcher-secret";

fn pdq(seed: u8) -> serde_json::Value {
    serde_json::json!({"signal_type": "pdq", "value": hex::encode([seed; 32]), "quality": 90})
}

fn node_config(dir: &std::path::Path, mode: ReportMode, burst: u32) -> Config {
    let mut config = Config::new("hotline.example", dir);
    config.report.enabled = true;
    config.report.mode = mode;
    config.report.per_address_burst = burst;
    config.report.per_address_per_min = 0.001;
    config.report.max_signals = 4;
    config.report.max_context_bytes = 100;
    config.tokens = vec![
        token_config("analyst", ANALYST, vec![Scope::Submit]),
        token_config("matcher", MATCHER, vec![Scope::Match]),
    ];
    config
}

async fn matches(url: &str, seed: u8) -> usize {
    let (code, answer) = post(
        format!("{url}/v1/match"),
        Some(MATCHER),
        serde_json::json!({"signals": [pdq(seed)]}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    answer["results"][0]["matches"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_bounded_unprobeable_and_withdrawable() {
    // Off by default.
    let off_dir = temp_dir();
    let off = TestNode::start(Config::new("off.example", off_dir.path())).await;
    let (code, answer) = post(
        format!("{}/report/api/cases", off.url),
        None,
        serde_json::json!({"signals": [pdq(1)]}),
    )
    .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (404, Some("not_found")),
        "{answer}"
    );
    let (code, _) = curl(vec![format!("{}/report/", off.url)]).await;
    assert_eq!(code, 404, "no page on a node that takes no reports");
    off.stop().await;

    let dir = temp_dir();
    let node = TestNode::start(node_config(dir.path(), ReportMode::Direct, 14)).await;
    let cases = format!("{}/report/api/cases", node.url);
    for (body, what) in [
        (serde_json::json!({"signals": []}), "empty"),
        (
            serde_json::json!({"signals": [pdq(1), pdq(2), pdq(3), pdq(4), pdq(5)]}),
            "too many",
        ),
        (
            serde_json::json!({"signals": [{"signal_type": "pdq", "value": "zz"}]}),
            "malformed",
        ),
        (
            serde_json::json!({"signals": [pdq(1)], "context": "x".repeat(101)}),
            "long context",
        ),
        (
            serde_json::json!({"signals": [pdq(1)], "name": "me"}),
            "unknown field",
        ),
    ] {
        let (code, answer) = post(cases.clone(), None, body).await;
        assert_eq!(code, 400, "{what}: {answer}");
    }
    assert_eq!(
        node.size_of("hotline.example"),
        0,
        "no refused report listed anything"
    );

    // Direct mode: listed at once, matchable, withdrawn.
    let (code, opened) = post(
        cases.clone(),
        None,
        serde_json::json!({"signals": [pdq(7), pdq(8)], "context": "shared without consent"}),
    )
    .await;
    assert_eq!(code, 200, "{opened}");
    assert_eq!(opened["status"], "listed");
    let (id, pin) = (
        opened["case_id"].as_str().unwrap(),
        opened["pin"].as_str().unwrap(),
    );
    assert_eq!(matches(&node.url, 7).await, 1);
    let status = format!("{}/report/api/status", node.url);
    let sloppy = pin.to_lowercase().replace('-', "");
    let (code, seen) = post(
        status.clone(),
        None,
        serde_json::json!({"case_id": id, "pin": sloppy}),
    )
    .await;
    assert_eq!(
        (code, seen["status"].as_str(), seen["hashes"].as_u64()),
        (200, Some("listed"), Some(2))
    );
    let (code_wrong, wrong) = post(
        status.clone(),
        None,
        serde_json::json!({"case_id": id, "pin": "0000"}),
    )
    .await;
    let (code_none, none) = post(
        status.clone(),
        None,
        serde_json::json!({"case_id": "RL-0000-0000-0000", "pin": pin}),
    )
    .await;
    assert_eq!((code_wrong, code_none), (404, 404));
    assert_eq!(wrong, none, "an unknown case and a wrong PIN read the same");
    let withdraw = format!("{}/report/api/withdraw", node.url);
    for _ in 0..2 {
        let (code, done) = post(
            withdraw.clone(),
            None,
            serde_json::json!({"case_id": id, "pin": pin}),
        )
        .await;
        assert_eq!(
            (code, done["status"].as_str()),
            (200, Some("withdrawn")),
            "{done}"
        );
    }
    assert_eq!(
        matches(&node.url, 7).await,
        0,
        "withdrawn hashes no longer match"
    );
    assert_eq!(
        node.size_of("hotline.example"),
        4,
        "two ADDs and two RETRACTs"
    );

    // One address's burst (14) is spent within a few more calls (11 so far); then refused.
    let mut refused = None;
    for _ in 0..4 {
        let (code, answer) = post(
            status.clone(),
            None,
            serde_json::json!({"case_id": id, "pin": pin}),
        )
        .await;
        if code == 429 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("the address runs out of its budget");
    assert_eq!(refused["code"], "resource_exhausted", "{refused}");
    assert_eq!(
        matches(&node.url, 8).await,
        0,
        "the node serves others meanwhile"
    );
    node.stop().await;

    // Review mode: the queue, approval, rejection.
    let dir = temp_dir();
    let node = TestNode::start(node_config(dir.path(), ReportMode::Review, 50)).await;
    let cases = format!("{}/report/api/cases", node.url);
    let (_, a) = post(
        cases.clone(),
        None,
        serde_json::json!({"signals": [pdq(1)]}),
    )
    .await;
    let (_, b) = post(
        cases.clone(),
        None,
        serde_json::json!({"signals": [pdq(2)], "context": "b"}),
    )
    .await;
    assert_eq!(a["status"], "queued");
    assert_eq!(
        node.size_of("hotline.example"),
        0,
        "nothing listed before review"
    );
    let queue_url = format!("{}/v1/reports", node.url);
    let (code, _) = curl(vec![queue_url.clone()]).await;
    assert_eq!(code, 401, "the queue needs a token");
    let (code, _) = curl([bearer(MATCHER).to_vec(), vec![queue_url.clone()]].concat()).await;
    assert_eq!(code, 403, "and the submit scope");
    let (code, queue) = curl([bearer(ANALYST).to_vec(), vec![queue_url.clone()]].concat()).await;
    assert_eq!(code, 200, "{queue}");
    let queue = json(&queue);
    assert_eq!(queue["cases"].as_array().unwrap().len(), 2);
    assert_eq!(queue["cases"][1]["context"], "b");
    let approve = format!("{}/v1/reports/approve", node.url);
    let (code, approved) = post(
        approve.clone(),
        Some(ANALYST),
        serde_json::json!({"case_id": a["case_id"], "labels": ["ncii", "reviewed"]}),
    )
    .await;
    assert_eq!(
        (code, approved["status"].as_str()),
        (200, Some("listed")),
        "{approved}"
    );
    assert_eq!(matches(&node.url, 1).await, 1);
    let (code, again) = post(
        approve.clone(),
        Some(ANALYST),
        serde_json::json!({"case_id": a["case_id"]}),
    )
    .await;
    assert_eq!(
        (code, again["code"].as_str()),
        (400, Some("failed_precondition")),
        "{again}"
    );
    let reject = format!("{}/v1/reports/reject", node.url);
    let (code, _) = post(
        reject.clone(),
        Some(ANALYST),
        serde_json::json!({"case_id": b["case_id"], "reason": " "}),
    )
    .await;
    assert_eq!(code, 400, "a rejection needs a reason");
    let (code, rejected) = post(
        reject,
        Some(ANALYST),
        serde_json::json!({"case_id": b["case_id"], "reason": "not an intimate image"}),
    )
    .await;
    assert_eq!(
        (code, rejected["status"].as_str()),
        (200, Some("rejected")),
        "{rejected}"
    );
    assert_eq!(
        matches(&node.url, 2).await,
        0,
        "a rejected case lists nothing"
    );
    let (_, seen) = post(
        format!("{}/report/api/status", node.url),
        None,
        serde_json::json!({"case_id": b["case_id"], "pin": b["pin"]}),
    )
    .await;
    assert_eq!(seen["status"], "rejected");
    node.stop().await;
}
