/*
 * itchflow.book._cbook: the order-level book of itchflow/book/core.py in C, plus the order-book
 * stage's per-run event loop (apply_events; its Python twin is itchflow/book/columns.py, and
 * itchflow/book/engine.py puts either behind the stage's one interface).
 *
 * The Python OrderBook is the reference: every rule here (unknown references, overfills,
 * duplicate references, invalid events, time priority, trade prints) is the one core.py documents,
 * and tests/unit/test_native_book.py checks both against each other event by event on random
 * feeds. Built by `itchflow setup` (itchflow/extensions.py) with the system C compiler; without it
 * the pipeline runs the Python book.
 *
 * Data structures:
 *   - orders: a slab of Order records; live ones are chained oldest first (time priority, what
 *     to_snapshot lists), free ones in a free list;
 *   - an open-addressing hash table (linear probing, backward-shift deletion) reference -> slab index;
 *   - per side a price-sorted array of levels (price, shares, orders), ascending: the best bid is the
 *     last element, the best ask the first. A level appears or empties rarely compared with the
 *     events that only change its totals, so the memmove on insert/remove is cheap.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { C_A, C_F, C_E, C_C, C_X, C_D, C_U, C_P, C_Q, N_COUNTS };
static const char COUNT_TYPES[N_COUNTS] = {'A', 'F', 'E', 'C', 'X', 'D', 'U', 'P', 'Q'};

/* EventKind codes and flags of itchflow/normalize/events.py (data contract: never renumbered) */
enum { K_ADDED = 1, K_EXECUTED = 2, K_CANCELLED = 3, K_DELETED = 4, K_REPLACED = 5, K_TRADE = 6, K_CROSS = 7 };
enum { FLAG_PRINTABLE = 1, FLAG_HAS_PRICE = 2 };

typedef struct {
    uint64_t ref;
    int64_t price;
    int64_t shares;
    int32_t prev, next; /* time priority; `next` links the free list */
    uint8_t is_bid;
} Order;

typedef struct {
    int64_t price;
    int64_t shares;
    int64_t orders;
} Level;

typedef struct {
    Level *items;
    Py_ssize_t len, cap;
} Side;

typedef struct {
    PyObject_HEAD
    PyObject *venue;
    PyObject *symbol;
    Order *slab;
    int32_t slab_len, slab_cap, free_head, head, tail;
    Py_ssize_t live;
    int32_t *table; /* slot -> slab index, -1 empty */
    uint64_t mask;  /* table size - 1 (a power of two) */
    Side bids, asks;
    int64_t counts[N_COUNTS];
    PyObject *extra_counts; /* message counts of other types (from a snapshot), or NULL */
    int64_t unknown_refs, overfills, duplicate_refs, invalid_messages, trade_count, traded_shares;
    int has_last;
    int64_t last_price, last_shares, last_ts;
    uint64_t last_match;
    /* the depth the stage last emitted (BookStage.depth for this book): bids best first, then asks */
    Level *shown;
    Py_ssize_t shown_bids, shown_asks, shown_cap;
} Book;

/* ------------------------------------------------------------------ hash table */

static inline uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline Py_ssize_t find_slot(const Book *b, uint64_t ref) {
    uint64_t s = mix(ref) & b->mask;
    for (;;) {
        int32_t i = b->table[s];
        if (i < 0) return -1;
        if (b->slab[i].ref == ref) return (Py_ssize_t)s;
        s = (s + 1) & b->mask;
    }
}

static inline Order *find_order(const Book *b, uint64_t ref) {
    Py_ssize_t s = find_slot(b, ref);
    return s < 0 ? NULL : &b->slab[b->table[s]];
}

static void table_put(Book *b, int32_t index) {
    uint64_t s = mix(b->slab[index].ref) & b->mask;
    while (b->table[s] >= 0) s = (s + 1) & b->mask;
    b->table[s] = index;
}

static int table_resize(Book *b, uint64_t size) {
    int32_t *table = PyMem_Malloc(size * sizeof(int32_t));
    if (!table) {
        PyErr_NoMemory();
        return -1;
    }
    memset(table, 0xff, size * sizeof(int32_t));
    PyMem_Free(b->table);
    b->table = table;
    b->mask = size - 1;
    for (int32_t i = b->head; i >= 0; i = b->slab[i].next) table_put(b, i);
    return 0;
}

