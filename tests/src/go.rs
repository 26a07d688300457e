//! The independent verifier built on Go's own transparency-log packages
//! (`golang.org/x/mod/sumdb/tlog` and `note`, `tests/go/tlogverify`), shared by the tests that
//! show Redline's logs and proofs read by someone else's implementation.
//!
//! Go is found at `$REDLINE_GO` or on `PATH`, its packages at `$REDLINE_GOPATH` (default
//! Debian's `/usr/share/gocode`). `.ci/run` installs both and sets `REDLINE_REQUIRE_GO=1`,
//! which turns their absence into a failure; elsewhere the Go checks are skipped, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/go/tlogverify` built with the Go toolchain, or `None` (with the reason printed)
/// when there is none and none is required.
pub fn build_go_verifier(out: &Path) -> Option<PathBuf> {
    let go = std::env::var_os("REDLINE_GO").unwrap_or_else(|| "go".into());
    let gopath = std::env::var_os("REDLINE_GOPATH").unwrap_or_else(|| "/usr/share/gocode".into());
    let has_go = Command::new(&go)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let has_mod = Path::new(&gopath)
        .join("src/golang.org/x/mod/sumdb/tlog")
        .is_dir();
    if !(has_go && has_mod) {
        assert!(
            std::env::var_os("REDLINE_REQUIRE_GO").is_none(),
            "REDLINE_REQUIRE_GO is set but Go ({go:?}: {has_go}) or golang.org/x/mod under \
             {gopath:?} ({has_mod}) is missing"
        );
        eprintln!(
            "SKIPPED the Go verifier: needs `go` and golang.org/x/mod \
             (apt install golang-go golang-golang-x-mod-dev; .ci/run does)"
        );
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go/tlogverify");
    let bin = out.join("tlogverify");
    let built = Command::new(&go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        // GOPATH mode: the packages come from Debian's tree, nothing from the network.
        .env("GOPATH", &gopath)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", out.join("gocache"))
        .output()
        .expect("go build runs");
    assert!(built.status.success(), "go build: {built:?}");
    Some(bin)
}
