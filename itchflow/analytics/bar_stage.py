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
* **Allowed lateness** (prints): a fired window is kept until the watermark passes ``end + allowed
  lateness``; a print for it until then revises the bar: the next revision is emitted with the same
  key. Later than that the print is *late* (:attr:`BarStage.late`: the operator sends it to the
  dead-letter output with reason ``late``). A window with no prints has no bar.
* **Broken trades** (ITCH B) revise every bar their print was in, for the whole trading day,
  whatever the allowed lateness: a break of a print whose window is still kept takes it out of the
  window (the bar is folded again at the next firing); one whose window is gone is looked up in the
  symbol's :class:`~itchflow.analytics.print_archive.DayArchive` (every print of the day that counted
  in a bar, 41 bytes each), marked broken there, and the window is folded again from the archive's
  unbroken prints and emitted at the next :meth:`BarStage.fire` (it is complete). A bar left without
  prints is emitted once more marked ``deleted``. A break whose print is in no kept window and not in
  the archive (an unknown match number, a print that was late for every bar, a print of a day the
  archive no longer holds) is late, as above.
* **Revisions** grow per window, for ClickHouse's ``ReplacingMergeTree(revision)``: a window revised
  from the archive gets one more than its last emission. The stage remembers that only where it is
  needed: the last revision of a window dropped after revisions (> 0), and of each window revised
  from the archive; a window dropped at revision 0 is revised from the archive as revision 1.
* **A trading day** is the archive's lifetime: the end of the feed (System Event C, or the replay's
  end marker; :meth:`BarStage.close_all`, which also fires every open window of the key now) empties
  every archive of the key (until prints of a later trading date come), and a symbol's first print of
  a later trading date starts its archive afresh.
