"""Connectionless DCE/RPC over UDP (ncadg_ip_udp): header, pairing, fragments, control PDUs, bounds."""

from __future__ import annotations

import dataclasses
import struct
import uuid
from pathlib import Path

import pytest
from builders import CLIENT, EPM, SAMR, SERVER, ether, ipv4, pcap, write
from conftest import CORPUS
from scapy.layers.dcerpc import DceRpc4

from rpcinspect.capture import fastscan
from rpcinspect.engine import analyze
from rpcinspect.limits import Limits
from rpcinspect.records import AnomalyRecord, CallRecord, SummaryRecord
from rpcinspect.transports.cl import cl_header, looks_cl

ACT = "11111111-2222-3333-4444-555555555555"
NDPI = CORPUS / "ntop+nDPI/tests/cfgs/default/pcap/dcerpc.pcap"


def cl(ptype: int, seq: int = 1, opnum: int = 1, body: bytes = b"\0" * 8, *, frag: int = 0, flags1: int = 0,
       little: bool = True, act: str = ACT, if_id: str = SAMR, serial: int = 0) -> bytes:  # fmt: skip
    """A connectionless PDU built by Scapy (an independent encoder)."""
    return bytes(
        DceRpc4(
            ptype=ptype, flags1=flags1, if_id=uuid.UUID(if_id), act_id=uuid.UUID(act), seqnum=seq,
            opnum=opnum, fragnum=frag, serial_lo=serial, endian="little" if little else "big",
        )
        / body
    )  # fmt: skip


def udp(payload: bytes, *, client: bool = True, cport: int = 40000, sport: int = 135) -> bytes:
    src, dst = (CLIENT, SERVER) if client else (SERVER, CLIENT)
    sp, dp = (cport, sport) if client else (sport, cport)
    return ether(ipv4(src, dst, struct.pack(">HHHH", sp, dp, 8 + len(payload), 0) + payload, proto=17))


Result = tuple[list[CallRecord], list[AnomalyRecord], dict]  # type: ignore[type-arg]


def run(tmp_path: Path, frames: list[bytes], **kw: object) -> Result:
    path = write(tmp_path / "cl.pcap", pcap(frames))
    recs = list(analyze([path], prefilter=False, **kw))  # type: ignore[arg-type]
    calls = [r for r in recs if isinstance(r, CallRecord)]
    anomalies = [r for r in recs if isinstance(r, AnomalyRecord)]
    summary = recs[-1]
    assert isinstance(summary, SummaryRecord)
    return calls, anomalies, summary.counters


def test_header_fields_both_byte_orders() -> None:
    for little in (True, False):
        h = cl_header(cl(0, seq=7, opnum=5, little=little, frag=3, flags1=0x04))
        assert h is not None
        assert (h.if_uuid, h.activity, h.seqnum, h.opnum, h.fragnum, h.little) == (SAMR, ACT, 7, 5, 3, little)
        assert (h.if_major, h.if_minor, h.body_len) == (1, 0, 8)
    assert not looks_cl(b"\x04\x00" + b"\0" * 70)  # shorter than the 80-byte header
    assert not looks_cl(b"\x04\x0b" + b"\0" * 90)  # ptype above cancel_ack
    assert cl_header(b"\x04\x00\x00\x00\x22" + b"\0" * 90) is None  # undefined integer format


def test_request_response_paired_by_activity_and_seqnum(tmp_path: Path) -> None:
    frames = [
        udp(cl(0, seq=1, opnum=1)),
        udp(cl(0, seq=2, opnum=5)),
        udp(cl(2, seq=2, opnum=5), client=False, sport=1030),  # answered from another port
        udp(cl(2, seq=1, opnum=1), client=False),
    ]
    calls, _, counters = run(tmp_path, frames)
    assert [(c.call_id, c.req_frame, c.resp_frame, c.opnum) for c in calls] == [(2, 2, 3, 5), (1, 1, 4, 1)]
    c = calls[0]
    assert (c.transport, c.if_source, c.activity_uuid, c.if_uuid, c.interface) == (
        "ncadg_ip_udp",
        "header",
        ACT,
        SAMR,
        "samr",
    )
    assert c.operation is not None and c.status == "ok" and c.ctx_id is None
    assert (c.src, c.sport, c.dst, c.dport) == ("10.0.0.1", 40000, "10.0.0.2", 135)
    assert counters["pdu_cl_request"] == 2 and counters["pdu_cl_response"] == 2


def test_fragments_out_of_order_reassemble(tmp_path: Path) -> None:
    frags = [
        cl(0, seq=9, frag=i, flags1=0x04 | (0x02 if i == 2 else 0), body=bytes([i]) * 10) for i in range(3)
    ]
    frames = [udp(frags[2]), udp(frags[0]), udp(frags[0]), udp(frags[1]), udp(cl(2, seq=9), client=False)]
    calls, anomalies, counters = run(tmp_path, frames)
    assert len(calls) == 1
    c = calls[0]
    assert (c.req_frame, c.resp_frame, c.req_frags, c.req_stub_len, c.status) == (4, 5, 3, 30, "ok")
    assert counters["cl_retransmission"] == 1
    assert not anomalies


def test_never_completed_fragments_expire_with_an_anomaly(tmp_path: Path) -> None:
    frames = [udp(cl(0, seq=3, frag=0, flags1=0x04)), udp(cl(0, seq=3, frag=2, flags1=0x06))]
    calls, anomalies, counters = run(tmp_path, frames)
    assert [(c.status, c.req_frame, c.close_reason, c.req_frags) for c in calls] == [
        ("no_response", None, "end_of_capture", 2)
    ]
    assert counters["cl_fragments_incomplete"] == 1
    assert "2 of 3 fragments" in anomalies[0].detail


