"""NTLMSSP messages (MS-NLMP 2.2.1): NEGOTIATE, CHALLENGE, AUTHENTICATE, parsed with ``struct``.

Every offset and length is checked against the message: a field pointing outside it, or an AV
pair list that runs off the end, is reported in ``problems`` (the caller counts it as malformed)
and never raises.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["FLAG_NAMES", "SIGNATURE", "flag_names", "parse"]

SIGNATURE = b"NTLMSSP\0"

FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (0x00000001, "unicode"),
    (0x00000002, "oem"),
    (0x00000004, "request_target"),
    (0x00000010, "sign"),
    (0x00000020, "seal"),
    (0x00000040, "datagram"),
    (0x00000080, "lm_key"),
    (0x00000200, "ntlm"),
    (0x00000800, "anonymous"),
    (0x00001000, "oem_domain_supplied"),
    (0x00002000, "oem_workstation_supplied"),
    (0x00008000, "always_sign"),
    (0x00010000, "target_type_domain"),
    (0x00020000, "target_type_server"),
    (0x00080000, "extended_session_security"),
    (0x00100000, "identify"),
    (0x00400000, "request_non_nt_session_key"),
    (0x00800000, "target_info"),
    (0x02000000, "version"),
    (0x20000000, "128"),
    (0x40000000, "key_exchange"),
    (0x80000000, "56"),
)

_AV_NAMES = {1: "nb_computer", 2: "nb_domain", 3: "dns_computer", 4: "dns_domain", 5: "dns_tree"}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_FIELD = struct.Struct("<HHI")  # len, maxlen, offset
_FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns


def flag_names(flags: int) -> list[str]:
    return [n for b, n in FLAG_NAMES if flags & b]


def _field(b: bytes, at: int, problems: list[str], what: str) -> bytes | None:
    """The payload a (len, maxlen, offset) descriptor at *at* points to, or None if impossible."""
    if at + 8 > len(b):
        problems.append(f"ntlm {what} descriptor truncated")
        return None
    n, _mx, o = _FIELD.unpack_from(b, at)
    if n == 0:
        return b""
    if o + n > len(b) or o < 8:
        problems.append(f"ntlm {what} outside the message (offset {o}, length {n}, message {len(b)})")
        return None
    return b[o : o + n]


def _text(raw: bytes | None, unicode: bool) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-16-le", "replace") if unicode else raw.decode("latin-1")


def av_pairs(b: bytes, problems: list[str]) -> tuple[dict[str, Any], int | None]:
    """Target info AV pairs: names, timestamp (Unix seconds), MsvAvFlags; checks termination."""
    out: dict[str, Any] = {}
    av_flags: int | None = None
    o = 0
    end = len(b)
    while True:
        if o + 4 > end:
            problems.append("ntlm AV pair list not terminated by MsvAvEOL")
            break
        av_id, av_len = _U16.unpack_from(b, o)[0], _U16.unpack_from(b, o + 2)[0]
        o += 4
        if av_id == 0:
            break
        if o + av_len > end:
            problems.append(f"ntlm AV pair {av_id} runs past the list ({av_len} bytes)")
            break
        val = b[o : o + av_len]
        name = _AV_NAMES.get(av_id)
        if name is not None:
            out[name] = val.decode("utf-16-le", "replace")
        elif av_id == 6 and av_len >= 4:
            av_flags = _U32.unpack_from(val)[0]
        elif av_id == 7 and av_len >= 8:
            ft = struct.unpack_from("<Q", val)[0]
            out["timestamp"] = round((ft - _FILETIME_EPOCH) / 1e7, 6) if ft > _FILETIME_EPOCH else None
        o += av_len
    return out, av_flags


def parse(b: bytes) -> tuple[dict[str, Any], list[str]]:
    """``(fields, problems)`` of one NTLMSSP message; fields has ``message`` at least when typed."""
    problems: list[str] = []
    info: dict[str, Any] = {}
    if len(b) < 12 or b[:8] != SIGNATURE:
        problems.append("not an NTLMSSP message")
        return info, problems
    mtype = _U32.unpack_from(b, 8)[0]
    if mtype == 1:
        info["message"] = "negotiate"
        if len(b) < 16:
            problems.append("ntlm negotiate truncated")
            return info, problems
        flags = _U32.unpack_from(b, 12)[0]
        info["flags"] = flag_names(flags)
        if len(b) >= 32:
            dom = _field(b, 16, problems, "negotiate domain")
            ws = _field(b, 24, problems, "negotiate workstation")
            if dom:
                info["domain"] = _text(dom, False)
            if ws:
                info["workstation"] = _text(ws, False)
    elif mtype == 2:
        info["message"] = "challenge"
        if len(b) < 32:
            problems.append("ntlm challenge truncated")
            return info, problems
        flags = _U32.unpack_from(b, 20)[0]
        info["flags"] = flag_names(flags)
        info["server_challenge"] = b[24:32]
        tn = _field(b, 12, problems, "challenge target name")
        if tn:
            info["target_name"] = _text(tn, bool(flags & 1))
        if len(b) >= 48:
            ti = _field(b, 40, problems, "challenge target info")
            if ti:
                names, _ = av_pairs(ti, problems)
                info.update(names)
    elif mtype == 3:
        info["message"] = "authenticate"
        if len(b) < 64:
            problems.append("ntlm authenticate truncated")
            return info, problems
        flags = _U32.unpack_from(b, 60)[0]
        uni = bool(flags & 1)
        info["flags"] = flag_names(flags)
        lm = _field(b, 12, problems, "LM response")
        nt = _field(b, 20, problems, "NT response")
        dom = _field(b, 28, problems, "domain")
        user = _field(b, 36, problems, "user")
        ws = _field(b, 44, problems, "workstation")
        key = _field(b, 52, problems, "session key")
        info["domain"] = _text(dom, uni)
        info["user"] = _text(user, uni)
        info["workstation"] = _text(ws, uni)
        info["nt_response"] = nt
        info["lm_response"] = lm
        info["encrypted_session_key"] = key
        info["negotiate_flags"] = flags
        ntlen = len(nt) if nt is not None else 0
        lmlen = len(lm) if lm is not None else 0
        if not user and ntlen == 0:
            version = "anonymous"
        elif ntlen > 24:
            version = "v2"
        elif ntlen == 24:
            version = "v1"
        elif lmlen == 24:
            version = "lm"
        else:
            version = None
        info["version"] = version
        mic = False
        if nt is not None and ntlen > 44:
            names, av_flags = av_pairs(nt[44:], problems)
            info.update(names)
            mic = av_flags is not None and bool(av_flags & 0x2)
        info["mic"] = mic
    else:
        info["message"] = f"type_{mtype}"
        problems.append(f"unknown NTLMSSP message type {mtype}")
    return info, problems
