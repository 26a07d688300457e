#!/usr/bin/env python3
"""Check uploads against a Redline node from Python: a PDQ hash, an image, a video.

A platform can copy this file. It needs only grpcio and grpcio-tools:

    python3 -m venv venv && venv/bin/pip install grpcio grpcio-tools
    venv/bin/python platform_match.py --node 127.0.0.1:7443 \\
        --pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22 \\
        --image upload.jpg --video upload.mp4 --token "$REDLINE_TOKEN"

The Python stubs are generated at run time from Redline's .proto files (the repository's
proto/ folder by default, or --proto DIR) into a temporary directory, so nothing generated
has to be kept in sync by hand.

The part worth copying is `match`: one Match call with hashes, or with image or video bytes
(the node hashes them with every signal type it knows: PDQ and the digests for an image; vPDQ,
video_md5 and video_sha256 for a video; matches, and drops the bytes). A vPDQ match also says
what share of the upload's frames matched the listed video and which time ranges. Prefer
sending hashes when you can compute them yourself: the upload then never leaves your systems.

Exit codes: 0 done (matched or not), 1 error (unreachable node, refused token, bad input).
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import grpc


def load_stubs(proto_root):
    """Compiles redline/v1/*.proto under proto_root into a temp dir and imports the modules."""
    from grpc_tools import protoc

    try:
        from importlib.resources import files

        well_known = str(files("grpc_tools") / "_proto")
    except Exception:  # older Pythons: fall back to pkg_resources
        import pkg_resources

        well_known = pkg_resources.resource_filename("grpc_tools", "_proto")

    v1 = os.path.join(proto_root, "redline", "v1")
    if not os.path.isdir(v1):
        sys.exit(f"error: no redline/v1 protos under {proto_root}; pass --proto DIR")
    protos = sorted(
        os.path.join("redline", "v1", f) for f in os.listdir(v1) if f.endswith(".proto")
    )
    out = tempfile.mkdtemp(prefix="redline-stubs-")
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("error: protoc could not compile the .proto files")
    sys.path.insert(0, out)
    log_pb2 = importlib.import_module("redline.v1.log_pb2")
    matching_pb2 = importlib.import_module("redline.v1.matching_pb2")
    matching_grpc = importlib.import_module("redline.v1.matching_pb2_grpc")
    return log_pb2, matching_pb2, matching_grpc


def match(stub, matching_pb2, log_pb2, token, pdq=None, image=None, video=None, max_distance=0):
    """One Match call: a PDQ hash (64 hex digits), image bytes or video bytes."""
    request = matching_pb2.MatchRequest(max_distance=max_distance)
    if pdq:
        request.signals.append(log_pb2.Signal(signal_type="pdq", value=pdq.lower()))
    if image:
        request.image = image
    if video:
        request.video = video
    metadata = [("authorization", f"Bearer {token}")] if token else []
    return stub.Match(request, metadata=metadata, timeout=30)


def as_dict(m):
    """One match as a plain dict; a vPDQ match adds its frame comparison."""
    d = {
        "origin": m.origin,
        "index": m.index,
        "distance": m.distance,
        "labels": list(m.labels),
        "legal_basis": m.legal_basis,
    }
    if m.HasField("video"):
        d["video"] = {
            "query_percent": m.video.query_percent,
            "compared_percent": m.video.compared_percent,
            "query_ranges_ms": [[r.start_ms, r.end_ms] for r in m.video.query_ranges],
            "compared_ranges_ms": [[r.start_ms, r.end_ms] for r in m.video.compared_ranges],
        }
    return d


def as_dicts(response):
    """The response as plain dicts: one per query, with its matches."""
    return [
        {
            "query": {"signal_type": r.query.signal_type, "value": r.query.value},
            "matches": [as_dict(m) for m in r.matches],
        }
        for r in response.results
    ]


def explain(err):
    """A gRPC error as one line saying what to do."""
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the node ({err.details()}); is redline-node running at --node?"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"the node refused the token ({err.details()}); pass a valid --token"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "the node does not offer the Matching service (older node, or matching disabled)"
    return f"the node refused the call: {code.name}: {err.details()}"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--node", default=os.environ.get("REDLINE_NODE", "127.0.0.1:7443"),
                   help="host:port of the node (an http:// prefix is accepted)")
    p.add_argument("--token", default=os.environ.get("REDLINE_TOKEN"), help="bearer token")
    p.add_argument("--proto", default=os.path.join(here, "..", "..", "proto"),
                   help="folder holding redline/v1/*.proto")
    p.add_argument("--pdq", help="a PDQ hash to match (64 hex digits)")
    p.add_argument("--image", help="an image file to match (sent to the node, hashed, dropped)")
    p.add_argument("--video", help="a video file to match (sent to the node, hashed, dropped)")
    p.add_argument("--max-distance", type=int, default=0,
                   help="largest Hamming distance (0: the node's default, 31 for PDQ)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--self-check", action="store_true",
                   help="only generate the stubs and build a request (no node needed)")
    a = p.parse_args()

    log_pb2, matching_pb2, matching_grpc = load_stubs(os.path.abspath(a.proto))
    if a.self_check:
        req = matching_pb2.MatchRequest(signals=[log_pb2.Signal(signal_type="pdq", value="0" * 64)])
        assert req.signals[0].signal_type == "pdq"
        assert hasattr(matching_grpc, "MatchingStub")
        print("stubs ok")
        return 0
    if not a.pdq and not a.image and not a.video:
        p.error("give --pdq HEX, --image FILE and/or --video FILE")

    target = a.node.split("://", 1)[-1].rstrip("/")
    with grpc.insecure_channel(target) as channel:
        stub = matching_grpc.MatchingStub(channel)
        results = []
        try:
            if a.pdq:
                results += as_dicts(match(stub, matching_pb2, log_pb2, a.token, pdq=a.pdq,
                                          max_distance=a.max_distance))
            if a.image:
                with open(a.image, "rb") as f:
                    data = f.read()
                results += as_dicts(match(stub, matching_pb2, log_pb2, a.token, image=data,
                                          max_distance=a.max_distance))
            if a.video:
                with open(a.video, "rb") as f:
                    data = f.read()
                results += as_dicts(match(stub, matching_pb2, log_pb2, a.token, video=data,
                                          max_distance=a.max_distance))
        except grpc.RpcError as err:
            print(f"error: {explain(err)}", file=sys.stderr)
            return 1
        except OSError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            q = r["query"]
            value = q["value"] if q["signal_type"] != "vpdq" else f"({len(q['value']) // 74} frames)"
            print(f"{q['signal_type']} {value}: {len(r['matches'])} match(es)")
            for m in r["matches"]:
                labels = ",".join(m["labels"]) or "-"
                print(f"  {m['origin']}  index {m['index']}  distance {m['distance']}  labels {labels}")
                if "video" in m:
                    v = m["video"]
                    print(f"    {v['query_percent']:.1f}% of the upload's frames match, "
                          f"{v['compared_percent']:.1f}% of the listed video's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
