"""The few primitives NTLM sealing needs: MD4 (gone from OpenSSL 3's default provider) and RC4
with a persistent state (a sealing handle) in pure Python, HMAC-MD5, and single DES for NTLMv1
(from ``cryptography``, imported only when an NTLMv1 exchange is checked)."""

from __future__ import annotations

import hashlib
import hmac
import struct

__all__ = ["RC4", "des", "hmac_md5", "md4"]


def hmac_md5(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.md5).digest()


def des(key7: bytes, block: bytes) -> bytes:
    """MS-NLMP 6 DES(K, D): one 8-byte block under a 56-bit key given as 7 bytes (spread over 8
    bytes, parity bits left clear: DES ignores them). Single DES is TripleDES with K1=K2=K3;
    ``cryptography`` keeps it in ``hazmat.decrepit`` (since 43; before, among the primitives),
    and a few blocks per NTLMv1 exchange do not justify a pure-Python DES."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # cryptography < 43
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

    k = int.from_bytes(key7[:7].ljust(7, b"\0"), "big")
    key8 = bytes(((k >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))
    enc = Cipher(TripleDES(key8 * 3), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _rotl(x: int, n: int) -> int:
    x &= 0xFFFFFFFF
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def md4(data: bytes) -> bytes:
    """RFC 1320."""
    msg = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for i in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[i : i + 64])
        a, b, c, d = h
        for k in range(16):
            s = (3, 7, 11, 19)[k % 4]
            a, b, c, d = d, _rotl(a + ((b & c) | (~b & d)) + x[k], s), b, c
        for k in range(16):
            s = (3, 5, 9, 13)[k % 4]
            j = (k % 4) * 4 + k // 4
            a, b, c, d = d, _rotl(a + ((b & c) | (b & d) | (c & d)) + x[j] + 0x5A827999, s), b, c
        for k in range(16):
            s = (3, 9, 11, 15)[k % 4]
            j = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[k]
            a, b, c, d = d, _rotl(a + (b ^ c ^ d) + x[j] + 0x6ED9EBA1, s), b, c
        h = [(v + w) & 0xFFFFFFFF for v, w in zip(h, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *h)


class RC4:
    """An RC4 keystream whose state carries over between calls (MS-NLMP sealing handles)."""

    __slots__ = ("i", "j", "s")

    def __init__(self, key: bytes) -> None:
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) & 0xFF
            s[i], s[j] = s[j], s[i]
        self.s, self.i, self.j = s, 0, 0

    def crypt(self, data: bytes) -> bytes:
        s, i, j = self.s, self.i, self.j
        out = bytearray(len(data))
        for n, byte in enumerate(data):
            i = (i + 1) & 0xFF
            j = (j + s[i]) & 0xFF
            s[i], s[j] = s[j], s[i]
            out[n] = byte ^ s[(s[i] + s[j]) & 0xFF]
        self.i, self.j = i, j
        return bytes(out)
