"""The cross-venue detectors over one stream of market events in event-time order.

:class:`Detectors` takes the events of every venue of some symbols, merged by event time (ties: by
venue name, then feed order), through :meth:`Detectors.apply`, and emits :class:`Alert` s:

* **arbitrage** -- a locked or crossed pair across venues (:func:`~itchflow.cep.consolidated.best_pair`
  over the eligible venues: in their regular session, between the venue's system events ``Q`` and
  ``M``, with the symbol trading there) lasting at least ``arbitrage_min_ms``. The episode starts
  when the consolidated book first locks or crosses and ends when it no longer does (a quote, a halt
  or a venue's close); its venues, prices, shares and ``edge`` are the pair's at the start, and
  ``max_edge`` the largest edge while it lasted. Severity critical when crossed, warning when locked.
* **stale** -- a venue sends no message of a trading symbol for longer than ``stale_after_ms``
  while its regular session is open: from the symbol's last message on that venue (or the session's
  start, or the symbol's resumption) to its next message, the session's end or a halt.
* **halt** / **luld_pause** -- a Stock Trading Action ``H`` (or ``Q``, quotation only) / ``P``
  on a venue, until the symbol trades there again (``T``); the reason code of the action that
  started it is in ``details``.

Open alerts: a halt or pause as soon as it starts, a stale stretch once it is longer than the
threshold, a crossing once it has lasted ``arbitrage_min_ms`` -- each with ``end_ns`` None -- and the
closed version when the episode ends (or when :meth:`Detectors.finish` ends the input). Time-driven
openings fire in :meth:`Detectors.advance`, which :meth:`Detectors.apply` calls with each event's time
(a streaming job calls it with the watermark).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.cep.alerts import Alert, AlertType, Severity
from itchflow.cep.consolidated import EMPTY_QUOTE, CrossedPair, Quote, best_pair

NANOS_PER_MS = 1_000_000
TRADING = "T"
_HALT_TYPES = {"H": AlertType.HALT, "Q": AlertType.HALT, "P": AlertType.LULD_PAUSE}


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """The detectors' parameters (``itchflow detect`` flags; the job's settings)."""

    arbitrage_min_ms: int = 100
    """A locked or crossed pair must last at least this long to be an alert."""
    stale_after_ms: int = 60_000
    """A trading symbol with no message on a venue for longer than this is stale."""

    def __post_init__(self) -> None:
        for name in ("arbitrage_min_ms", "stale_after_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")

    @property
    def arbitrage_min_ns(self) -> int:
        return self.arbitrage_min_ms * NANOS_PER_MS

    @property
    def stale_after_ns(self) -> int:
        return self.stale_after_ms * NANOS_PER_MS


# ---------------------------------------------------------------------- events


class SystemEvent(NamedTuple):
    """A venue's System Event (``O`` ``S`` ``Q`` ``M`` ``E`` ``C``)."""

    ts_event: int
    venue: str
    code: str


class TradingAction(NamedTuple):
    """A venue's Stock Trading Action: ``state`` ``H`` halted, ``P`` paused, ``Q`` quotation only, ``T``."""

    ts_event: int
    venue: str
    symbol: str
    state: str
    reason: str


class QuoteChange(NamedTuple):
    """A venue's top of book of a symbol after a message that changed it (also activity)."""

    ts_event: int
    venue: str
    symbol: str
    quote: Quote


class Activity(NamedTuple):
    """Any other message of a symbol on a venue (a directory entry, an order event, a trade)."""

    ts_event: int
    venue: str
    symbol: str


Event = SystemEvent | TradingAction | QuoteChange | Activity


# ---------------------------------------------------------------------- state


class _Crossing:
    __slots__ = ("start_ns", "pair", "max_edge", "opened")

    def __init__(self, start_ns: int, pair: CrossedPair) -> None:
        self.start_ns = start_ns
        self.pair = pair
        self.max_edge = pair.edge
        self.opened = False  # the open alert went out


class _Symbol:
    """What the detectors keep per symbol, across venues."""

    __slots__ = ("quotes", "states", "last_seen", "stale_since", "halt", "crossing")

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}
        self.states: dict[str, str] = {}  # venue -> trading state (absent: trading)
        self.last_seen: dict[str, int] = {}  # venue -> last message (or session start, resumption)
        self.stale_since: dict[str, int] = {}  # venue -> start of an open stale stretch
        self.halt: dict[str, tuple[AlertType, int, str]] = {}  # venue -> (type, start, reason)
        self.crossing: _Crossing | None = None


