"""What every entry point shares: its command line, the environment, and the production sources and
sinks that ``main()`` plugs into a job's ``build(env, sources, sinks, config)``.

A *source* is a function of the environment returning a stream of ``Row(key, header + value)``
records (:data:`~connectors.kafka.KEYED_RECORD`, what the Kafka source emits); a *sink* is a function
that attaches a named, uid'd sink to a stream. The jobs' ``build`` functions take them by name
(sources: ``raw``, ``normalized``; sinks: ``normalized``, ``dead-letters``, ``clickhouse``,
``redis``), so tests plug in collections and collecting sinks instead (``tests/flink``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.clickhouse import clickhouse_sink
from connectors.kafka import (
    DEFAULT_MAX_FUTURE_MS,
    MAX_PARALLELISM,
    KafkaSettings,
    add_kafka_jars,
    event_time_watermarks,
    keyed_bytes_sink,
    keyed_record_source,
)
from connectors.redis import redis_sink
from itchflow.analytics.bar_stage import BarConfig
from itchflow.analytics.bars import parse_interval
from itchflow.analytics.bursts import DEFAULT_BURST_ALERT_PRINTS_PER_S, BurstConfig
from itchflow.analytics.flow_stage import FlowConfig
from itchflow.analytics.rolling import RollingConfig
from itchflow.cep.cli import add_detector_arguments, detector_config
from itchflow.cep.detectors import DetectorConfig
from itchflow.pipeline.book_stage import BookStageConfig

Source = Callable[[StreamExecutionEnvironment], DataStream]
"""Makes a stream of ``Row(key, header + value)`` records in the environment."""
Sink = Callable[[DataStream], None]
"""Attaches a named, uid'd sink to a stream."""
Sources = Mapping[str, Source]
Sinks = Mapping[str, Sink]


def job_arg_parser(description: str) -> argparse.ArgumentParser:
    """The flags every job accepts (`itchflow submit` fills them from the stack's config)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap-servers", required=True, help="Kafka bootstrap servers host:port[,...]")
    parser.add_argument("--group-id", help="consumer group (default: the job's name)")
    parser.add_argument(
        "--delivery",
        choices=("at-least-once", "exactly-once"),
        default="at-least-once",
        help="Kafka sink guarantee; exactly-once needs a broker with isolating transactions (not tansu)",
    )
    parser.add_argument(
        "--kafka-properties",
        type=Path,
        help="Java-style .properties file of extra Kafka client settings (security.protocol, sasl.*, ssl.*)",
    )
    parser.add_argument(
        "--clickhouse-url", help="ClickHouse HTTP URL (user via --clickhouse-user, password via env)"
    )
    parser.add_argument("--clickhouse-user", help="ClickHouse user (password: ITCHFLOW_CLICKHOUSE_PASSWORD)")
    parser.add_argument("--redis-url", help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--execution-mode",
        choices=("process", "thread"),
        help="PyFlink Python execution mode (default: flink-conf/config.yaml's python.execution-mode)",
    )
    parser.add_argument("--parallelism", type=int, help="job parallelism (default: the cluster's)")
    parser.add_argument(
        "--source-parallelism",
        type=int,
        help="parallelism of the Kafka source (default: the job's). Each source subtask is one consumer "
        "polling the broker; the keyed operators after it keep the job's parallelism",
    )
    parser.add_argument(
        "--out-of-orderness-ms",
        type=int,
        default=1000,
        help="event time: how far behind the latest event time of a Kafka partition its watermark "
        "stays (default 1000 ms of feed time)",
    )
    parser.add_argument(
        "--idleness-ms",
        type=int,
        default=0,
        help="event time: a partition without records for this long (wall clock) stops holding back "
        "the watermark of the others (default 0: never). Only for live feeds with quiet partitions: "
        "under back-pressure a partition that waits its turn looks idle, and its records come late",
    )
    parser.add_argument(
        "--max-future-ms",
        type=int,
        default=DEFAULT_MAX_FUTURE_MS,
        help="event time: a record stamped more than this ahead of the wall clock (a replay with a "
        "date to come, a damaged header) moves no watermark and goes to the dead letters with reason "
        f"future (default {DEFAULT_MAX_FUTURE_MS:,}; 0: no check)",
    )
    return parser


def read_properties(path: Path | None) -> dict[str, str]:
    """``key=value`` lines; ``#`` comments. Values are never logged (they may hold secrets)."""
    if path is None:
        return {}
    result = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def kafka_settings(args: argparse.Namespace, default_group: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id or default_group,
        delivery=args.delivery,
        client_properties=read_properties(args.kafka_properties),
    )


