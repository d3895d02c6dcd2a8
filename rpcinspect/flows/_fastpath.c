/*
 * In-order fast path for TCP segments that carry whole DCE/RPC PDUs (optional C extension).
 *
 * Most segments of an RPC connection arrive in order, carry no SYN/FIN/RST and hold exactly one
 * or a few whole PDUs. For those, what rpcinspect.flows.tcp.TcpTable.segment and
 * rpcinspect.transports.cotcp.CoFramer.data do reduces to: find the connection, advance the
 * direction's next sequence number, and hand each PDU with its decoded header to the
 * association. feed() does exactly that in C, reading and writing the same Python objects the
 * pure code uses, and passes every other packet (handshakes, gaps, out-of-order data, partial
 * PDUs, SMB, HTTP, UDP, undecoded frames) to the Python callable `slow`, in capture order. The
 * records are therefore the same with or without this module (tests/test_prefilter.py and
 * tests/test_fastpath.py check it on every capture).
 *
 * Nothing here holds state between calls: every decision is re-read from the Python objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

static PyObject *s_table, *s_frame, *s_sweep_at, *s_dirs, *s_next_seq, *s_ooo, *s_handler, *s_sync, *s_bufs,
    *s_sink, *s_last_ts, *s_pdu, *s_fin, *s_billion, *s_empty;

/* Frag lengths of the whole PDUs that exactly fill buf[0:n], or -1 (then Python decides). */
static int whole_pdus(const unsigned char *b, Py_ssize_t n, Py_ssize_t *offs, int max) {
    Py_ssize_t off = 0;
    int k = 0;
    while (off < n) {
        if (n - off < 16 || k == max)
            return -1;
        const unsigned char *p = b + off;
        if (p[0] != 5 || p[1] > 1 || p[2] > 20 || (p[4] & 0xEE) || p[5] > 3)
            return -1;
        unsigned flen, alen;
        if (p[4] & 0x10) {
            flen = p[8] | (p[9] << 8);
            alen = p[10] | (p[11] << 8);
        } else {
            flen = (p[8] << 8) | p[9];
            alen = (p[10] << 8) | p[11];
        }
        if (flen < 16 || (alen && flen < 24 + alen) || (Py_ssize_t)flen > n - off)
            return -1;
        offs[k++] = off;
        off += flen;
    }
    return k;
}

