"""Redline as a python-threatexchange (pytx) SignalExchangeAPI.

An HMA deployment (or the ``threatexchange`` CLI, via
``threatexchange config extensions add redline_pytx``) adds a Redline node as an exchange
and fetches an origin's list *verified*: every batch comes from ``redline.Client.log_updates``,
which checks the origin's signed checkpoint against the verifier key the operator gave
(never one the node offers), every leaf against the signed root, and that the log extends
the checkpoint stored last time. A list that does not verify raises before anything is
yielded, so nothing of it is stored.

- record key: the log index of the ADD (an int); value: a :class:`RedlineEntry`;
- a RETRACT maps its target's key to ``None`` (pytx's delete);
- checkpoint: ``(origin, size, root)`` of the verified prefix a batch ends at.
"""

import logging
import typing as t
from collections import Counter
from dataclasses import dataclass, field

import redline
from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges import signal_exchange_api
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalType

try:  # pytx's vPDQ extension needs the `vpdq` wheel; without it vPDQ entries are skipped.
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal
except ImportError:  # pragma: no cover - depends on the environment
    VPDQSignal = None  # type: ignore[assignment,misc]

__all__ = [
    "RedlineCheckpoint",
    "RedlineCollabConfig",
    "RedlineCredentials",
    "RedlineEntry",
    "RedlineSignalExchangeAPI",
    "RedlineSignalMetadata",
    "TX_MANIFEST",
    "pytx_type_for",
]

API_NAME = "redline"


def pytx_type_for(redline_type: str) -> t.Optional[t.Type[SignalType]]:
    """The pytx SignalType a Redline signal type is, or None when pytx has none here.

    Redline's ``md5`` (and ``sha256``) is the MD5 of an *image* file's bytes; pytx's only MD5
    type is ``video_md5`` (VideoMD5Signal, video files only), so image hashes are not mapped
    (mapping them would match them against videos). The image-only perceptual hashes
    (phash/dhash/ahash/blockhash) have no pytx type either.
    """
    if redline_type == "pdq":
        return PdqSignal
    if redline_type == "video_md5":
        return VideoMD5Signal
    if redline_type == "vpdq":
        return VPDQSignal
    return None


@dataclass
class RedlineCollabConfig(CollaborationConfigWithDefaults):
    """One origin's list on one Redline node.

    ``verifier_key`` is the origin's C2SP verifier key (``name+hash+base64``) as its operator
    published it, never fetched from the node: it is what makes the list verified. ``origin``
    must be the key's name (checked), so a collab cannot silently follow another origin.
    ``ca_file`` is the PEM of the CA of the node's TLS certificate (empty: public CAs). The
    bearer token is a credential (:class:`RedlineCredentials`), not configuration.
    """

    node_url: str = field(
        default="", metadata={"help": "URL of the Redline node, e.g. https://node.example:7443"}
    )
    origin: str = field(
        default="", metadata={"help": "Origin whose list to follow, e.g. hotline-a.example"}
    )
    verifier_key: str = field(
        default="",
        metadata={"help": "The origin's verifier key, from its operator (never the node)"},
    )
    ca_file: str = field(
        default="",
        metadata={"help": "PEM of the CA of the node's TLS certificate (empty: public CAs)"},
    )
    batch_size: int = field(
        default=10_000, metadata={"help": "Log leaves per fetched delta (a checkpoint each)"}
    )
    api: str = API_NAME


@dataclass
class RedlineCheckpoint(state.FetchCheckpointBase):
    """The verified prefix the stored copy reaches: resume point and rollback guard."""

    origin: str
    size: int
    root: str

    def is_stale(self) -> bool:
        """Never: the log is the full append-only history, tailing it is always exact."""
        return False


@dataclass
class RedlineEntry:
    """A listed entry as fetched (the update record value), from ``redline.ListedEntry``."""

    origin: str
    index: int
    signal_type: str
    value: str
    signal_str: str
    quality: int
    labels: t.List[str]
    legal_basis: str
    case_ref: str
    created_at_ms: int

    @classmethod
    def from_listed(cls, e: t.Any) -> "RedlineEntry":
        return cls(
            origin=e.origin,
            index=e.index,
            signal_type=e.signal_type,
            value=e.value,
            signal_str=e.signal_str,
            quality=e.quality,
            labels=list(e.labels),
            legal_basis=e.legal_basis,
            case_ref=e.case_ref,
            created_at_ms=e.created_at_ms,
        )


@dataclass
class RedlineSignalMetadata(state.FetchedSignalMetadata):
    """The entries of one list that carry one signal (normally one)."""

    entries: t.List[RedlineEntry] = field(default_factory=list)

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        # A hotline lists a hash because it judged the content in scope: a positive.
        return [
            state.SignalOpinion(
                False, state.SignalOpinionCategory.POSITIVE_CLASS, set(e.labels)
            )
            for e in self.entries
        ]


