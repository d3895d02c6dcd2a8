"""Endpoint-mapper learning: ept_map / ept_lookup answers -> which interface a server offers where.

The endpoint mapper (``epm``, e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0) answers ``ept_map``
(opnum 3) and ``ept_lookup`` (opnum 2) with protocol towers (C706 appendix L, MS-RPCE 2.2.1.2):
floors of ``lhs`` (protocol id and data) and ``rhs`` (address data). Floor 1 is the interface UUID
and version, floor 2 the transfer syntax, floor 3 the RPC protocol (0x0b connection-oriented,
0x0a connectionless), then 0x07 TCP port, 0x08 UDP port, 0x1f HTTP port (big endian), 0x09 IPv4
address, 0x0f SMB named pipe, 0x10 local (ncalrpc) port name, 0x11 NetBIOS host name.

Stub taps (:meth:`~rpcinspect.runtime.Run.add_stub_tap`) hand this module each finished epm call
with its response stub; a mapping is learned when the response completes, so connections opened
after it are named (``if_source`` ``epm``) even when their bind is not in the capture, and calls
that ended before it are named late (:mod:`rpcinspect.dcerpc.latename`). Each new mapping is
written once as an :class:`~rpcinspect.records.EndpointRecord`. Sealed answers are read when a
secret decrypted them, else only counted (``epm_encrypted_skipped``).

NDR is decoded defensively: every count is checked against the bytes present, at most
:data:`MAX_TOWERS` towers and :data:`MAX_FLOORS` floors are read, and anything that does not fit
stops the decoding of that answer (``epm_malformed``).
"""

from __future__ import annotations

import ipaddress
import struct
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NamedTuple

from rpcinspect.catalog.loader import normalize_pipe
from rpcinspect.records import EndpointRecord

if TYPE_CHECKING:
    from rpcinspect.records import CallRecord
    from rpcinspect.runtime import Run

__all__ = [
    "EPM_UUID",
    "EndpointMapper",
    "Tower",
    "answer_of",
    "parse_lookup_response",
    "parse_map_response",
    "tower",
]

EPM_UUID: Final = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
MAX_TOWERS: Final = 4096
MAX_FLOORS: Final = 16
MAX_MAPPINGS: Final = 65_536
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_be16 = struct.Struct(">H").unpack_from


class Tower(NamedTuple):
    """What a protocol tower says: interface, protocol, and where."""

    if_uuid: str
    if_version: str
    protocol: str  # tcp, udp, http, np, ncalrpc, or "0x.." for others
    port: int | None
    pipe: str | None
    host: str | None  # IPv4 address (floor 0x09) or NetBIOS name (0x11); None if absent or 0.0.0.0


_tower_memo: dict[bytes, Tower | None] = {}


def tower(octets: bytes) -> Tower | None:
    """Decodes one tower's octet string (memoised: servers list the same towers to every client)."""
    key = bytes(octets)
    if key in _tower_memo:
        return _tower_memo[key]
    t = _tower(key)
    if len(_tower_memo) >= 4096:
        _tower_memo.clear()
    _tower_memo[key] = t
    return t


def _tower(octets: bytes) -> Tower | None:
    """Decodes one tower's octet string (always little endian); ``None`` if malformed or no interface."""
    if len(octets) < 2:
        return None
    n = _u16(octets, 0)[0]
    o = 2
    floors: list[tuple[bytes, bytes]] = []
    for _ in range(min(n, MAX_FLOORS)):
        if o + 2 > len(octets):
            return None
        ll = _u16(octets, o)[0]
        lhs = octets[o + 2 : o + 2 + ll]
        o += 2 + ll
        if o + 2 > len(octets) or len(lhs) != ll:
            return None
        rl = _u16(octets, o)[0]
        rhs = octets[o + 2 : o + 2 + rl]
        o += 2 + rl
        if len(rhs) != rl:
            return None
        floors.append((lhs, rhs))
    if not floors or len(floors[0][0]) < 19 or floors[0][0][0] != 0x0D:
        return None
    lhs, rhs = floors[0]
    if_uuid = str(uuid.UUID(bytes_le=bytes(lhs[1:17])))
    minor = _u16(rhs, 0)[0] if len(rhs) >= 2 else 0
    version = f"{_u16(lhs, 17)[0]}.{minor}"
    protocol = "?"
    port: int | None = None
    pipe: str | None = None
    host: str | None = None
    for lhs, rhs in floors[2:]:
        if not lhs:
            continue
        pid = lhs[0]
        if pid in (0x07, 0x08, 0x1F) and len(rhs) >= 2:
            protocol = {0x07: "tcp", 0x08: "udp", 0x1F: "http"}[pid]
            port = _be16(rhs, 0)[0]
        elif pid == 0x09 and len(rhs) >= 4:
            ip = bytes(rhs[:4])
            if ip != b"\0\0\0\0":
                host = str(ipaddress.IPv4Address(ip))
        elif pid in (0x0F, 0x10):
            protocol = "np" if pid == 0x0F else "ncalrpc"
            pipe = bytes(rhs).split(b"\0", 1)[0].decode("latin-1")
        elif pid == 0x11:
            name = bytes(rhs).split(b"\0", 1)[0].decode("latin-1")
            host = host or name or None
        elif pid not in (0x0A, 0x0B, 0x0C, 0x0D) and protocol == "?":
            protocol = f"0x{pid:02x}"
    return Tower(if_uuid, version, protocol, port, pipe, host)


