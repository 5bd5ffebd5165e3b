"""The normalized topic record: events of one symbol as packed little-endian columns.

``NormalizedBatch`` mirrors ``schemas/normalized/NormalizedBatch.avsc``. Columns are ``bytes``
holding little-endian arrays (one entry per event); :meth:`EventColumns.views` gives zero-copy
typed views (``memoryview.cast``), ``numpy.frombuffer(column, "<i8")`` works too. Attributes
that only a few kinds have travel in the sparse ``details`` list, linked by event index.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, NamedTuple

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.normalize.events import (
    FLAG_HAS_PRICE,
    FLAG_PRINTABLE,
    PRICE_DECIMALS,
    AuxiliaryMessage,
    BrokenTrade,
    CrossTrade,
    EventKind,
    NormalizedEvent,
    OperationalHalt,
    OrderAdded,
    OrderCancelled,
    OrderDeleted,
    OrderExecuted,
    OrderReplaced,
    RegShoRestriction,
    StockDirectory,
    SystemEvent,
    Trade,
    TradingState,
)
from itchflow.normalize.sequence import SequenceStatus

BYTE_COLUMNS = ("kind", "flags", "side")
"""uint8 columns."""
SIGNED_COLUMNS = ("ts_event", "seq", "price")
"""int64 little-endian columns."""
UNSIGNED_COLUMNS = ("order_ref", "new_order_ref", "match_number", "shares")
"""uint64 little-endian columns."""

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"
_MAX_KIND = max(EventKind)

Detail = tuple[str, dict[str, Any]]
"""A sparse attribute record: (short record name, fields including ``index``), e.g.
``("Attribution", {"index": 3, "mpid": "GSCO"})``."""


class ColumnViews(NamedTuple):
    """Typed, zero-copy views of the columns: index ``i`` is event ``i``."""

    kind: memoryview | array[int]
    flags: memoryview | array[int]
    side: memoryview | array[int]
    ts_event: memoryview | array[int]
    seq: memoryview | array[int]
    order_ref: memoryview | array[int]
    new_order_ref: memoryview | array[int]
    match_number: memoryview | array[int]
    shares: memoryview | array[int]
    price: memoryview | array[int]


def _view(column: bytes, typecode: Literal["q", "Q"]) -> memoryview | array[int]:
    if _LITTLE_ENDIAN_HOST:
        return memoryview(column).cast(typecode)
    values = array(typecode, column)  # pragma: no cover - big-endian hosts only
    values.byteswap()  # pragma: no cover
    return values  # pragma: no cover


def pack_int64(values: list[int] | tuple[int, ...]) -> bytes:
    """Little-endian int64 array bytes of ``values``."""
    return _pack("q", values)


def pack_uint64(values: list[int] | tuple[int, ...]) -> bytes:
    """Little-endian uint64 array bytes of ``values``."""
    return _pack("Q", values)


def _pack(typecode: str, values: list[int] | tuple[int, ...]) -> bytes:
    packed = array(typecode, values)
    if not _LITTLE_ENDIAN_HOST:  # pragma: no cover - big-endian hosts only
        packed.byteswap()
    return packed.tobytes()


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The packed per-event columns of a batch (see the schema docs for each column)."""

    kind: bytes
    flags: bytes
    side: bytes
    ts_event: bytes
    seq: bytes
    order_ref: bytes
    new_order_ref: bytes
    match_number: bytes
    shares: bytes
    price: bytes

    def views(self) -> ColumnViews:
        """Zero-copy typed views: uint8 for kind/flags/side, int64 or uint64 for the rest."""
        return ColumnViews(
            memoryview(self.kind),
            memoryview(self.flags),
            memoryview(self.side),
            _view(self.ts_event, "q"),
            _view(self.seq, "q"),
            _view(self.order_ref, "Q"),
            _view(self.new_order_ref, "Q"),
            _view(self.match_number, "Q"),
            _view(self.shares, "Q"),
            _view(self.price, "q"),
        )


EMPTY_COLUMNS = EventColumns(b"", b"", b"", b"", b"", b"", b"", b"", b"", b"")


@dataclass(frozen=True, slots=True)
class NormalizedBatch:
    """One ``market-data-normalized`` record: the events of one symbol from one raw batch."""

    venue: str
    trading_date: date
    symbol: str
    stock_locate: int
    session: str
    batch_sequence: int
    sequence_status: SequenceStatus
    gap_batches: int
    gap_messages: int
    event_count: int
    min_ts_event: int
    max_ts_event: int
    ts_produced: int
    ts_recv: int
    columns: EventColumns
    details: tuple[Detail, ...] = ()
    price_scale: int = PRICE_DECIMALS


