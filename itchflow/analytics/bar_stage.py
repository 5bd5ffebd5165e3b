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

import pickle
from dataclasses import dataclass
from typing import NamedTuple

from itchflow.analytics.bars import Bar, Print, fold, result

NANOS_PER_MS = 1_000_000
STATE_VERSION = 1


@dataclass(frozen=True)
class BarConfig:
    """What bars the stage keeps."""

    intervals_s: tuple[int, ...] = (1, 60, 300)
    allowed_lateness_ms: int = 0
    """How long after a window's end (event time) late prints still revise its bar."""
    stream_maxlen: int = 10_000
    """Approximate length cap of each symbol's Redis stream of bars (``MAXLEN ~``; 0: no cap)."""

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


def complete_before_ns(watermark_ms: int) -> int:
    """Every event before this time (ns) has been seen, given a Flink watermark (ms)."""
    return (watermark_ms + 1) * NANOS_PER_MS


class _Window:
    __slots__ = ("prints", "fired", "revision", "dirty")

    def __init__(self) -> None:
        self.prints: list[Print] = []
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

    # ------------------------------------------------------------------ input

    def add_print(self, venue: str, symbol: str, trading_date: int, p: Print, complete_before: int) -> None:
        """One eligible print of ``symbol``; ``complete_before`` from the current watermark."""
        self.dates[(venue, symbol)] = trading_date
        lateness = self.config.allowed_lateness_ns
        missed: list[int] = []
        for interval in self.config.intervals_s:
            size = interval * 1_000_000_000
            start = p.ts_event - p.ts_event % size
            if start + size + lateness <= complete_before:
                missed.append(interval)
                continue
            windows = self.windows.get((venue, symbol, interval))
            if windows is None:
                windows = self.windows[(venue, symbol, interval)] = {}
            window = windows.get(start)
            if window is None:
                window = windows[start] = _Window()
            window.prints.append(p)
            window.dirty = True
        if missed:
            self.late.append(LatePrint(venue, symbol, "print", p.ts_event, p.match_number, tuple(missed)))

    def break_trade(self, venue: str, symbol: str, match_number: int, ts_event: int) -> None:
        """A broken trade: the print with ``match_number`` leaves every window that holds it. One that
        none holds any more (its windows are gone, or it never counted) goes to :attr:`late`."""
        missed: list[int] = []
        for interval in self.config.intervals_s:
            windows = self.windows.get((venue, symbol, interval), {})
            for window in windows.values():
                kept = [p for p in window.prints if p.match_number != match_number]
                if len(kept) != len(window.prints):
                    window.prints = kept
                    window.dirty = True
                    break
            else:
                missed.append(interval)
        if missed:
            self.late.append(LatePrint(venue, symbol, "break", ts_event, match_number, tuple(missed)))

    # ------------------------------------------------------------------ output

    def fire(self, complete_before: int, *, close_all: bool = False) -> list[BarRevision]:
        """Bars to emit now: windows that ended before ``complete_before`` (all with ``close_all``)
        and are new or changed since their last emission. Windows past their allowed lateness are
        dropped after that."""
        out: list[BarRevision] = []
        lateness = self.config.allowed_lateness_ns
        for (venue, symbol, interval), windows in list(self.windows.items()):
            size = interval * 1_000_000_000
            for start in sorted(windows):
                window = windows[start]
                end = start + size
                if end > complete_before and not close_all:
                    break
                if window.dirty:
                    revision = self._emit(venue, symbol, interval, start, window)
                    if revision is not None:
                        out.append(revision)
                if end + lateness <= complete_before:
                    del windows[start]
            if not windows:
                del self.windows[(venue, symbol, interval)]
        # per symbol in the order of the windows' ends, then sizes (the Redis stream ids grow so)
        out.sort(
            key=lambda r: (
                r.venue,
                r.bar.symbol,
                r.bar.window_start_ns + r.bar.interval_s * 10**9,
                r.bar.interval_s,
            )
        )
        return out

    def close_all(self) -> list[BarRevision]:
        """The end of the feed: every open window's bar now (they stay retained for late revisions)."""
        return self.fire(0, close_all=True)

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: the earliest end of a window that still
        has to fire or be dropped."""
        lateness = self.config.allowed_lateness_ns
        earliest: int | None = None
        for (_, _, interval), windows in self.windows.items():
            size = interval * 1_000_000_000
            for start, window in windows.items():
                due = start + size + (lateness if window.fired and not window.dirty else 0)
                if earliest is None or due < earliest:
                    earliest = due
        # the timer fires when the watermark W >= due_ms - 1, i.e. complete_before >= due
        return None if earliest is None else -(-earliest // NANOS_PER_MS) - 1

    def _emit(
        self, venue: str, symbol: str, interval: int, start: int, window: _Window
    ) -> BarRevision | None:
        window.dirty = False
        bar = result(fold(window.prints), symbol, interval, start)
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
            key: {start: (w.prints, w.fired, w.revision, w.dirty) for start, w in by_start.items()}
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
            for start, (prints, fired, revision, dirty) in by_start.items():
                window = restored[start] = _Window()
                window.prints = [Print(*p) for p in prints]
                window.fired, window.revision, window.dirty = fired, revision, dirty
        stage.dates, stage.latest = dates, latest
        return stage
