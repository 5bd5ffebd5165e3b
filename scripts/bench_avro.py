"""Micro-benchmark of the Avro topic encodings: messages/s for the raw envelope and the normalized batch.

    .venv/bin/python scripts/bench_avro.py [--batch-size 512] [--seconds 1.0] [--file PATH]

Builds per-symbol batches of ``--batch-size`` messages from a real ITCH file (default: the BX sample in
``../shared/data/itch``), then times each step single-threaded in this process and prints messages/s.
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path

from itchflow.avro import ItchBatch, decode_batch, encode_batch, make_batch
from itchflow.avro.normalized import decode_normalized_batch, encode_normalized_batch
from itchflow.itch.codec import decode_many, encode
from itchflow.normalize import normalize_batch

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "itch"
    / "RITCH_ex20101224.TEST_ITCH_50.gz"
)


def load_batches(path: Path, batch_size: int, trading_date: date, typed: bool = False) -> list[ItchBatch]:
    """Per-symbol batches of ``batch_size`` messages (only full batches, so every batch has the same size)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    messages = decode_many(data)
    symbols = {m.stock_locate: m.stock for m in messages if m.message_type == "R"}
    groups: dict[int, list[bytes]] = defaultdict(list)
    for message in messages:
        groups[message.stock_locate].append(encode(message))
    batches = []
    for locate, payloads in groups.items():
        if locate not in symbols:
            continue
        for sequence, start in enumerate(range(0, len(payloads) - batch_size + 1, batch_size), start=1):
            batches.append(
                make_batch(
                    payloads[start : start + batch_size],
                    venue="XBOS",
                    trading_date=trading_date,
                    session="bench",
                    symbol=symbols[locate],
                    stock_locate=locate,
                    batch_sequence=sequence,
                    first_message_seq=start,
                    produced_at_ns=time.time_ns(),
                    typed=typed,
                )
            )
    if not batches:
        raise SystemExit(f"{path}: no symbol has {batch_size} messages")
    return batches


def rate(
    label: str, items: list, step: Callable[[object], object], messages_per_item: int, seconds: float
) -> float:
    """Run ``step`` over ``items`` round-robin for about ``seconds``; print and return messages/s."""
    for item in items[:3]:
        step(item)  # warm caches (parsed schemas, struct objects)
    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for item in items:
            step(item)
        done += len(items)
        elapsed = time.perf_counter() - start
    per_second = done * messages_per_item / elapsed
    print(f"  {label:44s} {per_second / 1e6:7.2f} M msgs/s   {elapsed / done * 1e6:8.1f} us/batch")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args()
    size, seconds = args.batch_size, args.seconds

    raw = load_batches(args.file, size, date(2019, 12, 30))
    raw_bytes = [encode_batch(b) for b in raw]
    decoded = [decode_batch(data) for data in raw_bytes]
    normalized = [normalize_batch(b, ts_recv=1).batch for b in decoded]
    normalized_bytes = [encode_normalized_batch(b) for b in normalized]
    typed = load_batches(args.file, size, date(2019, 12, 30), typed=True)
    typed_bytes = [encode_batch(b) for b in typed]

    print(f"{len(raw)} batches of {size} messages from {args.file.name}")
    print(
        f"  value size: raw envelope {sum(map(len, raw_bytes)) / len(raw) / size:.1f} B/msg, "
        f"typed envelope {sum(map(len, typed_bytes)) / len(raw) / size:.1f} B/msg, "
        f"normalized {sum(map(len, normalized_bytes)) / len(raw) / size:.1f} B/msg"
    )
    print("market-data-raw (ItchBatch, payload bytes):")
    rate("encode_batch", raw, encode_batch, size, seconds)
    rate("decode_batch", raw_bytes, decode_batch, size, seconds)
    print("market-data-raw, typed mirror (one Avro record per message), for comparison:")
    rate("encode_batch(typed)", typed, encode_batch, size, seconds)
    rate("decode_batch(typed)", typed_bytes, decode_batch, size, seconds)
    print("normalization:")
    rate("normalize_batch", decoded, lambda b: normalize_batch(b, ts_recv=1), size, seconds)
    print("market-data-normalized (NormalizedBatch, packed columns):")
    rate("encode_normalized_batch", normalized, encode_normalized_batch, size, seconds)
    rate("decode_normalized_batch", normalized_bytes, decode_normalized_batch, size, seconds)
    rate(
        "decode_normalized_batch + views + sum(shares)",
        normalized_bytes,
        lambda data: sum(decode_normalized_batch(data).columns.views().shares),
        size,
        seconds,
    )
    print("normalize job core (decode raw -> normalize -> encode normalized):")
    rate(
        "end to end",
        raw_bytes,
        lambda data: encode_normalized_batch(normalize_batch(decode_batch(data), ts_recv=1).batch),
        size,
        seconds,
    )


if __name__ == "__main__":
    main()
