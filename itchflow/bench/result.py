"""The benchmark's result object, assembled from what the phases measured and the probes sampled."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itchflow.bench import stats
from itchflow.bench.probes import FlinkSampler, VertexSamples
from itchflow.pipeline.latency import bucket_quantile

if TYPE_CHECKING:
    from itchflow.bench.runner import BenchOptions

SAMPLE_INTERVAL_S = 1.0
"""How often the Flink counters are sampled."""
MACHINE = "(whole machine)"
"""The label of the whole machine's CPU in :attr:`Phase.cpu_seconds`: (busy seconds including steal,
seconds stolen by the hypervisor) where the processes have (CPU, run-queue wait)."""


@dataclass
class Phase:
    """What one replay measured."""

    venue: str
    messages: int = 0
    records: int = 0
    replay_seconds: float = 0.0
    started: float = 0.0
    """monotonic clock at the first message handed to the replay"""
    finished: float = 0.0
    """monotonic clock when every book was first seen complete in ClickHouse"""
    started_epoch_ms: float = 0.0
    finished_epoch_ms: float = 0.0
    last_seq: dict[str, int] = field(default_factory=dict)
    sent: dict[str, list[stats.SentBatch]] = field(default_factory=dict)
    cpu_seconds: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(CPU, run-queue wait) seconds per process/thread label from the replay's start to the books'
    completion"""

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True, slots=True)
class BenchRunInfo:
    """What the result reports about the run itself."""

    partitions: int
    jobs: dict[str, str]
    other_jobs: list[str]
    metaspace_mb: float | None = None
    execution_mode: str = "process"


def build_result(
    run: BenchRunInfo,
    options: BenchOptions,
    feed: Path,
    reference: dict,
    throughput: Phase,
    problems: list[str],
    latency: tuple[Phase, list[tuple[int, int]], int, list[float], list[float] | None] | None,
    sampler: FlinkSampler | None,
    peak_rss: dict[str, float],
    cpp: dict[str, Any] | None,
    bars_checked: int = 0,
) -> dict[str, Any]:
    """The result object ``--json`` prints (see :mod:`itchflow.bench`); ``bars_checked``: how many
    reference bars the run's bars were compared with (0: the run wrote none)."""
    msgs_per_s = stats.rate(throughput.messages, throughput.seconds)
    return {
        "messages": throughput.messages,
        "symbols": len(throughput.last_seq),
        "seconds": round(throughput.seconds, 3),
        "msgs_per_s": round(msgs_per_s),
        "correct": not problems,
        "bars_checked": bars_checked,
        "mismatches": problems[:20],
        "mismatch_count": len(problems),
        "latency_ms": _latency_result(latency, options, sampler),
        "stages": _stages(throughput, sampler),
        "flink_vertices": _vertex_loads(throughput, sampler),
        "cpu": _cpu(throughput),
        "checkpoint_ms": _checkpoints(throughput, sampler),
        "peak_rss_mb": peak_rss.get("flink-taskmanager"),
        "rss_mb": peak_rss,
        "offline_python": _offline(reference),
        "cpp": _cpp_ratios(cpp, msgs_per_s),
        "run": {
            "venue": throughput.venue,
            "execution_mode": run.execution_mode,
            "parallelism": options.parallelism,
            "partitions": run.partitions,
            "batch_size": options.throughput_bundles[0],
            "linger_ms": options.throughput_bundles[1],
            "speed": options.speed,
            "feed": str(feed),
            "seed": options.seed,
            "jobs": dict(run.jobs),
            "other_jobs_running": list(run.other_jobs),
            "started_at": datetime.fromtimestamp(throughput.started_epoch_ms / 1000, UTC).isoformat(),
        },
        "machine": _machine(),
        "code": _code_version(),
        "taskmanager_metaspace_mb": run.metaspace_mb,
    }


def _latency_result(
    latency: tuple[Phase, list[tuple[int, int]], int, list[float], list[float] | None] | None,
    options: BenchOptions,
    sampler: FlinkSampler | None,
) -> dict[str, Any] | None:
    if latency is None:
        return None
    phase, pairs, unmatched, in_job, bar_publish = latency
    latencies = [latency_ns for _, latency_ns in pairs]
    summary = stats.summarize_latencies(latencies)
    result: dict[str, Any] = (
        summary.to_dict() if summary else {"p50": None, "p99": None, "max": None, "samples": 0}
    )
    result.update(
        {
            "rate_msgs_per_s": options.latency_rate,
            "achieved_msgs_per_s": round(stats.rate(phase.messages, phase.replay_seconds)),
            "messages": phase.messages,
            "unmatched": unmatched,
            "from": "replay closes the batch (produced_at_ns)",
            "to": "top-of-book stream entry read from Redis (XREAD)",
            "in_job_ms": {
                "p50": bucket_quantile(in_job, 0.5),
                "p90": bucket_quantile(in_job, 0.9),
                "p99": bucket_quantile(in_job, 0.99),
                "records": int(sum(in_job)),
                "to": "record applied to the books (the job's producedToBook histogram: bucket upper bounds)",
            },
            "bar_publish_ms": bar_publish_result(bar_publish),
            "checkpoints": _near_checkpoints(pairs, phase, sampler),
            "cpu": _cpu(phase, top=8),
        }
    )
    return result


