"""Typed reasons for input the pipeline refuses, turned into dead-letter records by the jobs.

Every decoder and normalizer in the core raises (or returns) :class:`InvalidRecord` for bad input,
and nothing else: a job catches exactly this type, writes a dead-letter record and keeps running.
"""

from __future__ import annotations

from enum import StrEnum


class InvalidReason(StrEnum):
    """Stable reason codes written to the dead-letter topic (``DeadLetter.reason``).

    Values are part of the data contract: never rename one, only add.
    """

    EMPTY = "empty"
    """The record value is empty or shorter than the 10-byte single-object header."""
    BAD_MAGIC = "bad_magic"
    """The value does not start with the Avro single-object marker ``C3 01``."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """The writer-schema fingerprint is not one we ever published."""
    WRONG_SCHEMA = "wrong_schema"
    """A known schema, but not the record type this topic carries."""
    MALFORMED_AVRO = "malformed_avro"
    """The Avro body could not be decoded with the writer schema (garbage or truncated)."""
    TRAILING_BYTES = "trailing_bytes"
    """The Avro body decoded but bytes were left over."""
    BAD_ENVELOPE = "bad_envelope"
    """Batch counters that cannot be right (sequence below 1, no messages, negative offsets)."""
    BAD_COLUMNS = "bad_columns"
    """A packed column has the wrong length for event_count, or a detail index is out of range."""
    TRUNCATED_PAYLOAD = "truncated_payload"
    """A length prefix in the payloads runs past the end of the buffer."""
    COUNT_MISMATCH = "count_mismatch"
    """The payloads hold a different number of messages than message_count says."""
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    """An ITCH message type byte that ITCH 5.0 does not define."""
    BAD_MESSAGE_LENGTH = "bad_message_length"
    """An ITCH message whose length is not the fixed length of its type."""
    MALFORMED_MESSAGE = "malformed_message"
    """The ITCH codec rejected a message of a known type and length."""
    LOCATE_MISMATCH = "locate_mismatch"
    """A message's stock_locate differs from its batch's."""
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    """An ITCH timestamp at or beyond 24 h after midnight."""
    UNKNOWN_SYMBOL = "unknown_symbol"
    """The batch's symbol is empty and its stock_locate is not in the stock directory."""
    SYMBOL_MISMATCH = "symbol_mismatch"
    """The batch's symbol disagrees with the stock directory for its stock_locate."""
    FUTURE = "future"
    """A record whose event time is later than the wall clock allows (the jobs' ``--max-future-ms``):
    a replay stamped with a date to come, or a damaged header. The whole record is set aside."""
    LATE = "late"
    """A print that came after its bar's window and allowed lateness had passed, or a broken trade of
    a print the market-data job does not keep (see :mod:`itchflow.analytics.bar_stage`)."""


class InvalidRecord(ValueError):
    """Input that cannot be processed, with a machine-readable reason.

    Attributes:
        reason: stable code for dashboards and the dead-letter ``reason`` field.
        detail: human-readable explanation.
        message_index: position of the failing message inside its batch, ``None`` when the whole
            record is bad.
        payload: the failing message's bytes when ``message_index`` is set, else ``None``.
        cause_class: class name of the underlying exception, if one triggered the rejection.
    """

    def __init__(
        self,
        reason: InvalidReason,
        detail: str,
        *,
        message_index: int | None = None,
        payload: bytes | None = None,
        cause_class: str | None = None,
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.message_index = message_index
        self.payload = payload
        self.cause_class = cause_class

    @property
    def error_class(self) -> str:
        """The class name to record in the dead letter: the root cause if known, else ours."""
        return self.cause_class or type(self).__name__

    def __repr__(self) -> str:
        index = "" if self.message_index is None else f", message_index={self.message_index}"
        return f"InvalidRecord({self.reason.value!r}, {self.detail!r}{index})"
