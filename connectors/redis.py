"""Redis sink for jobs: pipelined, pre-encoded RESP commands (Java writer).

The job emits ``Row(command_count, resp_bytes)`` (type :data:`REDIS_COMMANDS`). Stream entries
carry deterministic ids, so a replay after a restore is refused by Redis and counted, not doubled.
"""

from __future__ import annotations

from urllib.parse import urlparse

from pyflink.common import Types
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway

REDIS_COMMANDS = Types.ROW([Types.INT(), Types.PRIMITIVE_ARRAY(Types.BYTE())])


def redis_sink(
    url: str, password_env: str = "ITCHFLOW_REDIS_PASSWORD", linger_ms: int = 2, max_bytes: int = 1 << 20
) -> Sink:
    parsed = urlparse(url)
    jvm = get_gateway().jvm
    return Sink(
        jvm.itchflow.connectors.RedisSink(
            parsed.hostname or "127.0.0.1", parsed.port or 6379, password_env, linger_ms, max_bytes
        )
    )
