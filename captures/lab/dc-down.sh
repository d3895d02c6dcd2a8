#!/usr/bin/env bash
# dc-down.sh [--purge] [--force]
#
# Stops what dc-up.sh started, and only that:
#   1. the samba master whose PID is in LAB_DIR/dc/run/samba.pid (SIGTERM; it
#      takes its children down), then any daemon still alive from the other
#      pid files there (smbd, winbindd, ...).  A PID is signalled only if
#      /proc/PID/ns/net is the lab DC namespace, so a recycled PID or a process
#      outside the lab is never hit;
#   2. deletes the namespaces rpcinspect-dc / rpcinspect-cl (the veth pair goes
#      with them) and /etc/netns/rpcinspect-{dc,cl}.
# Processes still inside a lab namespace after step 1 (e.g. a shell opened with
# in-client.sh) are listed and left alone, and their namespace kept, unless
# --force is given: then exactly those PIDs (all inside the lab) are signalled.
#   --purge  also delete LAB_DIR (the provision); without it the next dc-up.sh
#            reuses the provision and starts in ~1 s.
# Installed packages and the Impacket venv are kept.
set -uo pipefail  # no -e: a half-dead lab must still be cleaned up as far as possible
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PURGE=0; FORCE=0
while (($#)); do
  case $1 in
    --purge) PURGE=1 ;;
    --force) FORCE=1 ;;
    *) echo "usage: $0 [--purge] [--force]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source-path=SCRIPTDIR source=lab.env
source "$HERE/lab.env"
[[ $EUID -eq 0 ]] || lab_die "must run as root"
RUNDIR=$LAB_DIR/dc/run

stop_pid() { # PID LABEL: SIGTERM, wait up to 30 s, then SIGKILL (same PID only)
  local pid=$1 label=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if ! lab_pid_in_ns "$pid" "$LAB_NS_DC"; then
    lab_log "pid $pid ($label) is not in netns $LAB_NS_DC; not touching it"
    return 0
  fi
  lab_log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  lab_log "$label (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
  lab_pid_in_ns "$pid" "$LAB_NS_DC" && kill -KILL "$pid" 2>/dev/null
  sleep 0.5
}

if [[ -s $RUNDIR/samba.pid ]]; then
  stop_pid "$(<"$RUNDIR/samba.pid")" samba
fi
# Daemons that do not go down with the samba master: samba-dcerpcd (started
# on demand by smbd for named pipes in 4.17) lingers; stop each by its pid file.
shopt -s nullglob
for f in "$RUNDIR"/*.pid; do
  [[ $f == */samba.pid ]] && continue
  stop_pid "$(<"$f")" "$(basename "$f" .pid)"
done
# give exiting children a moment before looking for leftovers
for _ in $(seq 1 50); do
  lab_netns_exists "$LAB_NS_DC" || break
  [[ -z $(ip netns pids "$LAB_NS_DC" 2>/dev/null) ]] && break
  sleep 0.2
done

# Anything left inside the namespaces?
for ns in "$LAB_NS_DC" "$LAB_NS_CL"; do
  lab_netns_exists "$ns" || continue
  left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
  [[ -z ${left// } ]] && continue
  lab_log "processes still in netns $ns:"
  for p in $left; do echo "    $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)" >&2; done
  if [[ $FORCE == 1 ]]; then
    for p in $left; do lab_pid_in_ns "$p" "$ns" && kill -TERM "$p" 2>/dev/null; done
    sleep 2
    for p in $left; do lab_pid_in_ns "$p" "$ns" && kill -KILL "$p" 2>/dev/null; done
    sleep 0.5
  else
    lab_log "leaving them alone (--force signals exactly these PIDs); netns $ns is kept"
  fi
done

for ns in "$LAB_NS_CL" "$LAB_NS_DC"; do
  lab_netns_exists "$ns" || continue
  [[ -n $(ip netns pids "$ns" 2>/dev/null) ]] && continue
  ip netns del "$ns" && lab_log "deleted netns $ns"
done
lab_netns_exists "$LAB_NS_DC" || rm -rf "$LAB_ETC_DC"
lab_netns_exists "$LAB_NS_CL" || rm -rf "$LAB_ETC_CL"
rmdir /etc/netns 2>/dev/null || true   # only if nobody else has entries there
rm -f "$RUNDIR"/*.pid
if ! lab_netns_exists "$LAB_NS_DC" && ! lab_netns_exists "$LAB_NS_CL"; then
  rm -f "$LAB_STATEFILE"
fi
if [[ $PURGE == 1 ]]; then
  case $LAB_DIR in
    # Only a dedicated temp directory that really holds a lab provision.
    /tmp/?*|/var/tmp/?*)
      if [[ -d $LAB_DIR/dc || -f $LAB_DIR/krb5.conf ]]; then rm -rf "$LAB_DIR" && lab_log "removed $LAB_DIR"
      else lab_log "$LAB_DIR does not look like a lab dir; not purging"; fi ;;
    *) lab_die "refusing to purge $LAB_DIR (only under /tmp or /var/tmp)" ;;
  esac
fi
lab_log "lab is down"
