"""Redis sink for jobs: pipelined, pre-encoded RESP commands (Java writer).

The job emits ``Row(command_count, resp_bytes, fired_at_ms)`` (type :data:`REDIS_COMMANDS`).
Stream entries carry deterministic ids, so a replay after a restore is refused by Redis and counted,
not doubled. ``fired_at_ms`` is set on the records of bars the watermark has just closed: the
wall-clock time (epoch ms) at which the operator found the watermark past their windows' ends (0 on
every other record). Once Redis has acknowledged such a record, the writer counts
``now - fired_at_ms`` into the ``barPublishDelay`` histogram (counter buckets,
:mod:`itchflow.pipeline.latency`).
"""

from __future__ import annotations

from urllib.parse import urlparse

from pyflink.common import Types
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway

from itchflow.pipeline.latency import BAR_PUBLISH_DELAY, BOUNDS_MS, bucket_names

REDIS_COMMANDS = Types.ROW([Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()])


def redis_sink(
    url: str, password_env: str = "ITCHFLOW_REDIS_PASSWORD", linger_ms: int = 2, max_bytes: int = 1 << 20
) -> Sink:
    parsed = urlparse(url)
    gateway = get_gateway()
    names = bucket_names(BAR_PUBLISH_DELAY)
    java_names = gateway.new_array(gateway.jvm.String, len(names))
    for index, name in enumerate(names):
        java_names[index] = name
    bounds = gateway.new_array(gateway.jvm.long, len(BOUNDS_MS))
    for index, bound in enumerate(BOUNDS_MS):
        bounds[index] = bound
    return Sink(
        gateway.jvm.itchflow.connectors.RedisSink(
            parsed.hostname or "127.0.0.1",
            parsed.port or 6379,
            password_env,
            linger_ms,
            max_bytes,
            java_names,
            bounds,
        )
    )
