#!/usr/bin/env bash
# captures/record.sh [FILTER]
#
# (Re)records rpcinspect's reference capture set from the project's own lab
# (captures/lab/): one pcap per scenario in captures/NAME.pcap, the table
# captures/MANIFEST.tsv, and captures/rpclab.keytab (lab secrets only, for
# Kerberos decryption tests).  Must run as root.  Brings the lab up itself
# (dc-up.sh, with SMB1 and NTLMv1 allowed for their scenarios) and creates the Impacket
# venv if needed; leaves the lab running (stop it with captures/lab/dc-down.sh).
#
#   FILTER   only scenarios whose name contains FILTER are re-recorded; their
#            MANIFEST.tsv rows are replaced, the other rows and pcaps are kept.
#            Without FILTER every capture is recorded afresh and pcaps of
#            scenarios no longer listed here are deleted.
#
# Commands run in the client netns with the repository root as working
# directory, so the "command" column of MANIFEST.tsv is exactly what ran
# (relative tool paths included).  A non-zero exit of a scenario command is
# expected for the rejection scenarios: it is recorded, not fatal.
# Keytab: a run without FILTER writes the DC's export alone.  A run with FILTER
# keeps the captures it does not re-record, so it merges the export into the
# existing captures/rpclab.keytab (lab/tools/keytab_merge.py: old entries first,
# then keys not already there): after a re-provisioned DC (dc-up.sh --fresh,
# or /tmp cleaned) DC1$ and krbtgt then hold the old provision's keys, which
# open the kept captures, and the new ones, for the new captures.
set -uo pipefail
CAPS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$CAPS")
LAB=$CAPS/lab
FILTER=${1:-}
[[ $EUID -eq 0 ]] || { echo "ERROR: must run as root" >&2; exit 1; }
T0=$(date +%s.%N)

# SMB1 (NT1) is off by default in Samba 4.17; the smb1 scenarios need it.
# NTLMv1 is refused by default (ntlm auth = ntlmv2-only); the ntlmv1 scenario
# needs it allowed.  Neither weakens the other scenarios: their clients still
# negotiate SMB2/3 and send NTLMv2.
export RPCLAB_EXTRA_CONF=${RPCLAB_EXTRA_CONF-server min protocol = NT1
ntlm auth = yes}
"$LAB/dc-up.sh" || exit 1
"$LAB/impacket-venv.sh" || exit 1
# shellcheck source-path=SCRIPTDIR source=lab/lab.env
source "$LAB/lab.env"
T_UP=$(date +%s.%N)

# Scratch area of this run (pcaps, NAME.cmd, NAME.out with each command's
# output, tcpdump logs), kept until the next run for inspection.
WORK=$LAB_DIR/record-last
rm -rf "$WORK"
export LAB_CAPDIR=$WORK
mkdir -p "$LAB_CAPDIR"
cd "$REPO" || exit 1

DC=$LAB_DC_IP
FQDN=$LAB_DC_FQDN
U="$LAB_DOMAIN\\Administrator%$LAB_ADMIN_PASS"       # Samba tools: DOMAIN\user%pass
T="$LAB_DOMAIN/Administrator:$LAB_ADMIN_PASS@$DC"     # Impacket target
PROBE=(python captures/lab/tools/rpc_probes.py)
# Impacket negotiates SMB 3.1.1 and then encrypts everything when the server
# offers encryption (Samba does); the "*-smb21-*" scenarios load
# tools/smb21/sitecustomize.py so the named-pipe DCE/RPC stays visible.
SMB21=(env PYTHONPATH=captures/lab/tools/smb21)
# MIT kinit against the lab KDC (password on stdin), lab-private ccache.
# (Inner quotes of "bash -c" scripts are double quotes so that the command
# column of MANIFEST.tsv, shell-quoted with shlex.join, stays readable.)
KINIT="kdestroy -q 2>/dev/null; echo \"$LAB_ADMIN_PASS\" | kinit Administrator@$LAB_REALM >/dev/null"
# SMB1: rpcclient's named-pipe connections follow "client ipc min/max
# protocol", not "client min/max protocol" (nor -m); set both pairs.
SMB1=(--option='client min protocol=NT1' --option='client max protocol=NT1'
      --option='client ipc min protocol=NT1' --option='client ipc max protocol=NT1')

