"""Kafka source and sink builders for every job: jar loading and the platform workarounds, once.

* The connector jars are not part of apache-flink; ``itchflow setup`` extracts them and
  :func:`add_kafka_jars` ships them with the job (``pipeline.jars`` alone fails with
  ``flink run -py``, PLATFORM.md).
* PyFlink hard-codes the shaded class names of the fat SQL connector jar in
  ``KafkaOffsetsInitializer.committed_offsets``; with the thin jars we build the Java
  initializer through py4j instead (:func:`committed_offsets_or`).
* Keyed output is ``Row(key_bytes, value_bytes)`` typed :data:`KEYED_BYTES` and split into
  the Kafka key and value by ``RowFieldExtractorSchema``.
* Delivery: AT_LEAST_ONCE by default because the local broker's transactions do not isolate
  (PLATFORM.md); sinks downstream are idempotent. Use EXACTLY_ONCE against a real Kafka.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway

from itchflow.bootstrap import connector_jar_paths, helpers_jar_path
from itchflow.shards import unsalted

KEYED_BYTES = Types.ROW([Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())])
KEYED_TIMED = Types.ROW(
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()]
)
"""``Row(key, value, event time ns)`` for a :func:`keyed_bytes_sink`: the record's event time given
with it (:data:`NO_EVENT_TIME`: none). For side outputs, whose records PyFlink emits without the
input's timestamp (measured: thread mode, PyFlink 2.3); main outputs keep it and may stay
:data:`KEYED_BYTES`."""
# what connectors/java/.../KeyedRecordDeserializer emits: Row(record key, header + record value)
KEYED_RECORD = Types.ROW([Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])
RECORD_HEADER = struct.Struct(">iqqqi")
"""What KeyedRecordDeserializer puts before a record's value: partition, offset, Kafka timestamp (ms),
event time (UTC epoch ns, :data:`NO_EVENT_TIME` if none) and flags (:data:`END_OF_REPLAY`,
:data:`HEARTBEAT`)."""
NO_EVENT_TIME = -(2**63)
END_OF_REPLAY = 1
"""Header flag: the producer's end-of-replay marker (an empty record per shard, see ``itchflow/replay.py``)."""
HEARTBEAT = 2
"""Header flag: a paced replay's heartbeat (an empty record whose event time moves the watermark)."""
FUTURE = 4
"""Header flag set by the source: the record's event time is more than ``max_future_ms`` ahead of
the wall clock. It moves no watermark; the jobs dead-letter it (reason ``future``)."""
DEFAULT_MAX_FUTURE_MS = 3_600_000
EVENT_TIME_HEADER = "itchflow.event-time-ns"
"""Kafka header of a record's event time (8 bytes big-endian, UTC epoch ns; see ``EventTime.java``)."""
END_OF_REPLAY_HEADER = "itchflow.end-of-replay"
HEARTBEAT_HEADER = "itchflow.heartbeat"


def topic_key(key: str) -> bytes:
    """The Kafka key of a record written under the Flink key ``key``: a salted shard key
    (``@<s>/<n>~<salt>``, see ``KeyedRecordDeserializer.java``) loses its salt, any other
    key stays as it is."""
    return unsalted(key).encode()


def control_record(key: str, flags: int, event_time: int | None = None) -> Row:
    """An end-of-replay marker or heartbeat (``flags``) passed on under the Flink key ``key`` to a
    :func:`keyed_bytes_sink`: a one-byte value, which the sink's serializer writes as the replay
    does, an empty record with the flags' headers (``KeyedRecordSerializer.java``), so the next job
    sees it as its own source's. With ``event_time`` (ns): a :data:`KEYED_TIMED` row."""
    if event_time is None:
        return Row(topic_key(key), bytes([flags]))
    return Row(topic_key(key), bytes([flags]), event_time)


@dataclass(frozen=True)
class KafkaSettings:
    """Where and how a job talks to Kafka; built from the job's command line."""

    bootstrap_servers: str
    group_id: str
    delivery: str = "at-least-once"  # or "exactly-once" (real Kafka only)
    client_properties: dict[str, str] = field(default_factory=dict)  # security.protocol, sasl.*, ssl.*


def add_kafka_jars(env: StreamExecutionEnvironment) -> None:
    """Ship the connector jars and our compiled Java helpers with the job."""
    env.add_jars(*(path.as_uri() for path in [*connector_jar_paths(), helpers_jar_path()]))


def committed_offsets_or(reset: str = "earliest") -> KafkaOffsetsInitializer:
    """Start from the group's committed offsets, else from ``reset`` (earliest | latest)."""
    jvm = get_gateway().jvm
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer
    strategy = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.valueOf(reset.upper())
    return KafkaOffsetsInitializer(initializer.committedOffsets(strategy))


def bytes_source(settings: KafkaSettings, *topics: str, reset: str = "earliest") -> KafkaSource:
    """A source of raw record values (bytes); offsets are committed on checkpoints."""
    return _source_builder(settings, topics, reset).set_value_only_deserializer(ByteArraySchema()).build()


MAX_PARALLELISM = 128
"""Key groups of every job (``env.set_max_parallelism``): fixed, because savepoints depend on it and
the balanced bundle keys (see ``KeyedRecordDeserializer.java``) are spread over exactly this many."""


