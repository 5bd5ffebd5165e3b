#!/usr/bin/env python
"""Sample what the TaskManager's task threads (and, in process mode, its Python workers) are doing
while a pipeline runs -- a poor man's profiler for the whole chain, Java and Python.

    # in one terminal: a long bench run (or any running pipeline) on the stack
    ITCHFLOW_HOME=/tmp/bench-home ... itchflow bench --messages 10000000 ...
    # in another, once the replay is under way:
    ITCHFLOW_HOME=/tmp/bench-home ... .venv/bin/python scripts/profile_taskmanager.py --seconds 30 [--py-spy]

* **Java** (``jcmd <pid> Thread.print`` every ``--interval`` s): each task thread's stack is put in
  one bucket by its innermost recognizable frame -- Python via pemja (thread mode), the Python
  worker exchange (process mode), the ClickHouse or Redis sink writer, RocksDB, Kafka, Flink
  serialization, waiting for input, waiting for output buffers (back-pressure) -- and the share of
  samples per bucket is printed per operator chain. A thread dump stops the JVM briefly (a
  safepoint): keep the interval at 0.5 s or more.
* **Python** (``--py-spy``, process mode; needs ``pip install py-spy`` in the venv): ``py-spy
  record --gil`` on every Python worker for the same time (only the thread holding the GIL, i.e.
  Python at work); prints the functions with the most samples (own time and with callees).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itchflow.config import load_stack_config  # noqa: E402
from itchflow.stack import procs  # noqa: E402

#: (bucket, regular expression on a frame), tried from the top of the stack down
BUCKETS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("Python (pemja, thread mode)", r"pemja\."),
        ("ClickHouse sink (HTTP insert)", r"itchflow\.connectors\.ClickHouseSink"),
        ("Redis sink", r"itchflow\.connectors\.RedisSink"),
        ("RocksDB state", r"org\.rocksdb\.|RocksDB"),
        (
            "Python worker exchange (process mode)",
            r"org\.apache\.beam\.|python\.beam|PythonFunctionRunner|grpc",
        ),
        (
            "back-pressure (waiting for output buffers)",
            r"requestMemorySegmentBlocking|requestBufferBuilderBlocking",
        ),
        ("Kafka client", r"org\.apache\.kafka\."),
        ("Flink serialization", r"typeutils|TypeSerializer|DataOutputSerializer"),
        (
            "waiting for input (mailbox)",
            r"MailboxProcessor\.(?:suspendDefaultAction|runMailboxLoop)|TaskMailboxImpl\.take",
        ),
    )
)
THREAD_HEADER = re.compile(r'^"(?P<name>[^"]+)"')
TASK_NAME = re.compile(r"^(?P<chain>.+?) \(\d+/\d+\)#\d+$")


def taskmanager_pids(home: str | None) -> tuple[int, list[int]]:
    """(the TaskManager JVM's pid, its Python workers' pids) of the stack in ``home``."""
    config = load_stack_config(overrides={"home": home})
    record = procs.ProcessRegistry(config.run_dir).get("flink-taskmanager")
    if record is None or not procs.is_alive(record):
        raise SystemExit(f"no TaskManager running for the stack in {config.home}")
    workers = []
    for pid in procs.group_members(record.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"pyflink.fn_execution" in part for part in command) and b"python" in command[0]:
            workers.append(pid)
    return record.pid, workers


def thread_stacks(pid: int) -> dict[str, list[str]]:
    """Task thread name -> its frames (innermost first), from one ``jcmd Thread.print``."""
    dump = subprocess.run(
        ["jcmd", str(pid), "Thread.print"], capture_output=True, text=True, timeout=30
    ).stdout
    stacks: dict[str, list[str]] = {}
    name = None
    for line in dump.splitlines():
        header = THREAD_HEADER.match(line)
        if header:
            task = TASK_NAME.match(header.group("name"))
            name = task.group("chain") if task else None
            if name is not None:
                stacks[f"{name}@{len(stacks)}"] = []
            continue
        if name is not None and line.strip().startswith("at "):
            stacks[list(stacks)[-1]].append(line.strip()[3:])
    return stacks


def bucket(frames: list[str]) -> str:
    for frame in frames:
        for name, pattern in BUCKETS:
            if pattern.search(frame):
                return name
    return f"other: {frames[0].split('(')[0]}" if frames else "other: (no frames)"


def sample_java(pid: int, seconds: float, interval: float) -> dict[str, collections.Counter[str]]:
    by_chain: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for thread, frames in thread_stacks(pid).items():
            by_chain[thread.split("@")[0]][bucket(frames)] += 1
        time.sleep(interval)
    return by_chain


def start_py_spy(workers: list[int], seconds: float, folder: Path) -> list[tuple[int, subprocess.Popen]]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return [
        (
            pid,
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "--gil",
                    "--nonblocking",
                    "--output",
                    str(folder / f"{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
        for pid in workers
    ]


def summarize_py_spy(path: Path, top: int) -> list[str]:
    """The functions with the most samples in a py-spy raw (collapsed stacks) file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = [_short_frame(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"    {total:,} samples; own time:"]
    lines += [f"      {count / total:6.1%}  {frame}" for frame, count in own.most_common(top)]
    lines.append("    with callees:")
    lines += [f"      {count / total:6.1%}  {frame}" for frame, count in inclusive.most_common(top)]
    return lines


def _short_frame(frame: str) -> str:
    """``func (/long/path/module.py:123)`` -> ``func (module.py)``."""
    match = re.match(r"(?P<function>.*) \((?P<path>[^:()]*)(?::\d+)?\)$", frame)
    return f"{match.group('function')} ({Path(match.group('path')).name})" if match else frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="the stack's home (default: ITCHFLOW_HOME or the project's .itchflow)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--py-spy", action="store_true", help="also sample the Python workers (process mode)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)

    pid, workers = taskmanager_pids(args.home or os.environ.get("ITCHFLOW_HOME"))
    with tempfile.TemporaryDirectory(prefix="profile-tm-") as folder:
        spies = start_py_spy(workers, args.seconds, Path(folder)) if args.py_spy and workers else []
        by_chain = sample_java(pid, args.seconds, args.interval)
        for _, process in spies:
            process.wait(timeout=args.seconds + 60)
        print(f"TaskManager {pid}: {args.seconds:.0f} s, a thread dump every {args.interval} s")
        for chain, buckets in sorted(by_chain.items()):
            total = sum(buckets.values())
            print(f"\n  {chain[:100]}  ({total} thread samples)")
            for name, count in buckets.most_common(args.top):
                print(f"    {count / total:6.1%}  {name}")
        for worker, _ in spies:
            output = Path(folder) / f"{worker}.txt"
            print(f"\n  Python worker {worker}:")
            print("\n".join(summarize_py_spy(output, args.top)) if output.exists() else "    (no samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
