"""libpcap-backed pre-filter: drop packets that cannot be DCE/RPC in C, keep Wireshark frame numbers.

The optional extension :mod:`rpcinspect.capture._pcapscan` reads a pcap/pcapng file with libpcap,
applies a BPF filter with ``pcap_offline_filter`` (so every record is still counted) and returns the
matching packets in batches, with the GIL released while it reads. Python then only touches the few
packets that matter.

Use :func:`available` to test for the extension; :class:`FastScanUnsupported` (extension missing,
compressed file) tells the caller to fall back to the pure-Python :mod:`rpcinspect.capture.reader`.

Filters built here depend on the link type (libpcap's ``vlan`` keyword only exists for Ethernet),
so they take it as an argument; :class:`FastScan` accepts a callable ``linktype -> bpf`` for that.

Limitations of :func:`bpf_dcerpc_starts`: it selects packets whose *payload starts* like a PDU, so
TCP continuation segments, handshakes and DCE/RPC carried in SMB (ncacn_np) are not selected. Use
it to discover RPC endpoints, then re-scan with :func:`bpf_ports` to get whole conversations.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType, TracebackType

from rpcinspect.errors import InputError

_ext: ModuleType | None
try:
    _ext = importlib.import_module("rpcinspect.capture._pcapscan")
except ImportError:  # not built (no compiler / libpcap headers): callers fall back
    _ext = None

__all__ = [
    "DLT_EN10MB",
    "DLT_LINUX_SLL",
    "DLT_LINUX_SLL2",
    "DLT_LOOP",
    "DLT_NULL",
    "DLT_RAW",
    "FastPacket",
    "FastScan",
    "FastScanUnsupported",
    "available",
    "bpf_dcerpc_starts",
    "bpf_ports",
    "check_filter",
    "scan",
]

FastPacket = tuple[int, int, int, bytes]
"""``(frame_no, ts_ns, orig_len, data)``: 1-based frame number, nanoseconds since the epoch."""

DLT_NULL = 0
DLT_EN10MB = 1
DLT_RAW = 12  # what libpcap reports for LINKTYPE_RAW (101) on Linux
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_LINUX_SLL2 = 276
_VLAN_DLTS = frozenset({DLT_EN10MB, 240, 241})  # Ethernet, netANALYZER, netANALYZER transparent

# pcap_datalink() returns DLT_* values; these differ from the LINKTYPE_* stored in the file.
_DLT_TO_LINKTYPE = {11: 100, 12: 101, 15: 102, 16: 103, 19: 106}

# Compression formats libpcap 1.10 cannot read (the pure-Python reader handles gzip).
_COMPRESSED_MAGICS = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
}


class FastScanUnsupported(Exception):
    """The fast path cannot handle this input (extension not built, compressed file): fall back."""


def available() -> bool:
    """True if the libpcap extension is built and importable."""
    return _ext is not None


def check_filter(bpf: str, linktype: int = DLT_EN10MB) -> int:
    """Compile *bpf* for a DLT link type; returns the instruction count, raises ValueError if invalid."""
    if _ext is None:
        raise FastScanUnsupported("rpcinspect.capture._pcapscan is not built")
    return int(_ext.check_filter(bpf, linktype))


class FastScan:
    """Iterator of :data:`FastPacket` for the packets of *path* matching *bpf*.

    *bpf* is a filter string (blank = everything) or a callable given the file's DLT link type.
    After iteration, :attr:`frames_seen` is the number of records in the file, and :attr:`truncated`
    / :attr:`error` tell how it ended (neither raises once the file header was read).
    """

    def __init__(
        self,
        path: str | Path,
        bpf: str | Callable[[int], str] = "",
        *,
        batch: int = 4096,
        max_bytes: int = 8 << 20,
    ) -> None:
        if _ext is None:
            raise FastScanUnsupported("rpcinspect.capture._pcapscan is not built")
        self.path = Path(path)
        self._batch = batch
        self._max_bytes = max_bytes
        try:
            with self.path.open("rb") as f:
                head = f.read(6)
        except OSError as exc:
            raise InputError(f"{self.path}: {exc.strerror or exc}") from None
        for magic, kind in _COMPRESSED_MAGICS.items():
            if head.startswith(magic):
                raise FastScanUnsupported(f"{self.path}: {kind}-compressed; libpcap cannot read it")
        try:
            self._sc = _ext.open(str(self.path), bpf if isinstance(bpf, str) else "")
        except OSError as exc:
            raise InputError(str(exc) if exc.strerror is None else f"{self.path}: {exc.strerror}") from None
        self.dlt: int = self._sc.linktype
        """libpcap DLT_* value (``pcap_datalink``)."""
        self.linktype: int = _DLT_TO_LINKTYPE.get(self.dlt, self.dlt)
        """LINKTYPE_* value as stored in the file (what :mod:`.reader` reports)."""
        self.snaplen: int = self._sc.snaplen
        if not isinstance(bpf, str):
            try:
                self._sc.setfilter(bpf(self.dlt))
            except BaseException:
                self._sc.close()
                raise
        self._it: Iterator[FastPacket] = iter(())

    @property
    def frames_seen(self) -> int:
        """Records read so far, matching or not (the last frame number once exhausted)."""
        return int(self._sc.frames_seen)

    def select_rpc(
        self,
        tcp_ports: Iterable[int],
        udp_ports: Iterable[int],
        *,
        drop_pure_acks: bool = True,
        decode: bool = False,
        shards: int = 1,
        shard: int = 0,
    ) -> None:
        """Turns on one-pass DCE/RPC flow selection in C (see ``rpcselect.h``), seeded with ports.

        With *decode*, TCP/UDP packets come back as ``(frame, ts_ns, segment)`` where segment is
        what :func:`rpcinspect.capture.link.decode` would return; other packets keep the
        ``(frame, ts_ns, orig_len, data)`` shape. With *shards* > 1, decoded packets pass only
        when their unordered address pair falls in *shard* (:func:`rpcinspect.capture.shard.shard_of`).
        """
        self._sc.select_rpc(list(tcp_ports), list(udp_ports), drop_pure_acks, decode, shards, shard)

    def rpc_ports(self) -> tuple[list[int], list[int]]:
        """TCP and UDP ports known to carry DCE/RPC: the seeds plus those learned so far."""
        tcp, udp = self._sc.rpc_ports()
        return list(tcp), list(udp)

    @property
    def last_ts(self) -> float:
        """Latest capture time of any record read, whether the filter kept it or not."""
        return int(self._sc.last_ts_ns) / 1_000_000_000

    @property
    def bytes_read(self) -> int:
        """File offset reached so far (-1 once closed): for progress reporting."""
        return int(self._sc.bytes_read)

    @property
    def truncated(self) -> bool:
        """True if the file ended in the middle of a record."""
        return bool(self._sc.truncated)

    @property
    def error(self) -> str | None:
        """libpcap's message for a read error that ended the scan early, else None."""
        return self._sc.error  # type: ignore[no-any-return]

    def batches(self) -> Iterator[list[FastPacket]]:
        """Yields non-empty lists of matching packets until the end of the file, then closes it."""
        while batch := self._sc.next_batch(self._batch, self._max_bytes):
            yield batch
        self._sc.close()

    def __iter__(self) -> FastScan:
        return self

    def __next__(self) -> FastPacket:
        while True:
            try:
                return next(self._it)
            except StopIteration:
                pass
            batch = self._sc.next_batch(self._batch, self._max_bytes)
            if not batch:
                self._sc.close()
                raise StopIteration
            self._it = iter(batch)

    def close(self) -> None:
        """Releases the file; counters stay readable."""
        self._sc.close()

    def __enter__(self) -> FastScan:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def scan(path: str | Path, bpf: str | Callable[[int], str], *, batch: int = 4096) -> FastScan:
    """Opens *path* for a filtered scan; see :class:`FastScan` (raises :class:`FastScanUnsupported`)."""
    return FastScan(path, bpf, batch=batch)


