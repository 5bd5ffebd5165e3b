"""The pure core of the order-book job: one (venue, symbol)'s L3 book plus what it last emitted.

The order-book job (``jobs/order_book.py``) keeps one stage per symbol of its partition, live in
:class:`~itchflow.pipeline.partition_books.PartitionBooks`, and per run of a symbol in a
``market-data-normalized`` record does::

    output = stage.apply(batch)          # one call per batch (run) of events
    # emit output.clickhouse ((table, RowBinary) chunks) and output.redis (RESP commands)

At compaction it saves ``stage.snapshot()``; ``BookStage.restore(state, ...)`` rebuilds the stage.

**Outputs** (ClickHouse tables of ``schemas/clickhouse/001_book.sql``, Redis keys under ``prefix``):

* ``top_of_book``: one row per event that changed the best bid or best ask (price, shares or order
  count of either side; an empty side is 0, 0, 0), and ``XADD {prefix}:tob-stream:{venue}:{symbol}
  MAXLEN ~ {stream_maxlen} {ms}-{seq} bid_px .. bid_sz .. bid_n .. ask_px .. ask_sz .. ask_n .. seq ..
  ts_event ..`` for the same change; once per batch ``HSET {prefix}:tob:{venue}:{symbol}`` with the
  batch's final top of book, its last event's ``seq``/``ts_event``, the last trade
  (``last_trade_px``/``_sz``/``_ts``, 0 before the first) and ``unknown_refs``, ``orders``.
* ``trades``: one row per execution: ``E`` at the resting order's price (looked up before the book
  applies it; an ``E`` for an unknown order is counted in ``unknown_refs``, never invented), ``C`` at
  its own price with its printable flag (side '' if the order is unknown: the exchange reported the
  price), ``P`` with its side, ``Q`` with side ''. Prints of zero shares are not trades (as in the book).
* ``depth_snapshots``: at most one row at the end of a batch: reason ``change`` when the top
  ``depth_levels`` levels differ from the last snapshot emitted, otherwise reason ``cadence`` when
  event time entered a new ``cadence_ns`` interval since the last snapshot (so every interval with
  events has a snapshot of either reason). The row describes the book after the batch:
  ``seq``/``ts_event`` are those of its last event. ``HSET {prefix}:depth:{venue}:{symbol} bids
  <json [[price, shares, orders], ...]> asks <json> seq .. ts_event ..`` with every ``change`` row.
* ``book_status``: one row per batch (last ``seq``, events applied so far, resting orders,
  ``unknown_refs``, ``overfills``, ``integrity``). ``integrity`` joins the problem codes: crossed or
  locked is checked from the top of book every batch (cheap); the full
  :meth:`~itchflow.book.OrderBook.check_integrity` (O(orders)) runs on the first batch and then every
  ``integrity_check_every`` batches, and the structural codes it found are repeated until the next
  full check.

**Idempotence.** Delivery is at least once, so a restore replays records whose outputs may already
be written. Every output is keyed by ``seq`` (below) and the same input always yields the same
bytes: ClickHouse's ReplacingMergeTree collapses re-inserted rows, ``HSET`` overwrites, and stream
ids are explicit and strictly increasing, so Redis refuses a replayed ``XADD`` (the Java writer
counts that reply as a duplicate). Events already applied are skipped and counted
(``duplicates_skipped``): a whole batch or its overlapping front; such events produce nothing and
leave the state unchanged.

**Sequences and producer sessions.** Events carry ``seq``, numbered per (producer session,
symbol) from 0. The stage keeps the current ``session`` and the last ``seq`` applied in it; an event
with ``seq <= last_seq`` of the same session is a duplicate. A batch from a *new* session means the
producer restarted with fresh numbering: the events continue the same book (nothing is reset). To
keep keys and stream ids increasing, the stage numbers events with a *book sequence*
``seq_base + seq`` -- that is the ``seq`` of every output. ``seq_base`` is 0 in the first session,
so normally output ``seq`` equals the feed's; a new session starts at ``seq_base = last book seq +
1``. The sessions left behind are remembered (the last ``RETIRED_SESSIONS_KEPT``): a late batch of
one is skipped as duplicate, never applied twice. All of this is decided by the order of the
symbol's records in its Kafka partition, so a replay numbers everything the same way. A new
session is trusted to carry new events: replaying a feed from its start must reuse its session
(``itchflow replay`` names it after the file and date), or the book gets every order twice.

**Stream ids.** ``{ms}-{book seq}`` with ``ms = max(ts_event // 10**6, ms of the previous entry)``:
event time normally increases, but if a symbol's ``ts_event`` goes backwards the id keeps the
previous millisecond (the entry's ``ts_event`` field still holds the true time). The book sequence
strictly increases, so ids strictly increase too, and a replay recomputes exactly the same ids.

**State** (:meth:`BookStage.snapshot`): a pickle (protocol 5) of plain data only -- a dict of ints,
strs, lists, None -- read back with an unpickler that refuses any class. ``{"version": 1, "venue",
"symbol", "session", "retired_sessions", "seq_base", "last_seq", "messages", "batches",
"max_ts_event", "stream_ms", "top": [6 ints], "depth": [6 int lists] (the last emitted
:data:`DepthColumns`), "cadence_bucket", "structural": str, "book": OrderBook.to_snapshot()}``;
the book keeps its own versioned snapshot format. About 14 bytes per resting order.

**Hot path.** Events are read straight from the packed columns (``zip`` over ``memoryview`` casts)
and applied with the book's primitive methods. The top of book after each event, the resting order
before an execution and the top N levels are read from the book's internal structures (the ones
``itchflow/book/core.py`` documents as its hot path): its public queries build a frozen dataclass
per call, which would double the cost per event. Those reads are confined to :class:`_BookReader`
and :meth:`BookStage._apply_events`; ``tests/unit/test_book_stage_feeds.py`` pins them against the
public queries.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from itchflow.book import BUY, SELL, OrderBook
from itchflow.book.native import NativeBook, book_from_snapshot, encode_int_hash, is_native, new_book
from itchflow.normalize import FLAG_HAS_PRICE, FLAG_PRINTABLE, ColumnViews, Detail, EventKind, NormalizedBatch
from itchflow.sinks.resp import IntHashEncoder, IntStreamEncoder, command
from itchflow.sinks.rowbinary import encode_string, fixed_width_struct, writer_for

STATE_VERSION = 1
RETIRED_SESSIONS_KEPT = 16
"""How many earlier producer sessions a book remembers (to skip their late batches)."""

TOP_OF_BOOK = "top_of_book"
DEPTH_SNAPSHOTS = "depth_snapshots"
TRADES = "trades"
BOOK_STATUS = "book_status"

_KEY = (("venue", "LowCardinality(String)"), ("symbol", "LowCardinality(String)"))
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

TOB_FIELDS = ("bid_px", "bid_sz", "bid_n", "ask_px", "ask_sz", "ask_n", "seq", "ts_event")
"""Fields of every top-of-book stream entry, in order."""
TOB_HASH_FIELDS = (
    *TOB_FIELDS,
    "last_trade_px",
    "last_trade_sz",
    "last_trade_ts",
    "unknown_refs",
    "orders",
)
"""Fields of the top-of-book hash, in order."""


def _packer(table: str, first: int, stop: int) -> Any:
    """``struct.pack`` of the fixed-width columns ``first:stop`` of ``table``."""
    return fixed_width_struct([column_type for _, column_type in TABLE_COLUMNS[table][first:stop]]).pack


# Specialized RowBinary encoders: venue/symbol encoded once per book, one struct per run of
# fixed-width columns (the generic RowBinaryEncoder makes one call per value).
_TOB_PACK = _packer(TOP_OF_BOOK, 2, 10)  # seq .. ask_orders
_TRADE_TIME_PACK = _packer(TRADES, 2, 4)  # seq, ts_event
_TRADE_PRICE_PACK = _packer(TRADES, 5, 8)  # match_number, price, shares
_TRADE_FLAG_PACK = _packer(TRADES, 9, 10)  # printable
_STATUS_PACK = _packer(BOOK_STATUS, 2, 8)  # seq .. overfills
_DEPTH_SEQ_PACK = _packer(DEPTH_SNAPSHOTS, 2, 3)
_DEPTH_TIME_PACK = _packer(DEPTH_SNAPSHOTS, 4, 5)
_DEPTH_ARRAY_WRITERS = tuple(writer_for(column_type) for _, column_type in TABLE_COLUMNS[DEPTH_SNAPSHOTS][5:])
_SHORT_STRINGS = {
    text: encode_string(text) for text in ("", BUY, SELL, "E", "C", "P", "Q", "change", "cadence")
}

_ADDED = int(EventKind.ORDER_ADDED)
_EXECUTED = int(EventKind.ORDER_EXECUTED)
_CANCELLED = int(EventKind.ORDER_CANCELLED)
_DELETED = int(EventKind.ORDER_DELETED)
_REPLACED = int(EventKind.ORDER_REPLACED)
_TRADE = int(EventKind.TRADE)
_CROSS_TRADE = int(EventKind.CROSS_TRADE)
_SIDE_NAMES = tuple(chr(code) for code in range(256))
_BUY_CODE = ord(BUY)
_EMPTY_TOP = (0, 0, 0, 0, 0, 0)
_LOWEST = -(1 << 63)
_HIGHEST = 1 << 64
_NANOS_PER_MS = 1_000_000

TopOfBook = tuple[int, int, int, int, int, int]
"""(bid price, bid shares, bid orders, ask price, ask shares, ask orders); 0, 0, 0 for an empty side."""
DepthColumns = list[list[int]]
"""The top levels as the depth table stores them: ``[bid_prices, bid_shares, bid_orders, ask_prices,
ask_shares, ask_orders]``, each list best level first."""


@dataclass(frozen=True, slots=True)
class BookStageConfig:
    """Settings of the order-book stage (the job builds it from its command line)."""

    depth_levels: int = 10
    """L2 levels per side in depth snapshots and the Redis depth hash."""
    cadence_ns: int = 1_000_000_000
    """Event-time interval of periodic depth snapshots."""
    redis_prefix: str = "itchflow"
    """First component of every Redis key."""
    stream_maxlen: int = 100_000
    """Approximate length cap of each top-of-book stream (``MAXLEN ~``; 0 keeps everything)."""
    integrity_check_every: int = 1000
    """Run the full integrity check every this many batches (it costs ~0.2 us per resting order)."""
    compact_every_records: int = 64
    """Write the snapshots of the changed books (and clear the log) every this many records."""
    compact_log_bytes: int = 8 << 20
    """... or once the records logged since the last compaction reach this many bytes."""

    def __post_init__(self) -> None:
        if self.depth_levels < 1:
            raise ValueError(f"depth_levels must be at least 1, not {self.depth_levels}")
        if self.cadence_ns < 1:
            raise ValueError(f"cadence_ns must be positive, not {self.cadence_ns}")
        if self.stream_maxlen < 0:
            raise ValueError(f"stream_maxlen must not be negative, not {self.stream_maxlen}")
        if self.compact_every_records < 1 or self.compact_log_bytes < 1:
            raise ValueError("compact_every_records and compact_log_bytes must be at least 1")
        if self.integrity_check_every < 1:
            raise ValueError(f"integrity_check_every must be at least 1, not {self.integrity_check_every}")


@dataclass(frozen=True, slots=True)
class StageOutput:
    """What one batch produced: sink payloads plus counters for the job's metrics."""

    clickhouse: tuple[tuple[str, bytes], ...]
    """(table, RowBinary rows), one chunk per table that has rows."""
    redis_commands: int
    """How many RESP commands ``redis`` holds."""
    redis: bytes
    """Pipelined RESP commands."""
    events_applied: int
    duplicates_skipped: int
    tob_changes: int
    trades: int
    unknown_refs: int
    """Unknown order references seen in this batch (the book's counter delta)."""

    @property
    def counters(self) -> dict[str, int]:
        """The counters by name, for metrics."""
        return {
            "events_applied": self.events_applied,
            "duplicates_skipped": self.duplicates_skipped,
            "tob_changes": self.tob_changes,
            "trades": self.trades,
            "unknown_refs": self.unknown_refs,
        }


