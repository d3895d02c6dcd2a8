"""A parallel run's parent: starts the workers, merges their records into one-process order.

Every worker reads the whole file (the C selector drops other shards' packets before Python
sees them) and sends records keyed by :data:`~rpcinspect.engine.OrderKey`; each worker's keys
rise, so a k-way merge restores the order one process writes. What one process keeps per run
rather than per connection lives here: the endpoint knowledge (workers send the endpoint-mapper
answers they decode and the calls they cannot name; the parent learns, names and holds them
exactly as :func:`rpcinspect.engine.analyze` does), the per-kind anomaly budget of each input
file, and the summary (counters summed; the two per-file ones, which every worker counts, once).
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import pickle
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from rpcinspect.capture import fastscan
from rpcinspect.catalog import Catalog, load_catalog
from rpcinspect.dcerpc.epm import EndpointMapper
from rpcinspect.dcerpc.latename import LateNamer
from rpcinspect.dcerpc.resolve import Resolver
from rpcinspect.limits import DEFAULT_LIMITS, Limits
from rpcinspect.output.console import Stats
from rpcinspect.parallel.worker import (
    PLAIN,
    TAG_ANOMALY,
    TAG_EPM,
    TAG_FLUSH,
    TAG_UNNAMED,
    Job,
    serializer,
    work,
)
from rpcinspect.records import Record, SummaryRecord
from rpcinspect.runtime import Run

__all__ = ["AUTO_MIN_BYTES", "MAX_AUTO_JOBS", "ParallelError", "ParallelRun", "auto_jobs"]

AUTO_MIN_BYTES = 64 << 20
"""``--jobs auto`` runs one process below this much input: starting workers would cost more."""
MAX_AUTO_JOBS = 8
"""``--jobs auto`` uses at most this many workers (the parent's merge becomes the limit)."""
_PER_FILE_COUNTERS = ("files_truncated", "frames_unsupported_linktype")
_QUEUED = 50_000  # records read ahead per worker while the merge waits for another


def _widen(conn: Connection) -> None:
    """A 1 MiB pipe (Linux; the default is 64 KiB): a batch crosses in a few system calls."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[attr-defined]


class ParallelError(RuntimeError):
    """A worker failed or died; the message says how."""


def auto_jobs(paths: Iterable[Path]) -> int:
    """Workers for ``--jobs auto``: the usable cores (at most 8) for large plain captures, else 1."""
    paths = list(paths)
    if not fastscan.available() or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if any(p.suffix == ".gz" for p in paths):
        return 1  # no C selector on compressed input: every worker would decode every packet
    size = sum(p.stat().st_size for p in paths if p.is_file())
    if size < AUTO_MIN_BYTES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_JOBS))


class ParallelRun:
    """Runs *jobs* workers over *paths* and writes their merged output with ``write``.

    After :meth:`run`, :attr:`summary` is the run's summary record and :attr:`stats` the merged
    console statistics (when asked for)."""

    def __init__(
        self,
        paths: list[Path],
        jobs: int,
        fmt: str | None,
        *,
        want_stats: bool = False,
        progress: Callable[[str, int], None] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        options: dict[str, Any] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.paths = paths
        self.jobs = jobs
        self.fmt = fmt
        self.want_stats = want_stats
        self.progress = progress
        self.limits = limits
        self.options = dict(options or {}, limits=limits)
        self.summary: SummaryRecord | None = None
        self.stats: Stats | None = None
        self._anomalies: Counter[tuple[int, str]] = Counter()
        self._write: Callable[[Any], None] = lambda _data: None
        self._ser = serializer(fmt)
        self._stats = Stats() if want_stats else None
        # the run's endpoint knowledge and late naming, as one process has them (engine.analyze)
        self.run_state = Run(catalog or load_catalog(), self._emit, limits=limits)
        self._mapper = EndpointMapper(self.run_state)
        self._late = LateNamer(self.run_state, Resolver(self.run_state.catalog, None, self._mapper))
        self._mapper.on_learn = self._late.retry

    def run(self, write: Callable[[Any], None]) -> None:
        """Starts the workers, writes every record's serialised form in order, then stops them."""
        started = time.perf_counter()
        self._write = write
        ctx = multiprocessing.get_context("fork")
        conns: list[Connection] = []
        procs = []
        try:
            for i in range(self.jobs):
                recv, send = ctx.Pipe(duplex=False)
                _widen(recv)
                job = Job(self.paths, i, self.jobs, self.fmt, self.want_stats,
                          i == 0 and self.progress is not None, self.options)  # fmt: skip
                p = ctx.Process(target=work, args=(send, job), daemon=True, name=f"rpcinspect-shard-{i}")
                p.start()
                send.close()
                conns.append(recv)
                procs.append(p)
            finals = self._merge(conns, write)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
            for c in conns:
                c.close()
        self._finish(finals, time.perf_counter() - started)

    def _merge(self, conns: list[Connection], write: Callable[[Any], None]) -> list[tuple[Any, Any]]:
        n = len(conns)
        queues: list[deque[tuple[Any, ...]]] = [deque() for _ in range(n)]
        marks: list[Any] = [None] * n  # a worker's watermark: its later keys all sort after it
        done = [False] * n
        finals: list[Any] = [None] * n
        admit = self._admit
        # Keys rise within a worker; equal keys across workers (their end-of-file markers) go in
        # worker order. A worker's watermark m promises keys above m: items up to m may pass.
        while True:
            best = None
            for i in range(n):
                if queues[i] and (best is None or queues[i][0][0] < queues[best][0][0]):
                    best = i
            head = queues[best][0][0] if best is not None else None
            need = None
            for i in range(n):
                m = marks[i]
                if queues[i] or done[i] or (head is not None and m is not None and m >= head):
                    continue  # this worker holds nothing back
                if need is None or m is None or (marks[need] is not None and m < marks[need]):
                    need = i
            if need is not None:
                self._pull(conns, need, queues, marks, done, finals)
                continue
            if best is None:
                return finals
            bound: tuple[Any, int] | None = None  # (key, rank): best's items below it may pass
            for j in range(n):
                if j == best or (done[j] and not queues[j]):
                    continue
                b = (queues[j][0][0], j) if queues[j] else (marks[j], n)
                if bound is None or b < bound:
                    bound = b
            q = queues[best]
            while q and (bound is None or (q[0][0], best) < bound):
                item = q.popleft()
                if item[1] == PLAIN:
                    write(item[3])
                else:
                    admit(item, write)

    def _pull(self, conns: list[Connection], need: int, queues: list[deque[tuple[Any, ...]]],
              marks: list[Any], done: list[bool], finals: list[Any]) -> None:  # fmt: skip
        """Reads until worker *need* has sent something, taking whatever else is ready meanwhile
        (so no worker waits on the merge while another computes), up to a bound per worker."""
        while True:
            listen = [
                c for i, c in enumerate(conns) if not done[i] and (i == need or len(queues[i]) < _QUEUED)
            ]
            for c in wait(listen):
                i = conns.index(c)  # type: ignore[arg-type]
                self._read(c, i, queues, marks, done, finals)
                if i == need:
                    return

    def _read(self, conn: Connection, i: int, queues: list[deque[tuple[Any, ...]]], marks: list[Any],
              done: list[bool], finals: list[Any]) -> None:  # fmt: skip
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            raise ParallelError(f"worker {i} ended without finishing (killed, or out of memory?)") from None
        kind = msg[0]
        if kind == "b":
            queues[i].extend(msg[1])
            if msg[2] is not None:
                marks[i] = msg[2]
        elif kind == "p":
            if self.progress is not None:
                self.progress(msg[1], msg[2])
        elif kind == "d":
            finals[i] = (msg[1], msg[2])
            done[i] = True
        else:
            raise ParallelError(f"worker {i}: {msg[1]}")

    def _admit(self, item: tuple[Any, ...], write: Callable[[Any], None]) -> None:
        """What the run, not a shard, decides: an anomaly within the per-file budget; naming."""
        key, tag, extra, data = item
        if tag == TAG_ANOMALY:
            k = (key[0], extra)
            self._anomalies[k] += 1
            if self._anomalies[k] <= self.limits.max_anomalies_per_kind:
                write(data)
        elif tag == TAG_UNNAMED:
            self._late.offer(extra.rec, extra.key)
        elif tag == TAG_EPM:
            self._mapper.answer(*extra)
        elif tag == TAG_FLUSH:
            self._late.flush()

    def _emit(self, rec: Record) -> None:
        """Records the parent itself writes: endpoints, and calls it named or held."""
        if self._stats is not None:
            self._stats.write(rec)
        data = self._ser(rec)
        if data is not None:
            self._write(data)

    def _finish(self, finals: list[Any], wall: float) -> None:
        summaries = [f[0] for f in finals if f is not None and f[0] is not None]
        if not summaries:
            raise ParallelError("no worker finished")
        first: SummaryRecord = summaries[0]
        total: Counter[str] = Counter()
        for s in summaries:
            total.update(s.counters)
        for name in _PER_FILE_COUNTERS:
            if name in first.counters:
                total[name] = first.counters[name]
        total.update(self.run_state.counters)
        counters = dict(sorted(total.items()))
        self.summary = SummaryRecord(
            first.files, first.frames, first.bytes, counters.get("calls", 0), counters.get("binds", 0),
            counters.get("tcp_connections", 0), round(wall, 6), counters, first.errors,
        )  # fmt: skip
        if self._stats is not None:
            stats = self._stats
            for f in finals:
                if f is not None and f[1] is not None:
                    stats.merge(f[1])
            self.stats = stats
