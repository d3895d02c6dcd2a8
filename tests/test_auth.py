"""Auth values: NTLMSSP, Kerberos, SPNEGO, Netlogon parsers on real blobs from the lab captures
and the public corpus, the per-association state machine, and hostile input."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

import builders as b
import pytest
from conftest import CAPTURES, CORPUS

from rpcinspect.auth import SEC_VT_MAGIC, kerberos, netlogon, ntlm, parse_value, spnego
from rpcinspect.auth.crypto import RC4, md4
from rpcinspect.auth.secrets import Secret, load_secrets
from rpcinspect.catalog import load_catalog
from rpcinspect.dcerpc import authstate
from rpcinspect.dcerpc.association import Association
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, BindRecord, CallRecord, Record
from rpcinspect.runtime import Run
from rpcinspect.transports.cotcp import header

ZEEK = CORPUS / "zeek+zeek" / "testing" / "btest" / "Traces" / "dce-rpc"
SCAPY = CORPUS / "secdev+scapy" / "test" / "pcaps"


def records(path: Path) -> list[Record]:
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return list(analyze([path]))


def binds(recs: list[Record]) -> list[BindRecord]:
    return [r for r in recs if isinstance(r, BindRecord) and r.auth is not None]


def calls(recs: list[Record]) -> list[CallRecord]:
    return [r for r in recs if isinstance(r, CallRecord)]


def blobs(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Every auth value the association parsed in *path*: (auth_type, bytes)."""
    seen: list[tuple[int, bytes]] = []
    real = authstate.parse_value

    def spy(at: int, v: bytes):  # type: ignore[no-untyped-def]
        seen.append((at, v))
        return real(at, v)

    monkeypatch.setattr(authstate, "parse_value", spy)
    records(path)
    return seen


# -- real captures, end to end -------------------------------------------------------------------
def test_ntlm_privacy_lab_capture() -> None:
    recs = records(CAPTURES / "authn-privacy-tcp-rpcclient.pcap")
    (first, *_) = binds(recs)
    a = first.auth
    assert a is not None and a.mechanism == "ntlm" and a.complete
    assert a.legs == ["bind", "bind_ack", "auth3"]
    n = a.ntlm
    assert n is not None
    assert n.messages == ["negotiate", "challenge", "authenticate"]
    assert (n.user, n.domain, n.workstation, n.version) == ("Administrator", "RPCLAB", "CLIENT", "v2")
    assert {"sign", "seal", "extended_session_security", "key_exchange", "128"} <= set(n.flags)
    assert n.mic is True
    assert (n.nb_computer, n.dns_computer, n.dns_domain) == ("DC1", "dc1.rpclab.test", "rpclab.test")
    assert n.timestamp is not None and abs(n.timestamp - first.ts) < 5
    sealed = [c for c in calls(recs) if c.auth_type == "ntlm"]
    assert sealed and all(c.user == "RPCLAB\\Administrator" and c.sealed and c.signed for c in sealed)
    assert all(c.auth_source == "rpc" and c.stub_encrypted and not c.decrypted for c in sealed)
    assert not any(c.sec_vt for c in sealed)  # sealed: the trailer is inside the encrypted stub


def test_connect_level_calls_carry_the_association_auth() -> None:
    recs = records(CAPTURES / "authn-connect-tcp-rpcclient.pcap")
    samr = [c for c in calls(recs) if c.interface == "samr"]
    assert samr
    for c in samr:
        assert (c.auth_type, c.auth_level, c.auth_source) == ("ntlm", "connect", "rpc")
        assert c.user == "RPCLAB\\Administrator" and not c.signed and not c.sealed


def test_integrity_calls_are_signed_and_sec_vt_is_seen() -> None:
    recs = records(CAPTURES / "authn-integrity-tcp-rpcclient.pcap")
    signed = [c for c in calls(recs) if c.auth_level == "integrity"]
    assert signed and all(c.signed and not c.sealed and not c.stub_encrypted for c in signed)
    assert any(c.sec_vt for c in signed)


