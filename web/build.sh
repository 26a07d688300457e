#!/usr/bin/env bash
# Builds the report site into target/web/: the pages of web/report/ and, beside them, the
# browser's image hasher (web/wasm compiled to wasm32 as report/redline_web.wasm), so victims'
# images are hashed in the page exactly as `redline hash` hashes them.
#
#   web/build.sh            # REDLINE_SHARED: the shared folder (default: ../shared beside the repo)
#
# The wasm build uses ../shared/wasm/cargo-wasm (the rustup toolchain here has no wasm32 std) and
# its own target directory, target/wasm, so it never invalidates or locks the native build.
set -euo pipefail
start=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${REDLINE_SHARED:-$ROOT/../shared}"
cargo_wasm="$SHARED/wasm/cargo-wasm"
[ -x "$cargo_wasm" ] || { echo "build.sh: $cargo_wasm not found (set REDLINE_SHARED)" >&2; exit 1; }

cd "$ROOT"
CARGO_TARGET_DIR="$ROOT/target/wasm" "$cargo_wasm" build --locked --profile wasm -p redline-web-wasm
wasm="$ROOT/target/wasm/wasm32-unknown-unknown/wasm/redline_web_wasm.wasm"

site="$ROOT/target/web"
rm -rf "$site/report"
mkdir -p "$site/report"
cp -R "$ROOT/web/report/." "$site/report/"
cp "$wasm" "$site/report/redline_web.wasm"
# The hotline's console (/console/): its own pages, the same hasher for search-by-image.
rm -rf "$site/console"
mkdir -p "$site/console"
cp -R "$ROOT/web/console/." "$site/console/"
cp "$ROOT/web/report/hashing.js" "$site/console/hashing.js"
cp "$wasm" "$site/console/redline_web.wasm"

bytes=$(stat -c %s "$site/report/redline_web.wasm")
gz=$(gzip -9c "$site/report/redline_web.wasm" | wc -c)
echo "site: $site"
echo "wasm: report/redline_web.wasm $bytes bytes ($((bytes / 1024)) KiB; $((gz / 1024)) KiB gzipped)"
echo "time: $((SECONDS - start)) s"
