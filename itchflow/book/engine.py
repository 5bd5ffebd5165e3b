"""A book plus the order-book stage's per-run loop over it, in C or in Python behind one interface.

The stage keeps one :class:`BookEngine` per (venue, symbol) and never asks which kind it holds:
:func:`new_engine` and :func:`engine_from_snapshot` pick it once, when the book is made --
:class:`NativeEngine` (the C book of :mod:`itchflow.book.native`, whose loop and encoders are C)
when the extension is built and not disabled (``ITCHFLOW_NATIVE=python``, see
:func:`itchflow.extensions.use_native`), else :class:`PythonEngine` (the reference
:class:`~itchflow.book.OrderBook` with the loop of :mod:`itchflow.book.columns`). Both write the
same bytes (``tests/unit/test_native_book.py``) and the same book snapshots.

An engine also encodes what only it can see cheaply: each top-of-book change as it happens (the
ClickHouse row and the Redis stream entry) and the depth snapshot, in the wire formats of
:mod:`itchflow.sinks.book_tables` and :mod:`itchflow.sinks.book_redis` for the key it was made for
(:class:`BookWire`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from itchflow.book.columns import apply_columns
from itchflow.book.core import OrderBook
from itchflow.book.native import NativeBook, encode_int_hash, use_native
from itchflow.book.values import DepthColumns, TopOfBook
from itchflow.normalize import ColumnViews
from itchflow.sinks.book_redis import BookKeys, depth_hash, stream_entries
from itchflow.sinks.book_tables import SHORT_STRINGS, depth_row, top_of_book_rows


class BookWire(NamedTuple):
    """How one book's outputs are keyed on the wire."""

    row_key: bytes
    """venue and symbol RowBinary-encoded (:func:`~itchflow.sinks.book_tables.row_key`)."""
    keys: BookKeys
    """its Redis encoders (:func:`~itchflow.sinks.book_redis.book_keys`)."""


class Applied(NamedTuple):
    """What :meth:`BookEngine.apply_events` did to one run of events (the C book returns this tuple)."""

    applied: int
    duplicates: int
    last_seq: int
    last_ts_event: int
    max_ts_event: int
    top: TopOfBook
    tob_changes: int
    """How many events changed the top of book ..."""
    tob_rows: bytes
    """... their ``top_of_book`` RowBinary rows ..."""
    stream_entries: list[bytes]
    """... and their XADD commands."""
    stream_ms: int
    """Millisecond part of the last stream entry id after them."""
    trade_rows: list[tuple[Any, ...]]
    """(book seq, ts_event, source, match number, price, shares, side, printable)."""
    deep: bool
    """An event touched a level within the top ``depth_levels`` of its side (or could have)."""


class BookEngine(Protocol):
    """The stage's interface to one book (see the module docstring)."""

    @property
    def book(self) -> Any:
        """The L3 book (:class:`~itchflow.book.OrderBook` or :class:`~itchflow.book.native.NativeBook`:
        same queries, counters and snapshots)."""

    def apply_events(
        self,
        views: ColumnViews,
        start: int,
        count: int,
        last_seq: int,
        seq_base: int,
        top: TopOfBook,
        depth_levels: int,
        deep: bool,
        attributed: frozenset[int],
        stream_ms: int,
    ) -> Applied:
        """Apply events ``start .. start + count - 1`` of ``views`` (see
        :func:`~itchflow.book.columns.apply_columns`); ``stream_ms`` is the millisecond of the last
        stream entry written."""

    def show_depth(self, levels: int) -> bool:
        """Make the top ``levels`` levels the shown depth; whether they differ from it."""

    def shown_depth(self) -> DepthColumns:
        """The depth last shown (:meth:`show_depth`, :meth:`set_shown_depth`)."""

    def set_shown_depth(self, depth: DepthColumns) -> None: ...

    def encode_depth(self, levels: int, seq: int, reason: str, ts_event: int) -> tuple[bytes, bytes]:
        """The ``depth_snapshots`` row and the depth hash's HSET of the top ``levels`` levels."""

    def encode_tob_hash(self, values: tuple[int, ...]) -> bytes:
        """The top-of-book hash's HSET of ``values`` (in the order of its fields)."""


