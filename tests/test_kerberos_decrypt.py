"""Kerberos decryption with --keytab: the keytab parser (against MIT klist), the wrap-token
unsealing (against Scapy's own GSS_WrapEx and published vectors), and whole captures against
tshark's decrypted stubs (lab) and Scapy's test expectations (corpus); wrong keys, damaged PDUs
and corrupt keytabs."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from builders import pcap_frames
from conftest import CAPTURES, CORPUS

from rpcinspect.auth import SEC_VT_MAGIC
from rpcinspect.auth.crypto import md4
from rpcinspect.auth.keytab import Keytab, KeytabEntry, KeytabError, load_keytab, parse
from rpcinspect.auth.krbcontext import KrbKeys
from rpcinspect.auth.krbseal import KrbSealer
from rpcinspect.auth.secrets import load_keytabs
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, BindRecord, CallRecord, Record
from rpcinspect.runtime import Run

KEYTAB = CAPTURES / "rpclab.keytab"
KRB5 = CAPTURES / "kerberos-krb5-seal-tcp-rpcclient.pcap"
SPNEGO = CAPTURES / "kerberos-spnego-seal-tcp-rpcclient.pcap"
NP = CAPTURES / "kerberos-np-smb2-rpcclient.pcap"
# client etypes restricted to RC4-HMAC / AES128 (captures/lab/krb5-client-*.conf); recorded against a
# re-provisioned DC, so rpclab.keytab holds two DC1$ keys per etype (old provision, new provision)
RC4 = CAPTURES / "kerberos-rc4-seal-tcp-rpcclient.pcap"
AES128 = CAPTURES / "kerberos-aes128-seal-tcp-rpcclient.pcap"
SCAPY_KRB = CORPUS / "secdev+scapy" / "test" / "pcaps" / "dcerpc_privacy_krb.pcapng.gz"
# scapy/test/scapy/layers/dcerpc.uts, "Passive sniffing ... SPNEGOSSP[KerberosSSP] with AES"
SCAPY_KEY = bytes.fromhex("85abb9b61dc2fa49d4cc04317bbd108f8f79df28239155ed7b144c5d2ebcf016")
ADMIN = "Administrator@RPCLAB.TEST"
UUIDS = {
    "samr": "12345778-1234-abcd-ef00-0123456789ac",
    "dssetup": "3919286a-b10c-11d0-9ba8-00c04fd92ef5",
    "drsuapi": "e3514235-4b06-11d1-ab04-00c04fc2dcd2",
}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# -- helpers ---------------------------------------------------------------------------------------
def write_keytab(entries: list[KeytabEntry], version: int = 2) -> bytes:
    """An MIT keytab image (independent writer: MIT klist must read it, see below)."""
    le = version == 1 and sys.byteorder == "little"
    u16, u32 = ("<H", "<I") if le else (">H", ">I")
    out = bytes([5, version])
    for e in entries:
        comps = e.principal.split("/")
        body = struct.pack(u16, len(comps) + (1 if version == 1 else 0))
        for s in [e.realm, *comps]:
            body += struct.pack(u16, len(s)) + s.encode()
        if version == 2:
            body += struct.pack(u32, 1)  # KRB5_NT_PRINCIPAL
        body += struct.pack(u32, 1_700_000_000) + bytes([e.kvno & 0xFF])
        body += struct.pack(u16, e.etype) + struct.pack(u16, len(e.key)) + e.key
        body += struct.pack(u32, e.kvno)
        out += struct.pack("<i" if le else ">i", len(body)) + body
    return out


def decrypted(
    path: Path, keytab: Keytab | None, uuids: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Record], dict[int, tuple[CallRecord, bytes, bytes]]]:
    """Records, and (call, request stub, response stub) by request frame for *uuids*."""
    if not path.is_file():
        pytest.skip(f"{path} not present")
    got: dict[int, tuple[CallRecord, bytes, bytes]] = {}
    real_init = Run.__init__

    def init(self: Run, *a, **k) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *a, **k)
        for u in uuids:
            self.add_stub_tap(u, None, lambda r, q, s: got.__setitem__(r.req_frame, (r, q, s)))

    monkeypatch.setattr(Run, "__init__", init)
    return list(analyze([path], keytab=keytab)), got


def tshark_stubs(path: Path, keytab: Path) -> dict[int, bytes]:
    """tshark's "Decrypted stub data" per frame (``-P -x``: summary line, then every data source)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "kerberos.decrypt:TRUE", "-o", f"kerberos.file:{keytab}",
         "-P", "-x", "-Y", "dcerpc.auth_level == 6 && (dcerpc.pkt_type == 0 || dcerpc.pkt_type == 2)"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    stubs: dict[int, bytes] = {}
    frame, source = 0, ""
    for line in out.splitlines():
        if m := re.match(r"^\s*(\d+)\s+\d+\.\d+\s", line):
            frame, source = int(m.group(1)), ""
        elif m := re.match(r"^(\S.*) \(\d+ bytes\):$", line):
            source = m.group(1)
        elif source == "Decrypted stub data" and (m := re.match(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} )+)", line)):
            stubs[frame] = stubs.get(frame, b"") + bytes.fromhex(m.group(1).replace(" ", ""))
    return stubs