def test_reject_fault_and_control_pdus(tmp_path: Path) -> None:
    frames = [
        udp(cl(0, seq=1)),
        udp(cl(1, seq=1, body=b"")),  # ping
        udp(cl(4, seq=1, body=b""), client=False),  # working
        udp(cl(6, seq=1, body=struct.pack("<I", 0x1C010003)), client=False),  # reject nca_s_unk_if
        udp(cl(0, seq=2)),
        udp(cl(3, seq=2, body=struct.pack("<I", 0x1C010002)), client=False),  # fault nca_s_op_rng_error
        udp(cl(7, seq=2, body=b"")),  # ack
        udp(cl(5, seq=3, body=b""), client=False),  # nocall
        udp(cl(9, seq=3, body=b"\0" * 12)),  # fack
        udp(cl(8, seq=3, body=b"\0" * 8)),  # cl_cancel
        udp(cl(10, seq=3, body=b"\0" * 8), client=False),  # cancel_ack
    ]
    calls, _, counters = run(tmp_path, [f + b"\0" * 80 if len(f) < 100 else f for f in frames])
    assert [(c.call_id, c.status, c.fault) for c in calls] == [
        (1, "rejected", "nca_s_unk_if"), (2, "fault", "nca_s_op_rng_error")
    ]  # fmt: skip
    for name in ("ping", "working", "nocall", "reject", "fault", "ack", "fack", "cl_cancel", "cancel_ack"):
        assert counters[f"pdu_cl_{name}"] == 1, name


def test_calls_in_flight_are_bounded(tmp_path: Path) -> None:
    frames = [udp(cl(0, seq=i, act=str(uuid.UUID(int=i + 1)))) for i in range(40)]
    calls, _, counters = run(tmp_path, frames, limits=Limits(max_calls=1))
    assert len(calls) == 40
    assert counters["call_evicted"] == 40 - 16
    assert sum(c.close_reason == "evicted" for c in calls) == 24


def test_truncated_body_is_counted(tmp_path: Path) -> None:
    pdu = bytearray(cl(0, seq=1, body=b"\0" * 16))
    struct.pack_into("<H", pdu, 74, 5000)  # len says 5000 body bytes
    calls, anomalies, _ = run(tmp_path, [udp(bytes(pdu))])
    assert len(calls) == 1 and anomalies[0].kind == "truncated_pdu"


def test_epm_over_udp_is_named(tmp_path: Path) -> None:
    frames = [udp(cl(0, if_id=EPM, opnum=3)), udp(cl(2, if_id=EPM, opnum=3), client=False)]
    calls, _, _ = run(tmp_path, frames)
    assert (calls[0].interface, calls[0].operation) == ("epm", "ept_map")


@pytest.mark.skipif(not NDPI.is_file(), reason="public corpus not found")
def test_profinet_capture_from_the_corpus() -> None:
    recs = list(analyze([NDPI]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(c.req_frame, c.resp_frame, c.interface, c.operation) for c in calls] == [
        (1, 3, "pnio_device", "Connect"), (5, 7, "pnio_device", "Write"), (9, 11, "pnio_device", "Control"),
        (13, 15, "pnio_controller", "Control"),
    ]  # fmt: skip
    assert recs[-1].counters["cl_retransmission"] == 4  # type: ignore[union-attr]


@pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")
def test_prefilter_passes_the_same_datagrams(tmp_path: Path) -> None:
    noise = ether(ipv4(CLIENT, SERVER, struct.pack(">HHHH", 5353, 135, 20, 0) + b"\x04" * 12, proto=17))
    frags = [cl(0, seq=4, frag=i, flags1=0x04 | (0x02 if i else 0)) for i in range(2)]
    frames = [noise, udp(frags[1]), udp(cl(0, seq=5)), noise, udp(frags[0]), udp(cl(2, seq=4), client=False)]
    path = write(tmp_path / "pf.pcap", pcap(frames))

    def recs(pf: bool) -> list[dict]:  # type: ignore[type-arg]
        return [dataclasses.asdict(r) for r in analyze([path], prefilter=pf) if isinstance(r, CallRecord)]

    assert recs(True) == recs(False) and len(recs(False)) == 2


def test_mutated_datagrams_never_raise_and_state_stays_bounded(tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    base = [cl(0, seq=1, frag=0, flags1=0x04), cl(2, seq=1), cl(3, seq=2, body=b"\1\0\0\x1c"), cl(6, seq=3)]
    frames = []
    for i in range(600):
        pdu = bytearray(rng.choice(base))
        for _ in range(rng.randint(0, 6)):
            pdu[rng.randrange(len(pdu))] = rng.randrange(256)
        pdu[0], pdu[1] = 4, pdu[1] % 11  # keep it looking connectionless
        frames.append(udp(bytes(pdu[: rng.randint(80, len(pdu))]), client=bool(i & 1)))
    path = write(tmp_path / "fuzz.pcap", pcap(frames))
    from rpcinspect import engine as udpmod  # the engine gives each input's UDP table its call table
    from rpcinspect.dcerpc.classoc import ClCalls

    seen: list[ClCalls] = []
    orig = udpmod.ClCalls

    class Spy(orig):  # type: ignore[misc,valid-type]
        def __init__(self, run: object) -> None:
            super().__init__(run)  # type: ignore[arg-type]
            seen.append(self)

    udpmod.ClCalls = Spy  # type: ignore[misc]
    try:
        recs = list(analyze([path], prefilter=False))
    finally:
        udpmod.ClCalls = orig  # type: ignore[misc]
    assert isinstance(recs[-1], SummaryRecord) and recs[-1].counters["pdu_cl_request"] > 0
    assert seen and not seen[0].calls and seen[0].fragments == 0
