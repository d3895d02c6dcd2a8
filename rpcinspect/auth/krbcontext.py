"""Opening a Kerberos AP exchange with a keytab (RFC 4120 3.2): the service key decrypts the
ticket (session key, client principal), the session key the authenticator (initiator subkey) and
the AP-REP (acceptor subkey). Those keys seal the context's wrap tokens (:mod:`krbseal`).

The RFC 3961 profiles (AES-CTS-HMAC-SHA1-96, RC4-HMAC) are Scapy's ``scapy.libs.rfc3961`` over
``cryptography``, imported only when a keytab is actually used (the import costs ~0.3 s).
Failures are sentences naming principals, etypes and kvnos, never key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rpcinspect.auth import kerberos
from rpcinspect.auth.der import DerError
from rpcinspect.auth.keytab import Keytab

__all__ = ["SUPPORTED_ETYPES", "KrbKeys", "decrypt", "open_ap_rep", "open_ap_req"]

USAGE_TICKET, USAGE_AUTHENTICATOR, USAGE_AP_REP = 2, 11, 12  # RFC 4120 7.5.1
SUPPORTED_ETYPES = frozenset((17, 18, 23))
Key = tuple[int, bytes]
"""``(etype, key bytes)``."""


@dataclass
class KrbKeys:
    """What the keytab revealed of one security context."""

    client: str
    session_key: Key = field(repr=False)
    initiator_subkey: Key | None = field(default=None, repr=False)
    acceptor_subkey: Key | None = field(default=None, repr=False)


def decrypt(key: Key, usage: int, cipher: bytes) -> bytes | None:
    """RFC 3961 decrypt-and-verify; None when the integrity check fails or the etype is unknown."""
    etype, raw = key
    if etype not in SUPPORTED_ETYPES:
        return None
    from scapy.libs.rfc3961 import Key as ScapyKey

    try:
        return bytes(ScapyKey(etype, key=raw).decrypt(usage, cipher))
    except (ValueError, AssertionError, IndexError):  # InvalidChecksum is a ValueError
        return None


def _ticket(keytab: Keytab, ap_req: dict[str, Any]) -> tuple[Key, str] | str:
    etype, kvno, cipher = ap_req["ticket_enc"]
    hit = keytab.memo.get(cipher)
    if hit is not None:
        return hit  # type: ignore[return-value]
    sname, realm = ap_req.get("sname") or "", ap_req.get("realm") or ""
    who = f"{sname}@{realm} (kvno {kvno}, {kerberos.etype_name(etype)})"
    if etype not in SUPPORTED_ETYPES:
        got: tuple[Key, str] | str = f"the ticket for {who} uses an encryption type we cannot decrypt"
    else:
        got = f"no key in the keytab decrypts the ticket for {who}"
        tried = 0
        for entry in keytab.candidates(sname, realm, kvno, etype):
            tried += 1
            plain = decrypt((etype, entry.key), USAGE_TICKET, cipher)
            if plain is None:
                continue
            try:
                part = kerberos.enc_ticket_part(plain)
            except (DerError, ValueError, IndexError):
                continue
            got = (part["key"], part["client"])
            break
        if not tried:
            got = f"the keytab has no {kerberos.etype_name(etype)} key for {who}"
    keytab.remember(cipher, got)
    return got


def open_ap_req(keytab: Keytab, ap_req: dict[str, Any]) -> KrbKeys | str:
    """The keys and client of an AP-REQ whose ticket the keytab opens, or why not (a sentence)."""
    got = _ticket(keytab, ap_req)
    if isinstance(got, str):
        return got
    session, client = got
    keys = KrbKeys(client, session)
    enc = ap_req.get("authenticator_enc")
    if enc is not None:
        plain = decrypt(session, USAGE_AUTHENTICATOR, enc[2])
        if plain is None:
            return f"the authenticator of {client} does not decrypt with the ticket's session key"
        try:
            auth = kerberos.authenticator(plain)
        except (DerError, ValueError, IndexError) as e:
            return f"the authenticator of {client} does not decode: {e}"
        keys.initiator_subkey = auth["subkey"]
    return keys


def open_ap_rep(keys: KrbKeys, ap_rep: dict[str, Any]) -> str | None:
    """Reads the acceptor subkey of the server's AP-REP into *keys*; a sentence if it fails."""
    enc = ap_rep.get("ap_rep_enc")
    if enc is None:
        return None
    plain = decrypt(keys.session_key, USAGE_AP_REP, enc[2])
    if plain is None:
        return f"the AP-REP to {keys.client} does not decrypt with the ticket's session key"
    try:
        part = kerberos.enc_ap_rep_part(plain)
    except (DerError, ValueError, IndexError) as e:
        return f"the AP-REP to {keys.client} does not decode: {e}"
    if part["subkey"] is not None:
        keys.acceptor_subkey = part["subkey"]
    return None
