"""Attaches a transport framer and a DCE/RPC association to each new TCP connection.

The choice is made from the connection's ports and first bytes.

DCE/RPC is found on any port by a header check, so dynamic endpoints (49152+) need no
configuration; well-known ports only decide how hard to look. Transports this wave does not
decode yet (SMB named pipes on 139/445, RPC over HTTP on 593) are recognised and counted rather
than misread as ncacn_ip_tcp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rpcinspect.dcerpc.association import Association
from rpcinspect.flows.tcp import IGNORE, Connection, Handler, _Ignore
from rpcinspect.transports.cotcp import CoFramer, plausible

if TYPE_CHECKING:
    from rpcinspect.runtime import Run

__all__ = ["CO_PORTS", "PENDING_TRANSPORT_PORTS", "TcpSelector"]

CO_PORTS: Final = frozenset((135,))
"""ncacn_ip_tcp well-known ports: a connection here is DCE/RPC even if it starts mid-PDU."""
PENDING_TRANSPORT_PORTS: Final = {139: "ncacn_np", 445: "ncacn_np", 593: "ncacn_http"}
"""Ports of transports decoded by later work; their connections are counted, not misparsed."""


class TcpSelector:
    """Callable given to :class:`~rpcinspect.flows.tcp.TcpTable`."""

    __slots__ = ("run",)

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, conn: Connection, dirn: int, payload: bytes) -> Handler | _Ignore | None:
        sport, dport = conn.sport, conn.dport
        for port in (dport, sport):
            name = PENDING_TRANSPORT_PORTS.get(port)
            if name is not None:
                self.run.count(f"connections_{name}_not_decoded")
                return IGNORE
        if plausible(payload, 0):
            return self._co(conn, midstream=False)
        if sport in CO_PORTS or dport in CO_PORTS:
            self.run.count("co_midstream_start")
            return self._co(conn, midstream=True)
        return None

    def _co(self, conn: Connection, *, midstream: bool) -> CoFramer:
        ep = conn.endpoints()
        return CoFramer(self.run, ep, Association(self.run, "ncacn_ip_tcp", ep), midstream=midstream)
