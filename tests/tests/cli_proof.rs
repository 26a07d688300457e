//! Offline proofs end to end (C2SP tlog-proof): hotline A lists hashes, platform P follows A;
//!
//! - `redline proof ORIGIN INDEX` against P (a relay, untrusted) writes a file that
//!   `redline audit --proof FILE` verifies with A's key alone, with no node running;
//! - the same file with one bit of the entry changed, with the signed note's root changed, or
//!   checked against another origin's key is refused (exit 1) saying why;
//! - `redline proof` refuses an index the signed checkpoint does not hold and an origin whose
//!   key it was not given;
//! - a Match at P asking for `proofs` returns, per hit, a proof that verifies against A's key
//!   and names the matched entry; without asking, none; `GET /v1/proof` gives the same
//!   text over HTTP;
//! - Go's own `golang.org/x/mod/sumdb/tlog` verifies the file too (see `redline_e2e::go`).

#[path = "cli_support.rs"]
mod support;

use rand::SeedableRng;
use redline_client::PlatformClient;
use redline_e2e::{eventually, federated_config, identity, reserve, temp_dir, trust_key, TestNode};
use redline_proto::checkpoint::OriginKey;
use redline_proto::entry::{self, Decoded};
use redline_proto::pb::{MatchRequest, Signal};
use redline_proto::proof::TlogProof;
use redline_server::config::Policy;
use std::time::Duration;
use support::{random_pdq, run};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_verify_offline_and_refuse_any_change() {
    let (da, dp, work) = (temp_dir(), temp_dir(), temp_dir());
    let ka = identity(da.path(), "hotline-a.example");
    let kb = identity(work.path(), "hotline-b.example");
    let ((la, ua), (lp, up)) = (reserve().await, reserve().await);
    let a = TestNode::start_on(
        la,
        federated_config("hotline-a.example", da.path(), &[], vec![], 100),
    )
    .await;
    let p = TestNode::start_on(
        lp,
        federated_config(
            "platform-p.example",
            dp.path(),
            &[&ua],
            vec![trust_key(&ka, Policy::Accept)],
            100,
        ),
    )
    .await;
    let key_a = ka.verifier_key();
    let key_b = kb.verifier_key();

    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let pdqs: Vec<String> = (0..12).map(|_| random_pdq(&mut rng)).collect();
    let mut args = vec!["submit", "--node", &ua, "--label", "ncii"];
    for h in &pdqs {
        args.extend(["--pdq", h.as_str()]);
    }
    args.extend(["--legal-basis", "consent withdrawn", "--case-ref", "C-19"]);
    run(&args).await.ok();
    eventually(LONG, "P holds A's 12 entries", || async {
        p.size_of("hotline-a.example") == 12
    })
    .await;

    // A proof fetched through P (which holds a copy, and is not trusted) verifies offline.
    let file = work.path().join("entry-7.tlog-proof");
    let file_s = file.to_str().unwrap();
    let r = run(&[
        "proof",
        "hotline-a.example",
        "7",
        "--node",
        &up,
        "--key",
        &key_a,
        "--out",
        file_s,
    ])
    .await
    .ok();
    assert!(r.stdout.contains("tree size: 12"), "{r:#?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("c2sp.org/tlog-proof@v1\n"),
        "a C2SP tlog-proof: {text}"
    );

    // Stop both nodes: what follows needs none.
    a.stop().await;
    p.stop().await;
    let r = run(&["audit", "--proof", file_s, "--key", &key_a, "--json"])
        .await
        .ok();
    let v = r.json();
    assert_eq!(v["ok"], true, "{r:#?}");
    assert_eq!(v["origin"], "hotline-a.example");
    assert_eq!(v["index"], 7);
    assert_eq!(v["tree_size"], 12);
    assert_eq!(v["entry"]["kind"], "ADD");
    assert_eq!(v["entry"]["value"], pdqs[7].as_str());
    assert_eq!(v["entry"]["case_ref"], "C-19");

    // One bit of the entry changed: the leaf no longer hashes into the signed root.
    let proof = TlogProof::parse(text.as_bytes()).unwrap();
    let ka_parsed = OriginKey::parse(&key_a).unwrap();
    let verified = proof.verify(&ka_parsed).unwrap();
    let mut entry_bytes = verified.entry.clone();
    let hash7 = hex::decode(&pdqs[7]).unwrap();
    let at = entry_bytes
        .windows(hash7.len())
        .position(|w| w == hash7.as_slice())
        .expect("the entry holds its hash");
    entry_bytes[at] ^= 0x01;
    let altered = TlogProof::new(
        entry_bytes,
        7,
        proof.hashes.clone(),
        proof.checkpoint.clone(),
    )
    .unwrap();
    let altered_file = work.path().join("altered.tlog-proof");
    std::fs::write(&altered_file, altered.to_bytes()).unwrap();
    let r = run(&[
        "audit",
        "--proof",
        altered_file.to_str().unwrap(),
        "--key",
        &key_a,
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("does not verify"), "{r:#?}");

    // The signed note's root line changed: its signature no longer holds.
    let root_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(verified.checkpoint.root.0)
    };
    let forged_root = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    assert!(text.contains(&root_b64), "the note carries the root");
    let forged = work.path().join("forged.tlog-proof");
    std::fs::write(&forged, text.replace(&root_b64, &forged_root)).unwrap();
    let r = run(&[
        "audit",
        "--proof",
        forged.to_str().unwrap(),
        "--key",
        &key_a,
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("forged.tlog-proof"), "{r:#?}");

    // Another origin's key only: the proof's origin has no key, and nothing is accepted.
    let r = run(&["audit", "--proof", file_s, "--key", &key_b])
        .await
        .fails(1);
    assert!(
        r.stderr
            .contains("no key given for origin \"hotline-a.example\""),
        "{r:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_refuses_what_it_cannot_prove_and_match_returns_proofs_per_hit() {
    let (da, dp) = (temp_dir(), temp_dir());
    let ka = identity(da.path(), "hotline-a.example");
    let ((la, ua), (lp, up)) = (reserve().await, reserve().await);
    let a = TestNode::start_on(
        la,
        federated_config("hotline-a.example", da.path(), &[], vec![], 100),
    )
    .await;
    let p = TestNode::start_on(
        lp,
        federated_config(
            "platform-p.example",
            dp.path(),
            &[&ua],
            vec![trust_key(&ka, Policy::Accept)],
            100,
        ),
    )
    .await;
    let key_a = ka.verifier_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let pdqs: Vec<String> = (0..5).map(|_| random_pdq(&mut rng)).collect();
    let mut args = vec!["submit", "--node", &ua];
    for h in &pdqs {
        args.extend(["--pdq", h.as_str()]);
    }
    run(&args).await.ok();
    eventually(LONG, "P holds A's 5 entries", || async {
        p.size_of("hotline-a.example") == 5
    })
    .await;

    // Index 5 is past the signed checkpoint of 5 entries.
    let r = run(&[
        "proof",
        "hotline-a.example",
        "5",
        "--node",
        &up,
        "--key",
        &key_a,
    ])
    .await
    .fails(1);
    assert!(r.stderr.contains("has 5 entries"), "{r:#?}");
    // No key for the origin: nothing is fetched or written.
    let r = run(&["proof", "hotline-a.example", "1", "--node", &up])
        .await
        .fails(1);
    assert!(r.stderr.contains("no key given for origin"), "{r:#?}");

    // Match at P with proofs: each hit carries one that verifies against A's key.
    let signal = Signal {
        signal_type: "pdq".into(),
        value: pdqs[3].clone(),
        quality: 100,
    };
    let mut platform = PlatformClient::connect(&up).await.unwrap();
    let asked = platform
        .match_request(MatchRequest {
            signals: vec![signal.clone()],
            proofs: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let hits = &asked.results[0].matches;
    assert_eq!(hits.len(), 1, "{asked:?}");
    let hit = &hits[0];
    assert_eq!((hit.origin.as_str(), hit.index), ("hotline-a.example", 3));
    let proof = TlogProof::parse(&hit.tlog_proof).expect("a tlog-proof per hit");
    let verified = proof.verify(&OriginKey::parse(&key_a).unwrap()).unwrap();
    assert_eq!(verified.index, 3);
    assert_eq!(verified.checkpoint.size, 5);
    match entry::decode_leaf(&verified.entry).unwrap().1 {
        Decoded::Add { add, .. } => assert_eq!(hex::encode(add.hash), pdqs[3]),
        other => panic!("an ADD, not {other:?}"),
    }
    // The same proof over HTTP (`GET /v1/proof`), verified offline like a file from
    // `redline proof`; an index past the signed tree is a 404 and a missing one a 400.
    let curl = |query: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}"])
            .arg(format!("{up}/v1/proof?{query}"))
            .output()
            .expect("curl runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_owned(), body.to_owned())
    };
    let (code, body) = curl("origin=hotline-a.example&index=2");
    assert_eq!(code, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["index"].as_u64(), v["tree_size"].as_u64()),
        (Some(2), Some(5))
    );
    let work = temp_dir();
    let file = work.path().join("http.tlog-proof");
    std::fs::write(&file, v["tlog_proof"].as_str().unwrap()).unwrap();
    let r = run(&[
        "audit",
        "--proof",
        file.to_str().unwrap(),
        "--key",
        &key_a,
        "--json",
    ])
    .await
    .ok();
    assert_eq!(r.json()["entry"]["value"], pdqs[2].as_str());
    let (code, body) = curl("origin=hotline-a.example&index=5");
    assert_eq!(code, "404", "{body}");
    let (code, body) = curl("origin=hotline-a.example");
    assert_eq!(code, "400", "{body}");
    let (code, _) = curl("origin=nobody.example&index=0");
    assert_eq!(code, "404");

    // Not asked: no proof, and no work spent on one.
    let plain = platform
        .match_request(MatchRequest {
            signals: vec![signal],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(plain.results[0].matches[0].tlog_proof.is_empty());
    a.stop().await;
    p.stop().await;
}

/// The same proof read by Go's own `tlog.CheckRecord` and `note.Open` (`tests/go/tlogverify
/// -proof`): accepted as written, refused with one bit of the entry changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_verifies_a_proof_offline() {
    let (da, work) = (temp_dir(), temp_dir());
    let Some(go) = redline_e2e::go::build_go_verifier(work.path()) else {
        return;
    };
    let a = TestNode::start_in("hotline-a.example", da.path()).await;
    let key = a.node.public_key().verifier_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let pdqs: Vec<String> = (0..9).map(|_| random_pdq(&mut rng)).collect();
    let mut args = vec!["submit", "--node", &a.url];
    for h in &pdqs {
        args.extend(["--pdq", h.as_str()]);
    }
    run(&args).await.ok();
    let file = work.path().join("entry-5.tlog-proof");
    run(&[
        "proof",
        "hotline-a.example",
        "5",
        "--node",
        &a.url,
        "--key",
        &key,
        "--out",
        file.to_str().unwrap(),
    ])
    .await
    .ok();
    a.stop().await;

    let go_check = |path: &std::path::Path| {
        std::process::Command::new(&go)
            .args(["-vkey", &key, "-proof"])
            .arg(path)
            .output()
            .expect("tlogverify runs")
    };
    let out = go_check(&file);
    assert!(out.status.success(), "Go refused the proof: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["origin"], "hotline-a.example");
    assert_eq!(
        (v["size"].as_u64(), v["index"].as_u64()),
        (Some(9), Some(5))
    );
    let entry = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v["entry"].as_str().unwrap())
            .unwrap()
    };
    let hash5 = hex::decode(&pdqs[5]).unwrap();
    assert!(entry.windows(32).any(|w| w == hash5.as_slice()));

    let proof = TlogProof::parse(&std::fs::read(&file).unwrap()).unwrap();
    let mut altered = entry.clone();
    let at = altered
        .windows(32)
        .position(|w| w == hash5.as_slice())
        .unwrap();
    altered[at] ^= 0x80;
    let bad = TlogProof::new(altered, 5, proof.hashes.clone(), proof.checkpoint.clone()).unwrap();
    let bad_file = work.path().join("altered.tlog-proof");
    std::fs::write(&bad_file, bad.to_bytes()).unwrap();
    let out = go_check(&bad_file);
    assert!(!out.status.success(), "Go accepted an altered entry");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not in the signed tree"),
        "{out:?}"
    );
}
