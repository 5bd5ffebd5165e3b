/*
 * itchflow.analytics._cflow: the order-flow imbalance and liquidity of one Flink key in C -- the
 * state and rules of itchflow.analytics.ofi.OrderFlowImbalance and
 * itchflow.analytics.liquidity.Liquidity (the reference: their docstrings state the rules), fed
 * straight from the books' RowBinary ``top_of_book`` and ``depth_snapshots`` rows as
 * itchflow.analytics.flow_stage.FlowStage gets them.
 *
 * One ``Flow`` object holds both cores: per (venue, symbol) the carry state of each, per window size
 * its open windows (a small array: a symbol has one or two open windows per size) and its close
 * marker, and each core's event-time clock. Windows fire by a scan of the open windows, which gives
 * the same rows as the Python cores' heap: every window whose end is at or before the clock, every
 * close marker at or before it dropped. Rows come out sorted by key like the Python cores' (UTF-8
 * byte order is code point order). ``snapshot`` and ``restore`` read and write the Python cores'
 * snapshots, so the two paths share their state.
 *
 * Exact equality with the Python cores, whose integers are unbounded: the C code takes only values
 * in ranges where its arithmetic is exact -- times within +-2^61 ns, prices 0 .. 2^40 ticks, shares
 * and depths 0 .. 2^62, windows up to 2^53 ns, event time up to 2^62 ns -- and 128-bit sums. A
 * record, a clock or a snapshot beyond them raises OverflowError before changing anything, and the
 * caller carries on with the Python cores. Floats: a divided integer is correctly rounded as
 * Python's int / int is (true_divide below), and the basis points are summed in the same order.
 * tests/unit/test_cflow.py compares the two paths.
 *
 * ofi_rowbinary and liquidity_rowbinary write the ClickHouse RowBinary of the rows, as
 * itchflow.sinks.flow_outputs does in Python (tests/unit/test_flow_outputs.py compares the bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;
typedef unsigned __int128 u128;
typedef unsigned char uc;

#define TIME_LIMIT ((int64_t)1 << 61)   /* |ts_event| the C path takes */
#define CLOCK_LIMIT ((int64_t)1 << 62)  /* complete_before_ns beyond: the Python cores */
#define STATE_TIME_LIMIT (((int64_t)1 << 62) + ((int64_t)1 << 54))
#define PRICE_LIMIT ((int64_t)1 << 40)
#define SHARES_LIMIT ((int64_t)1 << 62)
#define SIZE_LIMIT ((int64_t)1 << 53)   /* window size in ns */
#define SUM_LIMIT ((i128)1 << 120)
#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define NO_ASK ((int64_t)1 << 62)        /* an empty ask: above any price */
#define BPS_OF_HALF 20000
#define BODY 56                           /* seq .. ask_orders of a top_of_book row */

/* ---------------------------------------------------------------- numbers */

static inline int bitlen128(u128 v) {
    uint64_t hi = (uint64_t)(v >> 64);
    if (hi) return 128 - __builtin_clzll(hi);
    uint64_t lo = (uint64_t)v;
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

/* a / b correctly rounded (half to even), for 0 < a < 2^128 - 2^118 and 0 < b < 2^64 */
static double divide_magnitudes(u128 a, uint64_t b) {
    int lb = 64 - __builtin_clzll(b);
    int k = 54 + lb - bitlen128(a);
    if (k < 0) k = 0;
    u128 n = a << k; /* < 2^118 when shifted */
    u128 q = n / b, r = n % b;
    int shift = bitlen128(q) - 54; /* q has at least 54 bits */
    uint64_t m = (uint64_t)(q >> shift);
    int sticky = r != 0 || (shift > 0 && (q & (((u128)1 << shift) - 1)) != 0);
    int half = (int)(m & 1);
    m >>= 1;
    if (half && (sticky || (m & 1))) m += 1;
    return ldexp((double)m, shift + 1 - k);
}

/* Python's int / int for |a| < 2^127, 0 < |b| < 2^64 (0: done; 1: |b| too large) */
static int true_divide(i128 a, i128 b, double *out) {
    int negative = (a < 0) != (b < 0);
    u128 ua = a < 0 ? -(u128)a : (u128)a, ub = b < 0 ? -(u128)b : (u128)b;
    const u128 exact = (u128)1 << 53;
    if (ua <= exact && ub <= exact) {
        *out = (double)(int64_t)a / (double)(int64_t)b;
        return 0;
    }
    if (ub >> 64) return 1;
    double m = ua ? divide_magnitudes(ua, (uint64_t)ub) : 0.0;
    *out = negative ? -m : m;
    return 0;
}

static PyObject *py_i128(i128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    unsigned char bytes[16];
    u128 u = (u128)v;
    for (int i = 0; i < 16; i++) bytes[i] = (unsigned char)(u >> (8 * i));
    return _PyLong_FromByteArray(bytes, 16, 1, 1);
}

static PyObject *py_divide(i128 a, i128 b) {
    double value;
    if (true_divide(a, b, &value) == 0) return PyFloat_FromDouble(value);
    PyObject *x = py_i128(a), *y = py_i128(b), *out = NULL;
    if (x && y) out = PyNumber_TrueDivide(x, y);
    Py_XDECREF(x);
    Py_XDECREF(y);
    return out;
}

static int overflow(const char *what) {
    PyErr_Format(PyExc_OverflowError, "%s is beyond the C flow's range", what);
    return -1;
}

/* an exact int in [lo, hi] (OverflowError otherwise: the caller keeps the Python cores) */
static int get_i128(PyObject *o, i128 lo, i128 hi, i128 *out) {
    if (!PyLong_CheckExact(o)) return overflow("a non-int value");
    int over;
    long long v = PyLong_AsLongLongAndOverflow(o, &over);
    if (v == -1 && PyErr_Occurred()) return -1;
    i128 value = v;
    if (over) {
        unsigned char bytes[16];
        if (_PyLong_AsByteArray((PyLongObject *)o, bytes, 16, 1, 1) < 0) {
            PyErr_Clear();
            return overflow("an integer");
        }
        u128 u = 0;
        for (int i = 15; i >= 0; i--) u = (u << 8) | bytes[i];
        value = (i128)u;
    }
    if (value < lo || value > hi) return overflow("an integer");
    *out = value;
    return 0;
}

static int get_i64(PyObject *o, int64_t lo, int64_t hi, int64_t *out) {
    i128 v;
    if (get_i128(o, lo, hi, &v) < 0) return -1;
    *out = (int64_t)v;
    return 0;
}

static inline int64_t floor_start(int64_t t, int64_t size) {
    int64_t r = t % size;
    if (r < 0) r += size;
    return t - r;
}

/* ---------------------------------------------------------------- state */

typedef struct {
    int64_t day, start, updates;
    i128 bid_flow, ask_flow;
} OfiWindow;

typedef struct {
    int64_t start, day, updates, depth_updates, two_sided, depth_ns;
    i128 spread, bid, ask;
    double bps;
} LiqWindow;

typedef struct {
    OfiWindow *w;
    Py_ssize_t n, cap;
    int has_closed;
    int64_t closed;
} OfiTrack;

typedef struct {
    LiqWindow *w;
    Py_ssize_t n, cap;
    int has_t, has_closed;
    int64_t t, closed;
} LiqTrack;

typedef struct {
    PyObject *venue, *symbol; /* str */
    const char *venue8, *symbol8; /* their UTF-8, owned by the str objects */
    Py_ssize_t venue_n, symbol_n;
    Py_ssize_t index; /* in Flow.syms */
    int in_ofi, in_liq; /* whether each core has the symbol */
    int64_t o_day, o_bid_px, o_bid_sz, o_ask_px, o_ask_sz;
    int64_t l_day, l_bid_px, l_ask_px, l_bid_depth, l_ask_depth;
    int l_has_depth;
    OfiTrack *ofi;
    LiqTrack *liq;
} Sym;

typedef struct {
    PyObject_HEAD
    int n_ofi, n_liq;
    int64_t *ofi_interval, *ofi_size, *liq_interval, *liq_size; /* config order */
    int64_t depth_levels;
    PyObject *ofi_row, *liq_row; /* the row types */
    Sym **syms;
    Py_ssize_t n_syms, cap_syms;
    PyObject *by_raw;  /* a row's key bytes -> symbol index */
    PyObject *by_name; /* (venue, symbol) -> symbol index */
    PyObject *o_clock_obj, *l_clock_obj; /* each core's complete_before_ns, exactly (None at first) */
    int64_t o_clock, l_clock;            /* the same within +-2^62 (-1 for None, as the limits take it) */
    Py_ssize_t late;
} Flow;

static void sym_free(Flow *f, Sym *s) {
    if (!s) return;
    Py_XDECREF(s->venue);
    Py_XDECREF(s->symbol);
    if (s->ofi)
        for (int i = 0; i < f->n_ofi; i++) PyMem_Free(s->ofi[i].w);
    if (s->liq)
        for (int i = 0; i < f->n_liq; i++) PyMem_Free(s->liq[i].w);
    PyMem_Free(s->ofi);
    PyMem_Free(s->liq);
    PyMem_Free(s);
}

/* the symbol of (venue, symbol), made (with no state in either core) when new */
static Sym *sym_of(Flow *f, PyObject *venue, PyObject *symbol) {
    PyObject *name = PyTuple_Pack(2, venue, symbol);
    if (!name) return NULL;
    PyObject *index = PyDict_GetItemWithError(f->by_name, name);
    if (index) {
        Py_DECREF(name);
        return f->syms[PyLong_AsSsize_t(index)];
    }
    if (PyErr_Occurred()) goto fail;
    if (f->n_syms == f->cap_syms) {
        Py_ssize_t cap = f->cap_syms ? 2 * f->cap_syms : 64;
        Sym **syms = PyMem_Realloc(f->syms, (size_t)cap * sizeof(Sym *));
        if (!syms) {
            PyErr_NoMemory();
            goto fail;
        }
        f->syms = syms;
        f->cap_syms = cap;
    }
    Sym *s = PyMem_Calloc(1, sizeof(Sym));
    if (!s) {
        PyErr_NoMemory();
        goto fail;
    }
    s->ofi = PyMem_Calloc((size_t)f->n_ofi, sizeof(OfiTrack));
    s->liq = PyMem_Calloc((size_t)f->n_liq, sizeof(LiqTrack));
    Py_INCREF(venue);
    Py_INCREF(symbol);
    s->venue = venue;
    s->symbol = symbol;
    s->venue8 = PyUnicode_AsUTF8AndSize(venue, &s->venue_n);
    s->symbol8 = PyUnicode_AsUTF8AndSize(symbol, &s->symbol_n);
    if (!s->ofi || !s->liq || !s->venue8 || !s->symbol8) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        sym_free(f, s);
        goto fail;
    }
    index = PyLong_FromSsize_t(f->n_syms);
    if (!index || PyDict_SetItem(f->by_name, name, index) < 0) {
        Py_XDECREF(index);
        sym_free(f, s);
        goto fail;
    }
    Py_DECREF(index);
    Py_DECREF(name);
    s->index = f->n_syms;
    f->syms[f->n_syms++] = s;
    return s;
fail:
    Py_DECREF(name);
    return NULL;
}

