"""Packet sources for a capture file: libpcap BPF prefilter when possible, pure Python otherwise.

On mixed traffic most packets cannot be DCE/RPC, and touching each one in Python costs more than
tshark's whole dissection budget. With the optional C extension
(:mod:`rpcinspect.capture.fastscan`) a file is read twice by libpcap, in C:

1. **discovery**: only packets whose TCP payload *starts* like a DCE/RPC PDU reach Python, which
   notes each server port (the destination of a bind/request, the source of an answer). Each
   newly found port is excluded from the rest of the pass, so Python sees a handful of packets.
2. **decode**: only packets to or from those ports (plus the well-known ones) reach the pipeline,
   and pure TCP ACKs (no payload, no SYN/FIN/RST), which cannot carry RPC, are dropped too.

Frame numbers are still Wireshark's: the C loop counts every record. gzip files, a missing
extension, or a file libpcap cannot read fall back to :class:`~rpcinspect.capture.reader.CaptureReader`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol

from rpcinspect.capture import fastscan
from rpcinspect.capture.link import SUPPORTED_LINKTYPES, decode
from rpcinspect.capture.reader import Packet, open_capture
from rpcinspect.errors import InputError
from rpcinspect.transports.cotcp import plausible

__all__ = ["ALWAYS_TCP_PORTS", "PacketSource", "PrefilteredSource", "open_source"]

ALWAYS_TCP_PORTS: Final = frozenset((135,))
"""Decoded even when no PDU start was seen there (captures that begin mid-stream)."""
_CLIENT_PTYPES: Final = frozenset((0, 11, 14, 16, 18, 19))
_SERVER_PTYPES: Final = frozenset((2, 3, 12, 13, 15, 17))
# IPv4 TCP with no payload and none of SYN/FIN/RST (offsets valid only on untagged frames; tagged
# frames simply fail the `ip` test and pass).
_TCP4_LEN = "(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2))"
_TCP6_LEN = "(ip6[4:2] - ((ip6[52] & 0xf0) >> 2))"
# Segments too short to hold a PDU header: a stream whose first header is split across segments
# must still be discovered (otherwise splitting the header would evade the prefilter).
_SHORT: Final = (
    f"(ip and tcp and {_TCP4_LEN} > 0 and {_TCP4_LEN} < 16)"
    f" or (ip6 and ip6[6] = 6 and {_TCP6_LEN} > 0 and {_TCP6_LEN} < 16)"
)
_SYN4 = "(ip and tcp and tcp[13] & 2 != 0)"
_SYN6 = "(ip6 and ip6[6] = 6 and ip6[53] & 2 != 0)"
_MAX_STREAMS: Final = 1_000_000
_Key = tuple[bytes, int, bytes, int]
_PURE_ACK: Final = f"(ip and tcp and tcp[13] & 7 = 0 and {_TCP4_LEN} = 0)"


def _first_filter(dlt: int) -> str:
    return f"{_SYN4} or {_SYN6} or {_SHORT} or ({fastscan.bpf_dcerpc_starts(dlt, vlan_tags=2)})"


def _discovery_filter(dlt: int, found: set[int]) -> str:
    """Pass-1 filter once *found* ports are known: the same, minus traffic on those ports."""
    return f"not ({fastscan.bpf_ports(found, (), dlt, vlan_tags=0)}) and ({_first_filter(dlt)})"


class PacketSource(Protocol):
    """What the engine reads packets from."""

    frames: int
    bytes_read: int
    last_ts: float
    truncated: bool
    error: str | None

    def __iter__(self) -> Iterator[Packet]: ...
    def close(self) -> None: ...


class PrefilteredSource:
    """Two libpcap passes over one file; iterates the packets that can matter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = 0
        self.bytes_read = 0
        self.truncated = False
        self.error: str | None = None
        self.last_ts = 0.0
        self.tcp_ports: set[int] = set(ALWAYS_TCP_PORTS)
        self.passed = 0
        self._discover()

    def _discover(self) -> None:
        """Pass 1: find the TCP ports DCE/RPC runs on (see the module docstring).

        A stream whose first data segment is too short to hold a header (a split header, as an
        evasion or by accident) cannot be judged here; its server port goes to pass 2, whose
        full pipeline reassembles the first bytes and decides.
        """
        with fastscan.FastScan(self.path, _first_filter) as fs:
            lt = fs.linktype
            self.linktype = lt
            found = self.tcp_ports
            starts: dict[_Key, tuple[int, int]] = {}  # stream -> (first data seq, server port)
            for batch in fs.batches():
                before = len(found)
                for _frame, _ts, _olen, data in batch:
                    seg = decode(lt, data)
                    if seg is None or seg[0] != 6:
                        continue
                    payload = seg[8]
                    if seg[7] & 0x02:  # SYN or SYN-ACK: remember where this direction's data starts
                        if len(starts) >= _MAX_STREAMS:
                            starts.clear()
                        server = seg[3] if seg[7] & 0x10 else seg[4]
                        starts[(seg[1], seg[3], seg[2], seg[4])] = ((seg[5] + 1) & 0xFFFFFFFF, server)
                        continue
                    if len(payload) < 16:
                        st = starts.pop((seg[1], seg[3], seg[2], seg[4]), None)
                        if st is not None and st[0] == seg[5]:
                            found.add(st[1])
                        continue
                    if not plausible(payload, 0):
                        continue
                    ptype = payload[2]
                    if ptype in _CLIENT_PTYPES:
                        found.add(seg[4])
                    elif ptype in _SERVER_PTYPES:
                        found.add(seg[3])
                if len(found) != before:
                    fs._sc.setfilter(_discovery_filter(fs.dlt, found))
            if fs.error and not fs.truncated:
                raise fastscan.FastScanUnsupported(fs.error)

    def __iter__(self) -> Iterator[Packet]:
        def bpf(dlt: int) -> str:
            return f"not {_PURE_ACK} and ({fastscan.bpf_ports(self.tcp_ports, (), dlt, vlan_tags=2)})"

        with fastscan.FastScan(self.path, bpf) as fs:
            lt = fs.linktype
            for batch in fs.batches():
                self.passed += len(batch)
                self.frames = fs.frames_seen
                self.bytes_read = max(self.bytes_read, fs.bytes_read)
                for frame, ts_ns, _olen, data in batch:
                    yield frame, ts_ns / 1_000_000_000, lt, data
            self.frames = fs.frames_seen
            self.last_ts = fs.last_ts
            self.truncated = fs.truncated
            self.error = fs.error
        with contextlib.suppress(OSError):
            self.bytes_read = self.path.stat().st_size

    def close(self) -> None:
        """Nothing held between passes."""

    def __enter__(self) -> PrefilteredSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path: str | Path, *, prefilter: bool = True) -> PacketSource:
    """The fastest source that can read *path*; raises :class:`~rpcinspect.errors.InputError`."""
    p = Path(path)
    if prefilter and fastscan.available():
        try:
            src = PrefilteredSource(p)
            if src.linktype in SUPPORTED_LINKTYPES:
                return src
        except (fastscan.FastScanUnsupported, InputError, ValueError):
            pass  # the pure reader reads it, or raises the clearer one-line error
    return open_capture(p)
