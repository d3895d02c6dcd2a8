"""Machine output: JSON Lines, one JSON document, CSV. All implement :class:`Sink`.

Records are frozen dataclasses; orjson serialises them natively (fast enough for the hot path),
so the writers never build intermediate dicts except for CSV's flat rows.
"""

from __future__ import annotations

import csv
import dataclasses
from typing import IO, Protocol

import orjson

from rpcinspect.records import SCHEMA_VERSION, CallRecord, Record

__all__ = ["CALL_FIELDS", "CsvWriter", "JsonWriter", "JsonlWriter", "Sink", "make_writer"]

CALL_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))


class Sink(Protocol):
    """Where records go. ``close`` finishes the document (the stream itself is the caller's)."""

    def write(self, rec: Record) -> None: ...
    def write_raw(self, data: bytes | str) -> None: ...
    def close(self) -> None: ...


class JsonlWriter:
    """One JSON object per line, every record kind, in pipeline order.

    Lines are gathered and written 256 at a time (one write call instead of 256 small ones);
    ``flush`` writes what is pending, as ``close`` does.
    """

    _BATCH = 256

    def __init__(self, stream: IO[bytes]) -> None:
        self._s = stream
        self._opt = orjson.OPT_APPEND_NEWLINE
        self._pending: list[bytes] = []

    def write(self, rec: Record) -> None:
        pending = self._pending
        pending.append(orjson.dumps(rec, option=self._opt))
        if len(pending) >= self._BATCH:
            self.flush()

    def write_raw(self, line: bytes) -> None:
        """A record a parallel worker already serialised (one line, newline included)."""
        pending = self._pending
        pending.append(line)
        if len(pending) >= self._BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._s.write(b"".join(self._pending))
            self._pending.clear()
        self._s.flush()

    def close(self) -> None:
        self.flush()


class JsonWriter:
    """A single JSON document: ``{"schema", "calls", "binds", "endpoints", "anomalies", "summary"}``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._s = stream
        self._groups: dict[str, list[object]] = {"call": [], "bind": [], "endpoint": [], "anomaly": []}
        self._summary: Record | None = None

    def write(self, rec: Record) -> None:
        if rec.record == "summary":
            self._summary = rec
        else:
            self._groups[rec.record].append(rec)

    def write_raw(self, data: bytes) -> None:
        """A record a parallel worker already serialised (compact JSON): read back, so the
        document is byte for byte what one process writes."""
        obj = orjson.loads(data)
        self._groups[obj["record"]].append(obj)

    def close(self) -> None:
        doc = {
            "schema": SCHEMA_VERSION,
            "calls": self._groups["call"],
            "binds": self._groups["bind"],
            "endpoints": self._groups["endpoint"],
            "anomalies": self._groups["anomaly"],
            "summary": self._summary,
        }
        self._s.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        self._s.flush()


class CsvWriter:
    """Call records only, one row each, columns in schema order (binds are nested: use JSON)."""

    def __init__(self, stream: IO[bytes]) -> None:
        import io

        self._raw = stream
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self._w = csv.writer(self._text)
        self._w.writerow(CALL_FIELDS)

    def write(self, rec: Record) -> None:
        if isinstance(rec, CallRecord):
            self._w.writerow(["" if v is None else v for v in (getattr(rec, f) for f in CALL_FIELDS)])

    def write_raw(self, row: str) -> None:
        """A call row a parallel worker already formatted (line ending included)."""
        self._text.write(row)

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def make_writer(fmt: str, stream: IO[bytes]) -> Sink:
    """Writer for a ``--format`` value other than ``table``."""
    return {"jsonl": JsonlWriter, "json": JsonWriter, "csv": CsvWriter}[fmt](stream)
