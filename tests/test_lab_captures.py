"""The project's recorded lab captures (captures/*.pcap) against the analyzer.

Each capture in captures/ was recorded by captures/record.sh from the
project's Samba AD DC lab (captures/lab/); captures/MANIFEST.tsv holds the
exact command behind each one.  EXPECTED below says which RPC calls that
command made on the wire: interface short name, operation (MS spec method
name), count, auth level and status.  It was derived from what each command
does and cross-checked with tshark (captures/lab/tools/tshark_calls.py, which
resolves interfaces from the bind UUIDs, not from Wireshark's names);
test_expected_table_matches_tshark re-does that cross-check whenever tshark is
installed.

The analyzer is run as a CLI, ``python -m rpcinspect analyze --format jsonl
FILE``, one JSON object per line; call records have ``"record": "call"`` and
the fields interface, operation, opnum, if_uuid, auth_level, status, fault,
transport, named_pipe, req_frame, resp_frame; bind records have
``"record": "bind"``.

Status vocabulary: ok (response PDU), fault (fault PDU), rejected (bind/alter
context refused), no_response.  Auth level vocabulary: none, connect, call,
pkt, integrity, privacy -- of the call's security context (a connect-level
call carries no verifier; its level comes from the bind).  An ept_map/ept_lookup
on the anonymous EPM connection (TCP 135) is a call of its own at level none.

Every capture is asserted strictly, named-pipe ones (ncacn_np) included; the
SMB3-encrypted ones show no call without keys, and their encrypted session
must be reported (counter and anomaly ``smb_encrypted``) rather than dropped.
"""

from __future__ import annotations

import collections
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

try:  # tests/ is on sys.path (tests/conftest.py) ...
    from labfixture import samba_lab
except ImportError:  # ... or the repository root is
    from tests.labfixture import samba_lab  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
MANIFEST = CAPTURES / "MANIFEST.tsv"
CLI_TIMEOUT = 300

IF_UUIDS = {
    "epm": "e1af8308-5d1f-11c9-91a4-08002b14a0fa",
    "mgmt": "afa8bd80-7d8a-11c9-bef4-08002b102989",
    "samr": "12345778-1234-abcd-ef00-0123456789ac",
    "lsarpc": "12345778-1234-abcd-ef00-0123456789ab",
    "dssetup": "3919286a-b10c-11d0-9ba8-00c04fd92ef5",
    "netlogon": "12345678-1234-abcd-ef00-01234567cffb",
    "drsuapi": "e3514235-4b06-11d1-ab04-00c04fc2dcd2",
    "dnsserver": "50abc2a4-574d-40b3-9d66-ee4fd5fba076",
    "srvsvc": "4b324fc8-1670-01d3-1278-5a47bf6ee188",
    "wkssvc": "6bffd098-a112-3610-9833-46c3f87e345a",
    "spoolss": "12345678-1234-abcd-ef00-0123456789ab",
    "netdfs": "4fc742e0-4a10-11cf-8273-00aa004ae673",
    "efsr": "c681d488-d850-11d0-8c52-00c04fd90f7e",  # MS-EFSR as bound on \pipe\lsarpc
    "IObjectExporter": "99fcfec4-5260-101b-bbcb-00aa0021347a",
}

