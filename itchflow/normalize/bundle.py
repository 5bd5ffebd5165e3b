"""The normalized topic's bundles: events of many symbols as one set of packed columns.

``NormalizedBundle`` mirrors ``schemas/normalized/NormalizedBundle.avsc``: one per source raw
record, the packed columns of :mod:`itchflow.normalize.columns` over every event of the record,
each symbol's events in one contiguous :class:`NormalizedRun`. Its Avro encoding is
:mod:`itchflow.avro.normalized`. :func:`run_batches` gives each run as a per-symbol batch view whose
columns are zero-copy slices of the bundle's; :func:`iter_events` the events as dataclasses.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.normalize.columns import ColumnViews, Detail, EventColumns
from itchflow.normalize.events import (
    FLAG_HAS_PRICE,
    FLAG_PRINTABLE,
    PRICE_DECIMALS,
    AuxiliaryMessage,
    BrokenTrade,
    CrossTrade,
    EventKind,
    NormalizedEvent,
    OperationalHalt,
    OrderAdded,
    OrderCancelled,
    OrderDeleted,
    OrderExecuted,
    OrderReplaced,
    RegShoRestriction,
    StockDirectory,
    SystemEvent,
    Trade,
    TradingState,
)
from itchflow.normalize.sequence import SequenceStatus


@dataclass(frozen=True, slots=True)
class NormalizedRun:
    """One symbol's events in a bundle: positions ``start .. start + count - 1``."""

    symbol: str
    stock_locate: int
    batch_sequence: int
    sequence_status: SequenceStatus
    gap_batches: int
    gap_messages: int
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class NormalizedBundle:
    """One ``market-data-normalized`` record: the events of one source raw record."""

    venue: str
    trading_date: date
    session: str
    event_count: int
    min_ts_event: int
    max_ts_event: int
    ts_produced: int
    ts_recv: int
    runs: tuple[NormalizedRun, ...]
    columns: EventColumns
    details: tuple[Detail, ...] = ()
    price_scale: int = PRICE_DECIMALS


class RunBatch:
    """A run of a bundle seen as a per-symbol batch (what ``BookStage.apply`` takes).

    Has what consumers of one symbol's events read; ``columns.views()`` are slices of the bundle's
    column views (no copy) and ``details`` are indexed from the run's first event.
    """

    __slots__ = (
        "venue",
        "trading_date",
        "symbol",
        "stock_locate",
        "session",
        "event_count",
        "columns",
        "details",
    )

    def __init__(
        self,
        bundle: NormalizedBundle,
        run: NormalizedRun,
        views: ColumnViews,
        details: tuple[Detail, ...],
    ) -> None:
        self.venue = bundle.venue
        self.trading_date = bundle.trading_date
        self.symbol = run.symbol
        self.stock_locate = run.stock_locate
        self.session = bundle.session
        self.event_count = run.count
        self.columns = _SlicedColumns(views)
        self.details = details


class _SlicedColumns:
    __slots__ = ("_views",)

    def __init__(self, views: ColumnViews) -> None:
        self._views = views

    def views(self) -> ColumnViews:
        return self._views


def run_details(bundle: NormalizedBundle) -> list[tuple[Detail, ...]]:
    """Each run's details (in run order), re-indexed from the run's first event."""
    runs = bundle.runs
    by_run: list[list[Detail]] = [[] for _ in runs]
    if bundle.details:  # one pass over the details, not one per run (a bundle has hundreds of runs)
        starts = [run.start for run in runs]
        for name, fields in bundle.details:
            index = fields["index"]
            at = bisect_right(starts, index) - 1
            if at >= 0 and index < starts[at] + runs[at].count:
                by_run[at].append((name, {**fields, "index": index - starts[at]}))
    return [tuple(own) for own in by_run]


def run_slices(bundle: NormalizedBundle) -> Iterator[tuple[NormalizedRun, ColumnViews, tuple[Detail, ...]]]:
    """Each run with its column views (zero-copy slices) and its details re-indexed from 0."""
    views = bundle.columns.views()
    for run, own in zip(bundle.runs, run_details(bundle), strict=True):
        start = run.start
        yield run, ColumnViews(*[view[start : start + run.count] for view in views]), own


