"""The raw-feed topic: ITCH messages of one symbol per Kafka record (``itchflow.itch.v1.ItchBatch``).

The hot path never decodes one Avro record per message: the envelope carries the messages as their
original bytes, back to back with 2-byte big-endian length prefixes, decoded with the ITCH codec in
one pass (:func:`iter_payloads`). An optional typed mirror (``messages``) holds one per-type Avro
record per message for schema-aware consumers; :func:`message_to_record` and
:func:`record_to_message` convert between those records and ``itchflow.itch.messages`` exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.registry import SchemaRegistry, default_registry
from itchflow.extensions import native_function
from itchflow.itch.messages import MESSAGE_TYPES, Message

ITCH_NAMESPACE = "itchflow.itch.v1"
BATCH_SCHEMA = f"{ITCH_NAMESPACE}.ItchBatch"

_UNSIGNED_64 = frozenset({"u64", "price8"})
_TWO_63 = 1 << 63
_TWO_64 = 1 << 64


@dataclass(frozen=True, slots=True)
class ItchBatch:
    """One ``market-data-raw`` record: messages of one symbol; mirrors ``schemas/itch/ItchBatch.avsc``.

    ``payloads`` (length-prefixed original ITCH bytes) is authoritative; ``messages`` is the
    optional typed mirror (``None`` unless the producer asked for it).
    """

    venue: str
    trading_date: date
    session: str
    symbol: str
    stock_locate: int
    batch_sequence: int
    first_message_seq: int
    message_count: int
    first_timestamp: int
    last_timestamp: int
    produced_at_ns: int
    payloads: bytes
    messages: tuple[Message, ...] | None = None


def pack_payloads(payloads: Iterable[bytes]) -> bytes:
    """Concatenate ITCH messages, each preceded by its 2-byte big-endian length."""
    if type(payloads) in (list, tuple):
        native = native_function("itchflow.normalize._cscan", "pack_payloads")
        if native is not None:
            return native(payloads)  # the same bytes, in C (itchflow/extensions.py)
    return pack_payloads_python(payloads)


def pack_payloads_python(payloads: Iterable[bytes]) -> bytes:
    """:func:`pack_payloads` in Python (the reference)."""
    parts: list[bytes] = []
    for payload in payloads:
        size = len(payload)
        if not 0 < size < 0x10000:
            raise ValueError(f"an ITCH message must be 1..65535 bytes, got {size}")
        parts.append(size.to_bytes(2, "big"))
        parts.append(payload)
    return b"".join(parts)


def iter_payloads(payloads: bytes) -> Iterator[bytes]:
    """Yield each message of a packed ``payloads`` buffer, in order.

    Raises:
        InvalidRecord: ``truncated_payload`` (with ``message_index``) where a length prefix is zero or
            runs past the end; the messages before it have been yielded.
    """
    end = len(payloads)
    offset = 0
    index = 0
    while offset < end:
        if offset + 2 > end:
            raise InvalidRecord(
                InvalidReason.TRUNCATED_PAYLOAD,
                f"1 stray byte at offset {offset}",
                message_index=index,
                payload=payloads[offset:],
            )
        size = (payloads[offset] << 8) | payloads[offset + 1]
        start = offset + 2
        offset = start + size
        if size == 0 or offset > end:
            raise InvalidRecord(
                InvalidReason.TRUNCATED_PAYLOAD,
                f"message {index} claims {size} bytes at offset {start}, {end - start} left",
                message_index=index,
                payload=payloads[start:end],
            )
        yield payloads[start:offset]
        index += 1


def make_batch(
    payloads: Sequence[bytes],
    *,
    venue: str,
    trading_date: date,
    session: str,
    symbol: str,
    stock_locate: int,
    batch_sequence: int,
    first_message_seq: int,
    produced_at_ns: int,
    typed: bool = False,
) -> ItchBatch:
    """Build the envelope for ``payloads`` (raw ITCH messages of one symbol, in feed order).

    Counts and first/last timestamps are taken from the messages. With ``typed=True`` the typed
    mirror is filled by decoding every message with the ITCH codec (slow; for interop only).
    """
    if not payloads:
        raise ValueError("a batch holds at least one message")
    messages = None
    if typed:
        from itchflow.itch.codec import decode

        messages = tuple(decode(payload) for payload in payloads)
    return ItchBatch(
        venue=venue,
        trading_date=trading_date,
        session=session,
        symbol=symbol,
        stock_locate=stock_locate,
        batch_sequence=batch_sequence,
        first_message_seq=first_message_seq,
        message_count=len(payloads),
        first_timestamp=int.from_bytes(payloads[0][5:11], "big"),
        last_timestamp=int.from_bytes(payloads[-1][5:11], "big"),
        produced_at_ns=produced_at_ns,
        payloads=pack_payloads(payloads),
        messages=messages,
    )


def encode_batch(batch: ItchBatch, registry: SchemaRegistry | None = None) -> bytes:
    """Single-object encode ``batch`` for ``market-data-raw`` (header + schemaless Avro body)."""
    messages = batch.messages
    datum = {
        "venue": batch.venue,
        "trading_date": batch.trading_date,
        "session": batch.session,
        "symbol": batch.symbol,
        "stock_locate": batch.stock_locate,
        "batch_sequence": batch.batch_sequence,
        "first_message_seq": batch.first_message_seq,
        "message_count": batch.message_count,
        "first_timestamp": batch.first_timestamp,
        "last_timestamp": batch.last_timestamp,
        "produced_at_ns": batch.produced_at_ns,
        "payloads": batch.payloads,
        "messages": None if messages is None else [_union_record(message) for message in messages],
    }
    return (registry or default_registry()).encode(BATCH_SCHEMA, datum)


def decode_batch(data: bytes, registry: SchemaRegistry | None = None) -> ItchBatch:
    """Decode a ``market-data-raw`` value written with any published ``ItchBatch`` revision.

    The payloads are not walked here (that is the consumer's single pass, :func:`iter_payloads`).

    Raises:
        InvalidRecord: bad header, unknown schema, malformed or truncated Avro, or an envelope whose
            counters are impossible (``bad_envelope``).
    """
    record = (registry or default_registry()).decode(BATCH_SCHEMA, data, return_record_name=True)
    typed = record.pop("messages", None)
    batch = ItchBatch(**record)
    if batch.batch_sequence < 1 or batch.first_message_seq < 0 or batch.message_count < 1:
        raise InvalidRecord(
            InvalidReason.BAD_ENVELOPE,
            f"batch_sequence={batch.batch_sequence} first_message_seq={batch.first_message_seq} "
            f"message_count={batch.message_count}",
        )
    if typed is not None:
        try:
            messages = tuple(record_to_message(name, fields) for name, fields in typed)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecord(
                InvalidReason.MALFORMED_AVRO, f"typed messages: {exc}", cause_class=type(exc).__name__
            ) from exc
        batch = dataclasses.replace(batch, messages=messages)
    return batch


@cache
def _unsigned_fields(registry: SchemaRegistry, name: str) -> frozenset[str]:
    """Fields of a per-type record that hold an unsigned 64-bit ITCH value (schema ``itch_type``)."""
    fields = registry.current(name).schema["fields"]
    return frozenset(field["name"] for field in fields if field.get("itch_type") in _UNSIGNED_64)


_CLASSES_BY_NAME: dict[str, type[Message]] = {
    f"{ITCH_NAMESPACE}.{cls.__name__}": cls for cls in MESSAGE_TYPES.values()
}


def record_name(message_class: type[Message]) -> str:
    """Full Avro name of the per-type record of an ITCH message class."""
    return f"{ITCH_NAMESPACE}.{message_class.__name__}"


def message_to_record(message: Message, registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """The per-type Avro record of ``message``: same fields; unsigned 64-bit values as signed longs."""
    name = record_name(type(message))
    unsigned = _unsigned_fields(registry or default_registry(), name)
    record = {field.name: getattr(message, field.name) for field in dataclasses.fields(message)}
    for field_name in unsigned:
        if record[field_name] >= _TWO_63:
            record[field_name] -= _TWO_64
    return record


def record_to_message(name: str, record: dict[str, Any], registry: SchemaRegistry | None = None) -> Message:
    """The ITCH message of a per-type Avro record (inverse of :func:`message_to_record`)."""
    cls = _CLASSES_BY_NAME[name]
    values = dict(record)
    for field_name in _unsigned_fields(registry or default_registry(), name):
        if values[field_name] < 0:
            values[field_name] += _TWO_64
    return cls(**values)


def encode_message(message: Message, registry: SchemaRegistry | None = None) -> bytes:
    """Single-object encode one ITCH message as its per-type record (for tools and interop)."""
    registry = registry or default_registry()
    return registry.encode(record_name(type(message)), message_to_record(message, registry))


def decode_message(data: bytes, registry: SchemaRegistry | None = None) -> Message:
    """Decode a value written by :func:`encode_message` back into the ITCH message.

    Raises:
        InvalidRecord: if ``data`` is not a per-type ITCH record.
    """
    registry = registry or default_registry()
    name, record = registry.decode_any(data, _CLASSES_BY_NAME.keys())
    return record_to_message(name, record, registry)


def _union_record(message: Message) -> tuple[str, dict[str, Any]]:
    return record_name(type(message)), message_to_record(message)
