"""The order book's ClickHouse tables: their columns and RowBinary row encoders.

:data:`TABLE_COLUMNS` is the one Python definition of the tables of
``schemas/clickhouse/001_book.sql`` (``tests/unit/test_book_tables.py`` parses the DDL and checks
that they agree). Every row starts with ``venue``, ``trading_date`` and ``symbol``, encoded once per
book and day (:func:`row_key`) and prepended to each row; the fixed-width columns after them are packed with
one ``struct`` per run of columns (the generic :class:`~itchflow.sinks.rowbinary.RowBinaryEncoder`
makes one call per value). The C book writes ``top_of_book`` and ``depth_snapshots`` rows itself,
byte for byte as these functions do.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from itchflow.book.values import BUY, SELL, DepthColumns
from itchflow.sinks.rowbinary import encode_string, fixed_width_struct, writer_for

TOP_OF_BOOK = "top_of_book"
DEPTH_SNAPSHOTS = "depth_snapshots"
TRADES = "trades"
BROKEN_TRADES = "broken_trades"
BOOK_STATUS = "book_status"

_KEY = (("venue", "LowCardinality(String)"), ("trading_date", "Date"), ("symbol", "LowCardinality(String)"))
_FIRST = len(_KEY)  # index of the first column after the book's key
_DATETIME = "DateTime64(9, 'UTC')"

#: Column names and types of each table, in the order of ``schemas/clickhouse/001_book.sql``.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    TOP_OF_BOOK: (
        *_KEY,
        ("seq", "UInt64"),
        ("ts_event", _DATETIME),
        ("bid_price", "Int64"),
        ("bid_shares", "UInt64"),
        ("bid_orders", "UInt32"),
        ("ask_price", "Int64"),
        ("ask_shares", "UInt64"),
        ("ask_orders", "UInt32"),
    ),
    DEPTH_SNAPSHOTS: (
        *_KEY,
        ("seq", "UInt64"),
        ("reason", "LowCardinality(String)"),
        ("ts_event", _DATETIME),
        ("bid_prices", "Array(Int64)"),
        ("bid_shares", "Array(UInt64)"),
        ("bid_orders", "Array(UInt32)"),
        ("ask_prices", "Array(Int64)"),
        ("ask_shares", "Array(UInt64)"),
        ("ask_orders", "Array(UInt32)"),
    ),
    TRADES: (
        *_KEY,
        ("seq", "UInt64"),
        ("ts_event", _DATETIME),
        ("source", "LowCardinality(String)"),
        ("match_number", "UInt64"),
        ("price", "Int64"),
        ("shares", "UInt64"),
        ("side", "LowCardinality(String)"),
        ("printable", "UInt8"),
    ),
    BROKEN_TRADES: (
        *_KEY,
        ("match_number", "UInt64"),
        ("seq", "UInt64"),
        ("ts_event", _DATETIME),
    ),
    BOOK_STATUS: (
        *_KEY,
        ("seq", "UInt64"),
        ("ts_event", _DATETIME),
        ("messages", "UInt64"),
        ("orders", "UInt64"),
        ("unknown_refs", "UInt64"),
        ("overfills", "UInt64"),
        ("integrity", "String"),
    ),
}


def _packer(table: str, first: int, stop: int) -> Callable[..., bytes]:
    """``struct.pack`` of the fixed-width columns ``first:stop`` of ``table``."""
    return fixed_width_struct([column_type for _, column_type in TABLE_COLUMNS[table][first:stop]]).pack


_TOB_PACK = _packer(TOP_OF_BOOK, _FIRST, _FIRST + 8)  # seq .. ask_orders
_TRADE_TIME_PACK = _packer(TRADES, _FIRST, _FIRST + 2)  # seq, ts_event
_TRADE_PRICE_PACK = _packer(TRADES, _FIRST + 3, _FIRST + 6)  # match_number, price, shares
_TRADE_FLAG_PACK = _packer(TRADES, _FIRST + 7, _FIRST + 8)  # printable
_BROKEN_PACK = _packer(BROKEN_TRADES, _FIRST, _FIRST + 3)  # match_number, seq, ts_event
_STATUS_PACK = _packer(BOOK_STATUS, _FIRST, _FIRST + 6)  # seq .. overfills
_DEPTH_SEQ_PACK = _packer(DEPTH_SNAPSHOTS, _FIRST, _FIRST + 1)
_DEPTH_TIME_PACK = _packer(DEPTH_SNAPSHOTS, _FIRST + 2, _FIRST + 3)
_DEPTH_ARRAY_WRITERS = tuple(
    writer_for(column_type) for _, column_type in TABLE_COLUMNS[DEPTH_SNAPSHOTS][_FIRST + 3 :]
)
SHORT_STRINGS = {
    text: encode_string(text) for text in ("", BUY, SELL, "E", "C", "P", "Q", "change", "cadence")
}
"""The encoded ``source``, ``side`` and ``reason`` values (the C book takes the reason encoded)."""


@lru_cache(maxsize=16_384)
def row_key(venue: str, trading_date: int, symbol: str) -> bytes:
    """``venue``, ``trading_date`` (days since 1970-01-01) and ``symbol`` RowBinary-encoded: the
    first columns of every row of a book's day."""
    return encode_string(venue) + _DATE.pack(trading_date) + encode_string(symbol)


