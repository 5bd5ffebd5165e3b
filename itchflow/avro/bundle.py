"""The raw-feed topic's bundles: ITCH messages of many symbols of one shard per Kafka record.

``itchflow.itch.v1.ItchBundle`` (``schemas/itch/ItchBundle.avsc``, key ``@<shard>/<shards>``, see
:mod:`itchflow.shards`) is what ``itchflow replay`` produces: per shard of the symbols, every
symbol's pending messages close together on size or time, one
:class:`ItchSegment` per symbol (its per-symbol batch and message sequences), with all messages back
to back in ``payloads``, segment after segment. A record therefore carries hundreds of messages
however many symbols the feed has, and a quiet feed still flushes within the linger.

:func:`decode_raw` reads either kind of ``market-data-raw`` value -- a bundle, or a per-symbol
``ItchBatch`` written by an older producer (``schemas/itch/ItchBatch.avsc``; nothing here writes
one any more), seen as a bundle with one segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.raw import BATCH_SCHEMA, ITCH_NAMESPACE, pack_payloads
from itchflow.avro.registry import HEADER_SIZE, SchemaRegistry, default_registry
from itchflow.extensions import native_function

BUNDLE_SCHEMA = f"{ITCH_NAMESPACE}.ItchBundle"
_RAW_SCHEMAS = (BUNDLE_SCHEMA, BATCH_SCHEMA)
_TIMESTAMP = slice(5, 11)


@dataclass(frozen=True, slots=True)
class ItchSegment:
    """One symbol's messages inside a bundle; mirrors ``schemas/itch/ItchSegment.avsc``."""

    symbol: str
    stock_locate: int
    batch_sequence: int
    first_message_seq: int
    message_count: int
    first_timestamp: int
    last_timestamp: int


@dataclass(frozen=True, slots=True)
class ItchBundle:
    """One ``market-data-raw`` record; mirrors ``schemas/itch/ItchBundle.avsc``.

    ``partition`` and ``partitions`` are -1 and 0 and ``bundle_sequence`` the batch's own sequence for a per-symbol
    ``ItchBatch`` read through :func:`decode_raw`.
    """

    venue: str
    trading_date: date
    session: str
    partition: int
    partitions: int
    bundle_sequence: int
    produced_at_ns: int
    segments: tuple[ItchSegment, ...]
    payloads: bytes

    @property
    def message_count(self) -> int:
        return sum(segment.message_count for segment in self.segments)


@dataclass(frozen=True, slots=True)
class SegmentInput:
    """What the producer knows about one symbol's pending messages when it closes a bundle."""

    symbol: str
    stock_locate: int
    batch_sequence: int
    first_message_seq: int
    payloads: Sequence[bytes]


def make_bundle(
    segments: Sequence[SegmentInput],
    *,
    venue: str,
    trading_date: date,
    session: str,
    partition: int,
    partitions: int,
    bundle_sequence: int,
    produced_at_ns: int,
) -> ItchBundle:
    """The bundle of ``segments`` (each one symbol's raw ITCH messages, in feed order)."""
    if not segments:
        raise ValueError("a bundle holds at least one segment")
    described = []
    for segment in segments:
        if not segment.payloads:
            raise ValueError(f"segment {segment.symbol!r} has no message")
        described.append(
            ItchSegment(
                symbol=segment.symbol,
                stock_locate=segment.stock_locate,
                batch_sequence=segment.batch_sequence,
                first_message_seq=segment.first_message_seq,
                message_count=len(segment.payloads),
                first_timestamp=int.from_bytes(segment.payloads[0][_TIMESTAMP], "big"),
                last_timestamp=int.from_bytes(segment.payloads[-1][_TIMESTAMP], "big"),
            )
        )
    return ItchBundle(
        venue=venue,
        trading_date=trading_date,
        session=session,
        partition=partition,
        partitions=partitions,
        bundle_sequence=bundle_sequence,
        produced_at_ns=produced_at_ns,
        segments=tuple(described),
        payloads=b"".join(pack_payloads(segment.payloads) for segment in segments),
    )


