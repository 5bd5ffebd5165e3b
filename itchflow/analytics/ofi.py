"""Order-flow imbalance (OFI) per symbol over tumbling event-time windows: top-of-book changes in,
one row per window out once event time has passed it.

OFI after Cont, Kukanov & Stoikov (2014), "The price impact of order book events". A pure core like
:mod:`itchflow.analytics.rolling`: the Flink operator keeps one :class:`OrderFlowImbalance` per key
(a Kafka partition of a venue: many (venue, symbol)), hands it each book's top-of-book changes
(:meth:`~OrderFlowImbalance.add`, decoded by :mod:`itchflow.analytics.top_of_book`), calls
:meth:`~OrderFlowImbalance.advance` with :func:`~itchflow.analytics.bar_stage.complete_before_ns` of the
watermark, registers :meth:`~OrderFlowImbalance.next_timer_ms`, calls
:meth:`~OrderFlowImbalance.close_all` at the end of the feed, sends :attr:`~OrderFlowImbalance.late`
to the dead-letter output, and checkpoints :meth:`~OrderFlowImbalance.snapshot`.

Rules
-----

* **Input.** ``add(venue, symbol, trading_date, changes)``: one book's top-of-book changes
  (:data:`~itchflow.analytics.top_of_book.TopOfBookTuple`: ``ts_event, seq, bid price, shares,
  orders, ask price, shares, orders``) of ``trading_date`` (days since 1970-01-01), in feed order.
  The order given *is* the sequence: ``n - 1`` is the change given before ``n`` for the same
  (venue, symbol), whatever their timestamps. Order counts are not used.
* **Event** (the paper's e_n, non-strict inequalities as written), from the previous best bid
  ``(Pb, qb)`` and ask ``(Pa, qa)`` to the new ones::

      bid_flow_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1
      ask_flow_n = 1{Pa_n >= Pa_n-1} qa_n-1 - 1{Pa_n <= Pa_n-1} qa_n
      e_n = bid_flow_n + ask_flow_n

  So a bid that rises adds its shares, one that falls takes the old shares away, one that stays
  adds the change in shares; the ask side mirrors it with the opposite sign.
* **An empty side** (the books' price 0, 0 shares) is a quote at the worst possible price with no
  shares: bid price -infinity, ask price +infinity. With the formula unchanged, a side that appears
  counts as a quote that improved (bid ``+q``, ask ``-q``), a side that empties as its last shares
  leaving (bid ``-q``, ask ``+q``), and a side that stays empty as 0. (Taking the feed's 0 literally
  would do that for the bid, where 0 is below every price, but make an appearing or vanishing ask
  count 0.)
* **The first change of a trading day** of a symbol is measured from the empty book (both sides
  empty): the books start every trading day empty, and their first top-of-book row is the change
  from it. A change of a later trading date than the symbol's current one starts that day so. A
  change of an *earlier* trading date is late (reason ``day``) and ignored.
* **Windows** are tumbling and epoch-aligned, one series per size of
  :attr:`OfiConfig.intervals_s` (default 1 s and 60 s): ``[start, start + size)`` with ``start =
  ts - ts % size`` in UTC epoch ns. A change counts in the window of its own ``ts_event``; e_n uses
  the previous change even when that lies in another window. A window without changes has no row.
* **Firing.** ``advance(complete_before_ns)`` states that every change before that time has been
  given. It returns the row of every window with changes whose end is ``<= complete_before_ns``.
  Event time never goes back (a smaller value counts as the largest so far). ``close_all()`` (the end
  of the feed) returns the row of every window with changes now, ended or not.
* **Late changes.** A window *has fired* when its end is ``<=`` the largest ``complete_before_ns``
  so far, or when ``close_all`` emitted it or a later window of the same (venue, symbol, size). A
  change whose window has fired, for some size, is *late* for that size: listed in :attr:`late`
  (reason ``window``, with the sizes it missed) and counted in no window of that size. It still
  becomes the previous top of book of the next change (the carry state). So every row is final
  when emitted: each key is emitted once, and a ReplacingMergeTree needs no version column.
* **Output** (:class:`OfiRow`): key ``(venue, trading_date, symbol, interval_s, window_start_ns)``;
  ``ofi`` = the sum of e_n over the window's changes, split into ``bid_flow`` and ``ask_flow``;
  ``updates`` = how many changes (including those with e_n = 0, e.g. only an order count changed).
  Shares are exact integers. Rows of one call are sorted by their key.
* **State** per (venue, symbol): the trading date and best bid and ask of its last change (kept for
  the next change: bounded by the number of symbols), the windows with changes that have not fired,
  and, after ``close_all``, per size the end of the last window it emitted (until event time passes
  it). So once event time has passed every window, only the last top of book per symbol is left.
  ``snapshot()`` is plain JSON-safe data with ``"version": 1``; ``restore(data)`` replaces the state
  with it, and the same inputs afterwards give the same outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.analytics.top_of_book import TopOfBookTuple
from itchflow.analytics.tumbling import (
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

_NO_ASK = 1 << 62
"""The price an empty ask side stands for (above any ITCH price): +infinity for the comparisons."""


@dataclass(frozen=True)
class OfiConfig:
    """Which windows :class:`OrderFlowImbalance` keeps."""

    intervals_s: tuple[int, ...] = (1, 60)
    """Window sizes in whole seconds."""

    def __post_init__(self) -> None:
        check_intervals(self.intervals_s)


class OfiRow(NamedTuple):
    """The order-flow imbalance of a symbol over ``[window_start_ns, window_start_ns + interval_s)``.
    Key: ``(venue, trading_date, symbol, interval_s, window_start_ns)``, the first five fields."""

    venue: str
    trading_date: int
    """days since 1970-01-01"""
    symbol: str
    interval_s: int
    window_start_ns: int
    ofi: int
    """sum of e_n (shares) = bid_flow + ask_flow"""
    bid_flow: int
    """sum of the bid terms of e_n"""
    ask_flow: int
    """sum of the ask terms of e_n"""
    updates: int
    """top-of-book changes counted in the window"""


class _Symbol:
    """One (venue, symbol): its day and last top of book (the carry), its open windows and markers."""

    __slots__ = ("day", "bid_px", "bid_sz", "ask_px", "ask_sz", "windows", "closed")

    def __init__(self, day: int) -> None:
        self.day = day
        self.bid_px = self.bid_sz = self.ask_px = self.ask_sz = 0  # the empty book
        #: (interval_s, trading date, start) -> [updates, bid_flow, ask_flow] of a window not fired
        self.windows: dict[tuple[int, int, int], list[int]] = {}
        #: interval_s -> end of the last window close_all emitted (while event time is before it)
        self.closed: dict[int, int] = {}


class OrderFlowImbalance:
    """OFI of every (venue, symbol) of one key over tumbling windows. See the module docstring."""

    def __init__(self, config: OfiConfig | None = None) -> None:
        self.config = config or OfiConfig()
        self._clock = TumblingClock(self.config.intervals_s)
        self._symbols: dict[tuple[str, str], _Symbol] = {}
        #: changes that missed windows, since the operator last took them (it clears the list)
        self.late: list[LateUpdate] = []

    @property
    def complete_before_ns(self) -> int | None:
        """The event time of the last :meth:`advance` (None before the first)."""
        return self._clock.complete_before

    # ------------------------------------------------------------------ input

    def add(self, venue: str, symbol: str, trading_date: int, changes: Iterable[TopOfBookTuple]) -> None:
        """One book's top-of-book changes of ``trading_date``, in feed order."""
        state = self._symbols.get((venue, symbol))
        if state is None:
            state = self._symbols[(venue, symbol)] = _Symbol(trading_date)
        elif trading_date != state.day:
            if trading_date < state.day:
                every = self.config.intervals_s
                self.late.extend(
                    LateUpdate(venue, symbol, trading_date, KIND_TOP, c[0], c[1], every, LATE_DAY)
                    for c in changes
                )
                return
            state.day = trading_date
            state.bid_px = state.bid_sz = state.ask_px = state.ask_sz = 0
        limits = self._clock.limits(state.closed)
        windows, push = state.windows, self._clock.push
        bid_px, bid_sz, ask_px, ask_sz = state.bid_px, state.bid_sz, state.ask_px, state.ask_sz
        for change in changes:
            ts, new_bid_px, new_bid_sz, new_ask_px, new_ask_sz = (
                change[0], change[2], change[3], change[5], change[6]
            )  # fmt: skip
            # an empty bid is price 0, below every price: -infinity as it is
            bid_flow = (new_bid_sz if new_bid_px >= bid_px else 0) - (bid_sz if new_bid_px <= bid_px else 0)
            old_ask = ask_px or _NO_ASK
            new_ask = new_ask_px or _NO_ASK
            ask_flow = (ask_sz if new_ask >= old_ask else 0) - (new_ask_sz if new_ask <= old_ask else 0)
            bid_px, bid_sz, ask_px, ask_sz = new_bid_px, new_bid_sz, new_ask_px, new_ask_sz
            missed: list[int] | None = None
            for interval, size, limit in limits:
                start = ts - ts % size
                if start + size <= limit:
                    if missed is None:
                        missed = []
                    missed.append(interval)
                    continue
                window = windows.get((interval, trading_date, start))
                if window is None:
                    windows[(interval, trading_date, start)] = [1, bid_flow, ask_flow]
                    push((start + size, venue, symbol, interval, trading_date, start))
                else:
                    window[0] += 1
                    window[1] += bid_flow
                    window[2] += ask_flow
            if missed is not None:
                self.late.append(
                    LateUpdate(
                        venue, symbol, trading_date, KIND_TOP, ts, change[1], tuple(missed), LATE_WINDOW
                    )
                )
        state.bid_px, state.bid_sz, state.ask_px, state.ask_sz = bid_px, bid_sz, ask_px, ask_sz

    # ------------------------------------------------------------------ output

    def advance(self, complete_before_ns: int) -> list[OfiRow]:
        """The rows of the windows with changes that end at or before ``complete_before_ns`` (and
        were not emitted yet), sorted by key."""
        now = self._clock.advance(complete_before_ns)
        out: list[OfiRow] = []
        symbols = self._symbols
        for end, venue, symbol, interval, day, start in self._clock.pop_due(now):
            state = symbols.get((venue, symbol))
            if state is None:
                continue
            if day == MARKER:
                if state.closed.get(interval) == end:
                    del state.closed[interval]  # event time has caught up with close_all
                continue
            window = state.windows.pop((interval, day, start), None)
            if window is not None:
                out.append(_row(venue, symbol, interval, day, start, window))
        out.sort()
        return out

    def close_all(self) -> list[OfiRow]:
        """The end of the feed: the row of every window with changes, now. Later changes in those
        windows (or earlier ones of the same symbol and size) are late."""
        out: list[OfiRow] = []
        for (venue, symbol), state in self._symbols.items():
            for (interval, day, start), window in state.windows.items():
                out.append(_row(venue, symbol, interval, day, start, window))
                end = start + interval * NANOS_PER_SECOND
                if end > state.closed.get(interval, -1):
                    state.closed[interval] = end
            state.windows.clear()
            for interval, end in state.closed.items():
                self._clock.push((end, venue, symbol, interval, MARKER, 0))
        out.sort()
        return out

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) to be called back at: the earliest end of a window with changes
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
        return (interval, day, start) in state.windows

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """The state as plain data (see the module docstring); not :attr:`late`."""
        return {
            "version": SNAPSHOT_VERSION,
            "intervals_s": list(self.config.intervals_s),
            "complete_before_ns": self._clock.complete_before,
            "symbols": [
                {
                    "venue": venue,
                    "symbol": symbol,
                    "trading_date": state.day,
                    "top": [state.bid_px, state.bid_sz, state.ask_px, state.ask_sz],
                    "windows": [[*key, *window] for key, window in sorted(state.windows.items())],
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
            state = self._symbols[(venue, symbol)] = _Symbol(saved["trading_date"])
            state.bid_px, state.bid_sz, state.ask_px, state.ask_sz = saved["top"]
            for interval, day, start, updates, bid_flow, ask_flow in saved["windows"]:
                state.windows[(interval, day, start)] = [updates, bid_flow, ask_flow]
                due.append((start + interval * NANOS_PER_SECOND, venue, symbol, interval, day, start))
            for interval, end in saved["closed"]:
                state.closed[interval] = end
                due.append((end, venue, symbol, interval, MARKER, 0))
        self._clock.rebuild(due)


def _row(venue: str, symbol: str, interval: int, day: int, start: int, window: list[int]) -> OfiRow:
    updates, bid_flow, ask_flow = window
    return OfiRow(venue, day, symbol, interval, start, bid_flow + ask_flow, bid_flow, ask_flow, updates)