_DATE = struct.Struct("<H")


def top_of_book_rows(key: bytes, rows: Sequence[tuple[int, ...]]) -> bytes:
    """RowBinary ``top_of_book`` rows of (book seq, ts_event, *top of book) tuples."""
    pack = _TOB_PACK
    return b"".join([key + pack(*row) for row in rows])


def trade_rows(key: bytes, rows: Sequence[tuple[Any, ...]]) -> bytes:
    """RowBinary ``trades`` rows of (seq, ts_event, source, match number, price, shares, side,
    printable) tuples."""
    strings = SHORT_STRINGS
    return b"".join(
        [
            b"".join(
                (
                    key,
                    _TRADE_TIME_PACK(seq, ts_event),
                    strings[source],
                    _TRADE_PRICE_PACK(match_number, price, shares),
                    strings.get(side) or encode_string(side),
                    _TRADE_FLAG_PACK(printable),
                )
            )
            for seq, ts_event, source, match_number, price, shares, side, printable in rows
        ]
    )


def broken_trade_row(key: bytes, match_number: int, seq: int, ts_event: int) -> bytes:
    """A RowBinary ``broken_trades`` row: the Broken Trade (B) of book ``seq`` cancels the print with
    ``match_number``."""
    return key + _BROKEN_PACK(match_number, seq, ts_event)


def status_row(
    key: bytes,
    seq: int,
    ts_event: int,
    messages: int,
    orders: int,
    unknown_refs: int,
    overfills: int,
    integrity: str,
) -> bytes:
    """One RowBinary ``book_status`` row."""
    return (
        key
        + _STATUS_PACK(seq, ts_event, messages, orders, unknown_refs, overfills)
        + encode_string(integrity)
    )


def depth_row(key: bytes, seq: int, reason: str, ts_event: int, depth: DepthColumns) -> bytes:
    """One RowBinary ``depth_snapshots`` row (the arrays packed by one struct per pair of lengths)."""
    bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = depth
    bids, asks = len(bid_prices), len(ask_prices)
    pack = _DEPTH_ARRAYS.get((bids, asks))
    if pack is None:
        pack = _depth_arrays(bids, asks)
    return b"".join(
        (
            key,
            _DEPTH_SEQ_PACK(seq),
            SHORT_STRINGS[reason],
            pack(
                ts_event,
                bids,
                *bid_prices,
                bids,
                *bid_shares,
                bids,
                *bid_orders,
                asks,
                *ask_prices,
                asks,
                *ask_shares,
                asks,
                *ask_orders,
            ),
        )
    )


_DEPTH_ARRAYS: dict[tuple[int, int], Callable[..., bytes]] = {}
"""``ts_event`` and the six arrays of a depth row, by (bid levels, ask levels)."""


def _depth_arrays(bids: int, asks: int) -> Callable[..., bytes]:
    """The packer of :data:`_DEPTH_ARRAYS` for these lengths (an array's length is one LEB128 byte
    below 128; deeper books take the general writers)."""
    if bids >= 0x80 or asks >= 0x80:

        def general(ts_event: int, *values: int) -> bytes:
            out = bytearray(_DEPTH_TIME_PACK(ts_event))
            position = 0
            for write in _DEPTH_ARRAY_WRITERS:
                count = values[position]
                write(out, values[position + 1 : position + 1 + count])
                position += 1 + count
            return bytes(out)

        return general
    codes = [column_type for _, column_type in TABLE_COLUMNS[DEPTH_SNAPSHOTS][_FIRST + 3 :]]
    fixed = [fixed_width_struct([code.removeprefix("Array(").removesuffix(")")]).format[1:] for code in codes]
    layout = "".join(
        f"B{count}{code}" for count, code in zip((bids, bids, bids, asks, asks, asks), fixed, strict=True)
    )
    pack = struct.Struct("<q" + layout).pack
    _DEPTH_ARRAYS[(bids, asks)] = pack
    return pack