class Outputs:
    """What a sequence of batches produced, accumulated in place (the job uses one per record).

    :meth:`BookStage.apply_columns` appends here instead of returning per-batch objects, so a
    record of many symbols' runs costs one set of lists, not one output object per run.
    """

    __slots__ = (
        "top_of_book",
        "trades",
        "depth_snapshots",
        "book_status",
        "redis",
        "events_applied",
        "duplicates_skipped",
        "tob_changes",
        "trade_count",
        "unknown_refs",
    )

    def __init__(self) -> None:
        self.top_of_book: list[bytes] = []
        self.trades: list[bytes] = []
        self.depth_snapshots: list[bytes] = []
        self.book_status: list[bytes] = []
        #: one RESP command per entry
        self.redis: list[bytes] = []
        self.events_applied = 0
        self.duplicates_skipped = 0
        self.tob_changes = 0
        self.trade_count = 0
        self.unknown_refs = 0

    def clickhouse(self) -> tuple[tuple[str, bytes], ...]:
        """(table, RowBinary rows), one chunk per table that has rows."""
        tables = (
            (TOP_OF_BOOK, self.top_of_book),
            (TRADES, self.trades),
            (DEPTH_SNAPSHOTS, self.depth_snapshots),
            (BOOK_STATUS, self.book_status),
        )
        return tuple((table, b"".join(rows)) for table, rows in tables if rows)

    def stage_output(self) -> StageOutput:
        return StageOutput(
            clickhouse=self.clickhouse(),
            redis_commands=len(self.redis),
            redis=b"".join(self.redis),
            events_applied=self.events_applied,
            duplicates_skipped=self.duplicates_skipped,
            tob_changes=self.tob_changes,
            trades=self.trade_count,
            unknown_refs=self.unknown_refs,
        )


