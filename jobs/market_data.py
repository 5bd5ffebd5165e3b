"""Market-data job: market-data-raw -> normalized events and every symbol's L3 book in one operator.

What the normalization job and the order-book job do, in one keyed operator per symbol shard key
(``@<shard>/<shards>``, every venue of the shard's symbols) and with both jobs' state, per raw record in turn: normalize it (sequence
state; the normalized record goes to market-data-normalized for the other consumers, bad input to
the dead-letter topic), then apply the same normalized record to the key's books (token, snapshots,
log; ClickHouse and Redis as the order-book job). One Kafka hop and one Python crossing less than the
two jobs: measured with ``itchflow bench`` (default ``--pipeline market-data``) ~25% more messages/s
and a fraction of the produce->Redis latency. The operator (``jobs/operators.py``) runs the same
steps as the two jobs, which stay for deployments that scale or upgrade normalization apart from
the books.

    itchflow submit market_data [--parallelism 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

from connectors.clickhouse import CLICKHOUSE_ROWS
from connectors.kafka import key_by_record_key
from connectors.redis import REDIS_COMMANDS
from itchflow.analytics.bar_stage import BarConfig
from itchflow.analytics.flow_stage import FlowConfig
from itchflow.cep.detectors import DetectorConfig
from itchflow.codeversion import source_fingerprint
from itchflow.config import DEAD_LETTER_TOPIC, NORMALIZED_TOPIC, RAW_TOPIC
from itchflow.pipeline.book_stage import BookStageConfig
from jobs.common import (
    Sinks,
    Sources,
    add_alert_arguments,
    add_bar_arguments,
    add_book_arguments,
    add_flow_arguments,
    alert_config,
    alert_stream_maxlen,
    bar_config,
    book_config,
    book_sinks,
    create_tables,
    default_bar_config,
    flow_config,
    job_arg_parser,
    kafka_settings,
    kafka_sink,
    kafka_source,
    stream_environment,
)
from jobs.operators import (
    ALERTS_OUT,
    DEAD_LETTERS,
    NORMALIZED_OUT,
    REDIS_OUT,
    NormalizeAndMaintainBooks,
    SequenceAlerts,
)

JOB_NAME = "itchflow-market-data"


@dataclass(frozen=True)
class MarketDataConfig:
    source_topic: str = RAW_TOPIC
    """The raw topic's name, recorded in every dead letter's provenance."""
    books: BookStageConfig = field(default_factory=BookStageConfig)
    bars: BarConfig | None = field(default_factory=default_bar_config)
    """OHLCV bars in event time from the books' prints, with the sliding VWAP and moving averages
    over them (None: books only)."""
    flow: FlowConfig | None = field(default_factory=FlowConfig)
    """Order-flow imbalance and liquidity from the books (None: off)."""
    alert_stream_maxlen: int = 100_000
    """Approximate length cap of the Redis alert streams (``MAXLEN ~``; 0: no cap)."""
    alerts: DetectorConfig | None = None
    """The cross-venue detectors: arbitrage, stale symbols, halts (None: off, the default: they cost
    about 40 % of the job's throughput for now; docs/alerts.md)."""


def build(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks, config: MarketDataConfig) -> None:
    """sources ``raw`` -> normalize, the books and their bars -> sinks ``normalized``,
    ``dead-letters``, ``clickhouse`` and ``redis``."""
    raw = sources["raw"](env)
    books = (
        key_by_record_key(raw)
        .process(
            NormalizeAndMaintainBooks(
                config.source_topic,
                config.books,
                source_fingerprint(),
                config.bars,
                config.flow,
                config.alerts,
            ),
            output_type=CLICKHOUSE_ROWS,
        )
        .name("market-data")
        # v2: state keyed by a shard of the symbol (``@<shard>/<shards>``), not by raw partition; a
        # savepoint of the partition-keyed layout must not be silently mapped onto it (its state would
        # sit under keys no record carries any more)
        .uid("market-data-v2")
    )
    sinks["normalized"](books.get_side_output(NORMALIZED_OUT))
    sinks["dead-letters"](books.get_side_output(DEAD_LETTERS))
    sinks["clickhouse"](books)
    redis = books.get_side_output(REDIS_OUT)
    if config.alerts is not None:
        # every key's alerts through one task, in one order: the Redis streams' ids are deterministic
        streams = (
            books.get_side_output(ALERTS_OUT)
            .key_by(lambda _: 0, key_type=Types.INT())
            .process(
                SequenceAlerts(config.books.redis_prefix, config.alert_stream_maxlen, source_fingerprint()),
                output_type=REDIS_COMMANDS,
            )
            .name("alert-streams")
            .uid("alert-streams-v1")
            .set_parallelism(1)
        )
        redis = redis.union(streams)
    sinks["redis"](redis)


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=RAW_TOPIC)
    parser.add_argument("--output-topic", default=NORMALIZED_TOPIC)
    parser.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC)
    parser.add_argument(
        "--topic-linger-ms",
        type=int,
        default=20,
        help="how long the normalized and dead-letter producers wait to fill a request (default 20): "
        "they are off the books' latency path, and fewer requests spare the broker",
    )
    add_book_arguments(parser)
    add_bar_arguments(parser)
    add_flow_arguments(parser)
    add_alert_arguments(parser)
    args = parser.parse_args(argv)
    sinks = book_sinks(args)
    create_tables(args)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    sources = {"raw": kafka_source(args, settings, args.input_topic, "raw-source")}
    sinks |= {
        "normalized": kafka_sink(settings, args.output_topic, "normalized-sink", args.topic_linger_ms),
        "dead-letters": kafka_sink(
            settings, args.dead_letter_topic, "dead-letter-sink", args.topic_linger_ms
        ),
    }
    config = MarketDataConfig(
        source_topic=args.input_topic,
        books=book_config(args),
        bars=bar_config(args),
        flow=flow_config(args),
        alerts=alert_config(args),
        alert_stream_maxlen=alert_stream_maxlen(args),
    )
    build(env, sources, sinks, config)
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
