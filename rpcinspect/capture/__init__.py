"""Packet sources: capture files (pcap, pcapng, gzip) read with ``struct``, link/IP/TCP/UDP decoding,
and the optional libpcap scanner with its C DCE/RPC flow selector. Imports nothing of ours."""
