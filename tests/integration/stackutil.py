"""Helpers for integration tests: stacks on free ports in temporary folders, CLI runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from itchflow.config import StackConfig, load_stack_config
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


def stack_config(home: Path, partitions: int = 2) -> StackConfig:
    kafka, flink, rpc, clickhouse, redis = free_ports(5)
    return load_stack_config(
        env={"ITCHFLOW_HOME": str(home)},
        overrides={
            "kafka_port": kafka,
            "flink_port": flink,
            "flink_rpc_port": rpc,
            "clickhouse_port": clickhouse,
            "redis_port": redis,
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
