"""OrderBook: hand-worked expectations for every message type and edge case."""

from __future__ import annotations

import json

import pytest

from itchflow.book import BookDepth, LastTrade, OrderBook, PriceLevel, RestingOrder
from tests.unit.book_factories import (
    MS,
    T0,
    add_attributed,
    add_order,
    cancel,
    cross_trade,
    delete,
    dollars,
    executed,
    executed_at,
    replace,
    system_event,
    trade,
)

P10 = dollars("10.00")
P10_01 = dollars("10.01")
P10_02 = dollars("10.02")
P9_99 = dollars("9.99")
P9_98 = dollars("9.98")


def book_of(*messages) -> OrderBook:
    book = OrderBook(symbol="TEST", venue="XNAS")
    for message in messages:
        book.apply(message)
    return book


def two_sided() -> OrderBook:
    """Bids 9.99 x 100 (ref 1), 9.99 x 200 (ref 2), 9.98 x 300 (ref 3); asks 10.01 x 400 (ref 4), 10.02 x 500 (ref 5)."""
    return book_of(
        add_order(1, "B", P9_99, 100),
        add_order(2, "B", P9_99, 200),
        add_order(3, "B", P9_98, 300),
        add_order(4, "S", P10_01, 400),
        add_order(5, "S", P10_02, 500),
    )


# ---------------------------------------------------------------- adds, depth, best prices


def test_empty_book_has_no_prices_and_no_trade() -> None:
    book = OrderBook()
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.spread() is None
    assert book.last_trade() is None
    assert book.depth(5) == BookDepth(bids=(), asks=())
    assert book.check_integrity() == []


def test_adds_aggregate_by_price_bids_descending_asks_ascending() -> None:
    book = two_sided()
    assert book.depth(5) == BookDepth(
        bids=(PriceLevel(P9_99, 300, 2), PriceLevel(P9_98, 300, 1)),
        asks=(PriceLevel(P10_01, 400, 1), PriceLevel(P10_02, 500, 1)),
    )
    assert book.best_bid() == PriceLevel(P9_99, 300, 2)
    assert book.best_ask() == PriceLevel(P10_01, 400, 1)
    assert book.spread() == 200  # two cents in 4-decimal ticks
    assert book.order_count == 5
    assert book.check_integrity() == []


def test_depth_is_cut_to_the_best_n_levels_per_side() -> None:
    book = book_of(*(add_order(ref, "B", dollars("9.90") + ref * 100, 10) for ref in range(1, 8)))
    book.apply(add_order(100, "S", P10_02, 1))
    book.apply(add_order(101, "S", P10_01, 1))
    depth = book.depth(3)
    assert [level.price for level in depth.bids] == [dollars("9.97"), dollars("9.96"), dollars("9.95")]
    assert [level.price for level in depth.asks] == [P10_01, P10_02]
    assert len(book.depth().bids) == 7
    assert book.depth(0) == BookDepth(bids=(), asks=())


def test_attributed_add_books_like_an_add_and_is_counted_as_f() -> None:
    book = book_of(add_attributed(1, "S", P10_01, 100), add_order(2, "S", P10_01, 50))
    assert book.best_ask() == PriceLevel(P10_01, 150, 2)
    assert book.message_counts["F"] == 1
    assert book.message_counts["A"] == 1


def test_primitive_methods_work_without_itch_objects() -> None:
    book = OrderBook()
    book.add_order(1, "B", P10, 100)
    book.add_order(2, "S", P10_01, 100)
    book.execute_order(2, 40, T0, match_number=9)
    book.cancel_order(1, 30)
    assert book.depth(1) == BookDepth(bids=(PriceLevel(P10, 70, 1),), asks=(PriceLevel(P10_01, 60, 1),))
    assert book.last_trade() == LastTrade(P10_01, 40, T0, 9)


# ---------------------------------------------------------------- executions


def test_executes_partially_then_deletes() -> None:
    book = two_sided()
    book.apply(executed(4, 150, ts=T0 + MS, match=77))
    assert book.best_ask() == PriceLevel(P10_01, 250, 1)
    assert book.order(4) == RestingOrder(4, "S", P10_01, 250)
    assert book.last_trade() == LastTrade(P10_01, 150, T0 + MS, 77)  # the resting order's price
    book.apply(delete(4))
    assert book.best_ask() == PriceLevel(P10_02, 500, 1)
    assert book.order(4) is None
    assert book.check_integrity() == []


def test_full_execution_removes_the_order_and_an_emptied_level() -> None:
    book = two_sided()
    book.apply(executed(1, 100))
    assert book.best_bid() == PriceLevel(P9_99, 200, 1)
    book.apply(executed(2, 200))
    assert book.best_bid() == PriceLevel(P9_98, 300, 1)
    assert book.order_count == 3
    assert book.trade_count == 2
    assert book.traded_shares == 300
    assert book.overfills == 0


def test_partial_execution_keeps_time_priority() -> None:
    book = two_sided()
    book.apply(executed(1, 10))
    assert [order.reference for order in book.orders()] == [1, 2, 3, 4, 5]


