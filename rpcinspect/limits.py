"""Every bound the pipeline enforces, in one place, so hostile input cannot exhaust memory.

Each enforcement bumps a named counter (reported in the summary) and, where it loses data, emits
an anomaly record. Tests lower these limits to check both the bound and the trace it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on per-connection and global state. All sizes in bytes, times in capture seconds."""

    max_connections: int = 65_536
    """Connections tracked at once; past it, the least recently active is closed (its calls logged)."""
    max_ignored_flows: int = 1_000_000
    """Non-RPC flows remembered as 'ignore'; the memo is cleared when full (costs a re-check only)."""
    probe_segments: int = 6
    """Data segments a connection on an unknown port may show before it is judged not DCE/RPC."""
    max_ooo_bytes: int = 1 << 20
    """Out-of-order bytes buffered per direction before the gap is declared and skipped."""
    max_ooo_segments: int = 4096
    """Out-of-order segments buffered per direction (tiny segments must not make reassembly slow)."""
    max_pdu_buffer: int = 65_535 + 16
    """A frag_length is 16 bits, so one PDU never needs more; a direction never buffers more."""
    max_calls: int = 1024
    """In-flight calls per association; past it, the oldest is closed as no_response (evicted)."""
    max_binds: int = 64
    """Pending bind/alter_context PDUs per association."""
    max_contexts: int = 1024
    """Presentation contexts remembered per association (each bind adds at most 255)."""
    idle_timeout: float = 900.0
    """Capture seconds after which an idle connection is closed and its state freed."""
    max_stub_bytes: int = 1 << 20
    """Stub bytes kept per call and direction for a stub tap (argument decoding, endpoint mapper)."""
    max_smb_message: int = 8 << 20
    """Bytes buffered for one SMB message (per direction); a longer one is skipped (``smb_limit``)."""
    max_smb_pipes: int = 1024
    """Open named pipes per SMB connection (also trees and sessions); past it the oldest is evicted."""
    max_smb_pending: int = 4096
    """SMB requests awaiting their response per connection; past it the oldest is forgotten."""
    max_unnamed_calls: int = 10_000
    """Calls with an unknown interface held for late naming by a later endpoint-mapper answer;
    past it, those of the endpoint that waited longest are written unnamed (``late_name_evicted``)."""
    max_unnamed_wait: float = 3600.0
    """Capture seconds a held call waits for an endpoint-mapper answer before it is written unnamed."""
    max_anomalies_per_kind: int = 100
    """Anomaly records written per kind and file; counters keep the full count."""


DEFAULT_LIMITS = Limits()
