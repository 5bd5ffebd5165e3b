/*
 * itchflow.normalize._cscan: the normalizer's fast path in C (itchflow/normalize/normalizer.py).
 *
 * scan_rows walks a segment's length-prefixed ITCH payloads and appends one event row per message
 * of the frequent kinds (A D U E X C P) exactly as normalizer._rows does. It stops -- returning the
 * position and index of that message -- at the first message it leaves to the Python code: any
 * other type, a truncated or mis-framed message, a locate or stock that does not match the
 * segment, a timestamp past midnight. Python handles that one message (rejection, detail record)
 * and calls again, so every rule lives in one place and the C code only skips the interpreter on
 * the common, valid messages. pack_rows packs rows into the ten event columns (normalizer._columns).
 * tests/unit/test_native_normalize.py checks both against the Python code. route_run is the replay
 * batcher's per-message shortcut (replay.BundleBatcher.add_runs; tests/unit/test_replay_batcher.py);
 * split_run the framing's record splitter (itch.framing; tests/unit/test_native_normalize.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* EventKind and flags of itchflow/normalize/events.py (data contract: never renumbered) */
enum { K_ADDED = 1, K_EXECUTED = 2, K_CANCELLED = 3, K_DELETED = 4, K_REPLACED = 5, K_TRADE = 6 };
enum { FLAG_PRINTABLE = 1, FLAG_HAS_PRICE = 2 };
#define PRICED FLAG_HAS_PRICE
#define PRINTED (FLAG_PRINTABLE | FLAG_HAS_PRICE)

static inline uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; k++) v = v << 8 | p[k];
    return v;
}

static PyObject *row(long kind, long flags, long side, int64_t ts, int64_t seq, uint64_t ref, uint64_t new_ref,
                     uint64_t match, uint64_t shares, int64_t price) {
    return Py_BuildValue("(lllLLKKKKL)", kind, flags, side, (long long)ts, (long long)seq, (unsigned long long)ref,
                         (unsigned long long)new_ref, (unsigned long long)match, (unsigned long long)shares,
                         (long long)price);
}

/* scan_rows(payloads, position, limit, index, locate, seq0, stock, base, day, rows) -> (position, index)
 *
 * payloads: bytes-like; position: byte offset of the next message; limit: messages to walk at most
 * counting from index 0 (-1: to the end); index: messages walked so far; stock: the segment's
 * symbol as 8 space-padded bytes; base: epoch ns of the trading day's midnight; day: ns per day;
 * rows: the list to append to. */
