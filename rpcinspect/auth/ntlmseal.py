"""NTLM session keys and sealing of DCE/RPC stubs (MS-NLMP 3.4.4.2, 3.4.5) from user secrets.

For an NTLMv2 AUTHENTICATE, each candidate secret is checked against the NTProofStr first, so a
wrong password is recognised (and reported once) instead of producing garbage.
:func:`ntlm_session_key` is shared by every user of an NTLM exchange (RPC sealing, SMB3 keys).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from rpcinspect.auth.crypto import RC4, hmac_md5
from rpcinspect.auth.secrets import Secret

__all__ = ["NtlmSealer", "Sealer", "ntlm_sealer", "ntlm_session_key"]

_C2S_SEAL = b"session key to client-to-server sealing key magic constant\0"
_S2C_SEAL = b"session key to server-to-client sealing key magic constant\0"
_KEY_EXCH = 0x40000000
_NEG_128 = 0x20000000
_NEG_56 = 0x80000000
_ESS = 0x00080000


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
    """The two RC4 sealing handles of an NTLM security context (client->server, server->client)."""

    __slots__ = ("handles", "key_exch")

    def __init__(self, exported: bytes, flags: int) -> None:
        if flags & _NEG_128:
            key = exported
        elif flags & _NEG_56:
            key = exported[:7]
        else:
            key = exported[:5]
        c2s, s2c = hashlib.md5(key + _C2S_SEAL).digest(), hashlib.md5(key + _S2C_SEAL).digest()
        self.handles = (RC4(c2s), RC4(s2c))
        self.key_exch = bool(flags & _KEY_EXCH)

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


def ntlm_session_key(ntlm: dict[str, Any], secrets: list[Secret]) -> bytes | str:
    """The exported session key of a finished NTLM exchange (the key SMB and RPC derive theirs
    from), or why there is none (a sentence, never a secret)."""
    nt = ntlm.get("nt_response")
    chal = ntlm.get("server_challenge")
    user, domain = ntlm.get("user") or "", ntlm.get("domain") or ""
    flags = int(ntlm.get("negotiate_flags") or 0)
    if not nt or len(nt) <= 24 or chal is None:
        return "only NTLMv2 exchanges with a captured CHALLENGE can be decrypted"
    tried = 0
    for s in secrets:
        if not s.matches(domain, user):
            continue
        tried += 1
        key_nt = hmac_md5(s.nt_hash, (user.upper() + domain).encode("utf-16-le"))
        proof = hmac_md5(key_nt, chal + nt[16:])
        if proof != nt[:16]:
            continue
        base = hmac_md5(key_nt, proof)
        enc = ntlm.get("encrypted_session_key")
        return RC4(base).crypt(enc) if flags & _KEY_EXCH and enc and len(enc) == 16 else base
    who = f"{domain}\\{user}" if domain else user
    if not tried:
        return f"no secret given for {who}"
    return f"wrong password or NT hash for {who} (the NTLMv2 proof does not verify)"


def ntlm_sealer(ntlm: dict[str, Any], secrets: list[Secret]) -> NtlmSealer | str:
    """The sealer for a finished NTLM exchange, or why there is none (a sentence, no secret)."""
    if not int(ntlm.get("negotiate_flags") or 0) & _ESS:
        return "NTLM without extended session security is not supported"
    key = ntlm_session_key(ntlm, secrets)
    return key if isinstance(key, str) else NtlmSealer(key, int(ntlm.get("negotiate_flags") or 0))
