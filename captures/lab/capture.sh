#!/usr/bin/env bash
# capture.sh NAME CMD [ARGS...]
# Records the traffic of one client command: starts tcpdump on the client end
# of the lab veth (netns rpcinspect-cl, iface ri-cl: every packet between the
# clients and the DC crosses it) writing $LAB_CAPDIR/NAME.pcap, runs CMD in the
# client netns via in-client.sh, keeps capturing LAB_CAPTURE_TAIL seconds for
# the last FIN/ACKs, then stops tcpdump by its PID with SIGINT so the pcap is
# flushed and complete.  Full packets (snaplen 0): nothing is cut off.
# Side files: NAME.cmd (command line + "exit_code=N"), NAME.out (CMD's
# stdout+stderr), NAME.tcpdump.log.  Exit status is CMD's.
#
# Env:
#   LAB_CAPDIR          output directory (default $LAB_DIR/captures, a temp dir)
#   LAB_CAPTURE_FILTER  pcap filter (default: everything to/from the DC, except
#                       DNS and LDAP/GC/CLDAP, which are noise for RPC analysis)
#   LAB_CAPTURE_TAIL    seconds to keep capturing after CMD exits (default 1)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.env
source "$HERE/lab.env"
(($# >= 2)) || lab_die "usage: $0 NAME CMD [ARGS...]"
NAME=$1; shift
[[ $NAME =~ ^[A-Za-z0-9._-]+$ ]] || lab_die "NAME may only contain [A-Za-z0-9._-]"
lab_netns_exists "$LAB_NS_CL" || lab_die "netns $LAB_NS_CL not found; run dc-up.sh first"
FILTER=${LAB_CAPTURE_FILTER-host $LAB_DC_IP and not port 53 and not port 389 and not port 636 and not port 3268 and not port 3269}
mkdir -p "$LAB_CAPDIR"
PCAP=$LAB_CAPDIR/$NAME.pcap
LOG=$LAB_CAPDIR/$NAME.tcpdump.log
rm -f "$PCAP"
# -Z root: Debian's tcpdump otherwise drops to user "tcpdump" before opening
# the -w file (which may be in a root-only directory).  -U: packet-buffered,
# so a SIGINT never loses the tail.  -s 0: full packets.
# shellcheck disable=SC2086  # FILTER is a list of pcap filter words
ip netns exec "$LAB_NS_CL" tcpdump -i "$LAB_IF_CL" -n -s 0 -U -Z root -w "$PCAP" $FILTER 2>"$LOG" &
TPID=$!
# shellcheck disable=SC2317  # called via trap
cleanup() { if kill -0 "$TPID" 2>/dev/null; then kill -INT "$TPID" 2>/dev/null; wait "$TPID" 2>/dev/null; fi; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do grep -q 'listening on' "$LOG" 2>/dev/null && break; sleep 0.1; done
grep -q 'listening on' "$LOG" || lab_die "tcpdump did not start: $(cat "$LOG")"
printf '%q ' "$@" >"$LAB_CAPDIR/$NAME.cmd"; echo >>"$LAB_CAPDIR/$NAME.cmd"
set +e
"$HERE/in-client.sh" "$@" >"$LAB_CAPDIR/$NAME.out" 2>&1
RC=$?
set -e
sleep "${LAB_CAPTURE_TAIL:-1}"
kill -INT "$TPID"
wait "$TPID" || true
trap - EXIT INT TERM
echo "exit_code=$RC" >>"$LAB_CAPDIR/$NAME.cmd"
lab_log "capture $PCAP: $(grep -E 'packets captured' "$LOG" || echo '?'); command exit code $RC"
exit "$RC"