static OfiWindow *ofi_window(OfiTrack *track, int64_t day, int64_t start, int *made) {
    for (Py_ssize_t i = track->n - 1; i >= 0; i--)
        if (track->w[i].start == start && track->w[i].day == day) {
            *made = 0;
            return &track->w[i];
        }
    if (track->n == track->cap) {
        Py_ssize_t cap = track->cap ? 2 * track->cap : 4;
        OfiWindow *w = PyMem_Realloc(track->w, (size_t)cap * sizeof(OfiWindow));
        if (!w) return (OfiWindow *)PyErr_NoMemory();
        track->w = w;
        track->cap = cap;
    }
    OfiWindow *w = &track->w[track->n++];
    memset(w, 0, sizeof *w);
    w->day = day;
    w->start = start;
    *made = 1;
    return w;
}

static LiqWindow *liq_find(LiqTrack *track, int64_t start) {
    for (Py_ssize_t i = track->n - 1; i >= 0; i--)
        if (track->w[i].start == start) return &track->w[i];
    return NULL;
}

static LiqWindow *liq_make(LiqTrack *track, int64_t start, int64_t day) {
    if (track->n == track->cap) {
        Py_ssize_t cap = track->cap ? 2 * track->cap : 4;
        LiqWindow *w = PyMem_Realloc(track->w, (size_t)cap * sizeof(LiqWindow));
        if (!w) return (LiqWindow *)PyErr_NoMemory();
        track->w = w;
        track->cap = cap;
    }
    LiqWindow *w = &track->w[track->n++];
    memset(w, 0, sizeof *w);
    w->start = start;
    w->day = day;
    w->bps = 0.0;
    return w;
}

/* ---------------------------------------------------------------- the cores */

static inline int64_t limit_of(int has_closed, int64_t closed, int64_t clock) {
    int64_t c = has_closed ? closed : -1;
    return c > clock ? c : clock;
}

static int ofi_change(Flow *f, Sym *s, int64_t day, int64_t ts, int64_t bid_px, int64_t bid_sz, int64_t ask_px,
                      int64_t ask_sz) {
    if (!s->in_ofi) {
        s->in_ofi = 1;
        s->o_day = day;
        s->o_bid_px = s->o_bid_sz = s->o_ask_px = s->o_ask_sz = 0;
    } else if (day != s->o_day) {
        if (day < s->o_day) {
            f->late++;
            return 0;
        }
        s->o_day = day;
        s->o_bid_px = s->o_bid_sz = s->o_ask_px = s->o_ask_sz = 0;
    }
    int64_t bid_flow = (bid_px >= s->o_bid_px ? bid_sz : 0) - (bid_px <= s->o_bid_px ? s->o_bid_sz : 0);
    int64_t old_ask = s->o_ask_px ? s->o_ask_px : NO_ASK, new_ask = ask_px ? ask_px : NO_ASK;
    int64_t ask_flow = (new_ask >= old_ask ? s->o_ask_sz : 0) - (new_ask <= old_ask ? ask_sz : 0);
    s->o_bid_px = bid_px;
    s->o_bid_sz = bid_sz;
    s->o_ask_px = ask_px;
    s->o_ask_sz = ask_sz;
    int missed = 0;
    for (int i = 0; i < f->n_ofi; i++) {
        OfiTrack *track = &s->ofi[i];
        int64_t size = f->ofi_size[i];
        int64_t start = floor_start(ts, size);
        if (start + size <= limit_of(track->has_closed, track->closed, f->o_clock)) {
            missed = 1;
            continue;
        }
        int made;
        OfiWindow *w = ofi_window(track, day, start, &made);
        if (!w) return -1;
        w->updates += 1;
        w->bid_flow += bid_flow;
        w->ask_flow += ask_flow;
    }
    if (missed) f->late++;
    return 0;
}

/* the current state, in force for ns, into a window */
static inline void weigh(const Sym *s, LiqWindow *w, int64_t ns) {
    int64_t bid = s->l_bid_px, ask = s->l_ask_px;
    if (bid && ask) {
        int64_t width = ask - bid;
        double term;
        w->two_sided += ns;
        w->spread += (i128)width * ns;
        true_divide((i128)BPS_OF_HALF * width * ns, (i128)(ask + bid), &term);
        w->bps += term;
    }
    if (s->l_has_depth) {
        w->depth_ns += ns;
        w->bid += (i128)s->l_bid_depth * ns;
        w->ask += (i128)s->l_ask_depth * ns;
    }
}

static void liq_start_day(Flow *f, Sym *s, int64_t day) {
    for (int i = 0; i < f->n_liq; i++) {
        LiqTrack *track = &s->liq[i];
        int64_t size = f->liq_size[i];
        if (track->has_t) {
            int64_t start = floor_start(track->t, size);
            LiqWindow *w = liq_find(track, start);
            if (w) weigh(s, w, start + size - track->t);
            track->t = start + size;
        }
    }
    s->l_day = day;
    s->l_bid_px = s->l_ask_px = 0;
    s->l_has_depth = 0;
    s->l_bid_depth = s->l_ask_depth = 0;
}

static int liq_update(Flow *f, Sym *s, int64_t day, int is_top, int64_t ts, int64_t a, int64_t b) {
    if (!s->in_liq) {
        s->in_liq = 1;
        s->l_day = day;
        s->l_bid_px = s->l_ask_px = 0;
        s->l_has_depth = 0;
        s->l_bid_depth = s->l_ask_depth = 0;
    } else if (day != s->l_day) {
        if (day < s->l_day) {
            f->late++;
            return 0;
        }
        liq_start_day(f, s, day);
    }
    int missed = 0;
    for (int i = 0; i < f->n_liq; i++) {
        LiqTrack *track = &s->liq[i];
        int64_t size = f->liq_size[i];
        int64_t limit = limit_of(track->has_closed, track->closed, f->l_clock);
        if (floor_start(ts, size) + size <= limit) missed = 1;
        int64_t te = ts, t = track->t;
        int has_t = track->has_t;
        if (has_t && t > te) te = t;
        if (limit >= 0 && limit - limit % size > te) te = limit - limit % size;
        if (has_t && te > t) { /* the state so far weighs up to te in t's window */
            int64_t start = floor_start(t, size);
            LiqWindow *w = liq_find(track, start);
            if (w) weigh(s, w, (te < start + size ? te : start + size) - t);
        }
        int64_t start = floor_start(te, size);
        LiqWindow *w = liq_find(track, start);
        if (!w) {
            w = liq_make(track, start, s->l_day);
            if (!w) return -1;
            if (te > start) weigh(s, w, te - start); /* carried from before the window */
        }
        if (is_top)
            w->updates += 1;
        else
            w->depth_updates += 1;
        track->has_t = 1;
        track->t = te;
    }
    if (is_top) {
        s->l_bid_px = a;
        s->l_ask_px = b;
    } else {
        s->l_has_depth = 1;
        s->l_bid_depth = a;
        s->l_ask_depth = b;
    }
    if (missed) f->late++;
    return 0;
}

