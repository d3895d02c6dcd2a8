#!/usr/bin/env bash
# dc-up.sh [--fresh]
#
# Brings up the rpcinspect lab: a throwaway Samba AD domain controller (realm
# RPCLAB.TEST, DC dc1.rpclab.test = 10.135.0.10) in netns rpcinspect-dc and an
# empty client netns rpcinspect-cl (10.135.0.20), joined by a veth pair.
# Installs the Debian packages it needs if they are missing.  Idempotent: if
# the lab DC is already running (with the requested extra config) it says so
# and exits 0; stale state from a crashed run is cleaned up first.
#
#   --fresh  throw away an existing provision in LAB_DIR and provision again
#            (default: reuse a complete provision from an earlier run; a
#            reused start takes ~1 s instead of ~8 s).
#
# Env:
#   LAB_DIR            provision/logs/pids/client state (default /tmp/rpcinspect-lab).
#                      Nothing under /etc/samba or /var/lib/samba is read or written.
#   RPCLAB_EXTRA_CONF  extra "name = value" lines (newline-separated) for [global]
#                      of the DC's smb.conf, e.g. 'server min protocol = NT1'.
#                      Unset: keep whatever a running lab has.  Set (even empty):
#                      a running lab with a different extra config is restarted.
#
# Run clients with in-client.sh, record with capture.sh, stop with dc-down.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRESH=0
case ${1:-} in --fresh) FRESH=1 ;; "") ;; *) echo "usage: $0 [--fresh]" >&2; exit 2 ;; esac
# shellcheck source-path=SCRIPTDIR source=lab.env
source "$HERE/lab.env"
[[ $EUID -eq 0 ]] || lab_die "must run as root (network namespaces, mounts, tcpdump)"
# A dedicated directory: dc-down.sh --purge deletes it.
case $LAB_DIR in /tmp/?*|/var/tmp/?*) ;; *) lab_die "LAB_DIR=$LAB_DIR: use a dedicated directory under /tmp or /var/tmp";; esac

DCDIR=$LAB_DIR/dc
SMBCONF=$DCDIR/etc/smb.conf
RUNDIR=$DCDIR/run
APPLIED_EXTRA=$DCDIR/extra-conf.applied
T0=$(lab_now)

# ---------------------------------------------------------------- packages
# samba-ad-provision holds the AD schema/provision templates (only
# "recommended" by samba-ad-dc, so --no-install-recommends would skip it);
# krb5-config creates /etc/krb5.conf, which must exist for ip-netns to
# bind-mount the lab's krb5.conf over it.  krb5-user: kinit/kvno for the
# Kerberos scenarios.  python3-samba: samba-tool and tools/samba_dcsync.py.
PKGS=(samba samba-ad-dc samba-ad-provision smbclient winbind krb5-user krb5-config
      python3-samba tcpdump tshark iproute2 python3-venv)
missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $st == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  lab_log "installing missing packages: ${missing[*]}"
  # A temporary policy-rc.d keeps the packages' maintainer scripts from
  # starting the distribution's own smbd/nmbd/samba-ad-dc on the host: the lab
  # DC must run only inside its namespace.
  POLICY_CREATED=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_CREATED=1
  fi
  trap '[[ $POLICY_CREATED == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer "no" up front.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [[ $POLICY_CREATED == 1 ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_CREATED=0; fi
  trap - EXIT
else
  lab_log "packages already installed"
fi
T_PKG=$(lab_now)

# ------------------------------------------------------- already running?
if [[ -s $RUNDIR/samba.pid ]]; then
  pid=$(<"$RUNDIR/samba.pid")
  if kill -0 "$pid" 2>/dev/null && lab_pid_in_ns "$pid" "$LAB_NS_DC"; then
    applied=$(cat "$APPLIED_EXTRA" 2>/dev/null || true)
    if [[ -z ${RPCLAB_EXTRA_CONF+set} || $applied == "$RPCLAB_EXTRA_CONF" ]]; then
      lab_log "lab DC already running (samba pid $pid in netns $LAB_NS_DC); nothing to do"
      echo "$LAB_DIR" >"$LAB_STATEFILE"
      exit 0
    fi
    lab_log "lab DC is running with a different RPCLAB_EXTRA_CONF; restarting it"
  fi
