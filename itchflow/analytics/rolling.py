"""Sliding VWAP and moving averages over bars, in event time: bars and their revisions in, values out
once event time has passed their windows.

Like :mod:`itchflow.analytics.bar_stage`, this is a pure core: the Flink operator feeds it the bars
that the bar stage emits, calls :meth:`advance` with the watermark, and checkpoints ``snapshot()``.

Common rules (:class:`SlidingVwap` and :class:`MovingAverages`)
---------------------------------------------------------------

* **Keys.** One core holds every symbol of one venue. It keys its state by symbol, because a
  :class:`~itchflow.analytics.bars.Bar` carries its symbol but not its venue. So the operator keeps
  one core per venue (a Flink key is a Kafka partition of one venue).
* **Input.** :meth:`add` takes a new or revised bar of the core's size. A bar with the same
  ``(symbol, window_start_ns)`` replaces the earlier one. :meth:`remove` takes a bar away (a broken
  trade took its last print: the bar stage's ``BarRevision.deleted``). A bar of another size, one
  not aligned on its size, or one without volume raises ValueError.
* **Event time.** ``advance(complete_before_ns)`` states that every bar ending at or before
  ``complete_before_ns`` has been given (:func:`itchflow.analytics.bar_stage.complete_before_ns` of
  the watermark). It returns what became due, each key at most once per call. Call it *after*
  adding the bars of the same firing. Event time never goes back: a smaller value (a watermark just
  after a restore) counts as the largest one seen so far.
* **Allowed lateness** (``allowed_lateness_ns``, the bar stage's allowed lateness in ns): a bar
  ``[start, start + size)`` can still change while ``start + size + allowed_lateness_ns`` is greater
  than the ``complete_before_ns`` of the last :meth:`advance`. After that, :meth:`add` and
  :meth:`remove` for it are ignored and counted in ``dropped_revisions``. If it gets the same
  lateness, the bar stage revises a bar that the core has already let go of only for a broken trade
  (breaks revise bars for the whole trading day): such revisions are the ones counted there.
* **Revisions.** Each output has a key, and idempotent sinks keep the latest revision of each key.
  The first emission of a key is ``revision`` 0 and each later one is revision + 1. A key is
  emitted again only when its values changed. A key whose inputs a removal took away is emitted
  once more as *deleted* (its value fields None, :attr:`deleted`). After ``advance(T)``, the latest
  revision of every key emitted so far holds the value computed from the bars accepted so far.
* **State** stays bounded, as set out per class below. ``snapshot()`` returns plain data (dicts,
  lists, ints, floats, str, bool, None; JSON-safe, with a ``"version": 1`` key). ``restore(data)``
  replaces the state with it, and the same inputs afterwards give the same outputs.

Sliding VWAP (:class:`SlidingVwap`)
-----------------------------------

* **Input**: bars of ``slide_s`` (1 s bars for the default 1 s slide).
* **Windows** are epoch-aligned and sliding: for every ``end`` that is a multiple of ``slide_s``
  (in ns), ``window(end) = [end - window_s, end)``. It holds the bars whose ``[start, start + slide)``
  lies inside it, i.e. ``end - window <= start <= end - slide``.
* **Value** (:class:`SlidingVwapValue`): ``volume``, ``notional`` and ``trades`` are exact integer
  sums over the window's bars. ``vwap = notional / volume`` is their correctly rounded quotient, as
  :attr:`Bar.vwap <itchflow.analytics.bars.Bar.vwap>`. Key: ``(symbol, window_s, window_end_ns)``.
* **Emission on change**: ``window(end)`` is emitted when it holds at least one bar *and* its bars
  differ from those of ``window(end - slide)``, i.e. a bar starts at ``end - slide`` (it entered) or at
  ``end - window - slide`` (it left). The rule compares which bars are present, not their values.
  A window with no bars is never emitted for the first time. In particular, when the last bar
  leaves, nothing is emitted, so one bar alone gives exactly one value (at its own end). As a
  result, the value of ``window(e)`` is that of the latest emission at or before ``e``, unless
  ``window(e)`` holds no bar (the symbol has no ``slide_s`` bar in ``[e - window_s, e)``).
* **Revisions**: a changed bar re-emits every window already emitted whose sums it changed (the
  windows ending in ``[start + slide, start + window]``). A removal that empties an emitted window
  re-emits that window as deleted (``vwap`` None, sums 0). A late new bar, or a removal, can also
  change which windows count as changed: a window that has become changed is emitted once it is
  complete. A window that has stopped being changed keeps its emissions; its latest emission still
  holds its (current) value.
* **State** per symbol: the bars with ``start + window + slide + allowed_lateness >
  complete_before`` (the ones needed to evaluate or re-evaluate a window), the last emission of each
  window with ``end + allowed_lateness > complete_before`` (to number revisions and to re-emit only
  what changed), and the windows waiting to be re-evaluated. A symbol with none of these has no
  state.

Moving averages (:class:`MovingAverages`)
-----------------------------------------

* **Input**: bars of ``interval_s`` (default 60 s). Only their closes count.
* **Sequence**: a symbol's bars by window start, as far as they exist. There is no forward fill:
  a minute without prints has no bar and is skipped. The sequence runs over every bar the core has
  been given for the symbol since it started (it is not reset per day). Bar ``k`` (1-based) has
  ``SMA_k`` = the mean of the closes of bars ``k - n + 1 .. k`` (exact integer sum, one division),
  defined from ``k = n`` on. ``EMA_1 = close_1``, and ``EMA_k = alpha * close_k + (1 - alpha) *
  EMA_{k-1}`` with ``alpha = 2 / (n + 1)``. Both are in the closes' units (price ticks of 10^-4
  dollars).
* **Emission**: bar ``k`` is emitted (:class:`MovingAverage`, key ``(symbol, interval_s,
  window_start_ns, n)``) once it is complete (``window_start + interval <= complete_before``) and
  ``k >= n``. The first ``n - 1`` bars of a symbol are never emitted for the first time.
* **Revisions**: a revised close, or a removed or late bar, recomputes SMA and EMA of every later
  retained bar. Each bar already emitted whose values changed is re-emitted. A removed bar that was
  emitted is re-emitted as deleted (``sma`` and ``ema`` None). An emitted bar that a removal moved
  below ``k = n`` is re-emitted with ``sma`` None.
* **State** per symbol: the bars that can still change (``start + interval + allowed_lateness >
  complete_before``) with the last emission of each, plus what the bars that can no longer change
  leave behind: how many there were, their last ``n - 1`` closes and the EMA at the last of them.
  So a symbol that has had bars keeps at most ``n - 1`` closes after its bars have become final.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.analytics.bars import NANOS_PER_SECOND, Bar
from itchflow.analytics.tumbling import check_snapshot

SNAPSHOT_VERSION = 1


def _whole_seconds(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive whole number of seconds, got {value!r}")


def _nonnegative_ns(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative whole number of nanoseconds, got {value!r}")


class _Wakeups:
    """When each symbol next needs processing: a heap of ``(time, symbol)``. A symbol has one live
    entry; entries that a later :meth:`set` replaced are skipped when popped."""

    __slots__ = ("_heap", "_at")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._at: dict[str, int] = {}

    def set(self, symbol: str, at: int | None) -> None:
        if at is None:
            self._at.pop(symbol, None)
        elif self._at.get(symbol) != at:
            self._at[symbol] = at
            heapq.heappush(self._heap, (at, symbol))

    def next_at(self) -> int | None:
        """The earliest time any symbol needs processing (None: none does)."""
        heap, at = self._heap, self._at
        while heap and at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # replaced or done
        return heap[0][0] if heap else None

    def pop_due(self, now: int) -> list[str]:
        """The symbols whose time is ``<= now``, each once, unscheduled."""
        due: list[str] = []
        heap, at = self._heap, self._at
        while heap and heap[0][0] <= now:
            time, symbol = heapq.heappop(heap)
            if at.get(symbol) == time:
                del at[symbol]
                due.append(symbol)
        return due


# ---------------------------------------------------------------------------------------- sliding VWAP


class _BarCore:
    """What both cores share: the bar grid, event time, the symbols' wake-ups, removals."""

    def __init__(self, step_ns: int, what: str, allowed_lateness_ns: int) -> None:
        self._step = step_ns
        self._what = what
        self._lateness = allowed_lateness_ns
        self._series: dict[str, Any] = {}
        self._wakeups = _Wakeups()
        self._complete_before: int | None = None
        #: adds and removes ignored because their bar was past the allowed lateness
        self.dropped_revisions = 0

    @property
    def complete_before_ns(self) -> int | None:
        """The event time of the last :meth:`advance` (None before the first one)."""
        return self._complete_before

    def next_wakeup_ns(self) -> int | None:
        """When :meth:`advance` next has something to do: the smallest ``complete_before_ns`` at which
        a value becomes due or a bar becomes final (None: nothing pending)."""
        return self._wakeups.next_at()

    @property
    def idle(self) -> bool:
        """Nothing pending: every bar given is final and every value due has been emitted, so no
        :meth:`advance` will emit anything without new bars."""
        return self._wakeups.next_at() is None

    def remove(self, symbol: str, window_start_ns: int) -> None:
        """The bar of ``symbol`` starting at ``window_start_ns`` is gone. A bar not held is a no-op."""
        self._check_start(window_start_ns)
        self._change(symbol, window_start_ns, None)

    def _rebuilt_series(self, fresh: _BarCore, symbol: str, bars: list[Bar], now: int) -> Any:
        """The symbol's series as an empty core of the same settings makes it from ``bars`` up to
        ``now`` (its emissions dropped), or None when it keeps nothing (this core forgets the symbol);
        the caller sets its emitted revisions and installs it (``_series``, ``_schedule``)."""
        for bar in bars:
            fresh.add(bar)  # type: ignore[attr-defined]
        fresh.advance(now)  # type: ignore[attr-defined]
        series = fresh._series.get(symbol)
        if series is None:
            self._series.pop(symbol, None)
            self._wakeups.set(symbol, None)
        return series

    def _check_start(self, start: int) -> None:
        if start % self._step:
            raise ValueError(f"bar start {start} is not a multiple of the {self._what}")

    def _change(self, symbol: str, start: int, new: Any) -> None:
        raise NotImplementedError

    def _clock(self, complete_before_ns: int) -> int:
        """Event time after an :meth:`advance` to ``complete_before_ns``: it never goes back."""
        now = complete_before_ns
        if self._complete_before is not None and now < self._complete_before:
            now = self._complete_before
        self._complete_before = now
        return now