declare -a ORDER=()
declare -A ROW=()
RECORDED=0; FAILED=()

tsv_clean() { local s=$1; s=${s//$'\t'/ }; printf '%s' "${s//$'\n'/ }"; }
count_pdus() { # raw (no keys) DCE/RPC PDU count: one pkt_type value per PDU
  tshark -n -r "$1" -Y dcerpc -T fields -e dcerpc.pkt_type 2>/dev/null | tr ',' '\n' | grep -c . || true
}

# scn NAME TRANSPORT DESCRIPTION -- CMD...
scn() {
  local name=$1 transport=$2 desc=$3; shift 3
  [[ $1 == -- ]] && shift
  ORDER+=("$name")
  [[ -n $FILTER && $name != *"$FILTER"* ]] && return 0
  echo "==================== $name" >&2
  local rc=0 t1 t2
  t1=$(date +%s.%N)
  "$LAB/capture.sh" "$name" timeout 120 "$@" || rc=$?
  t2=$(date +%s.%N)
  local pcap=$LAB_CAPDIR/$name.pcap
  if [[ ! -s $pcap ]]; then FAILED+=("$name: no pcap"); return 0; fi
  cp "$pcap" "$CAPS/$name.pcap"
  local pkts pdus cmdline
  pkts=$(tshark -n -r "$pcap" -T fields -e frame.number 2>/dev/null | wc -l)
  pdus=$(count_pdus "$pcap")
  # The exact argv, shell-quoted readably (capture.sh ran "timeout 120 CMD...").
  cmdline=$(python3 -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' timeout 120 "$@")
  ROW[$name]=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$name" "$transport" "$(tsv_clean "$cmdline")" \
                 "$rc" "$pkts" "$pdus" "$(tsv_clean "$desc")")
  RECORDED=$((RECORDED + 1))
  printf '%-44s rc=%-3s packets=%-5s dcerpc_pdus=%-4s %6s bytes %5.1fs\n' "$name" "$rc" "$pkts" "$pdus" \
    "$(stat -c %s "$pcap")" "$(awk -v a="$t1" -v b="$t2" 'BEGIN{print b-a}')" >&2
  if [[ $pdus == 0 && $transport != *encrypted* ]]; then FAILED+=("$name: 0 DCE/RPC PDUs"); fi
  if (($(stat -c %s "$pcap") > 150000)); then FAILED+=("$name: larger than 150 KB"); fi
}

# ====================================================================== demo
scn demo ncacn_ip_tcp \
  "README demo. Three rpcclient runs over ncacn_ip_tcp; before each command rpcclient maps the interface with epm ept_map on an anonymous TCP 135 connection (5 in all). 1) anonymous, auth level none: dssetup DsRolerGetPrimaryDomainInformation; samr SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain, 2x SamrCloseHandle. 2) NTLM integrity ([sign]): samr SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrQueryInformationDomain, 2x SamrCloseHandle; wkssvc NetrWkstaGetInfo. 3) NTLM privacy ([sign,seal]): lsarpc LsarOpenPolicy -> fault nca_s_fault_access_denied (Samba refuses LSA over TCP)" -- \
  bash -c "rpcclient -N -U% ncacn_ip_tcp:$DC -c \"dsroledominfo;enumdomusers\"; rpcclient -U \"$U\" \"ncacn_ip_tcp:${DC}[sign]\" -c \"querydominfo;wkssvc_wkstagetinfo\"; rpcclient -U \"$U\" \"ncacn_ip_tcp:${DC}[sign,seal]\" -c \"lsaquery\""

# ============================================== auth levels over ncacn_ip_tcp
scn authn-none-tcp-rpcclient-anon ncacn_ip_tcp \
  "rpcclient anonymous (-N -U%), auth level none, 3 ept_map on 135 then: dssetup DsRolerGetPrimaryDomainInformation; samr SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain, 2x SamrCloseHandle (allowed anonymously); lsarpc LsarOpenPolicy -> fault access denied" -- \
  rpcclient -N -U% "ncacn_ip_tcp:$DC" -c 'dsroledominfo;enumdomusers;lsaquery'
scn authn-none-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py noauth), auth level none: samr SamrConnect/SamrEnumerateDomainsInSamServer/SamrLookupDomainInSamServer/SamrOpenDomain/SamrEnumerateUsersInDomain; dssetup DsRolerGetPrimaryDomainInformation, then an alter_context to lsarpc on that connection, answered by a fault (nca_proto_error), so no LSA call; netlogon NetrServerReqChallenge (3 ept_map on 135 first)" -- \
  "${PROBE[@]}" noauth
scn authn-connect-tcp-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM at auth level connect: epmmap = epm ept_map on a connect-level TCP 135 connection (accepted); enumdomusers: the samr bind is accepted but SamrConnect5, SamrConnect4, SamrConnect2 and SamrCloseHandle all fault with access denied (Samba default: allow dcerpc auth level connect = no)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[connect]" -c 'epmmap;enumdomusers'
scn authn-connect-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py authlevel connect): NTLM at connect level: epm ept_lookup -> fault nca_s_fault_other; samr SamrConnect and lsarpc LsarOpenPolicy2 -> fault access denied" -- \
  "${PROBE[@]}" authlevel connect
scn authn-integrity-tcp-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM at auth level integrity ([sign]), one connection per command: samr SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain, then SamrConnect5, SamrOpenDomain, SamrQueryInformationDomain; SamrCloseHandle each (signed, stubs in clear)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[sign]" -c 'enumdomusers;querydominfo'
scn authn-integrity-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py authlevel integrity): NTLM integrity on epm ept_lookup, samr SamrConnect/SamrEnumerateDomainsInSamServer, lsarpc LsarOpenPolicy2 (fault access denied)" -- \
  "${PROBE[@]}" authlevel integrity
