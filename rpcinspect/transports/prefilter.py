"""Packet sources for a capture file: one-pass selection in C when possible, pure Python otherwise.

On mixed traffic most packets cannot be DCE/RPC, and touching each one in Python costs more than
tshark's whole dissection budget. With the optional C extension
(:mod:`rpcinspect.capture.fastscan`), libpcap reads the file and a small C selector
(``rpcselect.h``) passes to Python only the packets of TCP ports known to carry DCE/RPC: ports
are learned in the same pass, the moment a packet's payload starts with a plausible PDU header
(or a stream's first segment is too short to judge), so a single pass suffices, as it must for a
live interface. Pure TCP ACKs on those ports are dropped too: they cannot carry RPC.

Frame numbers are still Wireshark's: the C loop counts every record. gzip files, a missing
extension, or a file libpcap cannot read fall back to :class:`~rpcinspect.capture.reader.CaptureReader`;
the records are the same either way (``tests/test_prefilter.py`` checks it on every capture).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Protocol

from rpcinspect.capture import fastscan
from rpcinspect.capture.link import SUPPORTED_LINKTYPES
from rpcinspect.capture.reader import Packet, open_capture
from rpcinspect.errors import InputError

__all__ = ["ALWAYS_TCP_PORTS", "PacketSource", "PrefilteredSource", "open_source"]

ALWAYS_TCP_PORTS: Final = frozenset((135, 139, 445, 593))
"""Decoded even when no PDU start was seen there (captures that begin mid-stream; SMB named pipes,
whose PDUs sit inside SMB messages; ncacn_http on 593, whose streams start with a text banner)."""


class PacketSource(Protocol):
    """What the engine reads packets from."""

    frames: int
    bytes_read: int
    last_ts: float
    truncated: bool
    error: str | None

    def __iter__(self) -> Iterator[Packet]: ...
    def batches(self) -> Iterator[list[Packet]]: ...
    def close(self) -> None: ...


class PrefilteredSource:
    """One libpcap pass with C-side DCE/RPC flow selection."""

    def __init__(self, path: Path, shard: tuple[int, int] | None = None) -> None:
        self.path = path
        self.frames = 0
        self.bytes_read = 0
        self.last_ts = 0.0
        self.truncated = False
        self.error: str | None = None
        self.passed = 0
        self.tcp_ports: list[int] = sorted(ALWAYS_TCP_PORTS)
        self._fs = fastscan.FastScan(path, "")
        self.linktype = self._fs.linktype
        index, count = shard or (0, 1)
        self._fs.select_rpc(ALWAYS_TCP_PORTS, (), decode=True, shards=count, shard=index)

    def __iter__(self) -> Iterator[Packet]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Packet]]:
        """Lists of packets, as the C scanner hands them over (cheaper than one yield each)."""
        lt = self._fs.linktype
        for batch in self.raw_batches():
            # decoded packets are (frame, ts_ns, segment): the segment rides where the frame bytes
            # would, and the engine skips its own decoding (see Packet)
            yield [(p[0], p[1] / 1_000_000_000, lt, p[-1]) for p in batch]

    def raw_batches(self) -> Iterator[list[tuple[Any, ...]]]:
        """The scanner's own batches: ``(frame, ts_ns, segment)`` for decoded TCP/UDP packets,
        ``(frame, ts_ns, orig_len, data)`` for others (the shape ``flows._fastpath.feed`` takes)."""
        fs = self._fs
        for batch in fs.batches():
            self.passed += len(batch)
            self.frames = fs.frames_seen
            self.bytes_read = max(self.bytes_read, fs.bytes_read)
            yield batch
        self.frames = fs.frames_seen
        self.last_ts = fs.last_ts
        self.truncated = fs.truncated
        self.error = fs.error
        self.tcp_ports = fs.rpc_ports()[0]
        with contextlib.suppress(OSError):
            self.bytes_read = self.path.stat().st_size

    def close(self) -> None:
        self._fs.close()

    def __enter__(self) -> PrefilteredSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    path: str | Path, *, prefilter: bool = True, shard: tuple[int, int] | None = None
) -> PacketSource:
    """The fastest source that can read *path*; raises :class:`~rpcinspect.errors.InputError`.

    *shard* ``(index, count)`` lets the C selector pass only that shard's decoded packets (the
    pure reader passes everything: the engine shards those itself)."""
    p = Path(path)
    if prefilter and fastscan.available():
        try:
            src = PrefilteredSource(p, shard)
        except (fastscan.FastScanUnsupported, InputError, ValueError):
            pass  # the pure reader reads it, or raises the clearer one-line error
        else:
            if src.linktype in SUPPORTED_LINKTYPES:
                return src
            src.close()
    return open_capture(p)
