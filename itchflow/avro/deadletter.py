"""Dead-letter records: what a job writes instead of crashing on bad input."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.registry import SchemaRegistry, default_registry

DEAD_LETTER_SCHEMA = "itchflow.deadletter.v1.DeadLetter"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected Kafka record (or one message inside it); mirrors ``schemas/deadletter.avsc``."""

    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    message_index: int | None
    reason: str
    detail: str
    error_class: str
    job: str
    ts_failed: int


def dead_letter_for(
    error: InvalidRecord | Exception,
    *,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    key: bytes | None,
    value: bytes | None,
    job: str,
    ts_failed: int,
    source_timestamp_ms: int | None = None,
) -> DeadLetter:
    """Build the dead letter for ``error`` raised while processing one Kafka record.

    For an :class:`InvalidRecord` that names one message of a batch, the dead letter carries
    that message's bytes and index instead of the whole record value. Any other exception is
    recorded as ``internal_error`` with its class name, so a bug is visible rather than fatal.
    """
    if isinstance(error, InvalidRecord):
        reason, detail, error_class = error.reason.value, error.detail, error.error_class
        if error.message_index is not None:
            return DeadLetter(
                source_topic,
                source_partition,
                source_offset,
                source_timestamp_ms,
                key,
                error.payload,
                error.message_index,
                reason,
                detail,
                error_class,
                job,
                ts_failed,
            )
    else:
        reason, detail, error_class = "internal_error", str(error), type(error).__name__
    return DeadLetter(
        source_topic,
        source_partition,
        source_offset,
        source_timestamp_ms,
        key,
        value,
        None,
        reason,
        detail,
        error_class,
        job,
        ts_failed,
    )


def encode_dead_letter(letter: DeadLetter, registry: SchemaRegistry | None = None) -> bytes:
    """Single-object encode a dead letter for the dead-letter topic."""
    return (registry or default_registry()).encode(DEAD_LETTER_SCHEMA, asdict(letter))


def decode_dead_letter(data: bytes, registry: SchemaRegistry | None = None) -> DeadLetter:
    """Decode a dead-letter topic value.

    Raises:
        InvalidRecord: if ``data`` is not a dead-letter record.
    """
    record: dict[str, Any] = (registry or default_registry()).decode(DEAD_LETTER_SCHEMA, data)
    return DeadLetter(**record)


__all__ = [
    "DEAD_LETTER_SCHEMA",
    "DeadLetter",
    "InvalidReason",
    "dead_letter_for",
    "decode_dead_letter",
    "encode_dead_letter",
]
