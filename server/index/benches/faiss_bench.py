#!/usr/bin/env python3
"""faiss side of the PDQ matching benchmark (see match_vs_faiss.rs).

Reads the hashes, queries and brute-force truth that `match_vs_faiss gen`
wrote, times faiss IndexBinaryFlat and IndexBinaryMultiHash(256, 16, 16)
with nflip=1 on a single thread with range_search(radius=32) -- faiss's
range search is strict (distance < radius), so 32 means distance <= 31,
the same set as ours; this script asserts that on a tiny example first --
and writes <scenario>.faiss.json for the Rust side to print.

bytes/hash is the growth of the process's resident memory while the index
is built (freed memory is returned to the OS between indexes).

queries/s comes from one batched range_search call over all timed queries
(no Python overhead per query); p50/p99 come from per-query calls, which
include ~the Python call overhead (a few microseconds).

Scenarios over 10M hashes (uniform-100m) have no brute-force truth file:
the base is memory-mapped and added in chunks (one copy, faiss's own),
only IndexBinaryFlat is timed (MultiHash would take tens of minutes to
build), on the first --flat-queries-100m queries (~0.5 s each), and its
results are written as <scenario>.truth for those queries: flat is a
brute-force scan, so they are the truth the Rust side checks against.
"""

import argparse
import ctypes
import resource
import gc
import json
import os
import time

import faiss
import numpy as np

D_BITS = 256
BYTES = D_BITS // 8
RADIUS = 32  # strict: distance < 32, i.e. <= 31