# (interface, operation) -> opnum, for every operation in EXPECTED.
OPNUMS = {
    ("epm", "ept_lookup"): 2,
    ("epm", "ept_map"): 3,
    ("mgmt", "rpc__mgmt_inq_if_ids"): 0,
    ("samr", "SamrConnect"): 0,
    ("samr", "SamrCloseHandle"): 1,
    ("samr", "SamrLookupDomainInSamServer"): 5,
    ("samr", "SamrEnumerateDomainsInSamServer"): 6,
    ("samr", "SamrOpenDomain"): 7,
    ("samr", "SamrQueryInformationDomain"): 8,
    ("samr", "SamrEnumerateGroupsInDomain"): 11,
    ("samr", "SamrEnumerateUsersInDomain"): 13,
    ("samr", "SamrLookupNamesInDomain"): 17,
    ("samr", "SamrOpenUser"): 34,
    ("samr", "SamrQueryInformationUser"): 36,
    ("samr", "SamrQueryInformationUser2"): 47,
    ("samr", "SamrCreateUser2InDomain"): 50,
    ("samr", "SamrConnect2"): 57,
    ("samr", "SamrSetInformationUser2"): 58,
    ("samr", "SamrConnect4"): 62,
    ("samr", "SamrConnect5"): 64,
    ("lsarpc", "LsarClose"): 0,
    ("lsarpc", "LsarEnumeratePrivileges"): 2,
    ("lsarpc", "LsarOpenPolicy"): 6,
    ("lsarpc", "LsarQueryInformationPolicy"): 7,
    ("lsarpc", "LsarEnumerateAccounts"): 11,
    ("lsarpc", "LsarLookupNames"): 14,
    ("lsarpc", "LsarLookupSids"): 15,
    ("lsarpc", "LsarRetrievePrivateData"): 43,
    ("lsarpc", "LsarOpenPolicy2"): 44,
    ("lsarpc", "LsarQueryInformationPolicy2"): 46,
    ("dssetup", "DsRolerGetPrimaryDomainInformation"): 0,
    ("netlogon", "NetrServerReqChallenge"): 4,
    ("netlogon", "DsrGetDcName"): 20,
    ("netlogon", "NetrLogonGetCapabilities"): 21,
    ("netlogon", "NetrServerAuthenticate3"): 26,
    ("netlogon", "DsrGetSiteName"): 28,
    ("netlogon", "DsrGetDcNameEx2"): 34,
    ("netlogon", "DsrEnumerateDomainTrusts"): 40,
    ("drsuapi", "IDL_DRSBind"): 0,
    ("drsuapi", "IDL_DRSGetNCChanges"): 3,
    ("drsuapi", "IDL_DRSCrackNames"): 12,
    ("drsuapi", "IDL_DRSDomainControllerInfo"): 16,
    ("drsuapi", "IDL_DRSGetReplInfo"): 19,
    ("dnsserver", "R_DnssrvEnumRecords2"): 8,
    ("srvsvc", "NetrConnectionEnum"): 8,
    ("srvsvc", "NetrFileEnum"): 9,
    ("srvsvc", "NetrSessionEnum"): 12,
    ("srvsvc", "NetrShareEnum"): 15,
    ("srvsvc", "NetrServerGetInfo"): 21,
    ("srvsvc", "NetrRemoteTOD"): 28,
    ("srvsvc", "NetrShareEnumSticky"): 36,
    ("wkssvc", "NetrWkstaGetInfo"): 0,
    ("wkssvc", "NetrWkstaUserEnum"): 2,
    ("spoolss", "RpcOpenPrinter"): 1,
    ("spoolss", "RpcClosePrinter"): 29,
    ("spoolss", "RpcRemoteFindFirstPrinterChangeNotificationEx"): 65,
    ("netdfs", "NetrDfsAddStdRoot"): 12,
    ("netdfs", "NetrDfsRemoveStdRoot"): 13,
}


@dataclass(frozen=True)
class Exp:
    """What one capture's command did on the wire."""

    transport: str  # MANIFEST.tsv transport: ncacn_ip_tcp | ncacn_np | ncacn_np-smb3-encrypted
    calls: list[tuple[str, str, int, str, str]]  # (interface, operation, count, auth_level, status)
    rejected_binds: tuple[str, ...] = ()  # interfaces whose bind context was refused

    def counter(self) -> collections.Counter:
        c: collections.Counter = collections.Counter()
        for iface, op, n, level, status in self.calls:
            c[(iface, op, level, status)] += n
        return c


