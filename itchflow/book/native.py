"""The compiled order book: :class:`NativeBook`, the same L3 book as :class:`~itchflow.book.OrderBook`
in C (``itchflow/book/_cbook.c``), for the order-book job's hot path.

:class:`~itchflow.book.OrderBook` stays the reference -- the offline ``itchflow book``, the benchmark's
expected answer and the tests' model all use it -- and ``tests/unit/test_native_book.py`` checks the
two against each other event by event. ``NativeBook`` has the same primitives (``add_order``,
``execute_order``, ...), counters, queries and snapshot format (a snapshot of either restores into
either), plus ``apply_events``: the order-book stage's whole per-run event loop in C
(:func:`itchflow.book.columns.apply_columns` is its Python twin; :mod:`itchflow.book.engine` picks
one of them per book).

``itchflow setup`` compiles the extension with the system C compiler (:mod:`itchflow.extensions`); without one the
stage runs the Python book; ``ITCHFLOW_NATIVE=python`` forces it (A/B runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from itchflow import extensions
from itchflow.book.core import COUNTER_NAMES, check_snapshot_version, make_snapshot
from itchflow.book.values import BUY, SELL, BookDepth, IntegrityProblem, LastTrade, PriceLevel, RestingOrder

TARGET = extensions.BOOK.target

try:
    from itchflow.book import _cbook
except ImportError:  # not built (no C compiler at set-up): the Python book is used
    _cbook = None  # type: ignore[assignment]

AVAILABLE = _cbook is not None
encode_int_hash = _cbook.encode_int_hash if _cbook is not None else None
"""``HSET`` of integer fields, as :class:`~itchflow.sinks.resp.IntHashEncoder` writes it (C)."""


def use_native() -> bool:
    """Whether new stage books are :class:`NativeBook` (see :func:`itchflow.extensions.use_native`)."""
    return AVAILABLE and extensions.use_native()


if _cbook is not None:

    class NativeBook(_cbook.Book):
        """:class:`~itchflow.book.OrderBook` in C: same primitives, counters, queries and snapshots."""

        __slots__ = ()

        def best_bid(self) -> PriceLevel | None:
            bid_price, bid_shares, bid_orders = self.top[:3]
            return PriceLevel(bid_price, bid_shares, bid_orders) if bid_orders else None

        def best_ask(self) -> PriceLevel | None:
            ask_price, ask_shares, ask_orders = self.top[3:]
            return PriceLevel(ask_price, ask_shares, ask_orders) if ask_orders else None

        def spread(self) -> int | None:
            bid, ask = self.best_bid(), self.best_ask()
            return None if bid is None or ask is None else ask.price - bid.price

        def depth(self, levels: int | None = None) -> BookDepth:
            columns = self.depth_columns(-1 if levels is None else max(levels, 0))
            bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = columns
            return BookDepth(
                bids=tuple(map(PriceLevel, bid_prices, bid_shares, bid_orders)),
                asks=tuple(map(PriceLevel, ask_prices, ask_shares, ask_orders)),
            )

        def last_trade(self) -> LastTrade | None:
            last = self._last_trade
            return None if last is None else LastTrade(*last)

        def last_trade_values(self) -> tuple[int, int, int, int] | None:
            """:meth:`last_trade` as (price, shares, timestamp, match number), without an object."""
            return self._last_trade

        def order(self, reference: int) -> RestingOrder | None:
            values = self.order_values(reference)
            if values is None:
                return None
            price, shares, is_bid = values
            return RestingOrder(reference, BUY if is_bid else SELL, price, shares)

        def orders(self) -> Iterator[RestingOrder]:
            references, sides, prices, shares = self.export_orders()
            for reference, side, price, count in zip(references, sides, prices, shares, strict=True):
                yield RestingOrder(reference, side, price, count)

        def counters(self) -> dict[str, int]:
            return {name: getattr(self, name) for name in COUNTER_NAMES}

        def check_integrity(self) -> list[IntegrityProblem]:
            return [IntegrityProblem(code, message) for code, message in self.integrity_problems()]

        def to_snapshot(self) -> dict[str, Any]:
            """Exactly :meth:`OrderBook.to_snapshot`'s format."""
            return make_snapshot(self, *self.export_orders(), self._last_trade)

        @classmethod
        def from_snapshot(cls, snapshot: dict[str, Any]) -> NativeBook:
            """A book from :meth:`to_snapshot` (of either implementation); ValueError on another version."""
            check_snapshot_version(snapshot)
            book = cls(symbol=snapshot["symbol"], venue=snapshot["venue"])
            book.import_orders(
                snapshot["order_references"],
                snapshot["order_sides"],
                snapshot["order_prices"],
                snapshot["order_shares"],
            )
            book._last_trade = snapshot["last_trade"]
            for name in COUNTER_NAMES:
                setattr(book, name, snapshot["counters"][name])
            counts = dict.fromkeys("AFECXDUPQ", 0)
            counts.update(snapshot["message_counts"])
            book.message_counts = counts
            return book

else:  # pragma: no cover - only without a C compiler
    NativeBook = None  # type: ignore[assignment,misc]
