/* rpcselect.c: see rpcselect.h. Plain C, no Python: it runs with the GIL released. */
#include "rpcselect.h"

#include <string.h>

#define DLT_NULL_ 0
#define DLT_EN10MB_ 1
#define DLT_RAW_A 12
#define DLT_RAW_B 14
#define DLT_LOOP_ 108
#define DLT_LINUX_SLL_ 113
#define LINKTYPE_RAW_ 101
#define DLT_IPV4_ 228
#define DLT_IPV6_ 229
#define DLT_LINUX_SLL2_ 276

static inline unsigned
be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static inline uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Same test as rpcinspect.transports.cotcp.plausible(): version 5.0/5.1, known PDU type, sane
 * data representation, frag length covering the header and the announced auth trailer. */
static int
plausible_co(const unsigned char *p, uint32_t n)
{
    if (n < 16 || p[0] != 5 || p[1] > 1 || p[2] > 20 || (p[4] & 0xEE) || p[5] > 3)
        return 0;
    unsigned flen, alen;
    if (p[4] & 0x10) {
        flen = p[8] | ((unsigned)p[9] << 8);
        alen = p[10] | ((unsigned)p[11] << 8);
    } else {
        flen = be16(p + 8);
        alen = be16(p + 10);
    }
    return flen >= 16 && !(alen && flen < 16 + 8 + alen);
}

/* PDU types sent by clients / servers (see association.py). */
static inline int
client_ptype(unsigned t)
{
    return t == 0 || t == 11 || t == 14 || t == 16 || t == 18 || t == 19;
}

static inline int
server_ptype(unsigned t)
{
    return t == 2 || t == 3 || t == 12 || t == 13 || t == 15 || t == 17;
}

static uint64_t
stream_key(const unsigned char *src, const unsigned char *dst, unsigned alen, unsigned sport, unsigned dport)
{
    /* FNV-1a over both addresses and ports: a 64-bit fingerprint of one direction. */
    uint64_t h = 1469598103934665603ULL;
    for (unsigned i = 0; i < alen; i++)
        h = (h ^ src[i]) * 1099511628211ULL;
    for (unsigned i = 0; i < alen; i++)
        h = (h ^ dst[i]) * 1099511628211ULL;
    h = (h ^ sport) * 1099511628211ULL;
    h = (h ^ dport) * 1099511628211ULL;
    return h | 1; /* never 0 */
}

/* Offset of the IP header and its version, or version 0 (drop) / -1 (pass: cannot judge). */
static int
l3(int dlt, const unsigned char *d, uint32_t n, uint32_t *off)
{
    unsigned et;
    switch (dlt) {
    case DLT_EN10MB_: {
        uint32_t o = 12;
        if (n < 14)
            return 0;
        et = be16(d + 12);
        for (int tags = 0; et == 0x8100 || et == 0x88A8 || et == 0x9100; tags++) {
            if (tags == 4)
                return -1; /* deeper stacks are odd: let Python decide */
            o += 4;
            if (n < o + 2)
                return 0;
            et = be16(d + o);
        }
        *off = o + 2;
        break;
    }
    case DLT_LINUX_SLL_:
        if (n < 16)
            return 0;
        et = be16(d + 14);
        *off = 16;
        break;
    case DLT_LINUX_SLL2_:
        if (n < 20)
            return 0;
        et = be16(d);
        *off = 20;
        break;
    case DLT_RAW_A:
    case DLT_RAW_B:
    case LINKTYPE_RAW_:
    case DLT_IPV4_:
    case DLT_IPV6_:
        if (n < 1)
            return 0;
        *off = 0;
        return (d[0] >> 4) == 4 ? 4 : (d[0] >> 4) == 6 ? 6 : 0;
    case DLT_NULL_:
    case DLT_LOOP_: {
        if (n < 4)
            return 0;
        uint32_t fam = dlt == DLT_LOOP_ ? be32(d)
                                        : (d[0] ? (uint32_t)d[0] | ((uint32_t)d[1] << 8) : be32(d));
        *off = 4;
        if (fam == 2)
            return 4;
        if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
            return 6;
        return 0;
    }
    default:
        return -1;
    }
    if (et == 0x0800)
        return 4;
    if (et == 0x86DD)
        return 6;
    return 0;
}

unsigned
rpcsel_shard_of(const unsigned char *a, const unsigned char *b, unsigned alen, unsigned shards)
{
    if (memcmp(a, b, alen) > 0) {
        const unsigned char *t = a;
        a = b;
        b = t;
    }
    uint32_t h = 2166136261u;
    for (unsigned i = 0; i < alen; i++)
        h = (h ^ a[i]) * 16777619u;
    for (unsigned i = 0; i < alen; i++)
        h = (h ^ b[i]) * 16777619u;
    return shards ? h % shards : 0;
}

/* A decoded packet that passes selection: is it this shard's? */
static inline int
mine(const rpcsel_t *s, const unsigned char *src, const unsigned char *dst, unsigned alen)
{
    return s->shards < 2 || rpcsel_shard_of(src, dst, alen, s->shards) == s->shard;
}

