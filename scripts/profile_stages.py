#!/usr/bin/env python
"""Where the pipeline's CPU goes per message, stage by stage, outside Flink, on the batches a replay
at a given rate would produce.

    .venv/bin/python scripts/profile_stages.py FEED [--rate 250000] [--linger-ms 10] [--batch-size 1000] [--partitions 4]
    .venv/bin/python scripts/profile_stages.py FEED --clickhouse-url http://127.0.0.1:28123   # + inserts
    .venv/bin/python scripts/profile_stages.py FEED --cprofile book                           # hot functions
    .venv/bin/python scripts/profile_stages.py FEED --envelopes      # the envelopes' Avro: C vs fastavro

FEED is any ITCH file (e.g. a cached ``itchflow bench`` feed under ``<stack home>/bench-cache/``).

1. **Bundles** -- the replay's :class:`~itchflow.replay.BundleBatcher` (one bundle per shard, in the partitions of
   ``--partitions``) with a clock that advances ``1 / rate`` per message, so bundles close on size or
   linger exactly as at that replay rate.
2. **Stages**, each timed in CPU seconds (``time.process_time``) over every record, doing what the
   jobs do per record minus Flink itself:

   * ``replay encode``  -- Avro ``ItchBundle`` per bundle (``make_bundle`` + ``encode_bundle``);
   * ``normalize``      -- ``normalize_record`` with per-key (per-partition) sequence state;
   * ``book``           -- ``PartitionBooks.apply_bundle`` per record, the books of each partition key kept
     live as the job keeps them between records (decode + ``BookStage.apply`` per run: book,
     RowBinary and RESP encoding), and at each compaction (``compaction_due``) the snapshots of the
     books touched since the last one; the job's state writes (token, log) are left out;
   * ``bars``           -- what the market-data operator does with the books' prints and breaks:
     ``BarStage.record`` per record (watermark 1 s behind the slowest key) and the bars' ClickHouse
     rows and Redis commands; its state log is left out.

3. With ``--clickhouse-url``: the book stage's ClickHouse rows inserted as the Java writer would
   (RowBinary, per table, one insert per ``--sink-linger-ms`` of replay time), wall-clock timed,
   under a throw-away venue deleted afterwards.

4. With ``--envelopes``: the bundle envelopes' Avro per record, by the C codec
   (``itchflow/avro/_cavro.c``) and by fastavro (an explicit registry takes the fastavro path), on
   the same records: raw encode, raw decode, normalized encode.

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

from itchflow.analytics.bar_stage import BarConfig, BarStage, complete_before_ns  # noqa: E402
from itchflow.analytics.bars import eligible  # noqa: E402
from itchflow.analytics.bursts import DEFAULT_BURST_ALERT_PRINTS_PER_S, BurstConfig, BurstDetector  # noqa: E402
from itchflow.analytics.flow_stage import FlowConfig, FlowStage  # noqa: E402
from itchflow.analytics.rolling import RollingConfig  # noqa: E402
from itchflow.analytics.rolling_stage import RollingStage  # noqa: E402
from itchflow.avro.bundle import decode_raw, encode_bundle  # noqa: E402
from itchflow.avro.normalized import decode_normalized, encode_normalized_bundle  # noqa: E402
from itchflow.avro.registry import default_registry  # noqa: E402
from itchflow.pipeline.book_stage import BookStageConfig  # noqa: E402
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record  # noqa: E402
from itchflow.pipeline.partition_books import PartitionBooks  # noqa: E402
from itchflow.replay import BundleBatcher, ClosedBundle, file_payloads  # noqa: E402
from itchflow.sinks.bar_outputs import bar_commands, bar_rows  # noqa: E402
from itchflow.sinks.burst_outputs import burst_alert_commands, burst_rows  # noqa: E402
from itchflow.sinks.flow_outputs import flow_commands, liquidity_rows, ofi_rows  # noqa: E402
from itchflow.sinks.rolling_outputs import average_rows, rolling_commands, vwap_rows  # noqa: E402

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


def form_bundles(
    feed: Path, rate: float, batch_size: int, linger_ms: float, partitions: int
) -> tuple[list[tuple[float, ClosedBundle]], int]:
    """(replay time, bundle) in the order the replay would send them at ``rate`` messages/s, and the
    number of messages of the feed."""
    clock = FakeClock(rate)
    batcher = BundleBatcher(partitions, batch_size, linger_ms, clock=clock)
    bundles = []
    messages = 0
    for payload in clock.pace(file_payloads(feed)):
        messages += 1
        bundles.extend((clock.now, bundle) for bundle in batcher.add(payload))
    bundles.extend((clock.now, bundle) for bundle in batcher.flush())
    return bundles, messages


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
    bundles: list[tuple[float, ClosedBundle]], venue: str
) -> list[tuple[float, ClosedBundle, bytes]]:
    encoded = []
    for at, bundle in bundles:
        envelope = bundle.envelope(venue=venue, trading_date=TRADING_DATE, session=venue, produced_at_ns=0)
        encoded.append((at, bundle, encode_bundle(envelope)))
    return encoded


def normalize_all(
    encoded: list[tuple[float, ClosedBundle, bytes]], venue: str
) -> list[tuple[float, bytes, bytes]]:
    """Each record through ``normalize_record`` with its Kafka key's state (the replay's key:
    ``@<shard>/<shards>``); (replay time, normalized key, normalized record)."""
    states: dict[bytes, tuple | None] = {}
    normalized = []
    for offset, (at, bundle, value) in enumerate(encoded):
        key = bundle.key.encode()
        source = RecordSource("raw", bundle.partition, offset, 0, key)
        outcome = normalize_record(value, source, states.get(key), now_ns=0)
        states[key] = outcome.state
        if outcome.normalized is not None:
            normalized.append((at, outcome.output_key, outcome.normalized))
    return normalized


def books_all(
    normalized: list[tuple[float, bytes, bytes]], config: BookStageConfig, outputs: list | None = None
) -> list[tuple[float, str, bytes]]:
    """Every ClickHouse chunk the book stage emits, as (replay time, table, RowBinary): one live
    :class:`PartitionBooks` per normalized key, compacted whenever due. ``outputs`` collects (key,
    latest event time, output) per record for :func:`bars_all`."""
    books: dict[bytes, PartitionBooks] = {}
    chunks = []
    for at, key, value in normalized:
        partition = books.get(key)
        if partition is None:
            partition = books[key] = PartitionBooks(config)
        bundle = decode_normalized(value)
        output = partition.apply_bundle(bundle, len(value))
        if partition.compaction_due():
            partition.compact()
        chunks.extend((at, table, rows) for table, rows in output.clickhouse)
        if outputs is not None:
            outputs.append((key, bundle.max_ts_event, output))
    return chunks


def bars_all(outputs: list, steps: list | None = None) -> int:
    """The market-data operator's bar work per record: eligible prints and breaks into each key's
    :class:`BarStage` with the watermark trailing the slowest key by 1 s, then the bars' ClickHouse
    rows and Redis commands; returns the bars emitted."""
    stages: dict[bytes, BarStage] = {}
    latest: dict[bytes, int] = {key: -(2**62) for key, _, _ in outputs}
    emitted = 0
    for key, max_ts, output in outputs:
        stage = stages.get(key)
        if stage is None:
            stage = stages[key] = BarStage(BarConfig())
        complete = complete_before_ns(min(latest.values()) // 1_000_000 - 1_001)
        prints = [
            (venue, symbol, output.trading_date, (ts, seq, match, price, shares))
            for venue, symbol, rows in output.prints
            for seq, ts, kind, match, price, shares, _, printable in rows
            if eligible(kind, bool(printable), shares)
        ]
        breaks = [(venue, symbol, match, ts) for venue, symbol, ts, _, match in output.breaks]
        revisions = stage.record(complete, prints, breaks, output.end_of_messages)
        if steps is not None:
            steps.append((key, complete, prints, breaks, output.end_of_messages, revisions, stage))
        stage.late.clear()
        bar_rows(revisions)
        for revision in revisions:
            bar_commands(revision, "itchflow", 10_000, revision.latest, revision.bar.interval_s != 1)
        emitted += len(revisions)
        latest[key] = max(latest[key], max_ts)
    return emitted


def rolling_all(steps: list) -> int:
    """The sliding VWAP and moving averages of each key's bar revisions (as the operator: the stage's
    ``day_bars`` for breaks past the lateness), with their rows and hashes; returns the values."""
    stages: dict[bytes, RollingStage] = {}
    emitted = 0
    for key, complete, _, _, end, revisions, bar_stage in steps:
        stage = stages.get(key)
        if stage is None:
            stage = stages[key] = RollingStage(RollingConfig())
        out = stage.apply(revisions, None if end else complete, end, bar_stage.day_bars)
        vwap_rows(out.vwaps)
        average_rows(out.averages)
        rolling_commands(out.vwaps, out.averages, "itchflow")
        emitted += len(out.vwaps) + len(out.averages)
    return emitted


def bursts_all(steps: list) -> int:
    """The bursts of each key's prints and breaks, with their rows and alerts; returns the emissions."""
    detectors: dict[bytes, BurstDetector] = {}
    emitted = 0
    for key, complete, prints, breaks, end, _, _ in steps:
        detector = detectors.get(key)
        if detector is None:
            detector = detectors[key] = BurstDetector(
                BurstConfig(alert_prints_per_s=DEFAULT_BURST_ALERT_PRINTS_PER_S)
            )
        for venue, symbol, trading_date, p in prints:
            detector.add_print(venue, symbol, trading_date, p, complete)
        for venue, symbol, match_number, ts_event in breaks:
            detector.break_trade(venue, symbol, match_number, ts_event)
        bursts = detector.close_all() if end else detector.advance(complete)
        detector.late.clear()
        burst_rows(bursts)
        burst_alert_commands(bursts, "itchflow", 10_000)
        emitted += len(bursts)
    return emitted


