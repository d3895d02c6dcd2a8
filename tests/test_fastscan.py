"""Tests for the libpcap fast path (rpcinspect.capture._pcapscan + fastscan)."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rpcinspect.capture import fastscan
from rpcinspect.capture.fastscan import (
    DLT_EN10MB,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    DLT_LOOP,
    DLT_NULL,
    DLT_RAW,
    FastScan,
    FastScanUnsupported,
    bpf_dcerpc_starts,
    bpf_ports,
    check_filter,
    scan,
)
from rpcinspect.errors import InputError

pytestmark = pytest.mark.skipif(
    not fastscan.available(),
    reason="rpcinspect.capture._pcapscan not built (needs libpcap-dev + a C compiler)",
)

# ---------------------------------------------------------------------------------------------------
# Packet builders (checksums are not needed by BPF; IPv4's is filled for tshark's sake)

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
RPC_BIND = bytes.fromhex("05000b0310000000480000000100000000000000") + bytes(52)  # CO bind, ptype 11
RPC_CL_REQ = bytes([4, 0]) + bytes(78)  # connectionless request
NOT_RPC = b"GET / HTTP/1.1\r\n\r\n"


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto: int, payload: bytes, *, frag: int = 0, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0, a, b)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + payload


def ipv6(nh: int, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + bytes(15) + b"\1" + bytes(15) + b"\2" + payload
    )


def tcp(sport: int, dport: int, payload: bytes = b"", *, options: bytes = b"", flags: int = 0x18) -> bytes:
    assert len(options) % 4 == 0
    off = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, off << 4, flags, 8192, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(l3: bytes, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, vid) for vid in vlans)
    return MAC_B + MAC_A + tags + struct.pack("!H", ethertype) + l3


def write_pcap(
    path: Path,
    pkts: list[bytes],
    *,
    linktype: int = 1,
    nano: bool = False,
    ts: list[tuple[int, int]] | None = None,
) -> Path:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, p in enumerate(pkts):
        sec, frac = ts[i] if ts else (1_700_000_000 + i, i)
        out.append(struct.pack("<IIII", sec, frac, len(p), len(p)) + p)
    path.write_bytes(b"".join(out))
    return path


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(
    path: Path, pkts: list[bytes], ts: list[int], *, tsresol: int = 9, linktype: int = 1
) -> Path:
    """pcapng with one interface; *ts* in units of 10**-tsresol seconds."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", linktype, 0, 65535) + opts)
    blocks = [shb, idb]
    for p, t in zip(pkts, ts, strict=True):
        blocks.append(_block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(p), len(p)) + p))
    path.write_bytes(b"".join(blocks))
    return path


def collect(path: Path, bpf: str, **kw: int) -> list[tuple[int, int, int, bytes]]:
    with scan(path, bpf, **kw) as s:
        return list(s)


def mixed_packets() -> list[bytes]:
    return [
        eth(ipv4(17, udp(5353, 53, b"dns?"))),  # 1
        eth(ipv4(6, tcp(49999, 135, RPC_BIND))),  # 2  RPC
        eth(b"\0" * 28, ethertype=0x0806),  # 3  ARP
        eth(ipv4(6, tcp(80, 50000, NOT_RPC))),  # 4
        eth(ipv4(6, tcp(135, 49999, RPC_BIND))),  # 5  RPC
        eth(ipv4(6, tcp(135, 49999, flags=0x10))),  # 6  bare ACK on port 135
        eth(ipv4(17, udp(1025, 135, RPC_CL_REQ))),  # 7  CL RPC
    ]


# ---------------------------------------------------------------------------------------------------


def test_frame_numbers_count_every_packet(tmp_path: Path) -> None:
    f = write_pcap(tmp_path / "m.pcap", mixed_packets())
    with scan(f, "tcp port 135") as s:
        got = list(s)
        assert s.frames_seen == 7
        assert not s.truncated and s.error is None
        assert s.linktype == s.dlt == DLT_EN10MB and s.snaplen == 65535
    assert [g[0] for g in got] == [2, 5, 6]
    assert got[0][3] == mixed_packets()[1] and got[0][2] == len(mixed_packets()[1])


