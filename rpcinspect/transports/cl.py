"""Connectionless DCE/RPC (ncadg_ip_udp, C706 ch. 12.5.3, MS-RPCE 2.2.1): the 80-byte PDU header.

Every connectionless PDU is one datagram: an 80-byte header, then ``len`` body bytes (then an auth
verifier when ``auth_proto`` is set). The header carries everything a passive decoder needs to
name a call without any bind: interface UUID and version, activity UUID, sequence number, opnum,
fragment number. Byte order of the multi-byte fields (and of the UUIDs' first three fields) is
the one announced in ``drep``, like connection-oriented PDUs.

:func:`looks_cl` is the exact test the C prefilter applies to UDP payloads (``rpcselect.c``): the
pure path must accept the same datagrams, no more, so both paths give the same records.
"""

from __future__ import annotations

import struct
import uuid
from typing import Final, NamedTuple

__all__ = [
    "CL_HEADER_LEN",
    "CL_PTYPE_NAMES",
    "FLAG_FRAG",
    "FLAG_LASTFRAG",
    "FLAG_MAYBE",
    "FLAG_NOFACK",
    "ClHeader",
    "cl_header",
    "looks_cl",
]

CL_HEADER_LEN: Final = 80

# flags1 (C706 12.5.3.3)
FLAG_LASTFRAG: Final = 0x02
FLAG_FRAG: Final = 0x04
FLAG_NOFACK: Final = 0x08
FLAG_MAYBE: Final = 0x10
FLAG_IDEMPOTENT: Final = 0x20
FLAG_BROADCAST: Final = 0x40

CL_PTYPE_NAMES: Final = (
    "request", "ping", "response", "fault", "working", "nocall", "reject", "ack", "cl_cancel",
    "fack", "cancel_ack",
)  # fmt: skip

_LE = struct.Struct("<IIIHHHHHB")
_BE = struct.Struct(">IIIHHHHHB")


class ClHeader(NamedTuple):
    """The connectionless PDU header (offsets in C706 12.5.3.1)."""

    ptype: int
    flags1: int
    flags2: int
    little: bool
    object_uuid: str
    if_uuid: str
    activity: str
    server_boot: int
    if_major: int
    if_minor: int
    seqnum: int
    opnum: int
    ihint: int
    ahint: int
    body_len: int
    fragnum: int
    auth_proto: int
    serial: int


def looks_cl(buf: bytes) -> bool:
    """Whether a UDP payload may be a connectionless PDU (same test as the C prefilter)."""
    return len(buf) >= CL_HEADER_LEN and buf[0] == 4 and buf[1] <= 10


_NIL = "00000000-0000-0000-0000-000000000000"
_uuids: dict[tuple[bytes, bool], str] = {}


def uuid_str(raw: bytes, little: bool) -> str:
    """Lowercase text of a wire UUID in the PDU's byte order (bounded cache: few distinct ones).

    The one UUID formatter for every PDU kind: :mod:`rpcinspect.dcerpc.pdu` uses it too."""
    key = (raw, little)
    s = _uuids.get(key)
    if s is None:
        s = str(uuid.UUID(bytes_le=raw) if little else uuid.UUID(bytes=raw))
        if len(_uuids) < 4096:
            _uuids[key] = s
    return s


def cl_header(buf: bytes) -> ClHeader | None:
    """Decodes the header of a datagram that :func:`looks_cl` accepted; ``None`` if implausible.

    Implausible: a data representation C706 does not define (integer format other than big or
    little endian, character format other than ASCII/EBCDIC).
    """
    if not looks_cl(buf):
        return None
    d0 = buf[4]
    if d0 & 0xEE or buf[5] > 3:
        return None
    little = bool(d0 & 0x10)
    boot, vers, seq, opnum, ihint, ahint, blen, frag, auth = (_LE if little else _BE).unpack_from(buf, 56)
    obj = bytes(buf[8:24])
    return ClHeader(
        buf[1],
        buf[2],
        buf[3],
        little,
        _NIL if obj == b"\0" * 16 else uuid_str(obj, little),
        uuid_str(bytes(buf[24:40]), little),
        uuid_str(bytes(buf[40:56]), little),
        boot,
        vers & 0xFFFF,
        vers >> 16,
        seq,
        opnum,
        ihint,
        ahint,
        blen,
        frag,
        auth,
        (buf[7] << 8) | buf[79],
    )
