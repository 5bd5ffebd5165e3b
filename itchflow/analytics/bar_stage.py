"""The bars of one Flink key in event time: prints in, bar revisions out, when the watermark says so.

The market-data operator keeps one :class:`BarStage` per key (a Kafka partition of a venue, so many
symbols) and, per record, hands it the prints and broken trades the books produced
(:meth:`BarStage.add_print`, :meth:`BarStage.break_trade`), then asks what to emit
(:meth:`BarStage.fire`) and when to be called back (:meth:`BarStage.next_timer_ms`, an event-time
timer). This is Flink's window semantics, kept in one keyed process function because records carry
bundles of many symbols:

* **Windows** ``[start, start + size)`` for every size of :attr:`BarConfig.intervals_s`, per (venue,
  symbol); a window *fires* (its bar is emitted, revision 0) once the watermark passes its end: a
  Flink watermark ``W`` (ms) says every event with a timestamp <= ``W`` ms has been seen, i.e. every
  event before ``(W + 1) ms`` -- :func:`complete_before_ns`.
* **Allowed lateness**: a fired window is kept until the watermark passes ``end + allowed lateness``;
  a print (or a broken trade) for it until then revises the bar: the next revision is emitted with
  the same key. Later than that the print is *late* (:attr:`BarStage.late`: the operator sends it to
  the dead-letter output with reason ``late``). A window with no prints has no bar; a break that
  removes a fired bar's last print emits a revision marked ``deleted``.
* **End of the feed** (System Event C, or the replay's end marker): :meth:`BarStage.close_all` fires
  every open window of the key now.

Bars are exact folds (:mod:`itchflow.analytics.bars`); each window keeps its prints while it is
retained so that a broken trade can be taken out and the bar folded again.
"""

from __future__ import annotations

import heapq
import pickle
from dataclasses import dataclass
from typing import NamedTuple

from itchflow.analytics.bars import Bar, BarAccumulator, Print, add, fold, result

NANOS_PER_MS = 1_000_000
STATE_VERSION = 2


@dataclass(frozen=True)
class BarConfig:
    """What bars the stage keeps."""

    intervals_s: tuple[int, ...] = (1, 60, 300)
    allowed_lateness_ms: int = 0
    """How long after a window's end (event time) late prints still revise its bar."""
    stream_maxlen: int = 10_000
    """Approximate length cap of each symbol's Redis stream of bars (``MAXLEN ~``; 0: no cap)."""
    stream_intervals_s: tuple[int, ...] = (60, 300)
    """The bar sizes that go into the Redis streams (every size has its latest-bar hash and its
    ClickHouse rows): 1 s bars are most of the bars, and a stream entry costs as much as the bar."""

    @property
    def allowed_lateness_ns(self) -> int:
        return self.allowed_lateness_ms * NANOS_PER_MS


class BarRevision(NamedTuple):
    """One emission of a bar: the first when its window fires, later ones when it is revised."""

    venue: str
    trading_date: int
    """days since 1970-01-01 (the feed's trading date)"""
    bar: Bar
    revision: int
    deleted: bool
    """a broken trade took the bar's last print: readers drop it (ClickHouse: is_deleted)"""
    latest: bool = True
    """no later window of the same (venue, symbol, size) was emitted before it (the latest-bar hash)"""


class LatePrint(NamedTuple):
    """A print or break that came after its window's allowed lateness, for the late-data output."""

    venue: str
    symbol: str
    kind: str
    """``print`` or ``break``"""
    ts_event: int
    match_number: int
    intervals_s: tuple[int, ...]
    """the bar sizes it missed"""


def _in_stream_order(revisions: list[BarRevision]) -> list[BarRevision]:
    """Per symbol in the order of the windows' ends, then sizes (the Redis stream ids grow so)."""
    revisions.sort(
        key=lambda r: (
            r.venue,
            r.bar.symbol,
            r.bar.window_start_ns + r.bar.interval_s * 1_000_000_000,
            r.bar.interval_s,
        )
    )
    return revisions


def complete_before_ns(watermark_ms: int) -> int:
    """Every event before this time (ns) has been seen, given a Flink watermark (ms)."""
    return (watermark_ms + 1) * NANOS_PER_MS


PrintTuple = tuple[int, int, int, int, int]
"""A print as the stage keeps it: (ts_event, seq, match_number, price, shares), :class:`Print`'s order."""
LogEntry = tuple
"""What :meth:`BarStage.replay` applies again: ``("r", complete_before, prints, breaks, end)`` for a
record, ``("f", complete_before)`` for a timer, ``("c",)`` for the end of a replay."""


