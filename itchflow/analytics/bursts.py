"""Bursts: per symbol, runs of prints less than a gap apart (event-time session windows), with
revisions, late prints and broken trades.

Like :mod:`itchflow.analytics.bar_stage`, this is a pure core: the Flink operator hands
:class:`BurstDetector` the prints and broken trades of a record (:meth:`BurstDetector.add_print`,
:meth:`BurstDetector.break_trade`), calls :meth:`BurstDetector.advance` with
:func:`~itchflow.analytics.bar_stage.complete_before_ns` of the watermark, sets an event-time timer at
:meth:`BurstDetector.next_timer_ms`, sends :attr:`BurstDetector.late` to the late-data output and
checkpoints :meth:`BurstDetector.snapshot`.

Rules (G = ``gap_ms``, L = ``allowed_lateness_ms``, both in ns below; ``now`` = the
``complete_before_ns`` of the last :meth:`~BurstDetector.advance`)
--------------------------------------------------------------------------------------------------

* **Keys.** One detector holds every (venue, symbol) of one Flink key (a Kafka partition of one
  venue). Sessions are kept per *symbol-day*: (venue, symbol, trading date). Prints of different
  trading dates never share a session, whatever their times.
* **Sessions** are Flink's event-time session windows with gap G. Take a symbol-day's prints in
  order of (ts_event, seq). Two neighbours are in the same session iff ``next.ts_event -
  prev.ts_event < G``. Prints exactly G apart are in two sessions. Prints with equal times are always
  together. A session with first print ``start`` and last print ``last`` covers the window
  ``[start, last + G)``. Its *end* is ``last + G``. A print that arrives out of order is put where
  its time says: it can extend a session on either side, or bridge two sessions and merge them.
* **Bursts.** A session with at least ``min_prints`` prints is a burst (:class:`Burst`): ``start_ns``
  and ``end_ns`` are the times of its first and last print (``end_ns`` is the last print, not the
  window end ``last + G``), ``prints`` counts them, ``shares`` and ``notional`` (price x shares, price
  ticks of 10^-4 dollars) are exact integer sums, and ``vwap = notional / shares`` is their correctly
  rounded quotient, as :attr:`Bar.vwap <itchflow.analytics.bars.Bar.vwap>`. A session with fewer
  prints is not emitted.
* **Flagged** (the analytics alert): a burst is flagged when its rate reaches a threshold of
  :class:`BurstConfig`: ``prints / duration >= alert_prints_per_s`` or ``shares / duration >=
  alert_shares_per_s``, a threshold of None being off. The duration is ``end_ns - start_ns``, but at
  least G: prints at one instant (a sweep of several resting orders) count as prints in one gap, not
  as an infinite rate. The comparison is exact, in integers (``prints * 10^9 >= alert_prints_per_s *
  duration_ns``).
* **Firing.** A session fires once the watermark passes its end: ``last + G <= now`` (a print that
  could still join it would be behind the watermark). A burst is emitted when its session fires. It is emitted again (next revision) when a later print or break changes it, at the
  first :meth:`~BurstDetector.advance` at which its session is complete again (a late print can move
  the end past ``now``: the burst waits for it).
* **Output keys and revisions.** The key of a burst is ``(venue, trading_date, symbol, start_ns)``.
  Idempotent sinks (ClickHouse ``ReplacingMergeTree(revision)``) keep the latest revision per key. The
  first emission of a key is revision 0, each later one is the previous + 1, also across a deletion:
  a key deleted at revision n and emitted again later gets n + 1. A key is emitted again only when
  its values changed. Within one :meth:`~BurstDetector.advance` a key is emitted at most once. When
  no session held starts at an emitted key's time any more (a late print moved the start earlier, a
  merge absorbed it into an earlier session, a break removed its first print or all its prints),
  the key is emitted once more as *deleted* (:attr:`Burst.deleted`, values zero, ``vwap`` None) at the
  next :meth:`~BurstDetector.advance` (or :meth:`~BurstDetector.close_all`). So a burst whose start changed shows as the old key deleted and
  the new key emitted. A session that starts at an emitted key's time but is not complete (a late
  print moved its end past ``now``) keeps its key unchanged until it fires. A complete session that
  a break left with fewer than ``min_prints`` prints deletes its key. After ``advance(now)``, the
  latest revision of each key emitted so far is: the burst of the complete held session starting
  there; or the last value of a burst let go (final); or the last value of a held session starting
  there that is not complete (it will be revised when it fires); or deleted. And every complete held
  session with at least ``min_prints`` prints has been emitted.
* **Allowed lateness.** A session is held until ``end + L <= now``, then let go (*dropped*). While it
  is held, late prints and breaks can still change it. Once it is dropped, its bursts are final.
  Sessions end in time order, so they are dropped in time order. The detector keeps, per symbol-day,
  ``floor``: no print at ``t < floor + G`` may be accepted, as it could touch a dropped session. The
  floor is the last print of the latest session dropped. But a symbol-day of which the detector
  holds no session has forgotten where its dropped sessions were: its floor is then ``now - G - L``
  (every dropped session has ``last + G + L <= now``), and stays at least that once it has a session
  again.
* **Late prints.** A print at ``t`` is accepted unless one of these holds. Then it is *late*: it goes
  to :attr:`~BurstDetector.late` (kind ``print``) and changes nothing.

  1. ``t < floor + G``: it could touch a dropped session. For a symbol-day without held sessions
     this means ``t < now - L``.
  2. It joins a held session that is past the lateness horizon (``end + L <= now``; only possible
     when ``now`` has moved since the last :meth:`~BurstDetector.advance`, see below).
  3. It joins no held session, and its own session would be past the horizon: ``t + G + L <= now``.

  So a print behind the watermark is accepted when it extends or bridges held sessions, or starts
  a session that is not past the horizon, as long as it cannot touch what was let go.
  :meth:`~BurstDetector.add_print` may be given the ``complete_before_ns`` of the current watermark,
  which then stands for ``now`` in these rules (as if :meth:`~BurstDetector.advance` had been called
  with it). A print within the lateness (``t >= now - L``) is never late. Hence a feed whose prints
  are never more than L behind the watermark gives the bursts of the same prints sorted.
* **Broken trades** (ITCH B): :meth:`~BurstDetector.break_trade` takes the print with that match number
  (the symbol's latest trading date first) out of the held session that has it, and the session is
  folded again. Removing a print can split the session (the neighbours left are G or more apart:
  the first part keeps the start, the others are new sessions), move its start (the old key is
  deleted), drop it below ``min_prints`` (its key is deleted), or empty it (its key is deleted). A
  break whose print is in no held session (an unknown match number, a late print, a dropped session)
  goes to :attr:`~BurstDetector.late` (kind ``break``) and changes nothing.
* **Event time** never goes back: a smaller ``complete_before_ns`` (a watermark just after a
  restore) counts as the largest one seen so far.
* **Timer.** :meth:`~BurstDetector.next_wakeup_ns` is the earliest event time at which
  :meth:`~BurstDetector.advance` has something to do: a changed session to fire or re-fire, a key to
  delete, a session to drop, a retired key to forget. :meth:`~BurstDetector.next_timer_ms` is the
  Flink event-time timer for it: a timer at ``T`` ms fires when the watermark ``W >= T``, which gives
  ``complete_before_ns(W) = (W + 1) ms >= due``. So ``T = ceil(due / 1 ms) - 1``, as in the bar stage.
  Calling :meth:`~BurstDetector.advance` more often than that is harmless.
* **End of the feed** (System Event C, or the end of a replay): :meth:`~BurstDetector.close_all` fires
  every held session now, complete or not. The sessions stay held (late prints and breaks still
  revise them until ``end + L <= now``).
* **State.** Per symbol-day: the held sessions with their prints (a break must find its print and
  fold the session again), the last emission of each key still backed by a held session, and the
  last revision of each deleted key that a future session could still start at (``start >= floor +
  G``). A symbol-day with none of these has no state. So once every session has been dropped, and
  the watermark has passed every deleted key by L, nothing is left.
  :meth:`~BurstDetector.snapshot` returns plain data (JSON-safe, ``"version": 1``), and
  :meth:`~BurstDetector.restore` replaces the state with it. The same inputs afterwards give the same
  outputs.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.analytics.bars import NANOS_PER_SECOND, Print

NANOS_PER_MS = 1_000_000
SNAPSHOT_VERSION = 1

PrintTuple = tuple[int, int, int, int, int]
"""(ts_event, seq, match_number, price, shares): :class:`~itchflow.analytics.bars.Print`'s order."""
DayKey = tuple[str, str, int]
"""(venue, symbol, trading date)"""