def test_kerberos_raw_lab_capture() -> None:
    (first, *_) = binds(records(CAPTURES / "kerberos-krb5-seal-tcp-rpcclient.pcap"))
    a = first.auth
    assert a is not None and a.mechanism == "kerberos" and a.complete and a.spnego is None
    k = a.kerberos
    assert k is not None and k.messages[:2] == ["ap_req", "ap_rep"]
    assert (k.realm, k.sname, k.mutual) == ("RPCLAB.TEST", "host/dc1.rpclab.test", True)
    assert k.ticket_etype == k.authenticator_etype == "aes256-cts-hmac-sha1-96"


def test_spnego_kerberos_lab_capture_across_alter_context() -> None:
    bs = binds(records(CAPTURES / "kerberos-spnego-seal-tcp-rpcclient.pcap"))
    first, alter = bs[0], bs[1]
    assert first.pdu == "bind" and alter.pdu == "alter_context"
    assert first.auth is not None and not first.auth.complete
    a = alter.auth
    assert a is not None and a.complete
    assert a.legs == ["bind", "bind_ack", "alter_context", "alter_context_resp"]
    assert a.spnego is not None
    assert a.spnego.offered == ["ms_kerberos", "kerberos"]
    assert (a.spnego.chosen, a.spnego.state) == ("ms_kerberos", "accept_completed")
    assert a.kerberos is not None and a.kerberos.realm == "RPCLAB.TEST"


def test_netlogon_secure_channel_lab_capture() -> None:
    recs = records(CAPTURES / "netlogon-schannel-tcp-impacket.pcap")
    (first, *_) = binds(recs)
    a = first.auth
    assert a is not None and a.mechanism == "netlogon" and a.complete
    assert a.netlogon is not None
    assert (a.netlogon.domain, a.netlogon.computer) == ("RPCLAB", "WS01")
    assert a.netlogon.messages == ["negotiate_request", "negotiate_response"]
    nl = [c for c in calls(recs) if c.auth_type == "netlogon"]
    assert nl and all(c.user == "RPCLAB\\WS01$" and c.sealed for c in nl)


def test_zeek_netlogon_and_kerberos135() -> None:
    (nb, *_) = binds(records(ZEEK / "dce_rpc_netlogon.pcapng"))
    assert nb.auth is not None and nb.auth.netlogon is not None
    assert (nb.auth.netlogon.domain, nb.auth.netlogon.dns_domain) == ("BLACKCLOVER", "blackclover.local")
    bs = binds(records(ZEEK / "kerberos135_auth.pcapng"))
    k = bs[-1].auth
    assert k is not None and k.kerberos is not None and k.spnego is not None
    assert k.kerberos.sname == "RPCSS/BLACKCLOVER-DC.SRT-AD.local"
    assert "ntlm" in k.spnego.offered and k.complete


@pytest.mark.parametrize("name", ["ntlm-empty-av-sequence.pcap", "ntlm-unterminated-av-sequence.pcap"])
def test_zeek_bad_av_sequences_are_counted_malformed(name: str) -> None:
    recs = records(ZEEK / name)
    (first, *_) = binds(recs)
    assert first.auth is not None and first.auth.ntlm is not None
    assert first.auth.ntlm.domain == "CNAMIS" and first.auth.problems
    assert any(isinstance(r, AnomalyRecord) and r.kind == "malformed_auth" for r in recs)


def test_scapy_privacy_captures() -> None:
    recs = records(SCAPY / "dcerpc_privacy_ntlm.pcapng.gz")
    (first, *_) = binds(recs)
    assert first.auth is not None and first.auth.ntlm is not None
    assert (first.auth.ntlm.user, first.auth.ntlm.domain, first.auth.ntlm.dns_tree) == (
        "Administrator", "DOMAIN", "domain.local")  # fmt: skip
    krb = binds(records(SCAPY / "dcerpc_privacy_krb.pcapng.gz"))[-1].auth
    assert krb is not None and krb.kerberos is not None
    assert krb.kerberos.sname == "ldap/dc1.domain.local/domain.local"
    assert krb.spnego is not None and krb.spnego.offered == ["ms_kerberos", "kerberos", "negoex", "ntlm"]


