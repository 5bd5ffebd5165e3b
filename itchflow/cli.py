"""The ``itchflow`` command line.

Every subsystem owns its subcommands: a module listed in ``COMMAND_MODULES`` exposes
``register(subparsers)`` which adds its parsers and sets ``func`` on them. ``func`` takes
the parsed namespace and returns a process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from itchflow import __version__
from itchflow.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "itchflow.stack.cli",  # stack up|down|status, setup
    "itchflow.flinkctl",  # submit, jobs
    "itchflow.itch.cli",  # itch stats
    "itchflow.synth",  # synth
    "itchflow.replay",  # replay
    "itchflow.book.cli",  # book
    "itchflow.analytics.cli",  # bars
    "itchflow.cep.cli",  # detect
    "itchflow.demo",  # demo
    "itchflow.bench",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itchflow",
        description="NASDAQ ITCH 5.0 market-data pipelines on Apache Flink (Kafka -> PyFlink -> ClickHouse/Redis).",
    )
    parser.add_argument("--version", action="version", version=f"itchflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subsystem not written yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after a bare `--` is passed through untouched (e.g. `submit JOB -- job args`)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    args.passthrough = passthrough
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"itchflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("itchflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
