"""NTLM key derivation and sealing: the published examples of MS-NLMP section 4.2 (NTLMv1, NTLMv1
with client challenge = extended session security, NTLMv2), and the lab's NTLMv1 capture
against tshark.

The spec values below are MS-NLMP 4.2.1 (common values), 4.2.2 (NTLMv1), 4.2.3 (NTLMv1 with
client challenge) and 4.2.4 (NTLMv2), copied from the specification's hex dumps.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from builders import pcap_frames
from conftest import CAPTURES, CORPUS

from rpcinspect.auth.crypto import RC4, des, md4
from rpcinspect.auth.ntlmkeys import (
    ESS,
    LM_KEY,
    NON_NT_SESSION_KEY,
    desl,
    exported_session_key,
    kxkey_v1,
    legacy_seal_key,
    lmowf_v1,
    ntlmv1_response,
    ntlmv1_session_base_key,
    ntlmv2_session_base_key,
    seal_keys,
)
from rpcinspect.auth.ntlmseal import NtlmLegacySealer, NtlmSealer, ntlm_sealer, ntlm_session_key
from rpcinspect.auth.secrets import Secret, load_secrets
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, BindRecord, CallRecord, Record, SummaryRecord
from rpcinspect.runtime import Run


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


# 4.2.1 Common values
PASSWORD = "Password"
RANDOM_SESSION_KEY = b"\x55" * 16
CLIENT_CHALLENGE = b"\xaa" * 8
SERVER_CHALLENGE = h("01 23 45 67 89 ab cd ef")
PLAINTEXT = h("50 00 6c 00 61 00 69 00 6e 00 74 00 65 00 78 00 74 00")  # "Plaintext", UTF-16
# 4.2.2 NTLMv1
V1_FLAGS = 0xE2808235  # AUTHENTICATE NegotiateFlags of 4.2.2.3: KEY_EXCH, 56, 128, no ESS
LMOWF = h("e5 2c ac 67 41 9a 9a 22 4a 3b 10 8f 3f a6 cb 6d")
NTOWF = h("a4 f4 9c 40 65 10 bd ca b6 82 4e e7 c3 0f d8 52")
V1_BASE_KEY = h("d8 72 62 b0 cd e4 b1 cb 74 99 be cc cd f1 07 84")
V1_NT_RESPONSE = h("67 c4 30 11 f3 02 98 a2 ad 35 ec e6 4f 16 33 1c 44 bd be d9 27 84 1f 94")
V1_LM_RESPONSE = h("98 de f7 b8 7f 88 aa 5d af e2 df 77 96 88 a1 72 de f1 1c 7d 5c cd ef 13")
V1_LM_KEY_KXKEY = h("b0 9e 37 9f 7f be cb 1e af 0a fd cb 03 83 c8 a0")  # "NTLMSSP_NEGOTIATE_LM_KEY is set"
V1_ENCRYPTED_KEY = h("51 88 22 b1 b3 f3 50 c8 95 86 82 ec bb 3e 3c b7")
V1_SEALED = h("56 fe 04 d8 61 f9 31 9a f0 d7 23 8a 2e 3b 4d 45 7f b8")
V1_SIGNATURE = h("01 00 00 00 45 c8 44 e5 09 dc d1 df 2e 45 9d 36")
V1_CRC32 = h("7d 84 aa 93")
# 4.2.3 NTLMv1 with client challenge (extended session security)
ESS_FLAGS = 0x82088235  # AUTHENTICATE NegotiateFlags of 4.2.3.3: ESS, 56, no 128, no KEY_EXCH
ESS_LM_RESPONSE = CLIENT_CHALLENGE + bytes(16)
ESS_NT_RESPONSE = h("75 37 f8 03 ae 36 71 28 ca 45 82 04 bd e7 ca f8 1e 97 ed 26 83 26 72 32")
ESS_KXKEY = h("eb 93 42 9a 8b d9 52 f8 b8 9c 55 b8 7f 47 5e dc")
ESS_SEAL_KEY = h("04 dd 7f 01 4d 85 04 d2 65 a2 5c c8 6a 3a 7c 06")
ESS_SEALED = h("a0 23 72 f6 53 02 73 f3 aa 1e b9 01 90 ce 52 00 c9 9d")
ESS_SIGNATURE = h("01 00 00 00 ff 2a eb 52 f6 81 79 3a 00 00 00 00")
# 4.2.4 NTLMv2
V2_FLAGS = 0xE2888235  # AUTHENTICATE NegotiateFlags of 4.2.4.3: ESS, KEY_EXCH, 128, 56
V2_NT_RESPONSE = h("68 cd 0a b8 51 e5 1c 96 aa bc 92 7b eb ef 6a 1c") + h(  # NTProofStr, temp
    "01 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 aa aa aa aa aa aa aa aa 00 00 00 00"
    "02 00 0c 00 44 00 6f 00 6d 00 61 00 69 00 6e 00 01 00 0c 00 53 00 65 00 72 00 76 00 65 00 72 00"
    "00 00 00 00 00 00 00 00"
)
V2_BASE_KEY = h("8d e4 0c ca db c1 4a 82 f1 5c b0 ad 0d e9 5c a3")
V2_ENCRYPTED_KEY = h("c5 da d2 54 4f c9 79 90 94 ce 1c e9 0b c9 d0 3e")
V2_SEAL_KEY = h("59 f6 00 97 3c c4 96 0a 25 48 0a 7c 19 6e 4c 58")
V2_SEALED = h("54 e5 01 65 bf 19 36 dc 99 60 20 c1 81 1b 0f 06 fb 5f")
V2_SIGNATURE = h("01 00 00 00 7f b3 8e c5 c5 5d 49 76 00 00 00 00")

SPEC_SECRET = [Secret(md4(PASSWORD.encode("utf-16-le")))]


def exchange(nt: bytes, lm: bytes, flags: int, enc: bytes | None) -> dict[str, object]:
    """An NTLM info dict as the parsers leave it after CHALLENGE and AUTHENTICATE."""
    return {"user": "User", "domain": "Domain", "server_challenge": SERVER_CHALLENGE, "nt_response": nt,
            "lm_response": lm, "negotiate_flags": flags, "encrypted_session_key": enc}  # fmt: skip


# -- 4.2.2 NTLMv1 ----------------------------------------------------------------------------------
def test_v1_owfs_responses_and_keys() -> None:
    assert des(b"PASSWOR", b"KGS!@#$%") == LMOWF[:8]  # DES() with a 7-byte key (LMOWFv1's first half)
    assert lmowf_v1(PASSWORD) == LMOWF
    assert md4(PASSWORD.encode("utf-16-le")) == NTOWF
    assert ntlmv1_response(NTOWF, SERVER_CHALLENGE, V1_LM_RESPONSE, V1_FLAGS) == V1_NT_RESPONSE
    assert desl(LMOWF, SERVER_CHALLENGE) == V1_LM_RESPONSE
    assert ntlmv1_session_base_key(NTOWF) == V1_BASE_KEY
    assert kxkey_v1(V1_FLAGS, V1_BASE_KEY, V1_LM_RESPONSE, SERVER_CHALLENGE, None) == V1_BASE_KEY
    lm_key = kxkey_v1(V1_FLAGS | LM_KEY, V1_BASE_KEY, V1_LM_RESPONSE, SERVER_CHALLENGE, LMOWF)
    assert lm_key == V1_LM_KEY_KXKEY
    non_nt = kxkey_v1(V1_FLAGS | NON_NT_SESSION_KEY, V1_BASE_KEY, V1_LM_RESPONSE, SERVER_CHALLENGE, LMOWF)
    assert non_nt == LMOWF[:8] + bytes(8)  # MS-NLMP 3.4.5.1: ConcatenationOf(LMOWF[0..7], Z(8))
    assert kxkey_v1(V1_FLAGS | LM_KEY, V1_BASE_KEY, V1_LM_RESPONSE, SERVER_CHALLENGE, None) is None
    assert RC4(V1_BASE_KEY).crypt(RANDOM_SESSION_KEY) == V1_ENCRYPTED_KEY
    assert exported_session_key(V1_FLAGS, V1_BASE_KEY, V1_ENCRYPTED_KEY) == RANDOM_SESSION_KEY


def test_v1_session_key_from_the_exchange() -> None:
    ex = exchange(V1_NT_RESPONSE, V1_LM_RESPONSE, V1_FLAGS, V1_ENCRYPTED_KEY)
    assert ntlm_session_key(ex, SPEC_SECRET) == RANDOM_SESSION_KEY
    wrong = ntlm_session_key(ex, load_secrets(["Passw0rd"], []))
    assert wrong == "wrong password or NT hash for Domain\\User (the NTLMv1 response does not verify)"
    why = ntlm_session_key({**ex, "negotiate_flags": V1_FLAGS | LM_KEY}, SPEC_SECRET)
    assert isinstance(why, str) and "LM hash" in why and PASSWORD not in why
    assert ntlm_session_key({**ex, "server_challenge": None}, SPEC_SECRET).startswith("only NTLMv1")


def test_v1_sealing_without_ess() -> None:
    """4.2.2.4: one handle keyed with the exported key; body, then RandomPad, checksum, SeqNum."""
    assert legacy_seal_key(V1_FLAGS, RANDOM_SESSION_KEY) == RANDOM_SESSION_KEY  # no LM_KEY: no weakening
    assert legacy_seal_key(V1_FLAGS | LM_KEY, RANDOM_SESSION_KEY) == b"\x55" * 7 + b"\xa0"
    handle = RC4(RANDOM_SESSION_KEY)
    assert handle.crypt(PLAINTEXT) == V1_SEALED
    assert handle.crypt(bytes(4) + V1_CRC32 + bytes(4)) == V1_SIGNATURE[4:]
    assert zlib.crc32(PLAINTEXT).to_bytes(4, "little") == V1_CRC32
    sealer = ntlm_sealer(exchange(V1_NT_RESPONSE, V1_LM_RESPONSE, V1_FLAGS, V1_ENCRYPTED_KEY), SPEC_SECRET)
    assert isinstance(sealer, NtlmLegacySealer)
    assert sealer.unseal(0, V1_SEALED, V1_SIGNATURE) == PLAINTEXT


def test_v1_sealing_shares_one_handle_and_rejects_what_does_not_verify() -> None:
    sealer = NtlmLegacySealer(RANDOM_SESSION_KEY, V1_FLAGS)
    assert sealer.unseal(1, V1_SEALED, V1_SIGNATURE) == PLAINTEXT  # either side: the same handle
    assert sealer.unseal(0, V1_SEALED, V1_SIGNATURE) is None  # the handle has moved on: out of step
    tampered = V1_SIGNATURE[:8] + bytes([V1_SIGNATURE[8] ^ 1]) + V1_SIGNATURE[9:12] + b"\0\0\0\1"
    assert NtlmLegacySealer(RANDOM_SESSION_KEY, V1_FLAGS).unseal(0, V1_SEALED, tampered) is None
    assert NtlmLegacySealer(RANDOM_SESSION_KEY, V1_FLAGS).unseal(0, V1_SEALED, V1_SIGNATURE[:6]) is None
    skipped = NtlmLegacySealer(RANDOM_SESSION_KEY, V1_FLAGS)
    skipped.skip(0, V1_SIGNATURE)  # an integrity-level PDU consumes 12 bytes and a sequence number
    assert skipped.seq == 1


# -- 4.2.3 NTLMv1 with client challenge (extended session security) --------------------------------
def test_v1_with_ess_keys_and_sealing() -> None:
    assert ntlmv1_response(NTOWF, SERVER_CHALLENGE, ESS_LM_RESPONSE, ESS_FLAGS) == ESS_NT_RESPONSE
    assert kxkey_v1(ESS_FLAGS, V1_BASE_KEY, ESS_LM_RESPONSE, SERVER_CHALLENGE, None) == ESS_KXKEY
    ex = exchange(ESS_NT_RESPONSE, ESS_LM_RESPONSE, ESS_FLAGS, None)
    assert ntlm_session_key(ex, SPEC_SECRET) == ESS_KXKEY  # no KEY_EXCH: the exported key is KXKEY
    assert seal_keys(ESS_FLAGS, ESS_KXKEY)[0] == ESS_SEAL_KEY  # 56-bit
    sealer = ntlm_sealer(ex, SPEC_SECRET)
    assert isinstance(sealer, NtlmSealer)
    assert sealer.unseal(0, ESS_SEALED, ESS_SIGNATURE) == PLAINTEXT
    assert "NTLMv1 response" in str(ntlm_session_key({**ex, "nt_response": V1_NT_RESPONSE}, SPEC_SECRET))
    assert "client challenge" in str(ntlm_session_key({**ex, "lm_response": b""}, SPEC_SECRET))


# -- 4.2.4 NTLMv2 ------------------------------------------------------------------------------------
def test_v2_keys_and_sealing() -> None:
    assert ntlmv2_session_base_key(NTOWF, "User", "Domain", SERVER_CHALLENGE, V2_NT_RESPONSE) == V2_BASE_KEY
    assert ntlmv2_session_base_key(NTOWF, "User", "Domain", bytes(8), V2_NT_RESPONSE) is None
    assert RC4(V2_BASE_KEY).crypt(RANDOM_SESSION_KEY) == V2_ENCRYPTED_KEY
    ex = exchange(V2_NT_RESPONSE, b"", V2_FLAGS, V2_ENCRYPTED_KEY)
    assert ntlm_session_key(ex, SPEC_SECRET) == RANDOM_SESSION_KEY
    assert seal_keys(V2_FLAGS, RANDOM_SESSION_KEY)[0] == V2_SEAL_KEY
    sealer = ntlm_sealer(ex, SPEC_SECRET)
    assert isinstance(sealer, NtlmSealer)
    assert sealer.unseal(0, V2_SEALED, V2_SIGNATURE) == PLAINTEXT


def test_v2_without_ess_seals_like_v1() -> None:
    """NTLMv2's exported key with the ESS flag off seals as 4.2.2.4 does (the same key, 0x55...)."""
    ex = exchange(V2_NT_RESPONSE, b"", V2_FLAGS & ~ESS, V2_ENCRYPTED_KEY)
    sealer = ntlm_sealer(ex, SPEC_SECRET)
    assert isinstance(sealer, NtlmLegacySealer)
    assert sealer.unseal(0, V1_SEALED, V1_SIGNATURE) == PLAINTEXT


