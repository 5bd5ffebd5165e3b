"""The order-level (L3) limit order book of one symbol on one venue.

``OrderBook.apply(message)`` takes an ITCH 5.0 message object (anything with ``message_type`` and the
field names of :mod:`itchflow.itch.messages`) and dispatches on its kind. The same work is reachable
without ITCH objects through the primitive methods (``add_order``, ``execute_order``, ...), which is
what the streaming job uses when it feeds the book from columnar batches.

Semantics (the reference the streaming result must equal):

* ``A``/``F`` add an order. ``F`` (attributed) is booked exactly like ``A``; the MPID is not kept.
* ``E`` executes shares of a resting order; the trade print is at the *resting order's* price.
* ``C`` executes shares at ``execution_price``; it is a trade print only when ``printable`` is ``'Y'``
  (non-printable executions are reported elsewhere, typically as part of a cross, and would be double
  counted). The book is reduced either way. A printable ``C`` whose order the book never saw still
  updates the last trade (the price is in the message); an ``E`` for an unknown order cannot (its price
  lives only on the missing order).
* ``X`` cancels part of an order, ``D`` deletes it, ``U`` replaces it: the original leaves the book and
  the new reference joins on the *same side* at the new price and shares, at the back of the queue.
* ``P`` (non-cross trade) and ``Q`` (cross trade) only update the last trade; they never touch resting
  orders. Prints with zero shares (e.g. a cross that matched nothing) are counted but not recorded.
* An event for an order the book never saw (real captures start mid-day) is counted in
  ``unknown_refs`` and otherwise ignored: no crash, no invented order.
* An execution or cancel larger than the order's remaining shares removes what remains and is counted
  in ``overfills``. The trade print keeps the shares the exchange reported.
* An add whose reference is already live replaces the old order and is counted in ``duplicate_refs``.
* Adds and replaces with non-positive price or shares, executions and cancels of non-positive shares,
  and an unknown side are counted in ``invalid_messages`` and ignored.

Data structures (the hot path): a dict of live orders ``reference -> (price, shares, is_bid)`` whose
insertion order is the time priority (tuples of ints, not lists: the garbage collector untracks them,
so a book of a million orders costs it nothing); per side a dict ``price -> [total_shares, order_count]`` kept
incrementally; per side a sorted list of the prices that have a level, maintained with ``bisect`` only
when a level appears or empties (most events only touch the two dicts).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from itchflow.book.values import (
    BUY,
    SELL,
    BookDepth,
    BookStructures,
    DepthColumns,
    IntegrityProblem,
    LastTrade,
    PriceLevel,
    RestingOrder,
)

SNAPSHOT_VERSION = 1
_SIDES = frozenset((BUY, SELL))

# The message types a book acts on; every other type is counted and ignored.
BOOK_MESSAGE_TYPES = ("A", "F", "E", "C", "X", "D", "U", "P", "Q")

COUNTER_NAMES = (
    "unknown_refs",
    "overfills",
    "duplicate_refs",
    "invalid_messages",
    "trade_count",
    "traded_shares",
)


class OrderBook:
    """Mutable L3 book of one (venue, symbol). Not thread-safe; one instance per key."""

    __slots__ = (
        "venue",
        "symbol",
        "message_counts",
        "unknown_refs",
        "overfills",
        "duplicate_refs",
        "invalid_messages",
        "trade_count",
        "traded_shares",
        "_orders",
        "_bid_levels",
        "_ask_levels",
        "_bid_prices",
        "_ask_prices",
        "_last_trade",
        "_handlers",
    )

    def __init__(self, symbol: str = "", venue: str = "") -> None:
        self.venue = venue
        self.symbol = symbol
        #: messages applied, by ITCH message type (including ignored types)
        self.message_counts: dict[str, int] = dict.fromkeys(BOOK_MESSAGE_TYPES, 0)
        #: events that referred to an order this book never saw (or already removed)
        self.unknown_refs = 0
        #: executions/cancels larger than the order's remaining shares (clamped)
        self.overfills = 0
        #: adds (or replaces) whose new reference was already live
        self.duplicate_refs = 0
        #: events with a non-positive price or share count, or an unknown side
        self.invalid_messages = 0
        #: trade prints recorded (E, printable C, P, Q with shares) and their total shares
        self.trade_count = 0
        self.traded_shares = 0
        self._orders: dict[int, tuple[int, int, bool]] = {}
        self._bid_levels: dict[int, list[int]] = {}
        self._ask_levels: dict[int, list[int]] = {}
        self._bid_prices: list[int] = []  # ascending; best bid is the last element
        self._ask_prices: list[int] = []  # ascending; best ask is the first element
        self._last_trade: tuple[int, int, int, int] | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            "A": self._on_add,
            "F": self._on_add_attributed,
            "E": self._on_executed,
            "C": self._on_executed_with_price,
            "X": self._on_cancel,
            "D": self._on_delete,
            "U": self._on_replace,
            "P": self._on_trade,
            "Q": self._on_cross_trade,
        }

    # ------------------------------------------------------------------ the one entry point for messages

    def apply(self, message: Any) -> None:
        """Apply one ITCH message; types that do not affect a book are only counted."""
        handler = self._handlers.get(message.message_type)
        if handler is None:
            counts = self.message_counts
            counts[message.message_type] = counts.get(message.message_type, 0) + 1
        else:
            handler(message)

    @property
    def handlers(self) -> Mapping[str, Callable[[Any], None]]:
        """What ``apply`` dispatches to: message type -> handler, for the types in ``BOOK_MESSAGE_TYPES``.

        A router that caches this mapping calls the handler directly and saves one call per message;
        calling a handler is exactly ``apply`` for that type.
        """
        return self._handlers

    # The handlers of the frequent types (A, F, D, X: about 90% of a feed) repeat the few lines of their
    # primitive instead of calling it: one Python call less per message is ~10-15% of the hot path.

    def _on_add(self, message: Any) -> None:
        self.message_counts["A"] += 1
        side = message.buy_sell_indicator
        if side in _SIDES:
            self._insert(message.order_reference_number, side == BUY, message.price, message.shares)
        else:
            self.invalid_messages += 1

    def _on_add_attributed(self, message: Any) -> None:
        self.message_counts["F"] += 1
        side = message.buy_sell_indicator
        if side in _SIDES:
            self._insert(message.order_reference_number, side == BUY, message.price, message.shares)
        else:
            self.invalid_messages += 1

    def _on_executed(self, message: Any) -> None:
        self.execute_order(
            message.order_reference_number, message.executed_shares, message.timestamp, message.match_number
        )

    def _on_executed_with_price(self, message: Any) -> None:
        self.execute_order_at_price(
            message.order_reference_number,
            message.executed_shares,
            message.execution_price,
            message.timestamp,
            message.match_number,
            printable=message.printable == "Y",
        )

    def _on_cancel(self, message: Any) -> None:
        self.message_counts["X"] += 1
        self._reduce(message.order_reference_number, message.cancelled_shares)

    def _on_delete(self, message: Any) -> None:
        self.message_counts["D"] += 1
        order = self._orders.pop(message.order_reference_number, None)
        if order is None:
            self.unknown_refs += 1
        else:
            self._leave_level(order[2], order[0], order[1], 1)

    def _on_replace(self, message: Any) -> None:
        self.replace_order(
            message.original_order_reference_number,
            message.new_order_reference_number,
            message.price,
            message.shares,
        )

    def _on_trade(self, message: Any) -> None:
        self.record_trade(message.price, message.shares, message.timestamp, message.match_number)

    def _on_cross_trade(self, message: Any) -> None:
        self.record_trade(
            message.cross_price, message.shares, message.timestamp, message.match_number, cross=True
        )

    # ------------------------------------------------------------------ primitive events (no ITCH objects)

    def add_order(
        self, reference: int, side: str, price: int, shares: int, *, attributed: bool = False
    ) -> None:
        """Add a resting order (``side`` is ``'B'`` or ``'S'``); counts as ``F`` when ``attributed``."""
        self.message_counts["F" if attributed else "A"] += 1
        if side == BUY:
            self._insert(reference, True, price, shares)
        elif side == SELL:
            self._insert(reference, False, price, shares)
        else:
            self.invalid_messages += 1

    def execute_order(self, reference: int, shares: int, timestamp: int, match_number: int = 0) -> None:
        """Execute ``shares`` of a resting order at its own price (ITCH ``E``)."""
        self.message_counts["E"] += 1
        order = self._reduce(reference, shares)
        if order is not None:
            self._record(order[0], shares, timestamp, match_number)

    def execute_order_at_price(
        self,
        reference: int,
        shares: int,
        price: int,
        timestamp: int,
        match_number: int = 0,
        *,
        printable: bool = True,
    ) -> None:
        """Execute ``shares`` of a resting order at ``price`` (ITCH ``C``); a print only if ``printable``."""
        self.message_counts["C"] += 1
        self._reduce(reference, shares)
        if printable and shares > 0:
            self._record(price, shares, timestamp, match_number)

    def cancel_order(self, reference: int, shares: int) -> None:
        """Cancel ``shares`` of a resting order (ITCH ``X``, partial cancel)."""
        self.message_counts["X"] += 1
        self._reduce(reference, shares)

    def delete_order(self, reference: int) -> None:
        """Remove a resting order entirely (ITCH ``D``)."""
        self.message_counts["D"] += 1
        order = self._orders.pop(reference, None)
        if order is None:
            self.unknown_refs += 1
        else:
            self._leave_level(order[2], order[0], order[1], 1)

    def replace_order(self, original_reference: int, new_reference: int, price: int, shares: int) -> None:
        """Replace an order (ITCH ``U``): same side, new reference, price and shares, new time priority."""
        self.message_counts["U"] += 1
        order = self._orders.pop(original_reference, None)
        if order is None:
            self.unknown_refs += 1
            return
        is_bid = order[2]
        self._leave_level(is_bid, order[0], order[1], 1)
        self._insert(new_reference, is_bid, price, shares)

    def record_trade(
        self, price: int, shares: int, timestamp: int, match_number: int = 0, *, cross: bool = False
    ) -> None:
        """Record a trade print that does not touch resting orders (ITCH ``P``, or ``Q`` when ``cross``)."""
        self.message_counts["Q" if cross else "P"] += 1
        if shares > 0:
            self._record(price, shares, timestamp, match_number)

    # ------------------------------------------------------------------ private state changes

    def _insert(self, reference: int, is_bid: bool, price: int, shares: int) -> None:
        if shares <= 0 or price <= 0:
            self.invalid_messages += 1
            return
        orders = self._orders
        if reference in orders:
            self.duplicate_refs += 1
            old = orders.pop(reference)
            self._leave_level(old[2], old[0], old[1], 1)
        orders[reference] = (price, shares, is_bid)
        levels = self._bid_levels if is_bid else self._ask_levels
        level = levels.get(price)
        if level is None:
            levels[price] = [shares, 1]
            insort(self._bid_prices if is_bid else self._ask_prices, price)
        else:
            level[0] += shares
            level[1] += 1

    def _reduce(self, reference: int, shares: int) -> tuple[int, int, bool] | None:
        """Take ``shares`` off an order (removing it when nothing remains); the order, or None if unknown."""
        if shares <= 0:
            self.invalid_messages += 1
            return None
        order = self._orders.get(reference)
        if order is None:
            self.unknown_refs += 1
            return None
        price, remaining, is_bid = order
        if shares < remaining:
            self._orders[reference] = (price, remaining - shares, is_bid)  # same key: keeps time priority
            (self._bid_levels if is_bid else self._ask_levels)[price][0] -= shares
        else:
            if shares > remaining:
                self.overfills += 1
            del self._orders[reference]
            self._leave_level(is_bid, price, remaining, 1)
        return order

    def _leave_level(self, is_bid: bool, price: int, shares: int, order_count: int) -> None:
        levels = self._bid_levels if is_bid else self._ask_levels
        level = levels[price]
        level[0] -= shares
        level[1] -= order_count
        if level[1] == 0:
            del levels[price]
            prices = self._bid_prices if is_bid else self._ask_prices
            del prices[bisect_left(prices, price)]

    def _record(self, price: int, shares: int, timestamp: int, match_number: int) -> None:
        self._last_trade = (price, shares, timestamp, match_number)
        self.trade_count += 1
        self.traded_shares += shares

    # ------------------------------------------------------------------ queries

    def best_bid(self) -> PriceLevel | None:
        """The highest bid level, or None when there are no bids."""
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        shares, order_count = self._bid_levels[price]
        return PriceLevel(price, shares, order_count)

    def best_ask(self) -> PriceLevel | None:
        """The lowest ask level, or None when there are no asks."""
        if not self._ask_prices:
            return None
        price = self._ask_prices[0]
        shares, order_count = self._ask_levels[price]
        return PriceLevel(price, shares, order_count)

    def spread(self) -> int | None:
        """Best ask minus best bid in price ticks, or None when a side is empty (negative if crossed)."""
        if not self._bid_prices or not self._ask_prices:
            return None
        return self._ask_prices[0] - self._bid_prices[-1]

    def depth(self, levels: int | None = None) -> BookDepth:
        """The best ``levels`` L2 levels per side (all levels when None)."""
        if levels is None:
            bid_prices, ask_prices = self._bid_prices, self._ask_prices
        elif levels > 0:
            bid_prices, ask_prices = self._bid_prices[-levels:], self._ask_prices[:levels]
        else:
            bid_prices, ask_prices = [], []
        bid_levels, ask_levels = self._bid_levels, self._ask_levels
        return BookDepth(
            bids=tuple(PriceLevel(price, *bid_levels[price]) for price in reversed(bid_prices)),
            asks=tuple(PriceLevel(price, *ask_levels[price]) for price in ask_prices),
        )

    def depth_columns(self, levels: int = -1) -> DepthColumns:
        """The best ``levels`` levels per side (all when negative) as :data:`DepthColumns`: what
        :meth:`depth` holds, without an object per level."""
        if levels < 0:
            bid_prices, ask_prices = self._bid_prices[::-1], self._ask_prices[:]
        elif levels:
            bid_prices, ask_prices = self._bid_prices[-levels:][::-1], self._ask_prices[:levels]
        else:
            bid_prices, ask_prices = [], []
        bids = [self._bid_levels[price] for price in bid_prices]
        asks = [self._ask_levels[price] for price in ask_prices]
        return [
            bid_prices,
            [level[0] for level in bids],
            [level[1] for level in bids],
            ask_prices,
            [level[0] for level in asks],
            [level[1] for level in asks],
        ]

    def last_trade(self) -> LastTrade | None:
        """The latest trade print, or None before the first one."""
        return None if self._last_trade is None else LastTrade(*self._last_trade)

    def last_trade_values(self) -> tuple[int, int, int, int] | None:
        """:meth:`last_trade` as (price, shares, timestamp, match number), without an object."""
        return self._last_trade

    def structures(self) -> BookStructures:
        """The live containers of the book, for a read-only loop between primitive calls (the
        column loop of :mod:`itchflow.book.columns`): see :class:`~itchflow.book.values.BookStructures`."""
        return BookStructures(
            self._orders, self._bid_levels, self._ask_levels, self._bid_prices, self._ask_prices
        )

    def order(self, reference: int) -> RestingOrder | None:
        """The live order with this reference, or None."""
        order = self._orders.get(reference)
        if order is None:
            return None
        return RestingOrder(reference, BUY if order[2] else SELL, order[0], order[1])

    def orders(self) -> Iterator[RestingOrder]:
        """Every live order, in time priority (oldest first)."""
        for reference, (price, shares, is_bid) in self._orders.items():
            yield RestingOrder(reference, BUY if is_bid else SELL, price, shares)

    @property
    def order_count(self) -> int:
        """How many orders are live."""
        return len(self._orders)

    def counters(self) -> dict[str, int]:
        """The book's event counters by name (see ``COUNTER_NAMES``)."""
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def check_integrity(self) -> list[IntegrityProblem]:
        """Everything wrong with the current state; an empty list when the book is sound."""
        problems: list[IntegrityProblem] = []
        if self._bid_prices and self._ask_prices:
            best_bid, best_ask = self._bid_prices[-1], self._ask_prices[0]
            if best_bid > best_ask:
                problems.append(IntegrityProblem("crossed", f"best bid {best_bid} above best ask {best_ask}"))
            elif best_bid == best_ask:
                problems.append(IntegrityProblem("locked", f"best bid equals best ask {best_bid}"))
        expected: dict[bool, dict[int, list[int]]] = {True: {}, False: {}}
        for reference, (price, shares, is_bid) in self._orders.items():
            if shares <= 0:
                problems.append(
                    IntegrityProblem("non_positive_shares", f"order {reference} has {shares} shares")
                )
            if price <= 0:
                problems.append(
                    IntegrityProblem("non_positive_price", f"order {reference} has price {price}")
                )
            level = expected[is_bid].setdefault(price, [0, 0])
            level[0] += shares
            level[1] += 1
        for is_bid, levels, prices in (
            (True, self._bid_levels, self._bid_prices),
            (False, self._ask_levels, self._ask_prices),
        ):
            problems.extend(self._level_problems(BUY if is_bid else SELL, levels, prices, expected[is_bid]))
        return problems

    @staticmethod
    def _level_problems(
        side: str, levels: dict[int, list[int]], prices: list[int], expected: dict[int, list[int]]
    ) -> list[IntegrityProblem]:
        problems = []
        for price in sorted(set(levels) | set(expected)):
            actual = levels.get(price)
            wanted = expected.get(price)
            if actual != wanted:
                problems.append(
                    IntegrityProblem(
                        "level_mismatch",
                        f"{side} level {price}: aggregate {actual} but orders sum to {wanted} (shares, orders)",
                    )
                )
            elif actual is not None and actual[0] <= 0:
                problems.append(
                    IntegrityProblem("non_positive_shares", f"{side} level {price} has {actual[0]} shares")
                )
        if prices != sorted(levels):
            problems.append(IntegrityProblem("price_index", f"{side} price index disagrees with its levels"))
        return problems

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        """A plain, versioned copy of the whole state (ints, strs, lists, dicts; JSON- and Avro-friendly).

        Orders are stored column-wise in time priority: ``order_references``, ``order_prices``,
        ``order_shares`` (int lists) and ``order_sides`` (one ``'B'``/``'S'`` character per order).
        Levels and the price index are derived, so they are rebuilt on restore rather than stored.
        """
        values = self._orders.values()
        return make_snapshot(
            self,
            list(self._orders),
            "".join([BUY if order[2] else SELL for order in values]),
            [order[0] for order in values],
            [order[1] for order in values],
            self._last_trade,
        )

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> OrderBook:
        """Rebuild a book from :meth:`to_snapshot` output; raises ValueError on an unknown version."""
        check_snapshot_version(snapshot)
        book = cls(symbol=snapshot["symbol"], venue=snapshot["venue"])
        orders = book._orders
        bid_levels, ask_levels = book._bid_levels, book._ask_levels
        for reference, side, price, shares in zip(
            snapshot["order_references"],
            snapshot["order_sides"],
            snapshot["order_prices"],
            snapshot["order_shares"],
            strict=True,
        ):
            is_bid = side == BUY
            orders[reference] = (price, shares, is_bid)
            level = (bid_levels if is_bid else ask_levels).get(price)
            if level is None:
                (bid_levels if is_bid else ask_levels)[price] = [shares, 1]
            else:
                level[0] += shares
                level[1] += 1
        book._bid_prices = sorted(bid_levels)
        book._ask_prices = sorted(ask_levels)
        last_trade = snapshot["last_trade"]
        book._last_trade = None if last_trade is None else tuple(last_trade)
        for name in COUNTER_NAMES:
            setattr(book, name, snapshot["counters"][name])
        book.message_counts.update(snapshot["message_counts"])
        return book


def make_snapshot(
    book: Any,
    references: list[int],
    sides: str,
    prices: list[int],
    shares: list[int],
    last_trade: tuple[int, ...] | None,
) -> dict[str, Any]:
    """The snapshot of ``book`` (see :meth:`OrderBook.to_snapshot`) from its orders in time priority;
    shared by the C book (:mod:`itchflow.book.native`), whose snapshots are the same format."""
    return {
        "version": SNAPSHOT_VERSION,
        "venue": book.venue,
        "symbol": book.symbol,
        "order_references": references,
        "order_sides": sides,
        "order_prices": prices,
        "order_shares": shares,
        "last_trade": None if last_trade is None else list(last_trade),
        "counters": book.counters(),
        "message_counts": dict(book.message_counts),
    }


def check_snapshot_version(snapshot: dict[str, Any]) -> None:
    """ValueError unless ``snapshot`` is of the version this code reads."""
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unsupported order book snapshot version {version!r} (expected {SNAPSHOT_VERSION})")
