"""The normalized topic's bundles: events of many symbols as one set of packed columns.

``NormalizedBundle`` mirrors ``schemas/normalized/NormalizedBundle.avsc``: one per source raw
record, the columns of :class:`~itchflow.normalize.batch.NormalizedBatch` over every event of the
record, each symbol's events in one contiguous :class:`NormalizedRun`. :func:`decode_normalized`
reads either kind of ``market-data-normalized`` value (a per-symbol ``NormalizedBatch`` from an
older normalizer is a bundle with one run); :func:`run_batches` gives each run as a per-symbol
batch view whose columns are zero-copy slices of the bundle's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import fastavro

from itchflow.avro.bundle import days_since_epoch, field_kind, native_header
from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.registry import SchemaRegistry, default_registry
from itchflow.extensions import native_function
from itchflow.normalize.batch import (
    NORMALIZED_NAMESPACE,
    NORMALIZED_SCHEMA,
    ColumnViews,
    Detail,
    EventColumns,
    NormalizedBatch,
    batch_from_record,
    check_columns,
    columns_datum,
)
from itchflow.normalize.events import PRICE_DECIMALS
from itchflow.normalize.sequence import SequenceStatus

BUNDLE_SCHEMA = f"{NORMALIZED_NAMESPACE}.NormalizedBundle"
_SCHEMAS = (BUNDLE_SCHEMA, NORMALIZED_SCHEMA)
_DETAIL_PREFIX = NORMALIZED_NAMESPACE + "."


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


_RUN_FIELDS = (
    "symbol",
    "stock_locate",
    "batch_sequence",
    "sequence_status",
    "gap_batches",
    "gap_messages",
    "start",
    "count",
)
"""NormalizedRun's fields in schema order, as the C codec reads them."""
_HEAD = (
    "venue",
    "trading_date",
    "session",
    "price_scale",
    "event_count",
    "min_ts_event",
    "max_ts_event",
    "ts_produced",
    "ts_recv",
)
_HEAD_KINDS, _RUN_KINDS = "sisiillll", "silellii"
_KINDS = _HEAD_KINDS + _RUN_KINDS + "b" * len(EventColumns.__slots__) + "r"
"""Avro kinds of the fields before ``runs``, of a run, of the columns, and ``details`` (its union
array written by ``encode_union_records``, copied as encoded: ``r``) -- see ``itchflow/avro/_cavro.c``."""
_LAYOUT = (
    *zip(_HEAD, _HEAD_KINDS, strict=True),
    ("runs", tuple(zip(_RUN_FIELDS, _RUN_KINDS, strict=True))),
    *((name, "b") for name in EventColumns.__slots__),
    ("details", "r"),
)
"""The current NormalizedBundle schema as the C codec writes it (see ``schema_layout``)."""


@cache
def _native_layout() -> tuple[dict[SequenceStatus, int], dict[str, tuple[int, tuple[str, ...], str]]]:
    """What the C codec needs of the current schema besides its header: the positions of
    SequenceStatus's symbols, and per ``details`` branch (short name) its union position, field names
    and kinds (only branches of string/int/long fields: a detail of another branch leaves the record
    to fastavro)."""
    schema = default_registry().current(BUNDLE_SCHEMA).schema
    named: dict[str, Any] = {}
    fastavro.parse_schema(schema, named_schemas=named)
    symbols = named[f"{NORMALIZED_NAMESPACE}.SequenceStatus"]["symbols"]
    union = next(field["type"] for field in schema["fields"] if field["name"] == "details")["items"]
    branches = {}
    for position, record in enumerate(union):
        kinds = [field_kind(field["type"]) for field in record["fields"]]
        if all(kind in ("s", "i", "l") for kind in kinds):
            branches[record["name"]] = (
                position,
                tuple(field["name"] for field in record["fields"]),
                "".join(kinds),
            )
    return {SequenceStatus(symbol): position for position, symbol in enumerate(symbols)}, branches


