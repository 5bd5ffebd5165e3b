"""The normalized topic (``market-data-normalized``) in Avro: :class:`~itchflow.normalize.bundle.NormalizedBundle`.

``itchflow.normalized.v1.NormalizedBundle`` (``schemas/normalized/NormalizedBundle.avsc``) is what
the normalizer writes: one per source raw record, the packed event columns of
:mod:`itchflow.normalize.columns` over every event of the record, each symbol's events one
contiguous run. :func:`encode_normalized_bundle` writes it (the envelope, runs and columns in C when
built, the same bytes as fastavro); :func:`decode_normalized` reads any ``market-data-normalized``
value and checks that it is consistent -- including a per-symbol ``NormalizedBatch`` of an older
normalizer, as a bundle with one run (nothing writes those any more).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import fastavro

from itchflow.avro.bundle import days_since_epoch, field_kind, native_header
from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.registry import SchemaRegistry, default_registry
from itchflow.extensions import native_function
from itchflow.normalize.bundle import NormalizedBundle, NormalizedRun
from itchflow.normalize.columns import Detail, EventColumns, check_columns
from itchflow.normalize.sequence import SequenceStatus

NORMALIZED_NAMESPACE = "itchflow.normalized.v1"
BUNDLE_SCHEMA = f"{NORMALIZED_NAMESPACE}.NormalizedBundle"
NORMALIZED_SCHEMA = f"{NORMALIZED_NAMESPACE}.NormalizedBatch"
"""The per-symbol record of older normalizers (read only, see :func:`decode_normalized`)."""
_SCHEMAS = (BUNDLE_SCHEMA, NORMALIZED_SCHEMA)
_DETAIL_PREFIX = NORMALIZED_NAMESPACE + "."


def columns_datum(columns: EventColumns) -> dict[str, bytes]:
    """The packed columns as the Avro fields of the same names."""
    return {name: getattr(columns, name) for name in EventColumns.__slots__}


def _checked_details(record: dict[str, Any], count: int) -> tuple[Detail, ...]:
    """The record's details (short names), each pointing inside its ``count`` events."""
    prefix = len(_DETAIL_PREFIX)
    details = tuple((name[prefix:], fields) for name, fields in record["details"])
    for _, fields in details:
        if not 0 <= fields["index"] < count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS, f"detail index {fields['index']} outside 0..{count - 1}"
            )
    return details


def _bundle_of_batch(record: dict[str, Any]) -> NormalizedBundle:
    """A ``NormalizedBatch`` record (one symbol, written by an older normalizer) as a bundle with one
    run. Read only: it may still sit on the topic, or in an order-book savepoint's record log."""
    count = record["event_count"]
    columns = EventColumns(*(record[name] for name in EventColumns.__slots__))
    check_columns(columns, count)
    run = NormalizedRun(
        symbol=record["symbol"],
        stock_locate=record["stock_locate"],
        batch_sequence=record["batch_sequence"],
        sequence_status=SequenceStatus(record["sequence_status"]),
        gap_batches=record["gap_batches"],
        gap_messages=record["gap_messages"],
        start=0,
        count=count,
    )
    return NormalizedBundle(
        venue=record["venue"],
        trading_date=record["trading_date"],
        session=record["session"],
        event_count=count,
        min_ts_event=record["min_ts_event"],
        max_ts_event=record["max_ts_event"],
        ts_produced=record["ts_produced"],
        ts_recv=record["ts_recv"],
        runs=(run,) if count else (),
        columns=columns,
        details=_checked_details(record, count),
        price_scale=record["price_scale"],
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
        return _bundle_of_batch(record)
    count = record["event_count"]
    columns = EventColumns(*(record[column] for column in EventColumns.__slots__))
    check_columns(columns, count)
    details = _checked_details(record, count)
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
