"""NASDAQ TotalView-ITCH 5.0 messages as frozen, slotted dataclasses.

One class per message type of the specification ("Nasdaq TotalView-ITCH 5.0", 2015, section 1.x), with
the specification's field names in snake_case. Every message starts with the same three header fields:

* ``stock_locate`` -- the locate code of the security (0 for market-wide messages),
* ``tracking_number`` -- the Nasdaq internal tracking number,
* ``timestamp`` -- nanoseconds since midnight (6 bytes on the wire).

Conventions:

* Integers stay integers. Prices are integer ticks with ``PRICE_SCALE`` (4 decimals) except the MWCB
  decline levels of ``V``, which use ``MWCB_PRICE_SCALE`` (8 decimals).
* Alpha fields longer than one byte (``stock``, ``attribution``, ``mpid``, ``reason``,
  ``issue_sub_type``) are ``str`` with trailing spaces stripped; the encoder pads them back with spaces,
  so a decode/encode round trip reproduces the original bytes exactly. Bytes are read as Latin-1, so
  any byte value survives the round trip.
* One-byte alpha fields (flags, codes, sides) are one-character ``str`` kept as-is (a space is a valid
  value for several of them, e.g. "not available").
* Every class has ``message_type``: the one-letter type code as a class attribute.

Field order is the wire order, so ``cls(*values)`` works positionally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

PRICE_SCALE = 10_000
"""Price(4): integer ticks per dollar for every price except the MWCB levels."""

MWCB_PRICE_SCALE = 100_000_000
"""Price(8): integer ticks per dollar for the MWCB decline levels of message ``V``."""


# --- 1.1 System Event -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """``S`` -- start/end of messages, system hours, market hours (``event_code`` O S Q M E C)."""

    message_type: ClassVar[str] = "S"
    stock_locate: int
    tracking_number: int
    timestamp: int
    event_code: str


# --- 1.2 Stock related messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StockDirectory:
    """``R`` -- one per security at the start of day: symbol, listing market, round lots, flags."""

    message_type: ClassVar[str] = "R"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
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
class StockTradingAction:
    """``H`` -- trading state of a security (``trading_state`` H P Q T) and the reason code."""

    message_type: ClassVar[str] = "H"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    trading_state: str
    reserved: str
    reason: str


@dataclass(frozen=True, slots=True)
class RegSHORestriction:
    """``Y`` -- Reg SHO short sale price test restriction (``reg_sho_action`` 0 1 2)."""

    message_type: ClassVar[str] = "Y"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    reg_sho_action: str


@dataclass(frozen=True, slots=True)
class MarketParticipantPosition:
    """``L`` -- market maker status of a participant (MPID) in a security."""

    message_type: ClassVar[str] = "L"
    stock_locate: int
    tracking_number: int
    timestamp: int
    mpid: str
    stock: str
    primary_market_maker: str
    market_maker_mode: str
    market_participant_state: str


@dataclass(frozen=True, slots=True)
class MWCBDeclineLevel:
    """``V`` -- market-wide circuit breaker decline levels, Price(8) (see ``MWCB_PRICE_SCALE``)."""

    message_type: ClassVar[str] = "V"
    stock_locate: int
    tracking_number: int
    timestamp: int
    level_1: int
    level_2: int
    level_3: int


@dataclass(frozen=True, slots=True)
class MWCBStatus:
    """``W`` -- a market-wide circuit breaker level was breached (``breached_level`` 1 2 3)."""

    message_type: ClassVar[str] = "W"
    stock_locate: int
    tracking_number: int
    timestamp: int
    breached_level: str


@dataclass(frozen=True, slots=True)
class IPOQuotingPeriodUpdate:
    """``K`` -- anticipated quotation release time (seconds since midnight) and price of an IPO."""

    message_type: ClassVar[str] = "K"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    ipo_quotation_release_time: int
    ipo_quotation_release_qualifier: str
    ipo_price: int


@dataclass(frozen=True, slots=True)
class LULDAuctionCollar:
    """``J`` -- limit up/limit down auction collar prices and extension count."""

    message_type: ClassVar[str] = "J"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    auction_collar_reference_price: int
    upper_auction_collar_price: int
    lower_auction_collar_price: int
    auction_collar_extension: int


@dataclass(frozen=True, slots=True)
class OperationalHalt:
    """``h`` -- operational halt or resume of a security on one market (``market_code`` Q B X)."""

    message_type: ClassVar[str] = "h"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    market_code: str
    operational_halt_action: str


# --- 1.3 Add order messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddOrder:
    """``A`` -- a new unattributed order rests on the book."""

    message_type: ClassVar[str] = "A"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    buy_sell_indicator: str
    shares: int
    stock: str
    price: int


@dataclass(frozen=True, slots=True)
class AddOrderMPID:
    """``F`` -- a new order attributed to a market participant (``attribution`` is the MPID)."""

    message_type: ClassVar[str] = "F"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    buy_sell_indicator: str
    shares: int
    stock: str
    price: int
    attribution: str


# --- 1.4 Modify order messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderExecuted:
    """``E`` -- shares of a resting order executed at the order's own price."""

    message_type: ClassVar[str] = "E"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    executed_shares: int
    match_number: int


