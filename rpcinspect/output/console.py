"""The human summary: calls per interface and operation, conversations, faults, damage counts.

:class:`Stats` is a sink that only aggregates (bounded by the number of distinct names, not by
the number of calls), so it can sit beside a machine writer on a capture of any size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from rpcinspect.records import BindRecord, CallRecord, EndpointRecord, Record, SummaryRecord

__all__ = ["Stats", "render"]

_MAX_KEYS = 10_000
_DAMAGE_PREFIXES = ("malformed", "truncated", "tcp_gap", "call_evicted", "co_partial", "files_truncated")


class Stats:
    """Aggregates records for the console summary."""

    def __init__(self) -> None:
        self.ops: Counter[tuple[str, str, str]] = Counter()
        self.faults: Counter[tuple[str, str, str]] = Counter()
        self.convs: Counter[tuple[str, str, str]] = Counter()
        self.status: Counter[str] = Counter()
        self.binds: Counter[str] = Counter()
        self.posture: dict[tuple[str, str, str], list] = {}  # type: ignore[type-arg]
        """(client, server, interface) -> [rank, protection, auth, users, calls]: weakest seen."""
        self.endpoints: dict[tuple[str, str], list[str]] = {}
        """(server, interface) -> where it is offered ("tcp:49154", "np:\\pipe\\lsass", ...)."""
        self.summary: SummaryRecord | None = None

    @staticmethod
    def _add(c: Counter, key: tuple[str, ...]) -> None:  # type: ignore[type-arg]
        if key in c or len(c) < _MAX_KEYS:
            c[key] += 1

    def write(self, rec: Record) -> None:
        if isinstance(rec, CallRecord):
            iface = rec.interface or (rec.if_uuid or "unknown interface")
            op = rec.operation or (f"opnum {rec.opnum}" if rec.opnum is not None else "?")
            self._add(self.ops, (iface, op, rec.transport))
            self._add(self.convs, (f"{rec.src}", f"{rec.dst}:{rec.dport}", iface))
            self.status[rec.status] += 1
            self._posture(rec, iface)
            if rec.status in ("fault", "rejected"):
                self._add(self.faults, (iface, op, rec.fault or rec.status))
        elif isinstance(rec, BindRecord):
            self.binds[rec.status] += 1
        elif isinstance(rec, EndpointRecord):
            key = (rec.server, rec.interface or f"{rec.if_uuid} v{rec.if_version}")
            where = self.endpoints.get(key)
            if where is None:
                if len(self.endpoints) >= _MAX_KEYS:
                    return
                where = self.endpoints[key] = []
            at = f"{rec.protocol}:{rec.port if rec.port is not None else rec.pipe}"
            if at not in where and len(where) < 8:
                where.append(at)
        elif isinstance(rec, SummaryRecord):
            self.summary = rec

    def _posture(self, rec: CallRecord, iface: str) -> None:
        key = (rec.src, f"{rec.dst}:{rec.dport}", iface)
        rank, prot = _protection(rec)
        row = self.posture.get(key)
        if row is None:
            if len(self.posture) >= _MAX_KEYS:
                return
            row = self.posture[key] = [rank, prot, "", set(), 0]
        if rank <= row[0]:
            row[0], row[1] = rank, prot
            row[2] = rec.auth_type if rec.auth_source != "smb" else f"smb {rec.smb_auth or '?'}"
        if rec.user and len(row[3]) < 4:
            row[3].add(rec.user)
        row[4] += 1

    def merge(self, other: Stats) -> None:
        """Adds another run's aggregates (a parallel worker's), within the same bounds."""
        for mine, theirs in ((self.ops, other.ops), (self.faults, other.faults), (self.convs, other.convs)):
            for key, n in theirs.items():
                if key in mine or len(mine) < _MAX_KEYS:
                    mine[key] += n
        self.status.update(other.status)
        self.binds.update(other.binds)
        for key, row in other.posture.items():
            have = self.posture.get(key)
            if have is None:
                if len(self.posture) < _MAX_KEYS:
                    self.posture[key] = row
                continue
            if row[0] <= have[0]:
                have[0], have[1], have[2] = row[0], row[1], row[2]
            for user in row[3]:
                if len(have[3]) < 4:
                    have[3].add(user)
            have[4] += row[4]
        for key, where in other.endpoints.items():
            have_w = self.endpoints.get(key)
            if have_w is None:
                if len(self.endpoints) >= _MAX_KEYS:
                    continue
                have_w = self.endpoints[key] = []
            for at in where:
                if at not in have_w and len(have_w) < 8:
                    have_w.append(at)

    def close(self) -> None:
        pass


def _protection(rec: CallRecord) -> tuple[int, str]:
    """(rank, text) of a call's protection: lower is weaker."""
    src = "smb " if rec.auth_source == "smb" else ""
    if rec.auth_source == "smb" and rec.smb_auth in ("anonymous", "guest"):
        return 0, f"smb {rec.smb_auth}"  # no session key: nobody proved who they are
    if rec.sealed:
        return 4, src + "sealed"
    if rec.signed:
        return 3, src + "signed"
    if rec.auth_source == "smb":
        return 2, "smb"
    if rec.auth_source == "rpc":
        return 1, rec.auth_level
    return 0, "none"