def stream_environment(args: argparse.Namespace) -> StreamExecutionEnvironment:
    """The execution environment with the connector jars; checkpointing comes from config.yaml."""
    config = Configuration()
    if args.execution_mode:
        config.set_string("python.execution-mode", args.execution_mode)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    add_kafka_jars(env)
    env.set_max_parallelism(MAX_PARALLELISM)
    if args.parallelism:
        env.set_parallelism(args.parallelism)
    return env


def kafka_source(args: argparse.Namespace, settings: KafkaSettings, topic: str, name: str) -> Source:
    """The keyed-record source of ``topic``, named and uid'd ``name``, at ``--source-parallelism``."""

    def make(env: StreamExecutionEnvironment) -> DataStream:
        # watermarks per Kafka partition from the records' event time (in the JVM)
        watermarks = event_time_watermarks(args.out_of_orderness_ms, args.idleness_ms)
        records = keyed_record_source(settings, topic, max_future_ms=args.max_future_ms)
        source = env.from_source(records, watermarks, name).uid(name)
        if args.source_parallelism:
            source = source.set_parallelism(args.source_parallelism)
        return source

    return make


def kafka_sink(settings: KafkaSettings, topic: str, name: str, linger_ms: int = 1) -> Sink:
    """``Row(key, value)`` records to ``topic``, by a sink named and uid'd ``name``."""

    def attach(stream: DataStream) -> None:
        stream.sink_to(keyed_bytes_sink(settings, topic, linger_ms)).name(name).uid(name)

    return attach


def book_sinks(args: argparse.Namespace) -> dict[str, Sink]:
    """The books' ClickHouse rows and Redis pipelines to their Java writers (``--clickhouse-*``,
    ``--redis-*`` flags)."""
    if not args.clickhouse_url or not args.redis_url:
        raise SystemExit("--clickhouse-url and --redis-url are required")

    def to_clickhouse(rows: DataStream) -> None:
        # Its own task (not chained): an HTTP insert blocks its thread for tens of ms, which must not
        # hold up the books or the Redis writes behind it (measured: p50 produce -> Redis 0.6 s at
        # 5k msg/s when chained). Records reach it through Flink's local buffers; what it holds at a
        # checkpoint barrier goes into the checkpoint (inserting it there back-pressured the books).
        writer = clickhouse_sink(
            args.clickhouse_url,
            args.clickhouse_user,
            linger_ms=args.clickhouse_linger_ms,
            idle_ms=args.clickhouse_idle_ms,
        )
        rows.sink_to(writer).name("clickhouse-sink").uid("clickhouse-sink").disable_chaining()

    def to_redis(commands: DataStream) -> None:
        writer = redis_sink(args.redis_url, linger_ms=args.redis_linger_ms)
        commands.sink_to(writer).name("redis-sink").uid("redis-sink")

    return {"clickhouse": to_clickhouse, "redis": to_redis}


