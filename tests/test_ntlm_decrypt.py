"""NTLM key derivation and sealing: the published examples of MS-NLMP section 4.2 (NTLMv1, NTLMv1
with client challenge = extended session security, NTLMv2), and the lab's NTLMv1 capture
against tshark.

The spec values below are MS-NLMP 4.2.1 (common values), 4.2.2 (NTLMv1), 4.2.3 (NTLMv1 with
client challenge) and 4.2.4 (NTLMv2), copied from the specification's hex dumps.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import CAPTURES

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


def tshark_decrypted(path: Path) -> dict[int, bytes]:
    """Frame number -> the stub tshark decrypted (its "Decrypted stub data" source, else
    "Decrypted data"; both include the auth padding)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), *TSHARK_NTLM, "-x"], capture_output=True, text=True, timeout=120
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
