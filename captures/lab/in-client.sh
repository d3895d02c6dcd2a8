#!/usr/bin/env bash
# in-client.sh CMD [ARGS...]
# Runs CMD inside the lab's client network namespace (10.135.0.20), whose only
# reachable addresses are lo and the DC 10.135.0.10, with the lab environment:
#  - /etc/hosts, resolv.conf, krb5.conf, samba/smb.conf are the lab's
#    (ip-netns bind mounts from /etc/netns/rpcinspect-cl);
#  - KRB5_CONFIG, and a lab-private KRB5CCNAME that is a plain path (Impacket
#    does not understand the "FILE:" prefix);
#  - the Impacket venv's bin/ first on PATH;
#  - LAB_* variables for probe scripts.
# Exit status is CMD's.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.env
source "$HERE/lab.env"
(($#)) || lab_die "usage: $0 CMD [ARGS...]"
[[ $EUID -eq 0 ]] || lab_die "must run as root (ip netns exec)"
lab_netns_exists "$LAB_NS_CL" || lab_die "netns $LAB_NS_CL not found; run dc-up.sh first"
exec ip netns exec "$LAB_NS_CL" env \
  KRB5_CONFIG="$LAB_DIR/krb5.conf" \
  KRB5CCNAME="${LAB_KRB5CCNAME:-$LAB_DIR/client/krb5cc_lab}" \
  PATH="$LAB_VENV/bin:$PATH" \
  LAB_DIR="$LAB_DIR" LAB_DC_IP="$LAB_DC_IP" LAB_DC_FQDN="$LAB_DC_FQDN" LAB_DC_NAME="$LAB_DC_NAME" \
  LAB_DOMAIN="$LAB_DOMAIN" LAB_REALM="$LAB_REALM" LAB_DNSDOMAIN="$LAB_DNSDOMAIN" \
  LAB_ADMIN_PASS="$LAB_ADMIN_PASS" LAB_USER_PASS="$LAB_USER_PASS" LAB_NET="$LAB_NET" \
  "$@"