def create_tables(args: argparse.Namespace) -> None:
    """The project's ClickHouse DDL, run from the client before the job is submitted (idempotent)."""
    from itchflow.sinks.ddl import create_tables as create

    create(args.clickhouse_url, args.clickhouse_user)


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
    """The order books' flags (the order-book and market-data jobs)."""
    parser.add_argument(
        "--depth-levels", type=int, default=10, help="L2 levels in depth snapshots (default 10)"
    )
    parser.add_argument(
        "--cadence-ms", type=int, default=1000, help="event-time interval of periodic depth snapshots"
    )
    parser.add_argument(
        "--clickhouse-linger-ms",
        type=int,
        default=3000,
        help="how long ClickHouse rows wait to fill an insert while rows keep coming (default 3000; "
        "rows held at a checkpoint go into it)",
    )
    parser.add_argument(
        "--clickhouse-idle-ms",
        type=int,
        default=200,
        help="insert this long after the last row when the stream pauses (default 200; 0: linger only)",
    )
    parser.add_argument(
        "--redis-linger-ms",
        type=int,
        default=2,
        help="how long Redis commands wait to fill a pipeline (default 2): on the top-of-book latency path",
    )


def add_bar_arguments(parser: argparse.ArgumentParser) -> None:
    """The bars' flags (the market-data job)."""
    parser.add_argument(
        "--bars",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="OHLCV bars in event time from the books' prints (default on)",
    )
    parser.add_argument(
        "--bar-intervals", default="1s,1m,5m", help="bar sizes, comma-separated (default 1s,1m,5m)"
    )
    parser.add_argument(
        "--allowed-lateness-ms",
        type=int,
        default=0,
        help="how long after a bar's window (event time) a late print still revises it; later ones go "
        "to the dead-letter topic with reason late (default 0)",
    )
    parser.add_argument(
        "--bar-stream-maxlen", type=int, default=10_000, help="cap of each symbol's Redis stream of bars"
    )
    parser.add_argument(
        "--rolling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sliding VWAP and SMA / EMA over the bars (default on; needs the bars)",
    )
    parser.add_argument(
        "--vwap-window", default="5m", help="sliding VWAP window, a multiple of the slide (default 5m)"
    )
    parser.add_argument(
        "--vwap-slide", default="1s", help="sliding VWAP slide, one of the bar sizes (default 1s)"
    )
    parser.add_argument("--ma-bars", type=int, default=20, help="bars in the SMA / EMA (default 20)")
    parser.add_argument(
        "--bursts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bursts: runs of a symbol's prints less than --burst-gap-ms apart (default on)",
    )
    parser.add_argument("--burst-gap-ms", type=int, default=500, help="gap that ends a burst (default 500)")
    parser.add_argument("--burst-min-prints", type=int, default=2, help="prints a burst needs (default 2)")
    parser.add_argument(
        "--burst-alert-prints-per-s",
        type=int,
        default=DEFAULT_BURST_ALERT_PRINTS_PER_S,
        help="flag a burst (alert stream) with at least this many prints per second of its duration, "
        f"at least the gap (default {DEFAULT_BURST_ALERT_PRINTS_PER_S}; 0: off)",
    )
    parser.add_argument(
        "--burst-alert-shares-per-s",
        type=int,
        default=0,
        help="flag a burst with at least this many shares per second (default 0: off)",
    )
    parser.add_argument(
        "--ma-interval",
        default="1m",
        help="bar size of the SMA / EMA closes, one of the bar sizes (default 1m)",
    )
    parser.add_argument(
        "--bar-stream-intervals",
        default="1m,5m",
        help="the bar sizes that also go into the symbols' Redis streams (default 1m,5m; every size has "
        "its latest-bar hash and its ClickHouse rows)",
    )


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """The order-flow imbalance and liquidity flags (the market-data job)."""
    parser.add_argument(
        "--book-analytics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="order-flow imbalance and liquidity from the books (default on)",
    )
    parser.add_argument("--ofi-intervals", default="1s,1m", help="OFI window sizes (default 1s,1m)")
    parser.add_argument("--liquidity-intervals", default="1s", help="liquidity window sizes (default 1s)")
    parser.add_argument(
        "--liquidity-levels",
        type=int,
        default=10,
        help="levels per side of the liquidity's depth, at most --depth-levels (default 10)",
    )