class Detectors:
    """Every detector over the events of some symbols of every venue (one Flink key's worth, or files).

    ``emit`` receives each alert (open and closed versions); by default they collect in :attr:`alerts`.
    """

    def __init__(
        self, config: DetectorConfig | None = None, emit: Callable[[Alert], None] | None = None
    ) -> None:
        self.config = config or DetectorConfig()
        self.alerts: list[Alert] = []
        self._emit = emit or self.alerts.append
        self._symbols: dict[str, _Symbol] = {}
        self._open_venues: set[str] = set()
        self._venue_symbols: dict[str, set[str]] = {}
        # time-driven openings: (deadline, sequence, kind, venue, symbol); stale timers at most one per
        # (venue, symbol), re-armed when the symbol was seen since
        self._timers: list[tuple[int, int, str, str, str]] = []
        self._stale_armed: set[tuple[str, str]] = set()
        self._timer_sequence = 0
        self.now_ns = 0
        #: event time of the latest event taken (where :meth:`finish` ends what is open)
        self.last_event_ns = 0

    # ------------------------------------------------------------------ input

    def apply(self, event: Event) -> None:
        """Advance event time to the event's, then take it in."""
        ts_event = event.ts_event
        if ts_event > self.last_event_ns:
            self.last_event_ns = ts_event
        if self._timers and self._timers[0][0] < ts_event:
            self.advance(ts_event)
        elif ts_event > self.now_ns:
            self.now_ns = ts_event
        if isinstance(event, QuoteChange):
            self._seen(event.venue, event.symbol, ts_event)
            self._quote(event.venue, event.symbol, event.quote, ts_event)
        elif isinstance(event, Activity):
            self._seen(event.venue, event.symbol, ts_event)
        elif isinstance(event, TradingAction):
            self._trading_action(event)
        else:
            self._system_event(event)

    def advance(self, now_ns: int) -> None:
        """Event time has reached ``now_ns``: open what became certain strictly before it."""
        timers = self._timers
        while timers and timers[0][0] < now_ns:
            deadline, _, kind, venue, symbol = heapq.heappop(timers)
            if kind == "stale":
                self._stale_timer(deadline, venue, symbol)
            else:
                self._crossing_timer(deadline, symbol)
        if now_ns > self.now_ns:
            self.now_ns = now_ns

    def finish(self, end_ns: int | None = None) -> None:
        """The input ended at ``end_ns`` (default: the latest event's time): close every open episode."""
        end = self.last_event_ns if end_ns is None else end_ns
        self.advance(end)
        for symbol_name, symbol in self._symbols.items():
            for venue in list(symbol.stale_since):
                self._end_stale(symbol_name, symbol, venue, end)
            for venue in list(symbol.halt):
                self._end_halt(symbol_name, symbol, venue, end)
            if symbol.crossing is not None:
                self._end_crossing(symbol_name, symbol, end)

    def next_deadline(self) -> int | None:
        """Event time at which :meth:`advance` has something to open (a streaming job's timer)."""
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Everything the detectors keep, as plain data (:meth:`restore` takes it back)."""
        symbols = {}
        for name, symbol in self._symbols.items():
            crossing = symbol.crossing
            symbols[name] = (
                dict(symbol.quotes),
                dict(symbol.states),
                dict(symbol.last_seen),
                dict(symbol.stale_since),
                {venue: (str(kind), start, reason) for venue, (kind, start, reason) in symbol.halt.items()},
                None
                if crossing is None
                else (crossing.start_ns, tuple(crossing.pair), crossing.max_edge, crossing.opened),
            )
        return {
            "symbols": symbols,
            "open_venues": sorted(self._open_venues),
            "venue_symbols": {venue: sorted(names) for venue, names in self._venue_symbols.items()},
            "timers": list(self._timers),
            "stale_armed": sorted(self._stale_armed),
            "timer_sequence": self._timer_sequence,
            "now_ns": self.now_ns,
            "last_event_ns": self.last_event_ns,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back a :meth:`snapshot` (replacing what is kept now)."""
        self._symbols = {}
        for name, (quotes, states, last_seen, stale_since, halt, crossing) in snapshot["symbols"].items():
            symbol = self._symbols[name] = _Symbol()
            symbol.quotes = {venue: tuple(quote) for venue, quote in quotes.items()}  # type: ignore[misc]
            symbol.states = dict(states)
            symbol.last_seen = dict(last_seen)
            symbol.stale_since = dict(stale_since)
            symbol.halt = {
                venue: (AlertType(kind), start, reason) for venue, (kind, start, reason) in halt.items()
            }
            if crossing is not None:
                start_ns, pair, max_edge, opened = crossing
                symbol.crossing = _Crossing(start_ns, CrossedPair(*pair))
                symbol.crossing.max_edge = max_edge
                symbol.crossing.opened = opened
        self._open_venues = set(snapshot["open_venues"])
        self._venue_symbols = {venue: set(names) for venue, names in snapshot["venue_symbols"].items()}
        self._timers = [tuple(timer) for timer in snapshot["timers"]]  # type: ignore[misc]
        heapq.heapify(self._timers)
        self._stale_armed = {tuple(pair) for pair in snapshot["stale_armed"]}  # type: ignore[misc]
        self._timer_sequence = snapshot["timer_sequence"]
        self.now_ns = snapshot["now_ns"]
        self.last_event_ns = snapshot["last_event_ns"]

    # ------------------------------------------------------------------ events

    def _system_event(self, event: SystemEvent) -> None:
        venue, ts_event = event.venue, event.ts_event
        if event.code == "Q":
            self._open_venues.add(venue)
            for symbol_name in self._venue_symbols.get(venue, ()):
                self._seen(venue, symbol_name, ts_event)
                self._recheck_crossing(symbol_name, ts_event)
        elif event.code in ("M", "E", "C") and venue in self._open_venues:
            self._open_venues.discard(venue)
            for symbol_name in self._venue_symbols.get(venue, ()):
                symbol = self._symbols[symbol_name]
                if venue in symbol.stale_since:
                    self._end_stale(symbol_name, symbol, venue, ts_event)
                self._recheck_crossing(symbol_name, ts_event)

    def _trading_action(self, event: TradingAction) -> None:
        venue, symbol_name, ts_event, state = event.venue, event.symbol, event.ts_event, event.state
        self._seen(venue, symbol_name, ts_event)
        symbol = self._symbols[symbol_name]
        previous = symbol.states.get(venue, TRADING)
        if state == previous:
            return
        if state == TRADING:
            del symbol.states[venue]
        else:
            symbol.states[venue] = state
        halt_type = _HALT_TYPES.get(state)
        current = symbol.halt.get(venue)
        if current is not None and current[0] is not halt_type:
            self._end_halt(symbol_name, symbol, venue, ts_event)
            current = None
        if halt_type is not None and current is None:
            reason = event.reason.strip()
            symbol.halt[venue] = (halt_type, ts_event, reason)
            self._emit(_halt_alert(halt_type, symbol_name, venue, ts_event, None, reason))
        self._recheck_crossing(symbol_name, ts_event)

    def _seen(self, venue: str, symbol_name: str, ts_event: int) -> None:
        symbol = self._symbols.get(symbol_name)
        if symbol is None:
            symbol = self._symbols[symbol_name] = _Symbol()
        known = self._venue_symbols.get(venue)
        if known is None:
            known = self._venue_symbols[venue] = set()
        known.add(symbol_name)
        if venue in symbol.stale_since:
            self._end_stale(symbol_name, symbol, venue, ts_event)
        symbol.last_seen[venue] = ts_event
        if (venue, symbol_name) not in self._stale_armed:
            self._arm_stale(venue, symbol_name, ts_event)

    def _quote(self, venue: str, symbol_name: str, quote: Quote, ts_event: int) -> None:
        symbol = self._symbols[symbol_name]
        if quote == EMPTY_QUOTE:
            symbol.quotes.pop(venue, None)
        else:
            symbol.quotes[venue] = quote
        self._recheck_crossing(symbol_name, ts_event)

    # ------------------------------------------------------------------ stale

    def _trading_here(self, symbol: _Symbol, venue: str) -> bool:
        return venue in self._open_venues and venue not in symbol.states

    def _arm_stale(self, venue: str, symbol_name: str, since_ns: int) -> None:
        if self.config.stale_after_ns <= 0:
            return
        self._stale_armed.add((venue, symbol_name))
        self._push(since_ns + self.config.stale_after_ns, "stale", venue, symbol_name)

    def _stale_timer(self, deadline: int, venue: str, symbol_name: str) -> None:
        symbol = self._symbols[symbol_name]
        last = symbol.last_seen[venue]
        if last + self.config.stale_after_ns > deadline:  # seen since the timer was set: re-arm
            self._push(last + self.config.stale_after_ns, "stale", venue, symbol_name)
            return
        self._stale_armed.discard((venue, symbol_name))  # the next message re-arms it
        if not self._trading_here(symbol, venue) or venue in symbol.stale_since:
            return
        # stale from ``last`` when the session was open and the symbol trading since then: a session
        # start or a resumption after ``last`` counts as seen, so ``last`` is when it went quiet
        symbol.stale_since[venue] = last
        self._emit(_stale_alert(symbol_name, venue, last, None))

    def _end_stale(self, symbol_name: str, symbol: _Symbol, venue: str, end_ns: int) -> None:
        start = symbol.stale_since.pop(venue)
        self._emit(_stale_alert(symbol_name, venue, start, end_ns))

    # ------------------------------------------------------------------ halts

    def _end_halt(self, symbol_name: str, symbol: _Symbol, venue: str, end_ns: int) -> None:
        halt_type, start, reason = symbol.halt.pop(venue)
        self._emit(_halt_alert(halt_type, symbol_name, venue, start, end_ns, reason))

    # ------------------------------------------------------------------ arbitrage

    def _recheck_crossing(self, symbol_name: str, ts_event: int) -> None:
        symbol = self._symbols[symbol_name]
        crossing = symbol.crossing
        if not symbol.quotes and crossing is None:
            return
        eligible = [venue for venue in symbol.quotes if self._trading_here(symbol, venue)]
        pair = best_pair(symbol.quotes, eligible) if len(eligible) > 1 else None
        if pair is None:
            if crossing is not None:
                self._end_crossing(symbol_name, symbol, ts_event)
        elif crossing is None:
            symbol.crossing = _Crossing(ts_event, pair)
            self._push(ts_event + self.config.arbitrage_min_ns, "crossing", "", symbol_name)
        elif pair.edge > crossing.max_edge:
            crossing.max_edge = pair.edge

    def _crossing_timer(self, deadline: int, symbol_name: str) -> None:
        crossing = self._symbols[symbol_name].crossing
        if (
            crossing is None
            or crossing.opened
            or crossing.start_ns + self.config.arbitrage_min_ns != deadline
        ):
            return
        crossing.opened = True
        self._emit(_crossing_alert(symbol_name, crossing, None))

    def _end_crossing(self, symbol_name: str, symbol: _Symbol, end_ns: int) -> None:
        crossing = symbol.crossing
        assert crossing is not None
        symbol.crossing = None
        if crossing.opened or end_ns - crossing.start_ns >= self.config.arbitrage_min_ns:
            self._emit(_crossing_alert(symbol_name, crossing, end_ns))

    # ------------------------------------------------------------------ timers

    def _push(self, deadline: int, kind: str, venue: str, symbol_name: str) -> None:
        self._timer_sequence += 1
        heapq.heappush(self._timers, (deadline, self._timer_sequence, kind, venue, symbol_name))


