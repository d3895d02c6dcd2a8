"""From an association's finished calls and binds to records: naming, auth in force, protection.

Split from :mod:`rpcinspect.dcerpc.association`, which owns the PDU handling and call pairing;
this module owns the per-call state it pairs (:class:`Call`, :class:`Context`,
:class:`PendingBind`) and what a finished one becomes (:class:`~rpcinspect.records.CallRecord`,
:class:`~rpcinspect.records.BindRecord`). A call whose interface stays unknown goes to
:attr:`Run.unnamed <rpcinspect.runtime.Run.unnamed>` when set (late naming by the endpoint mapper,
:mod:`rpcinspect.dcerpc.latename`), else straight out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpcinspect.dcerpc import pdu
from rpcinspect.records import BindRecord, CallRecord, ContextRecord

if TYPE_CHECKING:
    from rpcinspect.catalog import Catalog, Interface
    from rpcinspect.dcerpc.authstate import AuthCtx
    from rpcinspect.runtime import Endpoints, Run, StubTap

__all__ = ["Call", "Context", "PendingBind", "Records"]

_BTFN_PREFIX = "6cb71c2c-9812-4540-"
_BTFN_BITS = ((0x1, "security_context_multiplexing"), (0x2, "keep_connection_on_orphan"))


def _context_records(
    cat: Catalog, contexts: tuple[pdu.ContextItem, ...], results: tuple[pdu.AckResult, ...], nak: bool
) -> list[ContextRecord]:
    """The offered contexts with the server's answers, named (memoised: binds repeat verbatim)."""
    out: list[ContextRecord] = []
    for i, item in enumerate(contexts):
        res = results[i] if i < len(results) else None
        btfn: list[str] | None = None
        names: list[str] = []
        for ts_uuid, ts_ver in item.transfer:
            if ts_uuid.startswith(_BTFN_PREFIX):
                bits = int(ts_uuid[19:21], 16) | (int(ts_uuid[21:23], 16) << 8)
                btfn = [n for b, n in _BTFN_BITS if bits & b]
            names.append(cat.syntax_name(ts_uuid, ts_ver) or f"{ts_uuid}:{ts_ver}")
        iface = cat.interface(item.if_uuid, item.if_version)
        result = reason = accepted = None
        if res is not None:
            result = cat.ack_result_name(res.result)
            if res.result == 3:  # negotiate_ack: reason carries the features the server supports
                btfn = [n for b, n in _BTFN_BITS if res.reason & b]
            else:
                reason = cat.ack_reason_name(res.reason)
            if res.result == 0:
                accepted = cat.syntax_name(*res.transfer) or f"{res.transfer[0]}:{res.transfer[1]}"
        elif nak:
            result = "rejected"
        name = iface.name if iface else None
        out.append(
            ContextRecord(
                item.ctx_id, item.if_uuid, item.if_version, name, names, result, reason, accepted, btfn
            )
        )
    return out


class Context:
    __slots__ = ("if_uuid", "if_version", "iface", "result", "syntax")

    def __init__(self, if_uuid: str, if_version: str, iface: Interface | None) -> None:
        self.if_uuid = if_uuid
        self.if_version = if_version
        self.iface = iface  # resolved once per bind, not per call
        self.result: int | None = None
        self.syntax: str | None = None