/* ---------------------------------------------------------------- reading rows */

static inline uint64_t rd_u64(const uc *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static int get_varint(const uc **pp, const uc *end, uint64_t *out) {
    const uc *p = *pp;
    uint64_t v = 0;
    int shift = 0, big = 0;
    for (;;) {
        if (p >= end) return -1;
        unsigned byte = *p++;
        uint64_t bits = byte & 0x7F;
        if (shift < 64) {
            if (shift > 57 && (bits >> (64 - shift))) big = 1;
            v |= bits << shift;
        } else if (bits) {
            big = 1;
        }
        shift += 7;
        if (byte < 0x80) break;
    }
    *pp = p;
    *out = big ? UINT64_MAX : v;
    return 0;
}

static int ends_inside(const char *table) {
    PyErr_Format(PyExc_ValueError, "%s data ends inside a row", table);
    return -1;
}

/* a row's key (venue, trading_date, symbol) at *pp: its symbol and date; the position after it */
typedef struct {
    const uc *raw;
    Py_ssize_t raw_n;
    Sym *sym;
    int64_t day;
} KeyCache;

static int read_key(Flow *f, const uc **pp, const uc *end, KeyCache *cache, const char *table) {
    const uc *p = *pp;
    if (cache->raw && end - p >= cache->raw_n && memcmp(p, cache->raw, (size_t)cache->raw_n) == 0) {
        *pp = p + cache->raw_n; /* a book's rows come in runs */
        return 0;
    }
    const uc *start = p;
    uint64_t venue_n, symbol_n;
    if (get_varint(&p, end, &venue_n) < 0 || venue_n > (uint64_t)(end - p)) return ends_inside(table);
    const uc *venue = p;
    p += venue_n;
    if (end - p < 2) return ends_inside(table);
    int64_t day = p[0] | (p[1] << 8);
    p += 2;
    if (get_varint(&p, end, &symbol_n) < 0 || symbol_n > (uint64_t)(end - p)) return ends_inside(table);
    const uc *symbol = p;
    p += symbol_n;
    PyObject *raw = PyBytes_FromStringAndSize((const char *)start, p - start);
    if (!raw) return -1;
    PyObject *index = PyDict_GetItemWithError(f->by_raw, raw);
    Sym *s;
    if (index) {
        s = f->syms[PyLong_AsSsize_t(index)];
    } else {
        if (PyErr_Occurred()) goto fail;
        PyObject *v = PyUnicode_DecodeUTF8((const char *)venue, (Py_ssize_t)venue_n, NULL);
        PyObject *y = v ? PyUnicode_DecodeUTF8((const char *)symbol, (Py_ssize_t)symbol_n, NULL) : NULL;
        s = y ? sym_of(f, v, y) : NULL;
        Py_XDECREF(v);
        Py_XDECREF(y);
        if (!s) goto fail;
        if (PyDict_GET_SIZE(f->by_raw) > 4 * f->n_syms + 1024) PyDict_Clear(f->by_raw); /* old days */
        PyObject *value = PyLong_FromSsize_t(s->index);
        if (!value || PyDict_SetItem(f->by_raw, raw, value) < 0) {
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(value);
    }
    Py_DECREF(raw);
    cache->raw = start;
    cache->raw_n = p - start;
    cache->sym = s;
    cache->day = day;
    *pp = p;
    return 0;
fail:
    Py_DECREF(raw);
    return -1;
}

typedef struct {
    Sym *sym;
    int64_t day, ts, bid_px, bid_sz, ask_px, ask_sz;
} TopRef;

typedef struct {
    Sym *sym;
    int64_t day, ts, bid, ask;
} DepthRef;

/* every top_of_book row; 1 when a value is beyond the C ranges, -1 with an error */
static int read_tops(Flow *f, const uc *p, const uc *end, TopRef **out, Py_ssize_t *n_out) {
    Py_ssize_t cap = (end - p) / (BODY + 4) + 1, n = 0;
    TopRef *refs = PyMem_Malloc((size_t)cap * sizeof(TopRef));
    if (!refs) return PyErr_NoMemory(), -1;
    KeyCache cache = {0};
    int beyond = 0;
    while (p < end) {
        if (read_key(f, &p, end, &cache, "top_of_book") < 0) goto fail;
        if (end - p < BODY) {
            ends_inside("top_of_book");
            goto fail;
        }
        int64_t ts = (int64_t)rd_u64(p + 8), bid_px = (int64_t)rd_u64(p + 16), ask_px = (int64_t)rd_u64(p + 36);
        uint64_t bid_sz = rd_u64(p + 24), ask_sz = rd_u64(p + 44);
        p += BODY;
        if (ts < -TIME_LIMIT || ts > TIME_LIMIT || bid_px < 0 || bid_px > PRICE_LIMIT || ask_px < 0 ||
            ask_px > PRICE_LIMIT || bid_sz > (uint64_t)SHARES_LIMIT || ask_sz > (uint64_t)SHARES_LIMIT)
            beyond = 1;
        if (n == cap) {
            cap *= 2;
            TopRef *more = PyMem_Realloc(refs, (size_t)cap * sizeof(TopRef));
            if (!more) {
                PyErr_NoMemory();
                goto fail;
            }
            refs = more;
        }
        refs[n++] = (TopRef){cache.sym, cache.day, ts, bid_px, (int64_t)bid_sz, ask_px, (int64_t)ask_sz};
    }
    *out = refs;
    *n_out = n;
    return beyond;
fail:
    PyMem_Free(refs);
    return -1;
}

/* every depth_snapshots row as its best levels' shares; stops at the first malformed row with its
   error set and *failed = 1 (the rows before it are in *out) */
static int read_depths(Flow *f, const uc *p, const uc *end, DepthRef **out, Py_ssize_t *n_out, int *failed) {
    Py_ssize_t cap = 16, n = 0;
    DepthRef *refs = PyMem_Malloc((size_t)cap * sizeof(DepthRef));
    if (!refs) return PyErr_NoMemory(), -1;
    int beyond = 0;
    *failed = 0;
    while (p < end) {
        KeyCache cache = {0}; /* every row's key is read, as the Python decoder does */
        if (read_key(f, &p, end, &cache, "depth_snapshots") < 0) goto bad;
        if (end - p < 8) goto short_row;
        p += 8; /* seq */
        uint64_t reason_n;
        if (get_varint(&p, end, &reason_n) < 0 || reason_n > (uint64_t)(end - p)) goto short_row;
        for (uint64_t k = 0; k < reason_n; k++)
            if (p[k] & 0x80) {
                PyObject *reason = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)reason_n, NULL);
                if (!reason) goto bad;
                Py_DECREF(reason);
                break;
            }
        p += reason_n;
        if (end - p < 8) goto short_row;
        int64_t ts = (int64_t)rd_u64(p);
        p += 8;
        u128 sums[2];
        for (int side = 0; side < 2; side++) {
            uint64_t count;
            if (get_varint(&p, end, &count) < 0 || count > (uint64_t)(end - p) / 8) goto short_row;
            p += 8 * count; /* prices */
            if (get_varint(&p, end, &count) < 0 || count > (uint64_t)(end - p) / 8) goto short_row;
            u128 sum = 0;
            for (uint64_t k = 0; k < count && k < (uint64_t)f->depth_levels; k++) sum += rd_u64(p + 8 * k);
            sums[side] = sum;
            p += 8 * count;
            if (get_varint(&p, end, &count) < 0 || count > (uint64_t)(end - p) / 4) goto short_row;
            p += 4 * count; /* orders */
        }
        if (ts < -TIME_LIMIT || ts > TIME_LIMIT || sums[0] > (u128)SHARES_LIMIT || sums[1] > (u128)SHARES_LIMIT)
            beyond = 1;
        if (n == cap) {
            cap *= 2;
            DepthRef *more = PyMem_Realloc(refs, (size_t)cap * sizeof(DepthRef));
            if (!more) {
                PyMem_Free(refs);
                return PyErr_NoMemory(), -1;
            }
            refs = more;
        }
        refs[n++] = (DepthRef){cache.sym, cache.day, ts, (int64_t)sums[0], (int64_t)sums[1]};
    }
    *out = refs;
    *n_out = n;
    return beyond;
short_row:
    ends_inside("depth_snapshots");
bad:
    *failed = 1;
    *out = refs;
    *n_out = n;
    return beyond;
}

/* record(tops, depths): fold a record's rows in; OverflowError (nothing changed) when a value is
   beyond the C ranges */
