"""``market-data-raw`` bundle -> ``market-data-normalized`` bundle: the pure normalization step.

One pass over the bundle's ITCH bytes. The order-book messages that make up nearly all of a feed
(A D U E X C P) are unpacked straight into column rows with one precompiled ``struct`` per type
(no message objects: ~3x faster than decoding to dataclasses first); every other type goes through
the ITCH codec. The rows are then transposed into packed columns.

A segment that cannot be resolved and single bad messages are left out of the events and returned
as ``rejected`` (:class:`InvalidRecord`) so the job can dead-letter them while the rest flows on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from itchflow.avro.bundle import ItchBundle, ItchSegment, SegmentInput, make_bundle
from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.extensions import use_native
from itchflow.itch import messages as itch
from itchflow.itch.codec import decode, decode_at, encode, message_length
from itchflow.itch.messages import Message
from itchflow.normalize.bundle import NormalizedBundle, NormalizedRun
from itchflow.normalize.clock import NANOS_PER_DAY, midnight_epoch_ns
from itchflow.normalize.columns import EMPTY_COLUMNS, Detail, EventColumns, pack_int64, pack_uint64
from itchflow.normalize.events import FLAG_HAS_PRICE, FLAG_PRINTABLE, EventKind
from itchflow.normalize.sequence import SequenceCheck, SequenceStatus

try:  # the fast path in C (itchflow/extensions.py); the Python code below is the reference
    from itchflow.normalize import _cscan
except ImportError:  # not built: no C compiler at set-up
    _cscan = None  # type: ignore[assignment]

_ADDED, _EXECUTED, _CANCELLED, _DELETED, _REPLACED = (
    int(EventKind.ORDER_ADDED),
    int(EventKind.ORDER_EXECUTED),
    int(EventKind.ORDER_CANCELLED),
    int(EventKind.ORDER_DELETED),
    int(EventKind.ORDER_REPLACED),
)
_PRICED = FLAG_HAS_PRICE
_PRINTED = FLAG_PRINTABLE | FLAG_HAS_PRICE

Row = tuple[int, int, int, int, int, int, int, int, int, int]
"""(kind, flags, side, ts_event, seq, order_ref, new_order_ref, match_number, shares, price)."""

_OK = SequenceCheck(SequenceStatus.OK)


@dataclass(slots=True)
class _Rows:
    rows: list[Row] = field(default_factory=list)
    details: list[Detail] = field(default_factory=list)
    rejected: list[InvalidRecord] = field(default_factory=list)


def normalize_messages(
    messages: Sequence[Message],
    *,
    venue: str,
    trading_date: date,
    symbol: str,
    stock_locate: int,
    session: str = "",
    batch_sequence: int = 1,
    first_message_seq: int = 0,
    directory: Mapping[int, str] | None = None,
    sequence: SequenceCheck = _OK,
    ts_recv: int = 0,
) -> BundleResult:
    """Normalize decoded ITCH messages of one symbol without a raw record (tools, tests): the
    bundle of one segment holding them, by :func:`normalize_bundle`'s rules."""
    segment = SegmentInput(
        symbol, stock_locate, batch_sequence, first_message_seq, [encode(m) for m in messages]
    )
    bundle = make_bundle(
        [segment],
        venue=venue,
        trading_date=trading_date,
        session=session,
        partition=0,
        partitions=1,
        bundle_sequence=1,
        produced_at_ns=0,
    )
    return normalize_bundle(bundle, [sequence], directory=directory, ts_recv=ts_recv)


class BundleResult(NamedTuple):
    """What :func:`normalize_bundle` produced."""

    bundle: NormalizedBundle
    rejected: tuple[InvalidRecord, ...]
    """Single messages and whole segments it refused (dead letters)."""
    messages: int
    """Messages walked, duplicates included."""
    duplicate_segments: int
    duplicate_messages: int
    gap_messages: int