def _stale_alert(symbol: str, venue: str, start_ns: int, end_ns: int | None) -> Alert:
    return Alert(AlertType.STALE, symbol, (venue,), start_ns, end_ns, Severity.WARNING, {})


def _halt_alert(
    halt_type: AlertType, symbol: str, venue: str, start_ns: int, end_ns: int | None, reason: str
) -> Alert:
    return Alert(halt_type, symbol, (venue,), start_ns, end_ns, Severity.WARNING, {"reason": reason})


def _crossing_alert(symbol: str, crossing: _Crossing, end_ns: int | None) -> Alert:
    pair = crossing.pair
    details: dict[str, Any] = {
        "kind": "locked" if pair.locked else "crossed",
        "bid": pair.bid,
        "ask": pair.ask,
        "bid_shares": pair.bid_shares,
        "ask_shares": pair.ask_shares,
        "edge": pair.edge,
        "max_edge": crossing.max_edge,
    }
    severity = Severity.WARNING if pair.locked else Severity.CRITICAL
    return Alert(
        AlertType.ARBITRAGE,
        symbol,
        (pair.bid_venue, pair.ask_venue),
        crossing.start_ns,
        end_ns,
        severity,
        details,
    )


def final_alerts(alerts: list[Alert]) -> list[Alert]:
    """The last version of each episode, sorted by start, type, symbol and venues."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.alert_id] = alert
    return sorted(latest.values(), key=Alert.sort_key)
