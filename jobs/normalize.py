"""Normalization job: market-data-raw -> market-data-normalized, bad input -> dead-letter.

A raw record is a bundle of one shard's symbols (key ``@<shard>/<shards>``, see ``itchflow/shards.py``);
its normalized record keeps that key, so the order-book job keeps a shard's books together. (A per-symbol
``ItchBatch`` of an older producer, keyed by symbol, gives a record keyed ``venue:symbol``.)

Keyed (in the JVM) by the raw record's key; per key one small state (per symbol: the producer
session and batch sequence, for gap and duplicate tracking), kept live in memory and written as a
log of each record's changes plus a snapshot every 128 records (``SequenceCache``). The work is in
``itchflow.pipeline.normalize_stage``, the operator in ``jobs/operators.py``.

    itchflow submit normalize [--parallelism 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.datastream import StreamExecutionEnvironment

from connectors.kafka import KEYED_BYTES, key_by_record_key
from itchflow.codeversion import source_fingerprint
from itchflow.config import DEAD_LETTER_TOPIC, NORMALIZED_TOPIC, RAW_TOPIC
from itchflow.pipeline.normalize_stage import JOB_NAME
from jobs.common import (
    Sinks,
    Sources,
    job_arg_parser,
    kafka_settings,
    kafka_sink,
    kafka_source,
    stream_environment,
)
from jobs.operators import DEAD_LETTERS, Normalize


@dataclass(frozen=True)
class NormalizeConfig:
    source_topic: str = RAW_TOPIC
    """The raw topic's name, recorded in every dead letter's provenance."""


def build(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks, config: NormalizeConfig) -> None:
    """sources ``raw`` -> normalize -> sinks ``normalized`` and ``dead-letters``."""
    raw = sources["raw"](env)
    normalized = (
        key_by_record_key(raw)
        .process(Normalize(config.source_topic, source_fingerprint()), output_type=KEYED_BYTES)
        .name("normalize")
        # v2: state keyed by a shard of the symbol (``@<shard>/<shards>``), not by raw partition; a
        # savepoint of the partition-keyed layout must not be silently mapped onto it (its state would
        # sit under keys no record carries any more)
        .uid("normalize-v2")
    )
    sinks["normalized"](normalized)
    sinks["dead-letters"](normalized.get_side_output(DEAD_LETTERS))


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=RAW_TOPIC)
    parser.add_argument("--output-topic", default=NORMALIZED_TOPIC)
    parser.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC)
    args = parser.parse_args(argv)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    sources = {"raw": kafka_source(args, settings, args.input_topic, "raw-source")}
    sinks = {
        "normalized": kafka_sink(settings, args.output_topic, "normalized-sink"),
        "dead-letters": kafka_sink(settings, args.dead_letter_topic, "dead-letter-sink"),
    }
    build(env, sources, sinks, NormalizeConfig(source_topic=args.input_topic))
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
