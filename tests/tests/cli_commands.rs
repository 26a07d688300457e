//! The `redline` binary end to end against live nodes: help texts, submit/retract/status,
//! local hashing, export -> import between two nodes, and errors that say what to do.

#[path = "cli_support.rs"]
mod support;

use rand::SeedableRng;
use redline_e2e::{temp_dir, TestNode};
use redline_proto::checkpoint::OriginKey;
use std::collections::BTreeSet;
use support::{random_pdq, run, run_with, write_image};

const SUBCOMMANDS: [&str; 13] = [
    "hash",
    "submit",
    "retract",
    "match",
    "status",
    "audit",
    "proof",
    "export",
    "import",
    "trail",
    "resume",
    "completions",
    "manpage",
];

/// Completions and man pages come from the same clap definitions as `--help`: bash parses
/// the script and it knows every command; each command has its page, the top one lists them
/// all, and an unknown command is refused by name.
#[test]
fn completions_and_man_pages_cover_every_command() {
    let out = support::redline()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    let dir = temp_dir();
    let file = dir.path().join("redline.bash");
    std::fs::write(&file, &script).unwrap();
    let parsed = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "bash -n: {parsed:?}");
    for sub in SUBCOMMANDS {
        assert!(
            script.contains(&format!("cmd=\"redline__subcmd__{sub}\"")),
            "completes {sub}"
        );
    }
    let top = support::redline().arg("manpage").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(
        top.starts_with(".ie") && top.contains(".TH redline 1"),
        "{top}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            top.contains(&format!("redline\\-{sub}(1)")),
            "lists {sub}: {top}"
        );
        let out = support::redline().args(["manpage", sub]).output().unwrap();
        assert!(out.status.success(), "manpage {sub}");
        let page = String::from_utf8(out.stdout).unwrap();
        assert!(
            page.contains(&format!(".TH redline-{sub} 1")) && page.contains(".SH SYNOPSIS"),
            "{page}"
        );
    }
    let out = support::redline()
        .args(["manpage", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command \"nope\""));
}