def normalize_bundle(
    bundle: ItchBundle,
    checks: Sequence[SequenceCheck] | None = None,
    *,
    directory: Mapping[int, str] | None = None,
    ts_recv: int = 0,
) -> BundleResult:
    """Normalize one raw bundle (pure) into one columnar bundle with a run per symbol.

    ``checks`` holds the sequence verdict of each segment (same order; default: all OK); a
    ``DUPLICATE`` segment is skipped and counted. A segment that cannot be resolved (unknown symbol,
    symbol mismatch) is rejected as a whole; single bad messages are rejected one by one. Payloads
    that end early or hold more messages than the segments announce are rejected too (the messages
    before stay valid).
    """
    out = _Rows()
    base = midnight_epoch_ns(bundle.trading_date)
    payloads = bundle.payloads
    end = len(payloads)
    runs: list[NormalizedRun] = []
    position = walked = duplicate_segments = duplicate_messages = gap_messages = 0
    scan = _fast_scan()
    for number, segment in enumerate(bundle.segments):
        check = checks[number] if checks is not None else _OK
        count = segment.message_count
        if check.status is SequenceStatus.DUPLICATE:
            position, seen, truncated = _skip(payloads, position, count)
            walked += seen
            duplicate_segments += 1
            duplicate_messages += seen
            if truncated:
                out.rejected.append(_truncated(payloads, position, seen))
                break
            continue
        try:
            symbol = _resolve_symbol(segment, directory)
        except InvalidRecord as error:
            out.rejected.append(_in_segment(error, segment))
            position, seen, truncated = _skip(payloads, position, count)
            walked += seen
            if truncated:
                break
            continue
        first_row = len(out.rows)
        position, seen, truncated = _rows(
            payloads,
            position,
            count,
            segment.stock_locate,
            segment.first_message_seq,
            symbol,
            base,
            out,
            scan,
        )
        walked += seen
        gap_messages += check.gap_messages
        made = len(out.rows) - first_row
        if made:
            runs.append(
                NormalizedRun(
                    symbol=symbol,
                    stock_locate=segment.stock_locate,
                    batch_sequence=segment.batch_sequence,
                    sequence_status=check.status,
                    gap_batches=check.gap_batches,
                    gap_messages=check.gap_messages,
                    start=first_row,
                    count=made,
                )
            )
        if truncated:
            break
        if seen < count:
            out.rejected.append(
                InvalidRecord(
                    InvalidReason.COUNT_MISMATCH,
                    f"segment {segment.symbol!r} says {count} messages, the payloads end after {seen}",
                )
            )
            break
    else:
        if position < end:
            out.rejected.append(
                InvalidRecord(
                    InvalidReason.COUNT_MISMATCH,
                    f"{end - position} byte(s) of payloads after the {len(bundle.segments)} segments' messages",
                    payload=payloads[position:],
                )
            )
    return BundleResult(
        _assemble_bundle(bundle, runs, out.rows, out.details, ts_recv),
        tuple(out.rejected),
        walked,
        duplicate_segments,
        duplicate_messages,
        gap_messages,
    )


def _skip(payloads: bytes, position: int, count: int) -> tuple[int, int, bool]:
    """Walk ``count`` length-prefixed messages without reading them: (offset, seen, truncated)."""
    end = len(payloads)
    for seen in range(count):
        start = position + 2
        size = (payloads[position] << 8 | payloads[start - 1]) if start <= end else 0
        if size == 0 or start + size > end:
            return position, seen, True
        position = start + size
    return position, count, False


def _in_segment(error: InvalidRecord, segment: ItchSegment) -> InvalidRecord:
    """``error`` (about a whole segment) with the segment named."""
    return InvalidRecord(
        error.reason,
        f"segment {segment.symbol!r} (stock_locate {segment.stock_locate}, batch {segment.batch_sequence}): "
        f"{error.detail}",
    )


def _resolve_symbol(segment: ItchSegment, directory: Mapping[int, str] | None) -> str:
    symbol = segment.symbol
    if len(symbol) > 8 or not symbol.isascii():
        raise InvalidRecord(
            InvalidReason.BAD_ENVELOPE, f"symbol {symbol!r} is not an ITCH symbol (<= 8 ASCII)"
        )
    known = None if directory is None else directory.get(segment.stock_locate)
    if not symbol and segment.stock_locate != 0:
        if known is None:
            raise InvalidRecord(
                InvalidReason.UNKNOWN_SYMBOL,
                f"no symbol and stock_locate {segment.stock_locate} is not in the directory",
            )
        return known
    if known is not None and known != symbol:
        raise InvalidRecord(
            InvalidReason.SYMBOL_MISMATCH,
            f"batch symbol {symbol!r} but the directory has {known!r} for stock_locate {segment.stock_locate}",
        )
    return symbol


