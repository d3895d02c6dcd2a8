"""Kerberos AP-REQ / AP-REP / KRB-ERROR in an RPC auth value (RFC 4120, RFC 4121).

Raw (``0x6e``/``0x6f``/``0x7e``, as DCE-style RPC sends them under auth type 0x10) or inside the
GSS-API wrapper (``0x60``, KRB5 OID, token id). The messages are walked with the bounded DER
reader of :mod:`rpcinspect.auth.der`, strictly (every tag checked against RFC 4120's ASN.1
module, every length against its parent), rather than with Scapy's ASN.1 layers: those take a
quarter of a second to import, a fixed cost the benchmark would feel; ``tests/test_auth.py``
checks that both decoders agree on every real blob. Blobs over :data:`MAX_BYTES` or that are
not such ASN.1 are reported as problems, never raised.
"""

from __future__ import annotations

from typing import Any

from rpcinspect.auth.der import DerError, oid_text, tlv, tlvs

__all__ = [
    "KRB5_OIDS", "MAX_BYTES", "EncPart", "authenticator", "enc_ap_rep_part", "enc_ticket_part", "etype_name",
    "parse",
]  # fmt: skip

MAX_BYTES = 65536
EncPart = tuple[int, "int | None", bytes]
"""An EncryptedData: ``(etype, kvno or None, cipher)``."""
KRB5_OIDS = {"1.2.840.113554.1.2.2": "kerberos", "1.2.840.48018.1.2.2": "ms_kerberos",
             "1.2.840.113554.1.2.2.3": "kerberos_u2u"}  # fmt: skip
_TOK_IDS = {b"\x01\x00": 0x6E, b"\x02\x00": 0x6F, b"\x03\x00": 0x7E}
_ETYPES = {
    1: "des-cbc-crc", 3: "des-cbc-md5", 17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128", 20: "aes256-cts-hmac-sha384-192", 23: "rc4-hmac",
    24: "rc4-hmac-exp", -135: "rc4-hmac-old-exp",
}  # fmt: skip


def etype_name(n: int) -> str:
    return _ETYPES.get(n, str(n))


def _fields(b: bytes, app_tag: int) -> dict[int, tuple[int, int]]:
    """``{context tag number: (start, end) of its inner TLV}`` of ``[APPLICATION n] SEQUENCE``."""
    t, vs, ve = tlv(b, 0)
    if t != app_tag:
        raise DerError(f"tag 0x{t:02x}, expected 0x{app_tag:02x}")
    return _seq(b, vs, ve)


def _seq(b: bytes, s: int, e: int) -> dict[int, tuple[int, int]]:
    t, vs, ve = tlv(b, s, e)
    if t != 0x30:
        raise DerError("not a SEQUENCE")
    out = {}
    for ct, cs, ce in tlvs(b, vs, ve):
        if ct & 0xE0 != 0xA0:
            raise DerError(f"unexpected tag 0x{ct:02x} in a SEQUENCE")
        out[ct & 0x1F] = (cs, ce)
    return out


def _int(b: bytes, span: tuple[int, int]) -> int:
    t, vs, ve = tlv(b, span[0], span[1])
    if t != 0x02 or not 0 < ve - vs <= 8:
        raise DerError("not an INTEGER")
    return int.from_bytes(b[vs:ve], "big", signed=True)


def _string(b: bytes, span: tuple[int, int]) -> str:
    t, vs, ve = tlv(b, span[0], span[1])
    if t not in (0x1B, 0x0C, 0x16, 0x13):  # GeneralString (RFC 4120), also UTF8/IA5/Printable
        raise DerError("not a string")
    return b[vs:ve].decode("utf-8", "replace")


def _etype(b: bytes, span: tuple[int, int]) -> str:
    """etype of an EncryptedData."""
    f = _seq(b, *span)
    if 0 not in f or 2 not in f:
        raise DerError("EncryptedData without etype or cipher")
    return etype_name(_int(b, f[0]))


