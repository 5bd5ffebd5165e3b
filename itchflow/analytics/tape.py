"""The tape of an ITCH file: every symbol's eligible prints, with broken trades applied (offline).

The streaming jobs take prints from the order books (an E's price is the resting order's); offline,
:class:`Tape` keeps just enough of every order -- its price and remaining shares -- to price the E
messages, independently of the book code. An E or C on an order the file never added (a capture that
starts mid-day) cannot be priced by E, and is not counted (``unpriced``); a C carries its own price
and counts when printable.

Symbols come from the stock directory (R) or, for a locate without one, from the stock field of A,
F, P or Q, as the books learn them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from itchflow.analytics.bars import Print, eligible


@dataclass
class TapeCounts:
    """What the tape saw besides the eligible prints."""

    prints: int = 0
    """eligible prints added"""
    ineligible: int = 0
    """C with Printable = N and Q with 0 shares"""
    unpriced: int = 0
    """E on an order reference the file never added"""
    breaks_applied: int = 0
    breaks_unknown: int = 0
    """B whose match number is no eligible print of that symbol seen before it"""


@dataclass
class Tape:
    """Feed ITCH messages in file order (:meth:`apply`); read :attr:`prints` per symbol."""

    trading_midnight_ns: int
    """UTC epoch ns of the trading date's midnight in New York: event time = this + ITCH timestamp."""
    prints: dict[str, dict[int, list[Print]]] = field(default_factory=dict)
    """symbol -> match number -> its eligible prints (one, unless a file repeats a match number), in
    feed order; broken prints removed"""
    counts: TapeCounts = field(default_factory=TapeCounts)
    _symbols: dict[int, str] = field(default_factory=dict)
    _orders: dict[int, list[int]] = field(default_factory=dict)  # ref -> [price, shares]
    _seq: int = 0

    def apply_all(self, messages: Iterable[Any]) -> None:
        apply = self.apply
        for message in messages:
            apply(message)

    def apply(self, message: Any) -> None:
        self._seq += 1
        kind = message.message_type
        if kind in "AF":
            self._symbol(message.stock_locate, message.stock)
            self._orders[message.order_reference_number] = [message.price, message.shares]
        elif kind == "E":
            order = self._orders.get(message.order_reference_number)
            if order is None:
                self.counts.unpriced += 1
                return
            self._execute(order, message.order_reference_number, message.executed_shares)
            self._print(message, "E", True, order[0], message.executed_shares)
        elif kind == "C":
            order = self._orders.get(message.order_reference_number)
            if order is not None:
                self._execute(order, message.order_reference_number, message.executed_shares)
            self._print(
                message, "C", message.printable == "Y", message.execution_price, message.executed_shares
            )
        elif kind == "X":
            order = self._orders.get(message.order_reference_number)
            if order is not None:
                self._execute(order, message.order_reference_number, message.cancelled_shares)
        elif kind == "D":
            self._orders.pop(message.order_reference_number, None)
        elif kind == "U":
            self._orders.pop(message.original_order_reference_number, None)
            self._orders[message.new_order_reference_number] = [message.price, message.shares]
        elif kind == "P":
            self._symbol(message.stock_locate, message.stock)
            self._print(message, "P", True, message.price, message.shares)
        elif kind == "Q":
            self._symbol(message.stock_locate, message.stock)
            self._print(message, "Q", True, message.cross_price, message.shares)
        elif kind == "B":
            self._break(message)
        elif kind == "R":
            self._symbols[message.stock_locate] = message.stock.rstrip()

    def _symbol(self, locate: int, stock: str) -> None:
        if locate not in self._symbols:
            self._symbols[locate] = stock.rstrip()

    def _execute(self, order: list[int], reference: int, shares: int) -> None:
        order[1] -= shares
        if order[1] <= 0:
            del self._orders[reference]

    def _print(self, message: Any, kind: str, printable: bool, price: int, shares: int) -> None:
        if not eligible(kind, printable, shares):
            self.counts.ineligible += 1
            return
        symbol = self._symbols.get(message.stock_locate)
        if symbol is None:  # a C or E of a locate never named: no symbol to put it under
            self.counts.unpriced += 1
            return
        ts_event = self.trading_midnight_ns + message.timestamp
        prints = self.prints.get(symbol)
        if prints is None:
            prints = self.prints[symbol] = {}
        p = Print(ts_event, self._seq, message.match_number, price, shares)
        same_match = prints.get(message.match_number)
        if same_match is None:
            prints[message.match_number] = [p]
        else:
            same_match.append(p)
        self.counts.prints += 1

    def symbol_prints(self, symbol: str) -> Iterator[Print]:
        """``symbol``'s eligible prints that stand (not broken)."""
        for same_match in self.prints.get(symbol, {}).values():
            yield from same_match

    def _break(self, message: Any) -> None:
        # match numbers are unique per day; should a file repeat one, the break takes every print of it
        symbol = self._symbols.get(message.stock_locate)
        prints = self.prints.get(symbol) if symbol is not None else None
        if prints is not None and prints.pop(message.match_number, None) is not None:
            self.counts.breaks_applied += 1
        else:
            self.counts.breaks_unknown += 1