# Wire layouts of the hot types (ITCH 5.0 spec, fixed forever): type byte skipped, then
# stock_locate, tracking_number (skipped), timestamp as 16 + 32 bits, then the body fields.
_HEADER = ">xHxxHI"
_UNPACK_A = struct.Struct(_HEADER + "QBI8sI").unpack_from  # order ref, side, shares, stock, price
_UNPACK_D = struct.Struct(_HEADER + "Q").unpack_from  # order ref
_UNPACK_U = struct.Struct(_HEADER + "QQII").unpack_from  # original ref, new ref, shares, price
_UNPACK_E = struct.Struct(_HEADER + "QIQ").unpack_from  # order ref, shares, match
_UNPACK_X = struct.Struct(_HEADER + "QI").unpack_from  # order ref, cancelled shares
_UNPACK_C = struct.Struct(_HEADER + "QIQBI").unpack_from  # order ref, shares, match, printable, price
_UNPACK_P = struct.Struct(_HEADER + "QBI8sIQ").unpack_from  # order ref, side, shares, stock, price, match
_LENGTHS = tuple(message_length(byte) for byte in range(256))
_A, _D, _U, _E, _X, _C, _P = (ord(letter) for letter in "ADUEXCP")
_Y = ord("Y")
_TRADE = int(EventKind.TRADE)


def _rows(
    payloads: bytes,
    position: int,
    limit: int,
    locate: int,
    seq0: int,
    symbol: str,
    base: int,
    out: _Rows,
    scan: Any,
) -> tuple[int, int, bool]:
    """Append one row per valid message (and a detail where the kind has one); reject misfits.

    Walks at most ``limit`` messages from byte offset ``position`` (``-1``: up to the end).
    Returns the offset after the last message walked, the number of messages seen (valid or not,
    so the caller can check its count) and whether the payloads ended in a truncated message.

    With the C extension built (:mod:`itchflow.extensions`), its ``scan_rows`` takes the frequent
    valid messages and stops at any other one, which :func:`_rows_python` then walks alone
    (``scan``: that function, from :func:`_fast_scan` once per batch or bundle; None: Python only).
    """
    stock = symbol.encode("latin-1").ljust(8)
    if scan is None or len(stock) != 8:
        return _rows_python(payloads, position, limit, locate, seq0, symbol, base, out, 0)
    end = len(payloads)
    rows = out.rows
    index = 0
    while True:
        position, index = scan(
            payloads, position, limit, index, locate, seq0, stock, base, NANOS_PER_DAY, rows
        )
        if position >= end or index == limit:
            return position, index, False
        position, index, truncated = _rows_python(
            payloads, position, index + 1, locate, seq0, symbol, base, out, index
        )
        if truncated:
            return position, index, True


def _fast_scan() -> Any:
    return _cscan.scan_rows if _cscan is not None and use_native() else None


def _rows_python(
    payloads: bytes,
    position: int,
    limit: int,
    locate: int,
    seq0: int,
    symbol: str,
    base: int,
    out: _Rows,
    index: int,
) -> tuple[int, int, bool]:
    """:func:`_rows` in Python, from message ``index`` (``limit`` counts from message 0)."""
    rows = out.rows
    append = rows.append
    stock = symbol.encode("latin-1").ljust(8)
    lengths = _LENGTHS
    day = NANOS_PER_DAY
    end = len(payloads)
    while position < end and index != limit:
        start = position + 2
        size = (payloads[position] << 8 | payloads[start - 1]) if start <= end else 0
        if size == 0 or start + size > end:
            out.rejected.append(_truncated(payloads, position, index))
            return end, index + 1, True
        position = start + size
        type_byte = payloads[start]
        if lengths[type_byte] != size:
            out.rejected.append(_bad_framing(payloads[start:position], index))
            index += 1
            continue
        seq = seq0 + index
        if type_byte == _A:
            loc, high, low, ref, side, shares, name, price = _UNPACK_A(payloads, start)
            row: Row | None = (
                _ADDED,
                _PRICED,
                side,
                base + (high << 32 | low),
                seq,
                ref,
                0,
                0,
                shares,
                price,
            )
            if name != stock:
                row = None
        elif type_byte == _D:
            loc, high, low, ref = _UNPACK_D(payloads, start)
            row = (_DELETED, 0, 0, base + (high << 32 | low), seq, ref, 0, 0, 0, 0)
        elif type_byte == _U:
            loc, high, low, ref, new_ref, shares, price = _UNPACK_U(payloads, start)
            row = (_REPLACED, _PRICED, 0, base + (high << 32 | low), seq, ref, new_ref, 0, shares, price)
        elif type_byte == _E:
            loc, high, low, ref, shares, match = _UNPACK_E(payloads, start)
            row = (_EXECUTED, FLAG_PRINTABLE, 0, base + (high << 32 | low), seq, ref, 0, match, shares, 0)
        elif type_byte == _X:
            loc, high, low, ref, shares = _UNPACK_X(payloads, start)
            row = (_CANCELLED, 0, 0, base + (high << 32 | low), seq, ref, 0, 0, shares, 0)
        elif type_byte == _C:
            loc, high, low, ref, shares, match, printable, price = _UNPACK_C(payloads, start)
            flags = _PRINTED if printable == _Y else _PRICED
            row = (_EXECUTED, flags, 0, base + (high << 32 | low), seq, ref, 0, match, shares, price)
        elif type_byte == _P:
            loc, high, low, ref, side, shares, name, price, match = _UNPACK_P(payloads, start)
            row = (_TRADE, _PRINTED, side, base + (high << 32 | low), seq, ref, 0, match, shares, price)
            if name != stock:
                row = None
        else:
            _rare_row(payloads, start, position, base, seq, index, locate, symbol, out)
            index += 1
            continue
        if loc != locate:
            out.rejected.append(
                _misfit(InvalidReason.LOCATE_MISMATCH, payloads[start:position], index, locate, symbol)
            )
        elif row is None:
            out.rejected.append(
                _misfit(InvalidReason.SYMBOL_MISMATCH, payloads[start:position], index, locate, symbol)
            )
        elif row[3] - base >= day:
            out.rejected.append(
                _misfit(InvalidReason.TIMESTAMP_OUT_OF_RANGE, payloads[start:position], index, locate, symbol)
            )
        else:
            append(row)
        index += 1
    return position, index, False


