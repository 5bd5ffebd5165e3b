"""ClickHouse sink for jobs: batches pre-encoded RowBinary chunks per table (Java writer).

The job emits ``Row(table, rowbinary_bytes)`` (type :data:`CLICKHOUSE_ROWS`); the Java writer
(``connectors/java/.../ClickHouseSink.java``) inserts them in large batches and always before a
checkpoint barrier passes. Credentials: the user comes from the job's flags, the password from the
TaskManager's environment variable (default ``ITCHFLOW_CLICKHOUSE_PASSWORD``).
"""

from __future__ import annotations

from pyflink.common import Types
from pyflink.datastream.connectors.base import Sink
from pyflink.java_gateway import get_gateway

CLICKHOUSE_ROWS = Types.ROW([Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())])


def clickhouse_sink(
    url: str,
    user: str | None = None,
    password_env: str = "ITCHFLOW_CLICKHOUSE_PASSWORD",
    data_format: str = "RowBinary",
    linger_ms: int = 200,
    max_bytes: int = 8 << 20,
) -> Sink:
    jvm = get_gateway().jvm
    return Sink(
        jvm.itchflow.connectors.ClickHouseSink(
            url, user or "", password_env, data_format, linger_ms, max_bytes
        )
    )
