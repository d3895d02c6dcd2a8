"""What a named pipe's SMB session tells about its calls (``smb_auth``, ``smb_dialect``,
``auth_source`` ``smb``), against tshark's reading of the same session setup and negotiate."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from conftest import CAPTURES
from rich.console import Console
from tshark_ref import have_tshark

from rpcinspect.engine import analyze
from rpcinspect.output.console import Stats, render
from rpcinspect.records import BindRecord, CallRecord

PIPES = [
    "nullsession-np-smb2-rpcclient",
    "srvsvc-np-smb2-rpcclient",
    "kerberos-np-smb2-rpcclient",
    "srvsvc-np-smb1-rpcclient",
    "samr-np-smb21-samrdump-impacket",
    "lsarpc-np-smb2-rpcclient-seal",
]
_DIALECTS = {"0x0202": "2.0.2", "0x0210": "2.1", "0x0300": "3.0", "0x0302": "3.0.2", "0x0311": "3.1.1"}


def tshark_fields(path: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    """tshark ``-T fields`` rows (first occurrence of each field) for the frames matching a filter."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_session(path: Path) -> tuple[str, str]:
    """(mechanism, dialect) of the capture's SMB session as tshark decodes it."""
    if tshark_fields(path, "smb.cmd == 0x72", ["frame.number"]):
        dialect = "NT1"
    else:
        rows = tshark_fields(path, "smb2.cmd == 0 && smb2.flags.response == 1", ["smb2.dialect"])
        dialect = _DIALECTS[rows[0][0]]
    setup = "smb2.cmd == 1 || smb.cmd == 0x73"
    if tshark_fields(path, f"({setup}) && kerberos.msg_type == 14", ["frame.number"]):
        return "kerberos", dialect
    users = tshark_fields(path, f"({setup}) && ntlmssp.messagetype == 3", ["ntlmssp.auth.username"])
    return ("anonymous" if users[0][0] in ("", "NULL") else "ntlm"), dialect


@pytest.mark.skipif(not have_tshark(), reason="tshark not installed")
@pytest.mark.parametrize("name", PIPES)
def test_pipe_calls_carry_their_smb_session(name: str) -> None:
    path = CAPTURES / f"{name}.pcap"
    if not path.is_file():
        pytest.skip("lab capture missing")
    mech, dialect = tshark_session(path)
    calls = [r for r in analyze([path]) if isinstance(r, CallRecord) and r.transport == "ncacn_np"]
    assert calls
    assert {(c.smb_auth, c.smb_dialect) for c in calls} == {(mech, dialect)}
    for c in calls:
        if c.auth_source == "smb":  # no RPC auth: the SMB session is the protection
            assert (c.user is None) == (mech in ("anonymous", "kerberos"))
        else:
            assert c.auth_source == "rpc" and c.auth_type != "none"
    # other transports never carry SMB facts
    tcp = CAPTURES / "authn-integrity-tcp-rpcclient.pcap"
    assert all(r.smb_auth is None for r in analyze([tcp]) if isinstance(r, CallRecord))


def summary_text(paths: list[Path]) -> str:
    stats = Stats()
    for p in paths:
        for rec in analyze([p]):
            stats.write(rec)
    out = StringIO()
    render(stats, Console(file=out, width=200, force_terminal=False))
    return out.getvalue()


def posture_rows(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(server, interface) -> (weakest, auth) from the rendered auth posture table."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    section = text.split("Auth posture", 1)[1].split("\n\n", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 7 and cells[0][:1].isdigit():
            rows[(cells[1], cells[2])] = (cells[3], cells[4])
    return rows


def test_auth_posture_ranks_the_weakest_protection() -> None:
    caps = [CAPTURES / f"{n}.pcap" for n in ("nullsession-np-smb2-rpcclient", "authn-privacy-tcp-rpcclient")]
    if not all(p.is_file() for p in caps):
        pytest.skip("lab captures missing")
    text = summary_text(caps)
    rows = posture_rows(text)
    # an anonymous SMB session protects nothing: it ranks with unauthenticated calls, first
    anon = {k: v for k, v in rows.items() if v == ("smb anonymous", "smb anonymous")}
    assert anon, rows
    sealed = {k: v for k, v in rows.items() if v[0] == "privacy" or v[0] == "sealed"}
    assert sealed, rows
    order = list(rows)
    assert max(order.index(k) for k in anon) < min(order.index(k) for k in sealed)


def test_endpoints_table_lists_what_the_mapper_said() -> None:
    cap = CAPTURES / "epm-lookup-tcp-rpcclient-anon.pcap"
    if not cap.is_file():
        pytest.skip("lab capture missing")
    text = summary_text([cap])
    assert "Server endpoints" in text
    section = text.split("Server endpoints", 1)[1]
    for iface, at in (("samr", "tcp:49154"), ("netlogon", "np:\\pipe\\netlogon"), ("epm", "tcp:135")):
        line = next(line for line in section.splitlines() if f" {iface} " in line)
        assert at in line


def test_header_sign_negotiation_is_both_sides() -> None:
    """PFC_SUPPORT_HEADER_SIGN: the client's flag and the server's echo, as tshark reads them."""
    cap = CAPTURES / "authn-integrity-tcp-rpcclient.pcap"
    if not cap.is_file() or not have_tshark():
        pytest.skip("lab capture or tshark missing")
    binds = [r for r in analyze([cap]) if isinstance(r, BindRecord)]
    legs = " || ".join(f"dcerpc.pkt_type == {t}" for t in (11, 12, 14, 15))
    rows = tshark_fields(cap, legs, ["frame.number", "dcerpc.cn_flags"])
    flags = {int(r[0]): int(r[1], 16) for r in rows}
    assert any(b.header_sign_ack for b in binds) and not all(b.header_sign for b in binds)
    for b in binds:
        assert b.header_sign == bool(flags[b.req_frame] & 0x04)
        if b.resp_frame is None:
            assert b.header_sign_ack is None
        else:
            assert b.header_sign_ack == bool(flags[b.resp_frame] & 0x04)