scn authn-privacy-tcp-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM at auth level privacy ([sign,seal]), one connection per command: samr enumdomusers (SamrEnumerateUsersInDomain), enumdomgroups (SamrEnumerateGroupsInDomain), queryuser 500 (SamrOpenUser, SamrQueryInformationUser), querydominfo (SamrQueryInformationDomain), each after SamrConnect5/SamrOpenDomain (stubs sealed; decryptable with the lab admin password)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[sign,seal]" -c 'enumdomusers;enumdomgroups;queryuser 500;querydominfo'
scn authn-privacy-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py authlevel privacy): NTLM privacy on epm ept_lookup, samr SamrConnect/SamrEnumerateDomainsInSamServer, lsarpc LsarOpenPolicy2 (fault access denied)" -- \
  "${PROBE[@]}" authlevel privacy
scn ntlmv1-privacy-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py ntlmv1 privacy): NTLMv1 (24-byte NT response; the DC allows it with ntlm auth = yes) at privacy over ncacn_ip_tcp to samr, two connections after an ept_map each: 1) with extended session security (NTLM2 session response: client and server RC4 handles), 2) without it (ESS dropped from the NEGOTIATE flags: one RC4 handle for both directions, CRC32 signatures); each SamrConnect, SamrEnumerateDomainsInSamServer, SamrCloseHandle. Decryptable with the lab admin password (tshark 4.0 decrypts only the first connection)" -- \
  "${PROBE[@]}" ntlmv1 privacy

# ================================================================== Kerberos
scn kerberos-krb5-seal-tcp-rpcclient ncacn_ip_tcp \
  "kinit Administrator (AS-REQ/AS-REP on 88), then rpcclient --use-kerberos=required over ncacn_ip_tcp:[krb5,seal] (auth type 16, privacy; TGS-REQ for the service): samr enumdomusers + querydominfo. Decrypt with rpclab.keytab" -- \
  bash -c "$KINIT && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[krb5,seal]\" -c \"enumdomusers;querydominfo\""
scn kerberos-spnego-seal-tcp-rpcclient ncacn_ip_tcp \
  "kinit Administrator, then rpcclient --use-kerberos=required over ncacn_ip_tcp:[spnego,seal] (auth type 9 SPNEGO/Kerberos, privacy): samr enumdomusers + dssetup dsroledominfo. Decrypt with rpclab.keytab" -- \
  bash -c "$KINIT && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[spnego,seal]\" -c \"enumdomusers;dsroledominfo\""