static PyObject *Flow_record(Flow *f, PyObject *args) {
    Py_buffer tops, depths;
    if (!PyArg_ParseTuple(args, "y*y*", &tops, &depths)) return NULL;
    TopRef *top_refs = NULL;
    DepthRef *depth_refs = NULL;
    Py_ssize_t n_tops = 0, n_depths = 0;
    PyObject *result = NULL, *error_type = NULL, *error_value = NULL, *error_tb = NULL;
    int failed = 0;
    int beyond = read_tops(f, tops.buf, (const uc *)tops.buf + tops.len, &top_refs, &n_tops);
    if (beyond < 0) goto done;
    int depth_beyond = read_depths(f, depths.buf, (const uc *)depths.buf + depths.len, &depth_refs, &n_depths,
                                   &failed);
    if (depth_beyond < 0) goto done;
    if (failed) PyErr_Fetch(&error_type, &error_value, &error_tb);
    if (beyond || depth_beyond) {
        overflow("a value of the rows");
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_tops; k++) {
        TopRef *r = &top_refs[k];
        if (ofi_change(f, r->sym, r->day, r->ts, r->bid_px, r->bid_sz, r->ask_px, r->ask_sz) < 0) goto done;
        if (liq_update(f, r->sym, r->day, 1, r->ts, r->bid_px, r->ask_px) < 0) goto done;
    }
    if (failed) { /* the Python decoder reads the depth rows after the tops are in */
        PyErr_Restore(error_type, error_value, error_tb);
        error_type = error_value = error_tb = NULL;
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_depths; k++) {
        DepthRef *r = &depth_refs[k];
        if (liq_update(f, r->sym, r->day, 0, r->ts, r->bid, r->ask) < 0) goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(error_type);
    Py_XDECREF(error_value);
    Py_XDECREF(error_tb);
    PyMem_Free(top_refs);
    PyMem_Free(depth_refs);
    PyBuffer_Release(&tops);
    PyBuffer_Release(&depths);
    return result;
}

/* ---------------------------------------------------------------- firing */

typedef struct {
    const Sym *sym;
    int64_t day, interval, start;
    int64_t updates;
    i128 bid_flow, ask_flow;
} OfiOut;

typedef struct {
    const Sym *sym;
    int64_t interval;
    LiqWindow w;
} LiqOut;

static int compare_names(const Sym *a, const Sym *b, int64_t day_a, int64_t day_b) {
    Py_ssize_t n = a->venue_n < b->venue_n ? a->venue_n : b->venue_n;
    int c = memcmp(a->venue8, b->venue8, (size_t)n);
    if (c) return c;
    if (a->venue_n != b->venue_n) return a->venue_n < b->venue_n ? -1 : 1;
    if (day_a != day_b) return day_a < day_b ? -1 : 1;
    n = a->symbol_n < b->symbol_n ? a->symbol_n : b->symbol_n;
    c = memcmp(a->symbol8, b->symbol8, (size_t)n);
    if (c) return c;
    if (a->symbol_n != b->symbol_n) return a->symbol_n < b->symbol_n ? -1 : 1;
    return 0;
}

#define CMP(x, y) ((x) < (y) ? -1 : (x) > (y) ? 1 : 0)

static int compare_ofi(const void *x, const void *y) {
    const OfiOut *a = x, *b = y;
    int c = compare_names(a->sym, b->sym, a->day, b->day);
    if (c) return c;
    c = CMP(a->interval, b->interval);
    return c ? c : CMP(a->start, b->start);
}

static int compare_liq(const void *x, const void *y) {
    const LiqOut *a = x, *b = y;
    int c = compare_names(a->sym, b->sym, a->w.day, b->w.day);
    if (c) return c;
    c = CMP(a->interval, b->interval);
    return c ? c : CMP(a->w.start, b->w.start);
}

typedef struct {
    OfiOut *ofi;
    LiqOut *liq;
    Py_ssize_t n_ofi, n_liq, cap_ofi, cap_liq;
} Fired;

static int fired_ofi(Fired *out, const Sym *s, int64_t interval, const OfiWindow *w) {
    if (out->n_ofi == out->cap_ofi) {
        out->cap_ofi = out->cap_ofi ? 2 * out->cap_ofi : 256;
        OfiOut *more = PyMem_Realloc(out->ofi, (size_t)out->cap_ofi * sizeof(OfiOut));
        if (!more) return PyErr_NoMemory(), -1;
        out->ofi = more;
    }
    out->ofi[out->n_ofi++] = (OfiOut){s, w->day, interval, w->start, w->updates, w->bid_flow, w->ask_flow};
    return 0;
}

/* Liquidity._finish: the current state weighs up to the window's end if it took effect in it */
static int fired_liq(Fired *out, const Sym *s, LiqTrack *track, int64_t interval, LiqWindow *w, int64_t end) {
    if (track->has_t && w->start <= track->t && track->t < end) {
        weigh(s, w, end - track->t);
        track->has_t = 0;
    }
    if (out->n_liq == out->cap_liq) {
        out->cap_liq = out->cap_liq ? 2 * out->cap_liq : 256;
        LiqOut *more = PyMem_Realloc(out->liq, (size_t)out->cap_liq * sizeof(LiqOut));
        if (!more) return PyErr_NoMemory(), -1;
        out->liq = more;
    }
    out->liq[out->n_liq++] = (LiqOut){s, interval, *w};
    return 0;
}

static PyObject *make_row(PyObject *type, PyObject **items, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++)
        if (!items[k]) goto fail;
    PyTypeObject *t = (PyTypeObject *)type;
    PyObject *row = t->tp_alloc(t, n);
    if (!row) goto fail;
    for (Py_ssize_t k = 0; k < n; k++) PyTuple_SET_ITEM(row, k, items[k]);
    return row;
fail:
    for (Py_ssize_t k = 0; k < n; k++) Py_XDECREF(items[k]);
    return NULL;
}

static PyObject *float_or_none(i128 a, i128 b) {
    if (!b) return Py_NewRef(Py_None);
    return py_divide(a, b);
}

/* (ofi rows, liquidity rows, late) of what fired, sorted as the Python cores sort them */
static PyObject *emit(Flow *f, Fired *out) {
    PyObject *ofi = NULL, *liq = NULL;
    qsort(out->ofi, (size_t)out->n_ofi, sizeof(OfiOut), compare_ofi);
    qsort(out->liq, (size_t)out->n_liq, sizeof(LiqOut), compare_liq);
    ofi = PyList_New(out->n_ofi);
    liq = PyList_New(out->n_liq);
    if (!ofi || !liq) goto fail;
    for (Py_ssize_t k = 0; k < out->n_ofi; k++) {
        OfiOut *o = &out->ofi[k];
        PyObject *items[9] = {
            Py_NewRef(o->sym->venue), PyLong_FromLongLong(o->day), Py_NewRef(o->sym->symbol),
            PyLong_FromLongLong(o->interval), PyLong_FromLongLong(o->start), py_i128(o->bid_flow + o->ask_flow),
            py_i128(o->bid_flow), py_i128(o->ask_flow), PyLong_FromLongLong(o->updates),
        };
        PyObject *row = make_row(f->ofi_row, items, 9);
        if (!row) goto fail;
        PyList_SET_ITEM(ofi, k, row);
    }
    for (Py_ssize_t k = 0; k < out->n_liq; k++) {
        LiqOut *o = &out->liq[k];
        LiqWindow *w = &o->w;
        PyObject *items[15] = {
            Py_NewRef(o->sym->venue),
            PyLong_FromLongLong(w->day),
            Py_NewRef(o->sym->symbol),
            PyLong_FromLongLong(o->interval),
            PyLong_FromLongLong(w->start),
            float_or_none(w->spread, w->two_sided),
            w->two_sided ? PyFloat_FromDouble(w->bps / (double)w->two_sided) : Py_NewRef(Py_None),
            PyLong_FromLongLong(w->two_sided),
            float_or_none(w->bid, w->depth_ns),
            float_or_none(w->ask, w->depth_ns),
            float_or_none(w->bid - w->ask, w->bid + w->ask),
            PyLong_FromLongLong(w->depth_ns),
            PyLong_FromLongLong(f->depth_levels),
            PyLong_FromLongLong(w->updates),
            PyLong_FromLongLong(w->depth_updates),
        };
        PyObject *row = make_row(f->liq_row, items, 15);
        if (!row) goto fail;
        PyList_SET_ITEM(liq, k, row);
    }
    PyObject *result = Py_BuildValue("(NNn)", ofi, liq, f->late);
    f->late = 0;
    return result;
fail:
    Py_XDECREF(ofi);
    Py_XDECREF(liq);
    return NULL;
}

/* the clock after an advance to now (it never goes back); OverflowError beyond the C range */
static int advance_clock(PyObject *now, PyObject **obj, int64_t *clock) {
    if (*obj != Py_None) {
        int less = PyObject_RichCompareBool(now, *obj, Py_LT);
        if (less < 0) return -1;
        if (less) return 0;
    }
    int over;
    long long v = PyLong_AsLongLongAndOverflow(now, &over);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (over > 0 || (!over && v > CLOCK_LIMIT)) return overflow("complete_before_ns");
    *clock = over < 0 || v < -CLOCK_LIMIT ? -CLOCK_LIMIT : v;
    Py_INCREF(now);
    Py_SETREF(*obj, now);
    return 0;
}