static PyObject *make_header(PyTypeObject *htype, const unsigned char *p) {
    PyObject *h = htype->tp_alloc(htype, 7);
    if (h == NULL)
        return NULL;
    unsigned little = p[4] & 0x10;
    unsigned long flen, alen, call_id;
    if (little) {
        flen = p[8] | (p[9] << 8);
        alen = p[10] | (p[11] << 8);
        call_id = (unsigned long)p[12] | ((unsigned long)p[13] << 8) | ((unsigned long)p[14] << 16) |
                  ((unsigned long)p[15] << 24);
    } else {
        flen = (p[8] << 8) | p[9];
        alen = (p[10] << 8) | p[11];
        call_id = ((unsigned long)p[12] << 24) | ((unsigned long)p[13] << 16) | ((unsigned long)p[14] << 8) |
                  (unsigned long)p[15];
    }
    PyObject *items[7] = {
        PyLong_FromLong(p[1]),  PyLong_FromLong(p[2]),  PyLong_FromLong(p[3]),           PyBool_FromLong(little),
        PyLong_FromLong(flen), PyLong_FromLong(alen), PyLong_FromUnsignedLong(call_id),
    };
    for (int i = 0; i < 7; i++) {
        if (items[i] == NULL) {
            for (int j = 0; j < 7; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(h);
            return NULL;
        }
        PyTuple_SET_ITEM(h, i, items[i]);
    }
    return h;
}

/* Borrowed-or-new helpers keep the main loop readable: each returns a new reference or NULL. */
static PyObject *attr(PyObject *o, PyObject *name) { return PyObject_GetAttr(o, name); }

static int dict_nonempty(PyObject *o) { return PyDict_Check(o) ? PyDict_GET_SIZE(o) != 0 : PyObject_IsTrue(o); }

/*
 * The connection a segment belongs to, as TcpTable.table maps its 4-tuple: *ent (borrowed; the
 * (connection, direction) tuple), *conn (borrowed) and *dirn. Returns 1 if found, 0 if Python must
 * decide (unknown 4-tuple, unexpected shape), -1 on a Python error.
 */
static int find_conn(PyObject *tdict, PyObject *seg, PyObject **ent, PyObject **conn, long *dirn) {
    PyObject *key = PyTuple_Pack(4, PyTuple_GET_ITEM(seg, 1), PyTuple_GET_ITEM(seg, 3), PyTuple_GET_ITEM(seg, 2),
                                 PyTuple_GET_ITEM(seg, 4));
    if (key == NULL)
        return -1;
    *ent = PyDict_GetItemWithError(tdict, key);
    Py_DECREF(key);
    if (*ent == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(*ent) || PyTuple_GET_SIZE(*ent) != 2)
        return 0;
    *conn = PyTuple_GET_ITEM(*ent, 0);
    *dirn = PyLong_AsLong(PyTuple_GET_ITEM(*ent, 1));
    if (*dirn != 0 && *dirn != 1)
        return PyErr_Occurred() ? -1 : 0;
    return 1;
}

/*
 * A segment without payload on a known connection: the server's SYN-ACK, or the first FIN of a
 * connection (the second one closes it: Python). What TcpTable.segment does for these reduces to
 * setting last_ts and either the direction's next_seq (SYN) or its fin flag, provided no
 * out-of-order data waits on the other side (an ACK may then give up a gap: Python). Returns 1 if
 * handled, 0 if Python must, -1 on error.
 */
static int control_segment(PyObject *tdict, PyObject *seg, long flags, PyObject *ts_obj) {
    int syn_ack = (flags & (TH_SYN | TH_ACK | TH_FIN | TH_RST)) == (TH_SYN | TH_ACK);
    int fin = (flags & (TH_SYN | TH_FIN | TH_RST)) == TH_FIN;
    if (!syn_ack && !fin)
        return 0;
    PyObject *ent, *conn;
    long dirn;
    int found = find_conn(tdict, seg, &ent, &conn, &dirn);
    if (found <= 0)
        return found;
    int rc = 0;
    PyObject *dirs = NULL, *pooo = NULL, *pfin = NULL, *newseq = NULL;
    dirs = PyObject_GetAttr(conn, s_dirs);
    if (dirs == NULL)
        goto error;
    if (!PyTuple_Check(dirs) || PyTuple_GET_SIZE(dirs) != 2)
        goto done;
    PyObject *d = PyTuple_GET_ITEM(dirs, dirn), *peer = PyTuple_GET_ITEM(dirs, 1 - dirn);
    if (flags & TH_ACK) {
        pooo = PyObject_GetAttr(peer, s_ooo);
        if (pooo == NULL)
            goto error;
        if (dict_nonempty(pooo))
            goto done;
    }
    if (fin) {
        pfin = PyObject_GetAttr(peer, s_fin);
        if (pfin == NULL)
            goto error;
        if (pfin != Py_False)
            goto done; /* the second FIN closes the connection: Python */
        if (PyObject_SetAttr(conn, s_last_ts, ts_obj) < 0 || PyObject_SetAttr(d, s_fin, Py_True) < 0)
            goto error;
    } else {
        unsigned long long seq = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(seg, 5));
        if (seq == (unsigned long long)-1 && PyErr_Occurred())
            goto error;
        newseq = PyLong_FromUnsignedLongLong((seq + 1) & 0xFFFFFFFFULL);
        if (newseq == NULL || PyObject_SetAttr(conn, s_last_ts, ts_obj) < 0 ||
            PyObject_SetAttr(d, s_next_seq, newseq) < 0)
            goto error;
    }
    rc = 1;
    goto done;
error:
    rc = -1;
done:
    Py_XDECREF(dirs);
    Py_XDECREF(pooo);
    Py_XDECREF(pfin);
    Py_XDECREF(newseq);
    return rc;
}

/*
 * Tries the fast path for one decoded TCP segment. Returns 1 if it handled the segment, 0 if
 * Python must, -1 on a Python error.
 */
