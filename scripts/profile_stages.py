#!/usr/bin/env python
"""Where the pipeline's CPU goes per message, stage by stage, outside Flink, on the batches a replay
at a given rate would produce.

    .venv/bin/python scripts/profile_stages.py FEED [--rate 250000] [--linger-ms 10] [--batch-size 1000]
    .venv/bin/python scripts/profile_stages.py FEED --clickhouse-url http://127.0.0.1:28123   # + inserts
    .venv/bin/python scripts/profile_stages.py FEED --cprofile book                           # hot functions

FEED is any ITCH file (e.g. a cached ``itchflow bench`` feed under ``<stack home>/bench-cache/``).

1. **Batches** -- the replay's :class:`~itchflow.replay.MicroBatcher` with a clock that advances
   ``1 / rate`` per message, so batches close on size or linger exactly as at that replay rate.
2. **Stages**, each timed in CPU seconds (``time.process_time``) over every record, doing what the
   jobs do per record minus Flink itself:

   * ``replay encode``  -- Avro envelope per batch (``make_batch`` + ``encode_batch``);
   * ``normalize``      -- ``normalize_record`` with per-key sequence state;
   * ``book``           -- ``decode_normalized_batch`` + state restore (``StageCache``, as the job)
     + ``BookStage.apply`` (book, RowBinary and RESP encoding) + snapshot.

3. With ``--clickhouse-url``: the book stage's ClickHouse rows inserted as the Java writer would
   (RowBinary, per table, one insert per ``--sink-linger-ms`` of replay time), wall-clock timed,
   under a throw-away venue deleted afterwards.

The gap between these numbers and a bench run's per-stage rates is what Flink/PyFlink add per record
(``itchflow bench`` shows the per-thread CPU of a real run).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow.avro.raw import encode_batch, make_batch  # noqa: E402
from itchflow.normalize import decode_normalized_batch  # noqa: E402
from itchflow.pipeline.book_stage import BookStageConfig, StageCache  # noqa: E402
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record  # noqa: E402
from itchflow.replay import ClosedBatch, MicroBatcher, file_payloads  # noqa: E402

TRADING_DATE = date(2019, 12, 30)


@dataclass
class StageTime:
    name: str
    cpu_seconds: float
    messages: int
    records: int

    def row(self) -> str:
        per_message = self.cpu_seconds * 1e6 / self.messages
        per_record = self.cpu_seconds * 1e6 / max(self.records, 1)
        one_core = self.messages / self.cpu_seconds if self.cpu_seconds else float("inf")
        return f"  {self.name:<18}{self.cpu_seconds:>9.2f}{per_message:>12.2f}{per_record:>13.1f}{one_core:>16,.0f}"


class FakeClock:
    """Advances ``1 / rate`` seconds per message taken from :meth:`pace`."""

    def __init__(self, rate: float) -> None:
        self.step = 1.0 / rate
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pace(self, payloads: Iterable[bytes]) -> Iterable[bytes]:
        for payload in payloads:
            self.now += self.step
            yield payload


def form_batches(
    feed: Path, rate: float, batch_size: int, linger_ms: float
) -> list[tuple[float, ClosedBatch]]:
    """(replay time, batch) in the order the replay would send them at ``rate`` messages/s."""
    clock = FakeClock(rate)
    batcher = MicroBatcher(batch_size, linger_ms, clock=clock)
    batches = []
    for payload in clock.pace(file_payloads(feed)):
        batches.extend((clock.now, batch) for batch in batcher.add(payload))
    batches.extend((clock.now, batch) for batch in batcher.flush())
    return batches


def timed(run: Callable[[], object], profile: bool) -> tuple[float, object]:
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    result = run()
    if profiler:
        profiler.disable()
    seconds = time.process_time() - started
    if profiler:
        print()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return seconds, result


def encode_all(
    batches: list[tuple[float, ClosedBatch]], venue: str
) -> list[tuple[float, ClosedBatch, bytes]]:
    encoded = []
    for at, batch in batches:
        envelope = make_batch(
            list(batch.payloads),
            venue=venue,
            trading_date=TRADING_DATE,
            session=venue,
            symbol=batch.envelope_symbol,
            stock_locate=batch.stock_locate,
            batch_sequence=batch.batch_sequence,
            first_message_seq=batch.first_message_seq,
            produced_at_ns=0,
        )
        encoded.append((at, batch, encode_batch(envelope)))
    return encoded


def normalize_all(encoded: list[tuple[float, ClosedBatch, bytes]]) -> list[tuple[float, bytes]]:
    states: dict[str, tuple | None] = {}
    normalized = []
    for offset, (at, batch, value) in enumerate(encoded):
        source = RecordSource("raw", 0, offset, 0, batch.symbol.encode())
        outcome = normalize_record(value, source, states.get(batch.symbol), now_ns=0)
        states[batch.symbol] = outcome.state
        if outcome.normalized is not None:
            normalized.append((at, outcome.normalized))
    return normalized


def books_all(
    normalized: list[tuple[float, bytes]], config: BookStageConfig
) -> list[tuple[float, str, bytes]]:
    """Every ClickHouse chunk the book stage emits, as (replay time, table, RowBinary)."""
    cache = StageCache(max_books=1024)
    states: dict[tuple[str, str], bytes | None] = {}
    chunks = []
    for at, value in normalized:
        batch = decode_normalized_batch(value)
        if not batch.symbol:
            continue
        key = (batch.venue, batch.symbol)
        stage = cache.restore(states.get(key), venue=batch.venue, symbol=batch.symbol, config=config)
        output = stage.apply(batch)
        states[key] = cache.snapshot(stage)
        chunks.extend((at, table, rows) for table, rows in output.clickhouse)
    return chunks


def insert_all(url: str, chunks: list[tuple[float, str, bytes]], linger_s: float) -> tuple[float, int, int]:
    """POST the chunks per table and per ``linger_s`` window, as the Java writer; (seconds, inserts, bytes)."""
    windows: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    for at, table, rows in chunks:
        windows[(int(at / linger_s), table)].append(rows)
    started = time.perf_counter()
    sent = 0
    for (_, table), parts in sorted(windows.items()):
        body = b"".join(parts)
        sent += len(body)
        query = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT RowBinary"})
        request = urllib.request.Request(f"{url}/?{query}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
    return time.perf_counter() - started, len(windows), sent


def delete_venue(url: str, venue: str) -> None:
    for table in ("top_of_book", "depth_snapshots", "trades", "book_status"):
        query = urllib.parse.urlencode({"query": f"DELETE FROM {table} WHERE venue = '{venue}'"})
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/?{query}", data=b"", method="POST")
        ) as response:
            response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("feed", type=Path)
    parser.add_argument(
        "--rate", type=float, default=250_000, help="replay rate the batches form at (msgs/s)"
    )
    parser.add_argument("--linger-ms", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--clickhouse-url", help="also time the inserts into this ClickHouse (HTTP)")
    parser.add_argument("--sink-linger-ms", type=float, default=200.0, help="the Java writer's linger")
    parser.add_argument(
        "--cprofile", choices=("encode", "normalize", "book"), help="print this stage's hot functions"
    )
    args = parser.parse_args(argv)

    venue = f"PROFILE{time.time_ns() // 1_000_000}"
    batches = form_batches(args.feed, args.rate, args.batch_size, args.linger_ms)
    messages = sum(len(batch.payloads) for _, batch in batches)
    print(
        f"{args.feed.name}: {messages:,} messages -> {len(batches):,} raw records "
        f"({messages / len(batches):.1f} messages per record) at {args.rate:,.0f} msgs/s, "
        f"batches <= {args.batch_size} / {args.linger_ms:g} ms"
    )
    encode_s, encoded = timed(lambda: encode_all(batches, venue), args.cprofile == "encode")
    normalize_s, normalized = timed(lambda: normalize_all(encoded), args.cprofile == "normalize")  # type: ignore[arg-type]
    book_s, chunks = timed(
        lambda: books_all(normalized, BookStageConfig(depth_levels=args.depth)),  # type: ignore[arg-type]
        args.cprofile == "book",
    )
    stages = [
        StageTime("replay encode", encode_s, messages, len(batches)),
        StageTime("normalize", normalize_s, messages, len(encoded)),  # type: ignore[arg-type]
        StageTime("book (+encode)", book_s, messages, len(normalized)),  # type: ignore[arg-type]
    ]
    print(f"\n  {'stage':<18}{'CPU s':>9}{'us/msg':>12}{'us/record':>13}{'msgs/s (1 core)':>16}")
    for stage in stages:
        print(stage.row())
    total = sum(stage.cpu_seconds for stage in stages)
    print(
        f"  {'all three':<18}{total:>9.2f}{total * 1e6 / messages:>12.2f}{'':>13}{messages / total:>16,.0f}"
    )
    if args.clickhouse_url:
        try:
            seconds, inserts, sent = insert_all(
                args.clickhouse_url.rstrip("/"), chunks, args.sink_linger_ms / 1000
            )  # type: ignore[arg-type]
        finally:
            delete_venue(args.clickhouse_url.rstrip("/"), venue)
        rows = {}
        for _, table, _rows in chunks:  # type: ignore[union-attr]
            rows[table] = rows.get(table, 0) + 1
        print(
            f"\n  ClickHouse inserts: {inserts:,} inserts, {sent / 1e6:.1f} MB RowBinary in {seconds:.2f} s wall "
            f"({seconds * 1e6 / messages:.2f} us/msg, {messages / seconds:,.0f} msgs/s through one writer)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
