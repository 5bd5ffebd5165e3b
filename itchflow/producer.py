"""The replay's Kafka producer: librdkafka (``confluent-kafka``) behind the small interface the
replay uses (``partitions_for``, ``send`` -> a delivery with ``get``, ``flush``, ``close``).

Why librdkafka: at a paced 20 k msg/s the replay's Python Kafka client (kafka-python) spent more of
a core than the batching and Avro encoding together -- its network thread, per-request wakeups and
record-batch building are Python (py-spy of ``itchflow bench``); librdkafka does that work in C on
its own threads. Records, keys, partitions and ordering are the same as before: ``acks=all``,
idempotence, lz4, one request in flight per connection, explicit partitions (and Kafka's Java
``murmur2`` partitioner for a keyed record without one).
"""

from __future__ import annotations

import logging
from typing import Any

from itchflow.errors import UserError

LOG = logging.getLogger(__name__)

SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    # The batcher already lingers (``--linger-ms``) and one record is a whole bundle: send at once;
    # records that close while a request is in flight still go out together in the next one.
    "linger.ms": 1,
    "batch.size": 16 << 20,
    "message.max.bytes": 16 << 20,
    # one request in flight: a retried batch can never overtake the next one, whatever the broker
    # does with idempotent-producer sequence numbers (per-symbol order is the contract)
    "max.in.flight.requests.per.connection": 1,
    "message.send.max.retries": 10,
    "request.timeout.ms": 30000,
    "partitioner": "murmur2_random",  # the Java client's default: a keyed record lands where it would
    "client.id": "itchflow-replay",
}
CONNECT_TIMEOUT_S = 10.0


class ProduceError(Exception):
    """A record the broker did not take (after librdkafka's retries), or no answer in time."""


class Delivery:
    """What :meth:`Producer.send` returns: the record's fate once the broker answered."""

    __slots__ = ("_producer", "done", "error")

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.done = False
        self.error: object = None

    def _settle(self, error: object, message: object) -> None:
        self.done, self.error = True, error

    def get(self, timeout: float = 60.0) -> None:
        """Wait until the broker acknowledged the record (raises :class:`ProduceError` if it did not)."""
        if not self.done:
            self._producer.flush(timeout)
        if not self.done:
            raise ProduceError(f"no acknowledgement from the broker within {timeout:.0f} s")
        if self.error is not None:
            raise ProduceError(str(self.error))


class Producer:
    """librdkafka producer with :data:`SETTINGS`; ``properties`` (librdkafka names, e.g.
    ``security.protocol``) override them."""

    def __init__(self, bootstrap_servers: str, properties: dict[str, Any] | None = None) -> None:
        import confluent_kafka

        self._kafka = confluent_kafka
        self.bootstrap_servers = bootstrap_servers
        self._producer = confluent_kafka.Producer(
            # librdkafka's own log lines (a connection the broker closed, ...) go to Python logging
            {**SETTINGS, "bootstrap.servers": bootstrap_servers, "logger": LOG, **(properties or {})}
        )

    def partitions_for(self, topic: str) -> set[int] | None:
        """The topic's partition ids, ``None`` if the broker does not have it.

        Raises:
            UserError: the broker did not answer.
        """
        try:
            # every topic's metadata: asking for the one topic would make the broker create it
            metadata = self._producer.list_topics(timeout=CONNECT_TIMEOUT_S)
        except self._kafka.KafkaException as exc:
            raise UserError(
                f"cannot reach the Kafka broker at {self.bootstrap_servers} ({exc}). "
                "Start the local stack with `itchflow stack up`, or pass --bootstrap-servers."
            ) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return set(found.partitions)

    def send(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Delivery:
        """Queue one record (waiting while librdkafka's local queue is full)."""
        delivery = Delivery(self)
        options: dict[str, Any] = {"key": key, "on_delivery": delivery._settle}
        if partition is not None:
            options["partition"] = partition
        if headers:
            options["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, value, **options)
                break
            except BufferError:  # the local queue is full: let the network threads drain it
                self._producer.poll(0.05)
            except self._kafka.KafkaException as exc:  # refused before sending, e.g. too large
                raise ProduceError(str(exc)) from exc
        self._producer.poll(0)  # serve the delivery callbacks of records already acknowledged
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record was acknowledged or failed (at most ``timeout`` s)."""
        self._producer.flush(-1 if timeout is None else timeout)

    def close(self) -> None:
        """Send what is queued, then let the client go (librdkafka closes with the object)."""
        self._producer.flush(CONNECT_TIMEOUT_S)