class _Applied(NamedTuple):
    """What the event loop did to one batch."""

    applied: int
    duplicates: int
    last_seq: int
    last_ts_event: int
    max_ts_event: int
    top: TopOfBook
    top_rows: list[tuple[int, ...]]
    """(book seq, ts_event, *top of book) per change."""
    trade_rows: list[tuple[Any, ...]]
    """(book seq, ts_event, source, match number, price, shares, side, printable)."""
    deep: bool
    """An event touched a level within the top ``depth_levels`` of its side (or could have)."""
    encoded_top: tuple[int, bytes, list[bytes], int] | None = None
    """From the C book: the changes already encoded -- (count, top_of_book rows, XADD commands,
    ``stream_ms`` after them) -- and ``top_rows`` empty."""


class _BookReader:
    """Cheap read-only views of an :class:`OrderBook`'s internals (see the module docstring).

    The book mutates these containers in place, so the references stay valid while it applies
    events; take a new reader after the book object changes.
    """

    __slots__ = ("orders", "bid_levels", "ask_levels", "bid_prices", "ask_prices")

    def __init__(self, book: OrderBook) -> None:
        self.orders: dict[int, tuple[int, int, bool]] = book._orders
        self.bid_levels: dict[int, list[int]] = book._bid_levels
        self.ask_levels: dict[int, list[int]] = book._ask_levels
        self.bid_prices: list[int] = book._bid_prices  # ascending: best bid last
        self.ask_prices: list[int] = book._ask_prices  # ascending: best ask first

    def depth(self, levels: int) -> DepthColumns:
        """The best ``levels`` levels per side, best first, as :data:`DepthColumns`."""
        bid_prices = self.bid_prices[-levels:][::-1]
        ask_prices = self.ask_prices[:levels]
        bids = [self.bid_levels[price] for price in bid_prices]
        asks = [self.ask_levels[price] for price in ask_prices]
        return [
            bid_prices,
            [level[0] for level in bids],
            [level[1] for level in bids],
            ask_prices,
            [level[0] for level in asks],
            [level[1] for level in asks],
        ]


