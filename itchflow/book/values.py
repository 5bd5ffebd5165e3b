"""Values the order book returns: frozen, slotted, integers for prices (4-decimal ticks) and time (ns)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

BUY = "B"
SELL = "S"

TopOfBook = tuple[int, int, int, int, int, int]
"""(bid price, bid shares, bid orders, ask price, ask shares, ask orders); 0, 0, 0 for an empty side."""
DepthColumns = list[list[int]]
"""The top levels as six columns: ``[bid_prices, bid_shares, bid_orders, ask_prices, ask_shares,
ask_orders]``, each list best level first (the shape of the ``depth_snapshots`` table)."""


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One L2 level: a price, the total shares resting there and how many orders make them up."""

    price: int
    shares: int
    order_count: int


@dataclass(frozen=True, slots=True)
class BookDepth:
    """The best ``n`` levels of each side: bids by descending price, asks by ascending price."""

    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]


@dataclass(frozen=True, slots=True)
class LastTrade:
    """The latest trade print seen for a symbol (execution, non-cross trade or cross trade)."""

    price: int
    shares: int
    timestamp: int
    match_number: int


@dataclass(frozen=True, slots=True)
class RestingOrder:
    """An order on the book (L3): its reference, side ``'B'``/``'S'``, limit price and remaining shares."""

    reference: int
    side: str
    price: int
    shares: int


@dataclass(frozen=True, slots=True)
class IntegrityProblem:
    """Something wrong with the book's state; ``code`` is stable, ``detail`` is for people.

    Codes: ``crossed`` (best bid above best ask), ``locked`` (best bid equals best ask),
    ``non_positive_shares``, ``non_positive_price``, ``level_mismatch`` (a level's aggregate differs
    from the sum of its orders), ``price_index`` (the sorted price index disagrees with the levels).
    """

    code: str
    detail: str


class BookStructures(NamedTuple):
    """The live containers of an :class:`~itchflow.book.OrderBook` (see its module docstring), for
    loops that read them between the book's primitive calls. Read only: they change as the book does,
    and writing to them corrupts the book."""

    orders: dict[int, tuple[int, int, bool]]
    """reference -> (price, shares, is_bid), in time priority"""
    bid_levels: dict[int, list[int]]
    """price -> [shares, orders]"""
    ask_levels: dict[int, list[int]]
    bid_prices: list[int]
    """ascending: the best bid is the last"""
    ask_prices: list[int]
    """ascending: the best ask is the first"""
