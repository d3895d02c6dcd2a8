"""Decryption of NTLM-sealed stubs (MS-NLMP 3.4.4.2, 3.4.5) with secrets the user supplies.

A :class:`Secret` is an NT hash, optionally tied to a principal (``DOMAIN\\user`` or ``user``).
For an NTLMv2 AUTHENTICATE, each candidate secret is checked against the NTProofStr first, so a
wrong password is recognised (and reported once) instead of producing garbage. Secrets are
never written to any record, anomaly or log: only the principal they belong to.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpcinspect.auth.crypto import RC4, hmac_md5, md4

__all__ = ["NtlmSealer", "Secret", "load_secrets", "ntlm_sealer"]

_C2S_SEAL = b"session key to client-to-server sealing key magic constant\0"
_S2C_SEAL = b"session key to server-to-client sealing key magic constant\0"
_KEY_EXCH = 0x40000000
_NEG_128 = 0x20000000
_NEG_56 = 0x80000000
_ESS = 0x00080000


@dataclass(frozen=True)
class Secret:
    """An NT hash, for any principal (``user`` None) or for one (``user`` or ``DOMAIN\\user``)."""

    nt_hash: bytes = field(repr=False)
    user: str | None = None

    def matches(self, domain: str | None, user: str | None) -> bool:
        if self.user is None:
            return True
        want = self.user.lower()
        u = (user or "").lower()
        return want in (u, f"{(domain or '').lower()}\\{u}")


def _split(spec: str) -> tuple[str | None, str]:
    """``[PRINCIPAL%]SECRET`` (smbclient's separator) into its parts."""
    if "%" in spec:
        who, secret = spec.split("%", 1)
        return (who or None), secret
    return None, spec


def load_secrets(
    passwords: list[str], nt_hashes: list[str], password_file: Path | None = None
) -> list[Secret]:
    """Secrets from options (``[PRINCIPAL%]PASSWORD``, ``[PRINCIPAL%]NTHASH``), a file (one
    ``password:`` / ``nt_hash:`` line each) and the ``RPCINSPECT_PASSWORD`` / ``RPCINSPECT_NT_HASH``
    environment variables. Raises ValueError (without the secret in the message) on a bad hash."""
    pw = list(passwords)
    nh = list(nt_hashes)
    if os.environ.get("RPCINSPECT_PASSWORD"):
        pw.append(os.environ["RPCINSPECT_PASSWORD"])
    if os.environ.get("RPCINSPECT_NT_HASH"):
        nh.append(os.environ["RPCINSPECT_NT_HASH"])
    if password_file is not None:
        for n, line in enumerate(password_file.read_text().splitlines(), 1):
            kind, _, value = line.strip().partition(":")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if kind == "password":
                pw.append(value)
            elif kind == "nt_hash":
                nh.append(value)
            else:
                raise ValueError(f"{password_file}:{n}: expected 'password:' or 'nt_hash:'")
    out = []
    for spec in pw:
        who, secret = _split(spec)
        out.append(Secret(md4(secret.encode("utf-16-le")), who))
    for spec in nh:
        who, secret = _split(spec)
        try:
            raw = bytes.fromhex(secret.split(":")[-1])
        except ValueError:
            raw = b""
        if len(raw) != 16:
            raise ValueError(f"an --nt-hash{' for ' + who if who else ''} is not 32 hex digits")
        out.append(Secret(raw, who))
    return out


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

    def unseal(self, side: int, sealed: bytes, checksum: bytes) -> bytes:
        """Decrypts one PDU's body sent by *side* (0 client, 1 server); advances the handle over
        the signature's checksum as the sender did."""
        h = self.handles[side]
        out = h.crypt(sealed)
        if self.key_exch:
            h.crypt(checksum)
        return out

    def skip(self, side: int, checksum: bytes) -> None:
        """A signed-only PDU: its checksum still went through the handle."""
        if self.key_exch:
            self.handles[side].crypt(checksum)


def ntlm_sealer(ntlm: dict[str, Any], secrets: list[Secret]) -> NtlmSealer | str:
    """The sealer for a finished NTLM exchange, or why there is none (a sentence, no secret)."""
    nt = ntlm.get("nt_response")
    chal = ntlm.get("server_challenge")
    user, domain = ntlm.get("user") or "", ntlm.get("domain") or ""
    flags = int(ntlm.get("negotiate_flags") or 0)
    if not nt or len(nt) <= 24 or chal is None:
        return "only NTLMv2 exchanges with a captured CHALLENGE can be decrypted"
    if not flags & _ESS:
        return "NTLMv2 without extended session security is not supported"
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
        exported = RC4(base).crypt(enc) if flags & _KEY_EXCH and enc and len(enc) == 16 else base
        return NtlmSealer(exported, flags)
    who = f"{domain}\\{user}" if domain else user
    if not tried:
        return f"no secret given for {who}"
    return f"wrong password or NT hash for {who} (the NTLMv2 proof does not verify)"
