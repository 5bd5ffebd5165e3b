"""Analytics job: book-events -> OHLCV bars, sliding VWAP and moving averages, bursts, OFI, liquidity.

The analytics of the one-job pipeline (``market_data``) as a job of their own, for deployments that
run the normalize and order-book jobs apart: it reads what the order-book job's books made of each
record (``book-events``: prints with match numbers, broken trades, top-of-book changes with sizes,
depth snapshots; ``schemas/book/BookEvents.avsc``), keyed like the books (``@<shard>/<shards>``), in
event time with watermarks per Kafka partition, and writes the same ClickHouse tables and Redis keys
with the same operator steps (``jobs/operators.py``: :class:`~jobs.operators.AnalyticsSteps`). The
end of a replay (passed on by the normalize and order-book jobs) closes every window; late prints
and undecodable records go to the dead-letter topic.

    itchflow submit normalize && itchflow submit order_book && itchflow submit analytics
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyflink.datastream import StreamExecutionEnvironment

from connectors.clickhouse import CLICKHOUSE_ROWS
from connectors.kafka import key_by_record_key
from itchflow.analytics.bar_stage import BarConfig
from itchflow.analytics.flow_stage import FlowConfig
from itchflow.codeversion import source_fingerprint
from itchflow.config import BOOK_EVENTS_TOPIC, DEAD_LETTER_TOPIC
from jobs.common import (
    Sinks,
    Sources,
    add_bar_arguments,
    add_book_arguments,
    add_flow_arguments,
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
from jobs.operators import DEAD_LETTERS, REDIS_OUT, ComputeAnalytics

JOB_NAME = "itchflow-analytics"


@dataclass(frozen=True)
class AnalyticsConfig:
    source_topic: str = BOOK_EVENTS_TOPIC
    """The book-events topic's name, recorded in every dead letter's provenance."""
    redis_prefix: str = "itchflow"
    bars: BarConfig | None = field(default_factory=default_bar_config)
    """OHLCV bars with the sliding VWAP, moving averages and bursts (None: off)."""
    flow: FlowConfig | None = field(default_factory=FlowConfig)
    """Order-flow imbalance and liquidity (None: off)."""


def build(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks, config: AnalyticsConfig) -> None:
    """sources ``book-events`` -> the analytics -> sinks ``clickhouse``, ``redis`` and ``dead-letters``."""
    events = sources["book-events"](env)
    analytics = (
        key_by_record_key(events)
        .process(
            ComputeAnalytics(
                config.source_topic, config.redis_prefix, source_fingerprint(), config.bars, config.flow
            ),
            output_type=CLICKHOUSE_ROWS,
        )
        .name("analytics")
        # v2: state keyed by a shard of the symbol (``@<shard>/<shards>``), not by raw partition; a
        # savepoint of the partition-keyed layout must not be silently mapped onto it (its state would
        # sit under keys no record carries any more)
        .uid("analytics-v2")
    )
    sinks["clickhouse"](analytics)
    sinks["redis"](analytics.get_side_output(REDIS_OUT))
    sinks["dead-letters"](analytics.get_side_output(DEAD_LETTERS))


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=BOOK_EVENTS_TOPIC)
    parser.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC)
    parser.add_argument(
        "--topic-linger-ms",
        type=int,
        default=20,
        help="how long the dead-letter producer waits to fill a request (default 20)",
    )
    add_book_arguments(parser)  # the sinks' settings; --depth-levels: what the order-book job publishes
    add_bar_arguments(parser)
    add_flow_arguments(parser)
    args = parser.parse_args(argv)
    sinks = book_sinks(args)
    create_tables(args)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    sources = {"book-events": kafka_source(args, settings, args.input_topic, "book-events-source")}
    sinks["dead-letters"] = kafka_sink(
        settings, args.dead_letter_topic, "dead-letter-sink", args.topic_linger_ms
    )
    config = AnalyticsConfig(
        source_topic=args.input_topic,
        redis_prefix=book_config(args).redis_prefix,
        bars=bar_config(args),
        flow=flow_config(args),
    )
    if config.bars is None and config.flow is None:
        raise SystemExit("--no-bars and --no-book-analytics leave the analytics job nothing to do")
    build(env, sources, sinks, config)
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
