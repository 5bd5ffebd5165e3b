"""The arithmetic of ``itchflow bench``: percentiles, latencies, stage windows, checkpoint summaries.

Pure functions over plain data (no I/O), so that every number the benchmark prints can be checked
by hand in ``tests/unit/test_bench_stats.py``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

NANOS_PER_MILLI = 1_000_000


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ascending ``sorted_values``, linearly interpolated.

    The same definition as ``numpy.percentile``'s default: rank ``q/100 * (n - 1)`` between the two
    nearest values. Raises ValueError on an empty sequence or a ``q`` outside 0..100.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    rank = q / 100.0 * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of end-to-end latencies, in milliseconds."""

    samples: int
    p50: float
    p99: float
    max: float
    mean: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "p50": round(self.p50, 3),
            "p99": round(self.p99, 3),
            "max": round(self.max, 3),
            "mean": round(self.mean, 3),
            "samples": self.samples,
        }


def describe_ms(values_ms: Iterable[float]) -> str:
    """``p50 .. p90 .. p99 .. max .. ms (n=..)`` of latencies in milliseconds (for the probe scripts)."""
    values = sorted(values_ms)
    if not values:
        return "none"
    p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
    return f"p50 {p50:7.1f}  p90 {p90:7.1f}  p99 {p99:7.1f}  max {values[-1]:7.1f} ms  (n={len(values)})"


def summarize_latencies(latencies_ns: Iterable[int]) -> LatencySummary | None:
    """p50/p99/max/mean in ms of nanosecond latencies; None when there are none."""
    values = sorted(latencies_ns)
    if not values:
        return None
    to_ms = 1 / NANOS_PER_MILLI
    return LatencySummary(
        samples=len(values),
        p50=percentile(values, 50) * to_ms,
        p99=percentile(values, 99) * to_ms,
        max=values[-1] * to_ms,
        mean=sum(values) / len(values) * to_ms,
    )


@dataclass(frozen=True, slots=True)
class SentBatch:
    """One raw batch as the replay sent it: messages ``first_seq .. first_seq + count - 1`` of a symbol."""

    first_seq: int
    count: int
    sent_ns: int


def match_arrivals(
    arrivals: Iterable[tuple[str, int, int]], sent: Mapping[str, Sequence[SentBatch]]
) -> tuple[list[tuple[int, int]], int]:
    """``(pairs, unmatched)``: for each ``(symbol, seq, arrived_ns)``, the pair ``(arrived_ns,
    latency_ns)``, latency being arrival minus the send time of the batch that carried message
    ``seq`` of ``symbol``.

    ``sent[symbol]`` must be ordered by ``first_seq`` (the replay numbers a symbol's batches in
    order). Arrivals whose seq no sent batch carries are counted as unmatched, never guessed.
    """
    starts = {symbol: [batch.first_seq for batch in batches] for symbol, batches in sent.items()}
    pairs: list[tuple[int, int]] = []
    unmatched = 0
    for symbol, seq, arrived_ns in arrivals:
        batches = sent.get(symbol)
        if not batches:
            unmatched += 1
            continue
        index = bisect.bisect_right(starts[symbol], seq) - 1
        if index < 0 or seq >= batches[index].first_seq + batches[index].count:
            unmatched += 1
            continue
        pairs.append((arrived_ns, arrived_ns - batches[index].sent_ns))
    return pairs, unmatched


def split_near_checkpoints(
    pairs: Iterable[tuple[int, int]], triggers_ms: Iterable[float], after_ms: float
) -> tuple[list[int], list[int]]:
    """``(near, elsewhere)``: the latencies (ns) of ``(arrived_ns, latency_ns)`` pairs whose entry
    arrived within ``after_ms`` after a checkpoint was triggered (epoch ms, the trigger included), and
    the others. Where the tail lies: checkpoints come every few seconds and each stalls the
    pipeline for a moment."""
    starts = sorted(triggers_ms)
    near: list[int] = []
    elsewhere: list[int] = []
    for arrived_ns, latency_ns in pairs:
        arrived_ms = arrived_ns / NANOS_PER_MILLI
        index = bisect.bisect_right(starts, arrived_ms) - 1
        if index >= 0 and arrived_ms - starts[index] <= after_ms:
            near.append(latency_ns)
        else:
            elsewhere.append(latency_ns)
    return near, elsewhere


@dataclass(frozen=True, slots=True)
class StageWindow:
    """When a stage worked: from its counter's first move to the sample where it reached its final value."""

    started: float
    finished: float
    count: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def stage_window(samples: Sequence[tuple[float, float]]) -> StageWindow | None:
    """The working window of a monotone counter sampled as ``(time, value)``, oldest first.

    Starts at the last sample still at the initial value (the counter moved after it: an upper
    bound of the stage's time, by at most one sampling interval) and finishes at the first sample
    at the final value. None when the counter never moved.
    """
    if len(samples) < 2:
        return None
    initial, final = samples[0][1], samples[-1][1]
    if final == initial:
        return None
    started = max(t for t, value in samples if value == initial)
    finished = min(t for t, value in samples if value == final)
    return StageWindow(started, finished, final - initial)


def rate(count: float, seconds: float) -> float:
    """``count / seconds``, 0.0 for a zero or negative duration."""
    return count / seconds if seconds > 0 else 0.0


def _checkpoints_in(history: Iterable[Mapping], window_ms: tuple[float, float] | None) -> Iterator[Mapping]:
    """The checkpoints (not savepoints) of a ``/jobs/<id>/checkpoints`` history triggered inside
    ``window_ms`` (epoch ms, inclusive; None: all)."""
    for entry in history:
        triggered = entry.get("trigger_timestamp", 0)
        if not entry.get("is_savepoint") and (window_ms is None or window_ms[0] <= triggered <= window_ms[1]):
            yield entry


def checkpoint_triggers(history: Iterable[Mapping], window_ms: tuple[float, float]) -> list[float]:
    """When (epoch ms) the checkpoints of a ``/jobs/<id>/checkpoints`` history that were triggered
    inside ``window_ms`` (inclusive) were triggered, whatever became of them; savepoints left out."""
    return sorted(float(entry["trigger_timestamp"]) for entry in _checkpoints_in(history, window_ms))


def summarize_checkpoints(
    history: Iterable[Mapping], window_ms: tuple[float, float] | None = None
) -> dict[str, float | int | None]:
    """Durations (ms) and state size of the checkpoints in Flink's ``/jobs/<id>/checkpoints`` history.

    Only checkpoints triggered inside ``window_ms`` (epoch ms, inclusive) count when it is given:
    the idle ones before and after a run would dilute the percentiles. Savepoints are left out.
    """
    completed: list[float] = []
    failed = 0
    state_bytes = 0
    for entry in _checkpoints_in(history, window_ms):
        if entry.get("status") == "COMPLETED":
            completed.append(float(entry["end_to_end_duration"]))
            state_bytes = max(state_bytes, int(entry.get("state_size") or 0))
        elif entry.get("status") == "FAILED":
            failed += 1
    completed.sort()
    return {
        "completed": len(completed),
        "failed": failed,
        "p50": percentile(completed, 50) if completed else None,
        "max": completed[-1] if completed else None,
        "state_mb": round(state_bytes / 1e6, 1),
    }
