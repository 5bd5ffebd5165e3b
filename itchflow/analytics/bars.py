"""OHLCV bars: which prints count, and the bar accumulator as a fold (``create / add / merge / result``).

Rules (ITCH 5.0; the same for the streaming job and the offline reference ``itchflow bars``):

* **Eligible prints** set volume, VWAP, high and low: E (a displayed order executed, at its price),
  C with Printable = Y (at its own price), P (a non-displayed order executed) and Q (a cross) with
  shares > 0. C with Printable = N (the shares were reported elsewhere, e.g. in a cross) and Q with
  0 shares do not. :func:`eligible` decides from the print's kind, printable flag and shares.
* **Open / close** are the prices of the first and last eligible print by (event time, sequence):
  the sequence is the print's position in its symbol's feed, so prints with the same timestamp keep
  the feed's order, and a bar folded from parts (:func:`merge`) opens and closes where one folded
  from the whole feed does.
* **Windows** are tumbling and epoch-aligned: ``[start, start + size)`` with ``start = t - t % size`` in
  UTC epoch nanoseconds of exchange time (sizes of 1 s, 1 m and 5 m divide an hour, so the windows
  also align with New York wall-clock time). A window without eligible prints has no bar.
* **VWAP** = sum(price x shares) / sum(shares), from exact integer sums (``notional``, ``volume``);
  :attr:`Bar.vwap` is their correctly rounded float quotient, so two implementations that keep the
  sums exactly agree to the last bit.
* **Broken trades** (ITCH B) remove the print with that match number as if it had never happened:
  the bar is folded again from its remaining prints (:func:`fold`), or disappears when none remain.

Prices are integer ticks of 10^-4 dollars (ITCH Price(4)); shares are share counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

NANOS_PER_SECOND = 1_000_000_000
INTERVALS = {"1s": 1, "1m": 60, "5m": 300}
"""The bar sizes the jobs keep, by name -> seconds."""

PRINT_KINDS = frozenset("ECPQ")
"""Kinds of prints: E executed, C executed with price, P non-cross trade, Q cross trade."""


class Print(NamedTuple):
    """One trade print of a symbol: ``seq`` orders prints with equal ``ts_event`` (feed order)."""

    ts_event: int
    seq: int
    match_number: int
    price: int
    shares: int


def eligible(kind: str, printable: bool, shares: int) -> bool:
    """Whether a print of ``kind`` (E, C, P or Q) sets volume, VWAP, high and low."""
    return kind in PRINT_KINDS and printable and shares > 0


def window_start(ts_event: int, size_ns: int) -> int:
    """Start of the epoch-aligned window of ``size_ns`` holding ``ts_event``."""
    return ts_event - ts_event % size_ns


def parse_interval(text: str) -> int:
    """``1s`` / ``1m`` / ``5m`` (or any ``<n>s`` / ``<n>m``) -> seconds; ValueError otherwise."""
    if text in INTERVALS:
        return INTERVALS[text]
    number, unit = text[:-1], text[-1:]
    if number.isdigit() and int(number) > 0 and unit in ("s", "m"):
        return int(number) * (60 if unit == "m" else 1)
    raise ValueError(f"interval must be like 1s, 1m or 5m, got {text!r}")


class Bar(NamedTuple):
    """A symbol's bar over ``[window_start_ns, window_start_ns + interval_s)``."""

    symbol: str
    interval_s: int
    window_start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    notional: int
    trades: int

    @property
    def vwap(self) -> float:
        """sum(price x shares) / sum(shares), correctly rounded from the exact sums."""
        return self.notional / self.volume

    def to_json(self) -> dict[str, object]:
        """The offline reference's form (``itchflow bars --json``)."""
        return {
            "symbol": self.symbol,
            "window_start_ns": self.window_start_ns,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "vwap": self.vwap,
            "trades": self.trades,
        }