@dataclass(frozen=True, slots=True)
class OrderExecutedWithPrice:
    """``C`` -- shares of a resting order executed at ``execution_price`` (``printable`` Y/N)."""

    message_type: ClassVar[str] = "C"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    executed_shares: int
    match_number: int
    printable: str
    execution_price: int


@dataclass(frozen=True, slots=True)
class OrderCancel:
    """``X`` -- part of a resting order cancelled."""

    message_type: ClassVar[str] = "X"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    cancelled_shares: int


@dataclass(frozen=True, slots=True)
class OrderDelete:
    """``D`` -- the remainder of a resting order removed from the book."""

    message_type: ClassVar[str] = "D"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int


@dataclass(frozen=True, slots=True)
class OrderReplace:
    """``U`` -- an order replaced by a new reference with new shares and price (same side, loses priority)."""

    message_type: ClassVar[str] = "U"
    stock_locate: int
    tracking_number: int
    timestamp: int
    original_order_reference_number: int
    new_order_reference_number: int
    shares: int
    price: int


# --- 1.5 Trade messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trade:
    """``P`` -- a non-cross trade against a non-displayed order (does not touch the visible book)."""

    message_type: ClassVar[str] = "P"
    stock_locate: int
    tracking_number: int
    timestamp: int
    order_reference_number: int
    buy_sell_indicator: str
    shares: int
    stock: str
    price: int
    match_number: int


@dataclass(frozen=True, slots=True)
class CrossTrade:
    """``Q`` -- the bulk print of an opening/closing/halt/IPO cross (``shares`` is 8 bytes on the wire)."""

    message_type: ClassVar[str] = "Q"
    stock_locate: int
    tracking_number: int
    timestamp: int
    shares: int
    stock: str
    cross_price: int
    match_number: int
    cross_type: str


@dataclass(frozen=True, slots=True)
class BrokenTrade:
    """``B`` -- an execution (by ``match_number``) was broken."""

    message_type: ClassVar[str] = "B"
    stock_locate: int
    tracking_number: int
    timestamp: int
    match_number: int


# --- 1.6 NOII, 1.7 RPII, 1.8 Direct listing with capital raise --------------------------------------------


@dataclass(frozen=True, slots=True)
class NetOrderImbalanceIndicator:
    """``I`` -- auction imbalance information ahead of a cross."""

    message_type: ClassVar[str] = "I"
    stock_locate: int
    tracking_number: int
    timestamp: int
    paired_shares: int
    imbalance_shares: int
    imbalance_direction: str
    stock: str
    far_price: int
    near_price: int
    current_reference_price: int
    cross_type: str
    price_variation_indicator: str


