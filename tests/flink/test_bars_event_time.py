"""The market-data job's bars in event time on a local mini-cluster, with the watermark following
each record (``PerRecordWatermarks``) so that lateness is decided by the data alone.

One synthetic feed over two partitions, all of partition 0's records first and a heartbeat at the
feed's last event time, then partition 1's: partition 1's prints arrive as much as a trading day
behind the watermark.

* out-of-orderness of a day: nothing is late; every bar equals ``itchflow bars``;
* no out-of-orderness, no allowed lateness: partition 1's prints are late -- each one is exactly one
  dead letter with reason ``late`` (none silently dropped) and its symbols have no bars, while
  partition 0's bars equal the reference;
* no out-of-orderness, a day of allowed lateness: the late prints revise bars already emitted
  (revisions > 0), and the last revisions equal the reference.

And the same feed in feed order with breaks added hours after their prints (no allowed lateness):
each break revises every bar of its print, long after the bars closed, and the last revisions equal
the reference; no break is late; the sliding VWAP and moving averages equal the reference computed
from the bars (with the rolling analytics on, also in the first two runs with timely data).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from connectors.kafka import HEARTBEAT, KEYED_RECORD, RECORD_HEADER, event_time_watermarks
from itchflow import synth
from itchflow.analytics.bar_stage import BarConfig
from itchflow.analytics.book_tape import liquidity_of_file, ofi_of_file
from itchflow.analytics.bursts import DEFAULT_BURST_ALERT_PRINTS_PER_S, BurstConfig
from itchflow.analytics.rolling import RollingConfig
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.itch.framing import iter_messages, write_messages
from itchflow.itch.messages import BrokenTrade
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.replay import partition_for
from jobs import market_data
from tests.unit.bars_reference import read_prints
from tests.unit.bursts_reference import RefPrint, reference_bursts
from tests.unit.rolling_reference import assert_rolling_values

from .conftest import (
    TRADING_DATE,
    Collector,
    Feed,
    bar_reference,
    current_bars,
    decode_outputs,
    mini_cluster_env,
    raw_feed,
)

pytestmark = pytest.mark.flink

DAY_MS = 86_400_000
INTERVALS = {"1s": 1, "1m": 60, "5m": 300}
ROLLING = RollingConfig(vwap_window_s=300, ma_bars=3)
LATE = re.compile(r"^print of (?P<venue>[^:]+):(?P<symbol>\S+) match (?P<match>\d+) at")


@pytest.fixture(scope="module")
def feed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "synth.itch"
    synth.write(path, symbols=24, messages=20_000, seed=5)
    return path


@pytest.fixture(scope="module")
def reference(feed_file: Path) -> dict[tuple, dict]:
    return {
        (bar["symbol"], seconds, bar["window_start_ns"]): bar
        for name, seconds in INTERVALS.items()
        for bar in bar_reference(feed_file, name)
    }


def run(
    feed_file: Path,
    venue: str,
    parallelism: int,
    out_of_orderness_ms: int,
    lateness_ms: int,
    partition_by_partition: bool = True,
    rolling: RollingConfig | None = None,
) -> tuple[Feed, list[dict], list, dict[str, list[dict]]]:
    env = mini_cluster_env(parallelism)  # first: the feed's keys are salted by the project's Java helper
    feed = raw_feed(feed_file, venue, partitions=2)
    collector = Collector()
    records = feed.records
    if partition_by_partition:
        records = sorted(records, key=lambda record: record_partition(record[1]))  # stable: order kept
        # then, before partition 1, a heartbeat of partition 0 at the feed's last event time (the
        # records carry their earliest message's): partition 1's prints all come behind the watermark
        first = next(index for index, record in enumerate(records) if record_partition(record[1]) == 1)
        key = records[first - 1][0]
        end = midnight_epoch_ns(TRADING_DATE) + max(m.timestamp for _, m in iter_messages(feed_file))
        beat = (key, RECORD_HEADER.pack(0, 0, 0, end, HEARTBEAT))
        records = [*records[:first], beat, *records[first:]]

    def source(env):
        stream = env.from_collection([tuple_row(r) for r in records], type_info=KEYED_RECORD)
        return stream.assign_timestamps_and_watermarks(
            event_time_watermarks(out_of_orderness_ms, 0, per_record=True)
        )

    sinks = {name: collector.sink(name) for name in ("normalized", "dead-letters", "clickhouse", "redis")}
    bursts = BurstConfig(alert_prints_per_s=DEFAULT_BURST_ALERT_PRINTS_PER_S)
    config = market_data.MarketDataConfig(
        bars=BarConfig(allowed_lateness_ms=lateness_ms, rolling=rolling, bursts=bursts)
    )
    market_data.build(env, {"raw": source}, sinks, config)
    outputs = decode_outputs(collector.run(env))
    letters = [decode_dead_letter(value) for _, value in outputs.other.get("dead-letters", [])]
    return feed, outputs.rows.get("bars", []), letters, outputs.rows


@pytest.fixture(scope="module")
def late_breaks(
    feed_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[str, int]]]:
    """The feed with breaks of the first two eligible prints of every symbol (around 09:30) added just
    before its footer (around 16:00): the file, and the (symbol, match number) of each break."""
    messages = [message for _, message in iter_messages(feed_file)]
    assert [(m.message_type, m.event_code) for m in messages[-3:]] == [("S", "M"), ("S", "E"), ("S", "C")]
    already = {m.match_number for m in messages if m.message_type == "B"}
    symbols = {m.stock_locate: m.stock.rstrip() for m in messages if m.message_type == "R"}
    picked: dict[int, list] = {}
    for m in messages:
        printed = m.message_type in "EP" or (m.message_type == "C" and m.printable == "Y")
        if printed and m.match_number not in already and len(picked.setdefault(m.stock_locate, [])) < 2:
            picked[m.stock_locate].append(m)
    footer = len(messages) - 3
    at = messages[footer - 1].timestamp
    breaks = [
        BrokenTrade(m.stock_locate, 0, at + number, m.match_number)
        for number, m in enumerate(m for prints in picked.values() for m in prints)
    ]
    path = tmp_path_factory.mktemp("late-breaks") / "synth-late-breaks.itch"
    write_messages(path, [*messages[:footer], *breaks, *messages[footer:]])
    return path, [(symbols[b.stock_locate], b.match_number) for b in breaks]


def assert_rolling_values_equal_the_reference(tables: dict[str, list[dict]], venue: str) -> None:
    """The job's sliding VWAP and moving averages (latest revision per key, deleted ones dropped) equal
    the reference computed from its bars (which equal ``itchflow bars``)."""
    bars = current_bars(tables["bars"], venue)
    day = (TRADING_DATE - date(1970, 1, 1)).days
    slide_bars = {
        (day, symbol, start): (bar["volume"], bar["notional"], bar["trades"])
        for (symbol, size, start), bar in bars.items()
        if size == ROLLING.vwap_slide_s
    }
    closes = {
        (day, symbol, start): bar["close"]
        for (symbol, size, start), bar in bars.items()
        if size == ROLLING.ma_interval_s
    }
    vwaps = {
        (venue, row["trading_date"], key[0], key[1]): (
            row["volume"],
            row["notional"],
            row["trades"],
            row["vwap"],
        )
        for key, row in latest_rows(tables["vwap"], venue, ("symbol", "window_end")).items()
    }
    averages = {
        (venue, row["trading_date"], key[0], key[1]): (row["sma"], row["ema"])
        for key, row in latest_rows(tables["moving_averages"], venue, ("symbol", "window_start")).items()
    }
    assert vwaps and averages, "the feed is long enough for both"
    assert_rolling_values(venue, vwaps, averages, slide_bars, closes, ROLLING)


def latest_rows(rows: list[dict], venue: str, key_columns: tuple[str, ...]) -> dict[tuple, dict]:
    latest: dict[tuple, dict] = {}
    for row in rows:
        if row["venue"] == venue:
            key = tuple(row[column] for column in key_columns)
            if key not in latest or latest[key]["revision"] < row["revision"]:
                latest[key] = row
    return {key: row for key, row in latest.items() if not row["is_deleted"]}


def record_partition(value: bytes) -> int:
    return int.from_bytes(value[:4], "big", signed=True)


def tuple_row(record: tuple[str, bytes]):
    from pyflink.common import Row

    return Row(*record)


def comparable(bars: dict[tuple, dict]) -> dict[tuple, tuple]:
    return {
        key: (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["vwap"], bar["trades"])
        for key, bar in bars.items()
    }


def late_symbols(path: Path) -> set[str]:
    symbols = {m.stock.rstrip() for _, m in iter_messages(path) if m.message_type == "R"}
    return {symbol for symbol in symbols if partition_for(symbol, 2) == 1}


@pytest.mark.parametrize("parallelism", [1, 2])
def test_late_prints_are_dead_lettered_one_each_and_the_rest_is_exact(
    feed_file, reference, parallelism
) -> None:
    feed, rows, letters, _ = run(
        feed_file, f"LATE-P{parallelism}", parallelism, out_of_orderness_ms=0, lateness_ms=0
    )
    lagging = late_symbols(feed_file)
    assert lagging and len(lagging) < 24, "the feed must have symbols in both partitions"
    # every eligible print of a lagging symbol (broken ones too: they were late before their break)
    every_print = read_prints(
        (m for _, m in iter_messages(feed_file) if m.message_type != "B"), str(TRADING_DATE)
    )
    expected = sorted((p.symbol, p.match_number) for p in every_print.prints if p.symbol in lagging)
    late = [LATE.match(letter.detail) for letter in letters if letter.reason == "late"]
    assert all(late), "a late dead letter names its print"
    got = sorted((m["symbol"], int(m["match"])) for m in late if m)
    assert got == expected
    bars = current_bars(rows, feed.venue)
    assert not {key[0] for key in bars} & lagging, "a late print made a bar"
    on_time = {key: bar for key, bar in reference.items() if key[0] not in lagging}
    assert comparable(bars) == comparable(on_time)


def test_out_of_order_within_the_bound_is_not_late(feed_file, reference) -> None:
    feed, rows, letters, tables = run(
        feed_file, "BOUND-P2", 2, out_of_orderness_ms=DAY_MS, lateness_ms=0, rolling=ROLLING
    )
    assert [letter for letter in letters if letter.reason == "late"] == []
    assert comparable(current_bars(rows, feed.venue)) == comparable(reference)
    assert max(row["revision"] for row in rows) == 0  # every window fired once, complete
    assert_rolling_values_equal_the_reference(tables, feed.venue)
    # bursts: the runs of the prints that stand, as the reference cuts them
    prints = read_prints((m for _, m in iter_messages(feed_file)), str(TRADING_DATE)).prints
    day = (TRADING_DATE - date(1970, 1, 1)).days
    expected_bursts = reference_bursts(
        (RefPrint(feed.venue, day, p.symbol, p.time_ns, p.position, p.price, p.shares) for p in prints),
        gap_ns=500_000_000, alert_prints_per_s=DEFAULT_BURST_ALERT_PRINTS_PER_S,
    )  # fmt: skip
    bursts = {
        (feed.venue, row["trading_date"], key[0], key[1]): (
            row["end"], row["prints"], row["shares"], row["notional"], row["vwap"], bool(row["flagged"])
        )
        for key, row in latest_rows(tables["bursts"], feed.venue, ("symbol", "start")).items()
    }  # fmt: skip
    assert expected_bursts and bursts == {key: tuple(burst) for key, burst in expected_bursts.items()}
    # order-flow imbalance and the quoted spread from the books' rows equal the offline functions
    ofi = sorted(
        (row["symbol"], row["interval_s"], row["window_start"], row["ofi"], row["bid_flow"], row["ask_flow"],
         row["updates"])
        for row in tables["ofi"]
    )  # fmt: skip
    expected_ofi = ofi_of_file(feed_file, TRADING_DATE, feed.venue)
    assert ofi == sorted(
        (r.symbol, r.interval_s, r.window_start_ns, r.ofi, r.bid_flow, r.ask_flow, r.updates)
        for r in expected_ofi
    )
    spreads = sorted(
        (row["symbol"], row["window_start"], row["spread"], row["two_sided_ns"], row["updates"])
        for row in tables["liquidity"]
        if row["updates"]
    )
    expected_liquidity = liquidity_of_file(feed_file, TRADING_DATE, feed.venue)
    assert spreads == sorted(
        (r.symbol, r.window_start_ns, r.spread, r.two_sided_ns, r.updates)
        for r in expected_liquidity
        if r.updates
    )


def test_allowed_lateness_revises_bars_with_late_prints(feed_file, reference) -> None:
    feed, rows, letters, tables = run(
        feed_file, "REVISE-P2", 2, out_of_orderness_ms=0, lateness_ms=DAY_MS, rolling=ROLLING
    )
    assert [letter for letter in letters if letter.reason == "late"] == []
    assert max(row["revision"] for row in rows) > 0, "late prints revised bars already emitted"
    assert comparable(current_bars(rows, feed.venue)) == comparable(reference)
    assert_rolling_values_equal_the_reference(tables, feed.venue)
    assert max(row["revision"] for row in tables["vwap"]) > 0, "revised bars revised the sliding VWAP"


@pytest.mark.parametrize("parallelism", [1, 2])
def test_breaks_hours_after_their_bars_closed_revise_them(late_breaks, parallelism) -> None:
    path, breaks = late_breaks
    reference = {
        (bar["symbol"], seconds, bar["window_start_ns"]): bar
        for name, seconds in INTERVALS.items()
        for bar in bar_reference(path, name)
    }
    # an hour of out-of-orderness: the partitions' bundles interleave, no print is late; each bar of a
    # broken print closed hours before its break came, and no lateness keeps it
    feed, rows, letters, tables = run(
        path, f"BREAKS-P{parallelism}", parallelism, out_of_orderness_ms=3_600_000, lateness_ms=0,
        partition_by_partition=False, rolling=ROLLING,
    )  # fmt: skip
    assert [letter.detail for letter in letters if letter.reason == "late"] == []
    assert comparable(current_bars(rows, feed.venue)) == comparable(reference)
    assert len(breaks) == 48, "two breaks per symbol"
    # every bar of a broken print was emitted again after it closed: the break revised it
    revisions: dict[tuple, int] = {}
    for row in rows:
        if row["venue"] == feed.venue:
            key = (row["symbol"], row["interval_s"], row["window_start"])
            revisions[key] = max(revisions.get(key, 0), row["revision"])
    midnight_ns = midnight_epoch_ns(TRADING_DATE)
    symbols = {m.stock_locate: m.stock.rstrip() for _, m in iter_messages(path) if m.message_type == "R"}
    printed = {
        (symbols[m.stock_locate], m.match_number): midnight_ns + m.timestamp
        for _, m in iter_messages(path)
        if m.message_type in "ECP"
    }
    for symbol, match in breaks:
        ts_event = printed[(symbol, match)]
        for seconds in INTERVALS.values():
            start = ts_event - ts_event % (seconds * 1_000_000_000)
            assert revisions.get((symbol, seconds, start), 0) > 0, (symbol, match, seconds)
    # and the sliding VWAP and averages they were in: rebuilt from the day's prints
    assert_rolling_values_equal_the_reference(tables, feed.venue)
    assert any(row["revision"] >= 1 << 20 for row in tables["vwap"]), "breaks rebuilt windows long final"
