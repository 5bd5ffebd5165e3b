"""What ``itchflow bench`` watches while the pipeline runs, each kept cheap so it does not skew the run.

* :class:`MemorySampler` -- resident memory of every stack component's process group (the
  TaskManager's includes its Python workers in process mode), from ``/proc``, twice a second.
* :class:`FlinkSampler` -- per job vertex, the cumulative ``numRecordsIn`` and busy/back-pressured
  time through Flink's REST API once a second, and every checkpoint of the jobs' histories.
* :class:`StreamArrivals` -- a separate process reading the top-of-book Redis streams with ``XREAD``
  and stamping each entry's arrival (latency without sharing a GIL with the replay).
* :func:`wait_for_books` -- polls the sinks (Redis first: cheap; then ClickHouse ``book_status``)
  until every symbol has applied its last sequence number, and returns when that was first seen.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from itchflow.errors import UserError

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------- memory


def process_groups() -> dict[int, int]:
    """Resident bytes per process group, for every live process (one pass over ``/proc``)."""
    totals: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # fields[0] is field 3 of proc(5)
        if len(fields) < 22 or fields[0] == "Z":
            continue
        group = int(fields[2])
        totals[group] = totals.get(group, 0) + int(fields[21]) * PAGE_BYTES
    return totals


class MemorySampler(threading.Thread):
    """Peak resident memory (MB) of each named process group while running.

    RSS adds up pages shared between processes of a group (a slight overcount, never an undercount).
    """

    def __init__(self, groups: Mapping[str, int], interval_s: float = 0.5) -> None:
        super().__init__(name="bench-memory", daemon=True)
        self.groups = dict(groups)
        self.interval_s = interval_s
        self.peak_mb: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            totals = process_groups()
            for name, group in self.groups.items():
                self.peak_mb[name] = max(self.peak_mb[name], totals.get(group, 0) / 1e6)
            self._halt.wait(self.interval_s)

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(timeout=5)
        return {name: round(mb, 1) for name, mb in self.peak_mb.items()}


# --------------------------------------------------------------------------------- CPU

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_THREAD_NUMBER = re.compile(r"[\s#\-]*\d+$")


def read_proc_stat(path: str) -> tuple[str, list[str]] | None:
    """(command name, fields from field 3 on) of a ``/proc/.../stat`` file, or None if gone."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.find("(") + 1 : stat.rfind(")")], stat[stat.rfind(")") + 2 :].split()


def thread_label(name: str) -> str:
    """A JVM thread's name without its number (``GC Thread#1`` -> ``GC Thread``); Flink's task
    threads keep the (15-character) start of their operator chain, e.g. ``order-book -> (``."""
    return _THREAD_NUMBER.sub("", name).strip() or name


def cpu_seconds(groups: Mapping[str, int], own_pid: int | None = None) -> dict[str, tuple[float, float]]:
    """(CPU seconds, seconds spent runnable but waiting for a CPU) used so far, per label.

    Labels are ``component: part``: Java processes are broken down by thread (Flink runs each task
    in its own thread, and in thread mode the Python code too); the TaskManager's Python workers
    are ``python worker``; other processes count whole. ``own_pid`` (this process: the replay) is
    ``bench (replay)``. From ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds).
    """
    members: dict[int, str] = {}
    wanted = {group: name for name, group in groups.items()}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parsed = read_proc_stat(f"/proc/{entry}/stat")
            if parsed and len(parsed[1]) > 2 and int(parsed[1][2]) in wanted:
                members[int(entry)] = wanted[int(parsed[1][2])]
    if own_pid is not None:
        members[own_pid] = "bench (replay)"
    totals: dict[str, tuple[float, float]] = {}
    for pid, component in members.items():
        parsed = read_proc_stat(f"/proc/{pid}/stat")
        if parsed is None:
            continue
        name = parsed[0]
        for thread, (cpu, wait) in _thread_times(pid).items():
            if name == "java":
                key = f"{component}: {thread_label(thread)}"
            elif component == "flink-taskmanager" and name.startswith("python"):
                key = f"{component}: python worker"
            else:
                key = component
            before = totals.get(key, (0.0, 0.0))
            totals[key] = (before[0] + cpu, before[1] + wait)
    return totals