* **State**: :meth:`BarStage.snapshot` is small plain data (the open windows, the archives' dates,
  the remembered revisions); the archives go to the operator's state as entries appended per step
  (:meth:`BarStage.take_archive`: the step's new prints as packed rows, its breaks as positions), so
  a snapshot never rewrites a day of prints. :meth:`BarStage.restore` applies the entries the
  snapshot had seen, then the operator replays the logged steps since (:meth:`BarStage.replay`).
  The entries are written anew (:attr:`BarStage.archive_rewrite`) when the end of the feed empties
  the archives, or when archives of earlier days take more entries than the live ones.

Bars are exact folds (:mod:`itchflow.analytics.bars`); each window keeps its prints while it is
retained so that a broken trade can be taken out and the bar folded again.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple

from itchflow.analytics.bars import Bar, BarAccumulator, Print, add, bars, fold, result
from itchflow.analytics.bursts import BurstConfig
from itchflow.analytics.print_archive import BROKEN, MAX_INTERVALS, DayArchive
from itchflow.analytics.rolling import RollingConfig

NANOS_PER_MS = 1_000_000
STATE_VERSION = 3
"""3: the archives' dates, remembered revisions and archive entry count besides the windows
(version 2, without them, restores with every archive incomplete)."""


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
    rolling: RollingConfig | None = None
    """Sliding VWAP and moving averages over the bars (None: bars only)."""
    bursts: BurstConfig | None = None
    """Bursts of the same prints (None: off); their allowed lateness is the bars'."""

    def __post_init__(self) -> None:
        if self.rolling is not None:
            missing = [s for s in self.rolling.intervals_s if s not in self.intervals_s]
            if missing:
                raise ValueError(
                    f"the sliding VWAP and moving averages need bars of {sorted(set(missing))} s, "
                    f"not among the bar sizes {list(self.intervals_s)}: add them, or turn the rolling "
                    "analytics off"
                )

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
ArchiveEntry = tuple
"""One step's archive changes (:meth:`BarStage.take_archive`), in order: ``("p", venue, symbol,
trading date, packed rows)`` appends prints (starting the symbol's archive afresh when its date is
another), ``("b", venue, symbol, position)`` marks a print broken."""
WindowKey = tuple[tuple[str, str, int], int]
"""((venue, symbol, interval_s), window start ns)"""


class _Window:
    __slots__ = ("prints", "acc", "fired", "revision", "dirty")

    def __init__(self) -> None:
        self.prints: list[PrintTuple] = []
        self.acc = BarAccumulator()
        self.fired = False  # emitted at least once
        self.revision = -1  # of the last emission
        self.dirty = True  # changed since the last emission


class BarStage:
    """Open and retained windows of every (venue, symbol) of one key, and the archives of their
    trading days. See the module docstring."""

    REWRITE_MIN_DEAD_ROWS = 65_536
    """Rows of earlier days' archives in the archive state before it may be written anew."""

    def __init__(self, config: BarConfig) -> None:
        if len(config.intervals_s) > MAX_INTERVALS:
            raise ValueError(f"at most {MAX_INTERVALS} bar sizes, got {config.intervals_s}")
        self.config = config
        #: (venue, symbol, interval_s) -> window start ns -> window
        self.windows: dict[tuple[str, str, int], dict[int, _Window]] = {}
        #: (venue, symbol) -> trading date of its latest print (days since epoch)
        self.dates: dict[tuple[str, str], int] = {}
        #: (venue, symbol, interval_s) -> start of the latest window emitted
        self.latest: dict[tuple[str, str, int], int] = {}
        #: prints and breaks too late for some of their windows, since the operator last took them
        self.late: list[LatePrint] = []
        #: (venue, symbol) -> the prints of its trading day that counted in a bar
        self.archives: dict[tuple[str, str], DayArchive] = {}
        #: the operator must write its archive entries anew (:meth:`rewrite_archive`), not append
        self.archive_rewrite = False
        #: (due ns, key, start): when a window must fire (its end) or be dropped (end + lateness);
        #: entries may be stale (the window changed or went), :meth:`fire` checks
        self._due: list[tuple[int, tuple[str, str, int], int]] = []
        #: windows that fired and changed since (a late print or a break): emitted on the next fire
        self._revised: set[WindowKey] = set()
        #: windows no longer kept -> their last revision: dropped at a revision > 0, or revised from
        #: the archive since (a window not here was dropped at revision 0)
        self._dropped: dict[WindowKey, int] = {}
        #: windows no longer kept that breaks changed -> (their bar folded from the archive, its
        #: revision, trading date): emitted on the next fire
        self._refolded: dict[WindowKey, tuple[BarAccumulator, int, int]] = {}
        self._archive_ops: list[list] = []  # this step's archive changes (see ArchiveEntry)
        #: the archives the end of the feed emptied in this step (:meth:`day_bars` still reads them)
        self._closed: dict[tuple[str, str], DayArchive] = {}
        self._archive_count = 0  # entries the operator's archive state holds (taken ones)
        self._archive_dead = 0  # rows of those entries that belong to earlier days' archives
        #: (interval_s, size ns, interval bit) per size
        self._plan = tuple(
            (interval, interval * 1_000_000_000, 1 << index)
            for index, interval in enumerate(config.intervals_s)
        )
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
        self._closed = {}
        add_print, break_trade = self.add_print, self.break_trade
        for venue, symbol, trading_date, p in prints:
            add_print(venue, symbol, trading_date, p, complete_before)
        for venue, symbol, match_number, ts_event in breaks:
            break_trade(venue, symbol, match_number, ts_event)
        return self.close_all() if end else self.fire(complete_before)

    def replay(self, entry: LogEntry) -> list[BarRevision]:
        """Apply a logged step again (state restore): same decisions; the bars it emitted are
        returned (for what is derived from them), its late prints and archive entry dropped (the
        operator's archive state holds that entry already)."""
        if entry[0] == "r":
            revisions = self.record(*entry[1:])
        elif entry[0] == "f":
            revisions = self.fire(entry[1])
        else:
            revisions = self.close_all()
        self.late.clear()
        self.take_archive()
        return revisions

    def add_print(
        self, venue: str, symbol: str, trading_date: int, p: Print | PrintTuple, complete_before: int
    ) -> None:
        """One eligible print of ``symbol``; ``complete_before`` from the current watermark."""
        self.dates[(venue, symbol)] = trading_date
        limit = complete_before - self._lateness  # a window that ends at or before this is gone
        missed: list[int] | None = None
        counted = 0
        ts_event = p[0]
        all_windows = self.windows
        for interval, size, bit in self._plan:
            start = ts_event - ts_event % size
            end = start + size
            if end <= limit:
                if missed is None:
                    missed = []
                missed.append(interval)
                continue
            counted |= bit
            key = (venue, symbol, interval)
            windows = all_windows.get(key)
            if windows is None:
                windows = all_windows[key] = {}
            window = windows.get(start)
            if window is None:
                window = windows[start] = _Window()
                heapq.heappush(self._due, (end, key, start))
            elif window.fired or end <= complete_before:
                # emitted before, or past its end without a bar yet (its prints were all broken): a
                # late print within the lateness fires it at once, as a restored stage would
                self._revised.add((key, start))
            window.prints.append(p)
            add(window.acc, p)
            window.dirty = True
        if missed:
            self.late.append(LatePrint(venue, symbol, "print", ts_event, p[2], tuple(missed)))
        if counted:
            self._archive(venue, symbol, trading_date, p, counted)

    def break_trade(self, venue: str, symbol: str, match_number: int, ts_event: int) -> None:
        """A broken trade: the print with ``match_number`` leaves every window that holds it, kept or
        (from the archive) no longer kept. One that none holds goes to :attr:`late`."""
        missed: list[tuple[int, int, int]] = []
        for interval, size, bit in self._plan:
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
                missed.append((interval, size, bit))
        archive = self.archives.get((venue, symbol))
        position = archive.find(match_number) if archive is not None and archive.complete else -1
        if archive is not None and position >= 0:
            counted = archive.mark_broken(position)
            self._archive_ops.append(["b", venue, symbol, position])
            if missed:
                missed = self._refold(archive, venue, symbol, archive.ts_event[position], counted, missed)
        if missed:
            intervals = tuple(interval for interval, _, _ in missed)
            self.late.append(LatePrint(venue, symbol, "break", ts_event, match_number, intervals))

    def _refold(
        self, archive: DayArchive, venue: str, symbol: str, ts_event: int, counted: int,
        missed: list[tuple[int, int, int]],
    ) -> list[tuple[int, int, int]]:  # fmt: skip
        """Fold again, from the archive, the windows no longer kept of a print just broken; returns
        the sizes in ``missed`` whose bars it never counted in."""
        still = []
        for interval, size, bit in missed:
            start = ts_event - ts_event % size
            key = (venue, symbol, interval)
            if not counted & bit or start in self.windows.get(key, ()):
                still.append((interval, size, bit))  # late for that size (a kept window lacks it)
                continue
            acc = fold(archive.window(bit, start, start + size))
            pending = self._refolded.get((key, start))
            if pending is None:
                revision = self._dropped.get((key, start), 0) + 1
                self._dropped[(key, start)] = revision
            else:
                revision = pending[1]  # not emitted yet: one revision for every break until then
            self._refolded[(key, start)] = (acc, revision, archive.trading_date)
        return still

    def day_bars(self, venue: str, symbol: str, trading_date: int, interval_s: int) -> list[Bar] | None:
        """Every bar of ``interval_s`` of the symbol's ``trading_date`` as it stands now (breaks
        applied), folded from its archive; None when the archive does not hold that complete day.
        In the step that ends the feed, the archives it emptied still answer."""
        archive = self.archives.get((venue, symbol))
        if archive is None or not archive.complete:
            archive = self._closed.get((venue, symbol))
        if archive is None or not archive.complete or archive.trading_date != trading_date:
            return None
        bit = 1 << self.config.intervals_s.index(interval_s)
        prints = [Print(*p) for p in archive.window(bit, -(1 << 62), 1 << 62)]
        return list(bars(symbol, prints, interval_s))

    # ---------------------------------------------------------------- archive

    def _archive(
        self, venue: str, symbol: str, trading_date: int, p: Print | PrintTuple, counted: int
    ) -> None:
        archive = self.archives.get((venue, symbol))
        if archive is None or archive.trading_date < trading_date:
            if archive is not None and self._dropped:  # the earlier day's bars are final now
                gone = [key for key in self._dropped if key[0][0] == venue and key[0][1] == symbol]
                for key in gone:
                    del self._dropped[key]
            archive = self._new_archive(venue, symbol, trading_date)
            self._collect_dead()
        elif archive.trading_date > trading_date or not archive.complete:
            return  # a print of an earlier day, or of a day the archive no longer holds
        row = archive.append(p, counted)
        ops = self._archive_ops
        last = ops[-1] if ops else None
        if last is not None and last[0] == "p" and last[1:4] == [venue, symbol, trading_date]:
            last[4] += row
        else:
            ops.append(["p", venue, symbol, trading_date, bytearray(row)])

    def _new_archive(self, venue: str, symbol: str, trading_date: int) -> DayArchive:
        """Start ``symbol``'s archive of ``trading_date`` afresh (the earlier day's rows are dead)."""
        old = self.archives.get((venue, symbol))
        if old is not None:
            self._archive_dead += len(old)
        archive = self.archives[(venue, symbol)] = DayArchive(trading_date)
        return archive

    def _collect_dead(self) -> None:
        """Ask for the entries to be written anew once earlier days' rows outnumber the live ones."""
        if self._archive_dead > self.REWRITE_MIN_DEAD_ROWS:
            live = sum(len(archive) for archive in self.archives.values())
            if self._archive_dead > live:
                self.archive_rewrite = True

    def take_archive(self) -> ArchiveEntry | None:
        """The archive changes since the last call, as one entry for the operator to append to its
        archive state (None: nothing changed)."""
        if not self._archive_ops:
            return None
        entry = tuple(tuple(op) if op[0] == "b" else (*op[:4], bytes(op[4])) for op in self._archive_ops)
        self._archive_ops = []
        self._archive_count += 1
        return entry

    def rewrite_archive(self) -> list[ArchiveEntry]:
        """Every complete archive as entries: what the operator's archive state must hold instead of
        what it holds (after :attr:`archive_rewrite`; take a snapshot with them)."""
        entries = [
            (("p", venue, symbol, archive.trading_date, archive.rows()),)
            for (venue, symbol), archive in self.archives.items()
            if archive.complete and len(archive)
        ]
        self._archive_ops = []
        self._archive_count = len(entries)
        self._archive_dead = 0
        self.archive_rewrite = False
        return entries

    def _apply_archive(self, entry: ArchiveEntry) -> None:
        """Apply an entry of the archive state (restore)."""
        for op in entry:
            if op[0] == "p":
                _, venue, symbol, trading_date, rows = op
                archive = self.archives.get((venue, symbol))
                if archive is None or archive.trading_date != trading_date:
                    archive = self._new_archive(venue, symbol, trading_date)
                if archive.complete:
                    archive.extend(rows)
            else:
                _, venue, symbol, position = op
                self.archives[(venue, symbol)].flags[position] |= BROKEN

    # ------------------------------------------------------------------ output

    def fire(self, complete_before: int) -> list[BarRevision]:
        """Bars to emit now: windows that ended before ``complete_before`` and are new or changed
        since their last emission, and windows no longer kept that breaks changed. Windows past their
        allowed lateness are dropped after that."""
        self._closed = {}
        out: list[BarRevision] = []
        due, windows_of, lateness = self._due, self.windows, self._lateness
        if self._refolded:
            self._emit_refolded(out)
        if self._revised:
            still: set[WindowKey] = set()
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
                if window.revision > 0:
                    archive = self.archives.get((key[0], key[1]))
                    if archive is not None and archive.complete:
                        self._dropped[(key, start)] = window.revision  # a later revision must exceed it
                del windows[start]
                if not windows:
                    del windows_of[key]
            elif at < end + lateness:
                heapq.heappush(due, (end + lateness, key, start))  # when to drop it
        return _in_stream_order(out)

    def close_all(self) -> list[BarRevision]:
        """The end of the feed: every open window's bar now (they stay retained for late revisions);
        the archives of the key are emptied (their days are over)."""
        out: list[BarRevision] = []
        if self._refolded:
            self._emit_refolded(out)
        for key, windows in self.windows.items():
            for start in sorted(windows):
                window = windows[start]
                if window.dirty:
                    self._fire_window(key, start, window, out)
        self._revised.clear()
        self._closed = {key: archive for key, archive in self.archives.items() if archive.complete}
        for (venue, symbol), archive in self.archives.items():
            if archive.complete:
                self.archives[(venue, symbol)] = DayArchive(archive.trading_date, complete=False)
        self._dropped.clear()
        if self._archive_count or self._archive_ops:
            self.archive_rewrite = True  # to no entries
        return _in_stream_order(out)

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: the earliest end of a window that still
        has to fire or be dropped (the timer fires when the watermark W >= due_ms - 1, i.e. once
        ``complete_before >= due``)."""
        if not self._due:
            return None
        return -(-self._due[0][0] // NANOS_PER_MS) - 1

    def _fire_window(self, key: tuple[str, str, int], start: int, window: _Window, out: list) -> None:
        window.dirty = False
        if window.acc.trades == 0 and not window.fired:
            return  # never emitted and empty: nothing to say
        window.fired = True
        window.revision += 1
        trading_date = self.dates.get((key[0], key[1]), 0)
        out.append(self._revision(key, start, window.acc, window.revision, trading_date))

    def _emit_refolded(self, out: list) -> None:
        for (key, start), (acc, revision, trading_date) in self._refolded.items():
            out.append(self._revision(key, start, acc, revision, trading_date))
        self._refolded.clear()

    def _revision(
        self, key: tuple[str, str, int], start: int, acc: BarAccumulator, revision: int, trading_date: int
    ) -> BarRevision:
        venue, symbol, interval = key
        latest = start >= self.latest.get(key, start)
        if latest:
            self.latest[key] = start
        bar = result(acc, symbol, interval, start)
        if bar is None:
            empty = Bar(symbol, interval, start, 0, 0, 0, 0, 0, 0, 0)
            return BarRevision(venue, trading_date, empty, revision, True, latest)
        return BarRevision(venue, trading_date, bar, revision, False, latest)

    # ------------------------------------------------------------------ state

    def snapshot(self) -> bytes:
        """The stage as plain data (state), without the archives' prints (see :meth:`take_archive`)."""
        windows = {
            key: {
                start: ([tuple(p) for p in w.prints], w.acc.to_tuple(), w.fired, w.revision, w.dirty)
                for start, w in by_start.items()
            }
            for key, by_start in self.windows.items()
        }
        archive = {
            "intervals_s": self.config.intervals_s,
            "days": {key: (a.trading_date, a.complete) for key, a in self.archives.items()},
            "dropped": self._dropped,
            "refolded": {key: (acc.to_tuple(), r, day) for key, (acc, r, day) in self._refolded.items()},
            "entries": self._archive_count,
        }
        return pickle.dumps(
            (STATE_VERSION, windows, self.dates, self.latest, archive), protocol=pickle.HIGHEST_PROTOCOL
        )

    @classmethod
    def restore(
        cls, state: bytes | None, config: BarConfig, archive: Iterable[ArchiveEntry] = ()
    ) -> BarStage:
        """The stage of :meth:`snapshot`'s ``state``, its archives rebuilt from the operator's archive
        state (``archive``: the entries :meth:`take_archive` and :meth:`rewrite_archive` gave, of
        which the snapshot names how many it had seen). A version 2 state restores with every
        archive incomplete (their breaks of windows no longer kept are late until the next day)."""
        stage = cls(config)
        if not state:
            return stage
        saved = pickle.loads(state)  # noqa: S301 -- our own state bytes
        version = saved[0]
        if version not in (2, STATE_VERSION):
            raise ValueError(f"bar state version {version}, this code reads 2 and {STATE_VERSION}")
        windows, dates, latest = saved[1:4]
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
        if version == 2:
            stage.archives = {key: DayArchive(day, complete=False) for key, day in dates.items()}
            return stage
        saved_archive = saved[4]
        stage.archives = {
            key: DayArchive(day, complete) for key, (day, complete) in saved_archive["days"].items()
        }
        stage._dropped = saved_archive["dropped"]
        stage._refolded = {
            key: (BarAccumulator.from_tuple(acc), r, day)
            for key, (acc, r, day) in saved_archive["refolded"].items()
        }
        count = saved_archive["entries"]
        applied = 0
        for entry in islice(archive, count):
            stage._apply_archive(entry)
            applied += 1
        stage._archive_count = count
        if applied != count or saved_archive["intervals_s"] != config.intervals_s:
            # entries missing, or interval bits of other sizes: no archive can be trusted to be complete
            stage.archives = {
                key: DayArchive(a.trading_date, complete=False) for key, a in stage.archives.items()
            }
            stage._dropped.clear()
            stage.archive_rewrite = True
        return stage
