"""Auth values of DCE/RPC binds and their legs: NTLMSSP, Kerberos, SPNEGO, Netlogon.

Parsed only on bind, alter_context, auth3 and their responses (never per request): see
:func:`parse_value`. Results are memoised on the blob bytes (bounded), since clients and replays
repeat them, and are plain dicts the caller must not mutate.
"""

from __future__ import annotations

from typing import Any

from rpcinspect.auth import kerberos, netlogon, ntlm, spnego

__all__ = ["MAX_VALUE", "SEC_VT_MAGIC", "parse_value"]

MAX_VALUE = 65536
"""Auth values above this many bytes are not parsed (a problem is reported instead)."""

SEC_VT_MAGIC = b"\x8a\xe3\x13\x71\x02\xf4\x36\x71"
"""rpc_sec_verification_trailer marker (MS-RPCE 2.2.2.13) inside a request stub."""

_memo: dict[tuple[int, bytes], tuple[dict[str, Any], list[str]]] = {}
_MEMO_MAX = 2048


def _token(b: bytes) -> tuple[str | None, dict[str, Any], list[str]]:
    """A mechanism token of unknown kind: NTLMSSP or Kerberos by its first bytes."""
    if b[:8] == ntlm.SIGNATURE:
        i, p = ntlm.parse(b)
        return "ntlm", i, p
    if b[:1] in (b"\x60", b"\x6e", b"\x6f", b"\x7e"):
        i, p = kerberos.parse(b)
        return "kerberos", i, p
    return None, {}, ["unknown mechanism token"] if b else []


def _parse(auth_type: int, b: bytes) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    if len(b) > MAX_VALUE:
        return out, [f"auth value of {len(b)} bytes is over the {MAX_VALUE}-byte cap"]
    if not b:
        return out, []
    if auth_type == 9 and b[:8] != ntlm.SIGNATURE:
        info, inner, problems = spnego.parse(b)
        out["spnego"] = info
        if inner:
            mech, i, p = _token(inner)
            if mech is not None:
                out[mech] = i
            problems += p
        return out, problems
    if auth_type == 68:
        info, problems = netlogon.parse_message(b)
        out["netlogon"] = info
        return out, problems
    if auth_type in (10, 16, 1, 9):
        mech, i, p = _token(b)
        if mech is not None:
            out[mech] = i
        return out, p
    if b[:8] == ntlm.SIGNATURE:  # other types: recognise NTLMSSP anyway
        i, p = ntlm.parse(b)
        out["ntlm"] = i
        return out, p
    return out, []


def parse_value(auth_type: int, b: bytes) -> tuple[dict[str, Any], list[str]]:
    """``({mechanism: fields}, problems)`` of one auth value; memoised."""
    key = (auth_type, b)
    hit = _memo.get(key)
    if hit is None:
        hit = _parse(auth_type, b)
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()
        _memo[key] = hit
    return hit
