"""The normalize, order-book and market-data jobs, built with their ``build(...)`` functions, on a
local mini-cluster at parallelism 1 and 2: the books they write to ClickHouse and Redis equal the
offline reference (``itchflow book --json``) for the real samples and a synthetic feed; every
undecodable record becomes exactly one dead letter and changes no book.

The two pipelines: ``split`` (the normalize job's output topic bridged in memory into the order-book
job, and its book events into the analytics job, as Kafka joins them in production) and
``market-data`` (all three in one operator). Both write the bars of ``itchflow bars`` and the OFI of
``ofi_of_file``. Each run feeds
every feed at once, each under its own venue, so the keys of different feeds never meet.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyflink.datastream import StreamExecutionEnvironment

from itchflow import synth
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.pipeline.book_stage import BookStageConfig
from jobs import analytics, market_data, normalize, order_book
from tests.samples import sample

from .conftest import (
    Collector,
    Feed,
    Outputs,
    bar_reference,
    collection_source,
    current_bars,
    decode_outputs,
    mini_cluster_env,
    ofi_reference,
    raw_feed,
    reference,
)

pytestmark = pytest.mark.flink

SAMPLES = {
    "RITCH": "RITCH_ex20101224.TEST_ITCH_50.gz",
    "OMI": "omi_Nasdaq_itch50_sample.bin",
    "MEAT": "meatpy_sample.itch50",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    synthetic = tmp_path_factory.mktemp("feeds") / "synth.itch"
    synth.write(synthetic, symbols=40, messages=30_000, seed=17)
    return {**{venue: sample(name) for venue, name in SAMPLES.items()}, "SYNTH": synthetic}


INTERVALS = {"1s": 1, "1m": 60, "5m": 300}


@pytest.fixture(scope="module")
def bar_references(files: dict[str, Path]) -> dict[str, dict[int, list[dict]]]:
    return {
        venue: {seconds: bar_reference(path, name) for name, seconds in INTERVALS.items()}
        for venue, path in files.items()
    }


@pytest.fixture(scope="module")
def references(files: dict[str, Path]) -> dict[str, dict[str, dict]]:
    return {venue: reference(path) for venue, path in files.items()}


def run_split(env: StreamExecutionEnvironment, feeds: list[Feed]) -> Outputs:
    collector = Collector()
    to_books, from_normalize = collector.bridge("normalized")
    to_analytics, from_books = collector.bridge("book-events")
    normalize.build(
        env,
        {"raw": collection_source(feeds)},
        {"normalized": to_books, "dead-letters": collector.sink("dead-letters")},
        normalize.NormalizeConfig(),
    )
    order_book.build(
        env,
        {"normalized": from_normalize},
        {
            "clickhouse": collector.sink("clickhouse"),
            "redis": collector.sink("redis"),
            "book-events": to_analytics,
        },
        BookStageConfig(depth_levels=10),
    )
    analytics.build(
        env,
        {"book-events": from_books},
        {
            "clickhouse": collector.sink("clickhouse"),
            "redis": collector.sink("redis"),
            "dead-letters": collector.sink("dead-letters"),
        },
        analytics.AnalyticsConfig(),
    )
    return decode_outputs(collector.run(env))


def run_market_data(env: StreamExecutionEnvironment, feeds: list[Feed]) -> Outputs:
    collector = Collector()
    sinks = {name: collector.sink(name) for name in ("normalized", "dead-letters", "clickhouse", "redis")}
    market_data.build(env, {"raw": collection_source(feeds)}, sinks, market_data.MarketDataConfig())
    return decode_outputs(collector.run(env))


PIPELINES = {"split": run_split, "market-data": run_market_data}


@pytest.fixture(
    scope="module",
    params=[("split", 1), ("market-data", 1), ("split", 2), ("market-data", 2)],
    ids=lambda param: f"{param[0]}-p{param[1]}",
)
def run(request: pytest.FixtureRequest, files: dict[str, Path]) -> tuple[list[Feed], Outputs]:
    pipeline, parallelism = request.param
    env = mini_cluster_env(parallelism)  # first: the feeds' keys are salted by the project's Java helper
    feeds = [raw_feed(path, f"{venue}-{pipeline}-P{parallelism}") for venue, path in files.items()]
    return feeds, PIPELINES[pipeline](env, feeds)


def test_books_equal_the_offline_reference(run, references) -> None:
    feeds, outputs = run
    mismatches = []
    for feed in feeds:
        expected = references[feed.venue.split("-")[0]]
        assert expected, f"{feed.path.name}: the reference has no symbols"
        books = outputs.final_books(feed.venue)
        for symbol, book in expected.items():
            got = books.get(symbol, {})
            for sink in ("ch", "redis"):
                if (got.get(f"{sink}_bids", []), got.get(f"{sink}_asks", [])) != (book["bids"], book["asks"]):
                    mismatches.append(
                        f"{feed.venue} {symbol} {sink}: {got.get(f'{sink}_bids')} != {book['bids']}"
                    )
            status = got.get("status", {"unknown_refs": 0, "orders": 0})
            if (status["unknown_refs"], status["orders"]) != (book["unknown_refs"], book["orders"]):
                mismatches.append(f"{feed.venue} {symbol} status {status} != {book}")
        # '@<locate>': messages whose locate the feed's directory never named (the reference skips them)
        named = {symbol for symbol in books if not symbol.startswith("@")}
        assert named <= set(expected), f"{feed.venue}: books of symbols the reference lacks"
    assert not mismatches, "\n".join(mismatches[:20])


def test_every_printable_trade_is_one_trades_row(run, references) -> None:
    feeds, outputs = run
    for feed in feeds:
        expected = references[feed.venue.split("-")[0]]
        rows = [
            row
            for row in outputs.rows.get("trades", [])
            if row["venue"] == feed.venue and row["symbol"] in expected
        ]
        keys = {(row["symbol"], row["seq"]) for row in rows}
        assert len(keys) == len(rows), f"{feed.venue}: a trade row was written twice"
        printed = sum(1 for row in rows if row["printable"] == 1)
        assert printed == sum(book["trade_count"] for book in expected.values()), feed.venue


def test_each_undecodable_record_is_one_dead_letter(run) -> None:
    feeds, outputs = run
    letters = [decode_dead_letter(value) for _, value in outputs.other.get("dead-letters", [])]
    for feed in feeds:
        assert feed.garbage, f"{feed.venue}: the feed must carry garbage to test this"
        garbage = [
            (letter.source_partition, letter.source_offset)
            for letter in letters
            if letter.reason == "bad_magic"
            and (letter.source_partition, letter.source_offset) in feed.garbage
        ]
        assert sorted(garbage) == sorted(feed.garbage), feed.venue
    assert sum(letter.reason == "bad_magic" for letter in letters) == sum(len(feed.garbage) for feed in feeds)


def test_bars_equal_the_offline_bars(run, bar_references) -> None:
    """The bars (last revision per window, end of input closing every window) of the market-data job,
    and of the analytics job from the order-book job's events, equal ``itchflow bars`` for every feed
    and size."""
    feeds, outputs = run
    rows = outputs.rows.get("bars", [])
    for feed in feeds:
        got = current_bars(rows, feed.venue)
        expected = {
            (bar["symbol"], seconds, bar["window_start_ns"]): bar
            for seconds, bars in bar_references[feed.venue.split("-")[0]].items()
            for bar in bars
        }
        assert set(got) == set(expected), f"{feed.venue}: bars on one side only"
        for key, bar in expected.items():
            row = got[key]
            assert (row["open"], row["high"], row["low"], row["close"], row["volume"], row["trades"]) == (
                bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["trades"]
            ), (feed.venue, key)  # fmt: skip
            assert row["vwap"] == bar["vwap"], (feed.venue, key)


def test_ofi_equals_the_offline_function(run) -> None:
    """Every OFI window (1 s and 1 m) of every feed equals ``ofi_of_file``: the top-of-book changes
    reach the OFI whole, in the one-job pipeline and through the book-events topic."""
    feeds, outputs = run
    for feed in feeds:
        expected = ofi_reference(feed.path, feed.venue)
        assert expected, f"{feed.venue}: the feed has no top-of-book changes to test with"
        assert outputs.ofi(feed.venue) == expected, feed.venue