def _thread_times(pid: int) -> dict[str, tuple[float, float]]:
    """thread name -> (CPU seconds, run-queue wait seconds), summed over threads of that name."""
    times: dict[str, tuple[float, float]] = {}
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return times
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
                cpu_ns, wait_ns = (int(value) for value in handle.read().split()[:2])
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="ascii", errors="replace") as handle:
                name = handle.read().strip()
        except (OSError, ValueError):
            continue
        before = times.get(name, (0.0, 0.0))
        times[name] = (before[0] + cpu_ns / 1e9, before[1] + wait_ns / 1e9)
    return times


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far (every core; ``/proc/stat``).

    Busy leaves idle and iowait out and includes steal: time a virtual CPU wanted to run while the
    hypervisor ran something else. On a shared host steal is the difference between two runs of the
    same code that no process of ours shows (measured: 5-25% of the 2 cores in a paced phase).
    """
    with open("/proc/stat", encoding="ascii") as handle:
        return _machine_split(handle.readline())


def _machine_split(cpu_line: str) -> tuple[float, float]:
    """(busy, stolen) seconds from the ``cpu`` line of ``/proc/stat``."""
    fields = [int(value) for value in cpu_line.split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    busy = sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    return busy / CLOCK_TICKS, steal / CLOCK_TICKS


def cpu_used(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """(CPU seconds, run-queue wait seconds) per label between two :func:`cpu_seconds` readings,
    most CPU first (threads that ended in between are missing from ``after`` and count 0)."""
    used = {}
    for label, (cpu, wait) in after.items():
        cpu_before, wait_before = before.get(label, (0.0, 0.0))
        if cpu > cpu_before:
            used[label] = (cpu - cpu_before, wait - wait_before)
    return dict(sorted(used.items(), key=lambda item: -item[1][0]))


# --------------------------------------------------------------------------------- Flink

VERTEX_METRICS = ("numRecordsIn", "accumulateBusyTimeMs", "accumulateBackPressuredTimeMs")


@dataclass
class VertexSamples:
    """Samples of one job vertex: ``(monotonic time, value summed over subtasks)`` per metric."""

    job: str
    name: str
    parallelism: int
    series: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {metric: [] for metric in VERTEX_METRICS}
    )


class FlinkSampler(threading.Thread):
    """Samples vertex counters and collects checkpoint histories of ``jobs`` (name -> job id)."""

    def __init__(
        self, rest_url: str, jobs: Mapping[str, str], interval_s: float = 1.0, checkpoint_every: int = 2
    ) -> None:
        super().__init__(name="bench-flink", daemon=True)
        from itchflow.flinkctl import rest_get

        self.rest_url = rest_url
        self.jobs = dict(jobs)
        self.interval_s = interval_s
        self.checkpoint_every = checkpoint_every
        self.vertices: dict[str, VertexSamples] = {}
        for job, job_id in self.jobs.items():
            for vertex in rest_get(rest_url, f"/jobs/{job_id}")["vertices"]:
                self.vertices[vertex["id"]] = VertexSamples(job, vertex["name"], vertex["parallelism"])
        self.checkpoints: dict[str, dict[int, dict]] = {job: {} for job in self.jobs}
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self._halt.is_set():
            try:
                self.sample_vertices()
                if ticks % self.checkpoint_every == 0:
                    self.sample_checkpoints()
            except UserError:
                self.errors += 1  # the REST API hiccuped; the next sample will do
            ticks += 1
            self._halt.wait(self.interval_s)

    def sample_vertices(self) -> None:
        from itchflow.flinkctl import rest_get

        names = ",".join(VERTEX_METRICS)
        for vertex_id, samples in self.vertices.items():
            job_id = self.jobs[samples.job]
            answer = rest_get(
                self.rest_url, f"/jobs/{job_id}/vertices/{vertex_id}/subtasks/metrics?get={names}&agg=sum"
            )
            now = time.monotonic()
            for metric in answer:
                if metric["id"] in samples.series and "sum" in metric:
                    samples.series[metric["id"]].append((now, float(metric["sum"])))

    def sample_checkpoints(self) -> None:
        from itchflow.flinkctl import rest_get

        for job, job_id in self.jobs.items():
            for entry in rest_get(self.rest_url, f"/jobs/{job_id}/checkpoints").get("history", []):
                if entry.get("status") in ("COMPLETED", "FAILED"):
                    self.checkpoints[job][entry["id"]] = entry

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=15)
        try:
            self.sample_checkpoints()
        except UserError:
            self.errors += 1

    def vertex(self, job: str, prefix: str) -> VertexSamples | None:
        """The vertex of ``job`` whose name starts with ``prefix`` (e.g. ``"order-book"``)."""
        for samples in self.vertices.values():
            if samples.job == job and samples.name.startswith(prefix):
                return samples
        return None


# --------------------------------------------------------------------------------- Redis streams


READ_PAUSE_S = 0.001
"""Pause of the stream reader after each reply with entries, so that it reads a few times per
sink flush rather than in a busy loop (an XREAD of the 100 followed streams costs Valkey ~0.25 ms).
Entries are stamped at most this much late (the measured latency errs high)."""


def _read_streams(
    host: str, port: int, keys: list[str], ready, stop, results, block_ms: int = 50
) -> None:  # pragma: no cover - runs in a child process (exercised by the integration test)
    """Child process: XREAD every key from the start; send back (key index, seq, arrival ns) triples."""
    import redis

    client = redis.Redis(host=host, port=port)
    index = {key.encode(): i for i, key in enumerate(keys)}
    last_ids: dict[Any, Any] = {key.encode(): b"0-0" for key in keys}
    triples = array("q")
    ready.set()
    draining = False
    while True:
        reply: Any = client.xread(last_ids, count=100_000, block=block_ms)
        arrived = time.time_ns()
        for key, entries in reply or ():
            position = index[key]
            for entry_id, _fields in entries:
                # ids are "{ms}-{book seq}"; book seq is the feed's seq in a venue's first session
                triples.extend((position, int(entry_id.rpartition(b"-")[2]), arrived))
            last_ids[key] = entries[-1][0]
        if draining and not reply:
            break
        draining = draining or stop.is_set()
        if reply:
            time.sleep(READ_PAUSE_S)
    results.send_bytes(triples.tobytes())
    results.close()


class StreamArrivals:
    """Arrival times of top-of-book stream entries, read in a child process.

    Start it before producing, :meth:`stop` it once the books are complete: it drains what is
    left and returns ``(symbol, seq, arrival epoch ns)`` per entry.
    """

    def __init__(self, host: str, port: int, keys_by_symbol: Mapping[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self.symbols = list(keys_by_symbol)
        keys = [keys_by_symbol[symbol] for symbol in self.symbols]
        self._ready = context.Event()
        self._halt = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_read_streams,
            args=(host, port, keys, self._ready, self._halt, send),
            name="bench-stream-reader",
            daemon=True,
        )

    def start(self, timeout_s: float = 60.0) -> None:
        self._process.start()
        if not self._ready.wait(timeout_s):
            self._process.kill()
            raise UserError("the Redis stream reader did not start (is Redis up? `itchflow stack status`)")

    def stop(self, timeout_s: float = 60.0) -> list[tuple[str, int, int]]:
        self._halt.set()
        if not self._receive.poll(timeout_s):
            self._process.kill()
            raise UserError("the Redis stream reader did not finish")
        triples = array("q")
        triples.frombytes(self._receive.recv_bytes())
        self._process.join(timeout=10)
        symbols = self.symbols
        return [(symbols[triples[i]], triples[i + 1], triples[i + 2]) for i in range(0, len(triples), 3)]


def job_histogram(rest_url: str, job_id: str, prefix: str) -> list[float]:
    """The bucket counts of a latency histogram the job reports as counters
    (:mod:`itchflow.pipeline.latency`), summed over its vertices and subtasks."""
    from itchflow.pipeline.latency import bucket_names

    names = bucket_names(prefix)
    counts = job_counters(rest_url, job_id, names)
    return [counts[name] for name in names]


def job_counters(rest_url: str, job_id: str, names: Iterable[str]) -> dict[str, float]:
    """The job's counters of these names (the metric name without its scope), summed over its
    vertices and subtasks (0 for a counter no subtask reports); one REST query per vertex."""
    from itchflow.flinkctl import rest_get

    counts = dict.fromkeys(names, 0.0)
    for vertex in rest_get(rest_url, f"/jobs/{job_id}")["vertices"]:
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
        ids = [m["id"] for m in rest_get(rest_url, path) if m["id"].rsplit(".", 1)[-1] in counts]
        if ids:
            for metric in rest_get(rest_url, f"{path}?get={','.join(ids)}&agg=sum"):
                counts[metric["id"].rsplit(".", 1)[-1]] += float(metric.get("sum", 0.0))
    return counts


# --------------------------------------------------------------------------------- completion


AppliedSeqs = Callable[[Iterable[str]], dict[str, int]]
"""symbols -> {symbol: highest seq a sink shows applied} (symbols with nothing yet may be missing)."""


def clickhouse_applied(client, venue: str) -> AppliedSeqs:
    """Applied seqs from ``book_status`` (max needs no FINAL: re-inserted rows repeat a seq)."""

    def applied(symbols: Iterable[str]) -> dict[str, int]:
        rows = client.query(
            "SELECT symbol, max(seq) FROM book_status WHERE venue = {venue:String} GROUP BY symbol",
            parameters={"venue": venue},
        ).result_rows
        return {symbol: int(seq) for symbol, seq in rows}

    return applied


def redis_applied(cache, venue: str, prefix: str = "itchflow") -> AppliedSeqs:
    """Applied seqs from the ``seq`` field of each top-of-book hash (one pipelined HGET per symbol)."""

    def applied(symbols: Iterable[str]) -> dict[str, int]:
        names = list(symbols)
        pipe = cache.pipeline(transaction=False)
        for symbol in names:
            pipe.hget(f"{prefix}:tob:{venue}:{symbol}", "seq")
        return {
            symbol: int(seq) for symbol, seq in zip(names, pipe.execute(), strict=True) if seq is not None
        }

    return applied


def messages_applied(applied: Mapping[str, int], last_seq: Mapping[str, int]) -> int:
    """How many of the produced messages the books have applied (capped per symbol at its last seq)."""
    return sum(min(applied.get(symbol, -1), seq) + 1 for symbol, seq in last_seq.items())


class BooksBehind(UserError):
    """The books did not catch up in time."""


def wait_for_books(
    sinks: Sequence[tuple[str, AppliedSeqs]],
    last_seq: Mapping[str, int],
    timeout_s: float,
    poll_s: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    show: bool = True,
    check_health: Callable[[], None] | None = None,
    health_every_s: float = 5.0,
) -> float:
    """Wait until every sink shows every symbol at its last seq; the clock reading when the last sink
    was first seen complete.

    Sinks are polled one after the other, each until complete, and only for the symbols still
    behind: put the cheap one first (Redis: one HGET per symbol) so that the expensive one
    (a ClickHouse query) is polled only at the end and does not load the machine during the run.
    ``check_health`` (e.g. "are the jobs still running?") is called every ``health_every_s`` and may
    raise to give up early instead of waiting out the timeout.
    """
    from tqdm import tqdm

    total = sum(seq + 1 for seq in last_seq.values())
    deadline = clock() + timeout_s
    next_check = clock() + health_every_s
    seen = clock()
    for name, applied_seqs in sinks:
        behind = dict(last_seq)
        applied: dict[str, int] = {}
        with tqdm(
            total=total,
            desc=f"books in {name}",
            unit=" msg",
            unit_scale=True,
            file=sys.stderr,
            disable=not show,
        ) as bar:
            while behind:
                applied.update(applied_seqs(behind))
                seen = clock()
                behind = {symbol: seq for symbol, seq in behind.items() if applied.get(symbol, -1) < seq}
                bar.update(messages_applied(applied, last_seq) - bar.n)
                if not behind:
                    break
                if seen > deadline:
                    raise BooksBehind(
                        f"the order books did not all reach {name} within {timeout_s:.0f} s: {len(behind)} "
                        f"symbols behind (e.g. {', '.join(sorted(behind)[:5])}; "
                        f"{messages_applied(applied, last_seq):,} of {total:,} messages applied)."
                    )
                if check_health is not None and seen >= next_check:
                    check_health()
                    next_check = seen + health_every_s
                sleep(poll_s)
    return seen