def test_empty_filter_returns_all_and_batching(tmp_path: Path) -> None:
    pkts = mixed_packets() * 5
    f = write_pcap(tmp_path / "m.pcap", pkts)
    for bpf in ("", "   "):
        assert [g[3] for g in collect(f, bpf)] == pkts
    got = collect(f, "", batch=2)
    assert [g[0] for g in got] == list(range(1, 36))
    s = FastScan(f, "", batch=4, max_bytes=1)  # max_bytes: one packet per batch
    sizes = [len(b) for b in s.batches()]
    assert sizes == [1] * 35 and s.frames_seen == 35


def test_timestamps_exact(tmp_path: Path) -> None:
    pkts = mixed_packets()[:3]
    ts = [(1_700_000_000, 123_456), (0, 0), (4_294_967_295, 999_999)]
    us = collect(write_pcap(tmp_path / "us.pcap", pkts, ts=ts), "")
    assert [g[1] for g in us] == [s * 10**9 + f * 1000 for s, f in ts]
    tsn = [(1_700_000_000, 123_456_789), (1, 1), (4_294_967_295, 999_999_999)]
    ns = collect(write_pcap(tmp_path / "ns.pcap", pkts, ts=tsn, nano=True), "")
    assert [g[1] for g in ns] == [s * 10**9 + f for s, f in tsn]


def test_pcapng(tmp_path: Path) -> None:
    pkts = mixed_packets()
    t_ns = [1_700_000_000_123_456_789 + i for i in range(len(pkts))]
    f = write_pcapng(tmp_path / "m.pcapng", pkts, t_ns)
    got = collect(f, bpf_dcerpc_starts())
    assert [(g[0], g[1]) for g in got] == [(2, t_ns[1]), (5, t_ns[4]), (7, t_ns[6])]
    t_us = [1_700_000_000_123_456 + i for i in range(len(pkts))]
    got = collect(write_pcapng(tmp_path / "us.pcapng", pkts, t_us, tsresol=6), "udp")
    assert [(g[0], g[1]) for g in got] == [(1, t_us[0] * 1000), (7, t_us[6] * 1000)]


def test_pcapng_written_by_scapy(tmp_path: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    from scapy.layers.l2 import Ether

    f = tmp_path / "scapy.pcapng"
    with scapy_utils.PcapNgWriter(str(f)) as w:
        for i, raw in enumerate(mixed_packets()):
            p = Ether(raw)
            p.time = 1_700_000_000 + i
            w.write(p)
    got = collect(f, "tcp port 135")
    assert [g[0] for g in got] == [2, 5, 6]
    assert got[0][1] == 1_700_000_001 * 10**9


def test_truncated_keeps_previous_packets(tmp_path: Path) -> None:
    pkts = mixed_packets()
    full = write_pcap(tmp_path / "full.pcap", pkts).read_bytes()
    for cut in (len(full) - 5, len(full) - len(pkts[-1]) - 8):  # mid-data, mid-record-header
        f = tmp_path / f"cut{cut}.pcap"
        f.write_bytes(full[:cut])
        with scan(f, "") as s:
            got = list(s)
            assert s.truncated and s.error is None
            assert s.frames_seen == 6
        assert [g[3] for g in got] == pkts[:6]
    ng = write_pcapng(tmp_path / "m.pcapng", pkts, list(range(len(pkts)))).read_bytes()
    f = tmp_path / "cut.pcapng"
    f.write_bytes(ng[:-10])
    with scan(f, "") as s:
        assert len(list(s)) == 6 and s.truncated and s.error is None


def test_corrupt_record_sets_error(tmp_path: Path) -> None:
    pkts = mixed_packets()[:2]
    data = write_pcap(tmp_path / "a.pcap", pkts).read_bytes() + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 60)
    f = tmp_path / "bad.pcap"
    f.write_bytes(data + bytes(100))
    with scan(f, "") as s:
        got = list(s)
        assert len(got) == 2 and not s.truncated
        assert s.error and "\n" not in s.error


