"""The order-book pipeline end to end on the local stack, checked against `itchflow book --json`.

replay -> market-data-raw -> normalize job -> market-data-normalized -> order-book job ->
ClickHouse + Redis, book-events -> analytics job -> ClickHouse + Redis, and the same with the
market-data job (normalization, books and analytics in one operator):
every test runs on both pipelines, one after the other (the first one's jobs are cancelled before
the second starts). Every test replays under its own venue tag (suffixed by the pipeline), so the
books (keyed by venue and symbol) of different tests never mix on the shared stack. The upgrade and
failure tests come last: they stop or kill parts of the running pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.parse
from datetime import date
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from itchflow import synth
from itchflow.analytics.book_tape import liquidity_of_file, ofi_of_file
from itchflow.analytics.rolling import RollingConfig
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.bench.probes import job_counters
from itchflow.config import DEAD_LETTER_TOPIC, RAW_TOPIC, StackConfig, TopicSpec
from itchflow.demo import (
    MARKET_DATA_JOBS,
    PIPELINE_JOBS,
    applied_sequences,
    clickhouse_client,
    ensure_jobs,
    redis_sequences,
    wait_until_applied,
)
from itchflow.errors import UserError
from itchflow.flinkctl import (
    cancel,
    job_parallelism,
    list_jobs,
    rest_get,
    stop_with_savepoint,
    wait_until_tasks_running,
)
from itchflow.itch.framing import iter_messages
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.pipeline.latency import BAR_PUBLISH_DELAY, BOUNDS_MS, bucket_names
from itchflow.replay import ReplaySummary, make_producer, run_replay_feeds, run_replay_file
from itchflow.shards import SHARDS, shard_for
from itchflow.stack import procs
from itchflow.stack.manager import Stack
from itchflow.stack.topics import ensure_topics
from tests.unit.rolling_reference import assert_rolling_values, rolling_reference

from .stackutil import SHARED_DATA, prometheus_value, run_cli, wait_for_prometheus_value

pytestmark = pytest.mark.integration

DEPTH = 10
DATE = "2019-12-30"
REDIS_PREFIX = "itchflow"


PIPELINES = {"split": PIPELINE_JOBS, "market-data": MARKET_DATA_JOBS}


@pytest.fixture(scope="module", params=list(PIPELINES))
def pipeline(request: pytest.FixtureRequest, local_stack: StackConfig):
    """(config, job name -> id, venue suffix, the pipeline's (script, job name) pairs)."""
    jobs = PIPELINES[request.param]
    ids = ensure_jobs(local_stack, parallelism=2, log=lambda message: None, jobs=jobs)
    yield local_stack, ids, "-" + request.param.upper(), jobs
    for job_id in ids.values():
        cancel(local_stack.flink_rest_url, job_id)


def book_job(jobs: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(script, job name) of the pipeline's job that keeps the books."""
    return next(job for job in jobs if job[0] in ("order_book", "market_data"))


def analytics_job(jobs: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """(script, job name) of the pipeline's job that computes the bars."""
    return next(job for job in jobs if job[0] in ("analytics", "market_data"))


def reference(config: StackConfig, path: Path) -> dict:
    """The offline book (`itchflow book --json`): the answer the stream must equal."""
    return json.loads(run_cli(config, "book", str(path), "--json", "--depth", str(DEPTH)).stdout)["symbols"]


def replay(config: StackConfig, path: Path, venue: str, session: str, **options) -> ReplaySummary:
    from datetime import date

    producer = make_producer(config.bootstrap_servers)
    try:
        return run_replay_file(
            path,
            producer,
            topic=options.pop("topic", RAW_TOPIC),
            venue=venue,
            trading_date=date.fromisoformat(options.pop("trading_date", DATE)),
            session=session,
            batch_size=options.pop("batch_size", 500),
            linger_ms=10,
            speed=options.pop("speed", None),
            show_progress=False,
            **options,
        )
    finally:
        producer.close()


def streamed_books(config: StackConfig, venue: str) -> dict[str, dict]:
    """Each symbol's final book as the pipeline left it in ClickHouse and in Redis."""
    client = clickhouse_client(config)
    depth_rows = client.query(
        "SELECT symbol, argMax((bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders), seq) "
        "FROM depth_snapshots FINAL WHERE venue = {v:String} GROUP BY symbol",
        parameters={"v": venue},
    ).result_rows
    status_rows = client.query(
        "SELECT symbol, argMax(unknown_refs, seq), argMax(orders, seq) FROM book_status FINAL "
        "WHERE venue = {v:String} GROUP BY symbol",
        parameters={"v": venue},
    ).result_rows
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    books: dict[str, dict] = {}
    for symbol, unknown_refs, orders in status_rows:
        books[symbol] = {"unknown_refs": unknown_refs, "orders": orders, "ch_bids": [], "ch_asks": []}
        redis_depth = cache.hgetall(f"{REDIS_PREFIX}:depth:{venue}:{symbol}")
        books[symbol]["redis_bids"] = json.loads(redis_depth.get("bids", "[]"))
        books[symbol]["redis_asks"] = json.loads(redis_depth.get("asks", "[]"))
    for symbol, (bp, bs, bo, ap, as_, ao) in depth_rows:
        books[symbol]["ch_bids"] = [list(level) for level in zip(bp, bs, bo, strict=True)]
        books[symbol]["ch_asks"] = [list(level) for level in zip(ap, as_, ao, strict=True)]
    return books


def pipeline_diagnostics(config: StackConfig) -> str:
    """What the running jobs counted that explains a wrong book (printed when a comparison fails):
    sequence gaps and dropped duplicates in the normalizer, skipped events and state rebuilds in the
    order book, and the restarts Flink recorded."""
    from itchflow.errors import UserError
    from itchflow.flinkctl import rest_get

    try:
        return _diagnostics(config, rest_get)
    except (UserError, KeyError, ValueError) as exc:  # never hide the mismatch behind a second error
        return f"(pipeline diagnostics unavailable: {exc})"


def _diagnostics(config: StackConfig, rest_get) -> str:
    base = config.flink_rest_url
    lines = []
    wanted = (
        "gapMessages",
        "duplicateBatches",
        "deadLetters",
        "duplicateEvents",
        "bookRestores",
        "badRecords",
    )
    for job in rest_get(base, "/jobs/overview")["jobs"]:
        if job["state"] != "RUNNING":
            continue
        counts: dict[str, float] = {}
        for vertex in rest_get(base, f"/jobs/{job['jid']}")["vertices"]:
            names = [m["id"] for m in rest_get(base, f"/jobs/{job['jid']}/vertices/{vertex['id']}/metrics")]
            names = [n for n in names if n.rsplit(".", 1)[-1] in wanted]
            for start in range(0, len(names), 8):
                query = ",".join(names[start : start + 8])
                for metric in rest_get(
                    base, f"/jobs/{job['jid']}/vertices/{vertex['id']}/metrics?get={query}"
                ):
                    name = metric["id"].rsplit(".", 1)[-1]
                    counts[name] = counts.get(name, 0) + float(metric["value"])
        exceptions = (
            rest_get(base, f"/jobs/{job['jid']}/exceptions").get("exceptionHistory", {}).get("entries", [])
        )
        causes = sorted({entry.get("exceptionName", "?") for entry in exceptions})
        lines.append(f"{job['name']}: {counts}; {len(exceptions)} failure(s) {causes}")
    return "\n".join(lines)


def assert_books_equal(expected: dict, actual: dict, config: StackConfig | None = None) -> None:
    assert expected, "the reference has no symbols: nothing would be compared"
    mismatches = []
    for symbol, book in expected.items():
        got = actual.get(
            symbol, {"ch_bids": [], "ch_asks": [], "redis_bids": [], "redis_asks": [], "unknown_refs": 0}
        )
        for source in ("ch", "redis"):
            if got.get(f"{source}_bids", []) != book["bids"] or got.get(f"{source}_asks", []) != book["asks"]:
                mismatches.append(
                    f"{symbol} {source}: {got.get(f'{source}_bids')} / {got.get(f'{source}_asks')} "
                    f"!= {book['bids']} / {book['asks']}"
                )
        if got.get("unknown_refs", 0) != book["unknown_refs"]:
            mismatches.append(f"{symbol} unknown_refs {got.get('unknown_refs')} != {book['unknown_refs']}")
    if mismatches and config is not None:
        mismatches.insert(0, pipeline_diagnostics(config))
    assert not mismatches, "\n".join(mismatches[:20])


@pytest.mark.parametrize(
    ("sample", "venue"),
    [
        ("RITCH_ex20101224.TEST_ITCH_50.gz", "E2E-RITCH"),
        ("omi_Nasdaq_itch50_sample.bin", "E2E-OMI"),
        ("meatpy_sample.itch50", "E2E-MEAT"),
    ],
)
def test_real_sample_books_in_clickhouse_and_redis_equal_the_offline_book(
    pipeline, sample: str, venue: str
) -> None:
    config, _, suffix, _ = pipeline
    venue += suffix
    path = SHARED_DATA / sample
    summary = replay(config, path, venue, f"{venue}-1")
    wait_until_applied(config, venue, summary.last_seq_by_symbol(), timeout_s=180, show=False)
    assert_books_equal(reference(config, path), streamed_books(config, venue), config)


def test_a_million_synthetic_messages_end_to_end(pipeline, tmp_path: Path) -> None:
    config, _, suffix, _ = pipeline
    venue = "E2E-SYNTH" + suffix
    path = tmp_path / "synth-1m.itch"
    synth.write(path, symbols=200, messages=1_000_000, seed=11)
    summary = replay(config, path, venue, "synth-1", batch_size=1000)
    assert summary.messages == 1_000_000
    wait_until_applied(config, venue, summary.last_seq_by_symbol(), timeout_s=600, show=False)
    expected = reference(config, path)
    assert_books_equal(expected, streamed_books(config, venue), config)
    # trades: every print of the offline book is a row (FINAL: no duplicates)
    client = clickhouse_client(config)
    printed = client.query(
        "SELECT count() FROM trades FINAL WHERE venue = {v:String} AND printable = 1", parameters={"v": venue}
    ).result_rows[0][0]
    assert printed == sum(book["trade_count"] for book in expected.values())
    # broken trades: broken_trades holds exactly the breaks of the feed's prints, and their prints are rows
    broken = client.query(
        "SELECT b.symbol, b.match_number, t.seq > 0 FROM broken_trades AS b FINAL LEFT JOIN "
        "(SELECT venue, symbol, match_number, seq FROM trades FINAL WHERE venue = {v:String}) AS t "
        "USING (venue, symbol, match_number) WHERE b.venue = {v:String}",
        parameters={"v": venue},
    ).result_rows
    expected_broken = broken_prints(path)
    assert len(expected_broken) > 20
    assert sorted(broken) == sorted((symbol, match, True) for symbol, match in expected_broken)


def test_two_venues_in_one_replay_keep_their_own_books(pipeline, tmp_path: Path) -> None:
    """Two venues' feeds of the same symbols, replayed together (merged by event time): each venue's
    books equal its own offline book, though a symbol's books of both venues share one Flink key."""
    config, _, suffix, _ = pipeline
    feeds = []
    for seed, name in ((21, "E2E-VA"), (22, "E2E-VB")):
        path = tmp_path / f"{name}.itch"
        synth.write(path, symbols=60, messages=100_000, seed=seed)
        feeds.append((name + suffix, path))
    producer = make_producer(config.bootstrap_servers)
    try:
        summary = run_replay_feeds(
            feeds,
            producer,
            topic=RAW_TOPIC,
            venue="unused",
            trading_date=date.fromisoformat(DATE),
            session="two-venues",
            batch_size=500,
            linger_ms=10,
            show_progress=False,
        )
    finally:
        producer.close()
    assert summary.messages == 200_000
    for venue, path in feeds:
        last_seq = summary.last_seq_by_symbol(venue)
        assert len(last_seq) == 60
        wait_until_applied(config, venue, last_seq, timeout_s=300, show=False)
        assert_books_equal(reference(config, path), streamed_books(config, venue), config)


def broken_prints(path: Path) -> set[tuple[str, int]]:
    """(symbol, match number) of every print (E, C, P, Q) that a later Broken Trade (B) of its
    symbol cancels, read from the feed file."""
    symbols: dict[int, str] = {}
    printed: set[tuple[int, int]] = set()
    broken: set[tuple[str, int]] = set()
    for _, message in iter_messages(path):
        kind = message.message_type
        if kind == "R":
            symbols[message.stock_locate] = message.stock.strip()
        elif kind in ("E", "C", "P", "Q"):
            printed.add((message.stock_locate, message.match_number))
        elif kind == "B" and (message.stock_locate, message.match_number) in printed:
            broken.add((symbols[message.stock_locate], message.match_number))
    return broken


BARS_DATES = {"-SPLIT": "2020-06-01", "-MARKET-DATA": "2020-06-05"}
"""Later than every earlier test's trading date: event time is global to a job, so the bars test's
replay must not be behind the others' (theirs then come late for bars, which they do not check).
The market-data job also reads what the split pipeline's run wrote to the raw topic before it: its
days come after all of the split's."""
LATER_DATES = {"-SPLIT": ("2020-06-02", "2020-06-03"), "-MARKET-DATA": ("2020-06-06", "2020-06-07")}
"""The days of the TaskManager-kill test and the quiet-feed test, which check the bars after the bars
test: later than its day, in the order the tests run."""
INTERVALS = {"1s": 1, "1m": 60, "5m": 300}


def streamed_bars(config: StackConfig, venue: str) -> dict[tuple, tuple]:
    rows = (
        clickhouse_client(config)
        .query(
            "SELECT symbol, interval_s, toUnixTimestamp64Nano(window_start), open, high, low, close, volume, vwap, "
            "trades FROM bars FINAL WHERE venue = {v:String}",
            parameters={"v": venue},
        )
        .result_rows
    )
    return {(row[0], row[1], row[2]): tuple(row[3:]) for row in rows}


def assert_bars_equal_the_offline_bars(
    config: StackConfig, path: Path, venue: str, day: str
) -> dict[tuple, tuple]:
    """The bars in ClickHouse (FINAL) equal ``itchflow bars`` of the file, once they are all there,
    and each symbol's Redis hash holds its last 1 m bar; returns them ((symbol, size, window start) ->
    open, high, low, close, volume, vwap, trades)."""
    expected: dict[tuple, tuple] = {}
    for name, seconds in INTERVALS.items():
        report = json.loads(
            run_cli(config, "bars", str(path), "--interval", name, "--json", "--date", day).stdout
        )
        for bar in report["bars"]:
            expected[(bar["symbol"], seconds, bar["window_start_ns"])] = (
                bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["vwap"], bar["trades"]
            )  # fmt: skip
    assert expected
    deadline = time.monotonic() + 120
    while (got := streamed_bars(config, venue)) != expected and time.monotonic() < deadline:
        time.sleep(2)
    assert got == expected, f"{len(set(got) ^ set(expected))} bars on one side only"
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    for symbol in {key[0] for key in expected}:
        last = max(key for key in expected if key[0] == symbol and key[1] == 60)
        fields = cache.hgetall(f"{REDIS_PREFIX}:bar:1m:{venue}:{symbol}")
        assert int(fields["window_start"]) == last[2], symbol
        assert (int(fields["open"]), int(fields["close"]), int(fields["volume"])) == (
            expected[last][0], expected[last][3], expected[last][4]
        ), symbol  # fmt: skip
    return expected


BAR_FIRINGS = "barFirings"
"""The market-data operator's count of Redis records that carry bars fired by event time."""


def bar_publish_counts(config: StackConfig, job_id: str, timeout_s: float = 60.0) -> tuple[list[float], int]:
    """The job's ``barPublishDelay`` bucket counts and its ``barFirings``, once every firing the
    operator counted has its sample (the writer counts it when Redis answers) and two reads 2 s apart
    agree (the REST API serves metrics fetched every second)."""
    names = bucket_names(BAR_PUBLISH_DELAY)
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        counts = job_counters(config.flink_rest_url, job_id, [*names, BAR_FIRINGS])
        now = ([counts[name] for name in names], int(counts[BAR_FIRINGS]))
        if now == last and sum(now[0]) == now[1]:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the bar publish counts did not settle: {now} (before: {last})")
        last = now
        time.sleep(2)


def test_bars_in_clickhouse_and_redis_equal_the_offline_bars(pipeline, tmp_path: Path) -> None:
    """The bars after a replay (closed by the end-of-replay records, which the split pipeline's
    normalize and order-book jobs pass on to the analytics job) equal ``itchflow bars`` in ClickHouse
    and Redis, and the job's watermark is where the feed's end puts it; every firing of bars by event
    time has one bar publish delay sample."""
    config, job_ids, suffix, jobs = pipeline
    venue = "E2E-BARS" + suffix
    path = tmp_path / "synth-bars.itch"
    synth.write(path, symbols=30, messages=60_000, seed=21)
    day = BARS_DATES[suffix]
    job_id = job_ids[analytics_job(jobs)[1]]
    delays_before, firings_before = bar_publish_counts(config, job_id)
    summary = replay(config, path, venue, "bars-1", trading_date=day)
    wait_until_applied(config, venue, summary.last_seq_by_symbol(), timeout_s=180, show=False)
    expected = assert_bars_equal_the_offline_bars(config, path, venue, day)
    assert_one_publish_delay_sample_per_firing(
        config, job_id, expected, delays_before, firings_before, at_least=0 if suffix == "-SPLIT" else 1
    )
    # the watermark: every partition ended at the feed's last event time; 1 s of out-of-orderness
    latest_ns = max(m.timestamp for _, m in iter_messages(path)) + midnight_epoch_ns(date.fromisoformat(day))
    vertex = next(
        v
        for v in rest_get(config.flink_rest_url, f"/jobs/{job_id}")["vertices"]
        if v["name"].startswith(("market-data", "analytics"))
    )
    expected_marks = {latest_ns // 1_000_000 - 1_000 - 1}
    deadline = time.monotonic() + 60  # the REST API serves metrics fetched every 10 s
    while True:
        marks = rest_get(config.flink_rest_url, f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
        if {int(mark["value"]) for mark in marks} == expected_marks or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert {int(mark["value"]) for mark in marks} == expected_marks
    assert_rolling_values_equal_the_reference(config, venue, day)
    assert_ofi_and_spread_equal_the_offline_functions(config, path, venue, day)
    assert_the_day_replayed_again_changes_nothing(config, path, venue, day)


def assert_one_publish_delay_sample_per_firing(
    config: StackConfig,
    job_id: str,
    bars: dict[tuple, tuple],
    delays_before: list[float],
    firings_before: int,
    at_least: int = 1,
) -> None:
    """Over the replay, the Redis writer counted one bar publish delay per record of bars fired by
    event time (``barFirings``), each within 5 s. A firing is a partition key's step that finds the
    watermark past window ends: it emits at least one bar first, and the key's firings cover disjoint
    spans of event time, so there are at least one and at most as many as the distinct window ends of
    the key's bars (one key per shard). ``at_least`` 0: the analytics job of the split pipeline may
    read a short replay's every record before its source's next periodic watermark, and then the
    end-of-replay records close every bar (no firing by event time)."""
    delays, firings = bar_publish_counts(config, job_id)
    samples = [after - before for after, before in zip(delays, delays_before, strict=True)]
    firings -= firings_before
    ends = {(shard_for(symbol), start + seconds * 1_000_000_000) for symbol, seconds, start in bars}
    assert at_least <= firings <= len(ends)
    assert sum(samples) == firings
    assert samples[-1] == 0, f"bar publish delays beyond {BOUNDS_MS[-1]} ms: {samples}"


def assert_ofi_and_spread_equal_the_offline_functions(
    config: StackConfig, path: Path, venue: str, day: str
) -> None:
    """OFI in ClickHouse equals ``ofi_of_file`` of the feed; the quoted spread of the liquidity windows
    with top-of-book changes equals ``liquidity_of_file``'s (its depth is per event, the job's per batch)."""
    client = clickhouse_client(config)
    trading_date = date.fromisoformat(day)
    got = sorted(
        client.query(
            "SELECT symbol, interval_s, toUnixTimestamp64Nano(window_start), ofi, bid_flow, ask_flow, updates "
            "FROM ofi FINAL WHERE venue = {v:String}",
            parameters={"v": venue},
        ).result_rows
    )
    expected = sorted(
        (r.symbol, r.interval_s, r.window_start_ns, r.ofi, r.bid_flow, r.ask_flow, r.updates)
        for r in ofi_of_file(path, trading_date, venue)
    )
    assert expected and got == expected
    got_spreads = sorted(
        client.query(
            "SELECT symbol, toUnixTimestamp64Nano(window_start), spread, two_sided_ns, updates "
            "FROM liquidity FINAL WHERE venue = {v:String} AND updates > 0",
            parameters={"v": venue},
        ).result_rows
    )
    expected_spreads = sorted(
        (r.symbol, r.window_start_ns, r.spread, r.two_sided_ns, r.updates)
        for r in liquidity_of_file(path, trading_date, venue)
        if r.updates
    )
    assert got_spreads == expected_spreads


def assert_rolling_values_equal_the_reference(config: StackConfig, venue: str, day: str) -> None:
    """The sliding 5 m VWAP and the SMA / EMA of 20 1 m closes in ClickHouse (FINAL) equal the
    reference computed from the job's bars (which equal ``itchflow bars``); the Redis hashes hold
    each symbol's latest values."""
    client = clickhouse_client(config)
    days = (date.fromisoformat(day) - date(1970, 1, 1)).days
    slide_bars, closes = {}, {}
    for symbol, size, start, close, volume, notional, trades in client.query(
        "SELECT symbol, interval_s, toUnixTimestamp64Nano(window_start), close, volume, notional, trades "
        "FROM bars FINAL WHERE venue = {v:String} AND interval_s IN (1, 60)",
        parameters={"v": venue},
    ).result_rows:
        if size == 1:
            slide_bars[(days, symbol, start)] = (volume, notional, trades)
        else:
            closes[(days, symbol, start)] = close
    got_vwap = {
        (venue, row[0], row[1], row[2]): tuple(row[3:])
        for row in client.query(
            "SELECT trading_date - toDate('1970-01-01'), symbol, toUnixTimestamp64Nano(window_end), volume, "
            "notional, trades, vwap FROM vwap FINAL WHERE venue = {v:String} AND window_s = 300",
            parameters={"v": venue},
        ).result_rows
    }
    got_averages = {
        (venue, row[0], row[1], row[2]): tuple(row[3:])
        for row in client.query(
            "SELECT trading_date - toDate('1970-01-01'), symbol, toUnixTimestamp64Nano(window_start), sma, ema "
            "FROM moving_averages FINAL WHERE venue = {v:String} AND interval_s = 60 AND n = 20",
            parameters={"v": venue},
        ).result_rows
    }
    assert got_vwap and got_averages
    assert_rolling_values(venue, got_vwap, got_averages, slide_bars, closes, RollingConfig())
    expected_vwap, expected_averages = rolling_reference(venue, slide_bars, closes, RollingConfig())
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    for symbol in {key[2] for key in expected_averages}:
        last = max(key for key in expected_averages if key[2] == symbol)
        fields = cache.hgetall(f"{REDIS_PREFIX}:ma:1m:{venue}:{symbol}")
        assert (int(fields["window_start"]), float(fields["ema"])) == (last[3], expected_averages[last][1])
    for symbol in {key[2] for key in expected_vwap}:
        last = max(key for key in expected_vwap if key[2] == symbol)
        assert int(cache.hget(f"{REDIS_PREFIX}:vwap:{venue}:{symbol}", "window_end")) == last[3]


def day_outputs(config: StackConfig, venue: str) -> dict[str, object]:
    """Everything the pipeline wrote for ``venue``: each table's rows (FINAL) and each Redis key's
    content (streams: length and last entry)."""
    client = clickhouse_client(config)
    outputs: dict[str, object] = {}
    for table in (
        "trades",
        "top_of_book",
        "depth_snapshots",
        "book_status",
        "bars",
        "vwap",
        "moving_averages",
        "ofi",
        "liquidity",
    ):
        outputs[table] = client.query(
            f"SELECT * FROM {table} FINAL WHERE venue = {{v:String}} ORDER BY ALL", parameters={"v": venue}
        ).result_rows
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    for key in sorted(cache.scan_iter(match=f"{REDIS_PREFIX}:*:{venue}:*", count=1000)):
        if cache.type(key) == "stream":
            outputs[key] = (cache.xlen(key), cache.xrevrange(key, count=1))
        else:
            outputs[key] = cache.hgetall(key)
    return outputs


def assert_the_day_replayed_again_changes_nothing(
    config: StackConfig, path: Path, venue: str, day: str
) -> None:
    """The same feed day replayed again -- under another session name, in other batches -- leaves
    ClickHouse (FINAL) and Redis exactly as they were."""
    before = day_outputs(config, venue)
    assert before["trades"] and before["top_of_book"]
    replay(config, path, venue, "renamed-session", trading_date=day, batch_size=333)
    # a later feed of another venue, through every shard: once its books are applied, the records
    # replayed before it under the same keys have been processed
    sentinel = path.with_name("sentinel.itch")
    synth.write(sentinel, symbols=120, messages=6_000, seed=5)
    # (on the same day: a later one would move the jobs' event time past the bars tests' days)
    summary = replay(config, sentinel, venue + "-SENTINEL", "sentinel", trading_date=day)
    assert {shard_for(symbol) for symbol in summary.last_seq_by_symbol()} == set(range(SHARDS))
    wait_until_applied(config, venue + "-SENTINEL", summary.last_seq_by_symbol(), timeout_s=180, show=False)
    time.sleep(4)  # the sinks' linger (3 s) of anything the second replay might have written
    after = day_outputs(config, venue)
    changed = [key for key in before.keys() | after.keys() if before.get(key) != after.get(key)]
    assert not changed, f"written again: {changed[:10]}"


NORMALIZING_JOB = {"-SPLIT": "itchflow-normalize", "-MARKET-DATA": "itchflow-market-data"}


def test_bad_records_go_to_the_dead_letter_topic_and_the_pipeline_keeps_running(pipeline) -> None:
    """Each undecodable record is one dead letter, and one count of the job's ``deadLetters``
    counter as Prometheus scrapes it from the TaskManagers; the valid data beside them is exact."""
    config, job_ids, suffix, _ = pipeline
    counted = f'sum(flink_taskmanager_job_task_operator_itchflow_deadLetters{{job_name="{NORMALIZING_JOB[suffix]}"}})'
    before = prometheus_value(config, counted)
    assert before is not None, f"Prometheus ({config.prometheus_url}) has no deadLetters counter of the job"
    tag = suffix.encode()
    garbage = {
        b"BAD1" + tag: b"\x00\x01\x02garbage",
        b"BAD2" + tag: b"",
        b"BAD3" + tag: b"\xc3\x01" + b"\x00" * 5,
    }
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    for key, value in garbage.items():
        producer.send(RAW_TOPIC, key=key, value=value)
    # a truncated but otherwise valid record: the real envelope cut in half
    valid = replay(config, SHARED_DATA / "meatpy_sample.itch50", "E2E-BAD" + suffix, "bad-1")
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        DEAD_LETTER_TOPIC,
        bootstrap_servers=config.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    letters = {}
    deadline = time.monotonic() + 120
    while len(letters) < len(garbage) and time.monotonic() < deadline:
        for record in consumer:
            letter = decode_dead_letter(record.value)
            if letter.key in garbage:
                letters[letter.key] = letter
    consumer.close()
    assert set(letters) == set(garbage)
    assert wait_for_prometheus_value(config, counted, before + len(garbage)) == before + len(garbage)
    for key, letter in letters.items():
        assert letter.source_topic == RAW_TOPIC and letter.reason, key
        assert letter.value == garbage[key] or (letter.value or b"") == garbage[key]
    # the jobs survived and the valid data next to the garbage is exact
    states = {job.job_id: job.state for job in list_jobs(config.flink_rest_url)}
    assert all(states[job_id] == "RUNNING" for job_id in job_ids.values())
    wait_until_applied(config, "E2E-BAD" + suffix, valid.last_seq_by_symbol(), timeout_s=120, show=False)
    assert_books_equal(
        reference(config, SHARED_DATA / "meatpy_sample.itch50"), streamed_books(config, "E2E-BAD" + suffix)
    )


def dead_letter_ends(config: StackConfig) -> dict[int, int]:
    """The dead-letter topic's end offset per partition: where the letters of what comes next start
    (the records' keys are shard keys, the same for every venue)."""
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap_servers, consumer_timeout_ms=3000)
    parts = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in consumer.partitions_for_topic(DEAD_LETTER_TOPIC)]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    ends = {part.partition: 0 for part in parts}
    for record in consumer:  # read to the end: the local broker's ListOffsets(LATEST) is not the end
        ends[record.partition] = record.offset + 1
    consumer.close()
    return ends


def dead_letters_since(
    config: StackConfig, start: dict[int, int], expected: int, timeout_s: float = 120
) -> list:
    """The dead letters written after ``start`` (:func:`dead_letter_ends`), read until there are
    ``expected`` or ``timeout_s`` has passed."""
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap_servers, consumer_timeout_ms=3000)
    parts = [TopicPartition(DEAD_LETTER_TOPIC, partition) for partition in start]
    consumer.assign(parts)
    for part in parts:
        consumer.seek(part, start[part.partition])
    letters = []
    deadline = time.monotonic() + timeout_s
    while len(letters) < expected and time.monotonic() < deadline:
        letters.extend(decode_dead_letter(record.value) for record in consumer)
    consumer.close()
    return letters


def test_a_replay_stamped_with_a_date_to_come_is_set_aside_and_moves_no_watermark(pipeline) -> None:
    """A replay whose --date has not come yet: the source flags its records (event time beyond the
    wall clock plus --max-future-ms), so every one of them, end-of-replay records included, is one dead
    letter with reason future, nothing of it reaches the books, and no job's watermark moves to it (the
    tests after this one replay earlier days and check their bars)."""
    config, job_ids, suffix, jobs = pipeline
    venue = "E2E-FUTURE" + suffix
    start = dead_letter_ends(config)
    summary = replay(
        config, SHARED_DATA / "meatpy_sample.itch50", venue, "future-1", trading_date="2099-01-05"
    )
    expected = summary.records + SHARDS  # the bundles and one end-of-replay record a shard
    letters = dead_letters_since(config, start, expected)
    seen = sorted(
        (
            letter.job,
            letter.reason,
            letter.source_topic,
            letter.source_partition,
            letter.source_offset,
            letter.key,
        )
        for letter in letters
    )
    assert len({(letter.source_partition, letter.source_offset) for letter in letters}) == len(letters), seen
    assert len(letters) == expected, (summary.records, seen)
    assert {letter.reason for letter in letters} == {"future"}
    # keyed as the records they set aside were in Kafka (the shard keys, without the JVM's salt)
    assert {letter.key for letter in letters} == {f"@{shard}/{SHARDS}".encode() for shard in range(SHARDS)}
    assert applied_sequences(clickhouse_client(config), venue) == {}
    day_2099_ms = midnight_epoch_ns(date(2099, 1, 5)) // 1_000_000
    for _, name in jobs:
        detail = rest_get(config.flink_rest_url, f"/jobs/{job_ids[name]}")
        for vertex in detail["vertices"]:
            marks = rest_get(
                config.flink_rest_url, f"/jobs/{job_ids[name]}/vertices/{vertex['id']}/watermarks"
            )
            assert all(int(mark["value"]) < day_2099_ms for mark in marks), (name, vertex["name"], marks)


def test_upgrade_through_a_savepoint_equals_an_uninterrupted_run(pipeline) -> None:
    config, job_ids, suffix, jobs = pipeline
    script, name = book_job(jobs)
    path = SHARED_DATA / "RITCH_ex20101224.TEST_ITCH_50.gz"
    venue, half = "E2E-UPGRADE" + suffix, 6000
    first = replay(config, path, venue, "upgrade-1", to_message=half)
    wait_until_applied(config, venue, first.last_seq_by_symbol(), timeout_s=180, show=False)

    savepoint = stop_with_savepoint(config.flink_rest_url, job_ids[name])
    assert Path(savepoint.removeprefix("file:")).exists()
    second = replay(config, path, venue, "upgrade-2", from_message=half)  # arrives while the job is down
    result = run_cli(config, "submit", script, "--parallelism", "2", "--from-savepoint", savepoint)
    new_id = result.stdout.strip().splitlines()[-1]
    job_ids[name] = new_id
    wait_until_tasks_running(config.flink_rest_url, new_id, timeout_s=180)
    checkpoints = rest_get(config.flink_rest_url, f"/jobs/{new_id}/checkpoints")
    assert checkpoints["latest"]["restored"] is not None  # state came from the savepoint

    wait_until_applied(config, venue, second.last_seq_by_symbol(), timeout_s=180, show=False)
    assert_books_equal(reference(config, path), streamed_books(config, venue), config)


def resubmit_from_savepoint(config: StackConfig, job_ids: dict, jobs, *job_args: str) -> str:
    """Stop the book job with a savepoint and submit it again from there (``job_args`` to the job);
    returns the savepoint's path."""
    script, name = book_job(jobs)
    deadline = time.monotonic() + 60
    while True:
        try:
            savepoint = stop_with_savepoint(config.flink_rest_url, job_ids[name])
            break
        except UserError as exc:  # right after a submission: "not all required tasks are running"
            if "not all required tasks" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(2)
    args = ["submit", script, "--parallelism", "2", "--from-savepoint", savepoint]
    result = run_cli(config, *args, *(["--", *job_args] if job_args else []))
    job_ids[name] = result.stdout.strip().splitlines()[-1]
    wait_until_tasks_running(config.flink_rest_url, job_ids[name], timeout_s=180)
    return savepoint


def test_rows_the_clickhouse_writer_held_at_a_savepoint_are_inserted_after_the_restore(pipeline) -> None:
    """The ClickHouse writers do not insert at a checkpoint barrier: their unsent rows go into the
    checkpoint, and a restored writer inserts them. Here the writers hold every row of a replay (a
    60 s linger, no idle insert) when the job is stopped with a savepoint; resumed with the default
    batching, ClickHouse must end up with every row -- none lost, none doubled."""
    config, job_ids, suffix, jobs = pipeline
    resubmit_from_savepoint(
        config, job_ids, jobs, "--clickhouse-linger-ms", "60000", "--clickhouse-idle-ms", "0"
    )
    path = SHARED_DATA / "RITCH_ex20101224.TEST_ITCH_50.gz"
    venue = "E2E-HELD" + suffix
    summary = replay(config, path, venue, "held-1")
    last_seq = summary.last_seq_by_symbol()
    cache = redis.Redis(host=config.host, port=config.redis_port)
    deadline = time.monotonic() + 180
    while any(
        redis_sequences(cache, venue, sorted(last_seq)).get(s, -1) < seq for s, seq in last_seq.items()
    ):
        assert time.monotonic() < deadline, "the books did not reach Redis"
        time.sleep(0.5)
    client = clickhouse_client(config)
    assert applied_sequences(client, venue) == {}  # every ClickHouse row is still in the writers

    savepoint = resubmit_from_savepoint(config, job_ids, jobs)  # the savepoint holds the rows
    wait_until_applied(config, venue, last_seq, timeout_s=180, show=False)
    expected = reference(config, path)
    assert_books_equal(expected, streamed_books(config, venue), config)
    tob = dict(
        client.query(
            "SELECT symbol, count() FROM top_of_book FINAL WHERE venue = {v:String} GROUP BY symbol",
            parameters={"v": venue},
        ).result_rows
    )
    assert tob == {s: cache.xlen(f"{REDIS_PREFIX}:tob-stream:{venue}:{s}") for s in last_seq if s in tob}
    assert set(tob) == {s for s in last_seq if cache.xlen(f"{REDIS_PREFIX}:tob-stream:{venue}:{s}")}
    # the restored job claimed a copy (CLAIM mode, see snapshot_to_claim), not the savepoint itself
    checkpoints = f"/jobs/{job_ids[book_job(jobs)[1]]}/checkpoints"
    deadline = time.monotonic() + 60
    # more than the 3 retained: the snapshot the job restored from (a claimed copy) is subsumed
    while rest_get(config.flink_rest_url, checkpoints)["counts"]["completed"] < 4:
        assert time.monotonic() < deadline, "the restored job did not complete 4 checkpoints"
        time.sleep(1)
    assert (Path(urllib.parse.urlparse(savepoint).path) / "_metadata").is_file()


def test_killing_the_taskmanager_mid_replay_loses_and_doubles_nothing(pipeline, tmp_path: Path) -> None:
    config, job_ids, suffix, _ = pipeline
    venue = "E2E-KILL" + suffix
    day = LATER_DATES[suffix][0]
    path = tmp_path / "synth-kill.itch"
    synth.write(path, symbols=50, messages=300_000, seed=5)
    # paced so that the replay lasts ~25 s: the feed spans 09:30-16:00
    result: dict[str, ReplaySummary] = {}
    worker = threading.Thread(
        target=lambda: result.update(
            summary=replay(config, path, venue, "kill-1", speed=900, trading_date=day)
        )
    )
    worker.start()
    time.sleep(10)
    taskmanager = procs.ProcessRegistry(config.run_dir).get("flink-taskmanager")
    assert taskmanager is not None and procs.is_alive(taskmanager)
    os.killpg(taskmanager.pid, signal.SIGKILL)  # a crash, not a clean stop
    time.sleep(3)
    Stack(config).up()  # brings a new TaskManager; Flink restores the jobs from the last checkpoint
    worker.join(timeout=300)
    summary = result["summary"]
    assert summary.messages == 300_000

    wait_until_applied(config, venue, summary.last_seq_by_symbol(), timeout_s=600, show=False)
    for job_id in job_ids.values():
        assert rest_get(config.flink_rest_url, f"/jobs/{job_id}/checkpoints")["counts"]["restored"] >= 1
    expected = reference(config, path)
    assert_books_equal(expected, streamed_books(config, venue))

    # nothing doubled: each symbol's Redis stream has exactly its top-of-book rows (deduplicated by FINAL)
    client = clickhouse_client(config)
    rows = dict(
        client.query(
            "SELECT symbol, count() FROM top_of_book FINAL WHERE venue = {v:String} GROUP BY symbol",
            parameters={"v": venue},
        ).result_rows
    )
    cache = redis.Redis(host=config.host, port=config.redis_port)
    lengths = {symbol: cache.xlen(f"{REDIS_PREFIX}:tob-stream:{venue}:{symbol}") for symbol in rows}
    assert lengths == rows
    printed = client.query(
        "SELECT count() FROM trades FINAL WHERE venue = {v:String} AND printable = 1", parameters={"v": venue}
    ).result_rows[0][0]
    assert printed == sum(book["trade_count"] for book in expected.values())
    assert applied_sequences(client, venue) == summary.last_seq_by_symbol()
    # the bars too, restored with the books (or from the book events): none lost, none doubled
    assert_bars_equal_the_offline_bars(config, path, venue, day)


def quiet_feed(path: Path) -> tuple[float, int, dict[str, tuple[int, int]]]:
    """Two symbols trade in the first 1.5 s after 10:00, then the feed is quiet for 10 s before one
    last order. Writes the file; returns the gap's length (s), the time of day (ns) of the last 1 s
    bar before the gap (10:00:01), and per symbol that bar's volume and prints."""
    from itchflow.itch import messages as m
    from itchflow.itch.framing import write_messages
    from tests.unit.book_factories import stock_directory

    t0, ms = 10 * 3600 * 10**9, 10**6
    messages = [
        m.SystemEvent(0, 0, t0, "Q"),
        stock_directory(1, "QUIETA", t0),
        stock_directory(2, "QUIETB", t0),
        m.AddOrder(1, 0, t0 + 100 * ms, 1, "B", 500, "QUIETA", 100_0000),
        m.AddOrder(2, 0, t0 + 100 * ms, 2, "S", 300, "QUIETB", 200_0000),
        m.OrderExecuted(1, 0, t0 + 200 * ms, 1, 100, 1),
        m.OrderExecuted(1, 0, t0 + 1_100 * ms, 1, 150, 2),
        m.OrderExecuted(2, 0, t0 + 1_300 * ms, 2, 50, 3),
        m.OrderExecuted(1, 0, t0 + 1_500 * ms, 1, 20, 4),
        m.AddOrder(2, 0, t0 + 11_500 * ms, 3, "S", 300, "QUIETB", 201_0000),
    ]
    write_messages(path, messages)
    return 10.0, t0 + 10**9, {"QUIETA": (170, 2), "QUIETB": (50, 1)}


def test_a_paced_feed_that_goes_quiet_closes_its_bars_while_it_is_quiet(pipeline, tmp_path: Path) -> None:
    """A paced replay sends heartbeats while it waits for the feed's next message: the job with the
    bars closes those before the gap during the gap (no end of replay yet), and neither pipeline
    dead-letters a heartbeat."""
    config, _, suffix, _ = pipeline
    venue = "E2E-QUIET" + suffix
    path = tmp_path / "quiet.itch"
    gap_s, last_start, last_bars = quiet_feed(path)
    letters_before = dead_letter_ends(config)
    last_start += midnight_epoch_ns(date.fromisoformat(LATER_DATES[suffix][1]))
    done: list[ReplaySummary] = []
    worker = threading.Thread(
        target=lambda: done.append(
            replay(
                config,
                path,
                venue,
                "quiet-1",
                trading_date=LATER_DATES[suffix][1],
                speed=1.0,
                heartbeat_ms=500,
            )
        )
    )
    started = time.monotonic()
    worker.start()
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    bars: dict[str, tuple[int, int]] = {}
    try:
        while len(bars) < len(last_bars) and worker.is_alive():
            for symbol in last_bars:
                fields = cache.hgetall(f"{REDIS_PREFIX}:bar:1s:{venue}:{symbol}")
                if fields and int(fields["window_start"]) == last_start and symbol not in bars:
                    bars[symbol] = (int(fields["volume"]), int(fields["trades"]))
            time.sleep(0.1)
        closed_after = time.monotonic() - started
    finally:
        worker.join(timeout=60)
    assert done and done[0].heartbeats > 0
    # the last bars before the gap, while the replay still waited for the message after it (the split
    # pipeline's heartbeats pass through the normalize and order-book jobs to the analytics job)
    assert bars == last_bars
    assert closed_after < 1.5 + gap_s
    wait_until_applied(config, venue, done[0].last_seq_by_symbol(), timeout_s=120, show=False)
    assert dead_letters_since(config, letters_before, 1, timeout_s=5) == []


RESCALE_DATES = {"-SPLIT": "2020-06-04", "-MARKET-DATA": "2020-06-08"}
"""Trading dates of the rescaling test: after each pipeline's other dates, before the next
pipeline's (its fresh jobs read the raw topic from the start)."""


def test_rescaled_1_2_4_through_savepoints_and_moved_to_8_partitions_keeps_every_book_and_bar(
    pipeline,
) -> None:
    """The book job upgraded to parallelism 1, then 2, then 4 (`itchflow upgrade JOB -p N`, through a
    savepoint each time), a third of a feed replayed at each parallelism, and for the market-data job
    the last third from a raw topic of 8 partitions instead of 4 (the job upgraded onto it: the local
    broker cannot grow a topic in place): every book and bar equals the offline references. The state
    is keyed by shards of the symbols, so no parallelism and no partition count strands it. (The split
    pipeline keeps its topics: its analytics job tells rewritten records by their normalized partition
    and offset, which a topic grown in place keeps but a new topic starts again.)"""
    config, job_ids, suffix, jobs = pipeline
    script, name = book_job(jobs)
    path = SHARED_DATA / "RITCH_ex20101224.TEST_ITCH_50.gz"
    venue, day = "E2E-RESCALE" + suffix, RESCALE_DATES[suffix]
    total = sum(1 for _ in iter_messages(path))
    cuts = [0, total // 3, 2 * total // 3, None]
    topic = RAW_TOPIC
    for step, parallelism in enumerate((1, 2, 4)):
        args: list[str] = []
        if parallelism == 4 and script == "market_data":
            topic = f"{RAW_TOPIC}-8{suffix.lower()}"
            ensure_topics(config, [TopicSpec(topic, 2 * config.partitions)])
            args = ["--", "--input-topic", topic]
        result = run_cli(config, "upgrade", script, "--parallelism", str(parallelism), *args)
        job_ids[name] = result.stdout.strip().splitlines()[-1]
        assert job_parallelism(config.flink_rest_url, job_ids[name]) == parallelism
        checkpoints = rest_get(config.flink_rest_url, f"/jobs/{job_ids[name]}/checkpoints")
        assert checkpoints["latest"]["restored"] is not None  # the state came from the savepoint
        part = replay(
            config, path, venue, f"rescale-{step}", topic=topic, trading_date=day,
            from_message=cuts[step], **({"to_message": cuts[step + 1]} if cuts[step + 1] else {}),
        )  # fmt: skip
        wait_until_applied(config, venue, part.last_seq_by_symbol(), timeout_s=180, show=False)
    assert_books_equal(reference(config, path), streamed_books(config, venue), config)
    assert_bars_equal_the_offline_bars(config, path, venue, day)
