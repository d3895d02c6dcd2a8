"""Per-run services shared by every stage: catalog, limits, counters, and the record sink.

Stages get one :class:`Run` instead of globals, so two runs (two files, two shards, a live feed)
never share state, and tests can inspect exactly what one run counted and emitted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rpcinspect.limits import DEFAULT_LIMITS, Limits
from rpcinspect.records import AnomalyRecord, CallRecord, Record

if TYPE_CHECKING:
    from rpcinspect.auth.keytab import Keytab
    from rpcinspect.auth.secrets import Secret
    from rpcinspect.catalog import Catalog

__all__ = ["END_OF_INPUT", "Endpoints", "Resolver", "Run", "StubTap"]

END_OF_INPUT = 1 << 62
""":attr:`Run.frame` base of the end-of-input phases: above every frame number."""

Endpoints = tuple[str, int, str, int]
"""``(client, client_port, server, server_port)`` as text, for records."""

Resolver = Callable[[str, str, int, "str | None"], "tuple[str, str, str] | None"]
"""``(transport, server, server_port, named_pipe) -> (if_uuid, if_version, source)`` for calls
whose presentation context was never bound in the capture (endpoint-mapper learning, well-known
pipes, ``--decode-as``); ``source`` becomes the call's ``if_source``."""

StubTap = Callable[["CallRecord", bytes, bytes], None]
"""Receives a finished call with its request and response stub bytes (as on the wire: still
encrypted at auth level privacy). Taps are registered per interface UUID and opnums."""


class Run:
    """What one analysis run shares across its stages."""

    def __init__(
        self,
        catalog: Catalog,
        emit: Callable[[Record], None],
        *,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.catalog = catalog
        self.emit = emit
        self.limits = limits
        self.counters: Counter[str] = Counter()
        self._anomalies: Counter[str] = Counter()
        self._auth_names: dict[tuple[int, int], tuple[str, str]] = {}
        self.memo: dict[object, Any] = {}
        """Bounded per-run memo for derived values that depend on the catalog (bind contexts)."""
        self.resolver: Resolver | None = None
        self.unnamed: Callable[[CallRecord, tuple[str, str, int, str | None]], None] | None = None
        """Where a finished call whose interface is unknown goes, with what the resolver would be
        asked (``(transport, server, port, named_pipe)``): late naming holds it until the endpoint
        mapper names that endpoint. None: it is emitted at once like any other."""
        self.stub_taps: dict[str, tuple[frozenset[int] | None, StubTap]] = {}
        """if_uuid -> (opnums wanted, or None for all; tap). Only these calls keep stub bytes."""
        self.secrets: list[Secret] | None = None
        """Secrets for decrypting sealed stubs (``--password``/``--nt-hash``); None: no decryption
        (an empty list when only keytabs are given)."""
        self.keytab_keys: Keytab | None = None
        """Kerberos keys (``--keytab``) that open service tickets; None: Kerberos is not decrypted."""
        self.frame = 0
        """Where the pipeline is, so a parallel run can merge its workers' records in one-process
        order: the frame being processed (set by the flow tables), or at end of input
        ``END_OF_INPUT`` plus the end phase (set by the engine)."""
        self.sub = 0
        """At end of input, the first frame of the connection or call being closed (their tables
        close them in that order); else 0."""

    def add_stub_tap(self, if_uuid: str, opnums: frozenset[int] | None, tap: StubTap) -> None:
        """Asks the associations to keep the stubs of these calls (bounded) and hand them to *tap*."""
        self.stub_taps[if_uuid] = (opnums, tap)

    def auth_names(self, auth: tuple[int, int]) -> tuple[str, str]:
        """``(auth_type, auth_level)`` names of wire values; level 0 (none given) reads "none"."""
        names = self._auth_names.get(auth)
        if names is None:
            at, al = auth
            cat = self.catalog
            names = (cat.auth_type_short(at), cat.auth_level_name(al) if al else "none")
            self._auth_names[auth] = names
        return names

    def count(self, name: str, n: int = 1) -> None:
        """Bumps a named counter (all counters appear in the summary record)."""
        self.counters[name] += n

    def anomaly(self, kind: str, detail: str, frame: int, ts: float, ep: Endpoints) -> None:
        """Counts *kind* and writes an anomaly record, up to the per-kind limit."""
        self.counters[kind] += 1
        self._anomalies[kind] += 1
        if self._anomalies[kind] <= self.limits.max_anomalies_per_kind:
            self.emit(AnomalyRecord(ts, frame, ep[0], ep[1], ep[2], ep[3], kind, detail))

    def reset_anomaly_budget(self) -> None:
        """Starts a new per-file anomaly budget (counters keep accumulating)."""
        self._anomalies.clear()