@dataclass(frozen=True)
class RollingConfig:
    """The rolling analytics the market-data job derives from its bars (both need their bar sizes
    among the job's bar intervals)."""

    vwap_window_s: int = 300
    """Sliding VWAP window, a multiple of the slide."""
    vwap_slide_s: int = 1
    """Sliding VWAP slide: the size of the bars it sums."""
    ma_bars: int = 20
    """n of the SMA / EMA (alpha = 2 / (n + 1))."""
    ma_interval_s: int = 60
    """The bars whose closes the moving averages take."""

    def __post_init__(self) -> None:
        SlidingVwapConfig(self.vwap_window_s, self.vwap_slide_s)
        MovingAverageConfig(self.ma_bars, self.ma_interval_s)

    @property
    def intervals_s(self) -> tuple[int, int]:
        """The bar sizes it needs."""
        return self.vwap_slide_s, self.ma_interval_s


@dataclass(frozen=True)
class SlidingVwapConfig:
    """Which windows :class:`SlidingVwap` keeps."""

    window_s: int = 300
    """Window length in whole seconds, a multiple of ``slide_s``."""
    slide_s: int = 1
    """Slide in whole seconds. This is also the size of the input bars."""
    allowed_lateness_ns: int = 0
    """How long after a bar's end (event time) its revisions and removals still apply."""

    def __post_init__(self) -> None:
        _whole_seconds("window_s", self.window_s)
        _whole_seconds("slide_s", self.slide_s)
        if self.window_s % self.slide_s:
            raise ValueError(f"window_s ({self.window_s}) must be a multiple of slide_s ({self.slide_s})")
        _nonnegative_ns("allowed_lateness_ns", self.allowed_lateness_ns)