def test_real_blobs_parse_without_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["authn-privacy-tcp-rpcclient.pcap", "kerberos-spnego-seal-tcp-rpcclient.pcap",
             "kerberos-krb5-seal-tcp-rpcclient.pcap", "netlogon-schannel-tcp-impacket.pcap"]  # fmt: skip
    seen: list[tuple[int, bytes]] = []
    for n in names:
        seen += blobs(CAPTURES / n, monkeypatch)
    assert {at for at, _ in seen} == {9, 10, 16, 68}
    for at, v in seen:
        assert parse_value(at, v)[1] == [], (at, v[:32].hex())


def test_kerberos_fields_agree_with_scapy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our strict DER walk and Scapy's ASN.1 layers read the same fields from every real token."""
    from scapy.layers.kerberos import KRB_AP_REP, KRB_AP_REQ

    seen = blobs(CAPTURES / "kerberos-krb5-seal-tcp-rpcclient.pcap", monkeypatch)
    seen += blobs(ZEEK / "kerberos135_auth.pcapng", monkeypatch) if ZEEK.is_dir() else []
    seen += blobs(SCAPY / "dcerpc_privacy_krb.pcapng.gz", monkeypatch) if SCAPY.is_dir() else []
    n = 0
    for at, v in seen:
        parsed, problems = parse_value(at, v)
        k = parsed.get("kerberos")
        if k is None:
            continue
        assert not problems
        raw = kerberos.unwrap(v if at == 16 else _inner_token(v))
        assert raw is not None
        if k["message"] == "ap_req":
            p = KRB_AP_REQ(raw[1])
            assert k["realm"] == p.ticket.realm.val.decode()
            assert k["sname"] == "/".join(x.val.decode() for x in p.ticket.sname.nameString)
            assert k["ticket_etype"] == kerberos.etype_name(p.ticket.encPart.etype.val)
            assert k["authenticator_etype"] == kerberos.etype_name(p.authenticator.etype.val)
            assert k["mutual"] == (str(p.apOptions.val)[2] == "1")
        else:
            assert k["ap_rep_etype"] == kerberos.etype_name(KRB_AP_REP(raw[1]).encPart.etype.val)
        n += 1
    assert n >= 6


def _inner_token(v: bytes) -> bytes:
    _info, inner, _p = spnego.parse(v)
    assert inner is not None
    return inner


def test_mutated_real_blobs_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = blobs(CAPTURES / "authn-privacy-tcp-rpcclient.pcap", monkeypatch)[:3]
    seen += blobs(CAPTURES / "kerberos-spnego-seal-tcp-rpcclient.pcap", monkeypatch)[:2]
    seen += blobs(CAPTURES / "netlogon-schannel-tcp-impacket.pcap", monkeypatch)[:1]
    rng = random.Random(4)
    for at, v in seen:
        for _ in range(60):
            m = bytearray(v)
            for _ in range(rng.randint(1, 4)):
                m[rng.randrange(len(m))] = rng.randrange(256)
            cut = bytes(m[: rng.randint(0, len(m))]) if rng.random() < 0.3 else bytes(m)
            info, problems = parse_value(at, cut)
            assert isinstance(info, dict) and isinstance(problems, list)


# -- parsers, hostile ----------------------------------------------------------------------------
def _authenticate(fields: list[tuple[int, int]], flags: int = 0x1) -> bytes:
    body = ntlm.SIGNATURE + struct.pack("<I", 3)
    for n, off in fields:  # LM, NT, domain, user, workstation, session key
        body += struct.pack("<HHI", n, n, off)
    return body + struct.pack("<I", flags) + b"\0" * 24


def test_ntlm_offsets_outside_the_message() -> None:
    msg = _authenticate([(24, 88), (0xFFFF, 0xFFFFFF00), (4, 10_000), (8, 90), (0, 0), (16, 4)])
    info, problems = ntlm.parse(msg)
    assert info["message"] == "authenticate"
    assert len(problems) >= 3 and any("NT response" in p for p in problems)
    assert info["user"] is None