# Notes on what the commands do (details per capture in MANIFEST.tsv):
# * rpcclient maps every interface with ept_map on an anonymous TCP 135
#   connection first, and opens a fresh connection per command; lsaquery is
#   LsarOpenPolicy (opnum 6), enumdomusers starts with SamrConnect5.
# * Samba refuses LSA over ncacn_ip_tcp (access denied) but serves it on
#   \pipe\lsarpc; auth level connect is refused by samr/lsarpc (access
#   denied) but accepted by epmapper from rpcclient; impacket's connect-level
#   ept_lookup gets nca_s_fault_other.
# * authn-none-tcp-impacket: the alter_context to lsarpc on the dssetup
#   connection is answered with a fault (nca_proto_error), so no
#   LsarOpenPolicy2 call is made -- not a call record.
# * netlogon-zerologon: NetrServerAuthenticate3 is a normal response at the RPC
#   level (ok); the refusal (STATUS_ACCESS_DENIED) is in the stub.
# * epm-lookup-tcp-rpcclient-anon: rpcclient walks the 53 registered
#   endpoints one ept_lookup at a time (54 calls, the last ends the list).
# * lsarpc-np-smb21-lookupsid: the first LsarLookupSids request is sent in
#   9 fragments; it is one call.
# * samr-addcomputer-np-smb21: one ept_map on TCP 135 (asking for the
#   ncacn_np endpoint of samr), everything else on \pipe\samr.

# kerberos-rc4-* and kerberos-aes128-* run the same commands (krb5 then spnego), only the client's
# etypes differ: the same calls
KRB_ETYPE_CALLS = [
    ("epm", "ept_map", 3, "none", "ok"),
    ("samr", "SamrConnect5", 2, "privacy", "ok"),
    ("samr", "SamrEnumerateDomainsInSamServer", 1, "privacy", "ok"),
    ("samr", "SamrLookupDomainInSamServer", 1, "privacy", "ok"),
    ("samr", "SamrOpenDomain", 2, "privacy", "ok"),
    ("samr", "SamrEnumerateUsersInDomain", 1, "privacy", "ok"),
    ("samr", "SamrCloseHandle", 4, "privacy", "ok"),
    ("samr", "SamrQueryInformationDomain", 1, "privacy", "ok"),
    ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "privacy", "ok"),
]

