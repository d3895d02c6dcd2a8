"""Catalog data and loader: validity, well-known facts, documented fallbacks, corpus coverage.

The Wireshark test compares our opnum tables with tshark's own (``tshark -G values``): every
opnum Wireshark names must exist here, and for interfaces whose Wireshark names follow the spec
the names must agree unless ``dissectors/wireshark.toml`` documents why not.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("dissectors") is None:  # not installed: use the checkout's copy
    sys.path.insert(0, str(REPO))

from dissectors.check_catalog import check  # noqa: E402
from rpcinspect.catalog import CatalogError, Interface, load_catalog  # noqa: E402

DISSECTORS = REPO / "dissectors"
MANIFEST = REPO.parent / "shared" / "corpus" / "MANIFEST.tsv"
XREF = tomllib.loads((DISSECTORS / "wireshark.toml").read_text(encoding="utf-8"))

SAMR = "12345778-1234-abcd-ef00-0123456789ac"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def op(cat, name: str, opnum: int) -> str | None:
    iface = cat.interface_by_name(name)
    assert iface is not None, name
    return cat.operation(iface.uuid, iface.versions[0], opnum)


def test_validator_passes():
    counts = check()
    assert counts["interfaces"] >= 40
    assert counts["pipes"] >= 40
    assert counts["opnums"] > 1000
    assert counts["faults"] > 40


def test_default_catalog_is_cached(cat):
    assert load_catalog() is cat


@pytest.mark.parametrize(
    ("iface", "opnum", "name"),
    [
        ("samr", 13, "SamrEnumerateUsersInDomain"),
        ("samr", 64, "SamrConnect5"),
        ("drsuapi", 3, "IDL_DRSGetNCChanges"),
        ("efsr", 0, "EfsRpcOpenFileRaw"),
        ("efsr_lsarpc", 0, "EfsRpcOpenFileRaw"),
        ("netlogon", 26, "NetrServerAuthenticate3"),
        ("netlogon", 30, "NetrServerPasswordSet2"),
        ("svcctl", 12, "RCreateServiceW"),
        ("spoolss", 65, "RpcRemoteFindFirstPrinterChangeNotificationEx"),
        ("spoolss", 89, "RpcAddPrinterDriverEx"),
        ("epm", 3, "ept_map"),
        ("lsarpc", 44, "LsarOpenPolicy2"),
        ("lsarpc", 76, "LsarLookupSids3"),  # MS-LSAT name merged into the shared uuid
        ("lsarpc", 43, "LsarRetrievePrivateData"),  # MS-LSAD name
        ("winreg", 20, "BaseRegSaveKey"),
        ("winreg", 24, "BaseInitiateSystemShutdown"),  # MS-RSP name on the winreg uuid
        ("itaskschedulerservice", 1, "SchRpcRegisterTask"),
        ("atsvc", 0, "NetrJobAdd"),
        ("dfsnm", 13, "NetrDfsRemoveStdRoot"),
        ("fsrvp", 8, "IsPathSupported"),
        ("eventlog", 9, "ElfrOpenBELW"),
        ("even6", 6, "EvtRpcClearLog"),
        ("bkrp", 0, "BackuprKey"),
        ("dnsserver", 0, "R_DnssrvOperation"),
        ("srvsvc", 12, "NetrSessionEnum"),
        ("wkssvc", 2, "NetrWkstaUserEnum"),
        ("dssetup", 0, "DsRolerGetPrimaryDomainInformation"),
        ("par", 39, "RpcAsyncAddPrinterDriver"),
        ("iremunknown", 3, "RemQueryInterface"),
        ("iremunknown", 0, "QueryInterface"),
        ("iremotescmactivator", 4, "RemoteCreateInstance"),
        ("iobjectexporter", 5, "ServerAlive2"),
        ("iwbemlevel1login", 6, "NTLMLogin"),
        ("iwbemservices", 16, "DeleteInstance"),
        ("iwbemservices", 24, "ExecMethod"),
        ("idispatch", 6, "Invoke"),
        ("mgmt", 0, "rpc__mgmt_inq_if_ids"),
        ("icpr", 0, "CertServerRequest"),
    ],
)
def test_well_known_operations(cat, iface, opnum, name):
    assert op(cat, iface, opnum) == name


def test_required_interfaces_present(cat):
    required = {
        "e1af8308-5d1f-11c9-91a4-08002b14a0fa": "3.0",
        "afa8bd80-7d8a-11c9-bef4-08002b102989": None,
        "12345778-1234-abcd-ef00-0123456789ab": None,
        "12345678-1234-abcd-ef00-01234567cffb": None,
        "e3514235-4b06-11d1-ab04-00c04fc2dcd2": None,
        "3919286a-b10c-11d0-9ba8-00c04fd92ef5": None,
        "86d35949-83c9-4044-b424-db363231fd0c": None,
        "12345678-1234-abcd-ef00-0123456789ab": None,
        "76f03f96-cdfd-44fc-a22c-64950a001209": None,
        "c681d488-d850-11d0-8c52-00c04fd90f7e": None,
        "df1941c5-fe89-4e79-bf10-463657acf44d": None,
        "4fc742e0-4a10-11cf-8273-00aa004ae673": None,
        "a8e0653c-2744-4389-a61d-7373df8b2292": None,
        "82273fdc-e32a-18c3-3f78-827929dc23ea": None,
        "f6beaff7-1e19-4fbb-9f8f-b89e2018337c": None,
        "3dde7c30-165d-11d1-ab8f-00805f14db40": None,
        "50abc2a4-574d-40b3-9d66-ee4fd5fba076": None,
        "99fcfec4-5260-101b-bbcb-00aa0021347a": None,
        "000001a0-0000-0000-c000-000000000046": None,
        "00000131-0000-0000-c000-000000000046": None,
        "00000143-0000-0000-c000-000000000046": None,
        "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57": None,
        "a4f1db00-ca47-1067-b31f-00dd010662da": None,
        "f5cc5a18-4264-101a-8c59-08002b2f8426": None,
        "f309ad18-d86a-11d0-a075-00c04fb68820": None,
        "9556dc99-828c-11cf-a37e-00aa003240c7": None,
    }
    for uuid, version in required.items():
        iface = cat.interface(uuid, version)
        assert iface is not None, uuid
        if version:
            assert version in iface.versions


def test_efsr_tables_identical(cat):
    assert dict(op_table(cat, "efsr")) == dict(op_table(cat, "efsr_lsarpc"))


def op_table(cat, name: str):
    iface = cat.interface_by_name(name)
    assert isinstance(iface, Interface)
    return iface.opnums


def test_interface_is_frozen_and_read_only(cat):
    iface = cat.interface(SAMR)
    with pytest.raises(AttributeError):
        iface.name = "x"
    with pytest.raises(TypeError):
        iface.opnums[0] = "x"


def test_unknown_lookups(cat):
    assert cat.interface("00000000-1111-2222-3333-444444444444") is None
    assert cat.operation("00000000-1111-2222-3333-444444444444", "1.0", 0) is None
    assert cat.operation(SAMR, "1.0", 9999) is None
    # a version the catalog does not list still resolves to the uuid's interface (best effort)
    assert cat.interface(SAMR, "7.3").name == "samr"
    assert cat.operation(SAMR, None, 13) == "SamrEnumerateUsersInDomain"
    assert cat.interface(SAMR.upper()).name == "samr"
    assert cat.fault_name(0x12345678) == "0x12345678"
    assert cat.ack_result_name(77) == "unknown-77"
    assert cat.ack_reason_name(77) == "unknown-77"
    assert cat.bind_nak_reason_name(77) == "unknown-77"
    assert cat.auth_type_short(200) == "other"
    assert cat.auth_level_name(9) == "unknown-9"
    assert cat.pipe_interface("nosuchpipe") is None
    assert cat.syntax_name("8a885d04-1ceb-11c9-9fe8-08002b104860", "1.0") is None
    assert cat.syntax_name("00000000-0000-0000-0000-000000000000", "1.0") is None


def test_versioned_lookup_picks_exact_version(cat):
    clusapi = "b97db8b2-4c63-11cf-bff6-08002be23f2f"
    assert cat.interface(clusapi, "2.0").name == "clusapi2"
    assert cat.interface(clusapi, "3.0").name == "clusapi3"
    assert cat.interface(clusapi).name == "clusapi3"  # highest version when unspecified


def test_codes(cat):
    assert cat.fault_name(0x1C010002) == "nca_s_op_rng_error"
    assert cat.fault_name(0x1C010003) == "nca_s_unk_if"
    assert cat.fault_name(0x1C00001A) == "nca_s_fault_context_mismatch"
    assert cat.fault_name(0x6F7) == "rpc_x_bad_stub_data"
    assert cat.fault_name(5) == "nca_s_fault_access_denied"
    assert cat.ack_result_name(0) == "acceptance"
    assert cat.ack_result_name(3) == "negotiate_ack"
    assert cat.ack_reason_name(1) == "abstract_syntax_not_supported"
    assert cat.bind_nak_reason_name(4) == "protocol_version_not_supported"
    assert [cat.auth_type_short(c) for c in (0, 9, 10, 14, 16, 68)] == [
        "none",
        "spnego",
        "ntlm",
        "other",
        "kerberos",
        "netlogon",
    ]
    assert [cat.auth_level_name(c) for c in range(7)] == [
        "default",
        "none",
        "connect",
        "call",
        "pkt",
        "integrity",
        "privacy",
    ]


def test_pipes(cat):
    for spelling in ("\\PIPE\\samr", "\\pipe\\samr", "samr", "SAMR", "\\\\dc01\\IPC$\\PIPE\\Samr\x00"):
        assert cat.pipe_interface(spelling).name == "samr", spelling
    assert cat.pipe_interface("\\pipe\\efsrpc").uuid == "df1941c5-fe89-4e79-bf10-463657acf44d"
    assert cat.pipe_interface("lsass").name == "lsarpc"
    assert cat.pipe_interface("FssagentRpc").name == "fsrvp"
    assert cat.pipe_interface("netdfs").name == "dfsnm"
    assert cat.pipe_interface("spoolss").name == "spoolss"


def test_syntaxes(cat):
    assert cat.syntax_name("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0") == "NDR"
    assert cat.syntax_name("71710533-beba-4937-8319-b5dbef9ccc36", "1.0") == "NDR64"
    assert cat.syntax_name("6cb71c2c-9812-4540-0300-000000000000", "1.0") == "BTFN"
    assert cat.syntax_name("6cb71c2c-9812-4540-0100-000000000000", "1.0") == "BTFN"


def test_every_manifest_interface_resolves(cat):
    if not MANIFEST.exists():
        pytest.skip("shared corpus MANIFEST absent")
    with MANIFEST.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    labels = {
        re.sub(r"\(\d+\)$", "", label).strip()
        for row in rows
        for label in re.split(r",(?![^(]*\))", row["interfaces_seen"])
    }
    unresolved = []
    for label in sorted(labels - set(XREF["not_interfaces"])):
        if label.startswith("uuid:"):
            uuid = label[5:]
            if uuid not in XREF["unidentified"] and cat.interface(uuid) is None:
                unresolved.append(label)
        elif cat.interface_by_name(XREF["bind_names"].get(label, "")) is None:
            unresolved.append(label)
    assert not unresolved, f"add these to dissectors/ or dissectors/wireshark.toml: {unresolved}"


def test_malformed_toml_names_file(tmp_path):
    root = tmp_path / "dissectors"
    shutil.copytree(DISSECTORS, root, ignore=shutil.ignore_patterns("*.py", "tools", "__pycache__"))
    (root / "interfaces" / "samr.toml").write_text('name = "samr"\nopnums = [\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"interfaces/samr\.toml"):
        load_catalog(root)


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("interfaces/samr.toml", 'uuid = "12345778', 'uuid = "X2345778', "bad uuid"),
        (
            "interfaces/samr.toml",
            '13 = "SamrEnumerateUsersInDomain"',
            'x13 = "A"',
            "not a non-negative integer",
        ),
        ("interfaces/samr.toml", '13 = "SamrEnumerateUsersInDomain"', '13 = ""', "empty name"),
        ("interfaces/samr.toml", 'name = "samr"', 'name = "lsarpc"', "already used"),
        ("pipes.toml", 'samr = "samr"', 'samr = "nosuch"', "unknown interface"),
        ("faults.toml", '"0x1c010002"', '"1c010002"', "not lowercase hex"),
    ],
)
def test_bad_data_is_rejected(tmp_path, file, old, new, message):
    root = tmp_path / "d"
    shutil.copytree(DISSECTORS, root, ignore=shutil.ignore_patterns("*.py", "tools", "__pycache__"))
    path = root / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(root)


def test_duplicate_uuid_version_rejected(tmp_path):
    root = tmp_path / "d"
    shutil.copytree(DISSECTORS, root, ignore=shutil.ignore_patterns("*.py", "tools", "__pycache__"))
    text = (root / "interfaces" / "samr.toml").read_text(encoding="utf-8")
    (root / "interfaces" / "zz_copy.toml").write_text(
        text.replace('name = "samr"', 'name = "zz_copy"'), encoding="utf-8"
    )
    with pytest.raises(CatalogError, match="already defined"):
        load_catalog(root)


def _wireshark_opnums() -> dict[str, dict[int, str]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    out = subprocess.run([tshark, "-G", "values"], capture_output=True, text=True, check=True).stdout
    table: dict[str, dict[int, str]] = defaultdict(dict)
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "V" and parts[1].endswith(".opnum") and parts[2].isdigit():
            table[parts[1][: -len(".opnum")]][int(parts[2])] = parts[3]
    return table


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def test_matches_wireshark(cat):
    ws = _wireshark_opnums()
    follows_spec = set(XREF["names_follow_spec"]["interfaces"])
    known = XREF["known_differences"]
    problems = []
    compared = 0
    for short, proto in XREF["opnum_fields"].items():
        theirs = ws.get(proto)
        if not theirs:
            continue  # this Wireshark build lacks the dissector
        ours = cat.interface_by_name(short).opnums
        for opnum, their_name in sorted(theirs.items()):
            compared += 1
            if opnum not in ours:
                problems.append(f"{short}.{opnum} missing (Wireshark: {their_name})")
            elif (
                short in follows_spec
                and _norm(ours[opnum]) != _norm(their_name)
                and f"{short}.{opnum}" not in known
            ):
                problems.append(f"{short}.{opnum} ours={ours[opnum]} wireshark={their_name}")
    assert compared > 500
    assert not problems, "\n".join(problems)


def test_known_differences_still_differ(cat):
    """Stale entries in wireshark.toml would hide a real future mismatch."""
    ws = _wireshark_opnums()
    for key in XREF["known_differences"]:
        short, opnum = key.rsplit(".", 1)
        theirs = ws.get(XREF["opnum_fields"][short], {}).get(int(opnum))
        if theirs is not None:
            assert _norm(theirs) != _norm(cat.interface_by_name(short).opnums[int(opnum)]), key
