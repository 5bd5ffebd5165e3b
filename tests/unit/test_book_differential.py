"""Differential tests: MarketBooks/OrderBook against the deliberately simple reference in simple_book.py.

Both consume the same feeds -- synthetic ones (several seeds, well over 200k messages in total, one
perturbed with dropped, repeated and swapped messages so unknown orders, overfills and duplicates
happen at scale) and the real samples -- and must agree at regular checkpoints on every level of every
book, on every live order in time priority, on the last trade and on every counter.
"""

from __future__ import annotations

import gzip
import random

import pytest

from itchflow import synth
from itchflow.book import BOOK_MESSAGE_TYPES, MarketBooks, OrderBook
from itchflow.itch.codec import decode, decode_many
from tests.samples import SAMPLES
from tests.unit.simple_book import SimpleMarket

DATA = SAMPLES
SAMPLES = ["RITCH_ex20101224.TEST_ITCH_50.gz", "omi_Nasdaq_itch50_sample.bin", "meatpy_sample.itch50"]


def read_sample(name: str) -> list:
    raw = (DATA / name).read_bytes()
    return decode_many(gzip.decompress(raw) if name.endswith(".gz") else raw)


def synthetic(symbols: int, messages: int, seed: int, *, allow_crossed: bool = False) -> list:
    return [
        decode(payload) for payload in synth.generate(symbols, messages, seed, allow_crossed=allow_crossed)
    ]


def perturbed(messages: list, seed: int) -> list:
    """Drop, repeat and swap a few percent of the body messages (never the header)."""
    rng = random.Random(seed)
    out = []
    for message in messages:
        roll = rng.random()
        if roll < 0.03:
            continue  # lost: later events for its order are unknown references
        out.append(message)
        if roll < 0.06:
            out.append(message)  # repeated: overfills, unknown deletes, duplicate adds
        elif roll < 0.09 and len(out) >= 2:
            out[-1], out[-2] = out[-2], out[-1]  # out of order
    return out


def assert_books_agree(market: MarketBooks, simple: SimpleMarket, where: str) -> None:
    assert market.symbols() == sorted(simple.symbols), where
    assert market.unrouted_messages == simple.unrouted, where
    assert market.message_counts == simple.message_counts, where
    for symbol in market.symbols():
        book = market.book(symbol)
        reference = simple.symbols[symbol]
        context = f"{symbol} {where}"
        depth = book.depth()
        assert [(level.price, level.shares, level.order_count) for level in depth.bids] == reference.levels(
            "B"
        ), context
        assert [(level.price, level.shares, level.order_count) for level in depth.asks] == reference.levels(
            "S"
        ), context
        assert [(order.reference, order.side, order.price, order.shares) for order in book.orders()] == [
            (ref, order.side, order.price, order.shares) for ref, order in reference.orders.items()
        ], context
        last = book.last_trade()
        assert (None if last is None else (last.price, last.shares, last.timestamp, last.match_number)) == (
            reference.last_trade
        ), context
        assert book.counters() == reference.counters(), context
        best_bid, best_ask = book.best_bid(), book.best_ask()
        assert best_bid == (depth.bids[0] if depth.bids else None), context
        assert best_ask == (depth.asks[0] if depth.asks else None), context
        codes = {problem.code for problem in book.check_integrity()}
        assert codes <= {"crossed", "locked"}, context  # the structure itself is always sound
        crossed = best_bid is not None and best_ask is not None and best_bid.price >= best_ask.price
        assert bool(codes) == crossed, context


def run_both(messages: list, checkpoint_every: int) -> tuple[MarketBooks, SimpleMarket]:
    market = MarketBooks(venue="TEST")
    simple = SimpleMarket()
    for position, message in enumerate(messages, start=1):
        market.apply(message)
        simple.apply(message)
        if position % checkpoint_every == 0:
            assert_books_agree(market, simple, f"after message {position}")
    assert_books_agree(market, simple, "at the end")
    return market, simple


