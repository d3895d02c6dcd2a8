"""Connection-oriented DCE/RPC PDUs (C706 ch. 12, MS-RPCE 2.2.2): pure parse functions.

Every function reads ``(buf, off)`` with ``struct`` and returns plain tuples; byte order comes
from the PDU's data representation (``drep``) once, in :func:`header`. Nothing here holds state
or raises on bad input: a body that does not fit its PDU gives ``None`` and the caller counts it.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from rpcinspect.transports.cl import uuid_str
from rpcinspect.transports.cotcp import CO_HEADER_LEN, Header, header, plausible

__all__ = [
    "BIND_TYPES",
    "CO_HEADER_LEN",
    "MAX_CONTEXTS",
    "PFC_FIRST_FRAG",
    "PFC_LAST_FRAG",
    "PFC_OBJECT_UUID",
    "PFC_SUPPORT_HEADER_SIGN",
    "PTYPE_NAMES",
    "AckResult",
    "AuthTrailer",
    "BindAck",
    "BindBody",
    "ContextItem",
    "Header",
    "auth_trailer",
    "bind_ack_body",
    "bind_body",
    "fault_status",
    "header",
    "plausible",
    "request_fields",
    "response_ctx",
    "uuid_str",
]

MAX_CONTEXTS: Final = 255  # n_context_elem is one byte: the protocol itself bounds it

PFC_FIRST_FRAG: Final = 0x01
PFC_LAST_FRAG: Final = 0x02
PFC_SUPPORT_HEADER_SIGN: Final = 0x04  # same bit as PFC_PENDING_CANCEL, meaningful in bind only
PFC_CONC_MPX: Final = 0x10
PFC_MAYBE: Final = 0x40
PFC_OBJECT_UUID: Final = 0x80

PTYPE_NAMES: Final = (
    "request", "ping", "response", "fault", "working", "nocall", "reject", "ack", "cl_cancel",
    "fack", "cancel_ack", "bind", "bind_ack", "bind_nak", "alter_context", "alter_context_resp",
    "auth3", "shutdown", "co_cancel", "orphaned", "rts",
)  # fmt: skip
BIND_TYPES: Final = frozenset((11, 14))

_LE: Final = {"H": struct.Struct("<H"), "I": struct.Struct("<I"), "HH": struct.Struct("<HH")}
_BE: Final = {"H": struct.Struct(">H"), "I": struct.Struct(">I"), "HH": struct.Struct(">HH")}


class AuthTrailer(NamedTuple):
    """sec_trailer (MS-RPCE 2.2.2.11) plus the auth value's length."""

    auth_type: int
    auth_level: int
    pad_len: int
    ctx_id: int
    value_off: int
    value_len: int


def auth_trailer(buf: bytes, off: int, h: Header) -> AuthTrailer | None:
    """The auth trailer at the end of the PDU, or ``None`` when absent or impossible."""
    if not h.auth_len:
        return None
    t = off + h.frag_len - h.auth_len - 8
    if t < off + CO_HEADER_LEN or off + h.frag_len > len(buf):
        return None
    ctx = (_LE if h.little else _BE)["I"].unpack_from(buf, t + 4)[0]
    return AuthTrailer(buf[t], buf[t + 1], buf[t + 2], ctx, t + 8, h.auth_len)


def request_fields(buf: bytes, off: int, h: Header) -> tuple[int, int, int, str | None] | None:
    """``(ctx_id, opnum, stub_len, object_uuid)`` of a request, or ``None`` if it cannot fit."""
    body = 24 + (16 if h.flags & PFC_OBJECT_UUID else 0)
    if h.frag_len < body:
        return None
    ctx, opnum = (_LE if h.little else _BE)["HH"].unpack_from(buf, off + 20)
    obj = uuid_str(bytes(buf[off + 24 : off + 40]), h.little) if h.flags & PFC_OBJECT_UUID else None
    return ctx, opnum, _stub_len(buf, off, h, body) if h.auth_len else h.frag_len - body, obj


def response_ctx(buf: bytes, off: int, h: Header) -> tuple[int, int] | None:
    """``(ctx_id, stub_len)`` of a response, or ``None``."""
    if h.frag_len < 24:
        return None
    ctx = (_LE if h.little else _BE)["H"].unpack_from(buf, off + 20)[0]
    return ctx, _stub_len(buf, off, h, 24) if h.auth_len else h.frag_len - 24


def fault_status(buf: bytes, off: int, h: Header) -> tuple[int, int] | None:
    """``(ctx_id, status)`` of a fault PDU, or ``None``."""
    if h.frag_len < 28:
        return None
    s = _LE if h.little else _BE
    return s["H"].unpack_from(buf, off + 20)[0], s["I"].unpack_from(buf, off + 24)[0]


def _stub_len(buf: bytes, off: int, h: Header, body: int) -> int:
    n = h.frag_len - body
    if h.auth_len:
        n -= h.auth_len + 8
        t = off + h.frag_len - h.auth_len - 8
        if n >= 0 and t + 3 <= len(buf):
            n -= buf[t + 2]  # auth_pad_length
    return max(n, 0)


class ContextItem(NamedTuple):
    """One p_cont_elem_t of a bind or alter_context."""

    ctx_id: int
    if_uuid: str
    if_version: str
    transfer: tuple[tuple[str, str], ...]  # (uuid, "major.minor") of each transfer syntax