class _NativeReader:
    """What :class:`_BookReader` gives the stage, for a :class:`~itchflow.book.native.NativeBook`
    (whose event loop reads its own structures in C)."""

    __slots__ = ("depth",)

    def __init__(self, book: NativeBook) -> None:
        self.depth = book.depth_columns


def _reader_for(book: Any) -> _BookReader | _NativeReader:
    return _NativeReader(book) if is_native(book) else _BookReader(book)


class _Encoders(NamedTuple):
    """What encodes one book's outputs: built once per key and shared (pure, so sharing is safe)."""

    key_prefix: bytes
    """venue and symbol, RowBinary-encoded: the first two columns of every row."""
    stream: IntStreamEncoder
    tob_hash: IntHashEncoder
    depth_head: bytes
    """``HSET {depth key} bids`` as the head of a 10-argument RESP array."""
    stream_layout: tuple[bytes, tuple[bytes, ...]]
    """``stream.layout`` (for the C book's encoders)"""
    tob_layout: tuple[bytes, tuple[bytes, ...]]
    """``tob_hash.layout``"""


@lru_cache(maxsize=16_384)
def _encoders(venue: str, symbol: str, redis_prefix: str, stream_maxlen: int) -> _Encoders:
    """The encoders of one (venue, symbol); cached, since a stage is rebuilt from state every batch."""
    prefix = f"{redis_prefix}:"
    stream = IntStreamEncoder(f"{prefix}tob-stream:{venue}:{symbol}", TOB_FIELDS, stream_maxlen or None)
    tob_hash = IntHashEncoder(f"{prefix}tob:{venue}:{symbol}", TOB_HASH_FIELDS)
    return _Encoders(
        key_prefix=encode_string(venue) + encode_string(symbol),
        stream=stream,
        tob_hash=tob_hash,
        depth_head=b"*10\r\n" + command(b"HSET", f"{prefix}depth:{venue}:{symbol}", b"bids")[4:],
        stream_layout=stream.layout,
        tob_layout=tob_hash.layout,
    )


