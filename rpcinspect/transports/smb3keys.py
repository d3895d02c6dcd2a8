"""SMB3 session keys of one SMB connection, from the NEGOTIATE and SESSION_SETUP exchanges and the
user's secrets, to decrypt TRANSFORM messages (MS-SMB2 3.2.5.2, 3.2.5.3, 3.3.5.5).

Used by :class:`~rpcinspect.transports.smb.SmbHandler` only when secrets were given. It keeps,
per connection: the dialect and cipher the NEGOTIATE chose and the 3.1.1 preauth integrity hash
of the NEGOTIATE pair; per session being set up (by MessageId until the server assigns a
SessionId): the preauth hash and the NTLM messages seen. Keys are made lazily, on the session's
first TRANSFORM message, so sessions that never encrypt cost only the hash. A session whose
SESSION_SETUP is not on this connection (a capture that starts later, or a channel bound from
another connection: multichannel) cannot be decrypted and is reported so. Only NTLM-keyed
sessions are supported (Kerberos needs the service key and is reported as unsupported).

Every failure is a sentence for one ``decrypt_failed`` anomaly per session, never a secret.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from rpcinspect.auth import parse_value
from rpcinspect.auth.ntlmseal import ntlm_session_key
from rpcinspect.transports.smb3crypto import (
    CIPHERS,
    PREAUTH_ZERO,
    TransformKeys,
    derive_keys,
    preauth_update,
)

if TYPE_CHECKING:
    from rpcinspect.auth.secrets import Secret

__all__ = ["Smb3Keys"]

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_STATUS_MORE_PROCESSING = 0xC0000016
_CAP_ENCRYPTION = 0x40
_CTX_PREAUTH, _CTX_ENCRYPTION = 0x0001, 0x0002
_SHA512 = 0x0001
_MAX_SETUPS = 64  # sessions being set up at once (by MessageId) on one connection
_KRB_MECHS = frozenset(("kerberos", "ms_kerberos", "kerberos_u2u"))


class _Setup:
    """A session's authentication as seen on this connection."""

    __slots__ = ("done", "kerberos", "keys", "ntlm", "preauth", "problem")

    def __init__(self, preauth: bytes | None) -> None:
        self.preauth = preauth
        self.ntlm: dict[str, Any] = {}
        self.kerberos = False
        self.done = False  # the final SESSION_SETUP response (STATUS_SUCCESS) was seen
        self.keys: TransformKeys | None = None
        self.problem: str | None = None  # why there are no keys (reported once)