def test_ntlm_anonymous_and_versions() -> None:
    anon = _authenticate([(1, 88), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)]) + b"\0"
    assert ntlm.parse(anon)[0]["version"] == "anonymous"
    user = "bob".encode("utf-16-le")
    base = 88
    v1 = _authenticate([(24, base), (24, base + 24), (0, 0), (len(user), base + 48), (0, 0), (0, 0)])
    v1 += b"\1" * 48 + user
    info, problems = ntlm.parse(v1)
    assert (info["version"], info["user"], problems) == ("v1", "bob", [])


def test_ntlm_truncated_and_foreign() -> None:
    assert ntlm.parse(b"NTLMSSP\0\x03\0\0\0")[1]
    assert ntlm.parse(b"hello")[1]
    assert ntlm.parse(ntlm.SIGNATURE + struct.pack("<I", 9))[1]


@pytest.mark.parametrize(
    "blob",
    [b"\x6e\x05garbagegarbage", b"hello world", b"\x6e\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01",
     b"\x60\x03\x06\x01\x2a", b"\x6e" + b"\x82\xff\xff" + b"\0" * 100, b"\x7e\x00"],
)  # fmt: skip
def test_kerberos_not_asn1_is_a_problem(blob: bytes) -> None:
    _info, problems = kerberos.parse(blob)
    assert problems
    assert parse_value(16, blob)[1]


def test_kerberos_byte_cap() -> None:
    assert "cap" in kerberos.parse(b"\x6e" + b"\0" * (kerberos.MAX_BYTES + 1))[1][0]


@pytest.mark.parametrize(
    "blob", [b"", b"\xa1", b"\xa0\x05\x30\x03\x06\x01", b"\x60\x80", b"\xa1\x02\x04\x00"]
)
def test_spnego_garbage(blob: bytes) -> None:
    assert spnego.parse(blob)[2]


def test_netlogon_garbage() -> None:
    assert netlogon.parse_message(b"\0\0\0\0\x01\0\0\0RPCLAB")[1]  # unterminated name
    assert netlogon.parse_message(b"\0\0\0\0\x04\0\0\0\x3f")[1]
    assert netlogon.parse_message(b"\x02")[1]
    assert netlogon.parse_signature(b"\x77\x00\x7a\x00") == ("hmac_md5", "rc4")


# -- the association with hand-made PDUs -----------------------------------------------------------
def _with_auth(pdu: bytes, value: bytes, *, auth_type: int = 10, level: int = 6, ctx: int = 1,
               auth_len: int | None = None) -> bytes:  # fmt: skip
    pad = (-len(pdu)) % 4
    trailer = bytes([auth_type, level, pad, 0]) + struct.pack("<I", ctx)
    out = bytearray(pdu + b"\0" * pad + trailer + value)
    struct.pack_into("<HH", out, 8, len(out), len(value) if auth_len is None else auth_len)
    return bytes(out)


def _feed(pdus: list[tuple[int, bytes]]) -> list[Record]:
    out: list[Record] = []
    run = Run(load_catalog(), out.append)
    a = Association(run, "ncacn_ip_tcp", ("10.0.0.1", 1000, "10.0.0.2", 135))
    for i, (dirn, p) in enumerate(pdus, 1):
        a.pdu(dirn, p, 0, header(p, 0), i, float(i))
    a.close("end_of_capture")
    return out


def test_64k_verifier_is_not_parsed_and_is_counted() -> None:
    pdu = b.bind(1, [(0, b.SAMR, 1)])
    room = 65535 - len(pdu) - (-len(pdu)) % 4 - 8  # the largest verifier a PDU can carry
    big = ntlm.SIGNATURE + struct.pack("<II", 1, 0x31) + b"\xff" * (room - 16)
    recs = _feed([(0, _with_auth(pdu, big)), (1, b.bind_ack(1, 1))])
    (bind,) = [r for r in recs if isinstance(r, BindRecord)]
    assert bind.auth is not None and bind.auth.ntlm is not None  # a 64 KB NEGOTIATE: read, bounded
    assert bind.auth.ntlm.flags == ["unicode", "sign", "seal"]
    assert "cap" in parse_value(10, big + b"\0" * 1000)[1][0]
    huge = b"\x6e" + b"\0" * 70000
    assert "cap" in parse_value(16, huge)[1][0]


