#!/usr/bin/env python3
"""Independent cross-check of a capture's DCE/RPC calls, using tshark only.

  python3 captures/lab/tools/tshark_calls.py [--calls] [--json] FILE.pcap...

Prints, per capture, the calls grouped as
  interface  operation  auth_level  status  count
where interface is a short name derived from the bound interface UUID (not
from Wireshark's dissector names), operation the MS-spec method name of the
opnum (for the interfaces the lab uses), auth_level one of
none|connect|call|pkt|integrity|privacy (from the request's auth trailer, else
from the bind/alter_context of its connection or named pipe) and status one of
ok|fault|no_response.  Rejected bind contexts are listed separately.  This is
how the expectation table in tests/test_lab_captures.py was cross-checked; it
does not decrypt anything (sealed stubs still show their opnum).
"""

import argparse
import collections
import json
import subprocess
import sys

IFACES = {
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": "epm",
    "afa8bd80-7d8a-11c9-bef4-08002b102989": "mgmt",
    "12345778-1234-abcd-ef00-0123456789ac": "samr",
    "12345778-1234-abcd-ef00-0123456789ab": "lsarpc",
    "3919286a-b10c-11d0-9ba8-00c04fd92ef5": "dssetup",
    "12345678-1234-abcd-ef00-01234567cffb": "netlogon",
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": "drsuapi",
    "50abc2a4-574d-40b3-9d66-ee4fd5fba076": "dnsserver",
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": "srvsvc",
    "6bffd098-a112-3610-9833-46c3f87e345a": "wkssvc",
    "12345678-1234-abcd-ef00-0123456789ab": "spoolss",
    "4fc742e0-4a10-11cf-8273-00aa004ae673": "netdfs",
    "c681d488-d850-11d0-8c52-00c04fd90f7e": "efsr",
    "df1941c5-fe89-4e79-bf10-463657acf44d": "efsr",
    "99fcfec4-5260-101b-bbcb-00aa0021347a": "IObjectExporter",
    "3dde7c30-165d-11d1-ab8f-00805f14db40": "backupkey",
}
OPS = {
    "epm": {2: "ept_lookup", 3: "ept_map"},
    "mgmt": {0: "rpc__mgmt_inq_if_ids"},
    "samr": {
        0: "SamrConnect",
        1: "SamrCloseHandle",
        5: "SamrLookupDomainInSamServer",
        6: "SamrEnumerateDomainsInSamServer",
        7: "SamrOpenDomain",
        8: "SamrQueryInformationDomain",
        11: "SamrEnumerateGroupsInDomain",
        13: "SamrEnumerateUsersInDomain",
        17: "SamrLookupNamesInDomain",
        34: "SamrOpenUser",
        36: "SamrQueryInformationUser",
        47: "SamrQueryInformationUser2",
        50: "SamrCreateUser2InDomain",
        57: "SamrConnect2",
        58: "SamrSetInformationUser2",
        62: "SamrConnect4",
        64: "SamrConnect5",
    },
    "lsarpc": {
        0: "LsarClose",
        2: "LsarEnumeratePrivileges",
        6: "LsarOpenPolicy",
        7: "LsarQueryInformationPolicy",
        11: "LsarEnumerateAccounts",
        14: "LsarLookupNames",
        15: "LsarLookupSids",
        43: "LsarRetrievePrivateData",
        44: "LsarOpenPolicy2",
        46: "LsarQueryInformationPolicy2",
    },
    "dssetup": {0: "DsRolerGetPrimaryDomainInformation"},
    "netlogon": {
        4: "NetrServerReqChallenge",
        20: "DsrGetDcName",
        21: "NetrLogonGetCapabilities",
        26: "NetrServerAuthenticate3",
        28: "DsrGetSiteName",
        34: "DsrGetDcNameEx2",
        40: "DsrEnumerateDomainTrusts",
    },
    "drsuapi": {
        0: "IDL_DRSBind",
        1: "IDL_DRSUnbind",
        3: "IDL_DRSGetNCChanges",
        12: "IDL_DRSCrackNames",
        16: "IDL_DRSDomainControllerInfo",
        19: "IDL_DRSGetReplInfo",
    },
    "dnsserver": {8: "R_DnssrvEnumRecords2"},
    "srvsvc": {
        8: "NetrConnectionEnum",
        9: "NetrFileEnum",
        12: "NetrSessionEnum",
        15: "NetrShareEnum",
        21: "NetrServerGetInfo",
        28: "NetrRemoteTOD",
        36: "NetrShareEnumSticky",
    },
    "wkssvc": {0: "NetrWkstaGetInfo", 2: "NetrWkstaUserEnum"},
    "spoolss": {
        1: "RpcOpenPrinter",
        29: "RpcClosePrinter",
        65: "RpcRemoteFindFirstPrinterChangeNotificationEx",
    },
    "netdfs": {12: "NetrDfsAddStdRoot", 13: "NetrDfsRemoveStdRoot"},
}
LEVELS = {1: "none", 2: "connect", 3: "call", 4: "pkt", 5: "integrity", 6: "privacy"}