static PyObject *scan_rows(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t position, limit, index;
    long locate;
    long long seq0, base, day;
    const char *stock;
    Py_ssize_t stock_len;
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "y*nnnlLy#LLO!", &view, &position, &limit, &index, &locate, &seq0, &stock,
                          &stock_len, &base, &day, &PyList_Type, &rows))
        return NULL;
    if (stock_len != 8) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "stock must be 8 bytes");
        return NULL;
    }
    const unsigned char *data = view.buf;
    Py_ssize_t end = view.len;
    while (position < end && index != limit) {
        Py_ssize_t start = position + 2;
        if (start > end) break;
        Py_ssize_t size = (Py_ssize_t)(data[position] << 8 | data[position + 1]);
        if (size == 0 || start + size > end) break;
        const unsigned char *m = data + start;
        if ((long)be(m + 1, 2) != locate) break;
        int64_t ts_raw = (int64_t)be(m + 5, 6);
        if (ts_raw >= day) break;
        int64_t ts = base + ts_raw, seq = seq0 + index;
        PyObject *r;
        switch (m[0]) {
        case 'A':
            if (size != 36 || memcmp(m + 24, stock, 8) != 0) goto stop;
            r = row(K_ADDED, PRICED, m[19], ts, seq, be(m + 11, 8), 0, 0, be(m + 20, 4), (int64_t)be(m + 32, 4));
            break;
        case 'D':
            if (size != 19) goto stop;
            r = row(K_DELETED, 0, 0, ts, seq, be(m + 11, 8), 0, 0, 0, 0);
            break;
        case 'U':
            if (size != 35) goto stop;
            r = row(K_REPLACED, PRICED, 0, ts, seq, be(m + 11, 8), be(m + 19, 8), 0, be(m + 27, 4),
                    (int64_t)be(m + 31, 4));
            break;
        case 'E':
            if (size != 31) goto stop;
            r = row(K_EXECUTED, FLAG_PRINTABLE, 0, ts, seq, be(m + 11, 8), 0, be(m + 23, 8), be(m + 19, 4), 0);
            break;
        case 'X':
            if (size != 23) goto stop;
            r = row(K_CANCELLED, 0, 0, ts, seq, be(m + 11, 8), 0, 0, be(m + 19, 4), 0);
            break;
        case 'C':
            if (size != 36) goto stop;
            r = row(K_EXECUTED, m[31] == 'Y' ? PRINTED : PRICED, 0, ts, seq, be(m + 11, 8), 0, be(m + 23, 8),
                    be(m + 19, 4), (int64_t)be(m + 32, 4));
            break;
        case 'P':
            if (size != 44 || memcmp(m + 24, stock, 8) != 0) goto stop;
            r = row(K_TRADE, PRINTED, m[19], ts, seq, be(m + 11, 8), 0, be(m + 36, 8), be(m + 20, 4),
                    (int64_t)be(m + 32, 4));
            break;
        default:
            goto stop;
        }
        if (!r || PyList_Append(rows, r) < 0) {
            Py_XDECREF(r);
            PyBuffer_Release(&view);
            return NULL;
        }
        Py_DECREF(r);
        position = start + size;
        index++;
    }
stop:
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", position, index);
}

/* pack_rows(rows) -> (kind, flags, side, ts_event, seq, order_ref, new_order_ref, match_number, shares,
 * price, min ts_event, max ts_event): bytes columns as normalizer._columns packs them (one byte each
 * for the first three; little-endian int64 for ts_event, seq, price; uint64 for the rest). */
static PyObject *pack_rows(PyObject *self, PyObject *arg) {
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "rows must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    static const int widths[10] = {1, 1, 1, 8, 8, 8, 8, 8, 8, 8};
    static const int is_signed[10] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 1};
    PyObject *columns[10] = {NULL};
    char *out[10];
    for (int k = 0; k < 10; k++) {
        columns[k] = PyBytes_FromStringAndSize(NULL, n * widths[k]);
        if (!columns[k]) goto fail;
        out[k] = PyBytes_AS_STRING(columns[k]);
    }
    int64_t low = 0, high = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(arg, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 10) {
            PyErr_SetString(PyExc_ValueError, "each row must be a 10-tuple");
            goto fail;
        }
        for (int k = 0; k < 10; k++) {
            PyObject *value = PyTuple_GET_ITEM(r, k);
            if (widths[k] == 1) {
                long v = PyLong_AsLong(value);
                if (v == -1 && PyErr_Occurred()) goto fail;
                if (v < 0 || v > 255) {
                    PyErr_SetString(PyExc_ValueError, "bytes must be in range(0, 256)");
                    goto fail;
                }
                out[k][i] = (char)v;
            } else {
                uint64_t v;
                if (is_signed[k]) {
                    long long s = PyLong_AsLongLong(value);
                    if (s == -1 && PyErr_Occurred()) goto fail;
                    v = (uint64_t)s;
                    if (k == 3) {
                        if (i == 0 || s < low) low = s;
                        if (i == 0 || s > high) high = s;
                    }
                } else {
                    v = PyLong_AsUnsignedLongLong(value);
                    if (v == (uint64_t)-1 && PyErr_Occurred()) goto fail;
                }
                unsigned char *p = (unsigned char *)out[k] + i * 8;
                for (int b = 0; b < 8; b++) p[b] = (unsigned char)(v >> (8 * b));
            }
        }
    }
    return Py_BuildValue("(NNNNNNNNNNLL)", columns[0], columns[1], columns[2], columns[3], columns[4], columns[5],
                         columns[6], columns[7], columns[8], columns[9], (long long)low, (long long)high);