static PyObject *Flow_advance(Flow *f, PyObject *now) {
    if (!PyLong_Check(now)) {
        PyErr_SetString(PyExc_TypeError, "complete_before_ns must be an int");
        return NULL;
    }
    /* both checked before either changes */
    int over;
    long long v = PyLong_AsLongLongAndOverflow(now, &over);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (over > 0 || (!over && v > CLOCK_LIMIT)) {
        int keeps_o = f->o_clock_obj != Py_None && PyObject_RichCompareBool(now, f->o_clock_obj, Py_LT) == 1;
        int keeps_l = f->l_clock_obj != Py_None && PyObject_RichCompareBool(now, f->l_clock_obj, Py_LT) == 1;
        if (!keeps_o || !keeps_l) {
            overflow("complete_before_ns");
            return NULL;
        }
    }
    if (advance_clock(now, &f->o_clock_obj, &f->o_clock) < 0) return NULL;
    if (advance_clock(now, &f->l_clock_obj, &f->l_clock) < 0) return NULL;
    Fired out = {0};
    PyObject *result = NULL;
    for (Py_ssize_t k = 0; k < f->n_syms; k++) {
        Sym *s = f->syms[k];
        if (s->in_ofi)
            for (int i = 0; i < f->n_ofi; i++) {
                OfiTrack *track = &s->ofi[i];
                int64_t size = f->ofi_size[i];
                Py_ssize_t kept = 0;
                for (Py_ssize_t j = 0; j < track->n; j++) {
                    OfiWindow *w = &track->w[j];
                    if (w->start + size <= f->o_clock) {
                        if (fired_ofi(&out, s, f->ofi_interval[i], w) < 0) goto done;
                    } else {
                        track->w[kept++] = *w;
                    }
                }
                track->n = kept;
                if (track->has_closed && track->closed <= f->o_clock) track->has_closed = 0;
            }
        if (s->in_liq)
            for (int i = 0; i < f->n_liq; i++) {
                LiqTrack *track = &s->liq[i];
                int64_t size = f->liq_size[i];
                Py_ssize_t kept = 0;
                for (Py_ssize_t j = 0; j < track->n; j++) {
                    LiqWindow *w = &track->w[j];
                    if (w->start + size <= f->l_clock) {
                        if (fired_liq(&out, s, track, f->liq_interval[i], w, w->start + size) < 0) goto done;
                    } else {
                        track->w[kept++] = *w;
                    }
                }
                track->n = kept;
                if (track->has_closed && track->closed <= f->l_clock) track->has_closed = 0;
            }
    }
    result = emit(f, &out);
done:
    PyMem_Free(out.ofi);
    PyMem_Free(out.liq);
    return result;
}

static int compare_starts(const void *x, const void *y) {
    const LiqWindow *a = x, *b = y;
    return CMP(a->start, b->start);
}

static PyObject *Flow_close_all(Flow *f, PyObject *unused) {
    Fired out = {0};
    PyObject *result = NULL;
    for (Py_ssize_t k = 0; k < f->n_syms; k++) {
        Sym *s = f->syms[k];
        if (s->in_ofi)
            for (int i = 0; i < f->n_ofi; i++) {
                OfiTrack *track = &s->ofi[i];
                for (Py_ssize_t j = 0; j < track->n; j++) {
                    OfiWindow *w = &track->w[j];
                    if (fired_ofi(&out, s, f->ofi_interval[i], w) < 0) goto done;
                    int64_t end = w->start + f->ofi_size[i];
                    if (end > (track->has_closed ? track->closed : -1)) {
                        track->has_closed = 1;
                        track->closed = end;
                    }
                }
                track->n = 0;
            }
        if (s->in_liq)
            for (int i = 0; i < f->n_liq; i++) {
                LiqTrack *track = &s->liq[i];
                if (!track->n) continue;
                int64_t size = f->liq_size[i];
                qsort(track->w, (size_t)track->n, sizeof(LiqWindow), compare_starts);
                for (Py_ssize_t j = 0; j < track->n; j++)
                    if (fired_liq(&out, s, track, f->liq_interval[i], &track->w[j], track->w[j].start + size) < 0)
                        goto done;
                int64_t end = track->w[track->n - 1].start + size;
                track->n = 0;
                if (end > (track->has_closed ? track->closed : -1)) {
                    track->has_closed = 1;
                    track->closed = end;
                }
            }
    }
    result = emit(f, &out);
done:
    PyMem_Free(out.ofi);
    PyMem_Free(out.liq);
    return result;
}

/* the event-time timer (ms) of the earliest end of a window or close marker, or None */
static PyObject *Flow_next_timer_ms(Flow *f, PyObject *unused) {
    int any = 0;
    int64_t first = 0;
#define SEEN(end)                         \
    do {                                  \
        int64_t e_ = (end);               \
        if (!any || e_ < first) first = e_; \
        any = 1;                          \
    } while (0)
    for (Py_ssize_t k = 0; k < f->n_syms; k++) {
        Sym *s = f->syms[k];
        if (s->in_ofi)
            for (int i = 0; i < f->n_ofi; i++) {
                OfiTrack *track = &s->ofi[i];
                for (Py_ssize_t j = 0; j < track->n; j++) SEEN(track->w[j].start + f->ofi_size[i]);
                if (track->has_closed) SEEN(track->closed);
            }
        if (s->in_liq)
            for (int i = 0; i < f->n_liq; i++) {
                LiqTrack *track = &s->liq[i];
                for (Py_ssize_t j = 0; j < track->n; j++) SEEN(track->w[j].start + f->liq_size[i]);
                if (track->has_closed) SEEN(track->closed);
            }
    }
#undef SEEN
    if (!any) Py_RETURN_NONE;
    /* -(-end // NS_PER_MS) - 1, floor division */
    int64_t negated = -first, q = negated / NS_PER_MS;
    if (negated % NS_PER_MS != 0 && negated < 0) q -= 1;
    return PyLong_FromLongLong(-q - 1);
}

/* ---------------------------------------------------------------- state */

static int compare_syms(const void *x, const void *y) {
    const Sym *a = *(const Sym *const *)x, *b = *(const Sym *const *)y;
    return compare_names(a, b, 0, 0);
}

static int compare_ofi_windows(const void *x, const void *y) {
    const OfiOut *a = x, *b = y; /* (interval, day, start) */
    int c = CMP(a->interval, b->interval);
    if (c) return c;
    c = CMP(a->day, b->day);
    return c ? c : CMP(a->start, b->start);
}

static int compare_pairs(const void *x, const void *y) {
    const int64_t *a = x, *b = y;
    int c = CMP(a[0], b[0]);
    return c ? c : CMP(a[1], b[1]);
}

static PyObject *intervals_list(const int64_t *intervals, int n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(intervals[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* [[interval, end], ...] sorted */
static PyObject *closed_list(int64_t *pairs, Py_ssize_t n) {
    qsort(pairs, (size_t)n, 2 * sizeof(int64_t), compare_pairs);
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *pair = Py_BuildValue("[LL]", (long long)pairs[2 * k], (long long)pairs[2 * k + 1]);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, k, pair);
    }
    return list;
}

static PyObject *ofi_symbol_state(Flow *f, const Sym *s) {
    Py_ssize_t n = 0;
    for (int i = 0; i < f->n_ofi; i++) n += s->ofi[i].n;
    OfiOut *windows = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(OfiOut));
    int64_t *pairs = PyMem_Malloc((size_t)(2 * f->n_ofi) * sizeof(int64_t));
    PyObject *list = NULL, *closed = NULL, *result = NULL;
    if (!windows || !pairs) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m = 0, n_closed = 0;
    for (int i = 0; i < f->n_ofi; i++) {
        const OfiTrack *track = &s->ofi[i];
        for (Py_ssize_t j = 0; j < track->n; j++) {
            const OfiWindow *w = &track->w[j];
            windows[m++] = (OfiOut){s, w->day, f->ofi_interval[i], w->start, w->updates, w->bid_flow, w->ask_flow};
        }
        if (track->has_closed) {
            pairs[2 * n_closed] = f->ofi_interval[i];
            pairs[2 * n_closed++ + 1] = track->closed;
        }
    }
    qsort(windows, (size_t)n, sizeof(OfiOut), compare_ofi_windows);
    list = PyList_New(n);
    if (!list) goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        OfiOut *w = &windows[k];
        PyObject *item = Py_BuildValue("[LLLLNN]", (long long)w->interval, (long long)w->day, (long long)w->start,
                                       (long long)w->updates, py_i128(w->bid_flow), py_i128(w->ask_flow));
        if (!item) goto done;
        PyList_SET_ITEM(list, k, item);
    }
    closed = closed_list(pairs, n_closed);
    if (!closed) goto done;
    result = Py_BuildValue("{sOsOsLs[LLLL]sOsO}", "venue", s->venue, "symbol", s->symbol, "trading_date",
                           (long long)s->o_day, "top", (long long)s->o_bid_px, (long long)s->o_bid_sz,
                           (long long)s->o_ask_px, (long long)s->o_ask_sz, "windows", list, "closed", closed);
done:
    Py_XDECREF(list);
    Py_XDECREF(closed);
    PyMem_Free(windows);
    PyMem_Free(pairs);
    return result;
}