def run_batches(bundle: NormalizedBundle) -> Iterator[RunBatch]:
    """Each run of ``bundle`` as a per-symbol batch, in column order."""
    for run, views, details in run_slices(bundle):
        yield RunBatch(bundle, run, views, details)


def iter_events(bundle: NormalizedBundle) -> Iterator[NormalizedEvent]:
    """The bundle's events as dataclasses, in column order, each with its run's symbol (readable
    form for tests and tools; hot paths use the columns)."""
    venue = bundle.venue
    views = bundle.columns.views()
    details = {fields["index"]: (name, fields) for name, fields in bundle.details}
    kinds, flags, sides = views.kind, views.flags, views.side
    for run in bundle.runs:
        symbol = run.symbol
        for i in range(run.start, run.start + run.count):
            kind = kinds[i]
            ts, seq = views.ts_event[i], views.seq[i]
            if kind == EventKind.ORDER_ADDED:
                detail = details.get(i)
                yield OrderAdded(
                    ts,
                    seq,
                    venue,
                    symbol,
                    views.order_ref[i],
                    chr(sides[i]),
                    views.shares[i],
                    views.price[i],
                    detail[1]["mpid"] if detail else None,
                )
            elif kind == EventKind.ORDER_EXECUTED:
                yield OrderExecuted(
                    ts,
                    seq,
                    venue,
                    symbol,
                    views.order_ref[i],
                    views.shares[i],
                    views.match_number[i],
                    bool(flags[i] & FLAG_PRINTABLE),
                    views.price[i] if flags[i] & FLAG_HAS_PRICE else None,
                )
            elif kind == EventKind.ORDER_CANCELLED:
                yield OrderCancelled(ts, seq, venue, symbol, views.order_ref[i], views.shares[i])
            elif kind == EventKind.ORDER_DELETED:
                yield OrderDeleted(ts, seq, venue, symbol, views.order_ref[i])
            elif kind == EventKind.ORDER_REPLACED:
                yield OrderReplaced(
                    ts,
                    seq,
                    venue,
                    symbol,
                    views.order_ref[i],
                    views.new_order_ref[i],
                    views.shares[i],
                    views.price[i],
                )
            elif kind == EventKind.TRADE:
                yield Trade(
                    ts,
                    seq,
                    venue,
                    symbol,
                    views.order_ref[i],
                    chr(sides[i]),
                    views.shares[i],
                    views.price[i],
                    views.match_number[i],
                )
            elif kind == EventKind.BROKEN_TRADE:
                yield BrokenTrade(ts, seq, venue, symbol, views.match_number[i])
            else:
                yield _event_with_detail(kind, ts, seq, venue, symbol, views, i, details.get(i))


def _event_with_detail(
    kind: int,
    ts: int,
    seq: int,
    venue: str,
    symbol: str,
    views: ColumnViews,
    i: int,
    detail: Detail | None,
) -> NormalizedEvent:
    if detail is None:
        raise InvalidRecord(
            InvalidReason.BAD_COLUMNS, f"event {i} of kind {EventKind(kind).name} has no detail"
        )
    fields = detail[1]
    if kind == EventKind.CROSS_TRADE:
        return CrossTrade(
            ts,
            seq,
            venue,
            symbol,
            views.shares[i],
            views.price[i],
            views.match_number[i],
            fields["cross_type"],
        )
    if kind == EventKind.SYSTEM_EVENT:
        return SystemEvent(ts, seq, venue, symbol, fields["event_code"])
    if kind == EventKind.TRADING_STATE:
        return TradingState(ts, seq, venue, symbol, fields["trading_state"], fields["reason"])
    if kind == EventKind.REG_SHO:
        return RegShoRestriction(ts, seq, venue, symbol, fields["reg_sho_action"])
    if kind == EventKind.OPERATIONAL_HALT:
        return OperationalHalt(
            ts, seq, venue, symbol, fields["market_code"], fields["operational_halt_action"]
        )
    if kind == EventKind.STOCK_DIRECTORY:
        values = {key: value for key, value in fields.items() if key != "index"}
        return StockDirectory(ts, seq, venue, symbol, **values)
    return AuxiliaryMessage(ts, seq, venue, symbol, fields["message_type"], fields["payload"])
