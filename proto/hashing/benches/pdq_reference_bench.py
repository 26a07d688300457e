#!/usr/bin/env python3
"""Times the reference PDQ hasher (PyPI `pdqhash`: Cython bindings to Meta's C++) for
benches/pdq_vs_reference.rs, which runs it and reads its key=value output.

usage: pdq_reference_bench.py IMAGE.jpg PIXELS.rgb WIDTH HEIGHT SECONDS

- decode_incl_ips: Pillow open + convert("RGB") + numpy array + pdqhash.compute, per second
- decode_excl_ips: pdqhash.compute on the decoded array (includes its numpy luma step)
- dihedral_ips:    pdqhash.compute_dihedral on the decoded array
- raw_hash/raw_quality: PDQ of the raw RGB bytes the Rust side decoded (identical pixels)
- pil_hash: PDQ of Pillow's own decoding of the JPEG
"""
import sys
import time

import numpy as np
import pdqhash
from PIL import Image


def hexs(vec):
    bits = "".join(str(int(b)) for b in vec)
    return "".join("%02x" % int(bits[i:i + 8], 2) for i in range(0, 256, 8))


def rate(seconds, f):
    f()
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or n < 5:
        f()
        n += 1
    return n / (time.perf_counter() - start)


def main():
    jpeg, raw, width, height, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    arr = np.asarray(Image.open(jpeg).convert("RGB"))

    def incl():
        pdqhash.compute(np.asarray(Image.open(jpeg).convert("RGB")))

    print("decode_incl_ips=%f" % rate(seconds, incl))
    print("decode_excl_ips=%f" % rate(seconds, lambda: pdqhash.compute(arr)))
    print("dihedral_ips=%f" % rate(seconds, lambda: pdqhash.compute_dihedral(arr)))
    pixels = np.fromfile(raw, dtype=np.uint8).reshape(height, width, 3)
    vec, q = pdqhash.compute(pixels)
    print("raw_hash=%s" % hexs(vec))
    print("raw_quality=%d" % q)
    print("pil_hash=%s" % hexs(pdqhash.compute(arr)[0]))
    print("version=%s" % getattr(pdqhash, "__version__", "?"))


if __name__ == "__main__":
    main()