def bar_publish_result(counts: list[float] | None) -> dict[str, Any] | None:
    """The bar publish delay over the phase from the job's ``barPublishDelay`` bucket counts (None:
    the job writes no bars): p50 / p99 / max as the upper bounds of the buckets holding them."""
    if counts is None:
        return None
    return {
        "p50": bucket_quantile(counts, 0.5),
        "p99": bucket_quantile(counts, 0.99),
        "max": bucket_quantile(counts, 1.0),
        "firings": int(sum(counts)),
        "from": "the watermark passed bars' window ends (the operator's timer, or a record after it)",
        "to": "Redis acknowledged the bars (the job's barPublishDelay histogram: bucket upper bounds)",
    }


CHECKPOINT_SHADOW_MS = 1000.0
"""How long after a checkpoint's trigger a stream entry counts as arriving "near" it (the stall of a
checkpoint on the local stack lasted ~0.2-0.6 s: its end-to-end time plus the catch-up after it)."""


def _near_checkpoints(
    pairs: list[tuple[int, int]], phase: Phase, sampler: FlinkSampler | None
) -> dict[str, Any] | None:
    """The latency split: entries that arrived within :data:`CHECKPOINT_SHADOW_MS` after a
    checkpoint trigger of the phase, and the others."""
    if sampler is None or not pairs:
        return None
    window = (phase.started_epoch_ms, phase.finished_epoch_ms)
    triggers = sorted(
        t
        for history in sampler.checkpoints.values()
        for t in stats.checkpoint_triggers(history.values(), window)
    )
    near, elsewhere = stats.split_near_checkpoints(pairs, triggers, CHECKPOINT_SHADOW_MS)
    parts = {"near": stats.summarize_latencies(near), "elsewhere": stats.summarize_latencies(elsewhere)}
    return {
        "triggered": len(triggers),
        "after_ms": CHECKPOINT_SHADOW_MS,
        **{name: summary.to_dict() if summary else None for name, summary in parts.items()},
    }


def _window(samples: list[tuple[float, float]], phase: Phase) -> list[tuple[float, float]]:
    """The samples around ``phase``: from the last one before it started to a few after it ended."""
    before = [s for s in samples if s[0] <= phase.started]
    start = before[-1][0] if before else phase.started
    return [s for s in samples if start <= s[0] <= phase.finished + 3 * SAMPLE_INTERVAL_S]