def _table(
    console: Console,
    title: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    more: int = 0,
    more_text: str = "more rows",
    count: str = "calls",
) -> None:
    """One summary table; the last value of each row is a count (right-aligned, headed *count*)."""
    if not rows:
        return
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    t.add_column(count, justify="right")
    for *cells, n in rows:
        t.add_row(*(str(c) for c in cells), f"{n:,}")
    if more > 0:
        t.caption = f"{more} {more_text}"
    console.print(t)


def render(stats: Stats, console: Console, *, top: int = 25) -> None:
    """Prints the summary tables."""
    s = stats.summary
    if s is not None:
        console.print(
            f"[bold]{len(s.files)} file(s)[/], {s.frames:,} frames, {s.connections:,} TCP connections, "
            f"[bold]{s.calls:,} calls[/], {s.binds:,} binds in {s.duration:.2f}s"
        )
    if stats.status:
        console.print("Calls by status: " + ", ".join(f"{k} {v:,}" for k, v in stats.status.most_common()))
    _table(
        console, "Calls per interface and operation", ("interface", "operation", "transport"),
        [(*k, n) for k, n in stats.ops.most_common(top)], len(stats.ops) - top,
        "more rows: use --format jsonl for everything",
    )  # fmt: skip
    _table(console, "Conversations", ("client", "server", "interface"),
           [(*k, n) for k, n in stats.convs.most_common(top)])  # fmt: skip
    _table(console, "Faults and rejections", ("interface", "operation", "fault"),
           [(*k, n) for k, n in stats.faults.most_common(top)])  # fmt: skip
    posture = sorted(stats.posture.items(), key=lambda kv: (kv[1][0], -kv[1][4]))
    _table(
        console, "Auth posture (weakest protection seen)",
        ("client", "server", "interface", "weakest", "auth", "user"),
        [(c, srv, iface, prot, auth, ", ".join(sorted(users)) or "-", n)
         for (c, srv, iface), (_r, prot, auth, users, n) in posture[:top]],
        len(posture) - top, "more rows (weakest first)",
    )  # fmt: skip
    eps = sorted(stats.endpoints.items())
    _table(
        console, "Server endpoints (from endpoint-mapper answers)", ("server", "interface", "offered at"),
        [(srv, iface, ", ".join(where), len(where)) for (srv, iface), where in eps[:top]],
        len(eps) - top, "more rows: see the endpoint records (--format jsonl)", count="endpoints",
    )  # fmt: skip
    if s is not None:
        damage = {k: v for k, v in s.counters.items() if k.startswith(_DAMAGE_PREFIXES)}
        if damage:
            console.print(
                "[yellow]Malformed or undecodable:[/] " + ", ".join(f"{k} {v:,}" for k, v in damage.items())
            )
        encrypted = s.counters.get("smb_encrypted", 0)
        if encrypted:
            console.print(
                f"[yellow]Encrypted SMB3 sessions: {encrypted:,}[/] (their named pipes cannot be decoded "
                f"without keys; {s.counters.get('smb_encrypted_messages', 0):,} encrypted messages)"
            )
        if s.counters.get("decrypt_failed") or s.counters.get("auth_contexts_decrypted"):
            console.print(
                f"Decryption: {s.counters.get('auth_contexts_decrypted', 0):,} security context(s) opened; "
                f"[yellow]{s.counters.get('decrypt_failed', 0):,} not opened[/] "
                "(see the decrypt_failed anomalies: no secret for the user, or a wrong one)"
            )
        if not s.calls and not s.binds:
            console.print("[dim]No DCE/RPC traffic found.[/]")
