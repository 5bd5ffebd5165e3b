"""Micro-benchmark of the Avro topic encodings: messages/s for the raw and the normalized bundles.

    .venv/bin/python scripts/bench_avro.py [--batch-size 512] [--seconds 1.0] [--file PATH]

Builds bundles of one symbol's ``--batch-size`` messages from a real ITCH file (default: the BX sample in
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

from itchflow.avro.bundle import ItchBundle, SegmentInput, decode_raw, encode_bundle, make_bundle
from itchflow.avro.normalized import decode_normalized, encode_normalized_bundle
from itchflow.itch.codec import decode_many, encode
from itchflow.normalize import normalize_bundle

DEFAULT_FILE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "itch"
    / "RITCH_ex20101224.TEST_ITCH_50.gz"
)


def load_bundles(path: Path, batch_size: int, trading_date: date) -> list[ItchBundle]:
    """Bundles of one symbol's ``batch_size`` messages each (only full ones, so every bundle has the
    same size)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    messages = decode_many(data)
    symbols = {m.stock_locate: m.stock for m in messages if m.message_type == "R"}
    groups: dict[int, list[bytes]] = defaultdict(list)
    for message in messages:
        groups[message.stock_locate].append(encode(message))
    bundles = []
    for locate, payloads in groups.items():
        if locate not in symbols:
            continue
        for sequence, start in enumerate(range(0, len(payloads) - batch_size + 1, batch_size), start=1):
            segment = SegmentInput(
                symbols[locate], locate, sequence, start, payloads[start : start + batch_size]
            )
            bundles.append(
                make_bundle(
                    [segment],
                    venue="XBOS",
                    trading_date=trading_date,
                    session="bench",
                    partition=0,
                    partitions=1,
                    bundle_sequence=len(bundles) + 1,
                    produced_at_ns=time.time_ns(),
                )
            )
    if not bundles:
        raise SystemExit(f"{path}: no symbol has {batch_size} messages")
    return bundles


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
    print(f"  {label:44s} {per_second / 1e6:7.2f} M msgs/s   {elapsed / done * 1e6:8.1f} us/bundle")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args()
    size, seconds = args.batch_size, args.seconds

    raw = load_bundles(args.file, size, date(2019, 12, 30))
    raw_bytes = [encode_bundle(b) for b in raw]
    decoded = [decode_raw(data) for data in raw_bytes]
    normalized = [normalize_bundle(b, ts_recv=1).bundle for b in decoded]
    normalized_bytes = [encode_normalized_bundle(b) for b in normalized]

    print(f"{len(raw)} bundles of one symbol's {size} messages from {args.file.name}")
    print(
        f"  value size: raw {sum(map(len, raw_bytes)) / len(raw) / size:.1f} B/msg, "
        f"normalized {sum(map(len, normalized_bytes)) / len(raw) / size:.1f} B/msg"
    )
    print("market-data-raw (ItchBundle, payload bytes):")
    rate("encode_bundle", raw, encode_bundle, size, seconds)
    rate("decode_raw", raw_bytes, decode_raw, size, seconds)
    print("normalization:")
    rate("normalize_bundle", decoded, lambda b: normalize_bundle(b, ts_recv=1), size, seconds)
    print("market-data-normalized (NormalizedBundle, packed columns):")
    rate("encode_normalized_bundle", normalized, encode_normalized_bundle, size, seconds)
    rate("decode_normalized", normalized_bytes, decode_normalized, size, seconds)
    rate(
        "decode_normalized + views + sum(shares)",
        normalized_bytes,
        lambda data: sum(decode_normalized(data).columns.views().shares),
        size,
        seconds,
    )
    print("normalize job core (decode raw -> normalize -> encode normalized):")
    rate(
        "end to end",
        raw_bytes,
        lambda data: encode_normalized_bundle(normalize_bundle(decode_raw(data), ts_recv=1).bundle),
        size,
        seconds,
    )


if __name__ == "__main__":
    main()