# -- the lab capture: NTLMv1 with and without ESS ----------------------------------------------------
CAPTURE = CAPTURES / "ntlmv1-privacy-tcp-impacket.pcap"
SAMR_UUID = "12345778-1234-abcd-ef00-0123456789ac"
TSHARK_NTLM = ["-o", "ntlmssp.nt_password:RpcLab-Passw0rd"]


def run_with_taps(secrets: list[Secret], monkeypatch: pytest.MonkeyPatch) -> tuple[list[Record], list]:
    if not CAPTURE.is_file():
        pytest.skip(f"{CAPTURE} not present")
    got: list[tuple[CallRecord, bytes, bytes]] = []
    real_init = Run.__init__

    def init(self: Run, *a, **k) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *a, **k)
        self.add_stub_tap(SAMR_UUID, None, lambda r, q, s: got.append((r, q, s)))

    monkeypatch.setattr(Run, "__init__", init)
    return list(analyze([CAPTURE], secrets=secrets)), got


def tshark_decrypted(path: Path, password: str | None = None) -> dict[int, bytes]:
    """Frame number -> the stub tshark decrypted (its "Decrypted stub data" source, else
    "Decrypted data"; both include the auth padding), with the lab password or *password*."""
    opts = TSHARK_NTLM if password is None else ["-o", f"ntlmssp.nt_password:{password}"]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), *opts, "-x"], capture_output=True, text=True, timeout=120
    ).stdout
    frames: dict[int, bytes] = {}
    for n, packet in enumerate(out.strip("\n").split("\n\n"), 1):
        sources: dict[str, bytes] = {}
        name = None
        for line in packet.splitlines():
            head = re.match(r"^(\S.*) \(\d+ bytes\):$", line)
            if head:
                name = head.group(1)
                sources[name] = b""
            elif name is not None and re.match(r"^[0-9a-f]{4}  ", line):
                sources[name] += bytes.fromhex(line[6:54])
        stub = sources.get("Decrypted stub data", sources.get("Decrypted data"))
        if stub is not None:
            frames[n] = stub
    return frames