static void table_delete(Book *b, Py_ssize_t slot) {
    uint64_t i = (uint64_t)slot, j = i;
    b->table[i] = -1;
    for (;;) {
        j = (j + 1) & b->mask;
        int32_t index = b->table[j];
        if (index < 0) return;
        uint64_t k = mix(b->slab[index].ref) & b->mask;
        /* the entry at j may move to the hole at i unless its home k lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            b->table[i] = index;
            b->table[j] = -1;
            i = j;
        }
    }
}

/* ------------------------------------------------------------------ orders (slab + time priority) */

static int32_t new_order(Book *b, uint64_t ref, int is_bid, int64_t price, int64_t shares) {
    if ((uint64_t)(b->live + 1) * 2 > b->mask + 1) {
        if (table_resize(b, (b->mask + 1) * 2) < 0) return -1;
    }
    int32_t index;
    if (b->free_head >= 0) {
        index = b->free_head;
        b->free_head = b->slab[index].next;
    } else {
        if (b->slab_len == b->slab_cap) {
            if (b->slab_cap >= INT32_MAX / 2) {
                PyErr_SetString(PyExc_OverflowError, "too many resting orders in one book");
                return -1;
            }
            int32_t cap = b->slab_cap ? b->slab_cap * 2 : 64;
            Order *slab = PyMem_Realloc(b->slab, (size_t)cap * sizeof(Order));
            if (!slab) {
                PyErr_NoMemory();
                return -1;
            }
            b->slab = slab;
            b->slab_cap = cap;
        }
        index = b->slab_len++;
    }
    Order *o = &b->slab[index];
    o->ref = ref;
    o->price = price;
    o->shares = shares;
    o->is_bid = (uint8_t)is_bid;
    o->next = -1;
    o->prev = b->tail;
    if (b->tail >= 0)
        b->slab[b->tail].next = index;
    else
        b->head = index;
    b->tail = index;
    b->live++;
    table_put(b, index);
    return index;
}

static void drop_order(Book *b, Py_ssize_t slot) {
    int32_t index = b->table[slot];
    Order *o = &b->slab[index];
    table_delete(b, slot);
    if (o->prev >= 0)
        b->slab[o->prev].next = o->next;
    else
        b->head = o->next;
    if (o->next >= 0)
        b->slab[o->next].prev = o->prev;
    else
        b->tail = o->prev;
    o->next = b->free_head;
    b->free_head = index;
    b->live--;
}

/* ------------------------------------------------------------------ levels */

static inline Py_ssize_t lower_bound(const Side *side, int64_t price) {
    Py_ssize_t lo = 0, hi = side->len;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (side->items[mid].price < price)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int join_level(Side *side, int64_t price, int64_t shares) {
    Py_ssize_t i = lower_bound(side, price);
    if (i < side->len && side->items[i].price == price) {
        side->items[i].shares += shares;
        side->items[i].orders += 1;
        return 0;
    }
    if (side->len == side->cap) {
        Py_ssize_t cap = side->cap ? side->cap * 2 : 16;
        Level *items = PyMem_Realloc(side->items, (size_t)cap * sizeof(Level));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        side->items = items;
        side->cap = cap;
    }
    memmove(&side->items[i + 1], &side->items[i], (size_t)(side->len - i) * sizeof(Level));
    side->items[i].price = price;
    side->items[i].shares = shares;
    side->items[i].orders = 1;
    side->len++;
    return 0;
}

static void leave_level(Side *side, int64_t price, int64_t shares) {
    Py_ssize_t i = lower_bound(side, price);
    if (i >= side->len || side->items[i].price != price) return; /* cannot happen: orders have levels */
    Level *level = &side->items[i];
    level->shares -= shares;
    level->orders -= 1;
    if (level->orders == 0) {
        memmove(&side->items[i], &side->items[i + 1], (size_t)(side->len - i - 1) * sizeof(Level));
        side->len--;
    }
}

static inline Side *side_of(Book *b, int is_bid) { return is_bid ? &b->bids : &b->asks; }

/* ------------------------------------------------------------------ the primitives of core.py */

static int book_insert(Book *b, uint64_t ref, int is_bid, int64_t price, int64_t shares) {
    if (shares <= 0 || price <= 0) {
        b->invalid_messages++;
        return 0;
    }
    Py_ssize_t slot = find_slot(b, ref);
    if (slot >= 0) {
        Order *old = &b->slab[b->table[slot]];
        b->duplicate_refs++;
        leave_level(side_of(b, old->is_bid), old->price, old->shares);
        drop_order(b, slot);
    }
    if (join_level(side_of(b, is_bid), price, shares) < 0) return -1;
    return new_order(b, ref, is_bid, price, shares) < 0 ? -1 : 0;
}

/* Take shares off an order (removing it when nothing remains). 1 and the order's price when it was
 * found, 0 when unknown (or shares non-positive: invalid). */
static int book_reduce(Book *b, uint64_t ref, int64_t shares, int64_t *price) {
    if (shares <= 0) {
        b->invalid_messages++;
        return 0;
    }
    Py_ssize_t slot = find_slot(b, ref);
    if (slot < 0) {
        b->unknown_refs++;
        return 0;
    }
    Order *o = &b->slab[b->table[slot]];
    *price = o->price;
    Side *side = side_of(b, o->is_bid);
    if (shares < o->shares) {
        o->shares -= shares; /* same entry: keeps its time priority */
        Py_ssize_t i = lower_bound(side, o->price);
        side->items[i].shares -= shares;
    } else {
        if (shares > o->shares) b->overfills++;
        leave_level(side, o->price, o->shares);
        drop_order(b, slot);
    }
    return 1;
}

static void book_delete(Book *b, uint64_t ref) {
    b->counts[C_D]++;
    Py_ssize_t slot = find_slot(b, ref);
    if (slot < 0) {
        b->unknown_refs++;
        return;
    }
    Order *o = &b->slab[b->table[slot]];
    leave_level(side_of(b, o->is_bid), o->price, o->shares);
    drop_order(b, slot);
}

static int book_replace(Book *b, uint64_t ref, uint64_t new_ref, int64_t price, int64_t shares) {
    b->counts[C_U]++;
    Py_ssize_t slot = find_slot(b, ref);
    if (slot < 0) {
        b->unknown_refs++;
        return 0;
    }
    Order *o = &b->slab[b->table[slot]];
    int is_bid = o->is_bid;
    leave_level(side_of(b, is_bid), o->price, o->shares);
    drop_order(b, slot);
    return book_insert(b, new_ref, is_bid, price, shares);
}

static inline void book_record(Book *b, int64_t price, int64_t shares, int64_t ts, uint64_t match) {
    b->has_last = 1;
    b->last_price = price;
    b->last_shares = shares;
    b->last_ts = ts;
    b->last_match = match;
    b->trade_count++;
    b->traded_shares += shares;
}

/* side character -> is_bid (1), ask (0), invalid (-1) */
static int side_code(PyObject *side) {
    if (!PyUnicode_Check(side) || PyUnicode_GET_LENGTH(side) != 1) return -1;
    Py_UCS4 c = PyUnicode_READ_CHAR(side, 0);
    return c == 'B' ? 1 : (c == 'S' ? 0 : -1);
}

/* ------------------------------------------------------------------ type plumbing */

static void Book_clear_data(Book *b) {
    PyMem_Free(b->slab);
    PyMem_Free(b->table);
    PyMem_Free(b->bids.items);
    PyMem_Free(b->asks.items);
    b->slab = NULL;
    b->table = NULL;
    b->bids.items = b->asks.items = NULL;
}

static void Book_dealloc(Book *b) {
    Book_clear_data(b);
    PyMem_Free(b->shown);
    Py_XDECREF(b->venue);
    Py_XDECREF(b->symbol);
    Py_XDECREF(b->extra_counts);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *Book_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Book *b = (Book *)type->tp_alloc(type, 0);
    if (!b) return NULL;
    b->free_head = b->head = b->tail = -1;
    b->venue = PyUnicode_FromString("");
    b->symbol = PyUnicode_FromString("");
    b->table = PyMem_Malloc(16 * sizeof(int32_t));
    if (!b->venue || !b->symbol || !b->table) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    memset(b->table, 0xff, 16 * sizeof(int32_t));
    b->mask = 15;
    return (PyObject *)b;
}

static int Book_init(Book *b, PyObject *args, PyObject *kwds) {
    static char *names[] = {"symbol", "venue", NULL};
    PyObject *symbol = NULL, *venue = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|UU", names, &symbol, &venue)) return -1;
    if (symbol) Py_SETREF(b->symbol, Py_NewRef(symbol));
    if (venue) Py_SETREF(b->venue, Py_NewRef(venue));
    return 0;
}

/* ------------------------------------------------------------------ primitive methods (core.py API) */

static PyObject *Book_add_order(Book *b, PyObject *args, PyObject *kwds) {
    static char *names[] = {"reference", "side", "price", "shares", "attributed", NULL};
    unsigned long long ref;
    PyObject *side;
    long long price, shares;
    int attributed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KOLL|$p", names, &ref, &side, &price, &shares, &attributed))
        return NULL;
    b->counts[attributed ? C_F : C_A]++;
    int code = side_code(side);
    if (code < 0) {
        b->invalid_messages++;
        Py_RETURN_NONE;
    }
    if (book_insert(b, ref, code, price, shares) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Book_execute_order(Book *b, PyObject *args, PyObject *kwds) {
    static char *names[] = {"reference", "shares", "timestamp", "match_number", NULL};
    unsigned long long ref, match = 0;
    long long shares, ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KLL|K", names, &ref, &shares, &ts, &match)) return NULL;
    b->counts[C_E]++;
    int64_t price;
    if (book_reduce(b, ref, shares, &price)) book_record(b, price, shares, ts, match);
    Py_RETURN_NONE;
}

static PyObject *Book_execute_order_at_price(Book *b, PyObject *args, PyObject *kwds) {
    static char *names[] = {"reference", "shares", "price", "timestamp", "match_number", "printable", NULL};
    unsigned long long ref, match = 0;
    long long shares, price, ts;
    int printable = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KLLL|K$p", names, &ref, &shares, &price, &ts, &match,
                                     &printable))
        return NULL;
    b->counts[C_C]++;
    int64_t ignored;
    book_reduce(b, ref, shares, &ignored);
    if (printable && shares > 0) book_record(b, price, shares, ts, match);
    Py_RETURN_NONE;
}

static PyObject *Book_cancel_order(Book *b, PyObject *args) {
    unsigned long long ref;
    long long shares;
    if (!PyArg_ParseTuple(args, "KL", &ref, &shares)) return NULL;
    b->counts[C_X]++;
    int64_t ignored;
    book_reduce(b, ref, shares, &ignored);
    Py_RETURN_NONE;
}

static PyObject *Book_delete_order(Book *b, PyObject *arg) {
    unsigned long long ref = PyLong_AsUnsignedLongLong(arg);
    if (ref == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    book_delete(b, ref);
    Py_RETURN_NONE;
}

static PyObject *Book_replace_order(Book *b, PyObject *args) {
    unsigned long long ref, new_ref;
    long long price, shares;
    if (!PyArg_ParseTuple(args, "KKLL", &ref, &new_ref, &price, &shares)) return NULL;
    if (book_replace(b, ref, new_ref, price, shares) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Book_record_trade(Book *b, PyObject *args, PyObject *kwds) {
    static char *names[] = {"price", "shares", "timestamp", "match_number", "cross", NULL};
    long long price, shares, ts;
    unsigned long long match = 0;
    int cross = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLL|K$p", names, &price, &shares, &ts, &match, &cross))
        return NULL;
    b->counts[cross ? C_Q : C_P]++;
    if (shares > 0) book_record(b, price, shares, ts, match);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ queries */

static PyObject *level_columns(const Side *side, Py_ssize_t start, Py_ssize_t stop, int reverse) {
    Py_ssize_t n = stop - start;
    PyObject *prices = PyList_New(n), *shares = PyList_New(n), *orders = PyList_New(n);
    if (!prices || !shares || !orders) goto fail;
    for (Py_ssize_t k = 0; k < n; k++) {
        const Level *level = &side->items[reverse ? stop - 1 - k : start + k];
        PyObject *p = PyLong_FromLongLong(level->price), *s = PyLong_FromLongLong(level->shares),
                 *o = PyLong_FromLongLong(level->orders);
        if (!p || !s || !o) {
            Py_XDECREF(p);
            Py_XDECREF(s);
            Py_XDECREF(o);
            goto fail;
        }
        PyList_SET_ITEM(prices, k, p);
        PyList_SET_ITEM(shares, k, s);
        PyList_SET_ITEM(orders, k, o);
    }
    return Py_BuildValue("(NNN)", prices, shares, orders);
fail:
    Py_XDECREF(prices);
    Py_XDECREF(shares);
    Py_XDECREF(orders);
    return NULL;
}

/* the six depth lists of bid levels start .. stop (reversed: best first) and ask levels 0 .. na */
static PyObject *six_columns(const Side *bid_side, Py_ssize_t start, Py_ssize_t stop, int reverse,
                             const Side *ask_side, Py_ssize_t na) {
    PyObject *bids = level_columns(bid_side, start, stop, reverse);
    if (!bids) return NULL;
    PyObject *asks = level_columns(ask_side, 0, na, 0);
    if (!asks) {
        Py_DECREF(bids);
        return NULL;
    }
    PyObject *out = PyList_New(6);
    if (out) {
        for (int k = 0; k < 3; k++) {
            PyList_SET_ITEM(out, k, Py_NewRef(PyTuple_GET_ITEM(bids, k)));
            PyList_SET_ITEM(out, 3 + k, Py_NewRef(PyTuple_GET_ITEM(asks, k)));
        }
    }
    Py_DECREF(bids);
    Py_DECREF(asks);
    return out;
}

/* depth_columns(levels=-1): [bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders],
 * best level first, the best `levels` per side (every level when negative). */
static PyObject *Book_depth_columns(Book *b, PyObject *args) {
    Py_ssize_t levels = -1;
    if (!PyArg_ParseTuple(args, "|n", &levels)) return NULL;
    Py_ssize_t nb = b->bids.len, na = b->asks.len;
    if (levels >= 0) {
        if (nb > levels) nb = levels;
        if (na > levels) na = levels;
    }
    return six_columns(&b->bids, b->bids.len - nb, b->bids.len, 1, &b->asks, na);
}

/* make the shown depth hold n levels */
static int shown_reserve(Book *b, Py_ssize_t n) {
    if (n <= b->shown_cap) return 0;
    Level *items = PyMem_Realloc(b->shown, (size_t)n * sizeof(Level));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    b->shown = items;
    b->shown_cap = n;
    return 0;
}

/* show_depth(levels) -> bool: whether the best `levels` levels per side differ from the depth last
 * shown, which then becomes them. BookStage._depth_reason's "depth != self.depth" for this book,
 * without building and dropping six lists of Python ints per batch. */
static PyObject *Book_show_depth(Book *b, PyObject *arg) {
    Py_ssize_t levels = PyLong_AsSsize_t(arg);
    if (levels == -1 && PyErr_Occurred()) return NULL;
    if (levels < 0) levels = 0;
    Py_ssize_t nb = b->bids.len < levels ? b->bids.len : levels, na = b->asks.len < levels ? b->asks.len : levels;
    int changed = nb != b->shown_bids || na != b->shown_asks;
    for (Py_ssize_t k = 0; !changed && k < nb; k++) {
        const Level *now = &b->bids.items[b->bids.len - 1 - k], *was = &b->shown[k];
        changed = now->price != was->price || now->shares != was->shares || now->orders != was->orders;
    }
    for (Py_ssize_t k = 0; !changed && k < na; k++) {
        const Level *now = &b->asks.items[k], *was = &b->shown[nb + k];
        changed = now->price != was->price || now->shares != was->shares || now->orders != was->orders;
    }
    if (!changed) Py_RETURN_FALSE;
    if (shown_reserve(b, nb + na) < 0) return NULL;
    for (Py_ssize_t k = 0; k < nb; k++) b->shown[k] = b->bids.items[b->bids.len - 1 - k];
    if (na) memcpy(&b->shown[nb], b->asks.items, (size_t)na * sizeof(Level));
    b->shown_bids = nb;
    b->shown_asks = na;
    Py_RETURN_TRUE;
}

/* shown_depth() -> the depth last shown as depth_columns gives it (six lists) */
static PyObject *Book_shown_depth(Book *b, PyObject *unused) {
    Side bids = {b->shown, b->shown_bids, b->shown_bids}, asks = {b->shown + b->shown_bids, b->shown_asks, b->shown_asks};
    return six_columns(&bids, 0, bids.len, 0, &asks, asks.len);
}

/* set_shown_depth(columns): the depth last shown, six sequences as shown_depth gives them (a restore) */
static PyObject *Book_set_shown_depth(Book *b, PyObject *columns) {
    PyObject *seq = PySequence_Fast(columns, "the depth is six sequences of ints");
    if (!seq) return NULL;
    PyObject *result = NULL, *cols[6] = {NULL};
    if (PySequence_Fast_GET_SIZE(seq) != 6) {
        PyErr_SetString(PyExc_ValueError, "the depth is six sequences of ints");
        goto done;
    }
    for (int k = 0; k < 6; k++) {
        cols[k] = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, k), "the depth is six sequences of ints");
        if (!cols[k]) goto done;
    }
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(cols[0]), na = PySequence_Fast_GET_SIZE(cols[3]);
    for (int k = 0; k < 3; k++)
        if (PySequence_Fast_GET_SIZE(cols[k]) != nb || PySequence_Fast_GET_SIZE(cols[3 + k]) != na) {
            PyErr_SetString(PyExc_ValueError, "depth columns of one side differ in length");
            goto done;
        }
    if (shown_reserve(b, nb + na) < 0) goto done;
    for (int side = 0; side < 2; side++) {
        Py_ssize_t n = side ? na : nb, at = side ? nb : 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t v[3];
            for (int k = 0; k < 3; k++) {
                v[k] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(cols[3 * side + k], i));
                if (v[k] == -1 && PyErr_Occurred()) goto done;
            }
            b->shown[at + i] = (Level){v[0], v[1], v[2]};
        }
    }
    b->shown_bids = nb;
    b->shown_asks = na;
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < 6; k++) Py_XDECREF(cols[k]);
    Py_DECREF(seq);
    return result;
}

static PyObject *Book_order_values(Book *b, PyObject *arg) {
    unsigned long long ref = PyLong_AsUnsignedLongLong(arg);
    if (ref == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear(); /* a negative or huge reference is simply not in the book */
        Py_RETURN_NONE;
    }
    Order *o = find_order(b, ref);
    if (!o) Py_RETURN_NONE;
    return Py_BuildValue("(LLO)", (long long)o->price, (long long)o->shares, o->is_bid ? Py_True : Py_False);
}

/* export_orders() -> (references, sides str, prices, shares), oldest first */
static PyObject *Book_export_orders(Book *b, PyObject *unused) {
    Py_ssize_t n = b->live;
    PyObject *refs = PyList_New(n), *prices = PyList_New(n), *shares = PyList_New(n), *sides = NULL;
    char *side_chars = PyMem_Malloc((size_t)n + 1);
    if (!refs || !prices || !shares || !side_chars) goto fail;
    Py_ssize_t k = 0;
    for (int32_t i = b->head; i >= 0; i = b->slab[i].next, k++) {
        const Order *o = &b->slab[i];
        PyObject *r = PyLong_FromUnsignedLongLong(o->ref), *p = PyLong_FromLongLong(o->price),
                 *s = PyLong_FromLongLong(o->shares);
        if (!r || !p || !s) {
            Py_XDECREF(r);
            Py_XDECREF(p);
            Py_XDECREF(s);
            goto fail;
        }
        PyList_SET_ITEM(refs, k, r);
        PyList_SET_ITEM(prices, k, p);
        PyList_SET_ITEM(shares, k, s);
        side_chars[k] = o->is_bid ? 'B' : 'S';
    }
    sides = PyUnicode_DecodeLatin1(side_chars, n, NULL);
    PyMem_Free(side_chars);
    if (!sides) goto fail_lists;
    return Py_BuildValue("(NNNN)", refs, sides, prices, shares);
fail:
    PyMem_Free(side_chars);
fail_lists:
    Py_XDECREF(refs);
    Py_XDECREF(prices);
    Py_XDECREF(shares);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return NULL;
}

/* import_orders(references, sides, prices, shares): rebuild a snapshot's orders (oldest first) into an
 * empty book; levels are derived. */
static PyObject *Book_import_orders(Book *b, PyObject *args) {
    PyObject *refs, *sides, *prices, *shares;
    if (!PyArg_ParseTuple(args, "OUOO", &refs, &sides, &prices, &shares)) return NULL;
    if (b->live) {
        PyErr_SetString(PyExc_ValueError, "import_orders needs an empty book");
        return NULL;
    }
    PyObject *r = PySequence_Fast(refs, "references must be a sequence");
    PyObject *p = r ? PySequence_Fast(prices, "prices must be a sequence") : NULL;
    PyObject *s = p ? PySequence_Fast(shares, "shares must be a sequence") : NULL;
    PyObject *result = NULL;
    if (!s) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(r);
    if (PySequence_Fast_GET_SIZE(p) != n || PySequence_Fast_GET_SIZE(s) != n || PyUnicode_GET_LENGTH(sides) != n) {
        PyErr_SetString(PyExc_ValueError, "snapshot order columns differ in length");
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned long long ref = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(r, k));
        long long price = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(p, k));
        long long count = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(s, k));
        if (PyErr_Occurred()) goto done;
        int is_bid = PyUnicode_READ_CHAR(sides, k) == 'B';
        if (find_slot(b, ref) >= 0) {
            PyErr_Format(PyExc_ValueError, "snapshot lists order %llu twice", ref);
            goto done;
        }
        if (join_level(side_of(b, is_bid), price, count) < 0 || new_order(b, ref, is_bid, price, count) < 0)
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(r);
    Py_XDECREF(p);
    Py_XDECREF(s);
    return result;
}