class Call:
    __slots__ = (
        "auth",
        "call_id",
        "ctx_id",
        "decrypted",
        "first_frame",
        "has_request",
        "obj",
        "opnum",
        "req_bytes",
        "req_frags",
        "req_frame",
        "req_stub",
        "resp_bytes",
        "resp_frags",
        "resp_frame",
        "resp_stub",
        "resp_ts",
        "sec_vt",
        "tap",
        "ts",
    )  # fmt: skip

    def __init__(self, ts: float, frame: int, call_id: int) -> None:
        self.ts = ts
        self.first_frame = frame
        self.req_frame: int | None = None
        self.resp_frame: int | None = None
        self.call_id = call_id
        self.ctx_id: int | None = None
        self.opnum: int | None = None
        self.obj: str | None = None
        self.req_stub = 0
        self.resp_stub = 0
        self.req_frags = 0
        self.resp_frags = 0
        self.auth: tuple[int, int, int] | None = None  # the request's verifier: (type, level, auth ctx)
        self.sec_vt = False
        self.decrypted: bool | None = None  # True: its sealed PDUs opened; False: one did not verify
        self.resp_ts: float | None = None
        self.has_request = False
        self.tap: StubTap | None = None  # set when a stub tap wants this call's bytes
        self.req_bytes: bytearray | None = None
        self.resp_bytes: bytearray | None = None


class PendingBind:
    __slots__ = ("ack_sign", "actx", "auth", "body", "call_id", "frame", "header_sign", "kind", "ts")

    def __init__(
        self,
        ts: float,
        frame: int,
        call_id: int,
        kind: str,
        body: pdu.BindBody,
        auth: tuple[int, int],
        sign: bool,
    ) -> None:
        self.ts = ts
        self.call_id = call_id
        self.frame = frame
        self.kind = kind
        self.body = body
        self.auth = auth
        self.header_sign = sign
        self.ack_sign: bool | None = None  # the bind_ack's PFC_SUPPORT_HEADER_SIGN, once seen
        self.actx: AuthCtx | None = None