class BookStage:
    """State of one (venue, symbol): the L3 book plus what was last emitted. See the module docstring."""

    __slots__ = (
        "venue",
        "symbol",
        "config",
        "_book",
        "session",
        "retired_sessions",
        "seq_base",
        "last_seq",
        "messages",
        "batches",
        "max_ts_event",
        "stream_ms",
        "top",
        "cadence_bucket",
        "structural",
        "_encoders",
        "_depth_known",
        "_reader",
        "_native",
        "_depth",
    )

    def __init__(self, *, venue: str, symbol: str, config: BookStageConfig) -> None:
        self.venue = venue
        self.symbol = symbol
        self.config = config
        #: the L3 book: a NativeBook when the C extension is built, else an OrderBook (same behaviour)
        self.book = new_book(symbol, venue)
        #: producer session of the events applied last; None before the first batch
        self.session: str | None = None
        self.retired_sessions: list[str] = []
        #: book sequence = seq_base + event seq (see the module docstring)
        self.seq_base = 0
        #: seq of the last event applied in ``session``; -1 before the first
        self.last_seq = -1
        #: events applied so far (every kind, every session)
        self.messages = 0
        #: batches that applied at least one event
        self.batches = 0
        self.max_ts_event = 0
        #: millisecond part of the last stream entry id
        self.stream_ms = 0
        self.top: TopOfBook = _EMPTY_TOP
        #: the depth last emitted (see :attr:`depth`)
        self.depth = [[], [], [], [], [], []]
        #: floor(event time / cadence) of the last depth snapshot; -1 before the first
        self.cadence_bucket = -1
        #: structural problem codes found by the last full integrity check, comma-joined
        self.structural = ""
        self._encoders = _encoders(venue, symbol, config.redis_prefix, config.stream_maxlen)
        #: whether ``depth`` was compared with the book since this object was made (a restore may
        #: bring a depth of another ``depth_levels``): until then every batch rebuilds it
        self._depth_known = False

    @property
    def book(self) -> Any:
        """The L3 book (:class:`~itchflow.book.OrderBook` or :class:`~itchflow.book.native.NativeBook`)."""
        return self._book

    @book.setter
    def book(self, book: Any) -> None:
        try:
            depth = self.depth  # the depth last emitted stays with the stage, whoever keeps it
        except AttributeError:  # the first book (__init__)
            depth = None
        self._book = book
        self._reader = _reader_for(book)
        self._native = is_native(book)
        if depth is not None:
            self.depth = depth

    @property
    def depth(self) -> DepthColumns:
        """The depth last emitted: the book's top ``depth_levels`` levels after the last batch that
        could have moved them. A C book keeps it itself (``show_depth`` compares and updates it
        without a Python int per level), so set :attr:`book` first."""
        return self._book.shown_depth() if self._native else self._depth

    @depth.setter
    def depth(self, depth: DepthColumns) -> None:
        if self._native:
            self._book.set_shown_depth(depth)
        else:
            self._depth = depth

    # ------------------------------------------------------------------ state

    @classmethod
    def restore(cls, state: bytes | None, *, venue: str, symbol: str, config: BookStageConfig) -> BookStage:
        """The stage saved in ``state`` (a :meth:`snapshot`), or a new one when ``state`` is None/empty.

        Raises:
            ValueError: an unknown state version, or a state of another venue or symbol.
        """
        stage = cls(venue=venue, symbol=symbol, config=config)
        if not state:
            return stage
        saved = _PlainUnpickler(io.BytesIO(state)).load()
        if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
            version = saved.get("version") if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"unsupported book stage state version {version!r} (expected {STATE_VERSION})")
        if (saved["venue"], saved["symbol"]) != (venue, symbol):
            raise ValueError(
                f"state of {saved['venue']}:{saved['symbol']} restored for {venue}:{symbol} (keying bug?)"
            )
        stage.book = book_from_snapshot(saved["book"])
        stage.session = saved["session"]
        stage.retired_sessions = list(saved["retired_sessions"])
        stage.seq_base = saved["seq_base"]
        stage.last_seq = saved["last_seq"]
        stage.messages = saved["messages"]
        stage.batches = saved["batches"]
        stage.max_ts_event = saved["max_ts_event"]
        stage.stream_ms = saved["stream_ms"]
        stage.top = tuple(saved["top"])  # type: ignore[assignment]
        stage.depth = saved["depth"]
        stage.cadence_bucket = saved["cadence_bucket"]
        stage.structural = saved["structural"]
        return stage

    def snapshot(self) -> bytes:
        """The whole state as versioned plain data (see the module docstring); :meth:`restore` reads it."""
        state = {
            "version": STATE_VERSION,
            "venue": self.venue,
            "symbol": self.symbol,
            "session": self.session,
            "retired_sessions": list(self.retired_sessions),
            "seq_base": self.seq_base,
            "last_seq": self.last_seq,
            "messages": self.messages,
            "batches": self.batches,
            "max_ts_event": self.max_ts_event,
            "stream_ms": self.stream_ms,
            "top": list(self.top),
            "depth": self.depth,
            "cadence_bucket": self.cadence_bucket,
            "structural": self.structural,
            "book": self.book.to_snapshot(),
        }
        return pickle.dumps(state, protocol=5)

    @property
    def last_book_seq(self) -> int:
        """Book sequence of the last event applied (-1 before the first)."""
        return self.seq_base + self.last_seq

    # ------------------------------------------------------------------ the one entry point

    def apply(self, batch: NormalizedBatch) -> StageOutput:
        """Apply one batch of this symbol's events; return the rows and commands it produced.

        Raises:
            ValueError: the batch is of another venue or symbol.
        """
        if (batch.venue, batch.symbol) != (self.venue, self.symbol):
            raise ValueError(
                f"batch of {batch.venue}:{batch.symbol} applied to the book of {self.venue}:{self.symbol}"
            )
        out = Outputs()
        self.apply_columns(batch.session, batch.columns.views(), batch.details, out)
        return out.stage_output()

    def apply_columns(
        self,
        session: str,
        views: ColumnViews,
        details: tuple[Detail, ...],
        out: Outputs,
        start: int = 0,
        count: int = -1,
    ) -> None:
        """Apply this symbol's events given as column views (``details`` indexed from the first of
        them); append what they produce to ``out``. What :meth:`apply` does, without per-batch
        objects. With ``count`` >= 0 the events are ``start .. start + count - 1`` of the views (a
        bundle's run: the C book reads them in place, the Python book gets slices)."""
        if count < 0:
            count = len(views.kind)
        elif not self._native:
            views = ColumnViews(*[view[start : start + count] for view in views])
            start = 0
        if count == 0:
            return
        if session in self.retired_sessions:
            out.duplicates_skipped += count  # a late batch of an earlier producer session
            return
        if session != self.session:
            self._start_session(session)
        book = self.book
        unknown_before = book.unknown_refs
        done = self._apply_events(views, _attributed_seqs(views, details, start), start, count)
        out.duplicates_skipped += done.duplicates
        if done.applied == 0:
            return
        self.last_seq = done.last_seq
        self.messages += done.applied
        self.batches += 1
        if done.max_ts_event > self.max_ts_event:
            self.max_ts_event = done.max_ts_event
        self.top = done.top
        self._emit(done, out)
        out.events_applied += done.applied
        out.tob_changes += len(done.top_rows) if done.encoded_top is None else done.encoded_top[0]
        out.trade_count += len(done.trade_rows)
        out.unknown_refs += book.unknown_refs - unknown_before

    def _start_session(self, session: str) -> None:
        """A new producer session continues this book, numbered after everything applied so far."""
        if self.session is not None:
            self.seq_base = self.last_book_seq + 1
            self.retired_sessions = [*self.retired_sessions, self.session][-RETIRED_SESSIONS_KEPT:]
        self.session = session
        self.last_seq = -1

    # ------------------------------------------------------------------ the hot loop

    def _apply_events(
        self, views: ColumnViews, attributed: frozenset[int], start: int = 0, count: int = -1
    ) -> _Applied:
        """Apply every new event of the batch to the book; collect top-of-book changes and trades.
        (The C book takes the batch as ``count`` events from ``start`` of the views; the Python
        book's views are the batch.)

        One long function on purpose: it runs once per event (locals, no calls but the book's).
        The best levels are re-read only after an event that may have changed them: one that adds
        at or through the best price of its side, or touches an order resting at the best price
        (which needs the order's price and side, read before the book applies the event), or adds
        a reference that is still live (the book replaces that order, which can be on either side).
        ``deep`` is set by any event at or above the ``depth_levels``-th best price of its side
        (taken before the batch: until such an event the top levels cannot move), so the depth
        is rebuilt and compared only after batches that may have changed it.
        """
        book = self.book
        if is_native(book):  # the same loop in C (itchflow/book/_cbook.c), changes encoded there too
            encoders = self._encoders
            emit = (encoders.key_prefix, *encoders.stream_layout, self.stream_ms)
            return _Applied._make(
                book.apply_events(
                    views,
                    self.last_seq,
                    self.seq_base,
                    self.top,
                    self.config.depth_levels,
                    not self._depth_known,
                    attributed,
                    emit,
                    start,
                    count,
                )
            )
        reader = self._reader
        assert isinstance(reader, _BookReader)
        orders = reader.orders
        resting = orders.get
        bid_levels, ask_levels = reader.bid_levels, reader.ask_levels
        bid_prices, ask_prices = reader.bid_prices, reader.ask_prices
        add_order, delete_order, cancel_order = book.add_order, book.delete_order, book.cancel_order
        execute_order, execute_at_price = book.execute_order, book.execute_order_at_price
        replace_order, record_trade = book.replace_order, book.record_trade
        side_names = _SIDE_NAMES
        levels = self.config.depth_levels
        bid_floor = bid_prices[-levels] if len(bid_prices) >= levels else _LOWEST
        ask_ceiling = ask_prices[levels - 1] if len(ask_prices) >= levels else _HIGHEST
        deep = not self._depth_known
        base, last_seq = self.seq_base, self.last_seq
        bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders = self.top
        top_rows: list[tuple[int, ...]] = []
        trade_rows: list[tuple[Any, ...]] = []
        duplicates = max_ts = last_ts = 0
        for kind, flags, side, ts, seq, ref, new_ref, match, shares, price in zip(*views, strict=True):
            if seq <= last_seq:
                duplicates += 1
                continue
            last_seq, last_ts = seq, ts
            if ts > max_ts:
                max_ts = ts
            # sides whose best level the event may change: 1 bid, 2 ask, 3 both
            if kind == _ADDED:
                if ref in orders:
                    sides = 3
                    deep = True
                else:
                    sides = 0
                if side == _BUY_CODE:
                    if price >= bid_price:
                        sides |= 1
                    if price >= bid_floor:
                        deep = True
                else:
                    if not ask_price or price <= ask_price:
                        sides |= 2
                    if price <= ask_ceiling:
                        deep = True
                if attributed and seq in attributed:
                    add_order(ref, side_names[side], price, shares, attributed=True)
                else:
                    add_order(ref, side_names[side], price, shares)
            elif kind == _DELETED:
                order = resting(ref)
                delete_order(ref)
                if order is None:
                    continue
                if order[2]:
                    sides = order[0] == bid_price
                    if order[0] >= bid_floor:
                        deep = True
                else:
                    sides = 2 * (order[0] == ask_price)
                    if order[0] <= ask_ceiling:
                        deep = True
            elif kind == _CANCELLED:
                order = resting(ref)
                cancel_order(ref, shares)
                if order is None:
                    continue
                if order[2]:
                    sides = order[0] == bid_price
                    if order[0] >= bid_floor:
                        deep = True
                else:
                    sides = 2 * (order[0] == ask_price)
                    if order[0] <= ask_ceiling:
                        deep = True
            elif kind == _EXECUTED:
                order = resting(ref)
                if flags & FLAG_HAS_PRICE:
                    printable = flags & FLAG_PRINTABLE
                    execute_at_price(ref, shares, price, ts, match, printable=bool(printable))
                    if shares > 0:
                        side_name = "" if order is None else (BUY if order[2] else SELL)
                        trade_rows.append((base + seq, ts, "C", match, price, shares, side_name, printable))
                else:
                    execute_order(ref, shares, ts, match)
                    if order is not None and shares > 0:
                        side_name = BUY if order[2] else SELL
                        trade_rows.append((base + seq, ts, "E", match, order[0], shares, side_name, 1))
                if order is None:
                    continue
                if order[2]:
                    sides = order[0] == bid_price
                    if order[0] >= bid_floor:
                        deep = True
                else:
                    sides = 2 * (order[0] == ask_price)
                    if order[0] <= ask_ceiling:
                        deep = True
            elif kind == _REPLACED:
                order = resting(ref)
                if new_ref in orders:
                    sides = 3
                    deep = True
                else:
                    sides = 0
                replace_order(ref, new_ref, price, shares)
                if order is None:
                    continue
                if order[2]:
                    if order[0] == bid_price or price >= bid_price:
                        sides |= 1
                    if order[0] >= bid_floor or price >= bid_floor:
                        deep = True
                else:
                    if order[0] == ask_price or price <= ask_price:
                        sides |= 2
                    if order[0] <= ask_ceiling or price <= ask_ceiling:
                        deep = True
            elif kind == _TRADE:
                record_trade(price, shares, ts, match)
                if shares > 0:
                    trade_rows.append((base + seq, ts, "P", match, price, shares, side_names[side], 1))
                continue
            elif kind == _CROSS_TRADE:
                record_trade(price, shares, ts, match, cross=True)
                if shares > 0:
                    trade_rows.append((base + seq, ts, "Q", match, price, shares, "", 1))
                continue
            else:
                continue  # not a book event: counted in ``messages`` only
            if not sides:
                continue
            changed = False
            if sides & 1:
                if bid_prices:
                    best = bid_prices[-1]
                    level_shares, level_orders = bid_levels[best]
                else:
                    best = level_shares = level_orders = 0
                if best != bid_price or level_shares != bid_shares or level_orders != bid_orders:
                    bid_price, bid_shares, bid_orders = best, level_shares, level_orders
                    changed = True
            if sides & 2:
                if ask_prices:
                    best = ask_prices[0]
                    level_shares, level_orders = ask_levels[best]
                else:
                    best = level_shares = level_orders = 0
                if best != ask_price or level_shares != ask_shares or level_orders != ask_orders:
                    ask_price, ask_shares, ask_orders = best, level_shares, level_orders
                    changed = True
            if changed:
                top_rows.append(
                    (base + seq, ts, bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders)
                )
        top = (bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders)
        applied = len(views.kind) - duplicates
        return _Applied(applied, duplicates, last_seq, last_ts, max_ts, top, top_rows, trade_rows, deep)

    # ------------------------------------------------------------------ outputs of a batch

    def _emit(self, done: _Applied, out: Outputs) -> None:
        """Rows and Redis commands of an applied batch, appended to ``out`` (updates what was last emitted)."""
        seq, ts_event = self.seq_base + done.last_seq, done.last_ts_event
        prefix = self._encoders.key_prefix
        redis = out.redis
        if done.encoded_top is not None:
            changes, rows, entries, self.stream_ms = done.encoded_top
            if changes:
                out.top_of_book.append(rows)
                redis += entries
        elif done.top_rows:
            out.top_of_book.append(b"".join([prefix + _TOB_PACK(*row) for row in done.top_rows]))
            redis += self._stream_entries(done.top_rows)
        if done.trade_rows:
            out.trades.append(_encode_trades(prefix, done.trade_rows))
        reason = self._depth_reason(done.deep)
        native = done.encoded_top is not None
        if reason is not None:
            if native:  # self.depth is the book's top levels: the C book encodes them itself
                row, command = self.book.encode_depth(
                    self.config.depth_levels,
                    prefix,
                    seq,
                    _SHORT_STRINGS[reason],
                    ts_event,
                    self._encoders.depth_head,
                )
                out.depth_snapshots.append(row)
                if reason == "change":
                    redis.append(command)
            else:
                out.depth_snapshots.append(_encode_depth(prefix, seq, reason, ts_event, self._depth))
                if reason == "change":
                    redis.append(self._depth_command(seq, ts_event))
        out.book_status.append(self._status_row(seq, ts_event))
        redis.append(self._tob_command(seq, ts_event, native))

    def _stream_entries(self, top_rows: list[tuple[int, ...]]) -> list[bytes]:
        """One XADD per top-of-book change, ids ``{ms}-{book seq}`` strictly increasing."""
        encode = self._encoders.stream.encode
        last_ms = self.stream_ms
        entries = []
        for seq, ts_event, *top in top_rows:
            ms = ts_event // _NANOS_PER_MS
            if ms < last_ms:
                ms = last_ms  # event time went backwards: keep the id increasing
            last_ms = ms
            entries.append(encode(ms, seq, (*top, seq, ts_event)))
        self.stream_ms = last_ms
        return entries

    def _depth_reason(self, deep: bool) -> str | None:
        """Why the book after this batch gets a depth row: ``change``, else ``cadence``, else None.

        ``self.depth`` always equals the book's top levels after a batch, so a batch that did not
        go ``deep`` cannot have changed them and skips rebuilding them.
        """
        bucket = self.max_ts_event // self.config.cadence_ns
        if deep:
            self._depth_known = True
            if self._native:
                changed = self._book.show_depth(self.config.depth_levels)
            else:
                depth = self._reader.depth(self.config.depth_levels)
                changed = depth != self._depth
                if changed:
                    self._depth = depth
            if changed:
                self.cadence_bucket = max(bucket, self.cadence_bucket)  # this interval has its snapshot
                return "change"
        if bucket > self.cadence_bucket:
            self.cadence_bucket = bucket
            return "cadence"
        return None

    def _status_row(self, seq: int, ts_event: int) -> bytes:
        """The ``book_status`` row (RowBinary); runs the full integrity check when it is due."""
        book = self.book
        if (self.batches - 1) % self.config.integrity_check_every == 0:
            found = {problem.code for problem in book.check_integrity()} - {"crossed", "locked"}
            self.structural = ",".join(sorted(found))
        integrity = self.structural
        bid_price, ask_price = self.top[0], self.top[3]
        if bid_price and ask_price and bid_price >= ask_price:
            code = "crossed" if bid_price > ask_price else "locked"
            integrity = ",".join(sorted([*integrity.split(","), code])) if integrity else code
        numbers = (seq, ts_event, self.messages, book.order_count, book.unknown_refs, book.overfills)
        return self._encoders.key_prefix + _STATUS_PACK(*numbers) + encode_string(integrity)

    def _tob_command(self, seq: int, ts_event: int, native: bool = False) -> bytes:
        book = self.book
        last = book._last_trade  # (price, shares, timestamp, match number), see the hot path note
        trade = (0, 0, 0) if last is None else last[:3]
        values = (*self.top, seq, ts_event, *trade, book.unknown_refs, book.order_count)
        if native:
            return encode_int_hash(*self._encoders.tob_layout, values)
        return self._encoders.tob_hash.encode(values)

    def _depth_command(self, seq: int, ts_event: int) -> bytes:
        """``HSET {depth key} bids <json> asks <json> seq <seq> ts_event <ts>`` as RESP."""
        bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = self._depth
        bids = _levels_json(bid_prices, bid_shares, bid_orders)
        asks = _levels_json(ask_prices, ask_shares, ask_orders)
        seq_text, ts_text = b"%d" % seq, b"%d" % ts_event
        return (
            b"%s$%d\r\n%s\r\n$4\r\nasks\r\n$%d\r\n%s\r\n$3\r\nseq\r\n$%d\r\n%s\r\n$8\r\nts_event\r\n$%d\r\n%s\r\n"
            % (
                self._encoders.depth_head,
                len(bids),
                bids,
                len(asks),
                asks,
                len(seq_text),
                seq_text,
                len(ts_text),
                ts_text,
            )
        )


