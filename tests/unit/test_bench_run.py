"""The benchmark's pure parts: feed cache, run names, pacing, batch timing, result shape and table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from itchflow.avro.bundle import SegmentInput, decode_raw
from itchflow.bench import feed as bench_feed
from itchflow.bench.probes import (
    CLOCK_TICKS,
    BooksBehind,
    _machine_split,
    cpu_used,
    messages_applied,
    thread_label,
    wait_for_books,
)
from itchflow.bench.replaying import FirstHandoff, PacedRuns, RecordingEncoder, busiest_symbols, limited
from itchflow.bench.report import missing_keys, render
from itchflow.bench.result import BenchRunInfo, Phase, _near_checkpoints, build_result
from itchflow.bench.runner import BenchOptions, RunNames, effective_execution_mode
from itchflow.bench.stats import SentBatch
from itchflow.errors import UserError
from itchflow.pipeline.latency import BOUNDS_MS
from itchflow.replay import ClosedBundle

# --------------------------------------------------------------------------------- feed cache


def test_feed_key_names_every_parameter_and_the_generator_version() -> None:
    assert bench_feed.feed_key(1000, 10_000_000, 1, "abc123") == "synth-1000sym-10000000msg-seed1-abc123"
    keys = {
        bench_feed.feed_key(*params, "abc123")
        for params in [
            (1000, 10_000_000, 1),
            (999, 10_000_000, 1),
            (1000, 9_999_999, 1),
            (1000, 10_000_000, 2),
        ]
    }
    assert len(keys) == 4
    assert bench_feed.feed_key(1000, 10, 1, "abc123") != bench_feed.feed_key(1000, 10, 1, "def456")


def test_reference_key_depends_on_depth_and_book_code() -> None:
    stem = "synth-10sym-5000msg-seed1-abc123"
    assert bench_feed.reference_key(stem, 10, "0f0f") == f"{stem}.book-depth10-0f0f"
    assert bench_feed.reference_key(stem, 5, "0f0f") != bench_feed.reference_key(stem, 10, "0f0f")


def test_source_digest_changes_with_the_code(tmp_path: Path) -> None:
    module = tmp_path / "synth.py"
    module.write_text("A = 1\n")
    before = bench_feed.source_digest([module])
    module.write_text("A = 2\n")
    assert bench_feed.source_digest([module]) != before
    assert len(before) == 12


def test_the_feed_and_its_reference_are_generated_once_then_reused(tmp_path: Path) -> None:
    logged: list[str] = []
    path = bench_feed.ensure_feed(tmp_path, symbols=5, messages=3000, seed=3, log=logged.append)
    assert path.exists() and path.parent == tmp_path
    written = path.stat().st_mtime_ns
    assert bench_feed.ensure_feed(tmp_path, symbols=5, messages=3000, seed=3, log=logged.append) == path
    assert path.stat().st_mtime_ns == written
    reference = bench_feed.ensure_reference(path, depth=3, log=logged.append)
    assert len(reference["symbols"]) == 5 and reference["offline"]["messages"] == 3000
    assert bench_feed.ensure_reference(path, depth=3, log=logged.append) == reference
    assert sum("(cached)" in line for line in logged) == 2
    assert not list(tmp_path.glob("*partial*"))


# --------------------------------------------------------------------------------- run names and options


def test_run_names_keep_runs_apart() -> None:
    names = RunNames.new(datetime(2026, 11, 23, 13, 5, 9, 123_000, tzinfo=UTC))
    assert names.venue == "BENCH20261123130509123"
    assert names.venues == (
        "BENCH20261123130509123-WARM",
        "BENCH20261123130509123",
        "BENCH20261123130509123-LAT",
    )
    assert names.topic("raw") == "itchflow-bench-bench20261123130509123-raw"
    assert names.group("normalize") != names.group("order-book")
    assert ":" not in "".join(names.venues)  # venues are parts of ':'-separated Redis keys


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": 10},
        {"execution_mode": "fibers"},
        {"parallelism": 0},
        {"speed": 0.0},
        {"latency_messages": 0},
        {"latency_streams": 0},
    ],
)
def test_options_refuse_what_cannot_run(bad: dict) -> None:
    with pytest.raises(UserError):
        BenchOptions(**bad)


def test_the_execution_mode_defaults_to_the_clusters() -> None:
    assert effective_execution_mode(BenchOptions(execution_mode="process")) == "process"
    assert effective_execution_mode(BenchOptions()) in ("process", "thread")


def test_the_warm_up_sends_large_bundles_and_the_measured_phases_bundle_by_their_pace(tmp_path: Path) -> None:
    from itchflow.bench.runner import BenchRun
    from itchflow.config import StackConfig

    feed = tmp_path / "feed.itch"
    feed.write_bytes(b"")
    calls: dict[str, tuple[int, float] | None] = {}
    run = BenchRun(
        StackConfig(home=tmp_path), BenchOptions(messages=1000, warmup_messages=5), log=lambda m: None
    )
    dates: dict[str, date | str] = {}

    def replay(venue, payloads, record, speed=None, show=None, bundles=None, trading_date="the run's"):
        calls[venue] = bundles
        dates[venue] = trading_date

    run._replay = replay  # type: ignore[method-assign]
    run.warm_up(feed)
    run.measure_throughput(feed)
    # a bundle closes at 20,000 messages or 100 ms at the least in the warm-up (few records in the
    # broker's partitions before the latency phase); the full-speed throughput replay bundles as
    # large by default
    assert calls == {run.names.warmup_venue: (20_000, 100.0), run.names.venue: (20_000, 100.0)}
    assert run.options.bundles(paced=True) == (1000, 10.0)  # the latency phase's
    # the warm-up's bars and trades fall on another trading day than the measured run's
    assert dates == {run.names.warmup_venue: date(2019, 12, 28), run.names.venue: "the run's"}
    paced = BenchRun(StackConfig(home=tmp_path), BenchOptions(messages=1000, speed=5.0), log=lambda m: None)
    paced._replay = replay  # type: ignore[method-assign]
    paced.measure_throughput(feed)
    assert calls[paced.names.venue] == (1000, 10.0)
    large = BenchRun(
        StackConfig(home=tmp_path),
        BenchOptions(messages=1000, warmup_messages=5, batch_size=50_000, linger_ms=250),
        log=lambda m: None,
    )
    large._replay = lambda venue, payloads, record, speed=None, show=None, bundles=None, trading_date=None: (
        calls.update(  # type: ignore[method-assign]
            {"large": bundles}
        )
    )
    large.warm_up(feed)
    assert calls["large"] == (50_000, 250)
    large.measure_throughput(feed)  # the user's bundles for every phase
    assert calls["large"] == (50_000, 250)
    assert large.options.bundles(paced=True) == (50_000, 250)


def test_the_wait_for_books_grows_with_the_feed() -> None:
    assert BenchOptions(messages=1_000_000).wait_s == 400
    assert BenchOptions(messages=1_000_000, timeout_s=30).wait_s == 30


# --------------------------------------------------------------------------------- replay helpers


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_paced_runs_hand_out_every_message_due_at_i_over_rate() -> None:
    clock = FakeClock()
    clock.now = 0.0
    feed = [[b"a", b"b", b"c"], [b"d", b"e", b"f"]]
    paced = PacedRuns(lambda: iter(feed), count=5, rate=4, tick_s=0.25, clock=clock, sleep=clock.sleep)
    handed = []
    for run in paced.runs():
        handed.append((run, clock.now))
        clock.now += 0.6 if run == [b"a"] else 0.0  # handing out "a" took 0.6 s: "b" and "c" are due
    # message i is due at i / 4 s; nothing due -> sleep until the next one, but at least the tick
    assert handed == [
        ([b"a"], 0.0),
        ([b"b", b"c"], 0.6),
        ([b"d"], pytest.approx(0.85)),
        ([b"e"], pytest.approx(1.1)),
    ]
    assert clock.slept == pytest.approx([0.25, 0.25])


def test_paced_runs_stop_at_the_count_or_the_end_of_the_feed_and_iterate_as_payloads() -> None:
    clock = FakeClock()
    feed = [[b"a", b"b"], [], [b"c"]]
    assert list(PacedRuns(lambda: iter(feed), 10, rate=1e9, clock=clock, sleep=clock.sleep)) == [
        b"a",
        b"b",
        b"c",
    ]
    assert list(PacedRuns(lambda: iter(feed), 2, rate=1e9, clock=clock, sleep=clock.sleep)) == [b"a", b"b"]
    with pytest.raises(ValueError):
        PacedRuns(lambda: iter(feed), 2, rate=0)


def test_the_first_handoff_passes_paced_runs_on_as_runs() -> None:
    clock = FakeClock()
    handoff = FirstHandoff(
        PacedRuns(lambda: iter([[b"x", b"y"]]), 2, rate=1e9, clock=clock, sleep=clock.sleep)
    )
    assert handoff.runs is not None and handoff.monotonic is None
    assert [payload for run in handoff.runs() for payload in run] == [b"x", b"y"]
    assert handoff.monotonic is not None


def test_limited_and_first_handoff() -> None:
    handoff = FirstHandoff(limited(iter([b"x", b"y", b"z"]), 2))
    assert handoff.monotonic is None
    assert list(handoff) == [b"x", b"y"]
    assert handoff.monotonic is not None and handoff.epoch_ms is not None


def test_the_recording_encoder_stamps_the_bundle_with_the_time_it_notes() -> None:
    encoder = RecordingEncoder("BENCHX", session="BENCHX", record=True)
    payload = b"D" + b"\x00\x01" + b"\x00" * 16  # any bytes: the envelope does not decode them
    system = b"S" + b"\x00\x00" + b"\x00" * 9
    segments = (SegmentInput("AAPL", 1, 3, 40, (payload, payload)), SegmentInput("", 0, 7, 9, (system,)))
    envelope = decode_raw(encoder(ClosedBundle(2, 4, 5, segments)))
    assert (envelope.venue, envelope.partition, envelope.bundle_sequence) == ("BENCHX", 2, 5)
    assert [(s.symbol, s.first_message_seq) for s in envelope.segments] == [("AAPL", 40), ("", 9)]
    # market-wide segments are numbered per partition: no book waits for them
    assert encoder.sent == {"AAPL": [SentBatch(40, 2, envelope.produced_at_ns)]}


def test_applied_messages_are_capped_at_each_symbols_last_seq() -> None:
    assert messages_applied({"A": 9, "B": 2, "C": 50}, {"A": 9, "B": 4, "D": 0}) == 10 + 3 + 0


def test_cpu_use_is_the_growth_per_label_most_cpu_first() -> None:
    before = {"tm: order-book -> (": (10.0, 1.0), "tm: GC Thread": (1.0, 0.0), "gone": (5.0, 0.0)}
    after = {
        "tm: order-book -> (": (14.0, 3.0),
        "tm: GC Thread": (3.0, 0.5),
        "new thread": (0.5, 0.25),
        "idle": (0.0, 0.0),
    }
    assert list(cpu_used(before, after).items()) == [
        ("tm: order-book -> (", (4.0, 2.0)),
        ("tm: GC Thread", (2.0, 0.5)),
        ("new thread", (0.5, 0.25)),
    ]
    assert thread_label("GC Thread#3") == "GC Thread"
    assert thread_label("flink-pekko.actor.default-dispatcher-12") == "flink-pekko.actor.default-dispatcher"


# --------------------------------------------------------------------------------- the result


BAR_DELAYS_MS = [0.4, 3, 3, 7, 40, 2, 1, 600]
"""Bar publish delays of a phase (ms): sorted 0.4 1 2 3 3 7 40 600 -- the median (4th of 8) is in the
<= 5 ms bucket, the 99th percentile and the maximum in the <= 1000 ms one."""


def hand_made_result(problems: list[str] | None = None, bar_delays_ms: list[float] | None = None) -> dict:
    names = RunNames.new()
    throughput = Phase(
        venue=names.venue,
        messages=4000,
        records=10,
        replay_seconds=0.5,
        started=10.0,
        finished=12.0,
        started_epoch_ms=1.7e12,
        finished_epoch_ms=1.7e12 + 2000,
        last_seq={"AAPL": 2999, "MSFT": 999},
        cpu_seconds={
            "flink-taskmanager: order-book -> (": (1.5, 0.5),
            "kafka": (0.25, 0.0),
            "(whole machine)": (3.5, 1.0),  # busy including steal, stolen
        },
    )
    in_job = [0.0] * 13
    in_job[2], in_job[5] = 3, 1  # 3 records applied within 5 ms, 1 within 50 ms
    latency = (
        Phase(
            venue=names.latency_venue,
            messages=100,
            replay_seconds=0.01,
            started=5.0,
            finished=9.0,
            cpu_seconds={"redis": (1.0, 2.0), "(whole machine)": (6.0, 2.0)},
        ),
        [(1_700_000_000_000_000_000, 1_000_000), (1_700_000_000_500_000_000, 3_000_000)],
        0,
        in_job,
        None if bar_delays_ms is None else bucket_counts(bar_delays_ms),
    )
    return build_result(
        BenchRunInfo(
            partitions=4,
            jobs={"normalize": "ab12"},
            other_jobs=[],
            metaspace_mb=80.5,
            execution_mode="thread",
        ),
        BenchOptions(messages=4000, latency_messages=100),
        Path("feed.itch"),
        {"symbols": {}, "offline": {"messages": 4000, "decode_seconds": 0.01, "book_seconds": 0.01}},
        throughput,
        problems or [],
        latency,
        None,
        {"flink-taskmanager": 1234.5, "kafka": 30.0},
        {"itch_book (decode + book)": {"msgs_per_s": 8000, "seconds": 0.5}},
    )


def test_the_result_object_has_every_promised_field() -> None:
    result = hand_made_result()
    assert missing_keys(result) == []
    assert result["messages"] == 4000 and result["msgs_per_s"] == 2000 and result["correct"] is True
    assert result["latency_ms"]["p50"] == 2.0 and result["latency_ms"]["max"] == 3.0
    in_job = result["latency_ms"]["in_job_ms"]
    assert (in_job["p50"], in_job["p90"], in_job["p99"], in_job["records"]) == (5, 50, 50, 4)
    assert result["peak_rss_mb"] == 1234.5
    assert result["cpu"]["cores_busy"] == 0.88 and result["cpu"]["outside_stack_cores"] == 0.88
    assert result["cpu"]["stolen_cores"] == 0.5  # 1 s of steal over the 2 s phase
    phase_cpu = result["latency_ms"]["cpu"]  # the paced phase's own: 4 s, 1 s ours of 6 s busy
    assert (phase_cpu["cores_busy"], phase_cpu["machine_cores_busy"], phase_cpu["stolen_cores"]) == (
        0.25,
        1.5,
        0.5,
    )
    assert result["cpp"]["itch_book (decode + book)"]["x_pipeline"] == 4.0
    assert result["offline_python"]["msgs_per_s"] == 200_000
    assert result["run"]["partitions"] == 4 and result["taskmanager_metaspace_mb"] == 80.5
    json.dumps(result)  # --json prints it as is


def bucket_counts(latencies_ms: list[float]) -> list[float]:
    """The counter buckets a job would report for these latencies."""
    counts = [0.0] * (len(BOUNDS_MS) + 1)
    for latency in latencies_ms:
        counts[sum(bound < latency for bound in BOUNDS_MS)] += 1
    return counts


def test_the_bar_publish_delay_is_reported_from_the_jobs_buckets_when_it_writes_bars() -> None:
    result = hand_made_result(bar_delays_ms=BAR_DELAYS_MS)
    bars = result["latency_ms"]["bar_publish_ms"]
    assert (bars["p50"], bars["p99"], bars["max"], bars["firings"]) == (5, 1000, 1000, 8)
    text = render(result)
    assert (
        "bar publish    watermark past the bars' window end -> bars in Redis: p50 <= 5 ms   p99 <= 1000 ms   "
        "max <= 1000 ms   (8 firings)"
    ) in text
    json.dumps(result)
    beyond = render(hand_made_result(bar_delays_ms=[3, 9_000]))
    assert "p50 <= 5 ms   p99 > 5000 ms   max > 5000 ms   (2 firings)" in beyond
    assert "no bars fired by event time during the phase" in render(hand_made_result(bar_delays_ms=[]))
    no_bars = hand_made_result()
    assert no_bars["latency_ms"]["bar_publish_ms"] is None and "bar publish" not in render(no_bars)


def test_the_latency_is_split_at_the_phases_checkpoints() -> None:
    phase = Phase(
        venue="V", messages=3, replay_seconds=1.0, started_epoch_ms=10_000.0, finished_epoch_ms=20_000.0
    )
    sampler = SimpleNamespace(
        checkpoints={
            "market_data": {
                1: {"trigger_timestamp": 9_000, "status": "COMPLETED"},  # before the phase: not counted
                2: {"trigger_timestamp": 12_000, "status": "COMPLETED"},
            }
        }
    )
    ms = 1_000_000
    pairs = [(11_000 * ms, 10 * ms), (12_500 * ms, 300 * ms), (13_500 * ms, 20 * ms)]
    split = _near_checkpoints(pairs, phase, sampler)  # type: ignore[arg-type]
    assert split is not None and split["triggered"] == 1
    assert split["near"]["samples"] == 1 and split["near"]["max"] == 300.0
    assert split["elsewhere"]["samples"] == 2 and split["elsewhere"]["max"] == 20.0
    result = hand_made_result()
    result["latency_ms"]["checkpoints"] = split
    assert "within 1 s after one of the phase's 1 checkpoint(s): p50 300.0" in render(result)
    assert _near_checkpoints(pairs, phase, None) is None


def test_missing_keys_names_what_is_absent() -> None:
    assert missing_keys({"messages": 1, "latency_ms": {"p50": 1}}) == [
        "msgs_per_s",
        "stages",
        "checkpoint_ms",
        "peak_rss_mb",
        "correct",
        "latency_ms.p99",
        "latency_ms.max",
    ]


def test_the_table_shows_the_rate_and_the_verdict() -> None:
    text = render(hand_made_result())
    assert "2,000 msgs/s" in text and "correct        yes" in text
    assert "p99" in text and "TaskManager + Python workers 1,234 MB" in text
    assert "books applied in the job: p50 <= 5 ms   p90 <= 50 ms   p99 <= 50 ms   (4 records)" in text
    # the throughput phase: 0.88 outside the stack, 0.5 of it steal; the paced phase: 1.25, 0.5
    assert (
        "(machine 1.75, of which 0.88 outside this stack: 0.50 stolen by the hypervisor, 0.38 other" in text
    )
    assert (
        "0.25 cores busy during the phase over 4.0 s (machine 1.50, of which 1.25 outside this stack: 0.50 stolen"
        in text
    )
    assert "FAIL" not in text
    failed = render(hand_made_result(problems=["AAPL: resting orders 5 != 4"]))
    assert "FAIL: 1 differences" in failed and "AAPL: resting orders 5 != 4" in failed


# --------------------------------------------------------------------------------- completion


class ScriptedSink:
    """A sink whose applied seqs follow a script, one answer per poll; records what it was asked."""

    def __init__(self, answers: list[dict[str, int]]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    def __call__(self, symbols) -> dict[str, int]:
        self.asked.append(sorted(symbols))
        return self.answers[min(len(self.asked) - 1, len(self.answers) - 1)]


def test_completion_is_when_the_last_sink_is_first_seen_complete_polling_only_symbols_behind() -> None:
    clock = FakeClock()
    redis = ScriptedSink([{"A": 3}, {"A": 9, "B": 1}, {"B": 4}])
    clickhouse = ScriptedSink([{"A": 9, "B": 4}])
    finished = wait_for_books(
        [("Redis", redis), ("ClickHouse", clickhouse)],
        {"A": 9, "B": 4},
        timeout_s=60,
        poll_s=0.5,
        clock=clock,
        sleep=clock.sleep,
        show=False,
    )
    assert redis.asked == [["A", "B"], ["A", "B"], ["B"]]
    assert clickhouse.asked == [["A", "B"]]
    assert finished == 101.0  # Redis complete at its third poll (100 + 2 x 0.5), ClickHouse at once


def test_books_that_never_complete_end_the_wait_with_the_symbols_behind() -> None:
    clock = FakeClock()
    health_checks = []
    with pytest.raises(BooksBehind, match=r"1 symbols behind \(e.g. B"):
        wait_for_books(
            [("Redis", ScriptedSink([{"A": 9, "B": 1}]))],
            {"A": 9, "B": 4},
            timeout_s=10,
            poll_s=1.0,
            clock=clock,
            sleep=clock.sleep,
            show=False,
            check_health=lambda: health_checks.append(clock.now),
            health_every_s=4,
        )
    assert health_checks == [104.0, 108.0]


def test_the_latency_reader_follows_the_busiest_symbols() -> None:
    from tests.unit.test_replay_batcher import add_order, delete, directory, system_event

    feed = [
        directory(1, "AAA"),
        directory(2, "BBB"),
        directory(3, "CCC"),
        system_event(1),  # market-wide: no symbol
        *(add_order(2, "BBB", t, t) for t in range(5)),  # BBB: 1 + 5
        *(delete(3, t, t) for t in range(5)),  # CCC: 1 + 5
        add_order(1, "AAA", 9, 9),  # AAA: 1 + 1
        delete(7, 9, 9),  # a locate no directory named: not counted
    ]
    assert busiest_symbols(feed, 2) == ["BBB", "CCC"]  # six each, ties by name
    assert busiest_symbols(feed, 10) == ["BBB", "CCC", "AAA"]
    assert busiest_symbols(feed[:1], 5) == ["AAA"]


def test_job_args_reach_the_options_in_order_and_the_book_jobs_accept_the_sink_lingers() -> None:
    from itchflow.cli import build_parser

    args = build_parser().parse_args(
        ["bench", "--job-arg=--clickhouse-linger-ms=5000", "--job-arg=--redis-linger-ms=1"]
    )
    assert args.job_arg == ["--clickhouse-linger-ms=5000", "--redis-linger-ms=1"]
    assert build_parser().parse_args(["bench"]).job_arg == []

    import argparse

    from jobs.common import add_book_arguments

    parser = argparse.ArgumentParser()
    add_book_arguments(parser)
    chosen = parser.parse_args(args.job_arg)
    assert (chosen.clickhouse_linger_ms, chosen.redis_linger_ms) == (5000, 1)
    defaults = parser.parse_args([])
    assert (defaults.clickhouse_linger_ms, defaults.clickhouse_idle_ms, defaults.redis_linger_ms) == (
        3000,
        200,
        2,
    )


def test_machine_cpu_counts_steal_as_busy_and_apart() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice (ticks); guest is inside user
    busy, stolen = _machine_split("cpu  100 20 30 400 50 5 5 40 7 0")
    assert busy * CLOCK_TICKS == pytest.approx(200) and stolen * CLOCK_TICKS == pytest.approx(40)
    busy, stolen = _machine_split("cpu  100 20 30 400 50 5 5")  # an old kernel: no steal column
    assert busy * CLOCK_TICKS == pytest.approx(160) and stolen == 0