def check_columns(columns: EventColumns, count: int) -> None:
    """Raise ``bad_columns`` unless every column holds ``count`` entries of known kinds."""
    if count < 0:
        raise InvalidRecord(InvalidReason.BAD_COLUMNS, f"event_count {count}")
    for name in BYTE_COLUMNS:
        if len(getattr(columns, name)) != count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS,
                f"column {name}: {len(getattr(columns, name))} bytes for {count} events",
            )
    for name in SIGNED_COLUMNS + UNSIGNED_COLUMNS:
        if len(getattr(columns, name)) != 8 * count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS,
                f"column {name}: {len(getattr(columns, name))} bytes for {count} events of 8 bytes",
            )
    if count and (min(columns.kind) < 1 or max(columns.kind) > _MAX_KIND):
        raise InvalidRecord(
            InvalidReason.BAD_COLUMNS,
            f"unknown event kind in {sorted(set(columns.kind))} (this reader knows 1..{_MAX_KIND})",
        )


def iter_events(batch: NormalizedBatch) -> Iterator[NormalizedEvent]:
    """The batch's events as dataclasses, in order (readable form; hot paths use the columns)."""
    venue, symbol = batch.venue, batch.symbol
    views = batch.columns.views()
    details = {fields["index"]: (name, fields) for name, fields in batch.details}
    kinds, flags, sides = views.kind, views.flags, views.side
    for i in range(batch.event_count):
        kind = kinds[i]
        ts, seq = views.ts_event[i], views.seq[i]
        if kind == EventKind.ORDER_ADDED:
            detail = details.get(i)
            yield OrderAdded(
                ts,
                seq,
                venue,
                symbol,
                views.order_ref[i],
                chr(sides[i]),
                views.shares[i],
                views.price[i],
                detail[1]["mpid"] if detail else None,
            )
        elif kind == EventKind.ORDER_EXECUTED:
            yield OrderExecuted(
                ts,
                seq,
                venue,
                symbol,
                views.order_ref[i],
                views.shares[i],
                views.match_number[i],
                bool(flags[i] & FLAG_PRINTABLE),
                views.price[i] if flags[i] & FLAG_HAS_PRICE else None,
            )
        elif kind == EventKind.ORDER_CANCELLED:
            yield OrderCancelled(ts, seq, venue, symbol, views.order_ref[i], views.shares[i])
        elif kind == EventKind.ORDER_DELETED:
            yield OrderDeleted(ts, seq, venue, symbol, views.order_ref[i])
        elif kind == EventKind.ORDER_REPLACED:
            yield OrderReplaced(
                ts,
                seq,
                venue,
                symbol,
                views.order_ref[i],
                views.new_order_ref[i],
                views.shares[i],
                views.price[i],
            )
        elif kind == EventKind.TRADE:
            yield Trade(
                ts,
                seq,
                venue,
                symbol,
                views.order_ref[i],
                chr(sides[i]),
                views.shares[i],
                views.price[i],
                views.match_number[i],
            )
        elif kind == EventKind.BROKEN_TRADE:
            yield BrokenTrade(ts, seq, venue, symbol, views.match_number[i])
        else:
            yield _event_with_detail(kind, ts, seq, venue, symbol, views, i, details.get(i))


def _event_with_detail(
    kind: int,
    ts: int,
    seq: int,
    venue: str,
    symbol: str,
    views: ColumnViews,
    i: int,
    detail: Detail | None,
) -> NormalizedEvent:
    if detail is None:
        raise InvalidRecord(
            InvalidReason.BAD_COLUMNS, f"event {i} of kind {EventKind(kind).name} has no detail"
        )
    fields = detail[1]
    if kind == EventKind.CROSS_TRADE:
        return CrossTrade(
            ts,
            seq,
            venue,
            symbol,
            views.shares[i],
            views.price[i],
            views.match_number[i],
            fields["cross_type"],
        )
    if kind == EventKind.SYSTEM_EVENT:
        return SystemEvent(ts, seq, venue, symbol, fields["event_code"])
    if kind == EventKind.TRADING_STATE:
        return TradingState(ts, seq, venue, symbol, fields["trading_state"], fields["reason"])
    if kind == EventKind.REG_SHO:
        return RegShoRestriction(ts, seq, venue, symbol, fields["reg_sho_action"])
    if kind == EventKind.OPERATIONAL_HALT:
        return OperationalHalt(
            ts, seq, venue, symbol, fields["market_code"], fields["operational_halt_action"]
        )
    if kind == EventKind.STOCK_DIRECTORY:
        values = {key: value for key, value in fields.items() if key != "index"}
        return StockDirectory(ts, seq, venue, symbol, **values)
    return AuxiliaryMessage(ts, seq, venue, symbol, fields["message_type"], fields["payload"])
