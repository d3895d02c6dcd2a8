"""tshark as the reference decoder: its connection-oriented DCE/RPC requests, per capture.

Wireshark does not print an interface UUID on a request, so the reference interface is taken
the way Wireshark itself finds it: from the bind/alter_context items tshark decoded earlier on
the same TCP stream with the same context id. Only requests whose last fragment is in the frame
count (that is where tshark reports the reassembled call, and where rpcinspect puts
``req_frame``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TsharkRequest", "have_tshark", "tshark_requests"]


@dataclass(frozen=True, slots=True)
class TsharkRequest:
    frame: int
    opnum: int
    ctx_id: int
    call_id: int
    if_uuid: str | None
    over_smb: bool
    over_udp: bool


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


def _as_list(v: object) -> list[dict]:  # type: ignore[type-arg]
    if v is None:
        return []
    return v if isinstance(v, list) else [v]  # type: ignore[list-item,return-value]


def tshark_requests(path: Path, timeout: float = 600) -> list[TsharkRequest]:
    """Every DCE/RPC request tshark decodes in *path* (any transport; flags say which)."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "dcerpc", "-T", "json", "--no-duplicate-keys",
         "-J", "frame tcp dcerpc"],
        capture_output=True, timeout=timeout, check=False,
    )  # fmt: skip
    if not proc.stdout.strip():
        return []
    packets = json.loads(proc.stdout)
    binds: dict[tuple[str, int], str] = {}
    out: list[TsharkRequest] = []
    for pkt in packets:
        layers = pkt["_source"]["layers"]
        frame = int(_as_list(layers.get("frame"))[0]["frame.number"])
        protos = _as_list(layers.get("frame"))[0].get("frame.protocols", "")
        over_smb = ":smb" in protos or ":nbss" in protos
        over_udp = ":udp:" in protos
        tcp = _as_list(layers.get("tcp"))
        stream = tcp[0].get("tcp.stream", "?") if tcp else "udp"
        for pdu in _as_list(layers.get("dcerpc")):
            ptype = pdu.get("dcerpc.pkt_type")
            if ptype in ("11", "14"):
                for item in _as_list(pdu.get("dcerpc.cn_ctx_item")):
                    syn = item.get("dcerpc.cn_bind_abstract_syntax") or {}
                    u = syn.get("dcerpc.cn_bind_to_uuid") if isinstance(syn, dict) else None
                    if u and "dcerpc.cn_ctx_id" in item:
                        binds[(stream, int(item["dcerpc.cn_ctx_id"]))] = u.lower()
            elif ptype == "0":
                flags = pdu.get("dcerpc.cn_flags_tree") or {}
                if over_udp:
                    last = True
                    ctx = 0
                    uuid = (pdu.get("dcerpc.dg_if_id") or "").lower() or None
                    call_id = int(pdu.get("dcerpc.dg_seqnum", 0))
                else:
                    if flags.get("dcerpc.cn_flags.last_frag") != "1":
                        continue
                    last = True
                    ctx = int(pdu.get("dcerpc.cn_ctx_id", -1))
                    uuid = binds.get((stream, ctx))
                    call_id = int(pdu.get("dcerpc.cn_call_id", -1))
                if last and "dcerpc.opnum" in pdu:
                    out.append(
                        TsharkRequest(frame, int(pdu["dcerpc.opnum"]), ctx, call_id, uuid, over_smb, over_udp)
                    )
    return out
