"""Connection-oriented DCE/RPC framing: a byte stream (TCP, later SMB pipes) into whole PDUs.

Framing needs only the 16-byte common header (C706 12.6.3.1), so it lives here, below the
``dcerpc`` layer that interprets PDU bodies: the framer hands each complete PDU, with its decoded
header, to a :class:`PduSink` (an association).

Per direction the framer is either in sync (the next byte starts a PDU) or searching (after a
capture started mid-stream, a gap, or a header that fails the plausibility check). Searching
accepts a header only if it is plausible *and* the PDU after it is too (or ends the buffer), so
stub bytes that happen to look like ``05 00`` rarely fool it. Only one PDU's bytes are ever
buffered (frag_length is 16 bits), so memory per direction is bounded by 64 KiB.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = [
    "CO_HEADER_LEN", "Channel", "ChannelFactory", "CoFramer", "Header", "PduSink", "find_header", "header",
    "plausible",
]  # fmt: skip

CO_HEADER_LEN: Final = 16
_EMPTY = b""
_HDR_LE = struct.Struct("<HHI").unpack_from
_HDR_BE = struct.Struct(">HHI").unpack_from
_new_header = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path


class Header(NamedTuple):
    """The 16-byte common header."""

    minor: int
    ptype: int
    flags: int
    little: bool
    frag_len: int
    auth_len: int
    call_id: int


def plausible(buf: bytes, off: int) -> int:
    """Frag length of a believable CO header at *off*, or 0.

    The check is what lets rpcinspect find DCE/RPC on any port: version 5.0/5.1, a known PDU
    type, a sane data representation (integer and character formats C706 defines) and a frag
    length that at least covers the header and the auth trailer it announces.
    """
    if len(buf) < off + 16 or buf[off] != 5 or buf[off + 1] > 1 or buf[off + 2] > 20:
        return 0
    d0 = buf[off + 4]
    if d0 & 0xEE or buf[off + 5] > 3:
        return 0
    if d0 & 0x10:
        flen = buf[off + 8] | (buf[off + 9] << 8)
        alen = buf[off + 10] | (buf[off + 11] << 8)
    else:
        flen = (buf[off + 8] << 8) | buf[off + 9]
        alen = (buf[off + 10] << 8) | buf[off + 11]
    if flen < 16 or (alen and flen < 16 + 8 + alen):
        return 0
    return flen


def header(buf: bytes, off: int) -> Header:
    """Decodes a header that :func:`plausible` accepted."""
    little = bool(buf[off + 4] & 0x10)
    flen, alen, call_id = (_HDR_LE if little else _HDR_BE)(buf, off + 8)
    return _new_header(Header, (buf[off + 1], buf[off + 2], buf[off + 3], little, flen, alen, call_id))


def find_header(data: bytes, start: int) -> int:
    """Offset of the first believable PDU header at or after *start*, or -1."""
    n = len(data)
    i = data.find(b"\x05", start)
    while 0 <= i <= n - 16:
        flen = plausible(data, i)
        if flen and (i + flen >= n or plausible(data, i + flen)):
            return i
        i = data.find(b"\x05", i + 1)
    return -1


class PduSink(Protocol):
    """Receives whole PDUs of one channel (the dcerpc association)."""

    def pdu(self, dirn: int, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None: ...
    def close(self, reason: str) -> None: ...


class Channel(PduSink, Protocol):
    """A PduSink with what transports tell the layer above about a channel (an association)."""

    named_pipe: str | None
    smb: object | None
    """ncacn_np: the pipe's SMB session facts (:class:`~rpcinspect.transports.smb.SmbSession`)."""
    target: tuple[str, int] | None
    """ncacn_http: the RPC server and port the channel's URL names, used instead of the TCP
    endpoint to name calls whose bind is not in the capture."""


ChannelFactory = Callable[[str, "Endpoints", "str | None"], Channel]
"""``(transport, endpoints, named_pipe) -> Channel``: how a transport opens a channel's state.
Given by :mod:`rpcinspect.dcerpc.attach` (the association), so transports never import the
``dcerpc`` layer above them."""


class CoFramer:
    """Connection handler that frames both directions of a stream into PDUs for *sink*."""

    __slots__ = ("_ep", "bufs", "run", "sink", "sync")

    def __init__(self, run: Run, endpoints: Endpoints, sink: PduSink, *, midstream: bool) -> None:
        self.run = run
        self._ep = endpoints
        self.sink = sink
        self.bufs: list[bytes] = [_EMPTY, _EMPTY]
        self.sync = [not midstream, not midstream]

    def data(self, dirn: int, payload: bytes, frame: int, ts: float) -> None:
        """Consumes in-order stream bytes; every complete PDU goes to the sink."""
        pending = self.bufs[dirn]
        data = pending + payload if pending else payload
        n = len(data)
        off = 0
        if not self.sync[dirn]:
            off = find_header(data, 0)
            if off < 0:
                self.bufs[dirn] = data[-15:]
                return
            if off:
                self.run.count("co_resync_skipped_bytes", off)
            self.sync[dirn] = True
        sink = self.sink
        while n - off >= 16:
            # plausible() and header() inlined: this loop runs once per PDU
            if (
                data[off] != 5
                or data[off + 1] > 1
                or data[off + 2] > 20
                or data[off + 4] & 0xEE
                or data[off + 5] > 3
            ):
                flen = 0
            else:
                little = data[off + 4] & 0x10
                flen, alen, call_id = (_HDR_LE if little else _HDR_BE)(data, off + 8)
                if flen < 16 or (alen and flen < 24 + alen):
                    flen = 0
            if not flen:
                head = bytes(data[off : off + 4]).hex()
                detail = f"implausible PDU header {head}; resynchronising"
                self.run.anomaly("malformed_pdu", detail, frame, ts, self._ep)
                nxt = find_header(data, off + 1)
                if nxt < 0:
                    self.sync[dirn] = False
                    self.bufs[dirn] = data[-15:]
                    return
                self.run.count("co_resync_skipped_bytes", nxt - off)
                off = nxt
                continue
            if n - off < flen:
                break
            h = _new_header(
                Header, (data[off + 1], data[off + 2], data[off + 3], bool(little), flen, alen, call_id)
            )
            sink.pdu(dirn, data, off, h, frame, ts)
            off += flen
        self.bufs[dirn] = data[off:] if off < n else _EMPTY

    def gap(self, dirn: int, nbytes: int, frame: int, ts: float) -> None:
        """Bytes were lost: drop the partial PDU and search for the next header."""
        if self.bufs[dirn]:
            self.run.count("co_partial_pdu_lost")
        self.bufs[dirn] = _EMPTY
        self.sync[dirn] = False
        self.run.anomaly("tcp_gap", f"{nbytes} bytes missing in the stream", frame, ts, self._ep)

    def close(self, reason: str, frame: int, ts: float) -> None:
        """End of connection: report a PDU cut short, then close the sink."""
        for dirn in (0, 1):
            if self.bufs[dirn] and self.sync[dirn]:
                detail = f"{len(self.bufs[dirn])} bytes of an incomplete PDU at end of stream"
                self.run.anomaly("truncated_pdu", detail, frame, ts, self._ep)
        self.bufs = [_EMPTY, _EMPTY]
        self.sink.close(reason)
