"""The benchmark result as a readable table (``--json`` prints the result object itself)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itchflow.pipeline.latency import BOUNDS_MS

REQUIRED_KEYS = ("messages", "msgs_per_s", "latency_ms", "stages", "checkpoint_ms", "peak_rss_mb", "correct")


def missing_keys(result: Mapping[str, Any]) -> list[str]:
    """Keys the result object promises (README, ``--json``) but lacks."""
    missing = [key for key in REQUIRED_KEYS if key not in result]
    latency = result.get("latency_ms")
    if isinstance(latency, Mapping):
        missing += [f"latency_ms.{key}" for key in ("p50", "p99", "max") if key not in latency]
    return missing


def render(result: Mapping[str, Any]) -> str:
    """The whole result as lines of text."""
    run = result["run"]
    lines = [
        f"itchflow bench  {result['messages']:,} messages, {result['symbols']:,} symbols, "
        f"{run['execution_mode']} mode, parallelism {run['parallelism']}, {run['partitions']} partitions, "
        f"batches of <= {run['batch_size']} / {run['linger_ms']:g} ms",
        "",
        f"  end to end     {_number(result['msgs_per_s'])} msgs/s   ({result['seconds']:.2f} s from the first "
        "message produced to the last book in ClickHouse)",
        f"  correct        {_verdict(result)}",
        "",
        *_stage_lines(result["stages"]),
        "",
        _latency_line(result.get("latency_ms")),
        _checkpoint_line(result.get("checkpoint_ms") or {}),
        _memory_line(result.get("rss_mb") or {}, result.get("taskmanager_metaspace_mb")),
        *_cpu_lines(result.get("cpu")),
    ]
    lines += _comparison_lines(result)
    if run.get("other_jobs_running"):
        lines.append(
            f"  warning        other jobs ran on the cluster: {', '.join(run['other_jobs_running'])}"
        )
    if not result["correct"]:
        lines += ["", f"FAIL: {result['mismatch_count']:,} differences, e.g.:"]
        lines += [f"  {line}" for line in result["mismatches"][:10]]
    return "\n".join(lines)


def _verdict(result: Mapping[str, Any]) -> str:
    if not result["correct"]:
        return "NO"
    bars = result.get("bars_checked") or 0
    also = f", every bar ({bars:,}) equals `itchflow bars --json`" if bars else ""
    return f"yes: every book equals `itchflow book --json`{also}"


def _number(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{suffix}"


def _stage_lines(stages: Mapping[str, Any]) -> list[str]:
    lines = [f"  {'stage':<13}{'records':>10}{'seconds':>10}{'msgs/s':>12}{'busy':>8}{'back-pressured':>16}"]
    names: tuple[tuple[str, str], ...] = (
        ("replay", "replay"),
        ("normalize", "normalize"),
        ("order_book", "order book"),
    )
    if "market_data" in stages:
        names = (("replay", "replay"), ("market_data", "market data"))
    for name, label in names:
        stage = stages.get(name)
        if not stage:
            lines.append(f"  {label:<13}{'(no samples: run too short for 1 s sampling?)':>40}")
            continue
        busy = f"{stage['busy_pct']:.0f}%" if "busy_pct" in stage else ""
        pressured = f"{stage['backpressured_pct']:.0f}%" if "backpressured_pct" in stage else ""
        lines.append(
            f"  {label:<13}{stage['records']:>10,}{stage['seconds']:>10.2f}{_number(stage['msgs_per_s']):>12}"
            f"{busy:>8}{pressured:>16}"
        )
    sinks = stages.get("sinks") or {}
    lag = sinks.get("after_last_book_record_s")
    if lag is not None:
        when = f"{lag:.1f} s after" if lag > 2 else "within the counters' resolution of"
        lines.append(
            f"  sinks        books complete in ClickHouse {when} the order-book vertex's last record"
        )
    lines.append("  (stage windows: Flink REST counters sampled every 1 s, which lag by up to ~2 s)")
    return lines


def _latency_line(latency: Mapping[str, Any] | None) -> str:
    if not latency:
        return "  latency        not measured (--latency-rate 0)"
    if not latency.get("samples"):
        return "  latency        no top-of-book stream entries arrived"
    return (
        f"  latency        p50 {latency['p50']:.1f} ms   p99 {latency['p99']:.1f} ms   max {latency['max']:.1f} ms   "
        f"({latency['samples']:,} stream entries; {latency['messages']:,} messages paced at "
        f"{latency['rate_msgs_per_s']:,.0f} msgs/s; batch sent -> Redis stream read)"
        + _in_job_line(latency.get("in_job_ms"))
        + _bar_publish_line(latency.get("bar_publish_ms"))
        + _near_checkpoints_line(latency.get("checkpoints"))
        + "".join(f"\n{line}" for line in _cpu_lines(latency.get("cpu"), "during the phase", shown=6))
    )


def _near_checkpoints_line(split: Mapping[str, Any] | None) -> str:
    if not split or not split.get("triggered"):
        return ""

    def part(summary: Mapping[str, Any] | None) -> str:
        if not summary:
            return "no entries"
        return f"p50 {summary['p50']:.1f}   p99 {summary['p99']:.1f}   max {summary['max']:.1f} ms   ({summary['samples']:,})"

    return (
        f"\n  by time       within {split['after_ms'] / 1000:g} s after one of the phase's {split['triggered']} checkpoint(s): "
        f"{part(split['near'])}\n                elsewhere: {part(split['elsewhere'])}"
    )


def _in_job_line(in_job: Mapping[str, Any] | None) -> str:
    if not in_job or not in_job.get("records"):
        return ""
    bounds = "   ".join(f"{q} <= {in_job[q]:g} ms" for q in ("p50", "p90", "p99"))
    return f"\n  of which      batch sent -> books applied in the job: {bounds}   ({in_job['records']:,} records)"


def _bar_publish_line(bars: Mapping[str, Any] | None) -> str:
    if bars is None:
        return ""  # the job writes no bars
    if not bars.get("firings"):
        return "\n  bar publish    no bars fired by event time during the phase"
    bounds = "   ".join(f"{q} {_bucket_bound(bars[q])}" for q in ("p50", "p99", "max"))
    return (
        f"\n  bar publish    watermark past the bars' window end -> bars in Redis: {bounds}   "
        f"({bars['firings']:,} firings)"
    )


def _bucket_bound(bound: float) -> str:
    """A quantile read from counter buckets: at most the bucket's bound (the last bucket has none)."""
    return f"> {BOUNDS_MS[-1]:g} ms" if bound == float("inf") else f"<= {bound:g} ms"


