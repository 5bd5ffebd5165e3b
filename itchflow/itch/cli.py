"""``itchflow itch ...``: look inside ITCH 5.0 files.

``itchflow itch stats FILE [--json]`` prints message counts per type, distinct symbols, the first and
last timestamp and decode errors of a file in any supported framing (standard, zero-prefix, gzip,
MoldUDP64 pcap). The exit code is 0 for a clean file and 1 if decode errors were found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from itchflow.errors import UserError
from itchflow.itch.messages import MESSAGE_TYPES
from itchflow.itch.stats import ItchStats, compute_stats, format_timestamp

_MAX_SYMBOLS_SHOWN = 20


def register(subparsers: Any) -> None:
    """Add the ``itch`` command and its subcommands to the top-level parser."""
    itch = subparsers.add_parser(
        "itch", help="inspect ITCH 5.0 files", description="Inspect NASDAQ TotalView-ITCH 5.0 files."
    )
    itch.set_defaults(func=lambda args: _print_help(itch))
    commands = itch.add_subparsers(dest="itch_command", metavar="SUBCOMMAND")
    stats = commands.add_parser(
        "stats",
        help="message counts per type, symbols, time span and decode errors of a file",
        description="Read an ITCH 5.0 file (standard or zero length prefixes, gzip, or MoldUDP64 pcap; "
        "detected from the bytes) and report what it holds. Exit code 1 if decode errors were found.",
    )
    stats.add_argument("file", type=Path, help="ITCH 5.0 file")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    stats.set_defaults(func=run_stats)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_stats(args: argparse.Namespace) -> int:
    """``itchflow itch stats``: compute and print the statistics of ``args.file``."""
    path: Path = args.file
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give an ITCH file")
    try:
        result = compute_stats(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if args.json:
        json.dump(result.to_json_dict(), sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result))
    return 1 if result.errors else 0


def render_text(stats: ItchStats) -> str:
    """The human-readable report of ``itchflow itch stats``."""
    symbols = " ".join(stats.symbols[:_MAX_SYMBOLS_SHOWN])
    if len(stats.symbols) > _MAX_SYMBOLS_SHOWN:
        symbols += f" ... (+{len(stats.symbols) - _MAX_SYMBOLS_SHOWN} more)"
    lines = [
        f"file       {stats.path}",
        f"format     {stats.format}",
        f"messages   {stats.messages:,}",
        f"first      {format_timestamp(stats.first_timestamp)}",
        f"last       {format_timestamp(stats.last_timestamp)}",
        f"symbols    {len(stats.symbols):,}{': ' + symbols if symbols else ''}",
        f"errors     {stats.errors:,}"
        + (f" ({stats.skipped_bytes:,} bytes skipped)" if stats.skipped_bytes else ""),
    ]
    lines += [f"  {sample}" for sample in stats.error_samples]
    if stats.by_type:
        lines.append("by type")
        width = max(len(MESSAGE_TYPES[letter].__name__) for letter in stats.by_type)
        for letter, count in stats.by_type.items():
            lines.append(f"  {letter}  {MESSAGE_TYPES[letter].__name__:<{width}}  {count:>12,}")
    return "\n".join(lines) + "\n"
