"""Differential test against tshark on the auth type and level of every request.

tshark shows ``dcerpc.auth_type`` / ``dcerpc.auth_level`` only on PDUs that carry an auth
verifier, so the comparison is defined per request (its last fragment, where both tools report
the call) over TCP and SMB named pipes (connection-oriented PDUs; connectionless ones carry their
auth differently and are left to tests/test_cl.py):

* the request's PDU carries a verifier in tshark: rpcinspect's ``auth_type`` and ``auth_level``
  must be the same values (by the catalog names of tshark's numbers), and ``signed`` / ``sealed``
  must follow the level (integrity or privacy / privacy);
* it carries none: rpcinspect must not claim per-call RPC protection and may only report
  ``none`` or ``connect`` (the association authenticated at connect level, which puts no verifier
  on requests); ``signed`` and ``sealed`` must be false, unless ``auth_source`` is ``smb`` (a
  named pipe with no RPC auth: then they are the SMB session's, and ``auth_type`` must be
  ``none``).

Requests tshark decodes that rpcinspect does not report at the same frame and opnum are the
request differential's business (tests/test_differential.py) and are not counted here. Every
disagreement must be listed with its reason in ``tests/auth_differences.toml``; a listed one that
no longer happens fails too. Overall agreement must be at least 99%.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from conftest import REPO, capture_id, corpus_captures, lab_captures
from tshark_ref import have_tshark

from rpcinspect.catalog import load_catalog
from rpcinspect.engine import analyze
from rpcinspect.records import CallRecord

KNOWN = REPO / "tests" / "auth_differences.toml"
ALL = lab_captures() + corpus_captures()


@dataclass(frozen=True)
class RefRequest:
    frame: int
    opnum: int
    auth: tuple[int, int] | None  # (auth_type, auth_level) of the verifier, None without one


def _as_list(v: object) -> list:  # type: ignore[type-arg]
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def tshark_auth(path: Path) -> list[RefRequest]:
    """Last-fragment requests over TCP and SMB, with the auth of the verifier tshark decoded."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "dcerpc.pkt_type == 0 && !udp",
         "-T", "json", "--no-duplicate-keys", "-J", "frame dcerpc"],
        capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    if not proc.stdout.strip():
        return []
    out = []
    for pkt in json.loads(proc.stdout):
        layers = pkt["_source"]["layers"]
        frame = int(_as_list(layers.get("frame"))[0]["frame.number"])
        for pdu in _as_list(layers.get("dcerpc")):
            if pdu.get("dcerpc.pkt_type") != "0" or "dcerpc.opnum" not in pdu:
                continue
            flags = pdu.get("dcerpc.cn_flags_tree") or {}
            if flags.get("dcerpc.cn_flags.last_frag") != "1":
                continue
            auth = None
            if int(pdu.get("dcerpc.cn_auth_len", "0") or 0):
                info = next((x for x in _as_list(pdu.get("dcerpc.auth_info")) if isinstance(x, dict)), {})
                if "dcerpc.auth_type" in info:
                    auth = (int(info["dcerpc.auth_type"]), int(info["dcerpc.auth_level"]))
            out.append(RefRequest(frame, int(pdu["dcerpc.opnum"]), auth))
    return out


@dataclass
class AuthComparison:
    total: int = 0
    with_verifier: int = 0
    agreed: int = 0
    differences: dict[str, str] = field(default_factory=dict)  # "frame:opnum" -> what differs


@cache
def compare(path: Path) -> AuthComparison:
    cat = load_catalog()
    ours: dict[tuple[int, int], CallRecord] = {}
    for rec in analyze([path]):
        if isinstance(rec, CallRecord) and rec.req_frame is not None and rec.opnum is not None:
            ours.setdefault((rec.req_frame, rec.opnum), rec)
    c = AuthComparison()
    for r in tshark_auth(path):
        rec = ours.get((r.frame, r.opnum))
        if rec is None:
            continue
        c.total += 1
        key = f"{r.frame}:{r.opnum}"
        if r.auth is not None:
            c.with_verifier += 1
            at, al = r.auth
            want = (cat.auth_type_short(at), cat.auth_level_name(al) if al else "none")
            got = (rec.auth_type, rec.auth_level)
            prot = (al >= 5, al == 6)
            if got != want:
                c.differences[key] = f"tshark {want[0]}/{want[1]}, rpcinspect {got[0]}/{got[1]}"
            elif (rec.signed, rec.sealed) != prot:
                c.differences[key] = f"signed/sealed {rec.signed}/{rec.sealed} at level {want[1]}"
            else:
                c.agreed += 1
        elif rec.auth_source == "smb" and (rec.auth_type, rec.auth_level) != ("none", "none"):
            c.differences[key] = f"no verifier (SMB), rpcinspect {rec.auth_type}/{rec.auth_level}"
        elif (rec.auth_source != "smb" and (rec.signed or rec.sealed)) or rec.auth_level not in (
            "none",
            "connect",
        ):
            c.differences[key] = (
                f"no verifier, rpcinspect {rec.auth_type}/{rec.auth_level} signed={rec.signed} "
                f"sealed={rec.sealed}"
            )
        else:
            c.agreed += 1
    return c


@cache
def known() -> dict[str, dict[str, str]]:
    if not KNOWN.is_file():
        return {}
    data = tomllib.loads(KNOWN.read_text())
    return {cap: dict(entries) for cap, entries in data.get("captures", {}).items()}


pytestmark = pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_request_auth_matches_tshark(path: Path) -> None:
    c = compare(path)
    listed = known().get(capture_id(path), {})
    unexplained = {k: v for k, v in c.differences.items() if k not in listed}
    stale = [k for k in listed if k not in c.differences]
    assert not unexplained, (
        f"{len(unexplained)} of {c.total} requests differ: {list(unexplained.items())[:10]}"
    )
    assert not stale, f"listed in auth_differences.toml but now agreeing: {stale[:20]}"


def test_auth_agreement_at_least_99_percent() -> None:
    totals = [compare(p) for p in ALL]
    total = sum(c.total for c in totals)
    agreed = sum(c.agreed for c in totals)
    verif = sum(c.with_verifier for c in totals)
    assert total > 0
    print(
        f"\nrequests compared: {total} ({verif} with a verifier), agreeing: {agreed} ({agreed / total:.2%})"
    )
    assert agreed / total >= 0.99


def test_lab_captures_have_verifiers_to_compare() -> None:
    """The comparison is not vacuous: the lab's authenticated captures carry verifiers."""
    c = compare(REPO / "captures" / "authn-privacy-tcp-rpcclient.pcap")
    assert c.with_verifier >= 5 and not c.differences
