"""RPC over HTTP (ncacn_http): the 593 banner, RPC_IN_DATA / RPC_OUT_DATA channels, RTS PDUs."""

from __future__ import annotations

import base64
import dataclasses
import struct
import uuid
from collections import Counter
from pathlib import Path

import pytest
from builders import SAMR, Conv, bind, bind_ack, pcap, request, response, tshark_fields, write
from tshark_ref import have_tshark, tshark_requests

from rpcinspect.capture import fastscan
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, BindRecord, CallRecord, SummaryRecord
from rpcinspect.transports.cotcp import header
from rpcinspect.transports.http import rts_body

VC = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee").bytes_le
IN_COOKIE = b"\x11" * 16
OUT_COOKIE = b"\x22" * 16


def rts(commands: list[tuple[int, bytes]], *, flags: int = 0, count: int | None = None) -> bytes:
    """An RTS PDU (MS-RPCH 2.2.3.6.1) with the given (command type, payload) commands."""
    body = struct.pack("<HH", flags, len(commands) if count is None else count)
    body += b"".join(struct.pack("<I", t) + p for t, p in commands)
    return struct.pack("<BBBB4sHHI", 5, 0, 20, 3, b"\x10\0\0\0", 16 + len(body), 0, 0) + body


def conn_a1() -> bytes:  # OUT channel: Version, VC cookie, OUT channel cookie, ReceiveWindowSize
    return rts([(6, struct.pack("<I", 1)), (3, VC), (3, OUT_COOKIE), (0, struct.pack("<I", 65536))])


def conn_b1() -> bytes:  # IN channel: Version, VC cookie, IN cookie, lifetime, keepalive, assoc group
    return rts([(6, struct.pack("<I", 1)), (3, VC), (3, IN_COOKIE), (4, struct.pack("<I", 1 << 30)),
                (5, struct.pack("<I", 300000)), (12, b"\x33" * 16)])  # fmt: skip


def records(tmp_path: Path, frames: list[bytes], prefilter: bool = False) -> list[object]:
    return list(analyze([write(tmp_path / "h.pcap", pcap(frames))], prefilter=prefilter))


def test_rts_body_decodes_commands_and_cookie() -> None:
    pdu = conn_b1()
    flags, names, cookie = rts_body(pdu, 0, header(pdu, 0))  # type: ignore[misc]
    assert names == ["version", "cookie", "cookie", "channel_lifetime", "client_keepalive",
                     "association_group_id"]  # fmt: skip
    assert cookie == VC and flags == 0


def test_port_593_banner_then_pdus(tmp_path: Path) -> None:
    c = Conv(dport=593)
    c.handshake()
    c.send(False, b"ncacn_http/1.0")
    c.send(True, bind(1, [(0, SAMR, 1)]))
    c.send(False, bind_ack(1, 1))
    c.send(True, rts([(0, struct.pack("<I", 65536))]))  # a flow-control-like RTS PDU: no call
    c.send(True, request(2, 5)[:30])
    c.send(True, request(2, 5)[30:])
    c.send(False, response(2))
    recs = records(tmp_path, c.frames)
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(x.transport, x.interface, x.opnum, x.status, x.if_source) for x in calls] == [
        ("ncacn_http", "samr", 5, "ok", "bind")
    ]
    counters = recs[-1].counters  # type: ignore[attr-defined]
    assert counters["http_banner"] == 1 and counters["pdu_rts"] == 1
    assert counters["rts_cmd_receive_window_size"] == 1
    assert "connections_ncacn_http_not_decoded" not in counters