EXPECTED: dict[str, Exp] = {
    "demo": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 5, "none", "ok"),
            ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 2, "none", "ok"),
            ("samr", "SamrConnect5", 1, "integrity", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "integrity", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "integrity", "ok"),
            ("samr", "SamrOpenDomain", 1, "integrity", "ok"),
            ("samr", "SamrQueryInformationDomain", 1, "integrity", "ok"),
            ("samr", "SamrCloseHandle", 2, "integrity", "ok"),
            ("wkssvc", "NetrWkstaGetInfo", 1, "integrity", "ok"),
            ("lsarpc", "LsarOpenPolicy", 1, "privacy", "fault"),
        ],
    ),
    "authn-none-tcp-rpcclient-anon": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 3, "none", "ok"),
            ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 2, "none", "ok"),
            ("lsarpc", "LsarOpenPolicy", 1, "none", "fault"),
        ],
    ),
    "authn-none-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 3, "none", "ok"),
            ("samr", "SamrConnect", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "none", "ok"),
            ("netlogon", "NetrServerReqChallenge", 1, "none", "ok"),
        ],
    ),
    "authn-connect-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "connect", "ok"),
            ("epm", "ept_map", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "connect", "fault"),
            ("samr", "SamrConnect4", 1, "connect", "fault"),
            ("samr", "SamrConnect2", 1, "connect", "fault"),
            ("samr", "SamrCloseHandle", 1, "connect", "fault"),
        ],
    ),
    "authn-connect-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 1, "connect", "fault"),
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect", 1, "connect", "fault"),
            ("lsarpc", "LsarOpenPolicy2", 1, "connect", "fault"),
        ],
    ),
    "authn-integrity-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect5", 2, "integrity", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "integrity", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "integrity", "ok"),
            ("samr", "SamrOpenDomain", 2, "integrity", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "integrity", "ok"),
            ("samr", "SamrCloseHandle", 4, "integrity", "ok"),
            ("samr", "SamrQueryInformationDomain", 1, "integrity", "ok"),
        ],
    ),
    "authn-integrity-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 1, "integrity", "ok"),
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect", 1, "integrity", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "integrity", "ok"),
            ("lsarpc", "LsarOpenPolicy2", 1, "integrity", "fault"),
        ],
    ),
    "authn-privacy-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 4, "none", "ok"),
            ("samr", "SamrConnect5", 4, "privacy", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrOpenDomain", 4, "privacy", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "privacy", "ok"),
            ("samr", "SamrCloseHandle", 9, "privacy", "ok"),
            ("samr", "SamrEnumerateGroupsInDomain", 1, "privacy", "ok"),
            ("samr", "SamrOpenUser", 1, "privacy", "ok"),
            ("samr", "SamrQueryInformationUser", 1, "privacy", "ok"),
            ("samr", "SamrQueryInformationDomain", 1, "privacy", "ok"),
        ],
    ),
    "authn-privacy-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 1, "privacy", "ok"),
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect", 1, "privacy", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "privacy", "ok"),
            ("lsarpc", "LsarOpenPolicy2", 1, "privacy", "fault"),
        ],
    ),
    "ntlmv1-privacy-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect", 2, "privacy", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 2, "privacy", "ok"),
            ("samr", "SamrCloseHandle", 2, "privacy", "ok"),
        ],
    ),
    "kerberos-krb5-seal-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect5", 2, "privacy", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrOpenDomain", 2, "privacy", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "privacy", "ok"),
            ("samr", "SamrCloseHandle", 4, "privacy", "ok"),
            ("samr", "SamrQueryInformationDomain", 1, "privacy", "ok"),
        ],
    ),
    "kerberos-spnego-seal-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("samr", "SamrConnect5", 1, "privacy", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "privacy", "ok"),
            ("samr", "SamrOpenDomain", 1, "privacy", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "privacy", "ok"),
            ("samr", "SamrCloseHandle", 2, "privacy", "ok"),
            ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "privacy", "ok"),
        ],
    ),
    # the same commands with the client's etypes restricted to RC4-HMAC / AES128: krb5 then spnego
    "kerberos-rc4-seal-tcp-rpcclient": Exp("ncacn_ip_tcp", KRB_ETYPE_CALLS),
    "kerberos-aes128-seal-tcp-rpcclient": Exp("ncacn_ip_tcp", KRB_ETYPE_CALLS),
    "epm-lookup-tcp-rpcclient-anon": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 54, "none", "ok"),
        ],
    ),
    "epm-rpcdump-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 2, "none", "ok"),
        ],
    ),
    "epm-dump-tcp-impacket-lib": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_lookup", 4, "none", "ok"),
        ],
    ),
    "epm-rpcmap-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("mgmt", "rpc__mgmt_inq_if_ids", 1, "privacy", "ok"),
        ],
    ),
    "dcom-ioxid-tcp-rejected": Exp(
        "ncacn_ip_tcp",
        [],
        rejected_binds=("IObjectExporter",),
    ),
    "netlogon-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 3, "none", "ok"),
            ("netlogon", "DsrGetDcName", 1, "privacy", "ok"),
            ("netlogon", "DsrGetSiteName", 1, "privacy", "ok"),
            ("netlogon", "DsrEnumerateDomainTrusts", 1, "privacy", "ok"),
        ],
    ),
    "netlogon-zerologon-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("netlogon", "NetrServerReqChallenge", 3, "none", "ok"),
            ("netlogon", "NetrServerAuthenticate3", 3, "none", "ok"),
        ],
    ),
    "samr-addcomputer-np-smb21-impacket": Exp(
        "ncacn_np",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrLookupNamesInDomain", 2, "none", "ok"),
            ("samr", "SamrCreateUser2InDomain", 1, "none", "ok"),
            ("samr", "SamrSetInformationUser2", 2, "none", "ok"),
            ("samr", "SamrOpenUser", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 3, "none", "ok"),
        ],
    ),
    "netlogon-schannel-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("netlogon", "NetrServerReqChallenge", 1, "none", "ok"),
            ("netlogon", "NetrServerAuthenticate3", 1, "none", "ok"),
            ("netlogon", "DsrGetDcNameEx2", 1, "privacy", "ok"),
            ("netlogon", "NetrLogonGetCapabilities", 1, "privacy", "fault"),
        ],
    ),
    "lsarpc-tcp-denied-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("lsarpc", "LsarOpenPolicy", 2, "privacy", "fault"),
        ],
    ),
    "wkssvc-tcp-rpcclient": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 2, "none", "ok"),
            ("wkssvc", "NetrWkstaGetInfo", 1, "privacy", "ok"),
            ("wkssvc", "NetrWkstaUserEnum", 1, "privacy", "fault"),
        ],
    ),
    "drsuapi-showrepl-tcp-samba-tool": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("drsuapi", "IDL_DRSBind", 1, "privacy", "ok"),
            ("drsuapi", "IDL_DRSGetReplInfo", 2, "privacy", "ok"),
        ],
    ),
    "drsuapi-dcsync-tcp-samba-python": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("drsuapi", "IDL_DRSBind", 1, "privacy", "ok"),
            ("drsuapi", "IDL_DRSGetNCChanges", 1, "privacy", "ok"),
        ],
    ),
    "drsuapi-secretsdump-tcp-impacket": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("drsuapi", "IDL_DRSBind", 1, "privacy", "ok"),
            ("drsuapi", "IDL_DRSDomainControllerInfo", 1, "privacy", "ok"),
            ("drsuapi", "IDL_DRSGetNCChanges", 2, "privacy", "ok"),
            ("drsuapi", "IDL_DRSCrackNames", 1, "privacy", "ok"),
        ],
    ),
    "dnsserver-tcp-samba-tool": Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("dnsserver", "R_DnssrvEnumRecords2", 1, "integrity", "ok"),
        ],
    ),
    "nullsession-np-smb2-rpcclient": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrServerGetInfo", 1, "none", "ok"),
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 2, "none", "ok"),
            ("lsarpc", "LsarOpenPolicy", 1, "none", "ok"),
            ("lsarpc", "LsarQueryInformationPolicy", 1, "none", "ok"),
            ("lsarpc", "LsarClose", 1, "none", "ok"),
        ],
    ),
    "srvsvc-np-smb2-rpcclient": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrServerGetInfo", 1, "none", "ok"),
            ("srvsvc", "NetrShareEnumSticky", 1, "none", "ok"),
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
            ("srvsvc", "NetrSessionEnum", 1, "none", "ok"),
            ("srvsvc", "NetrConnectionEnum", 1, "none", "ok"),
            ("srvsvc", "NetrFileEnum", 1, "none", "ok"),
            ("srvsvc", "NetrRemoteTOD", 1, "none", "ok"),
        ],
    ),
    "lsarpc-np-smb2-rpcclient": Exp(
        "ncacn_np",
        [
            ("lsarpc", "LsarOpenPolicy", 5, "none", "ok"),
            ("lsarpc", "LsarQueryInformationPolicy", 1, "none", "ok"),
            ("lsarpc", "LsarClose", 5, "none", "ok"),
            ("lsarpc", "LsarLookupNames", 1, "none", "ok"),
            ("lsarpc", "LsarLookupSids", 1, "none", "ok"),
            ("lsarpc", "LsarEnumeratePrivileges", 1, "none", "ok"),
            ("lsarpc", "LsarEnumerateAccounts", 1, "none", "ok"),
        ],
    ),
    "lsarpc-np-smb2-rpcclient-seal": Exp(
        "ncacn_np",
        [
            ("lsarpc", "LsarOpenPolicy", 2, "privacy", "ok"),
            ("lsarpc", "LsarQueryInformationPolicy", 1, "privacy", "ok"),
            ("lsarpc", "LsarClose", 2, "privacy", "ok"),
            ("lsarpc", "LsarLookupNames", 1, "privacy", "ok"),
        ],
    ),
    "samr-np-smb2-rpcclient": Exp(
        "ncacn_np",
        [
            ("samr", "SamrConnect5", 3, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 3, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 6, "none", "ok"),
            ("samr", "SamrEnumerateGroupsInDomain", 1, "none", "ok"),
            ("samr", "SamrQueryInformationDomain", 1, "none", "ok"),
        ],
    ),
    "srvsvc-np-smb2-smbclient-L": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
        ],
    ),
    "np-smb3-encrypted-rpcclient": Exp(
        "ncacn_np-smb3-encrypted",
        [],
    ),
    "srvsvc-np-smb1-rpcclient": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrServerGetInfo", 1, "none", "ok"),
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
            ("samr", "SamrConnect5", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrCloseHandle", 2, "none", "ok"),
        ],
    ),
    "srvsvc-np-smb1-smbclient-L": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
        ],
    ),
    "kerberos-np-smb2-rpcclient": Exp(
        "ncacn_np",
        [
            ("srvsvc", "NetrShareEnum", 1, "none", "ok"),
            ("lsarpc", "LsarOpenPolicy", 1, "none", "ok"),
            ("lsarpc", "LsarQueryInformationPolicy", 1, "none", "ok"),
            ("lsarpc", "LsarClose", 1, "none", "ok"),
        ],
    ),
    "samr-np-smb21-samrdump-impacket": Exp(
        "ncacn_np",
        [
            ("samr", "SamrConnect", 1, "none", "ok"),
            ("samr", "SamrEnumerateDomainsInSamServer", 1, "none", "ok"),
            ("samr", "SamrLookupDomainInSamServer", 1, "none", "ok"),
            ("samr", "SamrOpenDomain", 1, "none", "ok"),
            ("samr", "SamrEnumerateUsersInDomain", 1, "none", "ok"),
            ("samr", "SamrOpenUser", 5, "none", "ok"),
            ("samr", "SamrQueryInformationUser2", 5, "none", "ok"),
            ("samr", "SamrCloseHandle", 5, "none", "ok"),
        ],
    ),
    "samr-np-smb3enc-samrdump-impacket": Exp(
        "ncacn_np-smb3-encrypted",
        [],
    ),
    "lsarpc-np-smb21-lookupsid-impacket": Exp(
        "ncacn_np",
        [
            ("lsarpc", "LsarOpenPolicy2", 1, "none", "ok"),
            ("lsarpc", "LsarQueryInformationPolicy2", 1, "none", "ok"),
            ("lsarpc", "LsarLookupSids", 2, "none", "ok"),
        ],
    ),
    "lsarpc-np-smb21-dpapi-backupkeys-impacket": Exp(
        "ncacn_np",
        [
            ("lsarpc", "LsarOpenPolicy2", 1, "none", "ok"),
            ("lsarpc", "LsarRetrievePrivateData", 1, "none", "fault"),
        ],
    ),
    "coerce-rprn-np-smb21-impacket": Exp(
        "ncacn_np",
        [
            ("spoolss", "RpcOpenPrinter", 1, "none", "ok"),
            ("spoolss", "RpcRemoteFindFirstPrinterChangeNotificationEx", 1, "none", "ok"),
            ("spoolss", "RpcClosePrinter", 1, "none", "ok"),
        ],
    ),
    "coerce-efsr-np-smb21-impacket": Exp(
        "ncacn_np",
        [],
        rejected_binds=("efsr",),
    ),
    "coerce-dfsnm-np-smb21-impacket": Exp(
        "ncacn_np",
        [
            ("netdfs", "NetrDfsRemoveStdRoot", 1, "none", "fault"),
            ("netdfs", "NetrDfsAddStdRoot", 1, "none", "fault"),
        ],
    ),
}


