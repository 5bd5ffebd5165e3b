"""Smoke job: read one topic, count records per key in RocksDB keyed state, write another topic.

Records are keyed in the JVM by their Kafka key (no Python key selector); each output record
keeps the key and carries ``<key>:<count>:<value>``, where ``count`` is how many records of that
key the job has seen (so state, checkpoints and restores are visible in the output).

    itchflow submit smoke -- --input-topic smoke-in --output-topic smoke-out
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.state import ValueStateDescriptor

from connectors.kafka import KEYED_BYTES, key_by_record_key, split_record
from jobs.common import (
    Sinks,
    Sources,
    job_arg_parser,
    kafka_settings,
    kafka_sink,
    kafka_source,
    stream_environment,
)

JOB_NAME = "itchflow-smoke"


class CountPerKey(KeyedProcessFunction):
    """Counts records per key; state is one ValueState named ``count``."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        key = _key_text(ctx.get_current_key()).encode()
        payload = bytes(split_record(value)[3])
        seen = (self.count.value() or 0) + 1
        self.count.update(seen)
        yield Row(key, key + b":" + str(seen).encode() + b":" + payload)


def _key_text(key) -> str:
    return key[0] if isinstance(key, (Row, tuple, list)) else str(key)


def build(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks, config: None = None) -> None:
    """sources ``input`` -> count per key -> sinks ``output``."""
    counted = (
        key_by_record_key(sources["input"](env))
        .process(CountPerKey(), output_type=KEYED_BYTES)
        .name("count-per-key")
        .uid("count-per-key")
    )
    sinks["output"](counted)


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    args = parser.parse_args(argv)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    sources = {"input": kafka_source(args, settings, args.input_topic, "kafka-source")}
    sinks = {"output": kafka_sink(settings, args.output_topic, "kafka-sink")}
    build(env, sources, sinks)
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
