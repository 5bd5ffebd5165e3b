"""What the top-of-book analytics cores share (:mod:`itchflow.analytics.ofi`,
:mod:`itchflow.analytics.liquidity`): tumbling window sizes, the event-time clock, when windows and
close markers are due, late updates, and the snapshot check.

Both cores keep, per (venue, symbol) and window size, the windows with updates that have not fired,
and fire them in event time: a window ``[start, start + size)`` *has fired* once its end is ``<=``
the largest ``complete_before_ns`` given to ``advance`` so far, or once ``close_all`` (the end of a
feed) emitted it or a later window of the same (venue, symbol, size). For the latter they keep a
*close marker* (the end of the last window ``close_all`` emitted) until event time passes it.
"""

from __future__ import annotations

import heapq
from typing import Any, NamedTuple

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MS = 1_000_000
SNAPSHOT_VERSION = 1
MARKER = -1
"""The ``trading_date`` of a due entry that is a close marker, not a window."""

LATE_WINDOW = "window"
LATE_DAY = "day"
KIND_TOP = "top"
KIND_DEPTH = "depth"

Due = tuple[int, str, str, int, int, int]
"""(end, venue, symbol, interval_s, trading date or :data:`MARKER`, start): when a window fires or a
close marker goes."""


class LateUpdate(NamedTuple):
    """An update that came after windows it belonged to had fired, for the late-data output."""

    venue: str
    symbol: str
    trading_date: int
    kind: str
    """``top`` (a top-of-book change) or ``depth`` (a depth update)"""
    ts_event: int
    seq: int
    intervals_s: tuple[int, ...]
    """the window sizes for which the window of its ``ts_event`` had fired"""
    reason: str
    """``window`` (what that means is the core's rule) or ``day`` (an update of an earlier trading
    date than the symbol's current one: ignored)"""


def check_intervals(intervals_s: object) -> None:
    """Window sizes must be a non-empty tuple of distinct positive whole seconds; ValueError otherwise."""
    if not isinstance(intervals_s, tuple) or not intervals_s:
        raise ValueError(f"intervals_s must be a non-empty tuple of seconds, got {intervals_s!r}")
    for value in intervals_s:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"window sizes must be positive whole seconds, got {value!r}")
    if len(set(intervals_s)) != len(intervals_s):
        raise ValueError(f"window sizes must be distinct, got {intervals_s!r}")


def check_snapshot(data: Any, expected: dict[str, object], reads: int = SNAPSHOT_VERSION) -> None:
    """A snapshot of version ``reads``, of a core configured as ``expected``; ValueError otherwise."""
    if not isinstance(data, dict) or data.get("version") != reads:
        version = data.get("version") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"snapshot version {version!r}, this code reads {reads}")
    for name, value in expected.items():
        if data.get(name) != value:
            raise ValueError(f"snapshot has {name}={data.get(name)!r}, this core has {value!r}")


class TumblingClock:
    """The event-time clock and the heap of due windows and markers of one core."""

    __slots__ = ("plan", "due", "complete_before")

    def __init__(self, intervals_s: tuple[int, ...]) -> None:
        check_intervals(intervals_s)
        #: (interval_s, size in ns) per window size
        self.plan = tuple((interval, interval * NANOS_PER_SECOND) for interval in intervals_s)
        #: entries may be stale (the window fired or the marker went): the core checks when popping
        self.due: list[Due] = []
        #: the largest complete_before given so far (None before the first)
        self.complete_before: int | None = None

    def advance(self, complete_before_ns: int) -> int:
        """Event time after an advance to ``complete_before_ns``: it never goes back."""
        now = complete_before_ns
        if self.complete_before is not None and now < self.complete_before:
            now = self.complete_before
        self.complete_before = now
        return now

    def limits(self, closed: dict[int, int]) -> list[tuple[int, int, int]]:
        """``(interval_s, size, limit)`` per size for a symbol with close markers ``closed``: a
        window of that size whose end is ``<= limit`` has fired (-1: none has)."""
        clock = -1 if self.complete_before is None else self.complete_before
        out = []
        for interval, size in self.plan:
            closed_end = closed.get(interval, -1)
            out.append((interval, size, closed_end if closed_end > clock else clock))
        return out

    def push(self, entry: Due) -> None:
        heapq.heappush(self.due, entry)

    def pop_due(self, now: int) -> list[Due]:
        """Every entry due at or before ``now``, in order, taken off the heap."""
        due = self.due
        out = []
        while due and due[0][0] <= now:
            out.append(heapq.heappop(due))
        return out

    def next_ms(self, live: Any) -> int | None:
        """The event-time timer (ms) for the earliest entry that ``live(entry)`` says still stands
        (stale ones are dropped): the timer fires at watermark ``W >= due_ms - 1``, i.e. once
        ``complete_before >= due``."""
        due = self.due
        while due:
            if live(due[0]):
                return -(-due[0][0] // NANOS_PER_MS) - 1
            heapq.heappop(due)
        return None

    def rebuild(self, entries: list[Due]) -> None:
        """The heap of ``entries`` (a restore)."""
        self.due = entries
        heapq.heapify(self.due)
