#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs ruff and pytest.
#   scripts/test.sh [PYTEST ARGS...]
# Debian packages: tshark (reference decoder), tcpdump and libpcap-dev (capture, fast prefilter),
# krb5-user (MIT klist, the reference for the keytab reader);
# the lab fixture installs Samba itself when a lab test runs. Python packages come from
# pyproject.toml into ./.venv. Set RPCINSPECT_NO_LAB=1 to skip the live-lab tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v klist >/dev/null || need+=(krb5-user)
[[ -f /usr/include/pcap/pcap.h ]] || need+=(libpcap-dev)
command -v gcc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
  echo "installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/python -m ruff check rpcinspect dissectors tests bench scripts
exec .venv/bin/python -m pytest "$@"