def channel_frames() -> list[bytes]:
    """An RPC_OUT_DATA and an RPC_IN_DATA channel on port 80 carrying one bind and one call."""
    out = Conv(sport=40001, dport=80)
    inn = Conv(sport=40002, dport=80)
    frames = out.handshake() + inn.handshake()
    frames.append(out.send(True, b"RPC_OUT_DATA /rpc/rpcproxy.dll?dc:6004 HTTP/1.1\r\nHost: dc\r\n"
                                 b"Content-Length: 76\r\n\r\n" + conn_a1()))  # fmt: skip
    frames.append(inn.send(True, b"RPC_IN_DATA /rpc/rpcproxy.dll?dc:6004 HTTP/1.1\r\nHost: dc\r\n"))
    frames.append(inn.send(True, b"Content-Length: 1073741824\r\n\r\n" + conn_b1() + bind(1, [(0, SAMR, 1)])))
    a3 = rts([(6, struct.pack("<I", 1)), (0, struct.pack("<I", 65536))])
    frames.append(out.send(False, b"HTTP/1.1 200 Success\r\nContent-Type: application/rpc\r\n\r\n" + a3))
    frames.append(out.send(False, bind_ack(1, 1)))
    frames.append(inn.send(True, request(2, 7)))
    frames.append(out.send(False, response(2)))
    return frames


def test_in_and_out_channels_are_paired_by_the_virtual_connection_cookie(tmp_path: Path) -> None:
    frames = channel_frames()
    recs = records(tmp_path, frames)
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(x.transport, x.interface, x.opnum, x.status, x.resp_frame) for x in calls] == [
        ("ncacn_http", "samr", 7, "ok", len(frames))
    ]
    counters = recs[-1].counters  # type: ignore[attr-defined]
    assert counters["http_channels_paired"] == 1
    assert counters["http_rpc_in_data"] == 1 and counters["http_rpc_out_data"] == 1
    assert counters["pdu_rts"] == 3


def test_rts_with_bogus_lengths_is_a_counted_anomaly(tmp_path: Path) -> None:
    c = Conv(dport=593)
    c.handshake()
    c.send(False, b"ncacn_http/1.0")
    c.send(True, rts([(3, VC)], count=60000))  # announces 60000 commands
    c.send(True, rts([(8, struct.pack("<I", 0xFFFFFFF0))]))  # padding longer than the PDU
    c.send(True, rts([(99, b"")]))  # unknown command type
    c.send(True, rts([(11, struct.pack("<I", 7))]))  # client address of an unknown type
    c.send(True, bind(1, [(0, SAMR, 1)]))
    recs = records(tmp_path, c.frames)
    bad = [r for r in recs if isinstance(r, AnomalyRecord) and r.kind == "malformed_pdu"]
    assert len(bad) == 4 and all("RTS" in r.detail for r in bad)
    assert sum(1 for r in recs if type(r).__name__ == "BindRecord") == 1  # the stream stays in sync


def test_endless_http_headers_are_bounded(tmp_path: Path) -> None:
    c = Conv(dport=8080)
    c.handshake()
    c.send(True, b"RPC_IN_DATA /rpc/rpcproxy.dll?x:6001 HTTP/1.1\r\n")
    for _ in range(40):
        c.send(True, b"X-Padding: " + b"a" * 1000 + b"\r\n")
    c.send(True, b"\r\n" + bind(1, [(0, SAMR, 1)]))
    recs = records(tmp_path, c.frames)
    summary = recs[-1]
    assert isinstance(summary, SummaryRecord)
    assert summary.counters["http_header_limit"] == 1
    assert not any(type(r).__name__ == "BindRecord" for r in recs)  # the direction was given up


def test_endless_authentication_legs_are_bounded(tmp_path: Path) -> None:
    """A client that sends header part after header part (Content-Length: 0 legs, each a whole
    header block) is given up after MAX_HEADER_PARTS, never buffered or followed forever."""
    from rpcinspect.transports.http import MAX_HEADER_PARTS

    c = Conv(dport=8080)
    c.handshake()
    leg = b"RPC_IN_DATA /rpc/rpcproxy.dll?x:6001 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
    for _ in range(MAX_HEADER_PARTS + 4):
        c.send(True, leg)
    c.send(True, bind(1, [(0, SAMR, 1)]))
    recs = records(tmp_path, c.frames)
    summary = recs[-1]
    assert isinstance(summary, SummaryRecord)
    assert summary.counters["http_header_limit"] == 1
    assert summary.counters["http_auth_leg"] == MAX_HEADER_PARTS  # read, then the direction is dropped
    assert not any(type(r).__name__ == "BindRecord" for r in recs)  # the direction was given up


@pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")
def test_prefilter_passes_port_593(tmp_path: Path) -> None:
    c = Conv(dport=593)
    c.handshake()
    c.send(False, b"ncacn_http/1.0")
    c.send(True, bind(1, [(0, SAMR, 1)]) + request(2, 5))
    c.send(False, bind_ack(1, 1) + response(2))
    path = write(tmp_path / "pf.pcap", pcap(c.frames))

    def calls(pf: bool) -> list[dict]:  # type: ignore[type-arg]
        return [dataclasses.asdict(r) for r in analyze([path], prefilter=pf) if isinstance(r, CallRecord)]

    assert calls(True) == calls(False) and len(calls(True)) == 1


@pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")
def test_prefilter_learns_http_channels_on_any_port(tmp_path: Path) -> None:
    other = Conv(sport=40009, dport=80)  # plain HTTP before the RPC channels: not RPC, ignored
    other.handshake()
    other.send(True, b"GET / HTTP/1.1\r\nHost: dc\r\n\r\n")
    path = write(tmp_path / "pf.pcap", pcap(other.frames + channel_frames()))

    def recs(pf: bool) -> list[dict]:  # type: ignore[type-arg]
        return [dataclasses.asdict(r) for r in analyze([path], prefilter=pf) if isinstance(r, CallRecord)]

    assert recs(True) == recs(False) and len(recs(True)) == 1


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_tshark_agrees_on_the_built_http_captures(tmp_path: Path) -> None:
    """No public capture carries ncacn_http, so the built ones are checked against tshark: every
    request tshark decodes is ours at the same frame, opnum and interface; on the IN/OUT channel
    pair tshark decodes the bind but not the request inside the IN channel's body, rpcinspect both."""
    c = Conv(dport=593)
    c.handshake()
    c.send(False, b"ncacn_http/1.0")
    c.send(True, bind(1, [(0, SAMR, 1)]))
    c.send(False, bind_ack(1, 1))
    c.send(True, request(2, 5)[:30])
    c.send(True, request(2, 5)[30:])
    c.send(False, response(2))
    totals = {}
    for name, frames in (("593", c.frames), ("channels", channel_frames())):
        path = write(tmp_path / f"{name}.pcap", pcap(frames))
        ref = tshark_requests(path)
        ours = {(r.req_frame, r.opnum, r.if_uuid) for r in analyze([path]) if isinstance(r, CallRecord)}
        assert all((t.frame, t.opnum, t.if_uuid) in ours for t in ref), (name, ref, ours)
        totals[name] = (len(ref), len(ours))
    assert totals == {"593": (1, 1), "channels": (0, 1)}


# -- a whole virtual connection (MS-RPCH 3.2.1.5.3.1 and 3.2.2.5, RTS PDUs of 2.2.4) ---------------
AG = b"\x33" * 16  # association group id cookie
LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
URL = b"/rpc/rpcproxy.dll?DC1.example.com:6004"  # 2.2.2: the RPC server and port behind the proxy
RTS_FLAG_NONE, RTS_FLAG_PING, RTS_FLAG_OTHER_CMD, RTS_FLAG_IN_CHANNEL, RTS_FLAG_OUT_CHANNEL = 0, 1, 2, 8, 0x10


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


