"""Message factories for the order book tests: named time constants, short readable constructors."""

from __future__ import annotations

from itchflow.itch import messages as m

T0 = 34_200_000_000_000  # 09:30:00 in nanoseconds since midnight
MS = 1_000_000
LOCATE = 7
SYMBOL = "TEST"


def dollars(value: str) -> int:
    """'10.25' -> 102500 (4-decimal ticks), written out so expectations stay readable."""
    whole, _, fraction = value.partition(".")
    return int(whole) * 10_000 + int(fraction.ljust(4, "0"))


def add_order(
    ref: int, side: str, px: int, qty: int, ts: int = T0, locate: int = LOCATE, stock: str = SYMBOL
):
    return m.AddOrder(locate, 0, ts, ref, side, qty, stock, px)


def add_attributed(
    ref: int, side: str, px: int, qty: int, ts: int = T0, locate: int = LOCATE, stock: str = SYMBOL
):
    return m.AddOrderMPID(locate, 0, ts, ref, side, qty, stock, px, "GSCO")


def executed(ref: int, qty: int, ts: int = T0, match: int = 1, locate: int = LOCATE):
    return m.OrderExecuted(locate, 0, ts, ref, qty, match)


def executed_at(
    ref: int, qty: int, px: int, printable: str = "Y", ts: int = T0, match: int = 1, locate: int = LOCATE
):
    return m.OrderExecutedWithPrice(locate, 0, ts, ref, qty, match, printable, px)


def cancel(ref: int, qty: int, ts: int = T0, locate: int = LOCATE):
    return m.OrderCancel(locate, 0, ts, ref, qty)


def delete(ref: int, ts: int = T0, locate: int = LOCATE):
    return m.OrderDelete(locate, 0, ts, ref)


def replace(ref: int, new_ref: int, px: int, qty: int, ts: int = T0, locate: int = LOCATE):
    return m.OrderReplace(locate, 0, ts, ref, new_ref, qty, px)


def trade(px: int, qty: int, ts: int = T0, match: int = 1, locate: int = LOCATE, stock: str = SYMBOL):
    return m.Trade(locate, 0, ts, 0, "B", qty, stock, px, match)


def cross_trade(px: int, qty: int, ts: int = T0, match: int = 1, locate: int = LOCATE, stock: str = SYMBOL):
    return m.CrossTrade(locate, 0, ts, qty, stock, px, match, "O")


def stock_directory(locate: int, stock: str, ts: int = T0):
    return m.StockDirectory(
        locate, 0, ts, stock, "Q", "N", 100, "N", "C", "C", "P", "N", "N", "1", "N", 0, "N"
    )


def system_event(code: str, ts: int = T0):
    return m.SystemEvent(0, 0, ts, code)