@dataclass(frozen=True, slots=True)
class RetailPriceImprovementIndicator:
    """``N`` -- retail price improvement interest on the buy/sell side (``interest_flag`` B S A N)."""

    message_type: ClassVar[str] = "N"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    interest_flag: str


@dataclass(frozen=True, slots=True)
class DirectListingWithCapitalRaisePriceDiscovery:
    """``O`` -- price discovery of a direct listing with capital raise (DLCR)."""

    message_type: ClassVar[str] = "O"
    stock_locate: int
    tracking_number: int
    timestamp: int
    stock: str
    open_eligibility_status: str
    minimum_allowable_price: int
    maximum_allowable_price: int
    near_execution_price: int
    near_execution_time: int
    lower_price_range_collar: int
    upper_price_range_collar: int


Message = (
    SystemEvent
    | StockDirectory
    | StockTradingAction
    | RegSHORestriction
    | MarketParticipantPosition
    | MWCBDeclineLevel
    | MWCBStatus
    | IPOQuotingPeriodUpdate
    | LULDAuctionCollar
    | OperationalHalt
    | AddOrder
    | AddOrderMPID
    | OrderExecuted
    | OrderExecutedWithPrice
    | OrderCancel
    | OrderDelete
    | OrderReplace
    | Trade
    | CrossTrade
    | BrokenTrade
    | NetOrderImbalanceIndicator
    | RetailPriceImprovementIndicator
    | DirectListingWithCapitalRaisePriceDiscovery
)
"""Any ITCH 5.0 message."""

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.message_type: cls
    for cls in (
        SystemEvent,
        StockDirectory,
        StockTradingAction,
        RegSHORestriction,
        MarketParticipantPosition,
        MWCBDeclineLevel,
        MWCBStatus,
        IPOQuotingPeriodUpdate,
        LULDAuctionCollar,
        OperationalHalt,
        AddOrder,
        AddOrderMPID,
        OrderExecuted,
        OrderExecutedWithPrice,
        OrderCancel,
        OrderDelete,
        OrderReplace,
        Trade,
        CrossTrade,
        BrokenTrade,
        NetOrderImbalanceIndicator,
        RetailPriceImprovementIndicator,
        DirectListingWithCapitalRaisePriceDiscovery,
    )
}
"""Message class by its one-letter type code."""

MESSAGE_LENGTHS: dict[str, int] = {
    "S": 12,
    "R": 39,
    "H": 25,
    "Y": 20,
    "L": 26,
    "V": 35,
    "W": 12,
    "K": 28,
    "J": 35,
    "h": 21,
    "A": 36,
    "F": 40,
    "E": 31,
    "C": 36,
    "X": 23,
    "D": 19,
    "U": 35,
    "P": 44,
    "Q": 40,
    "B": 19,
    "I": 50,
    "N": 20,
    "O": 48,
}
"""Payload length in bytes (type byte included) of every message type, from the specification."""

__all__ = [
    "MESSAGE_LENGTHS",
    "MESSAGE_TYPES",
    "MWCB_PRICE_SCALE",
    "PRICE_SCALE",
    "AddOrder",
    "AddOrderMPID",
    "BrokenTrade",
    "CrossTrade",
    "DirectListingWithCapitalRaisePriceDiscovery",
    "IPOQuotingPeriodUpdate",
    "LULDAuctionCollar",
    "MWCBDeclineLevel",
    "MWCBStatus",
    "MarketParticipantPosition",
    "Message",
    "NetOrderImbalanceIndicator",
    "OperationalHalt",
    "OrderCancel",
    "OrderDelete",
    "OrderExecuted",
    "OrderExecutedWithPrice",
    "OrderReplace",
    "RegSHORestriction",
    "RetailPriceImprovementIndicator",
    "StockDirectory",
    "StockTradingAction",
    "SystemEvent",
    "Trade",
]

# MESSAGES-READY
