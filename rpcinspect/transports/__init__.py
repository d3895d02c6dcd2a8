"""Transports: byte streams and datagrams to DCE/RPC PDUs (ncacn_ip_tcp framing, SMB named pipes,
connectionless PDUs, RPC over HTTP), and the packet sources the engine reads."""
