"""Per-symbol sequence tracking on the raw batch envelope: gaps, duplicates, a new feed day.

The producer numbers each symbol's messages of a feed day: ``first_message_seq`` = messages of
that symbol before the batch in the day's feed, ``batch_sequence`` 1, 2, 3, ... per batch. The
normalizer keeps one :class:`SequenceState` per symbol (Flink keyed state) and asks
:func:`check_sequence` about each incoming batch, with the feed day (the trading date) as the
``session``: numbering is the feed's, not the producer run's, so the same day replayed again --
under any session name, with any batch size -- is recognised message by message as duplicates.
Pure functions over plain values: no clock, no I/O.
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
    """First batch of a new feed day (trading date) for a symbol seen before."""
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

    Within a ``session`` (a feed day), a batch that brings no message beyond those already seen is a
    ``DUPLICATE`` and leaves the state unchanged; one that overlaps them is passed on whole (the
    books skip the events they have applied). Messages missing before a batch make it a ``GAP``
    (with the batches missing, counted from ``batch_sequence``). A batch of a new session restarts
    the count (``RESET``), unless it does not start at the session's first message (``GAP``).
    """
    if state is None or state.session != session:
        expected_batch, expected_message = 1, 0
        in_order = SequenceStatus.OK if state is None else SequenceStatus.RESET
        last_batch = 0
    else:
        expected_batch, expected_message = state.last_batch_sequence + 1, state.next_message_seq
        in_order = SequenceStatus.OK
        last_batch = state.last_batch_sequence
        seen = (
            first_message_seq + message_count <= expected_message
            if message_count
            else batch_sequence < expected_batch
        )
        if seen:
            return SequenceCheck(SequenceStatus.DUPLICATE), state
    new_state = SequenceState(
        session, max(batch_sequence, last_batch), max(first_message_seq + message_count, expected_message)
    )
    gap_messages = max(first_message_seq - expected_message, 0)
    if gap_messages:
        gap_batches = max(batch_sequence - expected_batch, 0)
        return SequenceCheck(SequenceStatus.GAP, gap_batches, gap_messages), new_state
    return SequenceCheck(in_order), new_state