class _Reader:
    __slots__ = ("b", "o")

    def __init__(self, b: bytes, o: int) -> None:
        self.b, self.o = b, o

    def u32(self) -> int:
        if self.o + 4 > len(self.b):
            raise ValueError("short")
        v = _u32(self.b, self.o)[0]
        self.o += 4
        return v

    def skip(self, n: int) -> bytes:
        if n < 0 or self.o + n > len(self.b):
            raise ValueError("short")
        v = self.b[self.o : self.o + n]
        self.o += n
        return v

    def align(self) -> None:
        self.o += -self.o % 4


def _twr(r: _Reader) -> bytes:
    """A deferred twr_t: conformance (max_count), tower_length, octets, then 4-byte alignment."""
    r.align()
    r.u32()  # max_count
    n = r.u32()
    octets = r.skip(n)
    return octets


def _array_count(r: _Reader, entry_size: int, stub_len: int) -> int:
    """Element count of the reply array after the context handle: number returned, then the
    conformant varying header (max_count, offset, actual_count); bounded by the stub's size."""
    r.u32()  # num_towers / num_ents
    r.u32()  # max_count
    r.u32()  # offset
    count = r.u32()
    if count > MAX_TOWERS or count * entry_size > stub_len:
        raise ValueError("count")
    return count


def _deferred_towers(r: _Reader, refs: list[int], out: list[Tower]) -> None:
    """The towers the non-null pointers in *refs* point at, in order (NDR deferred referents)."""
    for ref in refs:
        if ref:
            t = tower(_twr(r))
            if t is not None:
                out.append(t)


def parse_map_response(stub: bytes) -> list[Tower]:
    """Towers of an ept_map response (handle, num_towers, conformant varying array of twr_p_t)."""
    r = _Reader(stub, 20)
    out: list[Tower] = []
    try:
        count = _array_count(r, 4, len(stub))
        refs = [r.u32() for _ in range(count)]
        _deferred_towers(r, refs, out)
    except ValueError:
        pass
    return out


def parse_lookup_response(stub: bytes) -> list[Tower]:
    """Towers of an ept_lookup response (handle, num_ents, array of ept_entry_t, deferred towers)."""
    r = _Reader(stub, 20)
    out: list[Tower] = []
    try:
        count = _array_count(r, 28, len(stub))
        refs: list[int] = []
        for _ in range(count):
            r.skip(16)  # object uuid
            refs.append(r.u32())
            r.u32()  # annotation offset
            r.skip(r.u32())  # annotation actual_count, chars
            r.align()
        _deferred_towers(r, refs, out)
    except ValueError:
        pass
    return out


MAX_ANSWERS = 1024
"""Distinct epm answers remembered to skip repeats (each at most ``Limits.max_stub_bytes``)."""


def answer_of(rec: CallRecord, resp: bytes) -> tuple[str, int | None, str, bool, float, int, bytes]:
    """The arguments of :meth:`EndpointMapper.answer` for a finished epm call (what a parallel
    worker sends its parent, where the run's endpoint knowledge lives)."""
    return (
        rec.dst,
        rec.opnum,
        rec.status,
        rec.stub_encrypted,
        rec.ts + (rec.rtt or 0.0),
        rec.resp_frame or 0,
        resp,
    )


