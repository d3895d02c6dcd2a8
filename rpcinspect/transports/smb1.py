"""ncacn_np over SMB1: NT Create AndX, Write/Read AndX chains and Trans TransactNmPipe.

A mixin of :class:`~rpcinspect.transports.smb.SmbHandler` (which owns the pipe, session and
pending-request state); split out so each module stays one protocol dialect.

A TransactNmPipe request whose data does not fit in its SMB_COM_TRANSACTION (TotalDataCount >
DataCount) continues in SMB_COM_TRANSACTION_SECONDARY requests with the same PID and MID, each
placing its bytes at a DataDisplacement (MS-CIFS 2.2.4.33.1, 2.2.4.34.1); the server answers the
primary with an interim response (no words) and the whole transaction with one final response.
The parts are gathered per (PID, MID), in any order, and the pipe gets the request data once it is
complete, at the frame of the part that completed it (as tshark reports it). At most
:data:`MAX_SMB1_TRANSACTIONS` are gathered at once per connection, each at most 65,535 bytes
(TotalDataCount is 16 bits) in at most :data:`MAX_TRANSACTION_PARTS` parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from rpcinspect.transports.smbcommon import (
    _STATUS_BUFFER_OVERFLOW,
    _U16,
    _U32,
    _auth_facts,
    _utf16,
    normalise_pipe,
)

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = ["MAX_SMB1_TRANSACTIONS", "MAX_TRANSACTION_PARTS", "Smb1Commands", "Smb1Transaction"]

MAX_SMB1_TRANSACTIONS: Final = 16
MAX_TRANSACTION_PARTS: Final = 256


class Smb1Transaction:
    """The request data of one TransactNmPipe transaction, gathered from its primary and secondary
    requests."""

    __slots__ = ("dirn", "fid", "parts", "tid", "total", "uid")

    def __init__(self, uid: int, tid: int, fid: bytes, dirn: int, total: int) -> None:
        self.uid, self.tid, self.fid, self.dirn = uid, tid, fid, dirn
        self.total = total
        self.parts: list[tuple[int, bytes]] = []  # (DataDisplacement, bytes), as they arrived

    def add(self, disp: int, data: bytes, total: int) -> bool | None:
        """Adds one part; True when the data is complete, None when the part is impossible (beyond
        TotalDataCount, which a secondary may only lower, or one part too many)."""
        if 0 < total < self.total:
            self.total = total
        if len(self.parts) >= MAX_TRANSACTION_PARTS or disp + len(data) > self.total:
            return None
        if any(d + len(b) > self.total for d, b in self.parts):
            return None
        self.parts.append((disp, data))
        end = 0
        for d, b in sorted(self.parts):
            if d > end:
                return False
            end = max(end, d + len(b))
        return end >= self.total

    def data(self) -> bytes:
        buf = bytearray(self.total)
        for d, b in self.parts:
            buf[d : d + len(b)] = b
        return bytes(buf)


class Smb1Commands:
    """SMB1 command handling; expects the attributes and helpers SmbHandler defines."""

    __slots__ = ()
    run: Run
    _ep: Endpoints
    sessions: dict[int, Any]
    trans: dict[tuple[int, int], Smb1Transaction]

    # -- SMB1 ----------------------------------------------------------------------------------
    def _smb1(self, dirn: int, m: bytes, frame: int, ts: float) -> None:
        if len(m) < 35:
            self.run.anomaly("malformed_smb", f"truncated SMB1 header ({len(m)} bytes)", frame, ts, self._ep)
            return
        cmd = m[4]
        status = _U32(m, 5)[0]
        reply = bool(m[9] & 0x80)
        unicode = bool(_U16(m, 10)[0] & 0x8000)
        if _U16(m, 10)[0] & 0x0004 and not reply:  # SMB_FLAGS2_SMB_SECURITY_SIGNATURE
            uid = _U16(m, 28)[0]
            s = self.sessions.get(uid)
            if s is not None and not s.signed:
                s.signed = True
                self._refresh(uid, s)
        tid, pid, uid, mid = (
            _U16(m, 24)[0],
            (_U16(m, 12)[0] << 16) | _U16(m, 26)[0],
            _U16(m, 28)[0],
            _U16(m, 30)[0],
        )
        off = 32
        hops = 0
        while True:
            if off + 1 > len(m):
                self.run.anomaly("malformed_smb", "SMB1 AndX offset beyond the message", frame, ts, self._ep)
                return
            wc = m[off]
            w = off + 1
            bc_off = w + 2 * wc
            if bc_off + 2 > len(m):
                if reply and wc == 0:  # error replies may omit ByteCount
                    return
                self.run.anomaly("malformed_smb", "truncated SMB1 parameter block", frame, ts, self._ep)
                return
            data_start = bc_off + 2
            key = ("smb1", pid, mid, cmd)
            self._smb1_cmd(dirn, m, cmd, status, reply, unicode, tid, uid, key, w, wc, data_start, frame, ts)
            if cmd not in (0x2E, 0x2F, 0xA2, 0x73, 0x75, 0x74, 0x24) or wc < 2:
                return
            andx, andx_off = m[w], _U16(m, w + 2)[0]
            if andx == 0xFF or andx_off <= off or andx_off >= len(m):
                return
            hops += 1
            if hops > 16:
                self.run.anomaly("malformed_smb", "SMB1 AndX chain too long", frame, ts, self._ep)
                return
            self.run.count("smb1_andx")
            cmd, off = andx, andx_off

    def _smb1_cmd(
        self,
        dirn: int,
        m: bytes,
        cmd: int,
        status: int,
        reply: bool,
        unicode: bool,
        tid: int,
        uid: int,
        key: tuple,
        w: int,
        wc: int,
        data_start: int,
        frame: int,
        ts: float,
    ) -> None:
        if not reply:
            if cmd == 0xA2 and wc >= 24:  # NT_CREATE_ANDX
                nlen = _U16(m, w + 5)[0]
                p = data_start
                if unicode:
                    p += p & 1  # aligned to 2 from the SMB header
                    name = _utf16(m, p, nlen or len(m) - p)
                else:
                    name = bytes(m[p : p + (nlen or len(m) - p)]).split(b"\0", 1)[0].decode("latin-1")
                self._add_pending(key, (cmd, uid, tid, normalise_pipe(name), dirn), frame, ts)
            elif cmd == 0x2F and wc >= 12:  # WRITE_ANDX
                fid = _U16(m, w + 4)[0]
                mode = _U16(m, w + 14)[0]
                dlen = _U16(m, w + 20)[0] | (_U16(m, w + 18)[0] << 16)
                doff = _U16(m, w + 22)[0]
                if mode & 0x000C == 0x000C and dlen >= 2:  # raw message start: 2-byte length prefix
                    doff, dlen = doff + 2, dlen - 2
                data = m[doff : doff + dlen]
                self._pipe_data((uid, tid, fid.to_bytes(2, "little")), 0, dirn, data, frame, ts)
            elif cmd == 0x2E and wc >= 10:  # READ_ANDX
                fid = _U16(m, w + 4)[0]
                self._add_pending(key, (cmd, uid, tid, fid.to_bytes(2, "little"), dirn), frame, ts)
            elif cmd == 0x25 and wc >= 16:  # TRANSACTION
                setup = m[w + 26]
                if setup >= 2 and _U16(m, w + 28)[0] == 0x26:  # TransactNmPipe
                    fid = _U16(m, w + 30)[0].to_bytes(2, "little")
                    total, dcount, doff = _U16(m, w + 2)[0], _U16(m, w + 22)[0], _U16(m, w + 24)[0]
                    data = m[doff : doff + dcount]
                    if total > dcount:  # the rest follows in TRANSACTION_SECONDARY requests
                        self._trans_start((key[1], key[2]), Smb1Transaction(uid, tid, fid, dirn, total),
                                          data, frame, ts)  # fmt: skip
                    else:
                        self._pipe_data((uid, tid, fid), 0, dirn, data, frame, ts)
                    self._add_pending(key, (cmd, uid, tid, fid, dirn, 0), frame, ts)
            elif cmd == 0x26 and wc >= 8:  # TRANSACTION_SECONDARY
                self._trans_part(m, (key[1], key[2]), w, frame, ts)
            elif cmd == 0x04 and wc >= 1:  # CLOSE
                fid = _U16(m, w)[0].to_bytes(2, "little")
                if (uid, tid, fid) in self.pipes:
                    self._add_pending(key, (cmd, uid, tid, fid, dirn), frame, ts)
            elif cmd == 0x75 and wc >= 4:  # TREE_CONNECT_ANDX
                self._add_pending(key, (cmd, uid), frame, ts)
            elif cmd == 0x73:  # SESSION_SETUP_ANDX
                mech = user = dom = None
                if wc == 12:
                    blen = _U16(m, w + 14)[0]
                    mech, user, dom = _auth_facts(m[data_start : data_start + blen])
                elif wc == 13:
                    plen, ulen = _U16(m, w + 14)[0], _U16(m, w + 16)[0]
                    p = data_start + plen + ulen
                    raw = m[p:]
                    if unicode:
                        p += p & 1
                        parts = bytes(m[p:]).decode("utf-16-le", "replace").split("\x00")
                    else:
                        parts = bytes(raw).decode("latin-1").split("\x00")
                    user = parts[0] or None
                    dom = parts[1] if len(parts) > 1 and parts[1] else None
                    mech = "ntlm" if user and (plen or ulen) else "anonymous"
                self._add_pending(key, (cmd, mech, user, dom), frame, ts)
            elif cmd == 0x72:  # NEGOTIATE
                self.dialect = self.dialect or "NT1"
            return
        if cmd == 0x72:
            self.dialect = "NT1"
            return
        req = self.pending.pop(key, None)
        if req is None:
            return
        ok = status == 0 or status == _STATUS_BUFFER_OVERFLOW
        if cmd == 0xA2:
            if status == 0 and wc >= 3:
                fid = _U16(m, w + 5)[0].to_bytes(2, "little")
                _c, ruid, rtid, name, rdirn = req
                is_pipe = self.trees.get((ruid, rtid))
                if is_pipe or (is_pipe is None and name and "." not in name and "\\" not in name):
                    self._open_pipe((ruid, rtid, fid), name, rdirn, frame, ts)
        elif cmd == 0x2E:
            if ok and wc >= 12:
                dlen = _U16(m, w + 10)[0] | (_U16(m, w + 14)[0] << 16)
                doff = _U16(m, w + 12)[0]
                data = m[doff : doff + dlen]
                if len(data) < dlen:
                    self.run.anomaly(
                        "malformed_smb", "SMB1 READ data beyond the message", frame, ts, self._ep
                    )
                self._pipe_data((req[1], req[2], req[3]), 1, req[4], data, frame, ts)
        elif cmd == 0x25:
            if wc == 0 and status == 0:  # interim response: the client sends the secondary requests
                self.pending[key] = req
                return
            self.trans.pop((key[1], key[2]), None)  # answered (or failed): no more parts follow
            if ok and wc >= 10:
                total, dcount, doff, disp = (
                    _U16(m, w + 2)[0],
                    _U16(m, w + 12)[0],
                    _U16(m, w + 14)[0],
                    _U16(m, w + 16)[0],
                )
                self._pipe_data((req[1], req[2], req[3]), 1, req[4], m[doff : doff + dcount], frame, ts)
                if disp + dcount < total:  # more response parts follow with the same MID
                    self.pending[key] = req
        elif cmd == 0x04:
            if status == 0:
                self._close_pipe((req[1], req[2], req[3]), frame, ts)
        elif cmd == 0x75:
            if status == 0:
                if len(self.trees) >= self.run.limits.max_smb_pipes:
                    self.trees.pop(next(iter(self.trees)))
                    self.run.count("smb_state_evicted")
                service = bytes(m[data_start : data_start + 8])
                self.trees[(uid, tid)] = service.startswith(b"IPC")
        elif cmd == 0x73:
            s = self._session(uid)
            if req[1] is not None and (req[1] != "ntlm" or req[2] or not s.mech):
                s.mech, s.user, s.domain = req[1], req[2], req[3]
            if status == 0:
                if wc >= 3 and _U16(m, w + 4)[0] & 0x1:
                    s.mech = "guest"
                self._refresh(uid, s)

    # -- TransactNmPipe in several parts -------------------------------------------------------
    def _trans_start(
        self, k: tuple[int, int], t: Smb1Transaction, data: bytes, frame: int, ts: float
    ) -> None:
        trans = self.trans
        if k not in trans and len(trans) >= MAX_SMB1_TRANSACTIONS:
            trans.pop(next(iter(trans)))
            detail = f"over {MAX_SMB1_TRANSACTIONS} SMB1 transactions awaiting their secondary requests"
            detail += ": oldest dropped"
            self.run.anomaly("smb_limit", detail, frame, ts, self._ep)
        trans[k] = t
        if len(data) and t.add(0, data, t.total) is None:
            del trans[k]

    def _trans_part(self, m: bytes, k: tuple[int, int], w: int, frame: int, ts: float) -> None:
        """One SMB_COM_TRANSACTION_SECONDARY request (MS-CIFS 2.2.4.34.1)."""
        self.run.count("smb1_trans_secondary")
        t = self.trans.get(k)
        if t is None:  # not a TransactNmPipe we follow, or its primary was not captured
            self.run.count("smb1_trans_secondary_untracked")
            return
        total, dcount = _U16(m, w + 2)[0], _U16(m, w + 10)[0]
        doff, ddisp = _U16(m, w + 12)[0], _U16(m, w + 14)[0]
        data = m[doff : doff + dcount]
        done = t.add(ddisp, data, total) if len(data) == dcount else None
        if done is None:
            del self.trans[k]
            detail = (
                f"SMB1 TRANSACTION_SECONDARY part {ddisp}+{dcount} does not fit its transaction "
                f"({t.total} bytes, {len(t.parts)} parts) or its message; transaction dropped"
            )
            self.run.anomaly("malformed_smb", detail, frame, ts, self._ep)
        elif done:
            del self.trans[k]
            self._pipe_data((t.uid, t.tid, t.fid), 0, t.dirn, t.data(), frame, ts)