int
rpcsel_match(rpcsel_t *s, int dlt, const unsigned char *d, uint32_t n, rpcsel_pkt_t *out)
{
    uint32_t off = 0;
    out->kind = 0;
    int ver = l3(dlt, d, n, &off);
    if (ver <= 0)
        return ver < 0;
    const unsigned char *src, *dst;
    unsigned alen, proto;
    uint32_t t, end;
    if (ver == 4) {
        if (n < off + 20)
            return 0;
        unsigned ihl = (d[off] & 0x0F) * 4u, total = be16(d + off + 2);
        if ((d[off + 6] & 0x3F) || d[off + 7])
            return 1; /* fragment: Python counts it */
        proto = d[off + 9];
        src = d + off + 12;
        dst = d + off + 16;
        alen = 4;
        t = off + ihl;
        end = (total >= ihl && off + total <= n) ? off + total : n;
    } else {
        if (n < off + 40)
            return 0;
        unsigned plen = be16(d + off + 4);
        proto = d[off + 6];
        if (proto == 0 || proto == 43 || proto == 44 || proto == 60 || proto == 51)
            return 1; /* extension headers: Python walks them */
        src = d + off + 8;
        dst = d + off + 24;
        alen = 16;
        t = off + 40;
        end = (plen && t + plen <= n) ? t + plen : n;
    }
    if (proto == 6) {
        if (n < t + 20)
            return 0;
        unsigned sport = be16(d + t), dport = be16(d + t + 2);
        uint32_t seq = be32(d + t + 4);
        unsigned hl = (d[t + 12] >> 4) * 4u, flags = d[t + 13];
        uint32_t p = t + hl;
        uint32_t plen = end > p ? end - p : 0;
        out->kind = 6;
        out->alen = (uint8_t)alen;
        out->flags = (uint8_t)flags;
        out->sport = (uint16_t)sport;
        out->dport = (uint16_t)dport;
        out->seq = seq;
        out->ack = be32(d + t + 8);
        out->src_off = (uint32_t)(src - d);
        out->dst_off = (uint32_t)(dst - d);
        out->poff = p;
        out->plen = plen;
        if (rpcsel_has(s->tcp, sport) || rpcsel_has(s->tcp, dport))
            return (plen || (flags & 0x07) || !s->drop_pure_acks) && mine(s, src, dst, alen);
        if (flags & 0x02) { /* SYN / SYN-ACK: where this direction's data will start */
            rpcsel_start_t *e = &s->starts[stream_key(src, dst, alen, sport, dport) & (RPCSEL_STARTS - 1)];
            e->key = stream_key(src, dst, alen, sport, dport);
            e->next_seq = seq + 1;
            e->server_port = (uint16_t)((flags & 0x10) ? sport : dport);
            e->used = 1;
            return 0;
        }
        if (plen >= 16 && plausible_co(d + p, plen)) {
            unsigned pt = d[p + 2];
            unsigned port = client_ptype(pt) ? dport : server_ptype(pt) ? sport : 0x10000;
            if (port < 0x10000) {
                rpcsel_set(s->tcp, port);
                s->learned++;
                return mine(s, src, dst, alen);
            }
            return 0;
        }
        /* RPC over HTTP (ncacn_http): an RPC_IN_DATA / RPC_OUT_DATA request line learns the server
         * port, the ncacn_http/1.0 banner (sent by the server) too; same test as http.is_http_rpc(). */
        if ((plen >= 12 && memcmp(d + p, "RPC_IN_DATA ", 12) == 0)
            || (plen >= 13 && memcmp(d + p, "RPC_OUT_DATA ", 13) == 0)) {
            rpcsel_set(s->tcp, dport);
            s->learned++;
            return mine(s, src, dst, alen);
        }
        if (plen >= 14 && memcmp(d + p, "ncacn_http/1.0", 14) == 0) {
            rpcsel_set(s->tcp, sport);
            s->learned++;
            return mine(s, src, dst, alen);
        }
        if (plen > 0 && plen < 16) {
            uint64_t k = stream_key(src, dst, alen, sport, dport);
            rpcsel_start_t *e = &s->starts[k & (RPCSEL_STARTS - 1)];
            if (e->used && e->key == k && e->next_seq == seq) {
                e->used = 0;
                rpcsel_set(s->tcp, e->server_port); /* a header may be split: let Python look */
                s->learned++;
                return mine(s, src, dst, alen);
            }
        }
        return 0;
    }
    if (proto == 17) {
        if (n < t + 8)
            return 0;
        unsigned sport = be16(d + t), dport = be16(d + t + 2);
        out->kind = 17;
        out->alen = (uint8_t)alen;
        out->flags = 0;
        out->sport = (uint16_t)sport;
        out->dport = (uint16_t)dport;
        out->seq = 0;
        out->ack = 0;
        out->src_off = (uint32_t)(src - d);
        out->dst_off = (uint32_t)(dst - d);
        out->poff = t + 8;
        out->plen = end > t + 8 ? end - (t + 8) : 0;
        if (rpcsel_has(s->udp, sport) || rpcsel_has(s->udp, dport))
            return mine(s, src, dst, alen);
        const unsigned char *p = d + t + 8;
        /* connectionless header is 80 bytes */
        return out->plen >= 80 && p[0] == 4 && p[1] <= 10 && mine(s, src, dst, alen);
    }
    return 0;
}
