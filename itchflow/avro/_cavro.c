/*
 * itchflow.avro._cavro: the Avro binary encoding of the two bundle envelopes in C.
 *
 * fastavro's generic writer and reader cost ~90-140 us per raw record of ~28 segments at a paced
 * 20 k msgs/s (dicts built per segment, one generic step per field): a fifth of the normalizer's
 * time per record. These functions write and read exactly the same bytes for the current schemas
 * of itchflow.itch.v1.ItchBundle and the fields of itchflow.normalized.v1.NormalizedBundle before
 * its ``details`` (which the caller appends, encoded by fastavro: a union array). They do no schema
 * resolution: the Python callers use them only for the current writer schema and fall back to
 * fastavro for everything else -- an older schema, a value out of range (OverflowError), a
 * malformed record (ValueError), so that every error keeps fastavro's outcome.
 * tests/unit/test_avro_native.py compares both directions with fastavro byte for byte.
 *
 * Avro binary: int and long are zigzag varints, strings and bytes a long length then the bytes,
 * arrays blocks of (long count, items) ended by a zero count (a negative count is followed by the
 * block's size in bytes), records their fields in order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- writing */

#define VARINT_MAX 10

static inline unsigned char *put_long(unsigned char *p, int64_t value) {
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    while (z > 0x7F) {
        *p++ = (unsigned char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    *p++ = (unsigned char)z;
    return p;
}

static inline unsigned char *put_bytes(unsigned char *p, const char *data, Py_ssize_t size) {
    p = put_long(p, (int64_t)size);
    memcpy(p, data, (size_t)size);
    return p + size;
}

/* a Python int as int64 (OverflowError beyond), or as int32 for Avro "int" fields */
static int as_long(PyObject *value, int64_t *out) {
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "an Avro int/long field needs an int");
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int64_t)v;
    return 0;
}

static int as_int(PyObject *value, int64_t *out) {
    if (as_long(value, out) < 0) return -1;
    if (*out < INT32_MIN || *out > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "an Avro int field out of the 32-bit range");
        return -1;
    }
    return 0;
}

/* the attributes of one segment/run object, read in field order into values[] */
static int read_fields(PyObject *item, PyObject *names, int64_t *values, const char *kinds,
                       PyObject **text, PyObject *enum_index) {
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    *text = NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *value = PyObject_GetAttr(item, PyTuple_GET_ITEM(names, k));
        if (value == NULL) return -1;
        int failed = 0;
        if (kinds[k] == 's') {
            if (!PyUnicode_Check(value)) {
                PyErr_SetString(PyExc_TypeError, "an Avro string field needs a str");
                failed = 1;
            } else {
                *text = value; /* the caller releases it */
                continue;
            }
        } else if (kinds[k] == 'e') { /* an enum member: its position among the schema's symbols */
            PyObject *index = PyDict_Check(enum_index) ? PyDict_GetItemWithError(enum_index, value) : NULL;
            if (index == NULL) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "not a symbol of the Avro enum");
                failed = 1;
            } else {
                failed = as_int(index, &values[k]) < 0;
            }
        } else {
            failed = (kinds[k] == 'i' ? as_int(value, &values[k]) : as_long(value, &values[k])) < 0;
        }
        Py_DECREF(value);
        if (failed) {
            Py_XDECREF(*text);
            *text = NULL;
            return -1;
        }
    }
    return 0;
}

/*
 * encode_items(header: bytes, head: tuple, items: sequence, names: tuple[str], kinds: str,
 *              enum_index: dict | None, tail: tuple) -> bytes
 *
 * header, then the fields of ``head`` in order, the array of ``items`` (each object's attributes
 * ``names`` as record fields), then the fields of ``tail``. ``kinds`` has one letter per field of
 * head, then per item field, then per tail field: 's' string, 'i' int, 'l' long, 'b' bytes (any
 * buffer), 'r' bytes already Avro-encoded (copied as they are: a field fastavro wrote), 'e' enum
 * (items only, through ``enum_index``: member -> position). An item's one string field comes first.
 */