fail:
    for (int k = 0; k < 10; k++) Py_XDECREF(columns[k]);
    return NULL;
}

/* pack_payloads(payloads) -> bytes: each message preceded by its 2-byte big-endian length
 * (itchflow.avro.raw.pack_payloads; ValueError for a message of 0 or more than 65535 bytes). */
static PyObject *pack_payloads(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "payloads must be a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return NULL;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(items[i]);
        if (size < 1 || size > 0xFFFF) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "an ITCH message must be 1..65535 bytes, got %zd", size);
            return NULL;
        }
        total += 2 + size;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out) {
        char *p = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t size = PyBytes_GET_SIZE(items[i]);
            *p++ = (char)(size >> 8);
            *p++ = (char)size;
            memcpy(p, PyBytes_AS_STRING(items[i]), (size_t)size);
            p += size;
        }
    }
    Py_DECREF(seq);
    return out;
}


/* route_run(run, index, routes, clock, batch_size, linger_s, oldest) -> (index, taken, status, partition, now)
 *
 * The shortcut of replay.BundleBatcher.add_many over a list of payloads, from run[index]: a message
 * whose locate has a route (routes: locate -> (segment list, pending bundle, partition)) and that is
 * not a directory message ('R') is appended to its segment, its bundle's count goes up, and clock()
 * is read, exactly as add_many does. Returns at the first message add_many would not take this way
 * (status 0: run[index] is left to BundleBatcher.add), after a message that filled its bundle
 * (status 1: close `partition`, then check the linger at `now`), after a message at which the oldest
 * bundle has waited linger_s (status 2), or at the end of the run (status 3). `taken`: messages
 * appended. Payloads shorter than 3 bytes are left to add (status 0).
 */
static PyObject *route_run(PyObject *self, PyObject *args) {
    PyObject *run, *routes, *clock, *count_name = NULL;
    Py_ssize_t index, batch_size;
    double linger, oldest;
    if (!PyArg_ParseTuple(args, "O!nO!Ondd", &PyList_Type, &run, &index, &PyDict_Type, &routes, &clock, &batch_size,
                          &linger, &oldest))
        return NULL;
    count_name = PyUnicode_InternFromString("count");
    if (!count_name) return NULL;
    Py_ssize_t size = PyList_GET_SIZE(run), taken = 0;
    long status = 3, partition = -1;
    double now = 0.0;
    for (; index < size; index++) {
        PyObject *payload = PyList_GET_ITEM(run, index);
        if (!PyBytes_Check(payload) || PyBytes_GET_SIZE(payload) < 3) { status = 0; break; }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
        if (p[0] == 'R') { status = 0; break; }
        PyObject *locate = PyLong_FromLong((long)p[1] << 8 | p[2]);
        if (!locate) goto error;
        PyObject *route = PyDict_GetItemWithError(routes, locate); /* borrowed */
        Py_DECREF(locate);
        if (!route) {
            if (PyErr_Occurred()) goto error;
            status = 0;
            break;
        }
        if (!PyTuple_Check(route) || PyTuple_GET_SIZE(route) != 3) {
            PyErr_SetString(PyExc_TypeError, "a route must be (segment, bundle, partition)");
            goto error;
        }
        PyObject *segment = PyTuple_GET_ITEM(route, 0), *bundle = PyTuple_GET_ITEM(route, 1);
        if (PyList_Append(segment, payload) < 0) goto error;
        PyObject *count = PyObject_GetAttr(bundle, count_name);
        if (!count) goto error;
        Py_ssize_t filled = PyLong_AsSsize_t(count) + 1;
        Py_DECREF(count);
        if (filled == 0 && PyErr_Occurred()) goto error;
        PyObject *updated = PyLong_FromSsize_t(filled);
        if (!updated) goto error;
        int failed = PyObject_SetAttr(bundle, count_name, updated);
        Py_DECREF(updated);
        if (failed < 0) goto error;
        taken++;
        PyObject *reading = PyObject_CallNoArgs(clock);
        if (!reading) goto error;
        now = PyFloat_AsDouble(reading);
        Py_DECREF(reading);
        if (now == -1.0 && PyErr_Occurred()) goto error;
        if (filled >= batch_size) {
            status = 1;
            partition = PyLong_AsLong(PyTuple_GET_ITEM(route, 2));
            if (partition == -1 && PyErr_Occurred()) goto error;
            index++;
            break;
        }
        if (now - oldest >= linger) {
            status = 2;
            index++;
            break;
        }
    }
    Py_DECREF(count_name);
    return Py_BuildValue("(nnlld)", index, taken, status, partition, now);
error:
    Py_DECREF(count_name);
    return NULL;
}


