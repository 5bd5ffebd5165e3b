"""Deterministic, book-consistent synthetic ITCH 5.0 feeds for benchmarks and tests.

``itchflow synth --symbols N --messages M --seed S -o FILE`` writes exactly ``M`` messages in the
standard framing (each message preceded by its 2-byte big-endian length; ``.gz`` output is gzipped):

* a header: system event ``O`` (start of messages), a stock directory ``R`` and a trading action ``H``
  (``T``, trading) per symbol, system events ``S`` (start of system hours) and ``Q`` (start of market
  hours) — ``2N + 3`` messages;
* a body — the remaining ``M - 2N - 6`` messages:

  * an opening cross ``Q`` (cross type ``O``) at 09:30:00 for each crossing symbol;
  * the continuous session, from 09:30 to just before 16:00, whose activity is skewed across symbols by
    a Zipf law (symbol ``i``, 0-based, gets weight ``1 / (i + 1) ** zipf_exponent``), with the mix of
    ``MESSAGE_MIX``;
  * a closing cross ``Q`` (cross type ``C``) at 16:00:00 for each crossing symbol;

  the crossing symbols are those whose Zipf share of the body is at least
  ``CROSS_MIN_EXPECTED_MESSAGES`` messages (so crosses are at most 2 % of the body, and a body too small
  for any has none); about ``ZERO_VOLUME_CROSS_SHARE`` of the crosses match no shares (``shares`` 0);
* a footer: system events ``M`` (end of market hours), ``E`` (end of system hours), ``C`` (end of
  messages).

Book consistency: every execution, cancel, delete and replace refers to a live order of that symbol
with enough shares (cancels are partial and leave at least one share; executions take the oldest order
of the best level, as a marketable order would). Adds and replaces never lock or cross the book unless
``allow_crossed``. Trades ``P``, crosses ``Q`` and breaks ``B`` never touch the displayed book; trades
and closing crosses are priced inside the spread (at the mid while a side is empty or the book is
crossed), opening crosses at the mid. A break refers to the match number of one of the latest prints
(``E``, printable ``C`` or ``P``, never ``Q``) of its symbol that no earlier break refers to. Match
numbers are unique across the file. Any action but an add falls back to an add while its symbol's book
is empty, and so does a break while its symbol has no such print. Prices are whole cents (100 ticks of
ITCH's 4-decimal prices) around a per-symbol reference price in 5..500 dollars that wanders slowly and
reverts to it.

The same seed always gives the same bytes (``random.Random(seed)`` is the only source of randomness).
The hot loop packs bytes with precompiled ``struct`` formats rather than building message objects.

``itchflow synth --venues V1,V2,... -o DIR`` writes one feed per venue on a shared timeline instead, with
planted cross-venue events and the alerts they should raise: see :mod:`itchflow.synth_venues`.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import random
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from itchflow.errors import UserError

TICKS_PER_CENT = 100
NANOS_PER_SECOND = 1_000_000_000
START_OF_MESSAGES_NS = (3 * 3600 + 5 * 60) * NANOS_PER_SECOND  # 03:05
START_OF_SYSTEM_HOURS_NS = 4 * 3600 * NANOS_PER_SECOND  # 04:00
MARKET_OPEN_NS = (9 * 3600 + 30 * 60) * NANOS_PER_SECOND  # 09:30
MARKET_CLOSE_NS = 16 * 3600 * NANOS_PER_SECOND  # 16:00
END_OF_SYSTEM_HOURS_NS = 20 * 3600 * NANOS_PER_SECOND  # 20:00
END_OF_MESSAGES_NS = (20 * 3600 + 5 * 60) * NANOS_PER_SECOND  # 20:05

MAX_SYMBOLS = 65_535  # stock locate codes are 16 bits
FOOTER_MESSAGES = 3

#: Share of the continuous session's messages per action; executions split into E and C, adds into A
#: and F below. Breaks (B) are about 0.2 % of the prints (E, printable C and P: about 6.6 % of messages).
MESSAGE_MIX: dict[str, float] = {
    "add": 0.44985,
    "cancel": 0.10,
    "delete": 0.35,
    "execute": 0.06,
    "replace": 0.03,
    "trade": 0.01,
    "break": 0.00015,
}
ATTRIBUTED_ADD_SHARE = 0.10  # F among adds
EXECUTION_WITH_PRICE_SHARE = 0.30  # C among executions
NON_PRINTABLE_SHARE = 0.20  # printable 'N' among C
FULL_EXECUTION_SHARE = 0.60  # executions that take all of the order's remaining shares
ODD_LOT_SHARE = 0.05
MAX_PRICE_OFFSET_CENTS = 40  # how far from the mid an order may rest
MID_MOVE_PROBABILITY = 0.02
ATTRIBUTIONS = (b"GSCO", b"MSCO", b"JPMS", b"UBSS", b"CDRG", b"VIRT")
CROSS_MIN_EXPECTED_MESSAGES = 100  # a symbol crosses when the Zipf law gives it at least this many
ZERO_VOLUME_CROSS_SHARE = 0.10  # crosses that match no shares
BREAK_LOOKBACK = 16  # a break picks among this many of its symbol's latest unbroken prints
MAX_BREAKABLE = 64  # unbroken prints remembered per symbol (the oldest half goes when full)

# Every format starts with the 2-byte length prefix; 6-byte timestamps are packed as H (high) + I (low).
_SYSTEM_EVENT = struct.Struct(">HcHHHIc")
_STOCK_DIRECTORY = struct.Struct(">HcHHHI8sccIcc2scccccIc")
_TRADING_ACTION = struct.Struct(">HcHHHI8scc4s")
_ADD = struct.Struct(">HcHHHIQcI8sI")
_ADD_ATTRIBUTED = struct.Struct(">HcHHHIQcI8sI4s")
_EXECUTED = struct.Struct(">HcHHHIQIQ")
_EXECUTED_WITH_PRICE = struct.Struct(">HcHHHIQIQcI")
_CANCEL = struct.Struct(">HcHHHIQI")
_DELETE = struct.Struct(">HcHHHIQ")
_REPLACE = struct.Struct(">HcHHHIQQII")
_TRADE = struct.Struct(">HcHHHIQcI8sIQ")
_CROSS_TRADE = struct.Struct(">HcHHHIQ8sIQc")
_BROKEN_TRADE = struct.Struct(">HcHHHIQ")

_ACTIONS = tuple(MESSAGE_MIX)
_BATCH = 65_536


@dataclass(frozen=True, slots=True)
class SynthSummary:
    """What :func:`write` produced."""

    path: Path
    messages: int
    symbols: int
    bytes_written: int
    seconds: float
    message_counts: dict[str, int]

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def ticker(index: int) -> str:
    """The synthetic ticker of symbol ``index``: four letters, ``AAAA``, ``AAAB``, ... (base 26)."""
    letters = []
    for _ in range(4):
        index, digit = divmod(index, 26)
        letters.append(chr(ord("A") + digit))
    return "".join(reversed(letters))


def header_message_count(symbols: int) -> int:
    """Messages before the body: ``O``, ``R`` and ``H`` per symbol, ``S``, ``Q``."""
    return 2 * symbols + 3


def generate(symbols: int, messages: int, seed: int, *, allow_crossed: bool = False) -> Iterator[bytes]:
    """Yield the ``messages`` ITCH payloads (type byte first, no length prefix) of a synthetic feed."""
    for batch in _Generator(symbols, messages, seed, allow_crossed=allow_crossed).framed_batches():
        for framed in batch:
            yield framed[2:]


def write(
    path: str | Path,
    symbols: int,
    messages: int,
    seed: int,
    *,
    allow_crossed: bool = False,
    zipf_exponent: float = 1.0,
    progress: bool = False,
) -> SynthSummary:
    """Write a synthetic feed in standard framing to ``path`` (gzipped when it ends in ``.gz``)."""
    path = Path(path)
    generator = _Generator(symbols, messages, seed, allow_crossed=allow_crossed, zipf_exponent=zipf_exponent)
    started = time.perf_counter()
    bytes_written = 0
    bar = _progress_bar(messages) if progress else None
    # The generator's state holds no reference cycles: the cyclic collector would only rescan its
    # hundreds of thousands of live-order lists over and over.
    collector_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _open_output(path) as output:
            for batch in generator.framed_batches():
                chunk = b"".join(batch)
                output.write(chunk)
                bytes_written += len(chunk)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if collector_was_enabled:
            gc.enable()
        if bar is not None:
            bar.close()
    return SynthSummary(
        path=path,
        messages=messages,
        symbols=symbols,
        bytes_written=bytes_written,
        seconds=time.perf_counter() - started,
        message_counts=dict(sorted(generator.message_counts.items())),
    )


def _open_output(path: Path) -> BinaryIO:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "wb", compresslevel=1)  # type: ignore[return-value]
        return open(path, "wb")  # noqa: SIM115 - returned to a with-block
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", unit_scale=True, file=sys.stderr, desc="synth")


class _SymbolBook:
    """The generator's own view of one symbol: live orders and levels in time priority."""

    __slots__ = (
        "locate",
        "stock",
        "reference_cents",
        "mid_cents",
        "orders",
        "live",
        "bids",
        "asks",
        "best_bid",
        "best_ask",
        "prints",
    )

    def __init__(self, locate: int, stock: bytes, reference_cents: int) -> None:
        self.locate = locate
        self.stock = stock
        self.reference_cents = reference_cents
        self.mid_cents = reference_cents
        # reference -> [is_bid, price_cents, shares, index in live]
        self.orders: dict[int, list[Any]] = {}
        self.live: list[int] = []  # live references, for O(1) uniform picks
        self.bids: dict[int, dict[int, None]] = {}  # price -> references in time priority
        self.asks: dict[int, dict[int, None]] = {}
        self.best_bid = 0  # 0: no bids
        self.best_ask = 0  # 0: no asks
        self.prints: list[int] = []  # match numbers of the latest unbroken prints, oldest first

    def add(self, reference: int, is_bid: bool, price: int, shares: int) -> None:
        self.orders[reference] = [is_bid, price, shares, len(self.live)]
        self.live.append(reference)
        levels = self.bids if is_bid else self.asks
        level = levels.get(price)
        if level is None:
            levels[price] = {reference: None}
            if is_bid:
                if price > self.best_bid:
                    self.best_bid = price
            elif self.best_ask == 0 or price < self.best_ask:
                self.best_ask = price
        else:
            level[reference] = None

    def remove(self, reference: int) -> list[Any]:
        order = self.orders.pop(reference)
        is_bid, price, _, index = order
        last = self.live.pop()
        if last != reference:
            self.live[index] = last
            self.orders[last][3] = index
        levels = self.bids if is_bid else self.asks
        level = levels[price]
        del level[reference]
        if not level:
            del levels[price]
            if is_bid:
                if price == self.best_bid:
                    self.best_bid = max(levels) if levels else 0
            elif price == self.best_ask:
                self.best_ask = min(levels) if levels else 0
        return order


