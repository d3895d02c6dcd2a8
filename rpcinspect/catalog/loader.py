"""Load the ``dissectors/`` TOML data into O(1) lookup tables.

Protocol knowledge (interfaces, opnums, faults, auth constants, pipes, syntaxes) is data, not
code: this module only parses and validates it.  Every problem raises :class:`CatalogError`
with the offending file in the message, so a bad edit fails loudly at start-up instead of
mislabelling traffic later.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rpcinspect.catalog.cache import CatalogParts, load_parts_cached

__all__ = ["Catalog", "CatalogError", "Interface", "load_catalog"]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VERSION = re.compile(r"^\d{1,5}\.\d{1,5}$")
_HEX = re.compile(r"^0x[0-9a-f]{8}$")
_SHORT = re.compile(r"^[a-z0-9_]+$")
AUTH_SHORTS = frozenset({"none", "ntlm", "kerberos", "spnego", "netlogon", "other"})


class CatalogError(Exception):
    """Bad catalog data; the message names the file and the problem on one line."""


@dataclass(frozen=True, slots=True)
class Interface:
    """One RPC interface (abstract syntax) and its operation names."""

    name: str
    long_name: str
    spec: str
    uuid: str
    versions: tuple[str, ...]
    opnums: Mapping[int, str]


def _version_key(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


class Catalog:
    """Read-only lookups over the loaded data; every method is a dict lookup or two."""

    __slots__ = (
        "_ack_reasons",
        "_ack_results",
        "_auth_levels",
        "_auth_types",
        "_btfn_prefix",
        "_by_name",
        "_by_uuid",
        "_by_uuid_version",
        "_faults",
        "_nak_reasons",
        "_pipes",
        "_syntaxes",
        "interfaces",
    )

    def __init__(
        self,
        interfaces: tuple[Interface, ...],
        tables: Mapping[str, Mapping[int, str]],
        auth_types: Mapping[int, str],
        auth_levels: Mapping[int, str],
        pipes: Mapping[str, str],
        syntaxes: Mapping[tuple[str, str], str],
        btfn_prefix: str,
    ) -> None:
        self.interfaces = interfaces
        self._by_uuid_version = {(i.uuid, v): i for i in interfaces for v in i.versions}
        # uuid alone -> the interface with the highest version (best effort for unknown versions)
        by_uuid: dict[str, Interface] = {}
        for i in sorted(interfaces, key=lambda i: max(_version_key(v) for v in i.versions)):
            by_uuid[i.uuid] = i
        self._by_uuid = by_uuid
        self._by_name = {i.name: i for i in interfaces}
        self._faults = dict(tables["faults"])
        self._ack_results = dict(tables["ack_results"])
        self._ack_reasons = dict(tables["ack_reasons"])
        self._nak_reasons = dict(tables["bind_nak_reasons"])
        self._auth_types = dict(auth_types)
        self._auth_levels = dict(auth_levels)
        self._pipes = {p: self._by_name[n] for p, n in pipes.items()}
        self._syntaxes = dict(syntaxes)
        self._btfn_prefix = btfn_prefix

    def interface(self, uuid: str, version: str | None = None) -> Interface | None:
        """Interface for ``uuid`` ("major.minor" ``version``).

        Best effort: when ``version`` is None or not one the catalog lists, the interface known
        under that uuid with the highest version is returned, because a name for an unexpected
        version beats no name.  Callers that need the exact match can check ``versions``.
        """
        if version is not None:
            found = self._by_uuid_version.get((uuid, version))
            if found is not None:
                return found
        found = self._by_uuid.get(uuid)
        if found is None and not uuid.islower():
            found = self._by_uuid.get(uuid.lower())
        return found

    def interface_by_name(self, name: str) -> Interface | None:
        """Interface by its short name (``"samr"``)."""
        return self._by_name.get(name)

    def operation(self, uuid: str, version: str | None, opnum: int) -> str | None:
        """Operation name of ``opnum`` on the interface, or None when unknown."""
        iface = self.interface(uuid, version)
        return None if iface is None else iface.opnums.get(opnum)

    def fault_name(self, code: int) -> str:
        """Name of a fault/reject status code; unknown -> ``0x%08x``."""
        name = self._faults.get(code)
        return name if name is not None else f"0x{code:08x}"

    def ack_result_name(self, code: int) -> str:
        """Presentation-context result of a bind_ack; unknown -> ``unknown-N``."""
        return self._ack_results.get(code) or f"unknown-{code}"

    def ack_reason_name(self, code: int) -> str:
        """Provider reason of a rejected presentation context; unknown -> ``unknown-N``."""
        return self._ack_reasons.get(code) or f"unknown-{code}"

    def bind_nak_reason_name(self, code: int) -> str:
        """Reject reason of a bind_nak; unknown -> ``unknown-N``."""
        return self._nak_reasons.get(code) or f"unknown-{code}"

    def auth_type_short(self, code: int) -> str:
        """auth_type as none|ntlm|kerberos|spnego|netlogon|other (unknown -> other)."""
        return self._auth_types.get(code, "other")

    def auth_level_name(self, code: int) -> str:
        """auth_level as default|none|connect|call|pkt|integrity|privacy; unknown -> ``unknown-N``."""
        return self._auth_levels.get(code) or f"unknown-{code}"

    def pipe_interface(self, pipe: str) -> Interface | None:
        """Default interface of a named pipe; accepts ``\\PIPE\\samr``, ``\\pipe\\samr`` or ``samr``."""
        found = self._pipes.get(pipe)
        if found is not None:
            return found
        return self._pipes.get(normalize_pipe(pipe))

    def syntax_name(self, uuid: str, version: str) -> str | None:
        """``NDR``, ``NDR64`` or ``BTFN`` for a transfer syntax, else None."""
        name = self._syntaxes.get((uuid, version))
        if name is None and uuid.startswith(self._btfn_prefix):
            return "BTFN"
        return name


def normalize_pipe(pipe: str) -> str:
    """``\\\\host\\PIPE\\Samr\\x00`` -> ``samr``: lowercase, no NULs, no pipe prefix."""
    p = pipe.replace("\x00", "").replace("/", "\\").strip().lower()
    cut = p.rfind("\\pipe\\")
    if cut >= 0:
        p = p[cut + 6 :]
    elif p.startswith("pipe\\"):
        p = p[5:]
    return p.strip("\\")


# ----------------------------------------------------------------------------------------------
# parsing


def _read(node: Traversable, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(node.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{label}: cannot parse: {exc}") from None


def _str(data: Mapping[str, Any], key: str, label: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{label}: '{key}' must be a non-empty string")
    return value


def _int_key(key: str, label: str, what: str) -> int:
    try:
        return int(key, 0) if key.startswith("0x") else int(key)
    except ValueError:
        raise CatalogError(f"{label}: {what} key {key!r} is not an integer") from None


def _uuid(value: str, label: str) -> str:
    if not _UUID.match(value):
        raise CatalogError(f"{label}: bad uuid {value!r} (want lowercase 8-4-4-4-12 hex)")
    return value


def _versions(data: Mapping[str, Any], label: str) -> tuple[str, ...]:
    versions = data.get("versions")
    if not isinstance(versions, list) or not versions:
        raise CatalogError(f"{label}: 'versions' must be a non-empty list")
    for v in versions:
        if not isinstance(v, str) or not _VERSION.match(v):
            raise CatalogError(f"{label}: bad version {v!r} (want 'major.minor')")
    return tuple(versions)


def parse_interface(data: Mapping[str, Any], label: str) -> Interface:
    """Validate one interfaces/*.toml document."""
    name = _str(data, "name", label)
    if not _SHORT.match(name):
        raise CatalogError(f"{label}: name {name!r} must match [a-z0-9_]+")
    raw_ops = data.get("opnums")
    if not isinstance(raw_ops, dict) or not raw_ops:
        raise CatalogError(f"{label}: missing or empty [opnums] table")
    opnums: dict[int, str] = {}
    for key, op in raw_ops.items():
        if not key.isdigit():
            raise CatalogError(f"{label}: opnum key {key!r} is not a non-negative integer")
        if not isinstance(op, str) or not op.strip():
            raise CatalogError(f"{label}: opnum {key} has an empty name")
        opnums[int(key)] = op
    return Interface(
        name=name,
        long_name=_str(data, "long_name", label),
        spec=_str(data, "spec", label),
        uuid=_uuid(_str(data, "uuid", label), label),
        versions=_versions(data, label),
        opnums=MappingProxyType(dict(sorted(opnums.items()))),
    )


def _iter_interfaces(root: Traversable) -> Iterator[tuple[Traversable, str]]:
    folder = root.joinpath("interfaces")
    for node in sorted(folder.iterdir(), key=lambda n: n.name):
        if node.name.endswith(".toml"):
            yield node, f"interfaces/{node.name}"


def _code_table(data: Mapping[str, Any], table: str, label: str, hex_keys: bool) -> dict[int, str]:
    raw = data.get(table)
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"{label}: missing or empty [{table}] table")
    out: dict[int, str] = {}
    for key, value in raw.items():
        if hex_keys and not _HEX.match(key):
            raise CatalogError(f"{label}: [{table}] key {key!r} is not lowercase hex like '0x1c010002'")
        if not isinstance(value, str) or not value.strip():
            raise CatalogError(f"{label}: [{table}] {key} has an empty name")
        out[_int_key(key, label, f"[{table}]")] = value
    return out


def _auth_table(data: Mapping[str, Any], table: str, label: str) -> dict[int, str]:
    raw = data.get(table)
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"{label}: missing or empty [{table}] table")
    out: dict[int, str] = {}
    for key, value in raw.items():
        if not isinstance(value, dict):
            raise CatalogError(f"{label}: [{table}] {key} must be {{ short = ..., long = ... }}")
        short = _str(value, "short", f"{label} [{table}] {key}")
        _str(value, "long", f"{label} [{table}] {key}")
        if table == "auth_types" and short not in AUTH_SHORTS:
            raise CatalogError(f"{label}: [{table}] {key} short {short!r} not in {sorted(AUTH_SHORTS)}")
        out[_int_key(key, label, f"[{table}]")] = short
    return out


def load_catalog(root: Path | Traversable | None = None) -> Catalog:
    """Load and validate the catalog under ``root`` (default: the ``dissectors`` package, cached)."""
    if root is None:
        return _default_catalog()
    return _load(root)


@functools.cache
def _default_catalog() -> Catalog:
    root = default_root()
    if isinstance(root, Path):
        return Catalog(*load_parts_cached(root, _load_parts))
    return _load(root)


def default_root() -> Traversable:
    """The ``dissectors`` package data, or ``<checkout>/dissectors`` when it is not importable."""
    try:
        return importlib.resources.files("dissectors")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "dissectors"


def _load(root: Path | Traversable) -> Catalog:
    return Catalog(*_load_parts(root))


def _load_parts(root: Path | Traversable) -> CatalogParts:
    """Everything :class:`Catalog` is built from, validated."""
    interfaces: list[Interface] = []
    seen_names: dict[str, str] = {}
    seen_keys: dict[tuple[str, str], str] = {}
    for node, label in _iter_interfaces(root):
        iface = parse_interface(_read(node, label), label)
        if iface.name in seen_names:
            raise CatalogError(f"{label}: short name {iface.name!r} already used by {seen_names[iface.name]}")
        seen_names[iface.name] = label
        for v in iface.versions:
            if (iface.uuid, v) in seen_keys:
                other = seen_keys[iface.uuid, v]
                raise CatalogError(f"{label}: {iface.uuid} v{v} already defined by {other}")
            seen_keys[iface.uuid, v] = label
        interfaces.append(iface)
    if not interfaces:
        raise CatalogError(f"{root}: no interfaces/*.toml found")

    faults = _read(root.joinpath("faults.toml"), "faults.toml")
    tables = {
        "faults": _code_table(faults, "faults", "faults.toml", hex_keys=True),
        "ack_results": _code_table(faults, "ack_results", "faults.toml", hex_keys=False),
        "ack_reasons": _code_table(faults, "ack_reasons", "faults.toml", hex_keys=False),
        "bind_nak_reasons": _code_table(faults, "bind_nak_reasons", "faults.toml", hex_keys=False),
    }
    auth = _read(root.joinpath("auth.toml"), "auth.toml")
    auth_types = _auth_table(auth, "auth_types", "auth.toml")
    auth_levels = _auth_table(auth, "auth_levels", "auth.toml")

    pipes_doc = _read(root.joinpath("pipes.toml"), "pipes.toml").get("pipes")
    if not isinstance(pipes_doc, dict) or not pipes_doc:
        raise CatalogError("pipes.toml: missing or empty [pipes] table")
    pipes: dict[str, str] = {}
    for pipe, target in pipes_doc.items():
        if pipe != normalize_pipe(pipe) or not pipe:
            raise CatalogError(f"pipes.toml: pipe {pipe!r} must be lowercase without a \\pipe\\ prefix")
        if target not in seen_names:
            raise CatalogError(f"pipes.toml: pipe {pipe!r} points at unknown interface {target!r}")
        pipes[pipe] = target

    syn = _read(root.joinpath("syntaxes.toml"), "syntaxes.toml")
    syntaxes: dict[tuple[str, str], str] = {}
    for entry in syn.get("syntax", []):
        name = _str(entry, "name", "syntaxes.toml")
        uuid = _uuid(_str(entry, "uuid", f"syntaxes.toml {name}"), f"syntaxes.toml {name}")
        for v in _versions(entry, f"syntaxes.toml {name}"):
            syntaxes[uuid, v] = name
    if not syntaxes:
        raise CatalogError("syntaxes.toml: no [[syntax]] entries")
    btfn = syn.get("btfn")
    if not isinstance(btfn, dict):
        raise CatalogError("syntaxes.toml: missing [btfn] table")
    prefix = _str(btfn, "uuid_prefix", "syntaxes.toml [btfn]")
    if not re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-$", prefix):
        raise CatalogError(f"syntaxes.toml: bad [btfn] uuid_prefix {prefix!r}")

    return tuple(interfaces), tables, auth_types, auth_levels, pipes, syntaxes, prefix
