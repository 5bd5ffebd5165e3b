"""One ``itchflow bench`` run on the local stack: fresh jobs, a warm-up, the throughput replay, the
correctness check, the paced latency replay, clean-up. See :mod:`itchflow.bench` for what each
number means.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from itchflow.bench import PIPELINES, stats
from itchflow.bench.correctness import compare_bars, compare_books, read_streamed_bars, read_streamed_books
from itchflow.bench.feed import ensure_bar_reference, ensure_feed, ensure_reference
from itchflow.bench.probes import (
    AppliedSeqs,
    BooksBehind,
    FlinkSampler,
    MemorySampler,
    StreamArrivals,
    clickhouse_applied,
    cpu_seconds,
    cpu_used,
    job_histogram,
    machine_cpu_seconds,
    redis_applied,
    wait_for_books,
)
from itchflow.bench.replaying import (
    TRADING_DATE,
    FirstHandoff,
    PacedRuns,
    RecordingEncoder,
    busiest_symbols,
    limited,
    replay_with_progress,
)
from itchflow.bench.result import MACHINE, SAMPLE_INTERVAL_S, BenchRunInfo, Phase, build_result
from itchflow.config import TOPIC_CONFIGS, StackConfig, TopicSpec
from itchflow.errors import UserError
from itchflow.pipeline.latency import BAR_PUBLISH_DELAY

LATENCY_STREAMS = 25
"""Top-of-book streams the latency reader follows by default (``--latency-streams``): the busiest
symbols of the phase; each is in nearly every bundle of its partition, so their entries time nearly
every record (25 carry ~2/3 of the entries of the busiest 100). The reading runs on the machine it
measures and costs Valkey per entry it returns: over one paced 200 k-message phase XREAD took 642 ms
of Valkey's CPU for the 100 busiest (38,983 entries) and 512 ms for the 25 busiest (25,535; INFO
commandstats before and after); all 1,000 cost ~2.5 ms per call."""
WARMUP_BATCH_SIZE, WARMUP_LINGER_MS = 20_000, 100.0
"""The warm-up's bundles (at least): few, large records. tansu's memory engine answers a produce or
fetch more slowly the more records a partition holds (README, Performance), and the paced latency
phase after the warm-up shares its topics: with the run's own 1,000-message bundles a 1 M warm-up
left ~320 records in every partition before the phase began; this leaves a few dozen. The warm-up
runs the same code on the same messages either way."""

Log = Callable[[str], None]


BOOK_LATENCY = "producedToBook"
"""The books' latency histogram (bundle produced -> applied to the books)."""
TOPIC_PREFIX = "itchflow-bench-"
REDIS_PREFIX = "itchflow"
BOOK_TABLES = ("top_of_book", "depth_snapshots", "trades", "broken_trades", "book_status")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run (built from the command line by :mod:`itchflow.bench`)."""

    messages: int = 1_000_000
    symbols: int = 1000
    seed: int = 1
    speed: float | None = None
    """Pace the throughput replay by feed time (x real time); None: full speed."""
    parallelism: int = 2
    pipeline: str = "market-data"
    """``market-data`` (one job, jobs/market_data.py) or ``split`` (the normalize, order_book and
    analytics jobs)."""
    execution_mode: str | None = None
    """PyFlink execution mode; None: the cluster's default (``python.execution-mode``)."""
    batch_size: int | None = None
    linger_ms: float | None = None
    """Bundles of the replays; None: :func:`~itchflow.replay.bundling`'s, by pace (large at full speed)."""
    depth: int = 10
    job_args: tuple[str, ...] = ()
    """Extra arguments for every job of the run (``--job-arg``)."""
    warmup_messages: int = 1_000_000
    latency_rate: float = 20_000.0
    """Messages per second of the paced latency replay; 0 skips it."""
    latency_messages: int = 200_000
    latency_streams: int = LATENCY_STREAMS
    timeout_s: float | None = None
    """How long to wait for the books after a replay; None: 300 s plus 1 s per 10k messages."""
    cpp: bool = False
    keep: bool = False
    """Leave the jobs, topics and results of the run in place (for inspection)."""
    show_progress: bool = True

    def __post_init__(self) -> None:
        checks = (
            (self.messages >= 1000, "--messages must be at least 1000"),
            (self.symbols >= 1, "--symbols must be at least 1"),
            (self.speed is None or self.speed > 0, "--speed must be positive"),
            (self.parallelism >= 1, "--parallelism must be at least 1"),
            (self.execution_mode in (None, "process", "thread"), "--execution-mode is process or thread"),
            (self.batch_size is None or self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.linger_ms is None or self.linger_ms >= 0, "--linger-ms must not be negative"),
            (self.latency_rate >= 0, "--latency-rate must not be negative"),
            (self.latency_messages >= 1, "--latency-messages must be at least 1"),
            (self.latency_streams >= 1, "--latency-streams must be at least 1"),
            (self.warmup_messages >= 0, "--warmup-messages must not be negative"),
            (self.depth >= 1, "--depth must be at least 1"),
            (self.pipeline in PIPELINES, f"--pipeline is one of {', '.join(PIPELINES)}"),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def bundles(self, paced: bool) -> tuple[int, float]:
        """(messages, linger ms) of a replay of the run, paced or at full speed."""
        from itchflow.replay import bundling

        return bundling(paced, self.batch_size, self.linger_ms)

    @property
    def throughput_bundles(self) -> tuple[int, float]:
        return self.bundles(self.speed is not None)

    @property
    def wait_s(self) -> float:
        return self.timeout_s if self.timeout_s is not None else 300 + self.messages / 10_000


def bar_intervals(options: BenchOptions) -> tuple[int, ...]:
    """The bar sizes (s) the run's market-data job writes (``--bar-intervals`` among the job
    arguments, else its default 1 s, 1 m, 5 m); none with ``--no-bars``."""
    from itchflow.analytics.bars import parse_interval

    if "--no-bars" in options.job_args:
        return ()
    text = "1s,1m,5m"
    for position, arg in enumerate(options.job_args):
        if arg.startswith("--bar-intervals="):
            text = arg.split("=", 1)[1]
        elif arg == "--bar-intervals" and position + 1 < len(options.job_args):
            text = options.job_args[position + 1]
    try:
        return tuple(sorted({parse_interval(part.strip()) for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise UserError(f"--job-arg --bar-intervals: {exc}") from None


def effective_execution_mode(options: BenchOptions) -> str:
    """``--execution-mode``, else ``python.execution-mode`` of ``flink-conf/config.yaml``, else
    PyFlink's default (process)."""
    if options.execution_mode:
        return options.execution_mode
    import yaml

    from itchflow.config import PROJECT_ROOT

    settings = yaml.safe_load((PROJECT_ROOT / "flink-conf" / "config.yaml").read_text()) or {}
    return str(settings.get("python.execution-mode", "process"))


@dataclass(frozen=True, slots=True)
class RunNames:
    """Names that keep one run apart from every other: venue tags, topics, consumer groups."""

    tag: str

    @classmethod
    def new(cls, now: datetime | None = None) -> RunNames:
        now = now or datetime.now(UTC)
        return cls(f"BENCH{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}")

    @property
    def venue(self) -> str:
        return self.tag

    @property
    def warmup_venue(self) -> str:
        return f"{self.tag}-WARM"

    @property
    def latency_venue(self) -> str:
        return f"{self.tag}-LAT"

    @property
    def venues(self) -> tuple[str, ...]:
        return (self.warmup_venue, self.venue, self.latency_venue)

    def topic(self, role: str) -> str:
        """``raw``, ``normalized``, ``book-events`` or ``dead-letter``."""
        return f"{TOPIC_PREFIX}{self.tag.lower()}-{role}"

    def group(self, job: str) -> str:
        return f"{TOPIC_PREFIX}{self.tag.lower()}-{job}"


class BenchRun:
    """Runs the steps in order; :meth:`run` returns the result object (see :mod:`itchflow.bench`)."""

    def __init__(self, config: StackConfig, options: BenchOptions, log: Log) -> None:
        self.config = config
        self.options = options
        self.log = log
        self.names = RunNames.new()
        self.jobs: dict[str, str] = {}
        self.topics_created: list[str] = []
        self.other_jobs: list[str] = []
        self._clickhouse = None

    # ---------------------------------------------------------------- steps

    def run(self) -> dict[str, Any]:
        options = self.options
        feed = ensure_feed(
            self.config.home / "bench-cache", options.symbols, options.messages, options.seed, self.log
        )
        reference = ensure_reference(feed, options.depth, self.log)
        intervals = bar_intervals(options)
        bar_reference = ensure_bar_reference(feed, TRADING_DATE, intervals, self.log) if intervals else None
        self.bring_up_stack()
        memory = MemorySampler(self.component_groups())
        memory.start()
        sampler = None
        try:
            self.prepare_topics()
            self.submit_jobs()
            sampler = FlinkSampler(self.config.flink_rest_url, self.jobs, SAMPLE_INTERVAL_S)
            sampler.start()
            self.warm_up(feed)
            # Latency first, while the run's topics hold little: the local broker's (tansu's memory
            # engine) cost per produce/fetch grows with the records a partition holds (measured:
            # send->ack p50 3 -> 21 ms after a few 100 k records), which would time the broker's
            # scan of the throughput phase's records rather than the pipeline.
            latency = self.measure_latency(feed) if options.latency_rate else None
            throughput = self.measure_throughput(feed)
            time.sleep(3 * SAMPLE_INTERVAL_S)  # let the counters report the last records
            problems = self.check_books(reference["symbols"], throughput)
            if bar_reference is not None:
                problems += self.check_bars(bar_reference, throughput)
        finally:
            peak = memory.stop()
            if sampler is not None:
                sampler.stop()
            self.clean_up()
        run = BenchRunInfo(
            partitions=self.config.partitions,
            jobs=dict(self.jobs),
            other_jobs=list(self.other_jobs),
            metaspace_mb=self.taskmanager_metaspace_mb(),
            execution_mode=effective_execution_mode(options),
        )
        cpp = self.run_cpp(feed) if options.cpp else None
        bars_checked = len(bar_reference) if bar_reference else 0
        return build_result(
            run, options, feed, reference, throughput, problems, latency, sampler, peak, cpp, bars_checked
        )

    def taskmanager_metaspace_mb(self) -> float | None:
        """Class metadata the TaskManager holds after the run: it grows with every job submitted
        (PyFlink jobs leave their class loaders behind) and the TaskManager dies at its limit."""
        from itchflow.flinkctl import rest_get

        try:
            managers = rest_get(self.config.flink_rest_url, "/taskmanagers").get("taskmanagers", [])
            if not managers:
                return None
            metrics = rest_get(
                self.config.flink_rest_url,
                f"/taskmanagers/{managers[0]['id']}/metrics?get=Status.JVM.Memory.Metaspace.Used",
            )
        except UserError:
            return None
        return round(float(metrics[0]["value"]) / 1e6, 1) if metrics else None

    def bring_up_stack(self) -> None:
        from itchflow import bootstrap
        from itchflow.stack.manager import Stack

        bootstrap.run_setup(log=lambda message: None)
        Stack(self.config, log=self.log).up()

    def component_groups(self) -> dict[str, int]:
        """component name -> its process group (each component runs in its own session)."""
        from itchflow.stack import procs

        registry = procs.ProcessRegistry(self.config.run_dir)
        return {record.name: record.pid for record in registry.all() if procs.is_alive(record)}

    def prepare_topics(self) -> None:
        """Cancel jobs an earlier bench run left, drop its topics, create this run's topics."""
        from itchflow.stack.topics import ensure_topics

        self._cancel_left_over_jobs()
        self._delete_topics(lambda name: name.startswith(TOPIC_PREFIX))
        names = [self.names.topic(role) for role in ("raw", "normalized", "book-events", "dead-letter")]
        ensure_topics(self.config, [TopicSpec(n, self.config.partitions, dict(TOPIC_CONFIGS)) for n in names])
        self.topics_created = names

    @property
    def jobs_record(self) -> Path:
        """The ids of the jobs a bench run submitted, until it cancels them (``--keep``: the next run does)."""
        return self.config.home / "bench-cache" / "jobs.json"

    def _cancel_left_over_jobs(self) -> None:
        """Cancel what earlier bench runs left running; only warn about anyone else's jobs."""
        from itchflow.flinkctl import cancel, list_jobs

        left_over = set(json.loads(self.jobs_record.read_text())) if self.jobs_record.exists() else set()
        for job in list_jobs(self.config.flink_rest_url):
            if job.state in ("CANCELED", "FINISHED", "FAILED"):
                continue
            if job.job_id in left_over:
                self.log(f"cancelling {job.name} ({job.job_id}), left by an earlier bench run")
                cancel(self.config.flink_rest_url, job.job_id)
            else:
                self.other_jobs.append(job.name)
                self.log(f"warning: {job.name} ({job.job_id}) runs on this cluster too and shares its CPU")
        self.jobs_record.unlink(missing_ok=True)

    def submit_jobs(self) -> None:
        """Both jobs at once (``flink run`` takes ~10 s each), then wait until every task runs."""
        from itchflow.flinkctl import default_job_args, submit, wait_until_tasks_running
        from itchflow.stack.manager import Stack

        Stack(self.config, log=self.log).refresh_taskmanager()  # it may hold modules of older code
        options, names = self.options, self.names
        common = default_job_args(self.config)
        if options.execution_mode:
            common += ["--execution-mode", options.execution_mode]
        common += options.job_args
        outputs = (
            "--output-topic",
            names.topic("normalized"),
            "--dead-letter-topic",
            names.topic("dead-letter"),
        )
        depth = ("--depth-levels", str(options.depth))
        if options.pipeline == "split":
            arguments = {
                "normalize": [
                    *common,
                    *("--group-id", names.group("normalize"), "--input-topic", names.topic("raw")),
                    *outputs,
                ],
                "order_book": [
                    *common,
                    *("--group-id", names.group("order-book"), "--input-topic", names.topic("normalized")),
                    *("--book-events-topic", names.topic("book-events")),
                    *depth,
                ],
                "analytics": [
                    *common,
                    *("--group-id", names.group("analytics"), "--input-topic", names.topic("book-events")),
                    *("--dead-letter-topic", names.topic("dead-letter")),
                    *depth,
                ],
            }
        else:
            arguments = {
                "market_data": [
                    *common,
                    *("--group-id", names.group("market-data"), "--input-topic", names.topic("raw")),
                    *outputs,
                    *depth,
                ]
            }
        self.log(
            f"submitting the {' and '.join(arguments)} job{'s' * (len(arguments) > 1)} "
            f"({effective_execution_mode(options)} mode, parallelism {options.parallelism}) ..."
        )
        with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
            futures = {
                job: pool.submit(submit, self.config, job, args, options.parallelism)
                for job, args in arguments.items()
            }
            self.jobs = {job: future.result() for job, future in futures.items()}
        self.jobs_record.write_text(json.dumps(sorted(self.jobs.values())))
        for job_id in self.jobs.values():
            wait_until_tasks_running(self.config.flink_rest_url, job_id, timeout_s=180)

    def completion_sinks(self, venue: str) -> list[tuple[str, AppliedSeqs]]:
        """Where completion is read: Redis first (cheap to poll), then ClickHouse (the last sink)."""
        import redis

        cache = redis.Redis(host=self.config.host, port=self.config.redis_port)
        return [
            ("Redis", redis_applied(cache, venue, REDIS_PREFIX)),
            ("ClickHouse", clickhouse_applied(self.clickhouse(), venue)),
        ]

    def check_jobs(self) -> None:
        """Raise (ending the run) when one of the run's jobs is not RUNNING: a restart or a lost
        TaskManager makes the numbers meaningless, and the books may never complete."""
        from itchflow.flinkctl import rest_get

        for name, job_id in self.jobs.items():
            state = rest_get(self.config.flink_rest_url, f"/jobs/{job_id}")["state"]
            if state != "RUNNING":
                root = rest_get(self.config.flink_rest_url, f"/jobs/{job_id}/exceptions").get(
                    "root-exception"
                )
                raise UserError(
                    f"the {name} job ({job_id}) is {state} during the run: "
                    f"{(root or 'no exception recorded').strip()[:1500]}\n"
                    f"TaskManager log: {self.config.log_dir / 'flink-taskmanager.log'}"
                )

    def warm_up(self, feed: Path) -> None:
        """A short replay under its own venue: JIT, Python workers, state and sink connections warm."""
        from itchflow.replay import file_payloads

        count = min(self.options.warmup_messages, self.options.messages)
        if count == 0:
            return
        self.log(f"warm-up: {count:,} messages")
        self._replay(
            self.names.warmup_venue,
            limited(file_payloads(feed), count),
            record=False,
            show=False,
            trading_date=TRADING_DATE - timedelta(days=2),
            bundles=(
                max(self.options.throughput_bundles[0], WARMUP_BATCH_SIZE),
                max(self.options.throughput_bundles[1], WARMUP_LINGER_MS),
            ),
        )

    def measure_throughput(self, feed: Path) -> Phase:
        from itchflow.replay import file_payloads

        self.log(f"throughput: replaying {self.options.messages:,} messages at {self._pace()}")
        return self._replay(
            self.names.venue,
            file_payloads(feed),
            record=False,
            speed=self.options.speed,
            bundles=self.options.throughput_bundles,
        )

    def measure_latency(
        self, feed: Path
    ) -> tuple[Phase, list[tuple[int, int]], int, list[float], list[float] | None]:
        """The first ``latency_messages`` of the feed paced at ``latency_rate`` under a fresh venue,
        while a child process stamps the arrival of every top-of-book stream entry in Redis:
        ``(phase, (arrived_ns, latency_ns) pairs, unmatched, in_job, bar_publish)``, ``in_job``
        being the book job's own produce -> books-applied histogram over the phase (bucket counts),
        ``bar_publish`` the job's bar publish delay histogram over the phase (None: it writes no
        bars)."""
        from itchflow.replay import file_payloads

        options, venue = self.options, self.names.latency_venue
        count = min(options.latency_messages, options.messages)
        symbols = busiest_symbols(limited(file_payloads(feed), count), options.latency_streams)
        reader = StreamArrivals(
            self.config.host,
            self.config.redis_port,
            {s: f"{REDIS_PREFIX}:tob-stream:{venue}:{s}" for s in symbols},
        )
        reader.start()
        bars = bool(bar_intervals(options))
        before = self._settled_histograms(bars)
        self.log(f"latency: {count:,} messages paced at {options.latency_rate:,.0f} msgs/s")
        try:
            phase = self._replay(
                venue,
                PacedRuns(file_payloads(feed).runs, count, options.latency_rate),
                record=True,
                trading_date=TRADING_DATE - timedelta(days=1),
                bundles=options.bundles(paced=True),
            )
            time.sleep(1.0)  # the Redis writer may flush a moment after ClickHouse's
        finally:
            arrivals = reader.stop()
        pairs, unmatched = stats.match_arrivals(arrivals, phase.sent)
        in_job = self._histogram(BOOK_LATENCY)
        deadline = time.monotonic() + 5.0  # the REST metrics lag by up to a second
        while sum(in_job) - sum(before[0]) < phase.records and time.monotonic() < deadline:
            time.sleep(0.5)
            in_job = self._histogram(BOOK_LATENCY)
        bar_publish = None
        if bars:  # how many bars fire is not known in advance: read until the counts settle
            bar_publish = _difference(self._settled_histograms(True)[1], before[1])
        return (phase, pairs, unmatched, _difference(in_job, before[0]), bar_publish)

    def _settled_histograms(self, bars: bool, tries: int = 5) -> tuple[list[float], list[float]]:
        """:meth:`_histogram` of the books' latency and (with ``bars``) of the bar publish delay,
        once two reads a second apart agree (the REST metrics lag by up to a second: the warm-up's
        last records must not count in the latency phase)."""

        def read() -> tuple[list[float], list[float]]:
            return self._histogram(BOOK_LATENCY), self._histogram(BAR_PUBLISH_DELAY) if bars else []

        counts = read()
        for _ in range(tries):
            time.sleep(1.1)
            again = read()
            if again == counts:
                break
            counts = again
        return counts

    def _histogram(self, prefix: str) -> list[float]:
        """A job's bucket counts of a latency histogram so far (Flink REST): the book job's
        ``producedToBook`` (:data:`BOOK_LATENCY`) or the bar job's Redis writer's :data:`BAR_PUBLISH_DELAY`."""
        job_id = (
            self.jobs.get("market_data")
            or self.jobs["analytics" if prefix == BAR_PUBLISH_DELAY else "order_book"]
        )
        return job_histogram(self.config.flink_rest_url, job_id, prefix)

    def check_books(self, reference: dict, phase: Phase) -> list[str]:
        import redis

        self.log("checking every book against the offline reference ...")
        cache = redis.Redis(host=self.config.host, port=self.config.redis_port)
        streamed = read_streamed_books(self.clickhouse(), cache, phase.venue, REDIS_PREFIX)
        return compare_books(reference, streamed, phase.last_seq)

    def check_bars(self, reference: dict, phase: Phase) -> list[str]:
        """The run's bars in ClickHouse against the offline ones, once they stop changing (the job
        closes the last ones when it reads the end-of-replay records)."""
        self.log(f"checking every bar ({len(reference):,}) against the offline reference ...")
        client, day = self.clickhouse(), TRADING_DATE.isoformat()
        deadline = time.monotonic() + 120
        streamed = read_streamed_bars(client, phase.venue, day)
        while streamed != reference and time.monotonic() < deadline:
            time.sleep(2)
            streamed = read_streamed_bars(client, phase.venue, day)
        return compare_bars(reference, streamed)

    def clean_up(self) -> None:
        """Cancel the run's jobs, drop its topics, delete its rows and Redis keys (unless --keep)."""
        if self.options.keep:
            self.log(
                f"--keep: jobs {', '.join(self.jobs.values()) or '-'}, topics {TOPIC_PREFIX}{self.names.tag.lower()}-*, "
                f"venues {', '.join(self.names.venues)} left in place"
            )
            return
        from itchflow.flinkctl import cancel

        cancelled = True
        for job_id in self.jobs.values():
            try:
                cancel(self.config.flink_rest_url, job_id)
            except UserError as exc:
                cancelled = False
                self.log(f"could not cancel job {job_id}: {exc}")
        if cancelled:
            self.jobs_record.unlink(missing_ok=True)
            self._delete_retained_checkpoints()
        self._delete_topics(lambda name: name in self.topics_created)
        self._delete_results()

    def _delete_retained_checkpoints(self) -> None:
        """The cancelled jobs' checkpoints and changelog, which the stack retains on cancellation for
        an operator to restore by hand: a bench job's are of no use, and a 10 M run leaves GBs."""
        from itchflow.flinkctl import wait_for_state

        for job_id in self.jobs.values():
            try:  # Flink may still be writing a last checkpoint until the job is CANCELED
                wait_for_state(self.config.flink_rest_url, job_id, {"CANCELED"}, timeout_s=60)
            except UserError as exc:
                self.log(f"kept the checkpoints of job {job_id}: {exc}")
                continue
            for folder in self.config.job_checkpoint_folders(job_id):
                shutil.rmtree(folder, ignore_errors=True)

    def run_cpp(self, feed: Path) -> dict[str, Any]:
        from itchflow.bench.cpp import run_cpp

        self.log("C++ parsers over the same file ...")
        return run_cpp(feed, self.options.messages)

    # ---------------------------------------------------------------- helpers

    def clickhouse(self):
        if self._clickhouse is None:
            from itchflow.demo import clickhouse_client

            self._clickhouse = clickhouse_client(self.config)
        return self._clickhouse

    def _pace(self) -> str:
        return f"{self.options.speed}x feed time" if self.options.speed else "full speed"

    def _replay(
        self,
        venue: str,
        payloads: Iterable[bytes],
        record: bool,
        speed: float | None = None,
        show: bool | None = None,
        *,
        bundles: tuple[int, float],
        trading_date: date = TRADING_DATE,
    ) -> Phase:
        """Produce ``payloads`` under ``venue`` in bundles of ``bundles`` (batch size, linger ms) and
        wait until every book applied its last message."""
        from itchflow.replay import make_producer, replay

        show = self.options.show_progress if show is None else show
        encoder = RecordingEncoder(venue, session=venue, record=record, trading_date=trading_date)
        handoff = FirstHandoff(payloads)
        producer = make_producer(self.config.bootstrap_servers)
        groups = self.component_groups()
        cpu_before, machine_before = cpu_seconds(groups, os.getpid()), machine_cpu_seconds()
        try:
            summary = replay_with_progress(
                replay,
                handoff,
                producer,
                show,
                topic=self.names.topic("raw"),
                venue=venue,
                trading_date=trading_date,
                session=venue,
                batch_size=bundles[0],
                linger_ms=bundles[1],
                speed=speed,
                encode=encoder,
            )
        finally:
            producer.close()
        last_seq = summary.last_seq_by_symbol()
        try:
            finished = wait_for_books(
                self.completion_sinks(venue),
                last_seq,
                self.options.wait_s,
                show=show,
                check_health=self.check_jobs,
            )
        except BooksBehind as exc:
            raise UserError(
                f"{exc} Look at the jobs in {self.config.flink_rest_url} and the logs in {self.config.log_dir}."
            ) from exc
        cpu = cpu_used(cpu_before, cpu_seconds(groups, os.getpid()))
        machine_after = machine_cpu_seconds()
        cpu[MACHINE] = (machine_after[0] - machine_before[0], machine_after[1] - machine_before[1])
        return Phase(
            venue=venue,
            messages=summary.messages,
            records=summary.records,
            replay_seconds=summary.seconds,
            started=handoff.monotonic or 0.0,
            finished=finished,
            started_epoch_ms=handoff.epoch_ms or 0.0,
            finished_epoch_ms=time.time() * 1000 - (time.monotonic() - finished) * 1000,
            last_seq=last_seq,
            sent=dict(encoder.sent),
            cpu_seconds=cpu,
        )

    def _delete_topics(self, wanted: Callable[[str], bool]) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.config.bootstrap_servers, request_timeout_ms=20000
            )
        except (KafkaError, OSError) as exc:
            self.log(f"could not reach the broker to delete topics: {exc}")
            return
        try:
            names = [name for name in admin.list_topics() if wanted(name)]
            if names:
                admin.delete_topics(names)
        except KafkaError as exc:
            self.log(f"could not delete topics: {exc}")
        finally:
            admin.close()

    def _delete_results(self) -> None:
        import redis

        venues = list(self.names.venues)
        try:
            for table in BOOK_TABLES:
                self.clickhouse().command(
                    f"DELETE FROM {table} WHERE venue IN {{venues:Array(String)}}",
                    parameters={"venues": venues},
                )
        except Exception as exc:  # noqa: BLE001 - clean-up must not hide the run's outcome
            self.log(f"could not delete the run's ClickHouse rows: {exc}")
        cache = redis.Redis(host=self.config.host, port=self.config.redis_port)
        for venue in venues:
            batch = []
            for key in cache.scan_iter(match=f"{REDIS_PREFIX}:*:{venue}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    cache.unlink(*batch)
                    batch.clear()
            if batch:
                cache.unlink(*batch)

    # ---------------------------------------------------------------- the result


def _difference(after: list[float], before: list[float]) -> list[float]:
    """Bucket counts over a phase: those read after it minus those read before."""
    return [a - b for a, b in zip(after, before, strict=True)]
