#!/usr/bin/env python
"""CPU per thread of every process on the machine over a few seconds (Linux /proc), busiest first.

    .venv/bin/python scripts/thread_cpu.py 5 [--top 25]

Run it while something else loads the stack (e.g. `scripts/probe_hops.py` or a paced `itchflow bench`
phase) to see which thread of which process spends the CPU: the broker's tokio workers, the
TaskManagers' task threads (named after their operator chain), chDB's merge threads, Valkey. Numbers
are % of one core; thread-name digits are folded (``GC Thread#3`` -> ``GC Thread``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path


def sample() -> dict[tuple[str, str], tuple[str, str, int]]:
    """(pid, tid) -> (process name, thread name, user + system clock ticks)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            process = Path(f"/proc/{pid}/comm").read_text().strip()
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                out[(pid, tid)] = (process, name, int(fields[11]) + int(fields[12]))
        except OSError:
            continue  # the process or thread ended while we read it
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    ticks = os.sysconf("SC_CLK_TCK")
    before = sample()
    time.sleep(args.seconds)
    after = sample()
    usage: Counter[tuple[str, str, str]] = Counter()
    for key, (process, name, spent) in after.items():
        if key in before:
            usage[(key[0], process, name.rstrip("0123456789-_#"))] += spent - before[key][2]
    total = sum(usage.values()) / ticks / args.seconds
    print(f"{total:.2f} cores busy over {args.seconds:g} s")
    for (pid, process, name), spent in usage.most_common(args.top):
        print(f"{100 * spent / ticks / args.seconds:6.1f}%  {process} ({pid})  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
