"""Test input builders: DCE/RPC PDUs (built with Scapy, an independent encoder) and pcap files.

The pcap side is hand-made with ``struct`` so tests control every byte: link type, VLAN tags,
IPv6, TCP sequence numbers, segmentation, reordering and truncation.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from pathlib import Path

from scapy.layers.dcerpc import (
    DceRpc5,
    DceRpc5AbstractSyntax,
    DceRpc5Bind,
    DceRpc5BindAck,
    DceRpc5BindNak,
    DceRpc5Context,
    DceRpc5Fault,
    DceRpc5PortAny,
    DceRpc5Request,
    DceRpc5Response,
    DceRpc5Result,
    DceRpc5TransferSyntax,
    DceRpc5Version,
)

NDR = "8a885d04-1ceb-11c9-9fe8-08002b104860"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
EPM = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
NDR64 = "71710533-beba-4937-8319-b5dbef9ccc36"
NIL = "00000000-0000-0000-0000-000000000000"
CLIENT = bytes([10, 0, 0, 1])
SERVER = bytes([10, 0, 0, 2])


def _hdr(ptype: int, call_id: int, flags: int, little: bool) -> DceRpc5:
    return DceRpc5(ptype=ptype, pfc_flags=flags, call_id=call_id, endian="little" if little else "big")


def bind(
    call_id: int, contexts: Iterable[tuple[int, str, int]], *, little: bool = True, ptype: int = 11
) -> bytes:
    """A bind (or alter_context with ptype=14) offering (ctx_id, uuid, major) with NDR."""
    elems = [
        DceRpc5Context(
            cont_id=cid,
            abstract_syntax=DceRpc5AbstractSyntax(if_uuid=uuid.UUID(u), if_version=major),
            transfer_syntaxes=[DceRpc5TransferSyntax(if_uuid=uuid.UUID(NDR), if_version=2)],
        )
        for cid, u, major in contexts
    ]
    return bytes(
        _hdr(ptype, call_id, 3, little)
        / DceRpc5Bind(max_xmit_frag=4280, max_recv_frag=4280, context_elem=elems)
    )


def bind_ack(call_id: int, n: int, *, little: bool = True, result: int = 0, port: str = "49154") -> bytes:
    """A bind_ack answering *n* contexts alike: all accepted with NDR, or all refused (*result*)."""
    accepted = (0, 0, NDR, 2)
    refused = (result, 1, "00000000-0000-0000-0000-000000000000", 0)
    return bind_ack_results(call_id, [accepted if result == 0 else refused] * n, little=little, port=port)


def version(major: int, minor: int = 0) -> int:
    """p_syntax_id_t if_version as the one 32-bit integer C706 defines: major low, minor high."""
    return major | (minor << 16)


def bind_syntaxes(
    call_id: int,
    contexts: Iterable[tuple[int, str, int, Iterable[tuple[str, int]]]],
    *,
    little: bool = True,
    ptype: int = 11,
) -> bytes:
    """A bind offering (ctx_id, uuid, if_version, [(transfer uuid, transfer if_version), ...]);
    versions are 32-bit values (see :func:`version`)."""
    elems = [
        DceRpc5Context(
            cont_id=cid,
            abstract_syntax=DceRpc5AbstractSyntax(if_uuid=uuid.UUID(u), if_version=ver),
            transfer_syntaxes=[
                DceRpc5TransferSyntax(if_uuid=uuid.UUID(tu), if_version=tv) for tu, tv in transfers
            ],
        )
        for cid, u, ver, transfers in contexts
    ]
    return bytes(
        _hdr(ptype, call_id, 3, little)
        / DceRpc5Bind(max_xmit_frag=4280, max_recv_frag=4280, context_elem=elems)
    )


def bind_ack_results(
    call_id: int,
    results: Iterable[tuple[int, int, str, int]],
    *,
    little: bool = True,
    port: str = "49154",
    ptype: int = 12,
) -> bytes:
    """A bind_ack (or alter_context_resp, ptype=15) with (result, reason, transfer uuid, version) each."""
    res = [
        DceRpc5Result(
            result=r,
            reason=why,
            transfer_syntax=DceRpc5TransferSyntax(if_uuid=uuid.UUID(tu), if_version=tv),
        )
        for r, why, tu, tv in results
    ]
    body = DceRpc5BindAck(
        max_xmit_frag=4280,
        max_recv_frag=4280,
        assoc_group_id=0x1234,
        sec_addr=DceRpc5PortAny(port_spec=port.encode() + b"\0"),
        results=res,
    )
    return bytes(_hdr(ptype, call_id, 3, little) / body)


def bind_nak(call_id: int, reason: int, *, little: bool = True) -> bytes:
    """A bind_nak (type 13) with provider_reject_reason *reason*, listing protocol version 5.0."""
    body = DceRpc5BindNak(provider_reject_reason=reason, protocols=[DceRpc5Version(major=5, minor=0)])
    return bytes(_hdr(13, call_id, 3, little) / body)


def request(
    call_id: int,
    opnum: int,
    stub: bytes = b"\0" * 8,
    *,
    ctx: int = 0,
    little: bool = True,
    flags: int = 3,
    obj: str | None = None,
) -> bytes:
    if obj is not None:
        flags |= 0x80
    kw = {"opnum": opnum, "cont_id": ctx, "alloc_hint": len(stub)}
    if obj is not None:
        kw["object"] = uuid.UUID(obj)
    return bytes(_hdr(0, call_id, flags, little) / DceRpc5Request(**kw) / stub)


def response(
    call_id: int, stub: bytes = b"\0" * 8, *, ctx: int = 0, little: bool = True, flags: int = 3
) -> bytes:
    return bytes(_hdr(2, call_id, flags, little) / DceRpc5Response(cont_id=ctx, alloc_hint=len(stub)) / stub)


def fault(call_id: int, status: int, *, ctx: int = 0, little: bool = True) -> bytes:
    return bytes(_hdr(3, call_id, 3, little) / DceRpc5Fault(cont_id=ctx, status=status))


# -- frames ------------------------------------------------------------------------------------------
def tcp(sport: int, dport: int, seq: int, payload: bytes = b"", flags: int = 0x18, *, ack: int = 0) -> bytes:
    return (
        struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 5 << 4, flags, 65535, 0, 0) + payload
    )


def ipv4(src: bytes, dst: bytes, l4: bytes, proto: int = 6) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0, src, dst) + l4


def ipv6(src: bytes, dst: bytes, l4: bytes, proto: int = 6) -> bytes:
    return struct.pack(">IHBB16s16s", 6 << 28, len(l4), proto, 64, src, dst) + l4


def ether(l3: bytes, *, v6: bool = False, vlans: int = 0) -> bytes:
    tags = b"".join(struct.pack(">HH", 0x8100, 10 + i) for i in range(vlans))
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack(">H", 0x86DD if v6 else 0x0800) + l3


def pcap(frames: Iterable[bytes | tuple[float, bytes]], linktype: int = 1, *, big: bool = False) -> bytes:
    e = ">" if big else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, fr in enumerate(frames):
        ts, data = fr if isinstance(fr, tuple) else (1_700_000_000 + i * 0.001, fr)
        sec = int(ts)
        out.append(struct.pack(e + "IIII", sec, round((ts - sec) * 1e6), len(data), len(data)) + data)
    return b"".join(out)


def pcap_frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each record's packet bytes in a little-endian classic pcap (to damage a
    recorded capture in place)."""
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        out.append((off + 16, incl))
        off += 16 + incl
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class Conv:
    """A client/server TCP conversation on Ethernet/IPv4, emitting frames with running seqs."""

    def __init__(self, sport: int = 40000, dport: int = 135, *, v6: bool = False, vlans: int = 0) -> None:
        self.sport, self.dport, self.v6, self.vlans = sport, dport, v6, vlans
        self.cseq, self.sseq = 1000, 5000
        self.frames: list[bytes] = []

    def _addr(self, client: bool) -> tuple[bytes, bytes]:
        c = CLIENT if not self.v6 else b"\xfd" + b"\0" * 14 + b"\x01"
        s = SERVER if not self.v6 else b"\xfd" + b"\0" * 14 + b"\x02"
        return (c, s) if client else (s, c)

    def frame(self, client: bool, payload: bytes, flags: int = 0x18, seq: int | None = None) -> bytes:
        src, dst = self._addr(client)
        sp, dp = (self.sport, self.dport) if client else (self.dport, self.sport)
        cur = self.cseq if client else self.sseq
        s = cur if seq is None else seq
        peer = self.sseq if client else self.cseq
        seg = tcp(sp, dp, s, payload, flags, ack=peer if flags & 0x10 else 0)
        l3 = ipv6(src, dst, seg) if self.v6 else ipv4(src, dst, seg)
        if seq is None:
            adv = len(payload) + (1 if flags & 0x03 else 0)
            if client:
                self.cseq += adv
            else:
                self.sseq += adv
        return ether(l3, v6=self.v6, vlans=self.vlans)

    def handshake(self) -> list[bytes]:
        f = [self.frame(True, b"", 0x02), self.frame(False, b"", 0x12), self.frame(True, b"", 0x10)]
        self.frames += f
        return f

    def send(self, client: bool, payload: bytes) -> bytes:
        f = self.frame(client, payload)
        self.frames.append(f)
        return f


