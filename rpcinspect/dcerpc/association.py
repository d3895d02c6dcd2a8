"""Association state for connection-oriented DCE/RPC: contexts, auth in force, call pairing.

One :class:`Association` per transport channel (a TCP connection; later an SMB pipe file id)
owns all mutable state; :mod:`rpcinspect.dcerpc.pdu` stays pure. Calls pair on call_id with
the expected answer type (request -> response/fault, bind -> bind_ack/bind_nak/fault), a response
seen first opens its call, and every call becomes a record: on its answer, or when the channel
closes, or when a limit evicts it (``close_reason`` says which).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpcinspect.auth import SEC_VT_MAGIC
from rpcinspect.dcerpc import pdu
from rpcinspect.dcerpc.authstate import AuthCtx, auth_leg, unseal
from rpcinspect.dcerpc.callrec import Call, Context, PendingBind, Records
from rpcinspect.dcerpc.pdu import PFC_FIRST_FRAG, PFC_LAST_FRAG, Header

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = ["Association"]

_CLIENT_PTYPES = frozenset((0, 11, 14, 16, 18, 19))
_SERVER_PTYPES = frozenset((2, 3, 12, 13, 15, 17))
_NONE_AUTH = (0, 0)


class Association(Records):
    """DCE/RPC state of one channel; fed whole PDUs by a transport framer."""

    __slots__ = (
        "_actx",
        "_ep",
        "_held",
        "_rejected_all",
        "assoc_group",
        "auth",
        "auth_ctxs",
        "binds",
        "calls",
        "client_dir",
        "contexts",
        "named_pipe",
        "run",
        "smb",
        "target",
        "transport",
    )  # fmt: skip

    def __init__(self, run: Run, transport: str, endpoints: Endpoints, named_pipe: str | None = None) -> None:
        self.run = run
        self.transport = transport
        self.named_pipe = named_pipe
        self._ep = endpoints  # (orig addr, orig port, resp addr, resp port) until the client is known
        self.client_dir: int | None = None
        self.contexts: dict[int, Context] = {}
        self.calls: dict[int, Call] = {}
        self.binds: dict[int, PendingBind] = {}
        self.auth: tuple[int, int] = _NONE_AUTH  # (auth_type, auth_level) in force, from the last bind leg
        self.assoc_group: int | None = None
        self._rejected_all = False
        self.auth_ctxs: dict[int, AuthCtx] = {}  # by sec_trailer auth_context_id
        self._actx: AuthCtx | None = None  # the context of the last bind leg: in force without a verifier
        self._held: tuple[Any, ...] | None = None  # a bind record waiting for its auth3 leg
        self.smb: object | None = None
        self.target: tuple[str, int] | None = None  # ncacn_http: the server:port its URL names

    # -- entry point -----------------------------------------------------------------------------
    def pdu(self, dirn: int, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        """Handles one complete PDU that arrived in direction *dirn* (0 = connection originator)."""
        pt = h.ptype
        if self.client_dir is None:
            if pt in _CLIENT_PTYPES:
                self._set_client(dirn)
            elif pt in _SERVER_PTYPES:
                self._set_client(1 - dirn)
        run = self.run
        if self._held is not None and pt != 16:
            self._flush_held()
        if pt == 0:
            self._request(buf, off, h, frame, ts)
        elif pt == 2:
            self._response(buf, off, h, frame, ts)
        elif pt == 3:
            self._fault(buf, off, h, frame, ts)
        elif pt == 11 or pt == 14:
            self._bind(buf, off, h, frame, ts)
        elif pt == 12 or pt == 15:
            self._bind_ack(buf, off, h, frame, ts)
        elif pt == 13:
            self._bind_nak(buf, off, h, frame, ts)
        elif pt == 16:
            tr = self._auth_leg(buf, off, h, frame, ts)
            if tr is not None:
                self.auth = (tr.auth_type, tr.auth_level)
            run.count("pdu_auth3")
            if self._held is not None:
                self._flush_held()
        elif pt == 19:
            run.count("pdu_orphaned")
            call = self.calls.pop(h.call_id, None)
            if call is not None:
                self._emit_call(call, "no_response", None, "orphaned")
        elif pt == 18:
            run.count("pdu_co_cancel")
        elif pt == 17:
            run.count("pdu_shutdown")
        elif pt == 20:
            run.count("pdu_rts")
        else:
            self._anomaly("malformed_pdu", f"connectionless PDU type {pt} on a connection", frame, ts)

    # -- calls -----------------------------------------------------------------------------------
    def _request(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        f = pdu.request_fields(buf, off, h)
        if f is None:
            self._anomaly("malformed_pdu", "request shorter than its header", frame, ts)
            return
        ctx_id, opnum, stub, obj = f
        calls = self.calls
        call = calls.get(h.call_id)
        if h.flags & PFC_FIRST_FRAG or call is None or call.req_frame is not None:
            if call is not None:
                del calls[h.call_id]
                self._emit_call(call, "no_response", None, "superseded")
            if not h.flags & PFC_FIRST_FRAG:
                self.run.count("request_midstream_fragment")
            if len(calls) >= self.run.limits.max_calls:
                old = calls.pop(next(iter(calls)))
                self._anomaly(
                    "call_evicted", f"more than {self.run.limits.max_calls} calls in flight", frame, ts
                )
                self._emit_call(old, "no_response", None, "evicted")
            call = Call(ts, frame, h.call_id)
            call.ctx_id = ctx_id
            call.opnum = opnum
            call.obj = obj
            call.has_request = True
            if h.auth_len:
                tr = pdu.auth_trailer(buf, off, h)
                if tr is not None:
                    call.auth = (tr.auth_type, tr.auth_level, tr.ctx_id)
                else:
                    self._anomaly("malformed_auth", "auth_length larger than the request", frame, ts)
            calls[h.call_id] = call
            taps = self.run.stub_taps
            if taps:
                ctx = self.contexts.get(ctx_id)
                if ctx is None or ctx.if_uuid in taps:  # unbound calls ask the resolver first
                    self._want_stubs(call)
        call.req_frags += 1
        call.req_stub += stub
        if self.run.secrets is not None and h.auth_len:
            start = off + 24 + (16 if h.flags & pdu.PFC_OBJECT_UUID else 0)
            plain = self._unseal(0, buf, off, h, start, stub)
            if plain is False:
                call.decrypted = False  # a sealed PDU that does not verify: the call stays encrypted
            elif plain is not None:
                if call.decrypted is None:
                    call.decrypted = True
                if SEC_VT_MAGIC in plain:
                    call.sec_vt = True
                if call.req_bytes is not None:
                    self._keep(call.req_bytes, plain, 0, stub)
                if h.flags & PFC_LAST_FRAG:
                    call.req_frame = frame
                return
        if h.auth_len and stub >= 8 and call.auth is not None and call.auth[1] < 6:
            start = off + 24 + (16 if h.flags & pdu.PFC_OBJECT_UUID else 0)
            if buf.find(SEC_VT_MAGIC, start, start + stub) >= 0:
                call.sec_vt = True
        if call.req_bytes is not None:
            start = off + 24 + (16 if h.flags & pdu.PFC_OBJECT_UUID else 0)
            self._keep(call.req_bytes, buf, start, stub)
        if h.flags & PFC_LAST_FRAG:
            call.req_frame = frame

    def _response(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        f = pdu.response_ctx(buf, off, h)
        if f is None:
            self._anomaly("malformed_pdu", "response shorter than its header", frame, ts)
            return
        call = self._answered_call(h.call_id, f[0], frame, ts)
        call.resp_frags += 1
        call.resp_stub += f[1]
        plain: bytes | bool | None = None
        if self.run.secrets is not None and h.auth_len:
            plain = self._unseal(1, buf, off, h, off + 24, f[1])
            if plain is False:
                call.decrypted = False
            elif plain is not None and call.decrypted is None:
                call.decrypted = True
        if call.resp_bytes is not None:
            if isinstance(plain, bytes):
                self._keep(call.resp_bytes, plain, 0, f[1])
            else:
                self._keep(call.resp_bytes, buf, off + 24, f[1])
        if h.flags & PFC_LAST_FRAG:
            call.resp_frame = frame
            call.resp_ts = ts
            del self.calls[h.call_id]
            self._emit_call(call, "ok", None, None)

    def _fault(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        f = pdu.fault_status(buf, off, h)
        if f is None:
            self._anomaly("malformed_pdu", "fault shorter than its header", frame, ts)
            return
        ctx_id, status = f
        name = self.run.catalog.fault_name(status)
        pending = self.binds.pop(h.call_id, None)
        if pending is not None and h.call_id not in self.calls:
            self._emit_bind(pending, None, frame, "rejected", name, None)
            return
        call = self._answered_call(h.call_id, ctx_id, frame, ts)
        call.resp_frags += 1
        call.resp_frame = frame
        call.resp_ts = ts
        del self.calls[h.call_id]
        self._emit_call(call, "fault", name, None)

    def _want_stubs(self, call: Call) -> None:
        """Marks *call* for stub capture if a tap asked for its interface and opnum."""
        uuid = self._interface_of(call)[0]
        want = self.run.stub_taps.get(uuid) if uuid is not None else None
        if want is not None and (want[0] is None or call.opnum in want[0]):
            call.tap = want[1]
            call.req_bytes = bytearray()
            call.resp_bytes = bytearray()

    def _keep(self, into: bytearray, buf: bytes, start: int, n: int) -> None:
        room = self.run.limits.max_stub_bytes - len(into)
        if n > room:
            self.run.count("stub_bytes_clipped")
            n = max(room, 0)
        into += buf[start : start + n]

    def _answered_call(self, call_id: int, ctx_id: int, frame: int, ts: float) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            self.run.count("response_without_request")
            call = Call(ts, frame, call_id)
            call.ctx_id = ctx_id
            self.calls[call_id] = call
        return call

    def _bind(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        body = pdu.bind_body(buf, off, h)
        kind = "bind" if h.ptype == 11 else "alter_context"
        if body is None:
            self._anomaly("malformed_pdu", f"{kind} body does not fit its PDU", frame, ts)
            return
        if body.truncated:
            self._anomaly("malformed_pdu", f"{kind} announces more contexts than it carries", frame, ts)
        tr = self._auth_leg(buf, off, h, frame, ts)
        auth = (tr.auth_type, tr.auth_level) if tr is not None else _NONE_AUTH
        if tr is not None or h.ptype == 11:
            self.auth = auth
        for item in body.contexts:
            if len(self.contexts) >= self.run.limits.max_contexts and item.ctx_id not in self.contexts:
                self._anomaly("context_limit", "too many presentation contexts", frame, ts)
                break
            iface = self.run.catalog.interface(item.if_uuid, item.if_version)
            self.contexts[item.ctx_id] = Context(item.if_uuid, item.if_version, iface)
        if len(self.binds) >= self.run.limits.max_binds:
            old = self.binds.pop(next(iter(self.binds)))
            self._emit_bind(old, None, None, "no_response", None, "evicted")
        if h.call_id in self.binds:
            self._emit_bind(self.binds.pop(h.call_id), None, None, "no_response", None, "superseded")
        pb = PendingBind(ts, frame, h.call_id, kind, body, auth, bool(h.flags & pdu.PFC_SUPPORT_HEADER_SIGN))
        if tr is not None:
            pb.actx = self.auth_ctxs.get(tr.ctx_id)
        self.binds[h.call_id] = pb
        self.run.count(f"pdu_{kind}")

    def _take_bind(self, call_id: int) -> PendingBind | None:
        pending = self.binds.pop(call_id, None)
        if pending is None and self.binds:
            self.run.count("bind_ack_call_id_mismatch")
            pending = self.binds.pop(next(iter(self.binds)))
        return pending

    def _bind_ack(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        ack = pdu.bind_ack_body(buf, off, h)
        if ack is None:
            self._anomaly("malformed_pdu", "bind_ack body does not fit its PDU", frame, ts)
            return
        self.assoc_group = ack.assoc_group
        tr = self._auth_leg(buf, off, h, frame, ts)
        if tr is not None and tr.auth_level:
            self.auth = (tr.auth_type, tr.auth_level)
        pending = self._take_bind(h.call_id)
        if pending is None:
            self.run.count("bind_ack_without_bind")
            return
        pending.ack_sign = bool(h.flags & pdu.PFC_SUPPORT_HEADER_SIGN)
        for item, res in zip(pending.body.contexts, ack.results, strict=False):
            ctx = self.contexts.get(item.ctx_id)
            if ctx is not None and res.result != 3:
                ctx.result = res.result
                ctx.syntax = self.run.catalog.syntax_name(*res.transfer) if res.result == 0 else None
        accepted = any(r.result == 0 for r in ack.results)
        if not accepted and ack.results:
            self._rejected_all = True
        if accepted and pending.actx is not None and not pending.actx.complete:
            if self._held is not None:
                self._flush_held()
            self._held = (pending, ack, frame, "ok", None, None)  # the auth3 leg completes it
            return
        self._emit_bind(pending, ack, frame, "ok" if accepted else "rejected", None, None)

    def _bind_nak(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        reason = None
        if h.frag_len >= 18 and len(buf) >= off + 18:
            reason = (
                buf[off + 16] | (buf[off + 17] << 8) if h.little else (buf[off + 16] << 8) | buf[off + 17]
            )
        pending = self._take_bind(h.call_id)
        name = self.run.catalog.bind_nak_reason_name(reason) if reason is not None else None
        if pending is None:
            self.run.count("bind_nak_without_bind")
            return
        for item in pending.body.contexts:
            ctx = self.contexts.get(item.ctx_id)
            if ctx is not None:
                ctx.result = 2
        self._rejected_all = True
        self._emit_bind(pending, None, frame, "rejected", name, None)

    def _auth_leg(self, buf: bytes, off: int, h: Header, frame: int, ts: float) -> pdu.AuthTrailer | None:
        """Reads the auth trailer of a bind, alter_context, auth3 or answer and feeds its context."""
        if not h.auth_len:
            return None
        tr = pdu.auth_trailer(buf, off, h)
        if tr is None:
            self._anomaly("malformed_auth", f"auth_length {h.auth_len} larger than the PDU", frame, ts)
            return None
        self._actx = auth_leg(self.run, self.auth_ctxs, h.ptype, tr, buf, self._anomaly, frame, ts)
        return tr

    def _unseal(
        self, side: int, buf: bytes, off: int, h: Header, start: int, stub: int
    ) -> bytes | bool | None:
        """The plaintext stub of a sealed PDU whose context a secret opened (else None)."""
        return unseal(self.auth_ctxs, side, buf, off, h, start, stub)

    # -- lifecycle -------------------------------------------------------------------------------
    def _set_client(self, client_dir: int) -> None:
        self.client_dir = client_dir
        if client_dir == 1:
            a, ap, b, bp = self._ep
            self._ep = (b, bp, a, ap)

    def _anomaly(self, kind: str, detail: str, frame: int, ts: float) -> None:
        self.run.anomaly(kind, detail, frame, ts, self._ep)

    def close(self, reason: str) -> None:
        """Ends the channel: every unanswered call and bind becomes a record."""
        if self._held is not None:
            self._flush_held()
        for call in self.calls.values():
            self._emit_call(call, "no_response", None, reason)
        self.calls.clear()
        for pb in self.binds.values():
            self._emit_bind(pb, None, None, "no_response", None, reason)
        self.binds.clear()
