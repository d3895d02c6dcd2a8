/*
 * _pcapscan: scan a pcap/pcapng file with libpcap, apply a BPF filter in C
 * and hand matching packets to Python in batches, keeping Wireshark frame
 * numbers (1-based index of the record in the file, counting every packet).
 *
 * pcap_setfilter() on an offline handle silently skips non-matching records,
 * which loses the frame numbers, so the filter is applied here with
 * pcap_offline_filter() while every record returned by pcap_next_ex() is
 * counted.  The read loop runs without the GIL; matching packets are copied
 * into a C arena and converted to Python objects afterwards.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pcap/pcap.h>

#include "rpcselect.h"

/* Frames read per GIL release; between chunks pending signals are checked. */
#define CHUNK_FRAMES 65536
/* Upper bound on max_packets, to bound the record array allocation. */
#define MAX_BATCH_PACKETS (1 << 20)

typedef struct {
    unsigned long long frame;
    long long sec;
    long long frac_ns;
    unsigned int orig_len;
    unsigned int caplen;
    size_t off;
    rpcsel_pkt_t pk;  /* decoded headers (kind 0: not decoded) when selection decodes */
} rec_t;

typedef struct {
    PyObject_HEAD
    pcap_t *p;
    struct bpf_program prog;
    int have_prog;  /* prog holds compiled code that must be freed */
    int busy;       /* a next_batch call is running (GIL released) */
    int done;       /* end of file or read error reached */
    int truncated;
    int linktype;
    int snaplen;
    unsigned long long frames;
    long long last_sec;  /* latest timestamp of any record read, filtered or not */
    long long last_ns;
    PyObject *error;  /* str or NULL */
    unsigned char *arena;
    size_t arena_cap;
    rpcsel_t sel;   /* one-pass DCE/RPC flow selection (rpcselect.h), off until enabled */
} Scanner;

static PyTypeObject ScannerType;

/* Strip trailing whitespace/newlines from a libpcap message (in place). */
static const char *
one_line(char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    return msg;
}

