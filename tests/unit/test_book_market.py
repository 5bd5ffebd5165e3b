"""MarketBooks: routing by stock locate, learning symbols, feed counters, snapshots."""

from __future__ import annotations

import json

import pytest

from itchflow.book import LastTrade, MarketBooks, PriceLevel
from tests.unit.book_factories import (
    T0,
    add_order,
    cross_trade,
    delete,
    dollars,
    executed,
    stock_directory,
    system_event,
    trade,
)

P10 = dollars("10.00")
P20 = dollars("20.00")


def market_of(*messages) -> MarketBooks:
    market = MarketBooks(venue="XNAS")
    market.apply_all(messages)
    return market


def test_stock_directory_names_the_book_and_events_route_by_locate() -> None:
    market = market_of(
        stock_directory(1, "AAPL"),
        stock_directory(2, "MSFT"),
        add_order(10, "B", P10, 100, locate=1, stock="AAPL"),
        add_order(20, "S", P20, 200, locate=2, stock="MSFT"),
        executed(20, 50, locate=2, match=5),
        delete(10, locate=1),
    )
    assert market.symbols() == ["AAPL", "MSFT"]
    assert market.symbol_of(2) == "MSFT"
    assert market.book("AAPL").order_count == 0
    assert market.book("MSFT").best_ask() == PriceLevel(P20, 150, 1)
    assert market.book("MSFT").last_trade().match_number == 5
    assert market.book("MSFT").venue == "XNAS"


def test_symbol_is_learned_from_an_add_when_the_directory_was_missed() -> None:
    market = market_of(add_order(10, "B", P10, 100, locate=9, stock="LATE"), executed(10, 10, locate=9))
    assert market.symbols() == ["LATE"]
    assert market.book("LATE").best_bid() == PriceLevel(P10, 90, 1)


def test_trades_teach_symbols_too() -> None:
    market = market_of(trade(P10, 5, locate=3, stock="PRT"), cross_trade(P20, 7, locate=4, stock="CRS"))
    assert market.book("PRT").last_trade() == LastTrade(P10, 5, T0, 1)
    assert market.book("CRS").last_trade().shares == 7


def test_order_events_for_a_locate_nobody_named_are_unrouted_not_fatal() -> None:
    market = market_of(executed(1, 10, locate=5), delete(2, locate=5))
    assert market.unrouted_messages == 2
    assert market.symbols() == []
    assert market.totals()["unrouted_messages"] == 2


def test_same_reference_in_another_symbol_is_that_symbols_unknown_order() -> None:
    market = market_of(
        stock_directory(1, "AAA"),
        stock_directory(2, "BBB"),
        add_order(10, "B", P10, 100, locate=1, stock="AAA"),
        delete(10, locate=2),
    )
    assert market.book("AAA").order_count == 1
    assert market.book("BBB").unknown_refs == 1


def test_directory_moving_a_locate_to_another_symbol_is_counted() -> None:
    market = market_of(
        stock_directory(1, "OLD"), stock_directory(1, "NEW"), add_order(1, "B", P10, 1, locate=1)
    )
    assert market.locate_conflicts == 1
    assert market.symbol_of(1) == "NEW"
    assert market.book("NEW").order_count == 1
    assert market.book("OLD").order_count == 0


def test_feed_counters_and_totals() -> None:
    market = market_of(
        system_event("O"),
        stock_directory(1, "AAA"),
        add_order(1, "B", P10, 100, locate=1, stock="AAA"),
        add_order(2, "S", P20, 100, locate=1, stock="AAA"),
        executed(2, 150, locate=1),  # overfill
        delete(3, locate=1),  # unknown
        system_event("Q"),
    )
    assert market.message_counts == {"S": 2, "R": 1, "A": 2, "E": 1, "D": 1}
    assert market.last_system_event == "Q"
    assert market.totals() == {
        "messages": 7,
        "symbols": 1,
        "orders": 1,
        "unknown_refs": 1,
        "overfills": 1,
        "duplicate_refs": 0,
        "invalid_messages": 0,
        "trade_count": 1,
        "traded_shares": 150,
        "unrouted_messages": 0,
        "locate_conflicts": 0,
    }


def test_market_snapshot_round_trip() -> None:
    market = market_of(
        system_event("Q"),
        stock_directory(1, "AAA"),
        stock_directory(2, "BBB"),
        add_order(1, "B", P10, 100, locate=1, stock="AAA"),
        add_order(2, "S", P20, 100, locate=2, stock="BBB"),
        executed(2, 40, locate=2),
        executed(9, 1, locate=7),
    )
    snapshot = market.to_snapshot()
    restored = MarketBooks.from_snapshot(json.loads(json.dumps(snapshot)))
    assert restored.to_snapshot() == snapshot
    assert restored.totals() == market.totals()
    restored.apply(executed(2, 60, locate=2))
    market.apply(executed(2, 60, locate=2))
    assert restored.to_snapshot() == market.to_snapshot()
    assert restored.book("BBB").order_count == 0


def test_market_snapshot_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        MarketBooks.from_snapshot({"version": 2})