def test_ntlmv1_capture_binds() -> None:
    recs = list(analyze([CAPTURE])) if CAPTURE.is_file() else pytest.skip("capture not present")
    auths = [r.auth.ntlm for r in recs if isinstance(r, BindRecord) and r.auth and r.auth.ntlm]
    assert [a.version for a in auths] == ["v1", "v1"]
    assert ["extended_session_security" in a.flags for a in auths] == [True, False]
    assert all({"seal", "key_exchange", "128"} <= set(a.flags) for a in auths)


def test_ntlmv1_capture_decrypts(monkeypatch: pytest.MonkeyPatch) -> None:
    recs, got = run_with_taps(load_secrets(["RpcLab-Passw0rd"], []), monkeypatch)
    assert not [r for r in recs if isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed"]
    (summary,) = [r for r in recs if isinstance(r, SummaryRecord)]
    assert summary.counters.get("auth_contexts_decrypted") == 2
    ops = ["SamrConnect", "SamrEnumerateDomainsInSamServer", "SamrCloseHandle"]
    assert [r.operation for r, _q, _s in got] == ops * 2
    for conn in (got[:3], got[3:]):  # with ESS, then without (one RC4 handle, CRC32 signatures)
        assert all(r.decrypted and r.sealed and not r.stub_encrypted for r, _q, _s in conn)
        assert all(len(q) == r.req_stub_len and len(s) == r.resp_stub_len for r, q, s in conn)
        (connect, enum, close) = conn
        assert connect[1][-4:] == b"\0\0\0\x02"  # DesiredAccess MAXIMUM_ALLOWED
        handle = connect[2][:20]
        assert connect[2][20:] == b"\0\0\0\0" and enum[1][:20] == handle and close[1][:20] == handle
        for domain in ("RPCLAB", "BUILTIN"):
            assert domain.encode("utf-16-le") in enum[2]
        assert all(s[-4:] == b"\0\0\0\0" for _r, _q, s in conn)  # NTSTATUS success
        assert close[2] == bytes(24)  # the closed handle comes back zeroed


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_ntlmv1_capture_agrees_with_tshark(monkeypatch: pytest.MonkeyPatch) -> None:
    """tshark 4.0 decrypts NTLMv1 with ESS (the first connection); it derives no key for NTLMv1
    without ESS, so the second connection is checked by its peers' own CRC32 signatures above."""
    _recs, got = run_with_taps(load_secrets(["RpcLab-Passw0rd"], []), monkeypatch)
    ref = tshark_decrypted(CAPTURE)
    compared = 0
    for rec, req, resp in got:
        for frame, ours in ((rec.req_frame, req), (rec.resp_frame, resp)):
            if frame in ref:
                theirs = ref[frame]
                assert theirs[: len(ours)] == ours and len(theirs) - len(ours) < 16, frame
                compared += 1
    assert compared == 6  # both legs of the three calls over the ESS context
    assert not any(f >= got[3][0].req_frame for f in ref)  # tshark leaves the non-ESS context sealed


def test_ntlmv1_capture_wrong_password(monkeypatch: pytest.MonkeyPatch) -> None:
    recs, got = run_with_taps(load_secrets(["RpcLab-Passw0rd!"], []), monkeypatch)
    fails = [r.detail for r in recs if isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed"]
    why = "wrong password or NT hash for RPCLAB\\Administrator (the NTLMv1 response does not verify)"
    assert fails == [why, why]  # one per security context
    assert len(got) == 6 and not any(r.decrypted for r, _q, _s in got)
    assert all(r.stub_encrypted for r, _q, _s in got)


# -- NTLMv2: every sealed lab capture (and Scapy's) against tshark -----------------------------------
LAB_PASSWORD = "RpcLab-Passw0rd"  # captures/lab/lab.env: LAB_ADMIN_PASS
SCAPY_NTLM = CORPUS / "secdev+scapy" / "test" / "pcaps" / "dcerpc_privacy_ntlm.pcapng.gz"
# scapy/test/scapy/layers/dcerpc.uts: NTLMSSP(IDENTITIES={"Administrator": MD4le("Password123!")})
SCAPY_PASSWORD = "Password123!"
# NTLMv2-sealed DCE/RPC over NTLMSSP (auth type 10): capture -> sealed calls in it
NTLMV2_SEALED = {
    "authn-privacy-tcp-rpcclient": 24,
    "authn-privacy-tcp-impacket": 4,  # the sealed epm ept_lookup too, and LsarOpenPolicy2 (fault)
    "demo": 1,  # LsarOpenPolicy (fault)
    "drsuapi-secretsdump-tcp-impacket": 5,  # (+ 4 samr calls in the SMB3-encrypted session: not RPC-sealed)
    "lsarpc-np-smb2-rpcclient-seal": 6,  # DCE/RPC privacy inside SMB2 (\pipe\lsarpc)
    "lsarpc-tcp-denied-rpcclient": 2,  # both fault
    "netlogon-tcp-rpcclient": 3,
    "wkssvc-tcp-rpcclient": 2,  # NetrWkstaUserEnum faults
}
# NTLMv2 inside SPNEGO (auth type 9; Samba's own Python/samba-tool clients)
SPNEGO_NTLMV2_SEALED = {"drsuapi-showrepl-tcp-samba-tool": 3, "drsuapi-dcsync-tcp-samba-python": 2}
# Sealed but not NTLMv2: ntlmv1-privacy-tcp-impacket (NTLMv1, tested above) and epm-rpcmap-tcp-impacket
# (anonymous NTLM: no user secret applies; tshark decrypts none of it either).
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
_FIRST_FRAG, _LAST_FRAG = 1, 2


def rpc_sealed(r: Record) -> bool:
    """A call sealed by its DCE/RPC security context (not only by SMB3 encryption around it)."""
    return isinstance(r, CallRecord) and r.sealed and r.auth_level == "privacy"


def decrypt_all(
    path: Path, secrets: list[Secret], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Record], dict[int, tuple[CallRecord, bytes, bytes]]]:
    """Records, and (call, request stub, response stub) of every DCE/RPC-sealed call, by request frame."""
    if not path.is_file():
        pytest.skip(f"{path} not present")
    uuids = {r.if_uuid for r in analyze([path], secrets=secrets) if rpc_sealed(r) and r.if_uuid}  # type: ignore[union-attr]
    got: dict[int, tuple[CallRecord, bytes, bytes]] = {}
    real_init, real_add = Run.__init__, Run.add_stub_tap

    def add(self: Run, uuid: str, opnums: frozenset[int] | None, tap) -> None:  # type: ignore[no-untyped-def]
        """One tap per interface in Run; the endpoint-mapper learner has its own on epm: keep both."""
        prev = self.stub_taps.get(uuid)
        if prev is None:
            return real_add(self, uuid, opnums, tap)
        ops0, tap0 = prev

        def both(r: CallRecord, q: bytes, s: bytes) -> None:
            for ops, t in ((ops0, tap0), (opnums, tap)):
                if ops is None or r.opnum in ops:
                    t(r, q, s)

        return real_add(self, uuid, None if ops0 is None or opnums is None else ops0 | opnums, both)

    def init(self: Run, *a, **k) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *a, **k)
        for u in uuids:
            self.add_stub_tap(u, None, keep)

    def keep(r: CallRecord, q: bytes, s: bytes) -> None:
        if rpc_sealed(r):
            got[r.req_frame] = (r, q, s)

    monkeypatch.setattr(Run, "add_stub_tap", add)
    monkeypatch.setattr(Run, "__init__", init)
    return list(analyze([path], secrets=secrets)), got


