"""ITCH messages in Avro: the packed ``payloads`` of ``market-data-raw`` records and the per-type records.

A raw record (:class:`~itchflow.avro.bundle.ItchBundle`) never carries one Avro record per message:
it holds the messages' original bytes, back to back with 2-byte big-endian length prefixes
(:func:`pack_payloads`), decoded with the ITCH codec in one pass (:func:`iter_payloads`). The
per-type records (``schemas/itch/<MessageClass>.avsc``) are for schema-aware tools:
:func:`message_to_record` and :func:`record_to_message` convert between them and
``itchflow.itch.messages`` exactly.

``itchflow.itch.v1.ItchBatch`` (:data:`BATCH_SCHEMA`, one symbol per record) is what older
producers wrote; :func:`~itchflow.avro.bundle.decode_raw` still reads it, nothing writes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.registry import SchemaRegistry, default_registry
from itchflow.extensions import native_function
from itchflow.itch.messages import MESSAGE_TYPES, Message

ITCH_NAMESPACE = "itchflow.itch.v1"
BATCH_SCHEMA = f"{ITCH_NAMESPACE}.ItchBatch"
"""The per-symbol raw envelope of older producers (read only, see :func:`~itchflow.avro.bundle.decode_raw`)."""

_UNSIGNED_64 = frozenset({"u64", "price8"})
_TWO_63 = 1 << 63
_TWO_64 = 1 << 64


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
