#!/bin/sh
# PDQ speed vs the reference C++ hasher (PyPI pdqhash), same JPEG, same run, one CPU.
# Creates a virtualenv outside the repo (default $TMPDIR/redline-pdq-bench-venv, override with
# REDLINE_PDQ_VENV) with pdqhash, numpy and pillow from PyPI, then runs the Rust bench, which
# calls benches/pdq_reference_bench.py with that Python.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${REDLINE_PDQ_VENV:-${TMPDIR:-/tmp}/redline-pdq-bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pdqhash, numpy, PIL' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pdqhash numpy pillow
fi
export REDLINE_PDQ_PYTHON="$venv/bin/python"
pin=""
if command -v taskset >/dev/null 2>&1; then
    pin="taskset -c ${REDLINE_BENCH_CPU:-0}"
fi
cd "$here/../../.."
# Build first (all cores), then run pinned to one CPU.
cargo bench -p redline-hashing --bench pdq_vs_reference --no-run
exec $pin cargo bench -p redline-hashing --bench pdq_vs_reference