class Smb3Keys:
    """SMB3 key material of one connection; see the module docstring."""

    __slots__ = (
        "_neg_req", "cipher", "client_dir", "conn_preauth", "dialect", "max_sessions", "secrets",
        "sessions", "setups",
    )  # fmt: skip

    def __init__(self, secrets: list[Secret], max_sessions: int) -> None:
        self.secrets = secrets
        self.max_sessions = max_sessions
        self._neg_req: bytes | None = None  # SHA-512(zeros || last SMB2 NEGOTIATE request)
        self.dialect: int | None = None
        self.cipher: int | None = None
        self.conn_preauth: bytes | None = None
        self.client_dir: int | None = None
        self.setups: dict[int, _Setup] = {}  # MessageId of a first leg (SessionId 0) -> setup
        self.sessions: dict[int, _Setup] = {}  # SessionId -> setup

    # -- NEGOTIATE -----------------------------------------------------------------------------
    def negotiate_request(self, dirn: int, msg: bytes) -> None:
        self.client_dir = dirn
        self._neg_req = preauth_update(PREAUTH_ZERO, msg)

    def negotiate_response(self, msg: bytes) -> None:
        """*msg*: the whole SMB2 NEGOTIATE response (header at 0); a short one changes nothing."""
        if len(msg) < 128:  # header (64) and the fixed response body (64) up to the contexts' offset
            return
        dialect = _U16(msg, 68)[0]
        if dialect == 0x02FF:  # multi-protocol answer to an SMB1 NEGOTIATE: the real one follows
            return
        self.dialect = dialect
        self.cipher = None
        self.conn_preauth = None
        if dialect in (0x0300, 0x0302):
            if _U32(msg, 88)[0] & _CAP_ENCRYPTION:
                self.cipher = 0x0001
        elif dialect == 0x0311:
            count, off = _U16(msg, 70)[0], _U32(msg, 124)[0]
            sha512 = False
            for _ in range(min(count, 32)):
                if off + 8 > len(msg):
                    break
                ctype, dlen = _U16(msg, off)[0], _U16(msg, off + 2)[0]
                data = msg[off + 8 : off + 8 + dlen]
                if ctype == _CTX_PREAUTH and len(data) >= 6:
                    sha512 = _U16(data, 0)[0] >= 1 and _U16(data, 4)[0] == _SHA512
                elif ctype == _CTX_ENCRYPTION and len(data) >= 4 and _U16(data, 0)[0] >= 1:
                    self.cipher = _U16(data, 2)[0] or None
                off += (8 + dlen + 7) & ~7
            if sha512 and self._neg_req is not None:
                self.conn_preauth = preauth_update(self._neg_req, msg)

    # -- SESSION_SETUP -------------------------------------------------------------------------
    def setup_request(self, dirn: int, sid: int, mid: int, msg: bytes, blob: bytes) -> None:
        """A SESSION_SETUP request (*msg* the whole message, *blob* its security buffer)."""
        self.client_dir = dirn
        if sid == 0:
            if len(self.setups) >= _MAX_SETUPS:
                self.setups.pop(next(iter(self.setups)))
            s = self.setups[mid] = _Setup(self.conn_preauth)
        else:
            got = self.sessions.get(sid)
            if got is None or got.done:  # binding from elsewhere, or re-authentication: keys stay
                return
            s = got
        if s.preauth is not None:
            s.preauth = preauth_update(s.preauth, msg)
        self._auth(s, blob)

    def setup_response(self, sid: int, mid: int, status: int, msg: bytes, blob: bytes) -> None:
        """A SESSION_SETUP response: binds a first leg to its SessionId, and ends the exchange."""
        s = self.setups.pop(mid, None)
        if s is not None and sid:
            if sid not in self.sessions and len(self.sessions) >= self.max_sessions:
                self.sessions.pop(next(iter(self.sessions)))
            self.sessions[sid] = s
        else:
            s = self.sessions.get(sid)
        if s is None or s.done:
            return
        self._auth(s, blob)
        if status == _STATUS_MORE_PROCESSING:
            if s.preauth is not None:
                s.preauth = preauth_update(s.preauth, msg)
        elif status == 0:
            s.done = True  # the final response is not hashed: the keys use the hash before it
        else:
            self.sessions.pop(sid, None)

    def _auth(self, s: _Setup, blob: bytes) -> None:
        if not blob:
            return
        parsed, _problems = parse_value(9, blob)
        n = parsed.get("ntlm")
        if n is not None:
            if n.get("server_challenge") is not None:
                s.ntlm["server_challenge"] = n["server_challenge"]
            if n.get("message") == "authenticate":  # all of it: ntlm_session_key picks what it needs
                s.ntlm.update((k, v) for k, v in n.items() if k != "message")
        elif "kerberos" in parsed or (parsed.get("spnego") or {}).get("chosen") in _KRB_MECHS:
            s.kerberos = True

    # -- TRANSFORM -----------------------------------------------------------------------------
    def decrypt(self, sid: int, dirn: int, msg: bytes, proven: bool) -> bytes | str:
        """The plaintext of a TRANSFORM message of session *sid* sent in direction *dirn*, or why
        not (a sentence; *proven*: earlier messages of the session decrypted). Raises ValueError
        when the TRANSFORM header does not fit the message."""
        keys = self._keys(sid)
        if isinstance(keys, str):
            return f"SMB3 session {sid:#x} cannot be decrypted: {keys}"
        plain = keys.decrypt(0 if self.client_dir is None or dirn == self.client_dir else 1, msg)
        if plain is not None:
            return plain
        why = (
            "it was altered: the session's other messages decrypt"
            if proven
            else "the keys do not match this session, or the message was altered"
        )
        name = keys.cipher.name
        return f"SMB3 session {sid:#x}: a message's {name} signature does not verify, skipped ({why})"

    def has_keys(self, sid: int) -> bool:
        s = self.sessions.get(sid)
        return s is not None and s.keys is not None

    def _keys(self, sid: int) -> TransformKeys | str:
        """The session's keys, made on first use, or why there are none (a sentence)."""
        s = self.sessions.get(sid)
        if s is None:
            if sid == 0:
                return "its SessionId is 0, which names no session (no SESSION_SETUP gives it keys)"
            return (
                "its SESSION_SETUP is not on this connection (the capture starts later, or the channel "
                "was bound from another connection: multichannel is not supported)"
            )
        if s.keys is not None:
            return s.keys
        if s.problem is None:
            got = self._make(s)
            if isinstance(got, str):
                s.problem = got
            else:
                s.keys = got
                return got
        return s.problem

    def _make(self, s: _Setup) -> TransformKeys | str:
        if not s.done:
            return "its SESSION_SETUP did not complete in the capture"
        if "nt_response" not in s.ntlm:
            if s.kerberos:
                return "it is keyed by Kerberos; only NTLM-keyed SMB3 sessions can be decrypted"
            return "no NTLM AUTHENTICATE was seen in its SESSION_SETUP"
        if self.dialect not in (0x0300, 0x0302, 0x0311):
            return f"dialect {self.dialect or 0:#06x} of the NEGOTIATE is not SMB 3.x"
        if self.dialect == 0x0311 and s.preauth is None:
            return "the SMB 3.1.1 NEGOTIATE (preauth integrity hash) is not in the capture"
        if self.cipher is None or self.cipher not in CIPHERS:
            return f"cipher {self.cipher or 0:#06x} is not one rpcinspect knows (or none was negotiated)"
        key = ntlm_session_key(s.ntlm, self.secrets)
        if isinstance(key, str):
            return key
        c2s, s2c = derive_keys(key, self.dialect, self.cipher, s.preauth)
        return TransformKeys(self.cipher, c2s, s2c)