class SlidingVwapValue(NamedTuple):
    """The VWAP of a symbol over ``[window_end_ns - window_s, window_end_ns)``. Key: ``(symbol,
    window_s, window_end_ns)``, where the latest ``revision`` wins."""

    symbol: str
    window_end_ns: int
    window_s: int
    vwap: float | None
    """notional / volume; None if the window is deleted"""
    volume: int
    notional: int
    """sum of price x shares (price ticks of 10^-4 dollars)"""
    trades: int
    revision: int

    @property
    def deleted(self) -> bool:
        """A removal has emptied this window, which was emitted before. Readers drop it."""
        return self.volume == 0

    @property
    def window_start_ns(self) -> int:
        return self.window_end_ns - self.window_s * NANOS_PER_SECOND


Sums = tuple[int, int, int]
"""(volume, notional, trades)"""


class _VwapSeries:
    """One symbol's state. Between calls, once ``evaluated_to`` is set, ``frontier`` is the largest
    multiple of the slide that is <= ``evaluated_to``, and ``sums`` holds the sums of
    ``window(frontier)``."""

    __slots__ = ("starts", "bars", "emitted", "recheck", "evaluated_to", "frontier", "sums")

    def __init__(self, evaluated_to: int | None, slide: int) -> None:
        self.starts: list[int] = []  # sorted
        self.bars: dict[int, Sums] = {}  # start -> sums
        self.emitted: dict[int, tuple[int, int, int, int]] = {}  # end -> (revision, *sums)
        self.recheck: set[int] = set()  # ends <= evaluated_to that a change may have touched
        # every end <= this has been evaluated; None: none has, no advance had come yet
        self.evaluated_to = evaluated_to
        self.frontier = 0 if evaluated_to is None else evaluated_to - evaluated_to % slide
        self.sums = [0, 0, 0]