# --------------------------------------------------------------------------------------------------
# BPF builders

_TCP_HL = "((tcp[12:1] & 0xf0) >> 2)"  # IPv4 TCP header length; tcp[] / udp[] are IPv4-only in libpcap
_TCP6_HL = "((ip6[52:1] & 0xf0) >> 2)"  # same for IPv6 when TCP directly follows the fixed header

# Connection-oriented PDU: version 5, minor 0 or 1, ptype <= 20 (RTS); as Wireshark's heuristic.
# Connectionless PDU (UDP): version 4, ptype <= 10 (cancel_ack).
# Fragments can't be judged by their first bytes: keep every IPv4 TCP/UDP fragment and every IPv6
# packet whose first next-header is an extension header (hop-by-hop, routing, fragment, destination
# options, AH), rather than lose part of a PDU. Listed first: these loads stay inside the IP header,
# and in BPF an out-of-range load rejects the packet outright, whatever the other alternatives.
_PASS_FRAGMENTS = (
    "(ip and ip[6:2] & 0x3fff != 0 and (ip[9] = 6 or ip[9] = 17))",
    "(ip6 and (ip6[6] = 0 or ip6[6] = 43 or ip6[6] = 44 or ip6[6] = 60 or ip6[6] = 51))",
)
_DCERPC_PARTS = (
    *_PASS_FRAGMENTS,
    f"(tcp[{_TCP_HL}:2] & 0xfffe = 0x0500 and tcp[{_TCP_HL} + 2:1] <= 20)",
    "(udp[8:2] >= 0x0400 and udp[8:2] <= 0x040a)",
    "(udp[8:2] & 0xfffe = 0x0500 and udp[10:1] <= 20)",
    f"(ip6[6] = 6 and ip6[40 + {_TCP6_HL}:2] & 0xfffe = 0x0500 and ip6[42 + {_TCP6_HL}:1] <= 20)",
    "(ip6[6] = 17 and ((ip6[48:2] >= 0x0400 and ip6[48:2] <= 0x040a)"
    " or (ip6[48:2] & 0xfffe = 0x0500 and ip6[50:1] <= 20)))",
)
_DCERPC_CORE = " or ".join(_DCERPC_PARTS)


