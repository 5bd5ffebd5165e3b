"""The normalized event model: one frozen dataclass per event kind.

Every event has the same four leading fields: ``ts_event`` (UTC epoch ns), ``seq`` (per-symbol
message sequence within the producer session, a deterministic key), ``venue`` (ISO 10383 MIC) and
``symbol``. Prices are integer ticks of ``10**-PRICE_DECIMALS``; sizes are share counts.

On the wire the events travel as packed columns (see ``itchflow.normalize.columns``); these
classes are the readable form for tests, tools and slow consumers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

PRICE_DECIMALS = 4
"""Decimal places of every normalized price: ITCH Price(4). ``dollars = price / 10**PRICE_DECIMALS``."""


class EventKind(IntEnum):
    """The ``kind`` column codes; part of the data contract (never renumber, only add)."""

    ORDER_ADDED = 1
    ORDER_EXECUTED = 2
    ORDER_CANCELLED = 3
    ORDER_DELETED = 4
    ORDER_REPLACED = 5
    TRADE = 6
    CROSS_TRADE = 7
    BROKEN_TRADE = 8
    SYSTEM_EVENT = 9
    TRADING_STATE = 10
    REG_SHO = 11
    OPERATIONAL_HALT = 12
    STOCK_DIRECTORY = 13
    AUXILIARY = 14


FLAG_PRINTABLE = 1
"""``flags`` bit: the execution prints to the tape (C with printable 'Y'; every E, P and Q)."""
FLAG_HAS_PRICE = 2
"""``flags`` bit: the ``price`` column holds a price for this event."""


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every normalized event carries."""

    kind: ClassVar[EventKind]
    ts_event: int
    seq: int
    venue: str
    symbol: str


@dataclass(frozen=True, slots=True)
class OrderAdded(Event):
    """A new displayed order (ITCH A, or F with ``mpid``)."""

    kind: ClassVar[EventKind] = EventKind.ORDER_ADDED
    order_ref: int
    side: str
    shares: int
    price: int
    mpid: str | None = None


@dataclass(frozen=True, slots=True)
class OrderExecuted(Event):
    """Shares of a resting order executed (ITCH E at the order's price, or C with its own price).

    ``price`` is ``None`` for E: the order's price is known to the book, not to the message.
    """

    kind: ClassVar[EventKind] = EventKind.ORDER_EXECUTED
    order_ref: int
    shares: int
    match_number: int
    printable: bool
    price: int | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled(Event):
    """Part of a resting order cancelled (ITCH X); ``shares`` is the number removed."""

    kind: ClassVar[EventKind] = EventKind.ORDER_CANCELLED
    order_ref: int
    shares: int


@dataclass(frozen=True, slots=True)
class OrderDeleted(Event):
    """A resting order removed entirely (ITCH D)."""

    kind: ClassVar[EventKind] = EventKind.ORDER_DELETED
    order_ref: int


@dataclass(frozen=True, slots=True)
class OrderReplaced(Event):
    """An order cancelled and replaced by ``new_order_ref`` with a new size and price (ITCH U).

    The side is that of the original order (known to the book).
    """

    kind: ClassVar[EventKind] = EventKind.ORDER_REPLACED
    order_ref: int
    new_order_ref: int
    shares: int
    price: int


@dataclass(frozen=True, slots=True)
class Trade(Event):
    """An execution against a non-displayed order (ITCH P); does not touch the displayed book."""

    kind: ClassVar[EventKind] = EventKind.TRADE
    order_ref: int
    side: str
    shares: int
    price: int
    match_number: int


@dataclass(frozen=True, slots=True)
class CrossTrade(Event):
    """The bulk print of an opening, closing, IPO/halt or intraday cross (ITCH Q)."""

    kind: ClassVar[EventKind] = EventKind.CROSS_TRADE
    shares: int
    price: int
    match_number: int
    cross_type: str


@dataclass(frozen=True, slots=True)
class BrokenTrade(Event):
    """A previously reported execution or trade broken (ITCH B)."""

    kind: ClassVar[EventKind] = EventKind.BROKEN_TRADE
    match_number: int


@dataclass(frozen=True, slots=True)
class SystemEvent(Event):
    """Market-wide session event (ITCH S): O, S, Q, M, E, C. ``symbol`` is empty."""

    kind: ClassVar[EventKind] = EventKind.SYSTEM_EVENT
    event_code: str


@dataclass(frozen=True, slots=True)
class TradingState(Event):
    """The symbol's trading state changed (ITCH H): H halted, P paused, Q quote-only, T trading."""

    kind: ClassVar[EventKind] = EventKind.TRADING_STATE
    trading_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class RegShoRestriction(Event):
    """Reg SHO short-sale price test status (ITCH Y)."""

    kind: ClassVar[EventKind] = EventKind.REG_SHO
    reg_sho_action: str


@dataclass(frozen=True, slots=True)
class OperationalHalt(Event):
    """An operational halt or resumption on one market (ITCH h)."""

    kind: ClassVar[EventKind] = EventKind.OPERATIONAL_HALT
    market_code: str
    operational_halt_action: str


@dataclass(frozen=True, slots=True)
class StockDirectory(Event):
    """The symbol's reference data for the day (ITCH R)."""

    kind: ClassVar[EventKind] = EventKind.STOCK_DIRECTORY
    market_category: str
    financial_status_indicator: str
    round_lot_size: int
    round_lots_only: str
    issue_classification: str
    issue_sub_type: str
    authenticity: str
    short_sale_threshold_indicator: str
    ipo_flag: str
    luld_reference_price_tier: str
    etp_flag: str
    etp_leverage_factor: int
    inverse_indicator: str


@dataclass(frozen=True, slots=True)
class AuxiliaryMessage(Event):
    """An ITCH message without a dedicated kind (L, V, W, K, J, I, N, O), kept byte for byte.

    Decode ``payload`` with ``itchflow.itch.codec.decode`` when needed (e.g. NOII for auctions).
    """

    kind: ClassVar[EventKind] = EventKind.AUXILIARY
    message_type: str
    payload: bytes


NormalizedEvent = (
    OrderAdded
    | OrderExecuted
    | OrderCancelled
    | OrderDeleted
    | OrderReplaced
    | Trade
    | CrossTrade
    | BrokenTrade
    | SystemEvent
    | TradingState
    | RegShoRestriction
    | OperationalHalt
    | StockDirectory
    | AuxiliaryMessage
)
"""Any normalized event."""
