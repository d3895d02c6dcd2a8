"""One exception tree for rpcinspect; the CLI maps each branch to an exit code.

Malformed *traffic* is never an exception: it is data (counted, and reported as anomalies).
Exceptions are for things the user must fix: a file that is not a capture, a bad option.

    RpcInspectError
    ├── InputError     unreadable, empty or unsupported input (exit 3)
    └── ConfigError    bad options or data files (exit 2)
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "RpcInspectError"]


class RpcInspectError(Exception):
    """Root of every error rpcinspect raises on purpose."""


class InputError(RpcInspectError):
    """The input cannot be read as a capture (not a pcap, unsupported link type, I/O error)."""


class ConfigError(RpcInspectError):
    """An option, or a data file the user pointed at, is invalid."""
