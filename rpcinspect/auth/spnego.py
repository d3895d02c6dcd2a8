"""SPNEGO (RFC 4178): NegTokenInit (mechanisms offered, first token) and NegTokenResp (state,
chosen mechanism, response token), read with the bounded TLV reader."""

from __future__ import annotations

from typing import Any

from rpcinspect.auth.der import DerError, oid_text, tlv, tlvs

__all__ = ["MECH_NAMES", "SPNEGO_OID", "parse"]

SPNEGO_OID = "1.3.6.1.5.5.2"
MECH_NAMES = {
    "1.2.840.113554.1.2.2": "kerberos",
    "1.2.840.48018.1.2.2": "ms_kerberos",
    "1.2.840.113554.1.2.2.3": "kerberos_u2u",
    "1.3.6.1.4.1.311.2.2.10": "ntlm",
    "1.3.6.1.4.1.311.2.2.30": "negoex",
}
_STATES = {0: "accept_completed", 1: "accept_incomplete", 2: "reject", 3: "request_mic"}


def _mech(raw: bytes) -> str:
    oid = oid_text(raw)
    return MECH_NAMES.get(oid, oid)


def parse(b: bytes) -> tuple[dict[str, Any], bytes | None, list[str]]:
    """``(fields, inner mechanism token or None, problems)``."""
    info: dict[str, Any] = {}
    try:
        if not b:
            raise DerError("empty token")
        tag, vs, ve = tlv(b, 0)
        if tag == 0x60:  # GSS-API InitialContextToken: SPNEGO OID, then NegotiationToken
            t, os_, oe = tlv(b, vs, ve)
            if t != 0x06 or oid_text(b[os_:oe]) != SPNEGO_OID:
                raise DerError("GSS token is not SPNEGO")
            tag, vs, ve = tlv(b, oe, ve)
        inner: bytes | None = None
        if tag == 0xA0:  # NegTokenInit
            info["message"] = "neg_token_init"
            st, ss, se = tlv(b, vs, ve)
            if st != 0x30:
                raise DerError("NegTokenInit is not a SEQUENCE")
            for t, s, e in tlvs(b, ss, se):
                if t == 0xA0:
                    _q, qs, qe = tlv(b, s, e)
                    info["offered"] = [_mech(b[x:y]) for tt, x, y in tlvs(b, qs, qe) if tt == 0x06]
                elif t == 0xA2:
                    _o, xs, xe = tlv(b, s, e)
                    inner = b[xs:xe]
        elif tag == 0xA1:  # NegTokenResp
            info["message"] = "neg_token_resp"
            st, ss, se = tlv(b, vs, ve)
            if st != 0x30:
                raise DerError("NegTokenResp is not a SEQUENCE")
            for t, s, e in tlvs(b, ss, se):
                if t == 0xA0:
                    _en, xs, xe = tlv(b, s, e)
                    v = int.from_bytes(b[xs:xe], "big") if xe > xs else -1
                    info["state"] = _STATES.get(v, str(v))
                elif t == 0xA1:
                    _o, xs, xe = tlv(b, s, e)
                    info["chosen"] = _mech(b[xs:xe])
                elif t == 0xA2:
                    _o, xs, xe = tlv(b, s, e)
                    inner = b[xs:xe]
        else:
            raise DerError(f"not a SPNEGO token (tag 0x{tag:02x})")
    except DerError as e:
        return info, None, [f"spnego: {e}"]
    return info, inner, []