def tshark_krb_etypes(path: Path, keytab: Path) -> tuple[list[tuple[int, str, list[int], list[int]]], dict]:
    """What tshark sees of the Kerberos exchanges on DCE/RPC legs, ``(frame, msg_type, etypes,
    keytypes)`` (AP-REQ: ticket etype, authenticator etype, ...; keytypes: session key and subkeys),
    and the wrap token fields ``{frame: (tok_id, sgn_alg, seal_alg)}`` of every sealed call PDU."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "kerberos.decrypt:TRUE", "-o", f"kerberos.file:{keytab}",
         "-Y", "dcerpc.auth_type", "-T", "fields", "-E", "occurrence=a", "-e", "frame.number",
         "-e", "dcerpc.pkt_type", "-e", "dcerpc.auth_level", "-e", "kerberos.msg_type",
         "-e", "kerberos.etype", "-e", "kerberos.keytype", "-e", "spnego.krb5.tok_id",
         "-e", "spnego.krb5.sgn_alg", "-e", "spnego.krb5.seal_alg"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    legs, tokens = [], {}
    for line in out.splitlines():
        frame, ptype, level, msg, etypes, keytypes, tok, sgn, seal = line.split("\t")
        if msg:
            legs.append((int(frame), msg, [int(x) for x in etypes.split(",") if x],
                         [int(x) for x in keytypes.split(",") if x]))  # fmt: skip
        elif ptype in ("0", "2") and level == "6":
            tokens[int(frame)] = (tok, sgn, seal)
    return legs, tokens


def lab_keytab() -> Keytab:
    return Keytab(load_keytab(KEYTAB))


def anomalies(recs: list[Record], kind: str) -> list[AnomalyRecord]:
    return [r for r in recs if isinstance(r, AnomalyRecord) and r.kind == kind]


# -- keytab parser ---------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("klist") is None, reason="MIT klist not installed")
def test_keytab_agrees_with_mit_klist(tmp_path: Path) -> None:
    listing = subprocess.run(
        ["klist", "-k", "-t", "-e", "-K", str(KEYTAB)], capture_output=True, text=True, check=True
    ).stdout
    names = {"aes256-cts-hmac-sha1-96": 18, "aes128-cts-hmac-sha1-96": 17, "DEPRECATED:arcfour-hmac": 23}
    want = []
    for m in re.finditer(r"^\s*(\d+) \S+ \S+ (\S+)@(\S+) \((\S+)\)\s+\(0x([0-9a-f]+)\)$", listing, re.M):
        want.append((m.group(2), m.group(3), int(m.group(1)), names[m.group(4)], bytes.fromhex(m.group(5))))
    got = [(e.principal, e.realm, e.kvno, e.etype, e.key) for e in load_keytab(KEYTAB)]
    assert len(want) >= 12 and got == want
    # our test writer makes files klist reads back identically (so the hand-made keytabs are real)
    mine = tmp_path / "mine.keytab"
    mine.write_bytes(write_keytab([KeytabEntry("host/ws01.rpclab.test", "RPCLAB.TEST", 7, 18, b"\x11" * 32)]))
    again = subprocess.run(["klist", "-k", "-e", "-K", str(mine)], capture_output=True, text=True, check=True)
    assert (
        "7 host/ws01.rpclab.test@RPCLAB.TEST (aes256-cts-hmac-sha1-96)  (0x" + "11" * 32 + ")" in again.stdout
    )


def test_keytab_keys_are_the_lab_passwords() -> None:
    """RFC 3962 string-to-key (salt REALM + user) and MD4 of the lab password give the keytab's keys."""
    from scapy.libs.rfc3961 import Key

    keys = {(e.principal, e.etype): e.key for e in load_keytab(KEYTAB)}
    assert keys[("Administrator", 23)] == md4("RpcLab-Passw0rd".encode("utf-16-le"))
    aes = Key.string_to_key(18, b"RpcLab-Passw0rd", b"RPCLAB.TESTAdministrator")
    assert aes.key == keys[("Administrator", 18)]