static PyObject *encode_items(PyObject *self, PyObject *args) {
    PyObject *header, *head, *items, *names, *enum_index, *tail;
    const char *kinds;
    Py_ssize_t kinds_len;
    if (!PyArg_ParseTuple(args, "SO!OO!s#OO!", &header, &PyTuple_Type, &head, &items, &PyTuple_Type, &names,
                          &kinds, &kinds_len, &enum_index, &PyTuple_Type, &tail))
        return NULL;
    Py_ssize_t n_head = PyTuple_GET_SIZE(head), n_item = PyTuple_GET_SIZE(names), n_tail = PyTuple_GET_SIZE(tail);
    if (kinds_len != n_head + n_item + n_tail || n_item > 16) {
        PyErr_SetString(PyExc_ValueError, "kinds must name every field (at most 16 per item)");
        return NULL;
    }
    const char *item_kinds = kinds + n_head, *tail_kinds = kinds + n_head + n_item;
    for (Py_ssize_t k = 0; k < kinds_len; k++) {
        int in_item = k >= n_head && k < n_head + n_item;
        if (!strchr(in_item ? "sile" : "silbr", kinds[k]) || (in_item && k > n_head && kinds[k] == 's')) {
            PyErr_Format(PyExc_ValueError, "field kind %c not allowed there (head/tail: silbr; items: sile, "
                         "a string only first)", kinds[k]);
            return NULL;
        }
    }
    PyObject *seq = PySequence_Fast(items, "items must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **objects = PySequence_Fast_ITEMS(seq);
    PyObject *result = NULL;
    Py_buffer *views = NULL;
    int64_t *numbers = NULL;
    PyObject **texts = NULL;
    Py_ssize_t n_views = 0, n_texts = 0;

    /* pass 1: every value read and checked, the exact size known */
    numbers = PyMem_Malloc(sizeof(int64_t) * (size_t)(n_head + n_tail + count * n_item + 1));
    texts = PyMem_Calloc((size_t)(n_head + n_tail + count + 1), sizeof(PyObject *));
    views = PyMem_Calloc((size_t)(n_head + n_tail + 1), sizeof(Py_buffer));
    if (numbers == NULL || texts == NULL || views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(header) + 2 * VARINT_MAX;
    const char *scalar_kinds[2] = {kinds, tail_kinds};
    PyObject *scalars[2] = {head, tail};
    Py_ssize_t number_at = 0;
    for (int part = 0; part < 2; part++) {
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(scalars[part]); k++) {
            PyObject *value = PyTuple_GET_ITEM(scalars[part], k);
            char kind = scalar_kinds[part][k];
            if (kind == 's') {
                if (!PyUnicode_Check(value)) {
                    PyErr_SetString(PyExc_TypeError, "an Avro string field needs a str");
                    goto done;
                }
                Py_ssize_t length;
                if (PyUnicode_AsUTF8AndSize(value, &length) == NULL) goto done;
                size += VARINT_MAX + length;
            } else if (kind == 'b' || kind == 'r') {
                if (PyObject_GetBuffer(value, &views[n_views], PyBUF_SIMPLE) < 0) goto done;
                size += VARINT_MAX + views[n_views++].len;
            } else {
                if ((kind == 'i' ? as_int(value, &numbers[number_at]) : as_long(value, &numbers[number_at])) < 0)
                    goto done;
                number_at++;
                size += VARINT_MAX;
            }
        }
    }
    int64_t *item_numbers = numbers + number_at;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = NULL;
        if (read_fields(objects[i], names, item_numbers + i * n_item, item_kinds, &text, enum_index) < 0)
            goto done;
        size += n_item * VARINT_MAX;
        if (text != NULL) {
            texts[n_texts++] = text;
            Py_ssize_t length;
            if (PyUnicode_AsUTF8AndSize(text, &length) == NULL) goto done;
            size += length;
        }
    }

    /* pass 2: the bytes */
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) goto done;
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(result), *p = start;
    memcpy(p, PyBytes_AS_STRING(header), (size_t)PyBytes_GET_SIZE(header));
    p += PyBytes_GET_SIZE(header);
    Py_ssize_t view_at = 0, text_at = 0;
    number_at = 0;
    for (int part = 0; part < 2; part++) {
        if (part == 1) { /* the array between head and tail */
            if (count > 0) {
                p = put_long(p, (int64_t)count);
                for (Py_ssize_t i = 0; i < count; i++) {
                    const int64_t *values = item_numbers + i * n_item;
                    for (Py_ssize_t k = 0; k < n_item; k++) {
                        if (item_kinds[k] == 's') {
                            Py_ssize_t length;
                            const char *utf8 = PyUnicode_AsUTF8AndSize(texts[text_at++], &length);
                            p = put_bytes(p, utf8, length);
                        } else {
                            p = put_long(p, values[k]);
                        }
                    }
                }
            }
            p = put_long(p, 0);
        }
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(scalars[part]); k++) {
            char kind = scalar_kinds[part][k];
            if (kind == 's') {
                Py_ssize_t length;
                const char *utf8 = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(scalars[part], k), &length);
                p = put_bytes(p, utf8, length);
            } else if (kind == 'b') {
                p = put_bytes(p, views[view_at].buf, views[view_at].len);
                view_at++;
            } else if (kind == 'r') {
                memcpy(p, views[view_at].buf, (size_t)views[view_at].len);
                p += views[view_at].len;
                view_at++;
            } else {
                p = put_long(p, numbers[number_at++]);
            }
        }
    }
    if (_PyBytes_Resize(&result, (Py_ssize_t)(p - start)) < 0) result = NULL;

