"""Gap and duplicate detection on the raw envelope's batch_sequence / first_message_seq."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from itchflow.normalize import SequenceCheck, SequenceState, SequenceStatus, check_sequence

OK, GAP, DUPLICATE, RESET = (
    SequenceStatus.OK,
    SequenceStatus.GAP,
    SequenceStatus.DUPLICATE,
    SequenceStatus.RESET,
)


@dataclass(frozen=True)
class Arrival:
    """One batch as the producer numbered it: session, batch_sequence, first_message_seq, message_count."""

    session: str
    sequence: int
    first: int
    count: int = 10


def run(arrivals: list[Arrival]) -> list[SequenceCheck]:
    """Feed batches of one symbol through the tracker, as the keyed Flink state would."""
    state: SequenceState | None = None
    checks = []
    for a in arrivals:
        check, state = check_sequence(
            state,
            session=a.session,
            batch_sequence=a.sequence,
            first_message_seq=a.first,
            message_count=a.count,
        )
        checks.append(check)
    return checks


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        pytest.param(
            [Arrival("s", 1, 0), Arrival("s", 2, 10), Arrival("s", 3, 20)],
            [SequenceCheck(OK)] * 3,
            id="in-order",
        ),
        pytest.param(
            [Arrival("s", 1, 0), Arrival("s", 4, 40)],
            [SequenceCheck(OK), SequenceCheck(GAP, gap_batches=2, gap_messages=30)],
            id="two-batches-lost",
        ),
        pytest.param(
            [
                Arrival("s", 1, 0),
                Arrival("s", 2, 10),
                Arrival("s", 2, 10),
                Arrival("s", 1, 0),
                Arrival("s", 3, 20),
            ],
            [
                SequenceCheck(OK),
                SequenceCheck(OK),
                SequenceCheck(DUPLICATE),
                SequenceCheck(DUPLICATE),
                SequenceCheck(OK),
            ],
            id="redelivered-batches-are-duplicates-and-do-not-move-the-state",
        ),
        pytest.param(
            [Arrival("s", 1, 0), Arrival("s", 2, 10), Arrival("t", 1, 0)],
            [SequenceCheck(OK), SequenceCheck(OK), SequenceCheck(RESET)],
            id="new-producer-session",
        ),
        pytest.param(
            [Arrival("s", 1, 0), Arrival("t", 3, 20)],
            [SequenceCheck(OK), SequenceCheck(GAP, gap_batches=2, gap_messages=20)],
            id="new-session-missing-its-start",
        ),
        pytest.param(
            [Arrival("s", 5, 40)],
            [SequenceCheck(GAP, gap_batches=4, gap_messages=40)],
            id="first-batch-seen-is-not-the-first-sent",
        ),
        pytest.param(
            # the same day replayed again in batches of 20 after batches of 10 (25 messages seen)
            [
                Arrival("d", 1, 0),
                Arrival("d", 2, 10),
                Arrival("d", 3, 20, count=5),
                Arrival("d", 1, 0, count=20),
                Arrival("d", 2, 20, count=20),
                Arrival("d", 3, 40, count=20),
            ],
            [SequenceCheck(OK)] * 3 + [SequenceCheck(DUPLICATE), SequenceCheck(OK), SequenceCheck(OK)],
            id="a-day-replayed-in-other-batches-is-judged-by-its-messages",
        ),
        pytest.param(
            [Arrival("s", 1, 0, count=10), Arrival("s", 2, 15)],
            [SequenceCheck(OK), SequenceCheck(GAP, gap_batches=0, gap_messages=5)],
            id="messages-missing-inside-consecutive-batches",
        ),
    ],
)
def test_sequence_tracking(arrivals: list[Arrival], expected: list[SequenceCheck]) -> None:
    assert run(arrivals) == expected


def test_a_duplicate_returns_the_state_unchanged() -> None:
    state = SequenceState("s", 5, 50)
    check, after = check_sequence(
        state, session="s", batch_sequence=3, first_message_seq=30, message_count=10
    )
    assert check.status is DUPLICATE and after is state


def test_the_state_remembers_where_the_next_batch_starts() -> None:
    _, state = check_sequence(None, session="s", batch_sequence=1, first_message_seq=0, message_count=512)
    assert state == SequenceState("s", 1, 512)


def test_an_overlapping_batch_moves_the_state_to_its_end_and_never_back() -> None:
    state = SequenceState("d", 5, 50)
    check, after = check_sequence(
        state, session="d", batch_sequence=2, first_message_seq=40, message_count=20
    )
    assert check.status is OK and after == SequenceState("d", 5, 60)
