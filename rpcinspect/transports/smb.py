"""ncacn_np: DCE/RPC over SMB named pipes (SMB2/3 and SMB1, on TCP 445 and NetBIOS 139).

One :class:`SmbHandler` per TCP connection frames the byte stream into SMB messages (the 4-byte
direct-TCP / NBSS header), pairs requests with responses (SMB2: MessageId, and AsyncId for
STATUS_PENDING interim responses; SMB1: PID and MID), and follows pipes: a CREATE (NT Create
AndX) on a pipe share gives the pipe name and file id; WRITE, IOCTL FSCTL_PIPE_TRANSCEIVE input,
Write AndX and Trans TransactNmPipe carry client->server RPC bytes (direction 0); READ, IOCTL
output, Read AndX and Trans responses carry server->client bytes (direction 1); CLOSE ends the
pipe. In a compound, a related request (SMB2_FLAGS_RELATED_OPERATIONS) takes the SessionId, TreeId
and an all-FF FileId from the request before it (MS-SMB2 3.3.5.2.7.2). Multi-credit requests
(CreditCharge > 1) need nothing more: their response carries the request's first MessageId. Each
pipe, keyed by (session, tree, file id), has its own
:class:`~rpcinspect.transports.cotcp.CoFramer` and
:class:`~rpcinspect.transports.cotcp.Channel` (an association, transport ``ncacn_np``), so PDUs split over
several writes or reads are reassembled per pipe and several pipes interleave freely.

Pipe names are normalised: lowercase, without leading backslashes or a ``pipe\\`` prefix
(``\\PIPE\\LSARPC`` and ``lsarpc`` are both ``lsarpc``).

SMB3-encrypted messages (TRANSFORM header, 0xFD 'SMB') are counted (``smb_encrypted_messages``).
When the user gave secrets, :class:`~rpcinspect.transports.smb3keys.Smb3Keys` follows the
NEGOTIATE and SESSION_SETUP exchanges, and each TRANSFORM message of an NTLM-keyed session is
decrypted and handled like any other SMB2 message (its pipes' calls then say ``decrypted``); a
session whose keys cannot be made, or whose messages do not verify, gives one ``decrypt_failed``
anomaly. A session that stays unread is reported once as an ``smb_encrypted`` anomaly (counter
``smb_encrypted``). All state is bounded (``limits.py``: ``max_smb_message``, ``max_smb_pipes``,
``max_smb_pending``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from rpcinspect.transports.cotcp import Channel, ChannelFactory, CoFramer, plausible
from rpcinspect.transports.smb1 import Smb1Commands, Smb1Transaction
from rpcinspect.transports.smb3keys import Smb3Keys
from rpcinspect.transports.smbcommon import (
    _STATUS_BUFFER_OVERFLOW,
    _U16,
    _U32,
    _U64,
    SessionState,
    SmbSession,
    _auth_facts,
    _utf16,
    normalise_pipe,
)

if TYPE_CHECKING:
    from rpcinspect.runtime import Endpoints, Run

__all__ = ["SMB_PORTS", "SmbHandler", "SmbSession", "normalise_pipe"]

SMB_PORTS: Final = frozenset((139, 445))

_SMB2_HDR = struct.Struct("<4sHHIHHIIQ").unpack_from  # up to MessageId (offset 32)

_STATUS_PENDING = 0x00000103
_FSCTL_PIPE_TRANSCEIVE = 0x0011C017
_FLAG_RESPONSE, _FLAG_ASYNC, _FLAG_RELATED, _FLAG_SIGNED = 0x1, 0x2, 0x4, 0x8
_ALL_FF = b"\xff" * 16
_CREATE_MARK = b"create:"  # + MessageId: "the file id the CREATE before me in this compound gets"
_Related = tuple[bytes | None, int, int | None]
"""What an SMB2 request leaves to a related request after it in its compound: (file id, or a
``_CREATE_MARK`` for the CREATE before it; SessionId; TreeId)."""
_DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x02FF: "2.???", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}


class _Pipe:
    __slots__ = ("assoc", "framer", "name", "session")

    def __init__(self, name: str | None, session: int, framer: CoFramer, assoc: Channel) -> None:
        self.name = name
        self.session = session
        self.framer = framer
        self.assoc = assoc


class SmbHandler(Smb1Commands):
    """TCP connection handler for SMB (139/445): frames SMB messages and follows named pipes."""

    __slots__ = (
        "_ep", "async_ids", "bufs", "created", "crypt", "deferred", "dialect", "new_channel", "pending",
        "pipes", "run", "sessions", "skip", "sync", "trans", "trees",
    )  # fmt: skip

    def __init__(
        self, run: Run, endpoints: Endpoints, new_channel: ChannelFactory, *, midstream: bool = False
    ) -> None:
        self.run = run
        self._ep = endpoints
        self.new_channel = new_channel  # opens each pipe's association (dcerpc.attach gives it)
        self.bufs = [bytearray(), bytearray()]
        self.skip = [0, 0]  # bytes of an oversized message still to discard, per direction
        self.sync = [not midstream, not midstream]
        self.pending: dict[object, tuple] = {}  # request key -> (command, ...)
        self.async_ids: dict[int, int] = {}  # SMB2 AsyncId -> MessageId
        self.pipes: dict[tuple[int, int, bytes], _Pipe] = {}
        self.trees: dict[tuple[int, int], bool] = {}  # (session, tree) -> is a pipe share (IPC$)
        self.trans: dict[tuple[int, int], Smb1Transaction] = {}  # SMB1 (PID, MID) -> request data so far
        self.sessions: dict[int, SessionState] = {}
        self.dialect: str | None = None
        # requests related to a CREATE in the same compound (file id all-FF): MessageId of the
        # CREATE -> data held until its answer, and -> the file id that answer gave
        self.deferred: dict[int, list[tuple[int, bytes, int, float]]] = {}
        self.created: dict[int, bytes] = {}
        secrets = run.secrets
        self.crypt = Smb3Keys(secrets, run.limits.max_smb_pipes) if secrets else None

    # -- stream framing ------------------------------------------------------------------------
    def data(self, dirn: int, payload: bytes, frame: int, ts: float) -> None:
        skip = self.skip[dirn]
        if skip:
            if len(payload) <= skip:
                self.skip[dirn] = skip - len(payload)
                return
            payload = payload[skip:]
            self.skip[dirn] = 0
        buf = self.bufs[dirn]
        buf += payload
        if not self.sync[dirn]:
            off = self._find(buf, 0)
            if off < 0:
                del buf[: max(0, len(buf) - 7)]
                return
            if off:
                self.run.count("smb_resync_skipped_bytes", off)
            del buf[:off]
            self.sync[dirn] = True
        off, n = 0, len(buf)
        limit = self.run.limits.max_smb_message
        while n - off >= 4:
            kind = buf[off]
            length = (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]
            if kind != 0:
                if kind in (0x81, 0x82, 0x83, 0x84, 0x85) and length <= 0x1FFFF:  # NBSS control
                    if n - off - 4 < length:
                        break
                    self.run.count("nbss_control")
                    off += 4 + length
                    continue
                self.run.anomaly(
                    "malformed_smb", f"bad NBSS/direct-TCP header {kind:#04x}", frame, ts, self._ep
                )
                nxt = self._find(buf, off + 1)
                if nxt < 0:
                    self.sync[dirn] = False
                    off = max(off, n - 7)
                    break
                self.run.count("smb_resync_skipped_bytes", nxt - off)
                off = nxt
                continue
            if length > limit:
                self.run.anomaly(
                    "smb_limit",
                    f"SMB message of {length} bytes over max_smb_message; skipped",
                    frame,
                    ts,
                    self._ep,
                )
                have = n - off - 4
                if have >= length:
                    off += 4 + length
                    continue
                self.skip[dirn] = length - have
                off = n
                break
            if n - off - 4 < length:
                break
            msg = bytes(buf[off + 4 : off + 4 + length])
            off += 4 + length
            try:
                self._message(dirn, msg, frame, ts)
            except (struct.error, IndexError, ValueError) as exc:  # a field pointing outside the message
                self.run.anomaly("malformed_smb", f"SMB message cut short: {exc}", frame, ts, self._ep)
        if off:
            del buf[:off]

    @staticmethod
    def _find(buf: bytearray, start: int) -> int:
        """Offset of the next believable direct-TCP header before an SMB protocol id, or -1."""
        i = buf.find(b"SMB", start + 5)
        while i >= 0:
            if buf[i - 1] in (0xFE, 0xFF, 0xFD, 0xFC) and buf[i - 5] == 0:
                return i - 5
            i = buf.find(b"SMB", i + 1)
        return -1

    def gap(self, dirn: int, nbytes: int, frame: int, ts: float) -> None:
        if self.bufs[dirn]:
            self.run.count("smb_partial_message_lost")
        self.bufs[dirn] = bytearray()
        self.skip[dirn] = 0
        self.sync[dirn] = False
        self.run.anomaly("tcp_gap", f"{nbytes} bytes missing in the SMB stream", frame, ts, self._ep)
        for p in self.pipes.values():  # the lost bytes may have carried any pipe's PDUs
            p.framer.bufs = [b"", b""]
            p.framer.sync = [False, False]

    def close(self, reason: str, frame: int, ts: float) -> None:
        for dirn in (0, 1):
            if self.bufs[dirn] and self.sync[dirn]:
                detail = f"{len(self.bufs[dirn])} bytes of an incomplete SMB message at end of stream"
                self.run.anomaly("truncated_smb", detail, frame, ts, self._ep)
        self.bufs = [bytearray(), bytearray()]
        if self.trans:
            self.run.count("smb1_trans_incomplete", len(self.trans))
            self.trans.clear()
        for p in self.pipes.values():
            p.framer.close(reason, frame, ts)
        self.pipes.clear()
        self.pending.clear()

    # -- messages ------------------------------------------------------------------------------
    def _message(self, dirn: int, msg: bytes, frame: int, ts: float) -> None:
        proto = msg[:4]
        if proto == b"\xfeSMB":
            self.run.count("smb2_messages")
            off = 0
            prev: _Related | None = None
            while True:
                nxt, prev = self._smb2(dirn, msg, off, prev, frame, ts)
                if not nxt:
                    break
                if nxt < 64 or off + nxt + 64 > len(msg) or nxt & 7:
                    self.run.anomaly("malformed_smb", f"bad SMB2 NextCommand {nxt}", frame, ts, self._ep)
                    break
                off += nxt
                self.run.count("smb2_compounded")
        elif proto == b"\xffSMB":
            self.run.count("smb1_messages")
            self._smb1(dirn, msg, frame, ts)
        elif proto == b"\xfdSMB":
            self._encrypted(dirn, msg, frame, ts)
        elif proto == b"\xfcSMB":
            self.run.count("smb_compressed_messages")
        else:
            self.run.anomaly("malformed_smb", f"unknown SMB protocol id {proto.hex()}", frame, ts, self._ep)

    def _encrypted(self, dirn: int, msg: bytes, frame: int, ts: float) -> None:
        self.run.count("smb_encrypted_messages")
        if len(msg) < 52:
            self.run.anomaly("malformed_smb", "truncated SMB3 TRANSFORM header", frame, ts, self._ep)
            return
        sid = _U64(msg, 44)[0]
        s = self._session(sid)
        if not s.encrypted:
            s.encrypted = True
            self._refresh(sid, s)
        if self.crypt is not None and self._decrypt(dirn, sid, s, msg, frame, ts):
            return
        if not s.reported:
            s.reported = True
            detail = f"SMB3 session {sid:#x} is encrypted: its pipes and calls cannot be decoded without keys"
            self.run.anomaly("smb_encrypted", detail, frame, ts, self._ep)

    def _decrypt(self, dirn: int, sid: int, s: SessionState, msg: bytes, frame: int, ts: float) -> bool:
        """Decrypts one TRANSFORM message and handles what it holds; False when the session has
        no keys (the message stays unread, as without secrets)."""
        crypt = self.crypt
        assert crypt is not None
        try:
            got = crypt.decrypt(sid, dirn, msg, s.decrypted)
        except ValueError as exc:
            self.run.anomaly("malformed_smb", f"SMB3 TRANSFORM message: {exc}", frame, ts, self._ep)
            return True
        if isinstance(got, str):
            if not s.failed:  # one per session: a wrong key fails every message alike
                s.failed = True
                self.run.anomaly("decrypt_failed", got, frame, ts, self._ep)
            if not crypt.has_keys(sid):
                return False
            self.run.count("smb_decrypt_failed_messages")
            return True
        self.run.count("smb_decrypted_messages")
        if not s.decrypted:
            s.decrypted = True
            self.run.count("smb_sessions_decrypted")
            self._refresh(sid, s)
        if got[:4] == b"\xfdSMB":
            self.run.anomaly("malformed_smb", "a TRANSFORM message inside a TRANSFORM", frame, ts, self._ep)
        else:
            self._message(dirn, got, frame, ts)
        return True

    def _session(self, sid: int) -> SessionState:
        s = self.sessions.get(sid)
        if s is None:
            if len(self.sessions) >= self.run.limits.max_smb_pipes:
                self.sessions.pop(next(iter(self.sessions)))
                self.run.count("smb_state_evicted")
            s = self.sessions[sid] = SessionState()
        return s

    def _facts(self, s: SessionState) -> SmbSession:
        if s.facts is None:
            s.facts = SmbSession(self.dialect, s.user, s.domain, s.mech, s.signed, s.encrypted, s.decrypted)
        return s.facts

    def _refresh(self, sid: int, s: SessionState) -> None:
        s.facts = None
        facts = self._facts(s)
        for p in self.pipes.values():
            if p.session == sid:
                p.assoc.smb = facts

    def _add_pending(self, key: object, value: tuple, frame: int, ts: float) -> None:
        pend = self.pending
        if len(pend) >= self.run.limits.max_smb_pending and key not in pend:
            pend.pop(next(iter(pend)))
            self.run.anomaly(
                "smb_limit", "pending SMB requests over max_smb_pending: oldest dropped", frame, ts, self._ep
            )
        pend[key] = value

    # -- pipes ---------------------------------------------------------------------------------
    def _open_pipe(
        self,
        key: tuple[int, int, bytes],
        name: str | None,
        req_dirn: int,
        frame: int,
        ts: float,
        *,
        midstream: bool = False,
    ) -> _Pipe:
        old = self.pipes.get(key)
        if old is not None:
            if old.name is None and name:  # followed before its CREATE answer: it gets its name
                old.name = old.assoc.named_pipe = name
                return old
            del self.pipes[key]
            old.framer.close("connection_reused", frame, ts)
        if len(self.pipes) >= self.run.limits.max_smb_pipes:
            victim = self.pipes.pop(next(iter(self.pipes)))
            self.run.anomaly(
                "smb_limit",
                f"open pipes over max_smb_pipes: pipe {victim.name!r} evicted",
                frame,
                ts,
                self._ep,
            )
            victim.framer.close("evicted", frame, ts)
        a, ap, b, bp = self._ep
        ep = (a, ap, b, bp) if req_dirn == 0 else (b, bp, a, ap)
        assoc = self.new_channel("ncacn_np", ep, name)
        sid = key[0]
        s = self.sessions.get(sid)
        assoc.smb = self._facts(s) if s is not None else SmbSession(self.dialect)
        framer = CoFramer(self.run, ep, assoc, midstream=midstream)
        p = self.pipes[key] = _Pipe(name, sid, framer, assoc)
        self.run.count("smb_pipes_opened")
        return p

    def _defer(self, mark: bytes, dirn: int, data: bytes, frame: int, ts: float) -> None:
        """Holds the data of a request related to a CREATE in the same compound (file id all-FF)
        until the CREATE's answer gives the file id."""
        mid = int.from_bytes(mark[len(_CREATE_MARK) :], "little")
        held = self.deferred.setdefault(mid, [])
        if len(self.deferred) > self.run.limits.max_smb_pending or len(held) >= 64:
            self.deferred.pop(mid, None)
            self.run.anomaly("smb_limit", "too many related requests held for a CREATE", frame, ts, self._ep)
            return
        held.append((dirn, data, frame, ts))

    def _pipe_data(
        self, key: tuple[int, int, bytes], pdirn: int, req_dirn: int, data: bytes, frame: int, ts: float
    ) -> None:
        if not data:
            return
        p = self.pipes.get(key)
        if p is None:
            # The CREATE was not captured: follow the file id only if it carries DCE/RPC.
            if (key[0], key[1]) in self.trees and not self.trees[(key[0], key[1])]:
                return
            if not plausible(data, 0):
                return
            self.run.count("smb_pipe_without_create")
            p = self._open_pipe(key, None, req_dirn, frame, ts, midstream=True)
        p.framer.data(pdirn, data, frame, ts)

    def _close_pipe(self, key: tuple[int, int, bytes], frame: int, ts: float) -> None:
        p = self.pipes.pop(key, None)
        if p is not None:
            p.framer.close("connection_closed", frame, ts)

    # -- SMB2 ----------------------------------------------------------------------------------
    def _smb2(
        self, dirn: int, m: bytes, o: int, prev: _Related | None, frame: int, ts: float
    ) -> tuple[int, _Related | None]:
        """Handles the SMB2 message at *o* of a compound; *prev* is what the message before it
        in the compound leaves to a related request (file id, session, tree). Returns
        (NextCommand, what this message leaves to the next one)."""
        if len(m) - o < 64:
            self.run.anomaly(
                "malformed_smb", f"truncated SMB2 header ({len(m) - o} bytes)", frame, ts, self._ep
            )
            return 0, prev
        _p, _ss, _cc, status, cmd, _cr, flags, nxt, mid = _SMB2_HDR(m, o)
        sid = _U64(m, o + 40)[0]
        b = o + 64
        if flags & _FLAG_ASYNC:
            async_id, tree = _U64(m, o + 32)[0], None
        else:
            async_id, tree = None, _U32(m, o + 36)[0]
        prev_fid = None
        if prev is not None:
            prev_fid = prev[0]  # an all-FF file id is the one before it (related or not: lenient)
            if flags & (_FLAG_RELATED | _FLAG_RESPONSE) == _FLAG_RELATED:
                # MS-SMB2 3.3.5.2.7.2: a related request uses the SessionId and TreeId of the
                # operation before it (clients may send all-FF placeholders there too).
                sid, tree = prev[1], prev[2]
        if flags & _FLAG_SIGNED and sid:
            s = self.sessions.get(sid)
            if s is not None and not s.signed:
                s.signed = True
                self._refresh(sid, s)
        if not flags & _FLAG_RESPONSE:  # ---- request
            if cmd == 0x5:  # CREATE
                noff, nlen = _U16(m, b + 44)[0], _U16(m, b + 46)[0]
                name = _utf16(m, o + noff, nlen) if nlen else ""
                self._add_pending(mid, (cmd, sid, tree, normalise_pipe(name), dirn), frame, ts)
                prev_fid = _CREATE_MARK + mid.to_bytes(8, "little")  # related requests' file id
            elif cmd == 0x9:  # WRITE
                doff, dlen = _U16(m, b + 2)[0], _U32(m, b + 4)[0]
                fid = bytes(m[b + 16 : b + 32])
                if fid == _ALL_FF and prev_fid is not None:
                    fid = prev_fid
                data = m[o + doff : o + doff + dlen]
                if len(data) < dlen:
                    self.run.anomaly(
                        "malformed_smb", "SMB2 WRITE data beyond the message", frame, ts, self._ep
                    )
                if fid.startswith(_CREATE_MARK):
                    self._defer(fid, dirn, data, frame, ts)
                else:
                    self._pipe_data((sid, tree or 0, fid), 0, dirn, data, frame, ts)
                prev_fid = fid
            elif cmd == 0x8:  # READ
                fid = bytes(m[b + 16 : b + 32])
                if fid == _ALL_FF and prev_fid is not None:
                    fid = prev_fid
                if (
                    (sid, tree or 0, fid) in self.pipes
                    or (sid, tree) not in self.trees
                    or self.trees[(sid, tree)]
                ):
                    self._add_pending(mid, (cmd, sid, tree or 0, fid, dirn), frame, ts)
                prev_fid = fid
            elif cmd == 0xB:  # IOCTL
                ctl = _U32(m, b + 4)[0]
                if ctl == _FSCTL_PIPE_TRANSCEIVE:
                    fid = bytes(m[b + 8 : b + 24])
                    if fid == _ALL_FF and prev_fid is not None:
                        fid = prev_fid
                    ioff, ilen = _U32(m, b + 24)[0], _U32(m, b + 28)[0]
                    data = m[o + ioff : o + ioff + ilen]
                    prev_fid = fid
                    if fid.startswith(_CREATE_MARK):
                        self._defer(fid, dirn, data, frame, ts)
                        fid = _ALL_FF  # the response names the file id
                    else:
                        self._pipe_data((sid, tree or 0, fid), 0, dirn, data, frame, ts)
                    self._add_pending(mid, (cmd, sid, tree or 0, fid, dirn), frame, ts)
            elif cmd == 0x6:  # CLOSE
                fid = bytes(m[b + 8 : b + 24])
                if fid == _ALL_FF and prev_fid is not None:
                    fid = prev_fid
                if (sid, tree or 0, fid) in self.pipes:
                    self._add_pending(mid, (cmd, sid, tree or 0, fid, dirn), frame, ts)
                prev_fid = fid
            elif cmd == 0x3:  # TREE_CONNECT
                self._add_pending(mid, (cmd, sid), frame, ts)
            elif cmd == 0x1:  # SESSION_SETUP
                boff, blen = _U16(m, b + 12)[0], _U16(m, b + 14)[0]
                if self.crypt is not None:
                    self.crypt.setup_request(dirn, sid, mid, _whole(m, o, nxt), m[o + boff : o + boff + blen])
                mech, user, dom = _auth_facts(m[o + boff : o + boff + blen])
                if mech is not None:
                    s = self._session(sid) if sid else None
                    self._add_pending(mid, (cmd, mech, user, dom), frame, ts)
                    if s is not None and (mech != "ntlm" or user):
                        s.mech, s.user, s.domain = mech, user, dom
                else:
                    self._add_pending(mid, (cmd, None, None, None), frame, ts)
            elif cmd == 0x0:  # NEGOTIATE
                self._add_pending(mid, (cmd,), frame, ts)
                if self.crypt is not None:
                    self.crypt.negotiate_request(dirn, _whole(m, o, nxt))
            return nxt, (prev_fid, sid, tree)
        # ---- response
        if status == _STATUS_PENDING and flags & _FLAG_ASYNC:
            if async_id is not None and mid in self.pending:
                self.async_ids[async_id] = mid
                if len(self.async_ids) > self.run.limits.max_smb_pending:
                    self.async_ids.pop(next(iter(self.async_ids)))
            self.run.count("smb2_pending")
            return nxt, prev
        req = self.pending.pop(mid, None)
        if req is None and async_id is not None and async_id in self.async_ids:
            req = self.pending.pop(self.async_ids[async_id], None)
        if async_id is not None:
            self.async_ids.pop(async_id, None)
        if req is None and cmd in (0x0, 0x1):  # the session's facts need no request
            req = (cmd, None, None, None)
        if req is None:
            if cmd in (0x8, 0xB):
                self.run.count("smb2_response_without_request")
            return nxt, prev
        if req[0] != cmd:
            self.run.count("smb2_response_command_mismatch")
            return nxt, prev
        ok = status == 0 or status == _STATUS_BUFFER_OVERFLOW
        if cmd == 0x8:  # READ
            if req[3].startswith(_CREATE_MARK):  # related to a CREATE answered just before
                fid = self.created.get(int.from_bytes(req[3][len(_CREATE_MARK) :], "little"))
                req = (req[0], req[1], req[2], fid or _ALL_FF, req[4])
            if ok:
                doff, dlen = m[b + 2], _U32(m, b + 4)[0]
                data = m[o + doff : o + doff + dlen]
                if len(data) < dlen:
                    self.run.anomaly(
                        "malformed_smb", "SMB2 READ data beyond the message", frame, ts, self._ep
                    )
                self._pipe_data((req[1], req[2], req[3]), 1, req[4], data, frame, ts)
        elif cmd == 0xB:  # IOCTL
            if ok:
                ooff, olen = _U32(m, b + 32)[0], _U32(m, b + 36)[0]
                fid = req[3] if req[3] != _ALL_FF else bytes(m[b + 8 : b + 24])
                self._pipe_data((req[1], req[2], fid), 1, req[4], m[o + ooff : o + ooff + olen], frame, ts)
        elif cmd == 0x5:  # CREATE
            if status == 0 and len(m) >= b + 80:
                fid = bytes(m[b + 64 : b + 80])
                _c, rsid, rtree, name, rdirn = req
                is_pipe = self.trees.get((rsid, rtree))
                if is_pipe or (is_pipe is None and name and "." not in name and "\\" not in name):
                    self._open_pipe((rsid, rtree or 0, fid), name, rdirn, frame, ts)
                for ddirn, data, f, t in self.deferred.pop(mid, ()):  # related writes, now placed
                    self._pipe_data((rsid, rtree or 0, fid), 0, ddirn, data, f, t)
                if len(self.created) >= 64:
                    self.created.pop(next(iter(self.created)))
                self.created[mid] = fid
                return nxt, prev
            self.deferred.pop(mid, None)
        elif cmd == 0x6:  # CLOSE
            self._close_pipe((req[1], req[2], req[3]), frame, ts)
        elif cmd == 0x3:  # TREE_CONNECT
            if status == 0 and tree is not None:
                if len(self.trees) >= self.run.limits.max_smb_pipes:
                    self.trees.pop(next(iter(self.trees)))
                    self.run.count("smb_state_evicted")
                self.trees[(sid, tree)] = m[b + 2] == 2  # ShareType PIPE
        elif cmd == 0x1:  # SESSION_SETUP
            if self.crypt is not None:
                boff, blen = _U16(m, b + 4)[0], _U16(m, b + 6)[0]
                self.crypt.setup_response(sid, mid, status, _whole(m, o, nxt), m[o + boff : o + boff + blen])
            s = self._session(sid)
            if req[1] is not None and (req[1] != "ntlm" or req[2] or not s.mech):
                s.mech, s.user, s.domain = req[1], req[2], req[3]
            if status == 0:
                sflags = _U16(m, b + 2)[0]
                if sflags & 0x1:
                    s.mech = "guest"
                elif sflags & 0x2:
                    s.mech = "anonymous"
                if sflags & 0x4:
                    s.encrypted = True
                if flags & _FLAG_SIGNED:
                    s.signed = True
                self._refresh(sid, s)
        elif cmd == 0x0 and status == 0 and len(m) >= b + 6:  # NEGOTIATE
            d = _U16(m, b + 4)[0]
            self.dialect = _DIALECTS.get(d, f"{d:#06x}")
            if self.crypt is not None:
                self.crypt.negotiate_response(_whole(m, o, nxt))
        return nxt, prev


def _whole(m: bytes, o: int, nxt: int) -> bytes:
    """The SMB2 message at *o* of a (possibly compounded) message, as the preauth hash takes it."""
    return m if o == 0 and not nxt else m[o : o + nxt if nxt else len(m)]