def test_auth_length_larger_than_the_pdu_is_an_anomaly() -> None:
    bad = _with_auth(b.bind(1, [(0, b.SAMR, 1)]), b"NTLMSSP\0", auth_len=4000)
    req = _with_auth(b.request(2, 0, b"\0" * 8), b"\0" * 16, auth_len=5000)
    recs = _feed([(0, bad), (1, b.bind_ack(1, 1)), (0, req)])
    found = [(r.kind, r.detail) for r in recs if isinstance(r, AnomalyRecord)]
    assert ("malformed_pdu", "bind body does not fit its PDU") in found  # the body ends before the PDU start
    assert ("malformed_auth", "auth_length larger than the request") in found
    assert [r.auth_level for r in recs if isinstance(r, CallRecord)] == ["none"]


def test_sec_vt_and_verifier_ctx_user() -> None:
    neg = ntlm.SIGNATURE + struct.pack("<II", 1, 0x20) + b"\0" * 16
    user, dom = "eve".encode("utf-16-le"), "LAB".encode("utf-16-le")
    auth = _authenticate([(0, 0), (24, 88), (len(dom), 112), (len(user), 112 + len(dom)), (0, 0), (0, 0)])
    auth += b"\2" * 24 + dom + user
    auth3 = _with_auth(bytes([5, 0, 16, 3, 0x10, 0, 0, 0]) + struct.pack("<HHI", 0, 0, 1) + b"\0" * 4, auth,
                       level=5)  # fmt: skip
    challenge = ntlm.SIGNATURE + struct.pack("<IHHIIQQHHI", 2, 0, 0, 48, 0x20, 7, 0, 0, 0, 48)
    stub = b"\1" * 8 + SEC_VT_MAGIC + b"\0" * 8
    recs = _feed([
        (0, _with_auth(b.bind(1, [(0, b.SAMR, 1)]), neg, level=5)),
        (1, _with_auth(b.bind_ack(1, 1), challenge, level=5)),
        (0, auth3),
        (0, _with_auth(b.request(2, 0, stub), b"\x01" + b"\0" * 15, level=5)),
        (1, b.response(2, b"\0" * 8)),
    ])  # fmt: skip
    (call,) = [r for r in recs if isinstance(r, CallRecord)]
    assert (call.auth_type, call.auth_level, call.user, call.signed, call.sealed, call.sec_vt) == (
        "ntlm", "integrity", "LAB\\eve", True, False, True)  # fmt: skip
    (bind,) = [r for r in recs if isinstance(r, BindRecord)]
    assert bind.auth is not None and bind.auth.legs == ["bind", "bind_ack", "auth3"] and bind.auth.complete
    assert bind.auth.ntlm is not None and bind.auth.ntlm.version == "v1"


# -- decryption --------------------------------------------------------------------------------------
SAMR_UUID = "12345778-1234-abcd-ef00-0123456789ac"
SVCCTL_UUID = "367abb81-9844-35f1-ad32-98f038001003"


def decrypted_stubs(
    path: Path, secrets: list[Secret], uuid: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Record], list[tuple[CallRecord, bytes, bytes]]]:
    """Records, and (call, request stub, response stub) of every call to *uuid*, with *secrets*."""
    if not path.is_file():
        pytest.skip(f"{path} not present")
    got: list[tuple[CallRecord, bytes, bytes]] = []
    real_init = Run.__init__

    def init(self: Run, *a, **k) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *a, **k)
        self.add_stub_tap(uuid, None, lambda r, q, s: got.append((r, q, s)))

    monkeypatch.setattr(Run, "__init__", init)
    return list(analyze([path], secrets=secrets)), got


