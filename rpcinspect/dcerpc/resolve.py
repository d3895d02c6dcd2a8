"""Missing-bind recovery: names calls whose presentation context was never bound in the capture.

Becomes :attr:`~rpcinspect.runtime.Run.resolver`. Sources, highest priority first, each giving
the call's ``if_source``:

``decode_as``
    the user's ``--decode-as HOST:PORT=UUID[:VERSION]`` / ``--decode-as PIPE=UUID[:VERSION]``
    (``HOST`` may be ``*``; ``UUID`` may also be a catalog short name such as ``samr``);
``epm``
    what the endpoint mapper answered earlier in the run (:mod:`rpcinspect.dcerpc.epm`);
``pipe``
    the well-known interface of the SMB named pipe (``dissectors/pipes.toml``), for ncacn_np.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rpcinspect.catalog.loader import normalize_pipe
from rpcinspect.errors import ConfigError

if TYPE_CHECKING:
    from rpcinspect.catalog import Catalog
    from rpcinspect.dcerpc.epm import EndpointMapper

__all__ = ["DecodeAs", "Resolver", "parse_decode_as"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_USAGE = "expected HOST:PORT=UUID[:VERSION] or PIPE=UUID[:VERSION]"


class DecodeAs:
    """Parsed ``--decode-as`` rules: (host or "*", port) -> interface, pipe -> interface."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, int], tuple[str, str | None]] = {}
        self.pipes: dict[str, tuple[str, str | None]] = {}

    def __bool__(self) -> bool:
        return bool(self.ports or self.pipes)


def _interface(spec: str, rule: str, catalog: Catalog) -> tuple[str, str | None]:
    name, _, version = spec.partition(":")
    if _UUID.match(name):
        if_uuid = name.lower()
    else:
        iface = catalog.interface_by_name(name)
        if iface is None:
            raise ConfigError(f"--decode-as {rule!r}: {name!r} is neither a UUID nor a known interface")
        if_uuid = iface.uuid
    if version:
        if not re.fullmatch(r"\d{1,5}(\.\d{1,5})?", version):
            raise ConfigError(f"--decode-as {rule!r}: bad version {version!r} (MAJOR or MAJOR.MINOR)")
        if "." not in version:
            version += ".0"
        return if_uuid, version
    known = catalog.interface(if_uuid)
    return if_uuid, (max(known.versions, key=lambda v: tuple(map(int, v.split(".")))) if known else None)


def parse_decode_as(rules: Iterable[str], catalog: Catalog) -> DecodeAs:
    """Parses ``--decode-as`` values; raises :class:`ConfigError` with a one-line message."""
    out = DecodeAs()
    for rule in rules:
        left, sep, right = rule.partition("=")
        left, right = left.strip(), right.strip()
        if not sep or not left or not right:
            raise ConfigError(f"--decode-as {rule!r}: {_USAGE}")
        target = _interface(right, rule, catalog)
        host, colon, port = left.rpartition(":")
        if colon and port.isdigit():
            host = host.strip("[]")
            if not host or not 0 < int(port) < 65536:
                raise ConfigError(f"--decode-as {rule!r}: {_USAGE}")
            out.ports[(host.lower(), int(port))] = target
        elif colon:
            raise ConfigError(f"--decode-as {rule!r}: bad port {port!r}; {_USAGE}")
        else:
            out.pipes[normalize_pipe(left)] = target
    return out


class Resolver:
    """``(transport, server, server_port, named_pipe) -> (if_uuid, if_version, source)``."""

    __slots__ = ("catalog", "decode_as", "epm", "pipes")

    def __init__(
        self, catalog: Catalog, decode_as: DecodeAs | None, epm: EndpointMapper | None, *, pipes: bool = True
    ) -> None:
        self.catalog = catalog
        self.decode_as = decode_as if decode_as else None
        self.epm = epm
        self.pipes = pipes  # False in a parallel worker: its parent names by epm, then by pipe

    def __call__(
        self, transport: str, server: str, port: int, pipe: str | None
    ) -> tuple[str, str, str] | None:
        da = self.decode_as
        if da is not None:
            hit = None
            if pipe is not None and da.pipes:
                hit = da.pipes.get(normalize_pipe(pipe))
            if hit is None and da.ports:
                hit = da.ports.get((server, port)) or da.ports.get(("*", port))
            if hit is not None:
                return hit[0], hit[1], "decode_as"  # type: ignore[return-value]
        if self.epm is not None:
            found = self.epm.resolve(transport, server, port, pipe)
            if found is not None:
                return found[0], found[1], "epm"
        if pipe is not None and self.pipes:
            iface = self.catalog.pipe_interface(pipe)
            if iface is not None:
                return iface.uuid, max(iface.versions, key=lambda v: tuple(map(int, v.split(".")))), "pipe"
        return None