/* split_run(buffer, position, end, zero_prefix, lengths) -> (payloads, position)
 *
 * itch.framing._split_run in C: the consecutive length-prefixed messages of buffer[position:end] as
 * a list of payload bytes, stopping at the first record that is not a known type (lengths: 256
 * bytes, the payload length per type byte, 0 for none) with its exact length in the prefix (0 in
 * every prefix when zero_prefix), or that runs past end. Returns the payloads and where it stopped.
 */
static PyObject *split_run(PyObject *self, PyObject *args) {
    Py_buffer buffer, lengths;
    Py_ssize_t position, end;
    int zero_prefix;
    if (!PyArg_ParseTuple(args, "y*nnpy*", &buffer, &position, &end, &zero_prefix, &lengths)) return NULL;
    PyObject *payloads = NULL;
    if (lengths.len != 256) {
        PyErr_SetString(PyExc_ValueError, "lengths must be 256 bytes");
        goto done;
    }
    const unsigned char *p = (const unsigned char *)buffer.buf, *table = (const unsigned char *)lengths.buf;
    if (end > buffer.len) end = buffer.len;
    if (position < 0) position = 0;
    payloads = PyList_New(0);
    if (!payloads) goto done;
    while (position + 2 < end) {
        Py_ssize_t length = table[p[position + 2]];
        Py_ssize_t prefix = (Py_ssize_t)p[position] << 8 | p[position + 1];
        if (!length || prefix != (zero_prefix ? 0 : length)) break;
        Py_ssize_t start = position + 2;
        if (start + length > end) break;
        PyObject *payload = PyBytes_FromStringAndSize((const char *)p + start, length);
        if (!payload || PyList_Append(payloads, payload) < 0) {
            Py_XDECREF(payload);
            Py_CLEAR(payloads);
            goto done;
        }
        Py_DECREF(payload);
        position = start + length;
    }
done:
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&lengths);
    if (!payloads) return NULL;
    PyObject *result = Py_BuildValue("(Nn)", payloads, position);
    return result;
}

static PyMethodDef methods[] = {
    {"pack_payloads", pack_payloads, METH_O, "Messages joined, each after its 2-byte big-endian length."},
    {"scan_rows", scan_rows, METH_VARARGS, "Rows of the frequent valid messages (see the module comment)."},
    {"pack_rows", pack_rows, METH_O, "The ten packed event columns of rows, and min/max ts_event."},
    {"split_run", split_run, METH_VARARGS, "itch.framing._split_run: the payloads of consecutive records."},
    {"route_run", route_run, METH_VARARGS, "The replay batcher's add_many shortcut over a list of payloads."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cscan", "itchflow's normalizer fast path in C.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cscan(void) { return PyModule_Create(&module); }
