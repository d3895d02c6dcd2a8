#!/usr/bin/env bash
# impacket-venv.sh [VENV]
# Creates (idempotently) the venv with impacket==0.13.1 that the lab's
# Impacket clients run from (default $LAB_VENV = /tmp/rpcinspect-lab-venv).
# Needs PyPI: run it on the host, never inside a lab namespace (those have no
# route anywhere).  The version is pinned because the recorded captures (and
# the Samba quirks documented in captures/README.md) depend on it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lab.env
source "$HERE/lab.env"
VENV=${1:-$LAB_VENV}
IMPACKET_VERSION=${IMPACKET_VERSION:-0.13.1}
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import sys, impacket.version as v; sys.exit(0 if v.version.startswith('$IMPACKET_VERSION') else 1)" 2>/dev/null; then
  lab_log "impacket $IMPACKET_VERSION already in $VENV"
  exit 0
fi
# Any python3 >= 3.8 will do; prefer the system one (stable path, not a shim).
PY=${LAB_PYTHON:-}
if [[ -z $PY ]]; then
  if /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then PY=/usr/bin/python3; else PY=$(command -v python3); fi
fi
lab_log "creating $VENV with $PY and installing impacket==$IMPACKET_VERSION"
"$PY" -m venv --clear "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "impacket==$IMPACKET_VERSION"
"$VENV/bin/python" -c 'import impacket.version as v; print("impacket", v.version)'
