#!/usr/bin/env python
"""Per-hop latency of a paced bundle replay on a running stack with both jobs submitted.

    itchflow stack up && itchflow submit normalize && itchflow submit order_book
    .venv/bin/python scripts/probe_hops.py FEED [--rate 20000] [--messages 100000] [--linger-ms 10]

Replays the first ``--messages`` of FEED (any ITCH file, e.g. a cached bench feed) paced at
``--rate`` with ``itchflow replay``'s batcher under a fresh venue, and stamps per bundle: when it
shows up on ``market-data-raw`` (a direct consumer), when the normalizer received it (``ts_recv`` in
the normalized record), when its normalized record shows up on ``market-data-normalized``, and
when Redis has the top of book of the bundle's last segment (``HGET seq``, polled every ms).
Prints p50/p90/p99/max per hop in milliseconds, from the bundle's ``produced_at_ns``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow.avro.bundle import decode_raw  # noqa: E402
from itchflow.avro.normalized import decode_normalized  # noqa: E402
from itchflow.bench.replaying import limited, paced  # noqa: E402
from itchflow.bench.stats import describe_ms as percentiles  # noqa: E402
from itchflow.config import NORMALIZED_TOPIC, RAW_TOPIC, load_stack_config  # noqa: E402
from itchflow.replay import file_payloads, make_producer, replay  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feed", type=Path)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--linger-ms", type=float, default=10.0)
    args = parser.parse_args()
    import redis
    from kafka import KafkaConsumer

    config = load_stack_config()
    bootstrap = f"{config.host}:{config.kafka_port}"
    venue = f"H{int(time.time()) % 100000}"
    produced: dict[tuple[int, int], int] = {}  # (partition, bundle seq) -> produced_at_ns
    raw_seen: dict[tuple[int, int], int] = {}
    norm_seen: dict[
        tuple[str, int], tuple[int, int, int]
    ] = {}  # (symbol, last seq) -> (produced, recv, arrival)
    stop = threading.Event()
    ready = threading.Barrier(3)

    def consume(topic: str, note) -> None:
        """Read ``topic`` from its end until ``stop``; ``note(value, arrival_ns)`` per record."""
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=1, group_id=None)
        consumer.poll(timeout_ms=500)
        ready.wait()
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = time.time_ns()
                for record in records:
                    note(record.value, now)

    def note_raw(value: bytes, now: int) -> None:
        bundle = decode_raw(value)
        if bundle.venue == venue:
            produced[(bundle.partition, bundle.bundle_sequence)] = bundle.produced_at_ns
            raw_seen[(bundle.partition, bundle.bundle_sequence)] = now

    def note_normalized(value: bytes, now: int) -> None:
        bundle = decode_normalized(value)
        if bundle.venue != venue or not bundle.runs:
            return
        last = ([r for r in bundle.runs if r.symbol][-1:] or bundle.runs[-1:])[0]
        seq = bundle.columns.views().seq[last.start + last.count - 1]
        norm_seen[(last.symbol, seq)] = (bundle.ts_produced, bundle.ts_recv, now)

    threads = [
        threading.Thread(target=consume, args=(topic, note), daemon=True)
        for topic, note in ((RAW_TOPIC, note_raw), (NORMALIZED_TOPIC, note_normalized))
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    producer = make_producer(bootstrap)
    summary = replay(
        paced(limited(file_payloads(args.feed), args.messages), args.rate),
        producer,
        topic=RAW_TOPIC,
        venue=venue,
        trading_date=date(2019, 12, 30),
        session=f"probe-{venue}",
        linger_ms=args.linger_ms,
    )
    print(f"replayed {summary.messages:,} messages in {summary.records:,} records ({summary.seconds:.1f} s)")
    # Redis: when does each normalized record's last symbol show its seq?
    client = redis.Redis(host=config.host, port=config.redis_port)
    deadline = time.monotonic() + 30
    pending = dict(norm_seen)
    redis_seen: dict[tuple[str, int], int] = {}
    time.sleep(0.5)
    while time.monotonic() < deadline and len(redis_seen) < len(norm_seen):
        pending = {k: v for k, v in norm_seen.items() if k not in redis_seen}
        for (symbol, seq), _ in pending.items():
            value = client.hget(f"itchflow:tob:{venue}:{symbol}", "seq")
            if value is not None and int(value) >= seq:
                redis_seen[(symbol, seq)] = time.time_ns()
        time.sleep(0.01)
    stop.set()
    raw = [(raw_seen[k] - produced[k]) / 1e6 for k in raw_seen if k in produced]
    recv = [(v[1] - v[0]) / 1e6 for v in norm_seen.values()]
    normalized = [(v[2] - v[0]) / 1e6 for v in norm_seen.values()]
    print(f"  produced -> raw topic         {percentiles(raw)}")
    print(f"  produced -> normalizer recv   {percentiles(recv)}")
    print(f"  produced -> normalized topic  {percentiles(normalized)}")
    print(f"  (Redis is polled after the replay: {len(redis_seen)}/{len(norm_seen)} reached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
