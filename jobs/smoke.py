"""Smoke job: read one topic, count records per key in RocksDB keyed state, write another topic.

Records are keyed in the JVM by their Kafka key (no Python key selector); each output record
keeps the key and carries ``<key>:<count>:<value>``, where ``count`` is how many records of that
key the job has seen (so state, checkpoints and restores are visible in the output).

    itchflow submit smoke -- --input-topic smoke-in --output-topic smoke-out
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.kafka import (
    KEYED_BYTES,
    key_by_record_key,
    keyed_bytes_sink,
    keyed_record_source,
    split_record,
)
from jobs.common import job_arg_parser, kafka_settings, stream_environment

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


def build(source: DataStream) -> DataStream:
    """The pipeline, independent of where records come from and go to."""
    return (
        key_by_record_key(source)
        .process(CountPerKey(), output_type=KEYED_BYTES)
        .name("count-per-key")
        .uid("count-per-key")
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    args = parser.parse_args(argv)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    source = env.from_source(
        keyed_record_source(settings, args.input_topic), WatermarkStrategy.no_watermarks(), "kafka-source"
    )
    source = source.uid("kafka-source")
    build(source).sink_to(keyed_bytes_sink(settings, args.output_topic)).name("kafka-sink").uid("kafka-sink")
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
