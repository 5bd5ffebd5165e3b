"""The order-book job's core per Flink key: every book of one shard of the symbols, live in memory.

A ``market-data-normalized`` record is a bundle (:mod:`itchflow.normalize.bundle`): the events of
many symbols of one shard, a run per symbol. The job keys records by their Kafka key
(``@<shard>/<shards>``, :mod:`itchflow.shards`), so one key holds every book of a shard (of every
venue), and one record touches many
books. :class:`PartitionBooks` applies a bundle run by run with :class:`BookStage` (one per
symbol) and merges their outputs into one chunk per ClickHouse table and one Redis pipeline.

**State, touched once per record, proportional to the record.** Writing every touched book's
snapshot per record would cost O(book) per symbol per record. Instead Flink state holds

* ``snapshots``: map ``venue:symbol`` -> :meth:`BookStage.snapshot` as of the last compaction,
* ``log``: the normalized records applied since then (their bytes, in order),
* ``token``: which in-memory :class:`PartitionBooks` equals this state (see :class:`BookCache`).

Per record the job appends the record to the log (or, every ``compact_every_records`` records or
``compact_log_bytes`` bytes, writes the snapshots of the books touched since the last compaction and
clears the log) and writes a new token. Replaying the log on top of the snapshots rebuilds exactly
the live state, because :meth:`BookStage.apply` is deterministic (outputs included), so a restore
from any checkpoint or savepoint sees the same books as the process that wrote it.

:class:`BookCache` keeps each key's live :class:`PartitionBooks` between records: a record whose
state token is the one the cache wrote last reuses the live books (no state read beyond the token);
anything else -- a restore, a rescale, another process -- rebuilds them from ``snapshots`` + ``log``.
Tokens are ``<random instance id>:<counter>`` and never repeat, so equal tokens mean equal state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

from itchflow.avro.bundle import days_since_epoch
from itchflow.avro.normalized import decode_normalized
from itchflow.normalize.bundle import NormalizedBundle, run_details
from itchflow.pipeline.book_stage import BookStage, BookStageConfig, Outputs, has_breaks
from itchflow.pipeline.keyed_state import KeyedState
from itchflow.sinks.book_tables import DEPTH_SNAPSHOTS, TOP_OF_BOOK

COUNTER_NAMES = (
    "events_applied",
    "duplicates_skipped",
    "tob_changes",
    "trades",
    "unknown_refs",
    "market_wide_runs",
)


class BundleOutput(NamedTuple):
    """What one normalized record produced, merged over its runs."""

    clickhouse: tuple[tuple[str, bytes], ...]
    """(table, RowBinary rows): one chunk per table that has rows."""
    redis_commands: int
    redis: bytes
    """Pipelined RESP commands of every run, in run order."""
    counters: dict[str, int]
    """:data:`COUNTER_NAMES` -> count in this record."""
    ts_produced: int
    """When the producer closed the source raw record (epoch ns): end-to-end latency starts there."""
    prints: list[tuple[str, str, list[tuple]]] = []
    """(venue, symbol, trade rows) of the books that traded (see :class:`~itchflow.pipeline.book_stage.Outputs`)"""
    breaks: list[tuple[str, str, int, int, int]] = []
    """(venue, symbol, ts_event, book seq, match number) of the broken trades applied"""
    trading_date: int = 0
    """the record's trading date, days since 1970-01-01"""
    end_of_messages: bool = False
    """the record holds the feed's end of messages (System Event C)"""


def top_and_depth(output: BundleOutput) -> tuple[bytes, bytes]:
    """The ``top_of_book`` and ``depth_snapshots`` rows of a record's output (b"" for none): what
    the OFI and liquidity read."""
    tops = depths = b""
    for table, rows in output.clickhouse:
        if table == TOP_OF_BOOK:
            tops = rows
        elif table == DEPTH_SNAPSHOTS:
            depths = rows
    return tops, depths


def book_key(venue: str, symbol: str) -> str:
    """Key of a book in the ``snapshots`` map state."""
    return f"{venue}:{symbol}"


