"""Pipeline behaviour on hand-built captures: link types, TCP reassembly, PDU framing, pairing."""

from __future__ import annotations

import gzip
import struct
import subprocess
from pathlib import Path

import builders as b
import pytest
from tshark_ref import have_tshark

from rpcinspect.engine import analyze
from rpcinspect.records import BindRecord, CallRecord, SummaryRecord


def run(tmp_path: Path, data: bytes, name: str = "t.pcap") -> list:
    p = tmp_path / name
    p.write_bytes(data)
    return list(analyze([p]))


def calls(recs: list) -> list[CallRecord]:
    return [r for r in recs if isinstance(r, CallRecord)]


def summary(recs: list) -> SummaryRecord:
    s = recs[-1]
    assert isinstance(s, SummaryRecord)
    return s


def samr_session(conv: b.Conv, *, little: bool = True, n: int = 2) -> list[bytes]:
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)], little=little))
    conv.send(False, b.bind_ack(1, 1, little=little))
    for i in range(n):
        conv.send(True, b.request(2 + i, 64 + i % 2, little=little))
        conv.send(False, b.response(2 + i, little=little))
    return conv.frames


def test_basic_call_pairing_names_and_frames(tmp_path: Path) -> None:
    conv = b.Conv(dport=49154)
    recs = run(tmp_path, b.pcap(samr_session(conv)))
    cs = calls(recs)
    assert [(c.req_frame, c.resp_frame, c.opnum, c.operation) for c in cs] == [
        (6, 7, 64, "SamrConnect5"),
        (8, 9, 65, "SamrRidToSid"),
    ]
    c = cs[0]
    assert (c.src, c.sport, c.dst, c.dport) == ("10.0.0.1", 40000, "10.0.0.2", 49154)
    assert (c.interface, c.if_uuid, c.if_version, c.if_source) == ("samr", b.SAMR, "1.0", "bind")
    assert (c.status, c.transport, c.auth_type, c.auth_level, c.ndr) == (
        "ok",
        "ncacn_ip_tcp",
        "none",
        "none",
        "NDR",
    )
    assert c.rtt is not None and c.rtt > 0
    bind = next(r for r in recs if isinstance(r, BindRecord))
    assert bind.status == "ok" and bind.sec_addr == "49154" and bind.assoc_group == 0x1234
    assert bind.contexts[0].result == "acceptance" and bind.contexts[0].accepted_syntax == "NDR"


