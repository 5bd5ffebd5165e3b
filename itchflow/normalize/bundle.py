"""The normalized topic's bundles: events of many symbols as one set of packed columns.

``NormalizedBundle`` mirrors ``schemas/normalized/NormalizedBundle.avsc``: one per source raw
record, the columns of :class:`~itchflow.normalize.batch.NormalizedBatch` over every event of the
record, each symbol's events in one contiguous :class:`NormalizedRun`. Its Avro encoding is
:mod:`itchflow.avro.normalized`. :func:`run_batches` gives each run as a per-symbol batch view whose
columns are zero-copy slices of the bundle's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from itchflow.normalize.batch import ColumnViews, Detail, EventColumns, NormalizedBatch
from itchflow.normalize.events import PRICE_DECIMALS
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

    Has the attributes of :class:`NormalizedBatch` that consumers of one symbol's events read;
    ``columns.views()`` are slices of the bundle's column views (no copy).
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


def bundle_of_batch(batch: NormalizedBatch) -> NormalizedBundle:
    """A per-symbol batch as a bundle with one run."""
    run = NormalizedRun(
        symbol=batch.symbol,
        stock_locate=batch.stock_locate,
        batch_sequence=batch.batch_sequence,
        sequence_status=batch.sequence_status,
        gap_batches=batch.gap_batches,
        gap_messages=batch.gap_messages,
        start=0,
        count=batch.event_count,
    )
    return NormalizedBundle(
        venue=batch.venue,
        trading_date=batch.trading_date,
        session=batch.session,
        event_count=batch.event_count,
        min_ts_event=batch.min_ts_event,
        max_ts_event=batch.max_ts_event,
        ts_produced=batch.ts_produced,
        ts_recv=batch.ts_recv,
        runs=(run,) if batch.event_count else (),
        columns=batch.columns,
        details=batch.details,
        price_scale=batch.price_scale,
    )


def __getattr__(name: str) -> Any:
    """``decode_normalized`` and ``encode_normalized_bundle`` moved to :mod:`itchflow.avro.normalized`;
    still importable from here for the modules not yet updated (itchflow/pipeline/partition_books.py)."""
    if name in ("decode_normalized", "encode_normalized_bundle"):
        from itchflow.avro import normalized

        return getattr(normalized, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
