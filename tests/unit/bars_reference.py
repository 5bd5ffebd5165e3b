"""A deliberately simple, independent reference for the OHLCV bars of ``itchflow bars``.

Written from the rules of the analytics issue and the ITCH 5.0 specification only: it reads messages with
the project's ITCH reader (``itchflow.itch``, tested against the spec) and nothing under
``itchflow.analytics``, ``itchflow.book``, ``itchflow.normalize`` or ``itchflow.pipeline``.

Rules:

* event time = UTC epoch ns of midnight America/New_York on the trading date + the ITCH timestamp;
* tumbling, epoch-aligned windows: ``window_start_ns = t - t % (interval_s * 10**9)``;
* eligible prints: ``E`` (at the executed order's price, from its ``A``/``F`` or from the ``U`` that
  created it; an ``E`` on a reference never seen is not counted), ``C`` with printable ``Y`` (at its
  execution price), ``P`` and ``Q`` with shares > 0 (``Q`` at its cross price). Order references are
  unique across the file (all symbols);
* a ``B`` of the same stock removes the earlier eligible print with its match number; a ``B`` that
  matches no such print is counted as unknown and otherwise ignored;
* per (symbol, window): open/close = first/last print by (event time, position in the file), high/low,
  volume = sum of shares, trades = count, vwap = ``sum(price * shares) / sum(shares)`` (exact integer
  sums, one true division).

Choices where the rules are silent (documented so that a disagreement can be traced to them):

* the stock of a locate code is the one of its Stock Directory ``R``, else the stock field of the first
  ``A``/``F``/``P``/``Q`` seen with that locate;
* an ``E``/``C`` print belongs to the stock of its order (``A``/``F``, inherited through ``U``); a ``C``
  on an order never seen belongs to the stock of its locate (its price is known); a ``U`` whose original
  order was never seen creates an order of its locate's stock at the ``U``'s price;
* a ``B`` belongs to the stock of its locate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from itchflow.itch.framing import iter_messages

NEW_YORK = ZoneInfo("America/New_York")
INTERVALS = {"1s": 1, "1m": 60, "5m": 300}
"""Interval option -> window size in seconds."""


@dataclass(frozen=True)
class Print:
    """One eligible print: its stock, event time (UTC epoch ns), position in the file and trade."""

    symbol: str
    time_ns: int
    position: int
    price: int
    shares: int
    match_number: int


@dataclass
class Prints:
    """The eligible prints of a file that survive its breaks, and the break counts."""

    prints: list[Print]
    breaks_applied: int = 0
    breaks_unknown: int = 0


def midnight_ns(trading_date: str) -> int:
    """UTC epoch nanoseconds of midnight in New York on ``trading_date`` (YYYY-MM-DD)."""
    local_midnight = datetime.combine(date.fromisoformat(trading_date), time(0), tzinfo=NEW_YORK)
    seconds = local_midnight - datetime(1970, 1, 1, tzinfo=UTC)
    return (seconds.days * 86_400 + seconds.seconds) * 10**9


def read_prints(messages: Iterable[Any], trading_date: str) -> Prints:
    """Apply the rules to ``messages`` in file order."""
    midnight = midnight_ns(trading_date)
    stock_of_locate: dict[int, str] = {}
    orders: dict[int, tuple[str, int]] = {}  # order reference -> (stock, price)
    result = Prints([])

    for position, message in enumerate(messages):
        kind = message.message_type
        when = midnight + message.timestamp
        locate = message.stock_locate

        def add_print(symbol: str, price: int, shares: int) -> None:
            result.prints.append(Print(symbol, when, position, price, shares, message.match_number))  # noqa: B023

        if kind == "R":
            stock_of_locate[locate] = message.stock.rstrip(" ")
        elif kind in ("A", "F", "P", "Q"):
            stock_of_locate.setdefault(locate, message.stock.rstrip(" "))

        if kind in ("A", "F"):
            orders[message.order_reference_number] = (message.stock.rstrip(" "), message.price)
        elif kind == "U":
            original = orders.get(message.original_order_reference_number)
            stock = original[0] if original else stock_of_locate.get(locate)
            if stock is not None:
                orders[message.new_order_reference_number] = (stock, message.price)
        elif kind == "E":
            order = orders.get(message.order_reference_number)
            if order is not None:
                add_print(order[0], order[1], message.executed_shares)
        elif kind == "C":
            if message.printable == "Y":
                order = orders.get(message.order_reference_number)
                stock = order[0] if order else stock_of_locate.get(locate)
                if stock is not None:
                    add_print(stock, message.execution_price, message.executed_shares)
        elif kind == "P":
            if message.shares > 0:
                add_print(message.stock.rstrip(" "), message.price, message.shares)
        elif kind == "Q":
            if message.shares > 0:
                add_print(message.stock.rstrip(" "), message.cross_price, message.shares)
        elif kind == "B":
            stock = stock_of_locate.get(locate)
            broken = [
                p for p in result.prints if p.symbol == stock and p.match_number == message.match_number
            ]
            if broken:
                result.prints.remove(broken[0])
                result.breaks_applied += 1
            else:
                result.breaks_unknown += 1
    return result


def bars_of(prints: Iterable[Print], interval_s: int, symbols: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The bars of ``prints`` (only of ``symbols`` if given), sorted by (symbol, window_start_ns)."""
    wanted = set(symbols)
    size = interval_s * 10**9
    groups: dict[tuple[str, int], list[Print]] = {}
    for p in prints:
        if wanted and p.symbol not in wanted:
            continue
        groups.setdefault((p.symbol, p.time_ns - p.time_ns % size), []).append(p)

    bars = []
    for (symbol, start), group in sorted(groups.items()):
        group.sort(key=lambda p: (p.time_ns, p.position))
        prices = [p.price for p in group]
        volume = sum(p.shares for p in group)
        bars.append(
            {
                "symbol": symbol,
                "window_start_ns": start,
                "open": prices[0],
                "high": max(prices),
                "low": min(prices),
                "close": prices[-1],
                "volume": volume,
                "vwap": sum(p.price * p.shares for p in group) / volume,
                "trades": len(group),
            }
        )
    return bars


def reference_bars(
    path: str | Path, interval: str, trading_date: str, symbols: Iterable[str] = ()
) -> dict[str, Any]:
    """What ``itchflow bars PATH --interval INTERVAL --date DATE [--symbol ...] --json`` should print,
    without the venue."""
    interval_s = INTERVALS[interval]
    result = read_prints((message for _, message in iter_messages(path)), trading_date)
    return {
        "interval_s": interval_s,
        "date": trading_date,
        "bars": bars_of(result.prints, interval_s, symbols),
        "breaks": {"applied": result.breaks_applied, "unknown": result.breaks_unknown},
    }
