"""A minimal bounded DER/BER TLV reader for the GSS-API and SPNEGO wrappers (RFC 2743, RFC 4178).

Only definite lengths; every length is checked against the buffer. Raises :class:`DerError`,
which callers turn into a "malformed" problem.
"""

from __future__ import annotations

__all__ = ["DerError", "oid_text", "tlv", "tlvs"]


class DerError(ValueError):
    pass


def tlv(b: bytes, o: int, end: int | None = None) -> tuple[int, int, int]:
    """``(tag, value_start, value_end)`` of the TLV at *o*."""
    if end is None:
        end = len(b)
    if o + 2 > end:
        raise DerError("TLV truncated")
    tag = b[o]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used here")
    n = b[o + 1]
    o += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or o + k > end:
            raise DerError("bad length")
        n = int.from_bytes(b[o : o + k], "big")
        o += k
    if o + n > end:
        raise DerError(f"length {n} runs past the buffer")
    return tag, o, o + n


def tlvs(b: bytes, o: int, end: int) -> list[tuple[int, int, int]]:
    """Every TLV of a constructed value, in order."""
    out = []
    while o < end:
        t = tlv(b, o, end)
        out.append(t)
        o = t[2]
        if len(out) > 64:
            raise DerError("too many elements")
    return out


def oid_text(raw: bytes) -> str:
    if not raw:
        raise DerError("empty OID")
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    v = 0
    for c in raw[1:]:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))
