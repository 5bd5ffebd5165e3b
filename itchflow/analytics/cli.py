"""``itchflow bars FILE --interval 1s|1m|5m``: OHLCV bars of an ITCH file, offline -- the reference the
analytics job's bars must equal.

Reads any file the ITCH framing reader understands, takes every symbol's eligible prints (the rules
are in :mod:`itchflow.analytics.bars`), applies broken trades and folds the prints into tumbling,
epoch-aligned bars in exchange time. ``--json`` prints one object::

    {"interval_s": 60, "date": "2019-12-30", "venue": "NASDAQ",
     "bars": [{"symbol", "window_start_ns", "open", "high", "low", "close", "volume", "vwap", "trades"}, ...],
     "breaks": {"applied": n, "unknown": n}}

sorted by symbol and window start; prices are integer ticks (ITCH Price(4)), ``window_start_ns`` is
UTC epoch nanoseconds (midnight in New York on ``--date`` + the ITCH timestamp, floored to the
interval). The trading date is ``--date``, or the ``MMDDYYYY`` / ``YYYYMMDD`` date at the start of the
file name (NASDAQ's own naming, e.g. ``12302019.NASDAQ_ITCH50``).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from itchflow.analytics.bars import Bar, bars, parse_interval
from itchflow.analytics.tape import Tape
from itchflow.errors import UserError
from itchflow.normalize.clock import midnight_epoch_ns

TICKS_PER_DOLLAR = 10_000


def register(subparsers: Any) -> None:
    """Add ``itchflow bars``."""
    parser = subparsers.add_parser(
        "bars",
        help="OHLCV bars of an ITCH 5.0 file (offline reference of the analytics job)",
        description="Fold every symbol's eligible prints of an ITCH 5.0 file into tumbling OHLCV bars in "
        "exchange time, broken trades applied: the reference the analytics job's bars must equal.",
    )
    parser.add_argument("file", type=Path, help="ITCH 5.0 file: length-prefixed, zero-prefixed, gzip or pcap")
    parser.add_argument("--interval", default="1m", help="bar size: 1s, 1m or 5m (default 1m)")
    parser.add_argument(
        "--date", help="trading date YYYY-MM-DD (default: the date at the start of the file name)"
    )
    parser.add_argument("--venue", default="NASDAQ", help="venue tag of the output (default NASDAQ)")
    parser.add_argument(
        "--symbol", action="append", dest="symbols", metavar="SYMBOL", help="only this symbol (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def trading_date_of(path: Path, text: str | None) -> date:
    """``--date``, else the date the file name starts with; a readable error when neither is given."""
    if text:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise UserError(f"--date must be YYYY-MM-DD, got {text!r}") from None
    match = re.match(r"(\d{8})", path.name)
    if match:
        digits = match.group(1)
        for candidate in ((digits[4:], digits[:2], digits[2:4]), (digits[:4], digits[4:6], digits[6:])):
            try:
                return date(*(int(part) for part in candidate))
            except ValueError:
                continue
    raise UserError(f"{path.name}: no trading date in the file name; pass --date YYYY-MM-DD")


def file_tape(path: Path, trading_date: date) -> Tape:
    """Every message of ``path`` applied to a fresh :class:`Tape`."""
    from itchflow.itch.codec import ItchDecodeError
    from itchflow.itch.framing import iter_message_batches

    if not path.is_file():
        raise UserError(f"no such file: {path}")
    tape = Tape(midnight_epoch_ns(trading_date))
    enabled = gc.isenabled()
    gc.disable()  # millions of fresh message objects and no cycles: the collector would only rescan them
    try:
        for batch in iter_message_batches(path):
            tape.apply_all(batch)
    except ItchDecodeError as exc:
        raise UserError(f"{path}: not a readable ITCH 5.0 file: {exc}") from exc
    finally:
        if enabled:
            gc.enable()
    return tape


def file_bars(tape: Tape, interval_s: int, symbols: list[str] | None = None) -> list[Bar]:
    """Every bar of the tape (or of ``symbols``), by symbol and window start."""
    selected = sorted(tape.prints) if symbols is None else list(dict.fromkeys(symbols))
    result: list[Bar] = []
    for symbol in selected:
        result.extend(bars(symbol, tape.symbol_prints(symbol), interval_s))
    return result


def run(args: argparse.Namespace) -> int:
    """The ``bars`` command."""
    try:
        interval_s = parse_interval(args.interval)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    trading_date = trading_date_of(args.file, args.date)
    tape = file_tape(args.file, trading_date)
    found = file_bars(tape, interval_s, args.symbols)
    if args.json:
        report = {
            "interval_s": interval_s,
            "date": trading_date.isoformat(),
            "venue": args.venue,
            "bars": [bar.to_json() for bar in found],
            "breaks": {"applied": tape.counts.breaks_applied, "unknown": tape.counts.breaks_unknown},
        }
        print(json.dumps(report, separators=(",", ":")))
    else:
        print(render(found, tape, midnight_epoch_ns(trading_date)))
    return 0


def render(found: list[Bar], tape: Tape, midnight_ns: int) -> str:
    """A table of the bars (New York time of day, prices in dollars) and the tape's counts."""
    lines = [f"{'symbol':<8} {'start':>12} {'open':>10} {'high':>10} {'low':>10} {'close':>10} "
             f"{'volume':>10} {'vwap':>12} {'trades':>7}"]  # fmt: skip
    for bar in found:
        seconds = (bar.window_start_ns - midnight_ns) // 1_000_000_000
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        lines.append(
            f"{bar.symbol:<8} {clock:>12} {_dollars(bar.open):>10} {_dollars(bar.high):>10} "
            f"{_dollars(bar.low):>10} {_dollars(bar.close):>10} {bar.volume:>10,} "
            f"{bar.vwap / TICKS_PER_DOLLAR:>12.6f} {bar.trades:>7,}"
        )
    counts = tape.counts
    lines.append(
        f"{len(found):,} bars from {counts.prints:,} eligible prints; {counts.ineligible:,} not eligible "
        f"(C non-printable, Q without shares), {counts.unpriced:,} unpriced (E of an unknown order); "
        f"breaks: {counts.breaks_applied:,} applied, {counts.breaks_unknown:,} unknown match numbers"
    )
    return "\n".join(lines)


def _dollars(ticks: int) -> str:
    return f"{ticks / TICKS_PER_DOLLAR:.4f}"
