"""Kerberos GSS wrap tokens as DCE/RPC seals them (MS-KILE 3.4.5.4, MS-RPCE 3.3.1.5.2).

Two token kinds, chosen by the token id in the PDU's auth verifier:

* RFC 4121 (``05 04``, AES): in DCE style the encrypted stub stays in the PDU body and the
  verifier holds the 16-byte token header plus the rest of the rotated token (RRC, plus EC as
  Windows rotates it): ``rotate_left(verifier[16:] + stub, RRC + EC)`` is
  ``E(confounder | stub | filler | header) | HMAC``. The HMAC covers the PDU header and
  sec_trailer too when header signing is in force (they are GSS "sign only" buffers).
* RFC 4757 (``02 01``, RC4-HMAC, after a GSS OID wrapper): encrypted sequence number, checksum,
  encrypted confounder; the stub is RC4 under a key derived from the sequence number.

Both verify the token's checksum, so a wrong key or a damaged PDU gives None, never garbage.
Tokens carry their own sequence numbers: there is no stream state to advance.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from rpcinspect.auth.der import DerError, tlv
from rpcinspect.auth.krbcontext import Key, KrbKeys

__all__ = ["KrbSealer", "krb_sealer"]

_SEAL_USAGE = (24, 22)  # RFC 4121 2: KG-USAGE-INITIATOR-SEAL, KG-USAGE-ACCEPTOR-SEAL, by side
_FLAG_SENT_BY_ACCEPTOR, _FLAG_SEALED, _FLAG_ACCEPTOR_SUBKEY = 1, 2, 4
_AES, _RC4 = frozenset((17, 18)), frozenset((23,))


def _hmac_md5(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.md5).digest()


def _rc4(key: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
    from cryptography.hazmat.primitives.ciphers import Cipher

    return Cipher(ARC4(key), mode=None).decryptor().update(data)


class KrbSealer:
    """Unseals the wrap tokens of one Kerberos security context (both directions)."""

    __slots__ = ("hdr_sign", "keys")

    def __init__(self, keys: KrbKeys) -> None:
        self.keys = keys
        self.hdr_sign: bool | None = None  # learnt from the first token that verifies

    # -- Sealer protocol -------------------------------------------------------------------------
    def unseal(self, side: int, sealed: bytes, verifier: bytes) -> bytes | None:
        return self.unseal_pdu(side, sealed, verifier, b"", b"")

    def skip(self, side: int, verifier: bytes) -> None:
        """Signed-only PDUs consume no state (the token carries its sequence number)."""

    def unseal_pdu(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        """The plaintext of *sealed* (stub and padding); *pre* is the PDU up to the stub and *post*
        its sec_trailer, which the checksum covers when the association signs headers."""
        variants = (True, False) if self.hdr_sign is None else (self.hdr_sign,)
        for hdr_sign in variants:
            if hdr_sign and not pre:
                continue
            if verifier[:2] == b"\x05\x04":
                plain = self._cfx(side, sealed, verifier, pre if hdr_sign else b"", post if hdr_sign else b"")
            else:
                plain = self._rc4(side, sealed, verifier, pre if hdr_sign else b"", post if hdr_sign else b"")
            if plain is not None:
                self.hdr_sign = hdr_sign if pre else self.hdr_sign
                return plain
        return None

    # -- RFC 4121 ------------------------------------------------------------------------------------
    def _cfx_key(self, flags: int) -> Key | None:
        k = self.keys
        if flags & _FLAG_ACCEPTOR_SUBKEY:
            return k.acceptor_subkey
        return k.initiator_subkey or k.session_key

    def _cfx(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        if len(verifier) < 16 + 16 + 12 or verifier[3] != 0xFF:
            return None
        flags = verifier[2]
        ec, rrc = struct.unpack_from(">HH", verifier, 4)
        key = self._cfx_key(flags)
        if key is None or key[0] not in _AES or not flags & _FLAG_SEALED:
            return None
        if bool(flags & _FLAG_SENT_BY_ACCEPTOR) != bool(side):
            return None
        data = verifier[16:] + sealed
        n = len(sealed)
        if len(data) < 16 + n + ec + 16 + 12:
            return None
        header = verifier[:6] + b"\0\0" + verifier[8:16]  # RRC is zero in the encrypted copy

        def to_sign(confounder: bytes, dec: bytes) -> bytes:
            return confounder + pre + dec[:n] + post + dec[n:]

        from scapy.libs.rfc3961 import Key as ScapyKey

        k = ScapyKey(key[0], key=key[1])
        for rot in dict.fromkeys((rrc + ec, rrc)):  # Windows rotates by RRC + EC, RFC 4121 by RRC
            r = rot % len(data)
            try:
                dec = bytes(k.decrypt(_SEAL_USAGE[side], data[r:] + data[:r], presignfunc=to_sign))
            except (ValueError, AssertionError):
                continue
            if len(dec) == n + ec + 16 and dec[n + ec :] == header:
                return dec[:n]
        return None

    # -- RFC 4757 ------------------------------------------------------------------------------------
    def _rc4(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        tok = _gss_inner(verifier)
        if tok is None or len(tok) < 32 or tok[:2] != b"\x02\x01" or tok[2:4] != b"\x11\x00":
            return None
        if tok[4:6] != b"\x10\x00":
            return None  # not sealed with RC4
        k = self.keys
        key = k.acceptor_subkey or k.initiator_subkey or k.session_key
        if key[0] not in _RC4:
            return None
        kss = key[1]
        snd_seq, cksum, conf = tok[8:16], tok[16:24], tok[24:32]
        seq = _rc4(_hmac_md5(_hmac_md5(kss, b"\0\0\0\0"), cksum), snd_seq)
        if seq[4:] != (b"\xff\xff\xff\xff" if side else b"\0\0\0\0"):
            return None  # the direction bytes (MS-KILE) do not match: wrong key or side
        klocal = bytes(x ^ 0xF0 for x in kss)
        kcrypt = _hmac_md5(_hmac_md5(klocal, b"\0\0\0\0"), seq[:4])
        plain = _rc4(kcrypt, conf + sealed)
        signed = pre + plain[8:] + post
        signed += bytes([(-len(signed)) % 8]) * ((-len(signed)) % 8)
        ksign = _hmac_md5(kss, b"signaturekey\0")
        md5 = hashlib.md5(struct.pack("<I", 13) + tok[:8] + plain[:8] + signed).digest()
        if not hmac.compare_digest(_hmac_md5(ksign, md5)[:8], cksum):
            return None
        return plain[8:]


def _gss_inner(verifier: bytes) -> bytes | None:
    """The token inside a GSS-API InitialContextToken wrapper (``60 .. 06 OID``), or as is."""
    if verifier[:1] != b"\x60":
        return verifier
    try:
        _t, vs, ve = tlv(verifier, 0)
        t, _os, oe = tlv(verifier, vs, ve)
    except DerError:
        return None
    return verifier[oe:ve] if t == 0x06 else None


def krb_sealer(keys: KrbKeys) -> KrbSealer | str:
    """The sealer for an opened context, or why there is none (a sentence, no key)."""
    etypes = {k[0] for k in (keys.session_key, keys.initiator_subkey, keys.acceptor_subkey) if k}
    if not etypes & (_AES | _RC4):
        return f"the Kerberos keys of {keys.client}'s context use an encryption type we cannot unseal"
    return KrbSealer(keys)
