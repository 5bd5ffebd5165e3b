"""All the books of one feed: learns stock locate -> symbol and routes each message to its symbol's book.

The stock locate code in every ITCH message is the routing key. The mapping is learned from stock
directory (``R``) messages, which always win, and from the ``stock`` field of ``A``/``F``/``P``/``Q``
when the locate has not been seen before (captures that start after the directory). Order events
(``E``/``C``/``X``/``D``/``U``) for a locate with no known symbol cannot belong to any order a book
holds; they are counted in ``unrouted_messages``. System events (``S``) are counted and the latest event
code is kept; every other type is only counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from itchflow.book.core import SNAPSHOT_VERSION, OrderBook

_SYMBOL_CARRIERS = frozenset("AFPQ")
_ORDER_EVENTS = frozenset("ECXDU")


class MarketBooks:
    """Mutable feed-level state: one :class:`OrderBook` per symbol plus feed counters."""

    __slots__ = (
        "venue",
        "message_counts",
        "unrouted_messages",
        "locate_conflicts",
        "last_system_event",
        "_books_by_locate",
        "_symbols_by_locate",
        "_books_by_symbol",
        "_handlers_by_locate",
    )

    def __init__(self, venue: str = "") -> None:
        self.venue = venue
        #: every message seen, by ITCH message type
        self.message_counts: dict[str, int] = {}
        #: order events whose stock locate maps to no known symbol
        self.unrouted_messages = 0
        #: stock directory messages that moved a locate to a different symbol
        self.locate_conflicts = 0
        #: event code of the latest system event (``'O'``, ``'S'``, ``'Q'``, ``'M'``, ``'E'``, ``'C'``) or ``''``
        self.last_system_event = ""
        self._books_by_locate: dict[int, OrderBook] = {}
        self._symbols_by_locate: dict[int, str] = {}
        self._books_by_symbol: dict[str, OrderBook] = {}
        self._handlers_by_locate: dict[int, Mapping[str, Callable[[Any], None]]] = {}

    def apply(self, message: Any) -> None:
        """Count one ITCH message and hand it to the book of its symbol when it concerns a book."""
        message_type = message.message_type
        counts = self.message_counts
        counts[message_type] = counts.get(message_type, 0) + 1
        # hot path: a book event for a known locate goes straight to that book's handler
        handlers = self._handlers_by_locate.get(message.stock_locate)
        if handlers is not None:
            handler = handlers.get(message_type)
            if handler is not None:
                handler(message)
                return
        self._apply_other(message, message_type)

    def _apply_other(self, message: Any, message_type: str) -> None:
        if message_type in _SYMBOL_CARRIERS:  # first sight of this locate: learn it from the stock field
            self._learn(message.stock_locate, message.stock).apply(message)
        elif message_type in _ORDER_EVENTS:
            self.unrouted_messages += 1
        elif message_type == "R":
            self._on_stock_directory(message)
        elif message_type == "S":
            self.last_system_event = message.event_code

    def apply_all(self, messages: Iterable[Any]) -> None:
        """Apply every message of an iterable, in order."""
        apply = self.apply
        for message in messages:
            apply(message)

    def _on_stock_directory(self, message: Any) -> None:
        symbol = message.stock.strip()
        known = self._symbols_by_locate.get(message.stock_locate)
        if known is not None and known != symbol:
            self.locate_conflicts += 1
        self._learn(message.stock_locate, symbol)

    def _learn(self, stock_locate: int, stock: str) -> OrderBook:
        symbol = stock.strip()
        book = self._books_by_symbol.get(symbol)
        if book is None:
            book = OrderBook(symbol=symbol, venue=self.venue)
            self._books_by_symbol[symbol] = book
        self._symbols_by_locate[stock_locate] = symbol
        self._books_by_locate[stock_locate] = book
        self._handlers_by_locate[stock_locate] = book.handlers
        return book

    # ------------------------------------------------------------------ queries

    def book(self, symbol: str) -> OrderBook | None:
        """The book of ``symbol``, or None if the feed never named it."""
        return self._books_by_symbol.get(symbol)

    def symbols(self) -> list[str]:
        """Every symbol that has a book, sorted."""
        return sorted(self._books_by_symbol)

    def books(self) -> list[OrderBook]:
        """Every book, sorted by symbol."""
        return [self._books_by_symbol[symbol] for symbol in self.symbols()]

    def symbol_of(self, stock_locate: int) -> str | None:
        """The symbol a stock locate code maps to, or None."""
        return self._symbols_by_locate.get(stock_locate)

    def totals(self) -> dict[str, int]:
        """Feed-wide counters: messages, book counters summed over symbols, live orders, routing problems."""
        totals = {
            "messages": sum(self.message_counts.values()),
            "symbols": len(self._books_by_symbol),
            "orders": 0,
            "unknown_refs": 0,
            "overfills": 0,
            "duplicate_refs": 0,
            "invalid_messages": 0,
            "trade_count": 0,
            "traded_shares": 0,
        }
        for book in self._books_by_symbol.values():
            totals["orders"] += book.order_count
            for name, value in book.counters().items():
                totals[name] += value
        totals["unrouted_messages"] = self.unrouted_messages
        totals["locate_conflicts"] = self.locate_conflicts
        return totals

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        """A plain, versioned copy of the whole feed state; books are :meth:`OrderBook.to_snapshot` dicts."""
        return {
            "version": SNAPSHOT_VERSION,
            "venue": self.venue,
            "locates": [[locate, symbol] for locate, symbol in self._symbols_by_locate.items()],
            "books": [book.to_snapshot() for book in self._books_by_symbol.values()],
            "message_counts": dict(self.message_counts),
            "unrouted_messages": self.unrouted_messages,
            "locate_conflicts": self.locate_conflicts,
            "last_system_event": self.last_system_event,
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> MarketBooks:
        """Rebuild the feed state from :meth:`to_snapshot` output; raises ValueError on an unknown version."""
        version = snapshot.get("version")
        if version != SNAPSHOT_VERSION:
            raise ValueError(
                f"unsupported market books snapshot version {version!r} (expected {SNAPSHOT_VERSION})"
            )
        market = cls(venue=snapshot["venue"])
        for book_snapshot in snapshot["books"]:
            book = OrderBook.from_snapshot(book_snapshot)
            market._books_by_symbol[book.symbol] = book
        for locate, symbol in snapshot["locates"]:
            market._learn(locate, symbol)
        market.message_counts = dict(snapshot["message_counts"])
        market.unrouted_messages = snapshot["unrouted_messages"]
        market.locate_conflicts = snapshot["locate_conflicts"]
        market.last_system_event = snapshot["last_system_event"]
        return market