# Commands (2.2.3.5): 0 ReceiveWindowSize, 1 FlowControlAck, 2 ConnectionTimeout, 3 Cookie,
# 4 ChannelLifetime, 5 ClientKeepalive, 6 Version, 11 ClientAddress, 12 AssociationGroupId.
def conn_a3() -> bytes:  # 2.2.4.4: outbound proxy -> client, RTS_FLAG_NONE, ConnectionTimeout
    return rts([(2, u32(120000))], flags=RTS_FLAG_NONE)


def conn_c2() -> bytes:  # 2.2.4.9: outbound proxy -> client: Version, ReceiveWindowSize, ConnectionTimeout
    return rts([(6, u32(1)), (0, u32(65536)), (2, u32(120000))], flags=RTS_FLAG_NONE)


def conn_a2() -> bytes:  # 2.2.4.3: outbound proxy -> server, RTS_FLAG_OUT_CHANNEL: Version, VC cookie,
    # OUT channel cookie, ChannelLifetime, ReceiveWindowSize
    return rts([(6, u32(1)), (3, VC), (3, OUT_COOKIE), (4, u32(1 << 30)), (0, u32(65536))],
               flags=RTS_FLAG_OUT_CHANNEL)  # fmt: skip


def conn_c1() -> bytes:  # 2.2.4.8: server -> outbound proxy: Version, ReceiveWindowSize, ConnectionTimeout
    return rts([(6, u32(1)), (0, u32(65536)), (2, u32(120000))], flags=RTS_FLAG_NONE)


def conn_b2() -> bytes:  # 2.2.4.6: inbound proxy -> server, RTS_FLAG_IN_CHANNEL: Version, VC cookie, IN
    # channel cookie, ReceiveWindowSize, ConnectionTimeout, AssociationGroupId, ClientAddress (IPv4)
    client = u32(0) + bytes([10, 0, 0, 9]) + b"\0" * 12
    commands = [(6, u32(1)), (3, VC), (3, IN_COOKIE), (0, u32(65536)), (2, u32(120000))]
    commands += [(12, AG), (11, client)]
    return rts(commands, flags=RTS_FLAG_IN_CHANNEL)


def conn_b3() -> bytes:  # 2.2.4.7: server -> inbound proxy: ReceiveWindowSize, Version
    return rts([(0, u32(65536)), (6, u32(1))], flags=RTS_FLAG_NONE)


def ping() -> bytes:  # 2.2.4.49: RTS_FLAG_PING, no command
    return rts([], flags=RTS_FLAG_PING)


def flow_control_ack(cookie: bytes, received: int) -> bytes:  # 2.2.4.50: RTS_FLAG_OTHER_CMD, FlowControlAck
    # (2.2.3.4: BytesReceived, AvailableWindow, ChannelCookie)
    return rts([(1, u32(received) + u32(65536) + cookie)], flags=RTS_FLAG_OTHER_CMD)


def channel_request(method: bytes, length: int, token: bytes) -> bytes:
    """An IN or OUT channel request (2.1.2.1.1/2.1.2.1.3) as Impacket's rpch client sends it."""
    return (method + b" " + URL + b" HTTP/1.1\r\nAccept: application/rpc\r\nUser-Agent: MSRPC\r\n"
            b"Host: proxy.example.com\r\nContent-Length: " + str(length).encode() + b"\r\n"
            b"Authorization: NTLM " + base64.b64encode(token) + b"\r\n\r\n")  # fmt: skip


UNAUTHORIZED = (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM " + base64.b64encode(b"NTLMSSP\0chal")
                + b"\r\nContent-Length: 13\r\n\r\nAccess denied")  # fmt: skip
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
OUT_RESPONSE = b"HTTP/1.1 200 Success\r\nContent-Type: application/rpc\r\nContent-Length: 1073741824\r\n\r\n"


