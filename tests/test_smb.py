"""ncacn_np: DCE/RPC over SMB2/3 and SMB1 named pipes, from hand-built SMB exchanges.

SMB messages are built here with ``struct`` (field by field from MS-SMB2 / MS-CIFS), the DCE/RPC
PDUs inside them with Scapy (``builders``), and the whole conversation goes through a pcap file
and :func:`rpcinspect.engine.analyze`, as a capture would. State and limits are also checked on
:class:`~rpcinspect.transports.smb.SmbHandler` directly.
"""

from __future__ import annotations

import struct
from pathlib import Path

import builders as b
import pytest
from tshark_ref import have_tshark, tshark_requests

from rpcinspect.catalog import load_catalog
from rpcinspect.dcerpc.attach import TcpSelector
from rpcinspect.engine import analyze
from rpcinspect.limits import Limits
from rpcinspect.records import AnomalyRecord, BindRecord, CallRecord, Record, SummaryRecord
from rpcinspect.runtime import Run
from rpcinspect.transports.smb import SmbHandler, SmbSession, normalise_pipe

LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
SESSION = 0x1122334455667788
IPC_TREE = 5
FID_A = bytes(range(16))
FID_B = bytes(range(16, 32))


# -- SMB2 builders ------------------------------------------------------------------------------
def smb2(
    cmd: int,
    mid: int,
    body: bytes,
    *,
    resp: bool = False,
    status: int = 0,
    sid: int = SESSION,
    tree: int = IPC_TREE,
    flags: int = 0,
    async_id: int | None = None,
    next_cmd: int = 0,
    credit_charge: int = 1,
) -> bytes:
    flags |= 0x1 if resp else 0
    if async_id is not None:
        flags |= 0x2
        tail = struct.pack("<Q", async_id)
    else:
        tail = struct.pack("<II", 0, tree)
    hdr = struct.pack("<4sHHIHHIIQ", b"\xfeSMB", 64, credit_charge, status, cmd, 1, flags, next_cmd, mid)
    return hdr + tail + struct.pack("<Q", sid) + b"\0" * 16 + body


def nb(msg: bytes) -> bytes:
    """Direct-TCP / NBSS session message framing."""
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def compound(*msgs: bytes) -> bytes:
    out = b""
    for i, m in enumerate(msgs):
        if i < len(msgs) - 1:
            m += b"\0" * (-len(m) % 8)
            m = m[:20] + struct.pack("<I", len(m)) + m[24:]
        out += m
    return out


def negotiate_resp(dialect: int = 0x0210) -> bytes:
    return smb2(0, 0, struct.pack("<HHH", 65, 1, dialect) + b"\0" * 58, resp=True, sid=0, tree=0)


def ntlm_auth(user: str, domain: str) -> bytes:
    u, d = user.encode("utf-16-le"), domain.encode("utf-16-le")
    nt = b"\x01" * 24
    base = 64
    fields = struct.pack("<HHI", 0, 0, base)  # LM
    fields += struct.pack("<HHI", len(nt), len(nt), base)  # NT
    fields += struct.pack("<HHI", len(d), len(d), base + len(nt))  # domain
    fields += struct.pack("<HHI", len(u), len(u), base + len(nt) + len(d))  # user
    fields += struct.pack("<HHI", 0, 0, base) * 2  # workstation, session key
    msg = b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + struct.pack("<I", 0x1) + b"\0" * 0
    msg = msg.ljust(base, b"\0") + nt + d + u
    return b"\xa1\x82" + b"\0\0" + msg  # a (sloppy) SPNEGO wrapper: the parser only looks for NTLMSSP


def session_setup_req(mid: int, blob: bytes, sid: int = SESSION) -> bytes:
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(blob), 0) + blob
    return smb2(1, mid, body, tree=0, sid=sid)


def session_setup_resp(mid: int, session_flags: int = 0, *, signed: bool = True, sid: int = SESSION) -> bytes:
    return smb2(1, mid, struct.pack("<HHHH", 9, session_flags, 0, 0), resp=True, tree=0, sid=sid,
                flags=0x8 if signed else 0)  # fmt: skip


def tree_connect_req(mid: int, path: str = "\\\\srv\\IPC$", sid: int = SESSION) -> bytes:
    p = path.encode("utf-16-le")
    return smb2(3, mid, struct.pack("<HHHH", 9, 0, 72, len(p)) + p, tree=0, sid=sid)


def tree_connect_resp(mid: int, tree: int = IPC_TREE, share_type: int = 2, sid: int = SESSION) -> bytes:
    body = struct.pack("<HBBIII", 16, share_type, 0, 0, 0, 0x1F01FF)
    return smb2(3, mid, body, resp=True, tree=tree, sid=sid)


def create_req(mid: int, name: str, tree: int = IPC_TREE, **kw: int) -> bytes:
    n = name.encode("utf-16-le")
    body = struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x12019F, 0, 7, 1, 0, 120, len(n), 0, 0) + n
    return smb2(5, mid, body, tree=tree, **kw)


def create_resp(mid: int, fid: bytes, tree: int = IPC_TREE, status: int = 0, **kw: int) -> bytes:
    if status:
        body = struct.pack("<HBB", 9, 0, 0) + b"\0" * 4
        return smb2(5, mid, body, resp=True, status=status, tree=tree, **kw)
    body = struct.pack("<HBBI", 89, 0, 0, 1) + b"\0" * 32 + struct.pack("<QQII", 0, 0, 0x80, 0) + fid
    return smb2(5, mid, body + struct.pack("<II", 0, 0), resp=True, tree=tree, **kw)


def write_req(mid: int, fid: bytes, data: bytes, tree: int = IPC_TREE, offset: int = 0, **kw: int) -> bytes:
    body = struct.pack("<HHIQ", 49, 112, len(data), offset) + fid + struct.pack("<IIHHI", 0, 0, 0, 0, 0)
    return smb2(9, mid, body + data, tree=tree, **kw)


def write_resp(mid: int, n: int, tree: int = IPC_TREE, **kw: int) -> bytes:
    return smb2(9, mid, struct.pack("<HHIIHH", 17, 0, n, 0, 0, 0), resp=True, tree=tree, **kw)


def read_req(mid: int, fid: bytes, tree: int = IPC_TREE, length: int = 4280, **kw: int) -> bytes:
    body = struct.pack("<HBBIQ", 49, 0, 0, length, 0) + fid + struct.pack("<IIIHHB", 0, 0, 0, 0, 0, 0)
    return smb2(8, mid, body, tree=tree, **kw)


def read_resp(mid: int, data: bytes, *, status: int = 0, tree: int = IPC_TREE, async_id: int | None = None,
              declared: int | None = None, sid: int = SESSION) -> bytes:  # fmt: skip
    n = len(data) if declared is None else declared
    body = struct.pack("<HBBIII", 17, 80, 0, n, 0, 0) + data
    return smb2(8, mid, body, resp=True, status=status, tree=tree, async_id=async_id, sid=sid)


def pending_resp(mid: int, cmd: int, async_id: int) -> bytes:
    return smb2(
        cmd, mid, struct.pack("<HBBI", 9, 0, 0, 0) + b"\0", resp=True, status=0x103, async_id=async_id
    )


def ioctl_req(mid: int, fid: bytes, data: bytes, tree: int = IPC_TREE, **kw: int) -> bytes:
    body = struct.pack("<HHI", 57, 0, 0x0011C017) + fid
    body += struct.pack("<IIIIIIII", 120, len(data), 0, 120, 0, 4280, 1, 0)
    return smb2(11, mid, body + data, tree=tree, **kw)


def ioctl_resp(mid: int, fid: bytes, data: bytes, tree: int = IPC_TREE, async_id: int | None = None,
               sid: int = SESSION) -> bytes:  # fmt: skip
    body = struct.pack("<HHI", 49, 0, 0x0011C017) + fid + struct.pack("<IIIIII", 112, 0, 112, len(data), 0, 0)
    return smb2(11, mid, body + data, resp=True, tree=tree, async_id=async_id, sid=sid)


