"""RPC over HTTP (ncacn_http, MS-RPCH): the ``ncacn_http/1.0`` banner, HTTP channels, RTS PDUs.

Two forms reach a passive decoder:

* **port 593** (and any stream that starts with the banner): the server sends ``ncacn_http/1.0``
  first, then both sides exchange connection-oriented PDUs (MS-RPCH 2.1.2.1);
* **plain HTTP channels**: an ``RPC_IN_DATA`` request (its body carries the client's PDUs) and an
  ``RPC_OUT_DATA`` request (the server's answer body carries the server's PDUs), MS-RPCH 2.1.2.1.1,
  on any port (detected from the request line). A channel may first authenticate to the proxy
  (NTLM, Negotiate: a request with ``Content-Length: 0``, answered ``401`` with a body) and be
  answered ``100 Continue`` before its ``200``: such header parts (and the ``401`` body) are
  skipped until the request or response whose body carries PDUs (counted ``http_auth_leg``,
  ``http_interim_response``). Each header part is bounded (:data:`MAX_HEADER_BYTES`, then
  ``http_header_limit`` and the direction is ignored), and so is their number
  (:data:`MAX_HEADER_PARTS`).

Both feed a :class:`~rpcinspect.transports.cotcp.CoFramer` whose sink intercepts RTS PDUs
(ptype 20, MS-RPCH 2.2.3.6): they are decoded (flags, number of commands, command types; every
length checked against the PDU: a bogus one is a ``malformed_pdu`` anomaly) and counted
(``pdu_rts``, ``rts_cmd_<name>``), never turned into calls. Every other PDU goes to an
:class:`~rpcinspect.transports.cotcp.Channel` (the association) with transport ``ncacn_http``.

IN and OUT channels are paired through the virtual connection cookie, the first Cookie command of
CONN/A1 (sent on the OUT channel) and CONN/B1 (on the IN channel): channels with the same cookie
share one association, so requests sent on the IN channel pair with responses read on the OUT
channel. A channel whose CONN PDU is not in the capture keeps an association of its own.

The channels' URL names the RPC server behind the proxy (``/rpc/rpcproxy.dll?SERVER:PORT``,
MS-RPCH 2.2.2): calls whose bind is not in the capture are resolved (``--decode-as``, endpoint
mapper) by that server and port, not by the proxy's TCP port, which serves every server alike.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from rpcinspect.transports.cotcp import ChannelFactory, CoFramer, Header

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = [
    "BANNER", "RTS_COMMANDS", "HttpChannels", "HttpHandler", "is_http_rpc", "rpc_target",
    "rts_body",
]  # fmt: skip

BANNER: Final = b"ncacn_http/1.0"
MAX_HEADER_BYTES: Final = 16384
MAX_HEADER_PARTS: Final = 8
MAX_RTS_COMMANDS: Final = 64
MAX_VIRTUAL_CONNECTIONS: Final = 4096
_METHODS: Final = (b"RPC_IN_DATA ", b"RPC_OUT_DATA ")
RTS_COMMANDS: Final = (
    "receive_window_size", "flow_control_ack", "connection_timeout", "cookie", "channel_lifetime",
    "client_keepalive", "version", "empty", "padding", "negative_ance", "ance", "client_address",
    "association_group_id", "destination", "ping_traffic_sent_notify",
)  # fmt: skip
_FIXED: Final = (4, 24, 4, 16, 4, 4, 4, 0, -1, 0, 0, -2, 16, 4, 4)  # -1 padding, -2 client address


def is_http_rpc(payload: bytes) -> bool:
    """Whether a stream's first bytes are an RPC over HTTP request line or the ncacn_http banner."""
    return payload.startswith(_METHODS) or payload.startswith(BANNER)


def rts_body(buf: bytes, off: int, h: Header) -> tuple[int, list[str], bytes | None] | None:
    """``(flags, command names, virtual connection cookie)`` of an RTS PDU; ``None`` if malformed.

    The cookie is the first Cookie command's 16 bytes (CONN/A1, CONN/B1), else ``None``.
    """
    end = off + h.frag_len
    if h.frag_len < 20 or end > len(buf):
        return None
    fmt = "<" if h.little else ">"
    flags, n = struct.unpack_from(fmt + "HH", buf, off + 16)
    if n > MAX_RTS_COMMANDS:
        return None
    o = off + 20
    names: list[str] = []
    cookie: bytes | None = None
    for _ in range(n):
        if o + 4 > end:
            return None
        ctype = struct.unpack_from(fmt + "I", buf, o)[0]
        o += 4
        if ctype >= len(_FIXED):
            return None
        size = _FIXED[ctype]
        if size == -1:
            if o + 4 > end:
                return None
            size = 4 + struct.unpack_from(fmt + "I", buf, o)[0]
        elif size == -2:
            if o + 4 > end:
                return None
            atype = struct.unpack_from(fmt + "I", buf, o)[0]
            if atype > 1:
                return None
            size = 4 + (4 if atype == 0 else 16) + 12
        if o + size > end:
            return None
        if ctype == 3 and cookie is None:
            cookie = bytes(buf[o : o + 16])
        names.append(RTS_COMMANDS[ctype])
        o += size
    return flags, names, cookie


