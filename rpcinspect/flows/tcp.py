"""TCP connection table and per-direction reassembly, bounded.

Each direction delivers its bytes in sequence order to the connection's handler (a transport
framer): retransmitted and overlapping bytes are trimmed, out-of-order segments wait in a
bounded buffer, and a hole that cannot fill (buffer full, or the connection ends) is reported
as a gap so the framer can resynchronise. Captures that start mid-stream simply start at the
first sequence number seen. A SYN on a connection that already carried data starts a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rpcinspect.capture.link import Segment, format_addr

if TYPE_CHECKING:
    from rpcinspect.runtime import Run

__all__ = ["IGNORE", "Connection", "Handler", "TcpTable"]

_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10
_MASK = 0xFFFFFFFF
_HALF = 0x80000000


class Handler(Protocol):
    """What a transport provides for one connection."""

    def data(self, dirn: int, payload: bytes, frame: int, ts: float) -> None: ...
    def gap(self, dirn: int, nbytes: int, frame: int, ts: float) -> None: ...
    def close(self, reason: str, frame: int, ts: float) -> None: ...


class _Ignore:
    """Sentinel handler: the connection was judged not to carry anything we decode."""

    __slots__ = ()


IGNORE = _Ignore()

Selector = Callable[["Connection", int, bytes], "Handler | _Ignore | None"]
"""Chooses a handler from a connection's first payload(s); ``None`` means 'not sure yet'."""


class _Dir:
    __slots__ = ("fin", "next_seq", "ooo", "ooo_bytes")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.ooo: dict[int, tuple[bytes, int, float]] = {}  # seq -> (data, frame, ts)
        self.ooo_bytes = 0
        self.fin = False


class Connection:
    """One TCP connection: endpoints, two directions, its handler and activity."""

    __slots__ = (
        "dirs",
        "dport",
        "dst",
        "first_frame",
        "handler",
        "has_data",
        "head",
        "key",
        "last_ts",
        "probes",
        "sport",
        "src",
    )

    def __init__(self, src: bytes, sport: int, dst: bytes, dport: int, ts: float, frame: int = 0) -> None:
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.first_frame = frame
        self.dirs = (_Dir(), _Dir())
        self.handler: Handler | _Ignore | None = None
        self.last_ts = ts
        self.probes = 0
        self.has_data = False
        self.key = (src, sport, dst, dport)
        self.head = [b"", b""]  # first bytes per direction, until a header's worth (16) is seen

    def endpoints(self) -> tuple[str, int, str, int]:
        """Originator first, as text."""
        return format_addr(self.src), self.sport, format_addr(self.dst), self.dport


