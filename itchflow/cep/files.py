"""The detectors over ITCH files, offline: ``itchflow detect --feed VENUE=FILE ...``.

Each file is one venue's feed of the trading day. Its messages rebuild that venue's books
(:class:`~itchflow.book.MarketBooks`, as ``itchflow book`` does) and become detector events: system
events, trading actions, a :class:`~itchflow.cep.detectors.QuoteChange` when a message changed the
symbol's best bid or ask (price or shares), an :class:`~itchflow.cep.detectors.Activity` for every
other message of a symbol. The venues' events are merged by event time (midnight in New York on
the trading date + the ITCH timestamp); at equal times by venue name, then file order -- the order
the streaming job sorts them in.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from itchflow.book.core import BOOK_MESSAGE_TYPES
from itchflow.book.market import MarketBooks
from itchflow.cep.alerts import Alert
from itchflow.cep.consolidated import EMPTY_QUOTE, Quote
from itchflow.cep.detectors import (
    Activity,
    DetectorConfig,
    Detectors,
    Event,
    QuoteChange,
    SystemEvent,
    TradingAction,
    final_alerts,
)
from itchflow.errors import UserError
from itchflow.normalize.clock import midnight_epoch_ns

_BOOK_EVENTS = frozenset(BOOK_MESSAGE_TYPES) - {"P", "Q"}
"""Messages that can move a book's levels (P and Q are trades against no resting order)."""


def venue_events(venue: str, path: Path, trading_date: date) -> Iterator[Event]:
    """The detector events of one venue's file, in file order.

    Raises:
        UserError: no such file, or not a readable ITCH 5.0 file.
    """
    from itchflow.itch.codec import ItchDecodeError
    from itchflow.itch.framing import iter_message_batches

    if not path.is_file():
        raise UserError(f"no such file: {path} (--feed {venue}=FILE)")
    midnight = midnight_epoch_ns(trading_date)
    market = MarketBooks(venue)
    tops: dict[str, Quote] = {}
    message: Any  # one of the codec's message classes, told apart by message_type
    try:
        for batch in iter_message_batches(path):
            for message in batch:
                market.apply(message)
                message_type = message.message_type
                ts_event = midnight + message.timestamp
                if message_type == "S":
                    yield SystemEvent(ts_event, venue, message.event_code)
                    continue
                locate = message.stock_locate
                symbol = market.symbol_of(locate) if locate else None
                if symbol is None:
                    continue
                if message_type == "H":
                    yield TradingAction(ts_event, venue, symbol, message.trading_state, message.reason)
                    continue
                if message_type in _BOOK_EVENTS:
                    book = market.book(symbol)
                    assert book is not None  # the market names a book for every symbol it routes to
                    bid, ask = book.best_bid(), book.best_ask()
                    quote = (
                        *((0, 0) if bid is None else (bid.price, bid.shares)),
                        *((0, 0) if ask is None else (ask.price, ask.shares)),
                    )
                    if quote != tops.get(symbol, EMPTY_QUOTE):
                        tops[symbol] = quote  # type: ignore[assignment]
                        yield QuoteChange(ts_event, venue, symbol, quote)  # type: ignore[arg-type]
                        continue
                yield Activity(ts_event, venue, symbol)
    except ItchDecodeError as exc:
        raise UserError(f"{path}: not a readable ITCH 5.0 file: {exc}") from exc


def merged_events(feeds: Sequence[tuple[str, Path]], trading_date: date) -> Iterator[Event]:
    """Every venue's events merged by (event time, venue); each venue's own order kept."""
    streams = [
        (
            (event.ts_event, venue, index, event)
            for index, event in enumerate(venue_events(venue, path, trading_date))
        )
        for venue, path in sorted(feeds)
    ]
    for _, _, _, event in heapq.merge(*streams):
        yield event


def detect_files(
    feeds: Sequence[tuple[str, Path]], trading_date: date, config: DetectorConfig | None = None
) -> list[Alert]:
    """The final alerts of the detectors over the venues' files (see the module docstring)."""
    detectors = Detectors(config)
    enabled = gc.isenabled()
    gc.disable()  # many fresh message objects and no cycles: the collector would only rescan them
    try:
        apply = detectors.apply
        for event in merged_events(feeds, trading_date):
            apply(event)
        detectors.finish()
    finally:
        if enabled:
            gc.enable()
    return final_alerts(detectors.alerts)
