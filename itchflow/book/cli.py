"""``itchflow book FILE``: rebuild every symbol's book offline -- the reference a streaming run must equal.

Reads any file the ITCH framing reader understands (standard 2-byte length prefixes, zero prefixes,
gzip), applies every message to :class:`~itchflow.book.MarketBooks` and prints, per symbol, the best
``--depth`` levels per side (default 5), the last trade and the counters; ``--json`` prints the same as
one JSON object::

    {"depth": 5,
     "symbols": {"MEAT": {"bids": [[price, shares, orders], ...], "asks": [...],
                          "last_trade": {"price": ..., "shares": ..., "timestamp": ..., "match_number": ...} | null,
                          "orders": live orders, "unknown_refs": n, "overfills": n, "duplicate_refs": n,
                          "invalid_messages": n, "trade_count": n, "traded_shares": n,
                          "messages": {"A": n, ...}, "integrity": ["crossed", ...]}},
     "totals": {"messages": n, "message_counts": {...}, "symbols": n, "orders": n, "unknown_refs": n, ...}}

Prices are integer 4-decimal ticks and timestamps integer nanoseconds since midnight, as in ITCH.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itchflow.book.core import OrderBook
from itchflow.book.market import MarketBooks
from itchflow.errors import UserError

DEFAULT_DEPTH = 5
TICKS_PER_DOLLAR = 10_000
NANOS_PER_SECOND = 1_000_000_000


def register(subparsers: Any) -> None:
    """Add ``itchflow book``."""
    parser = subparsers.add_parser(
        "book",
        help="rebuild every symbol's order book from an ITCH 5.0 file and print depth, last trade, counters",
        description="Rebuild every symbol's order book offline from an ITCH 5.0 file: the reference a "
        "streaming run must equal. Prices are printed in dollars (--json: integer 4-decimal ticks).",
    )
    parser.add_argument(
        "file", type=Path, help="ITCH 5.0 file: length-prefixed, zero-prefixed, gzip or MoldUDP64 pcap"
    )
    parser.add_argument(
        "--depth", type=int, default=DEFAULT_DEPTH, help=f"levels per side to show (default {DEFAULT_DEPTH})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--symbol", action="append", dest="symbols", metavar="SYMBOL", help="only this symbol (repeatable)"
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class ReplayTiming:
    """Where the time of an offline replay went: reading and decoding the file vs. the books."""

    messages: int
    decode_seconds: float
    book_seconds: float

    def describe(self) -> str:
        total = self.decode_seconds + self.book_seconds
        return (
            f"replayed {self.messages:,} messages in {total:.2f} s: decode {_rate(self.messages, self.decode_seconds)}, "
            f"book {_rate(self.messages, self.book_seconds)}"
        )


def _rate(messages: int, seconds: float) -> str:
    return f"{messages / seconds:,.0f} msg/s" if seconds > 0 else "n/a"


def run(args: argparse.Namespace) -> int:
    """The ``book`` command: replay the file, print the report."""
    if args.depth < 0:
        raise UserError(f"--depth must be zero or more, got {args.depth}")
    market, timing = replay_file(args.file)
    report = build_report(market, args.depth, args.symbols)
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    else:
        print(render_report(report))
        print(timing.describe())
    return 0


def replay_file(path: Path, venue: str = "") -> tuple[MarketBooks, ReplayTiming]:
    """Apply every message of an ITCH file to a fresh :class:`MarketBooks`; time decoding and books apart."""
    from itchflow.itch.codec import ItchDecodeError
    from itchflow.itch.framing import iter_message_batches

    if not path.is_file():
        raise UserError(f"no such file: {path}")
    market = MarketBooks(venue=venue)
    decode_seconds = book_seconds = 0.0
    messages = 0
    clock = time.perf_counter
    # Messages and books form no reference cycles, so the cyclic collector would only burn time
    # rescanning millions of fresh message objects (~25% of decoding); it is back on afterwards.
    collector_was_enabled = gc.isenabled()
    gc.disable()
    try:
        batches = iter_message_batches(path)
        while True:
            started = clock()
            batch = next(batches, None)
            decoded = clock()
            if batch is None:
                break
            market.apply_all(batch)
            decode_seconds += decoded - started
            book_seconds += clock() - decoded
            messages += len(batch)
    except ItchDecodeError as exc:
        raise UserError(f"{path}: not a readable ITCH 5.0 file: {exc}") from exc
    finally:
        if collector_was_enabled:
            gc.enable()
    return market, ReplayTiming(messages, decode_seconds, book_seconds)


def build_report(
    market: MarketBooks, depth: int = DEFAULT_DEPTH, symbols: Iterable[str] | None = None
) -> dict:
    """The plain-data report ``--json`` prints (see the module docstring)."""
    if symbols is None:
        selected = market.symbols()
    else:
        selected = list(dict.fromkeys(symbols))
        missing = [symbol for symbol in selected if market.book(symbol) is None]
        if missing:
            raise UserError(f"symbol(s) not in the file: {', '.join(missing)}")
    totals: dict[str, Any] = market.totals()
    totals["message_counts"] = dict(sorted(market.message_counts.items()))
    return {
        "depth": depth,
        "symbols": {symbol: _symbol_report(market.book(symbol), depth) for symbol in selected},  # type: ignore[arg-type]
        "totals": totals,
    }


def _symbol_report(book: OrderBook, depth: int) -> dict[str, Any]:
    levels = book.depth(depth)
    last = book.last_trade()
    report: dict[str, Any] = {
        "bids": [[level.price, level.shares, level.order_count] for level in levels.bids],
        "asks": [[level.price, level.shares, level.order_count] for level in levels.asks],
        "last_trade": None
        if last is None
        else {
            "price": last.price,
            "shares": last.shares,
            "timestamp": last.timestamp,
            "match_number": last.match_number,
        },
        "orders": book.order_count,
    }
    report.update(book.counters())
    report["messages"] = {kind: count for kind, count in sorted(book.message_counts.items()) if count}
    report["integrity"] = sorted({problem.code for problem in book.check_integrity()})
    return report


# ---------------------------------------------------------------------- readable output


def format_price(ticks: int) -> str:
    """4-decimal ticks as dollars: 1000500 -> '100.0500'."""
    sign = "-" if ticks < 0 else ""
    whole, fraction = divmod(abs(ticks), TICKS_PER_DOLLAR)
    return f"{sign}{whole}.{fraction:04d}"


def format_time(nanos: int) -> str:
    """Nanoseconds since midnight as HH:MM:SS.nnnnnnnnn."""
    seconds, fraction = divmod(nanos, NANOS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:09d}"


def render_report(report: dict) -> str:
    """Per-symbol tables of a :func:`build_report` result, then the feed totals."""
    blocks = [_render_symbol(symbol, entry) for symbol, entry in report["symbols"].items()]
    blocks.append(_render_totals(report["totals"]))
    return "\n\n".join(blocks)


def _render_symbol(symbol: str, entry: dict[str, Any]) -> str:
    last = entry["last_trade"]
    last_text = (
        "no trade"
        if last is None
        else f"last {last['shares']:,} @ {format_price(last['price'])} at {format_time(last['timestamp'])}"
    )
    header = (
        f"{symbol}: live orders {entry['orders']:,}, {last_text}; trades {entry['trade_count']:,} "
        f"({entry['traded_shares']:,} shares); unknown refs {entry['unknown_refs']:,}, "
        f"overfills {entry['overfills']:,}"
    )
    if entry["integrity"]:
        header += f"; INTEGRITY: {', '.join(entry['integrity'])}"
    lines = [header, f"  {'orders':>7} {'shares':>12} {'bid':>12} | {'ask':<12} {'shares':>12} {'orders':>7}"]
    bids, asks = entry["bids"], entry["asks"]
    for row in range(max(len(bids), len(asks))):
        left = (
            f"{bids[row][2]:>7,} {bids[row][1]:>12,} {format_price(bids[row][0]):>12}"
            if row < len(bids)
            else " " * 33
        )
        right = (
            f"{format_price(asks[row][0]):<12} {asks[row][1]:>12,} {asks[row][2]:>7,}"
            if row < len(asks)
            else ""
        )
        lines.append(f"  {left} | {right}".rstrip())
    if not bids and not asks:
        lines.append("  (empty book)")
    return "\n".join(lines)


def _render_totals(totals: dict[str, Any]) -> str:
    counts = " ".join(f"{kind}={count:,}" for kind, count in totals["message_counts"].items())
    return (
        f"totals: {totals['messages']:,} messages ({counts}); {totals['symbols']:,} symbols, "
        f"{totals['orders']:,} live orders, {totals['trade_count']:,} trades; unknown refs "
        f"{totals['unknown_refs']:,}, overfills {totals['overfills']:,}, duplicate refs "
        f"{totals['duplicate_refs']:,}, invalid {totals['invalid_messages']:,}, unrouted "
        f"{totals['unrouted_messages']:,}"
    )