static PyObject *liq_symbol_state(Flow *f, const Sym *s) {
    int64_t *pairs = PyMem_Malloc((size_t)(2 * f->n_liq) * sizeof(int64_t));
    PyObject *tracks = PyList_New(0), *closed = NULL, *depth = NULL, *result = NULL;
    if (!pairs) {
        PyErr_NoMemory();
        goto done;
    }
    if (!tracks) goto done;
    Py_ssize_t n_closed = 0;
    for (int i = 0; i < f->n_liq; i++) {
        LiqTrack *track = &s->liq[i];
        if (track->has_closed) {
            pairs[2 * n_closed] = f->liq_interval[i];
            pairs[2 * n_closed++ + 1] = track->closed;
        }
        if (!track->has_t && !track->n) continue;
        qsort(track->w, (size_t)track->n, sizeof(LiqWindow), compare_starts);
        PyObject *windows = PyList_New(track->n);
        if (!windows) goto done;
        for (Py_ssize_t j = 0; j < track->n; j++) {
            LiqWindow *w = &track->w[j];
            PyObject *item = Py_BuildValue("[LLLLLNdLNN]", (long long)w->start, (long long)w->day,
                                           (long long)w->updates, (long long)w->depth_updates,
                                           (long long)w->two_sided, py_i128(w->spread), w->bps,
                                           (long long)w->depth_ns, py_i128(w->bid), py_i128(w->ask));
            if (!item) {
                Py_DECREF(windows);
                goto done;
            }
            PyList_SET_ITEM(windows, j, item);
        }
        PyObject *t = track->has_t ? PyLong_FromLongLong(track->t) : Py_NewRef(Py_None);
        PyObject *entry = t ? Py_BuildValue("[LNN]", (long long)f->liq_interval[i], t, windows) : NULL;
        if (!entry) {
            if (!t) Py_DECREF(windows);
            goto done;
        }
        int failed = PyList_Append(tracks, entry);
        Py_DECREF(entry);
        if (failed < 0) goto done;
    }
    closed = closed_list(pairs, n_closed);
    if (!closed) goto done;
    depth = s->l_has_depth ? Py_BuildValue("[LL]", (long long)s->l_bid_depth, (long long)s->l_ask_depth)
                           : Py_NewRef(Py_None);
    if (!depth) goto done;
    result = Py_BuildValue("{sOsOsLs[LL]sOsOsO}", "venue", s->venue, "symbol", s->symbol, "trading_date",
                           (long long)s->l_day, "top", (long long)s->l_bid_px, (long long)s->l_ask_px, "depth",
                           depth, "tracks", tracks, "closed", closed);
done:
    Py_XDECREF(tracks);
    Py_XDECREF(closed);
    Py_XDECREF(depth);
    PyMem_Free(pairs);
    return result;
}

/* snapshot() -> (OrderFlowImbalance.snapshot(), Liquidity.snapshot()) of the same state */
static PyObject *Flow_snapshot(Flow *f, PyObject *unused) {
    Sym **sorted = PyMem_Malloc((size_t)(f->n_syms ? f->n_syms : 1) * sizeof(Sym *));
    if (!sorted) return PyErr_NoMemory();
    memcpy(sorted, f->syms, (size_t)f->n_syms * sizeof(Sym *));
    qsort(sorted, (size_t)f->n_syms, sizeof(Sym *), compare_syms);
    PyObject *ofi = PyList_New(0), *liq = PyList_New(0), *result = NULL;
    if (!ofi || !liq) goto done;
    for (Py_ssize_t k = 0; k < f->n_syms; k++) {
        Sym *s = sorted[k];
        PyObject *item;
        if (s->in_ofi) {
            if (!(item = ofi_symbol_state(f, s))) goto done;
            int failed = PyList_Append(ofi, item);
            Py_DECREF(item);
            if (failed < 0) goto done;
        }
        if (s->in_liq) {
            if (!(item = liq_symbol_state(f, s))) goto done;
            int failed = PyList_Append(liq, item);
            Py_DECREF(item);
            if (failed < 0) goto done;
        }
    }
    result = Py_BuildValue("({sisNsOsO}{sisNsOsO})", "version", 1, "intervals_s",
                           intervals_list(f->ofi_interval, f->n_ofi), "complete_before_ns", f->o_clock_obj,
                           "symbols", ofi, "version", 1, "intervals_s", intervals_list(f->liq_interval, f->n_liq),
                           "complete_before_ns", f->l_clock_obj, "symbols", liq);
done:
    Py_XDECREF(ofi);
    Py_XDECREF(liq);
    PyMem_Free(sorted);
    return result;
}

static PyObject *item_of(PyObject *dict, const char *name) {
    PyObject *value = PyDict_Check(dict) ? PyDict_GetItemString(dict, name) : NULL;
    if (!value) overflow("a snapshot without the expected fields");
    return value;
}

/* a list of n items (a sequence the Python cores would unpack) */
static PyObject *fixed_list(PyObject *o, Py_ssize_t n) {
    if (!PyList_CheckExact(o) || (n >= 0 && PyList_GET_SIZE(o) != n)) {
        overflow("a snapshot of another shape");
        return NULL;
    }
    return o;
}

static int interval_index(const int64_t *intervals, int n, PyObject *o) {
    int64_t interval;
    if (get_i64(o, 1, INT64_MAX, &interval) < 0) return -1;
    for (int i = 0; i < n; i++)
        if (intervals[i] == interval) return i;
    return overflow("a window size not configured");
}

static int set_clock(PyObject *value, PyObject **obj, int64_t *clock) {
    if (value == Py_None) {
        Py_SETREF(*obj, Py_NewRef(Py_None));
        *clock = -1;
        return 0;
    }
    if (!PyLong_CheckExact(value)) return overflow("complete_before_ns");
    int over;
    long long v = PyLong_AsLongLongAndOverflow(value, &over);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (over > 0 || (!over && v > CLOCK_LIMIT)) return overflow("complete_before_ns");
    *clock = over < 0 || v < -CLOCK_LIMIT ? -CLOCK_LIMIT : v;
    Py_SETREF(*obj, Py_NewRef(value));
    return 0;
}

static Sym *restored_sym(Flow *f, PyObject *saved) {
    PyObject *venue = item_of(saved, "venue"), *symbol = venue ? item_of(saved, "symbol") : NULL;
    if (!symbol) return NULL;
    if (!PyUnicode_CheckExact(venue) || !PyUnicode_CheckExact(symbol)) return overflow("a non-str name"), NULL;
    return sym_of(f, venue, symbol);
}

#define T_LO (-STATE_TIME_LIMIT)
#define T_HI STATE_TIME_LIMIT

static int restore_ofi(Flow *f, PyObject *data) {
    PyObject *clock = item_of(data, "complete_before_ns"), *symbols;
    if (!clock || set_clock(clock, &f->o_clock_obj, &f->o_clock) < 0) return -1;
    if (!(symbols = item_of(data, "symbols")) || !fixed_list(symbols, -1)) return -1;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(symbols); k++) {
        PyObject *saved = PyList_GET_ITEM(symbols, k), *o;
        Sym *s = restored_sym(f, saved);
        if (!s) return -1;
        s->in_ofi = 1;
        if (!(o = item_of(saved, "trading_date")) || get_i64(o, 0, INT64_MAX, &s->o_day) < 0) return -1;
        if (!(o = item_of(saved, "top")) || !fixed_list(o, 4)) return -1;
        if (get_i64(PyList_GET_ITEM(o, 0), 0, PRICE_LIMIT, &s->o_bid_px) < 0 ||
            get_i64(PyList_GET_ITEM(o, 1), 0, SHARES_LIMIT, &s->o_bid_sz) < 0 ||
            get_i64(PyList_GET_ITEM(o, 2), 0, PRICE_LIMIT, &s->o_ask_px) < 0 ||
            get_i64(PyList_GET_ITEM(o, 3), 0, SHARES_LIMIT, &s->o_ask_sz) < 0)
            return -1;
        if (!(o = item_of(saved, "windows")) || !fixed_list(o, -1)) return -1;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(o); j++) {
            PyObject *w = fixed_list(PyList_GET_ITEM(o, j), 6);
            if (!w) return -1;
            int i = interval_index(f->ofi_interval, f->n_ofi, PyList_GET_ITEM(w, 0)), made;
            int64_t day, start, updates;
            i128 bid, ask;
            if (i < 0 || get_i64(PyList_GET_ITEM(w, 1), 0, INT64_MAX, &day) < 0 ||
                get_i64(PyList_GET_ITEM(w, 2), T_LO, T_HI, &start) < 0 ||
                get_i64(PyList_GET_ITEM(w, 3), 0, SHARES_LIMIT, &updates) < 0 ||
                get_i128(PyList_GET_ITEM(w, 4), -SUM_LIMIT, SUM_LIMIT, &bid) < 0 ||
                get_i128(PyList_GET_ITEM(w, 5), -SUM_LIMIT, SUM_LIMIT, &ask) < 0)
                return -1;
            OfiWindow *window = ofi_window(&s->ofi[i], day, start, &made);
            if (!window) return -1;
            window->updates = updates;
            window->bid_flow = bid;
            window->ask_flow = ask;
        }
        if (!(o = item_of(saved, "closed")) || !fixed_list(o, -1)) return -1;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(o); j++) {
            PyObject *pair = fixed_list(PyList_GET_ITEM(o, j), 2);
            int i = pair ? interval_index(f->ofi_interval, f->n_ofi, PyList_GET_ITEM(pair, 0)) : -1;
            if (i < 0 || get_i64(PyList_GET_ITEM(pair, 1), T_LO, T_HI, &s->ofi[i].closed) < 0) return -1;
            s->ofi[i].has_closed = 1;
        }
    }
    return 0;
}

