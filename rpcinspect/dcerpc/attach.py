"""Attaches a transport framer and a DCE/RPC association to each new TCP connection.

The choice is made from the connection's ports and first bytes.

DCE/RPC is found on any port by a header check, so dynamic endpoints (49152+) need no
configuration; well-known ports only decide how hard to look. SMB (139/445) connections get an
:class:`~rpcinspect.transports.smb.SmbHandler` (ncacn_np). RPC over HTTP (port 593, or any
stream starting with an RPC_IN_DATA / RPC_OUT_DATA request or the ncacn_http banner) gets an
:class:`~rpcinspect.transports.http.HttpHandler` (ncacn_http).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from rpcinspect.dcerpc.association import Association
from rpcinspect.flows.tcp import Connection, Handler, _Ignore
from rpcinspect.transports.cotcp import CoFramer, plausible
from rpcinspect.transports.http import HttpChannels, HttpHandler, is_http_rpc
from rpcinspect.transports.smb import SMB_PORTS, SmbHandler

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = ["CO_PORTS", "HTTP_PORTS", "TcpSelector"]

HTTP_PORTS: Final = frozenset((593,))
"""ncacn_http (MS-RPCH) over TCP: the ``ncacn_http/1.0`` banner, then CO and RTS PDUs."""
CO_PORTS: Final = frozenset((135,))
"""ncacn_ip_tcp well-known ports: a connection here is DCE/RPC even if it starts mid-PDU."""


class TcpSelector:
    """Callable given to :class:`~rpcinspect.flows.tcp.TcpTable`."""

    __slots__ = ("http", "run")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.http = HttpChannels()  # RPC over HTTP virtual connections of this input

    def channel(self, transport: str, endpoints: Endpoints, named_pipe: str | None) -> Association:
        """The transports' :data:`~rpcinspect.transports.cotcp.ChannelFactory`: an association."""
        return Association(self.run, transport, endpoints, named_pipe)

    def __call__(self, conn: Connection, dirn: int, payload: bytes) -> Handler | _Ignore | None:
        sport, dport = conn.sport, conn.dport
        if dport in SMB_PORTS or sport in SMB_PORTS:
            return self._smb(conn, payload)
        if dport in HTTP_PORTS or sport in HTTP_PORTS:
            return HttpHandler(self.run, conn.endpoints(), self.http, self.channel, http=False)
        if is_http_rpc(payload):
            plain = not payload.startswith(b"ncacn_http")
            return HttpHandler(self.run, conn.endpoints(), self.http, self.channel, http=plain)
        if plausible(payload, 0):
            return self._co(conn, midstream=False)
        if sport in CO_PORTS or dport in CO_PORTS:
            self.run.count("co_midstream_start")
            return self._co(conn, midstream=True)
        return None

    def _smb(self, conn: Connection, payload: bytes) -> SmbHandler:
        aligned = len(payload) >= 4 and (
            (payload[0] == 0 and payload[5:8] == b"SMB") or 0x81 <= payload[0] <= 0x85
        )
        if not aligned:
            self.run.count("smb_midstream_start")
        return SmbHandler(self.run, conn.endpoints(), self.channel, midstream=not aligned)

    def _co(self, conn: Connection, *, midstream: bool) -> CoFramer:
        ep = conn.endpoints()
        return CoFramer(self.run, ep, Association(self.run, "ncacn_ip_tcp", ep), midstream=midstream)
