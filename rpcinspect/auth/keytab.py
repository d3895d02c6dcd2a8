"""MIT keytab files (format 0x0502, and the older host-byte-order 0x0501): Kerberos long-term keys
per principal, kvno and encryption type, for decrypting service tickets.

A small bounded parser of our own (the format is a flat list of records; the MIT ``ktutil``
documentation and ``src/lib/krb5/keytab/kt_file.c`` describe it) rather than a dependency. A file
that is not a keytab raises :class:`KeytabError` whose message names the file and the offset,
never a key. Keys are never written to any record, anomaly or log.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_ENTRIES", "MAX_FILE_BYTES", "Keytab", "KeytabEntry", "KeytabError", "load_keytab", "parse"]

MAX_FILE_BYTES = 16 << 20
MAX_ENTRIES = 100_000
MAX_COMPONENTS = 16
MAX_TRIES = 256
"""Keys tried on one ticket when none is named for its service (bounded work per ticket)."""
_MEMO_MAX = 512


class KeytabError(ValueError):
    """The file is not a keytab this parser understands (message without any key material)."""


@dataclass(frozen=True)
class KeytabEntry:
    """One key: ``principal`` is the name components joined by ``/``."""

    principal: str
    realm: str
    kvno: int
    etype: int
    key: bytes = field(repr=False)

    def names(self, sname: str, realm: str) -> bool:
        return self.principal.lower() == sname.lower() and self.realm.upper() == realm.upper()


class _Reader:
    __slots__ = ("b", "end", "le", "o")

    def __init__(self, b: bytes, o: int, end: int, le: bool) -> None:
        self.b, self.o, self.end, self.le = b, o, end, le

    def take(self, n: int) -> bytes:
        if self.o + n > self.end:
            raise KeytabError(f"entry truncated at offset {self.o}")
        out = self.b[self.o : self.o + n]
        self.o += n
        return out

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little" if self.le else "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little" if self.le else "big")

    def text(self) -> str:
        return self.take(self.u16()).decode("utf-8", "replace")


def parse(b: bytes) -> list[KeytabEntry]:
    """Every key of a keytab image; deleted slots (negative sizes) are skipped."""
    if len(b) < 2 or b[0] != 5 or b[1] not in (1, 2):
        raise KeytabError("not a keytab (no 0x0502 or 0x0501 header)")
    if len(b) > MAX_FILE_BYTES:
        raise KeytabError(f"keytab of {len(b)} bytes is over the {MAX_FILE_BYTES}-byte cap")
    v1 = b[1] == 1
    le = v1 and sys.byteorder == "little"  # 0x0501 is written in the writer's byte order
    out: list[KeytabEntry] = []
    o = 2
    while o + 4 <= len(b):
        (size,) = struct.unpack_from("<i" if le else ">i", b, o)
        o += 4
        if size == 0:
            break  # MIT ends a file preallocated with zeros this way
        if size < 0:
            if o - size > len(b):
                raise KeytabError(f"deleted slot at offset {o - 4} runs past the end")
            o -= size
            continue
        if o + size > len(b):
            raise KeytabError(f"entry at offset {o - 4} runs past the end of the file")
        r = _Reader(b, o, o + size, le)
        count = r.u16() - (1 if v1 else 0)  # version 1 counts the realm as a component
        if not 0 < count <= MAX_COMPONENTS:
            raise KeytabError(f"entry at offset {o - 4} has {count} name components")
        realm = r.text()
        principal = "/".join(r.text() for _ in range(count))
        if not v1:
            r.u32()  # name type
        r.u32()  # timestamp
        kvno = r.take(1)[0]
        etype = r.u16()
        if etype >= 0x8000:
            etype -= 0x10000
        key = r.take(r.u16())
        if r.end - r.o >= 4:
            kvno32 = r.u32()
            kvno = kvno32 or kvno  # the 32-bit kvno, when present and non-zero, wins
        out.append(KeytabEntry(principal, realm, kvno, etype, key))
        if len(out) > MAX_ENTRIES:
            raise KeytabError(f"more than {MAX_ENTRIES} keys")
        o += size
    if o != len(b) and any(b[o:]):
        raise KeytabError(f"trailing bytes at offset {o}")
    return out


def load_keytab(path: Path) -> list[KeytabEntry]:
    """Reads and parses one keytab file; OSError or :class:`KeytabError` name the file."""
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    try:
        entries = parse(data)
    except KeytabError as e:
        raise KeytabError(f"{path}: {e}") from None
    if not entries:
        raise KeytabError(f"{path}: the keytab holds no keys")
    return entries


class Keytab:
    """The keys of every keytab given, and which one opened each ticket seen (memoised: clients
    present the same ticket on every connection)."""

    def __init__(self, entries: list[KeytabEntry]) -> None:
        self.entries = entries
        self.memo: dict[bytes, object] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def candidates(self, sname: str, realm: str, kvno: int | None, etype: int) -> Iterator[KeytabEntry]:
        """Keys for a ticket: the named service's with the ticket's kvno first, then that service's
        other kvnos, then every other key of the etype (a DC's keytab names one account many ways)."""
        same = [e for e in self.entries if e.etype == etype]
        named = [e for e in same if e.names(sname, realm)]
        exact = [e for e in named if kvno is None or e.kvno == kvno]
        seen: set[bytes] = set()
        for e in exact + named + same:
            if e.key not in seen:
                seen.add(e.key)
                yield e
                if len(seen) >= MAX_TRIES:
                    return

    def remember(self, cipher: bytes, value: object) -> None:
        if len(self.memo) >= _MEMO_MAX:
            self.memo.clear()
        self.memo[cipher] = value
