"""A compiled copy of the catalog in the user's cache directory, so start-up skips 460 TOML parses.

The TOML files stay the source of truth: the cache is keyed by the name, size and mtime of every
data file (and the package version), written atomically, and ignored when it is missing,
unreadable or stale. ``marshal`` holds only built-in types, so loading it runs no code.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpcinspect.catalog.loader import Interface

__all__ = ["CatalogParts", "cache_dir", "load_parts_cached"]

CatalogParts = tuple[
    "tuple[Interface, ...]",
    Mapping[str, Mapping[int, str]],
    Mapping[int, str],
    Mapping[int, str],
    Mapping[str, str],
    Mapping[tuple[str, str], str],
    str,
]
_FORMAT = 1


def cache_dir() -> Path:
    """``$RPCINSPECT_CACHE``, else ``$XDG_CACHE_HOME/rpcinspect``, else ``~/.cache/rpcinspect``."""
    env = os.environ.get("RPCINSPECT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rpcinspect"


def _fingerprint(root: Path) -> str:
    from rpcinspect import __version__

    h = hashlib.sha256(f"{_FORMAT}:{__version__}:{root}".encode())
    for f in sorted([*root.glob("*.toml"), *root.glob("interfaces/*.toml")]):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _to_plain(parts: CatalogParts) -> Any:
    ifaces, tables, auth_types, auth_levels, pipes, syntaxes, prefix = parts
    plain_ifaces = [(i.name, i.long_name, i.spec, i.uuid, i.versions, dict(i.opnums)) for i in ifaces]
    plain_tables = {k: dict(v) for k, v in tables.items()}
    return (
        plain_ifaces,
        plain_tables,
        dict(auth_types),
        dict(auth_levels),
        dict(pipes),
        dict(syntaxes),
        prefix,
    )


def _from_plain(data: Any) -> CatalogParts:
    from rpcinspect.catalog.loader import Interface

    plain_ifaces, tables, auth_types, auth_levels, pipes, syntaxes, prefix = data
    ifaces = tuple(
        Interface(n, ln, sp, u, tuple(v), MappingProxyType(o)) for n, ln, sp, u, v, o in plain_ifaces
    )
    return ifaces, tables, auth_types, auth_levels, pipes, syntaxes, prefix


def load_parts_cached(root: Path, load: Callable[[Path], CatalogParts]) -> CatalogParts:
    """``load(root)``, through the cache when it is valid; any cache problem just means a reload."""
    try:
        path = cache_dir() / f"catalog-{_fingerprint(root)}.marshal"
    except OSError:
        return load(root)
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        return _from_plain(marshal.loads(path.read_bytes()))
    parts = load(root)
    with contextlib.suppress(OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps(_to_plain(parts)))
        os.replace(tmp, path)
    return parts