class _BookActions:
    """The per-message actions on a :class:`_SymbolBook`, drawing from ``rng``: each returns the message type
    and the framed bytes. Order references and match numbers are unique across every book it acts on."""

    def __init__(self, rng: random.Random, *, allow_crossed: bool = False) -> None:
        self.rng = rng
        self.allow_crossed = allow_crossed
        self.next_reference = 1
        self.next_match = 1

    def _reference_cents(self) -> int:
        dollars = math.exp(self.rng.uniform(math.log(5.0), math.log(500.0)))
        return int(dollars * 100)

    def _act(self, book: _SymbolBook, action: str, timestamp: int) -> tuple[str, bytes]:
        """One message of ``action`` (a key of ``MESSAGE_MIX``) on ``book``; an add while the book is empty."""
        if not book.live or action == "add":
            return self._add(book, timestamp)
        if action == "delete":
            return self._delete(book, timestamp)
        if action == "cancel":
            return self._cancel(book, timestamp)
        if action == "execute":
            return self._execute(book, timestamp)
        if action == "replace":
            return self._replace(book, timestamp)
        if action == "trade":
            return self._trade(book, timestamp)
        return self._break(book, timestamp)

    # ------------------------------------------------------------------ actions (each returns type, bytes)

    def _move_mid(self, book: _SymbolBook) -> None:
        """A slow random walk that leans back toward the symbol's reference price."""
        toward_reference = 1 if book.mid_cents < book.reference_cents else -1
        step = toward_reference if self.rng.random() < 0.55 else -toward_reference
        book.mid_cents = max(2, book.mid_cents + step)

    def _add(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        rng = self.rng
        is_bid = rng.random() < 0.5
        price = self._place(book, is_bid)
        if price <= 0:  # no room on this side without crossing: quote the other side
            is_bid = not is_bid
            price = self._place(book, is_bid)
        shares = self._shares()
        reference = self.next_reference
        self.next_reference = reference + 1
        book.add(reference, is_bid, price, shares)
        side = b"B" if is_bid else b"S"
        ts_high, ts_low = timestamp >> 32, timestamp & 0xFFFFFFFF
        if rng.random() < ATTRIBUTED_ADD_SHARE:
            attribution = ATTRIBUTIONS[int(rng.random() * len(ATTRIBUTIONS))]
            return "F", _ADD_ATTRIBUTED.pack(
                40, b"F", book.locate, 0, ts_high, ts_low, reference, side, shares, book.stock,
                price * TICKS_PER_CENT, attribution,
            )  # fmt: skip
        return "A", _ADD.pack(
            36,
            b"A",
            book.locate,
            0,
            ts_high,
            ts_low,
            reference,
            side,
            shares,
            book.stock,
            price * TICKS_PER_CENT,
        )

    def _place(self, book: _SymbolBook, is_bid: bool) -> int:
        """A limit price in cents for a new bid/ask, or 0 when the side has no room below/above the other."""
        offset = int(self.rng.random() ** 3 * MAX_PRICE_OFFSET_CENTS)
        if self.allow_crossed:
            offset -= 2  # sometimes through the mid: the book may lock or cross
        if is_bid:
            price = book.mid_cents - offset
            if not self.allow_crossed:
                best_ask = self._ask_bound(book)
                if best_ask and price >= best_ask:
                    price = best_ask - 1
            return max(price, 1) if self.allow_crossed else (price if price >= 1 else 0)
        price = book.mid_cents + 1 + offset
        if not self.allow_crossed:
            best_bid = self._bid_bound(book)
            if best_bid and price <= best_bid:
                price = best_bid + 1
        return max(price, 1)

    def _ask_bound(self, book: _SymbolBook) -> int:
        """The ask a new bid of ``book`` must stay strictly below (0: none): the book's best ask."""
        return book.best_ask

    def _bid_bound(self, book: _SymbolBook) -> int:
        """The bid a new ask of ``book`` must stay strictly above (0: none): the book's best bid."""
        return book.best_bid

    def _shares(self) -> int:
        rng = self.rng
        if rng.random() < ODD_LOT_SHARE:
            return 1 + int(rng.random() * 99)
        return 100 * (1 + int(rng.random() ** 3 * 20))

    def _pick(self, book: _SymbolBook) -> int:
        return book.live[int(self.rng.random() * len(book.live))]

    def _delete(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        reference = self._pick(book)
        book.remove(reference)
        return "D", _DELETE.pack(19, b"D", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, reference)

    def _cancel(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        reference = self._pick(book)
        order = book.orders[reference]
        if order[2] < 2:  # nothing to cancel partially: the order goes
            return self._delete_reference(book, reference, timestamp)
        cancelled = 1 + int(self.rng.random() * (order[2] - 1))
        order[2] -= cancelled
        return "X", _CANCEL.pack(
            23, b"X", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, reference, cancelled
        )

    def _delete_reference(self, book: _SymbolBook, reference: int, timestamp: int) -> tuple[str, bytes]:
        book.remove(reference)
        return "D", _DELETE.pack(19, b"D", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, reference)

    def _execute(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        rng = self.rng
        hit_bid = rng.random() < 0.5
        if hit_bid and not book.bids:
            hit_bid = False
        elif not hit_bid and not book.asks:
            hit_bid = True
        level = book.bids[book.best_bid] if hit_bid else book.asks[book.best_ask]
        reference = next(iter(level))  # the oldest order at the best price
        order = book.orders[reference]
        remaining = order[2]
        if remaining == 1 or rng.random() < FULL_EXECUTION_SHARE:
            executed = remaining
            book.remove(reference)
        else:
            executed = 1 + int(rng.random() * (remaining - 1))
            order[2] = remaining - executed
        match = self.next_match
        self.next_match = match + 1
        ts_high, ts_low = timestamp >> 32, timestamp & 0xFFFFFFFF
        if rng.random() < EXECUTION_WITH_PRICE_SHARE:
            if rng.random() < NON_PRINTABLE_SHARE:
                printable = b"N"
            else:
                printable = b"Y"
                _remember_print(book.prints, match)
            price = order[1] + (1 if rng.random() < 0.3 else 0) * (-1 if hit_bid else 1)
            return "C", _EXECUTED_WITH_PRICE.pack(
                36, b"C", book.locate, 0, ts_high, ts_low, reference, executed, match, printable,
                max(price, 1) * TICKS_PER_CENT,
            )  # fmt: skip
        _remember_print(book.prints, match)
        return "E", _EXECUTED.pack(31, b"E", book.locate, 0, ts_high, ts_low, reference, executed, match)

    def _replace(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        original = self._pick(book)
        is_bid = book.orders[original][0]
        price = self._place(book, is_bid)  # the original's own side does not bound it
        if price <= 0:  # no room for a bid any more: the order just goes
            return self._delete_reference(book, original, timestamp)
        book.remove(original)
        shares = self._shares()
        reference = self.next_reference
        self.next_reference = reference + 1
        book.add(reference, is_bid, price, shares)
        return "U", _REPLACE.pack(
            35, b"U", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, original, reference, shares,
            price * TICKS_PER_CENT,
        )  # fmt: skip

    def _trade(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        """A non-cross trade against a hidden order, priced inside the spread (or at the mid)."""
        price = self._inside_price(book)
        match = self.next_match
        self.next_match = match + 1
        _remember_print(book.prints, match)
        side = b"B" if self.rng.random() < 0.5 else b"S"
        return "P", _TRADE.pack(
            44, b"P", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, 0, side, self._shares(), book.stock,
            price * TICKS_PER_CENT, match,
        )  # fmt: skip

    def _inside_price(self, book: _SymbolBook) -> int:
        """A price in cents inside the spread (either end included); the mid when a side is empty or the book
        is crossed."""
        if book.best_bid and book.best_ask and book.best_bid <= book.best_ask:
            return book.best_bid + int(self.rng.random() * (book.best_ask - book.best_bid + 1))
        return book.mid_cents

    def _break(self, book: _SymbolBook, timestamp: int) -> tuple[str, bytes]:
        """Break one of the symbol's latest unbroken prints (an add when it has none)."""
        prints = book.prints
        if not prints:
            return self._add(book, timestamp)
        latest = min(len(prints), BREAK_LOOKBACK)
        match = prints.pop(len(prints) - 1 - int(self.rng.random() * latest))
        return "B", _BROKEN_TRADE.pack(
            19, b"B", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, match
        )


class _Generator(_BookActions):
    """One synthetic feed; :meth:`framed_batches` yields it as lists of length-prefixed messages."""

    def __init__(
        self,
        symbols: int,
        messages: int,
        seed: int,
        *,
        allow_crossed: bool = False,
        zipf_exponent: float = 1.0,
    ) -> None:
        if not 1 <= symbols <= MAX_SYMBOLS:
            raise UserError(f"--symbols must be between 1 and {MAX_SYMBOLS}, got {symbols}")
        minimum = header_message_count(symbols) + FOOTER_MESSAGES
        if messages < minimum:
            raise UserError(
                f"--messages must be at least {minimum} for {symbols} symbols (header and footer), got {messages}"
            )
        if zipf_exponent < 0:
            raise UserError(f"--zipf must be non-negative, got {zipf_exponent}")
        super().__init__(random.Random(seed), allow_crossed=allow_crossed)
        self.symbols = symbols
        self.messages = messages
        self.body_messages = messages - minimum
        self.books = [
            _SymbolBook(index + 1, ticker(index).ljust(8).encode("ascii"), self._reference_cents())
            for index in range(symbols)
        ]
        weights = [1.0 / (rank + 1) ** zipf_exponent for rank in range(symbols)]
        self.symbol_cum_weights = _cumulative(weights)
        per_weight = self.body_messages / self.symbol_cum_weights[-1]
        self.crossing = [
            book
            for book, weight in zip(self.books, weights, strict=True)
            if weight * per_weight >= CROSS_MIN_EXPECTED_MESSAGES
        ]
        self.continuous_messages = self.body_messages - 2 * len(self.crossing)
        self.action_cum_weights = _cumulative([MESSAGE_MIX[action] for action in _ACTIONS])
        self.message_counts: dict[str, int] = {}

    def framed_batches(self) -> Iterator[list[bytes]]:
        yield self._header()
        yield from self._body()
        yield self._footer()

    def _count(self, message_type: str, count: int = 1) -> None:
        self.message_counts[message_type] = self.message_counts.get(message_type, 0) + count

    def _header(self) -> list[bytes]:
        self._count("S", 3)
        self._count("R", self.symbols)
        self._count("H", self.symbols)
        return _header_messages(self.books)

    def _footer(self) -> list[bytes]:
        self._count("S", 3)
        return _footer_messages()

    def _body(self) -> Iterator[list[bytes]]:
        rng = self.rng
        books = self.books
        act = self._act
        symbol_indices = range(self.symbols)
        if self.crossing:
            yield self._crosses(b"O", MARKET_OPEN_NS)
        total = self.continuous_messages
        # Integer nanosecond gaps uniform in [0, max_gap): their sum has mean total * max_gap / 2 and
        # standard deviation max_gap * sqrt(total / 12). Aim the mean four deviations short of the close
        # and hold the rare rest just before it, so no message passes the footer's end of market hours.
        session = MARKET_CLOSE_NS - MARKET_OPEN_NS - 1
        max_gap = max(1, int(session / (total / 2 + 4 * math.sqrt(total / 12) + 1)))
        last_timestamp = MARKET_CLOSE_NS - 1
        timestamp = MARKET_OPEN_NS
        counts = dict.fromkeys("AFECXDUPB", 0)
        done = 0
        while done < total:
            size = min(_BATCH, total - done)
            symbols = rng.choices(symbol_indices, cum_weights=self.symbol_cum_weights, k=size)
            actions = rng.choices(_ACTIONS, cum_weights=self.action_cum_weights, k=size)
            batch: list[bytes] = []
            for index, action in zip(symbols, actions, strict=True):
                timestamp += int(rng.random() * max_gap)
                if timestamp > last_timestamp:
                    timestamp = last_timestamp
                book = books[index]
                if rng.random() < MID_MOVE_PROBABILITY:
                    self._move_mid(book)
                message_type, framed = act(book, action, timestamp)
                counts[message_type] += 1
                batch.append(framed)
            done += size
            yield batch
        for message_type, count in counts.items():
            if count:
                self._count(message_type, count)
        if self.crossing:
            yield self._crosses(b"C", MARKET_CLOSE_NS)

    def _crosses(self, cross_type: bytes, timestamp: int) -> list[bytes]:
        """One cross trade per crossing symbol: at the mid when the book is empty, else inside the spread."""
        rng = self.rng
        ts_high, ts_low = timestamp >> 32, timestamp & 0xFFFFFFFF
        batch = []
        for book in self.crossing:
            price = self._inside_price(book)
            if rng.random() < ZERO_VOLUME_CROSS_SHARE:
                shares = 0
            else:
                shares = 100 * (1 + int(rng.random() ** 2 * 2_000))
            match = self.next_match
            self.next_match = match + 1
            batch.append(
                _CROSS_TRADE.pack(
                    40, b"Q", book.locate, 0, ts_high, ts_low, shares, book.stock, price * TICKS_PER_CENT,
                    match, cross_type,
                )
            )  # fmt: skip
        self._count("Q", len(batch))
        return batch


def _remember_print(prints: list[int], match: int) -> None:
    """Note a breakable print's match number, forgetting the oldest half of a full list."""
    if len(prints) >= MAX_BREAKABLE:
        del prints[: MAX_BREAKABLE // 2]
    prints.append(match)


def _system_event(code: bytes, timestamp: int) -> bytes:
    return _SYSTEM_EVENT.pack(12, b"S", 0, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, code)


def _trading_action(book: _SymbolBook, timestamp: int, state: bytes, reason: bytes = b"    ") -> bytes:
    """A stock trading action ``H`` for ``book``'s symbol: ``state`` ``T`` (trading), ``H`` (halted), ``P``
    (paused)..., with a 4-byte ``reason``."""
    return _TRADING_ACTION.pack(
        25, b"H", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, book.stock, state, b" ", reason
    )


def _header_messages(books: list[_SymbolBook], offset_ns: int = 0) -> list[bytes]:
    """The header of a feed of ``books`` (in locate order): ``O``, ``R`` and ``H`` per symbol, ``S``, ``Q``;
    every timestamp ``offset_ns`` later than in a single feed (feeds of several venues keep theirs apart)."""
    symbols = len(books)
    batch = [_system_event(b"O", START_OF_MESSAGES_NS + offset_ns)]
    for book in books:
        timestamp = START_OF_MESSAGES_NS + book.locate * 1000 + offset_ns
        batch.append(
            _STOCK_DIRECTORY.pack(
                39, b"R", book.locate, 0, timestamp >> 32, timestamp & 0xFFFFFFFF, book.stock,
                b"Q", b"N", 100, b"N", b"C", b"C ", b"P", b"N", b"N", b"1", b"N", 0, b"N",
            )
        )  # fmt: skip
    for book in books:
        batch.append(
            _trading_action(book, START_OF_MESSAGES_NS + (symbols + book.locate) * 1000 + offset_ns, b"T")
        )
    batch.append(_system_event(b"S", START_OF_SYSTEM_HOURS_NS + offset_ns))
    batch.append(_system_event(b"Q", MARKET_OPEN_NS + offset_ns))
    return batch


def _footer_messages(offset_ns: int = 0) -> list[bytes]:
    """The footer: ``M`` (end of market hours), ``E``, ``C``, ``offset_ns`` later than in a single feed."""
    return [
        _system_event(b"M", MARKET_CLOSE_NS + offset_ns),
        _system_event(b"E", END_OF_SYSTEM_HOURS_NS + offset_ns),
        _system_event(b"C", END_OF_MESSAGES_NS + offset_ns),
    ]


def _cumulative(weights: list[float]) -> list[float]:
    total = 0.0
    cumulative = []
    for weight in weights:
        total += weight
        cumulative.append(total)
    return cumulative


# ---------------------------------------------------------------------- command line


def register(subparsers: Any) -> None:
    """Add ``itchflow synth``."""
    parser = subparsers.add_parser(
        "synth",
        help="write a deterministic, book-consistent synthetic ITCH 5.0 feed (or one per venue with --venues)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--symbols", type=int, default=100, help="number of symbols (default 100)")
    parser.add_argument(
        "--messages",
        type=int,
        default=1_000_000,
        help="total messages in the file (default 1,000,000); with --venues, the steps of the day's timeline "
        "across all venues, one body message each (planted events and keepalive top-ups come on top)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output file (.gz: gzipped); with --venues, the output directory (created if missing)",
    )
    parser.add_argument(
        "--zipf", type=float, default=1.0, help="Zipf exponent of activity across symbols (default 1)"
    )
    parser.add_argument("--allow-crossed", action="store_true", help="let adds lock or cross the book")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    venues = parser.add_argument_group(
        "several venues",
        "with --venues: one feed per venue, DIR/<MMDDYYYY>.<VENUE>_ITCH50, sharing the symbols and a fair value "
        "per symbol on one strictly increasing timeline, plus DIR/truth.json, the alerts a cross-venue "
        "detector should raise on the planted events",
    )
    venues.add_argument("--venues", metavar="V1,V2,...", help="venue names, e.g. NASDAQ,BX,PSX (2 to 32)")
    venues.add_argument(
        "--plant",
        metavar="NAME=COUNT,...",
        help="events to plant between 10:00 and 15:30: crossings (a venue locks or crosses another for "
        "0.3-3 s), stale (a venue goes quiet on a symbol for 120-300 s), halts (60-600 s), pauses "
        "(LULD, 300-600 s); e.g. crossings=6,stale=3,halts=2,pauses=2 (default none)",
    )
    venues.add_argument("--date", metavar="YYYY-MM-DD", help="trading date of the files (default 2020-01-02)")
    venues.add_argument(
        "--keepalive-ms",
        type=int,
        metavar="MS",
        help="no venue goes this long without a message of each symbol during market hours, except in "
        "planted windows (default 20000)",
    )
    parser.set_defaults(func=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    if args.venues is not None:
        from itchflow import synth_venues

        return synth_venues.run_command(args)
    for flag, value in (
        ("--plant", args.plant),
        ("--date", args.date),
        ("--keepalive-ms", args.keepalive_ms),
    ):
        if value is not None:
            raise UserError(
                f"{flag} goes with --venues (several venues); a single feed has no planted events"
            )
    summary = write(
        args.output,
        args.symbols,
        args.messages,
        args.seed,
        allow_crossed=args.allow_crossed,
        zipf_exponent=args.zipf,
        progress=not args.no_progress,
    )
    mix = " ".join(
        f"{message_type}={count / summary.messages:.1%}"
        for message_type, count in summary.message_counts.items()
    )
    print(
        f"wrote {summary.messages:,} messages for {summary.symbols:,} symbols to {summary.path} "
        f"({summary.bytes_written / 1e6:.1f} MB) in {summary.seconds:.1f} s "
        f"({summary.messages_per_second:,.0f} msg/s); mix {mix}"
    )
    return 0