static int restore_liq(Flow *f, PyObject *data) {
    PyObject *clock = item_of(data, "complete_before_ns"), *symbols;
    if (!clock || set_clock(clock, &f->l_clock_obj, &f->l_clock) < 0) return -1;
    if (!(symbols = item_of(data, "symbols")) || !fixed_list(symbols, -1)) return -1;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(symbols); k++) {
        PyObject *saved = PyList_GET_ITEM(symbols, k), *o;
        Sym *s = restored_sym(f, saved);
        if (!s) return -1;
        s->in_liq = 1;
        if (!(o = item_of(saved, "trading_date")) || get_i64(o, 0, INT64_MAX, &s->l_day) < 0) return -1;
        if (!(o = item_of(saved, "top")) || !fixed_list(o, 2)) return -1;
        if (get_i64(PyList_GET_ITEM(o, 0), 0, PRICE_LIMIT, &s->l_bid_px) < 0 ||
            get_i64(PyList_GET_ITEM(o, 1), 0, PRICE_LIMIT, &s->l_ask_px) < 0)
            return -1;
        if (!(o = item_of(saved, "depth"))) return -1;
        if (o != Py_None) {
            if (!fixed_list(o, 2) || get_i64(PyList_GET_ITEM(o, 0), 0, SHARES_LIMIT, &s->l_bid_depth) < 0 ||
                get_i64(PyList_GET_ITEM(o, 1), 0, SHARES_LIMIT, &s->l_ask_depth) < 0)
                return -1;
            s->l_has_depth = 1;
        }
        if (!(o = item_of(saved, "tracks")) || !fixed_list(o, -1)) return -1;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(o); j++) {
            PyObject *entry = fixed_list(PyList_GET_ITEM(o, j), 3), *windows;
            int i = entry ? interval_index(f->liq_interval, f->n_liq, PyList_GET_ITEM(entry, 0)) : -1;
            if (i < 0) return -1;
            LiqTrack *track = &s->liq[i];
            PyObject *t = PyList_GET_ITEM(entry, 1);
            if (t != Py_None) {
                if (get_i64(t, T_LO, T_HI, &track->t) < 0) return -1;
                track->has_t = 1;
            }
            if (!(windows = fixed_list(PyList_GET_ITEM(entry, 2), -1))) return -1;
            for (Py_ssize_t m = 0; m < PyList_GET_SIZE(windows); m++) {
                PyObject *w = fixed_list(PyList_GET_ITEM(windows, m), 10);
                if (!w) return -1;
                LiqWindow v;
                PyObject *bps = PyList_GET_ITEM(w, 6);
                if (get_i64(PyList_GET_ITEM(w, 0), T_LO, T_HI, &v.start) < 0 ||
                    get_i64(PyList_GET_ITEM(w, 1), 0, INT64_MAX, &v.day) < 0 ||
                    get_i64(PyList_GET_ITEM(w, 2), 0, SHARES_LIMIT, &v.updates) < 0 ||
                    get_i64(PyList_GET_ITEM(w, 3), 0, SHARES_LIMIT, &v.depth_updates) < 0 ||
                    get_i64(PyList_GET_ITEM(w, 4), 0, SHARES_LIMIT, &v.two_sided) < 0 ||
                    get_i128(PyList_GET_ITEM(w, 5), -SUM_LIMIT, SUM_LIMIT, &v.spread) < 0 ||
                    get_i64(PyList_GET_ITEM(w, 7), 0, SHARES_LIMIT, &v.depth_ns) < 0 ||
                    get_i128(PyList_GET_ITEM(w, 8), 0, SUM_LIMIT, &v.bid) < 0 ||
                    get_i128(PyList_GET_ITEM(w, 9), 0, SUM_LIMIT, &v.ask) < 0)
                    return -1;
                if (!PyFloat_CheckExact(bps)) return overflow("a non-float basis point sum");
                v.bps = PyFloat_AS_DOUBLE(bps);
                LiqWindow *window = liq_find(track, v.start);
                if (!window && !(window = liq_make(track, v.start, v.day))) return -1;
                *window = v;
            }
        }
        if (!(o = item_of(saved, "closed")) || !fixed_list(o, -1)) return -1;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(o); j++) {
            PyObject *pair = fixed_list(PyList_GET_ITEM(o, j), 2);
            int i = pair ? interval_index(f->liq_interval, f->n_liq, PyList_GET_ITEM(pair, 0)) : -1;
            if (i < 0 || get_i64(PyList_GET_ITEM(pair, 1), T_LO, T_HI, &s->liq[i].closed) < 0) return -1;
            s->liq[i].has_closed = 1;
        }
    }
    return 0;
}

/* restore(ofi snapshot, liquidity snapshot) into a new Flow (checked by the caller as the Python
   cores check them); OverflowError when a value is beyond the C ranges */
static PyObject *Flow_restore(Flow *f, PyObject *args) {
    PyObject *ofi, *liq;
    if (!PyArg_ParseTuple(args, "OO", &ofi, &liq)) return NULL;
    if (f->n_syms || f->o_clock_obj != Py_None || f->l_clock_obj != Py_None) {
        PyErr_SetString(PyExc_RuntimeError, "restore into a new Flow only");
        return NULL;
    }
    if (restore_ofi(f, ofi) < 0 || restore_liq(f, liq) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- the type */

static int read_intervals(PyObject *tuple, int *n, int64_t **intervals, int64_t **sizes) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < 1) {
        PyErr_SetString(PyExc_ValueError, "intervals must be a non-empty tuple");
        return -1;
    }
    *n = (int)PyTuple_GET_SIZE(tuple);
    *intervals = PyMem_Calloc((size_t)*n, sizeof(int64_t));
    *sizes = PyMem_Calloc((size_t)*n, sizeof(int64_t));
    if (!*intervals || !*sizes) return PyErr_NoMemory(), -1;
    for (int i = 0; i < *n; i++) {
        if (get_i64(PyTuple_GET_ITEM(tuple, i), 1, SIZE_LIMIT / NS_PER_S, &(*intervals)[i]) < 0) return -1;
        (*sizes)[i] = (*intervals)[i] * NS_PER_S;
    }
    return 0;
}

static int Flow_init(Flow *f, PyObject *args, PyObject *kwds) {
    PyObject *ofi_intervals, *liq_intervals, *ofi_row, *liq_row;
    long long levels;
    if (f->by_raw) {
        PyErr_SetString(PyExc_RuntimeError, "Flow is set up once");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOLO!O!", &ofi_intervals, &liq_intervals, &levels, &PyType_Type, &ofi_row,
                          &PyType_Type, &liq_row))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)ofi_row, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)liq_row, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "the row types must be tuples");
        return -1;
    }
    f->depth_levels = levels;
    f->ofi_row = Py_NewRef(ofi_row);
    f->liq_row = Py_NewRef(liq_row);
    f->o_clock_obj = Py_NewRef(Py_None);
    f->l_clock_obj = Py_NewRef(Py_None);
    f->o_clock = f->l_clock = -1;
    f->by_raw = PyDict_New();
    f->by_name = PyDict_New();
    if (!f->by_raw || !f->by_name) return -1;
    if (read_intervals(ofi_intervals, &f->n_ofi, &f->ofi_interval, &f->ofi_size) < 0) return -1;
    if (read_intervals(liq_intervals, &f->n_liq, &f->liq_interval, &f->liq_size) < 0) return -1;
    return 0;
}

static void Flow_dealloc(Flow *f) {
    for (Py_ssize_t k = 0; k < f->n_syms; k++) sym_free(f, f->syms[k]);
    PyMem_Free(f->syms);
    PyMem_Free(f->ofi_interval);
    PyMem_Free(f->ofi_size);
    PyMem_Free(f->liq_interval);
    PyMem_Free(f->liq_size);
    Py_XDECREF(f->ofi_row);
    Py_XDECREF(f->liq_row);
    Py_XDECREF(f->by_raw);
    Py_XDECREF(f->by_name);
    Py_XDECREF(f->o_clock_obj);
    Py_XDECREF(f->l_clock_obj);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyMethodDef Flow_methods[] = {
    {"record", (PyCFunction)Flow_record, METH_VARARGS,
     "record(top_of_book rows, depth_snapshots rows): fold a record's rows in (OverflowError, nothing "
     "changed: a value beyond the C ranges)."},
    {"advance", (PyCFunction)Flow_advance, METH_O,
     "advance(complete_before_ns) -> (ofi rows, liquidity rows, late updates since the last call)."},
    {"close_all", (PyCFunction)Flow_close_all, METH_NOARGS, "close_all() -> (ofi rows, liquidity rows, late)."},
    {"next_timer_ms", (PyCFunction)Flow_next_timer_ms, METH_NOARGS, "The event-time timer (ms) or None."},
    {"snapshot", (PyCFunction)Flow_snapshot, METH_NOARGS, "(OFI snapshot, liquidity snapshot) as the cores'."},
    {"restore", (PyCFunction)Flow_restore, METH_VARARGS, "restore(OFI snapshot, liquidity snapshot)."},
    {NULL},
};

static PyTypeObject FlowType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "itchflow.analytics._cflow.Flow",
    .tp_basicsize = sizeof(Flow),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Flow(ofi intervals, liquidity intervals, depth levels, OfiRow, LiquidityRow): OFI and "
              "liquidity of one key in C (see itchflow/analytics/flow_stage.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Flow_init,
    .tp_dealloc = (destructor)Flow_dealloc,
    .tp_methods = Flow_methods,
};

