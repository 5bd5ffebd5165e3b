"""The C book (itchflow/book/_cbook.c) against the Python reference book, event by event.

Every test drives an :class:`OrderBook` and a :class:`NativeBook` with the same events and compares
everything observable: snapshots (orders in time priority, counters, message counts, last trade),
depth, best levels, single orders and integrity findings. The stage-level tests
(test_book_stage*.py, test_partition_books.py) run each test on both books as well.
"""

from __future__ import annotations

import random

import pytest

from itchflow import extensions, synth
from itchflow.book import OrderBook, native
from itchflow.book.engine import new_engine
from itchflow.pipeline.book_stage import BookStage
from tests.unit.book_stage_support import CONFIG, VENUE, SymbolFeed, symbol_feeds

if not native.AVAILABLE:  # pragma: no cover - set-up builds it; failing loudly beats skipping
    raise RuntimeError(f"the C book {native.TARGET.name} is not built: run `./dev setup` (needs gcc)")

NativeBook = native.NativeBook


def observable(book) -> tuple:
    """Everything a user of either book can see."""
    return (
        book.to_snapshot(),
        book.depth(),
        book.depth(3),
        book.depth_columns(),
        book.depth_columns(0),
        book.depth_columns(3),
        book.last_trade_values(),
        book.best_bid(),
        book.best_ask(),
        book.spread(),
        book.last_trade(),
        book.order_count,
        book.counters(),
        sorted(problem.code for problem in book.check_integrity()),
    )


def random_events(rng: random.Random, count: int, refs: int = 60, prices: int = 12):
    """Primitive calls with the edge cases mixed in: unknown and duplicate references, overfills,
    zero and negative shares or prices, bad sides, replaces onto live references."""
    for _ in range(count):
        roll = rng.random()
        ref = rng.randrange(1, refs)
        price = rng.randrange(-1, prices) * 100 + 10_000 * (rng.random() < 0.98)
        shares = rng.choice([0, -5, 1, 7, 100, 250, 1000]) if rng.random() < 0.1 else rng.randrange(1, 400)
        if roll < 0.35:
            side = rng.choice("BBBBSSSSX") if rng.random() < 0.05 else rng.choice("BS")
            yield ("add_order", (ref, side, price, shares), {"attributed": rng.random() < 0.1})
        elif roll < 0.5:
            yield ("cancel_order", (ref, shares), {})
        elif roll < 0.62:
            yield ("delete_order", (ref,), {})
        elif roll < 0.72:
            yield (
                "execute_order",
                (ref, shares, rng.randrange(10**12)),
                {"match_number": rng.randrange(10**6)},
            )
        elif roll < 0.8:
            yield (
                "execute_order_at_price",
                (ref, shares, price, rng.randrange(10**12)),
                {"match_number": rng.randrange(10**6), "printable": rng.random() < 0.7},
            )
        elif roll < 0.92:
            yield ("replace_order", (ref, rng.randrange(1, refs), price, shares), {})
        else:
            yield (
                "record_trade",
                (price, shares, rng.randrange(10**12)),
                {"match_number": rng.randrange(10**6), "cross": rng.random() < 0.3},
            )


@pytest.mark.parametrize("seed", range(6))
def test_every_primitive_event_leaves_both_books_equal(seed: int) -> None:
    rng = random.Random(seed)
    python, compiled = OrderBook("ZXZZT", "XNAS"), NativeBook(symbol="ZXZZT", venue="XNAS")
    for step, (method, args, kwargs) in enumerate(random_events(rng, 3000)):
        getattr(python, method)(*args, **kwargs)
        getattr(compiled, method)(*args, **kwargs)
        assert observable(compiled) == observable(python), (step, method, args, kwargs)
        probe = rng.randrange(1, 60)
        assert compiled.order(probe) == python.order(probe)
    assert list(compiled.orders()) == list(python.orders())
    # the feed must have exercised the edge cases, or the comparison proves little
    counters = python.counters()
    assert min(counters["unknown_refs"], counters["overfills"], counters["duplicate_refs"]) > 10, counters
    assert counters["invalid_messages"] > 10 and python.trade_count > 100