# The same with every negotiated key restricted to one weaker etype: a client
# krb5.conf snippet (lab/krb5-client-ETYPE.conf) is put before the lab's in
# KRB5_CONFIG for kinit and rpcclient.  The tickets stay AES256 (the KDC picks
# the DC1$/krbtgt key); session keys, subkeys and wrap tokens use the etype.
KRB5_RC4="export KRB5_CONFIG=captures/lab/krb5-client-rc4.conf:\$KRB5_CONFIG"
KRB5_AES128="export KRB5_CONFIG=captures/lab/krb5-client-aes128.conf:\$KRB5_CONFIG"
scn kerberos-rc4-seal-tcp-rpcclient ncacn_ip_tcp \
  "RC4-HMAC (etype 23) Kerberos sealing: client krb5.conf restricted to arcfour-hmac-md5 (lab/krb5-client-rc4.conf), kinit Administrator (AS exchange in RC4), then rpcclient --use-kerberos=required over ncacn_ip_tcp:[krb5,seal] (auth type 16): samr enumdomusers + querydominfo (two contexts), and over ncacn_ip_tcp:[spnego,seal] (auth type 9): dssetup dsroledominfo. Service ticket encrypted with DC1\$'s AES256 key (the KDC's choice), session key, authenticator/AP-REP subkeys and RFC 4757 wrap tokens RC4-HMAC. Decrypt with rpclab.keytab" -- \
  bash -c "$KRB5_RC4; $KINIT && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[krb5,seal]\" -c \"enumdomusers;querydominfo\" && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[spnego,seal]\" -c dsroledominfo"
scn kerberos-aes128-seal-tcp-rpcclient ncacn_ip_tcp \
  "AES128 (etype 17) Kerberos sealing: client krb5.conf restricted to aes128-cts-hmac-sha1-96 (lab/krb5-client-aes128.conf), kinit Administrator (AS exchange in AES128), then rpcclient --use-kerberos=required over ncacn_ip_tcp:[krb5,seal] (auth type 16): samr enumdomusers + querydominfo (two contexts), and over ncacn_ip_tcp:[spnego,seal] (auth type 9): dssetup dsroledominfo. Service ticket encrypted with DC1\$'s AES256 key (the KDC's choice), session key, authenticator/AP-REP subkeys and RFC 4121 wrap tokens AES128. Decrypt with rpclab.keytab" -- \
  bash -c "$KRB5_AES128; $KINIT && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[krb5,seal]\" -c \"enumdomusers;querydominfo\" && rpcclient -N --use-kerberos=required \"ncacn_ip_tcp:${FQDN}[spnego,seal]\" -c dsroledominfo"

# =========================================================== endpoint mapper
scn epm-lookup-tcp-rpcclient-anon ncacn_ip_tcp \
  "rpcclient epmlookup, anonymous on TCP 135: a series of epm ept_lookup calls walking all registered endpoints" -- \
  rpcclient -N -U% "ncacn_ip_tcp:$DC" -c epmlookup
scn epm-rpcdump-tcp-impacket ncacn_ip_tcp \
  "Impacket rpcdump.py on TCP 135: epm ept_lookup (first answer has entries and a non-null handle, the next ends with ept_s_not_registered 0x16c9a0d6); rpcdump then reports 'No endpoints found' (impacket does not treat that status as end-of-list)" -- \
  rpcdump.py "$DC"
scn epm-dump-tcp-impacket-lib ncacn_ip_tcp \
  "Impacket-library EPM dump (rpc_probes.py epm-dump): ept_lookup loop of 20 entries per call that treats 0x16c9a0d6 as end-of-list" -- \
  "${PROBE[@]}" epm-dump
scn epm-rpcmap-tcp-impacket ncacn_ip_tcp \
  "Impacket rpcmap.py on ncacn_ip_tcp:DC[135]: bind to MGMT (afa8bd80) with anonymous NTLM at privacy (rpcmap default level 6) and one rpc__mgmt_inq_if_ids call listing the interfaces on that endpoint" -- \
  rpcmap.py "ncacn_ip_tcp:${DC}[135]"
scn dcom-ioxid-tcp-rejected ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py ioxid): bind to DCOM IObjectExporter (99fcfec4) on TCP 135 -> bind_ack with provider rejection (abstract syntax not supported); no call is made" -- \
  "${PROBE[@]}" ioxid

