"""Bad input: one-line errors or counted malformed records, never a traceback or a hang.

The CLI is run as a real subprocess (as a user would), each with a timeout so a hang fails.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import builders as b
import pytest

from rpcinspect.engine import analyze
from rpcinspect.limits import Limits
from rpcinspect.records import BindRecord, CallRecord, SummaryRecord

TIMEOUT = 60


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rpcinspect", *args], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0].lower(), lines[0]


def session() -> b.Conv:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    conv.send(True, b.request(2, 64))
    conv.send(False, b.response(2))
    return conv


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.pcap"
    p.write_bytes(b"")
    assert_clean_error(cli("analyze", str(p)), 3, "empty")


def test_text_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a capture\n" * 10)
    assert_clean_error(cli("analyze", str(p)), 3, "not a pcap")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert_clean_error(cli("analyze", str(tmp_path / "nope.pcap")), 3, "no such file")
    assert_clean_error(cli("analyze", str(tmp_path)), 3, "directory")


def test_bad_option_is_usage_error(tmp_path: Path) -> None:
    proc = cli("analyze", "--format", "xml", str(tmp_path / "x.pcap"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "xml" in proc.stderr


def test_truncated_pcap_keeps_what_was_decoded(tmp_path: Path) -> None:
    conv = session()
    conv.send(True, b.request(3, 65, b"Z" * 500))
    data = b.pcap(conv.frames)
    p = tmp_path / "cut.pcap"
    p.write_bytes(data[:-200])  # cut inside the last record
    proc = cli("analyze", "--format", "jsonl", str(p))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "truncated" in proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    call = [r for r in recs if r["record"] == "call"]
    assert [(c["call_id"], c["operation"], c["status"]) for c in call] == [(2, "SamrConnect5", "ok")]
    assert recs[-1]["record"] == "summary" and recs[-1]["counters"]["files_truncated"] == 1


def test_truncated_gzip(tmp_path: Path) -> None:
    import gzip

    data = gzip.compress(b.pcap(session().frames))
    p = tmp_path / "cut.pcap.gz"
    p.write_bytes(data[: len(data) // 2])
    proc = cli("analyze", "--format", "jsonl", str(p))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_unsupported_link_type(tmp_path: Path) -> None:
    p = tmp_path / "wifi.pcap"
    p.write_bytes(b.pcap([b"\x00" * 60, b"\x01" * 60], linktype=105))
    assert_clean_error(cli("analyze", str(p)), 3, "unsupported link type 105")


def test_corrupt_record_length(tmp_path: Path) -> None:
    data = bytearray(b.pcap(session().frames))
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)  # first record's caplen
    p = tmp_path / "corrupt.pcap"
    p.write_bytes(bytes(data))
    assert_clean_error(cli("analyze", str(p)), 3, "corrupt capture after frame 0")


def extreme_frag_len_capture(frag_len: int) -> bytes:
    """A samr call, then a request whose frag_length is *frag_len*, then a valid call (also used by
    tests/test_cli.py)."""
    conv = session()
    bad = bytearray(b.request(9, 1, b"B" * 40))
    struct.pack_into("<H", bad, 8, frag_len)
    conv.send(True, bytes(bad))
    conv.send(True, b.request(10, 65))  # a valid PDU after the damage
    conv.send(False, b.response(10))
    return b.pcap(conv.frames)


def many_contexts_capture(n: int = 255) -> bytes:
    """A bind offering *n* contexts (255 is the most n_context_elem can say), all accepted, and a
    call on the last one (also used by tests/test_cli.py)."""
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(i, b.SAMR, 1) for i in range(n)]))
    conv.send(False, b.bind_ack(1, n))
    conv.send(True, b.request(2, 64, ctx=n - 1))
    conv.send(False, b.response(2, ctx=n - 1))
    return b.pcap(conv.frames)


@pytest.mark.parametrize("frag_len", [0, 15, 65535])
def test_pdu_with_extreme_frag_length(tmp_path: Path, frag_len: int) -> None:
    recs = list(analyze([b.write(tmp_path / "f.pcap", extreme_frag_len_capture(frag_len))]))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    s = recs[-1]
    assert isinstance(s, SummaryRecord)
    assert calls[0].call_id == 2 and calls[0].status == "ok"  # decoded before the damage
    if frag_len < 16:
        assert s.counters["malformed_pdu"] >= 1
        assert any(c.call_id == 10 and c.status == "ok" for c in calls)  # resynchronised
    else:
        # a 64 KiB PDU swallows what follows (as the protocol says); it ends cut short
        assert s.counters["truncated_pdu"] == 1


def test_bind_with_255_contexts(tmp_path: Path) -> None:
    recs = list(analyze([b.write(tmp_path / "c.pcap", many_contexts_capture(255))]))
    bind = next(r for r in recs if isinstance(r, BindRecord))
    assert len(bind.contexts) == 255 and all(c.result == "acceptance" for c in bind.contexts)
    call = next(r for r in recs if isinstance(r, CallRecord))
    assert call.ctx_id == 254 and call.operation == "SamrConnect5"


def test_random_bytes_on_port_135(tmp_path: Path) -> None:
    rng = random.Random(1234)
    conv = b.Conv()
    conv.handshake()
    for _ in range(300):
        conv.send(rng.random() < 0.5, rng.randbytes(rng.randint(1, 1400)))
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))  # real traffic after the noise
    conv.send(False, b.bind_ack(1, 1))
    conv.send(True, b.request(2, 64))
    conv.send(False, b.response(2))
    p = b.write(tmp_path / "noise.pcap", b.pcap(conv.frames))
    proc = cli("analyze", "--format", "jsonl", str(p))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(r["record"] == "call" and r["operation"] == "SamrConnect5" for r in recs)


def test_limits_bound_state_and_leave_a_trace(tmp_path: Path) -> None:
    conv = b.Conv()
    conv.handshake()
    conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
    conv.send(False, b.bind_ack(1, 1))
    for i in range(50):
        conv.send(True, b.request(100 + i, 1))  # never answered
    p = b.write(tmp_path / "flood.pcap", b.pcap(conv.frames))
    recs = list(analyze([p], limits=Limits(max_calls=8)))
    calls = [r for r in recs if isinstance(r, CallRecord)]
    assert len(calls) == 50  # every call still becomes a record
    assert sum(1 for c in calls if c.close_reason == "evicted") == 42
    assert recs[-1].counters["call_evicted"] == 42  # type: ignore[union-attr]


def test_many_connections_are_bounded(tmp_path: Path) -> None:
    frames = []
    for i in range(300):
        conv = b.Conv(sport=20000 + i)
        conv.handshake()
        conv.send(True, b.bind(1, [(0, b.SAMR, 1)]))
        frames += conv.frames
    recs = list(
        analyze([b.write(tmp_path / "conns.pcap", b.pcap(frames))], limits=Limits(max_connections=32))
    )
    s = recs[-1]
    assert s.counters["tcp_connections_evicted"] >= 250  # type: ignore[union-attr]
    binds = [r for r in recs if isinstance(r, BindRecord)]
    assert len(binds) == 300 and all(r.status == "no_response" for r in binds)


def test_out_of_order_flood_is_bounded(tmp_path: Path) -> None:
    conv = session()
    base = conv.cseq + 100_000  # segments beyond holes that never fill
    for i in range(400):
        conv.frames.append(conv.frame(True, b"\x41" * 1400, seq=base + i * 2000, flags=0x08))
    recs = list(
        analyze([b.write(tmp_path / "ooo.pcap", b.pcap(conv.frames))], limits=Limits(max_ooo_bytes=64_000))
    )
    s = recs[-1]
    # the buffer holds ~45 segments at most: each further one forces the oldest hole to be skipped
    assert s.counters["tcp_gaps"] == 400  # type: ignore[union-attr]
    assert s.counters["tcp_gap_bytes"] == 100_000 + 399 * 600  # type: ignore[union-attr]


def test_many_tiny_out_of_order_segments_stay_fast(tmp_path: Path) -> None:
    """20,000 one-byte segments in reverse order: bounded (segment count) and not quadratic."""
    import time

    conv = session()
    payload = b.request(9, 65, b"R" * 19_960)
    base = conv.cseq
    frames = [conv.frame(True, payload[i : i + 1], seq=base + i) for i in range(len(payload))]
    conv.cseq += len(payload)
    conv.frames += frames[::-1]
    conv.send(False, b.response(9))
    path = b.write(tmp_path / "tiny.pcap", b.pcap(conv.frames))
    start = time.perf_counter()
    recs = list(analyze([path]))
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"took {elapsed:.1f}s"
    s = recs[-1]
    assert s.counters["tcp_gaps"] >= 1  # type: ignore[union-attr]  # the segment bound forced skips