fi
# Leftovers of an earlier run (or the restart above): take them down first.
if lab_netns_exists "$LAB_NS_DC" || lab_netns_exists "$LAB_NS_CL" || [[ -d $LAB_ETC_DC || -d $LAB_ETC_CL ]]; then
  lab_log "existing lab state found; running dc-down.sh first"
  LAB_DIR=$LAB_DIR "$HERE/dc-down.sh"
  if lab_netns_exists "$LAB_NS_DC" || lab_netns_exists "$LAB_NS_CL"; then
    lab_die "lab namespaces still in use (see above); stop those processes or use dc-down.sh --force"
  fi
fi

# ------------------------------------------------------ network namespaces
lab_log "creating netns $LAB_NS_DC ($LAB_DC_IP) and $LAB_NS_CL ($LAB_CL_IP)"
for ns in "$LAB_NS_DC" "$LAB_NS_CL"; do
  ip netns add "$ns"
  # IPv4 only: no link-local v6 addresses, no ND/MLD chatter in the captures.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip link add "$LAB_IF_CL" address "$LAB_MAC_CL" netns "$LAB_NS_CL" type veth \
        peer name "$LAB_IF_DC" address "$LAB_MAC_DC" netns "$LAB_NS_DC"
ip -n "$LAB_NS_DC" addr add "$LAB_DC_IP/$LAB_PREFIX" dev "$LAB_IF_DC"
ip -n "$LAB_NS_CL" addr add "$LAB_CL_IP/$LAB_PREFIX" dev "$LAB_IF_CL"
ip -n "$LAB_NS_DC" link set "$LAB_IF_DC" up
ip -n "$LAB_NS_CL" link set "$LAB_IF_CL" up
# Network safety: no default route in either namespace => no way out.
for ns in "$LAB_NS_DC" "$LAB_NS_CL"; do
  [[ -z $(ip -n "$ns" route show default) ]] || lab_die "unexpected default route in $ns"
done

# ------------------------------------- per-namespace /etc overrides (ip-netns)
# The host's /etc/resolv.conf and /etc/krb5.conf point at real servers; lab
# processes must only ever see the lab's.
mkdir -p "$LAB_DIR/client"/{lock,state,cache,private,run,log,work} "$LAB_ETC_DC/samba" "$LAB_ETC_CL/samba"
cat >"$LAB_DIR/hosts" <<EOT
127.0.0.1 localhost
$LAB_DC_IP $LAB_DC_FQDN $LAB_DC_NAME
$LAB_CL_IP $LAB_CL_NAME.$LAB_DNSDOMAIN $LAB_CL_NAME
EOT
cat >"$LAB_DIR/krb5.conf" <<EOT
[libdefaults]
    default_realm = $LAB_REALM
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    forwardable = true

[realms]
    $LAB_REALM = {
        kdc = $LAB_DC_IP
        admin_server = $LAB_DC_IP
        default_domain = $LAB_DNSDOMAIN
    }

[domain_realm]
    .$LAB_DNSDOMAIN = $LAB_REALM
    $LAB_DNSDOMAIN = $LAB_REALM
EOT
printf 'nameserver %s\nsearch %s\n' "$LAB_DC_IP" "$LAB_DNSDOMAIN" >"$LAB_DIR/resolv.conf"
for d in "$LAB_ETC_DC" "$LAB_ETC_CL"; do
  cp "$LAB_DIR/hosts" "$LAB_DIR/resolv.conf" "$LAB_DIR/krb5.conf" "$d/"
done
# Client smb.conf for Samba's client tools in the client netns: the lab realm,
# and all client state under LAB_DIR/client (never /var/lib/samba).
C=$LAB_DIR/client
cat >"$LAB_ETC_CL/samba/smb.conf" <<EOT
[global]
    workgroup = $LAB_DOMAIN
    realm = $LAB_REALM
    netbios name = ${LAB_CL_NAME^^}
    disable netbios = yes
    lock directory = $C/lock
    state directory = $C/state
    cache directory = $C/cache
    private dir = $C/private
    pid directory = $C/run
    ncalrpc dir = $C/run/ncalrpc
    log file = $C/log/log.%m
    logging = file
EOT