def proxy_channels(*, with_bind: bool = True) -> tuple[list[bytes], dict[str, int]]:
    """Client <-> RPC proxy on port 80, as 3.2.2.5 (client) opens a virtual connection: each channel
    first authenticates (NTLM: a request with Content-Length 0, a 401 with a body), then sends
    its real request, answered 100 Continue; CONN/A1 on the OUT channel, CONN/B1 on the IN channel,
    CONN/A3 and CONN/C2 back on the OUT channel (after its 200 response header); then a bind and
    two calls (requests on IN, answers on OUT), a FlowControlAck and Pings. Returns the frames and
    the frame numbers of interest."""
    out, inn = Conv(sport=40001, dport=80), Conv(sport=40002, dport=80)
    frames = out.handshake() + inn.handshake()
    at: dict[str, int] = {}

    def send(name: str, conv: Conv, client: bool, payload: bytes) -> None:
        frames.append(conv.send(client, payload))
        at[name] = len(frames)

    send("out_auth", out, True, channel_request(b"RPC_OUT_DATA", 0, b"NTLMSSP\0negotiate"))
    send("out_401", out, False, UNAUTHORIZED)
    send("in_auth", inn, True, channel_request(b"RPC_IN_DATA", 0, b"NTLMSSP\0negotiate"))
    send("in_401", inn, False, UNAUTHORIZED)
    send("out_req", out, True, channel_request(b"RPC_OUT_DATA", 76, b"NTLMSSP\0authenticate"))
    send("out_100", out, False, CONTINUE)
    send("a1", out, True, conn_a1())
    send("in_req", inn, True, channel_request(b"RPC_IN_DATA", 1 << 30, b"NTLMSSP\0authenticate"))
    send("in_100", inn, False, CONTINUE)
    send("b1", inn, True, conn_b1())
    send("a3", out, False, OUT_RESPONSE + conn_a3())
    send("c2", out, False, conn_c2())
    if with_bind:
        send("bind", inn, True, bind(1, [(0, SAMR, 1)]))
        send("bind_ack", out, False, bind_ack(1, 1))
    send("req1", inn, True, request(2, 64))
    send("resp1", out, False, response(2))
    send("fack_ping", inn, True, flow_control_ack(OUT_COOKIE, 200) + ping())
    send("ping", out, False, ping())
    send("req2", inn, True, request(3, 1))
    send("resp2", out, False, response(3))
    return frames, at


def server_legs() -> tuple[list[bytes], dict[str, int]]:
    """RPC proxy <-> server on port 593 (3.2.3.5 inbound, 3.2.4.5 outbound proxy, 3.2.5.5 server):
    each leg opens with the server's ncacn_http/1.0 banner; CONN/A2 and CONN/C1 on the OUT leg,
    CONN/B2 and CONN/B3 on the IN leg; the bind and request go up the IN leg, their answers down
    the OUT leg; the server acknowledges the IN leg's bytes with a FlowControlAck."""
    out, inn = Conv(sport=50001, dport=593), Conv(sport=50002, dport=593)
    frames = out.handshake() + inn.handshake()
    at: dict[str, int] = {}

    def send(name: str, conv: Conv, client: bool, payload: bytes) -> None:
        frames.append(conv.send(client, payload))
        at[name] = len(frames)

    send("out_banner", out, False, b"ncacn_http/1.0")
    send("a2", out, True, conn_a2())
    send("in_banner", inn, False, b"ncacn_http/1.0")
    send("b2", inn, True, conn_b2())
    send("b3", inn, False, conn_b3())
    send("c1", out, False, conn_c1())
    send("bind", inn, True, bind(1, [(0, SAMR, 1)]))
    send("bind_ack", out, False, bind_ack(1, 1))
    send("req1", inn, True, request(2, 64))
    send("fack", inn, False, flow_control_ack(IN_COOKIE, 200))
    send("resp1", out, False, response(2))
    return frames, at


