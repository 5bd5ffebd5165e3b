"""The books' ``top_of_book`` rows read back: RowBinary in, top-of-book changes out.

The order-book stage emits one ``top_of_book`` row per event that changed the best bid or ask
(:mod:`itchflow.pipeline.book_stage`; the C book writes them, byte for byte as
:func:`itchflow.sinks.book_tables.top_of_book_rows`). The analytics cores
(:mod:`itchflow.analytics.ofi`, :mod:`itchflow.analytics.liquidity`) take them as
:data:`TopOfBookTuple`. Layout of a row (``schemas/clickhouse/001_book.sql``, little endian): the
book's key -- ``venue`` (LEB128 length + UTF-8), ``trading_date`` (UInt16 days since 1970-01-01),
``symbol`` (LEB128 length + UTF-8) -- then ``seq`` UInt64, ``ts_event`` Int64 ns, ``bid_price``
Int64, ``bid_shares`` UInt64, ``bid_orders`` UInt32, ``ask_price`` Int64, ``ask_shares`` UInt64,
``ask_orders`` UInt32. An empty side is 0, 0, 0.

* :func:`decode_changes` reads one book's rows (every row starts with the same key, e.g. an engine's
  ``Applied.tob_rows`` with its ``BookWire.row_key``), the fast path.
* :func:`decode_rows` reads rows of any books (e.g. ``Outputs.top_of_book`` joined), each with its key.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import NamedTuple

from itchflow.sinks.book_tables import TABLE_COLUMNS, TOP_OF_BOOK
from itchflow.sinks.rowbinary import fixed_width_struct

_KEY_COLUMNS = 3  # venue, trading_date, symbol
_BODY = fixed_width_struct([column_type for _, column_type in TABLE_COLUMNS[TOP_OF_BOOK][_KEY_COLUMNS:]])
"""seq .. ask_orders, as the table declares them."""
_DATE = struct.Struct("<H")

TopOfBookTuple = tuple[int, int, int, int, int, int, int, int]
"""``(ts_event, seq, bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders)``:
:class:`TopOfBookChange`'s fields as a plain tuple (what the cores keep; cheaper than the named one)."""


class TopOfBookChange(NamedTuple):
    """The best bid and ask after an event that changed either. Prices in ticks of 10^-4 dollars;
    an empty side is price 0, 0 shares, 0 orders."""

    ts_event: int
    seq: int
    """the book sequence of the event (orders the changes of one book and trading day)"""
    bid_price: int
    bid_shares: int
    bid_orders: int
    ask_price: int
    ask_shares: int
    ask_orders: int


class BookKey(NamedTuple):
    """Which book (and trading day) a row belongs to."""

    venue: str
    trading_date: int
    """days since 1970-01-01"""
    symbol: str


@lru_cache(maxsize=64)
def _keyed_row(key_length: int) -> struct.Struct:
    return struct.Struct(f"<{key_length}s{_BODY.format[1:]}")


def decode_changes(rows: bytes, key: bytes) -> list[TopOfBookTuple]:
    """The changes of one book's ``top_of_book`` rows, in row order, where every row starts with
    ``key`` (:func:`itchflow.sinks.book_tables.row_key` of the book's venue, day and symbol).

    Raises:
        ValueError: the data is not whole rows of that key.
    """
    layout = _keyed_row(len(key))
    if len(rows) % layout.size:
        raise ValueError(f"{len(rows)} bytes are not whole top_of_book rows of {layout.size} bytes")
    out: list[TopOfBookTuple] = []
    append = out.append
    for row_key, seq, ts_event, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n in layout.iter_unpack(rows):
        if row_key != key:
            raise ValueError(f"a top_of_book row of key {row_key!r} among rows of {key!r}")
        append((ts_event, seq, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n))
    return out


def decode_rows(rows: bytes) -> list[tuple[BookKey, TopOfBookTuple]]:
    """Every ``top_of_book`` row of ``rows`` (of any books), in order, with its book key.

    Raises:
        ValueError: the data ends inside a row.
    """
    out: list[tuple[BookKey, TopOfBookTuple]] = []
    view = memoryview(rows)
    position, size = 0, len(rows)
    unpack, body = _BODY.unpack_from, _BODY.size
    last_raw, key = b"", None
    while position < size:
        # a book's rows come in runs: most rows start with the key of the row before
        if last_raw and rows.startswith(last_raw, position):
            position += len(last_raw)
        else:
            start = position
            venue, position = _string(view, position)
            if position + _DATE.size > size:
                raise ValueError("top_of_book data ends inside a row")
            trading_date = _DATE.unpack_from(view, position)[0]
            symbol, position = _string(view, position + _DATE.size)
            last_raw = rows[start:position]
            key = BookKey(venue, trading_date, symbol)
        if position + body > size:
            raise ValueError("top_of_book data ends inside a row")
        seq, ts_event, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n = unpack(view, position)
        position += body
        out.append((key, (ts_event, seq, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n)))  # type: ignore[arg-type]
    return out


def _string(view: memoryview, position: int) -> tuple[str, int]:
    """A LEB128-length-prefixed UTF-8 string at ``position``; the string and the position after it."""
    length, position = _varint(view, position)
    end = position + length
    if end > len(view):
        raise ValueError("top_of_book data ends inside a row")
    return str(view[position:end], "utf-8"), end


DepthSums = tuple[int, int, int, int]
"""``(ts_event, seq, bid shares, ask shares)`` over a book's best N levels: a liquidity depth update."""
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


def decode_depth_rows(rows: bytes, levels: int) -> list[tuple[BookKey, DepthSums]]:
    """Every ``depth_snapshots`` row of ``rows`` (of any books), in order, with its book key, as the
    shares on its best ``levels`` levels per side (the snapshot describes the book after a batch whose
    last event is ``seq`` at ``ts_event``). Columns: the key, ``seq`` UInt64, ``reason`` String,
    ``ts_event`` Int64, then per side Array(Int64) prices, Array(UInt64) shares, Array(UInt32) orders.

    Raises:
        ValueError: the data ends inside a row.
    """
    out: list[tuple[BookKey, DepthSums]] = []
    view = memoryview(rows)
    position, size = 0, len(rows)
    keys: dict[bytes, BookKey] = {}
    try:
        while position < size:
            start = position
            venue, position = _string(view, position)
            trading_date = _DATE.unpack_from(view, position)[0]
            symbol, position = _string(view, position + _DATE.size)
            raw_key = bytes(view[start:position])
            key = keys.get(raw_key)
            if key is None:
                key = keys[raw_key] = BookKey(venue, trading_date, symbol)
            seq = _U64.unpack_from(view, position)[0]
            _, position = _string(view, position + 8)
            ts_event = _I64.unpack_from(view, position)[0]
            position += 8
            sides = []
            for _side in range(2):
                count, position = _varint(view, position)
                position += 8 * count  # prices
                count, position = _varint(view, position)
                shares = struct.unpack_from(f"<{count}Q", view, position)
                position += 8 * count
                sides.append(sum(shares[:levels]))
                count, position = _varint(view, position)
                position += 4 * count  # orders
            if position > size:
                raise ValueError("depth_snapshots data ends inside a row")
            out.append((key, (ts_event, seq, sides[0], sides[1])))
    except struct.error as error:
        raise ValueError(f"depth_snapshots data ends inside a row: {error}") from None
    return out


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(view):
            raise ValueError("data ends inside a row")
        byte = view[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position
