"""One `threatexchange fetch` pass of a Redline collab, printed as JSON (tests/tests/python_pytx.rs).

The API comes from the extension manifest, the token from the credential environment variable,
and the deltas go into pytx's own on-disk store, read back in a new store as a matcher would.
"""
import json, os, pathlib, sys
from threatexchange.cli.cli_state import CliSimpleState
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal

url, token, ca, origin, key, state_dir, batch_size = sys.argv[1:]
# The extension as pytx loads one (`threatexchange config extensions add redline_pytx`).
(api_cls,) = ThreatExchangeExtensionManifest.load_from_module_name("redline_pytx").apis
config_cls = api_cls.get_config_cls()
collab = config_cls(name="redline-a", node_url=url, origin=origin, verifier_key=key,
                    ca_file=ca, batch_size=int(batch_size))
os.environ[api_cls.get_credential_cls().ENV_VARIABLE] = token
api = api_cls.for_collab(collab)
store = CliSimpleState(api_cls, pathlib.Path(state_dir))
before = store.get_checkpoint(collab)
out = {"api": api_cls.get_name(), "collab_api": collab.api,
       "resumed_from": None if before is None else [before.origin, before.size, before.root],
       "stale": None if before is None else before.is_stale(), "deltas": []}
try:
    # What `threatexchange fetch` does (fetch_cmd.execute_for_collab): merge each delta
    # into pytx's store, flush at the end whatever happens.
    for delta in api.fetch_iter([PdqSignal, VideoMD5Signal], before):
        out["deltas"].append({
            "checkpoint": [delta.checkpoint.origin, delta.checkpoint.size, delta.checkpoint.root],
            "stale": delta.checkpoint.is_stale(),
            "adds": sorted(k for k, v in delta.updates.items() if v is not None),
            "deletes": sorted(k for k, v in delta.updates.items() if v is None)})
        store.merge(collab, delta)
    out["error"] = None
except Exception as e:
    out["error"] = type(e).__name__
finally:
    store.flush()
out["skipped"] = dict(api.skipped)
# Read back from disk, as a new process (the matcher) would.
store = CliSimpleState(api_cls, pathlib.Path(state_dir))
cp = store.get_checkpoint(collab)
out["stored_checkpoint"] = None if cp is None else [cp.origin, cp.size, cp.root]
out["state_file"] = store.collab_file(collab.name).is_file()
out["stored"] = {}
for st in (PdqSignal, VideoMD5Signal):
    for signal, meta in store.get_for_signal_type([collab], st).get(collab.name, {}).items():
        agg = meta.get_as_aggregate_opinion()
        out["stored"][st.get_name() + ":" + signal] = {
            "entries": [{"index": e.index, "origin": e.origin, "labels": e.labels,
                         "legal_basis": e.legal_basis, "case_ref": e.case_ref,
                         "created": e.created_at_ms > 0} for e in meta.entries],
            "opinion": agg.category.name, "tags": sorted(agg.tags)}
print(json.dumps(out))