def tshark_sealed_pdus(path: Path, password: str) -> dict[int, tuple[int, bytes | None]]:
    """tshark's view of every sealed request (0) and response (2): ``{frame of its last fragment:
    (pkt_type, decrypted stub)}``, the stub joined over fragments with each fragment's auth padding
    dropped (None if tshark decrypted any fragment of it not at all)."""
    per_frame = tshark_decrypted(path, password)
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path),
         "-Y", "dcerpc.auth_level == 6 && (dcerpc.pkt_type == 0 || dcerpc.pkt_type == 2)",
         "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "dcerpc.cn_call_id",
         "-e", "dcerpc.pkt_type", "-e", "dcerpc.cn_flags", "-e", "dcerpc.auth_pad_len"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    pending: dict[tuple[str, str, int], bytes | None] = {}
    pdus: dict[int, tuple[int, bytes | None]] = {}
    for line in out.splitlines():
        frame_s, stream, call, ptype_s, flags_s, pad_s = line.split("\t")
        assert "," not in call, f"{path.name} frame {frame_s}: two PDUs in one frame"
        frame, ptype, flags, pad = int(frame_s), int(ptype_s), int(flags_s, 16), int(pad_s or 0)
        frag = per_frame.get(frame)
        frag = None if frag is None else frag[: len(frag) - pad]
        key = (stream, call, ptype)
        before = b"" if flags & _FIRST_FRAG else pending.get(key)
        pending[key] = None if before is None or frag is None else before + frag
        if flags & _LAST_FRAG:
            pdus[frame] = (ptype, pending.pop(key))
    return pdus