def test_not_a_capture_raises_cleanly(tmp_path: Path) -> None:
    from rpcinspect.capture import _pcapscan

    txt = tmp_path / "notes.txt"
    txt.write_text("this is not a capture file at all\n")
    with pytest.raises(InputError, match=r"notes\.txt"):
        FastScan(txt, "")
    with pytest.raises(OSError, match="unknown file format"):
        _pcapscan.open(str(txt), "")
    with pytest.raises(FileNotFoundError):
        _pcapscan.open(str(tmp_path / "missing.pcap"), "")
    with pytest.raises(InputError):
        FastScan(tmp_path / "missing.pcap", "")
    (tmp_path / "empty.pcap").write_bytes(b"")
    with pytest.raises(InputError):
        FastScan(tmp_path / "empty.pcap", "")


def test_gzip_refused(tmp_path: Path) -> None:
    raw = write_pcap(tmp_path / "m.pcap", mixed_packets()).read_bytes()
    gz = tmp_path / "m.pcap.gz"
    gz.write_bytes(gzip.compress(raw))
    with pytest.raises(FastScanUnsupported, match="gzip"):
        scan(gz, "")


def test_bad_bpf_raises_value_error(tmp_path: Path) -> None:
    f = write_pcap(tmp_path / "m.pcap", mixed_packets())
    with pytest.raises(ValueError, match=r"invalid BPF filter: .+"):
        scan(f, "tcp port banana and")
    with pytest.raises(ValueError, match="invalid BPF filter"):
        check_filter("no such thing")
    with pytest.raises(ValueError, match="VLAN"):
        check_filter("vlan", DLT_LINUX_SLL)


def test_close_and_attributes_after_close(tmp_path: Path) -> None:
    from rpcinspect.capture import _pcapscan

    f = write_pcap(tmp_path / "m.pcap", mixed_packets())
    sc = _pcapscan.open(str(f), "udp")
    assert len(sc.next_batch()) == 2 and sc.next_batch() == [] and sc.eof
    assert sc.frames_seen == 7 and not sc.closed
    sc.close()
    sc.close()
    assert sc.closed and sc.next_batch() == [] and sc.frames_seen == 7
    with pytest.raises(ValueError):
        sc.next_batch(0)
    with _pcapscan.open(str(f)) as sc2:
        assert len(sc2.next_batch(max_packets=3)) == 3
        sc2.setfilter("tcp")
        assert [g[0] for g in sc2.next_batch()] == [4, 5, 6]
    assert sc2.closed


@pytest.mark.parametrize(
    "linktype", [DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, DLT_NULL, DLT_LOOP, 228, 229]
)
def test_filters_compile_on_linktypes(linktype: int) -> None:
    assert check_filter(bpf_dcerpc_starts(linktype), linktype) > 0
    assert check_filter(bpf_dcerpc_starts(linktype, vlan_tags=2), linktype) > 0
    assert check_filter(bpf_ports([135, 445, 49664, 49665, 49666], [135], linktype), linktype) > 0
    assert check_filter(bpf_ports([], [135], linktype), linktype) > 0


def test_bpf_ports_is_compact() -> None:
    f = bpf_ports([135, 49664, 49665, 49666, 49667, 445, 446], [135], vlan_tags=0)
    assert "portrange 49664-49667" in f and "portrange 445-446" in f and "udp and (port 135)" in f
    many = bpf_ports(range(1000, 4000, 3), [], vlan_tags=0, max_terms=8)
    assert many.count("port") <= 8
    with pytest.raises(ValueError):
        bpf_ports([], [])
    with pytest.raises(ValueError):
        bpf_ports([70000], [])


