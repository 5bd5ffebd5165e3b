"""A deliberately simple second implementation of the book semantics, for differential tests.

No incremental aggregates, no sorted indexes, no cleverness: a plain dict of live orders per symbol,
and L2 levels recomputed from scratch on every query. It follows the rules written in the module
docstring of ``itchflow.book.core`` (read from the spec, not from that code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimpleOrder:
    side: str
    price: int
    shares: int


@dataclass
class SimpleSymbol:
    # insertion order of a dict is time priority; a replaced order is deleted and re-inserted
    orders: dict[int, SimpleOrder] = field(default_factory=dict)
    last_trade: tuple[int, int, int, int] | None = None
    unknown_refs: int = 0
    overfills: int = 0
    duplicate_refs: int = 0
    invalid_messages: int = 0
    trade_count: int = 0
    traded_shares: int = 0

    def levels(self, side: str) -> list[tuple[int, int, int]]:
        """(price, shares, order count) of one side, best first, recomputed from every order."""
        totals: dict[int, list[int]] = {}
        for order in self.orders.values():
            if order.side == side:
                total = totals.setdefault(order.price, [0, 0])
                total[0] += order.shares
                total[1] += 1
        prices = sorted(totals, reverse=(side == "B"))
        return [(price, totals[price][0], totals[price][1]) for price in prices]

    def counters(self) -> dict[str, int]:
        return {
            "unknown_refs": self.unknown_refs,
            "overfills": self.overfills,
            "duplicate_refs": self.duplicate_refs,
            "invalid_messages": self.invalid_messages,
            "trade_count": self.trade_count,
            "traded_shares": self.traded_shares,
        }

    def print_trade(self, price: int, shares: int, timestamp: int, match_number: int) -> None:
        self.last_trade = (price, shares, timestamp, match_number)
        self.trade_count += 1
        self.traded_shares += shares

    def add(self, reference: int, side: str, price: int, shares: int) -> None:
        if side not in ("B", "S") or price <= 0 or shares <= 0:
            self.invalid_messages += 1
            return
        if reference in self.orders:
            self.duplicate_refs += 1
            del self.orders[reference]
        self.orders[reference] = SimpleOrder(side, price, shares)

    def take(self, reference: int, shares: int) -> SimpleOrder | None:
        """Remove shares from an order for an execution or cancel; returns the order as it was."""
        if shares <= 0:
            self.invalid_messages += 1
            return None
        if reference not in self.orders:
            self.unknown_refs += 1
            return None
        order = self.orders[reference]
        before = SimpleOrder(order.side, order.price, order.shares)
        if shares > order.shares:
            self.overfills += 1
        order.shares -= min(shares, order.shares)
        if order.shares == 0:
            del self.orders[reference]
        return before


class SimpleMarket:
    """Routes by stock locate exactly as the spec says and applies messages to ``SimpleSymbol``s."""

    def __init__(self) -> None:
        self.symbol_by_locate: dict[int, str] = {}
        self.symbols: dict[str, SimpleSymbol] = {}
        self.unrouted = 0
        self.message_counts: dict[str, int] = {}

    def _symbol(self, locate: int, stock: str | None) -> SimpleSymbol | None:
        if locate not in self.symbol_by_locate:
            if stock is None:
                return None
            self.symbol_by_locate[locate] = stock.strip()
        name = self.symbol_by_locate[locate]
        if name not in self.symbols:
            self.symbols[name] = SimpleSymbol()
        return self.symbols[name]

    def apply(self, message: Any) -> None:
        kind = message.message_type
        self.message_counts[kind] = self.message_counts.get(kind, 0) + 1
        if kind == "R":
            self.symbol_by_locate[message.stock_locate] = message.stock.strip()
            self.symbols.setdefault(message.stock.strip(), SimpleSymbol())
            return
        if kind not in "AFECXDUPQ":
            return
        carries_stock = kind in "AFPQ"
        book = self._symbol(message.stock_locate, message.stock if carries_stock else None)
        if book is None:
            self.unrouted += 1
            return
        if kind in "AF":
            book.add(
                message.order_reference_number, message.buy_sell_indicator, message.price, message.shares
            )
        elif kind == "E":
            before = book.take(message.order_reference_number, message.executed_shares)
            if before is not None:
                book.print_trade(
                    before.price, message.executed_shares, message.timestamp, message.match_number
                )
        elif kind == "C":
            book.take(message.order_reference_number, message.executed_shares)
            if message.printable == "Y" and message.executed_shares > 0:
                book.print_trade(
                    message.execution_price, message.executed_shares, message.timestamp, message.match_number
                )
        elif kind == "X":
            book.take(message.order_reference_number, message.cancelled_shares)
        elif kind == "D":
            if message.order_reference_number in book.orders:
                del book.orders[message.order_reference_number]
            else:
                book.unknown_refs += 1
        elif kind == "U":
            original = book.orders.pop(message.original_order_reference_number, None)
            if original is None:
                book.unknown_refs += 1
            else:
                book.add(message.new_order_reference_number, original.side, message.price, message.shares)
        elif kind == "P":
            if message.shares > 0:
                book.print_trade(message.price, message.shares, message.timestamp, message.match_number)
        elif kind == "Q" and message.shares > 0:
            book.print_trade(message.cross_price, message.shares, message.timestamp, message.match_number)