class Records:
    """Mixin of :class:`~rpcinspect.dcerpc.association.Association`: its records."""

    __slots__ = ()
    run: Run
    transport: str
    named_pipe: str | None
    contexts: dict[int, Context]
    auth: tuple[int, int]
    auth_ctxs: dict[int, AuthCtx]
    assoc_group: int | None
    smb: object | None
    target: tuple[str, int] | None
    _ep: Endpoints
    _actx: AuthCtx | None
    _held: tuple[Any, ...] | None
    _rejected_all: bool

    def _resolve_key(self) -> tuple[str, str, int, str | None]:
        """What names this channel's unbound calls: ``(transport, server, port, named_pipe)``,
        the server being the one an ncacn_http URL names, else the connection's."""
        server, port = self.target or (self._ep[2], self._ep[3])
        return self.transport, server, port, self.named_pipe

    def _interface_of(self, call: Call) -> tuple[str | None, str | None, str, Context | None]:
        """``(if_uuid, if_version, if_source, context)`` of a call: its bind, else the resolver."""
        ctx = self.contexts.get(call.ctx_id) if call.ctx_id is not None else None
        if ctx is not None:
            return ctx.if_uuid, ctx.if_version, "bind", ctx
        resolver = self.run.resolver
        if resolver is not None:
            found = resolver(*self._resolve_key())
            if found is not None:
                return found[0], found[1], found[2], None
        return None, None, "unknown", None

    def _emit_call(self, call: Call, status: str, fault: str | None, close_reason: str | None) -> None:
        run = self.run
        ctx = self.contexts.get(call.ctx_id) if call.ctx_id is not None else None
        if ctx is not None:
            if_uuid, if_ver = ctx.if_uuid, ctx.if_version
            iface = ctx.iface
            source = "bind"
            if ctx.result is not None and ctx.result != 0 and status != "ok":
                status = "rejected"
        else:
            if_uuid, if_ver, source, _ = self._interface_of(call)
            iface = run.catalog.interface(if_uuid, if_ver) if if_uuid is not None else None
            if self._rejected_all and status != "ok":
                status = "rejected"
        op = None
        if iface is not None and call.opnum is not None:
            op = iface.opnums.get(call.opnum)
        a = call.auth
        user: str | None = None
        signed = sealed = False
        if a is not None:
            auth_type, auth_level = run.auth_names((a[0], a[1]))
            actx = self.auth_ctxs.get(a[2])
            user = actx.user if actx is not None else None
            signed = a[1] >= 5
            sealed = a[1] == 6
            asrc = "rpc" if a[0] else "none"
        else:
            auth_type, auth_level = run.auth_names(self.auth)
            asrc = "rpc" if self.auth[0] else "none"
            if asrc == "rpc" and self._actx is not None:
                user = self._actx.user
        smb = self.smb  # the named pipe's SMB session facts (transports.smb.SmbSession), or None
        smb_auth = smb_dialect = None
        if smb is not None:
            smb_auth, smb_dialect = getattr(smb, "mechanism", None), getattr(smb, "dialect", None)
        if asrc == "none" and smb is not None and (getattr(smb, "user", None) or smb_auth):
            asrc = "smb"
            u, d = getattr(smb, "user", None), getattr(smb, "domain", None)
            user = (f"{d}\\{u}" if d else u) if u else None
            signed = bool(getattr(smb, "signed", False))
            sealed = bool(getattr(smb, "encrypted", False))
        has_stub = call.req_stub > 0 or call.resp_stub > 0
        encrypted = a is not None and a[1] == 6 and has_stub and call.decrypted is not True
        # SMB3 decryption of the named pipe's session (transports.smb) also counts as decrypted
        decrypted = call.decrypted is True or bool(getattr(smb, "decrypted", False))
        c, cp, s, sp = self._ep
        rtt = call.resp_ts - call.ts if call.resp_ts is not None and call.has_request else None
        run.counters["calls"] += 1
        rec = CallRecord(
            call.ts, call.req_frame, call.resp_frame, c, cp, s, sp, self.transport, self.named_pipe,
            call.call_id, call.ctx_id, call.opnum, if_uuid, if_ver,
            iface.name if iface is not None else None, op, source, call.obj,
            auth_type, auth_level, status, fault, rtt,
            call.req_stub, call.resp_stub, call.req_frags, call.resp_frags,
            ctx.syntax if ctx is not None else None, close_reason, self.assoc_group,
            None, user, asrc, signed, sealed, encrypted, decrypted, call.sec_vt, smb_auth, smb_dialect,
        )  # type: ignore[arg-type]  # fmt: skip
        if source == "unknown" and run.unnamed is not None:
            run.unnamed(rec, self._resolve_key())  # held: the endpoint mapper may name it later
        else:
            run.emit(rec)
        if call.tap is not None:
            call.tap(rec, bytes(call.req_bytes or b""), bytes(call.resp_bytes or b""))

    def _emit_bind(
        self,
        pb: PendingBind,
        ack: pdu.BindAck | None,
        resp_frame: int | None,
        status: str,
        nak_reason: str | None,
        close_reason: str | None,
    ) -> None:
        results = ack.results if ack is not None else ()
        nak = status == "rejected" and ack is None
        key = (pb.body.contexts, results, nak)
        memo = self.run.memo
        ctxs = memo.get(key)
        if ctxs is None:
            ctxs = _context_records(self.run.catalog, pb.body.contexts, results, nak)
            if len(memo) >= 4096:
                memo.clear()
            memo[key] = ctxs
        c, cp, s, sp = self._ep
        auth_type, auth_level = self.run.auth_names(pb.auth)
        bind_auth = pb.actx.record(auth_type) if pb.actx is not None else None
        self.run.count("binds")
        if close_reason:
            self.run.count(f"bind_{close_reason}")
        self.run.emit(
            BindRecord(
                pb.ts,
                pb.frame,
                resp_frame,
                c,
                cp,
                s,
                sp,
                self.transport,
                self.named_pipe,
                pb.kind,
                pb.call_id,
                status,  # type: ignore[arg-type]
                ack.assoc_group if ack else None,
                pb.body.max_xmit,
                pb.body.max_recv,
                ack.sec_addr if ack else None,
                auth_type,
                auth_level,
                pb.header_sign,
                nak_reason,
                ctxs,
                auth=bind_auth,
                header_sign_ack=pb.ack_sign,
            )
        )

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._emit_bind(*held)