def test_rfc3962_vectors() -> None:
    """RFC 3962 appendix B: the AES string-to-key and the CTS mode the unsealing relies on."""
    from scapy.libs.rfc3961 import _AES128CTS_SHA1_96, Key

    k = Key.string_to_key(17, b"password", b"ATHENA.MIT.EDUraeburn", b"\0\0\0\1")
    assert k.key.hex() == "42263c6e89f4fc28b8df68ee09799f15"
    k2 = Key.string_to_key(18, b"password", b"ATHENA.MIT.EDUraeburn", b"\0\0\0\2")
    assert k2.key.hex() == "a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff"
    cts_key = bytes.fromhex("636869636b656e207465726979616b69")
    plain = bytes.fromhex("4920776f756c64206c696b652074686520")
    cipher = bytes.fromhex("c6353568f2bf8cb4d8a580362da7ff7f97")
    assert _AES128CTS_SHA1_96.basic_encrypt(cts_key, plain) == cipher
    assert _AES128CTS_SHA1_96.basic_decrypt(cts_key, cipher) == plain


def test_keytab_formats_and_holes() -> None:
    entries = [
        KeytabEntry("DC1$", "RPCLAB.TEST", 3, 18, b"\1" * 32),
        KeytabEntry("a/b", "X", 300, 23, b"\2" * 16),
    ]
    assert parse(write_keytab(entries)) == entries
    assert parse(write_keytab(entries, version=1)) == entries
    hole = write_keytab(entries[:1])
    hole = hole[:2] + struct.pack(">i", -10) + b"\0" * 10 + hole[2:]
    assert parse(hole) == entries[:1]


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x05", b"\x04\x02", b"garbage!", b"\x05\x02\x00\x00\x00\x40abc", b"\x05\x02\xff\xff\xff\x00",
     b"\x05\x02\x00\x00\x00\x04\x00\x00\x00\x00", b"\x05\x02\x00\x00\x00\x06\x00\x40\x00\x00\x00\x00"],
)  # fmt: skip
def test_bad_keytabs_raise_keytab_error(blob: bytes) -> None:
    with pytest.raises(KeytabError):
        parse(blob)


def test_mutated_keytab_never_raises_anything_else() -> None:
    real = KEYTAB.read_bytes()
    rng = random.Random(7)
    for _ in range(2000):
        b = bytearray(real[: rng.randrange(3, len(real) + 1)])
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(2, len(b))] = rng.randrange(256)
        with contextlib.suppress(KeytabError):
            parse(bytes(b))


