"""Helpers shared by the SMB2 and SMB1 parts of the ncacn_np transport, and the session facts
they attach to a named pipe's association."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["SessionState", "SmbSession", "normalise_pipe"]

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_STATUS_BUFFER_OVERFLOW: Final = 0x80000005
_KRB_OIDS = (b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02", b"\x2a\x86\x48\x82\xf7\x12\x01\x02\x02")


def _utf16(buf: bytes, off: int, n: int) -> str:
    return bytes(buf[off : off + n]).decode("utf-16-le", "replace").split("\x00", 1)[0]


def _auth_facts(blob: bytes) -> tuple[str | None, str | None, str | None]:
    """(mechanism, user, domain) from a session-setup security blob (SPNEGO/NTLMSSP/Kerberos)."""
    i = blob.find(b"NTLMSSP\x00")
    if i >= 0 and len(blob) >= i + 12:
        if _U32(blob, i + 8)[0] != 3 or len(blob) < i + 44:
            return "ntlm", None, None
        nt_len = _U16(blob, i + 20)[0]
        dom_len, dom_off = _U16(blob, i + 28)[0], _U32(blob, i + 32)[0]
        user_len, user_off = _U16(blob, i + 36)[0], _U32(blob, i + 40)[0]
        flags = _U32(blob, i + 60)[0] if len(blob) >= i + 64 else 0
        uni = bool(flags & 1) or not flags
        enc = "utf-16-le" if uni else "latin-1"
        user = bytes(blob[i + user_off : i + user_off + user_len]).decode(enc, "replace")
        dom = bytes(blob[i + dom_off : i + dom_off + dom_len]).decode(enc, "replace")
        if not user and nt_len == 0:
            return "anonymous", None, dom or None
        return "ntlm", user or None, dom or None
    if any(oid in blob for oid in _KRB_OIDS):
        return "kerberos", None, None
    return None, None, None


def normalise_pipe(name: str) -> str:
    """``\\PIPE\\LSARPC`` -> ``lsarpc``: lowercase, no leading backslashes or ``pipe\\``."""
    n = name.replace("/", "\\").strip("\x00").lstrip("\\").lower()
    if n.startswith("pipe\\"):
        n = n[5:].lstrip("\\")
    return n


@dataclass(frozen=True, slots=True)
class SmbSession:
    """SMB session facts of a pipe (``Association.smb``), for auth analysis."""

    dialect: str | None = None
    """``2.0.2`` … ``3.1.1`` for SMB2/3, ``NT1`` for SMB1; None when the negotiate was not seen."""
    user: str | None = None
    domain: str | None = None
    mechanism: str | None = None
    """``ntlm``, ``kerberos``, ``anonymous``, ``guest`` or None (session setup not captured)."""
    signed: bool = False
    encrypted: bool = False
    decrypted: bool = False
    """The session's SMB3-encrypted messages were decrypted with a secret the user gave."""


class SessionState:
    """What one SMB session (SessionId / UID) has shown so far; its facts are made once."""

    __slots__ = ("decrypted", "domain", "encrypted", "facts", "failed", "mech", "reported", "signed", "user")

    def __init__(self) -> None:
        self.user: str | None = None
        self.domain: str | None = None
        self.mech: str | None = None
        self.signed = False
        self.encrypted = False
        self.reported = False
        self.decrypted = False
        self.failed = False  # a decrypt_failed anomaly was written for this session
        self.facts: SmbSession | None = None