/* integrity_problems() -> [(code, message)], the checks of OrderBook.check_integrity over these
 * structures: crossed/locked, non-positive order shares/prices, levels against the sums of their
 * orders, non-positive level shares, the price index strictly ascending. */
static int add_problem(PyObject *list, const char *code, PyObject *message) {
    if (!message) return -1;
    PyObject *item = Py_BuildValue("(sN)", code, message);
    if (!item) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

static int side_problems(Book *b, PyObject *out, int is_bid) {
    Side *side = side_of(b, is_bid);
    const char *name = is_bid ? "B" : "S";
    Py_ssize_t n = side->len;
    for (Py_ssize_t k = 1; k < n; k++) {
        if (side->items[k - 1].price >= side->items[k].price)
            return add_problem(out, "price_index", PyUnicode_FromFormat("%s price index disagrees with its levels", name));
    }
    int64_t *sums = PyMem_Calloc((size_t)n * 2 + 1, sizeof(int64_t));
    if (!sums) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = 0;
    for (int32_t i = b->head; i >= 0 && rc == 0; i = b->slab[i].next) {
        const Order *o = &b->slab[i];
        if (o->is_bid != is_bid) continue;
        Py_ssize_t at = lower_bound(side, o->price);
        if (at < n && side->items[at].price == o->price) {
            sums[2 * at] += o->shares;
            sums[2 * at + 1] += 1;
        } else {
            rc = add_problem(out, "level_mismatch",
                             PyUnicode_FromFormat("%s level %lld: aggregate None but orders rest there", name,
                                                  (long long)o->price));
        }
    }
    for (Py_ssize_t k = 0; k < n && rc == 0; k++) {
        const Level *level = &side->items[k];
        if (level->shares != sums[2 * k] || level->orders != sums[2 * k + 1]) {
            rc = add_problem(out, "level_mismatch",
                             PyUnicode_FromFormat("%s level %lld: aggregate [%lld, %lld] but orders sum to [%lld, %lld] "
                                                  "(shares, orders)",
                                                  name, (long long)level->price, (long long)level->shares,
                                                  (long long)level->orders, (long long)sums[2 * k],
                                                  (long long)sums[2 * k + 1]));
        } else if (level->shares <= 0) {
            rc = add_problem(out, "non_positive_shares",
                             PyUnicode_FromFormat("%s level %lld has %lld shares", name, (long long)level->price,
                                                  (long long)level->shares));
        }
    }
    PyMem_Free(sums);
    return rc;
}

static PyObject *Book_integrity_problems(Book *b, PyObject *unused) {
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    if (b->bids.len && b->asks.len) {
        int64_t best_bid = b->bids.items[b->bids.len - 1].price, best_ask = b->asks.items[0].price;
        if (best_bid > best_ask) {
            if (add_problem(out, "crossed",
                            PyUnicode_FromFormat("best bid %lld above best ask %lld", (long long)best_bid,
                                                 (long long)best_ask)) < 0)
                goto fail;
        } else if (best_bid == best_ask) {
            if (add_problem(out, "locked", PyUnicode_FromFormat("best bid equals best ask %lld", (long long)best_bid)) <
                0)
                goto fail;
        }
    }
    for (int32_t i = b->head; i >= 0; i = b->slab[i].next) {
        const Order *o = &b->slab[i];
        if (o->shares <= 0 &&
            add_problem(out, "non_positive_shares",
                        PyUnicode_FromFormat("order %llu has %lld shares", (unsigned long long)o->ref,
                                             (long long)o->shares)) < 0)
            goto fail;
        if (o->price <= 0 &&
            add_problem(out, "non_positive_price",
                        PyUnicode_FromFormat("order %llu has price %lld", (unsigned long long)o->ref,
                                             (long long)o->price)) < 0)
            goto fail;
    }
    if (side_problems(b, out, 1) < 0 || side_problems(b, out, 0) < 0) goto fail;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ the stage's event loop */

typedef struct {
    Py_buffer view;
    Py_ssize_t width;
    int held;
} Column;

static inline int64_t load_i64(const Column *c, Py_ssize_t i) {
    int64_t v;
    memcpy(&v, (const char *)c->view.buf + i * 8, 8);
    return v;
}

static inline uint64_t load_u64(const Column *c, Py_ssize_t i) {
    uint64_t v;
    memcpy(&v, (const char *)c->view.buf + i * 8, 8);
    return v;
}

static inline uint8_t load_u8(const Column *c, Py_ssize_t i) { return ((const uint8_t *)c->view.buf)[i]; }

static PyObject *trade_row(int64_t seq, int64_t ts, PyObject *source, uint64_t match, int64_t price, int64_t shares,
                           PyObject *side, long printable) {
    return Py_BuildValue("(LLOKLLOl)", (long long)seq, (long long)ts, source, (unsigned long long)match,
                         (long long)price, (long long)shares, side, printable);
}

/* ------------------------------------------------------------------ encoding top-of-book changes
 *
 * apply_events encodes each top-of-book change as the Python engine does (itchflow/sinks/book_tables.py
 * top_of_book_rows, itchflow/sinks/book_redis.py stream_entries): a RowBinary top_of_book row (key
 * prefix, then seq UInt64, ts_event Int64, bid price Int64, shares UInt64, orders UInt32, ask price,
 * shares, orders; little endian) and an XADD whose head and encoded field names come from the
 * book's IntStreamEncoder. */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int buffer_reserve(Buffer *buf, Py_ssize_t more) {
    if (buf->len + more <= buf->cap) return 0;
    Py_ssize_t cap = buf->cap ? buf->cap : 1024;
    while (cap < buf->len + more) cap *= 2;
    char *data = PyMem_Realloc(buf->data, (size_t)cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static inline void put_bytes(Buffer *buf, const void *data, Py_ssize_t n) {
    memcpy(buf->data + buf->len, data, (size_t)n);
    buf->len += n;
}

static inline void put_le64(Buffer *buf, uint64_t v) {
    for (int k = 0; k < 8; k++) buf->data[buf->len++] = (char)(v >> (8 * k));
}

static inline void put_le32(Buffer *buf, uint32_t v) {
    for (int k = 0; k < 4; k++) buf->data[buf->len++] = (char)(v >> (8 * k));
}

/* decimal text of v into out (at least 21 bytes); its length */
static inline int format_int(char *out, int64_t v) {
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = tmp[--n];
    return len;
}

/* "$<len>\r\n<text>\r\n" */
static inline void put_bulk(Buffer *buf, const char *text, int n) {
    char head[16];
    head[0] = '$';
    int h = 1 + format_int(head + 1, n);
    put_bytes(buf, head, h);
    put_bytes(buf, "\r\n", 2);
    put_bytes(buf, text, n);
    put_bytes(buf, "\r\n", 2);
}

typedef struct {
    const char *prefix; /* RowBinary venue + symbol */
    Py_ssize_t prefix_len;
    const char *head; /* the XADD command up to its entry id */
    Py_ssize_t head_len;
    const char *names[8]; /* encoded field names ("$len\r\nname\r\n") */
    Py_ssize_t name_len[8];
    Py_ssize_t names_len;
    int64_t stream_ms;
    Py_ssize_t changes;
    Buffer rows;
    Buffer command;
    PyObject *entries; /* list of XADD commands */
} Emit;

static int emit_top(Emit *e, int64_t seq, int64_t ts, const int64_t top[6]) {
    if (buffer_reserve(&e->rows, e->prefix_len + 56) < 0) return -1;
    put_bytes(&e->rows, e->prefix, e->prefix_len);
    put_le64(&e->rows, (uint64_t)seq);
    put_le64(&e->rows, (uint64_t)ts);
    put_le64(&e->rows, (uint64_t)top[0]);
    put_le64(&e->rows, (uint64_t)top[1]);
    put_le32(&e->rows, (uint32_t)top[2]);
    put_le64(&e->rows, (uint64_t)top[3]);
    put_le64(&e->rows, (uint64_t)top[4]);
    put_le32(&e->rows, (uint32_t)top[5]);

    int64_t ms = ts / 1000000; /* Python's // : event times are not negative */
    if (ts < 0 && ms * 1000000 != ts) ms -= 1;
    if (ms < e->stream_ms) ms = e->stream_ms; /* event time went backwards: keep the id increasing */
    e->stream_ms = ms;
    e->command.len = 0;
    if (buffer_reserve(&e->command, e->head_len + e->names_len + 9 * 32) < 0) return -1;
    put_bytes(&e->command, e->head, e->head_len);
    char text[48];
    int n = format_int(text, ms);
    text[n++] = '-';
    n += format_int(text + n, seq);
    put_bulk(&e->command, text, n);
    const int64_t values[8] = {top[0], top[1], top[2], top[3], top[4], top[5], seq, ts};
    for (int k = 0; k < 8; k++) {
        put_bytes(&e->command, e->names[k], e->name_len[k]);
        put_bulk(&e->command, text, format_int(text, values[k]));
    }
    PyObject *entry = PyBytes_FromStringAndSize(e->command.data, e->command.len);
    if (!entry) return -1;
    int rc = PyList_Append(e->entries, entry);
    Py_DECREF(entry);
    e->changes++;
    return rc;
}

static int emit_setup(Emit *e, PyObject *spec) {
    PyObject *prefix, *head, *names;
    long long stream_ms;
    memset(e, 0, sizeof(*e));
    if (!PyArg_ParseTuple(spec, "SSO!L", &prefix, &head, &PyTuple_Type, &names, &stream_ms)) return -1;
    if (PyTuple_GET_SIZE(names) != 8) {
        PyErr_SetString(PyExc_ValueError, "emit needs the 8 encoded top-of-book field names");
        return -1;
    }
    e->prefix = PyBytes_AS_STRING(prefix);
    e->prefix_len = PyBytes_GET_SIZE(prefix);
    e->head = PyBytes_AS_STRING(head);
    e->head_len = PyBytes_GET_SIZE(head);
    for (int k = 0; k < 8; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "field names must be bytes");
            return -1;
        }
        e->names[k] = PyBytes_AS_STRING(name);
        e->name_len[k] = PyBytes_GET_SIZE(name);
        e->names_len += e->name_len[k];
    }
    e->stream_ms = stream_ms;
    e->entries = PyList_New(0);
    return e->entries ? 0 : -1;
}

static void emit_free(Emit *e) {
    PyMem_Free(e->rows.data);
    PyMem_Free(e->command.data);
    Py_XDECREF(e->entries);
}

static PyObject *STR_E, *STR_C, *STR_P, *STR_Q, *STR_B, *STR_S, *STR_EMPTY;

static inline PyObject *side_name(uint8_t code) {
    if (code == 'B') return Py_NewRef(STR_B);
    if (code == 'S') return Py_NewRef(STR_S);
    return PyUnicode_FromOrdinal(code);
}

static inline int append_new(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/*
 * apply_events(columns, last_seq, seq_base, top, depth_levels, deep, attributed, emit, first=0, count=-1)
 *
 * The per-run event loop (itchflow/book/columns.py is its Python twin): `columns` is the ColumnViews
 * tuple (kind, flags, side, ts_event, seq, order_ref, new_order_ref, match_number, shares, price);
 * `top` the 6-tuple of the stage's last top of book; `deep` whether the depth must be rebuilt
 * regardless; `attributed` a set of seqs of adds that carry an MPID; emit = (key_prefix, xadd_head,
 * field_names, stream_ms). Returns the itchflow.book.engine.Applied tuple: (applied, duplicates,
 * last_seq, last_ts_event, max_ts_event, top, tob_changes, top_of_book RowBinary rows, [XADD
 * commands], stream_ms after them, trade_rows, deep). With `count` >= 0 only events
 * first .. first + count - 1 of the columns are the batch (a bundle's run, unsliced).
 */
static PyObject *Book_apply_events(Book *b, PyObject *args) {
    PyObject *columns, *top_in, *attributed, *emit_spec;
    long long last_seq, base;
    Py_ssize_t levels, first = 0, count = -1;
    int deep;
    if (!PyArg_ParseTuple(args, "OLLOnpOO!|nn", &columns, &last_seq, &base, &top_in, &levels, &deep, &attributed,
                          &PyTuple_Type, &emit_spec, &first, &count))
        return NULL;
    if (!PyTuple_Check(columns) || PyTuple_GET_SIZE(columns) != 10) {
        PyErr_SetString(PyExc_TypeError, "columns must be the 10 column views");
        return NULL;
    }
    if (levels < 1) {
        PyErr_SetString(PyExc_ValueError, "depth_levels must be at least 1");
        return NULL;
    }
    int64_t top[6];
    if (!PyTuple_Check(top_in) || PyTuple_GET_SIZE(top_in) != 6) {
        PyErr_SetString(PyExc_TypeError, "top must be a 6-tuple");
        return NULL;
    }
    for (int k = 0; k < 6; k++) {
        top[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(top_in, k));
        if (top[k] == -1 && PyErr_Occurred()) return NULL;
    }
    int check_attributed = attributed != Py_None && PyObject_Length(attributed) > 0;
    if (PyErr_Occurred()) return NULL;

    static const Py_ssize_t widths[10] = {1, 1, 1, 8, 8, 8, 8, 8, 8, 8};
    Column col[10];
    memset(col, 0, sizeof(col));
    PyObject *result = NULL, *trade_rows = NULL;
    Emit emit;
    if (emit_setup(&emit, emit_spec) < 0) {
        emit_free(&emit);
        return NULL;
    }
    Py_ssize_t n = -1;
    for (int k = 0; k < 10; k++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(columns, k), &col[k].view, PyBUF_SIMPLE) < 0) goto done;
        col[k].held = 1;
        col[k].width = widths[k];
        Py_ssize_t length = col[k].view.len / widths[k];
        if (length * widths[k] != col[k].view.len || (n >= 0 && length != n)) {
            PyErr_SetString(PyExc_ValueError, "event columns differ in length");
            goto done;
        }
        n = length;
    }
    if (count < 0) { /* every event of the columns, else events first .. first + count - 1 */
        first = 0;
        count = n;
    } else if (first < 0 || first > n || count > n - first) {
        PyErr_SetString(PyExc_ValueError, "the events' range lies outside the columns");
        goto done;
    }
    trade_rows = PyList_New(0);
    if (!trade_rows) goto done;

    int64_t bid_floor = b->bids.len >= levels ? b->bids.items[b->bids.len - levels].price : INT64_MIN;
    int64_t ask_ceiling = b->asks.len >= levels ? b->asks.items[levels - 1].price : INT64_MAX;
    Py_ssize_t duplicates = 0;
    int64_t max_ts = 0, last_ts = 0;
    int64_t bid_price = top[0], ask_price = top[3];

    for (Py_ssize_t i = first; i < first + count; i++) {
        int64_t seq = load_i64(&col[4], i);
        if (seq <= last_seq) {
            duplicates++;
            continue;
        }
        int64_t ts = load_i64(&col[3], i);
        last_seq = seq;
        last_ts = ts;
        if (ts > max_ts) max_ts = ts;
        uint8_t kind = load_u8(&col[0], i);
        uint64_t ref = load_u64(&col[5], i);
        int64_t shares = (int64_t)load_u64(&col[8], i);
        int64_t price = load_i64(&col[9], i);
        int sides = 0;
        Order *order;
        int64_t o_price = 0;
        int o_bid = 0;
        switch (kind) {
        case K_ADDED: {
            uint8_t side = load_u8(&col[2], i);
            if (find_slot(b, ref) >= 0) {
                sides = 3;
                deep = 1;
            }
            if (side == 'B') {
                if (price >= bid_price) sides |= 1;
                if (price >= bid_floor) deep = 1;
            } else {
                if (!ask_price || price <= ask_price) sides |= 2;
                if (price <= ask_ceiling) deep = 1;
            }
            int is_attributed = 0;
            if (check_attributed) {
                PyObject *key = PyLong_FromLongLong(seq);
                if (!key) goto done;
                is_attributed = PySet_Contains(attributed, key);
                Py_DECREF(key);
                if (is_attributed < 0) goto done;
            }
            b->counts[is_attributed ? C_F : C_A]++;
            if (side == 'B' || side == 'S') {
                if (book_insert(b, ref, side == 'B', price, shares) < 0) goto done;
            } else {
                b->invalid_messages++;
            }
            break;
        }
        case K_DELETED:
        case K_CANCELLED:
            order = find_order(b, ref);
            if (order) {
                o_price = order->price;
                o_bid = order->is_bid;
            }
            if (kind == K_DELETED) {
                book_delete(b, ref);
            } else {
                int64_t ignored;
                b->counts[C_X]++;
                book_reduce(b, ref, shares, &ignored);
            }
            if (!order) continue;
            goto resting_sides;
        case K_EXECUTED: {
            uint8_t flags = load_u8(&col[1], i);
            uint64_t match = load_u64(&col[7], i);
            order = find_order(b, ref);
            if (order) {
                o_price = order->price;
                o_bid = order->is_bid;
            }
            int64_t ignored;
            if (flags & FLAG_HAS_PRICE) {
                long printable = flags & FLAG_PRINTABLE;
                b->counts[C_C]++;
                book_reduce(b, ref, shares, &ignored);
                if (printable && shares > 0) book_record(b, price, shares, ts, match);
                if (shares > 0) {
                    PyObject *side = order ? Py_NewRef(o_bid ? STR_B : STR_S) : Py_NewRef(STR_EMPTY);
                    PyObject *row = trade_row(base + seq, ts, STR_C, match, price, shares, side, printable);
                    Py_DECREF(side);
                    if (append_new(trade_rows, row) < 0) goto done;
                }
            } else {
                b->counts[C_E]++;
                int64_t resting_price;
                if (book_reduce(b, ref, shares, &resting_price)) book_record(b, resting_price, shares, ts, match);
                if (order && shares > 0) {
                    PyObject *row = trade_row(base + seq, ts, STR_E, match, o_price, shares, o_bid ? STR_B : STR_S, 1);
                    if (append_new(trade_rows, row) < 0) goto done;
                }
            }
            if (!order) continue;
            goto resting_sides;
        }
        case K_REPLACED: {
            uint64_t new_ref = load_u64(&col[6], i);
            order = find_order(b, ref);
            if (order) {
                o_price = order->price;
                o_bid = order->is_bid;
            }
            if (find_slot(b, new_ref) >= 0) {
                sides = 3;
                deep = 1;
            }
            if (book_replace(b, ref, new_ref, price, shares) < 0) goto done;
            if (!order) continue;
            if (o_bid) {
                if (o_price == bid_price || price >= bid_price) sides |= 1;
                if (o_price >= bid_floor || price >= bid_floor) deep = 1;
            } else {
                if (o_price == ask_price || price <= ask_price) sides |= 2;
                if (o_price <= ask_ceiling || price <= ask_ceiling) deep = 1;
            }
            break;
        }
        case K_TRADE: {
            uint64_t match = load_u64(&col[7], i);
            b->counts[C_P]++;
            if (shares > 0) {
                book_record(b, price, shares, ts, match);
                PyObject *side = side_name(load_u8(&col[2], i));
                if (!side) goto done;
                PyObject *row = trade_row(base + seq, ts, STR_P, match, price, shares, side, 1);
                Py_DECREF(side);
                if (append_new(trade_rows, row) < 0) goto done;
            }
            continue;
        }
        case K_CROSS: {
            uint64_t match = load_u64(&col[7], i);
            b->counts[C_Q]++;
            if (shares > 0) {
                book_record(b, price, shares, ts, match);
                PyObject *row = trade_row(base + seq, ts, STR_Q, match, price, shares, STR_EMPTY, 1);
                if (append_new(trade_rows, row) < 0) goto done;
            }
            continue;
        }
        default:
            continue; /* not a book event: counted in the stage's messages only */
        }
        goto changed_sides;
    resting_sides:
        if (o_bid) {
            sides = o_price == bid_price;
            if (o_price >= bid_floor) deep = 1;
        } else {
            sides = 2 * (o_price == ask_price);
            if (o_price <= ask_ceiling) deep = 1;
        }
    changed_sides:
        if (!sides) continue;
        int changed = 0;
        if (sides & 1) {
            int64_t best = 0, lshares = 0, lorders = 0;
            if (b->bids.len) {
                const Level *level = &b->bids.items[b->bids.len - 1];
                best = level->price;
                lshares = level->shares;
                lorders = level->orders;
            }
            if (best != top[0] || lshares != top[1] || lorders != top[2]) {
                top[0] = bid_price = best;
                top[1] = lshares;
                top[2] = lorders;
                changed = 1;
            }
        }
        if (sides & 2) {
            int64_t best = 0, lshares = 0, lorders = 0;
            if (b->asks.len) {
                const Level *level = &b->asks.items[0];
                best = level->price;
                lshares = level->shares;
                lorders = level->orders;
            }
            if (best != top[3] || lshares != top[4] || lorders != top[5]) {
                top[3] = ask_price = best;
                top[4] = lshares;
                top[5] = lorders;
                changed = 1;
            }
        }
        if (changed && emit_top(&emit, base + seq, ts, top) < 0) goto done;
    }
    PyObject *rows = PyBytes_FromStringAndSize(emit.rows.data ? emit.rows.data : "", emit.rows.len);
    if (!rows) goto done;
    result = Py_BuildValue("(nnLLL(LLLLLL)nNOLOO)", count - duplicates, duplicates, last_seq, (long long)last_ts,
                           (long long)max_ts, (long long)top[0], (long long)top[1], (long long)top[2],
                           (long long)top[3], (long long)top[4], (long long)top[5], emit.changes, rows,
                           emit.entries, (long long)emit.stream_ms, trade_rows, deep ? Py_True : Py_False);
done:
    emit_free(&emit);
    for (int k = 0; k < 10; k++)
        if (col[k].held) PyBuffer_Release(&col[k].view);
    Py_XDECREF(trade_rows);
    return result;
}

/* ------------------------------------------------------------------ per-batch outputs
 *
 * What the stage writes once per batch from the book's state, encoded here byte for byte as the
 * Python engine does (itchflow/book/engine.py with itchflow/sinks/book_tables.py and book_redis.py;
 * tests/unit/test_native_book.py compares the stage's outputs on both engines). */

static inline void put_leb128(Buffer *buf, uint64_t v) {
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        buf->data[buf->len++] = (char)(byte | (v ? 0x80 : 0));
    } while (v);
}

