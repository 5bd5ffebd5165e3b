"""Liquidity per symbol over tumbling event-time windows: the time-weighted quoted spread (in price
ticks and in basis points of the mid), the time-weighted depth of the best N levels per side and its
imbalance; top-of-book changes and depth updates in, one row per window out once event time has
passed it.

A pure core like :mod:`itchflow.analytics.ofi`, driven the same way (one :class:`Liquidity` per Flink
key; :meth:`~Liquidity.advance` with :func:`~itchflow.analytics.bar_stage.complete_before_ns` of the
watermark, :meth:`~Liquidity.next_timer_ms`, :meth:`~Liquidity.close_all` at the end of the feed,
:attr:`~Liquidity.late` to the dead-letter output, :meth:`~Liquidity.snapshot` to state).

Rules
-----

* **Input**, per (venue, symbol) in feed order, both kinds mixed as they happened:
  ``add_tops(venue, symbol, trading_date, changes)`` -- top-of-book changes
  (:data:`~itchflow.analytics.top_of_book.TopOfBookTuple`; only the two prices are used, 0 for an
  empty side) -- and ``add_depth(venue, symbol, trading_date, depths)`` -- :data:`DepthTuple`
  ``(ts_event, seq, bid_shares, ask_shares)``: the shares resting on the best N levels of each side
  (N = :attr:`LiquidityConfig.depth_levels`; the caller sums them, e.g. with :func:`depth_update`)
  after the event ``seq``. Today
  the books give depth once per batch (the ``depth_snapshots`` row at the end of a batch that moved
  the top N levels, or the first batch of a cadence interval), so a depth update stands for the book
  from its event until the next one; per-event depth updates, when the books give them, make the
  same values exact. ``trading_date`` is in days since 1970-01-01.
* **The state** of a symbol: the best bid and ask prices of its last change, and the depth of its
  last depth update. A trading day starts with both sides empty and the depth unknown (the books
  start each day empty; depth is known from the day's first depth update on).
* **Windows** are tumbling and epoch-aligned, one series per size of
  :attr:`LiquidityConfig.intervals_s` (default 1 s): ``[start, start + size)``, ``start = t - t %
  size`` in UTC epoch ns. A window in which no update takes effect has no row.
* **When an update takes effect**, per size: ``te = max(ts_event, te of the symbol's previous update,
  the start of the earliest window of that size that has not fired for the symbol)`` (fired: as in
  :mod:`itchflow.analytics.tumbling`), except that for the first update of a later trading date the
  previous update's te counts as the end of its window (the earlier day's last window is complete
  with that day's state). So a symbol's time never goes back, and no update changes a window that
  has fired. The state an update sets is in force from its te until the next update's te; the
  update counts in the window holding its te.
* **Late updates.** An update whose own ``ts_event`` lies in a window that has fired (for some size)
  is listed in :attr:`late` (reason ``window``): it took effect at the start of the earliest window
  not fired, as the state carried into it. An update of an earlier trading date than the symbol's
  current one is late (reason ``day``) and ignored.
* **Values** of a window ``[start, end)`` (:class:`LiquidityRow`): every state weighs the ns it was
  in force within the window; the state at ``start`` is the one carried from the symbol's previous
  update of the same trading day (or the start-of-day state).

  - ``two_sided_ns``: the ns with both sides quoted (a locked or crossed book counts, with its
    spread 0 or negative). ``spread`` = sum((ask - bid) * ns) / two_sided_ns in price ticks of 10^-4
    dollars, from exact integer sums (one correctly rounded division); ``spread_bps`` =
    sum(10^4 * (ask - bid) / mid * ns) / two_sided_ns with mid = (bid + ask) / 2: each state's term
    ``20000 * (ask - bid) * ns / (ask + bid)`` is a correctly rounded float and the terms are summed
    in time order. Both None when two_sided_ns is 0.
  - ``depth_ns``: the ns with a known depth. ``bid_depth`` / ``ask_depth`` = sum(shares * ns) /
    depth_ns (None when depth_ns is 0). ``depth_imbalance`` = (B - A) / (B + A) of the time-weighted
    sums B = sum(bid shares * ns), A = sum(ask shares * ns): the imbalance of the time-weighted
    depth, None when B + A = 0 (no depth known, or both sides empty all the time it was). Why
    time-weighted rather than the depth at the window's close: with depth given once per batch, the
    close is whatever the last batch in the window left; the time-weighted value uses every update,
    weighs each by how long it stood, and converges to the exact one as the updates become per event.
    Why from the sums rather than the mean of per-state imbalances: an empty book has none, and a
    thin instant should not weigh as much as a deep one.
  - ``updates`` / ``depth_updates``: the top-of-book changes / depth updates that took effect in
    the window.
* **Firing** as in :mod:`itchflow.analytics.ofi`: ``advance(complete_before_ns)`` returns the row of
  every window with updates whose end is ``<= complete_before_ns`` (event time never goes back);
  ``close_all()`` (the end of the feed) returns every such row now, its last state weighed up to the
  window's end. Each key ``(venue, trading_date, symbol, interval_s, window_start_ns)`` is emitted
  once. Rows of one call are sorted by key.
* **State** per (venue, symbol): its trading date, bid and ask prices and depth (kept for the next
  windows: bounded by the number of symbols), per size the windows with updates that have not fired
  and the te of the last update while its window is one of them, and the close markers of
  :mod:`itchflow.analytics.tumbling`. So once event time has passed every window, only the state per
  symbol is left. ``snapshot()`` is plain JSON-safe data with ``"version": 1``; ``restore(data)``
  replaces the state with it, and the same inputs afterwards give the same outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.analytics.top_of_book import TopOfBookTuple
from itchflow.analytics.tumbling import (
    KIND_DEPTH,
    KIND_TOP,
    LATE_DAY,
    LATE_WINDOW,
    MARKER,
    NANOS_PER_SECOND,
    SNAPSHOT_VERSION,
    Due,
    LateUpdate,
    TumblingClock,
    check_intervals,
    check_snapshot,
)
from itchflow.book.values import DepthColumns

DepthTuple = tuple[int, int, int, int]
"""``(ts_event, seq, bid_shares, ask_shares)``: shares on the best N levels of each side after event ``seq``."""


def depth_update(ts_event: int, seq: int, depth: DepthColumns, levels: int) -> DepthTuple:
    """The depth update of a book's :data:`~itchflow.book.values.DepthColumns` (e.g. the order-book
    stage's ``depth`` after a batch, whose last event is ``seq`` at ``ts_event``): the shares on its
    best ``levels`` levels of each side."""
    return (ts_event, seq, sum(depth[1][:levels]), sum(depth[4][:levels]))


BPS_OF_HALF = 20_000
"""10^4 basis points over a mid that is half the sum of the prices."""

# a window's accumulator: a list indexed so (hot path)
_DAY, _UPDATES, _DEPTH_UPDATES, _TWO_SIDED, _SPREAD, _BPS, _DEPTH_NS, _BID, _ASK = range(9)


@dataclass(frozen=True)
class LiquidityConfig:
    """Which windows :class:`Liquidity` keeps."""

    intervals_s: tuple[int, ...] = (1,)
    """Window sizes in whole seconds."""
    depth_levels: int = 10
    """N: how many levels per side the depth updates sum (the caller sums them; rows carry it)."""

    def __post_init__(self) -> None:
        check_intervals(self.intervals_s)
        if (
            not isinstance(self.depth_levels, int)
            or isinstance(self.depth_levels, bool)
            or self.depth_levels < 1
        ):
            raise ValueError(f"depth_levels must be a whole number >= 1, got {self.depth_levels!r}")


class LiquidityRow(NamedTuple):
    """A symbol's liquidity over ``[window_start_ns, window_start_ns + interval_s)``. Key: ``(venue,
    trading_date, symbol, interval_s, window_start_ns)``, the first five fields."""

    venue: str
    trading_date: int
    """days since 1970-01-01"""
    symbol: str
    interval_s: int
    window_start_ns: int
    spread: float | None
    """time-weighted quoted spread, price ticks of 10^-4 dollars, over ``two_sided_ns``"""
    spread_bps: float | None
    """time-weighted quoted spread in basis points of the mid, over ``two_sided_ns``"""
    two_sided_ns: int
    """ns of the window with both sides quoted"""
    bid_depth: float | None
    """time-weighted shares on the best ``depth_levels`` bid levels, over ``depth_ns``"""
    ask_depth: float | None
    depth_imbalance: float | None
    """(B - A) / (B + A) of the time-weighted depths; None when both are 0"""
    depth_ns: int
    """ns of the window with a known depth"""
    depth_levels: int
    updates: int
    """top-of-book changes that took effect in the window"""
    depth_updates: int
    """depth updates that took effect in the window"""


class _Track:
    """One symbol and window size: the windows with updates not fired, and the te of the last
    update while its window is one of them (None otherwise: every later te is past it anyway)."""

    __slots__ = ("t", "windows")

    def __init__(self) -> None:
        self.t: int | None = None
        #: start -> accumulator (see _DAY .. _ASK) of a window not fired
        self.windows: dict[int, list[Any]] = {}


class _Symbol:
    __slots__ = ("day", "bid_px", "ask_px", "bid_depth", "ask_depth", "tracks", "closed")

    def __init__(self, day: int, sizes: int) -> None:
        self.day = day
        self.bid_px = self.ask_px = 0  # the empty book
        self.bid_depth: int | None = None  # None: not known yet this day
        self.ask_depth = 0
        #: per window size, in the config's order
        self.tracks = [_Track() for _ in range(sizes)]
        #: interval_s -> end of the last window close_all emitted (while event time is before it)
        self.closed: dict[int, int] = {}

    def weigh(self, acc: list[Any], ns: int) -> None:
        """Add the current state, in force for ``ns`` > 0 ns, to a window's accumulator."""
        bid, ask = self.bid_px, self.ask_px
        if bid and ask:
            width = ask - bid
            acc[_TWO_SIDED] += ns
            acc[_SPREAD] += width * ns
            acc[_BPS] += BPS_OF_HALF * width * ns / (ask + bid)
        if self.bid_depth is not None:
            acc[_DEPTH_NS] += ns
            acc[_BID] += self.bid_depth * ns
            acc[_ASK] += self.ask_depth * ns


