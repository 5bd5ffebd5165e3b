"""The analytics job (``jobs/analytics.py``) on its own, built with ``build(...)`` on a local
mini-cluster at parallelism 1 and 2, fed the book-events topic as the order-book job writes it --
made here from a synthetic feed by the normalize and book cores, with what a real topic holds besides:
a stretch of records written again (the order-book job after a restore), undecodable records, records
the source flagged as stamped in the future, and the end-of-replay markers. Its bars equal ``itchflow bars`` and its OFI ``ofi_of_file`` (no print or
quote counted twice); each undecodable or future record is one dead letter."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from connectors.kafka import END_OF_REPLAY, FUTURE, RECORD_HEADER
from itchflow import synth
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.config import BOOK_EVENTS_TOPIC
from itchflow.pipeline.book_events import encode_book_events
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record
from itchflow.pipeline.partition_books import BundleOutput, PartitionBooks
from jobs import analytics

from .conftest import (
    GARBAGE,
    Collector,
    Feed,
    bar_reference,
    collection_source,
    current_bars,
    decode_outputs,
    mini_cluster_env,
    ofi_reference,
    raw_feed,
)

pytestmark = pytest.mark.flink

REWRITTEN = 6
"""Records of each key written again after its middle one (as an order-book job restored from a
checkpoint taken that many records earlier writes them)."""


def book_events_feed(feed: Feed) -> tuple[Feed, int, set[tuple[int, int]]]:
    """``feed``'s raw records as the order-book job's book-events records, with the stretches written
    again, a garbage record and a record flagged as from the future per key, and the end-of-replay
    markers; and how many records were written again, and (partition, offset) of the future ones.
    The last quarter of each key's records come from another normalized partition, numbered from 0
    again (a shard moved by a topic that grew): new records, not ones written again."""
    states: dict[str, tuple | None] = defaultdict(lambda: None)
    books: dict[str, PartitionBooks] = defaultdict(lambda: PartitionBooks(BookStageConfig(depth_levels=10)))
    outputs: dict[str, list[tuple[int, int, BundleOutput]]] = defaultdict(
        list
    )  # (partition, event time, output)
    last: dict[str, BundleOutput] = {}
    for key, value in feed.records:
        partition, offset, _, event_time, _ = RECORD_HEADER.unpack_from(value)
        source = RecordSource("market-data-raw", partition, offset, 0, key.encode())
        outcome = normalize_record(value[RECORD_HEADER.size :], source, states[key], now_ns=1)
        states[key] = outcome.state
        if outcome.normalized is None:  # the raw garbage: the normalize job's dead letters
            continue
        output = books[key].apply(outcome.normalized)
        outputs[key].append((partition, event_time, output))
        last[key] = output
    per_key: dict[str, list[tuple[int, int, bytes]]] = {}  # (partition, event time, value)
    for key, applied in outputs.items():
        moved = len(applied) * 3 // 4
        per_key[key] = [
            (partition, event_time, encode_book_events(output, partition, index))
            if index < moved
            else (partition, event_time, encode_book_events(output, partition + 100, index - moved))
            for index, (partition, event_time, output) in enumerate(applied)
        ]
    events = Feed(feed.path, feed.venue)
    rewritten = 0
    future: set[tuple[int, int]] = set()
    offsets: dict[int, int] = defaultdict(int)  # per partition (several shard keys share one)

    def add(key: str, partition: int, event_time: int, flags: int, value: bytes) -> int:
        offset = offsets[partition]
        events.records.append((key, RECORD_HEADER.pack(partition, offset, 0, event_time, flags) + value))
        offsets[partition] += 1
        return offset

    for key, records in per_key.items():
        middle = len(records) // 2
        again = records[max(0, middle - REWRITTEN) : middle]
        rewritten += len(again)
        for index, (partition, event_time, value) in enumerate(
            [*records[:middle], *again, *records[middle:]]
        ):
            add(key, partition, event_time, 0, value)
            if index == 2:  # after the key's third record
                events.garbage.add((partition, add(key, partition, event_time, 0, GARBAGE)))
        # flagged by the source as stamped in the future: the key's last output again, as a normalized
        # record after all the others (applied, it would count that record's prints twice)
        again_later = encode_book_events(last[key], partition, len(records))
        future.add((partition, add(key, partition, event_time, FUTURE, again_later)))
        add(key, partition, event_time, END_OF_REPLAY, b"")
    return events, rewritten, future


@pytest.fixture(scope="module")
def feed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("analytics") / "synth.itch"
    synth.write(path, symbols=30, messages=40_000, seed=23)
    return path


@pytest.fixture(scope="module", params=[1, 2], ids=lambda p: f"p{p}")
def run(request: pytest.FixtureRequest, feed_file: Path):
    env = mini_cluster_env(request.param)  # first: the feed's keys are salted by the project's Java helper
    feed = raw_feed(feed_file, f"ANALYTICS-P{request.param}", partitions=4)
    events, rewritten, future = book_events_feed(feed)
    assert rewritten > 0 and events.garbage and future
    collector = Collector()
    sinks = {name: collector.sink(name) for name in ("clickhouse", "redis", "dead-letters")}
    analytics.build(env, {"book-events": collection_source([events])}, sinks, analytics.AnalyticsConfig())
    return events, future, decode_outputs(collector.run(env))


def test_bars_equal_the_offline_bars_with_no_record_counted_twice(run, feed_file: Path) -> None:
    events, _, outputs = run
    got = current_bars(outputs.rows.get("bars", []), events.venue)
    expected = {
        (bar["symbol"], seconds, bar["window_start_ns"]): (
            bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["vwap"], bar["trades"]
        )
        for name, seconds in (("1s", 1), ("1m", 60), ("5m", 300))
        for bar in bar_reference(feed_file, name)
    }  # fmt: skip
    assert expected
    assert {
        key: (row["open"], row["high"], row["low"], row["close"], row["volume"], row["vwap"], row["trades"])
        for key, row in got.items()
    } == expected


def test_ofi_equals_the_offline_function(run, feed_file: Path) -> None:
    events, _, outputs = run
    expected = ofi_reference(feed_file, events.venue)
    assert expected and outputs.ofi(events.venue) == expected


def test_each_undecodable_or_future_record_is_one_dead_letter(run) -> None:
    events, future, outputs = run
    letters = [decode_dead_letter(value) for _, value in outputs.other.get("dead-letters", [])]
    by_reason: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for letter in letters:
        assert (letter.source_topic, letter.job) == (BOOK_EVENTS_TOPIC, "itchflow-analytics")
        by_reason[letter.reason].append((letter.source_partition, letter.source_offset))
    assert {reason: sorted(places) for reason, places in by_reason.items()} == {
        "bad_magic": sorted(events.garbage),
        "future": sorted(future),
    }