def test_dcerpc_starts_selection(tmp_path: Path) -> None:
    opts = bytes.fromhex("0101080a0000000100000002")  # NOP NOP timestamps: 32-byte TCP header
    cases = [
        (eth(ipv4(6, tcp(49999, 135, RPC_BIND))), True),
        (eth(ipv4(6, tcp(49999, 5000, RPC_BIND, options=opts))), True),  # any port, TCP options
        (eth(ipv4(6, tcp(49999, 135, bytes.fromhex("0501000310000000")))), True),  # minor version 1
        (eth(ipv4(6, tcp(49999, 135, bytes.fromhex("05001f03")))), False),  # ptype 31
        (eth(ipv4(6, tcp(49999, 135, NOT_RPC))), False),
        (eth(ipv4(6, tcp(49999, 135, flags=0x10))), False),  # no payload
        (eth(ipv4(17, udp(1025, 135, RPC_CL_REQ))), True),
        (eth(ipv4(17, udp(1025, 53, b"\x04\x0b" + bytes(20)))), False),  # CL ptype 11
        (eth(ipv4(17, udp(1025, 53, b"dns?"))), False),
        (eth(ipv4(6, tcp(49999, 135, RPC_BIND)), vlans=(100,)), True),
        (eth(ipv4(6, tcp(49999, 135, NOT_RPC)), vlans=(100,)), False),
        (eth(ipv4(6, tcp(49999, 135, RPC_BIND)), vlans=(100, 200)), False),  # 2 tags: default is 1
        (eth(ipv6(6, tcp(49999, 135, RPC_BIND)), ethertype=0x86DD), True),
        (eth(ipv6(6, tcp(49999, 135, RPC_BIND, options=opts)), ethertype=0x86DD), True),
        (eth(ipv6(6, tcp(49999, 135, NOT_RPC)), ethertype=0x86DD), False),
        (eth(ipv6(17, udp(1025, 135, RPC_CL_REQ)), ethertype=0x86DD), True),
        (eth(ipv6(6, tcp(49999, 135, RPC_BIND)), ethertype=0x86DD, vlans=(7,)), True),
        (eth(ipv6(44, bytes(8) + tcp(1, 2, NOT_RPC)), ethertype=0x86DD), True),  # fragment header: kept
        (eth(ipv4(6, NOT_RPC * 4, frag=100)), True),  # non-first IPv4 fragment: kept
        (eth(b"\0" * 28, ethertype=0x0806), False),
    ]
    f = write_pcap(tmp_path / "sel.pcap", [c[0] for c in cases])
    got = {g[0] for g in collect(f, bpf_dcerpc_starts())}
    assert got == {i for i, (_, want) in enumerate(cases, 1) if want}
    got2 = {g[0] for g in collect(f, bpf_dcerpc_starts(vlan_tags=2))}
    assert got2 == got | {12}


def test_callable_filter_and_other_linktypes(tmp_path: Path) -> None:
    l3 = [ipv4(6, tcp(49999, 135, RPC_BIND)), ipv4(17, udp(1, 53, b"dns?")), ipv6(6, tcp(1, 135, RPC_BIND))]
    raw = write_pcap(tmp_path / "raw.pcap", l3, linktype=101)
    with scan(raw, bpf_dcerpc_starts) as s:
        assert s.dlt == DLT_RAW and s.linktype == 101
        assert [g[0] for g in s] == [1, 3]
    sll = [b"\0\0\0\1\0\6" + MAC_A + b"\0\0" + struct.pack("!H", 0x0800) + p for p in l3[:2]]
    with scan(write_pcap(tmp_path / "sll.pcap", sll, linktype=113), bpf_dcerpc_starts) as s:
        assert s.dlt == DLT_LINUX_SLL and [g[0] for g in s] == [1]
    null = [struct.pack("<I", 2) + p for p in l3[:2]]
    with scan(
        write_pcap(tmp_path / "null.pcap", null, linktype=0), lambda dlt: bpf_ports([135], [], dlt)
    ) as s:
        assert [g[0] for g in s] == [1]


def test_ports_filter_with_vlan(tmp_path: Path) -> None:
    pkts = [
        eth(ipv4(6, tcp(49999, 135, NOT_RPC)), vlans=(10,)),
        eth(ipv4(6, tcp(49999, 80, NOT_RPC)), vlans=(10,)),
        eth(ipv4(17, udp(1, 135, b"x")), vlans=(10,)),
        eth(ipv4(6, tcp(49999, 49666, NOT_RPC))),
    ]
    f = write_pcap(tmp_path / "v.pcap", pkts)
    assert [g[0] for g in collect(f, bpf_ports([135, 49664, 49665, 49666], [135]))] == [1, 3, 4]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_frame_numbers_match_tshark(tmp_path: Path) -> None:
    pkts = mixed_packets() * 3 + [eth(ipv4(6, tcp(135, 1, RPC_BIND)), vlans=(5,))]
    f = write_pcap(tmp_path / "t.pcap", pkts)
    out = subprocess.run(
        ["tshark", "-n", "-r", str(f), "-Y", "tcp.port==135", "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    want = [int(x) for x in out.split()]
    assert want and [g[0] for g in collect(f, bpf_ports([135], []))] == want
