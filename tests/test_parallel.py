"""``--jobs``: a parallel run writes what one process writes, in the same order.

Every capture (the project's and, when present, the public corpus) is analysed by one process and
by three workers; the JSON Lines must be identical line for line except the summary's duration.
Also: the C and Python shard functions agree, the other formats, several files, the per-file
anomaly budget across workers, a failing worker, and the option's errors.
"""

from __future__ import annotations

import csv
import io
import os
import struct
from pathlib import Path

import builders as b
import orjson
import pytest
from conftest import CAPTURES, capture_id, corpus_captures, lab_captures
from typer.testing import CliRunner

from rpcinspect.capture import fastscan
from rpcinspect.capture.shard import shard_of
from rpcinspect.cli.main import app
from rpcinspect.engine import analyze
from rpcinspect.output.console import Stats
from rpcinspect.output.writers import make_writer
from rpcinspect.parallel import ParallelRun, auto_jobs
from rpcinspect.parallel import merge as merge_mod
from rpcinspect.parallel import worker as worker_mod

ALL = lab_captures() + corpus_captures()
pytestmark = pytest.mark.skipif(not fastscan.available(), reason="libpcap extension not built")


def single(paths: list[Path], fmt: str = "jsonl") -> bytes:
    buf = io.BytesIO()
    w = make_writer(fmt, buf)
    for rec in analyze(paths):
        w.write(rec)
    w.close()
    return buf.getvalue()


def parallel(paths: list[Path], jobs: int, fmt: str = "jsonl") -> tuple[bytes, ParallelRun]:
    buf = io.BytesIO()
    w = make_writer(fmt, buf)
    run = ParallelRun(paths, jobs, fmt, want_stats=True)
    run.run(w.write_raw)
    assert run.summary is not None
    w.write(run.summary)
    w.close()
    return buf.getvalue(), run


def comparable(summary: dict) -> dict:  # type: ignore[type-arg]
    return dict(summary, duration=None)


def same_jsonl(one: bytes, many: bytes) -> None:
    a, b_ = one.splitlines(), many.splitlines()
    assert len(a) == len(b_)
    assert a[:-1] == b_[:-1]  # every record, in order, byte for byte
    assert comparable(orjson.loads(a[-1])) == comparable(orjson.loads(b_[-1]))


def test_c_and_python_shards_agree() -> None:
    from rpcinspect.capture import _pcapscan  # type: ignore[attr-defined]

    seen: set[int] = set()
    for i in range(3000):
        n = 4 if i % 3 else 16
        x, y = os.urandom(n), os.urandom(n)
        k = 1 + i % 5
        got = shard_of(x, y, k)
        assert got == shard_of(y, x, k) == _pcapscan.shard_of(x, y, k) == _pcapscan.shard_of(y, x, k)
        assert 0 <= got < k
        if k == 5:
            seen.add(got)
    assert seen == set(range(5))  # every shard gets pairs


@pytest.mark.parametrize("path", ALL, ids=[capture_id(p) for p in ALL])
def test_three_workers_write_what_one_process_writes(path: Path) -> None:
    same_jsonl(single([path]), parallel([path], 3)[0])


def test_two_workers_several_files_and_stats() -> None:
    paths = lab_captures()[:12]
    one = single(paths)
    many, run = parallel(paths, 2)
    same_jsonl(one, many)
    stats = Stats()
    for rec in analyze(paths):
        stats.write(rec)
    assert run.stats is not None
    for name in ("ops", "faults", "convs", "status", "binds"):
        assert getattr(run.stats, name) == getattr(stats, name), name
    assert run.stats.posture == stats.posture
    assert {k: sorted(v) for k, v in run.stats.endpoints.items()} == {
        k: sorted(v) for k, v in stats.endpoints.items()
    }


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_other_formats(fmt: str) -> None:
    paths = [p for p in lab_captures() if "samrdump" in p.name or "rpcdump" in p.name] or lab_captures()[:3]
    one, (many, _run) = single(paths, fmt), parallel(paths, 3, fmt)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(one.decode())))
        assert len(rows) > 10
        assert one == many
    else:
        a, m = orjson.loads(one), orjson.loads(many)
        assert a["calls"] and a["calls"] == m["calls"]
        assert a["binds"] == m["binds"] and a["endpoints"] == m["endpoints"]
        assert comparable(a["summary"]) == comparable(m["summary"])


class _Client(b.Conv):
    def __init__(self, client: bytes, sport: int) -> None:
        super().__init__(sport)
        self.client = client

    def _addr(self, client: bool) -> tuple[bytes, bytes]:
        return (self.client, b.SERVER) if client else (b.SERVER, self.client)


def client_addr(i: int) -> bytes:
    return bytes([10, 1, i // 250, 1 + i % 250])


def garbage_on_135(tmp_path: Path, clients: int) -> Path:
    """*clients* clients, each its own address pair: a bind, then a request of frag length 0."""
    frames: list[bytes] = []
    bad = bytearray(b.request(9, 1, b"B" * 40))
    struct.pack_into("<H", bad, 8, 0)
    for i in range(clients):
        conv = _Client(client_addr(i), 40000 + i)
        conv.handshake()
        conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
        conv.send(False, b.bind_ack(1, 1))
        conv.send(True, bytes(bad))
        frames += conv.frames
    return b.write(tmp_path / "garbage.pcap", b.pcap(frames))


def test_the_anomaly_budget_is_per_run_not_per_worker(tmp_path: Path) -> None:
    path = garbage_on_135(tmp_path, 260)
    one = single([path])
    many, run = parallel([path], 3)
    same_jsonl(one, many)
    kinds = [orjson.loads(line).get("kind") for line in many.splitlines()]
    assert kinds.count("malformed_pdu") == 100  # the budget, not 3 x 100
    assert run.summary is not None and run.summary.counters["malformed_pdu"] == 260
    shards = {shard_of(client_addr(i), b.SERVER, 3) for i in range(260)}
    assert shards == {0, 1, 2}  # every worker had some


def test_a_failing_worker_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(worker_mod, "analyze_shard", boom)  # the forked workers inherit it
    res = CliRunner().invoke(app, ["analyze", "-f", "jsonl", "-j", "2", str(lab_captures()[0])])
    assert res.exit_code == 70
    assert "worker" in res.output and "ValueError: boom" in res.output
    assert "Traceback" not in res.output


def test_cli_jobs(tmp_path: Path) -> None:
    demo = str(CAPTURES / "demo.pcap")
    runner = CliRunner()
    one = runner.invoke(app, ["analyze", "-q", "-f", "jsonl", "-j", "1", demo])
    two = runner.invoke(app, ["analyze", "-q", "-f", "jsonl", "-j", "2", demo])
    assert one.exit_code == two.exit_code == 0
    same_jsonl(one.stdout_bytes, two.stdout_bytes)
    table = runner.invoke(app, ["analyze", "-j", "2", demo])
    assert table.exit_code == 0 and "Calls per interface" in table.output
    for bad in ("0", "x", "300"):
        res = runner.invoke(app, ["analyze", "-j", bad, demo])
        assert res.exit_code == 2 and "--jobs" in res.output, bad


def test_auto_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = CAPTURES / "demo.pcap"
    assert auto_jobs([small]) == 1
    big = tmp_path / "big.pcap"
    with big.open("wb") as f:  # sparse: only the size matters here
        f.truncate(merge_mod.AUTO_MIN_BYTES)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert auto_jobs([big]) == merge_mod.MAX_AUTO_JOBS
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert auto_jobs([big]) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert auto_jobs([big]) == 2
    assert auto_jobs([big, tmp_path / "x.pcap.gz"]) == 1