def _truncated(payloads: bytes, position: int, index: int) -> InvalidRecord:
    left = len(payloads) - position
    return InvalidRecord(
        InvalidReason.TRUNCATED_PAYLOAD,
        f"message {index}: {left} byte(s) left at offset {position} do not hold a length prefix and its message",
        message_index=index,
        payload=payloads[position:],
    )


def _bad_framing(payload: bytes, index: int) -> InvalidRecord:
    expected = message_length(payload[0])
    if expected == 0:
        return InvalidRecord(
            InvalidReason.UNKNOWN_MESSAGE_TYPE,
            f"message {index}: type byte 0x{payload[0]:02x} is not an ITCH 5.0 message type",
            message_index=index,
            payload=payload,
        )
    return InvalidRecord(
        InvalidReason.BAD_MESSAGE_LENGTH,
        f"message {index}: type {chr(payload[0])!r} is {expected} bytes, its length prefix says {len(payload)}",
        message_index=index,
        payload=payload,
    )


def _misfit(reason: InvalidReason, payload: bytes, index: int, locate: int, symbol: str) -> InvalidRecord:
    """A well-formed message that does not belong in this batch (or this trading day)."""
    message = decode(payload)
    if reason is InvalidReason.LOCATE_MISMATCH:
        detail = f"stock_locate {message.stock_locate}, batch has {locate}"
    elif reason is InvalidReason.SYMBOL_MISMATCH:
        detail = f"stock {getattr(message, 'stock', '')!r}, batch is {symbol!r}"
    else:
        detail = f"timestamp {message.timestamp} ns is 24 h or more after midnight"
    return InvalidRecord(
        reason, f"message {index} ({message.message_type}): {detail}", message_index=index, payload=payload
    )


