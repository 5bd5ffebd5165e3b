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

**Sequences and feed days.** Events carry ``seq``: the symbol's message sequence in its feed day
(the venue's feed for one trading date), numbered from 0 by the producer from the day's first
message -- whatever it calls its session. The stage keeps the book's ``trading_date`` and the last
``seq`` applied; an event with ``seq <= last_seq`` is a duplicate, so replaying a day again, under
any session or file name, changes nothing and writes nothing new. A batch of another trading date
starts that day's book afresh (a day's orders never carry over: ITCH order references are per day):
rows carry ``trading_date`` in their keys, and every output of a day depends on that day's feed
only. Replay one day at a time per venue: batches of two days interleaved in a partition would start
the books over and over. ``seq_base`` (added to ``seq`` in outputs) is 0; only a book restored from a
state of the earlier, session-numbered layout keeps the base it had.

**Stream ids.** ``{ms}-{book seq}`` with ``ms = max(ts_event // 10**6, ms of the previous entry)``:
event time normally increases, but if a symbol's ``ts_event`` goes backwards the id keeps the
previous millisecond (the entry's ``ts_event`` field still holds the true time). The book sequence
strictly increases, so ids strictly increase too, and a replay recomputes exactly the same ids.

**State** (:meth:`BookStage.snapshot`): a pickle (protocol 5) of plain data only -- a dict of ints,
strs, lists, None -- read back with an unpickler that refuses any class. ``{"version": 2, "venue",
"symbol", "trading_date" (days since 1970-01-01, or None), "seq_base", "last_seq", "messages", "batches",
"max_ts_event", "stream_ms", "top": [6 ints], "depth": [6 int lists] (the last emitted
:data:`DepthColumns`), "cadence_bucket", "structural": str, "book": OrderBook.to_snapshot()}``;
the book keeps its own versioned snapshot format. About 14 bytes per resting order. Version 1
(``"session"`` and ``"retired_sessions"`` instead of ``"trading_date"``) still restores: its book
goes on in the trading date of the first batch it gets.

**Where the parts live.** The table columns and RowBinary rows are :mod:`itchflow.sinks.book_tables`,
the Redis keys and commands :mod:`itchflow.sinks.book_redis`; the book and the per-run event loop
over it are a :class:`~itchflow.book.engine.BookEngine` (the C book, or the Python book with the
loop of :mod:`itchflow.book.columns`), picked once when the book is made. This module keeps the
feed days, the sequencing, what was last emitted, and the snapshots.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

from itchflow.avro.bundle import days_since_epoch
from itchflow.book.engine import Applied, BookEngine, BookWire, engine_from_snapshot, new_engine
from itchflow.book.values import DepthColumns, TopOfBook
from itchflow.normalize import ColumnViews, Detail, EventKind
from itchflow.normalize.bundle import RunBatch
from itchflow.sinks.book_redis import book_keys
from itchflow.sinks.book_tables import (
    BOOK_STATUS,
    BROKEN_TRADES,
    DEPTH_SNAPSHOTS,
    TOP_OF_BOOK,
    TRADES,
    broken_trade_row,
    row_key,
    status_row,
    trade_rows,
)

STATE_VERSION = 2

_EMPTY_TOP = (0, 0, 0, 0, 0, 0)
BROKEN_TRADE = int(EventKind.BROKEN_TRADE)


def has_breaks(views: ColumnViews) -> bool:
    """Whether the events hold a broken trade (B): rare, so looked for in C over the kinds before
    any run lists its breaks."""
    return bytes(views.kind).find(BROKEN_TRADE) >= 0


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
        "prints",
        "breaks",
        "broken_trades",
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
        #: (venue, symbol, trade rows) per applied batch with trades: the rows as the engine made
        #: them, ``(book seq, ts_event, source, match, price, shares, side, printable)``
        self.prints: list[tuple[str, str, list[tuple]]] = []
        #: (venue, symbol, ts_event, book seq, match number) of every broken trade (B) applied
        self.breaks: list[tuple[str, str, int, int, int]] = []
        #: their ``broken_trades`` rows
        self.broken_trades: list[bytes] = []

    def clickhouse(self) -> tuple[tuple[str, bytes], ...]:
        """(table, RowBinary rows), one chunk per table that has rows."""
        tables = (
            (TOP_OF_BOOK, self.top_of_book),
            (TRADES, self.trades),
            (BROKEN_TRADES, self.broken_trades),
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


class BookStage:
    """State of one (venue, symbol): the L3 book plus what was last emitted. See the module docstring."""

    __slots__ = (
        "venue",
        "symbol",
        "config",
        "engine",
        "trading_date",
        "seq_base",
        "last_seq",
        "messages",
        "batches",
        "max_ts_event",
        "stream_ms",
        "top",
        "cadence_bucket",
        "structural",
        "wire",
        "_depth_known",
    )

    def __init__(
        self, *, venue: str, symbol: str, config: BookStageConfig, trading_date: int | None = None
    ) -> None:
        self.venue = venue
        self.symbol = symbol
        self.config = config
        #: the book's trading date (days since 1970-01-01); None: the first batch's
        self.trading_date = trading_date
        #: how this book's rows and commands are keyed
        self.wire = self._wire_of(trading_date or 0)
        #: the L3 book and the event loop over it (C when built, else Python; same behaviour)
        self.engine: BookEngine = new_engine(symbol, venue, self.wire)
        #: book sequence = seq_base + event seq (see the module docstring)
        self.seq_base = 0
        #: seq of the last event applied in the day; -1 before the first
        self.last_seq = -1
        #: events of the day applied so far (every kind)
        self.messages = 0
        #: batches that applied at least one event
        self.batches = 0
        self.max_ts_event = 0
        #: millisecond part of the last stream entry id
        self.stream_ms = 0
        self.top: TopOfBook = _EMPTY_TOP
        #: floor(event time / cadence) of the last depth snapshot; -1 before the first
        self.cadence_bucket = -1
        #: structural problem codes found by the last full integrity check, comma-joined
        self.structural = ""
        #: whether the shown depth was compared with the book since this object was made (a restore
        #: may bring a depth of another ``depth_levels``): until then every batch rebuilds it
        self._depth_known = False

    @property
    def book(self) -> Any:
        """The L3 book (:class:`~itchflow.book.OrderBook` or :class:`~itchflow.book.native.NativeBook`)."""
        return self.engine.book

    @property
    def depth(self) -> DepthColumns:
        """The depth last emitted: the book's top ``depth_levels`` levels after the last batch that
        could have moved them (the engine keeps it)."""
        return self.engine.shown_depth()

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
        if not isinstance(saved, dict) or saved.get("version") not in (1, STATE_VERSION):
            version = saved.get("version") if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"unsupported book stage state version {version!r} (expected {STATE_VERSION})")
        if (saved["venue"], saved["symbol"]) != (venue, symbol):
            raise ValueError(
                f"state of {saved['venue']}:{saved['symbol']} restored for {venue}:{symbol} (keying bug?)"
            )
        stage.trading_date = saved.get("trading_date")  # None in version 1: the next batch's day
        stage.wire = stage._wire_of(stage.trading_date or 0)
        stage.engine = engine_from_snapshot(saved["book"], stage.wire)
        stage.engine.set_shown_depth(saved["depth"])
        stage.seq_base = saved["seq_base"]
        stage.last_seq = saved["last_seq"]
        stage.messages = saved["messages"]
        stage.batches = saved["batches"]
        stage.max_ts_event = saved["max_ts_event"]
        stage.stream_ms = saved["stream_ms"]
        stage.top = tuple(saved["top"])  # type: ignore[assignment]
        stage.cadence_bucket = saved["cadence_bucket"]
        stage.structural = saved["structural"]
        return stage

    def snapshot(self) -> bytes:
        """The whole state as versioned plain data (see the module docstring); :meth:`restore` reads it."""
        state = {
            "version": STATE_VERSION,
            "venue": self.venue,
            "symbol": self.symbol,
            "trading_date": self.trading_date,
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

    def apply(self, batch: RunBatch) -> StageOutput:
        """Apply one batch of this symbol's events (a bundle's run of it); return the rows and
        commands it produced.

        Raises:
            ValueError: the batch is of another venue or symbol.
        """
        if (batch.venue, batch.symbol) != (self.venue, self.symbol):
            raise ValueError(
                f"batch of {batch.venue}:{batch.symbol} applied to the book of {self.venue}:{self.symbol}"
            )
        out = Outputs()
        trading_date = days_since_epoch(batch.trading_date)
        views = batch.columns.views()
        self.apply_columns(trading_date, views, batch.details, out, breaks=has_breaks(views))
        return out.stage_output()

    def apply_columns(
        self,
        trading_date: int,
        views: ColumnViews,
        details: tuple[Detail, ...],
        out: Outputs,
        start: int = 0,
        count: int = -1,
        breaks: bool = False,
    ) -> None:
        """Apply this symbol's events given as column views (``details`` indexed from the first of
        them) of the feed day ``trading_date`` (days since 1970-01-01); append what they produce to
        ``out``. What :meth:`apply` does, without per-batch objects. With ``count`` >= 0 the events are ``start .. start + count - 1`` of the views (a
        bundle's run, read in place). ``breaks``: the events may hold broken trades (B), to be
        listed in ``out.breaks`` when applied."""
        if count < 0:
            count = len(views.kind)
        if count == 0:
            return
        if trading_date != self.trading_date:
            self._start_day(trading_date)
        engine = self.engine
        book = engine.book
        unknown_before = book.unknown_refs
        last_before = self.last_seq
        done = engine.apply_events(
            views,
            start,
            count,
            self.last_seq,
            self.seq_base,
            self.top,
            self.config.depth_levels,
            not self._depth_known,
            _attributed_seqs(views, details, start),
            self.stream_ms,
        )
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
        out.tob_changes += done.tob_changes
        out.trade_count += len(done.trade_rows)
        out.unknown_refs += book.unknown_refs - unknown_before
        if done.trade_rows:
            out.prints.append((self.venue, self.symbol, done.trade_rows))
        if breaks:
            self._list_breaks(views, start, count, last_before, done.last_seq, out)

    def _list_breaks(
        self, views: ColumnViews, start: int, count: int, after: int, until: int, out: Outputs
    ) -> None:
        """The broken trades among the events with seq in ``(after, until]`` (those just applied)."""
        kinds, seqs = views.kind, views.seq
        for index in range(start, start + count):
            if kinds[index] == BROKEN_TRADE and after < seqs[index] <= until:
                ts_event, seq, match_number = (
                    views.ts_event[index],
                    self.seq_base + seqs[index],
                    views.match_number[index],
                )
                out.breaks.append((self.venue, self.symbol, ts_event, seq, match_number))
                out.broken_trades.append(broken_trade_row(self.wire.row_key, match_number, seq, ts_event))

    def _start_day(self, trading_date: int) -> None:
        """The book of the feed day ``trading_date``: empty, numbered from the day's first event --
        except after a restore of the session-numbered layout (no day known), whose book goes on."""
        restored_without_day = self.trading_date is None and self.last_seq >= 0
        self.trading_date = trading_date
        self.wire = self._wire_of(trading_date)
        if restored_without_day:
            shown = self.engine.shown_depth()
            self.engine = engine_from_snapshot(self.book.to_snapshot(), self.wire)
            self.engine.set_shown_depth(shown)
            return
        self.engine = new_engine(self.symbol, self.venue, self.wire)
        self.seq_base = 0
        self.last_seq = -1
        self.messages = self.batches = self.max_ts_event = self.stream_ms = 0
        self.top = _EMPTY_TOP
        self.cadence_bucket = -1
        self.structural = ""
        self._depth_known = False

    def _wire_of(self, trading_date: int) -> BookWire:
        """How the book's rows (keyed by day) and Redis commands are keyed."""
        config = self.config
        return BookWire(
            row_key(self.venue, trading_date, self.symbol),
            book_keys(self.venue, self.symbol, config.redis_prefix, config.stream_maxlen),
        )

    # ------------------------------------------------------------------ outputs of a batch

    def _emit(self, done: Applied, out: Outputs) -> None:
        """Rows and Redis commands of an applied batch, appended to ``out`` (updates what was last emitted)."""
        seq, ts_event = self.seq_base + done.last_seq, done.last_ts_event
        redis = out.redis
        self.stream_ms = done.stream_ms
        if done.tob_changes:
            out.top_of_book.append(done.tob_rows)
            redis += done.stream_entries
        if done.trade_rows:
            out.trades.append(trade_rows(self.wire.row_key, done.trade_rows))
        reason = self._depth_reason(done.deep)
        if reason is not None:
            row, command = self.engine.encode_depth(self.config.depth_levels, seq, reason, ts_event)
            out.depth_snapshots.append(row)
            if reason == "change":
                redis.append(command)
        out.book_status.append(self._status_row(seq, ts_event))
        redis.append(self._tob_command(seq, ts_event))

    def _depth_reason(self, deep: bool) -> str | None:
        """Why the book after this batch gets a depth row: ``change``, else ``cadence``, else None.

        The shown depth always equals the book's top levels after a batch, so a batch that did not
        go ``deep`` cannot have changed them and skips rebuilding them.
        """
        bucket = self.max_ts_event // self.config.cadence_ns
        if deep:
            self._depth_known = True
            if self.engine.show_depth(self.config.depth_levels):
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
        return status_row(
            self.wire.row_key,
            seq,
            ts_event,
            self.messages,
            book.order_count,
            book.unknown_refs,
            book.overfills,
            integrity,
        )

    def _tob_command(self, seq: int, ts_event: int) -> bytes:
        book = self.book
        last = book.last_trade_values()  # (price, shares, timestamp, match number)
        trade = (0, 0, 0) if last is None else last[:3]
        return self.engine.encode_tob_hash(
            (*self.top, seq, ts_event, *trade, book.unknown_refs, book.order_count)
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