def _enc(b: bytes, span: tuple[int, int]) -> EncPart:
    """``(etype, kvno or None, cipher)`` of an EncryptedData, for decryption with a keytab."""
    f = _seq(b, *span)
    if 0 not in f or 2 not in f:
        raise DerError("EncryptedData without etype or cipher")
    t, cs, ce = tlv(b, *f[2])
    if t != 0x04:
        raise DerError("cipher is not an OCTET STRING")
    return _int(b, f[0]), (_int(b, f[1]) if 1 in f else None), b[cs:ce]


def _check_pvno_type(b: bytes, f: dict[int, tuple[int, int]], msg_type: int) -> None:
    if 0 not in f or 1 not in f or _int(b, f[0]) != 5 or _int(b, f[1]) != msg_type:
        raise DerError("pvno or msg-type is not what the message tag says")


def _ap_req(b: bytes) -> dict[str, Any]:
    f = _fields(b, 0x6E)
    _check_pvno_type(b, f, 14)
    if 2 not in f or 3 not in f or 4 not in f:
        raise DerError("AP-REQ without ap-options, ticket or authenticator")
    t, os_, oe = tlv(b, *f[2])
    if t != 0x03 or oe - os_ < 2:
        raise DerError("ap-options is not a BIT STRING")
    mutual = bool(b[os_ + 1] & 0x20)  # bit 2 (mutual-required) of the first octet after unused-bits
    tt, ts, te = tlv(b, *f[3])
    if tt != 0x61:
        raise DerError("ticket is not [APPLICATION 1]")
    tf = _seq(b, ts, te)
    if 1 not in tf or 2 not in tf or 3 not in tf:
        raise DerError("ticket without realm, sname or enc-part")
    sname = _seq(b, *tf[2])
    if 1 not in sname:
        raise DerError("PrincipalName without name-string")
    st, ss, se = tlv(b, *sname[1])
    if st != 0x30:
        raise DerError("name-string is not a SEQUENCE")
    names = [_string(b, (s2, e2)) for _t, s2, e2 in _spans(b, ss, se)]
    return {
        "message": "ap_req",
        "realm": _string(b, tf[1]),
        "sname": "/".join(names),
        "ticket_etype": _etype(b, tf[3]),
        "authenticator_etype": _etype(b, f[4]),
        "mutual": mutual,
        "ticket_enc": _enc(b, tf[3]),
        "authenticator_enc": _enc(b, f[4]),
    }


def _spans(b: bytes, s: int, e: int) -> list[tuple[int, int, int]]:
    """Each element of a SEQUENCE OF as (tag, start of its TLV, end)."""
    out = []
    o = s
    while o < e:
        t, _vs, ve = tlv(b, o, e)
        out.append((t, o, ve))
        o = ve
        if len(out) > 16:
            raise DerError("too many name components")
    return out


def _ap_rep(b: bytes) -> dict[str, Any]:
    f = _fields(b, 0x6F)
    _check_pvno_type(b, f, 15)
    if 2 not in f:
        raise DerError("AP-REP without enc-part")
    return {"message": "ap_rep", "ap_rep_etype": _etype(b, f[2]), "ap_rep_enc": _enc(b, f[2])}


def _krb_error(b: bytes) -> dict[str, Any]:
    f = _fields(b, 0x7E)
    _check_pvno_type(b, f, 30)
    if 6 not in f:
        raise DerError("KRB-ERROR without error-code")
    return {"message": "krb_error", "error": _int(b, f[6])}