def _rare_row(
    payloads: bytes,
    start: int,
    stop: int,
    base: int,
    seq: int,
    position: int,
    locate: int,
    symbol: str,
    out: _Rows,
) -> None:
    """Row for a less frequent message type, through the ITCH codec (clarity over speed)."""
    message = decode_at(payloads, start)
    reason = None
    if message.stock_locate != locate:
        reason = InvalidReason.LOCATE_MISMATCH
    elif getattr(message, "stock", symbol) != symbol:
        reason = InvalidReason.SYMBOL_MISMATCH
    elif message.timestamp >= NANOS_PER_DAY:
        reason = InvalidReason.TIMESTAMP_OUT_OF_RANGE
    if reason is not None:
        out.rejected.append(_misfit(reason, payloads[start:stop], position, locate, symbol))
        return
    ts = base + message.timestamp
    index = len(out.rows)
    row: Row
    detail: tuple[str, dict[str, object]] | None = None
    match message:
        case itch.AddOrderMPID():
            row = (
                _ADDED,
                _PRICED,
                ord(message.buy_sell_indicator),
                ts,
                seq,
                message.order_reference_number,
                0,
                0,
                message.shares,
                message.price,
            )
            detail = ("Attribution", {"index": index, "mpid": message.attribution})
        case itch.OrderExecutedWithPrice():
            flags = _PRINTED if message.printable == "Y" else _PRICED
            row = (
                _EXECUTED,
                flags,
                0,
                ts,
                seq,
                message.order_reference_number,
                0,
                message.match_number,
                message.executed_shares,
                message.execution_price,
            )
        case itch.Trade():
            row = (
                int(EventKind.TRADE),
                _PRINTED,
                ord(message.buy_sell_indicator),
                ts,
                seq,
                message.order_reference_number,
                0,
                message.match_number,
                message.shares,
                message.price,
            )
        case itch.CrossTrade():
            row = (
                int(EventKind.CROSS_TRADE),
                _PRINTED,
                0,
                ts,
                seq,
                0,
                0,
                message.match_number,
                message.shares,
                message.cross_price,
            )
            detail = ("CrossDetail", {"index": index, "cross_type": message.cross_type})
        case itch.BrokenTrade():
            row = (int(EventKind.BROKEN_TRADE), 0, 0, ts, seq, 0, 0, message.match_number, 0, 0)
        case itch.SystemEvent():
            row = _plain(EventKind.SYSTEM_EVENT, ts, seq)
            detail = ("SystemEventDetail", {"index": index, "event_code": message.event_code})
        case itch.StockTradingAction():
            row = _plain(EventKind.TRADING_STATE, ts, seq)
            detail = (
                "TradingStateDetail",
                {"index": index, "trading_state": message.trading_state, "reason": message.reason},
            )
        case itch.RegSHORestriction():
            row = _plain(EventKind.REG_SHO, ts, seq)
            detail = ("RegShoDetail", {"index": index, "reg_sho_action": message.reg_sho_action})
        case itch.OperationalHalt():
            row = _plain(EventKind.OPERATIONAL_HALT, ts, seq)
            detail = (
                "OperationalHaltDetail",
                {
                    "index": index,
                    "market_code": message.market_code,
                    "operational_halt_action": message.operational_halt_action,
                },
            )
        case itch.StockDirectory():
            row = _plain(EventKind.STOCK_DIRECTORY, ts, seq)
            detail = ("DirectoryDetail", _directory_fields(message, index))
        case _:
            row = _plain(EventKind.AUXILIARY, ts, seq)
            detail = (
                "AuxiliaryDetail",
                {"index": index, "message_type": message.message_type, "payload": payloads[start:stop]},
            )
    out.rows.append(row)
    if detail is not None:
        out.details.append(detail)


def _plain(kind: EventKind, ts: int, seq: int) -> Row:
    return (int(kind), 0, 0, ts, seq, 0, 0, 0, 0, 0)


def _directory_fields(message: itch.StockDirectory, index: int) -> dict[str, object]:
    return {
        "index": index,
        "market_category": message.market_category,
        "financial_status_indicator": message.financial_status_indicator,
        "round_lot_size": message.round_lot_size,
        "round_lots_only": message.round_lots_only,
        "issue_classification": message.issue_classification,
        "issue_sub_type": message.issue_sub_type,
        "authenticity": message.authenticity,
        "short_sale_threshold_indicator": message.short_sale_threshold_indicator,
        "ipo_flag": message.ipo_flag,
        "luld_reference_price_tier": message.luld_reference_price_tier,
        "etp_flag": message.etp_flag,
        "etp_leverage_factor": message.etp_leverage_factor,
        "inverse_indicator": message.inverse_indicator,
    }


def _assemble_bundle(
    bundle: ItchBundle, runs: list[NormalizedRun], rows: list[Row], details: list[Detail], ts_recv: int
) -> NormalizedBundle:
    columns, low, high = _columns(rows)
    return NormalizedBundle(
        venue=bundle.venue,
        trading_date=bundle.trading_date,
        session=bundle.session,
        event_count=len(rows),
        min_ts_event=low,
        max_ts_event=high,
        ts_produced=bundle.produced_at_ns,
        ts_recv=ts_recv,
        runs=tuple(runs),
        columns=columns,
        details=tuple(details),
    )


def _columns(rows: list[Row]) -> tuple[EventColumns, int, int]:
    """Packed columns of ``rows`` and their smallest and largest ts_event (0, 0 when empty)."""
    if not rows:
        return EMPTY_COLUMNS, 0, 0
    if _cscan is not None and use_native():
        *packed, low, high = _cscan.pack_rows(rows)
        return EventColumns(*packed), low, high
    kind, flags, side, ts_event, seq, order_ref, new_order_ref, match_number, shares, price = zip(
        *rows, strict=True
    )
    columns = EventColumns(
        bytes(kind),
        bytes(flags),
        bytes(side),
        pack_int64(ts_event),
        pack_int64(seq),
        pack_uint64(order_ref),
        pack_uint64(new_order_ref),
        pack_uint64(match_number),
        pack_uint64(shares),
        pack_int64(price),
    )
    return columns, min(ts_event), max(ts_event)