class PythonEngine:
    """:class:`BookEngine` of an :class:`~itchflow.book.OrderBook` (or a subclass)."""

    __slots__ = ("book", "wire", "_shown")

    def __init__(self, book: OrderBook, wire: BookWire) -> None:
        self.book = book
        self.wire = wire
        self._shown: DepthColumns = [[], [], [], [], [], []]

    def apply_events(
        self,
        views: ColumnViews,
        start: int,
        count: int,
        last_seq: int,
        seq_base: int,
        top: TopOfBook,
        depth_levels: int,
        deep: bool,
        attributed: frozenset[int],
        stream_ms: int,
    ) -> Applied:
        if start or count != len(views.kind):
            views = ColumnViews(*[view[start : start + count] for view in views])
        done = apply_columns(self.book, views, last_seq, seq_base, top, depth_levels, deep, attributed)
        wire = self.wire
        top_rows = done.top_rows
        entries, stream_ms = stream_entries(wire.keys.stream, top_rows, stream_ms)
        return Applied(
            done.applied,
            done.duplicates,
            done.last_seq,
            done.last_ts_event,
            done.max_ts_event,
            done.top,
            len(top_rows),
            top_of_book_rows(wire.row_key, top_rows),
            entries,
            stream_ms,
            done.trade_rows,
            done.deep,
        )

    def show_depth(self, levels: int) -> bool:
        depth = self.book.depth_columns(levels)
        if depth == self._shown:
            return False
        self._shown = depth
        return True

    def shown_depth(self) -> DepthColumns:
        return self._shown

    def set_shown_depth(self, depth: DepthColumns) -> None:
        self._shown = depth

    def encode_depth(self, levels: int, seq: int, reason: str, ts_event: int) -> tuple[bytes, bytes]:
        depth = self._shown  # the top ``levels`` levels: the stage shows them before every depth row
        wire = self.wire
        return depth_row(wire.row_key, seq, reason, ts_event, depth), depth_hash(
            wire.keys.depth_head, seq, ts_event, depth
        )

    def encode_tob_hash(self, values: tuple[int, ...]) -> bytes:
        return self.wire.keys.tob_hash.encode(values)


class NativeEngine:
    """:class:`BookEngine` of a :class:`~itchflow.book.native.NativeBook`: the loop, the shown depth
    and the encoders are the C book's own."""

    __slots__ = ("book", "wire", "show_depth", "shown_depth", "set_shown_depth", "_emit_head")

    def __init__(self, book: NativeBook, wire: BookWire) -> None:
        self.book = book
        self.wire = wire
        self.show_depth = book.show_depth
        self.shown_depth = book.shown_depth
        self.set_shown_depth = book.set_shown_depth
        self._emit_head = (wire.row_key, *wire.keys.stream_layout)

    def apply_events(
        self,
        views: ColumnViews,
        start: int,
        count: int,
        last_seq: int,
        seq_base: int,
        top: TopOfBook,
        depth_levels: int,
        deep: bool,
        attributed: frozenset[int],
        stream_ms: int,
    ) -> Applied:
        return Applied._make(
            self.book.apply_events(
                views,
                last_seq,
                seq_base,
                top,
                depth_levels,
                deep,
                attributed,
                (*self._emit_head, stream_ms),
                start,
                count,
            )
        )

    def encode_depth(self, levels: int, seq: int, reason: str, ts_event: int) -> tuple[bytes, bytes]:
        wire = self.wire
        return self.book.encode_depth(
            levels, wire.row_key, seq, SHORT_STRINGS[reason], ts_event, wire.keys.depth_head
        )

    def encode_tob_hash(self, values: tuple[int, ...]) -> bytes:
        return encode_int_hash(*self.wire.keys.tob_layout, values)


def new_engine(symbol: str, venue: str, wire: BookWire) -> BookEngine:
    """An empty book's engine: :class:`NativeEngine` when the C book is built (and not disabled),
    else :class:`PythonEngine`."""
    if use_native():
        return NativeEngine(NativeBook(symbol=symbol, venue=venue), wire)
    return PythonEngine(OrderBook(symbol=symbol, venue=venue), wire)


def engine_from_snapshot(snapshot: dict[str, Any], wire: BookWire) -> BookEngine:
    """The engine of a book restored from a snapshot of either book (chosen as :func:`new_engine`)."""
    if use_native():
        return NativeEngine(NativeBook.from_snapshot(snapshot), wire)
    return PythonEngine(OrderBook.from_snapshot(snapshot), wire)
