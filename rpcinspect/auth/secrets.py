"""Secrets the user supplies for decryption: NT hashes (from passwords or given directly) and
Kerberos keytabs.

A :class:`Secret` is an NT hash, optionally tied to a principal (``DOMAIN\\user`` or ``user``).
Secrets are never written to any record, anomaly or log: only the principal they belong to.
Each mechanism (:mod:`rpcinspect.auth.ntlmseal`, Kerberos keytabs, SMB3) derives its keys from
these; :func:`load_keytabs` gathers the keytab files (``--keytab``, ``RPCINSPECT_KEYTAB``,
``keytab:`` lines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rpcinspect.auth.crypto import md4
from rpcinspect.auth.keytab import Keytab, load_keytab

__all__ = ["Secret", "load_keytabs", "load_secrets"]


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
            elif kind != "keytab":  # keytab lines: see load_keytabs
                raise ValueError(f"{password_file}:{n}: expected 'password:', 'nt_hash:' or 'keytab:'")
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


def load_keytabs(paths: list[Path], secrets_file: Path | None = None) -> Keytab | None:
    """The keys of every keytab named by *paths*, the ``RPCINSPECT_KEYTAB`` environment variable
    (paths separated by ``os.pathsep``) and ``keytab:PATH`` lines of *secrets_file* (relative to
    that file's folder); None if none is named. Raises OSError or ValueError (a
    :class:`~rpcinspect.auth.keytab.KeytabError`) naming the file, never a key."""
    files = list(paths)
    env = os.environ.get("RPCINSPECT_KEYTAB")
    if env:
        files += [Path(p) for p in env.split(os.pathsep) if p]
    if secrets_file is not None:
        for line in secrets_file.read_text().splitlines():
            kind, _, value = line.strip().partition(":")
            if kind == "keytab" and value.strip():
                files.append(secrets_file.parent / Path(value.strip()).expanduser())
    if not files:
        return None
    entries = []
    for f in files:
        entries += load_keytab(f)
    return Keytab(entries)