def release_freed_memory():
    """Return freed heap to the OS so the next RSS delta measures the next index."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read_truth(path, nq):
    raw = np.fromfile(path, dtype="<u4")
    out, pos = [], 0
    for _ in range(nq):
        count = int(raw[pos])
        out.append(set(raw[pos + 1 : pos + 1 + count].tolist()))
        pos += 1 + count
    return out


def write_truth(path, results):
    """Same format as match_vs_faiss.rs: per query a u32 count, then u32 ids."""
    out = []
    for ids in results:
        ids = sorted(ids)
        out.append(np.array([len(ids)] + ids, dtype="<u4"))
    np.concatenate(out).tofile(path)


def bench_huge(name, base, xq, limit):
    """Flat on a memory-mapped base too large for a second copy; returns
    the row and the result sets of the timed queries (the truth)."""
    xb = np.memmap(base + ".base", dtype="uint8", mode="r").reshape(-1, BYTES)
    n = xb.shape[0]
    release_freed_memory()
    before = rss_bytes()
    t0 = time.perf_counter()
    index = faiss.IndexBinaryFlat(D_BITS)
    step = 1 << 22
    for start in range(0, n, step):
        index.add(np.ascontiguousarray(xb[start : start + step]))
    build_s = time.perf_counter() - t0
    del xb
    release_freed_memory()
    bytes_per_hash = (rss_bytes() - before) / n
    q = xq[:limit]
    index.range_search(q[:1], RADIUS)
    lat, truth = [], []
    for i in range(len(q)):
        t = time.perf_counter_ns()
        lims, _, ids = index.range_search(q[i : i + 1], RADIUS)
        lat.append((time.perf_counter_ns() - t) / 1e3)
        truth.append(ids[lims[0] : lims[1]].tolist())
    t = time.perf_counter()
    lims, _, ids = index.range_search(q, RADIUS)
    batch_s = time.perf_counter() - t
    same = all(
        sorted(ids[lims[i] : lims[i + 1]].tolist()) == sorted(truth[i]) for i in range(len(q))
    )
    assert same, "batched and single-query flat results differ"
    lat.sort()
    row = {
        "engine": "faiss IndexBinaryFlat",
        "build_s": build_s,
        "bytes_per_hash": bytes_per_hash,
        "qps": len(q) / batch_s,
        "p50_us": lat[round((len(lat) - 1) * 0.5)],
        "p99_us": lat[round((len(lat) - 1) * 0.99)],
        "recall": 1.0,
        "exact": True,
        "timed_queries": len(q),
        "note": f"faiss {faiss.__version__}, 1 thread; first {len(q)} queries timed, its results are the truth"
        f" (exact by construction); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB",
    }
    print(json.dumps(row), flush=True)
    del index
    release_freed_memory()
    return row, truth


def check_strictness():
    """faiss range_search must include distance 31 and exclude 32."""
    xb = np.zeros((3, BYTES), dtype="uint8")
    xb[1, :4] = 0xFF  # distance 32
    xb[2, :3] = 0xFF
    xb[2, 3] = 0x7F  # distance 31
    for index in (faiss.IndexBinaryFlat(D_BITS), faiss.IndexBinaryMultiHash(D_BITS, 16, 16)):
        if isinstance(index, faiss.IndexBinaryMultiHash):
            index.nflip = 1
        index.add(xb)
        lims, dist, ids = index.range_search(np.zeros((1, BYTES), dtype="uint8"), RADIUS)
        got = sorted(zip(ids.tolist(), dist.tolist()))
        assert got == [(0, 0), (2, 31)], got


def bench(name, make, xb, xq, truth, limit, note):
    release_freed_memory()
    before = rss_bytes()
    t0 = time.perf_counter()
    index = make()
    index.add(xb)
    build_s = time.perf_counter() - t0
    bytes_per_hash = (rss_bytes() - before) / xb.shape[0]
    q = xq[:limit]
    for i in range(min(20, len(q))):
        index.range_search(q[i : i + 1], RADIUS)
    lat = []
    hit = want = 0
    exact = True
    for i in range(len(q)):
        t = time.perf_counter_ns()
        lims, _, ids = index.range_search(q[i : i + 1], RADIUS)
        lat.append((time.perf_counter_ns() - t) / 1e3)
        got = set(ids[lims[0] : lims[1]].tolist())
        exact &= got == truth[i]
        hit += len(got & truth[i])
        want += len(truth[i])
    t = time.perf_counter()
    index.range_search(q, RADIUS)
    batch_s = time.perf_counter() - t
    lat.sort()
    row = {
        "engine": name,
        "build_s": build_s,
        "bytes_per_hash": bytes_per_hash,
        "qps": len(q) / batch_s,
        "p50_us": lat[round((len(lat) - 1) * 0.5)],
        "p99_us": lat[round((len(lat) - 1) * 0.99)],
        "recall": hit / want if want else 1.0,
        "exact": exact,
        "timed_queries": len(q),
        "note": note,
    }
    print(json.dumps(row), flush=True)
    del index
    release_freed_memory()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--flat-queries-10m", type=int, default=200)
    ap.add_argument("--multihash-queries-10m", type=int, default=200)
    ap.add_argument("--flat-queries-100m", type=int, default=20)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    check_strictness()
    for name in args.scenarios.split(","):
        base = os.path.join(args.dir, name)
        if os.path.getsize(base + ".base") > 10_000_000 * BYTES:
            xq = np.fromfile(base + ".queries", dtype="uint8").reshape(-1, BYTES)
            row, truth = bench_huge(name, base, xq, min(args.flat_queries_100m, len(xq)))
            write_truth(base + ".truth", truth)
            with open(base + ".faiss.json", "w") as f:
                f.write('{"rows": [\n' + json.dumps(row) + "\n]}\n")
            continue
        xb = np.fromfile(base + ".base", dtype="uint8").reshape(-1, BYTES)
        xq = np.fromfile(base + ".queries", dtype="uint8").reshape(-1, BYTES)
        truth = read_truth(base + ".truth", xq.shape[0])
        big = xb.shape[0] > 1_000_000
        flat_q = min(args.flat_queries_10m, len(xq)) if big else len(xq)
        mh_q = min(args.multihash_queries_10m, len(xq)) if big else len(xq)
        flat_note = f"faiss {faiss.__version__}, 1 thread"
        if flat_q < len(xq):
            flat_note += f"; first {flat_q} queries timed (qps per query, not scaled up)"
        rows = [
            bench("faiss IndexBinaryFlat", lambda: faiss.IndexBinaryFlat(D_BITS), xb, xq, truth, flat_q, flat_note),
        ]

        def multihash():
            index = faiss.IndexBinaryMultiHash(D_BITS, 16, 16)
            index.nflip = 1
            return index

        mh_note = "faiss, 1 thread"
        if mh_q < len(xq):
            mh_note += f"; first {mh_q} queries timed (~0.1 s each at 10M)"
        rows.append(bench("faiss MultiHash(16x16b, nflip=1)", multihash, xb, xq, truth, mh_q, mh_note))
        with open(base + ".faiss.json", "w") as f:
            f.write('{"rows": [\n' + ",\n".join(json.dumps(r) for r in rows) + "\n]}\n")
        del xb
        release_freed_memory()


if __name__ == "__main__":
    main()
