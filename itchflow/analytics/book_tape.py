"""The book tape of an ITCH file, offline: every symbol's top-of-book changes and depth updates, and
the OFI and liquidity rows of them -- the reference the streaming job's ``ofi`` and ``liquidity``
rows are checked against.

Reads any file the ITCH framing reader understands and rebuilds every symbol's book
(:class:`~itchflow.book.MarketBooks`, as ``itchflow book`` does). After each message of a symbol:

* a **top-of-book change** (:data:`~itchflow.analytics.top_of_book.TopOfBookTuple`) when its best
  bid or ask (price, shares or orders; an empty side 0, 0, 0) differs from before the message: the
  rows the order-book job writes to ``top_of_book``;
* a **depth update** (:data:`~itchflow.analytics.liquidity.DepthTuple`) when the shares on its best
  ``depth_levels`` levels of either side differ from before the message: depth per event. The
  streaming job has depth once per batch for now, so its depth values equal these only where its
  batches hold one book event each; its spreads and OFI do not depend on batches.

``ts_event`` is midnight in New York on the trading date plus the ITCH timestamp; ``seq`` is the
message's position among the messages of its symbol (as the replay numbers them, for locates
named by the directory or a symbol's first order). The updates go through the streaming job's
cores (:class:`~itchflow.analytics.ofi.OrderFlowImbalance`,
:class:`~itchflow.analytics.liquidity.Liquidity`) in file order with no watermark -- a file is
complete, so every update counts in the window of its own time (liquidity: at or after its
symbol's previous update) -- and ``close_all()`` at the end emits every window. The cores keep
every window until then: memory grows with the windows of the file.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import NamedTuple

from itchflow.analytics.liquidity import DepthTuple, Liquidity, LiquidityConfig, LiquidityRow
from itchflow.analytics.ofi import OfiConfig, OfiRow, OrderFlowImbalance
from itchflow.analytics.top_of_book import TopOfBookTuple
from itchflow.avro.bundle import days_since_epoch
from itchflow.book.core import BOOK_MESSAGE_TYPES
from itchflow.book.market import MarketBooks
from itchflow.errors import UserError
from itchflow.normalize.clock import midnight_epoch_ns

_BOOK_EVENTS = frozenset(BOOK_MESSAGE_TYPES) - {"P", "Q"}
"""Messages that can move a book's levels (P and Q are trades against no resting order)."""
_EMPTY = (0, 0, 0)


class BookUpdate(NamedTuple):
    """One entry of the book tape."""

    symbol: str
    kind: str
    """``top`` (``update`` is a TopOfBookTuple) or ``depth`` (a DepthTuple)"""
    update: tuple[int, ...]


def book_updates(path: Path, trading_date: date, depth_levels: int | None = None) -> Iterator[BookUpdate]:
    """The book tape of ``path``, in file order (see the module docstring); depth updates only when
    ``depth_levels`` is given.

    Raises:
        UserError: no such file, or not a readable ITCH 5.0 file.
    """
    from itchflow.itch.codec import ItchDecodeError
    from itchflow.itch.framing import iter_message_batches

    if not path.is_file():
        raise UserError(f"no such file: {path}")
    midnight = midnight_epoch_ns(trading_date)
    market = MarketBooks()
    tops: dict[str, tuple[int, ...]] = {}
    depths: dict[str, tuple[int, int]] = {}
    seqs: dict[str, int] = {}
    enabled = gc.isenabled()
    gc.disable()  # many fresh message objects and no cycles: the collector would only rescan them
    try:
        for batch in iter_message_batches(path):
            for message in batch:
                market.apply(message)
                locate = message.stock_locate
                symbol = market.symbol_of(locate) if locate else None
                if symbol is None:
                    continue
                seq = seqs.get(symbol, 0)
                seqs[symbol] = seq + 1
                if message.message_type not in _BOOK_EVENTS:
                    continue
                book = market.book(symbol)
                assert book is not None  # the market names a book for every symbol it routes to
                ts_event = midnight + message.timestamp
                bid, ask = book.best_bid(), book.best_ask()
                top = (
                    *(_EMPTY if bid is None else (bid.price, bid.shares, bid.order_count)),
                    *(_EMPTY if ask is None else (ask.price, ask.shares, ask.order_count)),
                )
                if top != tops.get(symbol, _EMPTY * 2):
                    tops[symbol] = top
                    yield BookUpdate(symbol, "top", (ts_event, seq, *top))
                if depth_levels is not None:
                    columns = book.depth_columns(depth_levels)
                    shares = (sum(columns[1]), sum(columns[4]))
                    if shares != depths.get(symbol, (0, 0)):
                        depths[symbol] = shares
                        yield BookUpdate(symbol, "depth", (ts_event, seq, *shares))
    except ItchDecodeError as exc:
        raise UserError(f"{path}: not a readable ITCH 5.0 file: {exc}") from exc
    finally:
        if enabled:
            gc.enable()


def ofi_of_file(
    path: Path, trading_date: date, venue: str = "NASDAQ", intervals_s: tuple[int, ...] = (1, 60)
) -> list[OfiRow]:
    """The OFI rows of every symbol of an ITCH file, sorted by key (see the module docstring)."""
    core = OrderFlowImbalance(OfiConfig(intervals_s=intervals_s))
    day = days_since_epoch(trading_date)
    for symbol, _, change in book_updates(path, trading_date):
        core.add(venue, symbol, day, (_top(change),))
    return core.close_all()


def liquidity_of_file(
    path: Path,
    trading_date: date,
    venue: str = "NASDAQ",
    intervals_s: tuple[int, ...] = (1,),
    depth_levels: int = 10,
) -> list[LiquidityRow]:
    """The liquidity rows of every symbol of an ITCH file, with depth per event over
    ``depth_levels`` levels, sorted by key (see the module docstring)."""
    core = Liquidity(LiquidityConfig(intervals_s=intervals_s, depth_levels=depth_levels))
    day = days_since_epoch(trading_date)
    for symbol, kind, update in book_updates(path, trading_date, depth_levels):
        if kind == "top":
            core.add_tops(venue, symbol, day, (_top(update),))
        else:
            core.add_depth(venue, symbol, day, (_depth(update),))
    return core.close_all()


def _top(update: tuple[int, ...]) -> TopOfBookTuple:
    ts_event, seq, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n = update
    return (ts_event, seq, bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n)


def _depth(update: tuple[int, ...]) -> DepthTuple:
    ts_event, seq, bid_shares, ask_shares = update
    return (ts_event, seq, bid_shares, ask_shares)