def close_req(mid: int, fid: bytes, tree: int = IPC_TREE, **kw: int) -> bytes:
    return smb2(6, mid, struct.pack("<HHI", 24, 0, 0) + fid, tree=tree, **kw)


def close_resp(mid: int, tree: int = IPC_TREE, **kw: int) -> bytes:
    return smb2(6, mid, struct.pack("<HH", 60, 0) + b"\0" * 56, resp=True, tree=tree, **kw)


def smb2_setup(conv: b.Conv, *, user: str = "alice", domain: str = "CORP") -> None:
    conv.send(
        True, nb(smb2(0, 0, struct.pack("<HHHHI", 36, 1, 1, 0, 0) + b"\0" * 28 + b"\x10\x02", sid=0, tree=0))
    )
    conv.send(False, nb(negotiate_resp()))
    conv.send(True, nb(session_setup_req(1, ntlm_auth(user, domain))))
    conv.send(False, nb(session_setup_resp(1)))
    conv.send(True, nb(tree_connect_req(2)))
    conv.send(False, nb(tree_connect_resp(2)))


def run(tmp_path: Path, conv: b.Conv, limits: Limits | None = None) -> list[Record]:
    path = b.write(tmp_path / "smb.pcap", b.pcap(conv.frames))
    return list(analyze([path], limits=limits) if limits else analyze([path]))


def calls(recs: list[Record]) -> list[CallRecord]:
    return [r for r in recs if isinstance(r, CallRecord)]


def summary(recs: list[Record]) -> SummaryRecord:
    s = recs[-1]
    assert isinstance(s, SummaryRecord)
    return s


def frame_no(conv: b.Conv) -> int:
    """Frame number (1-based) of the last frame sent."""
    return len(conv.frames)