class BarAccumulator:
    """What a bar needs of its prints: first and last by (ts_event, seq), extremes and exact sums.
    Mutable; :func:`add` and :func:`merge` update it in place and return it."""

    __slots__ = ("first", "open", "last", "close", "high", "low", "volume", "notional", "trades")

    def __init__(self) -> None:
        self.first: tuple[int, int] | None = None  # (ts_event, seq) of the open
        self.open = 0
        self.last: tuple[int, int] | None = None  # (ts_event, seq) of the close
        self.close = 0
        self.high = 0
        self.low = 0
        self.volume = 0
        self.notional = 0
        self.trades = 0

    def __repr__(self) -> str:
        return f"BarAccumulator({', '.join(f'{name}={getattr(self, name)!r}' for name in self.__slots__)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BarAccumulator):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def to_tuple(self) -> tuple:
        """A plain tuple (state and snapshots); :meth:`from_tuple` reads it back."""
        return tuple(getattr(self, name) for name in self.__slots__)

    @classmethod
    def from_tuple(cls, values: tuple) -> BarAccumulator:
        accumulator = cls()
        for name, value in zip(cls.__slots__, values, strict=True):
            setattr(accumulator, name, value)
        return accumulator


def create() -> BarAccumulator:
    """An empty bar."""
    return BarAccumulator()


def add(accumulator: BarAccumulator, p: Print | tuple[int, int, int, int, int]) -> BarAccumulator:
    """Fold one eligible print into ``accumulator`` (in any order of arrival); a plain tuple in
    :class:`Print`'s field order will do (the jobs keep prints as tuples: cheaper to pickle)."""
    key = (p[0], p[1])
    price = p[3]
    shares = p[4]
    if accumulator.trades == 0:
        accumulator.first = accumulator.last = key
        accumulator.open = accumulator.close = accumulator.high = accumulator.low = price
    else:
        if key < accumulator.first:  # type: ignore[operator]
            accumulator.first, accumulator.open = key, price
        if key >= accumulator.last:  # type: ignore[operator]
            accumulator.last, accumulator.close = key, price
        if price > accumulator.high:
            accumulator.high = price
        if price < accumulator.low:
            accumulator.low = price
    accumulator.volume += shares
    accumulator.notional += price * shares
    accumulator.trades += 1
    return accumulator


def merge(accumulator: BarAccumulator, other: BarAccumulator) -> BarAccumulator:
    """Fold ``other`` (prints of the same symbol and window, none in both) into ``accumulator``."""
    if other.trades == 0:
        return accumulator
    if accumulator.trades == 0:
        for name in BarAccumulator.__slots__:
            setattr(accumulator, name, getattr(other, name))
        return accumulator
    if other.first < accumulator.first:  # type: ignore[operator]
        accumulator.first, accumulator.open = other.first, other.open
    if other.last >= accumulator.last:  # type: ignore[operator]
        accumulator.last, accumulator.close = other.last, other.close
    accumulator.high = max(accumulator.high, other.high)
    accumulator.low = min(accumulator.low, other.low)
    accumulator.volume += other.volume
    accumulator.notional += other.notional
    accumulator.trades += other.trades
    return accumulator


def result(accumulator: BarAccumulator, symbol: str, interval_s: int, start_ns: int) -> Bar | None:
    """The bar, or None for a window without eligible prints (no bar is written for it)."""
    if accumulator.trades == 0:
        return None
    a = accumulator
    return Bar(symbol, interval_s, start_ns, a.open, a.high, a.low, a.close, a.volume, a.notional, a.trades)


def fold(prints: Iterable[Print | tuple[int, int, int, int, int]]) -> BarAccumulator:
    """One accumulator of ``prints`` (e.g. a window's prints after a break removed one)."""
    accumulator = create()
    for p in prints:
        add(accumulator, p)
    return accumulator


def bars(symbol: str, prints: Iterable[Print], interval_s: int) -> Iterator[Bar]:
    """The bars of one symbol's eligible ``prints`` (breaks already applied), by window start."""
    size = interval_s * NANOS_PER_SECOND
    windows: dict[int, BarAccumulator] = {}
    for p in prints:
        start = window_start(p.ts_event, size)
        accumulator = windows.get(start)
        if accumulator is None:
            accumulator = windows[start] = create()
        add(accumulator, p)
    for start in sorted(windows):
        bar = result(windows[start], symbol, interval_s, start)
        if bar is not None:
            yield bar
