"""The rolling analytics of one Flink key: the bar stage's bar revisions in, sliding VWAP and moving
averages out, in event time.

The market-data operator keeps one :class:`RollingStage` next to each key's
:class:`~itchflow.analytics.bar_stage.BarStage` and hands it every batch of bar revisions the stage
emits, with the event time of that batch (:meth:`RollingStage.apply`). The stage feeds them to the
pure cores of :mod:`itchflow.analytics.rolling` -- :class:`~itchflow.analytics.rolling.SlidingVwap`
over the bars of the slide (1 s), :class:`~itchflow.analytics.rolling.MovingAverages` over the bars of
the averages' size (1 m) -- and returns what became due. The rules of the values, their revisions and
their lateness are the cores'; this module adds the venues and the trading days:

* **Per venue and trading day.** A key may hold several venues, and a feed runs day after day: the
  stage keeps one pair of cores per (venue, trading date). A sliding window and a run of moving
  averages never span two trading days: the first 1 m bars of a day start the SMA / EMA afresh
  (``n - 1`` bars without an SMA, the EMA from the first close), as a quant reads intraday series.
* **End of a day.** The end of the feed (System Event C, or the replay's end marker) closes the
  key's days: every value still due is emitted at once (the last sliding windows, up to ``window``
  after the last bar) and the day's cores are dropped. A day is also dropped once a later day of
  its venue has begun and its cores have nothing pending. A bar of a dropped day (a broken trade
  revising a bar long closed, the same day replayed after its end) changes no rolling value: it is
  counted in :attr:`RollingStage.unrevised`.
* **Broken trades after the allowed lateness.** The bar stage revises a bar for a break any time in
  the trading day; the cores have let go of bars past the allowed lateness. For such a revision the
  stage asks the bar stage for the symbol's bars of the day as they stand now (``history``: folded
  from its day archive) and rebuilds the symbol's values from them
  (:meth:`~itchflow.analytics.rolling.SlidingVwap.rebuild`): every window / bar the change reaches is
  emitted again. Those emissions are numbered above every earlier one: the ``k``-th rebuild of a
  (symbol, core) in a day emits revision ``k * 2**20`` (revisions within the allowed lateness count
  up by one from there). Without the day's bars (the archive ended with the feed) the revision is
  counted in :attr:`RollingStage.unrevised`.
* **Latest values.** Each output says whether it is the latest of its (venue, symbol) so far
  (``latest``, for the Redis hashes: a revision of an older window never overwrites a newer one).
* **State**: :meth:`snapshot` (plain data, pickled) and :meth:`restore`; the operator saves it with
  the bar stage's snapshot and, after a restore, applies the bars of the logged steps again.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from typing import NamedTuple

from itchflow.analytics.bar_stage import BarRevision
from itchflow.analytics.bars import Bar
from itchflow.analytics.rolling import (
    MovingAverage,
    MovingAverageConfig,
    MovingAverages,
    RollingConfig,
    SlidingVwap,
    SlidingVwapConfig,
    SlidingVwapValue,
)

STATE_VERSION = 1
END_OF_DAY_NS = 1 << 62
"""The event time a closed day's cores advance to: every value still due comes out."""
NANOS_PER_MS = 1_000_000
REBUILD_REVISION = 1 << 20
"""Revisions of the k-th rebuild of a symbol's values in a day: k times this."""

History = Callable[[str, str, int, int], "list[Bar] | None"]
"""(venue, symbol, trading date, interval_s) -> that day's bars of the symbol as they stand now, or
None when they are not known (:meth:`~itchflow.analytics.bar_stage.BarStage.day_bars`)."""


class VwapRevision(NamedTuple):
    """One emission of a sliding VWAP (``value.deleted``: a removal emptied an emitted window)."""

    venue: str
    trading_date: int
    """days since 1970-01-01"""
    value: SlidingVwapValue
    latest: bool
    """no later window of the (venue, symbol) was emitted before it"""


class AverageRevision(NamedTuple):
    """One emission of the moving averages at a bar (``value.deleted``: the bar was removed)."""

    venue: str
    trading_date: int
    value: MovingAverage
    latest: bool


class RollingOutput(NamedTuple):
    vwaps: list[VwapRevision]
    averages: list[AverageRevision]


