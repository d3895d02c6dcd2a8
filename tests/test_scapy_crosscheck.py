"""Scapy's DCE/RPC layers are the decoder of record for PDU bodies: our struct parsers must agree.

The hot path parses headers, binds and bind_acks with ``struct`` (Scapy dissects a few thousand
PDUs a second); this test takes every connection-oriented PDU of the project's captures and of the
public corpus, decodes it with both, and compares the fields rpcinspect reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import capture_id, corpus_captures, lab_captures
from scapy.layers.dcerpc import DceRpc5

from rpcinspect.capture.link import decode
from rpcinspect.capture.reader import open_capture
from rpcinspect.dcerpc import pdu
from rpcinspect.transports.cotcp import find_header, header, plausible

ALL = lab_captures() + corpus_captures()


def pdus(path: Path, limit: int = 400) -> list[bytes]:
    """Whole PDUs that start a TCP payload (enough for a cross-check, no reassembly needed)."""
    out: list[bytes] = []
    with open_capture(path) as r:
        for _f, _ts, lt, data in r:
            seg = decode(lt, data)
            if seg is None or seg[0] != 6 or seg[3] in (139, 445) or seg[4] in (139, 445):
                continue
            payload = seg[8]
            off = 0
            while (flen := plausible(payload, off)) and off + flen <= len(payload):
                out.append(payload[off : off + flen])
                off += flen
            if len(out) >= limit:
                break
    return out


def _uuid(u: object) -> str:
    return str(u).lower()


def _version(v: int, little: bool) -> str:
    """Scapy reads if_version as one 32-bit field in the PDU's byte order; C706 puts the major
    version in its low 16 bits and the minor in the high ones, whatever the byte order (tshark's
    dcerpc.cn_bind_if_ver reads it so too, see tests/test_pipeline.py)."""
    del little  # the field is already an integer in the PDU's byte order
    return f"{v & 0xFFFF}.{v >> 16}"


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_struct_parsers_agree_with_scapy(path: Path) -> None:
    checked = 0
    for raw in pdus(path):
        h = header(raw, 0)
        sc = DceRpc5(raw)
        assert (sc.ptype, sc.call_id, sc.frag_len, sc.auth_len) == (
            h.ptype,
            h.call_id,
            h.frag_len,
            h.auth_len,
        )
        if h.ptype in (11, 14) and (body := pdu.bind_body(raw, 0, h)) is not None and not body.truncated:
            elems = sc.payload.context_elem
            assert [c.ctx_id for c in body.contexts] == [e.cont_id for e in elems]
            assert [c.if_uuid for c in body.contexts] == [_uuid(e.abstract_syntax.if_uuid) for e in elems]
            assert [c.if_version for c in body.contexts] == [
                _version(e.abstract_syntax.if_version, h.little) for e in elems
            ]
            assert [[t[0] for t in c.transfer] for c in body.contexts] == [
                [_uuid(t.if_uuid) for t in e.transfer_syntaxes] for e in elems
            ]
            checked += 1
        elif h.ptype in (12, 15) and (ack := pdu.bind_ack_body(raw, 0, h)) is not None and not ack.truncated:
            res = sc.payload.results
            assert [r.result for r in ack.results] == [r.result for r in res]
            assert [r.transfer[0] for r in ack.results] == [_uuid(r.transfer_syntax.if_uuid) for r in res]
            assert ack.assoc_group == sc.payload.assoc_group_id
            checked += 1
        elif h.ptype == 0 and (f := pdu.request_fields(raw, 0, h)) is not None:
            assert (f[0], f[1]) == (sc.payload.cont_id, sc.payload.opnum)
            checked += 1
        elif h.ptype == 3 and (flt := pdu.fault_status(raw, 0, h)) is not None:
            assert flt[1] == sc.payload.status
            checked += 1
    if not checked:
        pytest.skip("no connection-oriented PDUs at the start of TCP payloads here")


def test_find_header_skips_noise() -> None:
    raw = b"\x05\x00junk" + bytes(range(40))
    good = bytes.fromhex("05000b0310000000480000000100000000000000")
    assert find_header(raw + good + b"\0" * 52, 0) == len(raw)
