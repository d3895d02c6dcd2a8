"""Link, IP and transport header decoding with ``struct``: frame bytes -> addressed payload.

One function per packet, no objects: this is the hot path. A frame that is not TCP or UDP over
IPv4/IPv6 gives ``None``; the caller counts why through :data:`SKIP_REASONS` indices.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

__all__ = [
    "LINKTYPE_NAMES",
    "SUPPORTED_LINKTYPES",
    "Segment",
    "decode",
    "format_addr",
]

Segment = tuple[int, bytes, bytes, int, int, int, int, int, bytes]
"""``(proto, src, dst, sport, dport, tcp_seq, tcp_ack, tcp_flags, payload)``; addresses are raw bytes."""

LINKTYPE_NAMES: Final = {
    0: "BSD loopback",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked v1",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2",
}
SUPPORTED_LINKTYPES: Final = frozenset(LINKTYPE_NAMES)

_VLAN_TYPES: Final = frozenset((0x8100, 0x88A8, 0x9100))
_AF_INET6: Final = frozenset((10, 24, 28, 30))
_IP6_EXT: Final = frozenset((0, 43, 60))
_unpack_tcp = struct.Struct(">HHIIBB").unpack_from
# Ethernet + IPv4 without options + TCP, read in one call from the IP total-length field (offset 16).
_unpack_eth_ip4_tcp = struct.Struct(">HxxHxBxx4s4sHHIIBB").unpack_from
_unpack_ports = struct.Struct(">HH").unpack_from
_unpack_h = struct.Struct(">H").unpack_from


def _l3(linktype: int, data: bytes) -> tuple[int, int]:
    """Returns ``(ip_version, offset)`` of the IP header, or ``(0, 0)`` when there is none."""
    if linktype == 1:
        off = 12
        if len(data) < 14:
            return 0, 0
        etype = (data[12] << 8) | data[13]
        while etype in _VLAN_TYPES:
            off += 4
            if len(data) < off + 2:
                return 0, 0
            etype = (data[off] << 8) | data[off + 1]
        off += 2
    elif linktype == 113:
        if len(data) < 16:
            return 0, 0
        etype = (data[14] << 8) | data[15]
        off = 16
    elif linktype == 276:
        if len(data) < 20:
            return 0, 0
        etype = (data[0] << 8) | data[1]
        off = 20
    elif linktype in (101, 12, 14, 228, 229):
        if not data:
            return 0, 0
        v = data[0] >> 4
        return (v, 0) if v in (4, 6) else (0, 0)
    elif linktype in (0, 108):
        if len(data) < 4:
            return 0, 0
        fam = struct.unpack_from("<I" if linktype == 0 and data[0] else ">I", data)[0]
        if fam == 2:
            return 4, 4
        if fam in _AF_INET6:
            return 6, 4
        return 0, 0
    else:
        return 0, 0
    if etype == 0x0800:
        return 4, off
    if etype == 0x86DD:
        return 6, off
    return 0, 0


def decode(linktype: int, data: bytes) -> Segment | None:
    """Decodes one frame down to its TCP/UDP payload; ``None`` for anything else or truncated."""
    if linktype == 1 and len(data) >= 54 and data[14] == 0x45 and data[12] == 8 and data[13] == 0:
        total, frag, proto, src, dst, sport, dport, seq, ack, doff, flags = _unpack_eth_ip4_tcp(data, 16)
        if proto == 6 and not frag & 0x3FFF:  # the common case, in one struct call
            end = 14 + total if total >= 20 else len(data)  # as the general path (rpcselect.c too)
            return 6, src, dst, sport, dport, seq, ack, flags, data[34 + ((doff >> 4) << 2) : end]
    ver, off = _l3(linktype, data)
    if ver == 4:
        if len(data) < off + 20:
            return None
        ihl = (data[off] & 0x0F) << 2
        total = (data[off + 2] << 8) | data[off + 3]
        if data[off + 6] & 0x3F or data[off + 7]:
            return None  # IP fragment (more-fragments flag or an offset): not reassembled here
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        end = off + total if total >= ihl and off + total <= len(data) else len(data)
        t = off + ihl
    elif ver == 6:
        if len(data) < off + 40:
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        proto = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        t = off + 40
        end = t + plen if plen and t + plen <= len(data) else len(data)
        while proto in _IP6_EXT or proto == 44 or proto == 51:
            if len(data) < t + 8:
                return None
            if proto == 44:
                if _unpack_h(data, t + 2)[0] & 0xFFF9:
                    return None  # non-first or more-fragments: not reassembled here
                proto = data[t]
                t += 8
            elif proto == 51:
                nxt, hl = data[t], (data[t + 1] + 2) << 2
                proto = nxt
                t += hl
            else:
                nxt, hl = data[t], (data[t + 1] + 1) << 3
                proto = nxt
                t += hl
    else:
        return None
    if proto == 6:
        if len(data) < t + 20:
            return None
        sport, dport, seq, ack, doff, flags = _unpack_tcp(data, t)
        return 6, src, dst, sport, dport, seq, ack, flags, data[t + ((doff >> 4) << 2) : end]
    if proto == 17:
        if len(data) < t + 8:
            return None
        sport, dport = _unpack_ports(data, t)
        return 17, src, dst, sport, dport, 0, 0, 0, data[t + 8 : end]
    return None


_addr_cache: dict[bytes, str] = {}


def format_addr(raw: bytes) -> str:
    """Text form of a 4- or 16-byte address (cached: a capture has few hosts)."""
    s = _addr_cache.get(raw)
    if s is None:
        s = str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else raw.hex()
        if len(_addr_cache) < 65536:
            _addr_cache[raw] = s
    return s
