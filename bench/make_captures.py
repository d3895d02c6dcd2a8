"""Builds the benchmark captures from the project's own recordings in ``captures/``.

* ``rpc-dense.pcap``: every lab capture replayed many times, each replay with its own client
  address (10.R.R.20) and shifted timestamps, so every replay is a distinct conversation; also
  ``tcp-dense.pcap`` (the ncacn_ip_tcp captures only) and ``smb-dense.pcap`` (named pipes only).
* ``mixed.pcap``: the same RPC packets with nine packets of other traffic after each one
  (HTTPS-like TCP flows, DNS-like UDP, HTTP-like TCP), i.e. 90% of packets are not RPC.

Usage: ``python bench/make_captures.py OUTDIR [--packets N] [--mixed-packets N] [--big-gb G]``.
``--big-gb`` also writes ``big.pcap`` (an RPC-dense capture of about G GiB) for the memory test.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rpcinspect.capture.reader import open_capture  # noqa: E402

_CLIENT = bytes([10, 135, 0, 20])


KINDS = {
    "rpc-dense.pcap": "*.pcap",  # every lab capture: all transports
    "tcp-dense.pcap": "*-tcp-*.pcap",  # ncacn_ip_tcp only (auth- and bind-heavy: one bind per 2.4 calls)
    "smb-dense.pcap": "*-np-*.pcap",  # SMB named pipes only
}


def lab_frames(pattern: str = "*.pcap") -> list[tuple[float, bytes]]:
    """Ethernet/IPv4 frames of the lab captures matching *pattern*, relative timestamps, in order."""
    out: list[tuple[float, bytes]] = []
    t0 = 0.0
    for p in sorted((REPO / "captures").glob(pattern)):
        with open_capture(p) as r:
            frames = [(ts, data) for _f, ts, lt, data in r if lt == 1]
        if not frames:
            continue
        base = frames[0][0]
        out += [(t0 + ts - base, data) for ts, data in frames]
        t0 = out[-1][0] + 0.01
    return out


def _rewrite(data: bytes, replica: int) -> bytes:
    """Gives the lab client a per-replica address (IPv4 source or destination)."""
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return data
    new = bytes([10, 136 + (replica >> 16) % 100, (replica >> 8) & 0xFF, replica & 0xFF])
    b = bytearray(data)
    if b[26:30] == _CLIENT:
        b[26:30] = new
    if b[30:34] == _CLIENT:
        b[30:34] = new
    return bytes(b)


def rpc_stream(frames: list[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    """Endless replays of *frames*, each from a new client address."""
    span = frames[-1][0] + 0.05
    replica = 0
    while True:
        for ts, data in frames:
            yield 1_760_000_000 + replica * span + ts, _rewrite(data, replica)
        replica += 1


def _eth_ipv4(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst)
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + l4


class OtherTraffic:
    """Cheap, varied non-RPC packets: long TCP flows with payload, DNS-like UDP."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.payloads = [self.rng.randbytes(n) for n in (60, 200, 512, 1200, 1400)]
        self.seqs: dict[int, int] = {}

    def packet(self, i: int) -> bytes:
        kind = i % 10
        cli = bytes([192, 168, (i >> 8) & 0x3F, i & 0xFF])
        srv = bytes([172, 16, 0, 1 + i % 7])
        if kind < 5:  # HTTPS-like long flows
            flow = i % 64
            seq = self.seqs.get(flow, 1000)
            pl = self.payloads[i % 5]
            self.seqs[flow] = seq + len(pl)
            tcp = struct.pack(">HHIIBBHHH", 50000 + flow, 443, seq, 1, 0x50, 0x18, 65535, 0, 0)
            return _eth_ipv4(bytes([192, 168, 100, flow]), srv, 6, tcp + pl)
        if kind < 8:  # DNS-like
            q = (
                struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
                + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
            )
            udp = struct.pack(">HHHH", 40000 + i % 2000, 53, 8 + len(q), 0) + q
            return _eth_ipv4(cli, srv, 17, udp)
        pl = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"
        tcp = struct.pack(">HHIIBBHHH", 30000 + i % 500, 80, i * 100, 1, 0x50, 0x18, 65535, 0, 0)
        return _eth_ipv4(cli, srv, 6, tcp + pl)


def write_pcap(
    path: Path, packets: Iterator[tuple[float, bytes]], count: int | None, max_bytes: int | None = None
) -> int:
    n = size = 0
    with path.open("wb", buffering=1 << 22) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        pack = struct.Struct("<IIII").pack
        for ts, data in packets:
            sec = int(ts)
            f.write(pack(sec, int((ts - sec) * 1e6), len(data), len(data)))
            f.write(data)
            n += 1
            size += 16 + len(data)
            if (count is not None and n >= count) or (max_bytes is not None and size >= max_bytes):
                break
    return n


def mixed_stream(frames: list[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    other = OtherTraffic()
    i = 0
    for ts, data in rpc_stream(frames):
        yield ts, data
        for k in range(9):
            yield ts + (k + 1) * 1e-6, other.packet(i)
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--packets", type=int, default=600_000, help="packets in rpc-dense.pcap")
    ap.add_argument("--mixed-packets", type=int, default=1_000_000, help="packets in mixed.pcap")
    ap.add_argument("--big-gb", type=float, default=0.0, help="also write big.pcap of this many GiB")
    a = ap.parse_args()
    a.outdir.mkdir(parents=True, exist_ok=True)
    for name, pattern in KINDS.items():
        kind = lab_frames(pattern)
        n = write_pcap(a.outdir / name, rpc_stream(kind), a.packets)
        print(f"{name}: {n:,} packets from {len(kind):,} lab frames ({pattern})")
    frames = lab_frames()
    n = write_pcap(a.outdir / "mixed.pcap", mixed_stream(frames), a.mixed_packets)
    print(f"mixed.pcap: {n:,} packets, 10% RPC")
    if a.big_gb:
        n = write_pcap(a.outdir / "big.pcap", rpc_stream(frames), None, int(a.big_gb * (1 << 30)))
        print(f"big.pcap: {n:,} packets, {a.big_gb} GiB")


if __name__ == "__main__":
    main()
