"""Values the order book returns: frozen, slotted, integers for prices (4-decimal ticks) and time (ns)."""

from __future__ import annotations

from dataclasses import dataclass

BUY = "B"
SELL = "S"


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
