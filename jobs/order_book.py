"""Order-book job: market-data-normalized -> every symbol's L3 book -> ClickHouse and Redis.

Keyed (in the JVM) by the record key, ``venue:#partition``: a record is a bundle of the events of
many symbols of one raw partition, and one key holds every book of that partition, live in memory.
State per key, touched once per record and in proportion to it: the books' snapshots as of the last
compaction (RocksDB MapState), the records applied since (ListState) and a token naming the live
books that equal it (see ``itchflow.pipeline.partition_books``). The work is in
``itchflow.pipeline.book_stage`` (one symbol) and ``partition_books`` (one key); this file wires
Kafka, state, metrics and the two sinks (Java writers that batch; at a checkpoint barrier the Redis
writer sends what it holds and the ClickHouse writer puts it into the checkpoint). Writes are
idempotent (deterministic ClickHouse keys, Redis stream ids), so a restore never doubles a row.

    itchflow submit order_book [--parallelism 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

from connectors.clickhouse import CLICKHOUSE_ROWS, clickhouse_sink
from connectors.kafka import key_by_record_key, split_record
from connectors.redis import REDIS_COMMANDS, redis_sink
from itchflow.avro import InvalidRecord
from itchflow.codeversion import check_loaded, source_fingerprint
from itchflow.config import NORMALIZED_TOPIC
from itchflow.normalize.bundle import NormalizedBundle
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.collector import CollectorFreeze
from itchflow.pipeline.latency import bucket_names, bucket_of
from itchflow.pipeline.partition_books import COUNTER_NAMES, BookCache
from jobs.common import FreezesCollector, job_arg_parser, kafka_settings, kafka_source, stream_environment

JOB_NAME = "itchflow-order-book"
LOG = logging.getLogger(__name__)
METRIC_NAMES = {
    "events_applied": "eventsApplied",
    "duplicates_skipped": "duplicateEvents",
    "tob_changes": "topOfBookChanges",
    "trades": "trades",
    "unknown_refs": "unknownOrderRefs",
    "market_wide_runs": "marketWideRuns",
}
REDIS_OUT = OutputTag("redis-commands", REDIS_COMMANDS)


class _FlinkBookState:
    """:class:`~itchflow.pipeline.partition_books.BookState` over this key's Flink state."""

    __slots__ = ("_token", "_snapshots", "_log")

    def __init__(self, token, snapshots, log) -> None:
        self._token, self._snapshots, self._log = token, snapshots, log

    def token(self) -> bytes | None:
        return self._token.value()

    def set_token(self, token: bytes) -> None:
        self._token.update(token)

    def snapshots(self):
        return list(self._snapshots.items())

    def put_snapshot(self, key: str, state: bytes) -> None:
        self._snapshots.put(key, state)

    def log(self):
        return list(self._log.get() or ())

    def append_log(self, payload: bytes) -> None:
        self._log.add(payload)

    def clear_log(self) -> None:
        self._log.clear()


class BookStep:
    """The per-record work of the order books with their state and metrics, for a keyed operator's
    ``open`` / ``process_element``: this job's, and the market-data job's (``jobs/market_data.py``)."""

    def __init__(self, runtime_context: RuntimeContext, config: BookStageConfig) -> None:
        # PICKLED_BYTE_ARRAY, not PRIMITIVE_ARRAY(BYTE): thread mode cannot read an empty
        # primitive-array state (PyFlink 2.3 converter bug); the values are the core's own bytes.
        data = Types.PICKLED_BYTE_ARRAY()
        self.state = _FlinkBookState(
            runtime_context.get_state(ValueStateDescriptor("token", data)),
            runtime_context.get_map_state(MapStateDescriptor("snapshots", Types.STRING(), data)),
            runtime_context.get_list_state(ListStateDescriptor("log", data)),
        )
        self.books = BookCache(config)
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.counters = {name: metrics.counter(METRIC_NAMES[name]) for name in COUNTER_NAMES}
        self.latency = [metrics.counter(name) for name in bucket_names("producedToBook")]
        self.bad_records = metrics.counter("badRecords")
        self.restores = metrics.counter("bookRestores")
        # No Python gauges: in thread mode Flink's metrics thread would call into the embedded
        # interpreter to read them, which crashed the TaskManager (SIGSEGV in pemja) when the web UI
        # or REST polled metrics. Counters are Java-side and safe; latency is measured by `itchflow bench`.

    def process(
        self, key: object, payload: bytes, bundle: NormalizedBundle | None = None
    ) -> Iterator[Row | tuple[OutputTag, Row]]:
        """Apply one normalized record of ``key`` (``bundle``: the same, decoded, when the caller has
        it); its outputs: ClickHouse rows on the main output, the Redis pipeline on ``REDIS_OUT``.
        An undecodable record is counted and skipped."""
        restores = self.books.restores
        try:
            output = self.books.process(key, payload, self.state, bundle)
        except InvalidRecord as error:
            self.bad_records.inc()  # not our normalizer's output: counted and skipped, never a crash loop
            LOG.warning("order book: skipped an undecodable normalized record: %s", error)
            return
        self.latency[bucket_of((time.time_ns() - output.ts_produced) / 1e6)].inc()
        if self.books.restores != restores:
            self.restores.inc()
        for name, count in output.counters.items():
            if count:
                self.counters[name].inc(count)
        for table, rows in output.clickhouse:
            yield Row(table, rows)
        if output.redis_commands:
            yield REDIS_OUT, Row(output.redis_commands, output.redis)