def _with_vlan(expr: str, linktype: int, vlan_tags: int) -> str:
    """``expr``, also matched under up to *vlan_tags* 802.1Q/802.1ad tags where libpcap supports it.

    libpcap's ``vlan`` shifts the offsets of everything after it in the expression, so the tagged
    alternatives must come last and nest: ``(X) or (vlan and ((X) or (vlan and (X))))``.
    """
    if linktype not in _VLAN_DLTS or vlan_tags <= 0:
        return expr
    out = f"({expr})"
    for _ in range(vlan_tags):
        out = f"({expr}) or (vlan and ({out}))"
    return out


def bpf_dcerpc_starts(linktype: int = DLT_EN10MB, *, vlan_tags: int = 1) -> str:
    """BPF for TCP/UDP packets over IPv4/IPv6 whose payload starts like a DCE/RPC PDU.

    TCP: ``05 00|01`` then ptype <= 20; UDP: ``04`` then ptype <= 10, or the TCP pattern.
    IPv6 is matched precisely when TCP/UDP directly follows the fixed header; IPv6 packets with
    extension headers and all IPv4 fragments are passed unconditionally.
    """
    return _with_vlan(_DCERPC_CORE, linktype, vlan_tags)


def _port_terms(ports: Iterable[int], max_terms: int) -> list[str]:
    uniq = sorted(set(ports))
    for p in uniq:
        if not 0 <= p <= 65535:
            raise ValueError(f"port out of range: {p}")
    ranges: list[list[int]] = []
    for p in uniq:
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    # libpcap's optimizer is superlinear in the number of alternatives (200 ports: ~1 s), so
    # merge the ranges separated by the smallest gaps: a superset, which is fine for a pre-filter.
    while len(ranges) > max(1, max_terms):
        k = min(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
        ranges[k][1] = ranges.pop(k + 1)[1]
    return [f"port {lo}" if lo == hi else f"portrange {lo}-{hi}" for lo, hi in ranges]


def bpf_ports(
    tcp_ports: Iterable[int],
    udp_ports: Iterable[int],
    linktype: int = DLT_EN10MB,
    *,
    vlan_tags: int = 1,
    max_terms: int = 32,
) -> str:
    """BPF for TCP/UDP traffic with either port in the given sets (IPv4 and IPv6).

    Contiguous ports become ``portrange``; beyond *max_terms* per protocol, the closest ranges are
    merged (the filter then also passes ports in the gaps). Fragments are kept as in
    :func:`bpf_dcerpc_starts`. Raises ValueError if both sets are empty.
    """
    parts = list(_PASS_FRAGMENTS)
    for proto, ports in (("tcp", tcp_ports), ("udp", udp_ports)):
        terms = _port_terms(ports, max_terms)
        if terms:
            parts.append(f"({proto} and ({' or '.join(terms)}))")
    if len(parts) == len(_PASS_FRAGMENTS):
        raise ValueError("bpf_ports: no ports given")
    return _with_vlan(" or ".join(parts), linktype, vlan_tags)
