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
#   FUZZ_JOBS          targets fuzzed at the same time (default: number of CPUs)
#   FUZZ_OPT_LEVEL     opt-level of the build (default 1: builds faster; 3 for long runs)
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
  export PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
fi
cargo fuzz --version

# The build (the whole node crate, instrumented) dominates a short run, so it is made cheaper
# than cargo-fuzz's default (opt-level 3, 1 codegen unit) at some cost in inputs per second.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=${FUZZ_OPT_LEVEL:-1}
build_flags=(--sanitizer "$sanitizer" --codegen-units 16 --target-dir "$target_dir")
echo "== build (sanitizer: $sanitizer, opt-level $CARGO_PROFILE_RELEASE_OPT_LEVEL)"
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

# Runs one target; its log and status go to $work/<target>.{log,rc}.
fuzz_one() {
  local t=$1 corpus=$work/corpus-$1
  mkdir -p "$corpus" "$artifacts/$t"
  # The committed corpus is never written to: libFuzzer adds what it finds to this copy.
  cp corpus/"$t"/* "$corpus"/
  if compgen -G "regressions/$t/*" >/dev/null; then
    cp regressions/"$t"/* "$corpus"/
  fi
  local rc=0
  "$bin_dir/$t" "$corpus" \
    -max_total_time="$seconds" \
    -timeout="$timeout" \
    -rss_limit_mb="$rss_limit" \
    -malloc_limit_mb=256 \
    -max_len="$(max_len "$t")" \
    -artifact_prefix="$artifacts/$t/" \
    -print_final_stats=1 \
    >"$work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}

jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
echo "== fuzz each target for ${seconds}s, $jobs_max at a time: $(echo $targets)"
for t in $targets; do
  while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do
    wait -n || true
  done
  fuzz_one "$t" &
done
wait

failed=()
summary=()
for t in $targets; do
  log=$work/$t.log
  rc=$(cat "$work/$t.rc" 2>/dev/null || echo "?")
  runs=$(sed -n -E 's/^stat::number_of_executed_(runs|units): *//p' "$log" | tail -n 1)
  line="$t: ${runs:-?} inputs executed in ${seconds}s, corpus $(find "$work/corpus-$t" -type f | wc -l) inputs"
  if [[ $rc != 0 ]]; then
    line="$line: FAILED (exit $rc)"
    failed+=("$t")
    echo "---- last lines of the $t log"
    tail -n 80 "$log"
    echo "---- kept input(s) in $artifacts/$t/:"
    ls -l "$artifacts/$t/"
    echo "reproduce: $bin_dir/$t $artifacts/$t/<file>"
    echo "keep it as a regression: cp $artifacts/$t/<file> tests/fuzz/regressions/$t/"
  fi
  summary+=("$line")
done

echo "== fuzz summary (build $((built - start))s, total $((SECONDS - start))s)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz targets failed: ${failed[*]}"
  exit 1
fi