def _params() -> list:
    return [pytest.param(name, id=name) for name in EXPECTED]


@cache
def run_cli(pcap: str) -> tuple[dict, ...]:
    """``python -m rpcinspect analyze --format jsonl PCAP`` -> its JSON records."""
    proc = subprocess.run(
        [sys.executable, "-m", "rpcinspect", "analyze", "--format", "jsonl", pcap],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"rpcinspect analyze exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    records = []
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            pytest.fail(f"line {n} of the jsonl output is not JSON ({e}): {line[:200]}")
    return tuple(records)


def call_counter(records) -> collections.Counter:
    return collections.Counter(
        (r.get("interface"), r.get("operation"), r.get("auth_level"), r.get("status"))
        for r in records
        if r.get("record") == "call"
    )


def diff_message(got: collections.Counter, want: collections.Counter) -> str:
    lines = ["calls differ (interface, operation, auth_level, status): got != expected"]
    for key in sorted(set(got) | set(want), key=str):
        if got[key] != want[key]:
            lines.append(f"  {key}: got {got[key]}, expected {want[key]}")
    return "\n".join(lines)


# The lab tools (and this table) name MS-DFSNM by its IDL interface name, netdfs; the catalog
# (dissectors/interfaces/dfsnm.toml) by its spec short name. Same UUID, checked below.
CATALOG_NAMES = {"netdfs": "dfsnm"}


def _catalog_counter(c: collections.Counter) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for (iface, op, level, status), n in c.items():
        out[(CATALOG_NAMES.get(iface, iface), op, level, status)] += n
    return out


def check_records(name: str, records, exp: Exp) -> None:
    got = call_counter(records)
    want = _catalog_counter(exp.counter())
    assert got == want, diff_message(got, want)
    for r in records:
        if r.get("record") != "call":
            continue
        table_name = {v: k for k, v in CATALOG_NAMES.items()}.get(r["interface"], r["interface"])
        key = (table_name, r["operation"])
        where = f"{name} frame {r.get('req_frame')}: {key}"
        assert r.get("opnum") == OPNUMS[key], f"{where}: opnum {r.get('opnum')}"
        assert str(r.get("if_uuid", "")).lower() == IF_UUIDS[table_name], (
            f"{where}: if_uuid {r.get('if_uuid')}"
        )
        on_pipe = exp.transport.startswith("ncacn_np") and r["interface"] != "epm"
        assert r.get("transport") == ("ncacn_np" if on_pipe else "ncacn_ip_tcp"), f"{where}: transport"
        if on_pipe:
            assert r.get("named_pipe"), f"{where}: named_pipe missing"
        else:
            assert not r.get("named_pipe"), f"{where}: named_pipe {r.get('named_pipe')!r} on TCP"
        assert isinstance(r.get("req_frame"), int) and r["req_frame"] > 0, f"{where}: req_frame"
        if r["status"] in ("ok", "fault"):
            assert isinstance(r.get("resp_frame"), int) and r["resp_frame"] > r["req_frame"], (
                f"{where}: resp_frame"
            )
        if r["status"] == "fault":
            assert r.get("fault"), f"{where}: fault status without a fault code"
        else:
            assert not r.get("fault"), f"{where}: fault {r.get('fault')!r} on a {r['status']} call"
    if exp.transport == "ncacn_np-smb3-encrypted":
        summary = next(r for r in records if r.get("record") == "summary")
        assert summary["counters"].get("smb_encrypted", 0) >= 1, f"{name}: encrypted session not counted"
        assert summary["counters"].get("smb_encrypted_messages", 0) > 0, f"{name}: no encrypted messages"
        assert any(r.get("record") == "anomaly" and r.get("kind") == "smb_encrypted" for r in records), (
            f"{name}: no smb_encrypted anomaly record"
        )
    for iface in exp.rejected_binds:
        uuid = IF_UUIDS[iface]
        hits = [r for r in records if r.get("record") == "bind" and uuid in json.dumps(r).lower()]
        assert hits, f"{name}: no bind record for {iface} ({uuid})"
        assert any("reject" in json.dumps(r).lower() for r in hits), (
            f"{name}: bind of {iface} not rejected: {hits}"
        )


# ----------------------------------------------------------------- the set
def manifest_rows() -> dict[str, dict]:
    with MANIFEST.open(newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_shipped_captures_manifest_and_table_agree():
    pcaps = {p.stem for p in CAPTURES.glob("*.pcap")}
    rows = manifest_rows()
    assert pcaps == set(rows), f"pcaps without MANIFEST row / rows without pcap: {pcaps ^ set(rows)}"
    assert pcaps == set(EXPECTED), (
        f"captures not in EXPECTED / EXPECTED without capture: {pcaps ^ set(EXPECTED)}"
    )
    for name, row in rows.items():
        assert row["transport"] == EXPECTED[name].transport, name
        assert row["command"] and row["description"], name
        assert int(row["packets"]) > 0, name
        pdus = int(row["dcerpc_pdus"])
        assert (pdus == 0) == ("encrypted" in row["transport"]), f"{name}: {pdus} DCE/RPC PDUs"
    assert (CAPTURES / "rpclab.keytab").is_file()


def test_captures_are_small():
    sizes = {p.name: p.stat().st_size for p in CAPTURES.glob("*.pcap")}
    assert all(s < 150_000 for s in sizes.values()), {n: s for n, s in sizes.items() if s >= 150_000}
    assert sum(sizes.values()) < 4_000_000


def _tshark_calls_module():
    path = CAPTURES / "lab" / "tools" / "tshark_calls.py"
    spec = importlib.util.spec_from_file_location("tshark_calls", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", list(EXPECTED), ids=list(EXPECTED))
def test_expected_table_matches_tshark(name):
    """Guards the table itself: tshark must see exactly the expected calls."""
    calls, binds = _tshark_calls_module().analyse(str(CAPTURES / f"{name}.pcap"))
    got = collections.Counter((c["interface"], c["operation"], c["auth_level"], c["status"]) for c in calls)
    assert got == EXPECTED[name].counter(), diff_message(got, EXPECTED[name].counter())
    rejected = tuple(b[0] for b in binds if b[1] == "rejected")
    assert rejected == EXPECTED[name].rejected_binds


# ------------------------------------------------------------ the analyzer
@pytest.mark.parametrize("name", _params())
def test_capture_calls(name):
    exp = EXPECTED[name]
    records = run_cli(str(CAPTURES / f"{name}.pcap"))
    check_records(name, records, exp)


# ------------------------------------------------------------ live lab
@pytest.mark.lab
@pytest.mark.slow
def test_live_lab_anonymous_dsroledominfo(samba_lab, tmp_path):
    """Record a fresh anonymous ncacn_ip_tcp call in the lab and analyze it."""
    pcap = samba_lab.capture(
        "live-dsroledominfo",
        ["rpcclient", "-N", "-U%", f"ncacn_ip_tcp:{samba_lab.dc_ip}", "-c", "dsroledominfo"],
        tmp_path,
    )
    out = (tmp_path / "live-dsroledominfo.out").read_text()
    assert "Machine Role" in out, out
    exp = Exp(
        "ncacn_ip_tcp",
        [
            ("epm", "ept_map", 1, "none", "ok"),
            ("dssetup", "DsRolerGetPrimaryDomainInformation", 1, "none", "ok"),
        ],
    )
    check_records("live-dsroledominfo", run_cli(str(pcap)), exp)