def encode_normalized_bundle(bundle: NormalizedBundle, registry: SchemaRegistry | None = None) -> bytes:
    """Single-object encode ``bundle`` for ``market-data-normalized`` (the envelope, runs and columns
    in C when built, the details by fastavro: the same bytes as fastavro alone)."""
    columns = bundle.columns
    encode = native_function("itchflow.avro._cavro", "encode_items") if registry is None else None
    header = native_header(BUNDLE_SCHEMA, _LAYOUT) if encode is not None else None
    if encode is not None and header is not None:
        statuses, branches = _native_layout()
        try:
            details = native_function("itchflow.avro._cavro", "encode_union_records")(
                bundle.details, branches
            )
            return encode(
                header,
                (
                    bundle.venue,
                    days_since_epoch(bundle.trading_date),
                    bundle.session,
                    bundle.price_scale,
                    bundle.event_count,
                    bundle.min_ts_event,
                    bundle.max_ts_event,
                    bundle.ts_produced,
                    bundle.ts_recv,
                ),
                bundle.runs,
                _RUN_FIELDS,
                _KINDS,
                statuses,
                (*(getattr(columns, name) for name in EventColumns.__slots__), details),
            )
        except (TypeError, ValueError, OverflowError):
            pass  # a value the schema cannot hold: fastavro says which
    datum = {
        "venue": bundle.venue,
        "trading_date": bundle.trading_date,
        "session": bundle.session,
        "price_scale": bundle.price_scale,
        "event_count": bundle.event_count,
        "min_ts_event": bundle.min_ts_event,
        "max_ts_event": bundle.max_ts_event,
        "ts_produced": bundle.ts_produced,
        "ts_recv": bundle.ts_recv,
        "runs": [
            {
                "symbol": run.symbol,
                "stock_locate": run.stock_locate,
                "batch_sequence": run.batch_sequence,
                "sequence_status": run.sequence_status.value,
                "gap_batches": run.gap_batches,
                "gap_messages": run.gap_messages,
                "start": run.start,
                "count": run.count,
            }
            for run in bundle.runs
        ],
        **columns_datum(columns),
        "details": [(_DETAIL_PREFIX + name, fields) for name, fields in bundle.details],
    }
    return (registry or default_registry()).encode(BUNDLE_SCHEMA, datum)


def decode_normalized(data: bytes, registry: SchemaRegistry | None = None) -> NormalizedBundle:
    """Decode any ``market-data-normalized`` value and check that it is consistent.

    Raises:
        InvalidRecord: bad header, unknown schema, malformed Avro, or ``bad_columns`` (columns of the
            wrong length, an unknown event kind, a detail index out of range, runs that do not tile
            the columns).
    """
    name, record = (registry or default_registry()).decode_any(data, _SCHEMAS, return_record_name=True)
    if name == NORMALIZED_SCHEMA:
        return bundle_of_batch(batch_from_record(record))
    count = record["event_count"]
    columns = EventColumns(*(record[column] for column in EventColumns.__slots__))
    check_columns(columns, count)
    prefix = len(_DETAIL_PREFIX)
    details = tuple((detail_name[prefix:], fields) for detail_name, fields in record["details"])
    for _, fields in details:
        if not 0 <= fields["index"] < count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS, f"detail index {fields['index']} outside 0..{count - 1}"
            )
    runs = tuple(
        NormalizedRun(
            symbol=run["symbol"],
            stock_locate=run["stock_locate"],
            batch_sequence=run["batch_sequence"],
            sequence_status=SequenceStatus(run["sequence_status"]),
            gap_batches=run["gap_batches"],
            gap_messages=run["gap_messages"],
            start=run["start"],
            count=run["count"],
        )
        for run in record["runs"]
    )
    position = 0
    for run in runs:
        if run.start != position or run.count < 1:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS,
                f"run {run.symbol!r} covers {run.start}..{run.start + run.count - 1}, expected to start at {position}",
            )
        position += run.count
    if position != count:
        raise InvalidRecord(InvalidReason.BAD_COLUMNS, f"runs cover {position} of {count} events")
    return NormalizedBundle(
        venue=record["venue"],
        trading_date=record["trading_date"],
        session=record["session"],
        event_count=count,
        min_ts_event=record["min_ts_event"],
        max_ts_event=record["max_ts_event"],
        ts_produced=record["ts_produced"],
        ts_recv=record["ts_recv"],
        runs=runs,
        columns=columns,
        details=details,
        price_scale=record["price_scale"],
    )