class EndpointMapper:
    """Learns endpoints from epm answers and resolves unbound calls from them."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.by_port: dict[tuple[str, str, int], tuple[str, str]] = {}  # (host, proto, port) -> iface
        self.lookup_ports: dict[tuple[str, str, int], set[tuple[str, str]]] = {}
        self.by_pipe: dict[tuple[str, str], tuple[str, str]] = {}
        self.seen: set[tuple[object, ...]] = set()
        self.answered: set[tuple[str, int | None, bytes]] = set()
        self.on_learn: Callable[[float], None] | None = None
        """Called after an answer taught mappings (late naming retries its waiting calls)."""
        run.add_stub_tap(EPM_UUID, frozenset((2, 3)), self.tap)

    def tap(self, rec: CallRecord, req: bytes, resp: bytes) -> None:
        """Stub tap: decodes a finished ept_map / ept_lookup call."""
        self.answer(*answer_of(rec, resp))

    def answer(self, server: str, opnum: int | None, status: str, sealed: bool, ts: float, frame: int,
               resp: bytes) -> None:  # fmt: skip
        """Learns from one ept_map (opnum 3) / ept_lookup (2) answer of *server*, seen at *ts*."""
        run = self.run
        if status != "ok" or not resp:
            return
        if sealed:  # sealed and not decrypted (a decrypted answer is read like any)
            run.count("epm_encrypted_skipped")
            return
        source = "ept_map" if opnum == 3 else "ept_lookup"
        # Clients ask the same server the same question again and again: an answer already learned
        # from (same server, same bytes after the context handle) teaches nothing new.
        key = (server, opnum, bytes(resp[20:]))
        if key in self.answered:
            run.count("epm_answers_repeated")
            return
        if len(self.answered) >= MAX_ANSWERS:
            self.answered.clear()
        self.answered.add(key)
        towers = parse_map_response(resp) if opnum == 3 else parse_lookup_response(resp)
        if not towers and len(resp) > 28:
            run.count("epm_malformed")
        run.count(f"epm_{source}_towers", len(towers))
        for t in towers:
            self._learn(t, server, source, ts, frame)
        if towers and self.on_learn is not None:
            self.on_learn(ts)

    def _learn(self, t: Tower, epm_server: str, source: str, ts: float, frame: int) -> None:
        host = t.host if t.host and t.host[0].isdigit() else epm_server
        iface = (t.if_uuid, t.if_version)
        if t.protocol in ("tcp", "udp", "http") and t.port:
            key = (host, t.protocol, t.port)
            if source == "ept_map":
                if len(self.by_port) < MAX_MAPPINGS or key in self.by_port:
                    self.by_port[key] = iface
            elif len(self.lookup_ports) < MAX_MAPPINGS or key in self.lookup_ports:
                offered = self.lookup_ports.setdefault(key, set())
                if len(offered) < 2:  # two are enough to know the port is ambiguous
                    offered.add(iface)
        elif t.protocol == "np" and t.pipe:
            if len(self.by_pipe) < MAX_MAPPINGS or (host, normalize_pipe(t.pipe)) in self.by_pipe:
                self.by_pipe[(host, normalize_pipe(t.pipe))] = iface
        else:
            self.run.count("epm_towers_other")
        ident = (host, t.port, t.pipe, t.protocol, t.if_uuid, t.if_version)
        if ident in self.seen or len(self.seen) >= MAX_MAPPINGS:
            return
        self.seen.add(ident)
        found = self.run.catalog.interface(t.if_uuid, t.if_version)
        self.run.count("endpoints")
        self.run.emit(
            EndpointRecord(ts, frame, host, t.port, t.pipe, t.protocol, t.if_uuid, t.if_version,
                           found.name if found else None, source)  # type: ignore[arg-type]
        )  # fmt: skip

    def resolve(self, transport: str, server: str, port: int, pipe: str | None) -> tuple[str, str] | None:
        """Interface learned for this server endpoint, or None (unknown or ambiguous)."""
        if transport == "ncacn_np":
            if pipe is None:
                return None
            return self.by_pipe.get((server, normalize_pipe(pipe)))
        proto = {"ncacn_ip_tcp": "tcp", "ncadg_ip_udp": "udp", "ncacn_http": "http"}.get(transport)
        if proto is None:
            return None
        key = (server, proto, port)
        found = self.by_port.get(key)
        if found is not None:
            return found
        many = self.lookup_ports.get(key)
        if many is not None and len(many) == 1:
            return next(iter(many))
        return None