# -- wrap tokens against Scapy's GSS_WrapEx ----------------------------------------------------------
@pytest.mark.parametrize("etype", [18, 17, 23])
@pytest.mark.parametrize("hdr_sign", [True, False])
@pytest.mark.parametrize("side", [0, 1])
def test_unseal_matches_scapy_wrap(etype: int, hdr_sign: bool, side: int) -> None:
    """Scapy seals a DCE/RPC stub the way Windows does (MS-KILE 3.4.5.4); we unseal it, and a flipped
    byte anywhere gives None, never garbage."""
    from scapy.layers.gssapi import GSS_C_FLAGS, SSP
    from scapy.layers.kerberos import KerberosSSP
    from scapy.libs.rfc3961 import Key

    rng = random.Random(etype * 4 + side)
    raw = bytes(rng.randrange(256) for _ in range(32 if etype == 18 else 16))
    ctx = KerberosSSP.CONTEXT(IsAcceptor=bool(side), req_flags=GSS_C_FLAGS.GSS_C_CONF_FLAG)
    ctx.KrbSessionKey = Key(etype, key=raw)
    ctx.SendSeqNum = 5
    pre, stub, post = (
        b"\x05\x00\x00\x03" + bytes(20),
        bytes(range(48)) + b"\0" * 8,
        b"\x09\x06\x08\x00\1\0\0\0",
    )
    msgs = [
        SSP.WRAP_MSG(False, hdr_sign, pre),
        SSP.WRAP_MSG(True, True, stub),
        SSP.WRAP_MSG(False, hdr_sign, post),
    ]
    out, tok = KerberosSSP().GSS_WrapEx(ctx, msgs)
    sealed, verifier = out[1].data, bytes(tok)
    assert sealed != stub
    # AES tokens ask for the acceptor subkey (Scapy sets the flag); RC4 uses the newest subkey
    keys = KrbKeys(ADMIN, (etype, b"\0" * len(raw)), None, (etype, raw))
    assert KrbSealer(keys).unseal_pdu(side, sealed, verifier, pre, post) == stub
    if not hdr_sign:
        assert KrbSealer(keys).unseal(side, sealed, verifier) == stub
    assert KrbSealer(keys).unseal_pdu(1 - side, sealed, verifier, pre, post) is None  # wrong direction
    for i in (0, len(sealed) - 1):
        bad = bytearray(sealed)
        bad[i] ^= 1
        assert KrbSealer(keys).unseal_pdu(side, bytes(bad), verifier, pre, post) is None
    bad_v = bytearray(verifier)
    bad_v[-3] ^= 0x80
    assert KrbSealer(keys).unseal_pdu(side, sealed, bytes(bad_v), pre, post) is None
    if hdr_sign:
        assert KrbSealer(keys).unseal_pdu(side, sealed, verifier, b"\x06" + pre[1:], post) is None
    wrong = KrbKeys(ADMIN, (etype, raw), None, (etype, bytes(len(raw))))
    assert KrbSealer(wrong).unseal_pdu(side, sealed, verifier, pre, post) is None