class _Day:
    __slots__ = ("vwap", "averages", "rebuilds")

    def __init__(self, config: RollingConfig, lateness_ns: int) -> None:
        #: (core name, symbol) -> rebuilds so far
        self.rebuilds: dict[tuple[str, str], int] = {}
        self.vwap = SlidingVwap(SlidingVwapConfig(config.vwap_window_s, config.vwap_slide_s, lateness_ns))
        self.averages = MovingAverages(MovingAverageConfig(config.ma_bars, config.ma_interval_s, lateness_ns))

    @property
    def idle(self) -> bool:
        return self.vwap.idle and self.averages.idle

    def next_wakeup_ns(self) -> int | None:
        times = [t for t in (self.vwap.next_wakeup_ns(), self.averages.next_wakeup_ns()) if t is not None]
        return min(times, default=None)


class RollingStage:
    """Sliding VWAP and moving averages of every (venue, symbol) of one key. See the module docstring."""

    def __init__(self, config: RollingConfig, allowed_lateness_ns: int = 0) -> None:
        self.config = config
        self.lateness_ns = allowed_lateness_ns
        self._slide_s, self._ma_s = config.vwap_slide_s, config.ma_interval_s
        #: (venue, trading date) -> its cores
        self.days: dict[tuple[str, int], _Day] = {}
        #: venue -> the latest trading date whose cores were dropped (its bars and earlier ones are ignored)
        self.closed: dict[str, int] = {}
        #: (venue, symbol) -> (trading date, window end) of the latest VWAP emitted
        self.latest_vwap: dict[tuple[str, str], tuple[int, int]] = {}
        #: (venue, symbol) -> (trading date, bar start) of the latest moving averages emitted
        self.latest_average: dict[tuple[str, str], tuple[int, int]] = {}
        #: bar revisions that changed no value: of days already dropped, or past the allowed
        #: lateness without the day's bars to rebuild from
        self.unrevised = 0
        #: rebuilds of a symbol's values from its day's bars
        self.rebuilt = 0

    # ------------------------------------------------------------------ input

    def apply(
        self,
        revisions: Iterable[BarRevision],
        complete_before_ns: int | None,
        end: bool = False,
        history: History | None = None,
    ) -> RollingOutput:
        """One batch of the bar stage's revisions, emitted at event time ``complete_before_ns``
        (:func:`~itchflow.analytics.bar_stage.complete_before_ns` of the watermark); ``end``: the
        batch closes the feed (the key's days end); ``history``: the bars of a symbol's day, for
        revisions past the allowed lateness. What became due comes back."""
        slide, ma = self._slide_s, self._ma_s
        out = RollingOutput([], [])
        #: (venue, day, core name, symbol) -> starts of the revisions the cores refused
        refused: dict[tuple[str, int, str, str], list[int]] = {}
        for revision in revisions:
            size = revision.bar.interval_s
            if size != slide and size != ma:
                continue
            key = (revision.venue, revision.trading_date)
            day = self.days.get(key)
            if day is None:
                if revision.trading_date <= self.closed.get(revision.venue, -1):
                    self.unrevised += 1
                    continue
                day = self.days[key] = _Day(self.config, self.lateness_ns)
            bar = revision.bar
            for name, core, wanted in (("vwap", day.vwap, slide), ("averages", day.averages, ma)):
                if size == wanted:
                    before = core.dropped_revisions
                    if revision.deleted:
                        core.remove(bar.symbol, bar.window_start_ns)
                    else:
                        core.add(bar)
                    if core.dropped_revisions != before:
                        refused.setdefault((key[0], key[1], name, bar.symbol), []).append(bar.window_start_ns)
        for (venue, trading_date, name, symbol), changed in refused.items():
            self._rebuild(venue, trading_date, name, symbol, changed, history, out)
        if end:
            for key in list(self.days):
                self._advance(key, END_OF_DAY_NS, out)
                self._drop(key)
        elif complete_before_ns is not None:
            for key in list(self.days):
                self._advance(key, complete_before_ns, out)
            self._drop_past_days()
        return out

    def _rebuild(
        self,
        venue: str,
        trading_date: int,
        name: str,
        symbol: str,
        changed: list[int],
        history: History | None,
        out: RollingOutput,
    ) -> None:
        day = self.days[(venue, trading_date)]
        size = self._slide_s if name == "vwap" else self._ma_s
        bars = None if history is None else history(venue, symbol, trading_date, size)
        if bars is None:
            self.unrevised += len(changed)
            return
        count = day.rebuilds[(name, symbol)] = day.rebuilds.get((name, symbol), 0) + 1
        self.rebuilt += 1
        if name == "vwap":
            self._tag_vwaps(
                venue, trading_date, day.vwap.rebuild(symbol, bars, changed, count * REBUILD_REVISION), out
            )
        else:
            self._tag_averages(
                venue,
                trading_date,
                day.averages.rebuild(symbol, bars, changed, count * REBUILD_REVISION),
                out,
            )

    def _advance(self, key: tuple[str, int], complete_before_ns: int, out: RollingOutput) -> None:
        venue, trading_date = key
        day = self.days[key]
        self._tag_vwaps(venue, trading_date, day.vwap.advance(complete_before_ns), out)
        self._tag_averages(venue, trading_date, day.averages.advance(complete_before_ns), out)

    def _tag_vwaps(
        self, venue: str, trading_date: int, values: list[SlidingVwapValue], out: RollingOutput
    ) -> None:
        latest = self.latest_vwap
        for value in values:
            at = (trading_date, value.window_end_ns)
            newest = at >= latest.get((venue, value.symbol), at)
            if newest:
                latest[(venue, value.symbol)] = at
            out.vwaps.append(VwapRevision(venue, trading_date, value, newest))

    def _tag_averages(
        self, venue: str, trading_date: int, values: list[MovingAverage], out: RollingOutput
    ) -> None:
        latest = self.latest_average
        for average in values:
            at = (trading_date, average.window_start_ns)
            newest = at >= latest.get((venue, average.symbol), at)
            if newest:
                latest[(venue, average.symbol)] = at
            out.averages.append(AverageRevision(venue, trading_date, average, newest))

    def _drop(self, key: tuple[str, int]) -> None:
        del self.days[key]
        venue, trading_date = key
        if trading_date > self.closed.get(venue, -1):
            self.closed[venue] = trading_date

    def _drop_past_days(self) -> None:
        if len(self.days) < 2:
            return
        newest: dict[str, int] = {}
        for venue, trading_date in self.days:
            newest[venue] = max(newest.get(venue, trading_date), trading_date)
        for key, day in list(self.days.items()):
            if key[1] < newest[key[0]] and day.idle:
                self._drop(key)

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) at which :meth:`apply` next has something to emit: a Flink
        timer at ``T`` fires once the watermark is ``>= T``, i.e. ``complete_before >= (T + 1) ms``."""
        times = [t for t in (day.next_wakeup_ns() for day in self.days.values()) if t is not None]
        if not times:
            return None
        return -(-min(times) // NANOS_PER_MS) - 1

    # ------------------------------------------------------------------ state

    def snapshot(self) -> bytes:
        days = [
            (venue, trading_date, day.vwap.snapshot(), day.averages.snapshot(), day.rebuilds)
            for (venue, trading_date), day in self.days.items()
        ]
        state = {
            "version": STATE_VERSION,
            "config": _shape(self.config),
            "lateness_ns": self.lateness_ns,
            "days": days,
            "closed": self.closed,
            "latest_vwap": self.latest_vwap,
            "latest_average": self.latest_average,
            "unrevised": self.unrevised,
            "rebuilt": self.rebuilt,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(
        cls, state: bytes | None, config: RollingConfig, allowed_lateness_ns: int = 0
    ) -> RollingStage:
        """The stage of :meth:`snapshot`'s ``state`` (None: a new stage). A state of other windows,
        sizes or lateness is not carried over: the stage starts empty (the values of the days under
        way start again with their next bars)."""
        stage = cls(config, allowed_lateness_ns)
        if not state:
            return stage
        saved = pickle.loads(state)  # noqa: S301 -- our own state bytes
        if saved.get("version") != STATE_VERSION:
            raise ValueError(f"rolling state version {saved.get('version')}, this code reads {STATE_VERSION}")
        if saved["config"] != _shape(config) or saved["lateness_ns"] != allowed_lateness_ns:
            return stage
        for venue, trading_date, vwap, averages, rebuilds in saved["days"]:
            day = stage.days[(venue, trading_date)] = _Day(config, allowed_lateness_ns)
            day.vwap.restore(vwap)
            day.averages.restore(averages)
            day.rebuilds = rebuilds
        stage.closed = saved["closed"]
        stage.latest_vwap = saved["latest_vwap"]
        stage.latest_average = saved["latest_average"]
        stage.unrevised = saved["unrevised"]
        stage.rebuilt = saved["rebuilt"]
        return stage


def _shape(config: RollingConfig) -> tuple[int, int, int, int]:
    """The settings a state depends on, as plain data (a state never pickles classes)."""
    return config.vwap_window_s, config.vwap_slide_s, config.ma_bars, config.ma_interval_s