def test_execution_larger_than_the_order_is_clamped_and_counted() -> None:
    book = two_sided()
    book.apply(executed(4, 1000, match=5))
    assert book.overfills == 1
    assert book.order(4) is None
    assert book.best_ask() == PriceLevel(P10_02, 500, 1)
    assert book.last_trade() == LastTrade(P10_01, 1000, T0, 5)  # the print keeps the reported shares
    assert book.check_integrity() == []


def test_execution_with_price_prints_at_the_execution_price() -> None:
    book = two_sided()
    book.apply(executed_at(5, 100, P10, printable="Y", ts=T0 + 2 * MS, match=3))
    assert book.order(5) == RestingOrder(5, "S", P10_02, 400)  # the book is reduced at the order's level
    assert book.best_ask() == PriceLevel(P10_01, 400, 1)
    assert book.depth().asks[1] == PriceLevel(P10_02, 400, 1)
    assert book.last_trade() == LastTrade(P10, 100, T0 + 2 * MS, 3)


def test_non_printable_execution_reduces_the_book_but_is_not_a_print() -> None:
    book = two_sided()
    book.apply(executed(4, 10, match=1))
    book.apply(executed_at(5, 100, P10, printable="N", match=2))
    assert book.order(5).shares == 400
    assert book.last_trade() == LastTrade(P10_01, 10, T0, 1)
    assert book.trade_count == 1


def test_execution_with_price_of_an_unknown_order_still_prints_but_plain_execution_does_not() -> None:
    book = two_sided()
    book.apply(executed(999, 10, match=1))
    assert book.last_trade() is None
    book.apply(executed_at(998, 20, P10, match=2))
    assert book.last_trade() == LastTrade(P10, 20, T0, 2)
    assert book.unknown_refs == 2
    assert book.order_count == 5


# ---------------------------------------------------------------- cancels, deletes, replaces


def test_partial_cancel_reduces_the_order_and_its_level() -> None:
    book = two_sided()
    book.apply(cancel(2, 50))
    assert book.order(2) == RestingOrder(2, "B", P9_99, 150)
    assert book.best_bid() == PriceLevel(P9_99, 250, 2)
    assert book.last_trade() is None
    assert book.overfills == 0


def test_cancel_of_more_than_remaining_removes_the_order_and_is_counted() -> None:
    book = two_sided()
    book.apply(cancel(1, 101))
    assert book.overfills == 1
    assert book.order(1) is None
    assert book.best_bid() == PriceLevel(P9_99, 200, 1)
    assert book.check_integrity() == []


def test_cancel_of_exactly_remaining_removes_the_order_without_overfill() -> None:
    book = two_sided()
    book.apply(cancel(3, 300))
    assert book.overfills == 0
    assert [level.price for level in book.depth().bids] == [P9_99]


def test_delete_of_an_unknown_order_is_counted_and_changes_nothing() -> None:
    book = two_sided()
    before = book.to_snapshot()
    book.apply(delete(42))
    after = book.to_snapshot()
    assert book.unknown_refs == 1
    assert after["order_references"] == before["order_references"]
    assert book.depth() == two_sided().depth()


def test_events_for_unknown_orders_never_invent_orders() -> None:
    book = book_of(executed(1, 10), cancel(2, 10), delete(3), replace(4, 5, P10, 100))
    assert book.unknown_refs == 4
    assert book.order_count == 0
    assert book.order(5) is None  # the replacement of an unknown order is not booked either


def test_replace_moves_the_order_to_the_new_price_keeping_its_side() -> None:
    book = two_sided()
    book.apply(replace(4, 40, P10_02, 250))  # the 10.01 ask becomes a 10.02 ask
    assert book.order(4) is None
    assert book.order(40) == RestingOrder(40, "S", P10_02, 250)
    assert book.depth() == BookDepth(
        bids=(PriceLevel(P9_99, 300, 2), PriceLevel(P9_98, 300, 1)),
        asks=(PriceLevel(P10_02, 750, 2),),
    )
    assert book.message_counts["U"] == 1


def test_replace_loses_time_priority() -> None:
    book = two_sided()
    book.apply(replace(1, 10, P9_99, 100))  # same price and size: only the queue position changes
    assert [order.reference for order in book.orders()] == [2, 3, 4, 5, 10]
    assert book.best_bid() == PriceLevel(P9_99, 300, 2)


def test_replace_of_a_bid_stays_a_bid_even_above_the_asks() -> None:
    book = two_sided()
    book.apply(replace(3, 30, P10_02, 10))
    assert book.order(30).side == "B"
    assert [problem.code for problem in book.check_integrity()] == ["crossed"]


# ---------------------------------------------------------------- trades that do not touch the book


def test_non_cross_trade_sets_the_last_trade_without_touching_the_book() -> None:
    book = two_sided()
    book.apply(trade(P10, 75, ts=T0 + 5 * MS, match=11))
    assert book.last_trade() == LastTrade(P10, 75, T0 + 5 * MS, 11)
    assert book.depth() == two_sided().depth()