# -- lab captures against tshark -------------------------------------------------------------------
ETYPE_NAMES = {17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96", 23: "rc4-hmac"}


@needs_tshark
@pytest.mark.parametrize(
    ("path", "ifaces", "contexts", "etype"),
    [
        (KRB5, ["samr"], 2, 18),
        (SPNEGO, ["samr", "dssetup"], 2, 18),
        (RC4, ["samr", "dssetup"], 3, 23),
        (AES128, ["samr", "dssetup"], 3, 17),
    ],
    ids=["krb5-aes256", "spnego-aes256", "rc4", "aes128"],
)
def test_lab_kerberos_stubs_match_tshark(
    path: Path, ifaces: list[str], contexts: int, etype: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sealed stub rpcinspect decrypts equals tshark's, byte for byte, at the same frame; and
    the keys it unsealed with are of the etype the capture negotiated, as tshark sees it too."""
    used: list[KrbKeys] = []
    real_init = KrbSealer.__init__

    def init(self: KrbSealer, keys: KrbKeys) -> None:
        used.append(keys)
        real_init(self, keys)

    monkeypatch.setattr(KrbSealer, "__init__", init)
    recs, got = decrypted(path, lab_keytab(), [UUIDS[i] for i in ifaces], monkeypatch)
    ref = tshark_stubs(path, KEYTAB)
    sealed = [r for r in recs if isinstance(r, CallRecord) and r.sealed]
    assert len(sealed) >= 8 and len(got) == len(sealed)
    assert {r.interface for r in sealed} == set(ifaces)
    assert len(ref) == 2 * len(sealed)  # tshark decrypted every sealed request and response
    for rec, req, resp in got.values():
        assert rec.decrypted and not rec.stub_encrypted and rec.user == ADMIN, rec
        assert rec.resp_frame is not None
        for frame, ours in ((rec.req_frame, req), (rec.resp_frame, resp)):
            theirs = ref[frame]  # tshark's includes the auth padding after the stub
            assert theirs[: len(ours)] == ours and len(theirs) - len(ours) < 16, (frame, rec.operation)
    assert any(SEC_VT_MAGIC in q for _r, q, _s in got.values())
    assert not anomalies(recs, "decrypt_failed")
    assert recs[-1].counters["auth_contexts_decrypted"] == contexts  # type: ignore[attr-defined]
    # the etypes: the KDC encrypts the service ticket with DC1$'s AES256 key whatever the client asks;
    # the session key, both subkeys and so the wrap tokens use the negotiated etype
    assert len(used) == contexts
    for keys in used:
        assert keys.initiator_subkey is not None and keys.acceptor_subkey is not None
        assert {keys.session_key[0], keys.initiator_subkey[0], keys.acceptor_subkey[0]} == {etype}
    # (an SPNEGO context's alter_context record repeats its bind's negotiation, third leg added)
    krb = [(b.pdu, b.auth.kerberos) for b in recs if isinstance(b, BindRecord) and b.auth and b.auth.kerberos]
    assert sum(pdu == "bind" and "ap_req" in k.messages for pdu, k in krb) == contexts
    for _pdu, k in krb:
        if "ap_req" in k.messages:
            assert k.ticket_etype == ETYPE_NAMES[18] and k.authenticator_etype == ETYPE_NAMES[etype], k
            assert k.ap_rep_etype == ETYPE_NAMES[etype], k
    legs, tokens = tshark_krb_etypes(path, KEYTAB)
    ap_req = [leg for leg in legs if leg[1].split(",")[0] == "14"]
    ap_rep = [leg for leg in legs if leg[1] == "15"]
    assert len(ap_req) == contexts and len(ap_rep) == 2 * contexts  # DCE style: the client answers too
    for _frame, _msg, etypes, keytypes in ap_req:
        assert etypes[:2] == [18, etype] and set(keytypes) == {etype}, (etypes, keytypes)
    for _frame, _msg, etypes, keytypes in ap_rep:
        assert etypes == [etype] and set(keytypes) <= {etype}, (etypes, keytypes)
    assert any(keytypes for *_x, keytypes in ap_rep)  # the server's AP-REP carries its subkey
    assert len(tokens) == len(ref)
    if etype == 23:  # RFC 4757: KRB5_GSS_Wrap, HMAC-MD5 checksum, RC4 sealing
        assert set(tokens.values()) == {("0x0102", "0x0011", "0x0010")}
    else:  # RFC 4121 CFX wrap tokens (under the acceptor subkey, whose etype is asserted above)
        assert set(tokens.values()) == {("0x0405", "", "")}


def test_keytab_holds_the_keys_of_every_provision() -> None:
    """The RC4/AES128 captures were recorded against a re-provisioned DC: record.sh merged the new
    export into rpclab.keytab, which keeps the old DC1$ keys (first, for the older captures) and adds
    the new ones. Each capture opens with exactly one of DC1$'s AES256 keys, and with the whole keytab
    in any order: every key of the ticket's etype and kvno is tried, not just the first one named."""
    entries = load_keytab(KEYTAB)
    dc_aes = [e for e in entries if e.principal == "DC1$" and e.etype == 18]
    assert dc_aes and len({e.key for e in dc_aes}) == len(dc_aes)
    others = [e for e in entries if e not in dc_aes]

    def opened(path: Path, kt: list[KeytabEntry]) -> int:
        summary = list(analyze([path], keytab=Keytab(kt)))[-1]
        return summary.counters.get("auth_contexts_decrypted", 0)  # type: ignore[attr-defined]

    used = set()
    for path, contexts in ((KRB5, 2), (SPNEGO, 2), (RC4, 3), (AES128, 3)):
        per_key = [opened(path, [*others, k]) for k in dc_aes]
        assert sorted(per_key) == [0] * (len(dc_aes) - 1) + [contexts], path.name
        used.add(per_key.index(contexts))
        assert opened(path, entries) == opened(path, [*dc_aes[::-1], *others]) == contexts, path.name
    if len(dc_aes) > 1:  # a merged keytab: every key opens some capture (today: old ones 1st, new 2nd)
        assert used == set(range(len(dc_aes)))


def test_without_keytab_kerberos_stays_encrypted() -> None:
    recs = list(analyze([KRB5]))
    sealed = [r for r in recs if isinstance(r, CallRecord) and r.sealed]
    assert sealed and all(r.stub_encrypted and not r.decrypted and r.user is None for r in sealed)


def test_kerberos_over_smb_pipe_is_unharmed() -> None:
    """Kerberos SMB2 session, DCE/RPC without a verifier: nothing to unseal, nothing reported."""
    plain = [r for r in analyze([NP]) if isinstance(r, CallRecord)]
    recs = list(analyze([NP], keytab=lab_keytab()))
    assert [r for r in recs if isinstance(r, CallRecord)] == plain and len(plain) == 4
    assert not anomalies(recs, "decrypt_failed") and not any(r.decrypted for r in plain)


# -- wrong keys, damaged PDUs ----------------------------------------------------------------------
def test_wrong_keytab_is_reported_once_per_context(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = [
        KeytabEntry(e.principal, e.realm, e.kvno, e.etype, bytes(len(e.key))) for e in load_keytab(KEYTAB)
    ]
    recs, got = decrypted(KRB5, Keytab(wrong), [UUIDS["samr"]], monkeypatch)
    fails = anomalies(recs, "decrypt_failed")
    assert len(fails) == 2  # two Kerberos contexts in the capture
    assert all(
        "no key in the keytab decrypts the ticket" in f.detail and "RPCLAB.TEST" in f.detail for f in fails
    )
    assert got and all(not r.decrypted and r.stub_encrypted and r.user is None for r, _q, _s in got.values())
    other = Keytab([KeytabEntry("DC1$", "RPCLAB.TEST", 1, 23, b"\1" * 16)])  # no AES key at all
    recs = list(analyze([KRB5], keytab=other))
    assert all("has no aes256-cts-hmac-sha1-96 key" in f.detail for f in anomalies(recs, "decrypt_failed"))


def test_damaged_sealed_pdu_is_one_anomaly_not_garbage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _recs, clean = decrypted(KRB5, lab_keytab(), [UUIDS["samr"]], monkeypatch)
    first = min(clean)
    data = bytearray(KRB5.read_bytes())
    frames = pcap_frames(bytes(data))
    for f in (first, clean[first][0].resp_frame or 0):  # damage the request and its response
        off, length = frames[f - 1]
        assert data[off + 66 : off + 68] == b"\x05\x00" and length > 66 + 24 + 10
        data[off + 66 + 24 + 10] ^= 0xFF  # Ethernet+IP+TCP(options) = 66, then the 24-byte PDU header
    bad = tmp_path / "damaged.pcap"
    bad.write_bytes(bytes(data))
    recs, got = decrypted(bad, lab_keytab(), [UUIDS["samr"]], monkeypatch)
    fails = anomalies(recs, "decrypt_failed")
    assert len(fails) == 1 and "does not verify" in fails[0].detail
    assert not got[first][0].decrypted and got[first][0].stub_encrypted
    assert got[first][0].user == ADMIN  # the ticket still names the client
    assert sum(r.decrypted for r, _q, _s in got.values()) == len(clean) - 1
    for frame, (rec, req, resp) in got.items():
        if frame != first:
            assert (req, resp) == clean[frame][1:], rec.operation


# -- Scapy's public capture ------------------------------------------------------------------------
def test_scapy_kerberos_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key Scapy's test gives (no kvno: every key of the etype is tried) opens all six sealed
    DRSUAPI calls; the stub matches Scapy's expectation and, byte for byte, tshark's."""
    kt = Keytab([KeytabEntry("ldap/dc1.domain.local", "DOMAIN.LOCAL", 0, 18, SCAPY_KEY)])
    recs, got = decrypted(SCAPY_KRB, kt, [UUIDS["drsuapi"]], monkeypatch)
    assert len(got) == 6 and all(
        r.decrypted and r.user == "WIN10$@DOMAIN.LOCAL" for r, _q, _s in got.values()
    )
    # pkts[15] (frame 16): "Packet 15 has an encrypted vt_trailer", and its payload
    req16 = got[16][1]
    assert req16[:96] == (  # Scapy's payload stops where the (decrypted) verification trailer starts
        b"\x00\x00\x02\x00\x00\x00\x00\x00\x1a M\xe2\xd6O\xd1\x11\xa3\xda\x00\x00\xf8u\xae\r"
        b"\x00\x00\x02\x00\x00\x00\x00\x004\x00\x00\x00\x00\x00\x00\x004\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00$\x0c" + bytes(30)
    )
    assert got[16][0].sec_vt and req16[96:].startswith(SEC_VT_MAGIC)
    assert not anomalies(recs, "decrypt_failed")
    if shutil.which("tshark"):
        ktfile = tmp_path / "scapy.keytab"
        ktfile.write_bytes(
            write_keytab([KeytabEntry("ldap/dc1.domain.local", "DOMAIN.LOCAL", 0, 18, SCAPY_KEY)])
        )
        ref = tshark_stubs(SCAPY_KRB, ktfile)
        for rec, req, resp in got.values():
            for frame, ours in ((rec.req_frame, req), (rec.resp_frame, resp)):
                assert ref[frame][: len(ours)] == ours and len(ref[frame]) - len(ours) < 16


# -- command line --------------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_keytab_sources_and_no_key_in_output(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text(f"# lab\nkeytab:{KEYTAB}\n")
    keys = [e.key.hex() for e in load_keytab(KEYTAB)]
    for args, env in (
        (["--keytab", str(KEYTAB)], None),
        (["--secrets-file", str(secrets)], None),
        ([], {"RPCINSPECT_KEYTAB": str(KEYTAB)}),
    ):
        for fmt in ("jsonl", "table"):
            proc = _cli("-f", fmt, *args, str(SPNEGO), env=env)
            assert proc.returncode == 0, proc.stderr
            text = (proc.stdout + proc.stderr).lower()
            assert not any(k in text for k in keys)
            if fmt == "jsonl":
                assert proc.stdout.count('"decrypted":true') == 8
                assert f'"user":"{ADMIN}"' in proc.stdout
    n = len(load_keytab(KEYTAB))
    assert load_keytabs([], secrets) is not None and len(load_keytabs([KEYTAB], secrets) or []) == 2 * n


@pytest.mark.parametrize("content", [b"", b"not a keytab", KEYTAB.read_bytes()[:100]])
def test_cli_corrupt_keytab_is_a_one_line_usage_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.keytab"
    bad.write_bytes(content)
    proc = _cli("--keytab", str(bad), str(SPNEGO))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "keytab" in lines[0] and "bad.keytab" in lines[0], proc.stderr
    assert not any(k.key.hex() in proc.stderr.lower() for k in load_keytab(KEYTAB))
    missing = _cli("--keytab", str(tmp_path / "none.keytab"), str(SPNEGO))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