/* the "[[price,shares,orders],...]" JSON of levels [start, stop) of a side, best first */
static void put_levels_json(Buffer *buf, const Side *side, Py_ssize_t count, int bids) {
    char text[24];
    buf->data[buf->len++] = '[';
    for (Py_ssize_t k = 0; k < count; k++) {
        const Level *level = &side->items[bids ? side->len - 1 - k : k];
        if (k) buf->data[buf->len++] = ',';
        buf->data[buf->len++] = '[';
        int n = format_int(text, level->price);
        put_bytes(buf, text, n);
        buf->data[buf->len++] = ',';
        n = format_int(text, level->shares);
        put_bytes(buf, text, n);
        buf->data[buf->len++] = ',';
        n = format_int(text, level->orders);
        put_bytes(buf, text, n);
        buf->data[buf->len++] = ']';
    }
    buf->data[buf->len++] = ']';
}

/* encode_depth(levels, key_prefix, seq, reason, ts_event, depth_head)
 *   -> (depth_snapshots RowBinary row, "HSET depth-key bids .. asks .. seq .. ts_event .." RESP)
 * of the best `levels` levels per side; `reason` is the RowBinary-encoded reason string and
 * `depth_head` the command up to its first value (see itchflow/sinks/book_redis.py). */
static PyObject *Book_encode_depth(Book *b, PyObject *args) {
    Py_ssize_t levels;
    const char *prefix, *reason, *head;
    Py_ssize_t prefix_len, reason_len, head_len;
    long long seq, ts;
    if (!PyArg_ParseTuple(args, "ny#Ly#Ly#", &levels, &prefix, &prefix_len, &seq, &reason, &reason_len, &ts, &head,
                          &head_len))
        return NULL;
    if (levels < 0) levels = 0;
    Py_ssize_t nb = b->bids.len < levels ? b->bids.len : levels;
    Py_ssize_t na = b->asks.len < levels ? b->asks.len : levels;
    Buffer row = {0}, cmd = {0};
    PyObject *result = NULL;
    if (buffer_reserve(&row, prefix_len + reason_len + 16 + 6 * 10 + (nb + na) * 20) < 0) goto done;
    put_bytes(&row, prefix, prefix_len);
    put_le64(&row, (uint64_t)seq);
    put_bytes(&row, reason, reason_len);
    put_le64(&row, (uint64_t)ts);
    for (int column = 0; column < 6; column++) {
        const Side *side = column < 3 ? &b->bids : &b->asks;
        Py_ssize_t count = column < 3 ? nb : na;
        put_leb128(&row, (uint64_t)count);
        for (Py_ssize_t k = 0; k < count; k++) {
            const Level *level = &side->items[column < 3 ? side->len - 1 - k : k];
            switch (column % 3) {
            case 0:
                put_le64(&row, (uint64_t)level->price);
                break;
            case 1:
                put_le64(&row, (uint64_t)level->shares);
                break;
            default:
                put_le32(&row, (uint32_t)level->orders);
            }
        }
    }
    /* each level's JSON is at most 3 * 20 digits + 5 characters */
    if (buffer_reserve(&cmd, head_len + 200 + (nb + na + 2) * 70) < 0) goto done;
    put_bytes(&cmd, head, head_len);
    char text[24];
    for (int side = 0; side < 2; side++) {
        Buffer json = {0};
        Py_ssize_t count = side ? na : nb;
        if (buffer_reserve(&json, 4 + count * 70) < 0) goto done;
        put_levels_json(&json, side ? &b->asks : &b->bids, count, !side);
        if (side) put_bytes(&cmd, "$4\r\nasks\r\n", 10);
        put_bulk(&cmd, json.data, (int)json.len);
        PyMem_Free(json.data);
    }
    put_bytes(&cmd, "$3\r\nseq\r\n", 9);
    put_bulk(&cmd, text, format_int(text, seq));
    put_bytes(&cmd, "$8\r\nts_event\r\n", 14);
    put_bulk(&cmd, text, format_int(text, ts));
    result = Py_BuildValue("(y#y#)", row.data, row.len, cmd.data, cmd.len);
done:
    PyMem_Free(row.data);
    PyMem_Free(cmd.data);
    return result;
}

