"""SMB3 decryption of NTLM-keyed sessions (transports.smb3crypto, transports.smb3keys).

Primitives against Microsoft's published test vectors (Open Specifications blog posts "Encryption
in SMB 3.0: a protocol perspective", "SMB 3.1.1 encryption in Windows 10", "SMB 3.1.1
pre-authentication integrity in Windows 10"; the same bytes are in the test suites of SMBLibrary
and pike). The lab captures against tshark, which decrypts them with the same password: the same
requests (frame, opnum, call id, interface, pipe) and, byte for byte, the same decrypted SMB2
messages. Then wrong secrets, an altered TRANSFORM message, and hostile headers.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from builders import pcap_frames
from conftest import CAPTURES, CORPUS

from rpcinspect.auth.secrets import Secret, load_secrets
from rpcinspect.engine import analyze
from rpcinspect.records import AnomalyRecord, CallRecord, Record, SummaryRecord
from rpcinspect.transports import smb3keys
from rpcinspect.transports.smb3crypto import PREAUTH_ZERO, TransformKeys, derive_keys, preauth_update
from rpcinspect.transports.smb3keys import Smb3Keys

PASSWORD = "RpcLab-Passw0rd"
RPCCLIENT = CAPTURES / "np-smb3-encrypted-rpcclient.pcap"  # SMB 3.1.1, AES-128-GCM
SAMRDUMP = CAPTURES / "samr-np-smb3enc-samrdump-impacket.pcap"  # SMB 3.1.1, AES-128-CCM
PETITPOTAM = CORPUS / "corelight+PetitPotam" / "testing" / "Traces"
SRVSVC = "4b324fc8-1670-01d3-1278-5a47bf6ee188"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
h = bytes.fromhex


def secrets(pw: str = PASSWORD) -> list[Secret]:
    return load_secrets([pw], [])


def run(path: Path, sec: list[Secret] | None) -> list[Record]:
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return list(analyze([path], secrets=sec))


def calls(recs: list[Record]) -> list[CallRecord]:
    return [r for r in recs if isinstance(r, CallRecord)]


def anomalies(recs: list[Record], kind: str) -> list[str]:
    return [r.detail for r in recs if isinstance(r, AnomalyRecord) and r.kind == kind]


def counters(recs: list[Record]) -> Counter[str]:
    (s,) = [r for r in recs if isinstance(r, SummaryRecord)]
    return Counter(s.counters)


# -- Microsoft's test vectors ----------------------------------------------------------------------
SMB30_SESSION_KEY = h("B4546771B515F766A86735532DD6C4F0")
SMB30_TRANSFORM = h(
    "FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014"
    "00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079"
    "E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787"
    "1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1"
    "77309E5B"
)
SMB30_PLAIN = h(
    "FE534D4240000100000000000900210009000000000000000400000000000000"
    "FFFE0000010000001100001400E4080000000000000000000000000000000000"
    "11000000170000000000000000000000"
)
SMB311_SESSION_KEY = h("419FDDF34C1E001909D362AE7FB6AF79")
SMB311_PREAUTH = h(
    "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9"
    "77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770"
)
SMB311_TRANSFORM = h(
    "FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000"
    "00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8"
    "F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B"
    "82E03C9E18A050FF0EA1C967"
)
SMB311_PLAIN = h(
    "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000"
    "25000000001000000000000000000000000000000000000011000000170000000000000000000000"
)
# "SMB 3.1.1 pre-authentication integrity in Windows 10": NEGOTIATE request and response, then
# SESSION_SETUP request (NTLM NEGOTIATE), response (CHALLENGE, more processing), request (AUTH)
PREAUTH_MESSAGES = [
    h(
        "FE534D4240000100000000000000800000000000000000000100000000000000FFFE000000000000"
        "00000000000000000000000000000000000000000000000024000500000000003F000000ECD86F32"
        "6276024F9F7752B89BB33F3A70000000020000000202100200030203110300000100260000000000"
        "010020000100FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF0000"
        "0200060000000000020002000100"
    ),
    h(
        "FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000"
        "000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942"
        "BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001"
        "80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182"
        "3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000"
        "60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51"
        "FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000"
        "5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000"
        "7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000"
        "3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562"
        "6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075"
        "626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4"
        "83CA5B65385A251117BEB30712E50000020004000000000001000200"
    ),
    h(
        "FE534D4240000100000000000100800000000000000000000200000000000000FFFE000000000000"
        "00000000000000000000000000000000000000000000000019000001010000000000000058004A00"
        "0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A"
        "04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000"
        "000F"
    ),
    h(
        "FE534D4240000100160000C00100010001000000000000000200000000000000FFFE000000000000"
        "190000000010000000000000000000000000000000000000090000004800B300A181B03081ADA003"
        "0A0101A10C060A2B06010401823702020AA281970481944E544C4D53535000020000000C000C0038"
        "00000015828AE20D1D8BA31179D008000000000000000050005000440000000A0092270000000F53"
        "005500540033003100310002000C0053005500540033003100310001000C00530055005400330031"
        "00310004000C0053005500540033003100310003000C0053005500540033003100310007000800A1"
        "A1F5ADCBAED00100000000"
    ),
    h(
        "FE534D4240000100000000000100800000000000000000000300000000000000FFFE000000000000"
        "1900000000100000000000000000000000000000000000001900000101000000000000005800CF01"
        "0000000000000000A18201CB308201C7A0030A0101A28201AA048201A64E544C4D53535000030000"
        "001800180090000000EE00EE00A80000000C000C00580000001A001A0064000000120012007E0000"
        "001000100096010000158288E2060380250000000FECAC77A5F385A8BF9C38C706EEEDDCD3530055"
        "005400330031003100610064006D0069006E006900730074007200610074006F0072004400520049"
        "0056004500520033003100310000000000000000000000000000000000000000000000000063078E"
        "B639FE03E20A231C3AE3BF23080101000000000000A1A1F5ADCBAED001BC4AD05F223CC90F000000"
        "0002000C0053005500540033003100310001000C0053005500540033003100310004000C00530055"
        "00540033003100310003000C0053005500540033003100310007000800A1A1F5ADCBAED001060004"
        "00020000000800300030000000000000000000000000300000B61FEFCAA857EA57BF1EDCEBF8974B"
        "8E0EBA5A6DFD9D07A31D11B548F8C9D0CC0A00100000000000000000000000000000000000090016"
        "0063006900660073002F005300550054003300310031000000000000000000000000003B9BDFF38F"
        "5EE8F9663F11A0F4C03A78A31204100100000063775A9A5FD97F0600000000"
    ),
]
PREAUTH_AFTER = [
    h(
        "DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0"
        "CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426"
    ),
    h(
        "324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E99"
        "7E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513"
    ),
    h(
        "AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33"
        "197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9"
    ),
    h(
        "2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B8835740A7376008563336"
        "4C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387"
    ),
    h(
        "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D97"
        "51640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01"
    ),
]


def test_smb30_key_derivation_and_ccm_vector() -> None:
    c2s, s2c = derive_keys(SMB30_SESSION_KEY, 0x0300, 0x0001, None)
    assert c2s == h("261B72350558F2E9DCF613070383EDBF")
    assert s2c == h("8FE2B57EC34D2DB5B1A9727F526BBDB5")
    keys = TransformKeys(0x0001, c2s, s2c)
    assert keys.decrypt(1, SMB30_TRANSFORM) == SMB30_PLAIN
    assert keys.decrypt(0, SMB30_TRANSFORM) is None  # the other direction's key: tag fails
    for at in (4, 24, 40, 60, len(SMB30_TRANSFORM) - 1):  # signature, nonce, AAD, ciphertext
        bad = bytearray(SMB30_TRANSFORM)
        bad[at] ^= 0x01
        assert keys.decrypt(1, bytes(bad)) is None, at


def test_smb311_key_derivation_and_gcm_vector() -> None:
    c2s, s2c = derive_keys(SMB311_SESSION_KEY, 0x0311, 0x0002, SMB311_PREAUTH)
    assert c2s == h("A2F5E80E5D59103034F32E52F698E5EC")
    assert s2c == h("748C50868C90F302962A5C35F5F9A8BF")
    keys = TransformKeys(0x0002, c2s, s2c)
    assert keys.decrypt(1, SMB311_TRANSFORM) == SMB311_PLAIN
    bad = bytearray(SMB311_TRANSFORM)
    bad[-1] ^= 0x80
    assert keys.decrypt(1, bytes(bad)) is None


def test_preauth_integrity_vector_step_by_step_and_through_the_session_tracker() -> None:
    value = PREAUTH_ZERO
    for msg, want in zip(PREAUTH_MESSAGES, PREAUTH_AFTER, strict=True):
        value = preauth_update(value, msg)
        assert value == want
    # the same exchange fed as the transport does: the hash the keys use is the last one
    k = Smb3Keys([Secret(b"\0" * 16)], 16)
    neg_req, neg_resp, setup1, resp1, setup2 = PREAUTH_MESSAGES
    k.negotiate_request(0, neg_req)
    k.negotiate_response(neg_resp)
    assert (k.dialect, k.cipher, k.conn_preauth) == (0x0311, 0x0002, PREAUTH_AFTER[1])
    sid = struct.unpack_from("<Q", resp1, 40)[0]
    k.setup_request(0, 0, 2, setup1, setup1[0x58 : 0x58 + 0x4A])
    k.setup_response(sid, 2, 0xC0000016, resp1, resp1[0x48 : 0x48 + 0xB3])
    k.setup_request(0, sid, 3, setup2, setup2[0x58 : 0x58 + 0x1CF])
    assert k.sessions[sid].preauth == PREAUTH_AFTER[4]
    assert k.sessions[sid].ntlm["user"] == "administrator"
    k.setup_response(sid, 3, 0, b"\xfeSMB" + bytes(68), b"")  # final: not hashed
    assert k.sessions[sid].preauth == PREAUTH_AFTER[4]
    # the vector's password is not published: the all-zero hash fails the NTLMv2 proof
    why = k.decrypt(sid, 0, SMB311_TRANSFORM, False)
    assert isinstance(why, str) and "wrong password or NT hash for SUT311\\administrator" in why


# -- the lab captures against tshark --------------------------------------------------------------
def _tshark_json(path: Path, *, password: bool) -> list[dict]:  # type: ignore[type-arg]
    opts = ["-o", f"ntlmssp.nt_password:{PASSWORD}"] if password else []
    out = subprocess.run(
        [str(TSHARK), "-n", "-r", str(path), *opts, "-Y", "dcerpc", "-T", "json", "--no-duplicate-keys"],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return json.loads(out) if out.strip() else []


def _list(v: object) -> list[dict]:  # type: ignore[type-arg]
    return [] if v is None else v if isinstance(v, list) else [v]  # type: ignore[list-item,return-value]


def _file_name(node: object) -> str | None:
    """The pipe tshark names on an SMB2 file id: the key "GUID handle File: NAME"."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("GUID handle File: "):
                return k[len("GUID handle File: ") :].lower()
            found = _file_name(v)
            if found:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _file_name(v)
            if found:
                return found
    return None