class MaintainBooks(FreezesCollector, KeyedProcessFunction):
    """Per record (a bundle of one partition's symbols): apply it to the key's live books, keep the
    state (token, snapshots, log) current, emit one chunk per ClickHouse table and one Redis pipeline."""

    def __init__(self, config: BookStageConfig, code: str) -> None:
        self.config = config
        self.code = code

    def open(self, runtime_context: RuntimeContext) -> None:
        check_loaded(self.code)  # thread mode: the TaskManager may hold modules of older code
        self.step = BookStep(runtime_context, self.config)
        self.collector = CollectorFreeze()  # no 0.1 s full-collection pauses (see the module)

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        yield from self.step.process(ctx.get_current_key(), bytes(split_record(value)[3]))


def build(normalized: DataStream, config: BookStageConfig) -> DataStream:
    return (
        key_by_record_key(normalized)
        .process(MaintainBooks(config, source_fingerprint()), output_type=CLICKHOUSE_ROWS)
        .name("order-book")
        # v2: state is per partition key (token, snapshots, log), not one ValueState per symbol;
        # a savepoint of the v1 operator must not be silently mapped onto it
        .uid("order-book-v2")
    )


def create_tables(url: str, user: str | None) -> None:
    """The project's DDL, applied from the client before the job starts (idempotent)."""
    import os
    from urllib.parse import urlparse

    import clickhouse_connect

    from itchflow.sinks.ddl import apply_ddl

    parsed = urlparse(url)
    client = clickhouse_connect.get_client(
        host=parsed.hostname,
        port=parsed.port or 8123,
        username=user or "default",
        password=os.environ.get("ITCHFLOW_CLICKHOUSE_PASSWORD", ""),
    )
    apply_ddl(client)
    client.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=NORMALIZED_TOPIC)
    add_book_arguments(parser)
    args = parser.parse_args(argv)
    config = book_config(args)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    normalized = kafka_source(env, args, settings, args.input_topic, "normalized-source")
    books = build(normalized, config)
    sink_books(books, args)
    env.execute(JOB_NAME)


def sink_books(books: DataStream, args: argparse.Namespace) -> None:
    """The book operator's ClickHouse rows (main output) and Redis pipelines (``REDIS_OUT``) to their sinks."""
    # Its own task (not chained): an HTTP insert blocks its thread for tens of ms, which must not
    # hold up the books or the Redis writes behind it (measured: p50 produce -> Redis 0.6 s at 5k msg/s
    # when chained). Records reach it through Flink's local buffers; what it holds at a checkpoint
    # barrier goes into the checkpoint (inserting it there back-pressured the books, see README).
    books.sink_to(
        clickhouse_sink(
            args.clickhouse_url,
            args.clickhouse_user,
            linger_ms=args.clickhouse_linger_ms,
            idle_ms=args.clickhouse_idle_ms,
        )
    ).name("clickhouse-sink").uid("clickhouse-sink").disable_chaining()
    books.get_side_output(REDIS_OUT).sink_to(redis_sink(args.redis_url, linger_ms=args.redis_linger_ms)).name(
        "redis-sink"
    ).uid("redis-sink")


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
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


def book_config(args: argparse.Namespace) -> BookStageConfig:
    if not args.clickhouse_url or not args.redis_url:
        raise SystemExit("--clickhouse-url and --redis-url are required")
    create_tables(args.clickhouse_url, args.clickhouse_user)
    return BookStageConfig(depth_levels=args.depth_levels, cadence_ns=args.cadence_ms * 1_000_000)


if __name__ == "__main__":
    main(sys.argv[1:])
