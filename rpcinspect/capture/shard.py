"""Which shard of a parallel run (``--jobs``) a packet belongs to: its unordered address pair.

All of a client/server pair's traffic (both directions, every connection, SMB sessions over
several connections, an RPC-over-HTTP channel's IN and OUT connections, UDP activities) lands in
one shard, so the state that pipeline keeps per connection never crosses a worker. The C
selector (``rpcselect.c``, ``rpcsel_shard_of``) computes the same function for the packets it
decodes; this one serves the packets Python decodes itself (IP fragments, the pure reader).
"""

from __future__ import annotations

__all__ = ["shard_of"]

_FNV_OFFSET, _FNV_PRIME, _MASK = 2166136261, 16777619, 0xFFFFFFFF


def shard_of(a: bytes, b: bytes, shards: int) -> int:
    """Shard (``0 .. shards-1``) of the unordered address pair *a*, *b* (packed addresses)."""
    if a > b:
        a, b = b, a
    h = _FNV_OFFSET
    for byte in a + b:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h % shards
