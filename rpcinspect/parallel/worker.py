"""A parallel run's worker: the pipeline on one shard, records serialised for the chosen format.

Records cross the process boundary as the bytes the writer would write (pickling record objects
costs the parent more than the whole pipeline saves), each with its order key and, where the
parent must decide for the whole run, a tag: an anomaly's kind (the per-kind budget is per run),
a call to name or an endpoint-mapper answer (the run's endpoint knowledge lives in the parent),
the end of a file (where waiting calls are written). One message per batch of packets ends with
a watermark, so the parent can merge without waiting for a quiet shard.
"""

from __future__ import annotations

import csv
import io
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from rpcinspect.engine import NAMING_FLUSH, EpmAnswer, Unnamed, analyze_shard
from rpcinspect.output.console import Stats
from rpcinspect.output.writers import CALL_FIELDS
from rpcinspect.records import AnomalyRecord, CallRecord, Record, SummaryRecord

__all__ = ["PLAIN", "TAG_ANOMALY", "TAG_EPM", "TAG_FLUSH", "TAG_UNNAMED", "Job", "serializer", "work"]

PLAIN, TAG_ANOMALY, TAG_UNNAMED, TAG_EPM, TAG_FLUSH = 0, 1, 2, 3, 4


def serializer(fmt: str | None) -> Callable[[Record], bytes | str | None]:
    """How a worker writes one record for *fmt* (``jsonl``, ``json``, ``csv``; None: not at all)."""
    if fmt == "jsonl":
        opt = orjson.OPT_APPEND_NEWLINE
        return lambda rec: orjson.dumps(rec, option=opt)
    if fmt == "json":
        return orjson.dumps
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)

        def row(rec: Record) -> str | None:
            if rec.__class__ is not CallRecord:
                return None
            w.writerow(["" if v is None else v for v in (getattr(rec, f) for f in CALL_FIELDS)])
            text = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return text

        return row
    return lambda rec: None


@dataclass
class Job:
    """What one worker runs: shard *index* of *count* over *paths*, written for *fmt*."""

    paths: list[Path]
    index: int
    count: int
    fmt: str | None
    want_stats: bool
    report_progress: bool
    options: dict[str, Any]


def work(conn: Connection, job: Job) -> None:
    """Runs *job* and sends ``("b", items, watermark)`` batches, ``("p", path, bytes)`` progress,
    then ``("d", summary, stats)``; ``("x", text)`` if it failed."""
    try:
        _work(conn, job)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # the parent reports it in one line
        conn.send_bytes(pickle.dumps(("x", f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _work(conn: Connection, job: Job) -> None:
    send = conn.send_bytes
    dumps = pickle.dumps
    ser = serializer(job.fmt)
    stats = Stats() if job.want_stats else None
    summary: SummaryRecord | None = None

    def progress(path: str, nbytes: int) -> None:
        send(dumps(("p", path, nbytes)))

    items: list[tuple[Any, ...]] = []
    report = progress if job.report_progress else None
    for key, rec in analyze_shard(job.paths, job.index, job.count, progress=report, **job.options):
        if rec is None:  # watermark: the end of a batch of packets
            send(dumps(("b", items, key)))
            items = []
            continue
        cls = rec.__class__
        if cls is SummaryRecord:
            summary = rec  # type: ignore[assignment]
            continue
        if cls is Unnamed:
            items.append((key, TAG_UNNAMED, rec, None))
            continue
        if cls is EpmAnswer:
            items.append((key, TAG_EPM, rec.args, None))  # type: ignore[attr-defined]
            continue
        if rec is NAMING_FLUSH:
            items.append((key, TAG_FLUSH, None, None))
            continue
        if stats is not None:
            stats.write(rec)
        data = ser(rec)
        if cls is AnomalyRecord:
            if data is not None:
                items.append((key, TAG_ANOMALY, rec.kind, data))  # type: ignore[attr-defined]
        elif data is not None:
            items.append((key, PLAIN, None, data))
    send(dumps(("b", items, None)))
    send(dumps(("d", summary, stats)))
