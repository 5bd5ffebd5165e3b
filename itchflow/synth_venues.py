"""Deterministic multi-venue synthetic ITCH 5.0 feeds with planted cross-venue events and their truth.

``itchflow synth --venues NASDAQ,BX,PSX --symbols 20 --messages 300000 --seed 1 --date 2020-01-02
--plant crossings=6,stale=3,halts=2,pauses=2 -o DIR`` writes one feed per venue,
``DIR/<MMDDYYYY>.<VENUE>_ITCH50`` (standard framing, like :func:`itchflow.synth.write`), and
``DIR/truth.json``: the alerts a cross-venue detector should raise on those feeds.

Every feed lists the same symbols (``ticker(i)``, stock locates ``1..N``) and has the single-venue header
(``O``, ``R`` and ``H`` ``T`` per symbol, ``S``, ``Q`` at 09:30:00) and footer (``M`` at 16:00, ``E``,
``C``), each timestamp ``i`` ns later on the ``i``-th venue (0-based); there are no opening or closing
crosses. The body is one global timeline from 09:30 to just before 16:00 on which every message of every
venue has its own timestamp: the whole day is strictly increasing across all venues.

The body (``--messages``): the timeline runs exactly ``--messages`` *steps*, each one message: a venue
(uniformly), a symbol (Zipf weights, ``--zipf``) and an action (``MESSAGE_MIX``, breaks included) drawn
as in the single-venue body. The body of all the files together also holds, on top of the steps:

* the planted events' own messages: 2 per crossing (the add and the delete; rarely, just before, the
  deletes that make room for it, see below), 1 per stale window (the message that ends it) and 2 per
  venue per halt or pause (the ``H`` messages);
* keepalive top-ups: a message for a (venue, symbol) pair whose next step would come too late (none
  when the steps are dense enough, which ``--messages`` is checked to allow), and before a planted
  crossing, one for each venue whose quiet would otherwise outlast the keepalive across the crossing.

Each symbol has one fair value (its mid, in cents), shared by every venue and random-walking as in the
single-venue feed; every venue places its orders around it. The consolidated book is never locked or
crossed outside the planted crossings: a new bid (add or replace) stays strictly below the lowest best
ask of all venues, a new ask strictly above their highest best bid. Executions take the oldest order of
that venue's best level; prints (``E``, ``C``, ``P``) and breaks are as in the single-venue feed. Order
reference and match numbers are unique across all the venues.

Keepalive (``--keepalive-ms``, default 20,000): from a venue's ``Q`` (start of market hours) to its ``M``,
no (venue, symbol) pair goes that long without a message of that symbol on that venue (when a pair has
been quiet for 80 % of it, the next step goes to that pair; at 95 % a top-up message is inserted), except
inside the planted windows below.

Planted events (``--plant name=count,...``, every count 0 by default), all between 10:00 and 15:30, each
in its own time slot (at least the keepalive plus a second apart; each symbol taken in a shuffled order,
so symbols are distinct while there are enough of them):

* ``crossings``: at ``t0`` a venue ``X`` adds one order of 100 shares that locks or crosses the
  consolidated book against another venue but not ``X``'s own book: a bid at the lowest ask of the
  other venues plus ``k`` cents, or an ask at their highest bid minus ``k`` cents, ``k`` in 0..3 (the
  venue, side and ``k`` drawn among the feasible ones). When the planned symbol has no feasible one (every
  venue shows the same best prices), up to 8 other symbols are tried; when none has one either, the
  venue and side of the planned symbol needing the fewest deletes of the venue's own orders in the way
  (at a drawn ``k``) send those deletes just before ``t0``. ``X`` deletes its order at ``t1 = t0 + d``,
  ``d`` in 300..3,000 ms; in between no other message of the symbol on any venue. Before ``t0``, a venue
  whose last message of the symbol would be more than the keepalive old at ``t1`` gets one.
* ``stale``: one (venue, symbol) pair gets no message from its last one before ``t_a`` until the one
  sent at ``t_a + D``, ``D`` in 120..300 s; the other venues go on quoting the symbol.
* ``halts``: every venue sends ``H`` (state ``H``, reason ``T1``) for the symbol at ``t_h``, then ``H``
  (state ``T``) at ``t_r``, ``t_r - t_h`` in 60..600 s; nothing else of the symbol in between.
* ``pauses``: the same with state ``P`` (LULD pause, reason ``LUDP``), 300..600 s.

``truth.json``::

    {"date": "2020-01-02", "venues": [...], "symbols": [...], "seed": 1, "keepalive_ms": 20000,
     "files": {"NASDAQ": "01022020.NASDAQ_ITCH50", ...}, "alerts": [...]}

with the alerts sorted by ``(start_ns, type, symbol, venues)``, times in epoch nanoseconds
(``midnight_epoch_ns(date)`` + ITCH timestamp):

* ``{"type": "arbitrage", "symbol", "venues": [bid_venue, ask_venue], "start_ns": t0, "end_ns": t1,
  "details": {"kind": "locked"|"crossed", "bid", "ask", "bid_shares", "ask_shares", "edge"}}``: prices
  in ITCH ticks, shares resting at each venue's best level at ``t0``, ``edge = (bid - ask) *
  min(bid_shares, ask_shares)``; the pair maximizes ``bid - ask``, then ``min(bid_shares,
  ask_shares)``, then takes the smaller ``(bid_venue, ask_venue)`` names;
* ``{"type": "stale", "symbol", "venues": [V], "start_ns", "end_ns", "details": {}}``: the last message
  of the symbol on ``V`` before the quiet and the first one after it;
* ``{"type": "halt" | "luld_pause", "symbol", "venues": [V], "start_ns": t_h, "end_ns": t_r,
  "details": {"reason": "T1" | "LUDP"}}``: one per venue, at that venue's ``H`` messages.

The same arguments always give the same bytes (``random.Random(seed)`` is the only source of randomness).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import math
import random
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from itchflow.errors import UserError
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.synth import (
    _ACTIONS,
    _ADD,
    _BATCH,
    MARKET_CLOSE_NS,
    MARKET_OPEN_NS,
    MAX_SYMBOLS,
    MESSAGE_MIX,
    MID_MOVE_PROBABILITY,
    NANOS_PER_SECOND,
    TICKS_PER_CENT,
    _BookActions,
    _cumulative,
    _footer_messages,
    _header_messages,
    _open_output,
    _progress_bar,
    _SymbolBook,
    _trading_action,
    ticker,
)

PLANT_NAMES = ("crossings", "stale", "halts", "pauses")
DEFAULT_DATE = date(2020, 1, 2)
DEFAULT_KEEPALIVE_MS = 20_000
MIN_KEEPALIVE_MS = 5_000  # a crossing (up to 3 s) must fit well inside it
MAX_KEEPALIVE_MS = 3_600_000
MAX_VENUES = 32
TRUTH_FILE = "truth.json"

_MS = 1_000_000
PLANT_START_NS = 10 * 3600 * NANOS_PER_SECOND  # 10:00
PLANT_END_NS = (15 * 3600 + 30 * 60) * NANOS_PER_SECOND  # 15:30
#: (lowest, highest) duration of each planted event, in ns
PLANT_DURATIONS_NS: dict[str, tuple[int, int]] = {
    "crossings": (300 * _MS, 3_000 * _MS),
    "stale": (120 * NANOS_PER_SECOND, 300 * NANOS_PER_SECOND),
    "halts": (60 * NANOS_PER_SECOND, 600 * NANOS_PER_SECOND),
    "pauses": (300 * NANOS_PER_SECOND, 600 * NANOS_PER_SECOND),
}
CROSSING_SHARES = 100
MAX_CROSSING_CENTS = 3  # a crossing order goes 0..3 cents through the other venues' best price
HALT_REASON = b"T1  "
PAUSE_REASON = b"LUDP"
SOFT_KEEPALIVE = 0.80  # a pair quiet this share of the keepalive gets the next step
HARD_KEEPALIVE = 0.95  # ... and a top-up message of its own at this share
CROSSING_MARGIN_NS = 500 * _MS  # a pair's hard keepalive deadline stays this far past a crossing's end
CROSSING_FALLBACKS = 8  # other symbols tried when the planned one has no room for a crossing

_VENUE_NAME = re.compile(r"[A-Za-z0-9]{1,16}")
_BODY_TYPES = "AFECXDUPBH"
_NEVER = 1 << 62


@dataclass(frozen=True, slots=True)
class VenuesSummary:
    """What :func:`write` produced."""

    directory: Path
    files: dict[str, Path]
    truth_path: Path
    steps: int
    messages: int  # every message of every file
    messages_by_venue: dict[str, int]
    planted_messages: int
    keepalive_messages: int
    bytes_written: int
    seconds: float
    message_counts: dict[str, int]  # body messages of every file, by type
    alert_counts: dict[str, int]
    plants: dict[str, int]  # the events planted, by plant name (as asked unless a crossing found no room)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("inf")

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def parse_venues(text: str) -> list[str]:
    """``NASDAQ,BX,PSX`` -> ``["NASDAQ", "BX", "PSX"]``: 2..32 distinct names of 1-16 letters or digits."""
    venues = [part.strip() for part in text.split(",")]
    for venue in venues:
        if not _VENUE_NAME.fullmatch(venue):
            raise UserError(
                f"--venues: {venue!r} is not a venue name (1 to 16 letters or digits), in {text!r}"
            )
    seen: dict[str, str] = {}  # upper case -> the name as first given
    for venue in venues:
        earlier = seen.get(venue.upper())
        if earlier == venue:
            raise UserError(f"--venues: {venue} is listed twice in {text!r}")
        if earlier is not None:
            raise UserError(
                f"--venues: {earlier} and {venue} are the same venue (file names ignore case on some disks), "
                f"in {text!r}"
            )
        seen[venue.upper()] = venue
    if not 2 <= len(venues) <= MAX_VENUES:
        raise UserError(f"--venues needs 2 to {MAX_VENUES} venues, got {len(venues)} ({text!r})")
    return venues


def parse_plants(text: str) -> dict[str, int]:
    """``crossings=6,halts=2`` -> a count per name of ``PLANT_NAMES`` (0 when not listed)."""
    plants = dict.fromkeys(PLANT_NAMES, 0)
    given: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, count = (part.strip() for part in item.partition("="))
        if name not in plants:
            raise UserError(f"--plant: unknown event {name!r}; known: {', '.join(PLANT_NAMES)}")
        if not equals or not re.fullmatch(r"[+-]?\d+", count):
            raise UserError(f"--plant: {item!r} is not {name}=COUNT with a whole number")
        if name in given:
            raise UserError(f"--plant: {name} is given twice")
        if int(count) < 0:
            raise UserError(f"--plant: the count of {name} must not be negative, got {count}")
        given.add(name)
        plants[name] = int(count)
    return plants


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def feed_file_name(trading_date: date, venue: str) -> str:
    """``01022020.NASDAQ_ITCH50``: the trading date as MMDDYYYY, as Nasdaq names its daily files."""
    return f"{trading_date.month:02d}{trading_date.day:02d}{trading_date.year:04d}.{venue}_ITCH50"


def minimum_messages(venues: int, symbols: int, keepalive_ms: int) -> int:
    """The fewest ``--messages`` that keep every (venue, symbol) pair alive through the session."""
    session = MARKET_CLOSE_NS - MARKET_OPEN_NS
    return venues * symbols * (session // (keepalive_ms * _MS) + 1)


def write(
    directory: str | Path,
    venues: list[str],
    symbols: int,
    messages: int,
    seed: int,
    *,
    trading_date: date = DEFAULT_DATE,
    plants: dict[str, int] | None = None,
    keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
    zipf_exponent: float = 1.0,
    progress: bool = False,
) -> VenuesSummary:
    """Write one feed per venue and ``truth.json`` into ``directory`` (created if missing)."""
    directory = Path(directory)
    generator = _MultiVenueGenerator(
        venues, symbols, messages, seed, plants=plants, keepalive_ms=keepalive_ms, zipf_exponent=zipf_exponent
    )
    if directory.exists() and not directory.is_dir():
        raise UserError(f"-o {directory}: not a directory (with --venues, -o names the output directory)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {directory}: {exc.strerror}") from exc
    names = {venue: feed_file_name(trading_date, venue) for venue in venues}
    paths = {venue: directory / name for venue, name in names.items()}
    started = time.perf_counter()
    bytes_written = 0
    counts_by_venue = dict.fromkeys(venues, 0)
    bar = _progress_bar(messages) if progress else None
    collector_was_enabled = gc.isenabled()
    gc.disable()  # no reference cycles in the generator's state: the collector would only rescan it
    try:
        with ExitStack() as stack:
            outputs = [stack.enter_context(_open_output(paths[venue])) for venue in venues]
            steps_reported = 0
            for batches in generator.framed_batches():
                for venue, output, batch in zip(venues, outputs, batches, strict=True):
                    chunk = b"".join(batch)
                    output.write(chunk)
                    bytes_written += len(chunk)
                    counts_by_venue[venue] += len(batch)
                if bar is not None:
                    bar.update(generator.steps_done - steps_reported)
                    steps_reported = generator.steps_done
    finally:
        if collector_was_enabled:
            gc.enable()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    truth = generator.truth(trading_date, seed, names)
    truth_path = directory / TRUTH_FILE
    truth_path.write_text(_truth_json(truth), encoding="utf-8")
    alert_counts: dict[str, int] = {}
    for alert in truth["alerts"]:
        alert_counts[alert["type"]] = alert_counts.get(alert["type"], 0) + 1
    return VenuesSummary(
        directory=directory,
        files=paths,
        truth_path=truth_path,
        steps=messages,
        messages=sum(counts_by_venue.values()),
        messages_by_venue=counts_by_venue,
        planted_messages=generator.planted_messages,
        keepalive_messages=generator.keepalive_messages,
        bytes_written=bytes_written,
        seconds=seconds,
        message_counts={kind: count for kind, count in generator.counts.items() if count},
        alert_counts=dict(sorted(alert_counts.items())),
        plants=dict(generator.planted),
    )


def _truth_json(truth: dict[str, Any]) -> str:
    """The truth with one alert per line."""
    head = {key: value for key, value in truth.items() if key != "alerts"}
    lines = [json.dumps(head)[:-1] + ', "alerts": [']
    alerts = [json.dumps(alert) for alert in truth["alerts"]]
    lines.extend(f"  {alert}," for alert in alerts[:-1])
    if alerts:
        lines.append(f"  {alerts[-1]}")
    lines.append("]}")
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class _Plant:
    """One planted event: scheduled at ``start_ns`` (nominal), lasting ``duration_ns``."""

    kind: str  # a name of PLANT_NAMES
    start_ns: int
    duration_ns: int
    symbol: int  # 0-based; a crossing may move to another symbol
    venue: int  # stale only
    # filled in while it runs
    started_ns: int = 0
    reference: int = 0
    pair: int = 0
    alert_details: dict[str, Any] | None = None
    alert_venues: tuple[int, int] = (0, 0)


class _MultiVenueGenerator(_BookActions):
    """The global timeline of every venue; :meth:`framed_batches` yields per-venue lists of framed messages.

    Books are indexed by *pair* ``venue * symbols + symbol`` (0-based). Keepalive: ``last[pair]`` is the
    time of the pair's latest message (its venue's ``Q`` before any); a heap holds one entry
    ``(last, pair, generation)`` per pair not blocked by a planted window, refreshed lazily when it comes
    to the top with an older time; blocking a pair bumps its generation, which drops its entry.
    """

    def __init__(
        self,
        venues: list[str],
        symbols: int,
        messages: int,
        seed: int,
        *,
        plants: dict[str, int] | None = None,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
        zipf_exponent: float = 1.0,
    ) -> None:
        plants = dict.fromkeys(PLANT_NAMES, 0) | (plants or {})
        _validate(venues, symbols, messages, plants, keepalive_ms, zipf_exponent)
        super().__init__(random.Random(seed))
        self.venues = venues
        self.symbols = symbols
        self.steps = messages
        self.steps_done = 0
        count = len(venues)
        references = [self._reference_cents() for _ in range(symbols)]
        stocks = [ticker(index).ljust(8).encode("ascii") for index in range(symbols)]
        self.books = [
            _SymbolBook(symbol + 1, stocks[symbol], references[symbol])
            for _venue in range(count)
            for symbol in range(symbols)
        ]
        # by stock locate (1-based): the books of that symbol, one per venue
        self.siblings: list[list[_SymbolBook]] = [[]] + [
            [self.books[venue * symbols + symbol] for venue in range(count)] for symbol in range(symbols)
        ]
        self.symbol_cum_weights = _cumulative([1.0 / (rank + 1) ** zipf_exponent for rank in range(symbols)])
        self.action_cum_weights = _cumulative([MESSAGE_MIX[action] for action in _ACTIONS])
        keepalive_ns = keepalive_ms * _MS
        self.keepalive_ns = keepalive_ns
        self.soft_ns = int(keepalive_ns * SOFT_KEEPALIVE)
        self.hard_ns = int(keepalive_ns * HARD_KEEPALIVE)
        pairs = count * symbols
        self.last = [MARKET_OPEN_NS + pair // symbols for pair in range(pairs)]
        self.blocked = [False] * pairs
        self.generation = [0] * pairs
        self.heap = [(self.last[pair], pair, 0) for pair in range(pairs)]
        heapq.heapify(self.heap)
        self.last_emitted = MARKET_OPEN_NS + count - 1  # the last venue's Q
        self.out: list[list[bytes]] = [[] for _ in venues]
        self.counts = dict.fromkeys(_BODY_TYPES, 0)
        self.planted_messages = 0
        self.keepalive_messages = 0
        self.planted = dict.fromkeys(PLANT_NAMES, 0)
        self.alerts: list[tuple[int, str, int, tuple[int, ...], int, dict[str, Any]]] = []
        self.planned: list[tuple[int, int, str, _Plant]] = []
        self._sequence = 0
        scheduled = self._schedule(plants)
        self.plant_symbols = {plant.symbol for plant in scheduled}
        for plant in scheduled:
            self._plan(plant.start_ns, "start", plant)
        self.next_due = self._next_due(self._oldest())

    # ------------------------------------------------------------------ planning

    def _schedule(self, plants: dict[str, int]) -> list[_Plant]:
        """Every planted event in its own slot of 10:00-15:30, in shuffled order, at least the keepalive plus
        a second apart; symbols in a shuffled order, so distinct while there are enough."""
        rng = self.rng
        kinds = [name for name in PLANT_NAMES for _ in range(plants[name])]
        if not kinds:
            return []
        rng.shuffle(kinds)
        durations = [rng.randint(*PLANT_DURATIONS_NS[kind]) for kind in kinds]
        gap = self.keepalive_ns + NANOS_PER_SECOND
        free = PLANT_END_NS - PLANT_START_NS - sum(durations) - gap * (len(kinds) - 1)
        cuts = sorted(rng.randint(0, free) for _ in kinds)
        order = list(range(self.symbols))
        rng.shuffle(order)
        scheduled = []
        elapsed = 0
        for index, (kind, duration, cut) in enumerate(zip(kinds, durations, cuts, strict=True)):
            venue = rng.randrange(len(self.venues)) if kind == "stale" else 0
            start = PLANT_START_NS + cut + elapsed + index * gap
            scheduled.append(_Plant(kind, start, duration, order[index % self.symbols], venue))
            elapsed += duration
        return scheduled

    def _plan(self, timestamp: int, step: str, plant: _Plant) -> None:
        self._sequence += 1
        heapq.heappush(self.planned, (timestamp, self._sequence, step, plant))

    # ------------------------------------------------------------------ the timeline

    def framed_batches(self) -> Iterator[list[list[bytes]]]:
        for venue in range(len(self.venues)):
            self.out[venue].extend(_header_messages(self._venue_books(venue), venue))
        yield from self._body()
        self._due(MARKET_CLOSE_NS - 1)  # planted events and keepalive top-ups left after the last step
        assert not self.planned, "a planted event was left unfinished"
        for venue in range(len(self.venues)):
            self.out[venue].extend(_footer_messages(venue))
        yield self._take()

    def _venue_books(self, venue: int) -> list[_SymbolBook]:
        return self.books[venue * self.symbols : (venue + 1) * self.symbols]

    def _take(self) -> list[list[bytes]]:
        out = self.out
        self.out = [[] for _ in out]
        return out

    def _body(self) -> Iterator[list[list[bytes]]]:
        rng = self.rng
        random_ = rng.random
        choices = rng.choices
        books = self.books
        blocked = self.blocked
        last = self.last
        counts = self.counts
        act = self._act
        move = self._move_fair
        symbols = self.symbols
        venue_count = len(self.venues)
        symbol_indices = range(symbols)
        venue_indices = range(venue_count)
        symbol_weights = self.symbol_cum_weights
        action_weights = self.action_cum_weights
        total = self.steps
        start = self.last_emitted
        # Integer gaps uniform in [0, max_gap) (as the single-venue body): their sum aims four standard
        # deviations short of the close; past a cap that leaves a nanosecond for every message that could
        # still come, timestamps only move by the one nanosecond that keeps them strictly increasing.
        session = MARKET_CLOSE_NS - 1 - start
        max_gap = max(1, int(session / (total / 2 + 4 * math.sqrt(total / 12) + 1)))
        cap = MARKET_CLOSE_NS - 1 - total - 4 * len(books) - 10_000
        timestamp = start
        done = 0
        while done < total:
            size = min(_BATCH, total - done)
            venues = choices(venue_indices, k=size)
            picks = choices(symbol_indices, cum_weights=symbol_weights, k=size)
            actions = choices(_ACTIONS, cum_weights=action_weights, k=size)
            outs = self.out
            last_emitted = self.last_emitted
            next_due = self.next_due
            for venue, symbol, action in zip(venues, picks, actions, strict=True):
                timestamp += int(random_() * max_gap)
                if timestamp > cap:
                    timestamp = cap
                if timestamp <= last_emitted:
                    timestamp = last_emitted + 1
                pair = venue * symbols + symbol
                if timestamp >= next_due:
                    self.last_emitted = last_emitted
                    forced = self._due(timestamp)
                    next_due = self.next_due
                    last_emitted = self.last_emitted
                    if timestamp <= last_emitted:
                        timestamp = last_emitted + 1
                    if forced >= 0:
                        pair = forced
                while blocked[pair]:  # inside a planted window: draw again
                    pair = (
                        int(random_() * venue_count) * symbols
                        + choices(symbol_indices, cum_weights=symbol_weights)[0]
                    )
                book = books[pair]
                if random_() < MID_MOVE_PROBABILITY:
                    move(book.locate)
                message_type, framed = act(book, action, timestamp)
                counts[message_type] += 1
                outs[pair // symbols].append(framed)
                last[pair] = timestamp
                last_emitted = timestamp
            self.last_emitted = last_emitted
            done += size
            self.steps_done = done
            yield self._take()

    def _emit(self, pair: int, timestamp: int, message_type: str, framed: bytes) -> None:
        if timestamp >= MARKET_CLOSE_NS:  # pragma: no cover - the cap leaves room for every message
            raise RuntimeError("synthetic timeline ran past the close")
        self.out[pair // self.symbols].append(framed)
        self.last[pair] = timestamp
        self.last_emitted = timestamp
        self.counts[message_type] += 1

    def _emit_random(self, pair: int, nominal: int) -> int:
        """One message of a random action on ``pair`` at ``nominal`` (or just after the latest message)."""
        rng = self.rng
        timestamp = max(nominal, self.last_emitted + 1)
        book = self.books[pair]
        if rng.random() < MID_MOVE_PROBABILITY:
            self._move_fair(book.locate)
        action = rng.choices(_ACTIONS, cum_weights=self.action_cum_weights)[0]
        message_type, framed = self._act(book, action, timestamp)
        self._emit(pair, timestamp, message_type, framed)
        return timestamp

    def _move_fair(self, locate: int) -> None:
        """Move the symbol's one fair value (kept by its first venue's book) and share it with every venue."""
        siblings = self.siblings[locate]
        self._move_mid(siblings[0])
        mid = siblings[0].mid_cents
        for book in siblings:
            book.mid_cents = mid

    # ------------------------------------------------------------------ consolidated price bounds

    def _ask_bound(self, book: _SymbolBook) -> int:
        """The lowest best ask of every venue (0: none): a new bid stays strictly below it."""
        lowest = 0
        for other in self.siblings[book.locate]:
            ask = other.best_ask
            if ask and (lowest == 0 or ask < lowest):
                lowest = ask
        return lowest

    def _bid_bound(self, book: _SymbolBook) -> int:
        """The highest best bid of every venue (0: none): a new ask stays strictly above it."""
        highest = 0
        for other in self.siblings[book.locate]:
            if other.best_bid > highest:
                highest = other.best_bid
        return highest

    # ------------------------------------------------------------------ keepalive and planted events

    def _oldest(self) -> tuple[int, int, int] | None:
        """The heap entry of the pair quiet the longest (entries of blocked pairs dropped, old times
        refreshed), or None when every pair is blocked."""
        heap = self.heap
        last = self.last
        generation = self.generation
        while heap:
            entry = heap[0]
            pair = entry[1]
            if entry[2] != generation[pair]:
                heapq.heappop(heap)
            elif last[pair] != entry[0]:
                heapq.heapreplace(heap, (last[pair], pair, entry[2]))
            else:
                return entry
        return None

    def _next_due(self, oldest: tuple[int, int, int] | None) -> int:
        """When the next step must look at planted steps or keepalive (``oldest``: the heap's top)."""
        soft = oldest[0] + self.soft_ns if oldest is not None else _NEVER
        planned = self.planned[0][0] if self.planned else _NEVER
        return min(soft, planned)

    def _due(self, timestamp: int) -> int:
        """Run, in time order, the planted steps and keepalive top-ups due by ``timestamp``; return the pair
        the next step must go to (-1: any) and update ``next_due``."""
        planned = self.planned
        while True:
            oldest = self._oldest()
            hard = oldest[0] + self.hard_ns if oldest is not None else _NEVER
            plan = planned[0][0] if planned else _NEVER
            if plan <= hard:
                if plan > timestamp:
                    break
                _, _, step, plant = heapq.heappop(planned)
                self._run_plant(step, plant, plan)
            else:
                if hard > timestamp:
                    break
                assert oldest is not None
                self._emit_random(oldest[1], hard)
                self.keepalive_messages += 1
        forced = -1
        if oldest is not None and oldest[0] + self.soft_ns <= timestamp:
            # the step goes to this pair, at the time the caller will give it: its entry moves there now
            forced = oldest[1]
            heapq.heapreplace(self.heap, (max(timestamp, self.last_emitted + 1), forced, oldest[2]))
            oldest = self._oldest()
        self.next_due = self._next_due(oldest)
        return forced

    def _block(self, pair: int) -> None:
        self.blocked[pair] = True
        self.generation[pair] += 1

    def _unblock(self, pair: int) -> None:
        self.blocked[pair] = False
        self.generation[pair] += 1
        heapq.heappush(self.heap, (self.last[pair], pair, self.generation[pair]))

    def _symbol_pairs(self, symbol: int) -> range:
        return range(symbol, len(self.books), self.symbols)

    def _alert(
        self, kind: str, symbol: int, venues: tuple[int, ...], start: int, end: int, details: dict[str, Any]
    ) -> None:
        self.alerts.append((start, kind, symbol, venues, end, details))

    def _run_plant(self, step: str, plant: _Plant, nominal: int) -> None:
        kind = plant.kind
        if kind == "crossings":
            if step == "start":
                self._start_crossing(plant, nominal)
            else:
                self._end_crossing(plant, nominal)
        elif kind == "stale":
            if step == "start":
                self._start_stale(plant)
            else:
                self._end_stale(plant, nominal)
        elif step == "start":
            self._start_halt(plant, nominal)
        else:
            self._end_halt(plant, nominal)

    # crossings

    def _start_crossing(self, plant: _Plant, nominal: int) -> None:
        rng = self.rng
        candidates = self._crossing_candidates(plant.symbol)
        until = nominal + plant.duration_ns + CROSSING_MARGIN_NS
        for symbol in candidates:
            self._refresh_before_crossing(symbol, until)
            options = self._crossing_options(symbol)
            if options:
                venue, is_bid, price = options[int(rng.random() * len(options))]
                break
        else:  # every venue has the same best prices: one clears its own orders out of the way first
            for symbol in candidates:
                option = self._clear_for_crossing(symbol)
                if option is not None:
                    venue, is_bid, price = option
                    break
            else:
                return  # no book has a price to lock against: the crossing is not planted (reported)
        pair = venue * self.symbols + symbol
        book = self.books[pair]
        timestamp = max(nominal, self.last_emitted + 1)
        reference = self.next_reference
        self.next_reference = reference + 1
        book.add(reference, is_bid, price, CROSSING_SHARES)
        self._emit(
            pair,
            timestamp,
            "A",
            _ADD.pack(
                36, b"A", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, reference,
                b"B" if is_bid else b"S", CROSSING_SHARES, book.stock, price * TICKS_PER_CENT,
            ),
        )  # fmt: skip
        self.planted_messages += 1
        for other in self._symbol_pairs(symbol):
            self._block(other)
        plant.symbol = symbol
        plant.pair = pair
        plant.reference = reference
        plant.started_ns = timestamp
        plant.alert_venues, plant.alert_details = self._arbitrage(symbol)
        self._plan(timestamp + plant.duration_ns, "end", plant)

    def _crossing_candidates(self, planned: int) -> list[int]:
        """The planned symbol, then up to ``CROSSING_FALLBACKS`` others in a random order, first those no
        planted event uses; none in a planted window."""
        others = [symbol for symbol in range(self.symbols) if symbol != planned]
        self.rng.shuffle(others)
        others.sort(key=lambda symbol: symbol in self.plant_symbols)
        return [
            symbol
            for symbol in [planned, *others[:CROSSING_FALLBACKS]]
            if not any(self.blocked[pair] for pair in self._symbol_pairs(symbol))
        ]

    def _clear_for_crossing(self, symbol: int) -> tuple[int, bool, int] | None:
        """Make room for a crossing of ``symbol`` by ``k`` cents (drawn): the venue and side needing the fewest
        deletes of the venue's own orders in the way send them (``D``); its (venue, is_bid, price), or None
        when no venue has a price to lock against."""
        rng = self.rng
        cents = int(rng.random() * (MAX_CROSSING_CENTS + 1))
        siblings = self.siblings[symbol + 1]
        best: tuple[int, int, bool, int, list[int]] | None = None
        for venue, book in enumerate(siblings):
            asks = [other.best_ask for other in siblings if other is not book and other.best_ask]
            bids = [other.best_bid for other in siblings if other is not book and other.best_bid]
            sides = []
            if asks:  # a bid at the others' lowest ask + k: the venue's own asks up to it must go
                price = min(asks) + cents
                sides.append(
                    (True, price, [ref for at, level in book.asks.items() if at <= price for ref in level])
                )
            if bids and max(bids) - cents >= 1:  # an ask at the others' highest bid - k
                price = max(bids) - cents
                sides.append(
                    (False, price, [ref for at, level in book.bids.items() if at >= price for ref in level])
                )
            for is_bid, price, doomed in sides:
                if best is None or len(doomed) < len(best[4]):
                    best = (venue, venue * self.symbols + symbol, is_bid, price, doomed)
        if best is None:
            return None
        venue, pair, is_bid, price, doomed = best
        book = self.books[pair]
        for reference in doomed:
            timestamp = self.last_emitted + 1
            message_type, framed = self._delete_reference(book, reference, timestamp)
            self._emit(pair, timestamp, message_type, framed)
        self.planted_messages += len(doomed)
        return venue, is_bid, price

    def _refresh_before_crossing(self, symbol: int, until: int) -> None:
        """A message of ``symbol`` on every venue whose keepalive deadline would fall before ``until``."""
        for pair in self._symbol_pairs(symbol):
            if self.last[pair] + self.hard_ns < until:
                self._emit_random(pair, self.last_emitted + 1)
                self.keepalive_messages += 1

    def _crossing_options(self, symbol: int) -> list[tuple[int, bool, int]]:
        """Every (venue, is_bid, price in cents) that locks or crosses another venue's best price by 0..3 cents
        without locking or crossing the venue's own book."""
        siblings = self.siblings[symbol + 1]
        options = []
        for venue, book in enumerate(siblings):
            asks = [other.best_ask for other in siblings if other is not book and other.best_ask]
            bids = [other.best_bid for other in siblings if other is not book and other.best_bid]
            for cents in range(MAX_CROSSING_CENTS + 1):
                if asks:
                    price = min(asks) + cents
                    if not book.best_ask or price < book.best_ask:
                        options.append((venue, True, price))
                if bids:
                    price = max(bids) - cents
                    if price >= 1 and price > book.best_bid:
                        options.append((venue, False, price))
        return options

    def _arbitrage(self, symbol: int) -> tuple[tuple[int, int], dict[str, Any]]:
        """The (bid venue, ask venue) pair the detector reports, and its details, for the current books."""
        siblings = self.siblings[symbol + 1]
        names = self.venues
        best: tuple[Any, ...] | None = None
        for bid_venue, bid_book in enumerate(siblings):
            if not bid_book.best_bid:
                continue
            bid_shares = _level_shares(bid_book, bid_book.bids[bid_book.best_bid])
            for ask_venue, ask_book in enumerate(siblings):
                if ask_venue == bid_venue or not ask_book.best_ask:
                    continue
                ask_shares = _level_shares(ask_book, ask_book.asks[ask_book.best_ask])
                key = (
                    ask_book.best_ask - bid_book.best_bid,
                    -min(bid_shares, ask_shares),
                    (names[bid_venue], names[ask_venue]),
                )
                if best is None or key < best[0]:
                    best = (
                        key,
                        bid_venue,
                        ask_venue,
                        bid_book.best_bid,
                        ask_book.best_ask,
                        bid_shares,
                        ask_shares,
                    )
        assert best is not None and best[3] >= best[4], "a planted crossing must lock or cross"
        _, bid_venue, ask_venue, bid, ask, bid_shares, ask_shares = best
        details = {
            "kind": "locked" if bid == ask else "crossed",
            "bid": bid * TICKS_PER_CENT,
            "ask": ask * TICKS_PER_CENT,
            "bid_shares": bid_shares,
            "ask_shares": ask_shares,
            "edge": (bid - ask) * TICKS_PER_CENT * min(bid_shares, ask_shares),
        }
        return (bid_venue, ask_venue), details

    def _end_crossing(self, plant: _Plant, nominal: int) -> None:
        timestamp = max(nominal, self.last_emitted + 1)
        book = self.books[plant.pair]
        message_type, framed = self._delete_reference(book, plant.reference, timestamp)
        self._emit(plant.pair, timestamp, message_type, framed)
        self.planted_messages += 1
        for pair in self._symbol_pairs(plant.symbol):
            self._unblock(pair)
        assert plant.alert_details is not None
        self._alert(
            "arbitrage", plant.symbol, plant.alert_venues, plant.started_ns, timestamp, plant.alert_details
        )
        self.planted["crossings"] += 1

    # stale quotes

    def _start_stale(self, plant: _Plant) -> None:
        pair = plant.venue * self.symbols + plant.symbol
        plant.pair = pair
        plant.started_ns = self.last[pair]  # the quiet starts at the pair's latest message
        self._block(pair)
        self._plan(plant.start_ns + plant.duration_ns, "end", plant)

    def _end_stale(self, plant: _Plant, nominal: int) -> None:
        self._unblock(plant.pair)
        timestamp = self._emit_random(plant.pair, nominal)
        self.planted_messages += 1
        self._alert("stale", plant.symbol, (plant.venue,), plant.started_ns, timestamp, {})
        self.planted["stale"] += 1

    # halts and LULD pauses

    def _start_halt(self, plant: _Plant, nominal: int) -> None:
        state, reason = (b"H", HALT_REASON) if plant.kind == "halts" else (b"P", PAUSE_REASON)
        for index, pair in enumerate(self._symbol_pairs(plant.symbol)):
            timestamp = max(nominal, self.last_emitted + 1)
            self._emit(pair, timestamp, "H", _trading_action(self.books[pair], timestamp, state, reason))
            self._block(pair)
            if index == 0:
                plant.started_ns = timestamp
        self.planted_messages += len(self.venues)
        self._plan(plant.started_ns + plant.duration_ns, "end", plant)

    def _end_halt(self, plant: _Plant, nominal: int) -> None:
        kind, reason = ("halt", "T1") if plant.kind == "halts" else ("luld_pause", "LUDP")
        venue_count = len(self.venues)
        for venue, pair in enumerate(self._symbol_pairs(plant.symbol)):
            halted = self.last[pair]  # the venue's halt message: nothing of the symbol since
            timestamp = max(nominal, self.last_emitted + 1)
            self._emit(pair, timestamp, "H", _trading_action(self.books[pair], timestamp, b"T"))
            self._unblock(pair)
            self._alert(kind, plant.symbol, (venue,), halted, timestamp, {"reason": reason})
        self.planted_messages += venue_count
        self.planted[plant.kind] += 1

    # ------------------------------------------------------------------ truth

    def truth(self, trading_date: date, seed: int, files: dict[str, str]) -> dict[str, Any]:
        midnight = midnight_epoch_ns(trading_date)
        alerts = []
        for start, kind, symbol, venues, end, details in self.alerts:
            alerts.append(
                {
                    "type": kind,
                    "symbol": ticker(symbol),
                    "venues": [self.venues[venue] for venue in venues],
                    "start_ns": midnight + start,
                    "end_ns": midnight + end,
                    "details": details,
                }
            )
        alerts.sort(key=lambda alert: (alert["start_ns"], alert["type"], alert["symbol"], alert["venues"]))
        return {
            "date": trading_date.isoformat(),
            "venues": list(self.venues),
            "symbols": [ticker(index) for index in range(self.symbols)],
            "seed": seed,
            "keepalive_ms": self.keepalive_ns // _MS,
            "files": dict(files),
            "alerts": alerts,
        }


def _level_shares(book: _SymbolBook, level: dict[int, None]) -> int:
    orders = book.orders
    return sum(orders[reference][2] for reference in level)


def _validate(
    venues: list[str],
    symbols: int,
    messages: int,
    plants: dict[str, int],
    keepalive_ms: int,
    zipf_exponent: float,
) -> None:
    parse_venues(",".join(venues))  # the same checks as on the command line
    if not 1 <= symbols <= MAX_SYMBOLS:
        raise UserError(f"--symbols must be between 1 and {MAX_SYMBOLS}, got {symbols}")
    if zipf_exponent < 0:
        raise UserError(f"--zipf must be non-negative, got {zipf_exponent}")
    if not MIN_KEEPALIVE_MS <= keepalive_ms <= MAX_KEEPALIVE_MS:
        raise UserError(
            f"--keepalive-ms must be between {MIN_KEEPALIVE_MS} and {MAX_KEEPALIVE_MS}, got {keepalive_ms}"
        )
    unknown = sorted(set(plants) - set(PLANT_NAMES))
    if unknown:
        raise UserError(f"--plant: unknown event {unknown[0]!r}; known: {', '.join(PLANT_NAMES)}")
    negative = [name for name in PLANT_NAMES if plants[name] < 0]
    if negative:
        raise UserError(
            f"--plant: the count of {negative[0]} must not be negative, got {plants[negative[0]]}"
        )
    minimum = minimum_messages(len(venues), symbols, keepalive_ms)
    if messages < minimum:
        raise UserError(
            f"--messages must be at least {minimum:,} for {len(venues)} venues x {symbols} symbols with a "
            f"{keepalive_ms:,} ms keepalive (every venue quotes every symbol that often); got {messages:,}"
        )
    planted = sum(plants.values())
    if planted and symbols < 2:
        raise UserError("--plant needs at least 2 symbols (the others go on while one is halted or crossed)")
    stale_shortest = PLANT_DURATIONS_NS["stale"][0] // _MS
    if plants["stale"] and keepalive_ms >= stale_shortest:
        raise UserError(
            f"--plant stale needs --keepalive-ms below {stale_shortest:,} (a stale window lasts "
            f"{stale_shortest // 1000}-{PLANT_DURATIONS_NS['stale'][1] // NANOS_PER_SECOND} s), got {keepalive_ms:,}"
        )
    if planted:
        longest = sum(PLANT_DURATIONS_NS[name][1] * plants[name] for name in PLANT_NAMES)
        needed = longest + (planted - 1) * (keepalive_ms * _MS + NANOS_PER_SECOND)
        if needed > PLANT_END_NS - PLANT_START_NS:
            raise UserError(
                f"--plant: {planted} events do not fit between 10:00 and 15:30 one at a time (up to "
                f"{needed / NANOS_PER_SECOND:,.0f} s with the keepalive between them); plant fewer"
            )


# ---------------------------------------------------------------------- command line


def run_command(args: argparse.Namespace) -> int:
    """``itchflow synth --venues ...`` (dispatched from :mod:`itchflow.synth`)."""
    if args.allow_crossed:
        raise UserError("--allow-crossed is for a single feed; with --venues only planted crossings cross")
    venues = parse_venues(args.venues)
    plants = parse_plants(args.plant or "")
    trading_date = parse_date(args.date) if args.date else DEFAULT_DATE
    keepalive_ms = DEFAULT_KEEPALIVE_MS if args.keepalive_ms is None else args.keepalive_ms
    summary = write(
        args.output,
        venues,
        args.symbols,
        args.messages,
        args.seed,
        trading_date=trading_date,
        plants=plants,
        keepalive_ms=keepalive_ms,
        zipf_exponent=args.zipf,
        progress=not args.no_progress,
    )
    body = sum(summary.message_counts.values())
    mix = " ".join(f"{kind}={count / body:.1%}" for kind, count in summary.message_counts.items())
    print(
        f"wrote {summary.messages:,} messages for {len(venues)} venues x {args.symbols:,} symbols to "
        f"{summary.directory} ({summary.bytes_written / 1e6:.1f} MB) in {summary.seconds:.1f} s "
        f"({summary.messages_per_second:,.0f} msg/s)"
    )
    for venue, path in summary.files.items():
        print(f"  {venue:<8} {summary.messages_by_venue[venue]:>12,} messages  {path.name}")
    print(
        f"  body: {args.messages:,} steps + {summary.planted_messages:,} planted + "
        f"{summary.keepalive_messages:,} keepalive top-ups; mix {mix}"
    )
    planted = ", ".join(f"{count} {name}" for name, count in summary.plants.items() if count) or "nothing"
    missing = {name: plants[name] - count for name, count in summary.plants.items() if count < plants[name]}
    print(f"  planted {planted}" + (f" (no room for {missing})" if missing else ""))
    alerts = ", ".join(f"{count} {kind}" for kind, count in summary.alert_counts.items()) or "none"
    print(f"  truth: {summary.truth_path} ({alerts})")
    return 0
