"""Order-book stage on whole feeds: differential against the message-level book, snapshot/restore
anywhere, at-least-once replays into model sinks, and the real samples against ``MarketBooks``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from itchflow import synth
from itchflow.book import BOOK_MESSAGE_TYPES, MarketBooks, OrderBook
from itchflow.itch.codec import decode as decode_message
from itchflow.pipeline.book_stage import BookStage, BookStageConfig, StageOutput
from itchflow.sinks.book_tables import TABLE_COLUMNS
from tests.unit.book_stage_support import (
    CONFIG,
    MIDNIGHT_NS,
    VENUE,
    SymbolFeed,
    decode,
    fields_of,
    parse_resp,
    read_rows,
    sample_payloads,
    symbol_feeds,
)

pytestmark = pytest.mark.usefixtures("implementation")  # each test on the Python and the C code

SYMBOLS = 6
MESSAGES = 24_000
BATCH = 64
SAMPLES = ["RITCH_ex20101224.TEST_ITCH_50.gz", "omi_Nasdaq_itch50_sample.bin", "meatpy_sample.itch50"]


def perturbed(payloads: list[bytes], seed: int, header: int) -> list[bytes]:
    """Drop, repeat and swap a few percent of the body messages: unknown refs, overfills, duplicate adds."""
    rng = random.Random(seed)
    out = payloads[:header]
    for payload in payloads[header:]:
        roll = rng.random()
        if roll < 0.03:
            continue
        out.append(payload)
        if roll < 0.06:
            out.append(payload)
        elif roll < 0.09 and len(out) > header + 1:
            out[-1], out[-2] = out[-2], out[-1]
    return out


@cache
def synthetic_feeds() -> dict[str, SymbolFeed]:
    payloads = list(synth.generate(SYMBOLS, MESSAGES, seed=11))
    return symbol_feeds(perturbed(payloads, seed=5, header=synth.header_message_count(SYMBOLS)), BATCH)


def run_live(feed: SymbolFeed, config: BookStageConfig = CONFIG) -> tuple[BookStage, list[StageOutput]]:
    stage = BookStage.restore(None, venue=VENUE, symbol=feed.symbol, config=config)
    return stage, [stage.apply(batch) for batch in feed.batches]


# --- differential: the columnar stage against the message-level book ----------------------------------------


@dataclass
class Expected:
    tops: list[tuple[int, ...]] = field(default_factory=list)
    trades: list[tuple[Any, ...]] = field(default_factory=list)


def expected_from_messages(payloads: list[bytes]) -> tuple[Expected, OrderBook]:
    """What the stage must emit, derived one message at a time through OrderBook.apply and public queries."""
    book = OrderBook()
    expected = Expected()
    last_top = (0, 0, 0, 0, 0, 0)
    for seq, payload in enumerate(payloads):
        message = decode_message(payload)
        ts = MIDNIGHT_NS + message.timestamp
        kind = message.message_type
        resting = book.order(message.order_reference_number) if kind in "EC" else None
        if kind == "E" and resting is not None and message.executed_shares > 0:
            expected.trades.append((seq, "E", resting.price, message.executed_shares, resting.side, 1))
        elif kind == "C" and message.executed_shares > 0:
            side = "" if resting is None else resting.side
            printable = int(message.printable == "Y")
            expected.trades.append(
                (seq, "C", message.execution_price, message.executed_shares, side, printable)
            )
        elif kind == "P" and message.shares > 0:
            expected.trades.append((seq, "P", message.price, message.shares, message.buy_sell_indicator, 1))
        elif kind == "Q" and message.shares > 0:
            expected.trades.append((seq, "Q", message.cross_price, message.shares, "", 1))
        book.apply(message)
        bid, ask = book.best_bid(), book.best_ask()
        top = (
            *((bid.price, bid.shares, bid.order_count) if bid else (0, 0, 0)),
            *((ask.price, ask.shares, ask.order_count) if ask else (0, 0, 0)),
        )
        if top != last_top:
            expected.tops.append((seq, ts, *top))
            last_top = top
    return expected, book


def emitted(outputs: list[StageOutput]) -> Expected:
    got = Expected()
    for output in outputs:
        decoded = decode(output)
        got.tops += [
            tuple(row.values())[3:] for row in decoded.table("top_of_book")
        ]  # after the book and day
        got.trades += [
            (row["seq"], row["source"], row["price"], row["shares"], row["side"], row["printable"])
            for row in decoded.table("trades")
        ]
    return got


def test_synthetic_feed_is_perturbed_enough_to_matter() -> None:
    counters = [run_live(feed)[0].book.counters() for feed in synthetic_feeds().values()]
    assert sum(c["unknown_refs"] for c in counters) > 100
    assert sum(c["overfills"] for c in counters) > 10
    assert sum(c["duplicate_refs"] for c in counters) > 10


@pytest.mark.parametrize("symbol", sorted(synth.ticker(i) for i in range(SYMBOLS)))
def test_rows_equal_a_message_by_message_replay_of_the_book(symbol: str) -> None:
    feed = synthetic_feeds()[symbol]
    stage, outputs = run_live(feed)
    expected, book = expected_from_messages(feed.payloads)

    got = emitted(outputs)
    assert got.tops == expected.tops
    assert got.trades == expected.trades
    assert stage.book.depth() == book.depth()
    assert stage.book.counters() == book.counters()
    book_types = set(BOOK_MESSAGE_TYPES)  # other kinds are counted by the stage, not handed to the book
    assert stage.book.message_counts == {k: v for k, v in book.message_counts.items() if k in book_types}


def test_tracked_top_and_internal_reads_agree_with_the_public_queries(implementation: str) -> None:
    for feed in synthetic_feeds().values():
        stage = BookStage.restore(None, venue=VENUE, symbol=feed.symbol, config=CONFIG)
        assert type(stage.book).__name__ == {"python": "OrderBook", "native": "NativeBook"}[implementation]
        for batch in feed.batches:
            stage.apply(batch)
            book = stage.book
            bid, ask = book.best_bid(), book.best_ask()
            assert stage.top == (
                *((bid.price, bid.shares, bid.order_count) if bid else (0, 0, 0)),
                *((ask.price, ask.shares, ask.order_count) if ask else (0, 0, 0)),
            )
            for levels in (1, 3, 10):
                depth = book.depth(levels)
                assert book.depth_columns(levels) == [
                    [level.price for level in depth.bids],
                    [level.shares for level in depth.bids],
                    [level.order_count for level in depth.bids],
                    [level.price for level in depth.asks],
                    [level.shares for level in depth.asks],
                    [level.order_count for level in depth.asks],
                ]
            if isinstance(book, OrderBook):  # the C book's loop reads its own structures
                orders = book.structures().orders
                for order in list(book.orders())[:20]:
                    assert orders[order.reference] == (order.price, order.shares, order.side == "B")


# --- snapshot / restore and at-least-once replays -----------------------------------------------------------


def test_snapshot_and_restore_anywhere_gives_the_outputs_of_an_uninterrupted_run() -> None:
    feed = max(synthetic_feeds().values(), key=lambda f: len(f.batches))
    _, uninterrupted = run_live(feed)
    splits = {1, 2, len(feed.batches) // 3, len(feed.batches) // 2, len(feed.batches) - 1}

    stage = BookStage.restore(None, venue=VENUE, symbol=feed.symbol, config=CONFIG)
    resumed = []
    for index, batch in enumerate(feed.batches):
        if index in splits:
            stage = BookStage.restore(stage.snapshot(), venue=VENUE, symbol=feed.symbol, config=CONFIG)
        resumed.append(stage.apply(batch))

    assert resumed == uninterrupted
    assert len(feed.batches) > 20


def test_restoring_every_batch_gives_the_outputs_of_an_uninterrupted_run() -> None:
    for feed in synthetic_feeds().values():
        _, uninterrupted = run_live(feed)
        state = None
        for batch, expected in zip(feed.batches, uninterrupted, strict=True):
            stage = BookStage.restore(state, venue=VENUE, symbol=feed.symbol, config=CONFIG)
            assert stage.apply(batch) == expected
            state = stage.snapshot()


class ModelSinks:
    """What ClickHouse (ReplacingMergeTree, as declared in the DDL) and Redis end up holding."""

    KEYS = {
        "top_of_book": ("venue", "symbol", "seq"),
        "depth_snapshots": ("venue", "symbol", "seq", "reason"),
        "trades": ("venue", "symbol", "seq"),
        "broken_trades": ("venue", "symbol", "match_number"),
    }

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple, dict]] = {table: {} for table in TABLE_COLUMNS}
        self.hashes: dict[str, dict[str, str]] = {}
        self.streams: dict[str, list[tuple[tuple[int, int], dict[str, str]]]] = {}
        self.refused_stream_ids = 0

    def write_clickhouse(self, output: StageOutput) -> None:
        for table, chunk in output.clickhouse:
            for row in read_rows(table, chunk):
                if table == "book_status":  # ReplacingMergeTree(seq) ORDER BY (venue, symbol)
                    key = (row["venue"], row["symbol"])
                    current = self.tables[table].get(key)
                    if current is None or row["seq"] >= current["seq"]:
                        self.tables[table][key] = row
                else:
                    self.tables[table][tuple(row[name] for name in self.KEYS[table])] = row

    def write_redis(self, output: StageOutput) -> None:
        for command in parse_resp(output.redis):
            if command[0] == "HSET":
                self.hashes.setdefault(command[1], {}).update(fields_of(command, 2))
            else:
                assert command[:5] == ["XADD", command[1], "MAXLEN", "~", str(CONFIG.stream_maxlen)]
                ms, seq = (int(part) for part in command[5].split("-"))
                entries = self.streams.setdefault(command[1], [])
                if entries and (ms, seq) <= entries[-1][0]:
                    self.refused_stream_ids += 1  # Redis: "equal or smaller than the target stream top item"
                else:
                    entries.append(((ms, seq), fields_of(command, 6)))

    def contents(self) -> tuple:
        return self.tables, self.hashes, self.streams


def test_a_failure_and_replay_from_the_last_checkpoint_leaves_the_sinks_as_a_clean_run() -> None:
    feeds = synthetic_feeds()
    records = [batch for feed in feeds.values() for batch in feed.batches]
    records.sort(key=lambda batch: (min(batch.columns.views().ts_event), batch.symbol))  # one partition
    assert len(records) > 300
    clean = ModelSinks()
    states: dict[str, bytes | None] = {}
    for batch in records:
        stage = BookStage.restore(states.get(batch.symbol), venue=VENUE, symbol=batch.symbol, config=CONFIG)
        output = stage.apply(batch)
        states[batch.symbol] = stage.snapshot()
        clean.write_clickhouse(output)
        clean.write_redis(output)

    # the TaskManager dies at these positions once each: after ClickHouse got the batch's rows (Redis not),
    # or after both sinks got everything; Flink then restores the last checkpoint and replays from there
    die_before_redis, die_after_redis = {5, 41, 150, 151, 260}, {40, 74, 200, len(records) - 1}
    sinks = ModelSinks()
    states, checkpoint, position, died = {}, ({}, 0), 0, set()
    while position < len(records):
        if position % 37 == 0:
            checkpoint = (dict(states), position)  # the sinks flushed everything before the barrier
        batch = records[position]
        stage = BookStage.restore(states.get(batch.symbol), venue=VENUE, symbol=batch.symbol, config=CONFIG)
        output = stage.apply(batch)
        states[batch.symbol] = stage.snapshot()
        sinks.write_clickhouse(output)
        if position not in die_before_redis or position in died:
            sinks.write_redis(output)
        if (position in die_before_redis or position in die_after_redis) and position not in died:
            died.add(position)
            states, position = dict(checkpoint[0]), checkpoint[1]
            continue
        position += 1

    assert died == die_before_redis | die_after_redis
    assert sinks.refused_stream_ids > 0  # replays did re-send stream entries, and Redis refused them
    assert sinks.contents() == clean.contents()
    for entries in clean.streams.values():
        ids = [entry_id for entry_id, _ in entries]
        assert ids == sorted(set(ids))  # strictly increasing
    assert clean.refused_stream_ids == 0


# --- the real samples against MarketBooks -------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_real_samples_give_every_symbol_the_book_of_market_books(sample: str) -> None:
    payloads = sample_payloads(sample)
    market = MarketBooks(venue=VENUE)
    for payload in payloads:
        market.apply(decode_message(payload))
    feeds = symbol_feeds(payloads, batch_size=50)
    config = BookStageConfig(depth_levels=5)

    assert {symbol for symbol in feeds} <= set(market.symbols())
    assert {book.symbol for book in market.books() if book.order_count} <= set(feeds)
    for symbol, feed in feeds.items():
        stage, outputs = run_live(feed, config)
        reference = market.book(symbol)
        assert stage.book.depth() == reference.depth(), symbol
        assert stage.book.counters() == reference.counters(), symbol
        changes = [
            row
            for output in outputs
            for row in decode(output).table("depth_snapshots")
            if row["reason"] == "change"
        ]
        top5 = reference.depth(5)
        if changes:
            last = changes[-1]
            assert last["bid_prices"] == [level.price for level in top5.bids], symbol
            assert last["ask_shares"] == [level.shares for level in top5.asks], symbol
        else:
            assert top5.bids == top5.asks == ()
        statuses = [row for output in outputs for row in decode(output).table("book_status")]
        assert statuses[-1]["orders"] == reference.order_count
        assert statuses[-1]["unknown_refs"] == reference.unknown_refs
    if sample.startswith("RITCH"):
        assert sum(market.book(symbol).unknown_refs for symbol in feeds) > 0  # the sample starts mid-day
