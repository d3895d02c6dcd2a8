"""Call state for connectionless DCE/RPC (ncadg_ip_udp): pairing, fragments, control PDUs.

A connectionless call is identified by its activity UUID and sequence number (C706 12.5.3.1),
not by addresses: servers may answer from another port (PROFINET does), so calls are keyed by
``(activity, seqnum)`` in one bounded table per input. Requests and responses are fragmented by
fragment number; fragments may arrive in any order and are counted per number until 0..last are
all there (only their lengths are kept, plus the bytes when a stub tap wants the call). A call
whose fragments never complete expires (idle timeout, eviction, end of capture) as an anomaly
``cl_fragments_incomplete`` and is still written as a record.

Control PDUs: ``ping`` (client asks about a call), ``working`` and ``nocall`` (server answers a
ping), ``ack`` (client acknowledges a response), ``fack`` (fragment acknowledgement), ``cl_cancel``
and ``cancel_ack`` are counted (``pdu_cl_<name>``); ``fault`` ends a call with status ``fault``
and ``reject`` with status ``rejected``, the status code's name in ``fault``. A retransmitted
fragment, or a datagram for a call already written, is counted, never a second record.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from rpcinspect.records import CallRecord
from rpcinspect.transports.cl import (
    CL_HEADER_LEN,
    CL_PTYPE_NAMES,
    FLAG_FRAG,
    FLAG_LASTFRAG,
    ClHeader,
)

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run, StubTap

__all__ = ["ClCalls"]

TRANSPORT = "ncadg_ip_udp"
MAX_FRAGMENTS = 4096
"""Fragments kept per call and direction (fragment numbers are 16 bits; real calls use few)."""
MAX_FRAGMENTS_TOTAL = 1 << 18
"""Fragment numbers remembered over all calls in flight (each costs a dict entry)."""
_DONE_MEMORY = 4096


class _Side:
    """One direction of a call: fragments seen (number -> length), the last number, bytes if tapped."""

    __slots__ = ("data", "frags", "frame", "last", "stub")

    def __init__(self) -> None:
        self.frags: dict[int, int] = {}
        self.last: int | None = None
        self.stub = 0
        self.frame: int | None = None  # where it completed
        self.data: dict[int, bytes] | None = None

    def add(self, h: ClHeader, body: bytes, frame: int, keep: int | None) -> bool | None:
        """Adds a fragment; True when the side completes now, False if not yet, None if a repeat."""
        if self.frame is not None or h.fragnum in self.frags:
            return None
        self.frags[h.fragnum] = h.body_len
        self.stub += len(body)
        if self.data is not None and keep is not None:
            room = keep - sum(len(b) for b in self.data.values())
            self.data[h.fragnum] = body[: max(room, 0)]
        if not h.flags1 & FLAG_FRAG or h.flags1 & FLAG_LASTFRAG:
            self.last = h.fragnum if h.flags1 & FLAG_FRAG else 0
            if not h.flags1 & FLAG_FRAG:
                self.frags = {0: h.body_len}
        if self.last is not None and len(self.frags) >= self.last + 1:
            self.frame = frame
            return True
        return False

    def joined(self) -> bytes:
        return b"".join(self.data[k] for k in sorted(self.data)) if self.data else b""


class _ClCall:
    __slots__ = (
        "auth",
        "ep",
        "first_frame",
        "if_major",
        "if_minor",
        "if_uuid",
        "key",
        "last_frame",
        "last_ts",
        "obj",
        "opnum",
        "req",
        "resp",
        "resp_ts",
        "seqnum",
        "tap",
        "ts",
    )  # fmt: skip

    def __init__(self, key: tuple[str, int], h: ClHeader, ep: Endpoints, ts: float, frame: int) -> None:
        self.key = key
        self.first_frame = frame
        self.ts = ts
        self.last_ts = ts
        self.last_frame = 0
        self.ep = ep
        self.seqnum = h.seqnum
        self.if_uuid = h.if_uuid
        self.if_major, self.if_minor = h.if_major, h.if_minor
        self.opnum: int | None = h.opnum
        self.obj = h.object_uuid if h.object_uuid != "00000000-0000-0000-0000-000000000000" else None
        self.auth = (h.auth_proto, 0)
        self.req = _Side()
        self.resp = _Side()
        self.resp_ts: float | None = None
        self.tap: StubTap | None = None


class ClCalls:
    """All connectionless calls of one input, keyed by (activity UUID, sequence number)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.calls: dict[tuple[str, int], _ClCall] = {}
        self.done: dict[tuple[str, int], None] = {}  # recently written calls: late repeats are counted
        self._sweep_at = 0.0
        self.fragments = 0  # fragment entries held by the calls in flight

    def pdu(self, h: ClHeader, buf: bytes, src: str, sport: int, dst: str, dport: int, frame: int,
            ts: float) -> None:  # fmt: skip
        """Handles one connectionless PDU (a whole datagram whose header decoded)."""
        run = self.run
        pt = h.ptype
        run.count(f"pdu_cl_{CL_PTYPE_NAMES[pt]}")
        if ts >= self._sweep_at:
            self._sweep_at = ts + 30.0
            self.expire(ts, frame)
        end = CL_HEADER_LEN + h.body_len
        if end > len(buf):
            detail = f"{CL_PTYPE_NAMES[pt]} body of {h.body_len} bytes in a {len(buf)}-byte datagram"
            run.anomaly("truncated_pdu", detail, frame, ts, (src, sport, dst, dport))
            end = len(buf)
        body = buf[CL_HEADER_LEN:end]
        key = (h.activity, h.seqnum)
        if pt == 0:
            self._data(key, h, body, (src, sport, dst, dport), True, buf, end, frame, ts)
        elif pt == 2:
            self._data(key, h, body, (dst, dport, src, sport), False, buf, end, frame, ts)
        elif pt == 3 or pt == 6:
            call = self.calls.pop(key, None)
            if call is None:
                if key in self.done:
                    run.count("cl_repeat_after_done")
                    return
                call = _ClCall(key, h, (dst, dport, src, sport), ts, frame)
                run.count("response_without_request")
            status = struct.unpack_from("<I" if h.little else ">I", body)[0] if len(body) >= 4 else None
            name = run.catalog.fault_name(status) if status is not None else None
            call.resp.frame = frame
            before = len(call.resp.frags)
            call.resp.frags[0] = h.body_len
            self.fragments += len(call.resp.frags) - before
            call.resp_ts = ts
            self._emit(call, "fault" if pt == 3 else "rejected", name, None)
        elif pt == 1 or pt == 4 or pt == 5:
            call = self.calls.get(key)
            if call is not None:
                call.last_ts = ts

    def _data(self, key: tuple[str, int], h: ClHeader, body: bytes, ep: Endpoints, request: bool,
              buf: bytes, end: int, frame: int, ts: float) -> None:  # fmt: skip
        run = self.run
        call = self.calls.get(key)
        if call is None:
            if key in self.done:
                run.count("cl_repeat_after_done")
                return
            if len(self.calls) >= run.limits.max_calls * 16:
                old = self.calls.pop(next(iter(self.calls)))
                run.anomaly("call_evicted", "too many connectionless calls in flight", frame, ts, old.ep)
                self._emit(old, "no_response", None, "evicted")
            call = _ClCall(key, h, ep, ts, frame)
            if not request:
                run.count("response_without_request")
            self.calls[key] = call
            if run.stub_taps:
                want = run.stub_taps.get(h.if_uuid)
                if want is not None and (want[0] is None or h.opnum in want[0]):
                    call.tap = want[1]
                    call.req.data = {}
                    call.resp.data = {}
        elif request and not call.req.frags and call.opnum != h.opnum:
            call.opnum = h.opnum
        call.last_ts = ts
        call.last_frame = frame
        if request and h.auth_proto:
            level = buf[end] if end < len(buf) and 0 < buf[end] <= 6 else 0
            call.auth = (h.auth_proto, level)
        side = call.req if request else call.resp
        if h.fragnum not in side.frags and (
            len(side.frags) >= MAX_FRAGMENTS or self.fragments >= MAX_FRAGMENTS_TOTAL
        ):
            detail = f"more than {MAX_FRAGMENTS} fragments in one call, or {MAX_FRAGMENTS_TOTAL} in all"
            run.anomaly("cl_fragment_limit", detail, frame, ts, call.ep)
            return
        before = len(side.frags)
        done = side.add(h, body, frame, run.limits.max_stub_bytes)
        self.fragments += len(side.frags) - before
        if done is None:
            run.count("cl_retransmission")
            return
        if done and not request:
            call.resp_ts = ts
            del self.calls[key]
            self._emit(call, "ok", None, None)

    def _emit(self, call: _ClCall, status: str, fault: str | None, close_reason: str | None) -> None:
        run = self.run
        self.fragments -= len(call.req.frags) + len(call.resp.frags)
        if len(self.done) >= _DONE_MEMORY:
            del self.done[next(iter(self.done))]
        self.done[call.key] = None
        for side, what in ((call.req, "request"), (call.resp, "response")):
            if side.frags and side.frame is None:
                have = len(side.frags)
                want = "?" if side.last is None else str(side.last + 1)
                run.anomaly("cl_fragments_incomplete", f"{what} of seqnum {call.seqnum}: {have} of {want} "
                            f"fragments, never completed ({close_reason or status})", call.last_frame,
                            call.last_ts, call.ep)  # fmt: skip
        version = f"{call.if_major}.{call.if_minor}"
        iface = run.catalog.interface(call.if_uuid, version)
        op = iface.opnums.get(call.opnum) if iface is not None and call.opnum is not None else None
        auth_type, auth_level = run.auth_names(call.auth)
        if call.auth[0] and not call.auth[1]:
            auth_level = "unknown"
        c, cp, s, sp = call.ep
        rtt = call.resp_ts - call.ts if call.resp_ts is not None and call.req.frags else None
        run.counters["calls"] += 1
        rec = CallRecord(
            call.ts, call.req.frame, call.resp.frame, c, cp, s, sp, TRANSPORT, None,
            call.seqnum, None, call.opnum, call.if_uuid, version,
            iface.name if iface is not None else None, op, "header", call.obj,
            auth_type, auth_level, status, fault, rtt,  # type: ignore[arg-type]
            call.req.stub, call.resp.stub, len(call.req.frags), len(call.resp.frags),
            "NDR", close_reason, None,
        )  # fmt: skip
        rec.activity_uuid = call.key[0]
        run.emit(rec)
        if call.tap is not None:
            call.tap(rec, call.req.joined(), call.resp.joined())

    def expire(self, now: float, frame: int) -> None:
        """Writes calls idle for longer than the idle timeout (their missing fragments are reported)."""
        limit = self.run.limits.idle_timeout
        stale = [k for k, c in self.calls.items() if now - c.last_ts > limit]
        for k in stale:
            call = self.calls.pop(k)
            self.run.sub = call.first_frame
            self._emit(call, "no_response", None, "idle_timeout")
        self.run.sub = 0

    def close_all(self, reason: str) -> None:
        """End of input: every call still open becomes a record."""
        for call in list(self.calls.values()):
            self.run.sub = call.first_frame
            self._emit(call, "no_response", None, reason)
        self.run.sub = 0
        self.calls.clear()
        self.done.clear()
        self.fragments = 0
