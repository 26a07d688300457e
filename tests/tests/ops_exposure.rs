//! Start-up refusals of the real binary: a listener off loopback needs tokens and TLS (or
//! `--insecure`), and nothing is created before that check; `--hash-token` prints the hash to
//! put in `[[tokens]] sha256`.

#[path = "ops_support.rs"]
mod ops_support;

use redline_e2e::temp_dir;
use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};

fn run(args: &[&str]) -> Output {
    ops_support::node_cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redline-node")
}

#[test]
fn non_loopback_listen_without_tokens_and_tls_refuses_to_start() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let out = run(&[
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("no [[tokens]]"), "{stderr}");
    assert!(stderr.contains("no [tls]"), "{stderr}");
    assert!(stderr.contains("--insecure"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!data.exists(), "nothing is created before the check");

    // Tokens alone are not enough: hash lists would still travel in clear text.
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:0\"\ndata_dir = \"{}\"\n[[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n",
            data.display(),
            redline_server::grpc::auth::hash_token("t")
        ),
    )
    .unwrap();
    let out = run(&["--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no [tls]"), "{stderr}");
    assert!(!stderr.contains("no [[tokens]]"), "{stderr}");
}

#[test]
fn insecure_flag_allows_it_and_sigterm_stops_it() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut child = ops_support::node_cmd()
        .args(["--listen", "0.0.0.0:0", "--insecure", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "exited early");
        if line.starts_with("listening on ") {
            break;
        }
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("insecure"), "the risk is logged: {stderr}");
    assert!(data.join("identity.key").exists());
}

#[test]
fn hash_token_prints_the_sha256() {
    // echo -n s3cret | sha256sum
    let expected = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
    let out = run(&["--hash-token", "s3cret"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    let mut child = ops_support::node_cmd()
        .args(["--hash-token", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}