def unwrap(b: bytes) -> tuple[int, bytes] | None:
    """``(message tag, raw message)`` of a raw or GSS-wrapped Kerberos token, or None."""
    if not b:
        return None
    if b[0] in (0x6E, 0x6F, 0x7E):
        return b[0], b
    if b[0] != 0x60:
        return None
    _t, vs, ve = tlv(b, 0)
    t2, os_, oe = tlv(b, vs, ve)
    if t2 != 0x06 or oid_text(b[os_:oe]) not in KRB5_OIDS:
        return None
    tok = b[oe : oe + 2]
    if tok not in _TOK_IDS:
        raise DerError(f"unknown KRB5 token id {tok.hex()}")
    return _TOK_IDS[tok], b[oe + 2 : ve]


def parse(b: bytes) -> tuple[dict[str, Any], list[str]]:
    """``(fields, problems)``: message, realm, sname, ticket/authenticator/ap_rep etypes, mutual."""
    info: dict[str, Any] = {}
    if len(b) > MAX_BYTES:
        return info, [f"kerberos token of {len(b)} bytes is over the {MAX_BYTES}-byte cap"]
    try:
        got = unwrap(b)
    except DerError as e:
        return info, [f"kerberos GSS wrapper: {e}"]
    if got is None:
        return info, ["not a Kerberos token"]
    tag, msg = got
    try:
        if tag == 0x6E:
            info.update(_ap_req(msg))
        elif tag == 0x6F:
            info.update(_ap_rep(msg))
        else:
            info.update(_krb_error(msg))
    except (DerError, ValueError, IndexError) as e:
        return info, [f"kerberos message does not decode: {e}"]
    return info, []


# -- the parts a keytab decrypts (RFC 4120 5.3, 5.5.1, 5.5.2) --------------------------------------
def _principal(b: bytes, span: tuple[int, int]) -> str:
    f = _seq(b, *span)
    if 1 not in f:
        raise DerError("PrincipalName without name-string")
    st, ss, se = tlv(b, *f[1])
    if st != 0x30:
        raise DerError("name-string is not a SEQUENCE")
    return "/".join(_string(b, (s2, e2)) for _t, s2, e2 in _spans(b, ss, se))


def _key(b: bytes, span: tuple[int, int]) -> tuple[int, bytes]:
    """An EncryptionKey: ``(keytype, keyvalue)``."""
    f = _seq(b, *span)
    if 0 not in f or 1 not in f:
        raise DerError("EncryptionKey without keytype or keyvalue")
    t, vs, ve = tlv(b, *f[1])
    if t != 0x04:
        raise DerError("keyvalue is not an OCTET STRING")
    return _int(b, f[0]), b[vs:ve]


def _unsigned(b: bytes, span: tuple[int, int]) -> int:
    return _int(b, span) & 0xFFFFFFFF  # UInt32; some encoders write it as a negative INTEGER


def enc_ticket_part(b: bytes) -> dict[str, Any]:
    """EncTicketPart (``[APPLICATION 3]``): the session ``key`` and the ``client`` principal."""
    f = _fields(b, 0x63)
    if 1 not in f or 2 not in f or 3 not in f:
        raise DerError("EncTicketPart without key, crealm or cname")
    return {"key": _key(b, f[1]), "client": f"{_principal(b, f[3])}@{_string(b, f[2])}"}


def authenticator(b: bytes) -> dict[str, Any]:
    """Authenticator (``[APPLICATION 2]``): ``client``, the initiator ``subkey`` and ``seq``."""
    f = _fields(b, 0x62)
    if 1 not in f or 2 not in f:
        raise DerError("Authenticator without crealm or cname")
    return {
        "client": f"{_principal(b, f[2])}@{_string(b, f[1])}",
        "subkey": _key(b, f[6]) if 6 in f else None,
        "seq": _unsigned(b, f[7]) if 7 in f else None,
    }


def enc_ap_rep_part(b: bytes) -> dict[str, Any]:
    """EncAPRepPart (``[APPLICATION 27]``): the acceptor ``subkey`` and ``seq``."""
    f = _fields(b, 0x7B)
    return {
        "subkey": _key(b, f[2]) if 2 in f else None,
        "seq": _unsigned(b, f[3]) if 3 in f else None,
    }
