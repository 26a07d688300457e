#!/usr/bin/env python3
"""Times Meta's reference vPDQ hasher (PyPI `vpdq`: Cython bindings to ThreatExchange's
vpdq/cpp, built against the system's libavcodec) for benches/vpdq_vs_reference.rs, which runs
it once per video and sampling and reads its key=value output.

usage: vpdq_reference_bench.py VIDEO SECONDS_PER_HASH REPEATS THREADS

- seconds:  fastest of REPEATS calls of vpdq.computeHash(VIDEO, seconds_per_hash=...,
            thread_count=THREADS), wall clock, in this process (interpreter start and import
            excluded; the file is read from the page cache after the first call)
- frames:   number of hashed frames
- digest:   SHA-256 of the lines "frame_number,quality,pdq_hex,timestamp_f32_bits\\n", the same
            digest the Rust side computes over its own frames, so identical output is checked in
            the same run
- version:  installed vpdq version
"""
import hashlib
import struct
import sys
import time
from importlib.metadata import version

import vpdq


def digest(features):
    h = hashlib.sha256()
    for f in features:
        bits = struct.unpack("<I", struct.pack("<f", f.timestamp))[0]
        h.update(("%d,%d,%s,%08x\n" % (f.frame_number, f.quality, f.hex, bits)).encode())
    return h.hexdigest()


def main():
    path, seconds_per_hash, repeats, threads = (
        sys.argv[1],
        float(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    best = None
    features = None
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        features = vpdq.computeHash(
            path, seconds_per_hash=seconds_per_hash, thread_count=threads
        )
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    print("seconds=%f" % best)
    print("frames=%d" % len(features))
    print("digest=%s" % digest(features))
    print("version=%s" % version("vpdq"))


if __name__ == "__main__":
    main()
