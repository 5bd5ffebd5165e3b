"""The pure core of the normalization job: one ``market-data-raw`` record in, outputs out.

The Flink job (``jobs/normalize.py``) only loads the key's state, calls :func:`normalize_record`,
saves the new state and emits what it returns. Everything here is testable without a JVM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from itchflow.avro import InvalidRecord, decode_batch
from itchflow.avro.deadletter import dead_letter_for, encode_dead_letter
from itchflow.normalize import check_sequence, encode_normalized_batch, normalize_batch
from itchflow.normalize.sequence import SequenceState, SequenceStatus

JOB_NAME = "itchflow-normalize"
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class RecordSource:
    """Where a raw record came from (for dead letters)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes


@dataclass
class NormalizeOutcome:
    """What one raw record produced."""

    state: tuple | None
    normalized: bytes | None = None
    #: key of the normalized record: ``venue:symbol``, so the book job keys by (venue, symbol)
    output_key: bytes = b""
    dead_letters: list[bytes] = field(default_factory=list)
    messages_in: int = 0
    events_out: int = 0
    duplicate: bool = False
    gap_messages: int = 0


def normalized_key(venue: str, symbol: str) -> bytes:
    """``market-data-normalized`` key: ``venue:symbol`` (``venue:`` for market-wide events)."""
    return f"{venue}:{symbol}".encode()


def state_to_tuple(state: SequenceState | None) -> tuple | None:
    """Versioned, plain state for Flink: ``(version, session, last_batch_sequence, next_message_seq)``."""
    if state is None:
        return None
    return (STATE_VERSION, state.session, state.last_batch_sequence, state.next_message_seq)


def state_from_tuple(value: tuple | None) -> SequenceState | None:
    if not value:
        return None
    version = value[0]
    if version != STATE_VERSION:
        raise ValueError(
            f"normalize state version {version} is newer than this job understands ({STATE_VERSION})"
        )
    return SequenceState(session=value[1], last_batch_sequence=value[2], next_message_seq=value[3])


def normalize_record(
    payload: bytes, source: RecordSource, state: tuple | None, now_ns: int | None = None
) -> NormalizeOutcome:
    """Decode, sequence-check and normalize one raw record; bad input becomes dead letters."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    sequence_state = state_from_tuple(state)

    def letter(error: Exception, value: bytes | None = None) -> bytes:
        return encode_dead_letter(
            dead_letter_for(
                error,
                source_topic=source.topic,
                source_partition=source.partition,
                source_offset=source.offset,
                key=source.key,
                value=payload if value is None else value,
                job=JOB_NAME,
                ts_failed=now_ns,
                source_timestamp_ms=source.timestamp_ms,
            )
        )

    try:
        raw = decode_batch(payload)
        check, new_state = check_sequence(
            sequence_state,
            session=raw.session,
            batch_sequence=raw.batch_sequence,
            first_message_seq=raw.first_message_seq,
            message_count=raw.message_count,
        )
        if check.status is SequenceStatus.DUPLICATE:
            return NormalizeOutcome(state=state, messages_in=raw.message_count, duplicate=True)
        result = normalize_batch(raw, sequence=check, ts_recv=now_ns)
    except InvalidRecord as error:
        return NormalizeOutcome(state=state, dead_letters=[letter(error)])
    except Exception as error:  # a bug must be visible and counted, never a crash loop
        return NormalizeOutcome(state=state, dead_letters=[letter(error)])
    outcome = NormalizeOutcome(
        state=state_to_tuple(new_state),
        messages_in=raw.message_count,
        events_out=result.batch.event_count,
        gap_messages=check.gap_messages,
        dead_letters=[letter(rejected) for rejected in result.rejected],
    )
    if result.batch.event_count:
        outcome.normalized = encode_normalized_batch(result.batch)
        outcome.output_key = normalized_key(result.batch.venue, result.batch.symbol)
    return outcome
