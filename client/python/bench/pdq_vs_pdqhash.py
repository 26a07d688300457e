"""PDQ in the `redline` package vs PyPI `pdqhash` (Meta's C++ PDQ bound with Cython), same run.

    python client/python/bench/pdq_vs_pdqhash.py [IMAGE_DIR] [--rounds N]

Needs `pip install ./client/python pdqhash pillow numpy`. Two comparisons on every image of
IMAGE_DIR (default ../shared/pdq-reference/images):

- from pixels: both hash the same decoded RGB (Pillow), `redline.pdq_from_rgb` vs
  `pdqhash.compute`, so only the hashers are compared;
- from the file: `redline.pdq(path)` (Redline's decoder and hasher, what `redline hash` does)
  vs Pillow decode + `pdqhash.compute`, what a Python platform would otherwise write.

Prints images/s for each, the ratio redline/pdqhash, and the largest Hamming distance between
the two hashers' outputs (they are different implementations of one algorithm; the reference
test data allows a few bits on low-quality images).
"""

import argparse
import os
import sys
import time

import numpy
import pdqhash
from PIL import Image

import redline


def bits_hex(bits):
    """pdqhash's 256 bits (most significant first, as Meta's reference prints) as hex."""
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value.to_bytes(32, "big").hex()


def rate(fn, items, rounds):
    start = time.perf_counter()
    for _ in range(rounds):
        for item in items:
            fn(item)
    return rounds * len(items) / (time.perf_counter() - start)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "..", "..", "shared", "pdq-reference", "images")
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="?", default=default)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(
        os.path.join(args.images, f)
        for f in os.listdir(args.images)
        if f.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    if not paths:
        sys.exit(f"no images in {args.images}")
    pixels = [numpy.asarray(Image.open(p).convert("RGB")) for p in paths]
    buffers = [(a.tobytes(), a.shape[1], a.shape[0]) for a in pixels]

    worst = 0
    for a, (buf, w, h) in zip(pixels, buffers):
        ours, _ = redline.pdq_from_rgb(buf, w, h)
        theirs, _ = pdqhash.compute(a)
        worst = max(worst, redline.hamming_distance(ours, bits_hex(theirs)))

    # Warm both up once, then measure.
    rate(lambda b: redline.pdq_from_rgb(*b), buffers, 1)
    rate(pdqhash.compute, pixels, 1)
    ours_px = rate(lambda b: redline.pdq_from_rgb(*b), buffers, args.rounds)
    theirs_px = rate(pdqhash.compute, pixels, args.rounds)
    ours_file = rate(redline.pdq, paths, args.rounds)
    theirs_file = rate(
        lambda p: pdqhash.compute(numpy.asarray(Image.open(p).convert("RGB"))), paths, args.rounds
    )
    print(f"{len(paths)} images x {args.rounds} rounds, redline {redline.__version__}")
    print(f"from pixels: redline {ours_px:8.1f}/s  pdqhash {theirs_px:8.1f}/s  ratio {ours_px / theirs_px:.2f}x")
    print(f"from file:   redline {ours_file:8.1f}/s  pdqhash {theirs_file:8.1f}/s  ratio {ours_file / theirs_file:.2f}x")
    print(f"largest distance between the two hashers' outputs: {worst} bits")


if __name__ == "__main__":
    main()
