"""The optional C fast path (``rpcinspect/flows/_fastpath.c``) must not change a single record.

Every capture of ``captures/`` and of the public corpus (when present), and hand-built captures
aimed at the fast path's conditions (in-order segments of whole PDUs), is analyzed twice: with the
extension, and with ``engine._fastpath`` set to None (the pure-Python loop over the same
prefiltered packets). The record lists must be equal, in order, field by field; only the
summary's ``duration`` (wall-clock time) may differ. A counter on ``TcpTable.segment`` checks that
the fast path really handled segments, so the comparison is not vacuous.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import builders as b
import pytest
from conftest import capture_id, corpus_captures, lab_captures

from rpcinspect import engine
from rpcinspect.capture import fastscan
from rpcinspect.flows.tcp import TcpTable
from rpcinspect.records import CallRecord, SummaryRecord

pytestmark = pytest.mark.skipif(
    engine._fastpath is None or not fastscan.available(),
    reason="C extensions (_fastpath, libpcap scanner) not built",
)

ALL = lab_captures() + corpus_captures()


def _as_dict(rec: Any) -> dict[str, Any]:
    d = dataclasses.asdict(rec)
    if isinstance(rec, SummaryRecord):
        d.pop("duration")  # wall-clock time of the run
    return d


def both_paths(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Records with and without the C fast path, and how many TCP segments it took off Python."""
    seen = [0]
    original = TcpTable.segment

    def counting(self: TcpTable, seg: Any, frame: int, ts: float) -> None:
        seen[0] += 1
        original(self, seg, frame, ts)

    with monkeypatch.context() as m:
        m.setattr(TcpTable, "segment", counting)
        fast = [_as_dict(r) for r in engine.analyze([path])]
        in_python_fast = seen[0]
        seen[0] = 0
        m.setattr(engine, "_fastpath", None)
        pure = [_as_dict(r) for r in engine.analyze([path])]
        in_python_pure = seen[0]
    return fast, pure, in_python_pure - in_python_fast


