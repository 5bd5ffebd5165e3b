#!/usr/bin/env python
"""Decode throughput: itchflow's pure-Python ITCH codec against the C++ parsers in the venv.

    .venv/bin/python scripts/bench_decode.py ../shared/data/itch/RITCH_ex20101224.TEST_ITCH_50.gz
    .venv/bin/python scripts/bench_decode.py FILE... --min-messages 1000000 --runs 7

Each FILE (any framing itchflow reads: standard, zero-prefix, gzip, pcap) is re-framed with standard
2-byte length prefixes and repeated until it holds ``--min-messages`` messages (end-of-messages
system events are kept only at the very end, since the C++ parsers stop there). Every contender then
decodes the same bytes; the script prints the median messages per CPU second (process time, so that
other load on a shared machine does not skew the comparison) over ``--runs`` runs and the ratio to
``itchflow decode_many``:

* ``itchflow decode_many``        -- bytes in memory -> list of frozen dataclass messages
* ``itchflow iter_message_batches`` -- the same from a file on disk (chunked reads, framing checks)
* ``itchflow iter_payloads``      -- framing only: raw payload bytes, no field decoding
* ``itchcpp parse_stream``        -- C++ parser (pybind11) -> one Python object per message
* ``itch_book Session.feed``      -- C++ decoder *and* order book, columnar output, no Python objects
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from itchflow.itch.codec import decode, decode_many
from itchflow.itch.framing import iter_message_batches, iter_payloads

END_OF_MESSAGES = b"SC"  # type byte + event code of the "end of messages" system event (bytes 0 and 11)


def load_standard_framing(path: Path, min_messages: int) -> tuple[bytes, int]:
    """``(buffer, message count)``: the file's messages, standard-framed, repeated to ``min_messages``."""
    body: list[bytes] = []
    tail: list[bytes] = []
    for _, payload in iter_payloads(path):
        framed = len(payload).to_bytes(2, "big") + payload
        is_end = payload[0:1] + payload[11:12] == END_OF_MESSAGES
        (tail if is_end else body).append(framed)
    if not body:
        raise SystemExit(f"{path}: no messages")
    copies = max(1, -(-min_messages // len(body)))
    return b"".join(body) * copies + b"".join(tail), len(body) * copies + len(tail)


def time_runs(run: Callable[[], int], runs: int, expected: int, name: str) -> float:
    """Median CPU seconds of ``runs`` calls of ``run``; each must report ``expected`` messages."""
    seconds = []
    for _ in range(runs):
        start = time.process_time()
        count = run()
        seconds.append(time.process_time() - start)
        if count != expected:
            raise SystemExit(f"{name}: decoded {count} messages, expected {expected}")
    return statistics.median(seconds)


def contenders(buffer: bytes, path_on_disk: Path) -> dict[str, Callable[[], int]]:
    runs: dict[str, Callable[[], int]] = {
        "itchflow decode_many": lambda: len(decode_many(buffer)),
        "itchflow iter_message_batches": lambda: sum(map(len, iter_message_batches(path_on_disk))),
        "itchflow iter_payloads": lambda: sum(1 for _ in iter_payloads(path_on_disk)),
    }
    try:
        import itchcpp

        parser = itchcpp.MessageParser()
        runs["itchcpp parse_stream"] = lambda: sum(1 for _ in parser.parse_stream(buffer))
    except ImportError:
        print("itchcpp not installed (pip install itchcpp); skipped", file=sys.stderr)
    try:
        import itch_book
        import numpy as np

        array = np.frombuffer(buffer, dtype=np.uint8)

        def book() -> int:
            session = itch_book.Session(tables=[], depth=0, symbols=[])
            session.feed(array)
            return int(session.stats()["messages"])

        runs["itch_book Session.feed (+book)"] = book
    except ImportError:
        print("itch-book not installed (pip install itch-book); skipped", file=sys.stderr)
    return runs


def bench_file(path: Path, min_messages: int, runs: int) -> None:
    buffer, count = load_standard_framing(path, min_messages)
    decode(buffer[2 : 2 + int.from_bytes(buffer[:2], "big")])  # warm the symbol cache like a real run
    print(
        f"\n{path.name}: {count:,} messages, {len(buffer) / 1e6:.1f} MB standard-framed, median of {runs} runs (CPU time)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as folder:
        on_disk = Path(folder) / "feed.itch"
        on_disk.write_bytes(buffer)
        results = {
            name: count / time_runs(run, runs, count, name)
            for name, run in contenders(buffer, on_disk).items()
        }
    baseline = results["itchflow decode_many"]
    width = max(map(len, results))
    print(f"  {'decoder':<{width}}  {'messages/s':>14}  {'vs decode_many':>14}")
    for name, rate in results.items():
        print(f"  {name:<{width}}  {rate:>14,.0f}  {rate / baseline:>13.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument(
        "--min-messages", type=int, default=500_000, help="repeat each file to at least this many"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per contender; the median is reported")
    args = parser.parse_args(argv)
    for path in args.files:
        bench_file(path, args.min_messages, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