# ------------------------------------------------------------- provisioning
T_NET=$(lab_now)
if [[ $FRESH == 1 ]]; then rm -rf "$DCDIR"; fi
if [[ -f $DCDIR/.provisioned && -f $SMBCONF ]]; then
  lab_log "reusing the provision in $DCDIR (--fresh to re-provision)"
  PROVISIONED=reused
else
  rm -rf "$DCDIR"
  mkdir -p "$DCDIR"
  lab_log "provisioning $LAB_REALM into $DCDIR"
  # Inside the DC netns, so that provision sees the lab resolv.conf/hosts.
  ip netns exec "$LAB_NS_DC" samba-tool domain provision \
      --targetdir="$DCDIR" \
      --realm="$LAB_REALM" --domain="$LAB_DOMAIN" --server-role=dc \
      --dns-backend=SAMBA_INTERNAL --use-rfc2307 \
      --host-name="$LAB_DC_NAME" --host-ip="$LAB_DC_IP" \
      --adminpass="$LAB_ADMIN_PASS" \
      --option="netbios name = ${LAB_DC_NAME^^}" \
      --option="interfaces = 127.0.0.1 $LAB_DC_IP" \
      --option="bind interfaces only = yes" \
      --option="disable netbios = yes" \
      --option="pid directory = $RUNDIR" \
      --option="ncalrpc dir = $RUNDIR/ncalrpc" \
      --option="ntp signd socket directory = $RUNDIR/ntp_signd" \
      --option="log file = $DCDIR/log/log.%m" \
      --option="logging = file" \
      --option="max log size = 10000" \
      >"$LAB_DIR/provision.log" 2>&1 \
    || { tail -30 "$LAB_DIR/provision.log" >&2; lab_die "provision failed (see $LAB_DIR/provision.log)"; }
  # provision copies resolv.conf's nameserver (the DC itself) into "dns
  # forwarder"; drop it so that the DC's DNS never forwards anywhere.
  sed -i '/^\s*dns forwarder\s*=/d' "$SMBCONF"
  mkdir -p "$DCDIR/share"
  echo "hello from the rpcinspect lab" >"$DCDIR/share/readme.txt"
  cat >>"$SMBCONF" <<EOT

[labshare]
    path = $DCDIR/share
    comment = rpcinspect lab share
    read only = yes
EOT
  # A few principals so that enumerations return something.
  for u in alice bob; do
    ip netns exec "$LAB_NS_DC" samba-tool user create "$u" "$LAB_USER_PASS" \
        -s "$SMBCONF" --given-name="${u^}" >>"$LAB_DIR/provision.log" 2>&1
  done
  ip netns exec "$LAB_NS_DC" samba-tool group add LabOperators -s "$SMBCONF" >>"$LAB_DIR/provision.log" 2>&1
  ip netns exec "$LAB_NS_DC" samba-tool group addmembers LabOperators alice -s "$SMBCONF" >>"$LAB_DIR/provision.log" 2>&1
  touch "$DCDIR/.provisioned"
  PROVISIONED=fresh
fi
# Extra [global] lines live between markers and are replaced at every start.
sed -i '/^# RPCLAB_EXTRA_CONF begin$/,/^# RPCLAB_EXTRA_CONF end$/d' "$SMBCONF"
EXTRA=${RPCLAB_EXTRA_CONF:-}
if [[ -n $EXTRA ]]; then
  lab_log "extra smb.conf [global] lines: ${EXTRA//$'\n'/; }"
  tmp=$SMBCONF.tmp
  awk -v extra="$EXTRA" '
    { print }
    /^\[global\]/ && !done {
      print "# RPCLAB_EXTRA_CONF begin"
      n = split(extra, lines, "\n")
      for (i = 1; i <= n; i++) { l = lines[i]; gsub(/^[ \t]+|[ \t]+$/, "", l); if (l != "") print "\t" l }
      print "# RPCLAB_EXTRA_CONF end"
      done = 1
    }' "$SMBCONF" >"$tmp"
  mv "$tmp" "$SMBCONF"
fi
printf '%s' "$EXTRA" >"$APPLIED_EXTRA"
# samba-tool etc. run inside the DC netns pick up the lab smb.conf without -s.
ln -sfn "$SMBCONF" "$LAB_ETC_DC/samba/smb.conf"
T_PROV=$(lab_now)

