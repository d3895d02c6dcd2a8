/*
 * rpcselect: one-pass flow selection for DCE/RPC, in C, before Python sees a packet.
 *
 * A packet passes when it belongs to a TCP port already known to carry DCE/RPC, or when it
 * reveals a new one: its payload starts with a plausible connection-oriented PDU header (the
 * server port is the destination of a client PDU type, the source of a server one), or it is the
 * first data segment of a stream (SYN seen) and too short to hold a header, so the header may be
 * split across segments, or it starts RPC over HTTP (an RPC_IN_DATA / RPC_OUT_DATA request line,
 * or the ncacn_http/1.0 banner). Ports are learned the moment they are seen, so the packets right after
 * the first PDU of a new endpoint are not lost, which a BPF program compiled per batch cannot do.
 * Pure ACKs (no payload, no SYN/FIN/RST) on known ports are dropped: they cannot carry RPC.
 * Anything the parser cannot judge (IP fragments, IPv6 extension headers, unknown link types)
 * passes, so Python decides. UDP passes on known UDP ports or when it looks connectionless (v4).
 *
 * With shards > 1 (``--jobs``), a decoded TCP/UDP packet passes only in the shard its unordered
 * address pair hashes to (rpcsel_shard_of; rpcinspect.capture.shard.shard_of is the same
 * function), after port learning, so every shard learns the same ports as one process would.
 * Undecoded packets (fragments, ...) pass in every shard: Python decodes and shards them.
 *
 * State is bounded: two 8 KiB port bitmaps and a fixed table of stream starts.
 */
#ifndef RPCSELECT_H
#define RPCSELECT_H

#include <stdint.h>

#define RPCSEL_STARTS 65536 /* stream-start slots (power of two); collisions overwrite */

typedef struct {
    uint64_t key;
    uint32_t next_seq;
    uint16_t server_port;
    uint16_t used;
} rpcsel_start_t;

typedef struct {
    int enabled;
    int drop_pure_acks;
    int decode; /* hand Python decoded segments (rpcsel_pkt_t) instead of raw frames */
    uint8_t tcp[8192];
    uint8_t udp[8192];
    unsigned long long learned; /* ports learned so far (bits set by rpcsel_match) */
    rpcsel_start_t *starts;     /* RPCSEL_STARTS entries, or NULL until enabled */
    unsigned shards, shard;     /* pass only this shard of address pairs (shards > 1) */
} rpcsel_t;

/* What rpcsel_match decoded of a packet it passes: kind 6 (TCP) or 17 (UDP) with the offsets
 * of the addresses and payload in the frame, or kind 0 (not decoded: Python decodes the frame).
 * The decoding mirrors rpcinspect.capture.link.decode exactly, so both give the same segment. */
typedef struct {
    uint8_t kind;
    uint8_t alen;
    uint8_t flags;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint32_t src_off, dst_off, poff, plen;
} rpcsel_pkt_t;

/* Shard (0..shards-1) of an unordered address pair: FNV-1a (32-bit) over the lower address
 * then the higher one (memcmp order), modulo shards. */
unsigned rpcsel_shard_of(const unsigned char *a, const unsigned char *b, unsigned alen, unsigned shards);

/* Returns 1 if the packet should reach Python, 0 to drop it; fills *out when it passes. */
int rpcsel_match(rpcsel_t *s, int dlt, const unsigned char *d, uint32_t caplen, rpcsel_pkt_t *out);

static inline void
rpcsel_set(uint8_t *bits, unsigned port)
{
    bits[(port & 0xFFFF) >> 3] |= (uint8_t)(1u << (port & 7));
}

static inline int
rpcsel_has(const uint8_t *bits, unsigned port)
{
    return (bits[(port & 0xFFFF) >> 3] >> (port & 7)) & 1;
}

#endif