done:
    for (Py_ssize_t k = 0; k < n_views; k++) PyBuffer_Release(&views[k]);
    for (Py_ssize_t k = 0; k < n_texts; k++) Py_DECREF(texts[k]);
    PyMem_Free(views);
    PyMem_Free(texts);
    PyMem_Free(numbers);
    Py_DECREF(seq);
    return result;
}

/*
 * encode_union_records(entries: sequence of (name, dict), branches: dict) -> bytes
 *
 * An Avro array whose items are a union of records, each entry (branch name, {field: value}); a
 * branch is ``branches[name] = (position in the union, field names, kinds)`` with kinds of 's' 'i'
 * 'l' only. ValueError for a branch not in ``branches`` or a missing field (the caller then lets
 * fastavro write the whole record).
 */
static PyObject *encode_union_records(PyObject *self, PyObject *args) {
    PyObject *entries, *branches;
    if (!PyArg_ParseTuple(args, "OO!", &entries, &PyDict_Type, &branches)) return NULL;
    PyObject *seq = PySequence_Fast(entries, "entries must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *result = NULL;
    /* pass 1: the size (strings' UTF-8 is cached by PyUnicode_AsUTF8AndSize for pass 2) */
    Py_ssize_t size = 2 * VARINT_MAX;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = items[i], *branch, *fields, *names;
        const char *kinds;
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 || !PyDict_Check(PyTuple_GET_ITEM(entry, 1))) {
            PyErr_SetString(PyExc_ValueError, "an entry is a (branch name, fields dict) pair");
            goto done;
        }
        branch = PyDict_GetItemWithError(branches, PyTuple_GET_ITEM(entry, 0));
        if (branch == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a union branch the codec does not know");
            goto done;
        }
        fields = PyTuple_GET_ITEM(entry, 1);
        names = PyTuple_GET_ITEM(branch, 1);
        kinds = PyUnicode_AsUTF8(PyTuple_GET_ITEM(branch, 2));
        if (kinds == NULL) goto done;
        size += VARINT_MAX;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++) {
            PyObject *value = PyDict_GetItemWithError(fields, PyTuple_GET_ITEM(names, k));
            int64_t number;
            if (value == NULL) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a field of the branch is missing");
                goto done;
            }
            if (kinds[k] == 's') {
                Py_ssize_t length;
                if (!PyUnicode_Check(value)) {
                    PyErr_SetString(PyExc_TypeError, "an Avro string field needs a str");
                    goto done;
                }
                if (PyUnicode_AsUTF8AndSize(value, &length) == NULL) goto done;
                size += VARINT_MAX + length;
            } else {
                if ((kinds[k] == 'i' ? as_int(value, &number) : as_long(value, &number)) < 0) goto done;
                size += VARINT_MAX;
            }
        }
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) goto done;
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(result), *p = start;
    if (count > 0) p = put_long(p, (int64_t)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *branch = PyDict_GetItem(branches, PyTuple_GET_ITEM(items[i], 0));
        PyObject *fields = PyTuple_GET_ITEM(items[i], 1), *names = PyTuple_GET_ITEM(branch, 1);
        const char *kinds = PyUnicode_AsUTF8(PyTuple_GET_ITEM(branch, 2));
        p = put_long(p, PyLong_AsLongLong(PyTuple_GET_ITEM(branch, 0)));
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++) {
            PyObject *value = PyDict_GetItem(fields, PyTuple_GET_ITEM(names, k));
            if (kinds[k] == 's') {
                Py_ssize_t length;
                const char *utf8 = PyUnicode_AsUTF8AndSize(value, &length);
                p = put_bytes(p, utf8, length);
            } else {
                p = put_long(p, (int64_t)PyLong_AsLongLong(value));
            }
        }
    }
    p = put_long(p, 0);
    if (_PyBytes_Resize(&result, (Py_ssize_t)(p - start)) < 0) result = NULL;