class SlidingVwap(_BarCore):
    """Sliding-window VWAP of every symbol of a venue, from its ``slide_s`` bars. See the module
    docstring for the rules."""

    def __init__(self, config: SlidingVwapConfig | None = None) -> None:
        self.config = config or SlidingVwapConfig()
        self._slide = self.config.slide_s * NANOS_PER_SECOND
        self._window = self.config.window_s * NANOS_PER_SECOND
        super().__init__(self._slide, f"slide ({self.config.slide_s} s)", self.config.allowed_lateness_ns)

    # ------------------------------------------------------------------ input

    def add(self, bar: Bar) -> None:
        """A new or revised bar of ``slide_s``. It replaces any earlier bar with the same start."""
        if bar.interval_s != self.config.slide_s:
            raise ValueError(f"sliding VWAP takes {self.config.slide_s} s bars, got a {bar.interval_s} s bar")
        self._check_start(bar.window_start_ns)
        if bar.volume <= 0:
            raise ValueError(f"a bar without volume: {bar!r}")
        self._change(bar.symbol, bar.window_start_ns, (bar.volume, bar.notional, bar.trades))

    def _change(self, symbol: str, start: int, new: Sums | None) -> None:
        slide, window = self._slide, self._window
        now = self._complete_before
        if now is not None and start + slide + self._lateness <= now:
            self.dropped_revisions += 1
            return
        series = self._series.get(symbol)
        if series is None:
            if new is None:
                return
            # no end before the bar's own can hold anything of the symbol
            series = self._series[symbol] = _VwapSeries(None if now is None else min(start, now), slide)
        old = series.bars.get(start)
        if old == new:
            return
        if new is None:
            del series.bars[start]
            del series.starts[bisect_left(series.starts, start)]
        else:
            if old is None:
                insort(series.starts, start)
            series.bars[start] = new
        done = series.evaluated_to
        if done is not None:
            frontier = series.frontier
            if frontier - window <= start <= frontier - slide:
                for i in range(3):
                    series.sums[i] += (new[i] if new else 0) - (old[i] if old else 0)
            if start + slide <= done:  # windows already evaluated hold it, or saw it leave
                series.recheck.update(range(start + slide, min(start + window + slide, done) + 1, slide))
        self._schedule(symbol, series)

    # ------------------------------------------------------------------ output

    def advance(self, complete_before_ns: int) -> list[SlidingVwapValue]:
        """Every window that ends at or before ``complete_before_ns`` and is due: a new changed window,
        or an emitted one whose value changed. Sorted by (window end, symbol)."""
        now = self._clock(complete_before_ns)
        out: list[SlidingVwapValue] = []
        for symbol in self._wakeups.pop_due(now):
            series = self._series[symbol]
            self._process(symbol, series, now, out)
            self._schedule(symbol, series)
        out.sort(key=lambda value: (value.window_end_ns, value.symbol))
        return out

    def _process(self, symbol: str, series: _VwapSeries, now: int, out: list[SlidingVwapValue]) -> None:
        slide, window = self._slide, self._window
        starts, done = series.starts, series.evaluated_to
        if done is None:  # first processing (the wakeup came from the first bar's end)
            done = series.evaluated_to = series.frontier = starts[0]
        for end in sorted(series.recheck):
            self._emit_if_changed(symbol, series, end, self._window_sums(series, end), out)
        series.recheck.clear()
        entered = starts[bisect_right(starts, done - slide) : bisect_right(starts, now - slide)]
        left = starts[
            bisect_right(starts, done - window - slide) : bisect_right(starts, now - window - slide)
        ]
        ends = {start + slide for start in entered}
        ends.update(start + window + slide for start in left)
        for end in sorted(ends):
            self._move_frontier(series, end)
            sums = series.sums
            self._emit_if_changed(symbol, series, end, (sums[0], sums[1], sums[2]), out)
        series.evaluated_to = now
        self._move_frontier(series, now - now % slide)
        # forget what no allowed change can reach any more
        horizon = now - self._lateness
        cut = bisect_right(starts, horizon - window - slide)
        for start in starts[:cut]:
            del series.bars[start]
        del starts[:cut]
        for end in [end for end in series.emitted if end <= horizon]:
            del series.emitted[end]

    def _emit_if_changed(
        self, symbol: str, series: _VwapSeries, end: int, sums: Sums, out: list[SlidingVwapValue]
    ) -> None:
        volume, notional, trades = sums
        previous = series.emitted.get(end)
        if previous is None:
            changed = end - self._slide in series.bars or end - self._window - self._slide in series.bars
            if volume == 0 or not changed:
                return
            revision = 0
        elif previous[1:] == sums:
            return
        else:
            revision = previous[0] + 1
        series.emitted[end] = (revision, volume, notional, trades)
        vwap = notional / volume if volume else None
        out.append(
            SlidingVwapValue(symbol, end, self.config.window_s, vwap, volume, notional, trades, revision)
        )

    def _window_sums(self, series: _VwapSeries, end: int) -> Sums:
        starts, bars = series.starts, series.bars
        volume = notional = trades = 0
        for start in starts[
            bisect_left(starts, end - self._window) : bisect_right(starts, end - self._slide)
        ]:
            v, n, t = bars[start]
            volume, notional, trades = volume + v, notional + n, trades + t
        return volume, notional, trades

    def _move_frontier(self, series: _VwapSeries, to: int) -> None:
        """Slide ``series.sums`` from ``window(series.frontier)`` to ``window(to)``, with ``to >= frontier``."""
        frontier = series.frontier
        if to == frontier:
            return
        slide, window = self._slide, self._window
        starts, bars, sums = series.starts, series.bars, series.sums
        for start in starts[bisect_right(starts, frontier - slide) : bisect_right(starts, to - slide)]:
            v, n, t = bars[start]
            sums[0] += v
            sums[1] += n
            sums[2] += t
        for start in starts[bisect_left(starts, frontier - window) : bisect_left(starts, to - window)]:
            v, n, t = bars[start]
            sums[0] -= v
            sums[1] -= n
            sums[2] -= t
        series.frontier = to

    def _schedule(self, symbol: str, series: _VwapSeries) -> None:
        slide, window, lateness = self._slide, self._window, self._lateness
        starts, done = series.starts, series.evaluated_to
        times: list[int] = []
        if series.recheck:
            times.append(min(series.recheck))
        i = 0 if done is None else bisect_right(starts, done - slide)
        if i < len(starts):
            times.append(starts[i] + slide)  # the next bar to enter a window
        i = 0 if done is None else bisect_right(starts, done - window - slide)
        if i < len(starts):
            times.append(starts[i] + window + slide)  # the next bar to leave one
        if starts:
            times.append(starts[0] + window + slide + lateness)  # the oldest bar to forget
        if series.emitted:
            times.append(min(series.emitted) + lateness)
        if times:
            self._wakeups.set(symbol, min(times))
        else:
            del self._series[symbol]
            self._wakeups.set(symbol, None)

    # ------------------------------------------------------------------ final bars changed

    def rebuild(
        self, symbol: str, bars: list[Bar], starts: list[int], revision: int
    ) -> list[SlidingVwapValue]:
        """Bars already final changed or went (a broken trade hours later): ``starts`` are theirs,
        ``bars`` all the symbol's bars of the slide as they stand now (its trading day). Every
        complete window that holds one of ``starts`` is emitted with ``revision`` -- its current
        value, or deleted if it is empty now -- whether or not it was emitted before (its value is
        that of its window either way), and the symbol's state is rebuilt from ``bars``; the
        ``revision`` must exceed every earlier one of the symbol's windows (the caller numbers
        rebuilds apart)."""
        now = self._complete_before
        if now is None:
            return []
        slide, window = self._slide, self._window
        sums = {bar.window_start_ns: (bar.volume, bar.notional, bar.trades) for bar in bars}
        ends = sorted(
            {end for start in starts for end in range(start + slide, start + window + slide, slide)}
        )
        ends = [end for end in ends if end <= now]
        out: list[SlidingVwapValue] = []
        if ends:
            # prefix sums over the slide grid of every window in question: each window in O(1)
            low = ends[0] - window
            prefix = [(0, 0, 0)]
            for index in range((ends[-1] - low) // slide):
                held = sums.get(low + index * slide, (0, 0, 0))
                last = prefix[-1]
                prefix.append((last[0] + held[0], last[1] + held[1], last[2] + held[2]))
            for end in ends:
                upper, lower = prefix[(end - low) // slide], prefix[(end - window - low) // slide]
                volume, notional, trades = upper[0] - lower[0], upper[1] - lower[1], upper[2] - lower[2]
                vwap = notional / volume if volume else None
                out.append(
                    SlidingVwapValue(
                        symbol, end, self.config.window_s, vwap, volume, notional, trades, revision
                    )
                )
        series = self._rebuilt_series(SlidingVwap(self.config), symbol, bars, now)
        if series is None:
            return out
        emitted = {end: (revision, *values[1:]) for end, values in series.emitted.items()}
        horizon = now - self._lateness
        for value in out:  # what was just emitted and can still change
            if value.window_end_ns > horizon:
                emitted[value.window_end_ns] = (revision, value.volume, value.notional, value.trades)
        series.emitted = emitted
        self._series[symbol] = series
        self._schedule(symbol, series)
        return out

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data. See the module docstring."""
        return {
            "version": SNAPSHOT_VERSION,
            "window_s": self.config.window_s,
            "slide_s": self.config.slide_s,
            "complete_before_ns": self._complete_before,
            "dropped_revisions": self.dropped_revisions,
            "symbols": {
                symbol: {
                    "evaluated_to_ns": series.evaluated_to,
                    "bars": [[start, *series.bars[start]] for start in series.starts],
                    "emitted": [[end, *series.emitted[end]] for end in sorted(series.emitted)],
                    "recheck": sorted(series.recheck),
                }
                for symbol, series in sorted(self._series.items())
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a core with the same window and slide."""
        check_snapshot(
            data, {"window_s": self.config.window_s, "slide_s": self.config.slide_s}, SNAPSHOT_VERSION
        )
        self._series = {}
        self._wakeups = _Wakeups()
        self._complete_before = data["complete_before_ns"]
        self.dropped_revisions = data["dropped_revisions"]
        for symbol, saved in data["symbols"].items():
            series = self._series[symbol] = _VwapSeries(saved["evaluated_to_ns"], self._slide)
            for start, volume, notional, trades in saved["bars"]:
                series.starts.append(start)
                series.bars[start] = (volume, notional, trades)
            series.starts.sort()
            for end, revision, volume, notional, trades in saved["emitted"]:
                series.emitted[end] = (revision, volume, notional, trades)
            series.recheck = set(saved["recheck"])
            if series.evaluated_to is not None:
                series.sums = list(self._window_sums(series, series.frontier))
            self._schedule(symbol, series)


# ------------------------------------------------------------------------------------- moving averages


@dataclass(frozen=True)
class MovingAverageConfig:
    """Which moving averages :class:`MovingAverages` computes."""

    n: int = 20
    """Number of bars: SMA over the last n closes, EMA with alpha = 2 / (n + 1)."""
    interval_s: int = 60
    """Size of the input bars, in whole seconds."""
    allowed_lateness_ns: int = 0
    """How long after a bar's end (event time) its revisions and removals still apply."""

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n must be a whole number >= 1, got {self.n!r}")
        _whole_seconds("interval_s", self.interval_s)
        _nonnegative_ns("allowed_lateness_ns", self.allowed_lateness_ns)

    @property
    def alpha(self) -> float:
        return 2 / (self.n + 1)


class MovingAverage(NamedTuple):
    """SMA and EMA of a symbol's closes at the bar ``[window_start_ns, + interval_s)``. Key: ``(symbol,
    interval_s, window_start_ns, n)``, where the latest ``revision`` wins."""

    symbol: str
    interval_s: int
    window_start_ns: int
    n: int
    sma: float | None
    """None if fewer than n bars lead up to this one (only after a removal), or if it is deleted"""
    ema: float | None
    """None if deleted"""
    revision: int

    @property
    def deleted(self) -> bool:
        """The bar was removed after this key had been emitted. Readers drop it."""
        return self.ema is None


class _AverageSeries:
    """One symbol's state: the bars that can still change, then what the final bars leave behind."""

    __slots__ = (
        "starts",
        "closes",
        "emitted",
        "evaluated_to",
        "dirty",
        "final_count",
        "final_closes",
        "final_ema",
    )

    def __init__(self) -> None:
        self.starts: list[int] = []  # sorted
        self.closes: dict[int, int] = {}  # start -> close
        self.emitted: dict[int, tuple[int, float | None, float | None]] = {}  # start -> (revision, sma, ema)
        self.evaluated_to: int | None = None  # complete bars up to this have been evaluated
        self.dirty = False  # a complete bar changed since
        self.final_count = 0  # bars that can no longer change
        self.final_closes: list[int] = []  # the last n - 1 of their closes
        self.final_ema: float | None = None  # the EMA at the last of them


class MovingAverages(_BarCore):
    """SMA and EMA over the closes of every symbol of a venue, from its bars of ``interval_s``. See
    the module docstring for the rules."""

    def __init__(self, config: MovingAverageConfig | None = None) -> None:
        self.config = config or MovingAverageConfig()
        self._size = self.config.interval_s * NANOS_PER_SECOND
        self._alpha = self.config.alpha
        super().__init__(
            self._size, f"interval ({self.config.interval_s} s)", self.config.allowed_lateness_ns
        )

    # ------------------------------------------------------------------ input

    def add(self, bar: Bar) -> None:
        """A new or revised bar of ``interval_s``. It replaces any earlier bar with the same start."""
        if bar.interval_s != self.config.interval_s:
            raise ValueError(
                f"moving averages take {self.config.interval_s} s bars, got a {bar.interval_s} s bar"
            )
        self._check_start(bar.window_start_ns)
        self._change(bar.symbol, bar.window_start_ns, bar.close)

    def _change(self, symbol: str, start: int, close: int | None) -> None:
        now = self._complete_before
        if now is not None and start + self._size + self._lateness <= now:
            self.dropped_revisions += 1
            return
        series = self._series.get(symbol)
        if series is None:
            if close is None:
                return
            series = self._series[symbol] = _AverageSeries()
        old = series.closes.get(start)
        if old == close:
            return
        if close is None:
            del series.closes[start]
            del series.starts[bisect_left(series.starts, start)]
        else:
            if old is None:
                insort(series.starts, start)
            series.closes[start] = close
        if series.evaluated_to is not None and start + self._size <= series.evaluated_to:
            series.dirty = True
        self._schedule(symbol, series)

    # ------------------------------------------------------------------ output

    def advance(self, complete_before_ns: int) -> list[MovingAverage]:
        """Every complete bar that is due: a bar from the n-th on, not emitted before, or an emitted
        one whose values changed (or that was removed). Sorted by (window start, symbol)."""
        now = self._clock(complete_before_ns)
        out: list[MovingAverage] = []
        for symbol in self._wakeups.pop_due(now):
            series = self._series[symbol]
            self._process(symbol, series, now, out)
            self._schedule(symbol, series)
        out.sort(key=lambda value: (value.window_start_ns, value.symbol))
        return out

    def _process(self, symbol: str, series: _AverageSeries, now: int, out: list[MovingAverage]) -> None:
        n, alpha, size = self.config.n, self._alpha, self._size
        history = list(series.final_closes)
        total = sum(history)  # of the last n closes in history
        count, ema = series.final_count, series.final_ema
        for start in series.starts:
            if start + size > now:
                break
            close = series.closes[start]
            count += 1
            ema = float(close) if ema is None else alpha * close + (1 - alpha) * ema
            history.append(close)
            total += close
            if len(history) > n:
                total -= history[-n - 1]
            self._emit_if_changed(symbol, series, start, total / n if count >= n else None, ema, out)
        for start, (revision, _, emitted_ema) in list(series.emitted.items()):
            if emitted_ema is not None and start not in series.closes:
                series.emitted[start] = (revision + 1, None, None)
                out.append(MovingAverage(symbol, self.config.interval_s, start, n, None, None, revision + 1))
        series.evaluated_to, series.dirty = now, False
        # bars past the allowed lateness become final: keep only what later bars need of them
        horizon = now - self._lateness
        while series.starts and series.starts[0] + size <= horizon:
            start = series.starts.pop(0)
            close = series.closes.pop(start)
            series.final_count += 1
            series.final_ema = (
                float(close) if series.final_ema is None else alpha * close + (1 - alpha) * series.final_ema
            )
            series.final_closes.append(close)
            if len(series.final_closes) > n - 1:
                del series.final_closes[: len(series.final_closes) - (n - 1)]
        for start in [start for start in series.emitted if start + size <= horizon]:
            del series.emitted[start]

    def _emit_if_changed(
        self,
        symbol: str,
        series: _AverageSeries,
        start: int,
        sma: float | None,
        ema: float,
        out: list[MovingAverage],
    ) -> None:
        previous = series.emitted.get(start)
        if previous is None:
            if sma is None:
                return
            revision = 0
        elif previous[1] == sma and previous[2] == ema:
            return
        else:
            revision = previous[0] + 1
        series.emitted[start] = (revision, sma, ema)
        out.append(MovingAverage(symbol, self.config.interval_s, start, self.config.n, sma, ema, revision))

    def _schedule(self, symbol: str, series: _AverageSeries) -> None:
        size, starts, done = self._size, series.starts, series.evaluated_to
        times: list[int] = []
        if series.dirty and done is not None:
            times.append(done)
        i = 0 if done is None else bisect_right(starts, done - size)
        if i < len(starts):
            times.append(starts[i] + size)  # the next bar to complete
        oldest = min([*starts[:1], *series.emitted], default=None)
        if oldest is not None:
            times.append(oldest + size + self._lateness)  # the oldest bar to become final
        if times:
            self._wakeups.set(symbol, min(times))
        else:
            self._wakeups.set(symbol, None)
            if series.final_count == 0:
                del self._series[symbol]  # nothing to remember

    # ------------------------------------------------------------------ final bars changed

    def rebuild(self, symbol: str, bars: list[Bar], starts: list[int], revision: int) -> list[MovingAverage]:
        """Bars already final changed or went (a broken trade hours later): ``starts`` are theirs,
        ``bars`` all the symbol's bars of the interval as they stand now (since its series began:
        the trading day). From the first of ``starts`` on, every complete bar is emitted with
        ``revision`` -- its SMA (None before the n-th bar) and EMA now -- and every one of
        ``starts`` that is gone is emitted deleted, whether or not it was emitted before; the
        symbol's state is rebuilt from ``bars``. The ``revision`` must exceed every earlier one of
        the symbol's values (the caller numbers rebuilds apart)."""
        now = self._complete_before
        if now is None:
            return []
        n, alpha, size = self.config.n, self._alpha, self._size
        closes = sorted((bar.window_start_ns, bar.close) for bar in bars)
        first = min(starts)
        values: dict[int, tuple[float | None, float | None]] = {}
        ema: float | None = None
        total = 0
        for k, (start, close) in enumerate(closes, start=1):
            ema = float(close) if ema is None else alpha * close + (1 - alpha) * ema
            total += close
            if k > n:
                total -= closes[k - n - 1][1]
            values[start] = (total / n if k >= n else None, ema)
        out: list[MovingAverage] = []
        interval = self.config.interval_s
        for start in sorted(set(values) | set(starts)):
            if start < first or start + size > now:
                continue
            sma, value = values.get(start, (None, None))
            out.append(MovingAverage(symbol, interval, start, n, sma, value, revision))
        series = self._rebuilt_series(MovingAverages(self.config), symbol, bars, now)
        if series is None:
            return out
        emitted = {start: (revision, *kept[1:]) for start, kept in series.emitted.items()}
        for average in out:  # what was just emitted and can still change
            if average.window_start_ns in series.closes:
                emitted[average.window_start_ns] = (revision, average.sma, average.ema)
        series.emitted = emitted
        self._series[symbol] = series
        self._schedule(symbol, series)
        return out

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data. See the module docstring."""
        return {
            "version": SNAPSHOT_VERSION,
            "n": self.config.n,
            "interval_s": self.config.interval_s,
            "complete_before_ns": self._complete_before,
            "dropped_revisions": self.dropped_revisions,
            "symbols": {
                symbol: {
                    "evaluated_to_ns": series.evaluated_to,
                    "dirty": series.dirty,
                    "bars": [[start, series.closes[start]] for start in series.starts],
                    "emitted": [[start, *series.emitted[start]] for start in sorted(series.emitted)],
                    "final_count": series.final_count,
                    "final_closes": list(series.final_closes),
                    "final_ema": series.final_ema,
                }
                for symbol, series in sorted(self._series.items())
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a core with the same n and interval."""
        check_snapshot(data, {"n": self.config.n, "interval_s": self.config.interval_s}, SNAPSHOT_VERSION)
        self._series = {}
        self._wakeups = _Wakeups()
        self._complete_before = data["complete_before_ns"]
        self.dropped_revisions = data["dropped_revisions"]
        for symbol, saved in data["symbols"].items():
            series = self._series[symbol] = _AverageSeries()
            series.evaluated_to, series.dirty = saved["evaluated_to_ns"], saved["dirty"]
            for start, close in saved["bars"]:
                series.starts.append(start)
                series.closes[start] = close
            series.starts.sort()
            for start, revision, sma, ema in saved["emitted"]:
                series.emitted[start] = (revision, sma, ema)
            series.final_count = saved["final_count"]
            series.final_closes = list(saved["final_closes"])
            series.final_ema = saved["final_ema"]
            self._schedule(symbol, series)
