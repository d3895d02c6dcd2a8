"""The libpcap prefilter must not change the result: same calls and binds as the pure-Python path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import capture_id, corpus_captures, lab_captures

from rpcinspect.capture import fastscan
from rpcinspect.engine import analyze
from rpcinspect.records import BindRecord, CallRecord

ALL = lab_captures() + corpus_captures()
pytestmark = pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")


def records(path: Path, prefilter: bool) -> list[dict]:  # type: ignore[type-arg]
    out = [
        dataclasses.asdict(r)
        for r in analyze([path], prefilter=prefilter)
        if isinstance(r, CallRecord | BindRecord)
    ]
    return sorted(
        out, key=lambda d: (d.get("req_frame") or 0, d.get("resp_frame") or 0, d["record"], d["call_id"])
    )


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_prefilter_gives_the_same_records(path: Path) -> None:
    fast, pure = records(path, True), records(path, False)
    assert len(fast) == len(pure)
    for a, b in zip(fast, pure, strict=True):
        assert a == b
