#!/usr/bin/env bash
# PDQ matching benchmark: redline-index vs faiss (IndexBinaryFlat and
# IndexBinaryMultiHash), single thread, radius 31 (faiss radius 32, strict).
#
#   server/index/benches/run-match-bench.sh            # all scenarios (~10 min)
#   SCENARIOS=uniform-1m server/index/benches/run-match-bench.sh
#   SCENARIOS=uniform-100m server/index/benches/run-match-bench.sh  # issue 17
#
# Steps: (1) Rust writes seeded hashes, queries and brute-force truth to
# $BENCH_DIR; (2) a virtualenv with faiss-cpu + numpy from PyPI times faiss
# on those files; (3) Rust times redline-index on the same files, checks
# every result against the truth and prints the table (also saved to
# $BENCH_DIR/report.md). Peak memory is about 3 GiB (faiss multi-hash at
# 10M); each step runs alone. Takes about 10 minutes on 2 cores.
#
# uniform-100m (issue 17; not in the default set) needs 3.2 GB of disk in
# $BENCH_DIR and takes ~7 minutes: no brute-force truth is written; faiss
# IndexBinaryFlat (6.3 GiB peak, the memory-mapped input counted) times the
# first FLAT_QUERIES_100M queries (~0.4 s each) and its results are the
# truth; the Rust step reads the input a segment at a time, so its peak
# (~13.5 GiB) is the index itself plus the arrays it regrows on the first
# insert; then INSERTS_100M hashes go into the 100M index in 10,000-entry
# batches to time the write lock.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/redline-match-bench}"
BENCH_VENV="${BENCH_VENV:-${TMPDIR:-/tmp}/redline-faiss-venv}"
SCENARIOS="${SCENARIOS:-uniform-1m,clustered-1m,uniform-10m}"
QUERIES="${QUERIES:-1000}"
# At 10M faiss flat costs ~50 ms and faiss multi-hash ~100 ms a query (and
# ~3 min to build): time the first N queries only, to stay under 15 minutes.
FLAT_QUERIES_10M="${FLAT_QUERIES_10M:-200}"
FLAT_QUERIES_100M="${FLAT_QUERIES_100M:-20}"
INSERTS_100M="${INSERTS_100M:-1000000}"
# A separate target dir: RUSTFLAGS below would otherwise rebuild everything.
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$repo/target/match-bench}"
# faiss-cpu wheels pick their AVX2 build at run time; give Rust the same ISA
# (popcnt, AVX2) so the comparison is like for like.
if grep -qw avx2 /proc/cpuinfo && grep -qw bmi2 /proc/cpuinfo; then
  export RUSTFLAGS="${RUSTFLAGS:--C target-cpu=x86-64-v3}"
else
  export RUSTFLAGS="${RUSTFLAGS:--C target-cpu=x86-64-v2}"
fi

mkdir -p "$BENCH_DIR"
if ! "$BENCH_VENV/bin/python" -c 'import faiss, numpy' 2>/dev/null; then
  echo "== creating virtualenv $BENCH_VENV (faiss-cpu, numpy from PyPI)" >&2
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install --quiet --upgrade pip
  "$BENCH_VENV/bin/pip" install --quiet faiss-cpu numpy
fi

bench() {
  (cd "$repo" && cargo bench --quiet -p redline-index --bench match_vs_faiss -- "$@")
}

start=$(date +%s)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building and generating data in $BENCH_DIR" >&2
bench gen --dir "$BENCH_DIR" --scenarios "$SCENARIOS" --queries "$QUERIES"
echo "== faiss" >&2
"$BENCH_VENV/bin/python" "$here/faiss_bench.py" --dir "$BENCH_DIR" --scenarios "$SCENARIOS" \
  --flat-queries-10m "$FLAT_QUERIES_10M" --multihash-queries-10m "$FLAT_QUERIES_10M" \
  --flat-queries-100m "$FLAT_QUERIES_100M" >&2
echo "== redline-index" >&2
{
  echo "# redline-index vs faiss, PDQ-sized (256-bit) hashes"
  echo
  echo "- host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average at start: $load_before (the machine is shared: compare p50 ratios when it is busy)"
  echo "- RUSTFLAGS: $RUSTFLAGS; faiss $("$BENCH_VENV/bin/python" -c 'import faiss; print(faiss.__version__)') with omp_set_num_threads(1)"
  echo "- ours: queries/s = timed queries / wall time of a loop of single queries; faiss: one batched range_search call (no Python overhead); p50/p99 from single-query calls"
  echo "- recall and 'exact sets' are checked per query against a brute-force scan"
  bench run --dir "$BENCH_DIR" --scenarios "$SCENARIOS" --scan-queries "$FLAT_QUERIES_10M" \
    --inserts "$INSERTS_100M"
  echo
  echo "- total benchmark wall time: $(( $(date +%s) - start )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$BENCH_DIR/report.md"