def test_a_large_book_survives_table_growth_and_deletions_in_any_order() -> None:
    """Tens of thousands of live orders: hash-table growth, backward-shift deletion, slab reuse."""
    rng = random.Random(7)
    python, compiled = OrderBook(), NativeBook()
    live: list[int] = []
    next_ref = 1
    for _ in range(60_000):
        if live and rng.random() < 0.4:
            ref = live.pop(rng.randrange(len(live)))
            python.delete_order(ref)
            compiled.delete_order(ref)
        else:
            ref = next_ref * 2_654_435_761 % (1 << 40)  # scattered, collision-prone references
            next_ref += 1
            live.append(ref)
            side, price, shares = rng.choice("BS"), rng.randrange(1, 500) * 100, rng.randrange(1, 1000)
            python.add_order(ref, side, price, shares)
            compiled.add_order(ref, side, price, shares)
    assert compiled.order_count == python.order_count == len(live) > 10_000
    assert observable(compiled) == observable(python)
    assert all(compiled.order(ref) == python.order(ref) for ref in live[::97])


def test_snapshots_restore_across_implementations() -> None:
    rng = random.Random(11)
    python = OrderBook("AAPL", "XNAS")
    for method, args, kwargs in random_events(rng, 2000):
        getattr(python, method)(*args, **kwargs)
    snapshot = python.to_snapshot()
    snapshot["message_counts"]["S"] = 3  # a type the book only counts (offline apply() counts them)
    restored = NativeBook.from_snapshot(snapshot)
    assert restored.to_snapshot() == snapshot
    back = OrderBook.from_snapshot(restored.to_snapshot())
    assert observable(back) == observable(restored)
    with pytest.raises(ValueError, match="version"):
        NativeBook.from_snapshot({**snapshot, "version": 99})
    with pytest.raises(ValueError, match="twice"):
        NativeBook.from_snapshot({**snapshot, "order_references": [5, 5], "order_sides": "BB",
                                  "order_prices": [1, 1], "order_shares": [1, 1]})  # fmt: skip


def test_integrity_findings_match_the_reference_for_a_crossed_and_a_locked_book() -> None:
    for bid, ask, code in ((10_100, 10_000, "crossed"), (10_000, 10_000, "locked")):
        python, compiled = OrderBook(), NativeBook()
        for book in (python, compiled):
            book.add_order(1, "B", bid, 10)
            book.add_order(2, "S", ask, 10)
        assert (
            [p.code for p in compiled.check_integrity()]
            == [p.code for p in python.check_integrity()]
            == [code]
        )


def test_a_corrupted_snapshot_is_reported_by_the_integrity_check() -> None:
    """Orders with non-positive shares (which no event can produce) are found as in the reference."""
    snapshot = OrderBook().to_snapshot()
    snapshot.update(order_references=[1, 2], order_sides="BS", order_prices=[100, 0], order_shares=[0, 5])
    python, compiled = OrderBook.from_snapshot(snapshot), NativeBook.from_snapshot(snapshot)
    codes = sorted(problem.code for problem in compiled.check_integrity())
    assert codes == sorted(problem.code for problem in python.check_integrity())
    assert {"non_positive_shares", "non_positive_price"} <= set(codes)


def test_the_extension_is_built_from_the_current_source() -> None:
    assert not any(e.stale() for e in extensions.EXTENSIONS), (
        "a C source changed since the build: `./dev setup`"
    )
    wire = BookStage(venue="V", symbol="X", config=CONFIG).wire
    assert new_engine("X", "V", wire).book.__class__ is NativeBook or not native.use_native()


def stage_outputs(feed: SymbolFeed, implementation: str, monkeypatch: pytest.MonkeyPatch) -> list:
    monkeypatch.setenv("ITCHFLOW_NATIVE", implementation)
    stage = BookStage.restore(None, venue=VENUE, symbol=feed.symbol, config=CONFIG)
    outputs = [stage.apply(batch) for batch in feed.batches]
    return [*outputs, stage.snapshot()]


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_the_stage_emits_the_same_bytes_on_either_book(
    batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ClickHouse row and Redis command (the C book encodes top-of-book changes itself) and the
    final state, byte for byte, on a perturbed synthetic feed (unknown refs, overfills, duplicates)."""
    payloads = list(synth.generate(5, 6000, seed=3))
    rng = random.Random(batch_size)
    header = synth.header_message_count(5)
    body = [p for p in payloads[header:] if rng.random() > 0.03]  # dropped messages: unknown refs
    feeds = symbol_feeds(payloads[:header] + body, batch_size)
    assert len(feeds) == 5
    for feed in feeds.values():
        python = stage_outputs(feed, "python", monkeypatch)
        compiled = stage_outputs(feed, "native", monkeypatch)
        # enough top-of-book changes to compare, even for the quietest symbol (about 500 events)
        assert sum(output.tob_changes for output in python[:-1]) > 50
        assert compiled == python, feed.symbol