static int
is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* Compile `bpf` for handle p into *out; on failure set ValueError. */
static int
compile_filter(pcap_t *p, const char *bpf, struct bpf_program *out)
{
    if (pcap_compile(p, out, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        char msg[PCAP_ERRBUF_SIZE + 1];
        snprintf(msg, sizeof msg, "%s", pcap_geterr(p));
        PyErr_Format(PyExc_ValueError, "invalid BPF filter: %s", one_line(msg));
        return -1;
    }
    return 0;
}

/* Install `bpf` on the scanner (blank = accept all).  Returns 0 or -1. */
static int
scanner_set_filter(Scanner *self, const char *bpf)
{
    struct bpf_program prog;
    int have = 0;

    memset(&prog, 0, sizeof prog);
    if (!is_blank(bpf)) {
        if (compile_filter(self->p, bpf, &prog) < 0)
            return -1;
        have = 1;
    }
    if (self->have_prog)
        pcap_freecode(&self->prog);
    self->prog = prog;
    self->have_prog = have;
    return 0;
}

static void
scanner_release(Scanner *self)
{
    if (self->have_prog) {
        pcap_freecode(&self->prog);
        self->have_prog = 0;
    }
    if (self->p != NULL) {
        pcap_close(self->p); /* also fcloses the FILE we opened */
        self->p = NULL;
    }
    PyMem_RawFree(self->arena);
    self->arena = NULL;
    self->arena_cap = 0;
    PyMem_RawFree(self->sel.starts);
    self->sel.starts = NULL;
    self->sel.enabled = 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    scanner_release(self);
    Py_CLEAR(self->error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ------------------------------------------------------------------ */

static PyObject *
ts_to_ns(long long sec, long long frac_ns)
{
    /* Fast path: fits in a signed 64-bit integer. */
    if (sec > -9000000000LL && sec < 9000000000LL)
        return PyLong_FromLongLong(sec * 1000000000LL + frac_ns);
    PyObject *s = PyLong_FromLongLong(sec), *g = NULL, *m = NULL, *f = NULL, *r = NULL;
    if (s == NULL)
        return NULL;
    if ((g = PyLong_FromLong(1000000000L)) && (m = PyNumber_Multiply(s, g)) &&
        (f = PyLong_FromLongLong(frac_ns)))
        r = PyNumber_Add(m, f);
    Py_XDECREF(s);
    Py_XDECREF(g);
    Py_XDECREF(m);
    Py_XDECREF(f);
    return r;
}

static int
check_usable(Scanner *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "scanner is in use by another thread");
        return -1;
    }
    return 0;
}

enum { ST_RUN = 0, ST_EOF, ST_ERR, ST_NOMEM };

PyDoc_STRVAR(next_batch_doc,
"next_batch(max_packets=4096, max_bytes=8388608) -> list[tuple[int, int, int, bytes]]\n\n"
"Read records until max_packets matching packets (or max_bytes of packet data)\n"
"are collected or the file ends.  Returns (frame_no, ts_ns, orig_len, data)\n"
"tuples; frame_no counts every record of the file (1-based).  An empty list\n"
"means end of file; see .truncated and .error for how the file ended.  If a\n"
"signal handler raises (KeyboardInterrupt) mid-batch, that batch is lost.");

static PyObject *
Scanner_next_batch(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_packets", "max_bytes", NULL};
    Py_ssize_t max_packets = 4096, max_bytes = 8 << 20;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nn:next_batch", kwlist, &max_packets, &max_bytes))
        return NULL;
    if (max_packets <= 0 || max_bytes <= 0) {
        PyErr_SetString(PyExc_ValueError, "max_packets and max_bytes must be positive");
        return NULL;
    }
    if (check_usable(self) < 0)
        return NULL;
    if (self->done || self->p == NULL) /* closed scanners just report end of file */
        return PyList_New(0);
    if (max_packets > MAX_BATCH_PACKETS)
        max_packets = MAX_BATCH_PACKETS;

    rec_t *recs = PyMem_RawMalloc(sizeof(rec_t) * (size_t)max_packets);
    if (recs == NULL)
        return PyErr_NoMemory();

    const size_t want_packets = (size_t)max_packets, want_bytes = (size_t)max_bytes;
    const int filtered = self->have_prog;
    size_t n = 0, used = 0;
    int status = ST_RUN;
    char errmsg[PCAP_ERRBUF_SIZE + 1];
    errmsg[0] = '\0';

    self->busy = 1;
    while (status == ST_RUN) {
        int full = 0;
        Py_BEGIN_ALLOW_THREADS
        for (unsigned chunk = 0; chunk < CHUNK_FRAMES; chunk++) {
            struct pcap_pkthdr *h;
            const u_char *d;
            int rc = pcap_next_ex(self->p, &h, &d);
            if (rc == 1) {
                self->frames++;
                {
                    long long sec = (long long)h->ts.tv_sec;
                    if (sec < 0 && sec >= INT32_MIN)
                        sec += 4294967296LL;
                    if (sec > self->last_sec || (sec == self->last_sec && h->ts.tv_usec > self->last_ns)) {
                        self->last_sec = sec;
                        self->last_ns = (long long)h->ts.tv_usec;
                    }
                }
                if (filtered && pcap_offline_filter(&self->prog, h, d) == 0)
                    continue;
                rpcsel_pkt_t pk;
                pk.kind = 0;
                if (self->sel.enabled && !rpcsel_match(&self->sel, self->linktype, d, h->caplen, &pk))
                    continue;
                size_t caplen = h->caplen;
                if (caplen > SIZE_MAX - used) {
                    status = ST_NOMEM;
                    break;
                }
                if (used + caplen > self->arena_cap) {
                    size_t cap = self->arena_cap ? self->arena_cap : 65536;
                    while (cap < used + caplen) {
                        if (cap > SIZE_MAX / 2) {
                            cap = used + caplen;
                            break;
                        }
                        cap *= 2;
                    }
                    unsigned char *na = PyMem_RawRealloc(self->arena, cap);
                    if (na == NULL) {
                        status = ST_NOMEM;
                        break;
                    }
                    self->arena = na;
                    self->arena_cap = cap;
                }
                if (caplen > 0)
                    memcpy(self->arena + used, d, caplen);
                rec_t *r = &recs[n++];
                r->frame = self->frames;
                r->sec = (long long)h->ts.tv_sec;
                /* libpcap reads the pcap record's 32-bit seconds as signed; Wireshark
                 * (and the pure-Python reader) read it as unsigned. */
                if (r->sec < 0 && r->sec >= INT32_MIN)
                    r->sec += 4294967296LL;
                r->frac_ns = (long long)h->ts.tv_usec; /* nanoseconds: NANO precision */
                r->orig_len = h->len;
                r->caplen = (unsigned int)caplen;
                r->off = used;
                r->pk = pk;
                used += caplen;
                if (n >= want_packets || used >= want_bytes) {
                    full = 1;
                    break;
                }
            } else if (rc == PCAP_ERROR_BREAK) { /* -2: no more records */
                status = ST_EOF;
                break;
            } else if (rc == PCAP_ERROR) {
                snprintf(errmsg, sizeof errmsg, "%s", pcap_geterr(self->p));
                status = ST_ERR;
                break;
            } else if (rc != 0) {
                snprintf(errmsg, sizeof errmsg, "pcap_next_ex returned %d", rc);
                status = ST_ERR;
                break;
            }
        }
        Py_END_ALLOW_THREADS
        if (full)
            break;
        if (status == ST_RUN && PyErr_CheckSignals() < 0) {
            self->busy = 0;
            PyMem_RawFree(recs);
            return NULL;
        }
    }
    self->busy = 0;

    if (status == ST_NOMEM) {
        self->done = 1;
        Py_XSETREF(self->error, PyUnicode_FromString("out of memory while reading packets"));
        PyMem_RawFree(recs);
        return PyErr_NoMemory();
    }
    if (status == ST_EOF)
        self->done = 1;
    if (status == ST_ERR) {
        self->done = 1;
        one_line(errmsg);
        if (strstr(errmsg, "truncated") != NULL) {
            self->truncated = 1;
        } else {
            Py_XSETREF(self->error, PyUnicode_DecodeUTF8(errmsg, (Py_ssize_t)strlen(errmsg), "replace"));
            if (self->error == NULL) {
                PyMem_RawFree(recs);
                return NULL;
            }
        }
    }

    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        PyMem_RawFree(recs);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const rec_t *r = &recs[i];
        const char *base = (const char *)self->arena + r->off;
        if (self->sel.decode && r->pk.kind) {
            /* (frame, ts_ns, (proto, src, dst, sport, dport, seq, ack, flags, payload)) */
            const rpcsel_pkt_t *k = &r->pk;
            PyObject *seg = PyTuple_New(9), *t = PyTuple_New(3);
            if (seg == NULL || t == NULL) {
                Py_XDECREF(seg);
                Py_XDECREF(t);
                goto fail;
            }
            /* built item by item: Py_BuildValue re-parses its format for every packet */
            PyObject *items[9] = {
                PyLong_FromLong(k->kind),
                PyBytes_FromStringAndSize(base + k->src_off, (Py_ssize_t)k->alen),
                PyBytes_FromStringAndSize(base + k->dst_off, (Py_ssize_t)k->alen),
                PyLong_FromLong(k->sport),
                PyLong_FromLong(k->dport),
                PyLong_FromUnsignedLong((unsigned long)k->seq),
                PyLong_FromUnsignedLong((unsigned long)k->ack),
                PyLong_FromLong(k->flags),
                PyBytes_FromStringAndSize(base + k->poff, (Py_ssize_t)k->plen),
            };
            int bad = 0;
            for (int j = 0; j < 9; j++) {
                if (items[j] == NULL)
                    bad = 1;
                PyTuple_SET_ITEM(seg, j, items[j] != NULL ? items[j] : Py_NewRef(Py_None));
            }
            PyTuple_SET_ITEM(t, 2, seg);
            PyObject *fr = PyLong_FromUnsignedLongLong(r->frame), *ts = ts_to_ns(r->sec, r->frac_ns);
            PyTuple_SET_ITEM(t, 0, fr != NULL ? fr : Py_NewRef(Py_None));
            PyTuple_SET_ITEM(t, 1, ts != NULL ? ts : Py_NewRef(Py_None));
            if (bad || fr == NULL || ts == NULL) {
                Py_DECREF(t);
                goto fail;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
            continue;
        }
        PyObject *t = PyTuple_New(4);
        if (t == NULL)
            goto fail;
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
        PyObject *v;
        if ((v = PyLong_FromUnsignedLongLong(r->frame)) == NULL)
            goto fail;
        PyTuple_SET_ITEM(t, 0, v);
        if ((v = ts_to_ns(r->sec, r->frac_ns)) == NULL)
            goto fail;
        PyTuple_SET_ITEM(t, 1, v);
        if ((v = PyLong_FromUnsignedLong(r->orig_len)) == NULL)
            goto fail;
        PyTuple_SET_ITEM(t, 2, v);
        if ((v = PyBytes_FromStringAndSize(base, (Py_ssize_t)r->caplen)) == NULL)
            goto fail;
        PyTuple_SET_ITEM(t, 3, v);
    }
    PyMem_RawFree(recs);
    /* Don't keep a huge arena around after an unusually large batch. */
    if (self->arena_cap > ((size_t)64 << 20)) {
        PyMem_RawFree(self->arena);
        self->arena = NULL;
        self->arena_cap = 0;
    }
    return list;

fail:
    Py_DECREF(list);
    PyMem_RawFree(recs);
    return NULL;
}

PyDoc_STRVAR(setfilter_doc,
"setfilter(bpf) -> None\n\nReplace the BPF filter (blank string = accept all).  Raises ValueError.");

static PyObject *
Scanner_setfilter(Scanner *self, PyObject *arg)
{
    const char *bpf;
    if (!PyArg_Parse(arg, "s:setfilter", &bpf))
        return NULL;
    if (check_usable(self) < 0)
        return NULL;
    if (self->p == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed scanner");
        return NULL;
    }
    if (scanner_set_filter(self, bpf) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
set_ports(uint8_t *bits, PyObject *ports)
{
    PyObject *it = PyObject_GetIter(ports), *item;
    if (it == NULL)
        return -1;
    while ((item = PyIter_Next(it)) != NULL) {
        long v = PyLong_AsLong(item);
        Py_DECREF(item);
        if (v == -1 && PyErr_Occurred())
            break;
        if (v < 0 || v > 65535) {
            PyErr_Format(PyExc_ValueError, "port out of range: %ld", v);
            break;
        }
        rpcsel_set(bits, (unsigned)v);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(select_doc,
"select_rpc(tcp_ports, udp_ports, drop_pure_acks=True, decode=False, shards=1, shard=0) -> None\n\n"
"Turn on one-pass DCE/RPC flow selection (rpcselect.h), seeded with known ports. With decode,\n"
"TCP/UDP packets come back as (frame, ts_ns, (proto, src, dst, sport, dport, seq, ack, flags,\n"
"payload)) instead of (frame, ts_ns, orig_len, data). With shards > 1, decoded packets pass only in\n"
"the shard of their address pair (see rpcselect.h).");

static PyObject *
Scanner_select_rpc(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tcp_ports", "udp_ports", "drop_pure_acks", "decode", "shards", "shard", NULL};
    PyObject *tcp, *udp;
    int drop = 1, decode = 0;
    unsigned shards = 1, shard = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|ppII:select_rpc", kwlist, &tcp, &udp, &drop, &decode, &shards,
                                     &shard))
        return NULL;
    if (shards < 1 || shards > 256 || shard >= shards) {
        PyErr_SetString(PyExc_ValueError, "select_rpc: need 1 <= shards <= 256 and 0 <= shard < shards");
        return NULL;
    }
    if (check_usable(self) < 0)
        return NULL;
    if (self->sel.starts == NULL) {
        self->sel.starts = PyMem_RawCalloc(RPCSEL_STARTS, sizeof(rpcsel_start_t));
        if (self->sel.starts == NULL)
            return PyErr_NoMemory();
    }
    if (set_ports(self->sel.tcp, tcp) < 0 || set_ports(self->sel.udp, udp) < 0)
        return NULL;
    self->sel.drop_pure_acks = drop;
    self->sel.decode = decode;
    self->sel.shards = shards;
    self->sel.shard = shard;
    self->sel.enabled = 1;
    Py_RETURN_NONE;
}

static PyObject *
ports_list(const uint8_t *bits)
{
    PyObject *list = PyList_New(0);
    for (unsigned port = 0; list != NULL && port < 65536; port++) {
        if (!rpcsel_has(bits, port))
            continue;
        PyObject *v = PyLong_FromUnsignedLong(port);
        if (v == NULL || PyList_Append(list, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(v);
    }
    return list;
}

static PyObject *
Scanner_rpc_ports(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *t = ports_list(self->sel.tcp), *u = ports_list(self->sel.udp);
    if (t == NULL || u == NULL) {
        Py_XDECREF(t);
        Py_XDECREF(u);
        return NULL;
    }
    return Py_BuildValue("(NN)", t, u);
}

static PyObject *
Scanner_close(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "scanner is in use by another thread");
        return NULL;
    }
    scanner_release(self);
    self->done = 1;
    Py_RETURN_NONE;
}

static PyObject *
Scanner_enter(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *
Scanner_exit(Scanner *self, PyObject *Py_UNUSED(args))
{
    PyObject *r = Scanner_close(self, NULL);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *
Scanner_get_linktype(Scanner *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->linktype);
}

static PyObject *
Scanner_get_snaplen(Scanner *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->snaplen);
}

static PyObject *
Scanner_get_frames(Scanner *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->frames);
}

static PyObject *
Scanner_get_truncated(Scanner *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->truncated);
}

static PyObject *
Scanner_get_error(Scanner *self, void *Py_UNUSED(c))
{
    if (self->error == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(self->error);
}

static PyObject *
Scanner_get_closed(Scanner *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->p == NULL);
}

static PyObject *
Scanner_get_last_ts_ns(Scanner *self, void *Py_UNUSED(c))
{
    /* Capture time reached, including records the filter dropped: drives idle expiry. */
    return PyLong_FromLongLong(self->last_sec * 1000000000LL + self->last_ns);
}

static PyObject *
Scanner_get_bytes_read(Scanner *self, void *Py_UNUSED(c))
{
    /* File position after the last record read: drives progress bars. */
    if (self->p == NULL || self->busy)
        return PyLong_FromLong(-1);
    FILE *f = pcap_file(self->p);
    return PyLong_FromLongLong(f != NULL ? (long long)ftello(f) : -1);
}

static PyObject *
Scanner_get_eof(Scanner *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->done);
}