def _checkpoint_line(checkpoints: Mapping[str, Any]) -> str:
    parts = []
    for job, summary in (checkpoints.get("jobs") or {}).items():
        if summary["completed"]:
            parts.append(
                f"{job} {summary['completed']} done, p50 {summary['p50']:,.0f} ms, max {summary['max']:,.0f} ms, "
                f"{summary['state_mb']} MB state"
            )
        else:
            parts.append(f"{job} none completed")
        if summary["failed"]:
            parts[-1] += f", {summary['failed']} FAILED"
    return "  checkpoints    " + ("; ".join(parts) if parts else "-")


def _memory_line(rss: Mapping[str, float], metaspace_mb: float | None) -> str:
    if not rss:
        return "  peak memory    -"
    taskmanager = rss.get("flink-taskmanager")
    others = ", ".join(f"{name} {mb:,.0f}" for name, mb in rss.items() if name != "flink-taskmanager")
    metaspace = f"; TaskManager metaspace {metaspace_mb:,.0f} MB after the run" if metaspace_mb else ""
    return (
        f"  peak memory    TaskManager + Python workers {_number(taskmanager)} MB  ({others} MB){metaspace}"
    )


def _cpu_lines(cpu: Mapping[str, Any] | None, title: str = "with this run", shown: int = 8) -> list[str]:
    if not cpu:
        return []
    outside = cpu["outside_stack_cores"]
    stolen = min(cpu.get("stolen_cores", 0.0), outside)
    lines = [
        f"  CPU            {cpu['cores_busy']:.2f} cores busy {title} over {cpu['seconds']:.1f} s "
        f"(machine {cpu['machine_cores_busy']:.2f}, of which {outside:.2f} outside this stack: "
        f"{stolen:.2f} stolen by the hypervisor, {outside - stolen:.2f} other processes);",
        "                 CPU seconds (waiting for a CPU) by process/thread:",
    ]
    for label, used in list(cpu["by_thread"].items())[:shown]:
        lines.append(f"                   {used['cpu_s']:7.1f} ({used['runqueue_wait_s']:6.1f})  {label}")
    return lines


def _comparison_lines(result: Mapping[str, Any]) -> list[str]:
    lines = []
    offline = result.get("offline_python")
    if offline:
        lines.append(
            f"  offline        `itchflow book` (one Python process, no Kafka/Flink/sinks): "
            f"{_number(offline['msgs_per_s'])} msgs/s"
        )
    for name, cpp in (result.get("cpp") or {}).items():
        if "error" in cpp:
            lines.append(f"  C++ {name}: {cpp['error']}")
        else:
            ratio = f" = {cpp['x_pipeline']:g}x the pipeline" if cpp.get("x_pipeline") else ""
            lines.append(f"  C++            {name}: {_number(cpp['msgs_per_s'])} msgs/s{ratio}")
    return lines