def _dcerpc_layers(node: object) -> list[dict]:  # type: ignore[type-arg]
    """Every "dcerpc" layer, at any depth (decrypted ones sit inside "Encrypted SMB3 data")."""
    out: list[dict] = []  # type: ignore[type-arg]
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "dcerpc":
                out += [x for x in _list(v) if isinstance(x, dict) and "dcerpc.pkt_type" in x]
            else:
                out += _dcerpc_layers(v)
    elif isinstance(node, list):
        for v in node:
            out += _dcerpc_layers(v)
    return out


def tshark_calls(path: Path) -> set[tuple[int, int, int, str | None, str | None]]:
    """(frame, opnum, call_id, interface uuid, pipe) of every request tshark decrypts and decodes."""
    binds: dict[tuple[str | None, int], str] = {}
    out = set()
    for pkt in _tshark_json(path, password=True):
        layers = pkt["_source"]["layers"]
        frame = int(_list(layers.get("frame"))[0]["frame.number"])
        pipe = _file_name(layers.get("smb2"))
        for pdu in _dcerpc_layers(layers):
            if pdu.get("dcerpc.pkt_type") == "11":
                for item in _list(pdu.get("dcerpc.cn_ctx_item")):
                    syn = item.get("dcerpc.cn_bind_abstract_syntax") or {}
                    binds[(pipe, int(item["dcerpc.cn_ctx_id"]))] = syn["dcerpc.cn_bind_to_uuid"].lower()
            elif pdu.get("dcerpc.pkt_type") == "0":
                uuid = binds.get((pipe, int(pdu["dcerpc.cn_ctx_id"])))
                out.add((frame, int(pdu["dcerpc.opnum"]), int(pdu["dcerpc.cn_call_id"]), uuid, pipe))
    return out


