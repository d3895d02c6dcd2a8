"""The command line as a user meets it: help at 80 columns, the progress bar, damaged and foreign input.

The CLI runs as a real subprocess (``python -m rpcinspect``), each with a timeout so a hang fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import builders as b
import pytest
from rich.console import Console
from test_hostile import extreme_frag_len_capture, many_contexts_capture
from typer.main import get_command

from rpcinspect.cli.main import _progress, app

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPCINSPECT_")}
    env.update(COLUMNS=str(columns), LINES="50")
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "rpcinspect", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=REPO,
    )


# -- help ---------------------------------------------------------------------------------------------
def _option_names(command_path: list[str]) -> list[str]:
    """Every visible option name of a command, from the command object itself."""
    cmd = get_command(app)
    for name in command_path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    names: list[str] = []
    ctx = cmd.make_context("rpcinspect", ["--help"], resilient_parsing=True)
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False) or p.param_type_name != "option":
            continue
        names += [*p.opts, *p.secondary_opts]
    return names


def _env_vars_read_by_the_code() -> set[str]:
    """``RPCINSPECT_*`` variables the package reads with os.environ / os.getenv."""
    pattern = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*["'](RPCINSPECT_[A-Z0-9_]+)["']""")
    found: set[str] = set()
    for src in (REPO / "rpcinspect").rglob("*.py"):
        found |= set(pattern.findall(src.read_text()))
    return found


def test_the_code_reads_environment_variables() -> None:
    assert {"RPCINSPECT_PASSWORD", "RPCINSPECT_NT_HASH", "RPCINSPECT_KEYTAB"} <= _env_vars_read_by_the_code()