class _Window:
    __slots__ = ("prints", "acc", "fired", "revision", "dirty")

    def __init__(self) -> None:
        self.prints: list[PrintTuple] = []
        self.acc = BarAccumulator()
        self.fired = False  # emitted at least once
        self.revision = -1  # of the last emission
        self.dirty = True  # changed since the last emission


class BarStage:
    """Open and retained windows of every (venue, symbol) of one key. See the module docstring."""

    def __init__(self, config: BarConfig) -> None:
        self.config = config
        #: (venue, symbol, interval_s) -> window start ns -> window
        self.windows: dict[tuple[str, str, int], dict[int, _Window]] = {}
        #: (venue, symbol) -> trading date of its latest print (days since epoch)
        self.dates: dict[tuple[str, str], int] = {}
        #: (venue, symbol, interval_s) -> start of the latest window emitted
        self.latest: dict[tuple[str, str, int], int] = {}
        #: prints and breaks too late for some of their windows, since the operator last took them
        self.late: list[LatePrint] = []
        #: (due ns, key, start): when a window must fire (its end) or be dropped (end + lateness);
        #: entries may be stale (the window changed or went), :meth:`fire` checks
        self._due: list[tuple[int, tuple[str, str, int], int]] = []
        #: windows that fired and changed since (a late print or a break): emitted on the next fire
        self._revised: set[tuple[tuple[str, str, int], int]] = set()
        self._plan = tuple((interval, interval * 1_000_000_000) for interval in config.intervals_s)
        self._lateness = config.allowed_lateness_ns

    # ------------------------------------------------------------------ input

    def record(
        self,
        complete_before: int,
        prints: list[tuple[str, str, int, PrintTuple]],
        breaks: list[tuple[str, str, int, int]],
        end: bool,
    ) -> list[BarRevision]:
        """One record's prints ``(venue, symbol, trading date, print)`` and broken trades ``(venue,
        symbol, match number, ts_event)``, then what to emit (everything when the record ends the
        feed). ``("r", complete_before, prints, breaks, end)`` logged replays it."""
        add_print, break_trade = self.add_print, self.break_trade
        for venue, symbol, trading_date, p in prints:
            add_print(venue, symbol, trading_date, p, complete_before)
        for venue, symbol, match_number, ts_event in breaks:
            break_trade(venue, symbol, match_number, ts_event)
        return self.close_all() if end else self.fire(complete_before)

    def replay(self, entry: LogEntry) -> None:
        """Apply a logged step again (state restore): same decisions, outputs dropped."""
        if entry[0] == "r":
            self.record(*entry[1:])
        elif entry[0] == "f":
            self.fire(entry[1])
        else:
            self.close_all()
        self.late.clear()

    def add_print(
        self, venue: str, symbol: str, trading_date: int, p: Print | PrintTuple, complete_before: int
    ) -> None:
        """One eligible print of ``symbol``; ``complete_before`` from the current watermark."""
        self.dates[(venue, symbol)] = trading_date
        limit = complete_before - self._lateness  # a window that ends at or before this is gone
        missed: list[int] | None = None
        ts_event = p[0]
        all_windows = self.windows
        for interval, size in self._plan:
            start = ts_event - ts_event % size
            end = start + size
            if end <= limit:
                if missed is None:
                    missed = []
                missed.append(interval)
                continue
            key = (venue, symbol, interval)
            windows = all_windows.get(key)
            if windows is None:
                windows = all_windows[key] = {}
            window = windows.get(start)
            if window is None:
                window = windows[start] = _Window()
                heapq.heappush(self._due, (end, key, start))
            elif window.fired:
                self._revised.add((key, start))
            window.prints.append(p)
            add(window.acc, p)
            window.dirty = True
        if missed:
            self.late.append(LatePrint(venue, symbol, "print", ts_event, p[2], tuple(missed)))

    def break_trade(self, venue: str, symbol: str, match_number: int, ts_event: int) -> None:
        """A broken trade: the print with ``match_number`` leaves every window that holds it. One that
        none holds any more (its windows are gone, or it never counted) goes to :attr:`late`."""
        missed: list[int] = []
        for interval in self.config.intervals_s:
            windows = self.windows.get((venue, symbol, interval), {})
            for start, window in windows.items():
                kept = [p for p in window.prints if p[2] != match_number]
                if len(kept) != len(window.prints):
                    window.prints = kept
                    window.acc = fold(kept)
                    window.dirty = True
                    if window.fired:
                        self._revised.add(((venue, symbol, interval), start))
                    break
            else:
                missed.append(interval)
        if missed:
            self.late.append(LatePrint(venue, symbol, "break", ts_event, match_number, tuple(missed)))

    # ------------------------------------------------------------------ output

    def fire(self, complete_before: int) -> list[BarRevision]:
        """Bars to emit now: windows that ended before ``complete_before`` and are new or changed
        since their last emission. Windows past their allowed lateness are dropped after that."""
        out: list[BarRevision] = []
        due, windows_of, lateness = self._due, self.windows, self._lateness
        if self._revised:
            still: set[tuple[tuple[str, str, int], int]] = set()
            for key, start in self._revised:
                window = windows_of.get(key, {}).get(start)
                if window is None or not window.dirty:
                    continue
                if start + key[2] * 1_000_000_000 <= complete_before:
                    self._fire_window(key, start, window, out)
                else:
                    still.add((key, start))  # fired early by the end of a feed, not ended yet
            self._revised = still
        while due and due[0][0] <= complete_before:
            at, key, start = heapq.heappop(due)
            windows = windows_of.get(key)
            window = None if windows is None else windows.get(start)
            if windows is None or window is None:
                continue
            end = start + key[2] * 1_000_000_000
            if window.dirty:
                self._fire_window(key, start, window, out)
            if end + lateness <= complete_before:
                del windows[start]
                if not windows:
                    del windows_of[key]
            elif at < end + lateness:
                heapq.heappush(due, (end + lateness, key, start))  # when to drop it
        return _in_stream_order(out)

    def close_all(self) -> list[BarRevision]:
        """The end of the feed: every open window's bar now (they stay retained for late revisions)."""
        out: list[BarRevision] = []
        for key, windows in self.windows.items():
            for start in sorted(windows):
                window = windows[start]
                if window.dirty:
                    self._fire_window(key, start, window, out)
        self._revised.clear()
        return _in_stream_order(out)

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: the earliest end of a window that still
        has to fire or be dropped (the timer fires when the watermark W >= due_ms - 1, i.e. once
        ``complete_before >= due``)."""
        if not self._due:
            return None
        return -(-self._due[0][0] // NANOS_PER_MS) - 1

    def _fire_window(self, key: tuple[str, str, int], start: int, window: _Window, out: list) -> None:
        revision = self._emit(key[0], key[1], key[2], start, window)
        if revision is not None:
            out.append(revision)

    def _emit(
        self, venue: str, symbol: str, interval: int, start: int, window: _Window
    ) -> BarRevision | None:
        window.dirty = False
        bar = result(window.acc, symbol, interval, start)
        if bar is None and not window.fired:
            return None  # never emitted and empty: nothing to say
        window.fired = True
        window.revision += 1
        trading_date = self.dates.get((venue, symbol), 0)
        key = (venue, symbol, interval)
        latest = start >= self.latest.get(key, start)
        if latest:
            self.latest[key] = start
        if bar is None:
            empty = Bar(symbol, interval, start, 0, 0, 0, 0, 0, 0, 0)
            return BarRevision(venue, trading_date, empty, window.revision, True, latest)
        return BarRevision(venue, trading_date, bar, window.revision, False, latest)

    # ------------------------------------------------------------------ state

    def snapshot(self) -> bytes:
        """The stage as plain data (state)."""
        windows = {
            key: {
                start: ([tuple(p) for p in w.prints], w.acc.to_tuple(), w.fired, w.revision, w.dirty)
                for start, w in by_start.items()
            }
            for key, by_start in self.windows.items()
        }
        return pickle.dumps(
            (STATE_VERSION, windows, self.dates, self.latest), protocol=pickle.HIGHEST_PROTOCOL
        )

    @classmethod
    def restore(cls, state: bytes | None, config: BarConfig) -> BarStage:
        stage = cls(config)
        if not state:
            return stage
        version, windows, dates, latest = pickle.loads(state)  # noqa: S301 -- our own state bytes
        if version != STATE_VERSION:
            raise ValueError(f"bar state version {version}, this code reads {STATE_VERSION}")
        for key, by_start in windows.items():
            restored = stage.windows[key] = {}
            for start, (prints, acc, fired, revision, dirty) in by_start.items():
                window = restored[start] = _Window()
                window.prints = prints
                window.acc = BarAccumulator.from_tuple(acc)
                window.fired, window.revision, window.dirty = fired, revision, dirty
                heapq.heappush(stage._due, (start + key[2] * 1_000_000_000, key, start))
                if fired and dirty:
                    stage._revised.add((key, start))
        stage.dates, stage.latest = dates, latest
        return stage