# ======================================================= other TCP interfaces
scn netlogon-tcp-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM privacy over ncacn_ip_tcp to netlogon: DsrGetDcName (dsr_getdcname), DsrGetSiteName (dsr_getsitename), DsrEnumerateDomainTrusts (dsenumdomtrusts)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[sign,seal]" -c "dsr_getdcname $LAB_DNSDOMAIN;dsr_getsitename $LAB_DC_NAME;dsenumdomtrusts"
scn netlogon-zerologon-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py zerologon --tries 3): 3 x NetrServerReqChallenge + NetrServerAuthenticate3 with an all-zero credential (CVE-2020-1472 pattern); each Authenticate3 is refused with STATUS_ACCESS_DENIED" -- \
  "${PROBE[@]}" --tries 3 zerologon
# The computer account for the secure channel is created by the next scenario.
if [[ -z $FILTER || netlogon-schannel-tcp-impacket == *"$FILTER"* || samr-addcomputer-np-smb21-impacket == *"$FILTER"* ]]; then
  ip netns exec "$LAB_NS_DC" samba-tool computer delete WS01 >/dev/null 2>&1 || true
fi
ADDCOMPUTER=("${SMB21[@]}" addcomputer.py -method SAMR -computer-name 'WS01$' -computer-pass 'Ws01-Passw0rd1' -dc-ip "$DC" "$LAB_DOMAIN/Administrator:$LAB_ADMIN_PASS")
scn samr-addcomputer-np-smb21-impacket ncacn_np \
  "Impacket addcomputer.py -method SAMR (SMB 2.1 forced): epm ept_map on TCP 135 for the samr ncacn_np endpoint, then on \\pipe\\samr SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrLookupNamesInDomain, SamrCreateUser2InDomain (WS01\$), SamrSetInformationUser2, SamrLookupNamesInDomain, SamrOpenUser, SamrSetInformationUser2, 3x SamrCloseHandle" -- \
  "${ADDCOMPUTER[@]}"
if [[ -n $FILTER && netlogon-schannel-tcp-impacket == *"$FILTER"* && samr-addcomputer-np-smb21-impacket != *"$FILTER"* ]]; then
  "$LAB/in-client.sh" "${ADDCOMPUTER[@]}" >/dev/null 2>&1 || true
fi
scn netlogon-schannel-tcp-impacket ncacn_ip_tcp \
  "Impacket probe (rpc_probes.py schannel WS01\$): netlogon NetrServerReqChallenge + NetrServerAuthenticate3 (AES) at auth level none, then alter_context with auth type 68 (Netlogon secure channel) at privacy: DsrGetDcNameEx2 (ok), NetrLogonGetCapabilities (fault nca_s_fault_ndr)" -- \
  "${PROBE[@]}" schannel 'WS01$' 'Ws01-Passw0rd1'
scn lsarpc-tcp-denied-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM privacy over ncacn_ip_tcp to lsarpc: LsarOpenPolicy for lsaquery and again for lookupnames; both fault with access denied (Samba serves LSA only on \\pipe\\lsarpc)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[sign,seal]" -c 'lsaquery;lookupnames administrator'
scn wkssvc-tcp-rpcclient ncacn_ip_tcp \
  "rpcclient NTLM privacy over ncacn_ip_tcp to wkssvc: NetrWkstaGetInfo (wkssvc_wkstagetinfo, ok), NetrWkstaUserEnum (wkssvc_enumerateusers) -> fault nca_op_rng_error (not implemented by Samba)" -- \
  rpcclient -U "$U" "ncacn_ip_tcp:${DC}[sign,seal]" -c 'wkssvc_wkstagetinfo;wkssvc_enumerateusers'
scn drsuapi-showrepl-tcp-samba-tool ncacn_ip_tcp \
  "samba-tool drs showrepl: drsuapi over ncacn_ip_tcp (NTLM privacy, bind-time feature negotiation): IDL_DRSBind, 2x IDL_DRSGetReplInfo (the LDAP part is filtered out of the capture)" -- \
  samba-tool drs showrepl "$FQDN" -U "$U"
