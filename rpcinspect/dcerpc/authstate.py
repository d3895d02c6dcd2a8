"""Security contexts of an association: the auth legs of a bind, and what they say.

One :class:`AuthCtx` per sec_trailer auth_context_id follows the legs (bind, bind_ack, auth3,
alter_context, alter_context_resp), merges what the NTLM/Kerberos/SPNEGO/Netlogon parsers of
:mod:`rpcinspect.auth` read from each, and, when the user gave a secret that opens it, holds the
sealing state that decrypts its stubs (NTLM from passwords, Kerberos from keytabs: the ticket also
names the client). Split from :mod:`rpcinspect.dcerpc.association`, which
owns the call state and asks this module only on bind legs and sealed PDUs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rpcinspect.auth import parse_value
from rpcinspect.auth.krbcontext import KrbKeys, open_ap_rep, open_ap_req
from rpcinspect.auth.krbseal import KrbSealer, krb_sealer
from rpcinspect.auth.ntlmseal import Sealer, ntlm_sealer
from rpcinspect.dcerpc import pdu
from rpcinspect.dcerpc.pdu import Header
from rpcinspect.records import BindAuth, KerberosAuth, NetlogonAuth, NtlmAuth, SpnegoAuth

if TYPE_CHECKING:
    from rpcinspect.runtime import Run

__all__ = ["AuthCtx", "auth_leg", "unseal"]

MAX_AUTH_CTXS = 16
_LEG_NAMES = {11: "bind", 12: "bind_ack", 14: "alter_context", 15: "alter_context_resp", 16: "auth3"}
_NTLM_KEYS = frozenset(f.name for f in dataclasses.fields(NtlmAuth))
_KRB_KEYS = frozenset(f.name for f in dataclasses.fields(KerberosAuth))
_NL_KEYS = frozenset(f.name for f in dataclasses.fields(NetlogonAuth))

Anomaly = Callable[[str, str, int, float], None]


class AuthCtx:
    """One security context (sec_trailer auth_context_id) across its legs."""

    __slots__ = (
        "auth_level", "auth_type", "complete", "ctx_id", "failed", "info", "krb", "legs", "problems",
        "sealer", "user",
    )  # fmt: skip

    def __init__(self, ctx_id: int, auth_type: int, auth_level: int) -> None:
        self.ctx_id = ctx_id
        self.auth_type = auth_type
        self.auth_level = auth_level
        self.legs: list[str] = []
        self.info: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self.complete = False
        self.user: str | None = None
        self.sealer: Sealer | None = None  # set when a given secret opens this context
        self.krb: KrbKeys | None = None  # set when a keytab opens the Kerberos ticket
        self.failed: tuple[Anomaly, int, float] | None = None  # where to report a seal that fails

    def fail(self, why: str, anomaly: Anomaly, frame: int, ts: float) -> None:
        """One ``decrypt_failed`` per context and reason (repeated legs do not repeat it)."""
        if why not in self.problems:
            if len(self.problems) < 8:
                self.problems.append(why)
            anomaly("decrypt_failed", why, frame, ts)

    def merge(self, parsed: dict[str, dict[str, Any]], server: bool) -> None:
        for mech, fields in parsed.items():
            into = self.info.setdefault(mech, {})
            msgs = into.setdefault("messages", [])
            if "message" in fields and len(msgs) < 8:
                msgs.append(fields["message"])
            for k, v in fields.items():
                if v is not None and k != "message":
                    into[k] = v
        ntlm = self.info.get("ntlm")
        if ntlm is not None and "authenticate" in ntlm["messages"]:
            self.complete = True
            if ntlm.get("version") != "anonymous" and ntlm.get("user"):
                dom = ntlm.get("domain")
                self.user = f"{dom}\\{ntlm['user']}" if dom else ntlm["user"]
        sp = self.info.get("spnego")
        krb = self.info.get("kerberos")
        if sp is not None:
            if sp.get("state") == "accept_completed":
                self.complete = True
        elif krb is not None and ("ap_rep" in krb["messages"] or (server and krb.get("mutual") is False)):
            self.complete = True
        nl = self.info.get("netlogon")
        if nl is not None:
            if "negotiate_response" in nl["messages"]:
                self.complete = True
            if nl.get("computer"):
                dom = nl.get("domain")
                comp = nl["computer"] + "$"
                self.user = f"{dom}\\{comp}" if dom else comp
        if server and not parsed and self.auth_type not in (9, 10, 16, 68):
            self.complete = True  # a mechanism we do not read: the server's answer ends it

    def record(self, mechanism: str) -> BindAuth:
        """A snapshot for a bind record (the context keeps changing as legs arrive)."""
        i = self.info

        def pick(mech: str, keys: frozenset[str]) -> dict[str, Any]:
            d = {k: v for k, v in i[mech].items() if k in keys}
            d["messages"] = list(d.get("messages", ()))
            return d

        sp = i.get("spnego")
        return BindAuth(
            mechanism,
            self.ctx_id,
            list(self.legs),
            self.complete,
            NtlmAuth(**pick("ntlm", _NTLM_KEYS)) if "ntlm" in i else None,
            KerberosAuth(**pick("kerberos", _KRB_KEYS)) if "kerberos" in i else None,
            SpnegoAuth(list(sp.get("offered", ())), sp.get("chosen"), sp.get("state")) if sp else None,
            NetlogonAuth(**pick("netlogon", _NL_KEYS)) if "netlogon" in i else None,
            list(self.problems),
        )


def auth_leg(
    run: Run,
    ctxs: dict[int, AuthCtx],
    pt: int,
    tr: pdu.AuthTrailer,
    buf: bytes,
    anomaly: Anomaly,
    frame: int,
    ts: float,
) -> AuthCtx:
    """Feeds one leg's auth value to its context (created or restarted as the protocol says)."""
    server = pt in (12, 15)
    actx = ctxs.get(tr.ctx_id)
    if actx is None or (
        not server and pt != 16 and (actx.auth_type != tr.auth_type or (pt == 11 and actx.complete))
    ):
        if actx is None and len(ctxs) >= MAX_AUTH_CTXS:
            run.count("auth_context_limit")
            ctxs.pop(next(iter(ctxs)))
        actx = AuthCtx(tr.ctx_id, tr.auth_type, tr.auth_level)
        ctxs[tr.ctx_id] = actx
    elif not server and tr.auth_level:
        actx.auth_level = tr.auth_level
    if len(actx.legs) < 16:
        actx.legs.append(_LEG_NAMES.get(pt, str(pt)))
    parsed, problems = parse_value(tr.auth_type, bytes(buf[tr.value_off : tr.value_off + tr.value_len]))
    actx.merge(parsed, server)
    if problems:
        run.count("malformed_auth_value")
        if len(actx.problems) < 8:
            actx.problems.extend(problems[: 8 - len(actx.problems)])
        anomaly("malformed_auth", problems[0], frame, ts)
    if run.secrets and actx.complete and actx.sealer is None and "ntlm" in actx.info:
        got = ntlm_sealer(actx.info["ntlm"], run.secrets)
        if isinstance(got, str):
            if not actx.problems or actx.problems[-1] != got:
                actx.problems.append(got)
                anomaly("decrypt_failed", got, frame, ts)
        else:
            actx.sealer = got
            actx.failed = (anomaly, frame, ts)
            run.count("auth_contexts_decrypted")
    keytab = run.keytab_keys
    if keytab is not None and "kerberos" in parsed:
        krb = parsed["kerberos"]
        if not server and "ticket_enc" in krb:
            opened = open_ap_req(keytab, krb)
            if isinstance(opened, str):
                actx.fail(opened, anomaly, frame, ts)
            else:
                actx.krb, actx.user = opened, opened.client
        elif server and "ap_rep_enc" in krb and actx.krb is not None:
            why = open_ap_rep(actx.krb, krb)
            if why is not None:
                actx.fail(why, anomaly, frame, ts)
    if actx.krb is not None and actx.complete and actx.sealer is None:
        sealer = krb_sealer(actx.krb)
        if isinstance(sealer, str):
            actx.fail(sealer, anomaly, frame, ts)
        else:
            actx.sealer = sealer
            actx.failed = (anomaly, frame, ts)
            run.count("auth_contexts_decrypted")
    return actx