@pytest.mark.parametrize(
    ("symbols", "messages", "seed"),
    [(20, 70_000, 1), (5, 70_000, 2), (50, 70_000, 3)],
    ids=["seed1", "seed2", "seed3"],
)
def test_core_equals_simple_reference_on_synthetic_feeds(symbols: int, messages: int, seed: int) -> None:
    market, _ = run_both(synthetic(symbols, messages, seed), checkpoint_every=10_000)
    totals = market.totals()
    assert totals["messages"] == messages
    assert totals["unknown_refs"] == totals["overfills"] == totals["duplicate_refs"] == 0  # consistent feed
    assert all(book.check_integrity() == [] for book in market.books())  # never crossed


def test_core_equals_simple_reference_on_a_perturbed_feed() -> None:
    market, _ = run_both(perturbed(synthetic(10, 40_000, 4), seed=4), checkpoint_every=5_000)
    totals = market.totals()
    assert totals["unknown_refs"] > 0
    assert totals["overfills"] > 0
    assert totals["duplicate_refs"] > 0


def test_core_equals_simple_reference_on_a_crossing_feed() -> None:
    market, _ = run_both(synthetic(3, 20_000, 5, allow_crossed=True), checkpoint_every=1_000)
    assert any(book.check_integrity() for book in market.books())


@pytest.mark.parametrize("name", SAMPLES)
def test_core_equals_simple_reference_on_real_samples(name: str) -> None:
    messages = read_sample(name)
    market, _ = run_both(messages, checkpoint_every=500)
    assert market.totals()["messages"] == len(messages)


def test_snapshot_mid_feed_then_resume_equals_an_uninterrupted_run() -> None:
    messages = perturbed(synthetic(8, 30_000, 6), seed=6)
    uninterrupted = MarketBooks(venue="TEST")
    uninterrupted.apply_all(messages)
    resumed = MarketBooks(venue="TEST")
    for start in range(0, len(messages), 7_000):  # a snapshot per "batch", as the streaming job does
        resumed.apply_all(messages[start : start + 7_000])
        resumed = MarketBooks.from_snapshot(resumed.to_snapshot())
    assert resumed.to_snapshot() == uninterrupted.to_snapshot()


def apply_through_primitives(book: OrderBook, message) -> None:
    """Feed one message through the primitive methods, as the columnar streaming job will."""
    kind = message.message_type
    if kind in "AF":
        book.add_order(
            message.order_reference_number,
            message.buy_sell_indicator,
            message.price,
            message.shares,
            attributed=kind == "F",
        )
    elif kind == "E":
        book.execute_order(
            message.order_reference_number, message.executed_shares, message.timestamp, message.match_number
        )
    elif kind == "C":
        book.execute_order_at_price(
            message.order_reference_number,
            message.executed_shares,
            message.execution_price,
            message.timestamp,
            message.match_number,
            printable=message.printable == "Y",
        )
    elif kind == "X":
        book.cancel_order(message.order_reference_number, message.cancelled_shares)
    elif kind == "D":
        book.delete_order(message.order_reference_number)
    elif kind == "U":
        book.replace_order(
            message.original_order_reference_number,
            message.new_order_reference_number,
            message.price,
            message.shares,
        )
    elif kind in "PQ":
        price = message.price if kind == "P" else message.cross_price
        book.record_trade(price, message.shares, message.timestamp, message.match_number, cross=kind == "Q")


def test_primitive_methods_equal_apply_on_a_perturbed_feed() -> None:
    messages = [m for m in perturbed(synthetic(1, 30_000, 8), seed=8) if m.message_type in BOOK_MESSAGE_TYPES]
    through_apply, through_primitives = OrderBook("AAAA"), OrderBook("AAAA")
    for message in messages:
        through_apply.apply(message)
        apply_through_primitives(through_primitives, message)
    assert through_apply.unknown_refs > 0 and through_apply.overfills > 0
    assert through_primitives.to_snapshot() == through_apply.to_snapshot()
