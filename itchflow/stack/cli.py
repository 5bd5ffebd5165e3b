"""``itchflow setup`` and ``itchflow stack up | down | status``."""

from __future__ import annotations

import argparse

from itchflow import bootstrap
from itchflow.config import StackConfig, load_stack_config
from itchflow.stack.manager import Stack


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """Flags that override the stack's configuration (see itchflow.config for the env variables)."""
    group = parser.add_argument_group("local stack (defaults from ITCHFLOW_* environment variables)")
    group.add_argument("--home", help="run folder of the stack (ITCHFLOW_HOME; default <project>/.itchflow)")
    group.add_argument("--kafka-port", type=int, help="broker port (ITCHFLOW_KAFKA_PORT, default 9092)")
    group.add_argument(
        "--flink-port", type=int, help="Flink REST/web UI port (ITCHFLOW_FLINK_PORT, default 8081)"
    )
    group.add_argument(
        "--flink-rpc-port", type=int, help="Flink RPC port (ITCHFLOW_FLINK_RPC_PORT, default 6123)"
    )
    group.add_argument(
        "--clickhouse-port", type=int, help="ClickHouse HTTP port (ITCHFLOW_CLICKHOUSE_PORT, default 8123)"
    )
    group.add_argument("--redis-port", type=int, help="Redis port (ITCHFLOW_REDIS_PORT, default 6379)")
    group.add_argument(
        "--prometheus-port",
        type=int,
        help="Prometheus web/API port (ITCHFLOW_PROMETHEUS_PORT, default 19090)",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        help="Flink's Prometheus reporter: JobManager port, TaskManager n on +n (ITCHFLOW_METRICS_PORT, default 9249)",
    )
    group.add_argument(
        "--partitions", type=int, help="partitions per topic, 1-16 (ITCHFLOW_PARTITIONS, default 4)"
    )


def stack_config_from_args(args: argparse.Namespace) -> StackConfig:
    keys = (
        "home",
        "kafka_port",
        "flink_port",
        "flink_rpc_port",
        "clickhouse_port",
        "redis_port",
        "prometheus_port",
        "metrics_port",
        "partitions",
    )
    return load_stack_config(overrides={k: getattr(args, k, None) for k in keys})


def register(subparsers: argparse._SubParsersAction) -> None:
    setup = subparsers.add_parser(
        "setup", help="install what pip alone does not (connector jars; checks Java)"
    )
    setup.set_defaults(func=_setup)

    stack = subparsers.add_parser(
        "stack", help="the embedded local stack: broker, Flink, ClickHouse, Redis, Prometheus"
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, text in (
        ("up", _up, "start every component and wait until healthy (no-op when up)"),
        ("down", _down, "stop exactly what `up` started"),
        ("status", _status, "show each component, its address and health"),
    ):
        parser = actions.add_parser(name, help=text)
        add_stack_options(parser)
        parser.set_defaults(func=func)


def _setup(args: argparse.Namespace) -> int:
    bootstrap.run_setup()
    return 0


def _up(args: argparse.Namespace) -> int:
    bootstrap.check_java()
    bootstrap.install_connector_jars()
    bootstrap.build_java_helpers()
    config = stack_config_from_args(args)
    stack = Stack(config)
    stack.up()
    print_status(stack)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = Stack(stack_config_from_args(args)).down()
    print("stack down" + (f" (stopped {', '.join(stopped)})" if stopped else " (nothing was running)"))
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = Stack(stack_config_from_args(args))
    statuses = print_status(stack)
    return 0 if all(s.running and s.health.ok for s in statuses) else 3


def print_status(stack: Stack):
    statuses = stack.status()
    width = max(len(s.name) for s in statuses)
    for s in statuses:
        state = "healthy" if s.running and s.health.ok else ("UNHEALTHY" if s.running else "stopped")
        pid = f"pid {s.pid}" if s.pid else "-"
        print(f"{s.name:<{width}}  {state:<9}  {pid:<10}  {s.url}  [{s.health.detail}]")
    return statuses
