"""ncacn_ip_tcp: frames a TCP byte stream into connection-oriented DCE/RPC PDUs.

Per direction the framer is either in sync (the next byte starts a PDU) or searching (after a
capture started mid-stream, a gap, or a header that fails the plausibility check). Searching
accepts a header only if it is plausible *and* the PDU after it is too (or ends the buffer), so
stub bytes that happen to look like ``05 00`` rarely fool it. Only one PDU's bytes are ever
buffered (frag_length is 16 bits), so memory per direction is bounded by 64 KiB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpcinspect.dcerpc.association import Association
from rpcinspect.dcerpc.pdu import header, plausible

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = ["CoFramer", "find_header"]

_EMPTY = b""


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


class CoFramer:
    """Connection handler for ncacn_ip_tcp (and, later, for bytes carried by other transports)."""

    __slots__ = ("_ep", "assoc", "bufs", "run", "sync")

    def __init__(
        self, run: Run, endpoints: Endpoints, *, transport: str = "ncacn_ip_tcp", midstream: bool
    ) -> None:
        self.run = run
        self._ep = endpoints
        self.assoc = Association(run, transport, endpoints)
        self.bufs: list[bytes] = [_EMPTY, _EMPTY]
        self.sync = [not midstream, not midstream]

    def data(self, dirn: int, payload: bytes, frame: int, ts: float) -> None:
        """Consumes in-order stream bytes; every complete PDU goes to the association."""
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
        assoc = self.assoc
        while n - off >= 16:
            flen = plausible(data, off)
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
            assoc.pdu(dirn, data, off, header(data, off), frame, ts)
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
        """End of connection: report a PDU cut short, then close the association."""
        for dirn in (0, 1):
            if self.bufs[dirn] and self.sync[dirn]:
                self.run.anomaly(
                    "truncated_pdu",
                    f"{len(self.bufs[dirn])} bytes of an incomplete PDU at end of stream",
                    frame, ts, self._ep,
                )  # fmt: skip
        self.bufs = [_EMPTY, _EMPTY]
        self.assoc.close(reason)