def _ntlm_versions(recs: list[Record]) -> set[str | None]:
    """NTLM versions of the AUTHENTICATE messages seen (a bind leg before it has none)."""
    got = {r.auth.ntlm.version for r in recs if isinstance(r, BindRecord) and r.auth and r.auth.ntlm}
    return got - {None}


def _fails(recs: list[Record]) -> list[str]:
    return [r.detail for r in recs if isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed"]


def _legs(rec: CallRecord, req: bytes, resp: bytes) -> list[tuple[int, int, bytes]]:
    """(frame, pkt_type, our stub) of a call's sealed PDUs: a fault answer is not sealed."""
    assert rec.resp_frame is not None and rec.status in ("ok", "fault"), rec
    assert len(req) == rec.req_stub_len and len(resp) == (rec.resp_stub_len or 0), rec
    return [(rec.req_frame, 0, req)] + ([(rec.resp_frame, 2, resp)] if rec.status == "ok" else [])


@needs_tshark
@pytest.mark.parametrize(
    ("path", "password", "calls"),
    [pytest.param(CAPTURES / f"{n}.pcap", LAB_PASSWORD, c, id=n) for n, c in NTLMV2_SEALED.items()]
    + [pytest.param(SCAPY_NTLM, SCAPY_PASSWORD, 4, id="scapy-dcerpc_privacy_ntlm")],
)
def test_ntlmv2_sealed_stubs_match_tshark(
    path: Path, password: str, calls: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sealed request and response stub rpcinspect decrypts equals tshark's, byte for byte and
    at the same frame (fragments joined, auth padding dropped), and tshark decrypted no sealed PDU
    that rpcinspect did not. The lab's secret is given as a password, Scapy's as its NT hash."""
    secrets = (
        load_secrets([f"Administrator%{password}"], [])
        if path != SCAPY_NTLM
        else load_secrets([], [md4(password.encode("utf-16-le")).hex()])
    )
    recs, got = decrypt_all(path, secrets, monkeypatch)
    sealed = [r for r in recs if rpc_sealed(r)]
    assert len(sealed) == calls and len(got) == calls
    assert _ntlm_versions(recs) == {"v2"} and not _fails(recs)
    ref = tshark_sealed_pdus(path, password)
    compared: set[int] = set()
    for rec, req, resp in got.values():
        assert rec.decrypted and not rec.stub_encrypted and rec.auth_type == "ntlm", rec
        for frame, ptype, ours in _legs(rec, req, resp):
            assert frame in ref, (path.name, frame, rec.operation)
            assert ref[frame] == (ptype, ours), (path.name, frame, rec.operation)
            compared.add(frame)
    assert compared == set(ref)


def scapy_sealed_loads(path: Path, port: int, password: str) -> dict[tuple[int, int], bytes]:
    """Scapy's passive DCE/RPC decryption (SPNEGOSSP[NTLMSSP], as in its dcerpc.uts): the stub of every
    sealed request (0) and response (2) by (call_id, pkt_type); fragments reassembled, and a decrypted
    verification trailer appended again (Scapy moves it out of the stub)."""
    from scapy.config import conf
    from scapy.layers.dcerpc import DceRpc5
    from scapy.layers.inet import TCP
    from scapy.layers.ntlm import NTLMSSP, MD4le
    from scapy.layers.spnego import SPNEGOSSP
    from scapy.packet import bind_bottom_up, split_bottom_up
    from scapy.sendrecv import sniff
    from scapy.sessions import TCPSession

    saved = conf.dcerpc_session_enable, conf.winssps_passive
    bind_bottom_up(TCP, DceRpc5, dport=port)
    bind_bottom_up(TCP, DceRpc5, sport=port)
    conf.dcerpc_session_enable = True
    conf.winssps_passive = [SPNEGOSSP([NTLMSSP(IDENTITIES={"Administrator": MD4le(password)})])]
    try:
        pkts = sniff(offline=str(path), session=TCPSession)
    finally:
        conf.dcerpc_session_enable, conf.winssps_passive = saved
        split_bottom_up(TCP, DceRpc5, dport=port)
        split_bottom_up(TCP, DceRpc5, sport=port)
    loads: dict[tuple[int, int], bytes] = {}
    for p in pkts:
        d = p.getlayer(DceRpc5)
        if d is None or d.ptype not in (0, 2) or d.auth_verifier is None or d.auth_verifier.auth_level != 6:
            continue
        if not d.pfc_flags.PFC_LAST_FRAG:
            continue  # Scapy hands the reassembled stub over with the last fragment
        key = (d.call_id, d.ptype)
        assert key not in loads, key
        stub = bytes(d.payload.payload)
        if d.vt_trailer is not None:
            stub += b"\0" * (-len(stub) % 4) + bytes(d.vt_trailer)
        loads[key] = stub
    return loads


@needs_tshark
@pytest.mark.parametrize(("name", "calls"), list(SPNEGO_NTLMV2_SEALED.items()))
def test_spnego_ntlmv2_sealed_stubs_match_tshark_and_scapy(
    name: str, calls: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTLMv2 inside SPNEGO. tshark 4.0 decrypts only the first sealed PDU of each direction: it does
    not run the RC4 handle over the checksum of a SPNEGO-wrapped NTLMSSP verifier (it shows no
    "Decrypted NTLMSSP Verifier" for auth type 9), so from the second PDU on its "decrypted" stub is
    garbage (e.g. in showrepl its DsReplicaGetInfo requests do not start with the bind handle its own
    DsBind response decrypted to, ours do). So: the first request and response byte for byte against
    tshark, every stub byte for byte against Scapy's passive decryption, an independent implementation."""
    path = CAPTURES / f"{name}.pcap"
    recs, got = decrypt_all(path, load_secrets([LAB_PASSWORD], []), monkeypatch)
    sealed = [r for r in recs if rpc_sealed(r)]
    assert len(sealed) == calls and len(got) == calls
    assert _ntlm_versions(recs) == {"v2"} and not _fails(recs)
    assert all(r.decrypted and not r.stub_encrypted and r.auth_type == "spnego" for r in sealed)
    ref = tshark_sealed_pdus(path, LAB_PASSWORD)
    first = min(got)
    ours: dict[tuple[int, int], bytes] = {}
    tshark_agrees = set()
    for rec, req, resp in got.values():
        for frame, ptype, stub in _legs(rec, req, resp):
            ours[(rec.call_id, ptype)] = stub
            assert ref[frame][0] == ptype, (name, frame)
            if ref[frame][1] == stub:
                tshark_agrees.add(frame)
            else:  # tshark 4.0 out of step: never on the first request or response
                assert rec.req_frame != first, (name, frame, rec.operation)
    assert {first, got[first][0].resp_frame} <= tshark_agrees
    (port,) = {r.dport for r in sealed}
    assert scapy_sealed_loads(path, port, LAB_PASSWORD) == ours
    # and the bind handle of the first response (which tshark decrypts alike) opens the next request
    handle = got[first][2][-24:-4]
    assert got[min(set(got) - {first})][1][:20] == handle


def test_every_ntlmv2_sealed_lab_capture_is_checked() -> None:
    """The two lists above are all the lab captures whose sealed calls are NTLMv2 (a new one must be
    added there, so that it is compared with tshark too)."""
    found = {}
    for path in sorted(CAPTURES.glob("*.pcap")):
        recs = list(analyze([path]))
        if "v2" in _ntlm_versions(recs):
            n = sum(rpc_sealed(r) for r in recs)
            if n:
                found[path.stem] = n
    assert found == {**NTLMV2_SEALED, **SPNEGO_NTLMV2_SEALED}


# -- secrets from the environment -----------------------------------------------------------------
LAB_SEALED = CAPTURES / "authn-privacy-tcp-rpcclient.pcap"  # 24 NTLMv2-sealed samr calls, 4 contexts
LAB_NT_HASH = md4(LAB_PASSWORD.encode("utf-16-le")).hex()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m rpcinspect analyze ARGS`` with exactly the RPCINSPECT_* variables in *env*."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RPCINSPECT_")}
    return subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", *args],
        capture_output=True, text=True, timeout=120, env={**base, **env},
    )  # fmt: skip


