"""The per-run event loop over an :class:`~itchflow.book.OrderBook`: the Python twin of the C book's
``apply_events`` (``itchflow/book/_cbook.c``).

The order-book stage hands a book one symbol's run of normalized events as packed columns
(:class:`~itchflow.normalize.ColumnViews`). :func:`apply_columns` applies them with the book's
primitive methods and tracks what the stage emits: every change of the top of book, every trade
print, and whether the top ``depth_levels`` levels may have moved. It reads the book's live
structures (:meth:`~itchflow.book.OrderBook.structures`) between the primitive calls: the book's
queries build a frozen dataclass per call, which would double the cost per event.
:mod:`itchflow.book.engine` puts this loop and the C one behind one interface.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from itchflow.book.core import OrderBook
from itchflow.book.values import BUY, SELL, TopOfBook
from itchflow.normalize import FLAG_HAS_PRICE, FLAG_PRINTABLE, ColumnViews, EventKind

_ADDED = int(EventKind.ORDER_ADDED)
_EXECUTED = int(EventKind.ORDER_EXECUTED)
_CANCELLED = int(EventKind.ORDER_CANCELLED)
_DELETED = int(EventKind.ORDER_DELETED)
_REPLACED = int(EventKind.ORDER_REPLACED)
_TRADE = int(EventKind.TRADE)
_CROSS_TRADE = int(EventKind.CROSS_TRADE)
_SIDE_NAMES = tuple(chr(code) for code in range(256))
_BUY_CODE = ord(BUY)
_LOWEST = -(1 << 63)
_HIGHEST = 1 << 64


class RunResult(NamedTuple):
    """What :func:`apply_columns` did to one run of events."""

    applied: int
    duplicates: int
    last_seq: int
    last_ts_event: int
    max_ts_event: int
    top: TopOfBook
    top_rows: list[tuple[int, ...]]
    """(book seq, ts_event, *top of book) per change."""
    trade_rows: list[tuple[Any, ...]]
    """(book seq, ts_event, source, match number, price, shares, side, printable)."""
    deep: bool
    """An event touched a level within the top ``depth_levels`` of its side (or could have)."""


def apply_columns(
    book: OrderBook,
    views: ColumnViews,
    last_seq: int,
    seq_base: int,
    top: TopOfBook,
    depth_levels: int,
    deep: bool,
    attributed: frozenset[int],
) -> RunResult:
    """Apply every event of ``views`` with ``seq`` above ``last_seq`` (the others are duplicates);
    ``top`` is the top of book before them, ``seq_base + seq`` each event's book sequence, and
    ``attributed`` the seqs of the adds that carry an MPID (ITCH F).

    One long function on purpose: it runs once per event (locals, no calls but the book's).
    The best levels are re-read only after an event that may have changed them: one that adds
    at or through the best price of its side, or touches an order resting at the best price
    (which needs the order's price and side, read before the book applies the event), or adds
    a reference that is still live (the book replaces that order, which can be on either side).
    ``deep`` (passed in True to force it) is set by any event at or above the ``depth_levels``-th
    best price of its side (taken before the run: until such an event the top levels cannot move),
    so the depth is rebuilt and compared only after runs that may have changed it.
    """
    orders, bid_levels, ask_levels, bid_prices, ask_prices = book.structures()
    resting = orders.get
    add_order, delete_order, cancel_order = book.add_order, book.delete_order, book.cancel_order
    execute_order, execute_at_price = book.execute_order, book.execute_order_at_price
    replace_order, record_trade = book.replace_order, book.record_trade
    side_names = _SIDE_NAMES
    levels = depth_levels
    bid_floor = bid_prices[-levels] if len(bid_prices) >= levels else _LOWEST
    ask_ceiling = ask_prices[levels - 1] if len(ask_prices) >= levels else _HIGHEST
    base = seq_base
    bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders = top
    top_rows: list[tuple[int, ...]] = []
    trade_rows: list[tuple[Any, ...]] = []
    duplicates = max_ts = last_ts = 0
    for kind, flags, side, ts, seq, ref, new_ref, match, shares, price in zip(*views, strict=True):
        if seq <= last_seq:
            duplicates += 1
            continue
        last_seq, last_ts = seq, ts
        if ts > max_ts:
            max_ts = ts
        # sides whose best level the event may change: 1 bid, 2 ask, 3 both
        if kind == _ADDED:
            if ref in orders:
                sides = 3
                deep = True
            else:
                sides = 0
            if side == _BUY_CODE:
                if price >= bid_price:
                    sides |= 1
                if price >= bid_floor:
                    deep = True
            else:
                if not ask_price or price <= ask_price:
                    sides |= 2
                if price <= ask_ceiling:
                    deep = True
            if attributed and seq in attributed:
                add_order(ref, side_names[side], price, shares, attributed=True)
            else:
                add_order(ref, side_names[side], price, shares)
        elif kind == _DELETED:
            order = resting(ref)
            delete_order(ref)
            if order is None:
                continue
            if order[2]:
                sides = order[0] == bid_price
                if order[0] >= bid_floor:
                    deep = True
            else:
                sides = 2 * (order[0] == ask_price)
                if order[0] <= ask_ceiling:
                    deep = True
        elif kind == _CANCELLED:
            order = resting(ref)
            cancel_order(ref, shares)
            if order is None:
                continue
            if order[2]:
                sides = order[0] == bid_price
                if order[0] >= bid_floor:
                    deep = True
            else:
                sides = 2 * (order[0] == ask_price)
                if order[0] <= ask_ceiling:
                    deep = True
        elif kind == _EXECUTED:
            order = resting(ref)
            if flags & FLAG_HAS_PRICE:
                printable = flags & FLAG_PRINTABLE
                execute_at_price(ref, shares, price, ts, match, printable=bool(printable))
                if shares > 0:
                    side_name = "" if order is None else (BUY if order[2] else SELL)
                    trade_rows.append((base + seq, ts, "C", match, price, shares, side_name, printable))
            else:
                execute_order(ref, shares, ts, match)
                if order is not None and shares > 0:
                    side_name = BUY if order[2] else SELL
                    trade_rows.append((base + seq, ts, "E", match, order[0], shares, side_name, 1))
            if order is None:
                continue
            if order[2]:
                sides = order[0] == bid_price
                if order[0] >= bid_floor:
                    deep = True
            else:
                sides = 2 * (order[0] == ask_price)
                if order[0] <= ask_ceiling:
                    deep = True
        elif kind == _REPLACED:
            order = resting(ref)
            if new_ref in orders:
                sides = 3
                deep = True
            else:
                sides = 0
            replace_order(ref, new_ref, price, shares)
            if order is None:
                continue
            if order[2]:
                if order[0] == bid_price or price >= bid_price:
                    sides |= 1
                if order[0] >= bid_floor or price >= bid_floor:
                    deep = True
            else:
                if order[0] == ask_price or price <= ask_price:
                    sides |= 2
                if order[0] <= ask_ceiling or price <= ask_ceiling:
                    deep = True
        elif kind == _TRADE:
            record_trade(price, shares, ts, match)
            if shares > 0:
                trade_rows.append((base + seq, ts, "P", match, price, shares, side_names[side], 1))
            continue
        elif kind == _CROSS_TRADE:
            record_trade(price, shares, ts, match, cross=True)
            if shares > 0:
                trade_rows.append((base + seq, ts, "Q", match, price, shares, "", 1))
            continue
        else:
            continue  # not a book event: counted in ``messages`` only
        if not sides:
            continue
        changed = False
        if sides & 1:
            if bid_prices:
                best = bid_prices[-1]
                level_shares, level_orders = bid_levels[best]
            else:
                best = level_shares = level_orders = 0
            if best != bid_price or level_shares != bid_shares or level_orders != bid_orders:
                bid_price, bid_shares, bid_orders = best, level_shares, level_orders
                changed = True
        if sides & 2:
            if ask_prices:
                best = ask_prices[0]
                level_shares, level_orders = ask_levels[best]
            else:
                best = level_shares = level_orders = 0
            if best != ask_price or level_shares != ask_shares or level_orders != ask_orders:
                ask_price, ask_shares, ask_orders = best, level_shares, level_orders
                changed = True
        if changed:
            top_rows.append(
                (base + seq, ts, bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders)
            )
    top = (bid_price, bid_shares, bid_orders, ask_price, ask_shares, ask_orders)
    applied = len(views.kind) - duplicates
    return RunResult(applied, duplicates, last_seq, last_ts, max_ts, top, top_rows, trade_rows, deep)
