"""``itchflow detect --feed VENUE=FILE ...``: the cross-venue detectors over ITCH files, offline -- the
reference the streaming job's alerts must equal.

``--json`` prints one object::

    {"date": "2020-01-02", "venues": ["BX", "NASDAQ"],
     "alerts": [{"type", "symbol", "venues", "start_ns", "end_ns", "severity", "details"}, ...],
     "counts": {"arbitrage": n, ...}}

sorted by start, type, symbol and venues; times are UTC epoch ns (midnight in New York on the trading
date + the ITCH timestamp), prices ITCH ticks (10^-4 dollars). Without ``--json``: a table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from itchflow.analytics.cli import trading_date_of
from itchflow.book.cli import format_price, format_time
from itchflow.cep.alerts import Alert, AlertType
from itchflow.cep.detectors import DetectorConfig
from itchflow.cep.files import detect_files
from itchflow.errors import UserError
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.replay import parse_feeds


def register(subparsers: Any) -> None:
    """Add ``itchflow detect``."""
    parser = subparsers.add_parser(
        "detect",
        help="cross-venue alerts of ITCH 5.0 files: arbitrage, stale symbols, halts (offline reference)",
        description="Run the complex-event detectors over one ITCH 5.0 file per venue, merged by event time: "
        "locked/crossed markets across venues, stale symbols, trading halts and LULD pauses.",
    )
    parser.add_argument(
        "--feed",
        action="append",
        required=True,
        metavar="VENUE=FILE",
        help="a venue's feed (repeat per venue), e.g. --feed NASDAQ=12302019.NASDAQ_ITCH50 --feed BX=...",
    )
    parser.add_argument(
        "--date", help="trading date YYYY-MM-DD (default: the date at the start of the file names)"
    )
    add_detector_arguments(parser)
    parser.add_argument(
        "--type",
        action="append",
        dest="types",
        choices=[str(alert_type) for alert_type in AlertType],
        help="only alerts of this type (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """The detectors' parameters as flags (``itchflow detect`` and the market-data job)."""
    defaults = DetectorConfig()
    parser.add_argument(
        "--arbitrage-min-ms",
        type=int,
        default=defaults.arbitrage_min_ms,
        help=f"shortest locked/crossed market reported, ms (default {defaults.arbitrage_min_ms})",
    )
    parser.add_argument(
        "--stale-after-ms",
        type=int,
        default=defaults.stale_after_ms,
        help=f"a trading symbol silent on a venue for longer is stale, ms (default {defaults.stale_after_ms})",
    )


def detector_config(args: argparse.Namespace) -> DetectorConfig:
    """The detectors' parameters from :func:`add_detector_arguments`' flags.

    Raises:
        ValueError: a value out of range (the message names the setting).
    """
    return DetectorConfig(arbitrage_min_ms=args.arbitrage_min_ms, stale_after_ms=args.stale_after_ms)


def feeds_date(feeds: list[tuple[str, Path]], text: str | None) -> date:
    """``--date``, else the date every file name starts with (they must agree)."""
    if text:
        return trading_date_of(feeds[0][1], text)
    dates = {trading_date_of(path, None) for _, path in feeds}
    if len(dates) > 1:
        found = ", ".join(sorted(day.isoformat() for day in dates))
        raise UserError(
            f"the files are of different trading dates ({found}): one day at a time, or pass --date"
        )
    return dates.pop()


def run(args: argparse.Namespace) -> int:
    """The ``detect`` command."""
    feeds = parse_feeds(args.feed)
    trading_date = feeds_date(feeds, args.date)
    try:
        config = detector_config(args)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    alerts = detect_files(feeds, trading_date, config)
    if args.types:
        alerts = [alert for alert in alerts if alert.type in args.types]
    if args.json:
        report = {
            "date": trading_date.isoformat(),
            "venues": sorted(venue for venue, _ in feeds),
            "alerts": [alert.to_json() for alert in alerts],
            "counts": dict(sorted(Counter(str(alert.type) for alert in alerts).items())),
        }
        print(json.dumps(report, separators=(",", ":")))
    else:
        print(render(alerts, midnight_epoch_ns(trading_date)))
    return 0


def render(alerts: list[Alert], midnight_ns: int) -> str:
    """A table of the alerts (New York time of day, prices in dollars) and the count per type."""
    lines = [f"{'type':<11} {'symbol':<8} {'venues':<14} {'start':<18} {'duration':>12}  details"]
    for alert in alerts:
        start = format_time(alert.start_ns - midnight_ns)[:-6]
        duration = "open" if alert.end_ns is None else f"{(alert.end_ns - alert.start_ns) / 1e9:,.3f} s"
        lines.append(
            f"{alert.type:<11} {alert.symbol:<8} {'>'.join(alert.venues):<14} {start:<18} {duration:>12}  "
            f"{_details(alert)}"
        )
    counts = Counter(str(alert.type) for alert in alerts)
    summary = ", ".join(f"{count:,} {name}" for name, count in sorted(counts.items())) or "none"
    lines.append(f"{len(alerts):,} alerts: {summary}")
    return "\n".join(lines)


def _details(alert: Alert) -> str:
    details = alert.details
    if alert.type is AlertType.ARBITRAGE:
        return (
            f"{details['kind']}: bid {format_price(details['bid'])} x {details['bid_shares']:,} "
            f"vs ask {format_price(details['ask'])} x {details['ask_shares']:,}, "
            f"edge ${details['edge'] / 10_000:,.2f}"
        )
    if "reason" in details:
        return f"reason {details['reason'] or '-'}"
    return ""