def find(obj, key):
    """First value of KEY anywhere in tshark's nested JSON (dicts and lists)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find(v, key)
            if r is not None:
                return r
    return None


def find_all(obj, key, out=None):
    out = [] if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.extend(v if isinstance(v, list) else [v])
            else:
                find_all(v, key, out)
    elif isinstance(obj, list):
        for v in obj:
            find_all(v, key, out)
    return out


def as_list(x):
    return x if isinstance(x, list) else [x]


def analyse(pcap):
    out = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-Y", "dcerpc", "-T", "json", "--no-duplicate-keys"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    frames = json.loads(out or "[]")
    levels = {}  # conv -> auth level of its bind/alter_context
    ctx_uuid = {}  # (conv, ctx_id) -> uuid
    pending_bind = {}  # (conv, call_id) -> [(ctx_id, uuid)]
    calls, by_key, binds = [], {}, []
    for fr in frames:
        L = fr["_source"]["layers"]
        num = int(find(L["frame"], "frame.number"))
        stream = find(L.get("tcp", {}), "tcp.stream")
        fid = find(L.get("smb2", {}), "smb2.fid") or find(L.get("smb", {}), "smb.fid")
        conv = (stream, fid)
        for pdu in as_list(L["dcerpc"]):
            ptype = int(find(pdu, "dcerpc.pkt_type"))
            call_id = find(pdu, "dcerpc.cn_call_id")
            lvl = find(pdu, "dcerpc.auth_level")
            if ptype in (11, 14):  # bind / alter_context
                levels[conv] = LEVELS.get(int(lvl), lvl) if lvl else "none"
                ids = find_all(pdu, "dcerpc.cn_ctx_id")
                uuids = find_all(pdu, "dcerpc.cn_bind_to_uuid")
                ctxs = list(zip(ids, uuids, strict=False))
                pending_bind[(stream, call_id)] = (conv, ctxs)
            elif ptype in (12, 15, 13):  # bind_ack / alter_resp / bind_nak
                conv_b, ctxs = pending_bind.get((stream, call_id), (conv, []))
                results = find_all(pdu, "dcerpc.cn_ack_result")
                for i, (ctx, uuid) in enumerate(ctxs):
                    r = results[i] if i < len(results) else "0"
                    if r == "3":  # negotiate_ack of a bind-time feature negotiation item
                        continue
                    res = "rejected" if ptype == 13 or r != "0" else "accepted"
                    if res == "accepted":
                        ctx_uuid[(conv_b, ctx)] = uuid
                    binds.append((IFACES.get(uuid, uuid), res, num))
            elif ptype == 0:  # request (count the last fragment only)
                if not int(find(pdu, "dcerpc.cn_flags") or "0x03", 16) & 0x02:
                    continue
                ctx = find(pdu, "dcerpc.cn_ctx_id")
                uuid = ctx_uuid.get((conv, ctx))
                if uuid is None:  # e.g. SMB1 read/write without fid: fall back to the stream
                    uuid = next((u for (c, cx), u in ctx_uuid.items() if c[0] == stream and cx == ctx), None)
                iface = IFACES.get(uuid, uuid or "?")
                opnum = int(find(pdu, "dcerpc.opnum"))
                level = (
                    LEVELS.get(int(lvl), lvl)
                    if lvl
                    else levels.get(conv) or next((v for c, v in levels.items() if c[0] == stream), "none")
                )
                c = {
                    "frame": num,
                    "interface": iface,
                    "opnum": opnum,
                    "operation": OPS.get(iface, {}).get(opnum, f"opnum{opnum}"),
                    "auth_level": level,
                    "status": "no_response",
                }
                calls.append(c)
                by_key[(stream, call_id)] = c
            elif ptype in (2, 3):  # response / fault
                req_in = find(pdu, "dcerpc.request_in")
                c = next((x for x in calls if str(x["frame"]) == req_in), None) if req_in else None
                c = c or by_key.get((stream, call_id))
                if c is not None and c["status"] == "no_response":
                    c["status"] = "ok" if ptype == 2 else "fault"
    return calls, binds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", action="store_true", help="list every call instead of grouping")
    ap.add_argument("--json", action="store_true", help="one JSON object per capture")
    ap.add_argument("pcaps", nargs="+")
    a = ap.parse_args()
    for p in a.pcaps:
        calls, binds = analyse(p)
        grouped = collections.Counter(
            (c["interface"], c["operation"], c["auth_level"], c["status"]) for c in calls
        )
        if a.json:
            print(
                json.dumps(
                    {
                        "pcap": p,
                        "calls": [[*k, n] for k, n in grouped.items()],
                        "rejected_binds": [b[0] for b in binds if b[1] == "rejected"],
                    }
                )
            )
            continue
        print(f"=== {p}")
        if a.calls:
            for c in calls:
                row = f"  {c['frame']:>5} {c['interface']:<10} {c['operation']:<46}"
                print(row, c["auth_level"], c["status"])
        else:
            for (i, o, lv, st), n in grouped.items():
                print(f"  {i:<10} {o:<46} {lv:<9} {st:<11} {n}")
        for b in binds:
            if b[1] == "rejected":
                print(f"  bind rejected: {b[0]} (frame {b[2]})")


if __name__ == "__main__":
    sys.exit(main())
