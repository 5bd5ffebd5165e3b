"""The book-events topic's records: what the order-book job's books made of one normalized record,
round-tripped through Avro as the analytics job reads it, from a real sample's books."""

from __future__ import annotations

import pytest

from itchflow.avro import InvalidRecord
from itchflow.pipeline.book_events import decode_book_events, encode_book_events
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.partition_books import BundleOutput, PartitionBooks
from itchflow.sinks.book_tables import DEPTH_SNAPSHOTS, TOP_OF_BOOK
from itchflow.synth import generate

from .test_partition_books import bundle_feed


def hand_made() -> BundleOutput:
    return BundleOutput(
        clickhouse=((TOP_OF_BOOK, b"\x01tops"), ("trades", b"not carried"), (DEPTH_SNAPSHOTS, b"\x02depth")),
        redis_commands=3,
        redis=b"*1\r\n$4\r\nPING\r\n",
        counters={"trades": 2},
        ts_produced=1_700_000_000_123_456_789,
        prints=[
            ("NASDAQ", "AAPL", [(7, 34_200_000_000_001, "E", 11, 1_500_000, 100, "B", 1)]),
            (
                "NASDAQ",
                "MSFT",
                [
                    (9, 34_200_000_000_002, "C", 12, 3_000_100, 5, "S", 0),
                    (10, 34_200_000_000_003, "Q", 13, 3_000_000, 0, "", 1),
                ],
            ),
        ],  # fmt: skip
        breaks=[("NASDAQ", "AAPL", 34_300_000_000_000, 21, 11)],
        trading_date=19_000,
        end_of_messages=True,
    )


def test_a_record_round_trips_with_what_the_analytics_read() -> None:
    output = hand_made()
    events = decode_book_events(encode_book_events(output, 3, 4_000_000_000))
    assert (events.source_partition, events.source_offset) == (3, 4_000_000_000)
    got = events.output
    assert got.prints == output.prints
    assert got.breaks == output.breaks
    assert (got.trading_date, got.end_of_messages, got.ts_produced) == (19_000, True, output.ts_produced)
    # the rows the OFI / liquidity read, and nothing the sinks of the order-book job already wrote
    assert got.clickhouse == ((TOP_OF_BOOK, b"\x01tops"), (DEPTH_SNAPSHOTS, b"\x02depth"))
    assert (got.redis_commands, got.redis, got.counters) == (0, b"", {})


def test_a_record_without_changes_has_no_rows() -> None:
    empty = BundleOutput(clickhouse=(), redis_commands=0, redis=b"", counters={}, ts_produced=5)
    got = decode_book_events(encode_book_events(empty, 0, 0)).output
    assert (got.clickhouse, got.prints, got.breaks, got.end_of_messages) == ((), [], [], False)


@pytest.mark.parametrize("data", [b"", b"\x00\x01 not avro", b"\xc3\x01" + b"\x00" * 8 + b"\x02"])
def test_anything_else_is_an_invalid_record(data: bytes) -> None:
    with pytest.raises(InvalidRecord):
        decode_book_events(data)


def test_every_record_of_a_feed_round_trips() -> None:
    """Every record of a synthetic feed (every print type, broken trades) applied to the books: its
    book events decode to the prints, breaks and top-of-book / depth rows the books produced."""
    books = PartitionBooks(BookStageConfig(depth_levels=10))
    prints = tops = breaks = 0
    for offset, record in enumerate(bundle_feed(list(generate(symbols=12, messages=60_000, seed=3)), 2000)):
        output = books.apply(record)
        got = decode_book_events(encode_book_events(output, 0, offset)).output
        assert got.prints == output.prints and got.breaks == output.breaks
        rows = dict(output.clickhouse)
        assert dict(got.clickhouse) == {t: rows[t] for t in (TOP_OF_BOOK, DEPTH_SNAPSHOTS) if t in rows}
        prints += sum(len(rows) for _, _, rows in output.prints)
        tops += TOP_OF_BOOK in rows
        breaks += len(output.breaks)
    assert prints > 0 and tops > 0 and breaks > 0
