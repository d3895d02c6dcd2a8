"""UDP datagram dispatch: connectionless DCE/RPC (ncadg_ip_udp) datagrams to the call table.

UDP needs no reassembly (IP fragments are not reassembled, as for TCP): each datagram whose
payload passes :func:`~rpcinspect.transports.cl.looks_cl` (the same test the C prefilter applies,
so both paths see the same datagrams) is one connectionless PDU. Everything else is ignored
without state, so the table stays bounded by the call table's own limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpcinspect.capture.link import Segment, format_addr
from rpcinspect.dcerpc.classoc import ClCalls
from rpcinspect.transports.cl import cl_header, looks_cl

if TYPE_CHECKING:
    from rpcinspect.runtime import Run

__all__ = ["UdpTable"]


class UdpTable:
    """Dispatches the UDP datagrams of one input."""

    __slots__ = ("calls", "run")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.calls = ClCalls(run)

    def datagram(self, seg: Segment, frame: int, ts: float) -> None:
        """Feeds one UDP datagram (a decoded segment with proto 17)."""
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