/* encode_int_hash(head, names, values) -> "HSET key name value ..." RESP for integer values, as
 * itchflow.sinks.resp.IntHashEncoder.encode writes it (`head`, `names` from its layout). */
static PyObject *encode_int_hash(PyObject *module, PyObject *args) {
    const char *head;
    Py_ssize_t head_len;
    PyObject *names, *values;
    if (!PyArg_ParseTuple(args, "y#O!O!", &head, &head_len, &PyTuple_Type, &names, &PyTuple_Type, &values))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(values) != n) {
        PyErr_SetString(PyExc_ValueError, "one value per field name");
        return NULL;
    }
    Buffer cmd = {0};
    Py_ssize_t size = head_len + n * 32;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "field names must be bytes");
            return NULL;
        }
        size += PyBytes_GET_SIZE(name);
    }
    if (buffer_reserve(&cmd, size) < 0) return NULL;
    put_bytes(&cmd, head, head_len);
    char text[24];
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(values, k));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(cmd.data);
            return NULL;
        }
        put_bytes(&cmd, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        put_bulk(&cmd, text, format_int(text, v));
    }
    PyObject *out = PyBytes_FromStringAndSize(cmd.data, cmd.len);
    PyMem_Free(cmd.data);
    return out;
}

/* ------------------------------------------------------------------ attributes */