class TcpTable:
    """All live TCP connections of one input, keyed by both directions' 4-tuples."""

    def __init__(self, run: Run, select: Selector) -> None:
        self.run = run
        self.select = select
        self.table: dict[tuple[bytes, int, bytes, int], tuple[Connection, int]] = {}
        self.ignored: set[tuple[bytes, int, bytes, int]] = set()
        self.live = 0
        self._sweep_at = 0.0

    def segment(self, seg: Segment, frame: int, ts: float) -> None:
        """Feeds one TCP segment."""
        _p, src, dst, sport, dport, seq, ack, flags, payload = seg
        self.run.frame = frame
        key = (src, sport, dst, dport)
        ent = self.table.get(key)
        if ent is None:
            if key in self.ignored:
                if not flags & _SYN or flags & _ACK:
                    return
                self.ignored.discard(key)  # a new connection reusing the 4-tuple gets a fresh look
                self.ignored.discard((dst, dport, src, sport))
            if not payload and not flags & _SYN:
                return
            conn = self._open(src, sport, dst, dport, ts, frame)
            dirn = 0
        else:
            conn, dirn = ent
            if flags & _SYN and not flags & _ACK and conn.has_data:
                self._close(conn, "connection_reused", frame, ts)
                conn = self._open(src, sport, dst, dport, ts, frame)
                dirn = 0
        conn.last_ts = ts
        d = conn.dirs[dirn]
        if flags & _ACK:
            peer = conn.dirs[1 - dirn]
            if peer.ooo and peer.next_seq is not None and 0 < ((ack - peer.next_seq) & _MASK) < _HALF:
                # The receiver acknowledged bytes the capture never saw: that hole will not fill.
                self.run.count("tcp_acked_unseen")
                self._skip_gap(conn, 1 - dirn, peer, frame, ts)
        if flags & _SYN:
            d.next_seq = (seq + 1) & _MASK
            seq = (seq + 1) & _MASK
        if payload:
            if d.next_seq is None:
                d.next_seq = seq
            diff = (seq - d.next_seq) & _MASK
            if diff == 0:
                d.next_seq = (seq + len(payload)) & _MASK
                h = conn.handler
                if h is not None and h is not IGNORE:
                    h.data(dirn, payload, frame, ts)  # type: ignore[union-attr]
                else:
                    self._deliver(conn, dirn, payload, frame, ts)
                if d.ooo:
                    self._drain(conn, dirn, d, frame, ts)
            elif diff < _HALF:
                self._hold(conn, dirn, d, seq, payload, frame, ts)
            else:
                behind = _MASK + 1 - diff
                if behind < len(payload):
                    self.run.count("tcp_overlap_trimmed")
                    self._deliver(conn, dirn, payload[behind:], frame, ts)
                    d.next_seq = (seq + len(payload)) & _MASK
                    if d.ooo:
                        self._drain(conn, dirn, d, frame, ts)
                else:
                    self.run.count("tcp_retransmission")
        if flags & (_FIN | _RST):
            if flags & _RST:
                self._close(conn, "connection_reset", frame, ts)
                return
            d.fin = True
            if conn.dirs[1 - dirn].fin:
                self._close(conn, "connection_closed", frame, ts)
        if ts - self._sweep_at > 60.0:
            self._sweep(frame, ts)

    # -- reassembly ------------------------------------------------------------------------------
    def _hold(
        self, conn: Connection, dirn: int, d: _Dir, seq: int, payload: bytes, frame: int, ts: float
    ) -> None:
        old = d.ooo.get(seq)
        if old is not None and len(old[0]) >= len(payload):
            self.run.count("tcp_retransmission")
            return
        d.ooo[seq] = (payload, frame, ts)
        d.ooo_bytes += len(payload) - (len(old[0]) if old else 0)
        self.run.count("tcp_out_of_order")
        lim = self.run.limits
        if d.ooo_bytes > lim.max_ooo_bytes or len(d.ooo) > lim.max_ooo_segments:
            self._skip_gap(conn, dirn, d, frame, ts)

    def _drain(self, conn: Connection, dirn: int, d: _Dir, frame: int, ts: float, own: bool = False) -> None:
        """Delivers buffered segments that now continue the stream (trimming overlaps).

        When a retransmission filled the hole, the bytes complete in *frame* (as in Wireshark);
        after a gap was given up (*own*), each segment keeps the frame it arrived in.
        """
        ooo = d.ooo
        while ooo:
            nxt = d.next_seq
            assert nxt is not None
            exact = ooo.pop(nxt, None)
            if exact is not None:  # the usual case: the next segment starts where the stream is
                data, f, t = exact
                d.ooo_bytes -= len(data)
                self._deliver(conn, dirn, data, f if own else frame, t if own else ts)
                d.next_seq = (nxt + len(data)) & _MASK
                continue
            progressed = False
            for seq in list(ooo):
                diff = (seq - nxt) & _MASK
                if diff == 0 or diff >= _HALF:
                    data, f, t = ooo.pop(seq)
                    d.ooo_bytes -= len(data)
                    behind = 0 if diff == 0 else _MASK + 1 - diff
                    if behind < len(data):
                        if own:
                            self._deliver(conn, dirn, data[behind:], f, t)
                        else:
                            self._deliver(conn, dirn, data[behind:], frame, ts)
                        d.next_seq = (seq + len(data)) & _MASK
                        progressed = True
                        break
            if not progressed:
                return

    def _skip_gap(self, conn: Connection, dirn: int, d: _Dir, frame: int, ts: float) -> None:
        """Gives up on a hole: jumps to the earliest buffered byte and tells the handler."""
        nxt = d.next_seq
        assert nxt is not None
        first = min(d.ooo, key=lambda s: (s - nxt) & _MASK)
        missing = (first - nxt) & _MASK
        self.run.count("tcp_gaps")
        self.run.count("tcp_gap_bytes", missing)
        h = conn.handler
        if h is not None and h is not IGNORE:
            h.gap(dirn, missing, frame, ts)  # type: ignore[union-attr]
        d.next_seq = first
        self._drain(conn, dirn, d, frame, ts, own=True)

    def _deliver(self, conn: Connection, dirn: int, data: bytes, frame: int, ts: float) -> None:
        h = conn.handler
        if h is None:
            conn.has_data = True
            if conn.head[dirn]:
                data = conn.head[dirn] + data
                conn.head[dirn] = b""
            if len(data) < 16:  # too short to judge: wait for more (at most 15 bytes kept)
                conn.head[dirn] = data
                return
            h = self.select(conn, dirn, data)
            conn.probes += 1
            if h is None:
                if conn.probes >= self.run.limits.probe_segments:
                    self._ignore(conn)
                return
            conn.handler = h
            if h is IGNORE:
                self._ignore(conn)
                return
            h.data(dirn, data, frame, ts)  # type: ignore[union-attr]
            other = conn.head[1 - dirn]
            if other:  # the other side's first bytes, too short to judge on their own
                conn.head[1 - dirn] = b""
                h.data(1 - dirn, other, frame, ts)  # type: ignore[union-attr]
            return
        elif h is IGNORE:
            return
        h.data(dirn, data, frame, ts)  # type: ignore[union-attr]

    # -- table -----------------------------------------------------------------------------------
    def _open(self, src: bytes, sport: int, dst: bytes, dport: int, ts: float, frame: int) -> Connection:
        if self.live >= self.run.limits.max_connections:
            self._evict_oldest(ts)
        conn = Connection(src, sport, dst, dport, ts, frame)
        self.table[(src, sport, dst, dport)] = (conn, 0)
        self.table[(dst, dport, src, sport)] = (conn, 1)
        self.live += 1
        self.run.count("tcp_connections")
        return conn

    def _unlink(self, conn: Connection) -> None:
        src, sport, dst, dport = conn.key
        for k in ((src, sport, dst, dport), (dst, dport, src, sport)):
            ent = self.table.get(k)
            if ent is not None and ent[0] is conn:
                del self.table[k]
        self.live -= 1

    def _ignore(self, conn: Connection) -> None:
        """Forgets a non-RPC connection but remembers to skip its packets cheaply."""
        self._unlink(conn)
        if len(self.ignored) >= self.run.limits.max_ignored_flows:
            self.ignored.clear()
        src, sport, dst, dport = conn.key
        self.ignored.add((src, sport, dst, dport))
        self.ignored.add((dst, dport, src, sport))
        self.run.count("tcp_connections_ignored")

    def _close(self, conn: Connection, reason: str, frame: int, ts: float) -> None:
        self._unlink(conn)
        for dirn, d in enumerate(conn.dirs):
            while d.ooo:
                self._skip_gap(conn, dirn, d, frame, ts)
        h = conn.handler
        if h is not None and h is not IGNORE:
            h.close(reason, frame, ts)  # type: ignore[union-attr]

    def _evict_oldest(self, ts: float) -> None:
        """Closes the least recently active eighth of the table (batched: amortised O(log n))."""
        conns = sorted((c for c, d in self.table.values() if d == 0), key=lambda c: c.last_ts)
        for conn in conns[: max(1, len(conns) // 8)]:
            self.run.count("tcp_connections_evicted")
            self._close(conn, "evicted", 0, ts)

    def expire(self, ts: float, frame: int) -> None:
        """Closes connections idle for longer than the limit at capture time *ts*."""
        self._sweep(frame, ts)

    def _sweep(self, frame: int, ts: float) -> None:
        self._sweep_at = ts
        limit = ts - self.run.limits.idle_timeout
        idle = [c for c, d in self.table.values() if d == 0 and c.last_ts < limit]
        run = self.run
        for conn in idle:
            run.count("tcp_connections_idle_closed")
            run.sub = conn.first_frame
            self._close(conn, "idle_timeout", frame, ts)
        run.sub = 0

    def close_all(self, reason: str, frame: int, ts: float) -> None:
        """Ends every connection (end of input): their handlers flush what they hold."""
        for conn in [c for c, d in self.table.values() if d == 0]:
            self.run.sub = conn.first_frame
            self._close(conn, reason, frame, ts)
        self.run.sub = 0