_NEVER = -(1 << 62)
"""Event time before any :meth:`BurstDetector.advance`: earlier than every print."""
_NOT_DUE = 1 << 62
"""A symbol-day without a wake-up."""


def _whole_number(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


DEFAULT_BURST_ALERT_PRINTS_PER_S = 50
"""The jobs' default alert rate: a burst of at least 25 prints within half a second is flagged."""


@dataclass(frozen=True)
class BurstConfig:
    """What :class:`BurstDetector` calls a burst, and which bursts it flags."""

    gap_ms: int = 500
    """Prints less than this apart (event time) are in one burst."""
    min_prints: int = 2
    """Prints a session needs to be a burst (a lone print is not one)."""
    alert_prints_per_s: int | None = None
    """Flag a burst with at least this many prints per second of its duration (None: off)."""
    alert_shares_per_s: int | None = None
    """Flag a burst with at least this many shares per second of its duration (None: off)."""
    allowed_lateness_ms: int = 0
    """How long after a session's end (event time) late prints and breaks still change it."""

    def __post_init__(self) -> None:
        _whole_number("gap_ms", self.gap_ms, 1)
        _whole_number("min_prints", self.min_prints, 1)
        for name in ("alert_prints_per_s", "alert_shares_per_s"):
            value = getattr(self, name)
            if value is not None:
                _whole_number(name, value, 1)
        _whole_number("allowed_lateness_ms", self.allowed_lateness_ms, 0)

    @property
    def gap_ns(self) -> int:
        return self.gap_ms * NANOS_PER_MS

    @property
    def allowed_lateness_ns(self) -> int:
        return self.allowed_lateness_ms * NANOS_PER_MS

    def flagged(self, start_ns: int, end_ns: int, prints: int, shares: int) -> bool:
        """Whether a burst of ``prints`` and ``shares`` from ``start_ns`` to ``end_ns`` (its first and
        last print) reaches an alert rate, measured over ``max(end_ns - start_ns, gap)``."""
        duration = max(end_ns - start_ns, self.gap_ns)
        if self.alert_prints_per_s is not None and prints * NANOS_PER_SECOND >= (
            self.alert_prints_per_s * duration
        ):
            return True
        return self.alert_shares_per_s is not None and shares * NANOS_PER_SECOND >= (
            self.alert_shares_per_s * duration
        )


class Burst(NamedTuple):
    """One emission of a burst. Key: ``(venue, trading_date, symbol, start_ns)``, where the latest
    ``revision`` wins."""

    venue: str
    trading_date: int
    """days since 1970-01-01 (the feed's trading date)"""
    symbol: str
    start_ns: int
    """event time of the first print"""
    end_ns: int
    """event time of the last print (the session window ends one gap later); start_ns if deleted"""
    prints: int
    shares: int
    notional: int
    """sum of price x shares (price ticks of 10^-4 dollars)"""
    vwap: float | None
    """notional / shares, correctly rounded; None if deleted"""
    flagged: bool
    """its rate reaches an alert threshold (:class:`BurstConfig`)"""
    revision: int
    deleted: bool
    """no burst starts at start_ns any more: readers drop the key (ClickHouse: is_deleted)"""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class LatePrint(NamedTuple):
    """A print or break that changed nothing because it came too late (or matched no held print),
    for the late-data output. The fields are those of the bar stage's LatePrint, without sizes."""

    venue: str
    symbol: str
    kind: str
    """``print`` or ``break``"""
    ts_event: int
    match_number: int


class _Session:
    """A run of prints of one symbol-day. ``prints`` are in arrival order; ``start`` and ``last`` are
    the least and greatest ts_event."""

    __slots__ = ("start", "last", "prints", "shares", "notional", "dirty")

    def __init__(self, prints: list[PrintTuple], start: int, last: int, shares: int, notional: int) -> None:
        self.prints = prints
        self.start = start
        self.last = last
        self.shares = shares
        self.notional = notional
        self.dirty = True  # changed since it was last compared with its key's emission

    @classmethod
    def fold(cls, prints: list[PrintTuple]) -> _Session:
        """A session of ``prints`` (at least one)."""
        times = [p[0] for p in prints]
        shares = sum(p[4] for p in prints)
        return cls(prints, min(times), max(times), shares, sum(p[3] * p[4] for p in prints))


class _Day:
    """One symbol-day: its held sessions by start (``starts[i] == sessions[i].start``), what was
    emitted, and what the detector must remember of what it let go."""

    __slots__ = ("key", "starts", "sessions", "floor", "emitted", "retired", "due")

    def __init__(self, key: DayKey, floor: int) -> None:
        self.key = key
        self.starts: list[int] = []
        self.sessions: list[_Session] = []
        #: last print of the latest dropped session (or the bound for sessions forgotten)
        self.floor = floor
        #: start -> (revision, end, prints, shares, notional) of the key's last emission, not deleted
        self.emitted: dict[int, tuple[int, int, int, int, int]] = {}
        #: start -> revision of the key's last emission, a deletion
        self.retired: dict[int, int] = {}
        self.due = _NOT_DUE  # the live wake-up's time


class BurstDetector:
    """The bursts of every (venue, symbol) of one Flink key. See the module docstring for the rules."""

    def __init__(self, config: BurstConfig | None = None) -> None:
        self.config = config or BurstConfig()
        self._gap = self.config.gap_ns
        self._lateness = self.config.allowed_lateness_ns
        self._min_prints = self.config.min_prints
        self._days: dict[DayKey, _Day] = {}
        #: (venue, symbol) -> the trading dates it has a symbol-day of
        self._dates: dict[tuple[str, str], list[int]] = {}
        #: (due ns, day key); an entry is live iff the day's ``due`` is its time
        self._wakeups: list[tuple[int, DayKey]] = []
        self._now = _NEVER
        #: prints and breaks that changed nothing, since the operator last took them
        self.late: list[LatePrint] = []
        #: late prints and breaks so far (the late list is cleared by the operator; these are not)
        self.late_prints = 0
        self.late_breaks = 0

    @property
    def complete_before_ns(self) -> int | None:
        """The event time of the last :meth:`advance` (None before the first one)."""
        return None if self._now == _NEVER else self._now

    # ------------------------------------------------------------------ input

    def add_print(
        self,
        venue: str,
        symbol: str,
        trading_date: int,
        p: Print | PrintTuple,
        complete_before_ns: int | None = None,
    ) -> None:
        """One eligible print of ``symbol`` on ``trading_date`` (days since epoch). Its lateness is
        judged at ``complete_before_ns`` (default: that of the last :meth:`advance`)."""
        now = self._now
        if complete_before_ns is not None and complete_before_ns > now:
            now = complete_before_ns
        t = p[0]
        gap = self._gap
        horizon = now - self._lateness
        key = (venue, symbol, trading_date)
        day = self._days.get(key)
        # without held sessions the detector no longer knows where the dropped ones were
        floor = horizon - gap
        if day is not None and (day.sessions or day.floor > floor):
            floor = day.floor
        if t < floor + gap:
            self._late(venue, symbol, p)
            return
        if day is None:
            day = self._days[key] = _Day(key, floor)
            dates = self._dates.get((venue, symbol))
            if dates is None:
                self._dates[(venue, symbol)] = [trading_date]
            else:
                dates.append(trading_date)
        sessions, starts = day.sessions, day.starts
        i = bisect_right(starts, t)
        prev = sessions[i - 1] if i and t - sessions[i - 1].last < gap else None  # it joins
        following = sessions[i] if i < len(sessions) and sessions[i].start - t < gap else None
        # sessions end in time order: if the earlier one it joins is within the horizon, so is the later
        joined = prev if prev is not None else following
        if (joined.last if joined is not None else t) + gap <= horizon:
            self._late(venue, symbol, p)
            return
        day.floor = floor
        if prev is not None:
            session = prev
            if following is not None:  # it bridges two sessions: the later one joins the earlier
                session.prints.extend(following.prints)
                session.shares += following.shares
                session.notional += following.notional
                session.last = following.last
                del sessions[i]
                del starts[i]
                if following.start in day.emitted:
                    self._wake(day, self._immediately())
            session.prints.append(p)
            session.shares += p[4]
            session.notional += p[3] * p[4]
            if t > session.last:
                session.last = t
            session.dirty = True
        elif following is not None:
            session = following
            if session.start in day.emitted:
                self._wake(day, self._immediately())
            session.start = starts[i] = t
            session.prints.append(p)
            session.shares += p[4]
            session.notional += p[3] * p[4]
            session.dirty = True
        else:
            session = _Session([p], t, t, p[4], p[3] * p[4])
            sessions.insert(i, session)
            starts.insert(i, t)
        end = session.last + gap
        if end < day.due:
            self._wake(day, end)

    def break_trade(self, venue: str, symbol: str, match_number: int, ts_event: int) -> None:
        """A broken trade: the print with ``match_number`` leaves the held session that has it (see the
        module docstring). One that no held session has goes to :attr:`late`. ``ts_event`` is the
        break's own time, for the late output."""
        for trading_date in sorted(self._dates.get((venue, symbol), ()), reverse=True):
            day = self._days[(venue, symbol, trading_date)]
            for index, session in enumerate(day.sessions):
                for position, p in enumerate(session.prints):
                    if p[2] == match_number:
                        self._remove(day, index, position)
                        return
        self.late.append(LatePrint(venue, symbol, "break", ts_event, match_number))
        self.late_breaks += 1

    def _late(self, venue: str, symbol: str, p: Print | PrintTuple) -> None:
        self.late.append(LatePrint(venue, symbol, "print", p[0], p[2]))
        self.late_prints += 1

    def _remove(self, day: _Day, index: int, position: int) -> None:
        """Take print ``position`` out of session ``index`` and split what is left where it falls
        apart."""
        session = day.sessions[index]
        old_start = session.start
        del session.prints[position]
        if not session.prints:
            del day.sessions[index]
            del day.starts[index]
            if old_start in day.emitted:
                self._wake(day, self._immediately())
            elif not day.sessions and not day.emitted and not day.retired:
                self._forget(day)  # nothing left to say or to remember
            return
        ordered = sorted(session.prints)  # by (ts_event, seq)
        gap = self._gap
        runs: list[list[PrintTuple]] = []
        run = [ordered[0]]
        for before, p in zip(ordered, ordered[1:], strict=False):
            if p[0] - before[0] >= gap:
                runs.append(run)
                run = []
            run.append(p)
        runs.append(run)
        pieces = [_Session.fold(run) for run in runs]
        day.sessions[index : index + 1] = pieces
        day.starts[index : index + 1] = [piece.start for piece in pieces]
        if old_start != pieces[0].start and old_start in day.emitted:
            self._wake(day, self._immediately())
        end = pieces[0].last + gap
        if end < day.due:
            self._wake(day, end)

    # ------------------------------------------------------------------ output

    def advance(self, complete_before_ns: int) -> list[Burst]:
        """Every print before ``complete_before_ns`` has been given: the emissions that became due
        (new and revised bursts of complete sessions, deleted keys), each key at most once, sorted
        by (start, venue, symbol, trading date). Sessions past the allowed lateness are dropped."""
        if complete_before_ns > self._now:
            self._now = complete_before_ns
        now = self._now
        out: list[Burst] = []
        wakeups, days = self._wakeups, self._days
        while wakeups and wakeups[0][0] <= now:
            at, key = heapq.heappop(wakeups)
            day = days.get(key)
            if day is None or day.due != at:
                continue  # replaced by a later wake-up, or the day is gone
            day.due = _NOT_DUE
            self._process(day, now, False, out)
            self._schedule(day)
        out.sort(key=_emission_order)
        return out

    def close_all(self) -> list[Burst]:
        """The end of the feed: every held session's burst now, complete or not (they stay held for
        late prints and breaks), and every pending deletion."""
        now = self._now
        out: list[Burst] = []
        for day in list(self._days.values()):
            day.due = _NOT_DUE
            self._process(day, now, True, out)
            self._schedule(day)
        out.sort(key=_emission_order)
        return out

    def next_wakeup_ns(self) -> int | None:
        """The earliest ``complete_before_ns`` at which :meth:`advance` has something to do (None:
        nothing held). At or before the current one: something is to be emitted now."""
        wakeups, days = self._wakeups, self._days
        while wakeups:
            at, key = wakeups[0]
            day = days.get(key)
            if day is None or day.due != at:
                heapq.heappop(wakeups)  # replaced by a later wake-up, or the day is gone
                continue
            # a print that extends a session leaves the wake-up at its old end (cheap to add), so the
            # wake-up may be early: put it where it belongs
            due = self._due(day)
            if due == at:
                return at
            heapq.heappop(wakeups)
            day.due = _NOT_DUE
            if due is None:
                self._forget(day)
            else:
                self._wake(day, due)
        return None

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: a timer at T fires when the watermark
        W >= T, i.e. once ``complete_before_ns(W) >= next_wakeup_ns()``."""
        due = self.next_wakeup_ns()
        if due is None:
            return None
        return -(-due // NANOS_PER_MS) - 1

    def _immediately(self) -> int:
        """A wake-up time that the next :meth:`advance` reaches, whatever its argument."""
        return self._now if self._now != _NEVER else 0

    def _wake(self, day: _Day, at: int) -> None:
        if at < day.due:
            day.due = at
            heapq.heappush(self._wakeups, (at, day.key))

    def _process(self, day: _Day, now: int, close: bool, out: list[Burst]) -> None:
        """Emit what changed in ``day``: deletions of keys that no held session starts at, then the
        complete sessions (all, if ``close``) that changed; drop sessions past the lateness; forget
        retired keys that no future session can start at."""
        gap = self._gap
        starts, sessions, emitted = day.starts, day.sessions, day.emitted
        if emitted:
            for start in list(emitted):
                i = bisect_left(starts, start)
                if i == len(starts) or starts[i] != start:
                    self._delete(day, start, out)
        for session in sessions:
            if not close and session.last + gap > now:
                break  # this one and the later ones are not complete
            if session.dirty:
                session.dirty = False
                self._compare(day, session, out)
        horizon = now - self._lateness
        dropped = 0
        for session in sessions:
            if session.last + gap > horizon:
                break
            emitted.pop(session.start, None)
            if session.last > day.floor:
                day.floor = session.last
            dropped += 1
        if dropped:
            del sessions[:dropped]
            del starts[:dropped]
        if day.retired:
            limit = day.floor + gap if sessions else max(day.floor + gap, horizon)
            for start in [start for start in day.retired if start < limit]:
                del day.retired[start]

    def _compare(self, day: _Day, session: _Session, out: list[Burst]) -> None:
        """Emit ``session``'s burst if it differs from its key's last emission (or delete the key if
        the session is no burst any more)."""
        start = session.start
        previous = day.emitted.get(start)
        count = len(session.prints)
        if count < self._min_prints:
            if previous is not None:
                self._delete(day, start, out)
            return
        values = (session.last, count, session.shares, session.notional)
        if previous is None:
            revision = day.retired.pop(start, -1) + 1
        elif previous[1:] == values:
            return
        else:
            revision = previous[0] + 1
        day.emitted[start] = (revision, *values)
        venue, symbol, trading_date = day.key
        flagged = self.config.flagged(start, session.last, count, session.shares)
        out.append(
            Burst(
                venue,
                trading_date,
                symbol,
                start,
                session.last,
                count,
                session.shares,
                session.notional,
                session.notional / session.shares,
                flagged,
                revision,
                False,
            )
        )

    def _delete(self, day: _Day, start: int, out: list[Burst]) -> None:
        revision = day.emitted.pop(start)[0] + 1
        day.retired[start] = revision
        venue, symbol, trading_date = day.key
        out.append(Burst(venue, trading_date, symbol, start, start, 0, 0, 0, None, False, revision, True))

    def _due(self, day: _Day) -> int | None:
        """When :meth:`advance` next has something to do for ``day`` (at or before the current event
        time: now), or None if the day holds nothing."""
        gap, sessions = self._gap, day.sessions
        if day.emitted:
            starts = day.starts
            for start in day.emitted:
                i = bisect_left(starts, start)
                if i == len(starts) or starts[i] != start:
                    return self._immediately()  # a key to delete
        if sessions:
            due = sessions[0].last + gap + self._lateness  # the first to drop
            for session in sessions:
                if session.dirty:  # the first changed one to fire (or now, if complete)
                    end = session.last + gap
                    return self._immediately() if end <= self._now else min(due, end)
            return due
        if day.retired:
            return min(day.retired) + self._lateness + 1  # the first key to forget
        return None

    def _schedule(self, day: _Day) -> None:
        """Set ``day``'s next wake-up after :meth:`_process`, or forget the day."""
        due = self._due(day)
        if due is None:
            self._forget(day)
        else:
            self._wake(day, due)

    def _forget(self, day: _Day) -> None:
        venue, symbol, trading_date = day.key
        del self._days[day.key]
        dates = self._dates[(venue, symbol)]
        dates.remove(trading_date)
        if not dates:
            del self._dates[(venue, symbol)]

    # ------------------------------------------------------------------ state

    def check_integrity(self) -> None:
        """Raise AssertionError if the state breaks an invariant of the rules (tests)."""
        gap = self._gap
        for key, day in self._days.items():
            assert day.starts == [s.start for s in day.sessions], key
            assert day.sessions or day.retired or day.emitted, f"{key}: empty symbol-day kept"
            before: _Session | None = None
            for session in day.sessions:
                times = sorted(p[0] for p in session.prints)
                assert times and times[0] == session.start and times[-1] == session.last, key
                assert all(b - a < gap for a, b in zip(times, times[1:], strict=False)), key
                assert session.shares == sum(p[4] for p in session.prints), key
                assert session.notional == sum(p[3] * p[4] for p in session.prints), key
                assert session.start >= day.floor + gap, f"{key}: a session touches the floor"
                if before is not None:
                    assert session.start - before.last >= gap, f"{key}: sessions not apart"
                before = session
            assert not set(day.emitted) & set(day.retired), key
            assert all(start >= day.floor + gap for start in day.retired), key

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data. See the module docstring."""
        return {
            "version": SNAPSHOT_VERSION,
            "gap_ms": self.config.gap_ms,
            "complete_before_ns": self.complete_before_ns,
            "late_prints": self.late_prints,
            "late_breaks": self.late_breaks,
            "days": [
                {
                    "venue": day.key[0],
                    "symbol": day.key[1],
                    "trading_date": day.key[2],
                    "floor_ns": day.floor,
                    "sessions": [[list(p) for p in session.prints] for session in day.sessions],
                    "emitted": [[start, *day.emitted[start]] for start in sorted(day.emitted)],
                    "retired": [[start, day.retired[start]] for start in sorted(day.retired)],
                }
                for _, day in sorted(self._days.items())
            ],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a detector with the same gap. Every held
        symbol-day is looked at again by the next :meth:`advance` (which emits only what changed)."""
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            version = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"snapshot version {version!r}, this code reads {SNAPSHOT_VERSION}")
        if data.get("gap_ms") != self.config.gap_ms:
            raise ValueError(
                f"snapshot has gap_ms={data.get('gap_ms')!r}, this detector has {self.config.gap_ms}"
            )
        self._days = {}
        self._dates = {}
        self._wakeups = []
        saved_now = data["complete_before_ns"]
        self._now = _NEVER if saved_now is None else saved_now
        self.late = []
        self.late_prints = data["late_prints"]
        self.late_breaks = data["late_breaks"]
        for saved in data["days"]:
            key = (saved["venue"], saved["symbol"], saved["trading_date"])
            day = self._days[key] = _Day(key, saved["floor_ns"])
            self._dates.setdefault(key[:2], []).append(key[2])
            day.sessions = [_Session.fold([_print_tuple(p) for p in prints]) for prints in saved["sessions"]]
            day.starts = [session.start for session in day.sessions]
            for start, revision, end, count, shares, notional in saved["emitted"]:
                day.emitted[start] = (revision, end, count, shares, notional)
            for start, revision in saved["retired"]:
                day.retired[start] = revision
            self._wake(day, self._immediately())


def _print_tuple(values: Iterable[int]) -> PrintTuple:
    ts_event, seq, match_number, price, shares = values
    return (ts_event, seq, match_number, price, shares)


def _emission_order(burst: Burst) -> tuple[int, str, str, int]:
    return (burst.start_ns, burst.venue, burst.symbol, burst.trading_date)
