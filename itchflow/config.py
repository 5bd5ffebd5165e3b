"""Configuration of the local stack and the pipelines, built once at the edge.

Every address, port, folder and size comes from (in increasing priority) the defaults below,
``ITCHFLOW_*`` environment variables, and command-line flags. Nothing else in the code
hard-codes them.

| setting            | environment variable          | default                        |
|--------------------|-------------------------------|--------------------------------|
| home (run folder)  | ``ITCHFLOW_HOME``             | ``<project root>/.itchflow``   |
| broker port        | ``ITCHFLOW_KAFKA_PORT``       | 9092                           |
| Flink REST/web UI  | ``ITCHFLOW_FLINK_PORT``       | 8081                           |
| Flink RPC          | ``ITCHFLOW_FLINK_RPC_PORT``   | 6123                           |
| ClickHouse HTTP    | ``ITCHFLOW_CLICKHOUSE_PORT``  | 8123                           |
| Redis              | ``ITCHFLOW_REDIS_PORT``       | 6379                           |
| topic partitions   | ``ITCHFLOW_PARTITIONS``       | 4 (1 .. 16, the symbol shards) |
| host (loopback)    | ``ITCHFLOW_HOST``             | 127.0.0.1                      |
| ClickHouse user    | ``ITCHFLOW_CLICKHOUSE_USER``  | (none: ``default``, no password)|
| ClickHouse password| ``ITCHFLOW_CLICKHOUSE_PASSWORD`` | (none)                      |
| start-up timeout   | ``ITCHFLOW_STARTUP_TIMEOUT``  | 120 (seconds)                  |
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from itchflow.errors import UserError
from itchflow.shards import SHARDS

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent

RAW_TOPIC = "market-data-raw"
NORMALIZED_TOPIC = "market-data-normalized"
ORDERS_TOPIC = "orders"
EXECUTIONS_TOPIC = "executions"
DEAD_LETTER_TOPIC = "dead-letter"
BOOK_EVENTS_TOPIC = "book-events"
"""What the order-book job's books made of each record, for the analytics job (``schemas/book/``)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A Kafka topic the stack creates: name, partitions and topic-level configs."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