# -- tshark as an oracle ---------------------------------------------------------------------------
def tshark_fields(
    path: Path, display_filter: str, fields: Iterable[str], *opts: str, occurrence: str = "f"
) -> list[list[str]]:
    """``tshark -T fields`` rows (one list of values per frame) for the frames of *path* matching
    *display_filter*. ``occurrence="f"`` keeps the first occurrence of each field in the frame,
    ``"a"`` all of them, comma-separated; *opts* are extra tshark arguments (``-o pref:value``).
    Callers skip when tshark is not installed."""
    import subprocess

    cmd = ["tshark", "-n", "-r", str(path), *opts, "-Y", display_filter, "-T", "fields"]
    cmd += ["-E", f"occurrence={occurrence}"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


# -- SMB2 named pipes (MS-SMB2 2.2), for tests outside test_smb that need ncacn_np traffic ---------
def nbss(msg: bytes) -> bytes:
    """Direct-TCP (port 445) / NBSS session message framing: a zero byte and a 24-bit length."""
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


def smb2_message(cmd: int, mid: int, body: bytes, *, resp: bool = False, tree: int = 5) -> bytes:
    """One SMB2 message (64-byte sync header, CreditCharge 1, SessionId 0x1122334455667788)."""
    hdr = struct.pack("<4sHHIHHIIQ", b"\xfeSMB", 64, 1, 0, cmd, 1, 1 if resp else 0, 0, mid)
    return hdr + struct.pack("<IIQ", 0, tree, 0x1122334455667788) + b"\0" * 16 + body


def smb2_pipe_calls(
    conv: Conv, pipe: str, fid: bytes, exchanges: Iterable[tuple[bytes, bytes]], mid: int
) -> int:
    """Sends on *conv* (port 445) a CREATE of *pipe* answered with the 16-byte file id *fid*, then
    one IOCTL FSCTL_PIPE_TRANSCEIVE per (request PDUs, response PDUs) exchange; MessageIds count
    up from *mid*. Returns the next free MessageId."""
    n = pipe.encode("utf-16-le")
    create = struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x12019F, 0, 7, 1, 0, 120, len(n), 0, 0) + n
    conv.send(True, nbss(smb2_message(5, mid, create)))
    answer = struct.pack("<HBBI", 89, 0, 0, 1) + b"\0" * 32 + struct.pack("<QQII", 0, 0, 0x80, 0) + fid
    conv.send(False, nbss(smb2_message(5, mid, answer + struct.pack("<II", 0, 0), resp=True)))
    for req, resp in exchanges:
        mid += 1
        body = struct.pack("<HHI", 57, 0, 0x0011C017) + fid
        body += struct.pack("<IIIIIIII", 120, len(req), 0, 120, 0, 4280, 1, 0) + req
        conv.send(True, nbss(smb2_message(11, mid, body)))
        body = struct.pack("<HHI", 49, 0, 0x0011C017) + fid
        body += struct.pack("<IIIIII", 112, 0, 112, len(resp), 0, 0) + resp
        conv.send(False, nbss(smb2_message(11, mid, body, resp=True)))
    return mid + 1