def test_decrypt_ntlm_privacy_lab_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = load_secrets(["Administrator%RpcLab-Passw0rd"], [])
    recs, got = decrypted_stubs(
        CAPTURES / "authn-privacy-tcp-rpcclient.pcap", secrets, SAMR_UUID, monkeypatch
    )
    assert len(got) >= 20
    for rec, req, resp in got:
        assert rec.decrypted and rec.sealed and not rec.stub_encrypted
        assert len(req) == rec.req_stub_len and len(resp) == rec.resp_stub_len
        assert resp[-4:] == b"\0\0\0\0", (rec.operation, resp[-4:].hex())  # NTSTATUS success
    # the handle SamrConnect5 returns is the one the next call presents (NDR context handle)
    (connect, after) = got[0], got[1]
    assert connect[0].operation == "SamrConnect5"
    assert connect[2][-24:-4] == after[1][:20]
    assert "\\\\10.135.0.10".encode("utf-16-le") in connect[1]
    assert not any(isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed" for r in recs)


def test_decrypt_matches_scapy_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    path = SCAPY / "dcerpc_privacy_ntlm.pcapng.gz"
    secrets = load_secrets([], [md4("Password123!".encode("utf-16-le")).hex()])
    _recs, got = decrypted_stubs(path, secrets, SVCCTL_UUID, monkeypatch)
    by_frame = {r.req_frame: (q, s) for r, q, s in got}
    # scapy/test/scapy/layers/dcerpc.uts: pkts[16].load and pkts[23].load (0-based packet indexes)
    assert by_frame[17][0].startswith(  # Scapy's load stops before the verification trailer
        b"\x00\x00\x02\x00\x0e\x00\x00\x00\x00\x00\x00\x00\x0e\x00\x00\x001\x009\x002\x00.\x001\x006\x00"
        b"8\x00.\x000\x00.\x001\x000\x000\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00"
    )
    assert by_frame[17][0].index(SEC_VT_MAGIC) == 52  # after 4 bytes of NDR alignment
    assert by_frame[24][0] == (
        b"\x00\x00\x00\x00\xad\xb3\xf5\xd1\x8eJ\xdeG\xa9\xa5\x85\xccvb\x8b\x970\x00\x00\x00\x03\x00\x00\x00"
        b"\x1d\x83\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00"
    )
    # encrypted verification trailers, seen once decrypted
    assert [r.req_frame for r, _q, _s in got if r.sec_vt] == [14, 17]


def test_wrong_password_is_reported_never_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    recs, got = decrypted_stubs(
        CAPTURES / "authn-privacy-tcp-rpcclient.pcap", load_secrets(["nope"], []), SAMR_UUID, monkeypatch
    )
    fails = [r.detail for r in recs if isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed"]
    assert fails and "wrong password" in fails[0] and "RPCLAB\\Administrator" in fails[0]
    assert all(not r.decrypted and r.stub_encrypted for r, _q, _s in got)
    other = load_secrets(["someone%RpcLab-Passw0rd"], [])
    recs = list(analyze([CAPTURES / "authn-privacy-tcp-rpcclient.pcap"], secrets=other))
    assert any(isinstance(r, AnomalyRecord) and "no secret given" in r.detail for r in recs)


def test_secrets_are_never_written(tmp_path: Path) -> None:
    pw = "RpcLab-Passw0rd"
    nt = md4(pw.encode("utf-16-le")).hex()
    f = tmp_path / "secrets"
    f.write_text(f"password:{pw}\nnt_hash:{nt}\n")
    cap = str(CAPTURES / "authn-privacy-tcp-rpcclient.pcap")
    for args in (
        ["--password", pw],
        ["--nt-hash", f"RPCLAB\\Administrator%{nt}"],
        ["--secrets-file", str(f)],
    ):
        for fmt in ("jsonl", "table"):
            proc = subprocess.run(
                [sys.executable, "-m", "rpcinspect", "analyze", "-f", fmt, *args, cap],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert pw not in proc.stdout + proc.stderr and nt not in (proc.stdout + proc.stderr).lower()
            if fmt == "jsonl":
                assert '"decrypted":true' in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", "--nt-hash", "secretvalue", cap],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "secretvalue" not in bad.stdout + bad.stderr


def test_crypto_vectors() -> None:
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"  # RFC 1320
    assert RC4(b"Key").crypt(b"Plaintext").hex() == "bbf316e8d940af0ad3"