# Topic configs of DESIGN.md: 7 days of retention, compression on the broker side too.
TOPIC_CONFIGS: Mapping[str, str] = {
    "retention.ms": str(7 * 24 * 3600 * 1000),
    "compression.type": "lz4",
    "cleanup.policy": "delete",
}


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Where the local stack lives and listens. Build it with :func:`load_stack_config`."""

    home: Path
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    flink_port: int = 8081
    flink_rpc_port: int = 6123
    clickhouse_port: int = 8123
    redis_port: int = 6379
    prometheus_port: int = 19090
    """The local Prometheus (not 9090: Debian's own prometheus service may hold that)."""
    metrics_port: int = 9249
    """Flink's Prometheus reporter: the JobManager serves ``/metrics`` here, TaskManager n on
    ``metrics_port + n``."""
    partitions: int = 4
    clickhouse_user: str | None = None
    startup_timeout_s: float = 120.0
    clickhouse_nice: int = 19
    """CPU priority the local ClickHouse (chDB) gives up (``nice``): on a small machine its insert
    bursts otherwise take the cores the latency path needs; in production it has its own."""

    # --- derived locations -------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """PID files and the stack's state record."""
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def flink_conf_dir(self) -> Path:
        """The rendered Flink configuration (``flink-conf/`` plus this stack's values)."""
        return self.home / "flink-conf"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def changelog_dir(self) -> Path:
        """The changelog state backend's files (``state.changelog.dstl.dfs.base-path``), one folder per job."""
        return self.checkpoint_dir / "changelog"

    def job_checkpoint_folders(self, job_id: str) -> tuple[Path, Path]:
        """What Flink keeps of a job here: its checkpoints and its changelog."""
        return self.checkpoint_dir / job_id, self.changelog_dir / job_id

    @property
    def savepoint_dir(self) -> Path:
        return self.home / "savepoints"

    @property
    def clickhouse_data_dir(self) -> Path:
        return self.home / "clickhouse"

    @property
    def redis_data_dir(self) -> Path:
        return self.home / "redis"

    # --- addresses -----------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.host}:{self.flink_port}"

    @property
    def clickhouse_url(self) -> str:
        return f"http://{self.host}:{self.clickhouse_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis_port}/0"

    def topics(self) -> tuple[TopicSpec, ...]:
        """The topics of DESIGN.md, all partitioned alike (keyed by symbol)."""
        names = (
            RAW_TOPIC,
            NORMALIZED_TOPIC,
            BOOK_EVENTS_TOPIC,
            ORDERS_TOPIC,
            EXECUTIONS_TOPIC,
            DEAD_LETTER_TOPIC,
        )
        return tuple(TopicSpec(name, self.partitions, dict(TOPIC_CONFIGS)) for name in names)

    def ports(self) -> dict[str, int]:
        return {
            "kafka": self.kafka_port,
            "flink": self.flink_port,
            "flink-rpc": self.flink_rpc_port,
            "clickhouse": self.clickhouse_port,
            "redis": self.redis_port,
            "prometheus": self.prometheus_port,
            "metrics": self.metrics_port,
        }

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"


_ENV_INT_FIELDS = {
    "kafka_port": "ITCHFLOW_KAFKA_PORT",
    "flink_port": "ITCHFLOW_FLINK_PORT",
    "flink_rpc_port": "ITCHFLOW_FLINK_RPC_PORT",
    "clickhouse_port": "ITCHFLOW_CLICKHOUSE_PORT",
    "redis_port": "ITCHFLOW_REDIS_PORT",
    "prometheus_port": "ITCHFLOW_PROMETHEUS_PORT",
    "metrics_port": "ITCHFLOW_METRICS_PORT",
    "partitions": "ITCHFLOW_PARTITIONS",
    "clickhouse_nice": "ITCHFLOW_CLICKHOUSE_NICE",
}
_INT_RANGES = {"partitions": (1, SHARDS), "clickhouse_nice": (0, 19)}  # ports: 1-65535


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("ITCHFLOW_HOME"):
        return Path(env["ITCHFLOW_HOME"]).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / ".itchflow"
    return Path.home() / ".itchflow"


def _parse_int(name: str, value: str | int, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise UserError(f"{name} must be between {low} and {high}, got {number}")
    return number


def load_stack_config(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> StackConfig:
    """Defaults < environment < overrides (CLI flags; ``None`` values are ignored)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {"home": default_home(env)}
    if env.get("ITCHFLOW_HOST"):
        values["host"] = env["ITCHFLOW_HOST"]
    if env.get("ITCHFLOW_CLICKHOUSE_USER"):
        values["clickhouse_user"] = env["ITCHFLOW_CLICKHOUSE_USER"]
    if env.get("ITCHFLOW_STARTUP_TIMEOUT"):
        values["startup_timeout_s"] = float(env["ITCHFLOW_STARTUP_TIMEOUT"])
    for field_name, var in _ENV_INT_FIELDS.items():
        if env.get(var):
            values[field_name] = env[var]
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value

    known = {f.name for f in dataclasses.fields(StackConfig)}
    unknown = set(values) - known
    if unknown:
        raise UserError(f"unknown stack settings: {', '.join(sorted(unknown))}")
    for field_name in _ENV_INT_FIELDS:
        if field_name in values:
            low, high = _INT_RANGES.get(field_name, (1, 65535))
            values[field_name] = _parse_int(field_name.replace("_", " "), values[field_name], low, high)  # type: ignore[arg-type]
    values["home"] = Path(values["home"]).expanduser().resolve()  # type: ignore[arg-type]
    config = StackConfig(**values)  # type: ignore[arg-type]
    _check_distinct_ports(config)
    return config


def _check_distinct_ports(config: StackConfig) -> None:
    seen: dict[int, str] = {}
    for component, port in config.ports().items():
        if port in seen:
            raise UserError(
                f"{component} and {seen[port]} are both configured on port {port}; give each its own port"
            )
        seen[port] = component
