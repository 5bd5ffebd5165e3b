"""ClickHouse sink for jobs: batches pre-encoded RowBinary chunks per table (Java writer).

The job emits ``Row(table, rowbinary_bytes)`` (type :data:`CLICKHOUSE_ROWS`); the Java writer
(``connectors/java/.../ClickHouseSink.java``) inserts them in large batches; what it holds at a
checkpoint barrier goes into the checkpoint (a restored writer inserts it), so a checkpoint never
waits for ClickHouse. Credentials: the user comes from the job's flags, the password from the
TaskManager's environment variable (default ``ITCHFLOW_CLICKHOUSE_PASSWORD``).

Each INSERT makes a MergeTree part that the server later merges, so fewer, larger inserts cost the
server much less per row (measured with ``scripts/profile_stages.py --clickhouse-url``: 1.47 us/msg
with 200 ms batches, 0.70 us/msg with 1 s). While rows keep coming the writer inserts every
``linger_ms`` (3 s by default: each insert is a burst of server CPU that the 2-core local stack felt
as a latency spike on the Redis path; at 1 s the tail outside checkpoints was twice as long), and
``idle_ms`` after the last row when the stream pauses, so the end of a burst is not held back.
Redis carries the low-latency view; ClickHouse rows land within the linger.
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
    linger_ms: int = 3000,
    idle_ms: int = 200,
    max_bytes: int = 16 << 20,
) -> Sink:
    jvm = get_gateway().jvm
    return Sink(
        jvm.itchflow.connectors.ClickHouseSink(
            url, user or "", password_env, data_format, linger_ms, idle_ms, max_bytes
        )
    )
