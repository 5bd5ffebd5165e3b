#!/usr/bin/env python
"""Where the produce -> Redis latency goes, hop by hop, on a running stack with both jobs.

    itchflow stack up && itchflow submit normalize && itchflow submit order_book
    .venv/bin/python scripts/probe_latency.py [--count 200] [--interval-ms 20]

Sends ``--count`` one-message raw batches (an add order each, for one probe symbol under a fresh
venue) ``--interval-ms`` apart with ``linger_ms=0`` on the producer, and stamps when each one shows
up: on the raw topic, on the normalized topic (direct consumers with ``fetch_max_wait_ms`` 1), and
in the probe symbol's Redis top-of-book stream. Prints p50/p90/max per hop in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow.avro.raw import decode_batch, encode_batch, make_batch  # noqa: E402
from itchflow.config import NORMALIZED_TOPIC, RAW_TOPIC, load_stack_config  # noqa: E402
from itchflow.normalize import decode_normalized_batch  # noqa: E402

TRADING_DATE = date(2019, 12, 30)


def add_order(ref: int, price: int, timestamp: int) -> bytes:
    """ITCH 'A' (36 bytes) for locate 7, side B."""
    return (
        b"A"
        + struct.pack(">HH", 7, 0)
        + timestamp.to_bytes(6, "big")
        + struct.pack(">QcI8sI", ref, b"B", 100, b"PROBE   ", price)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    import redis
    from kafka import KafkaConsumer, KafkaProducer

    config = load_stack_config()
    bootstrap = f"{config.host}:{config.kafka_port}"
    venue = f"P{int(time.time()) % 100000}"
    seen: dict[str, dict[int, int]] = {"raw": {}, "normalized": {}, "redis": {}}
    stop = threading.Event()
    ready = threading.Barrier(4)

    def decode_raw(value: bytes) -> int | None:
        batch = decode_batch(value)
        return batch.first_message_seq if batch.venue == venue else None

    def decode_normalized(value: bytes) -> int | None:
        batch = decode_normalized_batch(value)
        return batch.columns.views().seq[0] if batch.venue == venue and batch.event_count else None

    def consume(topic: str, name: str, decode) -> None:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            fetch_max_wait_ms=1,
            auto_offset_reset="latest",
            enable_auto_commit=False,
            group_id=None,
        )
        consumer.poll(timeout_ms=500)
        ready.wait()
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = time.time_ns()
                for record in records:
                    seq = decode(record.value)
                    if seq is not None:
                        seen[name][seq] = now

    def read_redis() -> None:
        client = redis.Redis(host=config.host, port=config.redis_port)
        key = f"itchflow:tob-stream:{venue}:PROBE"
        last = "0-0"
        ready.wait()
        while not stop.is_set():
            reply = client.xread({key: last}, block=50)
            now = time.time_ns()
            for _key, entries in reply or ():
                for entry_id, _fields in entries:
                    seen["redis"][int(entry_id.rpartition(b"-")[2])] = now
                last = entries[-1][0]

    threads = [
        threading.Thread(target=consume, args=(RAW_TOPIC, "raw", decode_raw), daemon=True),
        threading.Thread(
            target=consume, args=(NORMALIZED_TOPIC, "normalized", decode_normalized), daemon=True
        ),
        threading.Thread(target=read_redis, daemon=True),
    ]
    for thread in threads:
        thread.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    ready.wait()
    sent: dict[int, int] = {}
    session = f"probe-{venue}"
    for seq in range(args.count):
        payload = add_order(seq + 1, 1_000_000 + seq * 100, 34_200_000_000_000 + seq * 1000)
        batch = make_batch(
            [payload],
            venue=venue,
            trading_date=TRADING_DATE,
            session=session,
            symbol="PROBE",
            stock_locate=7,
            batch_sequence=seq + 1,
            first_message_seq=seq,
            produced_at_ns=time.time_ns(),
        )
        value = encode_batch(batch)
        sent[seq] = time.time_ns()
        producer.send(RAW_TOPIC, key=b"PROBE", value=value)
        time.sleep(args.interval_ms / 1000)
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    hops = seen
    print(f"{len(sent)} sent; seen: " + ", ".join(f"{k} {len(v)}" for k, v in seen.items()))
    for name, stamps in hops.items():
        values = sorted((stamps[s] - sent[s]) / 1e6 for s in stamps if s in sent)
        if values:
            print(
                f"  produce -> {name:<10} p50 {statistics.median(values):7.1f} ms  "
                f"p90 {values[int(len(values) * 0.9)]:7.1f}  max {values[-1]:7.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
