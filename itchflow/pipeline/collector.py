"""Keeps Python's cyclic garbage collector from pausing the jobs for a tenth of a second.

A job's Python code runs in an interpreter that lives as long as the TaskManager and holds every
book, sequence state and imported module: hundreds of thousands of objects the cyclic collector
scans in each full (generation 2) collection. Measured in the market-data job at 20 k msgs/s:
full collections every few seconds, 85-142 ms each, collecting nothing (no collection of any
generation found garbage: the per-record objects die by reference counting). Each paused the task
thread, which is the p99 of the produce -> Redis latency.

:class:`CollectorFreeze` moves everything the collector tracks into the permanent generation
(:func:`gc.freeze`) at most once per interval, so a full collection scans only what was allocated
since. Frozen objects are still freed by reference counting; only garbage *cycles* that were
young at a freeze would outlive it (none were found, see above) -- until :meth:`CollectorFreeze.release`:
the operators call it when they close, so the cycles a cancelled or restarted job leaves behind (its
functions, books and state objects) are collected instead of staying in the TaskManager for good
(a TaskManager's RSS grew with every bench job on one stack before: 2.3 -> 3.3 GB over four 10 M jobs).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FREEZE_EVERY_S = 1.0


class CollectorFreeze:
    """Call :meth:`tick` once per record; it freezes the collector's objects every ``interval_s``."""

    __slots__ = ("interval_s", "clock", "freeze", "unfreeze", "_last", "freezes")

    def __init__(
        self,
        interval_s: float = FREEZE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        freeze: Callable[[], None] = gc.freeze,
        unfreeze: Callable[[], None] = gc.unfreeze,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.freeze = freeze
        self.unfreeze = unfreeze
        self._last = float("-inf")
        #: freezes done so far
        self.freezes = 0

    def tick(self) -> bool:
        """Freeze if the last freeze is ``interval_s`` old (the first tick always freezes); whether it did."""
        now = self.clock()
        if now - self._last < self.interval_s:
            return False
        self.freeze()
        self._last = now
        self.freezes += 1
        return True

    def release(self) -> None:
        """Give every frozen object back to the collector (an operator's ``close``): garbage cycles
        among them -- a closed job's objects -- are collected by the next full collection. Other
        operators of the interpreter freeze again at their next tick."""
        self.unfreeze()
        self._last = float("-inf")