# -- SMB2 ---------------------------------------------------------------------------------------
def test_smb2_pipe_write_read_and_transceive(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    conv.send(True, nb(write_req(4, FID_A, b.bind(1, [(0, LSARPC, 0)]))))
    bind_frame = frame_no(conv)
    conv.send(False, nb(write_resp(4, 72)))
    conv.send(True, nb(read_req(5, FID_A)))
    conv.send(False, nb(read_resp(5, b.bind_ack(1, 1))))
    ack_frame = frame_no(conv)
    conv.send(True, nb(ioctl_req(6, FID_A, b.request(2, 44))))
    req_frame = frame_no(conv)
    conv.send(False, nb(ioctl_resp(6, FID_A, b.response(2))))
    resp_frame = frame_no(conv)
    conv.send(True, nb(close_req(7, FID_A)))
    conv.send(False, nb(close_resp(7)))
    recs = run(tmp_path, conv)
    (call,) = calls(recs)
    assert (call.transport, call.named_pipe, call.opnum, call.if_uuid) == ("ncacn_np", "lsarpc", 44, LSARPC)
    assert (call.req_frame, call.resp_frame, call.status) == (req_frame, resp_frame, "ok")
    assert (call.src, call.dport) == ("10.0.0.1", 445)
    assert call.operation == "LsarOpenPolicy2"
    (bind,) = [r for r in recs if isinstance(r, BindRecord)]
    assert (bind.named_pipe, bind.transport, bind.req_frame, bind.resp_frame) == (
        "lsarpc", "ncacn_np", bind_frame, ack_frame,
    )  # fmt: skip
    assert summary(recs).counters["smb_pipes_opened"] == 1


def test_smb2_two_pipes_interleaved_same_call_ids(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    conv.send(True, nb(create_req(4, "\\PIPE\\SAMR")))
    conv.send(False, nb(create_resp(4, FID_B)))
    conv.send(True, nb(write_req(5, FID_A, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(True, nb(write_req(6, FID_B, b.bind(1, [(0, b.SAMR, 1)]))))
    conv.send(True, nb(read_req(7, FID_B)))
    conv.send(True, nb(read_req(8, FID_A)))
    conv.send(False, nb(write_resp(5, 1)))
    conv.send(False, nb(write_resp(6, 1)))
    conv.send(False, nb(read_resp(8, b.bind_ack(1, 1))))
    conv.send(False, nb(read_resp(7, b.bind_ack(1, 1))))
    conv.send(True, nb(ioctl_req(9, FID_A, b.request(2, 44))))
    conv.send(True, nb(ioctl_req(10, FID_B, b.request(2, 64))))
    conv.send(False, nb(ioctl_resp(10, FID_B, b.response(2))))
    conv.send(False, nb(ioctl_resp(9, FID_A, b.response(2))))
    got = sorted((c.named_pipe, c.interface, c.operation, c.status) for c in calls(run(tmp_path, conv)))
    assert got == [
        ("lsarpc", "lsarpc", "LsarOpenPolicy2", "ok"),
        ("samr", "samr", "SamrConnect5", "ok"),
    ]


def test_smb2_pdu_split_over_writes_and_reads(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "samr")))
    conv.send(False, nb(create_resp(3, FID_A)))
    bind = b.bind(1, [(0, b.SAMR, 1)])
    conv.send(True, nb(write_req(4, FID_A, bind[:10])))
    conv.send(True, nb(write_req(5, FID_A, bind[10:30])))
    conv.send(True, nb(write_req(6, FID_A, bind[30:])))
    bind_frame = frame_no(conv)
    ack = b.bind_ack(1, 1)
    conv.send(True, nb(read_req(7, FID_A, length=20)))
    conv.send(False, nb(read_resp(7, ack[:20], status=0x80000005)))  # STATUS_BUFFER_OVERFLOW: more to read
    conv.send(True, nb(read_req(8, FID_A)))
    conv.send(False, nb(read_resp(8, ack[20:])))
    ack_frame = frame_no(conv)
    req = b.request(2, 64, b"\x11" * 300)
    conv.send(True, nb(write_req(9, FID_A, req[:100])))
    conv.send(True, nb(write_req(10, FID_A, req[100:])))
    req_frame = frame_no(conv)
    conv.send(True, nb(read_req(11, FID_A)))
    conv.send(False, nb(read_resp(11, b.response(2))))
    recs = run(tmp_path, conv)
    (bind_rec,) = [r for r in recs if isinstance(r, BindRecord)]
    assert (bind_rec.req_frame, bind_rec.resp_frame, bind_rec.status) == (bind_frame, ack_frame, "ok")
    (call,) = calls(recs)
    assert (call.req_frame, call.operation, call.req_stub_len, call.named_pipe) == (
        req_frame, "SamrConnect5", 300, "samr",
    )  # fmt: skip


def test_smb2_tcp_segments_split_smb_message(tmp_path: Path) -> None:
    """One SMB message over several TCP segments, and two messages in one segment."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    msg = nb(create_req(3, "samr")) + nb(write_req(4, FID_A, b.bind(1, [(0, b.SAMR, 1)])))
    conv.send(True, msg[:30])
    conv.send(True, msg[30:])
    conv.send(False, nb(create_resp(3, FID_A)))  # the write was seen before the create response
    conv.send(True, nb(write_req(5, FID_A, b.request(2, 64))))
    conv.send(True, nb(read_req(6, FID_A)))
    r = nb(read_resp(6, b.bind_ack(1, 1) + b.response(2)))
    conv.send(False, r[:7])
    conv.send(False, r[7:70])
    conv.send(False, r[70:])
    (call,) = calls(run(tmp_path, conv))
    assert (call.operation, call.status, call.resp_frame, call.named_pipe) == (
        "SamrConnect5", "ok", len(conv.frames), "samr",
    )  # fmt: skip


def test_smb2_compounded_requests_and_responses(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    # WRITE + READ in one compound request, the two responses in one compound response
    conv.send(True, nb(compound(write_req(4, FID_A, b.bind(1, [(0, LSARPC, 0)])), read_req(5, FID_A))))
    conv.send(False, nb(compound(write_resp(4, 1), read_resp(5, b.bind_ack(1, 1)))))
    conv.send(True, nb(compound(write_req(6, FID_A, b.request(2, 44)), read_req(7, FID_A))))
    req_frame = frame_no(conv)
    conv.send(False, nb(compound(write_resp(6, 1), read_resp(7, b.response(2)), close_resp(99))))
    recs = run(tmp_path, conv)
    (call,) = calls(recs)
    assert (call.operation, call.status, call.req_frame, call.named_pipe) == (
        "LsarOpenPolicy2", "ok", req_frame, "lsarpc",
    )  # fmt: skip
    assert summary(recs).counters["smb2_compounded"] == 5


def test_smb2_async_pending_read(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    conv.send(True, nb(write_req(4, FID_A, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(True, nb(read_req(5, FID_A)))
    conv.send(False, nb(write_resp(4, 1)))
    conv.send(False, nb(read_resp(5, b.bind_ack(1, 1))))
    conv.send(True, nb(read_req(6, FID_A)))  # posted before the request is written
    conv.send(False, nb(pending_resp(6, 8, async_id=0x77)))  # interim STATUS_PENDING
    conv.send(True, nb(write_req(7, FID_A, b.request(2, 44))))
    conv.send(False, nb(write_resp(7, 1)))
    conv.send(False, nb(read_resp(6, b.response(2), async_id=0x77)))
    resp_frame = frame_no(conv)
    recs = run(tmp_path, conv)
    (call,) = calls(recs)
    assert (call.status, call.resp_frame, call.operation) == ("ok", resp_frame, "LsarOpenPolicy2")
    assert summary(recs).counters["smb2_pending"] == 1


def tshark_pairs(path: Path) -> set[tuple[int, int, int]]:
    """(request frame, response frame, opnum) of every DCE/RPC response tshark pairs in *path*."""
    fields = ["frame.number", "dcerpc.request_in", "dcerpc.opnum"]
    rows = b.tshark_fields(path, "dcerpc.pkt_type == 2", fields)
    return {(int(req), int(resp), int(op)) for resp, req, op in rows}


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_smb2_credit_charge_and_pending_transceive(tmp_path: Path) -> None:
    """Multi-credit requests (CreditCharge > 1: the next MessageId jumps by the charge, MS-SMB2
    3.2.4.1.5) and two IOCTL FSCTL_PIPE_TRANSCEIVE answered late: an interim STATUS_PENDING
    response with SMB2_FLAGS_ASYNC_COMMAND and an AsyncId, then the final response with the same
    MessageId and AsyncId (MS-SMB2 3.3.4.2), the two finals in the reverse order. tshark pairs the
    same requests and responses (its SMB2 and DCE/RPC pairing is the oracle)."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    conv.send(True, nb(create_req(4, "samr")))
    conv.send(False, nb(create_resp(4, FID_B)))
    conv.send(True, nb(write_req(5, FID_A, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(False, nb(write_resp(5, 72)))
    conv.send(True, nb(read_req(6, FID_A, credit_charge=4)))  # MessageIds 6..9
    read_frame = frame_no(conv)
    conv.send(False, nb(read_resp(6, b.bind_ack(1, 1))))
    conv.send(True, nb(ioctl_req(10, FID_B, b.bind(1, [(0, b.SAMR, 1)]), credit_charge=2)))  # 10..11
    conv.send(False, nb(ioctl_resp(10, FID_B, b.bind_ack(1, 1))))
    conv.send(True, nb(ioctl_req(12, FID_A, b.request(2, 44), credit_charge=3)))  # 12..14
    lsa_req = frame_no(conv)
    conv.send(False, nb(pending_resp(12, 0xB, async_id=0x5151)))
    conv.send(True, nb(ioctl_req(15, FID_B, b.request(2, 64))))
    samr_req = frame_no(conv)
    conv.send(False, nb(pending_resp(15, 0xB, async_id=0x6262)))
    conv.send(False, nb(ioctl_resp(15, FID_B, b.response(2), async_id=0x6262)))
    samr_resp = frame_no(conv)
    conv.send(False, nb(ioctl_resp(12, FID_A, b.response(2), async_id=0x5151)))
    lsa_resp = frame_no(conv)
    path = b.write(tmp_path / "smb.pcap", b.pcap(conv.frames))
    recs = list(analyze([path]))
    got = {(c.named_pipe, c.operation, c.req_frame, c.resp_frame, c.status) for c in calls(recs)}
    assert got == {
        ("lsarpc", "LsarOpenPolicy2", lsa_req, lsa_resp, "ok"),
        ("samr", "SamrConnect5", samr_req, samr_resp, "ok"),
    }
    assert summary(recs).counters["smb2_pending"] == 2
    # the oracle: tshark reads the CreditCharge we built and pairs the same frames
    rows = b.tshark_fields(path, f"frame.number == {read_frame}", ["smb2.credit.charge", "smb2.msg_id"])
    assert rows == [["4", "6"]]
    assert tshark_pairs(path) == {(c.req_frame, c.resp_frame, c.opnum) for c in calls(recs)}


SRVSVC = "4b324fc8-1670-01d3-1278-5a47bf6ee188"
SESSION2 = 0x2222


def tshark_interfaces(path: Path) -> dict[int, str]:
    """Request frame -> the interface tshark dissected the request with (its Protocol column)."""
    rows = b.tshark_fields(path, "dcerpc.pkt_type == 0", ["frame.number", "_ws.col.Protocol"])
    return {int(f): proto.lower() for f, proto in rows}


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_smb2_same_file_id_in_two_sessions_and_two_trees(tmp_path: Path) -> None:
    """One file id value, three pipes: (session 1, tree 5) lsarpc, (session 1, tree 6) samr,
    (session 2, tree 5) srvsvc, traffic interleaved, the same call ids on every pipe; closing
    one leaves the other two open. Pipes are keyed by (session, tree, file id): each call keeps
    its pipe, bind and session user. tshark (which tracks file ids per session and tree too)
    names the same pipe and interface at the same frames."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)  # session 1 (alice), tree 5
    conv.send(True, nb(tree_connect_req(3, "\\\\srv2\\IPC$")))
    conv.send(False, nb(tree_connect_resp(3, tree=6)))
    conv.send(True, nb(session_setup_req(4, ntlm_auth("bob", "CORP"), sid=0)))
    conv.send(False, nb(session_setup_resp(4, sid=SESSION2)))
    conv.send(True, nb(tree_connect_req(5, sid=SESSION2)))
    conv.send(False, nb(tree_connect_resp(5, tree=IPC_TREE, sid=SESSION2)))  # tree id 5 again
    s1t5: dict[str, int] = {}
    s1t6 = {"tree": 6}
    s2t5 = {"sid": SESSION2}
    conv.send(True, nb(create_req(6, "lsarpc", **s1t5)))
    conv.send(True, nb(create_req(7, "samr", **s1t6)))
    conv.send(True, nb(create_req(8, "srvsvc", **s2t5)))
    conv.send(False, nb(create_resp(8, FID_A, **s2t5)))
    conv.send(False, nb(create_resp(6, FID_A, **s1t5)))
    conv.send(False, nb(create_resp(7, FID_A, **s1t6)))
    conv.send(True, nb(write_req(9, FID_A, b.bind(1, [(0, SRVSVC, 3)]), **s2t5)))
    conv.send(True, nb(write_req(10, FID_A, b.bind(1, [(0, b.SAMR, 1)]), **s1t6)))
    conv.send(True, nb(write_req(11, FID_A, b.bind(1, [(0, LSARPC, 0)]), **s1t5)))
    conv.send(True, nb(read_req(12, FID_A, **s1t6)))
    conv.send(True, nb(read_req(13, FID_A, **s2t5)))
    conv.send(True, nb(read_req(14, FID_A, **s1t5)))
    conv.send(False, nb(read_resp(13, b.bind_ack(1, 1), **s2t5)))
    conv.send(False, nb(read_resp(14, b.bind_ack(1, 1), **s1t5)))
    conv.send(False, nb(read_resp(12, b.bind_ack(1, 1), **s1t6)))
    conv.send(True, nb(ioctl_req(15, FID_A, b.request(2, 44), **s1t5)))
    conv.send(True, nb(ioctl_req(16, FID_A, b.request(2, 15), **s2t5)))
    conv.send(True, nb(ioctl_req(17, FID_A, b.request(2, 64), **s1t6)))
    conv.send(False, nb(ioctl_resp(17, FID_A, b.response(2), **s1t6)))
    conv.send(False, nb(ioctl_resp(15, FID_A, b.response(2), **s1t5)))
    conv.send(False, nb(ioctl_resp(16, FID_A, b.response(2), **s2t5)))
    conv.send(True, nb(close_req(18, FID_A, **s1t5)))  # lsarpc only
    conv.send(False, nb(close_resp(18, **s1t5)))
    conv.send(True, nb(ioctl_req(19, FID_A, b.request(3, 1), **s1t6)))
    conv.send(True, nb(ioctl_req(20, FID_A, b.request(3, 16), **s2t5)))
    conv.send(False, nb(ioctl_resp(20, FID_A, b.response(3), **s2t5)))
    conv.send(False, nb(ioctl_resp(19, FID_A, b.response(3), **s1t6)))
    path = b.write(tmp_path / "smb.pcap", b.pcap(conv.frames))
    recs = list(analyze([path]))
    got = sorted((c.named_pipe, c.interface, c.operation, c.if_source, c.status, c.user) for c in calls(recs))
    assert got == [
        ("lsarpc", "lsarpc", "LsarOpenPolicy2", "bind", "ok", "CORP\\alice"),
        ("samr", "samr", "SamrCloseHandle", "bind", "ok", "CORP\\alice"),
        ("samr", "samr", "SamrConnect5", "bind", "ok", "CORP\\alice"),
        ("srvsvc", "srvsvc", "NetrShareEnum", "bind", "ok", "CORP\\bob"),
        ("srvsvc", "srvsvc", "NetrShareGetInfo", "bind", "ok", "CORP\\bob"),
    ]
    binds = sorted((r.named_pipe, r.status) for r in recs if isinstance(r, BindRecord))
    assert binds == [("lsarpc", "ok"), ("samr", "ok"), ("srvsvc", "ok")]
    c = summary(recs).counters
    assert c["smb_pipes_opened"] == 3 and "smb_pipe_without_create" not in c
    ref = tshark_requests(path)
    assert {(t.frame, t.opnum, t.pipe) for t in ref} == {
        (x.req_frame, x.opnum, x.named_pipe) for x in calls(recs)
    }
    assert tshark_interfaces(path) == {x.req_frame: x.interface for x in calls(recs)}


def test_smb2_related_requests_take_session_tree_and_file_id_from_the_one_before(tmp_path: Path) -> None:
    """MS-SMB2 3.3.5.2.7.2: in a related compound, every request after the first uses the
    SessionId, TreeId and FileId of the operation before it; here they carry all-FF placeholders
    (SessionId 0xFFFFFFFFFFFFFFFF, TreeId 0xFFFFFFFF, FileId all-FF), in a CREATE + WRITE + READ
    compound and in an IOCTL + WRITE + CLOSE one. Without that rule the bind_ack would land on a
    pipe of its own and the CLOSE would not close anything."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(session_setup_req(3, ntlm_auth("bob", "CORP"), sid=0)))
    conv.send(False, nb(session_setup_resp(3, sid=SESSION2)))
    conv.send(True, nb(tree_connect_req(4, sid=SESSION2)))
    conv.send(False, nb(tree_connect_resp(4, tree=9, sid=SESSION2)))
    real = {"tree": 9, "sid": SESSION2}
    ff = b"\xff" * 16
    rel = {"flags": 0x4, "sid": 0xFFFFFFFFFFFFFFFF, "tree": 0xFFFFFFFF}
    bind_w = write_req(6, ff, b.bind(1, [(0, LSARPC, 0)]), **rel)
    conv.send(True, nb(compound(create_req(5, "lsarpc", **real), bind_w, read_req(7, ff, **rel))))
    bind_frame = frame_no(conv)
    conv.send(False, nb(compound(create_resp(5, FID_A, **real), write_resp(6, 72, **real),
                                 read_resp(7, b.bind_ack(1, 1), **real))))  # fmt: skip
    ack_frame = frame_no(conv)
    transceive = ioctl_req(8, FID_A, b.request(2, 44), **real)
    unanswered = write_req(9, ff, b.request(3, 45), **rel)
    conv.send(True, nb(compound(transceive, unanswered, close_req(10, ff, **rel))))
    req_frame = frame_no(conv)
    conv.send(False, nb(compound(ioctl_resp(8, FID_A, b.response(2), **real), write_resp(9, 24, **real),
                                 close_resp(10, **real))))  # fmt: skip
    resp_frame = frame_no(conv)
    recs = run(tmp_path, conv)
    (bind,) = [r for r in recs if isinstance(r, BindRecord)]
    assert (bind.status, bind.named_pipe, bind.req_frame, bind.resp_frame) == (
        "ok", "lsarpc", bind_frame, ack_frame,
    )  # fmt: skip
    got = sorted((c.opnum, c.operation, c.status, c.if_source, c.user, c.resp_frame, c.close_reason)
                 for c in calls(recs))  # fmt: skip
    assert got == [
        (44, "LsarOpenPolicy2", "ok", "bind", "CORP\\bob", resp_frame, None),
        (45, "LsarGetUserName", "no_response", "bind", "CORP\\bob", None, "connection_closed"),
    ]
    assert all(c.req_frame == req_frame for c in calls(recs))
    c = summary(recs).counters
    assert c["smb_pipes_opened"] == 1
    assert "smb_pipe_without_create" not in c and "bind_ack_without_bind" not in c


def test_smb3_encrypted_session_is_reported(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)

    def transform(sid: int) -> bytes:
        hdr = struct.pack("<4s16s16sIHHQ", b"\xfdSMB", b"\1" * 16, b"\2" * 16, 100, 0, 1, sid)
        return hdr + b"\x5a" * 100

    for sid in (SESSION, SESSION, 0x99, SESSION):
        conv.send(True, nb(transform(sid)))
        conv.send(False, nb(transform(sid)))
    recs = run(tmp_path, conv)
    assert not calls(recs)
    c = summary(recs).counters
    assert (c["smb_encrypted"], c["smb_encrypted_messages"]) == (2, 8)
    kinds = [r.kind for r in recs if isinstance(r, AnomalyRecord)]
    assert kinds.count("smb_encrypted") == 2


def test_nbss_on_port_139(tmp_path: Path) -> None:
    conv = b.Conv(dport=139)
    conv.handshake()
    names = (b"\x20" + b"CA" * 16 + b"\x00") * 2  # called and calling NetBIOS names, 34 bytes each
    conv.send(True, b"\x81\x00" + len(names).to_bytes(2, "big") + names)  # session request
    conv.send(False, b"\x82\x00\x00\x00")  # positive session response
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "srvsvc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    conv.send(True, nb(ioctl_req(4, FID_A, b.bind(1, [(0, b.SAMR, 1)]))))
    conv.send(False, nb(ioctl_resp(4, FID_A, b.bind_ack(1, 1))))
    conv.send(True, nb(ioctl_req(5, FID_A, b.request(2, 64))))
    conv.send(False, nb(ioctl_resp(5, FID_A, b.response(2))))
    recs = run(tmp_path, conv)
    (call,) = calls(recs)
    assert (call.dport, call.named_pipe, call.operation) == (139, "srvsvc", "SamrConnect5")
    assert summary(recs).counters["nbss_control"] == 2
    assert "malformed_smb" not in summary(recs).counters


def test_files_on_a_disk_share_are_not_pipes(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(tree_connect_req(8, "\\\\srv\\C$")))
    conv.send(False, nb(tree_connect_resp(8, tree=9, share_type=1)))
    conv.send(True, nb(create_req(9, "samr", tree=9)))
    conv.send(False, nb(create_resp(9, FID_B, tree=9)))
    conv.send(True, nb(write_req(10, FID_B, b.bind(1, [(0, b.SAMR, 1)]) + b.request(2, 64), tree=9)))
    recs = run(tmp_path, conv)
    assert not calls(recs) and not [r for r in recs if isinstance(r, BindRecord)]
    assert "smb_pipes_opened" not in summary(recs).counters


# -- SMB1 ---------------------------------------------------------------------------------------
def smb1(cmd: int, mid: int, words: bytes, data: bytes, *, resp: bool = False, status: int = 0,
         tid: int = 7, uid: int = 100, pid: int = 4242, flags2: int = 0xC807) -> bytes:  # fmt: skip
    hdr = struct.pack("<4sBIBHHQHHHHH", b"\xffSMB", cmd, status, 0x98 if resp else 0x18, flags2,
                      0, 0, 0, tid, pid, uid, mid)  # fmt: skip
    return hdr + bytes([len(words) // 2]) + words + struct.pack("<H", len(data)) + data


def andx(next_cmd: int = 0xFF, next_off: int = 0) -> bytes:
    return struct.pack("<BBH", next_cmd, 0, next_off)


def smb1_tree_connect(conv: b.Conv) -> None:
    conv.send(True, nb(smb1(0x72, 1, b"", b"\x02NT LM 0.12\x00")))
    conv.send(False, nb(smb1(0x72, 1, struct.pack("<H", 0) + b"\0" * 32, b"", resp=True)))
    path = "\\\\SRV\\IPC$".encode("utf-16-le") + b"\0\0"
    conv.send(True, nb(smb1(0x75, 2, andx() + struct.pack("<HH", 0, 1), b"\0" + path + b"?????\0")))
    conv.send(False, nb(smb1(0x75, 2, andx() + struct.pack("<H", 1), b"IPC\0", resp=True)))


def nt_create(mid: int, name: str, **kw: int) -> bytes:
    n = name.encode("utf-16-le")
    words = andx() + struct.pack("<BHIIIQIIIIIB", 0, len(n), 0, 0, 0x2019F, 0, 0, 3, 1, 0, 2, 0)
    # bytes start at 32 + 1 + 48 + 2 = 83 (odd): one pad byte aligns the Unicode name
    return smb1(0xA2, mid, words, b"\0" + n + b"\0\0", **kw)


def nt_create_resp(mid: int, fid: int, **kw: int) -> bytes:
    words = andx() + struct.pack("<BHI", 0, fid, 1) + b"\0" * 32 + struct.pack("<IQQHHB", 0x80, 0, 0, 2, 0, 0)
    return smb1(0xA2, mid, words, b"", resp=True, **kw)


def write_andx(
    mid: int, fid: int, data: bytes, *, chain: bytes = b"", chain_cmd: int = 0xFF, **kw: int
) -> bytes:
    # words: 14 words (28 bytes) -> data offset = 32 + 1 + 28 + 2 = 63, one pad byte -> 64
    doff = 64
    nxt = doff + len(data) if chain else 0
    words = andx(chain_cmd, nxt) + struct.pack("<HIIHHHHHI", fid, 0, 0, 0x0008, len(data), 0, len(data),
                                              doff, 0)  # fmt: skip
    msg = smb1(0x2F, mid, words, b"\0" + data, **kw)
    return msg + chain


def read_andx_words(fid: int) -> bytes:
    return struct.pack("<HIHHIHI", fid, 0, 4280, 4280, 0, 0, 0)


def read_andx(mid: int, fid: int, **kw: int) -> bytes:
    return smb1(0x2E, mid, andx() + read_andx_words(fid), b"", **kw)


def read_andx_resp(mid: int, data: bytes, **kw: int) -> bytes:
    # 12 words -> data offset 32 + 1 + 24 + 2 = 59, one pad byte -> 60
    words = andx() + struct.pack("<HHHHHHHHHH", 0xFFFF, 0, 0, len(data), 60, 0, 0, 0, 0, 0)
    return smb1(0x2E, mid, words, b"\0" + data, resp=True, **kw)


def transact_nmpipe(mid: int, fid: int, data: bytes, **kw: int) -> bytes:
    name = "\\PIPE\\".encode("utf-16-le") + b"\0\0"
    # 16 words -> bytes at 32 + 1 + 32 + 2 = 67; pad 1, name 14 -> no parameters, data at 82
    doff = 67 + 1 + len(name)
    words = struct.pack("<HHHHBBHIHHHHHBBHH", 0, len(data), 0, 4280, 0, 0, 0, 0, 0, 0, doff, len(data), doff,
                        2, 0, 0x26, fid)  # fmt: skip
    return smb1(0x25, mid, words, b"\0" + name + data, **kw)


def transact_resp(mid: int, data: bytes, total: int | None = None, disp: int = 0, **kw: int) -> bytes:
    # 10 words -> data at 32 + 1 + 20 + 2 = 55, pad 1 -> 56
    total = len(data) if total is None else total
    words = struct.pack("<HHHHHHHHHBB", 0, total, 0, 0, 56, 0, len(data), 56, disp, 0, 0)
    return smb1(0x25, mid, words, b"\0" + data, resp=True, **kw)


def smb1_session(conv: b.Conv, mid: int, uid: int, user: str) -> None:
    """SESSION_SETUP_ANDX with extended security (12 words, NTLM AUTHENTICATE blob); the server
    assigns *uid*."""
    blob = ntlm_auth(user, "CORP")
    words = andx() + struct.pack("<HHHIHII", 4356, 50, 0, 0, len(blob), 0, 0x800000D4)
    conv.send(True, nb(smb1(0x73, mid, words, blob, uid=0, tid=0)))
    conv.send(False, nb(smb1(0x73, mid, andx() + struct.pack("<HH", 0, 0), b"", resp=True, uid=uid, tid=0)))


def smb1_ipc(conv: b.Conv, mid: int, uid: int, tid: int) -> None:
    """TREE_CONNECT_ANDX to IPC$ in session *uid*; the server assigns *tid*."""
    path = "\\\\SRV\\IPC$".encode("utf-16-le") + b"\0\0"
    words = andx() + struct.pack("<HH", 0, 1)
    conv.send(True, nb(smb1(0x75, mid, words, b"\0" + path + b"?????\0", uid=uid, tid=0)))
    answer = smb1(0x75, mid, andx() + struct.pack("<H", 1), b"IPC\0", resp=True, uid=uid, tid=tid)
    conv.send(False, nb(answer))


def smb1_close(mid: int, fid: int, **kw: int) -> bytes:
    return smb1(0x04, mid, struct.pack("<HI", fid, 0), b"", **kw)


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_smb1_same_fid_in_two_sessions_and_two_trees(tmp_path: Path) -> None:
    """SMB1 pipes are keyed by (UID, TID, FID): FID 0x4000 under (uid 100, tid 7) lsarpc, (uid 100,
    tid 8) samr, (uid 200, tid 7) srvsvc, interleaved, closing one. The construction is the oracle;
    tshark finds the same requests at the same frames with the same opnums, but keys SMB1 file
    names by (TID, FID) and binds by FID alone (MS-CIFS makes a FID unique per connection, so it
    never expects this reuse): it names uid 200's srvsvc pipe ``lsarpc`` and dissects all five
    requests as LSARPC."""
    conv = b.Conv(dport=445)
    conv.handshake()
    conv.send(True, nb(smb1(0x72, 1, b"", b"\x02NT LM 0.12\x00", uid=0, tid=0)))
    conv.send(False, nb(smb1(0x72, 1, struct.pack("<H", 0) + b"\0" * 32, b"", resp=True, uid=0, tid=0)))
    smb1_session(conv, 2, 100, "alice")
    smb1_session(conv, 3, 200, "bob")
    smb1_ipc(conv, 4, 100, 7)
    smb1_ipc(conv, 5, 100, 8)
    smb1_ipc(conv, 6, 200, 7)
    fid = 0x4000
    lsa, samr, srv = {"uid": 100, "tid": 7}, {"uid": 100, "tid": 8}, {"uid": 200, "tid": 7}
    conv.send(True, nb(nt_create(7, "\\lsarpc", **lsa)))
    conv.send(True, nb(nt_create(8, "\\samr", **samr)))
    conv.send(True, nb(nt_create(9, "\\srvsvc", **srv)))
    conv.send(False, nb(nt_create_resp(9, fid, **srv)))
    conv.send(False, nb(nt_create_resp(7, fid, **lsa)))
    conv.send(False, nb(nt_create_resp(8, fid, **samr)))
    conv.send(True, nb(write_andx(10, fid, b.bind(1, [(0, SRVSVC, 3)]), **srv)))
    conv.send(True, nb(write_andx(11, fid, b.bind(1, [(0, b.SAMR, 1)]), **samr)))
    conv.send(True, nb(write_andx(12, fid, b.bind(1, [(0, LSARPC, 0)]), **lsa)))
    conv.send(True, nb(read_andx(13, fid, **samr)))
    conv.send(True, nb(read_andx(14, fid, **lsa)))
    conv.send(True, nb(read_andx(15, fid, **srv)))
    conv.send(False, nb(read_andx_resp(15, b.bind_ack(1, 1), **srv)))
    conv.send(False, nb(read_andx_resp(13, b.bind_ack(1, 1), **samr)))
    conv.send(False, nb(read_andx_resp(14, b.bind_ack(1, 1), **lsa)))
    conv.send(True, nb(transact_nmpipe(16, fid, b.request(2, 44), **lsa)))
    conv.send(True, nb(transact_nmpipe(17, fid, b.request(2, 15), **srv)))
    conv.send(True, nb(transact_nmpipe(18, fid, b.request(2, 64), **samr)))
    conv.send(False, nb(transact_resp(18, b.response(2), **samr)))
    conv.send(False, nb(transact_resp(16, b.response(2), **lsa)))
    conv.send(False, nb(transact_resp(17, b.response(2), **srv)))
    conv.send(True, nb(smb1_close(19, fid, **lsa)))
    conv.send(False, nb(smb1(0x04, 19, b"", b"", resp=True, **lsa)))
    conv.send(True, nb(transact_nmpipe(20, fid, b.request(3, 1), **samr)))
    conv.send(True, nb(transact_nmpipe(21, fid, b.request(3, 16), **srv)))
    conv.send(False, nb(transact_resp(21, b.response(3), **srv)))
    conv.send(False, nb(transact_resp(20, b.response(3), **samr)))
    path = b.write(tmp_path / "smb1.pcap", b.pcap(conv.frames))
    recs = list(analyze([path]))
    got = sorted((c.named_pipe, c.interface, c.operation, c.if_source, c.status, c.user) for c in calls(recs))
    assert got == [
        ("lsarpc", "lsarpc", "LsarOpenPolicy2", "bind", "ok", "CORP\\alice"),
        ("samr", "samr", "SamrCloseHandle", "bind", "ok", "CORP\\alice"),
        ("samr", "samr", "SamrConnect5", "bind", "ok", "CORP\\alice"),
        ("srvsvc", "srvsvc", "NetrShareEnum", "bind", "ok", "CORP\\bob"),
        ("srvsvc", "srvsvc", "NetrShareGetInfo", "bind", "ok", "CORP\\bob"),
    ]
    c = summary(recs).counters
    assert c["smb_pipes_opened"] == 3 and "smb_pipe_without_create" not in c
    ref = tshark_requests(path)
    assert {(t.frame, t.opnum) for t in ref} == {(x.req_frame, x.opnum) for x in calls(recs)}
    assert {t.frame: t.pipe for t in ref if t.pipe != "lsarpc"} == {
        x.req_frame: x.named_pipe for x in calls(recs) if x.named_pipe == "samr"
    }  # where tshark tells the pipes apart (by TID), it agrees


def test_smb1_create_write_read_transact(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb1_tree_connect(conv)
    conv.send(True, nb(nt_create(3, "\\srvsvc")))
    conv.send(False, nb(nt_create_resp(3, 0x4001)))
    conv.send(True, nb(nt_create(4, "\\samr")))
    conv.send(False, nb(nt_create_resp(4, 0x4002)))
    conv.send(True, nb(write_andx(5, 0x4001, b.bind(1, [(0, b.SAMR, 1)]))))
    conv.send(True, nb(write_andx(6, 0x4002, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(True, nb(read_andx(7, 0x4002)))
    conv.send(True, nb(read_andx(8, 0x4001)))
    conv.send(False, nb(read_andx_resp(8, b.bind_ack(1, 1))))
    conv.send(False, nb(read_andx_resp(7, b.bind_ack(1, 1))))
    conv.send(True, nb(transact_nmpipe(9, 0x4001, b.request(2, 64))))
    req_frame = frame_no(conv)
    conv.send(True, nb(transact_nmpipe(10, 0x4002, b.request(2, 44))))
    conv.send(False, nb(transact_resp(10, b.response(2))))
    conv.send(False, nb(transact_resp(9, b.response(2))))
    resp_frame = frame_no(conv)
    recs = run(tmp_path, conv)
    got = sorted((c.named_pipe, c.interface, c.operation, c.status) for c in calls(recs))
    assert got == [("samr", "lsarpc", "LsarOpenPolicy2", "ok"), ("srvsvc", "samr", "SamrConnect5", "ok")]
    samr = next(c for c in calls(recs) if c.interface == "samr")
    assert (samr.req_frame, samr.resp_frame, samr.transport) == (req_frame, resp_frame, "ncacn_np")


def test_smb1_transaction_response_in_several_parts(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb1_tree_connect(conv)
    conv.send(True, nb(nt_create(3, "\\lsarpc")))
    conv.send(False, nb(nt_create_resp(3, 0x51)))
    conv.send(True, nb(transact_nmpipe(4, 0x51, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(False, nb(transact_resp(4, b.bind_ack(1, 1))))
    conv.send(True, nb(transact_nmpipe(5, 0x51, b.request(2, 44))))
    answer = b.response(2, b"\x22" * 200)
    conv.send(False, nb(transact_resp(5, answer[:100], total=len(answer))))
    conv.send(False, nb(transact_resp(5, answer[100:], total=len(answer), disp=100)))  # same MID
    (call,) = calls(run(tmp_path, conv))
    assert (call.operation, call.status, call.resp_stub_len, call.resp_frame) == (
        "LsarOpenPolicy2",
        "ok",
        200,
        len(conv.frames),
    )


def transact_first(mid: int, fid: int, data: bytes, total: int, **kw: int) -> bytes:
    """A TransactNmPipe SMB_COM_TRANSACTION carrying the first *len(data)* of *total* data bytes
    (MS-CIFS 2.2.4.33.1: TotalDataCount > DataCount, the rest follows in secondary requests)."""
    name = "\\PIPE\\".encode("utf-16-le") + b"\0\0"
    doff = 67 + 1 + len(name)
    words = struct.pack("<HHHHBBHIHHHHHBBHH", 0, total, 0, 4280, 0, 0, 0, 0, 0, 0, doff, len(data), doff,
                        2, 0, 0x26, fid)  # fmt: skip
    return smb1(0x25, mid, words, b"\0" + name + data, **kw)


def transact_secondary(mid: int, data: bytes, total: int, disp: int, **kw: int) -> bytes:
    """SMB_COM_TRANSACTION_SECONDARY (0x26, MS-CIFS 2.2.4.34.1): 8 words (TotalParameterCount,
    TotalDataCount, ParameterCount, ParameterOffset, ParameterDisplacement, DataCount, DataOffset,
    DataDisplacement); bytes at 32 + 1 + 16 + 2 = 51, one pad byte, data at 52."""
    words = struct.pack("<HHHHHHHH", 0, total, 0, 52, 0, len(data), 52, disp)
    return smb1(0x26, mid, words, b"\0" + data, **kw)


def interim_resp(mid: int) -> bytes:
    """The server's interim response to an incomplete primary transaction: no words, no bytes."""
    return smb1(0x25, mid, b"", b"", resp=True)


@pytest.mark.skipif(not have_tshark(), reason="tshark is not installed")
def test_smb1_transact_nmpipe_continued_in_transaction_secondary(tmp_path: Path) -> None:
    """A TransactNmPipe request larger than its SMB_COM_TRANSACTION: 100 of 324 bytes in the
    primary, the rest in two TRANSACTION_SECONDARY requests sent out of order (displacement 200,
    then 100) after the server's interim response; then one of 524 bytes, 300 + 224, in order,
    without an interim response. Each request completes at the secondary that completes its data,
    and pairs with the transaction's final response.

    tshark 4.0.17 (``smb.trans_reassembly`` on, the default) does not hand the gathered
    secondaries to its pipe dissector: it feeds the primary's partial data straight to its DCE/RPC
    reassembly and glues the next transaction's bytes to it (it reports opnum 44, call 2, at the
    frame of the second primary). So tshark's SMB layer is the oracle here: the parts as it parses
    them (TotalDataCount, DataCount, DataDisplacement, the bytes), put together by displacement,
    must give the requests rpcinspect reports."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb1_tree_connect(conv)
    conv.send(True, nb(nt_create(3, "\\lsarpc")))
    conv.send(False, nb(nt_create_resp(3, 0x51)))
    conv.send(True, nb(transact_nmpipe(4, 0x51, b.bind(1, [(0, LSARPC, 0)]))))
    conv.send(False, nb(transact_resp(4, b.bind_ack(1, 1))))
    req = b.request(2, 44, bytes(range(256)) + b"\x33" * 44)
    conv.send(True, nb(transact_first(5, 0x51, req[:100], len(req))))
    conv.send(False, nb(interim_resp(5)))
    conv.send(True, nb(transact_secondary(5, req[200:], len(req), 200)))
    conv.send(True, nb(transact_secondary(5, req[100:200], len(req), 100)))
    first_done = frame_no(conv)
    conv.send(False, nb(transact_resp(5, b.response(2))))
    first_resp = frame_no(conv)
    req2 = b.request(3, 45, b"\x44" * 500)
    conv.send(True, nb(transact_first(6, 0x51, req2[:300], len(req2))))
    conv.send(True, nb(transact_secondary(6, req2[300:], len(req2), 300)))
    second_done = frame_no(conv)
    conv.send(False, nb(transact_resp(6, b.response(3))))
    second_resp = frame_no(conv)
    path = b.write(tmp_path / "smb1.pcap", b.pcap(conv.frames))
    recs = list(analyze([path]))
    got = [(c.req_frame, c.resp_frame, c.call_id, c.opnum, c.operation, c.status, c.req_stub_len)
           for c in calls(recs)]  # fmt: skip
    assert sorted(got) == [
        (first_done, first_resp, 2, 44, "LsarOpenPolicy2", "ok", 300),
        (second_done, second_resp, 3, 45, "LsarGetUserName", "ok", 500),
    ]
    c = summary(recs).counters
    assert c["smb1_trans_secondary"] == 3 and "malformed_smb" not in c and "malformed_pdu" not in c
    # the oracle: tshark's parse of every request part, gathered by (MID, displacement)
    rows = b.tshark_fields(
        path,
        "smb.flags.response == 0 && (smb.cmd == 0x26 || (smb.cmd == 0x25 && smb.tdc > smb.dc))",
        ["frame.number", "smb.cmd", "smb.mid", "smb.tdc", "smb.dc", "smb.data_disp", "smb.data_offset",
         "tcp.payload"],
    )  # fmt: skip
    parts: dict[int, list[tuple[int, bytes, int]]] = {}
    totals: dict[int, int] = {}
    for frame, cmd, mid, tdc, dc, disp, doff, payload in rows:
        raw = bytes.fromhex(payload)[4:]  # past the direct-TCP header: offsets count from the SMB header
        data = raw[int(doff) : int(doff) + int(dc)]
        parts.setdefault(int(mid), []).append((int(disp or 0) if cmd == "0x26" else 0, data, int(frame)))
        totals[int(mid)] = int(tdc)
    theirs = []
    for mid, ps in parts.items():
        pdu = bytearray(totals[mid])
        for disp, data, _ in ps:
            pdu[disp : disp + len(data)] = data
        frag_len, call_id = struct.unpack_from("<HxxI", pdu, 8)
        opnum = struct.unpack_from("<H", pdu, 22)[0]
        assert pdu[2] == 0 and frag_len == len(pdu)  # a whole request PDU
        theirs.append((max(f for _, _, f in ps), call_id, opnum, frag_len - 24))
    assert sorted(theirs) == sorted((r[0], r[2], r[3], r[6]) for r in got)


def test_smb1_transaction_secondary_hostile_and_bounded() -> None:
    """A secondary part beyond TotalDataCount drops its transaction (malformed_smb); a secondary
    without its primary is counted; transactions awaiting their parts are bounded."""
    from rpcinspect.transports.smb1 import MAX_SMB1_TRANSACTIONS

    h, r, _ = handler()
    for dirn, msg in ((0, nt_create(3, "\\lsarpc")), (1, nt_create_resp(3, 0x51))):
        h.data(dirn, nb(msg), 1, 0.0)
    bind = b.bind(1, [(0, LSARPC, 0)])
    h.data(0, nb(transact_first(4, 0x51, bind[:10], len(bind))), 2, 0.0)
    h.data(0, nb(transact_secondary(4, bind[10:], len(bind), 60)), 3, 0.0)  # 60 + 62 > 72
    assert r.counters["malformed_smb"] == 1 and not h.trans
    h.data(0, nb(transact_secondary(9, b"x", 5, 0)), 4, 0.0)  # no primary with MID 9
    assert r.counters["smb1_trans_secondary_untracked"] == 1
    for mid in range(100, 100 + MAX_SMB1_TRANSACTIONS + 5):
        h.data(0, nb(transact_first(mid, 0x51, b"\x05\x00", 60000)), 5, 0.0)
    assert len(h.trans) == MAX_SMB1_TRANSACTIONS and r.counters["smb_limit"] == 5
    (pipe,) = h.pipes.values()
    assert not pipe.assoc.binds  # nothing incomplete reached the pipe


def test_smb1_andx_chain_write_then_read(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb1_tree_connect(conv)
    conv.send(True, nb(nt_create(3, "\\lsarpc")))
    conv.send(False, nb(nt_create_resp(3, 0x77)))
    exchanges = ((4, b.bind(1, [(0, LSARPC, 0)]), b.bind_ack(1, 1)), (5, b.request(2, 44), b.response(2)))
    for mid, bind, answer in exchanges:
        # Write AndX chained to a Read AndX in the same message: the Read's words follow the data
        chained = bytes([12]) + andx() + read_andx_words(0x77) + b"\0\0"
        conv.send(True, nb(write_andx(mid, 0x77, bind, chain=chained, chain_cmd=0x2E)))
        # the response chain: Write AndX response, then Read AndX response with the data
        w_words = andx(0x2E, 0) + struct.pack("<HHHH", len(bind), 0xFFFF, 0, 0)
        w = smb1(0x2F, mid, w_words, b"", resp=True)
        r_off = len(w)
        r_words = andx() + struct.pack("<HHHHHHHHHH", 0, 0, 0, len(answer), r_off + 1 + 24 + 2, 0, 0, 0, 0, 0)
        msg = w + bytes([12]) + r_words + struct.pack("<H", len(answer)) + answer
        msg = msg[:33] + andx(0x2E, r_off) + msg[37:]
        conv.send(False, nb(msg))
    recs = run(tmp_path, conv)
    (call,) = calls(recs)
    assert (call.named_pipe, call.operation, call.status) == ("lsarpc", "LsarOpenPolicy2", "ok")
    assert summary(recs).counters["smb1_andx"] >= 4


# -- session facts, normalisation ---------------------------------------------------------------
def handler(limits: Limits | None = None) -> tuple[SmbHandler, Run, list[Record]]:
    out: list[Record] = []
    r = Run(load_catalog(), out.append, limits=limits or Limits())
    return SmbHandler(r, ("10.0.0.1", 40000, "10.0.0.2", 445), TcpSelector(r).channel), r, out


def test_session_facts_on_the_pipe_association() -> None:
    h, _, _ = handler()
    for dirn, msg in (
        (1, negotiate_resp(0x0311)),
        (0, session_setup_req(1, ntlm_auth("bob", "EXAMPLE"))),
        (1, session_setup_resp(1)),
        (0, tree_connect_req(2)),
        (1, tree_connect_resp(2)),
        (0, create_req(3, "\\pipe\\NetLogon")),
        (1, create_resp(3, FID_A)),
    ):
        h.data(dirn, nb(msg), 1, 0.0)
    (pipe,) = h.pipes.values()
    assert pipe.assoc.named_pipe == "netlogon"
    assert pipe.assoc.smb == SmbSession("3.1.1", "bob", "EXAMPLE", "ntlm", True, False)


def test_guest_session_flag() -> None:
    h, _, _ = handler()
    h.data(0, nb(session_setup_req(1, ntlm_auth("x", "Y"))), 1, 0.0)
    h.data(1, nb(session_setup_resp(1, session_flags=0x1, signed=False)), 2, 0.0)
    h.data(0, nb(create_req(3, "srvsvc")), 3, 0.0)
    h.data(1, nb(create_resp(3, FID_A)), 4, 0.0)
    (pipe,) = h.pipes.values()
    assert isinstance(pipe.assoc.smb, SmbSession)
    assert (pipe.assoc.smb.mechanism, pipe.assoc.smb.signed) == ("guest", False)


def test_normalise_pipe() -> None:
    assert normalise_pipe("\\PIPE\\LSARPC") == "lsarpc"
    assert normalise_pipe("lsarpc") == "lsarpc"
    assert normalise_pipe("\\srvsvc\x00") == "srvsvc"


# -- hostile ------------------------------------------------------------------------------------
def test_ten_thousand_open_file_ids_stay_bounded() -> None:
    h, r, out = handler(Limits(max_smb_pipes=64, max_anomalies_per_kind=5))
    h.data(0, nb(tree_connect_req(1)), 1, 0.0)
    h.data(1, nb(tree_connect_resp(1)), 2, 0.0)
    for i in range(10_000):
        fid = i.to_bytes(16, "little")
        h.data(0, nb(create_req(10 + i, "lsarpc")), 3 + i, 0.0)
        h.data(1, nb(create_resp(10 + i, fid)), 3 + i, 0.0)
    assert len(h.pipes) == 64
    assert r.counters["smb_pipes_opened"] == 10_000
    assert r.counters["smb_limit"] == 10_000 - 64
    assert len([x for x in out if isinstance(x, AnomalyRecord)]) == 5
    # and pending requests are bounded too
    for i in range(10_000):
        h.data(0, nb(read_req(100_000 + i, FID_A)), 1, 0.0)
    assert len(h.pending) <= r.limits.max_smb_pending


def test_truncated_and_garbage_smb_is_counted_not_fatal() -> None:
    h, r, _ = handler()
    h.data(0, nb(b"\xfeSMB" + b"\0" * 20), 1, 0.0)  # SMB2 header cut at 24 bytes
    h.data(0, nb(b"\xffSMB\x2f"), 2, 0.0)  # SMB1 header cut
    h.data(0, nb(b"\xfdSMB"), 3, 0.0)  # TRANSFORM header cut
    h.data(0, nb(b"GET / HTTP/1.1\r\n"), 4, 0.0)  # not SMB at all
    h.data(0, b"\x42\x42\x42\x42garbage", 5, 0.0)  # not a direct-TCP header
    h.data(0, nb(create_req(3, "lsarpc"))[:-3] + b"", 6, 0.0)  # cut short at the end...
    h.close("end_of_capture", 7, 0.0)
    assert r.counters["malformed_smb"] == 5
    assert r.counters["truncated_smb"] == 1


def test_read_longer_than_any_write_and_fields_out_of_bounds() -> None:
    h, r, _ = handler()
    for dirn, msg in (
        (0, tree_connect_req(2)), (1, tree_connect_resp(2)),
        (0, create_req(3, "lsarpc")), (1, create_resp(3, FID_A)),
        (0, write_req(4, FID_A, b.bind(1, [(0, LSARPC, 0)]))),
        (0, read_req(5, FID_A)),
    ):  # fmt: skip
        h.data(dirn, nb(msg), 1, 0.0)
    h.data(1, nb(read_resp(5, b.bind_ack(1, 1), declared=1_000_000)), 2, 0.0)  # says 1 MB, has 60 bytes
    assert r.counters["malformed_smb"] == 1
    h.data(0, nb(read_req(6, FID_A)), 3, 0.0)
    h.data(1, nb(read_resp(6, b"\x05\x00\x02\x03\x10\x00\x00\x00\xff\xff" + b"\0" * 30000)), 4, 0.0)
    # the pipe's framer buffers at most one PDU; the analysis goes on
    (pipe,) = h.pipes.values()
    assert sum(len(x) for x in pipe.framer.bufs) <= r.limits.max_pdu_buffer


def test_overlapping_writes_and_oversized_message(tmp_path: Path) -> None:
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    conv.send(True, nb(create_req(3, "lsarpc")))
    conv.send(False, nb(create_resp(3, FID_A)))
    bind = b.bind(1, [(0, LSARPC, 0)])
    conv.send(True, nb(write_req(4, FID_A, bind, offset=0)))
    conv.send(True, nb(write_req(5, FID_A, b"\x01" * 5000, offset=0)))  # same offset again, junk
    conv.send(True, nb(b"\xfeSMB" + b"\0" * 9000))  # over the lowered message limit: skipped
    conv.send(True, nb(write_req(6, FID_A, b.request(2, 44), offset=10)))
    conv.send(True, nb(read_req(7, FID_A)))
    conv.send(False, nb(read_resp(7, b.bind_ack(1, 1) + b.response(2))))
    recs = run(tmp_path, conv, Limits(max_smb_message=8192))
    c = summary(recs).counters
    assert c["smb_limit"] == 1 and c["malformed_pdu"] >= 1
    (call,) = calls(recs)
    assert (call.operation, call.status) == ("LsarOpenPolicy2", "ok")


def test_smb2_create_and_related_write_in_one_compound(tmp_path: Path) -> None:
    """CREATE + WRITE + READ in one compound: the WRITE and READ name the file id all-FF (related
    operations), which only the CREATE's answer resolves."""
    conv = b.Conv(dport=445)
    conv.handshake()
    smb2_setup(conv)
    all_ff = b"\xff" * 16
    related = 0x4  # SMB2_FLAGS_RELATED_OPERATIONS
    w = write_req(4, all_ff, b.bind(1, [(0, LSARPC, 0)]))
    r = read_req(5, all_ff)
    w = w[:16] + struct.pack("<I", struct.unpack_from("<I", w, 16)[0] | related) + w[20:]
    r = r[:16] + struct.pack("<I", struct.unpack_from("<I", r, 16)[0] | related) + r[20:]
    conv.send(True, nb(compound(create_req(3, "lsarpc"), w, r)))
    bind_frame = frame_no(conv)
    conv.send(False, nb(compound(create_resp(3, FID_A), write_resp(4, 1), read_resp(5, b.bind_ack(1, 1)))))
    conv.send(True, nb(write_req(6, FID_A, b.request(2, 44))))
    conv.send(True, nb(read_req(7, FID_A)))
    conv.send(False, nb(compound(write_resp(6, 1), read_resp(7, b.response(2)))))
    recs = run(tmp_path, conv)
    bind = next(x for x in recs if isinstance(x, BindRecord))
    assert (bind.status, bind.req_frame, bind.named_pipe) == ("ok", bind_frame, "lsarpc")
    (call,) = calls(recs)
    assert (call.operation, call.status, call.named_pipe, call.interface) == (
        "LsarOpenPolicy2", "ok", "lsarpc", "lsarpc",
    )  # fmt: skip