def keyed_record_source(
    settings: KafkaSettings, *topics: str, reset: str = "earliest", max_future_ms: int = DEFAULT_MAX_FUTURE_MS
) -> KafkaSource:
    """A source of ``Row(key, header + value)`` (:data:`KEYED_RECORD`), built in the JVM; records
    more than ``max_future_ms`` ahead of the wall clock are flagged :data:`FUTURE` (0: never).

    Pair it with :func:`key_by_record_key` and split values with :func:`split_record`.
    """
    builder = _source_builder(settings, topics, reset)
    deserializer = get_gateway().jvm.itchflow.connectors.KeyedRecordDeserializer(
        MAX_PARALLELISM, max_future_ms
    )
    builder._j_builder.setDeserializer(deserializer)
    return builder.build()


def key_by_record_key(stream: DataStream) -> KeyedStream:
    """Key a :func:`keyed_record_source` stream by the Kafka record key, in the JVM.

    The keyed Python function then receives only the value (header + bytes), and
    ``ctx.get_current_key()`` is the record key: no extra Python operator for keying.
    """
    jvm = get_gateway().jvm
    keyed = stream._j_data_stream.keyBy(
        jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    return KeyedStream(keyed, Types.PRIMITIVE_ARRAY(Types.BYTE()), stream)


def split_record(value: bytes) -> tuple[int, int, int, memoryview]:
    """(partition, offset, timestamp_ms, payload) of a value from :func:`keyed_record_source`."""
    partition, offset, timestamp_ms, _, _ = RECORD_HEADER.unpack_from(value, 0)
    return partition, offset, timestamp_ms, memoryview(value)[RECORD_HEADER.size :]


def record_event_time(value: bytes) -> tuple[int, int]:
    """(event time in UTC epoch ns or :data:`NO_EVENT_TIME`, flags) of a :func:`keyed_record_source` value."""
    _, _, _, event_time, flags = RECORD_HEADER.unpack_from(value, 0)
    return event_time, flags


def event_time_watermarks(
    out_of_orderness_ms: int, idleness_ms: int, *, per_record: bool = False
) -> WatermarkStrategy:
    """Watermarks from the records' event time (:class:`EventTimeAssigner`, in the JVM), per Kafka
    partition when given to a Kafka source: at most ``out_of_orderness_ms`` behind the latest event
    time seen; a partition without records for ``idleness_ms`` of wall time (0: never) stops holding
    the others back until it has records again. Emitted periodically (``pipeline.auto-watermark-interval``),
    or after every record with ``per_record`` (``PerRecordWatermarks.java``)."""
    jvm = get_gateway().jvm
    duration = jvm.java.time.Duration
    if per_record:
        strategy = jvm.itchflow.connectors.PerRecordWatermarks(out_of_orderness_ms)
    else:
        strategy = jvm.org.apache.flink.api.common.eventtime.WatermarkStrategy.forBoundedOutOfOrderness(
            duration.ofMillis(out_of_orderness_ms)
        ).withTimestampAssigner(jvm.itchflow.connectors.EventTimeAssigner())
    if idleness_ms > 0:
        strategy = strategy.withIdleness(duration.ofMillis(idleness_ms))
    return WatermarkStrategy(strategy)


def _source_builder(settings: KafkaSettings, topics: tuple[str, ...], reset: str):
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.bootstrap_servers)
        .set_group_id(settings.group_id)
        .set_topics(*topics)
        .set_starting_offsets(committed_offsets_or(reset))
        .set_property("commit.offsets.on.checkpoint", "true")
        # How long a fetch may wait for data. tansu does not answer a waiting fetch when data arrives
        # (measured: wait 100 ms -> p50/p90 14/40 ms per hop, 20 ms -> 7/12 ms), so this bounds the
        # latency of each hop; the Java default (500 ms) added ~125-250 ms. Lower costs CPU while
        # idle (2 ms: ~0.25 core in the TaskManager and as much in tansu for two idle jobs).
        # Override in --kafka-properties.
        .set_property("fetch.max.wait.ms", "5")
        .set_property("partition.discovery.interval.ms", "30000")
        .set_client_id_prefix(settings.group_id)
    )
    for key, value in settings.client_properties.items():
        builder = builder.set_property(key, value)
    return builder


def keyed_bytes_sink(settings: KafkaSettings, topic: str, linger_ms: int = 1) -> KafkaSink:
    """A sink for ``Row(key_bytes, value_bytes)`` records (type :data:`KEYED_BYTES`, or
    :data:`KEYED_TIMED` with their event time); its producer waits up to ``linger_ms`` to fill a
    request (the local broker's cost is per request)."""
    guarantee = (
        DeliveryGuarantee.EXACTLY_ONCE
        if settings.delivery == "exactly-once"
        else DeliveryGuarantee.AT_LEAST_ONCE
    )
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.bootstrap_servers)
        .set_delivery_guarantee(guarantee)
        .set_property("compression.type", "lz4")
        .set_property("linger.ms", str(linger_ms))
        # a bundle of 20,000 messages normalizes to ~1.2 MB: the 1 MB default failed the job
        .set_property("max.request.size", str(16 << 20))
        # one request in flight: a retried batch never overtakes the next (per-key order is the
        # contract downstream, and the local broker's idempotent-producer checks are unverified)
        .set_property("max.in.flight.requests.per.connection", "1")
    )
    # shard keys go to their shard's partition (one writer per key), the event time in
    # a header (see KeyedRecordSerializer.java); set in the JVM, as PyFlink's setter expects its own
    # builder's serializers
    builder._j_builder.setRecordSerializer(get_gateway().jvm.itchflow.connectors.KeyedRecordSerializer(topic))
    if guarantee == DeliveryGuarantee.EXACTLY_ONCE:
        builder = builder.set_transactional_id_prefix(settings.group_id)
    for key, value in settings.client_properties.items():
        builder = builder.set_property(key, value)
    return builder.build()