def test_cross_trade_sets_the_last_trade_and_zero_share_crosses_are_not_prints() -> None:
    book = two_sided()
    book.apply(cross_trade(P10_01, 5000, match=12))
    book.apply(cross_trade(P10_02, 0, match=13))
    assert book.last_trade() == LastTrade(P10_01, 5000, T0, 12)
    assert book.message_counts["Q"] == 2
    assert book.trade_count == 1
    assert book.depth() == two_sided().depth()


def test_other_message_types_are_counted_and_ignored() -> None:
    book = two_sided()
    book.apply(system_event("Q"))
    assert book.message_counts["S"] == 1
    assert book.depth() == two_sided().depth()


# ---------------------------------------------------------------- odd input


def test_add_with_a_live_reference_replaces_the_old_order_and_is_counted() -> None:
    book = two_sided()
    book.apply(add_order(1, "S", P10_02, 10))
    assert book.duplicate_refs == 1
    assert book.order(1) == RestingOrder(1, "S", P10_02, 10)
    assert book.best_bid() == PriceLevel(P9_99, 200, 1)
    assert book.check_integrity() == []


@pytest.mark.parametrize(
    "message",
    [
        add_order(9, "B", P10, 0),
        add_order(9, "B", 0, 100),
        add_order(9, "?", P10, 100),
        cancel(1, 0),
        executed(1, 0),
    ],
    ids=["zero_shares", "zero_price", "bad_side", "cancel_nothing", "execute_nothing"],
)
def test_invalid_events_are_counted_and_ignored(message) -> None:
    book = two_sided()
    book.apply(message)
    assert book.invalid_messages == 1
    assert book.depth() == two_sided().depth()


# ---------------------------------------------------------------- integrity


def test_crossed_and_locked_books_are_reported() -> None:
    locked = book_of(add_order(1, "B", P10, 100), add_order(2, "S", P10, 100))
    crossed = book_of(add_order(1, "B", P10_01, 100), add_order(2, "S", P10, 100))
    assert [problem.code for problem in locked.check_integrity()] == ["locked"]
    assert [problem.code for problem in crossed.check_integrity()] == ["crossed"]
    assert crossed.spread() == -100


def test_integrity_check_notices_a_corrupted_level_aggregate() -> None:
    book = two_sided()
    book._bid_levels[P9_99][0] += 1  # simulate a bug: the aggregate no longer equals its orders
    assert [problem.code for problem in book.check_integrity()] == ["level_mismatch"]


def test_integrity_check_notices_a_non_positive_order() -> None:
    book = two_sided()
    book._orders[3] = (P9_98, 0, True)
    book._bid_levels[P9_98][0] = 0
    codes = sorted(problem.code for problem in book.check_integrity())
    assert codes == ["non_positive_shares", "non_positive_shares"]


# ---------------------------------------------------------------- snapshots


def busy_book() -> OrderBook:
    book = two_sided()
    for message in (
        executed(1, 40, match=1),
        cancel(5, 100),
        replace(3, 30, P9_99, 120),
        delete(42),
        executed(4, 999, match=2),
        trade(P10, 10, match=3),
        add_attributed(6, "S", P10_01, 70),
    ):
        book.apply(message)
    return book


def test_snapshot_round_trip_restores_the_exact_state() -> None:
    book = busy_book()
    snapshot = book.to_snapshot()
    restored = OrderBook.from_snapshot(json.loads(json.dumps(snapshot)))  # plain data: survives JSON
    assert restored.to_snapshot() == snapshot
    assert list(restored.orders()) == list(book.orders())
    assert restored.depth() == book.depth()
    assert restored.last_trade() == book.last_trade()
    assert restored.counters() == book.counters()
    assert restored.message_counts == book.message_counts
    assert restored.check_integrity() == []
    # and they keep evolving identically
    for target in (book, restored):
        target.apply(executed(2, 200, match=4))
        target.apply(add_order(7, "B", P10, 5))
    assert restored.to_snapshot() == book.to_snapshot()


def test_snapshot_is_versioned_plain_data() -> None:
    snapshot = busy_book().to_snapshot()
    assert snapshot["version"] == 1
    assert snapshot["symbol"] == "TEST"
    assert snapshot["venue"] == "XNAS"
    # time priority: 1 and 2 untouched (1 partially executed), 3 replaced by 30 at the back, 4 gone, 6 last
    assert snapshot["order_references"] == [1, 2, 5, 30, 6]
    assert snapshot["order_sides"] == "BBSBS"
    assert snapshot["order_prices"] == [P9_99, P9_99, P10_02, P9_99, P10_01]
    assert snapshot["order_shares"] == [60, 200, 400, 120, 70]
    assert snapshot["last_trade"] == [P10, 10, T0, 3]
    assert snapshot["counters"] == {
        "unknown_refs": 1,
        "overfills": 1,
        "duplicate_refs": 0,
        "invalid_messages": 0,
        "trade_count": 3,
        "traded_shares": 40 + 999 + 10,
    }


def test_snapshot_of_an_unknown_version_is_refused() -> None:
    snapshot = busy_book().to_snapshot()
    snapshot["version"] = 99
    with pytest.raises(ValueError, match="version 99"):
        OrderBook.from_snapshot(snapshot)
