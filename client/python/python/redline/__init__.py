"""Redline for Python: hash, match and verify with the Rust core the node runs.

Everything here is the Rust implementation (redline-hashing, redline-proto, redline-client)
bound with PyO3, not a second one: a PDQ computed here has the bits ``redline hash`` prints,
and a log verified here passes the checks every Redline node applies.

A platform matches an image in four lines::

    import redline
    node = redline.Client("https://node.example:7443", token=TOKEN, ca="ca.pem")
    for m in node.match_image("upload.jpg"):
        print(m.origin, m.index, m.distance, m.labels)

Images and videos are hashed locally and never sent unless ``send=True`` is asked for.
"""

from redline._redline import (  # noqa: F401  (the public API)
    AuthenticationError,
    Client,
    HashingError,
    InputError,
    ListedEntry,
    LogUpdate,
    Match,
    NodeError,
    PermissionDeniedError,
    QueryResult,
    RedlineError,
    Signal,
    UnreachableError,
    UpdateBatch,
    VerificationError,
    VerifiedLog,
    VideoMatch,
    VpdqFrame,
    __version__,
    hamming_distance,
    hash_image,
    md5,
    pdq,
    pdq_from_rgb,
    sha256,
    vpdq,
    vpdq_signal_str,
)

__all__ = [
    "AuthenticationError",
    "Client",
    "HashingError",
    "InputError",
    "ListedEntry",
    "LogUpdate",
    "Match",
    "NodeError",
    "PermissionDeniedError",
    "QueryResult",
    "RedlineError",
    "Signal",
    "UnreachableError",
    "UpdateBatch",
    "VerificationError",
    "VerifiedLog",
    "VideoMatch",
    "VpdqFrame",
    "__version__",
    "hamming_distance",
    "hash_image",
    "md5",
    "pdq",
    "pdq_from_rgb",
    "sha256",
    "vpdq",
    "vpdq_signal_str",
]