def tshark_decrypted(path: Path) -> list[tuple[int, bytes]]:
    """(frame, bytes) of every "Decrypted SMB3" data source ``tshark -x`` prints."""
    text = subprocess.run(
        [str(TSHARK), "-n", "-r", str(path), "-o", f"ntlmssp.nt_password:{PASSWORD}", "-x"],
        capture_output=True, check=True, timeout=120, text=True,
    ).stdout  # fmt: skip
    out: list[tuple[int, bytes]] = []
    frame, cur = 0, None
    for line in text.splitlines():
        if line.startswith("Frame ("):
            frame += 1
            cur = None
        elif line.startswith("Decrypted SMB3 ("):
            cur = bytearray()
            out.append((frame, cur))  # type: ignore[arg-type]
        elif not line.strip():
            cur = None
        elif cur is not None:
            cur += bytes.fromhex(line[6:54])
    return [(f, bytes(b)) for f, b in out]


def ours_decrypted(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    got: list[bytes] = []
    real = Smb3Keys.decrypt

    def spy(self: Smb3Keys, sid: int, dirn: int, msg: bytes, proven: bool) -> bytes | str:
        plain = real(self, sid, dirn, msg, proven)
        if isinstance(plain, bytes):
            got.append(plain)
        return plain

    monkeypatch.setattr(smb3keys.Smb3Keys, "decrypt", spy)
    run(path, secrets())
    return got


@needs_tshark
@pytest.mark.parametrize("path", [RPCCLIENT, SAMRDUMP], ids=lambda p: p.stem)
def test_calls_match_tshark_with_the_password(path: Path) -> None:
    assert not _tshark_json(path, password=False)  # no DCE/RPC visible without the password
    ref = tshark_calls(path)
    assert len(ref) >= 2
    recs = run(path, secrets())
    ours = {(c.req_frame, c.opnum, c.call_id, c.if_uuid, c.named_pipe) for c in calls(recs)}
    assert ours == ref
    for c in calls(recs):
        assert c.transport == "ncacn_np" and c.decrypted and c.sealed and c.status == "ok"
        assert (c.user, c.auth_source) == ("RPCLAB\\Administrator", "smb")
    assert counters(recs)["smb_sessions_decrypted"] == 1


@needs_tshark
@pytest.mark.parametrize("path", [RPCCLIENT, SAMRDUMP], ids=lambda p: p.stem)
def test_decrypted_messages_are_tsharks_byte_for_byte(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = tshark_decrypted(path)
    assert len(ref) >= 20
    assert ours_decrypted(path, monkeypatch) == [b for _f, b in ref]


def test_the_expected_operations_are_there() -> None:
    ops = [c.operation for c in calls(run(RPCCLIENT, secrets()))]
    assert ops == ["NetrServerGetInfo", "NetrShareEnum"]  # srvinfo; netshareenumall
    recs = run(SAMRDUMP, secrets())
    ops = [c.operation for c in calls(recs)]
    assert ops[:5] == [
        "SamrConnect", "SamrEnumerateDomainsInSamServer", "SamrLookupDomainInSamServer", "SamrOpenDomain",
        "SamrEnumerateUsersInDomain",
    ]  # fmt: skip
    assert Counter(ops[5:]) == {"SamrOpenUser": 5, "SamrQueryInformationUser2": 5, "SamrCloseHandle": 5}
    assert {(c.interface, c.named_pipe, c.if_uuid) for c in calls(recs)} == {("samr", "samr", SAMR)}
    # Impacket encrypts one last message (after LOGOFF) under SessionId 0: tshark cannot read it either
    (why,) = anomalies(recs, "decrypt_failed")
    assert "session 0x0 " in why and "SessionId is 0" in why


def test_without_secrets_nothing_changes() -> None:
    for path in (RPCCLIENT, SAMRDUMP):
        recs = run(path, None)
        c = counters(recs)
        assert not calls(recs) and not anomalies(recs, "decrypt_failed")
        assert c["smb_encrypted"] >= 1 and c["smb_encrypted_messages"] > 20
        assert c["smb_decrypted_messages"] == 0
        assert any("cannot be decoded without keys" in d for d in anomalies(recs, "smb_encrypted"))


@pytest.mark.parametrize(
    ("pw", "why"),
    [("wrong-password", "wrong password or NT hash for RPCLAB\\Administrator"),
     (f"alice%{PASSWORD}", "no secret given for RPCLAB\\Administrator")],
)  # fmt: skip
def test_wrong_secret_is_one_anomaly_and_no_call(pw: str, why: str) -> None:
    recs = run(RPCCLIENT, secrets(pw))
    (fail,) = anomalies(recs, "decrypt_failed")
    assert why in fail and "session 0x" in fail and PASSWORD not in fail
    assert not calls(recs)
    c = counters(recs)
    assert c["smb_decrypted_messages"] == 0 and c["smb_encrypted_messages"] == 22
    assert anomalies(recs, "smb_encrypted")  # still reported as unread


def test_wrong_password_on_the_command_line(tmp_path: Path) -> None:
    if not RPCCLIENT.is_file():
        pytest.skip("lab capture not present")
    proc = subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", "-f", "jsonl", "--password", "nope", str(RPCCLIENT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    kinds = [json.loads(x).get("kind") for x in proc.stdout.splitlines()]
    assert kinds.count("decrypt_failed") == 1 and "nope" not in proc.stdout


# -- altered and hostile messages -----------------------------------------------------------------


def altered(path: Path, tmp_path: Path, frame: int, delta: int) -> Path:
    """A copy of *path* with one byte of the TRANSFORM message in *frame* flipped (*delta* bytes
    after the 52-byte TRANSFORM header: into the ciphertext)."""
    if not path.is_file():
        pytest.skip(f"{path} not present")
    data = bytearray(path.read_bytes())
    off, n = pcap_frames(bytes(data))[frame - 1]
    at = data.find(b"\xfdSMB", off, off + n)
    assert at > 0
    data[at + 52 + delta] ^= 0x55
    out = tmp_path / path.name
    out.write_bytes(bytes(data))
    return out


def test_an_altered_transform_is_skipped_and_the_rest_decrypts(tmp_path: Path) -> None:
    # frame 20 carries the NetrServerGetInfo request (tshark: opnum 21, call 2)
    recs = run(altered(RPCCLIENT, tmp_path, 20, 70), secrets())
    (fail,) = anomalies(recs, "decrypt_failed")
    assert "AES-128-GCM signature does not verify" in fail and "altered" in fail
    c = counters(recs)
    assert (c["smb_decrypt_failed_messages"], c["smb_decrypted_messages"]) == (1, 21)
    (share_enum,) = calls(recs)
    assert share_enum.operation == "NetrShareEnum" and share_enum.decrypted
    assert (share_enum.req_frame, share_enum.resp_frame) == (28, 29)
    assert c["smb2_response_without_request"] == 1  # the IOCTL answer to the lost request
    assert not anomalies(recs, "smb_encrypted")  # the session was read, not left encrypted


def test_an_altered_first_message_in_a_ccm_session(tmp_path: Path) -> None:
    recs = run(altered(SAMRDUMP, tmp_path, 14, 3), secrets())  # the first TRANSFORM message
    fails = anomalies(recs, "decrypt_failed")
    assert any("AES-128-CCM signature does not verify" in f for f in fails)
    assert len(calls(recs)) == 20 and all(x.decrypted for x in calls(recs))


def test_transform_size_beyond_the_message_is_malformed(tmp_path: Path) -> None:
    if not RPCCLIENT.is_file():
        pytest.skip("lab capture not present")
    data = bytearray(RPCCLIENT.read_bytes())
    off, n = pcap_frames(bytes(data))[20 - 1]
    at = data.find(b"\xfdSMB", off, off + n)
    struct.pack_into("<I", data, at + 36, 0xFFFF)  # OriginalMessageSize
    p = tmp_path / "big.pcap"
    p.write_bytes(bytes(data))
    recs = run(p, secrets())
    assert any("OriginalMessageSize" in d for d in anomalies(recs, "malformed_smb"))
    assert [x.operation for x in calls(recs) if x.req_frame] == ["NetrShareEnum"]


def test_random_damage_never_raises(tmp_path: Path) -> None:
    if not SAMRDUMP.is_file():
        pytest.skip("lab capture not present")
    rnd = random.Random(3)
    base = SAMRDUMP.read_bytes()
    frames = pcap_frames(base)
    for i in range(40):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 6)):
            off, n = frames[rnd.randrange(len(frames))]
            data[off + 54 + rnd.randrange(max(1, n - 54))] ^= 1 << rnd.randrange(8)  # past the headers
        p = tmp_path / f"m{i}.pcap"
        p.write_bytes(bytes(data))
        recs = list(analyze([p], secrets=secrets()))
        assert isinstance(recs[-1], SummaryRecord)
        for x in calls(recs):  # whatever decrypts is real: every call names the samr interface
            assert x.interface in ("samr", None)