def assert_same(fast: list[dict[str, Any]], pure: list[dict[str, Any]]) -> None:
    assert len(fast) == len(pure), (len(fast), len(pure))
    for i, (a, c) in enumerate(zip(fast, pure, strict=True)):
        if a != c:
            diff = {k: (a.get(k), c.get(k)) for k in a.keys() | c.keys() if a.get(k) != c.get(k)}
            raise AssertionError(f"record {i} ({a.get('record')}) differs, (fast, pure): {diff}")


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_fast_path_gives_the_same_records(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure, _ = both_paths(path, monkeypatch)
    assert_same(fast, pure)


def test_fast_path_is_exercised_by_the_captures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above means something only if the C code handled segments of these captures."""
    taken = 0
    for path in lab_captures():
        taken += both_paths(path, monkeypatch)[2]
    assert taken > 100


# -- hand-built captures aimed at the fast path's conditions ---------------------------------------------
def _session(conv: b.Conv, *, little: bool = True, call: int = 2, n: int = 3) -> None:
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)], little=little))
    conv.send(False, b.bind_ack(1, 1, little=little))
    for i in range(n):
        conv.send(True, b.request(call + i, 64 + i % 3, little=little))
        conv.send(False, b.response(call + i, little=little))


def retransmitted_whole_pdu() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    _session(conv, n=1)
    req = b.request(10, 65)
    first = conv.send(True, req)
    conv.frames.append(first)  # the same whole-PDU segment again, right away
    conv.send(False, b.response(10))
    conv.frames.append(first)  # and once more after its answer
    conv.send(True, b.request(11, 66))
    conv.send(False, b.response(11))
    return conv.frames


def out_of_order_whole_pdus() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    _session(conv, n=1)
    a = conv.frame(True, b.request(10, 65))
    c = conv.frame(True, b.request(11, 66))
    d = conv.frame(True, b.request(12, 64))
    conv.frames += [d, c, a]  # three whole PDUs, last first
    for cid in (10, 11, 12):
        conv.send(False, b.response(cid))
    # the server's answers out of order too, with the client acking in between
    r1, r2 = conv.frame(False, b.response(13)), conv.frame(False, b.response(14))
    conv.send(True, b.request(13, 65) + b.request(14, 65))
    conv.frames += [r2]
    # ACK set while the server's direction holds a hole, acknowledging the bytes not seen yet:
    # the hole is given up (tcp_acked_unseen) and the late segment counts as a retransmission
    conv.send(True, b.request(15, 64))
    conv.frames += [r1]
    conv.send(False, b.response(15))
    return conv.frames


def split_then_whole() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    _session(conv, n=1)
    big = b.request(10, 65, b"S" * 300)
    conv.send(True, big[:50])
    conv.send(True, big[50:])  # completes the PDU: the framer held 50 bytes
    conv.send(True, b.request(11, 66))  # then whole PDUs again
    tail = b.request(12, 64, b"T" * 100)
    conv.send(True, tail[:30])
    conv.send(True, tail[30:] + b.request(13, 64))  # the end of one PDU and a whole one
    conv.send(True, b.request(14, 64)[:10])  # shorter than a header
    conv.send(True, b.request(14, 64)[10:] + b.request(15, 64)[:20])
    conv.send(True, b.request(15, 64)[20:])
    for cid in range(10, 16):
        conv.send(False, b.response(cid))
    return conv.frames


def several_pdus_per_segment() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]) + b.request(2, 64) + b.request(3, 65))
    conv.send(False, b.bind_ack(1, 1) + b.response(2) + b.response(3))
    conv.send(True, b"".join(b.request(10 + i, 64) for i in range(64)))  # exactly the C bound
    conv.send(False, b"".join(b.response(10 + i) for i in range(64)))
    conv.send(True, b"".join(b.request(100 + i, 65) for i in range(70)))  # over it
    conv.send(False, b"".join(b.response(100 + i) for i in range(70)))
    frags = [b.request(200, 13, b"x" * 40, flags=1), b.request(200, 13, b"y" * 40, flags=0)]
    conv.send(True, b"".join(frags) + b.request(200, 13, b"z" * 8, flags=2))  # PFC fragments together
    conv.send(False, b.response(200))
    return conv.frames


def big_endian() -> list[bytes]:
    conv = b.Conv(dport=49200)
    conv.handshake()
    _session(conv, little=False, n=4)
    conv.send(True, b.request(20, 65, little=False) + b.request(21, 66, little=False))
    conv.send(False, b.response(20, little=False) + b.fault(21, 0x1C010002, little=False))
    return conv.frames


def reused_with_syn() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    _session(conv, n=2)
    conv.send(True, b.request(9, 1))  # unanswered, then the 4-tuple is reused
    again = b.Conv()
    again.cseq, again.sseq = 90000, 95000
    again.handshake()
    _session(again, n=2, call=30)
    third = b.Conv()  # a SYN after data, without a handshake answer, then whole PDUs
    third.cseq, third.sseq = 190000, 195000
    third.frames.append(third.frame(True, b"", 0x02))
    _session(third, n=1, call=40)
    return conv.frames + again.frames + third.frames


class _WrapConv(b.Conv):
    """A conversation whose sequence numbers wrap (the builder masks seq, not ack)."""

    def frame(self, client: bool, payload: bytes, flags: int = 0x18, seq: int | None = None) -> bytes:
        self.cseq &= 0xFFFFFFFF
        self.sseq &= 0xFFFFFFFF
        return super().frame(client, payload, flags, seq)


def sequence_wrap_and_flags() -> list[bytes]:
    conv = _WrapConv(dport=51515)
    conv.cseq, conv.sseq = 0xFFFFFF80, 0xFFFFFFF0  # the stream crosses 2**32
    conv.handshake()
    _session(conv, n=4)
    conv.frames.append(conv.frame(True, b.request(20, 64), flags=0x08))  # no ACK flag
    conv.frames.append(conv.frame(False, b.response(20), flags=0x19))  # data with FIN
    conv.frames.append(conv.frame(True, b.request(21, 64), flags=0x19))  # data with FIN
    return conv.frames


def midstream_gaps_and_idle() -> list[tuple[float, bytes]]:
    t0 = 1_700_000_000.0
    conv = b.Conv(dport=51000)  # no handshake: the capture starts mid-connection
    _session(conv, n=2)
    lost = b.request(10, 65, b"L" * 200)
    conv.cseq += len(lost)  # never captured: a gap
    conv.send(True, b.request(11, 64))
    conv.send(False, b.response(11))
    frames = [(t0 + i * 0.01, f) for i, f in enumerate(conv.frames)]
    late = b.Conv(dport=51000)
    late.cseq, late.sseq = conv.cseq, conv.sseq
    late.send(True, b.request(12, 64))  # 61 s later: the table's sweep runs in Python
    late.send(False, b.response(12))
    late.send(True, b.request(13, 64))  # 1000 s later: idle timeout closed the connection
    late.send(False, b.response(13))
    late.send(True, b.request(14, 64))
    times = [t0 + 61, t0 + 61.01, t0 + 1100, t0 + 1100.01, t0 + 1100.02]
    return frames + list(zip(times, late.frames, strict=True))


def damaged_pdus() -> list[bytes]:
    conv = b.Conv()
    conv.handshake()
    _session(conv, n=1)
    bad = bytearray(b.request(9, 1, b"B" * 40))
    bad[8:10] = (0).to_bytes(2, "little")  # frag length 0
    conv.send(True, b.request(10, 64) + bytes(bad))  # a whole PDU, then an implausible one
    conv.send(True, b.request(11, 65))
    conv.send(False, b.response(10) + b.response(11))
    rng = random.Random(7)
    conv.send(True, b"\x05\x00\x00\x03" + rng.randbytes(60))  # looks like a header, is not
    conv.send(True, b.request(12, 64))
    conv.send(False, b.response(12))
    return conv.frames


def interleaved_connections() -> list[bytes]:
    convs = [b.Conv(sport=41000 + i, dport=135 if i % 2 else 49155) for i in range(4)]
    for c in convs:
        c.handshake()
    out: list[bytes] = [f for c in convs for f in c.frames]
    for c in convs:
        c.frames = []
    for step in range(5):
        for i, c in enumerate(convs):
            if step == 0:
                c.send(True, b.bind(1, [(0, b.SAMR, 1), (1, b.EPM, 3)]))
                c.send(False, b.bind_ack(1, 2))
            else:
                c.send(True, b.request(step + 1, 64 + step % 2, ctx=(i + step) % 2))
                c.send(False, b.response(step + 1, ctx=(i + step) % 2))
            out += c.frames
            c.frames = []
    return out


BUILT: dict[str, Callable[[], list[Any]]] = {
    "retransmitted-whole-pdu": retransmitted_whole_pdu,
    "out-of-order-whole-pdus": out_of_order_whole_pdus,
    "split-then-whole": split_then_whole,
    "several-pdus-per-segment": several_pdus_per_segment,
    "big-endian": big_endian,
    "reused-with-syn": reused_with_syn,
    "sequence-wrap-and-flags": sequence_wrap_and_flags,
    "midstream-gaps-and-idle": midstream_gaps_and_idle,
    "damaged-pdus": damaged_pdus,
    "interleaved-connections": interleaved_connections,
}


@pytest.mark.parametrize("name", list(BUILT))
def test_fast_path_on_built_captures(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = b.write(tmp_path / f"{name}.pcap", b.pcap(BUILT[name]()))
    fast, pure, taken = both_paths(path, monkeypatch)
    assert_same(fast, pure)
    assert taken > 0, "the fast path handled no segment: the capture does not test it"
    assert any(r["record"] == "call" for r in pure)


def test_built_captures_decode_as_intended(tmp_path: Path) -> None:
    """A few outcomes fixed by the protocol, so the comparisons above compare meaningful output."""
    recs = list(engine.analyze([b.write(tmp_path / "r.pcap", b.pcap(retransmitted_whole_pdu()))]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(c.call_id, c.status) for c in calls] == [(2, "ok"), (10, "ok"), (11, "ok")]
    recs = list(engine.analyze([b.write(tmp_path / "o.pcap", b.pcap(out_of_order_whole_pdus()))]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert [(c.call_id, c.status) for c in calls if c.status != "ok"] == [(13, "no_response")]
    assert sorted(c.call_id for c in calls if c.status == "ok") == [2, 10, 11, 12, 14, 15]
    assert recs[-1].counters["tcp_acked_unseen"] == 1  # type: ignore[union-attr]
    recs = list(engine.analyze([b.write(tmp_path / "s.pcap", b.pcap(several_pdus_per_segment()))]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert len(calls) == 2 + 64 + 70 + 1 and all(c.status == "ok" for c in calls)
    assert calls[-1].req_frags == 3


def test_feed_leaves_udp_datagrams_to_python() -> None:
    """A UDP datagram's decoded tuple has a TCP segment's shape (seq 0, flags 0). One that carries
    whole connection-oriented PDUs on the 4-tuple of a live TCP connection whose next sequence
    number is 0 must still go to the UDP table, not into the TCP stream (it did before the C code
    checked the protocol: it added a bogus call and made the next real segment a retransmission)."""
    import struct

    from rpcinspect.capture.link import decode
    from rpcinspect.catalog import load_catalog
    from rpcinspect.dcerpc.attach import TcpSelector
    from rpcinspect.dcerpc.classoc import ClCalls
    from rpcinspect.runtime import Run
    from rpcinspect.transports.cotcp import CoFramer, Header
    from rpcinspect.transports.udp import UdpTable

    bind = b.bind(1, [(0, b.SAMR, 1)])
    conv = _WrapConv()
    conv.cseq = (-1 - len(bind)) & 0xFFFFFFFF  # after the SYN and the bind, the client's next seq is 0
    conv.handshake()
    conv.send(True, bind)
    conv.send(False, b.bind_ack(1, 1))
    stub = b.request(7, 64)
    dgram = struct.pack(">HHHH", conv.sport, conv.dport, 8 + len(stub), 0) + stub
    conv.frames.append(b.ether(b.ipv4(b.CLIENT, b.SERVER, dgram, proto=17)))
    conv.send(True, b.request(8, 65))
    conv.send(False, b.response(8))
    batch = [(i + 1, (1_700_000_000 + i) * 1_000_000_000, decode(1, f)) for i, f in enumerate(conv.frames)]
    assert batch[5][2][0] == 17 and batch[5][2][1:5] == batch[3][2][1:5]  # same 4-tuple as the TCP bind

    def run(fast: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
        recs: list[Any] = []
        r = Run(load_catalog(), recs.append)
        table, udp = TcpTable(r, TcpSelector(r)), UdpTable(r, ClCalls(r))
        if fast:
            engine._fastpath.feed(table, batch, CoFramer, Header, table.segment, udp.datagram, print)
        else:  # what the engine's pure loop does with decoded packets
            for frame, ts_ns, seg in batch:
                (table.segment if seg[0] == 6 else udp.datagram)(seg, frame, ts_ns / 1_000_000_000)
        table.close_all("end_of_capture", len(batch), 0.0)
        udp.close_all("end_of_capture")
        return [dataclasses.asdict(x) for x in recs], dict(r.counters)

    fast, pure = run(True), run(False)
    assert [(c["record"], c["call_id"]) for c in pure[0]] == [("bind", 1), ("call", 8)]
    assert fast == pure