def unseal(
    ctxs: dict[int, AuthCtx], side: int, buf: bytes, off: int, h: Header, start: int, stub: int
) -> bytes | bool | None:
    """The plaintext stub of a sealed PDU whose context a secret opened; False if that PDU does
    not verify (then nothing of it is returned); None when there is nothing to open. A signed PDU
    only advances its context's sealing handle."""
    tr = pdu.auth_trailer(buf, off, h)
    actx = ctxs.get(tr.ctx_id) if tr is not None else None
    if tr is None or actx is None or actx.sealer is None:
        return None
    verifier = bytes(buf[tr.value_off : tr.value_off + tr.value_len])
    if tr.auth_level == 6:
        sealed = bytes(buf[start : start + stub + tr.pad_len])
        sealer = actx.sealer
        # the signature may cover the PDU header and sec_trailer too (header signing)
        pre, post = bytes(buf[off:start]), bytes(buf[tr.value_off - 8 : tr.value_off])
        plain = sealer.unseal_pdu(side, sealed, verifier, pre, post)
        if plain is None and actx.failed is not None:
            anomaly, frame, ts = actx.failed
            actx.failed = None
            what = "Kerberos" if isinstance(sealer, KrbSealer) else "NTLM"
            why = (
                f"a {what}-sealed PDU of the context opened here does not verify with its keys "
                "(damaged, or a PDU missing from the capture; the first such PDU, later ones are "
                "not reported)"
            )
            actx.fail(why, anomaly, frame, ts)
        return False if plain is None else plain[:stub]
    if tr.auth_level >= 5:
        actx.sealer.skip(side, verifier)
    return None
