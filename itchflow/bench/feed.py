"""The benchmark's input and its answer, cached under ``<stack home>/bench-cache/``.

* the feed: ``itchflow synth`` with the run's symbols, messages and seed (a 10 M message feed takes
  about a minute to generate, so it is kept);
* the reference: ``itchflow book FILE --json`` of that feed at the pipeline's depth (the offline
  books the streamed ones must equal);
* the reference bars: ``itchflow bars FILE --interval ...`` of that feed on the run's trading date
  (the bars the market-data job must write).

A cache entry's name carries its parameters and a digest of the code that produced it (the synth
module, or the book core), so a change to the generator or to the offline book never reuses a stale
file. Files are written under a temporary name and renamed: an interrupted run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path

from itchflow.config import PACKAGE_DIR

Log = Callable[[str], None]

#: the code whose output each cache entry holds
SYNTH_SOURCES = (PACKAGE_DIR / "synth.py",)
BOOK_SOURCES = tuple(sorted((PACKAGE_DIR / "book").glob("*.py"))) + tuple(
    sorted((PACKAGE_DIR / "itch").glob("*.py"))
)
BARS_SOURCES = tuple(sorted((PACKAGE_DIR / "analytics").glob("*.py"))) + tuple(
    sorted((PACKAGE_DIR / "itch").glob("*.py"))
)


def source_digest(paths: Iterable[Path]) -> str:
    """12 hex digits identifying the contents of ``paths`` (in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def feed_key(symbols: int, messages: int, seed: int, synth_digest: str) -> str:
    """File stem of a cached synthetic feed, e.g. ``synth-1000sym-10000000msg-seed1-<digest>``."""
    return f"synth-{symbols}sym-{messages}msg-seed{seed}-{synth_digest}"


def reference_key(feed_stem: str, depth: int, book_digest: str) -> str:
    """File stem of the cached offline books of a feed at ``depth`` levels."""
    return f"{feed_stem}.book-depth{depth}-{book_digest}"


def ensure_feed(cache_dir: Path, symbols: int, messages: int, seed: int, log: Log) -> Path:
    """The cached feed for these parameters; generated (with a progress bar) when missing."""
    from itchflow import synth

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{feed_key(symbols, messages, seed, source_digest(SYNTH_SOURCES))}.itch"
    if path.exists():
        log(f"feed: {path} (cached)")
        return path
    log(f"feed: generating {messages:,} messages over {symbols:,} symbols (seed {seed}) -> {path}")
    partial = path.with_suffix(f".partial-{os.getpid()}.itch")
    try:
        synth.write(partial, symbols=symbols, messages=messages, seed=seed, progress=True)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def ensure_reference(feed: Path, depth: int, log: Log) -> dict:
    """``itchflow book FEED --json --depth DEPTH``, cached beside the feed.

    Returns ``{"symbols": <the report's symbols>, "offline": {"messages", "decode_seconds",
    "book_seconds"}}``: the books to compare with, and how long one Python process took to build them.
    """
    from itchflow.book.cli import build_report, replay_file

    path = feed.with_name(f"{reference_key(feed.stem, depth, source_digest(BOOK_SOURCES))}.json")
    if path.exists():
        log(f"reference books: {path} (cached)")
        return json.loads(path.read_text())
    log(f"reference books: rebuilding every book offline from {feed.name} ...")
    market, timing = replay_file(feed)
    log(f"reference books: {timing.describe()}")
    reference = {
        "symbols": build_report(market, depth)["symbols"],
        "offline": {
            "messages": timing.messages,
            "decode_seconds": round(timing.decode_seconds, 3),
            "book_seconds": round(timing.book_seconds, 3),
        },
    }
    partial = path.with_suffix(f".partial-{os.getpid()}.json")
    partial.write_text(json.dumps(reference, separators=(",", ":")))
    partial.replace(path)
    return reference


BarKey = tuple[str, int, int]
"""(symbol, interval_s, window_start_ns)"""


def ensure_bar_reference(
    feed: Path, trading_date: date, intervals_s: Sequence[int], log: Log
) -> dict[BarKey, list[int]]:
    """``itchflow bars FEED --date DATE --interval ...`` for each interval, cached beside the feed:
    (symbol, interval_s, window_start_ns) -> [open, high, low, close, volume, trades]."""
    from itchflow.analytics.cli import file_bars, file_tape

    intervals = sorted(intervals_s)
    name = f"{feed.stem}.bars-{trading_date.isoformat()}-{'-'.join(map(str, intervals))}s-{source_digest(BARS_SOURCES)}"
    path = feed.with_name(f"{name}.json")
    if path.exists():
        log(f"reference bars: {path} (cached)")
        rows = json.loads(path.read_text())
    else:
        log(f"reference bars: folding every print of {feed.name} offline ...")
        tape = file_tape(feed, trading_date)
        rows = [
            [
                bar.symbol,
                interval,
                bar.window_start_ns,
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.trades,
            ]
            for interval in intervals
            for bar in file_bars(tape, interval)
        ]
        log(f"reference bars: {len(rows):,} bars")
        partial = path.with_suffix(f".partial-{os.getpid()}.json")
        partial.write_text(json.dumps(rows, separators=(",", ":")))
        partial.replace(path)
    return {(row[0], row[1], row[2]): row[3:] for row in rows}