class BindBody(NamedTuple):
    """Body of a bind or alter_context PDU."""

    max_xmit: int
    max_recv: int
    assoc_group: int
    contexts: tuple[ContextItem, ...]
    truncated: bool


def _syntax(buf: bytes, o: int, little: bool) -> tuple[str, str]:
    """A p_syntax_id_t: uuid, then if_version, one 32-bit integer in the PDU's byte order whose
    low 16 bits are the major and high 16 bits the minor version (C706 12.6.3.1), so that in
    big-endian PDUs the minor comes first on the wire."""
    v = (_LE if little else _BE)["I"].unpack_from(buf, o + 16)[0]
    return uuid_str(bytes(buf[o : o + 16]), little), f"{v & 0xFFFF}.{v >> 16}"


_MEMO_MAX = 4096
_ctx_memo: dict[tuple[bool, bytes], tuple[tuple[ContextItem, ...], bool]] = {}
_ack_memo: dict[tuple[bool, bytes], tuple[str, tuple[AckResult, ...], bool]] = {}


def _remember(memo: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
    """Bounded memo: clients repeat the same bind bodies, byte for byte, on every connection."""
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def bind_body(buf: bytes, off: int, h: Header) -> BindBody | None:
    """Decodes a bind/alter_context body; stops at the PDU end (``truncated`` says so)."""
    end = off + h.frag_len - (h.auth_len + 8 if h.auth_len else 0)
    if end < off + 28 or end > len(buf):
        return None
    s = _LE if h.little else _BE
    max_xmit, max_recv = s["H"].unpack_from(buf, off + 16)[0], s["H"].unpack_from(buf, off + 18)[0]
    assoc = s["I"].unpack_from(buf, off + 20)[0]
    key = (h.little, bytes(buf[off + 24 : end]))
    hit = _ctx_memo.get(key)
    if hit is None:
        hit = _contexts(key[1], h.little)
        _remember(_ctx_memo, key, hit)
    return BindBody(max_xmit, max_recv, assoc, hit[0], hit[1])


def _contexts(b: bytes, little: bool) -> tuple[tuple[ContextItem, ...], bool]:
    """The p_cont_list_t starting at n_context_elem; (items, truncated)."""
    s = _LE if little else _BE
    end = len(b)
    n_ctx = b[0]
    o = 4
    items: list[ContextItem] = []
    for _ in range(n_ctx):
        if o + 44 > end:
            return tuple(items), True
        ctx_id = s["H"].unpack_from(b, o)[0]
        n_ts = b[o + 2]
        if_uuid, if_ver = _syntax(b, o + 4, little)
        o += 24
        ts: list[tuple[str, str]] = []
        for _ in range(n_ts):
            if o + 20 > end:
                items.append(ContextItem(ctx_id, if_uuid, if_ver, tuple(ts)))
                return tuple(items), True
            ts.append(_syntax(b, o, little))
            o += 20
        items.append(ContextItem(ctx_id, if_uuid, if_ver, tuple(ts)))
    return tuple(items), False


class AckResult(NamedTuple):
    """One p_result_t of a bind_ack / alter_context_resp."""

    result: int
    reason: int
    transfer: tuple[str, str]


class BindAck(NamedTuple):
    """Body of a bind_ack or alter_context_resp."""

    max_xmit: int
    max_recv: int
    assoc_group: int
    sec_addr: str
    results: tuple[AckResult, ...]
    truncated: bool


def bind_ack_body(buf: bytes, off: int, h: Header) -> BindAck | None:
    """Decodes a bind_ack / alter_context_resp body (secondary address, then results)."""
    end = off + h.frag_len - (h.auth_len + 8 if h.auth_len else 0)
    if end < off + 26 or end > len(buf):
        return None
    s = _LE if h.little else _BE
    max_xmit, max_recv = s["H"].unpack_from(buf, off + 16)[0], s["H"].unpack_from(buf, off + 18)[0]
    assoc = s["I"].unpack_from(buf, off + 20)[0]
    key = (h.little, bytes(buf[off + 24 : end]))
    hit = _ack_memo.get(key)
    if hit is None:
        hit = _ack_tail(key[1], h.little)
        _remember(_ack_memo, key, hit)
    return BindAck(max_xmit, max_recv, assoc, hit[0], hit[1], hit[2])


def _ack_tail(b: bytes, little: bool) -> tuple[str, tuple[AckResult, ...], bool]:
    """Secondary address and p_result_list_t, from the sec_addr length field (PDU offset 24)."""
    s = _LE if little else _BE
    end = len(b)
    alen = s["H"].unpack_from(b, 0)[0]
    o = 2
    if o + alen > end:
        return "", (), True
    sec = b[o : o + alen].rstrip(b"\0").decode("latin-1")
    o += alen
    o += (-(o + 24)) % 4  # align to 4 from the PDU start (this buffer starts at PDU offset 24)
    if o + 4 > end:
        return sec, (), o > end
    n = b[o]
    o += 4
    results: list[AckResult] = []
    for _ in range(n):
        if o + 24 > end:
            return sec, tuple(results), True
        res = s["H"].unpack_from(b, o)[0]
        reason = s["H"].unpack_from(b, o + 2)[0]
        results.append(AckResult(res, reason, _syntax(b, o + 4, little)))
        o += 24
    return sec, tuple(results), False
