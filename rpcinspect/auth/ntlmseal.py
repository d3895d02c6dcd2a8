"""NTLM session keys and sealing of DCE/RPC stubs (MS-NLMP 3.4.3, 3.4.4) from user secrets.

Each candidate secret is first checked against the AUTHENTICATE message (the NTLMv2 NTProofStr,
or the recomputed 24-byte NTLMv1 response), so a wrong password is recognised (and reported once)
instead of producing garbage. :func:`ntlm_session_key` is shared by every user of an NTLM
exchange (RPC sealing, SMB3 keys); the key derivation itself is :mod:`rpcinspect.auth.ntlmkeys`.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Protocol

from rpcinspect.auth.crypto import RC4, hmac_md5
from rpcinspect.auth.ntlmkeys import (
    ESS,
    KEY_EXCH,
    exported_session_key,
    kxkey_v1,
    legacy_seal_key,
    ntlmv1_response,
    ntlmv1_session_base_key,
    ntlmv2_session_base_key,
    seal_keys,
    sign_keys,
)
from rpcinspect.auth.secrets import Secret

__all__ = ["NtlmLegacySealer", "NtlmSealer", "Sealer", "ntlm_sealer", "ntlm_session_key"]


class Sealer(Protocol):
    """What a security context that a secret opened offers the association: one call per
    protected PDU, in wire order per side (0 client, 1 server), since stream ciphers and sequence
    numbers advance with every PDU. *verifier* is the PDU's whole auth value."""

    def unseal(self, side: int, sealed: bytes, verifier: bytes) -> bytes | None:
        """The plaintext of a privacy-level PDU body (None if it does not verify)."""
        ...

    def unseal_pdu(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        """:meth:`unseal` given the rest of the PDU its signature may cover: *pre*, the bytes
        before the body (header, object UUID), and *post*, the sec_trailer."""
        ...

    def skip(self, side: int, verifier: bytes) -> None:
        """An integrity-level PDU: advance whatever state its signature consumed."""
        ...


class NtlmSealer:
    """Extended session security: two RC4 handles (client->server, server->client), and the
    signing keys that check each PDU's NTLMSSP_MESSAGE_SIGNATURE (MS-NLMP 3.4.4.2).

    The checksum is HMAC-MD5(SigningKey, SeqNum + message)[:8], RC4-encrypted with the sealing
    handle after the message when keys were exchanged. Which bytes are "the message" depends on
    whether the association signs headers (MS-RPCE 3.3.1.5.2.2): the whole PDU up to the
    verifier, body in plaintext, or only the body and its padding. Both are tried (the first
    that verifies is kept), so a stub that does not verify (damaged, out of step after a PDU
    missing from the capture, or a key that is not the one used) is never returned.
    """

    __slots__ = ("handles", "hdr_sign", "key_exch", "sign")

    def __init__(self, exported: bytes, flags: int) -> None:
        c2s, s2c = seal_keys(flags, exported)
        self.handles = (RC4(c2s), RC4(s2c))
        self.sign = sign_keys(exported)
        self.key_exch = bool(flags & KEY_EXCH)
        self.hdr_sign: bool | None = None  # learned from the first PDU that verifies

    def unseal(self, side: int, sealed: bytes, verifier: bytes) -> bytes | None:
        """Decrypts one PDU's body sent by *side* and checks its signature over the body alone."""
        return self.unseal_pdu(side, sealed, verifier, b"", b"")

    def unseal_pdu(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        h = self.handles[side]
        plain = h.crypt(sealed)
        if len(verifier) < 16:
            return None
        checksum = h.crypt(verifier[4:12]) if self.key_exch else verifier[4:12]
        seq = verifier[12:16]
        key = self.sign[side]
        variants = (True, False) if self.hdr_sign is None else (self.hdr_sign,)
        for hdr_sign in variants:
            if hdr_sign and not pre:
                continue
            msg = pre + plain + post if hdr_sign else plain
            if hmac_md5(key, seq + msg)[:8] == checksum:
                if pre:
                    self.hdr_sign = hdr_sign
                return plain
        return None

    def skip(self, side: int, verifier: bytes) -> None:
        if self.key_exch:
            self.handles[side].crypt(verifier[4:12])


class NtlmLegacySealer:
    """No extended session security (MS-NLMP 3.4.4.1): ONE RC4 handle for both directions, in
    wire order, and one sequence number; each PDU's body, then its signature's RandomPad,
    CRC32 checksum and SeqNum (12 bytes) advance it.

    A PDU verifies if its decrypted SeqNum is the expected one or its checksum is the CRC32 of
    the decrypted body (what Samba and Impacket sign; the body is all this sealer sees, so a
    checksum over more of the PDU is left to the sequence number). Once out of step (a PDU
    missing from the capture), every later PDU fails and nothing garbled is returned."""

    __slots__ = ("handle", "seq")

    def __init__(self, exported: bytes, flags: int) -> None:
        self.handle = RC4(legacy_seal_key(flags, exported))
        self.seq = 0

    def _signature(self, verifier: bytes, plain: bytes | None) -> bool:
        sig = self.handle.crypt(verifier[4:16])
        expected, self.seq = self.seq, self.seq + 1
        if len(sig) < 12:
            return False
        crc, seq = struct.unpack_from("<II", sig, 4)
        return seq == expected or (plain is not None and crc == zlib.crc32(plain))

    def unseal(self, side: int, sealed: bytes, verifier: bytes) -> bytes | None:
        plain = self.handle.crypt(sealed)
        return plain if self._signature(verifier, plain) else None

    def unseal_pdu(self, side: int, sealed: bytes, verifier: bytes, pre: bytes, post: bytes) -> bytes | None:
        return self.unseal(side, sealed, verifier)

    def skip(self, side: int, verifier: bytes) -> None:
        self._signature(verifier, None)


def _v1_key(ntlm: dict[str, Any], nt_hash: bytes, chal: bytes, flags: int) -> bytes | str | None:
    """KXKEY of an NTLMv1 exchange if *nt_hash* reproduces its NT response (None if not)."""
    nt, lm = ntlm["nt_response"], ntlm.get("lm_response") or b""
    if flags & ESS and len(lm) < 8:
        return "the NTLMv1 exchange with extended session security has no client challenge"
    if ntlmv1_response(nt_hash, chal, lm, flags) != nt:
        return None
    kx = kxkey_v1(flags, ntlmv1_session_base_key(nt_hash), lm, chal, None)
    if kx is None:
        return "NTLMv1 with the LM session key (LM_KEY or REQUEST_NON_NT_SESSION_KEY) needs the LM hash"
    return kx


def ntlm_session_key(ntlm: dict[str, Any], secrets: list[Secret]) -> bytes | str:
    """The exported session key of a finished NTLM exchange (the key SMB and RPC derive theirs
    from), or why there is none (a sentence, never a secret)."""
    nt = ntlm.get("nt_response")
    chal = ntlm.get("server_challenge")
    user, domain = ntlm.get("user") or "", ntlm.get("domain") or ""
    flags = int(ntlm.get("negotiate_flags") or 0)
    if not nt or len(nt) < 24 or chal is None:
        return "only NTLMv1 and NTLMv2 exchanges with a captured CHALLENGE can be decrypted"
    v2 = len(nt) > 24
    tried = 0
    for s in secrets:
        if not s.matches(domain, user):
            continue
        tried += 1
        if v2:
            kx: bytes | str | None = ntlmv2_session_base_key(s.nt_hash, user, domain, chal, nt)
        else:
            kx = _v1_key(ntlm, s.nt_hash, chal, flags)
        if isinstance(kx, str):
            return kx
        if kx is not None:
            return exported_session_key(flags, kx, ntlm.get("encrypted_session_key"))
    who = f"{domain}\\{user}" if domain else user
    if not tried:
        return f"no secret given for {who}"
    what = "NTLMv2 proof" if v2 else "NTLMv1 response"
    return f"wrong password or NT hash for {who} (the {what} does not verify)"


def ntlm_sealer(ntlm: dict[str, Any], secrets: list[Secret]) -> NtlmSealer | NtlmLegacySealer | str:
    """The sealer for a finished NTLM exchange, or why there is none (a sentence, no secret)."""
    key = ntlm_session_key(ntlm, secrets)
    if isinstance(key, str):
        return key
    flags = int(ntlm.get("negotiate_flags") or 0)
    return NtlmSealer(key, flags) if flags & ESS else NtlmLegacySealer(key, flags)