def _delta(samples: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(value change, seconds) between the first and last of ``samples``; None if fewer than two
    or the value went down (a gauge, not a counter)."""
    if len(samples) < 2 or samples[-1][1] < samples[0][1]:
        return None
    return samples[-1][1] - samples[0][1], samples[-1][0] - samples[0][0]


def _share(samples: list[tuple[float, float]], parallelism: int) -> float | None:
    """Percent of the subtasks' time an accumulated-milliseconds counter grew by over ``samples``."""
    delta = _delta(samples)
    if delta is None or delta[1] <= 0:
        return None
    return round(100 * delta[0] / (delta[1] * 1000 * parallelism), 1)


def _between(
    samples: list[tuple[float, float]], started: float, finished: float
) -> list[tuple[float, float]]:
    """The samples from the last one at or before ``started`` to the first one at or after ``finished``."""
    before = [i for i, (t, _) in enumerate(samples) if t <= started]
    after = [i for i, (t, _) in enumerate(samples) if t >= finished]
    first = before[-1] if before else 0
    last = after[0] if after else len(samples) - 1
    return samples[first : last + 1]


def _vertex_stage(vertex: VertexSamples | None, phase: Phase) -> dict[str, Any] | None:
    if vertex is None:
        return None
    window = stats.stage_window(_window(vertex.series["numRecordsIn"], phase))
    if window is None:
        return None
    series = vertex.series
    return {
        "records": int(window.count),
        "seconds": round(window.seconds, 2),
        "msgs_per_s": round(stats.rate(phase.messages, window.seconds)),
        "busy_pct": _share(
            _between(series["accumulateBusyTimeMs"], window.started, window.finished), vertex.parallelism
        ),
        "backpressured_pct": _share(
            _between(series["accumulateBackPressuredTimeMs"], window.started, window.finished),
            vertex.parallelism,
        ),
        "vertex": vertex.name,
        "ends_after_s": round(window.finished - phase.started, 2),
    }


def _stages(phase: Phase, sampler: FlinkSampler | None) -> dict[str, Any]:
    stages: dict[str, Any] = {
        "replay": {
            "records": phase.records,
            "seconds": round(phase.replay_seconds, 2),
            "msgs_per_s": round(stats.rate(phase.messages, phase.replay_seconds)),
        }
    }
    if sampler is not None and "market_data" in sampler.jobs:
        stages["market_data"] = _vertex_stage(sampler.vertex("market_data", "market-data"), phase)
    elif sampler is not None:
        stages["normalize"] = _vertex_stage(sampler.vertex("normalize", "normalize"), phase)
        stages["order_book"] = _vertex_stage(sampler.vertex("order_book", "order-book"), phase)
    books = stages.get("order_book") or stages.get("market_data")
    stages["sinks"] = {
        "complete_after_s": round(phase.seconds, 2),
        "after_last_book_record_s": round(phase.seconds - books["ends_after_s"], 2) if books else None,
        "seen_in": "ClickHouse book_status (polled every 0.2 s)",
    }
    return stages


def _vertex_loads(phase: Phase, sampler: FlinkSampler | None) -> list[dict[str, Any]]:
    """Busy and back-pressured share of every vertex during the throughput phase."""
    if sampler is None:
        return []
    loads = []
    for vertex in sampler.vertices.values():
        series = vertex.series
        loads.append(
            {
                "job": vertex.job,
                "vertex": vertex.name,
                "parallelism": vertex.parallelism,
                "busy_pct": _share(
                    _between(series["accumulateBusyTimeMs"], phase.started, phase.finished),
                    vertex.parallelism,
                ),
                "backpressured_pct": _share(
                    _between(series["accumulateBackPressuredTimeMs"], phase.started, phase.finished),
                    vertex.parallelism,
                ),
            }
        )
    return loads


def _cpu(phase: Phase, top: int = 12) -> dict[str, Any]:
    """Where the machine's CPU went during ``phase`` (seconds and cores): the stack's processes, the
    rest of the machine, and the share the hypervisor took (steal: the host's load, not ours)."""
    used = dict(phase.cpu_seconds)
    machine, stolen = used.pop(MACHINE, (0.0, 0.0))
    ours = sum(cpu for cpu, _ in used.values())
    return {
        "seconds": round(phase.seconds, 2),
        "cores_busy": round(stats.rate(ours, phase.seconds), 2),
        "machine_cores_busy": round(stats.rate(machine, phase.seconds), 2),
        "outside_stack_cores": round(stats.rate(max(machine - ours, 0.0), phase.seconds), 2),
        "stolen_cores": round(stats.rate(stolen, phase.seconds), 2),
        "by_thread": {
            label: {"cpu_s": round(cpu, 1), "runqueue_wait_s": round(wait, 1)}
            for label, (cpu, wait) in list(used.items())[:top]
        },
    }


def _checkpoints(phase: Phase, sampler: FlinkSampler | None) -> dict[str, Any]:
    if sampler is None:
        return {}
    window = (phase.started_epoch_ms, phase.finished_epoch_ms)
    jobs = {
        job: stats.summarize_checkpoints(history.values(), window)
        for job, history in sampler.checkpoints.items()
    }
    maxima = [summary["max"] for summary in jobs.values() if summary["max"] is not None]
    medians = [summary["p50"] for summary in jobs.values() if summary["p50"] is not None]
    return {"max": max(maxima, default=None), "p50": max(medians, default=None), "jobs": jobs}


def _offline(reference: dict) -> dict[str, Any] | None:
    offline = reference.get("offline")
    if not offline:
        return None
    seconds = offline["decode_seconds"] + offline["book_seconds"]
    return {**offline, "msgs_per_s": round(stats.rate(offline["messages"], seconds))}


def _cpp_ratios(cpp: dict[str, Any] | None, msgs_per_s: float) -> dict[str, Any] | None:
    if cpp is None:
        return None
    for result in cpp.values():
        if result.get("msgs_per_s") and msgs_per_s:
            result["x_pipeline"] = round(result["msgs_per_s"] / msgs_per_s, 1)
    return cpp


def _machine() -> dict[str, Any]:
    memory_gb = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = round(int(handle.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _code_version() -> str | None:
    """``git describe`` of the project (``-dirty`` when the pipeline's code has local changes)."""
    import subprocess

    from itchflow.config import PROJECT_ROOT

    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--exclude", "*"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