static int fast_segment(PyObject *tdict, double sweep_at, PyTypeObject *framer_type, PyTypeObject *htype,
                        PyObject *seg, PyObject *frame, PyObject *ts_obj, double ts) {
    if (!PyTuple_CheckExact(seg) || PyTuple_GET_SIZE(seg) != 9)
        return 0;
    /* TCP only: a UDP datagram's tuple has the same shape (seq 0) and may share a connection's 4-tuple */
    long proto = PyLong_AsLong(PyTuple_GET_ITEM(seg, 0));
    if (proto == -1 && PyErr_Occurred())
        return -1;
    if (proto != 6)
        return 0;
    PyObject *payload = PyTuple_GET_ITEM(seg, 8);
    if (!PyBytes_CheckExact(payload))
        return 0;
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(seg, 7));
    if (flags == -1 && PyErr_Occurred())
        return -1;
    if (ts - sweep_at > 60.0)
        return 0;
    if (PyBytes_GET_SIZE(payload) == 0)
        return control_segment(tdict, seg, flags, ts_obj);
    if (flags & (TH_SYN | TH_FIN | TH_RST))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t offs[64];
    int npdu = whole_pdus(data, n, offs, 64);
    if (npdu <= 0)
        return 0;

    PyObject *ent, *conn;
    long dirn;
    int found = find_conn(tdict, seg, &ent, &conn, &dirn);
    if (found <= 0)
        return found;

    int rc = 0;
    PyObject *dirs = NULL, *nseq = NULL, *ooo = NULL, *pooo = NULL, *h = NULL, *sync = NULL, *bufs = NULL,
             *sink = NULL, *newseq = NULL;
    dirs = attr(conn, s_dirs);
    if (dirs == NULL)
        goto error;
    if (!PyTuple_Check(dirs) || PyTuple_GET_SIZE(dirs) != 2)
        goto done;
    PyObject *d = PyTuple_GET_ITEM(dirs, dirn);
    nseq = attr(d, s_next_seq);
    if (nseq == NULL)
        goto error;
    if (nseq == Py_None)
        goto done;
    int eq = PyObject_RichCompareBool(nseq, PyTuple_GET_ITEM(seg, 5), Py_EQ);
    if (eq < 0)
        goto error;
    if (!eq)
        goto done;
    ooo = attr(d, s_ooo);
    if (ooo == NULL)
        goto error;
    if (dict_nonempty(ooo))
        goto done;
    if (flags & TH_ACK) {
        pooo = attr(PyTuple_GET_ITEM(dirs, 1 - dirn), s_ooo);
        if (pooo == NULL)
            goto error;
        if (dict_nonempty(pooo))
            goto done;
    }
    h = attr(conn, s_handler);
    if (h == NULL)
        goto error;
    if (Py_TYPE(h) != framer_type)
        goto done;
    sync = attr(h, s_sync);
    if (sync == NULL)
        goto error;
    if (!PyList_Check(sync) || PyList_GET_SIZE(sync) != 2 || PyList_GET_ITEM(sync, dirn) != Py_True)
        goto done;
    bufs = attr(h, s_bufs);
    if (bufs == NULL)
        goto error;
    if (!PyList_Check(bufs) || PyList_GET_SIZE(bufs) != 2)
        goto done;
    PyObject *pending = PyList_GET_ITEM(bufs, dirn);
    if (!PyBytes_Check(pending) || PyBytes_GET_SIZE(pending) != 0)
        goto done;
    sink = attr(h, s_sink);
    if (sink == NULL)
        goto error;

    /* Committed: from here on this is what the Python code would do, in the same order. */
    if (PyObject_SetAttr(conn, s_last_ts, ts_obj) < 0)
        goto error;
    unsigned long long seq = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(seg, 5));
    if (seq == (unsigned long long)-1 && PyErr_Occurred())
        goto error;
    newseq = PyLong_FromUnsignedLongLong((seq + (unsigned long long)n) & 0xFFFFFFFFULL);
    if (newseq == NULL || PyObject_SetAttr(d, s_next_seq, newseq) < 0)
        goto error;
    PyObject *pydirn = PyTuple_GET_ITEM(ent, 1);
    for (int i = 0; i < npdu; i++) {
        PyObject *hdr = make_header(htype, data + offs[i]);
        if (hdr == NULL)
            goto error;
        PyObject *off = PyLong_FromSsize_t(offs[i]);
        if (off == NULL) {
            Py_DECREF(hdr);
            goto error;
        }
        /* argv[0] is scratch space that PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee use */
        PyObject *argv[8] = {NULL, sink, pydirn, payload, off, hdr, frame, ts_obj};
        PyObject *r = PyObject_VectorcallMethod(s_pdu, argv + 1, 7 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(off);
        Py_DECREF(hdr);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    if (PyList_SetItem(bufs, dirn, Py_NewRef(s_empty)) < 0)
        goto error;
    rc = 1;
    goto done;
error:
    rc = -1;
done:
    Py_XDECREF(dirs);
    Py_XDECREF(nseq);
    Py_XDECREF(ooo);
    Py_XDECREF(pooo);
    Py_XDECREF(h);
    Py_XDECREF(sync);
    Py_XDECREF(bufs);
    Py_XDECREF(sink);
    Py_XDECREF(newseq);
    return rc;
}

static int read_sweep_at(PyObject *table, double *out) {
    PyObject *v = PyObject_GetAttr(table, s_sweep_at);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

PyDoc_STRVAR(feed_doc,
             "feed(table, batch, framer_type, header_type, segment, datagram, raw, clock=None) -> float\n\n"
             "Feeds a batch of (frame, ts_ns, item) packets from the C scanner: decoded TCP segments that\n"
             "continue their stream with whole DCE/RPC PDUs go straight to the connection's association;\n"
             "every other packet goes, in order, to segment(seg, frame, ts) or datagram(seg, frame, ts)\n"
             "if decoded, else to raw(frame, ts, data). clock, if given, gets each packet's frame number\n"
             "as clock.frame first (the run's position, which orders a parallel run's records).\n"
             "Returns the largest timestamp (seconds) in the batch, or 0.0 for an empty batch.");

static PyObject *feed(PyObject *self, PyObject *args) {
    PyObject *table, *batch, *segment, *datagram, *raw, *clock = Py_None;
    PyTypeObject *framer_type, *htype;
    if (!PyArg_ParseTuple(args, "OO!O!O!OOO|O", &table, &PyList_Type, &batch, &PyType_Type, &framer_type,
                          &PyType_Type, &htype, &segment, &datagram, &raw, &clock))
        return NULL;
    if (!PyType_IsSubtype(htype, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "header_type must be a tuple subclass");
        return NULL;
    }
    PyObject *tdict = PyObject_GetAttr(table, s_table);
    if (tdict == NULL)
        return NULL;
    if (!PyDict_Check(tdict)) {
        Py_DECREF(tdict);
        PyErr_SetString(PyExc_TypeError, "table.table must be a dict");
        return NULL;
    }
    double sweep_at, max_ts = 0.0;
    if (read_sweep_at(table, &sweep_at) < 0) {
        Py_DECREF(tdict);
        return NULL;
    }
    Py_ssize_t nb = PyList_GET_SIZE(batch);
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *pkt = PyList_GET_ITEM(batch, i);
        if (!PyTuple_Check(pkt) || PyTuple_GET_SIZE(pkt) < 3) {
            PyErr_SetString(PyExc_TypeError, "batch items must be (frame, ts_ns, ...) tuples");
            goto fail;
        }
        PyObject *frame = PyTuple_GET_ITEM(pkt, 0);
        PyObject *item = PyTuple_GET_ITEM(pkt, PyTuple_GET_SIZE(pkt) - 1);
        if (clock != Py_None && PyObject_SetAttr(clock, s_frame, frame) < 0)
            goto fail;
        PyObject *ts_obj = PyNumber_TrueDivide(PyTuple_GET_ITEM(pkt, 1), s_billion);
        if (ts_obj == NULL)
            goto fail;
        double ts = PyFloat_AsDouble(ts_obj);
        if (ts > max_ts)
            max_ts = ts;
        int r = 0;
        if (PyTuple_GET_SIZE(pkt) == 3)
            r = fast_segment(tdict, sweep_at, framer_type, htype, item, frame, ts_obj, ts);
        if (r == 0) {
            PyObject *res;
            if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 9) {
                /* a decoded segment or datagram: straight to its table, as the engine loop does */
                long proto = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
                res = PyObject_CallFunctionObjArgs(proto == 6 ? segment : datagram, item, frame, ts_obj, NULL);
            } else {
                res = PyObject_CallFunctionObjArgs(raw, frame, ts_obj, item, NULL);
            }
            if (res == NULL || read_sweep_at(table, &sweep_at) < 0) {
                Py_XDECREF(res);
                r = -1;
            } else {
                Py_DECREF(res);
            }
        }
        Py_DECREF(ts_obj);
        if (r < 0)
            goto fail;
    }
    Py_DECREF(tdict);
    return PyFloat_FromDouble(max_ts);
fail:
    Py_DECREF(tdict);
    return NULL;
}

static PyMethodDef methods[] = {
    {"feed", feed, METH_VARARGS, feed_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "In-order TCP/DCE-RPC fast path (see _fastpath.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
#define INTERN(var, text)                                                                                              \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                          \
        return NULL;
    INTERN(s_table, "table");
    INTERN(s_frame, "frame");
    INTERN(s_sweep_at, "_sweep_at");
    INTERN(s_dirs, "dirs");
    INTERN(s_next_seq, "next_seq");
    INTERN(s_ooo, "ooo");
    INTERN(s_handler, "handler");
    INTERN(s_sync, "sync");
    INTERN(s_bufs, "bufs");
    INTERN(s_sink, "sink");
    INTERN(s_last_ts, "last_ts");
    INTERN(s_pdu, "pdu");
    INTERN(s_fin, "fin");
#undef INTERN
    if ((s_billion = PyLong_FromLong(1000000000L)) == NULL || (s_empty = PyBytes_FromStringAndSize(NULL, 0)) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
