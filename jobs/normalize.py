"""Normalization job: market-data-raw -> market-data-normalized, bad input -> dead-letter.

A raw record is a bundle of one partition's symbols (key ``venue:#partition``); its normalized
record keeps that key, so the order-book job keeps a partition's books together. (A per-symbol
``ItchBatch`` of an older producer, keyed by symbol, gives a record keyed ``venue:symbol``.)

Keyed (in the JVM) by the raw record's key; per key one small state (per symbol: the producer
session and batch sequence, for gap and duplicate tracking), kept live in memory and written as a
log of each record's changes plus a snapshot every 128 records (``SequenceCache``). The work is in
``itchflow.pipeline.normalize_stage``; this file only wires Kafka, state, metrics and outputs.

    itchflow submit normalize [--parallelism 2]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from connectors.kafka import (
    KEYED_BYTES,
    key_by_record_key,
    keyed_bytes_sink,
    split_record,
)
from itchflow.codeversion import check_loaded, source_fingerprint
from itchflow.config import DEAD_LETTER_TOPIC, NORMALIZED_TOPIC, RAW_TOPIC
from itchflow.pipeline.collector import CollectorFreeze
from itchflow.pipeline.latency import bucket_names, bucket_of
from itchflow.pipeline.normalize_stage import (
    JOB_NAME,
    NormalizeOutcome,
    RecordSource,
    SequenceCache,
    normalize_record,
)
from jobs.common import FreezesCollector, job_arg_parser, kafka_settings, kafka_source, stream_environment

DEAD_LETTERS = OutputTag("dead-letters", KEYED_BYTES)


class _FlinkSequenceState:
    """:class:`~itchflow.pipeline.normalize_stage.SequenceStore` over this key's Flink state."""

    __slots__ = ("_snapshot", "_log")

    def __init__(self, snapshot, log) -> None:
        self._snapshot, self._log = snapshot, log

    def snapshot(self) -> tuple | None:
        return self._snapshot.value()

    def put_snapshot(self, value: tuple) -> None:
        self._snapshot.update(value)

    def log(self):
        return list(self._log.get() or ())

    def append_log(self, changed) -> None:
        self._log.add(changed)

    def clear_log(self) -> None:
        self._log.clear()


class NormalizeStep:
    """The per-record work of normalization with its state and metrics, for a keyed operator's
    ``open`` / ``process_element``: this job's, and the market-data job's (``jobs/market_data.py``)."""

    def __init__(self, runtime_context: RuntimeContext, source_topic: str) -> None:
        self.source_topic = source_topic
        # "sequence" keeps its name and form (savepoints of the earlier layout restore); the log
        # holds what each record changed since the last compaction (see SequenceCache)
        self.state = _FlinkSequenceState(
            runtime_context.get_state(ValueStateDescriptor("sequence", Types.PICKLED_BYTE_ARRAY())),
            runtime_context.get_list_state(ListStateDescriptor("sequence-log", Types.PICKLED_BYTE_ARRAY())),
        )
        self.sequences = SequenceCache()
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.messages_in = metrics.counter("messagesIn")
        self.events_out = metrics.counter("eventsOut")
        self.dead_letters = metrics.counter("deadLetters")
        self.duplicates = metrics.counter("duplicateBatches")
        self.gap_messages = metrics.counter("gapMessages")
        self.latency = [metrics.counter(name) for name in bucket_names("producedToNormalizer")]

    def process(self, key: object, value: bytes) -> tuple[NormalizeOutcome, bytes]:
        """Normalize one keyed raw record (state read and written, metrics counted): the outcome and
        the record's key (what its dead letters are keyed by)."""
        key_text = key[0] if isinstance(key, (Row, tuple, list)) else str(key)
        partition, offset, timestamp_ms, payload = split_record(value)
        source = RecordSource(self.source_topic, partition, offset, timestamp_ms, key_text.encode())
        outcome = normalize_record(bytes(payload), source, self.sequences.state(key_text, self.state))
        self.sequences.save(key_text, self.state, outcome)
        self.messages_in.inc(outcome.messages_in)
        if outcome.ts_produced:
            self.latency[bucket_of((outcome.ts_recv - outcome.ts_produced) / 1e6)].inc()
        self.events_out.inc(outcome.events_out)
        # each counter call crosses into the JVM: only the ones with something to count
        if outcome.gap_messages:
            self.gap_messages.inc(outcome.gap_messages)
        if outcome.duplicates:
            self.duplicates.inc(outcome.duplicates)
        if outcome.dead_letters:
            self.dead_letters.inc(len(outcome.dead_letters))
        return outcome, source.key


class Normalize(FreezesCollector, KeyedProcessFunction):
    """Loads the key's sequence state, calls the core, saves state, emits."""

    def __init__(self, source_topic: str, code: str) -> None:
        self.source_topic = source_topic
        self.code = code

    def open(self, runtime_context: RuntimeContext) -> None:
        check_loaded(self.code)  # thread mode: the TaskManager may hold modules of older code
        self.step = NormalizeStep(runtime_context, self.source_topic)
        self.collector = CollectorFreeze()  # no 0.1 s full-collection pauses (see the module)

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        outcome, source_key = self.step.process(ctx.get_current_key(), value)
        if outcome.normalized is not None:
            yield Row(outcome.output_key, outcome.normalized)
        for letter in outcome.dead_letters:
            yield DEAD_LETTERS, Row(source_key, letter)


def build(raw: DataStream, source_topic: str) -> DataStream:
    """raw keyed records -> normalized Row(key, value); dead letters on the DEAD_LETTERS side output."""
    return (
        key_by_record_key(raw)
        .process(Normalize(source_topic, source_fingerprint()), output_type=KEYED_BYTES)
        .name("normalize")
        .uid("normalize")
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-topic", default=RAW_TOPIC)
    parser.add_argument("--output-topic", default=NORMALIZED_TOPIC)
    parser.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC)
    args = parser.parse_args(argv)
    env = stream_environment(args)
    settings = kafka_settings(args, default_group=JOB_NAME)
    raw = kafka_source(env, args, settings, args.input_topic, "raw-source")
    normalized = build(raw, args.input_topic)
    normalized.sink_to(keyed_bytes_sink(settings, args.output_topic)).name("normalized-sink").uid(
        "normalized-sink"
    )
    normalized.get_side_output(DEAD_LETTERS).sink_to(keyed_bytes_sink(settings, args.dead_letter_topic)).name(
        "dead-letter-sink"
    ).uid("dead-letter-sink")
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main(sys.argv[1:])