scn drsuapi-dcsync-tcp-samba-python ncacn_ip_tcp \
  "DCSync of Administrator with Samba's Python DRSUAPI client (tools/samba_dcsync.py): drsuapi IDL_DRSBind + IDL_DRSGetNCChanges (EXOP_REPL_OBJ), NTLM privacy; the reply carries unicodePwd etc. (encrypted)" -- \
  /usr/bin/python3 captures/lab/tools/samba_dcsync.py "$DC" "$LAB_DOMAIN" Administrator "$LAB_ADMIN_PASS" "CN=Administrator,CN=Users,DC=rpclab,DC=test"
scn drsuapi-secretsdump-tcp-impacket ncacn_ip_tcp \
  "Impacket secretsdump.py -just-dc (DRSUAPI method; SMB session first, SMB 3.1.1-encrypted: no DCE/RPC visible without keys; decrypted with the admin password it carries samr SamrConnect, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain on \\pipe\\samr): epm map, then drsuapi at privacy: DsBind, DsDomainControllerInfo, DsCrackNames, DsGetNCChanges; Samba returns no objects to impacket (impacket issue #991), so no hash is printed. Runs in a scratch dir (it leaves a sessionresume_* file in its cwd)" -- \
  env -C "$LAB_DIR/client/work" secretsdump.py -just-dc "$T"
scn dnsserver-tcp-samba-tool ncacn_ip_tcp \
  "samba-tool dns query: dnsserver (MS-DNSP) over ncacn_ip_tcp, NTLM integrity (bind + alter_context carrying NTLMSSP_AUTH): R_DnssrvEnumRecords2 for @ in rpclab.test" -- \
  samba-tool dns query "$DC" "$LAB_DNSDOMAIN" @ ALL -U "$U"

# ============================================== named pipes over SMB2 / SMB1
scn nullsession-np-smb2-rpcclient ncacn_np \
  "rpcclient null session (-N -U%) over SMB2 IPC\$: srvsvc NetrServerGetInfo (srvinfo), NetrShareEnum (netshareenumall); samr enumdomusers (SamrConnect5 ... SamrEnumerateUsersInDomain); lsarpc lsaquery (LsarOpenPolicy, LsarQueryInformationPolicy, LsarClose) -- all allowed anonymously on pipes" -- \
  rpcclient -N -U% "ncacn_np:$DC" -c 'srvinfo;netshareenumall;enumdomusers;lsaquery'
scn srvsvc-np-smb2-rpcclient ncacn_np \
  "rpcclient NTLM over \\pipe\\srvsvc (SMB2, signed): NetrServerGetInfo, NetrShareEnumSticky (netshareenum), NetrShareEnum (netshareenumall), NetrSessionEnum, NetrConnectionEnum, NetrFileEnum, NetrRemoteTOD" -- \
  rpcclient -U "$U" "ncacn_np:$DC" -c 'srvinfo;netshareenum;netshareenumall;netsessenum;netconnenum IPC$;netfileenum;netremotetod'
scn lsarpc-np-smb2-rpcclient ncacn_np \
  "rpcclient NTLM over \\pipe\\lsarpc (SMB2): per command LsarOpenPolicy ... LsarClose around LsarQueryInformationPolicy, LsarLookupNames, LsarLookupSids, LsarEnumeratePrivileges, LsarEnumerateAccounts" -- \
  rpcclient -U "$U" "ncacn_np:$DC" -c 'lsaquery;lookupnames administrator alice bob;lookupsids S-1-5-32-544 S-1-5-32-545;enumprivs;lsaenumsid'
scn lsarpc-np-smb2-rpcclient-seal ncacn_np \
  "rpcclient NTLM over \\pipe\\lsarpc with DCE/RPC privacy ([seal]) inside SMB2: LsarOpenPolicy, LsarQueryInformationPolicy, LsarClose, LsarOpenPolicy, LsarLookupNames, LsarClose" -- \
  rpcclient -U "$U" "ncacn_np:${DC}[seal]" -c 'lsaquery;lookupnames administrator'
