"""Late naming: calls whose interface was unknown when they ended, named by a later epm answer.

A capture often holds a client's calls to a dynamic port *before* the endpoint-mapper answer that
names it: the client asked before the capture began, and asks again later (Zeek's ``mapi.pcap``
has 154 such calls). Written at once, they would stay ``unknown``. So they wait here instead,
bounded in number and in capture time, grouped by server endpoint; every new endpoint-mapper
answer retries the waiting endpoints, and a call named that way is written with ``if_source``
``epm``. What is still unknown is written unchanged when the input file ends, when too many calls
wait (the endpoint that waited longest goes first), or when a call has waited too long in capture
time. Only calls with no bind and no other naming source ever wait, so ordinary traffic pays
nothing; records of waiting calls come out later than their neighbours, which the schema allows
(records are written as they complete, and carry their own frames and times).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpcinspect.runtime import END_OF_INPUT

if TYPE_CHECKING:
    from rpcinspect.records import CallRecord
    from rpcinspect.runtime import Resolver, Run

__all__ = ["LateNamer"]

Key = tuple[str, str, int, "str | None"]
"""``(transport, server, server_port, named_pipe)``: what the resolver names."""


class LateNamer:
    """Holds unnamed call records per server endpoint until a resolver can name them."""

    def __init__(self, run: Run, resolve: Resolver) -> None:
        self.run = run
        self.resolve = resolve
        self.waiting: dict[Key, list[CallRecord]] = {}  # insertion order: oldest endpoint first
        self.since: dict[Key, int] = {}  # when each endpoint began waiting (orders a parallel run)
        self.held = 0
        self._checked = 0.0

    def hold(self, rec: CallRecord, key: Key) -> None:
        """Takes a finished call whose interface is unknown, and what names it (:attr:`Run.unnamed`)."""
        recs = self.waiting.get(key)
        if recs is None:
            recs = self.waiting[key] = []
            run = self.run
            self.since[key] = run.frame if run.frame < END_OF_INPUT else END_OF_INPUT + run.sub
        recs.append(rec)
        self.held += 1
        self.run.count("late_name_held")
        lim = self.run.limits
        while self.held > lim.max_unnamed_calls:
            self.run.count("late_name_evicted")
            self._release(next(iter(self.waiting)))
        if rec.ts - self._checked > 60.0:  # at most one age sweep a capture minute
            self._expire(rec.ts)

    def retry(self, ts: float) -> None:
        """Names what the resolver now knows (called after each endpoint-mapper answer, at *ts*)."""
        self._expire(ts)
        for key in list(self.waiting):
            found = self.resolve(*key)
            if found is None:
                continue
            for rec in self.waiting[key]:
                self.name(rec, found)
            self.run.count("late_named_calls", len(self.waiting[key]))
            self._release(key)

    def name(self, rec: CallRecord, found: tuple[str, str, str]) -> None:
        """Names *rec* with a resolver's answer ``(if_uuid, if_version, source)``."""
        if_uuid, if_version, source = found
        iface = self.run.catalog.interface(if_uuid, if_version)
        rec.if_uuid, rec.if_version, rec.if_source = if_uuid, if_version, source
        if iface is not None:
            rec.interface = iface.name
            if rec.opnum is not None:
                rec.operation = iface.opnums.get(rec.opnum)

    def offer(self, rec: CallRecord, key: Key) -> None:
        """A call the run's resolver was not asked yet (a parallel worker's): named now, or held."""
        found = self.resolve(*key)
        if found is None:
            self.hold(rec, key)
            return
        self.name(rec, found)
        self.run.emit(rec)

    def flush(self) -> None:
        """Writes every waiting call as it is (end of an input file)."""
        for key in list(self.waiting):
            self.run.sub = self.since[key]
            self._release(key)
        self.run.sub = 0

    def _expire(self, ts: float) -> None:
        """Writes unnamed the endpoints whose first call waited longer than the limit at *ts*."""
        self._checked = ts
        limit = ts - self.run.limits.max_unnamed_wait
        for k in [k for k, v in self.waiting.items() if v[0].ts < limit]:
            self.run.count("late_name_expired")
            self._release(k)

    def _release(self, key: Key) -> None:
        recs = self.waiting.pop(key)
        del self.since[key]
        self.held -= len(recs)
        emit = self.run.emit
        for rec in recs:
            emit(rec)
