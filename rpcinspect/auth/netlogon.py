"""Netlogon secure channel auth values (MS-NRPC 2.2.1.3): NL_AUTH_MESSAGE in binds and
NL_AUTH_SIGNATURE on calls."""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["parse_message", "parse_signature"]

_FLAGS = (
    (0x01, "netbios_domain"),
    (0x02, "netbios_computer"),
    (0x04, "dns_domain"),
    (0x08, "dns_host"),
    (0x10, "netbios_computer_utf8"),
)
_SIGN_ALGS = {0x0077: "hmac_md5", 0x0013: "hmac_sha256"}
_SEAL_ALGS = {0x007A: "rc4", 0x001A: "aes128", 0xFFFF: "none"}


def _cstring(b: bytes, o: int) -> tuple[str, int]:
    e = b.find(b"\0", o)
    if e < 0:
        raise ValueError("unterminated name")
    return b[o:e].decode("latin-1"), e + 1


def _dns(b: bytes, o: int) -> tuple[str, int]:
    """RFC 1035 name (MS-NRPC uses no compression pointers in practice: one is refused)."""
    labels = []
    while True:
        if o >= len(b):
            raise ValueError("unterminated DNS name")
        n = b[o]
        o += 1
        if n == 0:
            return ".".join(labels), o
        if n & 0xC0 or o + n > len(b) or len(labels) > 63:
            raise ValueError("bad DNS label")
        labels.append(b[o : o + n].decode("utf-8", "replace"))
        o += n


def parse_message(b: bytes) -> tuple[dict[str, Any], list[str]]:
    """NL_AUTH_MESSAGE: message type (negotiate request / response), flags and names."""
    info: dict[str, Any] = {}
    if len(b) < 8:
        return info, ["netlogon NL_AUTH_MESSAGE shorter than 8 bytes"]
    mtype, flags = struct.unpack_from("<II", b)
    if mtype == 0:
        info["message"] = "negotiate_request"
    elif mtype == 1:
        info["message"] = "negotiate_response"
        return info, []
    else:
        # a signature in a bind leg, or garbage
        return info, [f"netlogon NL_AUTH_MESSAGE type {mtype}"]
    info["flags"] = [n for bit, n in _FLAGS if flags & bit]
    o = 8
    try:
        if flags & 0x01:
            info["domain"], o = _cstring(b, o)
        if flags & 0x02:
            info["computer"], o = _cstring(b, o)
        if flags & 0x04:
            info["dns_domain"], o = _dns(b, o)
        if flags & 0x08:
            info["dns_computer"], o = _dns(b, o)
        if flags & 0x10:
            name, o = _dns(b, o)
            info.setdefault("computer", name)
    except ValueError as e:
        return info, [f"netlogon NL_AUTH_MESSAGE: {e}"]
    return info, []


def parse_signature(b: bytes) -> tuple[str, str] | None:
    """(signature algorithm, seal algorithm) of an NL_AUTH_SIGNATURE, or None."""
    if len(b) < 4:
        return None
    sa, se = struct.unpack_from("<HH", b)
    return _SIGN_ALGS.get(sa, hex(sa)), _SEAL_ALGS.get(se, hex(se))