def test_reasons_without_keys() -> None:
    k = Smb3Keys(secrets(), 4)
    assert "SessionId is 0" in str(k.decrypt(0, 0, SMB311_TRANSFORM, False))
    assert "multichannel is not supported" in str(k.decrypt(0x1234, 0, SMB311_TRANSFORM, False))
    k.setup_request(0, 0, 1, b"\xfeSMB" + bytes(60), b"")
    krb_chosen = h("a10f300da10b06092a864886f712010202")  # NegTokenResp, supportedMech kerberos
    k.setup_response(0x77, 1, 0, b"\xfeSMB" + bytes(60), krb_chosen)
    assert "Kerberos" in str(k.decrypt(0x77, 0, SMB311_TRANSFORM, False))
    for i in range(10):  # sessions are bounded per connection
        k.setup_request(0, 0, 100 + i, b"", b"")
        k.setup_response(0x100 + i, 100 + i, 0, b"", b"")
    assert len(k.sessions) == 4


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    ["PatchedDCAuthenticatedTryWithAllVulnerableRPCFunctions.pcapng",
     "PatchedDCAuthenticatedTryWithRpcEncryptFileSrv.pcapng"],
)  # fmt: skip
def test_corpus_smb3_sessions_with_an_unknown_password(name: str) -> None:
    """Corelight's PetitPotam traces encrypt an NTLM-keyed SMB3 session whose password is not
    published: a guess is reported once per session, and the plain calls stay as they were."""
    path = PETITPOTAM / name
    plain = run(path, None)
    guessed = run(path, secrets("Password1"))
    fails = anomalies(guessed, "decrypt_failed")
    assert any("wrong password or NT hash for RUSSIE\\putin" in f for f in fails)
    # the rest: Impacket's last message after LOGOFF, under SessionId 0 (as in the lab capture)
    assert all("wrong password" in f or "SessionId is 0" in f for f in fails)
    key = [(c.req_frame, c.opnum, c.call_id) for c in calls(plain)]
    assert [(c.req_frame, c.opnum, c.call_id) for c in calls(guessed)] == key
    assert counters(guessed)["smb_decrypted_messages"] == 0
