"""rpcinspect: a passive and active analyzer for Microsoft RPC (DCE/RPC, MS-RPCE).

Public API: :func:`analyze` (capture files -> records), the record types in
:mod:`rpcinspect.records`, and the errors in :mod:`rpcinspect.errors`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from rpcinspect.engine import analyze
from rpcinspect.errors import ConfigError, InputError, RpcInspectError
from rpcinspect.records import SCHEMA_VERSION, AnomalyRecord, BindRecord, CallRecord, SummaryRecord

__all__ = [
    "SCHEMA_VERSION",
    "AnomalyRecord",
    "BindRecord",
    "CallRecord",
    "ConfigError",
    "InputError",
    "RpcInspectError",
    "SummaryRecord",
    "__version__",
    "analyze",
]