done:
    Py_DECREF(seq);
    if (result == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "union records");
    return result;
}

/* ---------------------------------------------------------------- reading */

typedef struct {
    const unsigned char *p, *end;
} Reader;

static int get_long(Reader *r, int64_t *out) {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            PyErr_SetString(PyExc_ValueError, "truncated varint");
            return -1;
        }
        unsigned char b = *r->p++;
        z |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    PyErr_SetString(PyExc_ValueError, "varint longer than 10 bytes");
    return -1;
}

static int get_int(Reader *r, int64_t *out) {
    if (get_long(r, out) < 0) return -1;
    if (*out < INT32_MIN || *out > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "an Avro int out of the 32-bit range");
        return -1;
    }
    return 0;
}

static int get_span(Reader *r, const unsigned char **data, Py_ssize_t *size) {
    int64_t length;
    if (get_long(r, &length) < 0) return -1;
    if (length < 0 || length > r->end - r->p) {
        PyErr_SetString(PyExc_ValueError, "bytes or string length outside the record");
        return -1;
    }
    *data = r->p;
    *size = (Py_ssize_t)length;
    r->p += length;
    return 0;
}

/* one field of kind 's' 'i' 'l' 'b' as a new Python object */
static PyObject *get_value(Reader *r, char kind) {
    const unsigned char *data;
    Py_ssize_t size;
    int64_t number;
    switch (kind) {
    case 's':
        if (get_span(r, &data, &size) < 0) return NULL;
        return PyUnicode_DecodeUTF8((const char *)data, size, "strict");
    case 'b':
        if (get_span(r, &data, &size) < 0) return NULL;
        return PyBytes_FromStringAndSize((const char *)data, size);
    case 'i':
        if (get_int(r, &number) < 0) return NULL;
        return PyLong_FromLongLong(number);
    default:
        if (get_long(r, &number) < 0) return NULL;
        return PyLong_FromLongLong(number);
    }
}

