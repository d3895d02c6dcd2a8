"""The record schema: rpcinspect's public output contract (documented in docs/schema.md).

Every stage above ``dcerpc`` produces or consumes these records; writers serialize them as they
are. They are plain dataclasses, neither frozen (a frozen ``__init__`` costs microseconds per
record) nor slotted (orjson serialises ``__dict__`` dataclasses five times faster): treat them as
immutable once emitted.

Rules for changing them: add fields, never rename or retype one, and bump
:data:`SCHEMA_VERSION` on any addition. ``None`` means "not known" (written as JSON null).
Each record carries ``record`` (its kind) and ``schema`` (the version) so a JSON Lines stream
can be read line by line without context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "SCHEMA_VERSION",
    "AnomalyRecord",
    "BindAuth",
    "BindRecord",
    "CallRecord",
    "ContextRecord",
    "EndpointRecord",
    "Record",
    "SummaryRecord",
]

SCHEMA_VERSION = 3

CallStatus = Literal["ok", "fault", "rejected", "no_response"]
IfSource = Literal["bind", "header", "decode_as", "epm", "pipe", "unknown"]


@dataclass
class CallRecord:
    """One RPC call: a request paired with its response, fault, or nothing."""

    ts: float
    req_frame: int | None
    resp_frame: int | None
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    named_pipe: str | None
    call_id: int
    ctx_id: int | None
    opnum: int | None
    if_uuid: str | None
    if_version: str | None
    interface: str | None
    operation: str | None
    if_source: IfSource
    object_uuid: str | None
    auth_type: str
    auth_level: str
    status: CallStatus
    fault: str | None
    rtt: float | None
    req_stub_len: int
    resp_stub_len: int
    req_frags: int
    resp_frags: int
    ndr: str | None
    close_reason: str | None
    assoc_group: int | None
    activity_uuid: str | None = None
    user: str | None = None
    auth_source: Literal["rpc", "smb", "none"] = "none"
    signed: bool = False
    sealed: bool = False
    stub_encrypted: bool = False
    decrypted: bool = False
    sec_vt: bool = False
    smb_auth: Literal["ntlm", "kerberos", "anonymous", "guest"] | None = None
    smb_dialect: str | None = None
    record: Literal["call"] = "call"
    schema: int = SCHEMA_VERSION


@dataclass
class NtlmAuth:
    """NTLMSSP (MS-NLMP) seen across a negotiation's legs."""

    messages: list[str]
    user: str | None = None
    domain: str | None = None
    workstation: str | None = None
    version: Literal["v1", "v2", "lm", "anonymous"] | None = None
    flags: list[str] = field(default_factory=list)
    mic: bool = False
    target_name: str | None = None
    nb_computer: str | None = None
    nb_domain: str | None = None
    dns_computer: str | None = None
    dns_domain: str | None = None
    dns_tree: str | None = None
    timestamp: float | None = None


@dataclass
class KerberosAuth:
    """Kerberos AP exchange (RFC 4120) seen across a negotiation's legs."""

    messages: list[str]
    realm: str | None = None
    sname: str | None = None
    ticket_etype: str | None = None
    authenticator_etype: str | None = None
    ap_rep_etype: str | None = None
    mutual: bool | None = None
    error: int | None = None


@dataclass
class SpnegoAuth:
    """SPNEGO (RFC 4178): mechanisms the client offered and the one the server chose."""

    offered: list[str]
    chosen: str | None = None
    state: str | None = None


@dataclass
class NetlogonAuth:
    """Netlogon secure channel NL_AUTH_MESSAGE (MS-NRPC 2.2.1.3.1)."""

    messages: list[str]
    flags: list[str] = field(default_factory=list)
    domain: str | None = None
    computer: str | None = None
    dns_domain: str | None = None
    dns_computer: str | None = None


@dataclass
class BindAuth:
    """The security context a bind or alter_context negotiated, filled across its legs."""

    mechanism: str
    auth_ctx_id: int
    legs: list[str]
    complete: bool
    ntlm: NtlmAuth | None = None
    kerberos: KerberosAuth | None = None
    spnego: SpnegoAuth | None = None
    netlogon: NetlogonAuth | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class ContextRecord:
    """One presentation context offered in a bind/alter_context, with the server's answer."""

    ctx_id: int
    if_uuid: str
    if_version: str
    interface: str | None
    transfer_syntaxes: list[str]
    result: str | None
    reason: str | None
    accepted_syntax: str | None
    btfn: list[str] | None


@dataclass
class BindRecord:
    """A bind or alter_context and its ack/nak: the association's negotiation."""

    ts: float
    req_frame: int | None
    resp_frame: int | None
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    named_pipe: str | None
    pdu: Literal["bind", "alter_context"]
    call_id: int
    status: Literal["ok", "rejected", "no_response"]
    assoc_group: int | None
    max_xmit: int | None
    max_recv: int | None
    sec_addr: str | None
    auth_type: str
    auth_level: str
    header_sign: bool
    nak_reason: str | None
    contexts: list[ContextRecord]
    auth: BindAuth | None = None
    header_sign_ack: bool | None = None
    record: Literal["bind"] = "bind"
    schema: int = SCHEMA_VERSION


@dataclass
class EndpointRecord:
    """An endpoint a server offers, learned from an endpoint-mapper answer (once per new mapping)."""

    ts: float
    frame: int
    server: str
    port: int | None
    pipe: str | None
    protocol: str
    if_uuid: str
    if_version: str
    interface: str | None
    source: Literal["ept_map", "ept_lookup"]
    record: Literal["endpoint"] = "endpoint"
    schema: int = SCHEMA_VERSION


@dataclass
class AnomalyRecord:
    """Something malformed, lost or cut by a limit; counted in the summary as well."""

    ts: float
    frame: int
    src: str
    sport: int
    dst: str
    dport: int
    kind: str
    detail: str
    record: Literal["anomaly"] = "anomaly"
    schema: int = SCHEMA_VERSION


@dataclass
class SummaryRecord:
    """Totals for one run, written last."""

    files: list[str]
    frames: int
    bytes: int
    calls: int
    binds: int
    connections: int
    duration: float
    counters: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    record: Literal["summary"] = "summary"
    schema: int = SCHEMA_VERSION


Record = CallRecord | BindRecord | EndpointRecord | AnomalyRecord | SummaryRecord