# --------------------------------------------------------------------- start
mkdir -p "$RUNDIR/run-samba" "$DCDIR/log" /run/samba
lab_log "starting samba (AD DC) in netns $LAB_NS_DC"
# The /run/samba trap: smbd finds winbindd (needed for SID->uid mapping at
# every SMB logon) only at the compiled-in /run/samba/winbindd/pipe; with a
# relocated socket dir every SMB session setup fails with
# NT_STATUS_INTERNAL_ERROR after a successful NTLM check.  Using the host's
# /run/samba would let host processes (nsswitch "winbind") talk to the lab DC.
# "ip netns exec" gives the command its own mount namespace whose mounts do
# not propagate back, so we bind-mount a lab directory over /run/samba there.
# shellcheck disable=SC2016  # $1/$2 are expanded by that inner sh
ip netns exec "$LAB_NS_DC" sh -c 'mount --bind "$1" /run/samba && exec samba -D -s "$2"' \
    rpcinspect-lab-start "$RUNDIR/run-samba" "$SMBCONF"
for _ in $(seq 1 300); do [[ -s $RUNDIR/samba.pid ]] && break; sleep 0.2; done
[[ -s $RUNDIR/samba.pid ]] || lab_die "samba did not write $RUNDIR/samba.pid (see $DCDIR/log/)"
SAMBA_PID=$(<"$RUNDIR/samba.pid")
echo "$LAB_DIR" >"$LAB_STATEFILE"
listening() { local o; o=$(ip netns exec "$LAB_NS_DC" ss -Hltn "sport = :$1"); [[ $o == *LISTEN* ]]; }
ready=0
for _ in $(seq 1 600); do
  kill -0 "$SAMBA_PID" 2>/dev/null || lab_die "samba (pid $SAMBA_PID) exited; see $DCDIR/log/"
  if listening 135 && listening 445 && listening 88 && listening 389 && listening 53; then ready=1; break; fi
  sleep 0.2
done
[[ $ready == 1 ]] || lab_die "DC ports 135/445/88/389/53 not all listening after 120 s"
# Functional readiness: an anonymous EPM lookup from the client netns must list
# the dynamic ncacn_ip_tcp endpoints (they appear a little after 135 listens),
# and an authenticated IPC$ tree connect must work.  Output is captured into a
# variable first: "cmd | grep -q" under pipefail fails at random when grep
# exits early and cmd dies of SIGPIPE.
for _ in $(seq 1 120); do
  epm_out=$(ip netns exec "$LAB_NS_CL" rpcclient -N -U% "ncacn_ip_tcp:$LAB_DC_IP" -c epmlookup 2>/dev/null || true)
  if [[ $epm_out == *ncacn_ip_tcp* ]] \
     && ip netns exec "$LAB_NS_CL" smbclient -U "$LAB_DOMAIN\\Administrator%$LAB_ADMIN_PASS" "//$LAB_DC_IP/IPC\$" -c exit >/dev/null 2>&1; then
    ready=2; break
  fi
  sleep 0.5
done
[[ $ready == 2 ]] || lab_die "DC listens but the EPM/SMB probes fail; see $DCDIR/log/"
T_UP=$(lab_now)

cat >"$LAB_DIR/timings.txt" <<EOT
provision: $PROVISIONED
packages_check_or_install_s: $(lab_elapsed "$T0" "$T_PKG")
netns_setup_s: $(lab_elapsed "$T_PKG" "$T_NET")
provision_s: $(lab_elapsed "$T_NET" "$T_PROV")
start_until_ready_s: $(lab_elapsed "$T_PROV" "$T_UP")
total_s: $(lab_elapsed "$T0" "$T_UP")
EOT
lab_log "lab DC is up (samba pid $SAMBA_PID)"
cat >&2 <<EOT
  DC:       $LAB_DC_FQDN $LAB_DC_IP (netns $LAB_NS_DC), realm $LAB_REALM, domain $LAB_DOMAIN
  client:   $LAB_CL_IP (netns $LAB_NS_CL, iface $LAB_IF_CL); run tools with $HERE/in-client.sh CMD...
  creds:    $LAB_DOMAIN\\Administrator / $LAB_ADMIN_PASS (users alice, bob / $LAB_USER_PASS)
  smb.conf: $SMBCONF   logs: $DCDIR/log/
  timings:  $(tr '\n' ' ' <"$LAB_DIR/timings.txt")
  stop:     $HERE/dc-down.sh
EOT
