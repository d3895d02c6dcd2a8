"""SMB3 encryption primitives (MS-SMB2 3.1.4.2, 3.1.4.3, 3.2.5.3): key derivation, the 3.1.1
pre-authentication integrity hash, and decryption of TRANSFORM messages.

Pure functions and one small class, no SMB state: :mod:`rpcinspect.transports.smb3keys` follows
the NEGOTIATE and SESSION_SETUP exchanges and calls these. ``cryptography``'s AEADs are imported
only when a session's keys are actually made, so runs without secrets never load them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CIPHERS",
    "PREAUTH_ZERO",
    "TRANSFORM_LEN",
    "Cipher",
    "TransformKeys",
    "derive_keys",
    "kdf",
    "preauth_update",
]

TRANSFORM_LEN: Final = 52
"""SMB2 TRANSFORM_HEADER: ProtocolId, Signature (16), Nonce (16), OriginalMessageSize, Reserved,
Flags / EncryptionAlgorithm, SessionId."""
PREAUTH_ZERO: Final = bytes(64)
"""The 3.1.1 preauth integrity hash starts as 64 zero bytes (SHA-512 output size)."""


@dataclass(frozen=True, slots=True)
class Cipher:
    """One SMB2 cipher id (MS-SMB2 2.2.3.1.2): AEAD mode, key and nonce lengths."""

    name: str
    gcm: bool
    key_len: int
    nonce_len: int


CIPHERS: Final[dict[int, Cipher]] = {
    0x0001: Cipher("AES-128-CCM", False, 16, 11),
    0x0002: Cipher("AES-128-GCM", True, 16, 12),
    0x0003: Cipher("AES-256-CCM", False, 32, 11),
    0x0004: Cipher("AES-256-GCM", True, 32, 12),
}

# label, client->server context, server->client context (3.0/3.0.2); NULs are part of the strings
_LABEL_30: Final = b"SMB2AESCCM\x00"
_CTX_30_C2S: Final = b"ServerIn \x00"
_CTX_30_S2C: Final = b"ServerOut\x00"
_LABEL_311_C2S: Final = b"SMBC2SCipherKey\x00"
_LABEL_311_S2C: Final = b"SMBS2CCipherKey\x00"
_U32 = struct.Struct("<I").unpack_from


def kdf(key: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """SP800-108 KDF in counter mode with HMAC-SHA256, r = 32, as MS-SMB2 3.1.4.2 uses it
    (*length* in bytes: 16 or 32, one or two PRF blocks)."""
    bits = struct.pack(">I", length * 8)
    out = b""
    i = 1
    while len(out) < length:
        out += hmac.new(key, struct.pack(">I", i) + label + b"\x00" + context + bits, hashlib.sha256).digest()
        i += 1
    return out[:length]


def preauth_update(value: bytes, message: bytes) -> bytes:
    """One step of the 3.1.1 preauth integrity hash: SHA-512(previous value || whole message)."""
    return hashlib.sha512(value + message).digest()


def derive_keys(session_key: bytes, dialect: int, cipher: int, preauth: bytes | None) -> tuple[bytes, bytes]:
    """``(client->server key, server->client key)`` of an SMB 3.x session (MS-SMB2 3.2.5.3.1).

    3.0 and 3.0.2 use AES-128-CCM with fixed labels; 3.1.1 takes the cipher the NEGOTIATE chose and
    the session's preauth hash as context. 256-bit ciphers derive 32 bytes from the full session
    key, 128-bit ones from its first 16 bytes."""
    c = CIPHERS[cipher]
    if dialect == 0x0311:
        if preauth is None:
            raise ValueError("SMB 3.1.1 keys need the preauth integrity hash")
        key = session_key if c.key_len == 32 else session_key[:16]
        return (
            kdf(key, _LABEL_311_C2S, preauth, c.key_len),
            kdf(key, _LABEL_311_S2C, preauth, c.key_len),
        )
    key = session_key[:16]
    return kdf(key, _LABEL_30, _CTX_30_C2S, 16), kdf(key, _LABEL_30, _CTX_30_S2C, 16)


class TransformKeys:
    """The two AEADs of one session (index 0: what the client sends, 1: what the server sends)."""

    __slots__ = ("aeads", "cipher", "invalid_tag")

    def __init__(self, cipher: int, c2s: bytes, s2c: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

        self.cipher = CIPHERS[cipher]
        make: Any = AESGCM if self.cipher.gcm else (lambda k: AESCCM(k, tag_length=16))
        self.aeads = (make(c2s), make(s2c))
        self.invalid_tag: type[Exception] = InvalidTag

    def decrypt(self, side: int, msg: bytes) -> bytes | None:
        """The plaintext SMB2 message(s) of a whole TRANSFORM message sent by *side*, or None when
        the signature (the AEAD tag) does not verify. Raises ValueError if the header is short or
        OriginalMessageSize points beyond the message."""
        if len(msg) < TRANSFORM_LEN:
            raise ValueError("TRANSFORM header shorter than 52 bytes")
        size = _U32(msg, 36)[0]
        if TRANSFORM_LEN + size > len(msg):
            raise ValueError(f"TRANSFORM OriginalMessageSize {size} beyond the message ({len(msg)} bytes)")
        nonce = bytes(msg[20 : 20 + self.cipher.nonce_len])
        data = bytes(msg[TRANSFORM_LEN : TRANSFORM_LEN + size]) + bytes(msg[4:20])
        try:
            return self.aeads[side].decrypt(nonce, data, bytes(msg[20:TRANSFORM_LEN]))
        except self.invalid_tag:
            return None
