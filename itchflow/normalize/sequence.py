"""Per-symbol sequence tracking on the raw batch envelope: gaps, duplicates, producer restarts.

The producer numbers its batches per (session, symbol): ``batch_sequence`` 1, 2, 3, ... and
``first_message_seq`` = messages of that symbol it produced before the batch. The normalizer keeps
one :class:`SequenceState` per symbol (Flink keyed state) and asks :func:`check_sequence` about each
incoming batch. Pure functions over plain values: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SequenceStatus(StrEnum):
    """Outcome of sequence tracking; mirrors the ``SequenceStatus`` Avro enum."""

    OK = "OK"
    """The expected next batch (or the first batch, numbered 1, of a symbol)."""
    GAP = "GAP"
    """Batches or messages are missing before this one: alert, then carry on with this batch."""
    DUPLICATE = "DUPLICATE"
    """Already seen (e.g. a producer re-sent after a restart): drop it and count it."""
    RESET = "RESET"
    """First batch, numbered 1, of a new producer session for a symbol seen before."""
    UNKNOWN = "UNKNOWN"
    """Avro reader fallback for a status added in a later schema revision."""


@dataclass(frozen=True, slots=True)
class SequenceState:
    """What the tracker remembers per symbol: a plain, versionable snapshot for Flink state."""

    session: str
    last_batch_sequence: int
    next_message_seq: int


@dataclass(frozen=True, slots=True)
class SequenceCheck:
    """The verdict on one batch: status plus how much is missing just before it."""

    status: SequenceStatus
    gap_batches: int = 0
    gap_messages: int = 0


def check_sequence(
    state: SequenceState | None,
    *,
    session: str,
    batch_sequence: int,
    first_message_seq: int,
    message_count: int,
) -> tuple[SequenceCheck, SequenceState | None]:
    """Judge one batch against the symbol's tracking ``state`` and return the new state.

    A duplicate leaves the state unchanged. A batch from a new session restarts the count at 1
    (``RESET``), unless it does not start at 1, which is a ``GAP``.
    """
    if state is None or state.session != session:
        expected_batch, expected_message = 1, 0
        in_order = SequenceStatus.OK if state is None else SequenceStatus.RESET
    else:
        expected_batch, expected_message = state.last_batch_sequence + 1, state.next_message_seq
        in_order = SequenceStatus.OK
        if batch_sequence < expected_batch:
            return SequenceCheck(SequenceStatus.DUPLICATE), state
    new_state = SequenceState(session, batch_sequence, first_message_seq + message_count)
    gap_batches = batch_sequence - expected_batch
    gap_messages = max(first_message_seq - expected_message, 0)
    if gap_batches or gap_messages:
        return SequenceCheck(SequenceStatus.GAP, gap_batches, gap_messages), new_state
    return SequenceCheck(in_order), new_state
