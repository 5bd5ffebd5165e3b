"""Micro-benchmark of the order-book stage (``itchflow.pipeline.book_stage``) on one core.

A synthetic feed (``itchflow.synth``) is cut into per-symbol batches of ``--batch-size`` messages
(the replay producer's micro-batcher, closing on size only) and normalized up front; then the
batches go through ``BookStage.apply`` in feed order, timed:

* ``live``: one stage object per symbol stays in memory (the pure cost of applying and encoding);
* ``state``: per batch ``restore(bytes) -> apply -> snapshot()``, as the Flink job does with its
  ValueState (plus the split of that time between restore, apply and snapshot);
* ``state + StageCache``: the same through :class:`~itchflow.pipeline.book_stage.StageCache`, which
  skips rebuilding a book from the bytes it has just produced.

It prints events/s (best of ``--repeat`` runs: the machine is shared) and the state size per book.

    .venv/bin/python scripts/bench_book_stage.py [--symbols 20] [--messages 300000] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow import synth  # noqa: E402
from itchflow.avro.raw import make_batch  # noqa: E402
from itchflow.normalize import NormalizedBatch, normalize_batch  # noqa: E402
from itchflow.pipeline.book_stage import BookStage, BookStageConfig, StageCache  # noqa: E402
from itchflow.replay import MicroBatcher  # noqa: E402

VENUE = "XNAS"
TRADING_DATE = date(2024, 1, 2)
SESSION = "bench"


def normalized_batches(payloads: Iterable[bytes], batch_size: int) -> list[NormalizedBatch]:
    """The feed's per-symbol batches, normalized, in the order the producer would send them."""
    batcher = MicroBatcher(batch_size=batch_size, linger_ms=float("inf"), clock=lambda: 0.0)
    closed = []
    for payload in payloads:
        closed.extend(batcher.add(payload))
    closed.extend(batcher.flush())
    batches = []
    for item in closed:
        if item.broadcast or not item.envelope_symbol:
            continue  # market-wide messages: the book job skips them
        raw = make_batch(
            item.payloads,
            venue=VENUE,
            trading_date=TRADING_DATE,
            session=SESSION,
            symbol=item.envelope_symbol,
            stock_locate=item.stock_locate,
            batch_sequence=item.batch_sequence,
            first_message_seq=item.first_message_seq,
            produced_at_ns=0,
        )
        batches.append(normalize_batch(raw).batch)
    return batches


def run_live(batches: list[NormalizedBatch], config: BookStageConfig) -> tuple[float, dict[str, BookStage]]:
    stages: dict[str, BookStage] = {}
    started = time.perf_counter()
    for batch in batches:
        stage = stages.get(batch.symbol)
        if stage is None:
            stage = stages[batch.symbol] = BookStage(venue=VENUE, symbol=batch.symbol, config=config)
        stage.apply(batch)
    return time.perf_counter() - started, stages


def run_with_state(
    batches: list[NormalizedBatch], config: BookStageConfig, cache: StageCache | None = None
) -> tuple[float, float, float, float]:
    """Seconds in total, in restore, in apply, in snapshot."""
    states: dict[str, bytes] = {}
    restore = apply = snapshot = 0.0
    load = BookStage.restore if cache is None else cache.restore
    save = BookStage.snapshot if cache is None else cache.snapshot
    for batch in batches:
        t0 = time.perf_counter()
        stage = load(states.get(batch.symbol), venue=VENUE, symbol=batch.symbol, config=config)
        t1 = time.perf_counter()
        stage.apply(batch)
        t2 = time.perf_counter()
        states[batch.symbol] = save(stage)
        t3 = time.perf_counter()
        restore, apply, snapshot = restore + t1 - t0, apply + t2 - t1, snapshot + t3 - t2
    return restore + apply + snapshot, restore, apply, snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = BookStageConfig()

    batches = normalized_batches(synth.generate(args.symbols, args.messages, args.seed), args.batch_size)
    events = sum(batch.event_count for batch in batches)
    sizes = [batch.event_count for batch in batches]
    print(
        f"feed: {args.messages:,} messages, {args.symbols} symbols -> {len(batches):,} batches, "
        f"{events:,} events (mean {statistics.mean(sizes):.0f} per batch)"
    )

    live = min(run_live(batches, config)[0] for _ in range(args.repeat))
    print(f"live stages:            {events / live:>12,.0f} events/s  ({live * 1e6 / events:.2f} us/event)")
    for label, cache in (("restore/apply/snapshot", False), ("  ... with StageCache", True)):
        runs = [run_with_state(batches, config, StageCache() if cache else None) for _ in range(args.repeat)]
        total, restore, apply, snapshot = min(runs)
        print(
            f"{label + ':':<24}{events / total:>12,.0f} events/s  ({total * 1e6 / events:.2f} us/event: "
            f"restore {restore / total:.0%}, apply {apply / total:.0%}, snapshot {snapshot / total:.0%})"
        )

    _, stages = run_live(batches, config)
    print("state per book (end of feed):")
    for stage in sorted(stages.values(), key=lambda s: -s.book.order_count)[:5]:
        size = len(stage.snapshot())
        print(
            f"  {stage.symbol}: {stage.book.order_count:>7,} orders  {size:>9,} bytes  ({size / max(stage.book.order_count, 1):.1f} B/order)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