def _calls(fmt: str, text: str) -> list[dict[str, object]]:
    """The call records of one output, with ``sealed`` and ``decrypted`` as booleans."""
    if fmt == "jsonl":
        return [r for r in map(json.loads, text.splitlines()) if r["record"] == "call"]
    if fmt == "json":
        return json.loads(text)["calls"]
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{**r, "sealed": r["sealed"] == "True", "decrypted": r["decrypted"] == "True"} for r in rows]


@pytest.mark.parametrize(
    "env",
    [
        {"RPCINSPECT_PASSWORD": LAB_PASSWORD},
        {"RPCINSPECT_NT_HASH": "RPCLAB\\Administrator%" + LAB_NT_HASH.upper()},
        {"RPCINSPECT_PASSWORD": "Administrator%" + LAB_PASSWORD, "RPCINSPECT_NT_HASH": LAB_NT_HASH},
    ],
    ids=["password", "nt-hash", "both"],
)
def test_secrets_from_the_environment_decrypt_and_never_show(env: dict[str, str], tmp_path: Path) -> None:
    """RPCINSPECT_PASSWORD / RPCINSPECT_NT_HASH alone open the sealed calls (decrypted: true in every
    format), and neither the secret nor the NT hash appears anywhere: stdout, -o file, stderr."""
    assert LAB_SEALED.is_file()
    secrets = [LAB_PASSWORD.lower(), LAB_NT_HASH, *(v.lower() for v in env.values())]
    for fmt in ("jsonl", "json", "csv", "table"):
        out = tmp_path / f"out.{fmt}"
        to_stdout = _cli("-f", fmt, str(LAB_SEALED), env=env)
        runs = [to_stdout]
        if fmt != "table":  # records to a file, the summary table to stderr
            runs.append(_cli("-f", fmt, "-o", str(out), str(LAB_SEALED), env=env))
            assert "Decryption: 4 security context(s) opened" in " ".join(runs[-1].stderr.split())
        assert all(proc.returncode == 0 for proc in runs), [proc.stderr for proc in runs]
        texts = [to_stdout.stdout] + ([out.read_text()] if fmt != "table" else [])
        everything = "".join(proc.stdout + proc.stderr for proc in runs) + "".join(texts)
        assert not any(s in everything.lower() for s in secrets), fmt
        for text in texts:
            if fmt == "table":
                assert "Decryption: 4 security context(s) opened; 0 not opened" in " ".join(text.split())
                continue
            sealed = [c for c in _calls(fmt, text) if c["sealed"]]
            assert len(sealed) == 24 and all(c["decrypted"] for c in sealed), fmt
            assert {c["user"] for c in sealed} == {"RPCLAB\\Administrator"}


