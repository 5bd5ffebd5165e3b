#!/usr/bin/env python
"""Latency of the local broker alone: a producer process and a consumer process, no Flink.

    itchflow stack up
    .venv/bin/python scripts/probe_broker.py [--rate 400] [--count 2000] [--size 3000]
    .venv/bin/python scripts/probe_broker.py --fetch-wait 100     # how the broker treats a waiting fetch

The first form produces ``--count`` records of ``--size`` bytes at ``--rate`` records/s over four
partitions (acks=all, idempotent, lz4: as the replay does) and prints produce -> consume latency
percentiles, measured in a separate consumer process (``fetch_max_wait_ms`` 1). The second sends 40
records at random 50-150 ms intervals to one partition and consumes with the given fetch wait: a
broker that answers a waiting fetch as soon as data arrives shows a few ms whatever the wait; one
that does not shows latencies growing with the wait.

    .venv/bin/python scripts/probe_broker.py --count 16000 --windows 8   # cost vs records held

``--windows K`` splits the first form's records into K groups in send order and prints each group's
latency with how many records each partition held by then: tansu's memory engine answers more slowly
the more records a partition holds (measured at 400 records/s of 3 kB: p50 4 ms up to 500 records per
partition, 12 ms at 4,000; broker CPU ~20% -> ~60% of a core).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow.bench.stats import describe_ms as percentiles  # noqa: E402
from itchflow.config import load_stack_config  # noqa: E402


def consume(bootstrap: str, topic: str, count: int, fetch_wait_ms: int, ready, results) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=fetch_wait_ms,
        auto_offset_reset="earliest",
        group_id=None,
    )
    latencies: list[tuple[int, float]] = []
    ready.set()
    while len(latencies) < count:
        for records in consumer.poll(timeout_ms=1000).values():
            now = time.time_ns()
            for record in records:
                sent_ns, index = struct.unpack("<qq", record.value[:16])
                latencies.append((index, (now - sent_ns) / 1e6))
    results.put(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--fetch-wait", type=int, help="the second form: consumer fetch wait in ms")
    parser.add_argument(
        "--windows", type=int, default=1, help="the first form: latency per K groups of records"
    )
    args = parser.parse_args()
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    config = load_stack_config()
    bootstrap = f"{config.host}:{config.kafka_port}"
    topic = f"probe-broker-{os.getpid()}"
    partitions = 1 if args.fetch_wait is not None else 4
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    count = 40 if args.fetch_wait is not None else args.count
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    reader = context.Process(
        target=consume, args=(bootstrap, topic, count, args.fetch_wait or 1, ready, results), daemon=True
    )
    reader.start()
    ready.wait(30)
    time.sleep(1.0)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, acks="all", enable_idempotence=True, compression_type="lz4"
    )
    try:
        if args.fetch_wait is not None:
            for _ in range(count):
                time.sleep(random.uniform(0.05, 0.15))
                producer.send(topic, value=struct.pack("<qq", time.time_ns(), 0))
        else:
            pad = os.urandom(args.size)
            started = time.monotonic()
            for index in range(count):
                delay = started + index / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                producer.send(
                    topic, value=struct.pack("<qq", time.time_ns(), index) + pad, partition=index % partitions
                )
        producer.flush()
        latencies = results.get(timeout=600)
    finally:
        producer.close()
        reader.join(timeout=10)
        admin.delete_topics([topic])
        admin.close()
    label = (
        f"fetch wait {args.fetch_wait} ms" if args.fetch_wait is not None else f"{args.rate:.0f} records/s"
    )
    print(f"produce -> consume, {label}: {percentiles([ms for _, ms in latencies])}")
    if args.fetch_wait is None and args.windows > 1:
        size = -(-count // args.windows)
        for start in range(0, count, size):
            group = [ms for index, ms in latencies if start <= index < start + size]
            held = -(-min(start + size, count) // partitions)
            print(
                f"  records {start:>7,}-{start + len(group) - 1:<7,} (<= {held:,} per partition): {percentiles(group)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
