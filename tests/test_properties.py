"""Property-based tests (hypothesis): random and mutated PDUs, random segmentation.

Properties: the decoder never raises on any bytes; a well-formed conversation, however it is cut
into TCP segments, yields exactly the calls that were made.
"""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import builders as b
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcinspect.capture.reader import CaptureReader
from rpcinspect.dcerpc import pdu
from rpcinspect.engine import analyze
from rpcinspect.records import CallRecord, SummaryRecord

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_TMP = Path(tempfile.mkdtemp(prefix="rpcinspect-hyp-"))


def _run(frames: list[bytes]) -> list:
    p = _TMP / "h.pcap"
    p.write_bytes(b.pcap(frames))
    recs = list(analyze([p]))
    assert isinstance(recs[-1], SummaryRecord)
    return recs


@SETTINGS
@given(st.binary(min_size=0, max_size=400), st.integers(0, 380))
def test_parse_functions_never_raise(data: bytes, off: int) -> None:
    buf = b"\x05\x00" + data
    flen = pdu.plausible(buf, off)
    if flen and off + flen <= len(buf):
        h = pdu.header(buf, off)
        pdu.auth_trailer(buf, off, h)
        pdu.request_fields(buf, off, h)
        pdu.response_ctx(buf, off, h)
        pdu.fault_status(buf, off, h)
        pdu.bind_body(buf, off, h)
        pdu.bind_ack_body(buf, off, h)


_PDUS = [
    b.bind(1, [(0, b.SAMR, 1), (1, b.EPM, 3)]),
    b.bind_ack(1, 2),
    b.request(2, 64, b"\x01" * 30),
    b.response(2, b"\x02" * 30),
    b.fault(3, 0x1C010002),
    b.request(4, 13, b"\x03" * 100, flags=1),
]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(range(len(_PDUS))), st.integers(0, 200), st.integers(0, 255), st.booleans()
        ),
        min_size=1,
        max_size=30,
    )
)
def test_mutated_pdus_never_raise(mutations: list[tuple[int, int, int, bool]]) -> None:
    conv = b.Conv()
    conv.handshake()
    for idx, pos, val, cut in mutations:
        raw = bytearray(_PDUS[idx])
        raw[pos % len(raw)] = val
        if cut:
            raw = raw[: max(1, pos % len(raw))]
        conv.send(idx % 2 == 0, bytes(raw))
    recs = _run(conv.frames)
    assert all(isinstance(r, CallRecord) or r.record in ("bind", "anomaly", "summary") for r in recs)


@SETTINGS
@given(st.binary(min_size=0, max_size=3000))
def test_reader_never_raises_after_a_valid_header(tail: bytes) -> None:
    data = b.pcap([]) + tail
    reader = CaptureReader(io.BytesIO(data), "x")
    n = sum(1 for _ in reader)
    assert n == reader.frames


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 70), st.integers(0, 600), st.integers(0, 300)), min_size=1, max_size=12
    ),
    st.lists(st.integers(1, 700), min_size=1, max_size=20),
    st.booleans(),
)
def test_any_segmentation_yields_the_calls_made(
    calls: list[tuple[int, int, int]], cuts: list[int], little: bool
) -> None:
    """Requests and responses glued into one byte stream per direction, cut at random points."""
    conv = b.Conv(dport=49999)
    conv.handshake()
    client = bytearray(b.bind(1, [(0, b.SAMR, 1)], little=little))
    server = bytearray(b.bind_ack(1, 1, little=little))
    for i, (opnum, qlen, rlen) in enumerate(calls):
        client += b.request(10 + i, opnum, b"q" * qlen, little=little)
        server += b.response(10 + i, b"r" * rlen, little=little)

    def segments(stream: bytes) -> list[bytes]:
        out, pos, k = [], 0, 0
        while pos < len(stream):
            n = cuts[k % len(cuts)]
            out.append(stream[pos : pos + n])
            pos += n
            k += 1
        return out

    for seg in segments(bytes(client)):
        conv.send(True, seg)
    for seg in segments(bytes(server)):
        conv.send(False, seg)
    got = [r for r in _run(conv.frames) if isinstance(r, CallRecord)]
    assert [(c.call_id, c.opnum, c.req_stub_len, c.resp_stub_len, c.status) for c in got] == [
        (10 + i, op, q, r, "ok") for i, (op, q, r) in enumerate(calls)
    ]
    assert all(c.interface == "samr" for c in got)


def test_header_endianness_from_drep() -> None:
    le = b.request(0x01020304, 7)
    be = b.request(0x01020304, 7, little=False)
    for raw, little in ((le, True), (be, False)):
        h = pdu.header(raw, 0)
        assert (h.little, h.call_id, h.frag_len) == (little, 0x01020304, len(raw))
        assert pdu.request_fields(raw, 0, h)[1] == 7  # type: ignore[index]
    assert struct.unpack("<H", le[8:10])[0] == len(le)