def rpc_target(line: bytes) -> tuple[str, int] | None:
    """``(server, port)`` the URL of an ``RPC_IN_DATA`` / ``RPC_OUT_DATA`` request line names
    (``/rpc/rpcproxy.dll?server:6004``, MS-RPCH 2.2.2), the server lowercased (an IPv6 address
    without its brackets); None when the URL names none."""
    parts = line.split(b" ")
    if len(parts) < 2:
        return None
    _, q, query = parts[1].partition(b"?")
    host, colon, port = query.decode("latin-1").rpartition(":")
    host = host.strip("[]").lower()
    if not q or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            v = value.strip()
            return int(v) if v.isdigit() else None
    return None


class HttpChannels:
    """Virtual connections of one input: cookie -> (association, channels using it)."""

    __slots__ = ("vcs",)

    def __init__(self) -> None:
        self.vcs: dict[bytes, list[object]] = {}


class _Sink:
    """The framer's PduSink: PDUs and the end of the stream go back to the handler."""

    __slots__ = ("h",)

    def __init__(self, h: HttpHandler) -> None:
        self.h = h

    def pdu(self, dirn: int, buf: bytes, off: int, hdr: Header, frame: int, ts: float) -> None:
        self.h.pdu(dirn, buf, off, hdr, frame, ts)

    def close(self, reason: str) -> None:
        self.h.release(reason)