def flow_all(outputs: list, steps: list) -> int:
    """OFI and liquidity of each key's top_of_book and depth_snapshots rows, with their rows and
    hashes; returns the windows."""
    stages: dict[bytes, FlowStage] = {}
    emitted = 0
    for (key, _, output), step in zip(outputs, steps, strict=True):
        stage = stages.get(key)
        if stage is None:
            stage = stages[key] = FlowStage(FlowConfig())
        chunks = dict(output.clickhouse)
        out = stage.record(
            step[1], chunks.get("top_of_book", b""), chunks.get("depth_snapshots", b""), step[4]
        )
        ofi_rows(out.ofi)
        liquidity_rows(out.liquidity)
        flow_commands(out.ofi, out.liquidity, "itchflow")
        emitted += len(out.ofi) + len(out.liquidity)
    return emitted


def envelope_lines(
    encoded: list[tuple[float, ClosedBundle, bytes]], normalized: list[tuple[float, bytes, bytes]]
) -> None:
    """us per record of each envelope step by the C codec (the default path) and by fastavro."""
    raw = [decode_raw(value) for _, _, value in encoded]
    bundles = [decode_normalized(value) for _, _, value in normalized]
    fastavro_path = default_registry()
    values = [value for _, _, value in encoded]

    def each(step: Callable, items: list) -> Callable:
        def run(registry) -> None:
            for (
                item
            ) in items:  # results dropped as the job drops them (kept, the collector's scans would count)
                step(item, registry)

        return run

    steps = (
        ("raw encode", each(encode_bundle, raw), len(raw)),
        ("raw decode", each(decode_raw, values), len(values)),
        ("normalized encode", each(encode_normalized_bundle, bundles), len(bundles)),
    )
    print(f"\n  {'envelope (us/record)':<22}{'C':>9}{'fastavro':>11}")
    for name, run, records in steps:
        started = time.process_time()
        run(None)
        native = time.process_time() - started
        started = time.process_time()
        run(fastavro_path)
        reference = time.process_time() - started
        print(f"  {name:<22}{native * 1e6 / records:>9.1f}{reference * 1e6 / records:>11.1f}")


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
    parser.add_argument("--batch-size", type=int, default=1000, help="messages per partition bundle")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the raw topic")
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--clickhouse-url", help="also time the inserts into this ClickHouse (HTTP)")
    parser.add_argument("--sink-linger-ms", type=float, default=200.0, help="the Java writer's linger")
    parser.add_argument(
        "--cprofile",
        choices=("encode", "normalize", "book", "bars", "rolling", "bursts", "flow"),
        help="print this stage's hot functions",
    )
    parser.add_argument(
        "--envelopes", action="store_true", help="also time the envelopes' Avro: the C codec against fastavro"
    )
    args = parser.parse_args(argv)

    venue = f"PROFILE{time.time_ns() // 1_000_000}"
    bundles, messages = form_bundles(args.feed, args.rate, args.batch_size, args.linger_ms, args.partitions)
    # market-wide messages are copied into every partition's bundle: records carry a few more
    carried = sum(bundle.message_count for _, bundle in bundles)
    segments = sum(len(bundle.segments) for _, bundle in bundles)
    print(
        f"{args.feed.name}: {messages:,} messages -> {len(bundles):,} raw records of {segments:,} segments "
        f"({carried / len(bundles):.1f} messages, {segments / len(bundles):.1f} segments per record) "
        f"at {args.rate:,.0f} msgs/s, {args.partitions} partitions, "
        f"bundles <= {args.batch_size} / {args.linger_ms:g} ms"
    )
    # each stage's row as soon as it is timed (a later stage failing still leaves the earlier rows)
    print(f"\n  {'stage':<18}{'CPU s':>9}{'us/msg':>12}{'us/record':>13}{'msgs/s (1 core)':>16}")
    encode_s, encoded = timed(lambda: encode_all(bundles, venue), args.cprofile == "encode")
    print(StageTime("replay encode", encode_s, messages, len(bundles)).row())
    normalize_s, normalized = timed(
        lambda: normalize_all(encoded, venue),  # type: ignore[arg-type]
        args.cprofile == "normalize",
    )
    print(StageTime("normalize", normalize_s, messages, len(encoded)).row())  # type: ignore[arg-type]
    outputs: list = []
    book_s, chunks = timed(
        lambda: books_all(normalized, BookStageConfig(depth_levels=args.depth), outputs),  # type: ignore[arg-type]
        args.cprofile == "book",
    )
    print(StageTime("book (+encode)", book_s, messages, len(normalized)).row())  # type: ignore[arg-type]
    steps: list = []
    bars_s, bars = timed(lambda: bars_all(outputs, steps), args.cprofile == "bars")
    print(StageTime("bars (+encode)", bars_s, messages, len(normalized)).row() + f"   {bars:,} bars")  # type: ignore[arg-type]
    rolling_s, values = timed(lambda: rolling_all(steps), args.cprofile == "rolling")
    print(StageTime("vwap, averages", rolling_s, messages, len(normalized)).row() + f"   {values:,} values")  # type: ignore[arg-type]
    bursts_s, bursts = timed(lambda: bursts_all(steps), args.cprofile == "bursts")
    print(StageTime("bursts", bursts_s, messages, len(normalized)).row() + f"   {bursts:,} bursts")  # type: ignore[arg-type]
    flow_s, windows = timed(lambda: flow_all(outputs, steps), args.cprofile == "flow")
    print(StageTime("ofi, liquidity", flow_s, messages, len(normalized)).row() + f"   {windows:,} windows")  # type: ignore[arg-type]
    total = encode_s + normalize_s + book_s + bars_s + rolling_s + bursts_s + flow_s
    print(
        f"  {'all stages':<18}{total:>9.2f}{total * 1e6 / messages:>12.2f}{'':>13}{messages / total:>16,.0f}"
    )
    if args.envelopes:
        envelope_lines(encoded, normalized)  # type: ignore[arg-type]
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