/*
 * decode_items(data: bytes-like, offset: int, head_kinds: str, item_type: type, names: tuple[str],
 *              item_kinds: str, tail_kinds: str) -> (head values, items, tail values)
 *
 * The reverse of encode_items from ``offset`` to the end: head fields, the array, tail fields;
 * each item is made as ``item_type`` with its fields set as attributes, the way a frozen slots
 * dataclass's __init__ sets them (object.__setattr__). ValueError for anything malformed,
 * including bytes left after the last field.
 */
static PyObject *decode_items(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t offset, n_head_kinds, n_item_kinds, n_tail_kinds;
    const char *head_kinds, *item_kinds, *tail_kinds;
    PyObject *item_type, *names;
    if (!PyArg_ParseTuple(args, "y*ns#O!O!s#s#", &view, &offset, &head_kinds, &n_head_kinds, &PyType_Type,
                          &item_type, &PyTuple_Type, &names, &item_kinds, &n_item_kinds, &tail_kinds,
                          &n_tail_kinds))
        return NULL;
    PyObject *head = NULL, *items = NULL, *tail = NULL, *result = NULL;
    PyTypeObject *type = (PyTypeObject *)item_type;
    if (n_item_kinds != PyTuple_GET_SIZE(names) || offset < 0 || offset > view.len) {
        PyErr_SetString(PyExc_ValueError, "one item kind per name, an offset inside the data");
        goto done;
    }
    Reader r = {(const unsigned char *)view.buf + offset, (const unsigned char *)view.buf + view.len};
    head = PyTuple_New(n_head_kinds);
    tail = PyTuple_New(n_tail_kinds);
    items = PyList_New(0);
    if (head == NULL || tail == NULL || items == NULL) goto done;
    for (Py_ssize_t k = 0; k < n_head_kinds; k++) {
        PyObject *value = get_value(&r, head_kinds[k]);
        if (value == NULL) goto done;
        PyTuple_SET_ITEM(head, k, value);
    }
    for (;;) {
        int64_t block;
        if (get_long(&r, &block) < 0) goto done;
        if (block == 0) break;
        if (block < 0) { /* a block with its size in bytes: skip the size */
            int64_t block_bytes;
            if (get_long(&r, &block_bytes) < 0) goto done;
            block = -block;
        }
        if (block > r.end - r.p) { /* every item takes at least one byte */
            PyErr_SetString(PyExc_ValueError, "array block longer than the record");
            goto done;
        }
        for (int64_t i = 0; i < block; i++) {
            PyObject *item = type->tp_alloc(type, 0);
            if (item == NULL) goto done;
            for (Py_ssize_t k = 0; k < n_item_kinds; k++) {
                PyObject *value = get_value(&r, item_kinds[k]);
                if (value == NULL || PyObject_GenericSetAttr(item, PyTuple_GET_ITEM(names, k), value) < 0) {
                    Py_XDECREF(value);
                    Py_DECREF(item);
                    goto done;
                }
                Py_DECREF(value);
            }
            int appended = PyList_Append(items, item);
            Py_DECREF(item);
            if (appended < 0) goto done;
        }
    }
    for (Py_ssize_t k = 0; k < n_tail_kinds; k++) {
        PyObject *value = get_value(&r, tail_kinds[k]);
        if (value == NULL) goto done;
        PyTuple_SET_ITEM(tail, k, value);
    }
    if (r.p != r.end) {
        PyErr_Format(PyExc_ValueError, "%zd bytes after the record", (Py_ssize_t)(r.end - r.p));
        goto done;
    }
    result = PyTuple_Pack(3, head, items, tail);

done:
    Py_XDECREF(head);
    Py_XDECREF(items);
    Py_XDECREF(tail);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_items", encode_items, METH_VARARGS, "Header, head fields, an array of objects, tail fields as Avro."},
    {"decode_items", decode_items, METH_VARARGS, "The reverse of encode_items (ValueError when malformed)."},
    {"encode_union_records", encode_union_records, METH_VARARGS, "An Avro array of a union of records."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cavro", "itchflow's bundle envelopes as Avro, in C.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__cavro(void) { return PyModule_Create(&module); }