@pytest.mark.parametrize("command", [[], ["analyze"]], ids=["rpcinspect", "analyze"])
def test_help_is_complete_at_80_columns(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr and proc.stderr == ""
    assert "…" not in out and "..." not in out.replace("FILE...", "").replace("[ARGS]...", "")
    assert max(len(line) for line in out.splitlines()) <= 80
    for name in _option_names(command):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", out), f"{name} missing from the help"
    # metavars are words a user reads, not Python types or braces
    for bad in ("<bool>", "<list", "<file>", "<int", "<path", "{files}", "{FILE"):
        assert bad not in out.lower(), bad
    if command == ["analyze"]:
        assert re.search(r"Usage: .* analyze \[OPTIONS\] FILE\.\.\.\s*$", out, re.M)
        for var in _env_vars_read_by_the_code():
            assert re.search(rf"(?<!\w){var}(?!\w)", out), f"{var} missing from the help"


def test_short_help_flag_and_version() -> None:
    assert cli("analyze", "-h").stdout == cli("analyze", "--help").stdout
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("rpcinspect ")


def test_prefilter_flags(tmp_path: Path) -> None:
    p = b.write(tmp_path / "t.pcap", extreme_frag_len_capture(0))
    outs = []
    for flag in ("--no-prefilter", "--prefilter"):
        proc = cli("analyze", "-q", "-f", "jsonl", flag, str(p))
        assert proc.returncode == 0, proc.stderr
        outs.append([r for r in map(json.loads, proc.stdout.splitlines()) if r["record"] == "call"])
    assert outs[0] == outs[1] and len(outs[0]) == 2


# -- progress bar ------------------------------------------------------------------------------------
def test_progress_bar_draws_and_finishes(tmp_path: Path) -> None:
    big = tmp_path / "big.pcap"
    size = 40 << 20  # over the 32 MiB threshold; sparse, so cheap
    with big.open("wb") as f:
        f.truncate(size)
    buf = StringIO()
    console = Console(file=buf, force_terminal=True, width=80)
    update, done = _progress(console, [big], enabled=True)
    assert update is not None
    update(str(big), size // 4)
    update(str(big), size)
    done()
    out = buf.getvalue()
    assert "analyzing" in out and "big.pcap" in out and "━" in out  # drawn, named after the file
    assert f"{size / 1e6:.1f}/{size / 1e6:.1f} MB" in out  # reached the total (decimal MB)
    assert out.index("\x1b[?25l") < out.rindex("\x1b[?25h")  # cursor hidden, then shown again
    assert out.endswith("\x1b[2K")  # transient: the bar is erased when done
    prog = done.__self__  # type: ignore[attr-defined]
    assert prog.finished and not prog.live.is_started


def test_progress_bar_only_for_large_inputs_on_a_terminal(tmp_path: Path) -> None:
    small = b.write(tmp_path / "small.pcap", b"\0" * 1000)
    console = Console(file=StringIO(), force_terminal=True)
    update, done = _progress(console, [small], enabled=True)
    assert update is None
    done()
    big = tmp_path / "big.pcap"
    with big.open("wb") as f:
        f.truncate(40 << 20)
    update, done = _progress(console, [big], enabled=False)
    assert update is None
    done()
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


# -- damaged input through the CLI --------------------------------------------------------------------
def _jsonl(proc: subprocess.CompletedProcess[str]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _assert_clean(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) <= 1, proc.stderr


@pytest.mark.parametrize(
    ("frag_len", "counter"),
    [(0, "malformed_pdu"), (65535, "truncated_pdu")],  # 0 < 16: implausible; 64 KiB: cut short by the end
)
def test_cli_on_extreme_frag_length(tmp_path: Path, frag_len: int, counter: str) -> None:
    p = b.write(tmp_path / "f.pcap", extreme_frag_len_capture(frag_len))
    table = cli("analyze", str(p))
    _assert_clean(table, 0)  # damaged PDUs are counted, not errors (README: exit codes)
    assert re.search(rf"Malformed or undecodable:.*\b{counter} 1\b", table.stdout), table.stdout
    jl = cli("analyze", "--format", "jsonl", str(p))
    _assert_clean(jl, 0)
    recs = _jsonl(jl)
    assert recs[-1]["record"] == "summary" and recs[-1]["counters"][counter] == 1
    assert recs[-1]["errors"] == []
    assert any(r["record"] == "call" and r["call_id"] == 2 and r["status"] == "ok" for r in recs)


def test_cli_on_bind_with_255_contexts(tmp_path: Path) -> None:
    p = b.write(tmp_path / "c.pcap", many_contexts_capture(255))
    table = cli("analyze", str(p))
    _assert_clean(table, 0)
    assert "SamrConnect5" in table.stdout and "Malformed" not in table.stdout  # a legal bind
    jl = cli("analyze", "--format", "jsonl", str(p))
    _assert_clean(jl, 0)
    recs = _jsonl(jl)
    [bind] = [r for r in recs if r["record"] == "bind"]
    assert len(bind["contexts"]) == 255 and {c["result"] for c in bind["contexts"]} == {"acceptance"}
    [call] = [r for r in recs if r["record"] == "call"]
    assert (call["ctx_id"], call["operation"], call["status"]) == (254, "SamrConnect5", "ok")
    counters = recs[-1]["counters"]
    assert not [k for k in counters if k.startswith(("malformed", "truncated", "context_limit"))]


@pytest.mark.parametrize("port", [8080, 443, 50000])
def test_random_bytes_on_a_non_rpc_port_give_no_calls(tmp_path: Path, port: int) -> None:
    rng = random.Random(port)
    frames: list[bytes] = []
    for i in range(20):
        conv = b.Conv(sport=30000 + i, dport=port)
        conv.handshake()
        for _ in range(15):
            conv.send(rng.random() < 0.5, rng.randbytes(rng.randint(1, 1460)))
        frames += conv.frames
    p = b.write(tmp_path / "noise.pcap", b.pcap(frames))
    for extra in ([], ["--no-prefilter"]):
        proc = cli("analyze", "--format", "jsonl", *extra, str(p))
        _assert_clean(proc, 0)
        recs = _jsonl(proc)
        assert [r["record"] for r in recs] == ["summary"]
        assert recs[0]["calls"] == 0 and recs[0]["binds"] == 0


def test_table_output_to_a_file(tmp_path: Path) -> None:
    """``-o FILE`` with the table format writes the summary there (plain text), not to stdout."""
    demo = REPO / "captures" / "demo.pcap"
    out = tmp_path / "summary.txt"
    proc = cli("analyze", "-o", str(out), str(demo))
    assert proc.returncode == 0 and "Calls per interface" not in proc.stdout
    text = out.read_text()
    assert "Calls per interface and operation" in text and "samr" in text and "\x1b[" not in text


@pytest.mark.parametrize("fmt", ["table", "jsonl"])
def test_reader_that_goes_away_is_a_clean_exit(fmt: str) -> None:
    """``rpcinspect analyze ... | head``: the reader closes the pipe before the output is written;
    the run ends with exit 0 and nothing on stderr, whatever the format."""
    demo = str(REPO / "captures" / "demo.pcap")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpcinspect", "analyze", "--format", fmt, demo],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has even imported rpcinspect
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""