def test_environment_secrets_control_runs(tmp_path: Path) -> None:
    """Without the variables nothing is decrypted; a wrong one is reported (one decrypt_failed per
    context) and not shown either; both variables at once open two captures with two secrets."""
    none = _cli("-f", "jsonl", str(LAB_SEALED), env={})
    sealed = [c for c in _calls("jsonl", none.stdout) if c["sealed"]]
    assert none.returncode == 0 and len(sealed) == 24 and not any(c["decrypted"] for c in sealed)
    wrong = _cli("-f", "jsonl", str(LAB_SEALED), env={"RPCINSPECT_PASSWORD": "Wrong-Passw0rd"})
    records = [json.loads(line) for line in wrong.stdout.splitlines()]
    fails = [r for r in records if r["record"] == "anomaly" and r["kind"] == "decrypt_failed"]
    assert len(fails) == 4 and all("wrong password" in r["detail"] for r in fails)
    assert not any(c["decrypted"] for c in _calls("jsonl", wrong.stdout))
    assert "wrong-passw0rd" not in (wrong.stdout + wrong.stderr).lower()
    if not SCAPY_NTLM.is_file():
        pytest.skip(f"{SCAPY_NTLM} not present")
    scapy_hash = md4(SCAPY_PASSWORD.encode("utf-16-le")).hex()
    both = _cli(
        "-f", "jsonl", str(LAB_SEALED), str(SCAPY_NTLM),
        env={"RPCINSPECT_PASSWORD": LAB_PASSWORD, "RPCINSPECT_NT_HASH": scapy_hash},
    )  # fmt: skip
    sealed = [c for c in _calls("jsonl", both.stdout) if c["sealed"]]
    assert both.returncode == 0 and len(sealed) == 24 + 4 and all(c["decrypted"] for c in sealed)
    text = (both.stdout + both.stderr).lower()
    assert LAB_PASSWORD.lower() not in text and scapy_hash not in text and SCAPY_PASSWORD.lower() not in text