/* ---------------------------------------------------------------- RowBinary of the rows */
/*
 * ofi_rowbinary(rows) and liquidity_rowbinary(rows): the ClickHouse RowBinary of a list of OfiRow /
 * LiquidityRow, byte for byte what itchflow.sinks.flow_outputs.ofi_rows / liquidity_rows write (the
 * reference). They take exactly what those rows hold: tuples of 9 / 15 items, str or bytes venues
 * and symbols, ints in each column's range, floats, ints or None in the Nullable(Float64) columns.
 * Anything else raises (TypeError, OverflowError, UnicodeEncodeError) before any output, and the
 * caller encodes the rows in Python, which writes them or raises its own error.
 */

typedef struct {
    uc *data;
    size_t size, capacity;
} Buffer;

static int reserve(Buffer *b, size_t more) {
    if (b->size + more <= b->capacity) return 0;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + more) capacity *= 2;
    uc *data = PyMem_Realloc(b->data, capacity);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static inline void put_le(Buffer *b, uint64_t v, int bytes) {
    uc *p = b->data + b->size;
    for (int i = 0; i < bytes; i++, v >>= 8) p[i] = (uc)v;
    b->size += (size_t)bytes;
}

/* a String: LEB128 length, then the UTF-8 bytes of a str or the bytes */
static int put_string(Buffer *b, PyObject *o) {
    const char *data;
    Py_ssize_t n;
    if (PyUnicode_CheckExact(o)) {
        data = PyUnicode_AsUTF8AndSize(o, &n);
        if (!data) return -1;
    } else if (PyBytes_CheckExact(o)) {
        data = PyBytes_AS_STRING(o);
        n = PyBytes_GET_SIZE(o);
    } else {
        PyErr_SetString(PyExc_TypeError, "a venue or symbol that is neither str nor bytes");
        return -1;
    }
    if (reserve(b, 10 + (size_t)n) < 0) return -1;
    uint64_t len = (uint64_t)n;
    while (len >= 0x80) {
        b->data[b->size++] = (uc)((len & 0x7F) | 0x80);
        len >>= 7;
    }
    b->data[b->size++] = (uc)len;
    memcpy(b->data + b->size, data, (size_t)n);
    b->size += (size_t)n;
    return 0;
}

/* a signed integer column of `bytes` bytes: an int in its range */
static int put_signed(Buffer *b, PyObject *o, int bytes) {
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "a non-int integer column");
        return -1;
    }
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    int64_t limit = bytes == 8 ? INT64_MAX : ((int64_t)1 << (8 * bytes - 1)) - 1;
    if (v > limit || v < -limit - 1) return overflow("a RowBinary integer");
    put_le(b, (uint64_t)v, bytes);
    return 0;
}

/* an unsigned integer column of `bytes` bytes: an int in its range */
static int put_unsigned(Buffer *b, PyObject *o, int bytes) {
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "a non-int integer column");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(o);  /* OverflowError below 0 or above 2^64-1 */
    if (v == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    if (bytes < 8 && v >> (8 * bytes)) return overflow("a RowBinary integer");
    put_le(b, (uint64_t)v, bytes);
    return 0;
}

/* a Nullable(Float64): 1 for None, else 0 and the double (as struct packs it: a float, or an int
 * converted as float(int) converts it) */
static int put_nullable(Buffer *b, PyObject *o) {
    if (o == Py_None) {
        b->data[b->size++] = 1;
        return 0;
    }
    double v;
    if (PyFloat_CheckExact(o))
        v = PyFloat_AS_DOUBLE(o);
    else if (PyLong_Check(o)) {
        v = PyLong_AsDouble(o);
        if (v == -1.0 && PyErr_Occurred()) return -1;
    } else {
        PyErr_SetString(PyExc_TypeError, "a Nullable(Float64) that is neither a float, an int nor None");
        return -1;
    }
    b->data[b->size++] = 0;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(b, bits, 8);
    return 0;
}

/* venue, trading_date, symbol, interval_s, window_start_ns of a row */
static int put_key(Buffer *b, PyObject **items) {
    if (put_string(b, items[0]) < 0 || reserve(b, 2) < 0 || put_unsigned(b, items[1], 2) < 0 ||
        put_string(b, items[2]) < 0)
        return -1;
    if (reserve(b, 12) < 0 || put_unsigned(b, items[3], 4) < 0 || put_signed(b, items[4], 8) < 0) return -1;
    return 0;
}

static PyObject *rowbinary(PyObject *rows, Py_ssize_t width, int liquidity) {
    PyObject *seq = PySequence_Fast(rows, "the rows must be iterable");
    if (!seq) return NULL;
    Buffer b = {NULL, 0, 0};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **all = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *row = all[k];
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width) {
            PyErr_Format(PyExc_TypeError, "a row must be a tuple of %zd items", width);
            goto fail;
        }
        PyObject **items = &PyTuple_GET_ITEM(row, 0);
        if (put_key(&b, items) < 0) goto fail;
        if (!liquidity) {
            if (reserve(&b, 28) < 0 || put_signed(&b, items[5], 8) < 0 || put_signed(&b, items[6], 8) < 0 ||
                put_signed(&b, items[7], 8) < 0 || put_unsigned(&b, items[8], 4) < 0)
                goto fail;
            continue;
        }
        /* spread, spread_bps, two_sided_ns, bid_depth, ask_depth, depth_imbalance, depth_ns,
         * depth_levels, updates, depth_updates */
        if (reserve(&b, 5 * 9 + 2 * 8 + 2 + 4 + 4) < 0 || put_nullable(&b, items[5]) < 0 ||
            put_nullable(&b, items[6]) < 0 || put_unsigned(&b, items[7], 8) < 0 || put_nullable(&b, items[8]) < 0 ||
            put_nullable(&b, items[9]) < 0 || put_nullable(&b, items[10]) < 0 || put_unsigned(&b, items[11], 8) < 0 ||
            put_unsigned(&b, items[12], 2) < 0 || put_unsigned(&b, items[13], 4) < 0 ||
            put_unsigned(&b, items[14], 4) < 0)
            goto fail;
    }
    Py_DECREF(seq);
    PyObject *out = PyBytes_FromStringAndSize((const char *)b.data, (Py_ssize_t)b.size);
    PyMem_Free(b.data);
    return out;
fail:
    Py_DECREF(seq);
    PyMem_Free(b.data);
    return NULL;
}

static PyObject *py_ofi_rowbinary(PyObject *self, PyObject *rows) { return rowbinary(rows, 9, 0); }

static PyObject *py_liquidity_rowbinary(PyObject *self, PyObject *rows) { return rowbinary(rows, 15, 1); }

/* true_divide(a, b): Python's a / b as the C path computes it (for the tests) */
static PyObject *py_true_divide(PyObject *self, PyObject *args) {
    PyObject *a, *b;
    if (!PyArg_ParseTuple(args, "OO", &a, &b)) return NULL;
    i128 x, y;
    if (get_i128(a, -((i128)1 << 126), (i128)1 << 126, &x) < 0 ||
        get_i128(b, -((i128)1 << 126), (i128)1 << 126, &y) < 0)
        return NULL;
    if (!y) {
        PyErr_SetString(PyExc_ZeroDivisionError, "division by zero");
        return NULL;
    }
    return py_divide(x, y);
}

static PyMethodDef module_methods[] = {
    {"true_divide", py_true_divide, METH_VARARGS, "a / b of ints as the C path divides them (tests)."},
    {"ofi_rowbinary", py_ofi_rowbinary, METH_O,
     "ofi_rowbinary(rows) -> the RowBinary of OfiRow tuples, as flow_outputs.ofi_rows writes it."},
    {"liquidity_rowbinary", py_liquidity_rowbinary, METH_O,
     "liquidity_rowbinary(rows) -> the RowBinary of LiquidityRow tuples, as flow_outputs.liquidity_rows "
     "writes it."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cflow", "itchflow's OFI and liquidity in C.", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__cflow(void) {
    if (PyType_Ready(&FlowType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Flow", (PyObject *)&FlowType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
