"""RPC over HTTP (ncacn_http): the 593 banner, RPC_IN_DATA / RPC_OUT_DATA channels, RTS PDUs."""

from __future__ import annotations

import dataclasses
import struct
import uuid
from pathlib import Path

import pytest
from builders import SAMR, Conv, bind, bind_ack, pcap, request, response, write
from tshark_ref import have_tshark, tshark_requests

from rpcinspect.capture import fastscan
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, CallRecord, SummaryRecord
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