def add_alert_arguments(parser: argparse.ArgumentParser) -> None:
    """The cross-venue detectors' flags (the market-data job; docs/alerts.md)."""
    parser.add_argument(
        "--alerts",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="cross-venue alerts: arbitrage, stale symbols, halts and LULD pauses (default off: about "
        "40%% of the job's throughput for now)",
    )
    add_detector_arguments(parser)
    parser.add_argument(
        "--alert-stream-maxlen",
        type=int,
        default=100_000,
        help="cap of the Redis alert streams (MAXLEN ~; 0: none; default 100000)",
    )


def alert_stream_maxlen(args: argparse.Namespace) -> int:
    if args.alert_stream_maxlen < 0:
        raise SystemExit("--alert-stream-maxlen must not be negative")
    return args.alert_stream_maxlen


def alert_config(args: argparse.Namespace) -> DetectorConfig | None:
    """The detectors' settings from their flags (None with ``--no-alerts``)."""
    if not args.alerts:
        return None
    try:
        return detector_config(args)
    except ValueError as error:
        raise SystemExit(f"--arbitrage-min-ms / --stale-after-ms: {error}") from None


def flow_config(args: argparse.Namespace) -> FlowConfig | None:
    """The book analytics' settings from their flags (None with ``--no-book-analytics``)."""
    if not args.book_analytics:
        return None
    if args.liquidity_levels > args.depth_levels:
        raise SystemExit(
            f"--liquidity-levels {args.liquidity_levels} is more than the books' --depth-levels {args.depth_levels}"
        )
    try:
        return FlowConfig(
            ofi_intervals_s=_intervals(args.ofi_intervals),
            liquidity_intervals_s=_intervals(args.liquidity_intervals),
            depth_levels=args.liquidity_levels,
        )
    except ValueError as error:
        raise SystemExit(f"--ofi-intervals / --liquidity-*: {error}") from None


def _intervals(text: str) -> tuple[int, ...]:
    return tuple(parse_interval(part.strip()) for part in text.split(",") if part.strip())


def default_bar_config() -> BarConfig:
    """The bars as the jobs run them by default: 1 s / 1 m / 5 m, with the sliding VWAP, the moving
    averages and bursts (flagged at the default intensity)."""
    return BarConfig(
        rolling=RollingConfig(), bursts=BurstConfig(alert_prints_per_s=DEFAULT_BURST_ALERT_PRINTS_PER_S)
    )


def bar_config(args: argparse.Namespace) -> BarConfig | None:
    """The bars' settings from their flags (None with ``--no-bars``)."""
    if not args.bars:
        return None
    try:
        intervals = _intervals(args.bar_intervals)
        streamed = _intervals(args.bar_stream_intervals)
    except ValueError as error:
        raise SystemExit(f"--bar-intervals / --bar-stream-intervals: {error}") from None
    if args.allowed_lateness_ms < 0:
        raise SystemExit("--allowed-lateness-ms must not be negative")
    try:
        rolling = (
            RollingConfig(
                vwap_window_s=parse_interval(args.vwap_window),
                vwap_slide_s=parse_interval(args.vwap_slide),
                ma_bars=args.ma_bars,
                ma_interval_s=parse_interval(args.ma_interval),
            )
            if args.rolling
            else None
        )
        return BarConfig(
            intervals_s=intervals,
            allowed_lateness_ms=args.allowed_lateness_ms,
            stream_maxlen=args.bar_stream_maxlen,
            stream_intervals_s=streamed,
            rolling=rolling,
            bursts=BurstConfig(
                gap_ms=args.burst_gap_ms,
                min_prints=args.burst_min_prints,
                alert_prints_per_s=args.burst_alert_prints_per_s or None,
                alert_shares_per_s=args.burst_alert_shares_per_s or None,
            )
            if args.bursts
            else None,
        )
    except ValueError as error:
        raise SystemExit(f"--vwap-* / --ma-* / --burst-*: {error}") from None


def book_config(args: argparse.Namespace) -> BookStageConfig:
    """The order books' settings from their flags (no side effects)."""
    return BookStageConfig(depth_levels=args.depth_levels, cadence_ns=args.cadence_ms * 1_000_000)
