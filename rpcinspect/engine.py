"""Wires a packet source to the stages and yields records: the unit a worker runs.

``analyze(paths)`` is the whole passive pipeline as a generator of records (calls and binds as
they complete, anomalies as they happen, one summary last). It never raises for damaged
traffic; an unreadable *file* is reported in the summary's ``errors`` (and, for a single input,
raised as :class:`~rpcinspect.errors.InputError` by :func:`analyze_file` users who want that).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rpcinspect.auth.keytab import Keytab
from rpcinspect.auth.secrets import Secret
from rpcinspect.capture.link import LINKTYPE_NAMES, SUPPORTED_LINKTYPES, decode
from rpcinspect.catalog import Catalog, load_catalog
from rpcinspect.dcerpc.attach import TcpSelector
from rpcinspect.dcerpc.classoc import ClCalls
from rpcinspect.dcerpc.epm import EndpointMapper
from rpcinspect.dcerpc.latename import LateNamer
from rpcinspect.dcerpc.resolve import Resolver, parse_decode_as
from rpcinspect.errors import InputError
from rpcinspect.flows.tcp import TcpTable
from rpcinspect.limits import DEFAULT_LIMITS, Limits
from rpcinspect.records import Record, SummaryRecord
from rpcinspect.runtime import Run
from rpcinspect.transports.cotcp import CoFramer, Header
from rpcinspect.transports.prefilter import PrefilteredSource, open_source
from rpcinspect.transports.udp import UdpTable

try:
    from rpcinspect.flows import _fastpath  # type: ignore[attr-defined]
except ImportError:  # the C extension was not built: the pure loop below does the same
    _fastpath = None

__all__ = ["Progress", "analyze"]

Progress = Callable[[str, int], None]
"""Called as ``progress(path, bytes_read)`` every few thousand packets."""


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
    out: list[Record] = []
    run = Run(catalog or load_catalog(), out.append, limits=limits)
    run.secrets = secrets or ([] if keytab else None)  # a list turns stub decryption on
    run.keytab_keys = keytab or None
    rules = parse_decode_as(decode_as, run.catalog)
    mapper = EndpointMapper(run)
    run.resolver = Resolver(run.catalog, rules, mapper)
    late = LateNamer(run, run.resolver)
    run.unnamed, mapper.on_learn = late.hold, late.retry
    started = time.perf_counter()
    files: list[str] = []
    errors: list[str] = []
    frames = nbytes = 0
    for path in paths:
        files.append(str(path))
        run.reset_anomaly_budget()
        try:
            reader = open_source(path, prefilter=prefilter)
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
            if fast:
                raw = _raw_path(reader.linktype, segment, datagram)
                # in-order segments of whole PDUs go to their association in C, the rest to Python
                for rb in reader.raw_batches():
                    max_ts = max(max_ts, _fastpath.feed(table, rb, CoFramer, Header, segment, datagram, raw))
                    if out:
                        yield from out
                        out.clear()
                    if rb:
                        last_frame, last_ts = rb[-1][0], rb[-1][1] / 1_000_000_000
                    if progress is not None:
                        progress(str(path), reader.bytes_read)
            for batch in () if fast else reader.batches():
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
                if progress is not None:
                    progress(str(path), reader.bytes_read)
            table.expire(max(max_ts, reader.last_ts), last_frame)
            table.close_all("end_of_capture", last_frame, last_ts)
            udp.expire(max(max_ts, reader.last_ts), last_frame)
            udp.close_all("end_of_capture")
            late.flush()
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
    yield SummaryRecord(
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