def _encode_trades(key_prefix: bytes, rows: list[tuple[Any, ...]]) -> bytes:
    """RowBinary ``trades`` rows (``key_prefix`` is the encoded venue and symbol)."""
    strings = _SHORT_STRINGS
    return b"".join(
        [
            b"".join(
                (
                    key_prefix,
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


def _encode_depth(key_prefix: bytes, seq: int, reason: str, ts_event: int, depth: DepthColumns) -> bytes:
    """One RowBinary ``depth_snapshots`` row (the arrays packed by one struct per pair of lengths)."""
    bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = depth
    bids, asks = len(bid_prices), len(ask_prices)
    pack = _DEPTH_ARRAYS.get((bids, asks))
    if pack is None:
        pack = _depth_arrays(bids, asks)
    return b"".join(
        (
            key_prefix,
            _DEPTH_SEQ_PACK(seq),
            _SHORT_STRINGS[reason],
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


_DEPTH_ARRAYS: dict[tuple[int, int], Any] = {}
"""``ts_event`` and the six arrays of a depth row, by (bid levels, ask levels)."""


def _depth_arrays(bids: int, asks: int) -> Any:
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
    codes = [column_type for _, column_type in TABLE_COLUMNS[DEPTH_SNAPSHOTS][5:]]
    fixed = [fixed_width_struct([code.removeprefix("Array(").removesuffix(")")]).format[1:] for code in codes]
    layout = "".join(
        f"B{count}{code}" for count, code in zip((bids, bids, bids, asks, asks, asks), fixed, strict=True)
    )
    pack = struct.Struct("<q" + layout).pack
    _DEPTH_ARRAYS[(bids, asks)] = pack
    return pack


def _levels_json(prices: list[int], shares: list[int], orders: list[int]) -> bytes:
    """``[[price,shares,orders],...]`` (compact JSON) for the Redis depth hash."""
    return (
        b"[" + b",".join([b"[%d,%d,%d]" % level for level in zip(prices, shares, orders, strict=True)]) + b"]"
    )


def _attributed_seqs(views: ColumnViews, details: tuple[Detail, ...], start: int = 0) -> frozenset[int]:
    """Seqs of the adds that carry an MPID (ITCH F): the book counts them apart from A. (Details are
    indexed from event ``start`` of the views.)"""
    if not details:
        return frozenset()
    indexes = [fields["index"] for name, fields in details if name == "Attribution"]
    seqs = views.seq
    return frozenset(seqs[start + index] for index in indexes)


class _PlainUnpickler(pickle.Unpickler):
    """Reads pickles of plain data only: state bytes never name a class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"book stage state may hold plain data only, not {module}.{name}")
