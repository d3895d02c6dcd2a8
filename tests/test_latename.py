"""Late naming: calls that end before the endpoint-mapper answer naming their port are named by it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from builders import EPM, SAMR, Conv, bind, bind_ack, pcap, request, response, write
from conftest import CORPUS
from test_epm import make_tower, map_response
from tshark_ref import have_tshark, tshark_requests

from rpcinspect.engine import analyze
from rpcinspect.limits import DEFAULT_LIMITS
from rpcinspect.records import CallRecord, EndpointRecord, SummaryRecord

MAPI = CORPUS / "zeek+zeek/testing/btest/Traces/dce-rpc/mapi.pcap"


def unbound_then_epm(tmp: Path, *, gap: float = 1.0, ports: tuple[int, ...] = (49667,), **lim: float) -> list:
    """Calls on dynamic ports with no bind, then (``gap`` seconds later) an ept_map answer naming
    port 49667 as samr; frames carry their own times."""
    frames: list[tuple[float, bytes]] = []
    t = 1_700_000_000.0
    for i, port in enumerate(ports):
        dyn = Conv(sport=41000 + i, dport=port)
        for call_id, opnum in ((7, 1), (8, 6)):
            dyn.send(True, request(call_id, opnum))
            dyn.send(False, response(call_id))
        frames += [(t + i * 0.001, f) for f in dyn.frames]
    epm = Conv(sport=40000, dport=135)
    epm.handshake()
    epm.send(True, bind(1, [(0, EPM, 3)]))
    epm.send(False, bind_ack(1, 1))
    epm.send(True, request(2, 3, b"\0" * 40))
    epm.send(False, response(2, map_response([make_tower(SAMR, 49667)])))
    frames += [(t + gap, f) for f in epm.frames]
    write(tmp, pcap(frames))
    limits = dataclasses.replace(DEFAULT_LIMITS, **lim)  # type: ignore[arg-type]
    return list(analyze([tmp], prefilter=False, limits=limits))


def calls_on(recs: list, port: int) -> list[CallRecord]:
    return [r for r in recs if isinstance(r, CallRecord) and r.dport == port]


def test_calls_before_the_epm_answer_are_named_by_it(tmp_path: Path) -> None:
    recs = unbound_then_epm(tmp_path / "a.pcap", ports=(49667, 49999))
    named = calls_on(recs, 49667)
    assert [(c.interface, c.operation, c.if_source, c.opnum) for c in named] == [
        ("samr", "SamrCloseHandle", "epm", 1),
        ("samr", "SamrEnumerateDomainsInSamServer", "epm", 6),
    ]
    assert all(c.if_uuid == SAMR and c.if_version == "1.0" for c in named)
    # the other port is never named: written unchanged at the end of the file, opnums kept
    other = calls_on(recs, 49999)
    want = [(None, "unknown", 1), (None, "unknown", 6)]
    assert [(c.interface, c.if_source, c.opnum) for c in other] == want
    # named calls come out right after the endpoint record that named them
    kinds = [type(r).__name__ for r in recs]
    assert kinds.index("EndpointRecord") < recs.index(named[0])
    s = recs[-1]
    assert isinstance(s, SummaryRecord)
    assert s.counters["late_name_held"] == 4 and s.counters["late_named_calls"] == 2
    assert s.counters["calls"] == 5  # 4 unbound + the ept_map call, each once


def test_waiting_is_bounded_in_number_and_in_time(tmp_path: Path) -> None:
    # at most one call may wait: the endpoint that waited longest is written unnamed first
    recs = unbound_then_epm(tmp_path / "n.pcap", max_unnamed_calls=1)
    assert all(c.if_source == "unknown" for c in calls_on(recs, 49667)[:1])
    s = recs[-1]
    assert s.counters["late_name_evicted"] >= 1
    assert len(calls_on(recs, 49667)) == 2  # nothing lost
    # a call that waited longer than the limit (capture time) is written unnamed
    recs = unbound_then_epm(tmp_path / "t.pcap", gap=7200.0, max_unnamed_wait=3600.0)
    assert [c.if_source for c in calls_on(recs, 49667)] == ["unknown", "unknown"]
    assert recs[-1].counters["late_name_expired"] == 1
    assert any(isinstance(r, EndpointRecord) for r in recs)


def test_mapi_capture_calls_before_ept_map_are_named() -> None:
    """Zeek's mapi.pcap: most emsmdb calls precede the ept_map answer for their port (1032)."""
    if not MAPI.is_file():
        import pytest

        pytest.skip("corpus absent")
    recs = list(analyze([MAPI]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    late = [c for c in calls if c.if_source == "epm"]
    assert late and {(c.interface, c.dport) for c in late} == {("emsmdb", 1032)}
    ep = next(r for r in recs if isinstance(r, EndpointRecord) and r.port == 1032)
    assert ep.interface == "emsmdb"
    assert min(c.req_frame or 0 for c in late) < ep.frame  # named although they came first
    named = sum(c.interface is not None for c in calls)
    if have_tshark():
        theirs = tshark_requests(MAPI)
        tshark_named = sum(1 for r in theirs if r.if_uuid)
        print(f"mapi.pcap: tshark names {tshark_named} of {len(theirs)} requests, rpcinspect {named}")
        assert named >= tshark_named + 150
