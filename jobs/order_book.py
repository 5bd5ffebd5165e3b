"""Order-book job: market-data-normalized -> every symbol's L3 book -> ClickHouse and Redis.

Keyed (in the JVM) by the record key, ``@<shard>/<shards>``: a record is a bundle of the events of
many symbols of one shard (``itchflow/shards.py``), and one key holds every book of that shard, of
every venue, live in memory.
State per key, touched once per record and in proportion to it: the books' snapshots as of the last
compaction (RocksDB MapState), the records applied since (ListState) and a token naming the live
books that equal it (see ``itchflow.pipeline.partition_books``). The work is in
``itchflow.pipeline.book_stage`` (one symbol) and ``partition_books`` (one key), the operator in
``jobs/operators.py``; the two sinks are Java writers that batch (at a checkpoint barrier the Redis
writer sends what it holds and the ClickHouse writer puts it into the checkpoint). Writes are
idempotent (deterministic ClickHouse keys, Redis stream ids), so a restore never doubles a row.

What the books made of each record -- prints with match numbers, broken trades, top-of-book changes
with sizes, depth snapshots -- goes to the ``book-events`` topic (``schemas/book/BookEvents.avsc``)
for the analytics job (``jobs/analytics.py``), with the replay's end-of-replay markers and
heartbeats passed on; ``--book-events-topic ''`` turns it off.

    itchflow submit order_book [--parallelism 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyflink.datastream import StreamExecutionEnvironment

from connectors.clickhouse import CLICKHOUSE_ROWS
from connectors.kafka import key_by_record_key
from itchflow.codeversion import source_fingerprint
from itchflow.config import BOOK_EVENTS_TOPIC, NORMALIZED_TOPIC
from itchflow.pipeline.book_stage import BookStageConfig
from jobs.common import (
    Sinks,
    Sources,
    add_book_arguments,
    book_config,
    book_sinks,
    create_tables,
    job_arg_parser,
    kafka_settings,
    kafka_sink,
    kafka_source,
    stream_environment,
)
from jobs.operators import BOOK_EVENTS_OUT, REDIS_OUT, MaintainBooks

JOB_NAME = "itchflow-order-book"


def build(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks, config: BookStageConfig) -> None:
    """sources ``normalized`` -> the books -> sinks ``clickhouse`` (rows), ``redis`` (pipelines) and,
    when ``sinks`` has it, ``book-events``."""
    normalized = sources["normalized"](env)
    events = "book-events" in sinks
    books = (
        key_by_record_key(normalized)
        .process(MaintainBooks(config, source_fingerprint(), events), output_type=CLICKHOUSE_ROWS)
        .name("order-book")
        # v2: state is per bundle key (token, snapshots, log), not one ValueState per symbol; v3: the
        # bundle key is a shard of the symbol (``@<shard>/<shards>``), not a raw partition. A savepoint
        # of an earlier layout must not be silently mapped onto it
        .uid("order-book-v3")
    )
    sinks["clickhouse"](books)
    sinks["redis"](books.get_side_output(REDIS_OUT))
    if events:
        sinks["book-events"](books.get_side_output(BOOK_EVENTS_OUT))


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=NORMALIZED_TOPIC)
    parser.add_argument(
        "--book-events-topic",
        default=BOOK_EVENTS_TOPIC,
        help=f"where what the books made of each record goes, for the analytics job (default {BOOK_EVENTS_TOPIC}; '': off)",
    )
    parser.add_argument(
        "--topic-linger-ms",
        type=int,
        default=20,
        help="how long the book-events producer waits to fill a request (default 20)",
    )
    add_book_arguments(parser)
    args = parser.parse_args(argv)
    sinks = book_sinks(args)
    create_tables(args)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    sources = {"normalized": kafka_source(args, settings, args.input_topic, "normalized-source")}
    if args.book_events_topic:
        sinks["book-events"] = kafka_sink(
            settings, args.book_events_topic, "book-events-sink", args.topic_linger_ms
        )
    build(env, sources, sinks, book_config(args))
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