@dataclass
class RedlineCredentials(auth.CredentialHelper):
    """The node's bearer token (a token with the Audit scope)."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_REDLINE_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.tx_redline_token"

    token: str = field(metadata={"help": "Bearer token of the Redline node (Audit scope)"})

    @classmethod
    def _from_str(cls, s: str) -> "RedlineCredentials":
        return cls(token=s.strip())

    def _are_valid(self) -> bool:
        return bool(self.token)


class RedlineSignalExchangeAPI(
    auth.SignalExchangeWithAuth[RedlineCollabConfig, RedlineCredentials],
    signal_exchange_api.SignalExchangeAPI[
        RedlineCollabConfig,
        RedlineCheckpoint,
        RedlineSignalMetadata,
        int,
        RedlineEntry,
    ],
):
    """Fetches one origin's verified list from a Redline node."""

    def __init__(
        self, collab: RedlineCollabConfig, credentials: RedlineCredentials
    ) -> None:
        origin_of_key = collab.verifier_key.split("+", 1)[0]
        if not collab.verifier_key or origin_of_key != collab.origin:
            raise ValueError(
                f"collab {collab.name}: verifier_key is for {origin_of_key!r}, "
                f"not the configured origin {collab.origin!r}"
            )
        self.collab = collab
        self.client = redline.Client(
            collab.node_url, token=credentials.token, ca=collab.ca_file or None
        )
        # Entries fetched but not yielded, by Redline signal type (no pytx type, or a type
        # the caller did not ask for).
        self.skipped: t.Counter[str] = Counter()

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> t.Type[RedlineCollabConfig]:
        return RedlineCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> t.Type[RedlineCheckpoint]:
        return RedlineCheckpoint

    @staticmethod
    def get_record_cls() -> t.Type[RedlineSignalMetadata]:
        return RedlineSignalMetadata

    @staticmethod
    def get_credential_cls() -> t.Type[RedlineCredentials]:
        return RedlineCredentials

    @classmethod
    def for_collab(
        cls,
        collab: RedlineCollabConfig,
        credentials: t.Optional[RedlineCredentials] = None,
    ) -> "RedlineSignalExchangeAPI":
        credentials = credentials or RedlineCredentials.get(cls)
        return cls(collab, credentials)

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[t.Type[SignalType]],
        checkpoint: t.Optional[RedlineCheckpoint],
    ) -> t.Iterator[state.FetchDelta[int, RedlineEntry, RedlineCheckpoint]]:
        since = None
        if checkpoint is not None:
            if checkpoint.origin != self.collab.origin:
                raise ValueError(
                    f"checkpoint is of {checkpoint.origin!r}, collab follows {self.collab.origin!r}"
                )
            since = (checkpoint.size, checkpoint.root)
        # Verifies the whole log (raising redline.VerificationError) before returning any
        # batch: a list that does not verify yields nothing.
        batches = self.client.log_updates(
            self.collab.verifier_key, since=since, batch_size=self.collab.batch_size
        )
        wanted = set(supported_signal_types)
        for batch in batches:
            if batch.origin != self.collab.origin:
                raise redline.VerificationError(
                    f"node answered for {batch.origin!r}, not {self.collab.origin!r}"
                )
            updates: t.Dict[int, t.Optional[RedlineEntry]] = {}
            for u in batch.updates:
                if u.kind == "retract":
                    updates[u.target] = None
                    continue
                entry = u.entry
                s_type = pytx_type_for(entry.signal_type)
                if s_type is None or s_type not in wanted:
                    self.skipped[entry.signal_type] += 1
                    continue
                updates[u.target] = RedlineEntry.from_listed(entry)
            if self.skipped:
                logging.info("redline %s: skipped %s", self.collab.name, dict(self.skipped))
            yield state.FetchDelta(
                updates, RedlineCheckpoint(batch.origin, batch.size, batch.root)
            )

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: t.Sequence[t.Type[SignalType]],
        collab: RedlineCollabConfig,
        fetched: t.Mapping[int, RedlineEntry],
    ) -> t.Dict[t.Type[SignalType], t.Dict[str, RedlineSignalMetadata]]:
        ret: t.Dict[t.Type[SignalType], t.Dict[str, RedlineSignalMetadata]] = {}
        wanted = set(signal_types)
        for _, entry in sorted(fetched.items()):
            s_type = pytx_type_for(entry.signal_type)
            if s_type is None or s_type not in wanted:
                continue
            by_signal = ret.setdefault(s_type, {})
            by_signal.setdefault(entry.signal_str, RedlineSignalMetadata()).entries.append(
                entry
            )
        return ret


TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(RedlineSignalExchangeAPI,))
