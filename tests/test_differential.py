"""Differential test against tshark (the reference decoder) on every capture we have.

For each DCE/RPC request tshark decodes over plain TCP, over SMB named pipes (ncacn_np) and over
UDP (ncadg_ip_udp), rpcinspect must report a call whose ``req_frame`` is the same frame, with the
same opnum and, where tshark knows the interface, the same interface UUID; over SMB, where tshark
knows the file name of the pipe's file id, the same ``named_pipe`` too. Where rpcinspect names an interface
tshark cannot, that counts in our favour. Every miss must be listed, with its reason, in
``tests/known_differences.toml``; a listed difference that no longer happens fails too, so the
file stays true.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from conftest import REPO, capture_id, corpus_captures, lab_captures
from tshark_ref import have_tshark, tshark_requests

from rpcinspect.engine import analyze
from rpcinspect.records import CallRecord

KNOWN = REPO / "tests" / "known_differences.toml"
ALL = lab_captures() + corpus_captures()


@dataclass
class Comparison:
    total: int = 0
    matched: int = 0
    ours_named_more: int = 0
    smb_total: int = 0
    smb_matched: int = 0
    missed: list[str] = field(default_factory=list)  # "frame:opnum" keys
    udp_total: int = 0
    udp_matched: int = 0


@cache
def known() -> dict[str, dict[str, str]]:
    """capture id -> {"frame:opnum": reason}."""
    if not KNOWN.is_file():
        return {}
    data = tomllib.loads(KNOWN.read_text())
    return {cap: dict(entries) for cap, entries in data.get("captures", {}).items()}


@cache
def compare(path: Path) -> Comparison:
    ref = tshark_requests(path)
    ours: dict[tuple[int, int], list[CallRecord]] = {}
    for rec in analyze([path]):
        if isinstance(rec, CallRecord) and rec.req_frame is not None and rec.opnum is not None:
            ours.setdefault((rec.req_frame, rec.opnum), []).append(rec)
    c = Comparison(total=len(ref))
    for r in ref:
        c.udp_total += r.over_udp
        c.smb_total += r.over_smb
        cands = ours.get((r.frame, r.opnum), [])
        hit = next(
            (
                x for x in cands
                if (r.if_uuid is None or x.if_uuid == r.if_uuid)
                and (not r.over_udp or (x.transport == "ncadg_ip_udp" and x.call_id == r.call_id))
                and (not r.over_smb or (x.transport == "ncacn_np" and r.pipe in (None, x.named_pipe)))
            ),
            None,
        )  # fmt: skip
        if hit is None:
            c.missed.append(f"{r.frame}:{r.opnum}")
            continue
        cands.remove(hit)
        c.matched += 1
        c.udp_matched += r.over_udp
        c.smb_matched += r.over_smb
        if r.if_uuid is None and hit.if_uuid is not None:
            c.ours_named_more += 1
    return c


pytestmark = pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_requests_match_tshark(path: Path) -> None:
    c = compare(path)
    listed = known().get(capture_id(path), {})
    unexplained = [m for m in Counter(c.missed) if m not in listed]
    stale = [m for m in listed if m not in c.missed]
    assert not unexplained, f"{len(unexplained)} of {c.total} tshark requests not found: {unexplained[:20]}"
    assert not stale, f"listed in known_differences.toml but now matching: {stale[:20]}"


def test_overall_agreement_at_least_99_percent() -> None:
    totals = [compare(p) for p in ALL]
    total = sum(c.total for c in totals)
    matched = sum(c.matched for c in totals)
    named_more = sum(c.ours_named_more for c in totals)
    assert total > 0, "no tshark requests at all: nothing was compared"
    udp_total = sum(c.udp_total for c in totals)
    udp_matched = sum(c.udp_matched for c in totals)
    smb_total = sum(c.smb_total for c in totals)
    smb_matched = sum(c.smb_matched for c in totals)
    print(f"over SMB: {smb_total} tshark requests, matched: {smb_matched}")
    assert smb_total > 0, "no request over SMB compared"
    print(f"\ntshark requests: {total}, matched: {matched} ({matched / total:.2%}), "
          f"named by rpcinspect but not tshark: {named_more}")  # fmt: skip
    print(f"over UDP: {udp_total} tshark requests, matched: {udp_matched}")
    assert udp_total > 0 or not corpus_captures(), "no UDP request compared"
    assert matched / total >= 0.99