_SEGMENT_FIELDS = (
    "symbol",
    "stock_locate",
    "batch_sequence",
    "first_message_seq",
    "message_count",
    "first_timestamp",
    "last_timestamp",
)
"""ItchSegment's fields in schema order, as the C codec reads and sets them."""
_HEAD_KINDS, _SEGMENT_KINDS, _TAIL_KINDS = "sisiill", "sillill", "b"
"""Avro kinds (string, int, long, bytes) of the fields before ``segments``, of a segment, after it."""
_RAW_LAYOUT = (
    *zip(
        ("venue", "trading_date", "session", "partition", "partitions", "bundle_sequence", "produced_at_ns"),
        _HEAD_KINDS,
        strict=True,
    ),
    ("segments", tuple(zip(_SEGMENT_FIELDS, _SEGMENT_KINDS, strict=True))),
    ("payloads", _TAIL_KINDS),
)
"""The current ItchBundle schema as the C codec writes it (see :func:`schema_layout`)."""


def field_kind(avro_type: Any) -> Any:
    """The C codec's letter for a field type (``?``: one it does not write), an array of records as
    its items' (name, letter) pairs, an array of a union as ``r`` (written apart)."""
    if isinstance(avro_type, str):
        return {"string": "s", "int": "i", "long": "l", "bytes": "b"}.get(avro_type, "?")
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "int" and avro_type.get("logicalType") in (None, "date"):
            return "i"
        if kind == "enum":
            return "e"
        if kind == "array":
            items = avro_type["items"]
            if isinstance(items, dict) and items.get("type") == "record":
                return tuple((field["name"], field_kind(field["type"])) for field in items["fields"])
            if isinstance(items, list):
                return "r"
    return "?"