#[test]
fn every_help_has_an_example() {
    let top = support::redline().arg("--help").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(top.contains("Examples:"), "{top}");
    for sub in SUBCOMMANDS {
        assert!(top.contains(sub), "top-level help lists {sub}");
        let out = support::redline().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("Example") && text.contains(&format!("redline {sub}")),
            "{sub} --help has an example:\n{text}"
        );
        assert!(
            text.contains("--node") && text.contains("--token"),
            "{sub}: {text}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_bad_hex_says_what_a_hash_is() {
    let out = support::redline().arg("submit").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = support::redline()
        .args(["submit", "--pdq", "abc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("64 hex digits"), "{err}");
    let out = support::redline().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_and_bad_url_are_explained() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = run(&["status", "--node", &url]).await.fails(1);
    assert!(r.stderr.starts_with("error: "), "{r:#?}");
    assert!(r.stderr.contains("cannot reach the node"), "{r:#?}");
    assert!(r.stderr.contains("REDLINE_NODE"), "{r:#?}");
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "one line, no Debug dump: {r:#?}"
    );

    let r = run(&["status", "--node", "127.0.0.1:7443"]).await.fails(1);
    assert!(r.stderr.contains("not a valid node URL"), "{r:#?}");
    assert!(r.stderr.contains("http://127.0.0.1:7443"), "{r:#?}");

    // REDLINE_NODE is honoured, and --node may come before the subcommand.
    let r = run_with(&["status"], &[("REDLINE_NODE", &url)])
        .await
        .fails(1);
    assert!(r.stderr.contains(&url), "{r:#?}");
    let r = run(&["--node", &url, "status"]).await.fails(1);
    assert!(r.stderr.contains(&url), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_retract_status() {
    let dir = temp_dir();
    let node = TestNode::start_in("hotline-a.example", dir.path()).await;
    let url = node.url.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (p1, p2) = (random_pdq(&mut rng), random_pdq(&mut rng));
    let md5 = "0123456789abcdef0123456789abcdef";

    let r = run(&[
        "submit",
        "--node",
        &url,
        "--token",
        "t0k3n",
        "--pdq",
        &p1,
        "--pdq",
        &p2,
        "--md5",
        md5,
        "--label",
        "ncii",
        "--legal-basis",
        "consent withdrawn",
        "--case-ref",
        "C-1",
        "--json",
    ])
    .await
    .ok();
    let v = r.json();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["index"], 0);
    assert_eq!(entries[2]["signal_type"], "md5");
    assert_eq!(v["checkpoint"]["size"], 3);

    // Human output; a duplicate keeps its index; upper-case hex is accepted.
    let r = run(&["submit", "--node", &url, "--pdq", &p1.to_uppercase()])
        .await
        .ok();
    assert!(r.stdout.contains("already listed"), "{r:#?}");
    let words: Vec<&str> = r.stdout.split_whitespace().collect();
    assert!(words.windows(2).any(|w| w == ["index", "0"]), "{r:#?}");

    // An image file is hashed locally and its PDQ submitted.
    let img = dir.path().join("photo.png");
    write_image(&img, 3);
    let hashed = run(&["hash", img.to_str().unwrap()]).await.ok();
    let line = hashed.stdout.trim().to_owned();
    let parts: Vec<&str> = line.split(',').collect();
    assert_eq!(parts.len(), 3, "pdq,quality,file: {line}");
    assert_eq!(parts[0].len(), 64);
    assert_eq!(parts[2], img.to_str().unwrap());
    let r = run(&[
        "submit",
        img.to_str().unwrap(),
        "--node",
        &url,
        "--label",
        "ncii",
        "--json",
    ])
    .await
    .ok();
    let v = r.json();
    assert_eq!(v["entries"][0]["value"], parts[0]);
    assert_eq!(v["entries"][0]["index"], 3);

    let r = run(&["retract", "1", "--reason", "false positive", "--node", &url])
        .await
        .ok();
    assert!(r.stdout.contains("retracted index 1"), "{r:#?}");
    assert!(r.stdout.contains("index 4"), "{r:#?}");
    // Retracting it again is refused with the node's reason, exit code 1.
    let r = run(&["retract", "1", "--reason", "again", "--node", &url])
        .await
        .fails(1);
    assert!(
        r.stderr.contains("error: the node refused the change"),
        "{r:#?}"
    );
    // --reason is required (usage error).
    run(&["retract", "0", "--node", &url]).await.fails(2);

    let r = run(&["status", "--node", &url, "--json"]).await.ok();
    let v = r.json();
    assert_eq!(v["origin"], "hotline-a.example");
    assert_eq!(v["verifier_key"], node.node.public_key().verifier_key());
    let own = &v["origins"][0];
    assert_eq!(own["policy"], "own");
    assert_eq!(own["tree_size"], 5);
    assert_eq!(own["active_entries"], 3);
    assert_eq!(v["evidence_count"], 0);
    let r = run(&["status", "--node", &url]).await.ok();
    assert!(r.stdout.contains("hotline-a.example"), "{r:#?}");
    let words: Vec<&str> = r.stdout.split_whitespace().collect();
    assert!(words.windows(2).any(|w| w == ["size", "5"]), "{r:#?}");

    // --output writes to a file instead of stdout.
    let out = dir.path().join("status.json");
    let r = run(&[
        "status",
        "--node",
        &url,
        "--json",
        "-o",
        out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert!(r.stdout.is_empty());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(saved["origin"], "hotline-a.example");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_reports_bad_files_and_goes_on() {
    let dir = temp_dir();
    let good = dir.path().join("good.png");
    write_image(&good, 7); // PDQ quality 71

    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"not an image").unwrap();
    let r = run(&[
        "hash",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--json",
    ])
    .await
    .fails(1);
    let v = r.json();
    assert_eq!(v[0]["pdq"].as_str().unwrap().len(), 64);
    assert!(v[0]["quality"].as_u64().unwrap() > 50, "{v}");
    assert!(v[1]["error"].is_string(), "{v}");
    assert!(r.stderr.contains("bad.jpg"), "{r:#?}");
}

/// The active set of an origin as `(type, hex)`, read through the Audit service.
async fn active_set(url: &str, key: &OriginKey) -> BTreeSet<(String, String)> {
    let (_, leaves) = redline_e2e::audited_log(url, key, None).await.unwrap();
    let leaves: Vec<(u64, Vec<u8>)> = (0..).zip(leaves).collect();
    let hashes = redline_client::lists::hashes_from_leaves(&leaves).unwrap();
    hashes
        .into_iter()
        .filter(|h| h.active())
        .map(|h| (h.signal_type, h.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_reproduces_the_active_set() {
    let (da, db, dc) = (temp_dir(), temp_dir(), temp_dir());
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let b = TestNode::start_in("hotline-b.example", db.path()).await;
    let c = TestNode::start_in("hotline-c.example", dc.path()).await;
    let key_a = a.node.public_key().clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);

    // 2,500 PDQs (so import needs three batches) plus a few MD5s, some retracted.
    let pdqs: Vec<String> = (0..2500).map(|_| random_pdq(&mut rng)).collect();
    let csv: String = std::iter::once("signal_type,signal_str,collab,category,tags".to_owned())
        .chain(
            pdqs.iter()
                .map(|p| format!("pdq,{p},seed,POSITIVE_CLASS,ncii")),
        )
        .chain((0..5).map(|i| format!("md5,{:032x},seed,POSITIVE_CLASS,ncii csam", i + 1)))
        .collect::<Vec<_>>()
        .join("\n");
    let seed = da.path().join("seed.csv");
    std::fs::write(&seed, csv).unwrap();
    let r = run(&[
        "import",
        "--node",
        &a.url,
        "--format",
        "threatexchange-csv",
        seed.to_str().unwrap(),
        "--legal-basis",
        "court order",
        "--json",
    ])
    .await
    .ok();
    let v = r.json();
    assert_eq!(v["added"], 2505, "{v}");
    for i in [0, 7, 2000, 2501] {
        run(&[
            "retract",
            &i.to_string(),
            "--reason",
            "fp",
            "--node",
            &a.url,
        ])
        .await
        .ok();
    }
    let expected = active_set(&a.url, &key_a).await;
    assert_eq!(expected.len(), 2501);

    // CSV: a -> b.
    let csv_out = da.path().join("a.csv");
    run(&[
        "export",
        "--node",
        &a.url,
        "--format",
        "threatexchange-csv",
        "--key",
        &key_a.verifier_key(),
        "-o",
        csv_out.to_str().unwrap(),
    ])
    .await
    .ok();
    let text = std::fs::read_to_string(&csv_out).unwrap();
    assert!(text.starts_with("signal_type,signal_str,collab,category,tags\n"));
    assert!(
        text.contains(",hotline-a.example,POSITIVE_CLASS,ncii csam"),
        "tags kept"
    );
    let r = run(&[
        "import",
        "--node",
        &b.url,
        "--format",
        "threatexchange-csv",
        csv_out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert!(r.stdout.contains("added 2501"), "{r:#?}");
    let key_b = b.node.public_key().clone();
    assert_eq!(active_set(&b.url, &key_b).await, expected);
    // Importing again adds nothing.
    let r = run(&[
        "import",
        "--node",
        &b.url,
        "--format",
        "threatexchange-csv",
        csv_out.to_str().unwrap(),
        "--json",
    ])
    .await
    .ok();
    assert_eq!(r.json()["added"], 0);
    assert_eq!(r.json()["already_listed"], 2501);

    // StopNCII JSON: a -> c carries the PDQs (with Withdrawn ones skipped on import).
    let json_out = da.path().join("a.json");
    let r = run(&[
        "export",
        "--node",
        &a.url,
        "--format",
        "stopncii-json",
        "-o",
        json_out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert!(r.stderr.contains("warning: no key given"), "{r:#?}");
    assert!(
        r.stderr.contains("left out 5"),
        "md5 has no StopNCII type: {r:#?}"
    );
    let page: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    assert_eq!(page["count"], 2500);
    let withdrawn = page["hashRecords"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["hashStatus"] == "Withdrawn")
        .count();
    assert_eq!(withdrawn, 3);
    let r = run(&[
        "import",
        "--node",
        &c.url,
        "--format",
        "stopncii-json",
        json_out.to_str().unwrap(),
        "--json",
    ])
    .await
    .ok();
    assert_eq!(r.json()["added"], 2497);
    assert_eq!(r.json()["skipped_not_active"], 3);
    let key_c = c.node.public_key().clone();
    let pdq_only: BTreeSet<_> = expected
        .iter()
        .filter(|(t, _)| t == "pdq")
        .cloned()
        .collect();
    assert_eq!(active_set(&c.url, &key_c).await, pdq_only);

    // A malformed file is refused as a whole, naming the line; nothing is sent.
    let bad = da.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!("signal_type,signal_str\npdq,{}\npdq,xyz\n", pdqs[1]),
    )
    .unwrap();
    let r = run(&[
        "import",
        "--node",
        &c.url,
        "--format",
        "threatexchange-csv",
        bad.to_str().unwrap(),
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("line 3"), "{r:#?}");
    assert!(r.stderr.contains("nothing was sent"), "{r:#?}");

    a.stop().await;
    b.stop().await;
    c.stop().await;
}
