"""Order-book job: market-data-normalized -> every symbol's L3 book -> ClickHouse and Redis.

Keyed (in the JVM) by symbol; each symbol's book and what was last emitted live in one RocksDB
ValueState (a versioned snapshot, loaded and saved once per record, i.e. once per batch of
events). The work is in ``itchflow.pipeline.book_stage``; this file wires Kafka, state, metrics
and the two sinks (Java writers that batch and flush before every checkpoint barrier). Writes are
idempotent (deterministic ClickHouse keys, Redis stream ids), so a restore never doubles a row.

    itchflow submit order_book [--parallelism 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.clickhouse import CLICKHOUSE_ROWS, clickhouse_sink
from connectors.kafka import key_by_record_key, keyed_record_source, split_record
from connectors.redis import REDIS_COMMANDS, redis_sink
from itchflow.config import NORMALIZED_TOPIC
from itchflow.normalize import decode_normalized_batch
from itchflow.pipeline.book_stage import BookStageConfig, StageCache
from jobs.common import job_arg_parser, kafka_settings, stream_environment

JOB_NAME = "itchflow-order-book"
REDIS_OUT = OutputTag("redis-commands", REDIS_COMMANDS)


class MaintainBook(KeyedProcessFunction):
    """Load the symbol's state, apply one normalized batch, save, emit sink records."""

    def __init__(self, config: BookStageConfig) -> None:
        self.config = config

    def open(self, runtime_context: RuntimeContext) -> None:
        # PICKLED_BYTE_ARRAY, not PRIMITIVE_ARRAY(BYTE): thread mode cannot read an empty
        # primitive-array state (PyFlink 2.3 converter bug); the value is BookStage's own bytes.
        self.book = runtime_context.get_state(ValueStateDescriptor("book", Types.PICKLED_BYTE_ARRAY()))
        # live books of this process, reused when the state bytes are the ones just saved
        # (skips deserializing the book on every batch; any other bytes restore normally)
        self.stages = StageCache(max_books=1024)
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.events_in = metrics.counter("eventsApplied")
        self.duplicates = metrics.counter("duplicateEvents")
        self.tob_changes = metrics.counter("topOfBookChanges")
        self.trades = metrics.counter("trades")
        self.unknown_refs = metrics.counter("unknownOrderRefs")
        self.skipped = metrics.counter("marketWideBatches")
        # No Python gauges: in thread mode Flink's metrics thread would call into the embedded
        # interpreter to read them, which crashed the TaskManager (SIGSEGV in pemja) when the web UI
        # or REST polled metrics. Counters are Java-side and safe; latency is measured by `itchflow bench`.

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        payload = split_record(value)[3]
        batch = decode_normalized_batch(bytes(payload))
        if not batch.symbol:
            self.skipped.inc()  # market-wide events (system, MWCB): no book
            return
        stage = self.stages.restore(
            self.book.value(), venue=batch.venue, symbol=batch.symbol, config=self.config
        )
        output = stage.apply(batch)
        self.book.update(self.stages.snapshot(stage))
        counters = output.counters
        self.events_in.inc(counters.get("events_applied", 0))
        self.duplicates.inc(counters.get("duplicates_skipped", 0))
        self.tob_changes.inc(counters.get("tob_changes", 0))
        self.trades.inc(counters.get("trades", 0))
        self.unknown_refs.inc(counters.get("unknown_refs", 0))
        for table, rows in output.clickhouse:
            yield Row(table, rows)
        if output.redis_commands:
            yield REDIS_OUT, Row(output.redis_commands, output.redis)


def build(normalized: DataStream, config: BookStageConfig) -> DataStream:
    return (
        key_by_record_key(normalized)
        .process(MaintainBook(config), output_type=CLICKHOUSE_ROWS)
        .name("order-book")
        .uid("order-book")
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
    parser.add_argument(
        "--depth-levels", type=int, default=10, help="L2 levels in depth snapshots (default 10)"
    )
    parser.add_argument(
        "--cadence-ms", type=int, default=1000, help="event-time interval of periodic depth snapshots"
    )
    args = parser.parse_args(argv)
    if not args.clickhouse_url or not args.redis_url:
        parser.error("--clickhouse-url and --redis-url are required")
    create_tables(args.clickhouse_url, args.clickhouse_user)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    config = BookStageConfig(depth_levels=args.depth_levels, cadence_ns=args.cadence_ms * 1_000_000)
    normalized = env.from_source(
        keyed_record_source(settings, args.input_topic),
        WatermarkStrategy.no_watermarks(),
        "normalized-source",
    ).uid("normalized-source")
    books = build(normalized, config)
    books.sink_to(clickhouse_sink(args.clickhouse_url, args.clickhouse_user)).name("clickhouse-sink").uid(
        "clickhouse-sink"
    )
    books.get_side_output(REDIS_OUT).sink_to(redis_sink(args.redis_url)).name("redis-sink").uid("redis-sink")
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