def schema_layout(schema: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A record schema's fields as (name, C codec letter): what the C codec assumes of it. The callers
    use the C code only while the current schema still has the layout it was written for (a schema
    revision then runs on fastavro until the codec is updated; tests/unit/test_avro_native.py says so)."""
    return tuple((field["name"], field_kind(field["type"])) for field in schema["fields"])


@cache
def native_header(name: str, layout: tuple[tuple[str, Any], ...]) -> bytes | None:
    """The single-object header of the current schema ``name`` if it has ``layout``, else None."""
    entry = default_registry().current(name)
    return entry.header if schema_layout(entry.schema) == layout else None


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def days_since_epoch(day: date | int) -> int:
    """An Avro ``date`` (days since 1970-01-01) of a date, as fastavro writes it."""
    return day if isinstance(day, int) else day.toordinal() - _EPOCH_ORDINAL


@cache
def date_of_days(days: int) -> date:
    """The date an Avro ``date`` names (a handful of trading dates per process)."""
    return date.fromordinal(days + _EPOCH_ORDINAL)


def encode_bundle(bundle: ItchBundle, registry: SchemaRegistry | None = None) -> bytes:
    """Single-object encode ``bundle`` for ``market-data-raw`` (in C when built: the same bytes)."""
    encode = native_function("itchflow.avro._cavro", "encode_items") if registry is None else None
    header = native_header(BUNDLE_SCHEMA, _RAW_LAYOUT) if encode is not None else None
    if encode is not None and header is not None:
        try:
            return encode(
                header,
                (
                    bundle.venue,
                    days_since_epoch(bundle.trading_date),
                    bundle.session,
                    bundle.partition,
                    bundle.partitions,
                    bundle.bundle_sequence,
                    bundle.produced_at_ns,
                ),
                bundle.segments,
                _SEGMENT_FIELDS,
                _HEAD_KINDS + _SEGMENT_KINDS + _TAIL_KINDS,
                None,
                (bundle.payloads,),
            )
        except (TypeError, OverflowError):
            pass  # a value the schema cannot hold: fastavro says which
    datum = {
        "venue": bundle.venue,
        "trading_date": bundle.trading_date,
        "session": bundle.session,
        "partition": bundle.partition,
        "partitions": bundle.partitions,
        "bundle_sequence": bundle.bundle_sequence,
        "produced_at_ns": bundle.produced_at_ns,
        "segments": [
            {
                "symbol": s.symbol,
                "stock_locate": s.stock_locate,
                "batch_sequence": s.batch_sequence,
                "first_message_seq": s.first_message_seq,
                "message_count": s.message_count,
                "first_timestamp": s.first_timestamp,
                "last_timestamp": s.last_timestamp,
            }
            for s in bundle.segments
        ],
        "payloads": bundle.payloads,
    }
    return (registry or default_registry()).encode(BUNDLE_SCHEMA, datum)


def _native_decode(data: bytes) -> ItchBundle | None:
    """The bundle in ``data`` read by the C codec, when it is built and ``data`` is a well-formed
    record of the current ItchBundle schema; None otherwise (fastavro then decides)."""
    decode = native_function("itchflow.avro._cavro", "decode_items")
    if decode is None:
        return None
    header = native_header(BUNDLE_SCHEMA, _RAW_LAYOUT)
    if header is None or data[:HEADER_SIZE] != header:
        return None
    try:
        head, segments, tail = decode(
            data, HEADER_SIZE, _HEAD_KINDS, ItchSegment, _SEGMENT_FIELDS, _SEGMENT_KINDS, _TAIL_KINDS
        )
    except ValueError:  # malformed: fastavro's error is the one reported
        return None
    venue, days, session, partition, partitions, sequence, produced_at_ns = head
    envelope = (venue, date_of_days(days), session, partition, partitions, sequence, produced_at_ns)
    return ItchBundle(*envelope, tuple(segments), tail[0])


def decode_raw(data: bytes, registry: SchemaRegistry | None = None) -> ItchBundle:
    """Decode any ``market-data-raw`` value (an ``ItchBundle``, or an ``ItchBatch`` as one segment).

    The payloads are not walked here (the normalizer's single pass does that).

    Raises:
        InvalidRecord: bad header, unknown schema, malformed Avro, or impossible envelope counters
            (``bad_envelope``).
    """
    native = _native_decode(data) if registry is None else None
    if native is not None:
        return _checked(native, BUNDLE_SCHEMA)
    name, record = (registry or default_registry()).decode_any(data, _RAW_SCHEMAS)
    bundle = _bundle_of_record(name, record)
    return _checked(bundle, name)


def _bundle_of_record(name: str, record: dict[str, Any]) -> ItchBundle:
    """The bundle of a record fastavro decoded (an ``ItchBatch`` as one segment)."""
    if name == BATCH_SCHEMA:
        return ItchBundle(
            venue=record["venue"],
            trading_date=record["trading_date"],
            session=record["session"],
            partition=-1,
            partitions=0,
            bundle_sequence=record["batch_sequence"],
            produced_at_ns=record["produced_at_ns"],
            segments=(
                ItchSegment(
                    record["symbol"],
                    record["stock_locate"],
                    record["batch_sequence"],
                    record["first_message_seq"],
                    record["message_count"],
                    record["first_timestamp"],
                    record["last_timestamp"],
                ),
            ),
            payloads=record["payloads"],
        )
    return ItchBundle(
        venue=record["venue"],
        trading_date=record["trading_date"],
        session=record["session"],
        partition=record["partition"],
        partitions=record["partitions"],
        bundle_sequence=record["bundle_sequence"],
        produced_at_ns=record["produced_at_ns"],
        segments=tuple(ItchSegment(**segment) for segment in record["segments"]),
        payloads=record["payloads"],
    )


def _checked(bundle: ItchBundle, name: str) -> ItchBundle:
    """``bundle`` (decoded from a ``name`` record) once its envelope counters are possible.

    Raises:
        InvalidRecord: ``bad_envelope``.
    """
    if not bundle.segments:
        raise InvalidRecord(InvalidReason.BAD_ENVELOPE, "a bundle without segments")
    if name != BATCH_SCHEMA and not (
        0 <= bundle.partition < bundle.partitions and bundle.bundle_sequence >= 1
    ):
        raise InvalidRecord(
            InvalidReason.BAD_ENVELOPE,
            f"partition {bundle.partition} of {bundle.partitions}, bundle_sequence {bundle.bundle_sequence}",
        )
    for segment in bundle.segments:
        if segment.batch_sequence < 1 or segment.first_message_seq < 0 or segment.message_count < 1:
            raise InvalidRecord(
                InvalidReason.BAD_ENVELOPE,
                f"segment {segment.symbol!r}: batch_sequence={segment.batch_sequence} "
                f"first_message_seq={segment.first_message_seq} message_count={segment.message_count}",
            )
    return bundle