scn samr-np-smb2-rpcclient ncacn_np \
  "rpcclient NTLM over \\pipe\\samr (SMB2): enumdomusers (SamrConnect5, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain), enumdomgroups (SamrEnumerateGroupsInDomain), querydominfo (SamrQueryInformationDomain); SamrCloseHandle after each" -- \
  rpcclient -U "$U" "ncacn_np:$DC" -c 'enumdomusers;enumdomgroups;querydominfo'
scn srvsvc-np-smb2-smbclient-L ncacn_np \
  "smbclient -L: share list via srvsvc NetrShareEnum over \\pipe\\srvsvc (SMB2)" -- \
  smbclient -U "$U" -L "//$DC"
scn np-smb3-encrypted-rpcclient ncacn_np-smb3-encrypted \
  "rpcclient --client-protection=encrypt over ncacn_np: srvinfo + netshareenumall inside SMB3-encrypted messages (no DCE/RPC visible without keys; NTLM-keyed, decryptable with the admin password)" -- \
  rpcclient -U "$U" --client-protection=encrypt "ncacn_np:$DC" -c 'srvinfo;netshareenumall'
scn srvsvc-np-smb1-rpcclient ncacn_np \
  "rpcclient forced to SMB1 (NT1, client ipc min/max protocol) over \\pipe\\srvsvc and \\pipe\\samr: srvinfo (NetrServerGetInfo), netshareenumall (NetrShareEnum), enumdomusers (samr); DCE/RPC carried in SMB1 Trans/ReadAndX/WriteAndX" -- \
  rpcclient "${SMB1[@]}" -U "$U" "ncacn_np:$DC" -c 'srvinfo;netshareenumall;enumdomusers'
scn srvsvc-np-smb1-smbclient-L ncacn_np \
  "smbclient -m NT1 -L: share list via srvsvc NetrShareEnum over SMB1" -- \
  smbclient "${SMB1[@]}" -m NT1 -U "$U" -L "//$DC"
scn kerberos-np-smb2-rpcclient ncacn_np \
  "kinit, then rpcclient --use-kerberos=required over ncacn_np (Kerberos SMB2 session setup): srvsvc NetrShareEnum + lsarpc LsarOpenPolicy, LsarQueryInformationPolicy, LsarClose" -- \
  bash -c "$KINIT && rpcclient -N --use-kerberos=required \"ncacn_np:$FQDN\" -c \"netshareenumall;lsaquery\""
scn samr-np-smb21-samrdump-impacket ncacn_np \
  "Impacket samrdump.py over \\pipe\\samr, SMB 2.1 forced: SamrConnect, SamrEnumerateDomainsInSamServer, SamrLookupDomainInSamServer, SamrOpenDomain, SamrEnumerateUsersInDomain, then per user SamrOpenUser/SamrQueryInformationUser2/SamrCloseHandle" -- \
  "${SMB21[@]}" samrdump.py "$T"
scn samr-np-smb3enc-samrdump-impacket ncacn_np-smb3-encrypted \
  "Impacket samrdump.py with its default SMB 3.1.1: Samba offers encryption so every SMB3 message is encrypted; no DCE/RPC visible without keys" -- \
  samrdump.py "$T"
scn lsarpc-np-smb21-lookupsid-impacket ncacn_np \
  "Impacket lookupsid.py (max RID 1110) over \\pipe\\lsarpc, SMB 2.1 forced: LsarOpenPolicy2, LsarQueryInformationPolicy2 (domain SID), then 2 LsarLookupSids batches (the first request is sent in 9 fragments)" -- \
  "${SMB21[@]}" lookupsid.py "$T" 1110
scn lsarpc-np-smb21-dpapi-backupkeys-impacket ncacn_np \
  "Impacket dpapi.py backupkeys over \\pipe\\lsarpc, SMB 2.1: LsarOpenPolicy2 then LsarRetrievePrivateData (G\$BCKUPKEY_*) -> nca_op_rng_error fault (not implemented by Samba)" -- \
  "${SMB21[@]}" dpapi.py backupkeys -t "$T"

# ============================================================== coercion
scn coerce-rprn-np-smb21-impacket ncacn_np \
  "Printer-bug pattern (rpc_probes.py coerce-rprn, SMB 2.1) on \\pipe\\spoolss: RpcOpenPrinter, RpcRemoteFindFirstPrinterChangeNotificationEx with a lab listener (answered 0x6ba, no callback), RpcClosePrinter" -- \
  "${SMB21[@]}" "${PROBE[@]}" coerce-rprn