# -- signatures: a stub that does not verify is never returned ----------------------------------------
def test_ess_signature_is_checked() -> None:
    """MS-NLMP 4.2.4.4: the spec's sealed message verifies; any change to it, to its checksum or
    to its sequence number does not (and nothing is returned)."""
    ex = exchange(V2_NT_RESPONSE, b"", V2_FLAGS, V2_ENCRYPTED_KEY)

    def fresh() -> NtlmSealer:
        s = ntlm_sealer(ex, SPEC_SECRET)
        assert isinstance(s, NtlmSealer)
        return s

    assert fresh().unseal(0, V2_SEALED, V2_SIGNATURE) == PLAINTEXT
    damaged = bytes([V2_SEALED[0] ^ 1]) + V2_SEALED[1:]
    assert fresh().unseal(0, damaged, V2_SIGNATURE) is None
    for i in (4, 11, 12):  # checksum first and last byte, sequence number
        sig = bytearray(V2_SIGNATURE)
        sig[i] ^= 0x80
        assert fresh().unseal(0, V2_SEALED, bytes(sig)) is None
    assert fresh().unseal(1, V2_SEALED, V2_SIGNATURE) is None  # the other direction's keys


def test_damaged_sealed_stub_is_reported_not_decoded(tmp_path: Path) -> None:
    """One flipped byte in a sealed NTLMv2 request of the lab capture: that call stays encrypted
    (never a garbled 'decrypted' stub) and one decrypt_failed anomaly says why; the calls before
    it still decrypt."""
    cap = CAPTURES / "authn-privacy-tcp-rpcclient.pcap"
    if not cap.is_file():
        pytest.skip("lab capture missing")
    secrets = load_secrets(["RpcLab-Passw0rd"], [])
    clean = [r for r in analyze([cap], secrets=secrets) if isinstance(r, CallRecord)]
    sealed = [c for c in clean if c.sealed and c.req_stub_len]
    assert sealed and all(c.decrypted for c in sealed)
    victim = sealed[1]
    # flip a byte near the end of the victim's request frame (inside the sealed stub, before the
    # 16-byte verifier and its 8-byte sec_trailer)
    raw = bytearray(cap.read_bytes())
    off, incl = pcap_frames(bytes(raw))[victim.req_frame - 1]
    raw[off + incl - 16 - 8 - 3] ^= 0xFF
    bad = tmp_path / "damaged.pcap"
    bad.write_bytes(bytes(raw))
    recs = list(analyze([bad], secrets=secrets))
    calls = {c.req_frame: c for c in recs if isinstance(c, CallRecord)}
    hit = calls[victim.req_frame]
    assert not hit.decrypted and hit.stub_encrypted
    assert calls[sealed[0].req_frame].decrypted
    failed = [r for r in recs if isinstance(r, AnomalyRecord) and r.kind == "decrypt_failed"]
    assert len(failed) == 1 and "does not verify" in failed[0].detail