static PyObject *Book_get_message_counts(Book *b, void *closure) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    for (int k = 0; k < N_COUNTS; k++) {
        char name[2] = {COUNT_TYPES[k], 0};
        PyObject *value = PyLong_FromLongLong(b->counts[k]);
        if (!value || PyDict_SetItemString(out, name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(value);
    }
    if (b->extra_counts && PyDict_Update(out, b->extra_counts) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static int Book_set_message_counts(Book *b, PyObject *value, void *closure) {
    if (!value || !PyDict_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "message_counts must be a dict");
        return -1;
    }
    PyObject *extra = PyDict_New();
    if (!extra) return -1;
    int64_t counts[N_COUNTS] = {0};
    PyObject *key, *count;
    Py_ssize_t pos = 0;
    while (PyDict_Next(value, &pos, &key, &count)) {
        int known = -1;
        if (PyUnicode_Check(key) && PyUnicode_GET_LENGTH(key) == 1) {
            Py_UCS4 c = PyUnicode_READ_CHAR(key, 0);
            for (int k = 0; k < N_COUNTS; k++)
                if ((Py_UCS4)COUNT_TYPES[k] == c) known = k;
        }
        if (known >= 0) {
            counts[known] = PyLong_AsLongLong(count);
            if (counts[known] == -1 && PyErr_Occurred()) goto fail;
        } else if (PyDict_SetItem(extra, key, count) < 0) {
            goto fail;
        }
    }
    memcpy(b->counts, counts, sizeof(counts));
    Py_XSETREF(b->extra_counts, extra);
    return 0;
fail:
    Py_DECREF(extra);
    return -1;
}

static PyObject *Book_get_last_trade(Book *b, void *closure) {
    if (!b->has_last) Py_RETURN_NONE;
    return Py_BuildValue("(LLLK)", (long long)b->last_price, (long long)b->last_shares, (long long)b->last_ts,
                         (unsigned long long)b->last_match);
}

static int Book_set_last_trade(Book *b, PyObject *value, void *closure) {
    if (!value || value == Py_None) {
        b->has_last = 0;
        return 0;
    }
    long long price, shares, ts;
    unsigned long long match;
    PyObject *items = PySequence_Tuple(value);
    if (!items) return -1;
    int ok = PyArg_ParseTuple(items, "LLLK", &price, &shares, &ts, &match);
    Py_DECREF(items);
    if (!ok) return -1;
    b->has_last = 1;
    b->last_price = price;
    b->last_shares = shares;
    b->last_ts = ts;
    b->last_match = match;
    return 0;
}

static PyObject *Book_get_order_count(Book *b, void *closure) { return PyLong_FromSsize_t(b->live); }
static PyObject *Book_get_venue(Book *b, void *closure) { return Py_NewRef(b->venue); }
static PyObject *Book_get_symbol(Book *b, void *closure) { return Py_NewRef(b->symbol); }

static PyObject *Book_get_top(Book *b, void *closure) {
    long long t[6] = {0, 0, 0, 0, 0, 0};
    if (b->bids.len) {
        const Level *l = &b->bids.items[b->bids.len - 1];
        t[0] = l->price, t[1] = l->shares, t[2] = l->orders;
    }
    if (b->asks.len) {
        const Level *l = &b->asks.items[0];
        t[3] = l->price, t[4] = l->shares, t[5] = l->orders;
    }
    return Py_BuildValue("(LLLLLL)", t[0], t[1], t[2], t[3], t[4], t[5]);
}

#define COUNTER(name)                                                                                  \
    static PyObject *Book_get_##name(Book *b, void *c) { return PyLong_FromLongLong(b->name); }       \
    static int Book_set_##name(Book *b, PyObject *v, void *c) {                                        \
        if (!v) {                                                                                      \
            PyErr_SetString(PyExc_AttributeError, "cannot delete a counter");                          \
            return -1;                                                                                 \
        }                                                                                              \
        long long x = PyLong_AsLongLong(v);                                                            \
        if (x == -1 && PyErr_Occurred()) return -1;                                                    \
        b->name = x;                                                                                   \
        return 0;                                                                                      \
    }
COUNTER(unknown_refs)
COUNTER(overfills)
COUNTER(duplicate_refs)
COUNTER(invalid_messages)
COUNTER(trade_count)
COUNTER(traded_shares)
#define COUNTER_GETSET(name) {#name, (getter)Book_get_##name, (setter)Book_set_##name, NULL, NULL}

static PyGetSetDef Book_getset[] = {
    COUNTER_GETSET(unknown_refs),
    COUNTER_GETSET(overfills),
    COUNTER_GETSET(duplicate_refs),
    COUNTER_GETSET(invalid_messages),
    COUNTER_GETSET(trade_count),
    COUNTER_GETSET(traded_shares),
    {"message_counts", (getter)Book_get_message_counts, (setter)Book_set_message_counts,
     "messages applied, by ITCH message type (a copy)", NULL},
    {"_last_trade", (getter)Book_get_last_trade, (setter)Book_set_last_trade,
     "(price, shares, timestamp, match number) of the latest print, or None", NULL},
    {"order_count", (getter)Book_get_order_count, NULL, "how many orders are live", NULL},
    {"venue", (getter)Book_get_venue, NULL, NULL, NULL},
    {"symbol", (getter)Book_get_symbol, NULL, NULL, NULL},
    {"top", (getter)Book_get_top, NULL, "(bid price, shares, orders, ask price, shares, orders); 0s when empty",
     NULL},
    {NULL},
};

static PyMethodDef Book_methods[] = {
    {"add_order", (PyCFunction)(void (*)(void))Book_add_order, METH_VARARGS | METH_KEYWORDS, NULL},
    {"execute_order", (PyCFunction)(void (*)(void))Book_execute_order, METH_VARARGS | METH_KEYWORDS, NULL},
    {"execute_order_at_price", (PyCFunction)(void (*)(void))Book_execute_order_at_price,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"cancel_order", (PyCFunction)Book_cancel_order, METH_VARARGS, NULL},
    {"delete_order", (PyCFunction)Book_delete_order, METH_O, NULL},
    {"replace_order", (PyCFunction)Book_replace_order, METH_VARARGS, NULL},
    {"record_trade", (PyCFunction)(void (*)(void))Book_record_trade, METH_VARARGS | METH_KEYWORDS, NULL},
    {"depth_columns", (PyCFunction)Book_depth_columns, METH_VARARGS, NULL},
    {"show_depth", (PyCFunction)Book_show_depth, METH_O, NULL},
    {"shown_depth", (PyCFunction)Book_shown_depth, METH_NOARGS, NULL},
    {"set_shown_depth", (PyCFunction)Book_set_shown_depth, METH_O, NULL},
    {"order_values", (PyCFunction)Book_order_values, METH_O, NULL},
    {"export_orders", (PyCFunction)Book_export_orders, METH_NOARGS, NULL},
    {"import_orders", (PyCFunction)Book_import_orders, METH_VARARGS, NULL},
    {"integrity_problems", (PyCFunction)Book_integrity_problems, METH_NOARGS, NULL},
    {"apply_events", (PyCFunction)Book_apply_events, METH_VARARGS, NULL},
    {"encode_depth", (PyCFunction)Book_encode_depth, METH_VARARGS, NULL},
    {NULL},
};

static PyTypeObject BookType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "itchflow.book._cbook.Book",
    .tp_basicsize = sizeof(Book),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Order-level book of one (venue, symbol) in C (see itchflow/book/native.py).",
    .tp_new = Book_new,
    .tp_init = (initproc)Book_init,
    .tp_dealloc = (destructor)Book_dealloc,
    .tp_methods = Book_methods,
    .tp_getset = Book_getset,
};

static PyMethodDef module_methods[] = {
    {"encode_int_hash", encode_int_hash, METH_VARARGS, "HSET of integer fields as RESP (see IntHashEncoder)."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cbook", "itchflow's order book in C.", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__cbook(void) {
    if (PyType_Ready(&BookType) < 0) return NULL;
    STR_E = PyUnicode_InternFromString("E");
    STR_C = PyUnicode_InternFromString("C");
    STR_P = PyUnicode_InternFromString("P");
    STR_Q = PyUnicode_InternFromString("Q");
    STR_B = PyUnicode_InternFromString("B");
    STR_S = PyUnicode_InternFromString("S");
    STR_EMPTY = PyUnicode_InternFromString("");
    if (!STR_E || !STR_C || !STR_P || !STR_Q || !STR_B || !STR_S || !STR_EMPTY) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObject(m, "Book", Py_NewRef((PyObject *)&BookType)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
