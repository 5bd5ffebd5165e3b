"""Limit order books rebuilt from ITCH 5.0: the pure core the order-book job calls.

:class:`OrderBook` is the order-level (L3) book of one (venue, symbol); :class:`MarketBooks` routes a
whole feed to one book per symbol. Both persist as plain versioned snapshots (``to_snapshot`` /
``from_snapshot``). No pyflink import here or below.
"""

from itchflow.book.core import BOOK_MESSAGE_TYPES, SNAPSHOT_VERSION, OrderBook
from itchflow.book.market import MarketBooks
from itchflow.book.values import BUY, SELL, BookDepth, IntegrityProblem, LastTrade, PriceLevel, RestingOrder

__all__ = [
    "BOOK_MESSAGE_TYPES",
    "BUY",
    "SELL",
    "SNAPSHOT_VERSION",
    "BookDepth",
    "IntegrityProblem",
    "LastTrade",
    "MarketBooks",
    "OrderBook",
    "PriceLevel",
    "RestingOrder",
]
