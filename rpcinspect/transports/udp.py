"""UDP datagram dispatch: connectionless DCE/RPC (ncadg_ip_udp) datagrams to the call table.

UDP needs no flow state or reassembly (IP fragments are not reassembled, as for TCP): each
datagram whose payload passes :func:`~rpcinspect.transports.cl.looks_cl` (the same test the C
prefilter applies, so both paths see the same datagrams) is one connectionless PDU, handed with
its decoded header to the call table (:class:`~rpcinspect.dcerpc.classoc.ClCalls`, given by the
engine so this layer never imports the one above). Everything else is ignored without state, so
the table stays bounded by the call table's own limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from rpcinspect.capture.link import Segment, format_addr
from rpcinspect.transports.cl import ClHeader, cl_header, looks_cl

if TYPE_CHECKING:
    from rpcinspect.runtime import Run

__all__ = ["ClSink", "UdpTable"]


class ClSink(Protocol):
    """Receives connectionless PDUs (the dcerpc call table)."""

    def pdu(
        self, h: ClHeader, buf: bytes, src: str, sport: int, dst: str, dport: int, frame: int, ts: float
    ) -> None: ...
    def expire(self, now: float, frame: int) -> None: ...
    def close_all(self, reason: str) -> None: ...


class UdpTable:
    """Dispatches the UDP datagrams of one input."""

    __slots__ = ("calls", "run")

    def __init__(self, run: Run, calls: ClSink) -> None:
        self.run = run
        self.calls = calls

    def datagram(self, seg: Segment, frame: int, ts: float) -> None:
        """Feeds one UDP datagram (a decoded segment with proto 17)."""
        self.run.frame = frame
        payload = seg[8]
        if not looks_cl(payload):
            return
        h = cl_header(payload)
        src, dst = format_addr(seg[1]), format_addr(seg[2])
        if h is None:
            self.run.anomaly(
                "malformed_pdu", f"connectionless header with drep {bytes(payload[4:7]).hex()}", frame, ts,
                (src, seg[3], dst, seg[4]),
            )  # fmt: skip
            return
        self.calls.pdu(h, payload, src, seg[3], dst, seg[4], frame, ts)

    def expire(self, now: float, frame: int) -> None:
        self.calls.expire(now, frame)

    def close_all(self, reason: str) -> None:
        self.calls.close_all(reason)