class PartitionBooks:
    """Live books of one Flink key plus what the log holds since the last compaction."""

    __slots__ = ("config", "stages", "dirty", "log_records", "log_bytes", "token")

    def __init__(self, config: BookStageConfig) -> None:
        self.config = config
        self.stages: dict[str, BookStage] = {}
        #: keys of the books changed since the last compaction
        self.dirty: set[str] = set()
        self.log_records = 0
        self.log_bytes = 0
        #: the state token this object corresponds to (set by :class:`BookCache`)
        self.token: bytes | None = None

    @classmethod
    def restore(
        cls, config: BookStageConfig, snapshots: Iterable[tuple[str, bytes]], log: Iterable[bytes]
    ) -> PartitionBooks:
        """The books saved as ``snapshots`` with every ``log`` record applied again, outputs dropped."""
        books = cls(config)
        for key, state in snapshots:
            venue, _, symbol = key.partition(":")
            books.stages[key] = BookStage.restore(state, venue=venue, symbol=symbol, config=config)
        for payload in log:
            books.apply(payload)
        return books

    def apply(self, payload: bytes) -> BundleOutput:
        """Apply one normalized record (bundle or per-symbol batch).

        Raises:
            InvalidRecord: the record does not decode (nothing is applied then).
        """
        return self.apply_bundle(decode_normalized(payload), len(payload))

    def apply_bundle(self, bundle: NormalizedBundle, size: int) -> BundleOutput:
        """Apply a decoded record of ``size`` bytes."""
        out = Outputs()
        market_wide = 0
        end_of_messages = False
        stages, config, dirty = self.stages, self.config, self.dirty
        venue = bundle.venue
        day = days_since_epoch(bundle.trading_date)
        views = bundle.columns.views()  # each run read in place: no slices per run
        breaks = has_breaks(views)
        for run, details in zip(bundle.runs, run_details(bundle), strict=True):
            symbol = run.symbol
            if not symbol:
                market_wide += 1  # system events, MWCB: no book
                end_of_messages = end_of_messages or any(
                    name == "SystemEventDetail" and fields.get("event_code") == "C"
                    for name, fields in details
                )
                continue
            key = book_key(venue, symbol)
            stage = stages.get(key)
            if stage is None:
                stage = stages[key] = BookStage(venue=venue, symbol=symbol, config=config, trading_date=day)
            stage.apply_columns(day, views, details, out, run.start, run.count, breaks)
            dirty.add(key)
        self.log_records += 1
        self.log_bytes += size
        counters = {
            "events_applied": out.events_applied,
            "duplicates_skipped": out.duplicates_skipped,
            "tob_changes": out.tob_changes,
            "trades": out.trade_count,
            "unknown_refs": out.unknown_refs,
            "market_wide_runs": market_wide,
        }
        return BundleOutput(
            out.clickhouse(),
            len(out.redis),
            b"".join(out.redis),
            counters,
            bundle.ts_produced,
            out.prints,
            out.breaks,
            day,
            end_of_messages,
        )

    def compaction_due(self) -> bool:
        config = self.config
        return self.log_records >= config.compact_every_records or self.log_bytes >= config.compact_log_bytes

    def compact(self) -> list[tuple[str, bytes]]:
        """Snapshots of the books changed since the last compaction; the log starts empty again."""
        stages = self.stages
        snapshots = [(key, stages[key].snapshot()) for key in sorted(self.dirty)]
        self.dirty = set()
        self.log_records = self.log_bytes = 0
        return snapshots


class BookCache:
    """Live :class:`PartitionBooks` per Flink key, checked against the state token on every record."""

    __slots__ = ("config", "max_keys", "instance", "counter", "restores", "_entries")

    def __init__(self, config: BookStageConfig, max_keys: int = 4096) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.config = config
        self.max_keys = max_keys
        self.instance = os.urandom(8).hex()
        self.counter = 0
        #: how many times books were rebuilt from state (first record of a key, restores)
        self.restores = 0
        self._entries: dict[object, PartitionBooks] = {}

    def process(
        self, key: object, payload: bytes, state: KeyedState, bundle: NormalizedBundle | None = None
    ) -> BundleOutput:
        """Apply one record of ``key``, reading and writing ``state`` as the module docstring says.
        ``bundle``, when given, is ``payload`` already decoded (the normalizer's own bundle, in the
        market-data job): it is applied as is, and ``payload`` only goes to the log.

        Raises:
            InvalidRecord: the record does not decode; state and books are left as they were.
        """
        entries = self._entries
        books = entries.get(key)
        token = state.value()
        if books is None or token is None or books.token != token:
            books = PartitionBooks.restore(self.config, state.entries(), state.log())
            self.restores += 1
            entries[key] = books
        if bundle is None:
            bundle = decode_normalized(payload)  # InvalidRecord: nothing changed, books stay valid
        try:
            output = books.apply_bundle(bundle, len(payload))
        except Exception:
            entries.pop(key, None)  # half applied: the next record rebuilds from state
            raise
        if books.compaction_due():
            for book, snapshot in books.compact():
                state.put_entry(book, snapshot)
            state.clear_log()
        else:
            state.append_log(payload)
        self.counter += 1
        books.token = f"{self.instance}:{self.counter}".encode()
        state.set_value(books.token)
        del entries[key]
        entries[key] = books  # most recently used last
        if len(entries) > self.max_keys:
            del entries[next(iter(entries))]
        return output
