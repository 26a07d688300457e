#!/usr/bin/env bash
# Short, bounded fuzz run for CI (and for anyone): builds every cargo-fuzz target in this
# directory once, then runs each for FUZZ_SECONDS from a temporary copy of its committed seed
# corpus plus its kept regression inputs, with a heap bound, a per-input timeout and an RSS
# limit. Exits non-zero if any target crashes, panics, leaks, times out or runs out of memory;
# the input that did it is kept in $FUZZ_ARTIFACTS/<target>/ (default tests/fuzz/artifacts/).
#
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
#
# Environment (all optional):
#   FUZZ_SECONDS       seconds per target (default 30)
#   FUZZ_TARGETS       space-separated targets (default: all, from `cargo fuzz list`)
#   FUZZ_SANITIZER     none (default) or address; see README.md for why none
#   FUZZ_RSS_LIMIT_MB  libFuzzer -rss_limit_mb (default 1024)
#   FUZZ_TIMEOUT       libFuzzer -timeout, seconds per input (default 10)
#   FUZZ_ARTIFACTS     where failing inputs go (default tests/fuzz/artifacts)
#   CARGO_TARGET_DIR   builds go to $CARGO_TARGET_DIR/fuzz (default tests/fuzz/target)
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$PWD

seconds=${FUZZ_SECONDS:-30}
sanitizer=${FUZZ_SANITIZER:-none}
rss_limit=${FUZZ_RSS_LIMIT_MB:-1024}
timeout=${FUZZ_TIMEOUT:-10}
artifacts=${FUZZ_ARTIFACTS:-$fuzz_dir/artifacts}
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  target_dir=$CARGO_TARGET_DIR/fuzz
else
  target_dir=$fuzz_dir/target
fi
export RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0

start=$SECONDS
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# 16 codegen units instead of cargo-fuzz's default 1: the build (the whole node crate, with
# coverage instrumentation) dominates a short run, and fewer inputs per second matter less.
build_flags=(--sanitizer "$sanitizer" --codegen-units 16 --target-dir "$target_dir")
echo "== build (sanitizer: $sanitizer)"
cargo fuzz build "${build_flags[@]}"
bin_dir=$target_dir/x86_64-unknown-linux-gnu/release
built=$SECONDS

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

max_len() {
  case $1 in
    image_hash) echo 65536 ;;
    config_parse) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

failed=()
summary=()
for t in $targets; do
  corpus=$work/corpus-$t
  mkdir -p "$corpus" "$artifacts/$t"
  # The committed corpus is never written to: libFuzzer adds what it finds to this copy.
  cp corpus/"$t"/* "$corpus"/
  if [[ -d regressions/$t ]] && compgen -G "regressions/$t/*" >/dev/null; then
    cp regressions/"$t"/* "$corpus"/
  fi
  log=$work/$t.log
  echo "== fuzz $t for ${seconds}s"
  set +e
  "$bin_dir/$t" "$corpus" \
    -max_total_time="$seconds" \
    -timeout="$timeout" \
    -rss_limit_mb="$rss_limit" \
    -malloc_limit_mb=256 \
    -max_len="$(max_len "$t")" \
    -artifact_prefix="$artifacts/$t/" \
    -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n -E 's/^stat::number_of_executed_(runs|units): *//p' "$log" | tail -n 1)
  line="$t: ${runs:-?} inputs executed in ${seconds}s, corpus $(find "$corpus" -type f | wc -l) inputs"
  if [[ $rc -ne 0 ]]; then
    line="$line: FAILED (exit $rc)"
    failed+=("$t")
    echo "---- last lines of the $t log"
    tail -n 80 "$log"
    echo "---- kept input(s) in $artifacts/$t/:"
    ls -l "$artifacts/$t/"
    echo "reproduce: $bin_dir/$t $artifacts/$t/<file>"
    echo "keep it as a regression: cp $artifacts/$t/<file> tests/fuzz/regressions/$t/"
  else
    grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true
  fi
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary (build $((built - start))s, total $((SECONDS - start))s)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz targets failed: ${failed[*]}"
  exit 1
fi
