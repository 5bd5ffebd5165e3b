"""What every job shares: its command line, and the environment with checkpointing and jars."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyflink.common import Configuration, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.kafka import MAX_PARALLELISM, KafkaSettings, add_kafka_jars, keyed_record_source
from itchflow.pipeline.collector import CollectorFreeze


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


def kafka_source(
    env: StreamExecutionEnvironment, args: argparse.Namespace, settings: KafkaSettings, topic: str, name: str
) -> DataStream:
    """The job's keyed-record source of ``topic``, named and uid'd ``name``, at ``--source-parallelism``."""
    source = env.from_source(
        keyed_record_source(settings, topic), WatermarkStrategy.no_watermarks(), name
    ).uid(name)
    if args.source_parallelism:
        source = source.set_parallelism(args.source_parallelism)
    return source


class FreezesCollector:
    """Mixin for the jobs' Python operators: ``open`` sets ``self.collector`` and
    ``process_element`` ticks it (no 0.1 s full-collection pauses, see
    :mod:`itchflow.pipeline.collector`); ``close`` gives the frozen objects back to the collector, so
    a closed job's garbage cycles do not outlive it in the TaskManager."""

    collector: CollectorFreeze

    def close(self) -> None:
        self.collector.release()