static PyMethodDef Scanner_methods[] = {
    {"next_batch", (PyCFunction)(void (*)(void))Scanner_next_batch, METH_VARARGS | METH_KEYWORDS,
     next_batch_doc},
    {"setfilter", (PyCFunction)Scanner_setfilter, METH_O, setfilter_doc},
    {"select_rpc", (PyCFunction)(void (*)(void))Scanner_select_rpc, METH_VARARGS | METH_KEYWORDS, select_doc},
    {"rpc_ports", (PyCFunction)Scanner_rpc_ports, METH_NOARGS,
     "rpc_ports() -> (tcp_ports, udp_ports)\n\nPorts known to carry DCE/RPC (seeded and learned)."},
    {"close", (PyCFunction)Scanner_close, METH_NOARGS, "close() -> None\n\nRelease the file and filter."},
    {"__enter__", (PyCFunction)Scanner_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Scanner_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scanner_getset[] = {
    {"linktype", (getter)Scanner_get_linktype, NULL, "libpcap DLT_* link type (pcap_datalink).", NULL},
    {"snaplen", (getter)Scanner_get_snaplen, NULL, "Snapshot length from the file header.", NULL},
    {"frames_seen", (getter)Scanner_get_frames, NULL, "Records read so far (matching or not).", NULL},
    {"truncated", (getter)Scanner_get_truncated, NULL, "True if the file ended mid-record.", NULL},
    {"error", (getter)Scanner_get_error, NULL, "Read error message that ended the scan, or None.", NULL},
    {"closed", (getter)Scanner_get_closed, NULL, "True once the file has been released.", NULL},
    {"eof", (getter)Scanner_get_eof, NULL, "True once no more packets will be returned.", NULL},
    {"last_ts_ns", (getter)Scanner_get_last_ts_ns, NULL, "Latest timestamp of any record read (ns).", NULL},
    {"bytes_read", (getter)Scanner_get_bytes_read, NULL, "File offset reached (-1 once closed).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rpcinspect.capture._pcapscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_itemsize = 0,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Offline pcap/pcapng scanner; create with _pcapscan.open().",
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
};

/* ------------------------------------------------------------------ */

PyDoc_STRVAR(open_doc,
"open(path, bpf='') -> Scanner\n\n"
"Open a pcap or pcapng file (nanosecond timestamps) and compile `bpf` for its\n"
"link type (blank = accept all).  Raises OSError if the file cannot be opened or\n"
"is not a capture libpcap can read, ValueError if the filter does not compile.");

static PyObject *
mod_open(PyObject *Py_UNUSED(mod), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "bpf", NULL};
    PyObject *pathobj = NULL, *pathbytes = NULL;
    const char *bpf = "";
    char errbuf[PCAP_ERRBUF_SIZE + 1];

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|s:open", kwlist, &pathobj, &bpf))
        return NULL;
    if (!PyUnicode_FSConverter(pathobj, &pathbytes))
        return NULL;
    const char *path = PyBytes_AS_STRING(pathbytes);

    /* fopen ourselves: proper errno-based OSError subclasses, and no special
     * meaning for "-" (pcap_open_offline would read stdin). */
    FILE *fp;
    Py_BEGIN_ALLOW_THREADS
    fp = fopen(path, "rb");
    Py_END_ALLOW_THREADS
    if (fp == NULL) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, pathobj);
        Py_DECREF(pathbytes);
        return NULL;
    }
    errbuf[0] = '\0';
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (p == NULL) {
        fclose(fp);
        PyErr_Format(PyExc_OSError, "%s: %s", path, one_line(errbuf));
        Py_DECREF(pathbytes);
        return NULL;
    }
    Py_DECREF(pathbytes);

    Scanner *self = PyObject_New(Scanner, &ScannerType);
    if (self == NULL) {
        pcap_close(p);
        return NULL;
    }
    self->p = p;
    memset(&self->prog, 0, sizeof self->prog);
    self->have_prog = 0;
    self->busy = 0;
    self->done = 0;
    self->truncated = 0;
    self->linktype = pcap_datalink(p);
    self->snaplen = pcap_snapshot(p);
    self->frames = 0;
    self->last_sec = 0;
    self->last_ns = 0;
    self->error = NULL;
    self->arena = NULL;
    self->arena_cap = 0;
    memset(&self->sel, 0, sizeof self->sel);
    if (scanner_set_filter(self, bpf) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

PyDoc_STRVAR(check_filter_doc,
"check_filter(bpf, linktype=1, snaplen=262144) -> int\n\n"
"Compile `bpf` for a DLT_* link type without a file; return the number of BPF\n"
"instructions.  Raises ValueError with libpcap's message if it does not compile.");

static PyObject *
mod_check_filter(PyObject *Py_UNUSED(mod), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"bpf", "linktype", "snaplen", NULL};
    const char *bpf;
    int linktype = DLT_EN10MB, snaplen = 262144;
    struct bpf_program prog;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|ii:check_filter", kwlist, &bpf, &linktype, &snaplen))
        return NULL;
    if (snaplen <= 0) {
        PyErr_SetString(PyExc_ValueError, "snaplen must be positive");
        return NULL;
    }
    pcap_t *p = pcap_open_dead(linktype, snaplen);
    if (p == NULL)
        return PyErr_NoMemory();
    if (compile_filter(p, bpf, &prog) < 0) {
        pcap_close(p);
        return NULL;
    }
    unsigned int len = prog.bf_len;
    pcap_freecode(&prog);
    pcap_close(p);
    return PyLong_FromUnsignedLong(len);
}

static PyObject *
mod_lib_version(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(ignored))
{
    return PyUnicode_FromString(pcap_lib_version());
}

static PyObject *
mod_shard_of(PyObject *Py_UNUSED(mod), PyObject *args)
{
    Py_buffer a, b;
    unsigned shards;
    if (!PyArg_ParseTuple(args, "y*y*I:shard_of", &a, &b, &shards))
        return NULL;
    PyObject *r = NULL;
    if (a.len != b.len || (a.len != 4 && a.len != 16) || shards < 1)
        PyErr_SetString(PyExc_ValueError, "shard_of: two 4- or 16-byte addresses and shards >= 1");
    else
        r = PyLong_FromUnsignedLong(rpcsel_shard_of(a.buf, b.buf, (unsigned)a.len, shards));
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return r;
}

static PyMethodDef module_methods[] = {
    {"shard_of", (PyCFunction)mod_shard_of, METH_VARARGS,
     "shard_of(addr_a, addr_b, shards) -> int: the selector's shard of an unordered address pair."},
    {"open", (PyCFunction)(void (*)(void))mod_open, METH_VARARGS | METH_KEYWORDS, open_doc},
    {"check_filter", (PyCFunction)(void (*)(void))mod_check_filter, METH_VARARGS | METH_KEYWORDS,
     check_filter_doc},
    {"lib_version", (PyCFunction)mod_lib_version, METH_NOARGS, "lib_version() -> str: pcap_lib_version()."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rpcinspect.capture._pcapscan",
    .m_doc = "Fast libpcap-based pcap/pcapng scanner with in-C BPF filtering and frame numbers.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__pcapscan(void)
{
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
