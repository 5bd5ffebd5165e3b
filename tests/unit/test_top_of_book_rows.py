"""Reading the books' ``top_of_book`` rows back (:mod:`itchflow.analytics.top_of_book`): rows the order-book
stage really emits (Python and C engines), decoded, equal the changes of an independent simple book
replayed message by message."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import pytest

from itchflow import synth
from itchflow.analytics.top_of_book import BookKey, TopOfBookChange, decode_changes, decode_rows
from itchflow.avro.bundle import days_since_epoch
from itchflow.itch.codec import decode as decode_message
from itchflow.pipeline.book_stage import BookStage, Outputs
from itchflow.sinks.book_tables import row_key, top_of_book_rows
from tests.unit.book_factories import add_order, delete, dollars
from tests.unit.book_stage_support import (
    CONFIG,
    MIDNIGHT_NS,
    TRADING_DATE,
    VENUE,
    SymbolFeed,
    batch_of,
    sample_payloads,
    symbol_feeds,
)
from tests.unit.simple_book import SimpleMarket

SYMBOLS = 4
MESSAGES = 6_000
BATCH = 48
SAMPLE_MESSAGES = 4_000  # of the real sample: the simple book recomputes its levels every message
DAY = days_since_epoch(TRADING_DATE)
EMPTY = (0, 0, 0)


@cache
def synthetic_feeds() -> dict[str, SymbolFeed]:
    return symbol_feeds(synth.generate(SYMBOLS, MESSAGES, seed=3), BATCH)


@cache
def sample_feeds() -> dict[str, SymbolFeed]:
    return symbol_feeds(sample_payloads("RITCH_ex20101224.TEST_ITCH_50.gz")[:SAMPLE_MESSAGES], BATCH)


def feeds_of(source: str) -> dict[str, SymbolFeed]:
    return synthetic_feeds() if source == "synthetic" else sample_feeds()


@cache
def expected_changes(source: str, symbol: str) -> list[tuple[int, ...]]:
    return simple_changes(feeds_of(source)[symbol].payloads)


def simple_changes(payloads: list[bytes]) -> list[tuple[int, ...]]:
    """(ts_event, seq, bid px/shares/orders, ask px/shares/orders) after each message that changed
    the best levels, from the simple book (seq = the message's position in the symbol's feed)."""
    market = SimpleMarket()
    changes = []
    last = (*EMPTY, *EMPTY)
    for seq, payload in enumerate(payloads):
        message = decode_message(payload)
        market.apply(message)
        books = list(market.symbols.values())
        assert len(books) <= 1
        if not books:
            continue
        bids, asks = books[0].levels("B"), books[0].levels("S")
        top = (*(bids[0] if bids else EMPTY), *(asks[0] if asks else EMPTY))
        if top != last:
            changes.append((MIDNIGHT_NS + message.timestamp, seq, *top))
            last = top
    return changes


def stage_changes(feed: SymbolFeed) -> tuple[list[tuple[int, ...]], bytes]:
    """The feed's changes decoded from each batch's top_of_book chunk, and the chunks joined."""
    stage = BookStage.restore(None, venue=VENUE, symbol=feed.symbol, config=CONFIG)
    changes: list[tuple[int, ...]] = []
    chunks = []
    for batch in feed.batches:
        chunk = dict(stage.apply(batch).clickhouse).get("top_of_book", b"")
        changes += decode_changes(chunk, stage.wire.row_key)
        chunks.append(chunk)
    return changes, b"".join(chunks)


@pytest.mark.usefixtures("implementation")
@pytest.mark.parametrize("source", ["synthetic", "sample"])
def test_decoded_rows_equal_the_simple_books_changes(source: str) -> None:
    total = 0
    for feed in feeds_of(source).values():
        changes, joined = stage_changes(feed)
        assert changes == expected_changes(source, feed.symbol), feed.symbol
        key = BookKey(VENUE, DAY, feed.symbol)
        assert decode_rows(joined) == [(key, change) for change in changes]
        total += len(changes)
    assert total > (1_000 if source == "synthetic" else 100)  # the feeds do move the tops


@pytest.mark.usefixtures("implementation")
def test_rows_of_many_books_and_days_keep_their_keys() -> None:
    px = dollars("10.00")
    out = Outputs()
    stages = {symbol: BookStage.restore(None, venue=VENUE, symbol=symbol, config=CONFIG) for symbol in "AB"}
    next_day = TRADING_DATE + timedelta(days=1)
    for symbol, trading_date in (("A", TRADING_DATE), ("B", TRADING_DATE), ("A", next_day)):
        batch = batch_of([add_order(1, "B", px, 100), delete(1)], trading_date=trading_date)
        stages[symbol].apply_columns(days_since_epoch(trading_date), batch.columns.views(), (), out)
    rows = decode_rows(b"".join(out.top_of_book))
    assert [(key.symbol, key.trading_date, change[1:3]) for key, change in rows] == [
        ("A", DAY, (0, px)),
        ("A", DAY, (1, 0)),
        ("B", DAY, (0, px)),
        ("B", DAY, (1, 0)),
        ("A", DAY + 1, (0, px)),
        ("A", DAY + 1, (1, 0)),
    ]


def test_a_row_encoded_by_the_tables_module_reads_back_field_by_field() -> None:
    key = row_key("XNAS", DAY, "ÄBC")  # a non-ASCII symbol: lengths are bytes, not characters
    rows = top_of_book_rows(key, [(7, 1_500, 101, 300, 2, 0, 0, 0), (2**63 + 5, -1, 0, 0, 0, 99, 2**40, 3)])
    expected = [
        TopOfBookChange(ts_event=1_500, seq=7, bid_price=101, bid_shares=300, bid_orders=2,
                        ask_price=0, ask_shares=0, ask_orders=0),
        TopOfBookChange(ts_event=-1, seq=2**63 + 5, bid_price=0, bid_shares=0, bid_orders=0,
                        ask_price=99, ask_shares=2**40, ask_orders=3),
    ]  # fmt: skip
    assert decode_changes(rows, key) == expected
    assert decode_rows(rows) == [(BookKey("XNAS", DAY, "ÄBC"), change) for change in expected]
    assert decode_changes(b"", key) == decode_rows(b"") == []


def test_truncated_data_or_a_row_of_another_book_is_an_error() -> None:
    key = row_key(VENUE, DAY, "A")
    row = top_of_book_rows(key, [(1, 2, 3, 4, 5, 6, 7, 8)])
    with pytest.raises(ValueError, match="whole"):
        decode_changes(row[:-1], key)
    with pytest.raises(ValueError, match="ends inside"):
        decode_rows(row[:-1])
    with pytest.raises(ValueError, match="ends inside"):
        decode_rows(row[:3])
    with pytest.raises(ValueError, match="key"):
        decode_changes(row + top_of_book_rows(row_key(VENUE, DAY, "B"), [(1, 2, 3, 4, 5, 6, 7, 8)]), key)
