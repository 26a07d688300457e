"""Regenerates vpdq-pytx-matches.txt: python-threatexchange's own vPDQ matcher on every pair of
the reference's sample hashes (shared/vpdq-reference/hashes/NAME.txt, full resolution).

Run with a Python that has `pip install threatexchange vpdq` (a virtualenv outside the repo):
    python vpdq_pytx_matches.py SHARED_DIR > vpdq-pytx-matches.txt
Frames whose number is a multiple of 30 are kept: all samples are 30 fps, so this is the
reference's 1 hash/s sampling (frameMod = 30), python-threatexchange's default. (Every frame
takes pytx's pure-Python matcher over 15 minutes for the 144 pairs.)
"""
import glob
import os
import sys

from threatexchange.extensions.vpdq.vpdq_brute_matcher import match_VPDQ_hash_brute
from threatexchange.extensions.vpdq.vpdq_util import (
    VPDQ_DISTANCE_THRESHOLD,
    VPDQ_QUALITY_THRESHOLD,
    VpdqCompactFeature,
)

shared = sys.argv[1]
videos = {}
for path in sorted(glob.glob(os.path.join(shared, "vpdq-reference/hashes/*.txt"))):
    name = os.path.basename(path)[:-4]
    if name.endswith("-128x128"):
        continue
    rows = [l.strip().split(",") for l in open(path) if l.strip()]
    videos[name] = [(int(n), VpdqCompactFeature(h, int(q), float(t))) for n, q, h, t in rows]

print("# query compared mode query_percent compared_percent (repr of pytx's floats)")
print(f"# thresholds: quality {VPDQ_QUALITY_THRESHOLD}, distance {VPDQ_DISTANCE_THRESHOLD}")
for mode in ("1s",):
    for q in videos:
        for c in videos:
            qf = [f for n, f in videos[q] if mode == "every" or n % 30 == 0]
            cf = [f for n, f in videos[c] if mode == "every" or n % 30 == 0]
            try:
                r = match_VPDQ_hash_brute(qf, cf, VPDQ_QUALITY_THRESHOLD, VPDQ_DISTANCE_THRESHOLD)
                print(q, c, mode, repr(r.query_match_percent), repr(r.compared_match_percent))
            except ZeroDivisionError:
                print(q, c, mode, "nan", "nan")