class Liquidity:
    """Liquidity of every (venue, symbol) of one key over tumbling windows. See the module docstring."""

    def __init__(self, config: LiquidityConfig | None = None) -> None:
        self.config = config or LiquidityConfig()
        self._clock = TumblingClock(self.config.intervals_s)
        self._index = {interval: i for i, interval in enumerate(self.config.intervals_s)}
        self._symbols: dict[tuple[str, str], _Symbol] = {}
        #: updates that came after their windows had fired, since the operator last took them
        self.late: list[LateUpdate] = []

    @property
    def complete_before_ns(self) -> int | None:
        """The event time of the last :meth:`advance` (None before the first)."""
        return self._clock.complete_before

    # ------------------------------------------------------------------ input

    def add_tops(self, venue: str, symbol: str, trading_date: int, changes: Iterable[TopOfBookTuple]) -> None:
        """One book's top-of-book changes of ``trading_date``, in feed order."""
        self._add(venue, symbol, trading_date, KIND_TOP, changes)

    def add_depth(self, venue: str, symbol: str, trading_date: int, depths: Iterable[DepthTuple]) -> None:
        """One book's depth updates of ``trading_date``, in feed order."""
        self._add(venue, symbol, trading_date, KIND_DEPTH, depths)

    def _add(self, venue: str, symbol: str, trading_date: int, kind: str, updates: Iterable[tuple]) -> None:
        state = self._symbols.get((venue, symbol))
        if state is None:
            state = self._symbols[(venue, symbol)] = _Symbol(trading_date, len(self._index))
        elif trading_date != state.day:
            if trading_date < state.day:
                every = self.config.intervals_s
                self.late.extend(
                    LateUpdate(venue, symbol, trading_date, kind, u[0], u[1], every, LATE_DAY)
                    for u in updates
                )
                return
            self._start_day(state, trading_date)
        is_top = kind == KIND_TOP
        counter = _UPDATES if is_top else _DEPTH_UPDATES
        plan = list(zip(self._clock.limits(state.closed), state.tracks, strict=True))
        push = self._clock.push
        for update in updates:
            ts = update[0]
            missed: list[int] | None = None
            for (interval, size, limit), track in plan:
                if ts - ts % size + size <= limit:
                    if missed is None:
                        missed = []
                    missed.append(interval)
                te = ts
                t = track.t
                if t is not None and t > te:
                    te = t
                if limit >= 0 and limit - limit % size > te:
                    te = limit - limit % size  # the start of the earliest window not fired
                windows = track.windows
                if t is not None and te > t:  # the state so far weighs up to te in t's window
                    start = t - t % size
                    acc = windows.get(start)
                    if acc is not None:
                        state.weigh(acc, min(te, start + size) - t)
                start = te - te % size
                acc = windows.get(start)
                if acc is None:
                    acc = windows[start] = [state.day, 0, 0, 0, 0, 0.0, 0, 0, 0]
                    push((start + size, venue, symbol, interval, state.day, start))
                    if te > start:  # carried from before the window (t is None or <= start)
                        state.weigh(acc, te - start)
                acc[counter] += 1
                track.t = te
            if is_top:
                state.bid_px, state.ask_px = update[2], update[5]
            else:
                state.bid_depth, state.ask_depth = update[2], update[3]
            if missed is not None:
                self.late.append(
                    LateUpdate(venue, symbol, trading_date, kind, ts, update[1], tuple(missed), LATE_WINDOW)
                )

    def _start_day(self, state: _Symbol, trading_date: int) -> None:
        """A later trading day: the earlier day's last windows are complete with its last state."""
        for (_, size), track in zip(self._clock.plan, state.tracks, strict=True):
            t = track.t
            if t is not None:
                start = t - t % size
                acc = track.windows.get(start)
                if acc is not None:
                    state.weigh(acc, start + size - t)
                track.t = start + size
        state.day = trading_date
        state.bid_px = state.ask_px = 0
        state.bid_depth, state.ask_depth = None, 0

    # ------------------------------------------------------------------ output

    def advance(self, complete_before_ns: int) -> list[LiquidityRow]:
        """The rows of the windows with updates that end at or before ``complete_before_ns`` (and
        were not emitted yet), sorted by key."""
        now = self._clock.advance(complete_before_ns)
        out: list[LiquidityRow] = []
        symbols = self._symbols
        for end, venue, symbol, interval, day, start in self._clock.pop_due(now):
            state = symbols.get((venue, symbol))
            if state is None:
                continue
            if day == MARKER:
                if state.closed.get(interval) == end:
                    del state.closed[interval]  # event time has caught up with close_all
                continue
            track = state.tracks[self._index[interval]]
            acc = track.windows.pop(start, None)
            if acc is not None:
                out.append(self._finish(venue, symbol, interval, state, track, start, end, acc))
        out.sort()
        return out

    def close_all(self) -> list[LiquidityRow]:
        """The end of the feed: the row of every window with updates, now, its last state weighed up
        to the window's end. Later updates in those windows (or earlier ones) are late."""
        out: list[LiquidityRow] = []
        for (venue, symbol), state in self._symbols.items():
            for (interval, size), track in zip(self._clock.plan, state.tracks, strict=True):
                if not track.windows:
                    continue
                for start in sorted(track.windows):
                    acc = track.windows[start]
                    out.append(self._finish(venue, symbol, interval, state, track, start, start + size, acc))
                track.windows.clear()
                end = start + size  # the last window's
                if end > state.closed.get(interval, -1):
                    state.closed[interval] = end
                    self._clock.push((end, venue, symbol, interval, MARKER, 0))
        out.sort()
        return out

    def _finish(
        self, venue: str, symbol: str, interval: int, state: _Symbol, track: _Track, start: int, end: int,
        acc: list[Any],
    ) -> LiquidityRow:  # fmt: skip
        """The row of a window that fires: the current state weighs up to its end if it took effect in it."""
        t = track.t
        if t is not None and start <= t < end:
            state.weigh(acc, end - t)
            track.t = None  # every later te is at or after end
        two_sided, depth_ns, bid, ask = acc[_TWO_SIDED], acc[_DEPTH_NS], acc[_BID], acc[_ASK]
        return LiquidityRow(
            venue,
            acc[_DAY],
            symbol,
            interval,
            start,
            acc[_SPREAD] / two_sided if two_sided else None,
            acc[_BPS] / two_sided if two_sided else None,
            two_sided,
            bid / depth_ns if depth_ns else None,
            ask / depth_ns if depth_ns else None,
            (bid - ask) / (bid + ask) if bid + ask else None,
            depth_ns,
            self.config.depth_levels,
            acc[_UPDATES],
            acc[_DEPTH_UPDATES],
        )

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: the earliest end of a window with updates
        or of a close marker (the timer fires at watermark ``W >= due_ms - 1``, i.e. once
        ``complete_before >= due``)."""
        return self._clock.next_ms(self._live)

    def _live(self, entry: Due) -> bool:
        end, venue, symbol, interval, day, start = entry
        state = self._symbols.get((venue, symbol))
        if state is None:
            return False
        if day == MARKER:
            return state.closed.get(interval) == end
        return start in state.tracks[self._index[interval]].windows

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (see the module docstring); not :attr:`late`."""
        intervals = self.config.intervals_s
        return {
            "version": SNAPSHOT_VERSION,
            "intervals_s": list(intervals),
            "complete_before_ns": self._clock.complete_before,
            "symbols": [
                {
                    "venue": venue,
                    "symbol": symbol,
                    "trading_date": state.day,
                    "top": [state.bid_px, state.ask_px],
                    "depth": None if state.bid_depth is None else [state.bid_depth, state.ask_depth],
                    "tracks": [
                        [
                            interval,
                            track.t,
                            [[start, *track.windows[start]] for start in sorted(track.windows)],
                        ]
                        for interval, track in zip(intervals, state.tracks, strict=True)
                        if track.t is not None or track.windows
                    ],
                    "closed": sorted([interval, end] for interval, end in state.closed.items()),
                }
                for (venue, symbol), state in sorted(self._symbols.items())
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a core with the same window sizes."""
        check_snapshot(data, {"intervals_s": list(self.config.intervals_s)})
        self._symbols = {}
        self._clock = TumblingClock(self.config.intervals_s)
        self._clock.complete_before = data["complete_before_ns"]
        due: list[Due] = []
        for saved in data["symbols"]:
            venue, symbol = saved["venue"], saved["symbol"]
            state = self._symbols[(venue, symbol)] = _Symbol(saved["trading_date"], len(self._index))
            state.bid_px, state.ask_px = saved["top"]
            if saved["depth"] is not None:
                state.bid_depth, state.ask_depth = saved["depth"]
            for interval, t, windows in saved["tracks"]:
                track = state.tracks[self._index[interval]]
                track.t = t
                size = interval * NANOS_PER_SECOND
                for start, *acc in windows:
                    track.windows[start] = acc
                    due.append((start + size, venue, symbol, interval, acc[_DAY], start))
            for interval, end in saved["closed"]:
                state.closed[interval] = end
                due.append((end, venue, symbol, interval, MARKER, 0))
        self._clock.rebuild(due)
