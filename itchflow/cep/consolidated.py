"""A symbol's quotes on every venue, and where they lock or cross each other.

Each venue's top of book is ``(bid, bid_shares, ask, ask_shares)`` (ITCH ticks and shares; an empty
side has price 0 and 0 shares). Only *eligible* venues count: those in their regular session with
the symbol trading there (not halted, paused or quoting only).

The consolidated best bid and offer (NBBO) is the highest eligible bid and the lowest eligible ask,
with the shares of every venue at that price. A *locked or crossed pair* is a venue's bid at or above
a different venue's ask; :func:`best_pair` picks, among the ordered pairs of different venues, the
one with the largest ``bid - ask``, then the larger ``min(bid shares, ask shares)``, then the
alphabetically first ``(bid venue, ask venue)``. A venue's own locked book is not a cross-venue pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

Quote = tuple[int, int, int, int]
"""``(bid, bid_shares, ask, ask_shares)`` of one venue; an empty side is ``0, 0``."""
EMPTY_QUOTE: Quote = (0, 0, 0, 0)


class CrossedPair(NamedTuple):
    """A bid on one venue at or above the ask on another."""

    bid_venue: str
    ask_venue: str
    bid: int
    bid_shares: int
    ask: int
    ask_shares: int

    @property
    def locked(self) -> bool:
        return self.bid == self.ask

    @property
    def edge(self) -> int:
        """``(bid - ask) x min(bid shares, ask shares)``: what buying on the ask venue and selling on
        the bid venue would make, in ticks x shares (0 when locked)."""
        return (self.bid - self.ask) * min(self.bid_shares, self.ask_shares)


class Nbbo(NamedTuple):
    """Consolidated best bid and offer; an empty side is ``0, 0``."""

    bid: int
    bid_shares: int
    ask: int
    ask_shares: int


def best_pair(quotes: Mapping[str, Quote], venues: Iterable[str]) -> CrossedPair | None:
    """The locked or crossed pair of ``venues`` (the eligible ones) with the largest edge in price,
    or None when every bid is below every other venue's ask."""
    eligible = sorted(venue for venue in venues if venue in quotes)
    best: CrossedPair | None = None
    best_rank: tuple[int, int] | None = None
    for bid_venue in eligible:
        bid, bid_shares, _, _ = quotes[bid_venue]
        if not bid_shares:
            continue
        for ask_venue in eligible:
            if ask_venue == bid_venue:
                continue
            _, _, ask, ask_shares = quotes[ask_venue]
            if not ask_shares or bid < ask:
                continue
            rank = (bid - ask, min(bid_shares, ask_shares))
            # venues are visited in name order: a later pair replaces only a strictly better one
            if best_rank is None or rank > best_rank:
                best = CrossedPair(bid_venue, ask_venue, bid, bid_shares, ask, ask_shares)
                best_rank = rank
    return best


def nbbo(quotes: Mapping[str, Quote], venues: Iterable[str]) -> Nbbo:
    """The consolidated best bid and offer of ``venues`` (the eligible ones)."""
    bid = bid_shares = ask = ask_shares = 0
    for venue in venues:
        quote = quotes.get(venue)
        if quote is None:
            continue
        venue_bid, venue_bid_shares, venue_ask, venue_ask_shares = quote
        if venue_bid_shares:
            if venue_bid > bid:
                bid, bid_shares = venue_bid, venue_bid_shares
            elif venue_bid == bid:
                bid_shares += venue_bid_shares
        if venue_ask_shares:
            if not ask_shares or venue_ask < ask:
                ask, ask_shares = venue_ask, venue_ask_shares
            elif venue_ask == ask:
                ask_shares += venue_ask_shares
    return Nbbo(bid, bid_shares, ask, ask_shares)
