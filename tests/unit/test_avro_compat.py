"""Values of the per-symbol envelopes older versions wrote, read by today's bundle readers.

Why this exists: nothing writes ``ItchBatch`` or ``NormalizedBatch`` any more (replay produces
``ItchBundle``, the normalizer ``NormalizedBundle``), but both are published schemas
(``schemas/history/``) and records of them may still be read: an older producer's ``ItchBatch`` on
``market-data-raw`` within its retention, a ``NormalizedBatch`` on ``market-data-normalized``, and
``NormalizedBatch`` bytes in the record log of an order-book savepoint taken before the bundles
(``itchflow/pipeline/partition_books.py`` replays that log on restore). So ``decode_raw`` and
``decode_normalized`` keep a small decode-only path for each, seen as a bundle of one segment or run.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from itchflow.avro import InvalidReason, InvalidRecord, iter_payloads
from itchflow.avro.bundle import decode_raw
from itchflow.avro.normalized import decode_normalized
from itchflow.itch.codec import encode
from itchflow.itch.messages import AddOrder, AddOrderMPID, OrderDelete, OrderExecuted, StockTradingAction
from itchflow.normalize import SequenceCheck, SequenceStatus, normalize_messages
from itchflow.normalize.bundle import NormalizedBundle
from tests.unit.old_records import itch_batch_value, normalized_batch_value

T0 = 34_200_000_000_000  # 09:30:00 in ns since midnight
DAY = date(2019, 12, 30)
MESSAGES = [
    AddOrder(7, 0, T0, 1001, "B", 100, "MEAT", 1_000_000),
    AddOrderMPID(7, 0, T0 + 1, 1002, "S", 50, "MEAT", 1_000_500, "GSCO"),
    OrderExecuted(7, 0, T0 + 2, 1001, 40, 9),
    StockTradingAction(7, 0, T0 + 3, "MEAT", "T", " ", "    "),
    OrderDelete(7, 0, T0 + 4, 1002),
]
PAYLOADS = [encode(message) for message in MESSAGES]


def old_raw(**changes: object) -> bytes:
    fields: dict = {
        "venue": "XNAS",
        "trading_date": DAY,
        "session": "s1",
        "symbol": "MEAT",
        "stock_locate": 7,
        "batch_sequence": 3,
        "first_message_seq": 20,
        "produced_at_ns": 11,
    }
    fields.update(changes)
    return itch_batch_value(PAYLOADS, **fields)


@pytest.mark.parametrize("typed", [False, True], ids=["payloads", "with-typed-mirror"])
def test_an_old_producers_itch_batch_reads_as_a_bundle_of_one_segment(typed: bool) -> None:
    bundle = decode_raw(old_raw(typed=typed))

    assert (bundle.venue, bundle.trading_date, bundle.session) == ("XNAS", DAY, "s1")
    assert (bundle.partition, bundle.partitions, bundle.bundle_sequence, bundle.produced_at_ns) == (
        -1,
        0,
        3,
        11,
    )
    (segment,) = bundle.segments
    assert (segment.symbol, segment.stock_locate, segment.batch_sequence, segment.first_message_seq) == (
        "MEAT",
        7,
        3,
        20,
    )
    assert (segment.message_count, segment.first_timestamp, segment.last_timestamp) == (5, T0, T0 + 4)
    assert list(iter_payloads(bundle.payloads)) == PAYLOADS


def test_an_old_itch_batch_with_impossible_counters_is_a_bad_envelope() -> None:
    for changes in ({"batch_sequence": 0}, {"first_message_seq": -1}):
        with pytest.raises(InvalidRecord) as caught:
            decode_raw(old_raw(**changes))
        assert caught.value.reason is InvalidReason.BAD_ENVELOPE


def normalized() -> NormalizedBundle:
    result = normalize_messages(
        MESSAGES,
        venue="XNAS",
        trading_date=DAY,
        symbol="MEAT",
        stock_locate=7,
        session="s1",
        batch_sequence=3,
        first_message_seq=20,
        sequence=SequenceCheck(SequenceStatus.GAP, gap_batches=1, gap_messages=4),
        ts_recv=99,
    )
    assert not result.rejected and result.bundle.details
    return result.bundle


def test_an_old_normalizers_batch_reads_as_the_bundle_of_one_run() -> None:
    bundle = normalized()
    assert decode_normalized(normalized_batch_value(bundle)) == bundle


def test_an_old_normalized_batch_with_a_short_column_is_bad_columns() -> None:
    bundle = normalized()
    short = dataclasses.replace(bundle.columns, price=bundle.columns.price[:-8])
    with pytest.raises(InvalidRecord) as caught:
        decode_normalized(normalized_batch_value(dataclasses.replace(bundle, columns=short)))
    assert caught.value.reason is InvalidReason.BAD_COLUMNS
