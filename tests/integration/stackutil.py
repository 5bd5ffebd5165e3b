"""Helpers for integration tests: stacks on free ports in temporary folders, CLI runs."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from itchflow.config import StackConfig, load_stack_config
from itchflow.stack.components import TASKMANAGERS
from tests.samples import SAMPLES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = SAMPLES


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on right now (held open together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports nobody listens on right now."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def stack_config(home: Path, partitions: int = 2) -> StackConfig:
    kafka, flink, rpc, clickhouse, redis, prometheus = free_ports(6)
    return load_stack_config(
        env={"ITCHFLOW_HOME": str(home)},
        overrides={
            "kafka_port": kafka,
            "flink_port": flink,
            "flink_rpc_port": rpc,
            "clickhouse_port": clickhouse,
            "redis_port": redis,
            "prometheus_port": prometheus,
            "metrics_port": free_port_block(TASKMANAGERS + 1),
            "partitions": partitions,
            "startup_timeout_s": 180.0,
        },
    )


def stack_env(config: StackConfig) -> dict[str, str]:
    """Environment that points the `itchflow` CLI at ``config``'s stack."""
    env = dict(os.environ)
    env.update(
        ITCHFLOW_HOME=str(config.home),
        ITCHFLOW_KAFKA_PORT=str(config.kafka_port),
        ITCHFLOW_FLINK_PORT=str(config.flink_port),
        ITCHFLOW_FLINK_RPC_PORT=str(config.flink_rpc_port),
        ITCHFLOW_CLICKHOUSE_PORT=str(config.clickhouse_port),
        ITCHFLOW_REDIS_PORT=str(config.redis_port),
        ITCHFLOW_PROMETHEUS_PORT=str(config.prometheus_port),
        ITCHFLOW_METRICS_PORT=str(config.metrics_port),
        ITCHFLOW_PARTITIONS=str(config.partitions),
    )
    return env


def run_cli(
    config: StackConfig, *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "itchflow.cli", *args],
        env=stack_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"itchflow {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def prometheus_value(config: StackConfig, query: str) -> float | None:
    """The value of an instant PromQL query of one series (e.g. a ``sum(...)``) through Prometheus's
    HTTP API; None while it has no series."""
    url = f"{config.prometheus_url}/api/v1/query?query={urllib.parse.quote(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for_prometheus_value(
    config: StackConfig, query: str, expected: float, timeout_s: float = 90.0
) -> float | None:
    """Poll ``query`` until it equals ``expected`` (Prometheus scrapes every 5 s) or ``timeout_s``
    passes; returns the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = prometheus_value(config, query)
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(2)
