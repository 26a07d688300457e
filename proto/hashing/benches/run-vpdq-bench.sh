#!/bin/sh
# vPDQ speed vs Meta's reference (PyPI vpdq), same videos, same samplings, same run, one CPU.
# Creates a virtualenv outside the repo (default $TMPDIR/redline-vpdq-venv, override with
# REDLINE_VPDQ_VENV) with PyPI vpdq 0.2.5, which has no wheel: pip builds it from source
# against the system's FFmpeg libraries, so it needs (Debian)
#   apt-get install python3-venv python3-dev g++ cmake pkg-config \
#     libavcodec-dev libavformat-dev libavdevice-dev libavfilter-dev libavutil-dev \
#     libswscale-dev libswresample-dev
# and ffmpeg + util-linux (prlimit) for our side. Then runs the Rust bench, which calls
# benches/vpdq_reference_bench.py with that Python. Extra environment: see the bench's header.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${REDLINE_VPDQ_VENV:-${TMPDIR:-/tmp}/redline-vpdq-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import vpdq' 2>/dev/null; then
    missing=""
    for lib in libavcodec libavformat libavdevice libavfilter libavutil libswscale libswresample; do
        pkg-config --exists "$lib" 2>/dev/null || missing="$missing $lib-dev"
    done
    for tool in cmake g++ pkg-config; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
    done
    if [ -n "$missing" ]; then
        echo "building PyPI vpdq needs: apt-get install python3-venv python3-dev$missing" >&2
        exit 1
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet vpdq==0.2.5
fi
export REDLINE_VPDQ_PYTHON="$venv/bin/python"
pin=""
if command -v taskset >/dev/null 2>&1; then
    pin="taskset -c ${REDLINE_BENCH_CPU:-0}"
fi
cd "$here/../../.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Build first (all cores), then run pinned.
cargo bench -p redline-hashing --bench vpdq_vs_reference --no-run
exec $pin cargo bench -p redline-hashing --bench vpdq_vs_reference
