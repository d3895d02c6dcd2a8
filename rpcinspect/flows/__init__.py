"""Flows: TCP connections with bounded per-direction reassembly, and UDP datagram dispatch.
State is per connection, so the pipeline can later be sharded by connection."""