def our_rts_per_frame(tmp_path: Path, frames: list[bytes]) -> dict[int, int]:
    """Frame -> RTS PDUs rpcinspect counted in it (``pdu_rts`` after frame N minus after N - 1,
    each prefix of the capture analyzed on its own)."""
    out: dict[int, int] = {}
    before = 0
    for n in range(1, len(frames) + 1):
        summary = list(analyze([write(tmp_path / "prefix.pcap", pcap(frames[:n]))]))[-1]
        assert isinstance(summary, SummaryRecord)
        now = summary.counters.get("pdu_rts", 0)
        if now != before:
            out[n] = now - before
        before = now
    return out


def tshark_rts(path: Path) -> tuple[dict[int, int], dict[int, str]]:
    """Frame -> RTS PDUs tshark decodes in it (``dcerpc.pkt_type == 20``), and frame -> its Info."""
    rows = tshark_fields(path, "dcerpc", ["frame.number", "dcerpc.pkt_type", "_ws.col.Info"], occurrence="a")
    counts = {int(f): t.split(",").count("20") for f, t, _ in rows}
    return {f: n for f, n in counts.items() if n}, {int(f): info for f, _, info in rows}


def test_virtual_connection_over_http_channels(tmp_path: Path) -> None:
    frames, at = proxy_channels()
    recs = records(tmp_path, frames)
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(c.req_frame, c.resp_frame, c.opnum, c.operation, c.if_source, c.status, c.transport)
            for c in calls] == [
        (at["req1"], at["resp1"], 64, "SamrConnect5", "bind", "ok", "ncacn_http"),
        (at["req2"], at["resp2"], 1, "SamrCloseHandle", "bind", "ok", "ncacn_http"),
    ]  # fmt: skip
    (b,) = [r for r in recs if isinstance(r, BindRecord)]
    assert (b.req_frame, b.resp_frame, b.status) == (at["bind"], at["bind_ack"], "ok")
    c = recs[-1].counters  # type: ignore[attr-defined]
    assert c["pdu_rts"] == 7  # A1, B1, A3, C2, FlowControlAck, two Pings
    assert {k[8:]: v for k, v in c.items() if k.startswith("rts_cmd_")} == {
        "version": 3, "cookie": 4, "receive_window_size": 2, "channel_lifetime": 1, "client_keepalive": 1,
        "association_group_id": 1, "connection_timeout": 2, "flow_control_ack": 1,
    }  # fmt: skip
    # the two NTLM legs and the two 100 Continue answers are skipped, never read as PDUs
    assert (c["http_auth_leg"], c["http_interim_response"]) == (4, 2)
    assert (c["http_rpc_in_data"], c["http_rpc_out_data"], c["http_channels_paired"]) == (1, 1, 1)
    assert "malformed_pdu" not in c and not [r for r in recs if isinstance(r, AnomalyRecord)]
    assert our_rts_per_frame(tmp_path, frames) == {
        at["a1"]: 1, at["b1"]: 1, at["a3"]: 1, at["c2"]: 1, at["fack_ping"]: 2, at["ping"]: 1,
    }  # fmt: skip


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_tshark_agrees_on_the_http_channels_where_it_decodes(tmp_path: Path) -> None:
    """tshark 4.0 decodes an RTS PDU in an HTTP channel only where its HTTP dissector hands the
    body over: CONN/A1 (the OUT channel request's 76-byte body) and CONN/A3 (the head of the 200
    answer's body). Everything after that (CONN/B1 and every PDU in the IN channel's 1 GiB body,
    CONN/C2, the bind_ack, responses and Pings on the OUT channel) is an HTTP "Continuation" to
    it, so it finds no request there; rpcinspect finds both calls (test above). Where tshark does
    decode, the RTS counts per frame agree."""
    frames, at = proxy_channels()
    path = write(tmp_path / "channels.pcap", pcap(frames))
    theirs, info = tshark_rts(path)
    ours = our_rts_per_frame(tmp_path, frames)
    print(f"\nRTS per frame: tshark {theirs}, rpcinspect {ours}")
    assert theirs and all(ours.get(f) == n for f, n in theirs.items())
    assert {info[at["a1"]].split(",")[0], info[at["a3"]].split(",")[0]} == {"CONN/A1", "CONN/A3"}
    assert not tshark_requests(path)  # none of the requests in the IN channel's body


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_virtual_connection_over_port_593_matches_tshark(tmp_path: Path) -> None:
    """The proxy-to-server legs on port 593: tshark decodes every PDU there, and names the RTS
    PDUs by their command layout (Wireshark's RTS dissector): its names are those we built, and
    its RTS PDUs and requests per frame are rpcinspect's."""
    frames, at = server_legs()
    path = write(tmp_path / "593.pcap", pcap(frames))
    recs = list(analyze([path]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    got = [(c.req_frame, c.resp_frame, c.opnum, c.interface, c.if_source, c.status, c.dport) for c in calls]
    assert got == [(at["req1"], at["resp1"], 64, "samr", "bind", "ok", 593)]
    c = recs[-1].counters  # type: ignore[attr-defined]
    assert (c["pdu_rts"], c["http_banner"], c["http_channels_paired"]) == (5, 2, 1)
    assert "malformed_pdu" not in c
    theirs, info = tshark_rts(path)
    ours = our_rts_per_frame(tmp_path, frames)
    assert ours == theirs == {at["a2"]: 1, at["b2"]: 1, at["b3"]: 1, at["c1"]: 1, at["fack"]: 1}
    names = {f: info[f].split(",")[0] for f in theirs}
    assert names == {at["a2"]: "CONN/A2", at["b2"]: "CONN/B2", at["b3"]: "CONN/B3", at["c1"]: "CONN/C1",
                     at["fack"]: "FlowControlAck"}  # fmt: skip
    assert Counter((t.frame, t.opnum) for t in tshark_requests(path)) == Counter(
        (x.req_frame, x.opnum) for x in calls
    )


def test_unbound_call_is_resolved_by_the_url_server_and_port(tmp_path: Path) -> None:
    """The channels' URL (``?DC1.example.com:6004``) names the RPC server; the TCP port (80) is
    the proxy's. A call whose bind is not in the capture is named by ``--decode-as SERVER:PORT``
    of the URL, and no longer by a rule for the proxy's address and port."""
    frames, at = proxy_channels(with_bind=False)
    path = write(tmp_path / "nobind.pcap", pcap(frames))

    def named(*rules: str) -> list[tuple[int | None, int | None, str | None, str | None, str]]:
        return [(r.req_frame, r.opnum, r.interface, r.operation, r.if_source)
                for r in analyze([path], decode_as=rules) if isinstance(r, CallRecord)]  # fmt: skip

    assert named("dc1.example.com:6004=samr") == [
        (at["req1"], 64, "samr", "SamrConnect5", "decode_as"),
        (at["req2"], 1, "samr", "SamrCloseHandle", "decode_as"),
    ]
    assert [(x[2], x[4]) for x in named("*:6004=" + LSARPC)] == [("lsarpc", "decode_as")] * 2
    assert [x[2:] for x in named("10.0.0.2:80=samr", "dc1.example.com:593=samr")] == [
        (None, None, "unknown"), (None, None, "unknown"),
    ]  # fmt: skip


@pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")
@pytest.mark.parametrize("build", [proxy_channels, server_legs])
def test_prefilter_keeps_whole_virtual_connections(tmp_path: Path, build: object) -> None:
    frames, _ = build()  # type: ignore[operator]
    path = write(tmp_path / "pf.pcap", pcap(frames))

    def recs(pf: bool) -> list[dict]:  # type: ignore[type-arg]
        return [dataclasses.asdict(r) for r in analyze([path], prefilter=pf) if isinstance(r, CallRecord)]

    assert recs(True) == recs(False) and recs(True)
