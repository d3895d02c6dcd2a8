"""Benchmark the libpcap fast path on a synthetic capture (90% non-RPC, 10% DCE/RPC over TCP).

    python bench/fastscan_bench.py [--packets 1000000] [--pcap PATH] [--tshark]

Prints packets/s for: libpcap scan with an accept-nothing filter, with ``bpf_dcerpc_starts()``,
with no filter (every packet to Python), a bare Python ``struct`` loop over the records, and the
pure-Python reader; ``--tshark`` adds tshark on the first 100k packets. Best-of-N, warm page cache.
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpcinspect.capture import fastscan


def _ip4(proto: int, payload: bytes) -> bytes:
    return (
        struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0)
        + bytes([10, 0, 0, 1, 10, 0, 0, 2])
        + payload
    )


def _eth(l3: bytes, ethertype: int = 0x0800) -> bytes:
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", ethertype) + l3


def _tcp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 0x50, 0x18, 8192, 0, 0) + payload


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def make_pcap(path: Path, n: int, seed: int = 1) -> None:
    """Writes *n* Ethernet packets: 10% DCE/RPC requests over TCP, the rest UDP / HTTP / ARP noise."""
    rng = random.Random(seed)
    rpc = [
        _eth(_ip4(6, _tcp(49700 + i, 135, bytes.fromhex("05000003100000009800000001000000") + bytes(136))))
        for i in range(8)
    ]
    other = [_eth(_ip4(17, _udp(5353 + i, 53, bytes(rng.randrange(30, 400))))) for i in range(32)]
    other += [
        _eth(_ip4(6, _tcp(80, 50000 + i, b"HTTP/1.1 200 OK\r\n" + bytes(rng.randrange(0, 1200)))))
        for i in range(8)
    ]
    other.append(_eth(bytes(28), 0x0806))
    hdr = struct.Struct("<IIII")
    with path.open("wb", buffering=1 << 20) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            p = rpc[i % len(rpc)] if i % 10 == 0 else other[rng.randrange(len(other))]
            f.write(hdr.pack(1_700_000_000 + i // 1000, i % 1000 * 1000, len(p), len(p)))
            f.write(p)


def python_struct_loop(path: Path) -> int:
    """The floor for a pure-Python reader: unpack each record header and slice its data."""
    buf = path.read_bytes()
    unpack = struct.Struct("<IIII").unpack_from
    off, end, n = 24, len(buf), 0
    while off + 16 <= end:
        _sec, _usec, caplen, _orig = unpack(buf, off)
        off += 16
        _data = buf[off : off + caplen]
        off += caplen
        n += 1
    return n


def fast(path: Path, bpf: str) -> int:
    """Scans with *bpf*, touching every returned tuple; returns the number of frames read."""
    with fastscan.scan(path, bpf) as s:
        for _frame, _ts, _olen, _data in s:
            pass
        return s.frames_seen


def pure_reader(path: Path) -> int:
    """The project's pure-Python pcap reader (the fallback path), yielding every packet."""
    from rpcinspect.capture.reader import open_capture

    with open_capture(path) as r:
        return sum(1 for _ in r)


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--pcap", type=Path, help="use/keep this file (generated if missing)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tshark", action="store_true", help="also time tshark -Y 'tcp.port==135'")
    args = ap.parse_args()
    if not fastscan.available():
        sys.exit("rpcinspect.capture._pcapscan is not built: python setup.py build_ext --inplace")

    tmp = None
    path = args.pcap
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "bench.pcap"
    if not path.exists():
        t = time.perf_counter()
        make_pcap(path, args.packets)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    frames = fast(path, "less 0")
    print(f"{frames:,} packets")

    dcerpc = fastscan.bpf_dcerpc_starts()
    rows: list[tuple[str, Callable[[], int]]] = [
        ("libpcap scan, accept-nothing filter", lambda: fast(path, "ether proto 0x88b5")),
        ("libpcap scan, bpf_dcerpc_starts()", lambda: fast(path, dcerpc)),
        ("libpcap scan, no filter (all to Python)", lambda: fast(path, "")),
        ("bare Python struct loop", lambda: python_struct_loop(path)),
        ("rpcinspect.capture.reader (pure Python)", lambda: pure_reader(path)),
    ]
    for name, fn in rows:
        secs, _ = best(fn, args.repeat)
        print(f"{name:42s} {frames / secs / 1e6:7.3f} M packets/s  ({secs:.3f} s)")
    with fastscan.scan(path, dcerpc) as s:
        matched = sum(1 for _ in s)
    print(f"bpf_dcerpc_starts() matched {matched:,} of {frames:,}")

    if args.tshark and shutil.which("tshark"):
        # Only the first 100k packets: tshark's TCP analysis is superlinear on this synthetic file.
        n = min(frames, 100_000)
        cmd = ["tshark", "-n", "-r", str(path), "-c", str(n), "-Y", "tcp.port==135", "-T", "fields"]
        t = time.perf_counter()
        subprocess.run([*cmd, "-e", "frame.number"], check=True, capture_output=True)
        secs = time.perf_counter() - t
        name = f"tshark -Y tcp.port==135 (first {n:,})"
        print(f"{name:42s} {n / secs / 1e6:7.3f} M packets/s  ({secs:.3f} s)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
