"""Micro-benchmark of the order-book core on partition bundles, on one core.

A feed (``itchflow.synth`` or an ITCH file) is cut as the replay does, by
:class:`~itchflow.replay.BundleBatcher` (``--partitions``, bundles of ``--batch-size`` messages,
closing on size only), each bundle encoded (``make_bundle`` + ``encode_bundle``) and normalized up
front with ``normalize_record`` (sequence state per partition key). Then the normalized records go,
in feed order, through:

* ``PartitionBooks.apply``: one live :class:`~itchflow.pipeline.partition_books.PartitionBooks` per
  partition key, compacted (snapshots of the books touched) whenever ``compaction_due()``: the pure
  cost of decoding, applying and encoding;
* ``BookCache.process``: what the job calls per record, with a dict-backed state (token, snapshots,
  log): the same plus the state token, the log appends and the snapshots written at compaction.

Each is timed in CPU seconds (``time.process_time``) over ``--repeat`` runs; the median is printed
as µs per feed message and per record, with the runs per record and messages per run of the feed.

    .venv/bin/python scripts/bench_book_stage.py [FEED] [--messages 300000] [--symbols 100] [--partitions 4]
        [--batch-size 1000] [--repeat 5] [--cprofile apply|cache]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow import synth  # noqa: E402
from itchflow.avro.bundle import encode_bundle  # noqa: E402
from itchflow.avro.normalized import decode_normalized  # noqa: E402
from itchflow.pipeline.book_stage import BookStageConfig  # noqa: E402
from itchflow.pipeline.keyed_state import MemoryKeyedState  # noqa: E402
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record  # noqa: E402
from itchflow.pipeline.partition_books import BookCache, PartitionBooks  # noqa: E402
from itchflow.replay import SYSTEM_SYMBOL, BundleBatcher, file_payloads  # noqa: E402

VENUE = "XNAS"
TRADING_DATE = date(2024, 1, 2)
SESSION = "bench"


@dataclass
class Feed:
    """The normalized records of a feed, as (partition key, record value), in the order sent."""

    messages: int
    bundles: int
    symbol_segments: int
    symbol_messages: int
    dead_letters: int
    records: list[tuple[bytes, bytes]]


def cut_feed(payloads: Iterable[bytes], partitions: int, batch_size: int) -> Feed:
    """Bundle, encode and normalize ``payloads`` as the replay and the normalization job would."""
    batcher = BundleBatcher(
        partitions=partitions, batch_size=batch_size, linger_ms=float("inf"), clock=lambda: 0.0
    )
    closed = []
    messages = 0
    for payload in payloads:
        messages += 1
        closed.extend(batcher.add(payload))
    closed.extend(batcher.flush())
    states: dict[bytes, tuple | None] = {}
    records = []
    segments = symbol_messages = dead_letters = 0
    for offset, bundle in enumerate(closed):
        for segment in bundle.segments:
            if segment.symbol != SYSTEM_SYMBOL:
                segments += 1
                symbol_messages += len(segment.payloads)
        envelope = bundle.envelope(venue=VENUE, trading_date=TRADING_DATE, session=SESSION, produced_at_ns=0)
        value = encode_bundle(envelope)
        key = bundle.key.encode()
        source = RecordSource("market-data-raw", bundle.partition, offset, 0, key)
        outcome = normalize_record(value, source, states.get(key), now_ns=0)
        states[key] = outcome.state
        dead_letters += len(outcome.dead_letters)
        if outcome.normalized is not None:
            records.append((key, outcome.normalized))
    return Feed(messages, len(closed), segments, symbol_messages, dead_letters, records)


def run_apply(records: list[tuple[bytes, bytes]], config: BookStageConfig) -> int:
    """``PartitionBooks.apply`` per record, compacting when due; events applied."""
    books: dict[bytes, PartitionBooks] = {}
    events = 0
    for key, payload in records:
        partition = books.get(key)
        if partition is None:
            partition = books[key] = PartitionBooks(config)
        events += partition.apply(payload).counters["events_applied"]
        if partition.compaction_due():
            partition.compact()
    return events


def run_cache(records: list[tuple[bytes, bytes]], config: BookStageConfig) -> int:
    """``BookCache.process`` per record with a :class:`MemoryKeyedState` per key; events applied."""
    cache = BookCache(config)
    states: dict[bytes, MemoryKeyedState] = {}
    events = 0
    for key, payload in records:
        state = states.get(key)
        if state is None:
            state = states[key] = MemoryKeyedState()
        events += cache.process(key, payload, state).counters["events_applied"]
    if cache.restores != len(states):
        raise AssertionError(f"{cache.restores} restores for {len(states)} keys: the cache missed")
    return events


def timed(run: Callable[[], int], repeat: int) -> tuple[list[float], int]:
    """CPU seconds of each of ``repeat`` runs, and what the runs returned (all equal)."""
    seconds = []
    results = set()
    for _ in range(repeat):
        started = time.process_time()
        results.add(run())
        seconds.append(time.process_time() - started)
    if len(results) != 1:
        raise AssertionError(f"runs disagree: {sorted(results)}")
    return seconds, results.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feed", type=Path, nargs="?", help="ITCH file (default: a synthetic feed)")
    parser.add_argument("--messages", type=int, default=300_000, help="synthetic feed: messages")
    parser.add_argument("--symbols", type=int, default=100, help="synthetic feed: symbols")
    parser.add_argument("--seed", type=int, default=7, help="synthetic feed: seed")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the raw topic (default 4)")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="messages per partition bundle (default 1000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per mode; the median is printed")
    parser.add_argument("--cprofile", choices=("apply", "cache"), help="print this mode's hot functions")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    config = BookStageConfig()

    if args.feed is not None:
        name, payloads = args.feed.name, file_payloads(args.feed)
    else:
        name = f"synth {args.symbols} symbols, seed {args.seed}"
        payloads = synth.generate(args.symbols, args.messages, args.seed)
    feed = cut_feed(payloads, args.partitions, args.batch_size)
    records = feed.records
    runs = events = 0
    for _, payload in records:
        for run in decode_normalized(payload).runs:
            if run.symbol:
                runs += 1
                events += run.count
    print(
        f"{name}: {feed.messages:,} messages -> {feed.bundles:,} bundles "
        f"({args.partitions} partitions, <= {args.batch_size} messages) -> {len(records):,} normalized "
        f"records, {runs:,} book runs, {events:,} events"
        + (f", {feed.dead_letters:,} dead letters" if feed.dead_letters else "")
    )
    print(
        f"  runs per record {runs / max(len(records), 1):.1f}, messages per run "
        f"{feed.symbol_messages / max(feed.symbol_segments, 1):.1f}, events per run {events / max(runs, 1):.1f}"
    )
    print(
        f"\n  {'mode (median of ' + str(args.repeat) + ')':<28}{'CPU s':>8}{'us/msg':>9}{'us/record':>11}{'msgs/s':>12}"
    )
    applied = {}
    for label, mode, run in (
        ("PartitionBooks.apply", "apply", run_apply),
        ("BookCache.process", "cache", run_cache),
    ):
        seconds, applied[mode] = timed(lambda run=run: run(records, config), args.repeat)
        median = statistics.median(seconds)
        print(
            f"  {label:<28}{median:>8.3f}{median * 1e6 / feed.messages:>9.2f}"
            f"{median * 1e6 / max(len(records), 1):>11.1f}{feed.messages / median:>12,.0f}"
            f"   (runs {min(seconds):.3f} .. {max(seconds):.3f} s)"
        )
    if applied["apply"] != applied["cache"]:
        raise AssertionError(f"the modes applied different event counts: {applied}")
    if args.cprofile:
        profiler = cProfile.Profile()
        run = run_apply if args.cprofile == "apply" else run_cache
        profiler.runcall(run, records, config)
        print()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
