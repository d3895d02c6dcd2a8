"""tshark as the reference decoder: its connection-oriented DCE/RPC requests, per capture.

Wireshark does not print an interface UUID on a request, so the reference interface is taken
the way Wireshark itself finds it: from the bind/alter_context items tshark decoded earlier on
the same TCP stream with the same context id. Over SMB the reference pipe name is the file
tshark names on the request's SMB2 file id ("GUID handle File: NAME") or SMB1 fid (``smb.file``),
normalised like rpcinspect's ``named_pipe``. Only requests whose last fragment is in the frame
count (that is where tshark reports the reassembled call, and where rpcinspect puts
``req_frame``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
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
    pipe: str | None = None


def _normalise_pipe(name: str) -> str:
    n = name.replace("/", "\\").strip("\x00").lstrip("\\").lower()
    return n[5:].lstrip("\\") if n.startswith("pipe\\") else n


def _first(node: object, pick: Callable[[str, object], str | None]) -> str | None:
    """Depth-first, the first value *pick* returns for a (key, value) of the JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            found = pick(k, v)
            if found is None:
                found = _first(v, pick)
            if found is not None:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _first(v, pick)
            if found is not None:
                return found
    return None


def _smb_fid(node: object) -> str | None:
    """The first SMB2 or SMB1 file id under an smb/smb2/smb_pipe layer."""
    return _first(node, lambda k, v: v if k in ("smb2.fid", "smb.fid") and isinstance(v, str) else None)


def _smb_file(node: object) -> str | None:
    """The file name tshark attaches to a file id anywhere under an smb/smb2 layer."""

    def pick(k: str, v: object) -> str | None:
        if k.startswith("GUID handle File: "):
            return k[len("GUID handle File: ") :]
        return v if k == "smb.file" and isinstance(v, str) else None

    return _first(node, pick)


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
         "-J", "frame tcp dcerpc smb smb2 smb_pipe"],
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
        pipe = None
        if over_smb:
            smb = [layers.get("smb2"), layers.get("smb_pipe"), layers.get("smb")]
            name = _smb_file(smb)
            pipe = _normalise_pipe(name) if name else None
            # binds are per pipe (file id), not per TCP stream: one SMB connection carries many
            stream = f"{stream}/{_smb_fid(smb)}"
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
                        TsharkRequest(
                            frame, int(pdu["dcerpc.opnum"]), ctx, call_id, uuid, over_smb, over_udp, pipe
                        )
                    )
    return out
