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

from rpcinspect.auth.crypto import RC4
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

    def skip(self, side: int, verifier: bytes) -> None:
        """An integrity-level PDU: advance whatever state its signature consumed."""
        ...


class NtlmSealer:
    """Extended session security: two RC4 handles (client->server, server->client)."""

    __slots__ = ("handles", "key_exch")

    def __init__(self, exported: bytes, flags: int) -> None:
        c2s, s2c = seal_keys(flags, exported)
        self.handles = (RC4(c2s), RC4(s2c))
        self.key_exch = bool(flags & KEY_EXCH)

    def unseal(self, side: int, sealed: bytes, verifier: bytes) -> bytes | None:
        """Decrypts one PDU's body sent by *side*; advances the handle over the signature's
        checksum (bytes 4..12 of the NTLMSSP_MESSAGE_SIGNATURE) as the sender did."""
        h = self.handles[side]
        out = h.crypt(sealed)
        if self.key_exch:
            h.crypt(verifier[4:12])
        return out

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
