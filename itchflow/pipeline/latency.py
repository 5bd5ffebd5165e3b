"""A latency histogram made of counters (what the jobs report as Flink metrics).

Python *gauges* cannot be used in thread mode (Flink's metrics thread calling into the embedded
interpreter crashed the TaskManager), and PyFlink has no histogram that is safe there either; a
counter per bucket is Java-side and cheap. ``latencyLe<N>ms`` counts records whose latency was at
most N ms and more than the previous bound; ``latencyOver<last>ms`` the rest. The web UI and the
metric reporters show each bucket; rates or percentiles follow from the counts.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds (ms) of the buckets, ascending."""

BAR_PUBLISH_DELAY = "barPublishDelay"
"""The market-data job's bar publish delay histogram, counted by its Java Redis writer with these
buckets (``connectors/redis.py``): from the watermark passing bars' window ends to Redis having them."""


def bucket_names(prefix: str = "latency") -> tuple[str, ...]:
    """Metric names of the buckets, in order: one per bound, then the overflow bucket."""
    return (*(f"{prefix}Le{bound}ms" for bound in BOUNDS_MS), f"{prefix}Over{BOUNDS_MS[-1]}ms")


def bucket_quantile(counts: Sequence[float], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q`` of a histogram given as its
    bucket counts (in :func:`bucket_names` order; ``inf`` for the overflow bucket); None when empty."""
    total = sum(counts)
    if total <= 0:
        return None
    seen = 0.0
    for bound, count in zip((*BOUNDS_MS, float("inf")), counts, strict=True):
        seen += count
        if seen >= q * total:
            return bound
    return float("inf")


def bucket_of(latency_ms: float) -> int:
    """Index into :func:`bucket_names` of a latency (negative clock skew counts as the first bucket)."""
    return bisect.bisect_left(BOUNDS_MS, latency_ms)