class HttpHandler:
    """TCP connection handler for ncacn_http: banner or HTTP headers, then a CO PDU stream."""

    __slots__ = ("_ep", "assoc", "channels", "cookie", "framer", "mode", "parts", "pre", "run", "skip")

    def __init__(
        self,
        run: Run,
        endpoints: Endpoints,
        channels: HttpChannels,
        new_channel: ChannelFactory,
        *,
        http: bool,
    ) -> None:
        self.run = run
        self._ep = endpoints
        self.channels = channels
        self.assoc = new_channel("ncacn_http", endpoints, None)
        self.cookie: bytes | None = None
        self.framer = CoFramer(run, endpoints, _Sink(self), midstream=False)
        first = "headers" if http else "banner"
        self.mode = [first, first]
        self.pre = [b"", b""]  # a banner or header part still incomplete, per direction
        self.skip = [0, 0]  # body bytes of a 401 (or other non-2xx) answer still to skip, per direction
        self.parts = [0, 0]  # header parts seen, per direction
        run.count("connections_ncacn_http_plain" if http else "connections_ncacn_http")

    # -- Handler (TCP side) --------------------------------------------------------------------
    def data(self, dirn: int, payload: bytes, frame: int, ts: float) -> None:
        mode = self.mode[dirn]
        if mode == "pdus":
            self.framer.data(dirn, payload, frame, ts)
            return
        if mode == "ignore":
            return
        if mode == "body":  # the body of a 401 (or other non-2xx) answer: skipped, headers follow
            skip = self.skip[dirn]
            if len(payload) <= skip:
                self.skip[dirn] = skip - len(payload)
                if self.skip[dirn] == 0:
                    self.mode[dirn] = "headers"
                return
            payload = payload[skip:]
            self.skip[dirn] = 0
            mode = self.mode[dirn] = "headers"
        buf = self.pre[dirn] + payload
        if mode == "banner":
            if len(buf) < len(BANNER) and BANNER.startswith(buf):
                self.pre[dirn] = buf
                return
            if buf.startswith(BANNER):
                self.run.count("http_banner")
                buf = buf[len(BANNER) :]
        else:
            while True:  # header parts until the one whose body carries PDUs
                if len(buf) < 5 and (b"RPC_".startswith(buf[:4]) or b"HTTP/".startswith(buf)):
                    self.pre[dirn] = buf  # too short to tell yet
                    return
                if not buf.startswith((b"RPC_", b"HTTP/")):
                    if self.parts[dirn]:
                        self.run.count("http_header_part_missing")  # PDUs where headers were due
                    self.mode[dirn] = "pdus"  # no HTTP part in this direction (capture started later)
                    self.pre[dirn] = b""
                    self.framer.data(dirn, buf, frame, ts)
                    return
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        detail = f"HTTP header part longer than {MAX_HEADER_BYTES} bytes; direction ignored"
                        self.run.anomaly("http_header_limit", detail, frame, ts, self._ep)
                        self.mode[dirn] = "ignore"
                        self.pre[dirn] = b""
                    else:
                        self.pre[dirn] = buf
                    return
                head, buf = buf[:i], buf[i + 4 :]
                more = self._header_part(dirn, head)
                if more is False:
                    break
                self.parts[dirn] += 1
                if self.parts[dirn] >= MAX_HEADER_PARTS:
                    detail = f"over {MAX_HEADER_PARTS} HTTP header parts before the PDUs; direction ignored"
                    self.run.anomaly("http_header_limit", detail, frame, ts, self._ep)
                    self.mode[dirn] = "ignore"
                    self.pre[dirn] = b""
                    return
                if more is None:  # a body to skip, then headers again
                    self.pre[dirn] = b""
                    self.mode[dirn] = "body"
                    if buf:
                        self.data(dirn, buf, frame, ts)
                    return
        self.pre[dirn] = b""
        self.mode[dirn] = "pdus"
        if buf:
            self.framer.data(dirn, buf, frame, ts)

    def _header_part(self, dirn: int, head: bytes) -> bool | None:
        """Reads one HTTP header part: False when its body carries the channel's PDUs, True when
        another header part follows at once (an authentication leg, an interim ``1xx`` answer),
        None when a body of ``skip`` bytes (a ``401`` answer's) comes first."""
        end = head.find(b"\r\n")
        line = head if end < 0 else head[:end]
        word = line.split(b" ", 1)[0]
        length = _content_length(head)
        if word.startswith(b"RPC_"):
            target = rpc_target(line)
            if target is not None and self.assoc.target is None:
                self.assoc.target = target
            if length == 0:  # authenticating to the proxy: the channel's request follows
                self.run.count("http_auth_leg")
                return True
            self.run.count("http_" + word.decode("latin-1").lower())
            return False
        self.run.count("http_response")
        status = line.split(b" ", 2)[1] if line.count(b" ") else b""
        if status[:1] == b"1":  # 100 Continue: the real answer follows
            self.run.count("http_interim_response")
            return True
        if status[:1] == b"2" or not status.isdigit():
            return False
        self.run.count("http_auth_leg")  # 401 (or another refusal): its body, then a new answer
        if length:
            self.skip[dirn] = length
            return None
        return True

    def gap(self, dirn: int, nbytes: int, frame: int, ts: float) -> None:
        self.pre[dirn] = b""
        self.skip[dirn] = 0
        if self.mode[dirn] != "ignore":
            self.mode[dirn] = "pdus"
        self.framer.gap(dirn, nbytes, frame, ts)

    def close(self, reason: str, frame: int, ts: float) -> None:
        self.framer.close(reason, frame, ts)

    # -- framer side (through _Sink) -----------------------------------------------------------
    def pdu(self, dirn: int, buf: bytes, off: int, h: Header, frame: int, ts: float) -> None:
        if h.ptype != 20:
            self.assoc.pdu(dirn, buf, off, h, frame, ts)
            return
        run = self.run
        run.count("pdu_rts")
        rts = rts_body(buf, off, h)
        if rts is None:
            run.anomaly("malformed_pdu", "RTS PDU whose commands do not fit its length", frame, ts, self._ep)
            return
        for name in rts[1]:
            run.count(f"rts_cmd_{name}")
        if rts[2] is not None and self.cookie is None and rts[1][:1] == ["version"]:
            self._join(rts[2])

    def _join(self, cookie: bytes) -> None:
        """Shares the association of the virtual connection *cookie* (IN/OUT channel pairing)."""
        self.cookie = cookie
        vcs = self.channels.vcs
        ent = vcs.get(cookie)
        if ent is None:
            if len(vcs) >= MAX_VIRTUAL_CONNECTIONS:
                self.run.count("http_vc_limit")
                return
            vcs[cookie] = [self.assoc, 1]
            return
        own = self.assoc
        self.assoc = ent[0]  # type: ignore[assignment]
        if self.assoc.target is None:
            self.assoc.target = own.target
        ent[1] = int(ent[1]) + 1  # type: ignore[call-overload]
        self.run.count("http_channels_paired")
        own.close("connection_closed")

    def release(self, reason: str) -> None:
        """End of this channel: the association closes when its last channel does."""
        if self.cookie is not None:
            ent = self.channels.vcs.get(self.cookie)
            if ent is not None and ent[0] is self.assoc:
                ent[1] = int(ent[1]) - 1  # type: ignore[call-overload]
                if ent[1] > 0:
                    return
                del self.channels.vcs[self.cookie]
        self.assoc.close(reason)