scn coerce-efsr-np-smb21-impacket ncacn_np \
  "PetitPotam pattern (rpc_probes.py coerce-efsr, SMB 2.1): MS-EFSR bind on \\pipe\\lsarpc -> provider rejection; \\pipe\\efsrpc does not exist (SMB create fails), so no EfsRpc call is made" -- \
  "${SMB21[@]}" "${PROBE[@]}" coerce-efsr
scn coerce-dfsnm-np-smb21-impacket ncacn_np \
  "DFSCoerce pattern (rpc_probes.py coerce-dfsnm, SMB 2.1) on \\pipe\\netdfs: NetrDfsRemoveStdRoot and NetrDfsAddStdRoot -> nca_op_rng_error faults (not implemented by Samba)" -- \
  "${SMB21[@]}" "${PROBE[@]}" coerce-dfsnm

T_REC=$(date +%s.%N)
# =============================================================== artefacts
# Keytab of every lab principal (krbtgt, DC1$, Administrator, ...) for the
# Kerberos-sealed captures.  Lab secrets only; exported on every run so that
# it matches the provision the captures were recorded against.  With FILTER
# the captures not re-recorded are kept, and so are the keys that open them:
# the export is merged into the existing keytab (see the header).
rm -f "$WORK/rpclab.keytab" "$WORK/rpclab-export.keytab"
if ip netns exec "$LAB_NS_DC" samba-tool domain exportkeytab "$WORK/rpclab-export.keytab" >/dev/null 2>&1; then
  if [[ -n $FILTER && -s $CAPS/rpclab.keytab ]]; then
    python3 "$LAB/tools/keytab_merge.py" "$WORK/rpclab.keytab" "$CAPS/rpclab.keytab" "$WORK/rpclab-export.keytab" >&2 \
      || FAILED+=("keytab merge")
  else
    cp "$WORK/rpclab-export.keytab" "$WORK/rpclab.keytab"
  fi
  # world-readable on purpose: tests run as any user; these are lab-only keys.
  [[ -s $WORK/rpclab.keytab ]] && install -m 644 "$WORK/rpclab.keytab" "$CAPS/rpclab.keytab"
else
  FAILED+=("keytab export")
fi

MANIFEST=$CAPS/MANIFEST.tsv
declare -A OLD=()
if [[ -n $FILTER && -f $MANIFEST ]]; then
  while IFS= read -r line; do OLD[${line%%$'\t'*}]=$line; done < <(tail -n +2 "$MANIFEST")
fi
{
  printf 'name\ttransport\tcommand\texit_code\tpackets\tdcerpc_pdus\tdescription\n'
  for n in "${ORDER[@]}"; do
    if [[ -n ${ROW[$n]:-} ]]; then printf '%s\n' "${ROW[$n]}"
    elif [[ -n ${OLD[$n]:-} ]]; then printf '%s\n' "${OLD[$n]}"; fi
  done
} >"$MANIFEST.tmp" && mv "$MANIFEST.tmp" "$MANIFEST"
if [[ -z $FILTER ]]; then  # drop pcaps of scenarios that are no longer listed
  declare -A KNOWN=()
  for n in "${ORDER[@]}"; do KNOWN[$n]=1; done
  for f in "$CAPS"/*.pcap; do
    n=$(basename "$f" .pcap)
    [[ -n ${KNOWN[$n]:-} ]] || { echo "removing obsolete $f" >&2; rm -f "$f"; }
  done
fi
T_END=$(date +%s.%N)
echo "outputs of the commands: $WORK/NAME.out" >&2
echo "recorded $RECORDED capture(s) into $CAPS; total $(du -ch "$CAPS"/*.pcap | tail -1 | cut -f1)" >&2
awk -v a="$T0" -v b="$T_UP" -v c="$T_REC" -v d="$T_END" \
  'BEGIN{printf "timings: lab up+venv %.1fs, recording %.1fs, artefacts %.1fs, total %.1fs\n", b-a, c-b, d-c, d-a}' >&2
if ((${#FAILED[@]})); then printf 'PROBLEM: %s\n' "${FAILED[@]}" >&2; exit 1; fi