def tshark_fields(path: Path, *fields: str) -> dict[int, dict[str, list[str]]]:
    """tshark's values of *fields* per frame (every occurrence, in order; absent fields omitted)."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    cmd += ["-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows: dict[int, dict[str, list[str]]] = {}
    for line in out.splitlines():
        cols = line.split("\t")
        rows[int(cols[0])] = {f: v.split(",") for f, v in zip(fields, cols[1:], strict=False) if v}
    return rows


needs_tshark = pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")


def _ver(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_big_and_little_endian(tmp_path: Path, little: bool) -> None:
    recs = run(tmp_path, b.pcap(samr_session(b.Conv(), little=little)))
    cs = calls(recs)
    assert [(c.opnum, c.interface) for c in cs] == [(64, "samr"), (65, "samr")]
    # if_version is one 32-bit integer in the PDU's byte order: major in the low 16 bits (C706)
    assert [(c.if_version, c.ndr) for c in cs] == [("1.0", "NDR"), ("1.0", "NDR")]
    bind = next(r for r in recs if isinstance(r, BindRecord))
    ctx = bind.contexts[0]
    assert (ctx.if_version, ctx.interface, ctx.transfer_syntaxes) == ("1.0", "samr", ["NDR"])
    assert (ctx.result, ctx.accepted_syntax, bind.status) == ("acceptance", "NDR", "ok")


@needs_tshark
@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_syntax_versions_agree_with_tshark(tmp_path: Path, little: bool) -> None:
    p = tmp_path / "t.pcap"
    p.write_bytes(b.pcap(samr_session(b.Conv(), little=little)))
    recs = list(analyze([p]))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    ref = tshark_fields(
        p,
        "dcerpc.cn_bind_if_ver",
        "dcerpc.cn_bind_if_ver_minor",
        "dcerpc.cn_bind_trans_id",
        "dcerpc.cn_bind_trans_ver",
        "dcerpc.cn_ack_trans_id",
        "dcerpc.cn_ack_trans_ver",
    )
    req, resp = ref[bind.req_frame], ref[bind.resp_frame]  # type: ignore[index]
    ctx = bind.contexts[0]
    assert _ver(ctx.if_version) == (
        int(req["dcerpc.cn_bind_if_ver"][0]),
        int(req["dcerpc.cn_bind_if_ver_minor"][0]),
    )
    # tshark prints a transfer syntax's if_version as the whole 32-bit value (major | minor << 16)
    assert req["dcerpc.cn_bind_trans_id"] == [b.NDR] and req["dcerpc.cn_bind_trans_ver"] == ["2"]
    assert resp["dcerpc.cn_ack_trans_id"] == [b.NDR] and resp["dcerpc.cn_ack_trans_ver"] == ["2"]
    assert ctx.transfer_syntaxes == ["NDR"] and ctx.accepted_syntax == "NDR"  # NDR is 8a885d04... v2.0


def nak_session(*, little: bool = True) -> b.Conv:
    """A bind answered by a bind_nak (reason 4), then a request on the refused context."""
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1), (1, b.EPM, 3)], little=little))
    conv.send(False, b.bind_nak(1, 4, little=little))
    conv.send(True, b.request(2, 64, ctx=0, little=little))  # never answered
    return conv


@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_bind_nak_rejects_the_bind_and_its_calls(tmp_path: Path, little: bool) -> None:
    conv = nak_session(little=little)
    recs = run(tmp_path, b.pcap(conv.frames))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    # dissectors/faults.toml [bind_nak_reasons]: 4 = protocol_version_not_supported (C706 12.6.3.1)
    assert (bind.status, bind.nak_reason, bind.resp_frame) == (
        "rejected",
        "protocol_version_not_supported",
        5,
    )
    assert (bind.assoc_group, bind.sec_addr) == (None, None)
    assert [(c.ctx_id, c.interface, c.result, c.accepted_syntax) for c in bind.contexts] == [
        (0, "samr", "rejected", None),
        (1, "epm", "rejected", None),
    ]
    assert [(c.call_id, c.operation, c.status, c.req_frame) for c in calls(recs)] == [
        (2, "SamrConnect5", "rejected", 6)
    ]
    assert summary(recs).counters.get("bind_nak_without_bind") is None


@needs_tshark
def test_bind_nak_reason_agrees_with_tshark(tmp_path: Path) -> None:
    p = tmp_path / "nak.pcap"
    p.write_bytes(b.pcap(nak_session().frames))
    bind = next(r for r in analyze([p]) if isinstance(r, BindRecord))
    ref = tshark_fields(p, "dcerpc.pkt_type", "dcerpc.cn_reject_reason")
    assert ref[bind.resp_frame] == {"dcerpc.pkt_type": ["13"], "dcerpc.cn_reject_reason": ["4"]}  # type: ignore[index]
    assert bind.nak_reason == "protocol_version_not_supported"  # C706: reject reason 4


BTFN_OFFER = "6cb71c2c-9812-4540-0300-000000000000"  # both features (bitmask bytes 03 00 ...)


def ndr64_session(*, little: bool = True) -> b.Conv:
    """One bind offering samr with NDR, NDR64 and bind-time feature negotiation (as Windows does);
    the server refuses NDR, accepts NDR64 and answers the BTFN context with negotiate_ack 0x0002."""
    conv = b.Conv()
    conv.handshake()
    v1 = b.version(1)
    offer = [
        (0, b.SAMR, v1, [(b.NDR, b.version(2))]),
        (1, b.SAMR, v1, [(b.NDR64, b.version(1))]),
        (2, b.SAMR, v1, [(BTFN_OFFER, b.version(1))]),
    ]
    conv.send(True, b.bind_syntaxes(1, offer, little=little))
    answer = [(2, 2, b.NIL, 0), (0, 0, b.NDR64, b.version(1)), (3, 0x0002, b.NIL, 0)]
    conv.send(False, b.bind_ack_results(1, answer, little=little))
    conv.send(True, b.request(2, 64, ctx=1, little=little))
    conv.send(False, b.response(2, ctx=1, little=little))
    return conv


@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_ndr64_and_bind_time_feature_negotiation(tmp_path: Path, little: bool) -> None:
    recs = run(tmp_path, b.pcap(ndr64_session(little=little).frames))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    assert bind.status == "ok"
    got = [
        (c.ctx_id, c.if_version, c.transfer_syntaxes, c.result, c.reason, c.accepted_syntax, c.btfn)
        for c in bind.contexts
    ]
    assert got == [
        (0, "1.0", ["NDR"], "provider_rejection", "proposed_transfer_syntaxes_not_supported", None, None),
        (1, "1.0", ["NDR64"], "acceptance", "reason_not_specified", "NDR64", None),
        # negotiate_ack: the reason field holds the features the server supports (MS-RPCE 2.2.2.4)
        (2, "1.0", ["BTFN"], "negotiate_ack", None, None, ["keep_connection_on_orphan"]),
    ]
    [c] = calls(recs)
    assert (c.ctx_id, c.operation, c.status, c.ndr, c.if_version) == (1, "SamrConnect5", "ok", "NDR64", "1.0")


@needs_tshark
@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_ndr64_bind_ack_agrees_with_tshark(tmp_path: Path, little: bool) -> None:
    p = tmp_path / "ndr64.pcap"
    p.write_bytes(b.pcap(ndr64_session(little=little).frames))
    recs = list(analyze([p]))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    ref = tshark_fields(
        p,
        "dcerpc.cn_ctx_id",
        "dcerpc.cn_bind_trans_id",
        "dcerpc.cn_bind_trans_btfn.01",
        "dcerpc.cn_bind_trans_btfn.02",
        "dcerpc.cn_ack_result",
        "dcerpc.cn_ack_reason",
        "dcerpc.cn_ack_trans_id",
        "dcerpc.cn_ack_trans_ver",
    )
    req, ack = ref[bind.req_frame], ref[bind.resp_frame]  # type: ignore[index]
    assert [c.ctx_id for c in bind.contexts] == [int(x) for x in req["dcerpc.cn_ctx_id"]]
    # C706 p_cont_def_result_t, MS-RPCE 2.2.2.4 (3 = negotiate_ack)
    names = {"0": "acceptance", "1": "user_rejection", "2": "provider_rejection", "3": "negotiate_ack"}
    assert [c.result for c in bind.contexts] == [names[x] for x in ack["dcerpc.cn_ack_result"]]
    # tshark shows a reason only for refused contexts; C706 p_provider_reason_t 2
    reasons = {"2": "proposed_transfer_syntaxes_not_supported"}
    refused = [c.reason for c in bind.contexts if c.result in ("user_rejection", "provider_rejection")]
    assert refused == [reasons[x] for x in ack["dcerpc.cn_ack_reason"]]
    assert ack["dcerpc.cn_ack_trans_id"][1] == b.NDR64 and ack["dcerpc.cn_ack_trans_ver"][1] == "1"
    assert [c.accepted_syntax for c in bind.contexts] == [None, "NDR64", None]  # NDR64 is 71710533... v1.0
    # feature bits (MS-RPCE 3.3.1.5.3): tshark's .01 and .02 flags of the negotiate_ack
    features = (
        ("dcerpc.cn_bind_trans_btfn.01", "security_context_multiplexing"),
        ("dcerpc.cn_bind_trans_btfn.02", "keep_connection_on_orphan"),
    )
    assert [f for f, _ in features if req[f] != ["1"]] == []  # the capture offers both
    if little:
        # tshark reads the negotiate_ack bitmask as little-endian whatever the drep (it shows 0x0200
        # for a big-endian 0x0002); rpcinspect reads the u16 in the PDU's byte order, as C706 encodes
        # p_result_t, so the flags are compared on the little-endian capture only
        assert bind.contexts[2].btfn == [n for f, n in features if ack[f] == ["1"]]
    c = next(r for r in recs if isinstance(r, CallRecord))
    assert c.ndr == "NDR64"


@pytest.mark.parametrize(
    ("linktype", "wrap"),
    [
        (1, lambda ip, v6: b.ether(ip, v6=v6)),
        (1, lambda ip, v6: b.ether(ip, v6=v6, vlans=1)),
        (1, lambda ip, v6: b.ether(ip, v6=v6, vlans=2)),
        (
            113,
            lambda ip, v6: (
                b"\0\0\0\1\0\6" + b"\2" * 6 + b"\0\0" + struct.pack(">H", 0x86DD if v6 else 0x800) + ip
            ),
        ),
        (276, lambda ip, v6: struct.pack(">HH", 0x86DD if v6 else 0x800, 0) + b"\0" * 16 + ip),
        (101, lambda ip, v6: ip),
        (0, lambda ip, v6: struct.pack("<I", 30 if v6 else 2) + ip),
    ],
    ids=["ethernet", "vlan", "qinq", "sll", "sll2", "raw", "bsd-loopback"],
)
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_link_types_and_ip_versions(tmp_path: Path, linktype: int, wrap, v6: bool) -> None:  # type: ignore[no-untyped-def]
    conv = b.Conv(v6=v6)
    frames = samr_session(conv)
    # strip the Ethernet header the conversation builder added and re-wrap for the link type
    l3 = [f[14:] for f in frames]
    recs = run(tmp_path, b.pcap([wrap(ip, v6) for ip in l3], linktype=linktype))
    cs = calls(recs)
    assert [c.operation for c in cs] == ["SamrConnect5", "SamrRidToSid"]
    assert (":" in cs[0].src) == v6


def test_several_pdus_in_one_segment_and_one_pdu_over_many(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]) + b.request(2, 1))  # bind + request together
    conv.send(False, b.bind_ack(1, 1))
    conv.send(False, b.response(2))
    big = b.request(3, 13, b"A" * 3000)
    for i in range(0, len(big), 700):  # one PDU spread over 5 segments
        conv.send(True, big[i : i + 700])
    last_req_frame = len(conv.frames)
    conv.send(False, b.response(3))
    cs = calls(run(tmp_path, b.pcap(conv.frames)))
    assert [(c.opnum, c.req_frame) for c in cs] == [(1, 4), (13, last_req_frame)]
    assert cs[1].req_stub_len == 3000 and cs[1].req_frags == 1


def test_pfc_fragments_are_one_call(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    conv.send(True, b.request(2, 13, b"x" * 100, flags=1))  # first
    conv.send(True, b.request(2, 13, b"y" * 100, flags=0))  # middle
    conv.send(True, b.request(2, 13, b"z" * 40, flags=2))  # last
    done = len(conv.frames)
    conv.send(False, b.response(2, b"r" * 100, flags=1))
    conv.send(False, b.response(2, b"s" * 10, flags=2))
    cs = calls(run(tmp_path, b.pcap(conv.frames)))
    assert len(cs) == 1
    c = cs[0]
    assert (c.req_frame, c.req_frags, c.req_stub_len) == (done, 3, 240)
    assert (c.resp_frame, c.resp_frags, c.resp_stub_len) == (done + 2, 2, 110)


def test_object_uuid_fault_and_no_response(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    conv.send(True, b.request(2, 5, obj="11111111-2222-3333-4444-555555555555"))
    conv.send(False, b.fault(2, 0x1C010002))
    conv.send(True, b.request(3, 6))  # never answered
    cs = calls(run(tmp_path, b.pcap(conv.frames)))
    assert cs[0].object_uuid == "11111111-2222-3333-4444-555555555555"
    assert (cs[0].status, cs[0].fault) == ("fault", "nca_s_op_rng_error")
    assert (cs[1].status, cs[1].close_reason, cs[1].resp_frame) == ("no_response", "end_of_capture", None)


def test_per_context_acceptance_and_rejected_bind(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1), (1, b.EPM, 3)]))
    ack = b.bind_ack(1, 2)
    conv.send(False, ack)
    conv.send(True, b.request(2, 3, ctx=1))
    conv.send(False, b.response(2, ctx=1))
    conv.send(True, b.request(3, 64, ctx=0))
    conv.send(False, b.response(3, ctx=0))
    recs = run(tmp_path, b.pcap(conv.frames))
    assert [(c.ctx_id, c.interface, c.operation) for c in calls(recs)] == [
        (1, "epm", "ept_map"),
        (0, "samr", "SamrConnect5"),
    ]
    conv2 = b.Conv(sport=40001)
    conv2.handshake()
    conv2.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv2.send(False, b.bind_ack(1, 1, result=2))
    conv2.send(True, b.request(2, 64))
    conv2.send(False, b.fault(2, 0x1C010003))
    recs2 = run(tmp_path, b.pcap(conv2.frames), "r.pcap")
    bind = next(r for r in recs2 if isinstance(r, BindRecord))
    assert bind.status == "rejected" and bind.contexts[0].result == "provider_rejection"
    assert calls(recs2)[0].status == "rejected"


def test_out_of_order_retransmission_overlap(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    bind = b.bind(1, [(0, b.SAMR, 1)])
    f_bind = conv.send(True, bind)
    conv.send(False, b.bind_ack(1, 1))
    req = b.request(2, 13, b"Q" * 200)
    base = conv.cseq
    part1 = conv.frame(True, req[:100], seq=base)
    part2 = conv.frame(True, req[100:], seq=base + 100)
    overlap = conv.frame(True, req[50:150], seq=base + 50)
    conv.cseq += len(req)
    resp = conv.frame(False, b.response(2))
    frames = [*conv.frames, f_bind, part2, part1, overlap, part1, resp]  # retransmitted bind, reordering
    recs = run(tmp_path, b.pcap(frames))
    cs = calls(recs)
    assert [(c.opnum, c.req_stub_len, c.status) for c in cs] == [(13, 200, "ok")]
    assert cs[0].req_frame == len(conv.frames) + 3  # completed when the hole was filled
    s = summary(recs)
    assert s.counters["tcp_retransmission"] >= 2 and s.counters["tcp_out_of_order"] == 1


def test_gap_then_resync_keeps_later_calls(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    lost = b.request(2, 13, b"L" * 300)
    conv.cseq += len(lost)  # never captured
    conv.send(True, b.request(3, 64))
    conv.send(False, b.response(3))
    recs = run(tmp_path, b.pcap(conv.frames))
    cs = calls(recs)
    assert [(c.call_id, c.operation, c.status) for c in cs] == [(3, "SamrConnect5", "ok")]
    assert summary(recs).counters["tcp_gaps"] == 1


def test_midstream_start_and_dynamic_port(tmp_path: Path) -> None:
    conv = b.Conv(dport=51515)
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))  # no handshake: capture starts mid-connection
    conv.send(False, b.bind_ack(1, 1))
    conv.send(True, b.request(2, 64))
    conv.send(False, b.response(2))
    tail = b.Conv(dport=135, sport=40001)
    partial = b.request(7, 3, b"T" * 64)
    tail.send(True, partial[30:])  # starts inside a PDU on port 135
    tail.send(False, b.response(7))
    tail.send(True, b.request(8, 2))
    tail.send(False, b.response(8))
    recs = run(tmp_path, b.pcap(conv.frames + tail.frames))
    got = [(c.dport, c.call_id, c.opnum, c.interface) for c in calls(recs)]
    assert (51515, 2, 64, "samr") in got
    assert (135, 8, 2, None) in got  # bind never seen: opnum kept, interface unknown
    assert any(c.call_id == 7 and c.req_frame is None and c.status == "ok" for c in calls(recs))


def test_connection_reuse_starts_fresh_state(tmp_path: Path) -> None:
    conv = b.Conv()
    samr_session(conv, n=1)
    conv.send(True, b.request(9, 1))  # unanswered, then the 4-tuple is reused
    second = b.Conv()
    second.cseq, second.sseq = 90000, 95000
    second.handshake()
    second.send(True, b.request(9, 1))  # no bind on the new connection
    second.send(False, b.response(9))
    cs = calls(run(tmp_path, b.pcap(conv.frames + second.frames)))
    assert [(c.call_id, c.status, c.close_reason, c.interface) for c in cs if c.call_id == 9] == [
        (9, "no_response", "connection_reused", "samr"),
        (9, "ok", None, None),
    ]


def test_pcapng_and_gzip(tmp_path: Path) -> None:
    frames = samr_session(b.Conv())
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
    blocks = [shb, idb]
    for i, fr in enumerate(frames):
        pad = (-len(fr)) % 4
        ts = (1_700_000_000 + i) * 1_000_000
        blen = 32 + len(fr) + pad
        blocks.append(
            struct.pack("<IIIIIII", 6, blen, 0, ts >> 32, ts & 0xFFFFFFFF, len(fr), len(fr))
            + fr
            + b"\0" * pad
            + struct.pack("<I", blen)
        )
    ng = b"".join(blocks)
    cs = calls(run(tmp_path, ng, "t.pcapng"))
    assert [c.req_frame for c in cs] == [6, 8]
    assert cs[0].ts == pytest.approx(1_700_000_005)
    cs2 = calls(run(tmp_path, gzip.compress(b.pcap(frames)), "t.pcap.gz"))
    assert [c.req_frame for c in cs2] == [6, 8]


def test_big_endian_pcap_file_header(tmp_path: Path) -> None:
    cs = calls(run(tmp_path, b.pcap(samr_session(b.Conv()), big=True)))
    assert len(cs) == 2


def test_all_connection_oriented_pdu_types_are_accepted(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    hdr = bytearray(b.request(5, 1))
    for ptype in (16, 18, 19, 17):  # auth3, co_cancel, orphaned, shutdown: header-only bodies
        pdu = bytearray(16 + 4)
        pdu[:16] = hdr[:16]
        pdu[2] = ptype
        pdu[8:10] = struct.pack("<H", 20)
        conv.send(ptype != 17, bytes(pdu))
    conv.send(True, b.bind(2, [(1, b.EPM, 3)], ptype=14))  # alter_context
    ack = bytearray(b.bind_ack(2, 1))
    ack[2] = 15
    conv.send(False, bytes(ack))
    recs = run(tmp_path, b.pcap(conv.frames))
    s = summary(recs)
    for name in ("pdu_auth3", "pdu_co_cancel", "pdu_orphaned", "pdu_shutdown", "pdu_alter_context"):
        assert s.counters.get(name) == 1, name
    kinds = [r.pdu for r in recs if isinstance(r, BindRecord)]
    assert kinds == ["bind", "alter_context"]


def test_stub_tap_and_resolver_hooks(tmp_path: Path) -> None:
    """The extension points later stages use: stub bytes of chosen calls, interfaces for unbound calls."""
    from rpcinspect.catalog import load_catalog
    from rpcinspect.dcerpc.association import Association
    from rpcinspect.runtime import Run
    from rpcinspect.transports.cotcp import header

    out: list = []
    run = Run(load_catalog(), out.append)
    seen: list[tuple[int, bytes, bytes]] = []
    run.add_stub_tap(b.SAMR, frozenset({64}), lambda rec, q, r: seen.append((rec.opnum, q, r)))
    run.resolver = lambda transport, server, port, pipe: (b.EPM, "3.0", "epm") if port == 49999 else None
    ep = ("10.0.0.1", 40000, "10.0.0.2", 49154)
    assoc = Association(run, "ncacn_ip_tcp", ep)
    for dirn, raw in (
        (0, b.bind(1, [(0, b.SAMR, 1)])),
        (1, b.bind_ack(1, 1)),
        (0, b.request(2, 64, b"REQ-STUB")),
        (1, b.response(2, b"RESPONSE")),
        (0, b.request(3, 65, b"other")),
        (1, b.response(3, b"other")),
    ):
        assoc.pdu(dirn, raw, 0, header(raw, 0), 1, 1.0)
    assert seen == [(64, b"REQ-STUB", b"RESPONSE")]
    unbound = Association(run, "ncacn_ip_tcp", ("10.0.0.1", 40001, "10.0.0.2", 49999))
    for dirn, raw in ((0, b.request(5, 3)), (1, b.response(5))):
        unbound.pdu(dirn, raw, 0, header(raw, 0), 2, 2.0)
    call = [r for r in out if isinstance(r, CallRecord)][-1]
    assert (call.interface, call.operation, call.if_source) == ("epm", "ept_map", "epm")


def test_short_first_bytes_of_the_other_side_are_kept(tmp_path: Path) -> None:
    """The server's first segment is shorter than a header; the client's data then picks the
    transport: the server's held bytes must still reach it (in order, before what follows)."""
    conv = b.Conv(dport=50505)
    conv.handshake()
    ack = b.bind_ack(1, 1)
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)])[:10])  # client: 10 bytes, too short to judge
    conv.send(False, ack[:8])  # server answers in pieces too (odd, but legal)
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)])[10:])
    conv.send(False, ack[8:])
    conv.send(True, b.request(2, 64))
    conv.send(False, b.response(2))
    recs = run(tmp_path, b.pcap(conv.frames))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    assert bind.status == "ok" and bind.resp_frame is not None
    assert [(c.operation, c.status) for c in calls(recs)] == [("SamrConnect5", "ok")]
