"""NTLM key derivation (MS-NLMP 3.3, 3.4.5): the responses a secret must reproduce, and the keys
an exchange yields, for NTLMv1 (with and without extended session security) and NTLMv2.

Pure functions of bytes and the AUTHENTICATE message's NegotiateFlags, so that each one can be
checked against the published examples of MS-NLMP section 4.2. Sealing itself lives in
:mod:`rpcinspect.auth.ntlmseal`.
"""

from __future__ import annotations

import hashlib

from rpcinspect.auth.crypto import RC4, des, hmac_md5, md4

__all__ = [
    "DATAGRAM", "ESS", "KEY_EXCH", "LM_KEY", "NEG_56", "NEG_128", "NON_NT_SESSION_KEY",
    "desl", "exported_session_key", "kxkey_v1", "legacy_seal_key", "lmowf_v1", "ntlmv1_response",
    "ntlmv1_session_base_key", "ntlmv2_session_base_key", "seal_keys",
]  # fmt: skip

# NegotiateFlags that change the keys (MS-NLMP 2.2.2.5).
DATAGRAM = 0x00000040
LM_KEY = 0x00000080
ESS = 0x00080000  # NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
NON_NT_SESSION_KEY = 0x00400000
NEG_128 = 0x20000000
KEY_EXCH = 0x40000000
NEG_56 = 0x80000000

_LM_MAGIC = b"KGS!@#$%"
_C2S_SEAL = b"session key to client-to-server sealing key magic constant\0"
_S2C_SEAL = b"session key to server-to-client sealing key magic constant\0"
_C2S_SIGN = b"session key to client-to-server signing key magic constant\0"
_S2C_SIGN = b"session key to server-to-client signing key magic constant\0"


def lmowf_v1(password: str) -> bytes:
    """LMOWFv1: DES of a constant under the upper-cased password (at most 14 OEM characters).
    Only a password gives it; an NT hash does not."""
    pw = password.upper().encode("latin-1", "replace")[:14].ljust(14, b"\0")
    return des(pw[:7], _LM_MAGIC) + des(pw[7:], _LM_MAGIC)


def desl(key: bytes, data: bytes) -> bytes:
    """DESL(K, D): the 16-byte key as three DES keys of 7 bytes (the last one zero-padded)."""
    k = key.ljust(21, b"\0")
    return des(k[:7], data) + des(k[7:14], data) + des(k[14:21], data)


def ntlmv1_response(nt_hash: bytes, server_challenge: bytes, lm_response: bytes, flags: int) -> bytes:
    """The 24-byte NTLMv1 NtChallengeResponse of an NT hash (MS-NLMP 3.3.1). With extended
    session security the client challenge is the first 8 bytes of the LM response."""
    data = server_challenge
    if flags & ESS:
        data = hashlib.md5(server_challenge + lm_response[:8]).digest()[:8]
    return desl(nt_hash, data)


def ntlmv1_session_base_key(nt_hash: bytes) -> bytes:
    """SessionBaseKey of NTLMv1: MD4 of the NT hash (NTOWFv1)."""
    return md4(nt_hash)


def kxkey_v1(
    flags: int, session_base_key: bytes, lm_response: bytes, server_challenge: bytes, lmowf: bytes | None
) -> bytes | None:
    """KXKEY for NTLMv1 (MS-NLMP 3.4.5.1), SessionBaseKey being MD4(NTOWFv1). None when the flags
    ask for the LM hash (LM_KEY, REQUEST_NON_NT_SESSION_KEY) and *lmowf* is not known."""
    if flags & ESS:
        return hmac_md5(session_base_key, server_challenge + lm_response[:8])
    if flags & LM_KEY:
        if lmowf is None:
            return None
        return des(lmowf[:7], lm_response[:8]) + des(lmowf[7:8] + b"\xbd" * 6, lm_response[:8])
    if flags & NON_NT_SESSION_KEY:
        return None if lmowf is None else lmowf[:8] + b"\0" * 8
    return session_base_key


def ntlmv2_session_base_key(
    nt_hash: bytes, user: str, domain: str, server_challenge: bytes, nt_response: bytes
) -> bytes | None:
    """SessionBaseKey of an NTLMv2 response (MS-NLMP 3.3.2), None if its NTProofStr does not
    verify with *nt_hash*. NTLMv2's KXKEY is this key itself."""
    key_nt = hmac_md5(nt_hash, (user.upper() + domain).encode("utf-16-le"))
    proof = hmac_md5(key_nt, server_challenge + nt_response[16:])
    return hmac_md5(key_nt, proof) if proof == nt_response[:16] else None


def exported_session_key(flags: int, kxkey: bytes, encrypted: bytes | None) -> bytes:
    """With KEY_EXCH the client's random key, sent RC4-encrypted under KXKEY; otherwise KXKEY."""
    if flags & KEY_EXCH and encrypted is not None and len(encrypted) == 16:
        return RC4(kxkey).crypt(encrypted)
    return kxkey


def seal_keys(flags: int, exported: bytes) -> tuple[bytes, bytes]:
    """SEALKEY with extended session security (MS-NLMP 3.4.5.3): the (client-to-server,
    server-to-client) RC4 keys, the session key cut to 128, 56 or 40 bits first."""
    key = exported if flags & NEG_128 else exported[:7] if flags & NEG_56 else exported[:5]
    return hashlib.md5(key + _C2S_SEAL).digest(), hashlib.md5(key + _S2C_SEAL).digest()


def sign_keys(exported: bytes) -> tuple[bytes, bytes]:
    """SIGNKEY with extended session security (MS-NLMP 3.4.5.2): the (client-to-server,
    server-to-client) HMAC-MD5 keys of the message signatures (never weakened)."""
    return hashlib.md5(exported + _C2S_SIGN).digest(), hashlib.md5(exported + _S2C_SIGN).digest()


def legacy_seal_key(flags: int, exported: bytes) -> bytes:
    """SEALKEY without extended session security: the one RC4 key of both directions, weakened
    to 56 or 40 bits only with LM_KEY (or datagram mode), else the exported key as it is."""
    if not flags & (LM_KEY | DATAGRAM):
        return exported
    return exported[:7] + b"\xa0" if flags & NEG_56 else exported[:5] + b"\xe5\x38\xb0"
