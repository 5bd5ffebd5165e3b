"""The normalization job's core: one raw record in, normalized batch or dead letters out."""

from datetime import date

from itchflow.avro import encode_batch, make_batch
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.itch.codec import encode
from itchflow.itch.messages import AddOrder, OrderDelete
from itchflow.normalize import decode_normalized_batch
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record, state_from_tuple

T0 = 34_200_000_000_000  # 09:30:00 in ns since midnight
DAY = date(2019, 12, 30)
SOURCE = RecordSource("market-data-raw", 3, 42, 1_577_716_200_000, b"MEAT")


def raw_record(batch_sequence: int = 1, first_message_seq: int = 0, session: str = "s1") -> bytes:
    payloads = [
        encode(AddOrder(7, 0, T0, 1001, "B", 100, "MEAT", 1_000_000)),
        encode(OrderDelete(7, 0, T0 + 5, 1001)),
    ]
    batch = make_batch(
        payloads,
        venue="XNAS",
        trading_date=DAY,
        session=session,
        symbol="MEAT",
        stock_locate=7,
        batch_sequence=batch_sequence,
        first_message_seq=first_message_seq,
        produced_at_ns=1,
    )
    return encode_batch(batch)


def test_valid_record_becomes_a_normalized_batch_keyed_by_venue_and_symbol() -> None:
    outcome = normalize_record(raw_record(), SOURCE, None, now_ns=5)
    assert outcome.dead_letters == []
    assert outcome.output_key == b"XNAS:MEAT"
    batch = decode_normalized_batch(outcome.normalized)
    assert (batch.symbol, batch.event_count) == ("MEAT", 2)
    assert (outcome.messages_in, outcome.events_out) == (2, 2)
    state = state_from_tuple(outcome.state)
    assert (state.session, state.last_batch_sequence, state.next_message_seq) == ("s1", 1, 2)


def test_a_replayed_batch_is_a_duplicate_and_emits_nothing() -> None:
    first = normalize_record(raw_record(), SOURCE, None)
    again = normalize_record(raw_record(), SOURCE, first.state)
    assert again.duplicate and again.normalized is None and again.dead_letters == []
    assert again.state == first.state


def test_a_gap_is_counted_and_the_batch_still_flows() -> None:
    first = normalize_record(raw_record(), SOURCE, None)
    later = normalize_record(raw_record(batch_sequence=3, first_message_seq=10), SOURCE, first.state)
    assert later.normalized is not None
    assert later.gap_messages == 8


def test_garbage_becomes_one_dead_letter_with_the_source_position_and_a_reason() -> None:
    outcome = normalize_record(b"\x00\x01garbage", SOURCE, None, now_ns=99)
    assert outcome.normalized is None and outcome.state is None
    (letter,) = [decode_dead_letter(raw) for raw in outcome.dead_letters]
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("market-data-raw", 3, 42)
    assert letter.key == b"MEAT" and letter.value == b"\x00\x01garbage"
    assert letter.reason and letter.detail


def test_truncated_record_is_dead_lettered_not_raised() -> None:
    good = raw_record()
    for cut in (1, 5, len(good) // 2, len(good) - 1):
        outcome = normalize_record(good[:cut], SOURCE, None)
        assert outcome.normalized is None or outcome.dead_letters, cut
        assert outcome.dead_letters, cut
