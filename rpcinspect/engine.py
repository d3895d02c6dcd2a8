"""Wires a packet source to the stages and yields records: the unit a worker runs.

``analyze(paths)`` is the whole passive pipeline as a generator of records (calls and binds as
they complete, anomalies as they happen, one summary last). It never raises for damaged
traffic; an unreadable *file* is reported in the summary's ``errors`` (and, for a single input,
raised as :class:`~rpcinspect.errors.InputError` by :func:`analyze_file` users who want that).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from rpcinspect.auth.keytab import Keytab
from rpcinspect.auth.secrets import Secret
from rpcinspect.capture.link import LINKTYPE_NAMES, SUPPORTED_LINKTYPES, decode
from rpcinspect.capture.shard import shard_of
from rpcinspect.catalog import Catalog, load_catalog
from rpcinspect.dcerpc.attach import TcpSelector
from rpcinspect.dcerpc.classoc import ClCalls
from rpcinspect.dcerpc.epm import EPM_UUID, EndpointMapper, answer_of
from rpcinspect.dcerpc.latename import LateNamer
from rpcinspect.dcerpc.resolve import Resolver, parse_decode_as
from rpcinspect.errors import InputError
from rpcinspect.flows.tcp import TcpTable
from rpcinspect.limits import DEFAULT_LIMITS, Limits
from rpcinspect.records import CallRecord, Record, SummaryRecord
from rpcinspect.runtime import END_OF_INPUT, Run
from rpcinspect.transports.cotcp import CoFramer, Header
from rpcinspect.transports.prefilter import PrefilteredSource, open_source
from rpcinspect.transports.udp import UdpTable

try:
    from rpcinspect.flows import _fastpath  # type: ignore[attr-defined]
except ImportError:  # the C extension was not built: the pure loop below does the same
    _fastpath = None

__all__ = ["NAMING_FLUSH", "EpmAnswer", "OrderKey", "Progress", "Unnamed", "analyze", "analyze_shard"]

Progress = Callable[[str, int], None]
"""Called as ``progress(path, bytes_read)`` every few thousand packets."""


def _sharded(feed: Callable[..., None], mine: Callable[[bytes, bytes], bool]) -> Callable[..., None]:
    """*feed* (a table's ``segment`` or ``datagram``) for this shard's address pairs only."""

    def sharded(seg: tuple, frame: int, ts: float) -> None:  # type: ignore[type-arg]
        if mine(seg[1], seg[2]):
            feed(seg, frame, ts)

    return sharded


def _raw_path(
    linktype: int, segment: Callable[..., None], datagram: Callable[..., None]
) -> Callable[[int, float, bytes], None]:
    """What the engine loop does with a packet the C scanner did not decode (IP fragments, ...)."""

    def raw(frame: int, ts: float, data: bytes) -> None:
        seg = decode(linktype, data)
        if seg is not None:
            if seg[0] == 6:
                segment(seg, frame, ts)
            else:
                datagram(seg, frame, ts)

    return raw


def analyze(
    paths: Iterable[str | Path],
    *,
    catalog: Catalog | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    prefilter: bool = True,
    decode_as: Iterable[str] = (),
    secrets: list[Secret] | None = None,
    keytab: Keytab | None = None,
) -> Iterator[Record]:
    """Decodes every capture in *paths*, in order; yields records, then one summary record.

    *prefilter* lets libpcap drop packets that cannot be DCE/RPC before Python sees them (when
    the C extension is built and the file is not compressed); the records are the same either way.

    *decode_as* holds ``HOST:PORT=UUID[:VERSION]`` / ``PIPE=UUID[:VERSION]`` rules naming calls whose
    bind is not in the capture (before endpoint-mapper learning and well-known pipes); a bad rule
    raises :class:`~rpcinspect.errors.ConfigError` before anything is read.

    *secrets* (NT hashes) open NTLM-sealed stubs, *keytab* (Kerberos keys) Kerberos-sealed ones.
    """
    yield from _pipeline(paths, None, catalog, limits, progress, prefilter, decode_as, secrets, keytab)


class Unnamed(NamedTuple):
    """From a shard: a finished call its worker could not name, and what names it (the parent
    offers it to the run's :class:`~rpcinspect.dcerpc.latename.LateNamer`)."""

    rec: CallRecord
    key: tuple[str, str, int, str | None]


class EpmAnswer(NamedTuple):
    """From a shard: an endpoint-mapper answer, as :meth:`EndpointMapper.answer` takes it."""

    args: tuple[str, int | None, str, bool, float, int, bytes]


NAMING_FLUSH = "naming_flush"
"""From a shard: the end of an input file, where the run's waiting calls are written."""

OrderKey = tuple[int, int, int, int]
"""``(file index, frame or end phase, sub, sequence)``: sorts a shard's records into the order one
process would write them (see :attr:`Run.frame <rpcinspect.runtime.Run.frame>`)."""


def analyze_shard(
    paths: Iterable[str | Path],
    shard: int,
    shards: int,
    *,
    catalog: Catalog | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    prefilter: bool = True,
    decode_as: Iterable[str] = (),
    secrets: list[Secret] | None = None,
    keytab: Keytab | None = None,
) -> Iterator[tuple[OrderKey, Record]]:
    """:func:`analyze` restricted to the address pairs of one shard (:mod:`rpcinspect.capture.shard`),
    each record with its :data:`OrderKey`; a batch of packets with no record yields
    ``(key, None)``, a watermark: this shard's later records all sort after *key*."""
    yield from _pipeline(paths, (shard, shards), catalog, limits, progress, prefilter, decode_as,  # type: ignore[misc]
                         secrets, keytab)  # fmt: skip


def _pipeline(
    paths: Iterable[str | Path],
    shard: tuple[int, int] | None,
    catalog: Catalog | None,
    limits: Limits,
    progress: Progress | None,
    prefilter: bool,
    decode_as: Iterable[str],
    secrets: list[Secret] | None,
    keytab: Keytab | None,
) -> Iterator[object]:
    """The one loop behind :func:`analyze` and :func:`analyze_shard` (*shard*: ``(index, count)``):
    the run emits into *out*, which is yielded from after every batch of packets."""
    out: list[object] = []
    run = Run(catalog or load_catalog(), out.append, limits=limits)
    file_index = 0
    clock = None
    mine: Callable[[bytes, bytes], bool] | None = None
    if shard is not None:
        index, count = shard
        clock = run  # the C fast path keeps run.frame current
        seq = itertools.count()

        def keyed(rec: Record) -> None:
            out.append(((file_index, run.frame, run.sub, next(seq)), rec))

        def mine(src: bytes, dst: bytes) -> bool:
            return shard_of(src, dst, count) == index

        run.emit = keyed
    emit = run.emit

    run.secrets = secrets or ([] if keytab else None)  # a list turns stub decryption on
    run.keytab_keys = keytab or None
    rules = parse_decode_as(decode_as, run.catalog)
    if shard is None:
        mapper = EndpointMapper(run)
        run.resolver = Resolver(run.catalog, rules, mapper)
        late = LateNamer(run, run.resolver)
        run.unnamed, mapper.on_learn = late.hold, late.retry
        flush_naming = late.flush
    else:  # endpoint knowledge is the run's, not a shard's: the parent names (see ShardNaming)
        run.resolver = Resolver(run.catalog, rules, None, pipes=False)
        run.unnamed = lambda rec, key: emit(Unnamed(rec, key))  # type: ignore[arg-type]
        run.add_stub_tap(
            EPM_UUID, frozenset((2, 3)), lambda rec, _q, resp: emit(EpmAnswer(answer_of(rec, resp)))
        )  # type: ignore[arg-type]
        flush_naming = lambda: emit(NAMING_FLUSH)  # type: ignore[arg-type]  # noqa: E731
    started = time.perf_counter()
    files: list[str] = []
    errors: list[str] = []
    frames = nbytes = 0
    for path in paths:
        file_index = len(files)
        run.frame = run.sub = 0
        files.append(str(path))
        run.reset_anomaly_budget()
        try:
            reader = open_source(path, prefilter=prefilter, shard=shard)
        except InputError as exc:
            errors.append(str(exc))
            continue
        table = TcpTable(run, TcpSelector(run))
        udp = UdpTable(run, ClCalls(run))
        last_frame, last_ts, max_ts = 0, 0.0, 0.0
        bad_links: set[int] = set()
        with reader:
            segment, datagram = table.segment, udp.datagram
            fast = _fastpath is not None and isinstance(reader, PrefilteredSource)
            if mine is not None:  # what Python decodes itself was not sharded in C
                segment, datagram = _sharded(segment, mine), _sharded(datagram, mine)
            if fast:
                raw = _raw_path(reader.linktype, segment, datagram)
                if mine is not None:  # C sharded what it decoded: only Python's own need checking
                    segment, datagram = table.segment, udp.datagram
                # in-order segments of whole PDUs go to their association in C, the rest to Python
                for rb in reader.raw_batches():
                    max_ts = max(
                        max_ts, _fastpath.feed(table, rb, CoFramer, Header, segment, datagram, raw, clock)
                    )
                    if rb:
                        last_frame, last_ts = rb[-1][0], rb[-1][1] / 1_000_000_000
                    if out:
                        yield from out
                        out.clear()
                    if shard is not None:  # a watermark: nothing this shard writes later sorts before
                        yield ((file_index, last_frame, END_OF_INPUT, 0), None)
                    if progress is not None:
                        progress(str(path), reader.bytes_read)
            batches = () if fast else reader.batches()
            for batch in batches:
                for frame, ts, linktype, data in batch:
                    if data.__class__ is tuple:
                        seg = data  # decoded in C by the prefilter
                    elif linktype in SUPPORTED_LINKTYPES:
                        seg = decode(linktype, data)
                    else:
                        if linktype not in bad_links:
                            bad_links.add(linktype)
                            run.count("frames_unsupported_linktype")
                        continue
                    if ts > max_ts:
                        max_ts = ts
                    if seg is not None:
                        if seg[0] == 6:
                            segment(seg, frame, ts)
                        else:
                            datagram(seg, frame, ts)
                        if out:
                            yield from out
                            out.clear()
                if batch:
                    last_frame, last_ts = batch[-1][0], batch[-1][1]
                    if shard is not None:
                        yield ((file_index, last_frame, END_OF_INPUT, 0), None)
                if progress is not None:
                    progress(str(path), reader.bytes_read)
            # end of input, in phases (Run.frame orders a parallel run's records by them)
            run.frame = END_OF_INPUT
            table.expire(max(max_ts, reader.last_ts), last_frame)
            run.frame = END_OF_INPUT + 1
            table.close_all("end_of_capture", last_frame, last_ts)
            run.frame = END_OF_INPUT + 2
            udp.expire(max(max_ts, reader.last_ts), last_frame)
            run.frame = END_OF_INPUT + 3
            udp.close_all("end_of_capture")
            run.frame = END_OF_INPUT + 4
            flush_naming()
            frames += reader.frames
            nbytes += reader.bytes_read
            if progress is not None:
                progress(str(path), reader.bytes_read)
        yield from out
        out.clear()
        if reader.frames and bad_links and not run.counters.get("tcp_connections"):
            names = ", ".join(f"{lt} ({LINKTYPE_NAMES.get(lt, 'unknown')})" for lt in sorted(bad_links))
            errors.append(f"{path}: unsupported link type {names}")
        elif bad_links:
            errors.append(f"{path}: some frames have an unsupported link type {sorted(bad_links)}")
        if reader.truncated:
            run.count("files_truncated")
            errors.append(
                f"{path}: truncated after frame {reader.frames}"
                + (f" ({reader.error})" if reader.error else "")
            )
        elif reader.error:
            errors.append(f"{path}: corrupt capture after frame {reader.frames} ({reader.error})")
    counters = dict(sorted(run.counters.items()))
    run.frame, run.sub = END_OF_INPUT + 5, 0
    emit(
        SummaryRecord(
            files,
            frames,
            nbytes,
            counters.get("calls", 0),
            counters.get("binds", 0),
            counters.get("tcp_connections", 0),
            round(time.perf_counter() - started, 6),
            counters,
            errors,
        )
    )
    yield from out
    out.clear()
