"""pytest plugin: the project's live Samba AD DC lab (captures/lab/).

Use it either as a plugin (``pytest_plugins = ["labfixture"]`` in the root
conftest, tests/ being on sys.path there; or ``["tests.labfixture"]`` when the
repository root is importable), or import the fixture into a test module:
``from labfixture import samba_lab``.

``samba_lab`` (session scope):

* skips when not root or when ``RPCINSPECT_NO_LAB=1``;
* runs ``captures/lab/dc-up.sh`` (installs the missing Debian packages with
  apt-get, provisions or reuses the DC, starts it in netns rpcinspect-dc and
  waits until it answers) and ``captures/lab/impacket-venv.sh``;
* yields a :class:`SambaLab` with ``run(cmd)`` (runs a command in the client
  namespace) and ``capture(name, cmd, outdir)`` (same, recorded into a pcap);
* at session end runs ``captures/lab/dc-down.sh`` (stops samba by PID, removes
  the namespaces) -- unless the lab was already running before the session
  (then it is left as found) or ``RPCINSPECT_LAB_KEEP=1``.

All traffic stays inside the two lab namespaces (no default route there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LABDIR = REPO / "captures" / "lab"

# Fixed lab facts (see captures/lab/lab.env; throwaway credentials).
DC_IP = "10.135.0.10"
DC_FQDN = "dc1.rpclab.test"
DOMAIN = "RPCLAB"
REALM = "RPCLAB.TEST"
ADMIN_PASS = "RpcLab-Passw0rd"
NS_DC = "rpcinspect-dc"
NS_CL = "rpcinspect-cl"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs the live Samba lab (root, network namespaces)")


@dataclass
class SambaLab:
    """Handle on the running lab, given to tests by the ``samba_lab`` fixture."""

    labdir: Path = LABDIR
    dc_ip: str = DC_IP
    dc_fqdn: str = DC_FQDN
    domain: str = DOMAIN
    realm: str = REALM
    admin_user: str = f"{DOMAIN}\\Administrator"
    admin_pass: str = ADMIN_PASS
    impacket: bool = False  # True when the Impacket venv is available
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def samba_creds(self) -> str:
        """``-U`` argument for Samba tools (rpcclient, smbclient, samba-tool)."""
        return f"{self.admin_user}%{self.admin_pass}"

    def run(
        self, cmd: Sequence[str], timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess:
        """Run CMD in the client namespace (lab hosts/krb5.conf/smb.conf, venv on PATH)."""
        return subprocess.run(
            [str(self.labdir / "in-client.sh"), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self.env,
            cwd=REPO,
        )

    def capture(self, name: str, cmd: Sequence[str], outdir: Path, timeout: float = 120) -> Path:
        """Run CMD in the client namespace while tcpdump records OUTDIR/NAME.pcap.

        The default capture filter (capture.sh) keeps all DC<->client traffic
        except DNS and LDAP.  CMD's output lands in OUTDIR/NAME.out, its
        command line and exit code in OUTDIR/NAME.cmd.  CMD's exit status is
        not checked (rejection scenarios exit non-zero on purpose).
        """
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, LAB_CAPDIR=str(outdir))
        # "timeout" inside the namespace bounds CMD; the outer timeout bounds tcpdump + CMD.
        subprocess.run(
            [str(self.labdir / "capture.sh"), name, "timeout", str(int(timeout)), *cmd],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            env=env,
            cwd=REPO,
        )
        pcap = outdir / f"{name}.pcap"
        if not pcap.is_file():
            log = outdir / f"{name}.tcpdump.log"
            raise RuntimeError(f"no capture written: {log.read_text() if log.is_file() else '?'}")
        return pcap


def _lab_running() -> bool:
    return Path(f"/run/netns/{NS_DC}").exists()


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="session")
def samba_lab() -> Iterator[SambaLab]:
    if os.environ.get("RPCINSPECT_NO_LAB") == "1":
        pytest.skip("RPCINSPECT_NO_LAB=1: live Samba lab disabled")
    if os.geteuid() != 0:
        pytest.skip("the live Samba lab needs root (network namespaces, tcpdump, apt-get)")
    if shutil.which("ip") is None:
        pytest.skip("the live Samba lab needs iproute2 (ip netns)")
    was_running = _lab_running()
    up = subprocess.run([str(LABDIR / "dc-up.sh")], capture_output=True, text=True, timeout=1800)
    if up.returncode != 0:
        pytest.fail(f"captures/lab/dc-up.sh failed (exit {up.returncode}):\n{_tail(up.stderr + up.stdout)}")
    venv = subprocess.run([str(LABDIR / "impacket-venv.sh")], capture_output=True, text=True, timeout=900)
    lab = SambaLab(impacket=venv.returncode == 0)
    try:
        yield lab
    finally:
        if not was_running and os.environ.get("RPCINSPECT_LAB_KEEP") != "1":
            subprocess.run([str(LABDIR / "dc-down.sh")], capture_output=True, text=True, timeout=300)
