"""The book analytics' ClickHouse rows and Redis commands.

* ClickHouse ``ofi`` and ``liquidity`` (``schemas/clickhouse/002_analytics.sql``; the column tuples
  here are their one Python definition, checked against the DDL by a test): one row per window.
* Redis, under the prefix: ``{prefix}:ofi:{interval}:{venue}:{symbol}`` and
  ``{prefix}:liquidity:{interval}:{venue}:{symbol}``, hashes with the latest window's values (empty
  where a value is undefined).

When ``itchflow/analytics/_cflow.c`` is built (:mod:`itchflow.extensions`), :func:`ofi_rows` and
:func:`liquidity_rows` write the bytes in C (``ofi_rowbinary``, ``liquidity_rowbinary``); the Python
encoders here are the reference (``tests/unit/test_flow_outputs.py`` compares the two) and the fallback
(``ITCHFLOW_NATIVE=python``, or rows the C code does not take).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from itchflow.analytics.liquidity import LiquidityRow
from itchflow.analytics.ofi import OfiRow
from itchflow.extensions import native_function
from itchflow.sinks.bar_outputs import interval_name
from itchflow.sinks.book_tables import row_key

OFI = "ofi"
LIQUIDITY = "liquidity"
_KEY: tuple[tuple[str, str], ...] = (
    ("venue", "LowCardinality(String)"),
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("interval_s", "UInt32"),
    ("window_start", "DateTime64(9, 'UTC')"),
)
OFI_COLUMNS = (*_KEY, ("ofi", "Int64"), ("bid_flow", "Int64"), ("ask_flow", "Int64"), ("updates", "UInt32"))
LIQUIDITY_COLUMNS = (
    *_KEY,
    ("spread", "Nullable(Float64)"),
    ("spread_bps", "Nullable(Float64)"),
    ("two_sided_ns", "UInt64"),
    ("bid_depth", "Nullable(Float64)"),
    ("ask_depth", "Nullable(Float64)"),
    ("depth_imbalance", "Nullable(Float64)"),
    ("depth_ns", "UInt64"),
    ("depth_levels", "UInt16"),
    ("updates", "UInt32"),
    ("depth_updates", "UInt32"),
)

_HEAD = struct.Struct("<Iq")  # interval_s, window_start
_OFI_TAIL = struct.Struct("<qqqI")
_NULLABLE = struct.Struct("<Bd")
_U64 = struct.Struct("<Q")
_LIQUIDITY_TAIL = struct.Struct("<HII")


def _nullable(value: float | None) -> bytes:
    return b"\x01" if value is None else _NULLABLE.pack(0, value)


def _native(name: str, rows: Iterable[Any], python: Callable[[Iterable[Any]], bytes]) -> bytes:
    """``rows`` encoded by the compiled ``name`` when it is built and allowed, else by ``python``.

    The C code takes the rows the flow stage makes (tuples, str venues and symbols, ints in range,
    floats or None); on anything else it raises before writing and ``python`` encodes the rows, which
    gives the same bytes or raises the Python encoder's own error."""
    encode = native_function("itchflow.analytics._cflow", name)
    if encode is None:
        return python(rows)
    listed: Sequence[Any] = rows if isinstance(rows, (list, tuple)) else list(rows)
    try:
        return encode(listed)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        return python(listed)


def ofi_rows(rows: Iterable[OfiRow]) -> bytes:
    """RowBinary rows of ``ofi`` (columns :data:`OFI_COLUMNS`)."""
    return _native("ofi_rowbinary", rows, python_ofi_rows)


def liquidity_rows(rows: Iterable[LiquidityRow]) -> bytes:
    """RowBinary rows of ``liquidity`` (columns :data:`LIQUIDITY_COLUMNS`)."""
    return _native("liquidity_rowbinary", rows, python_liquidity_rows)


def python_ofi_rows(rows: Iterable[OfiRow]) -> bytes:
    """:func:`ofi_rows` in Python: the reference of the C encoder."""
    parts = []
    for r in rows:
        parts.append(row_key(r.venue, r.trading_date, r.symbol))
        parts.append(_HEAD.pack(r.interval_s, r.window_start_ns))
        parts.append(_OFI_TAIL.pack(r.ofi, r.bid_flow, r.ask_flow, r.updates))
    return b"".join(parts)


def python_liquidity_rows(rows: Iterable[LiquidityRow]) -> bytes:
    """:func:`liquidity_rows` in Python: the reference of the C encoder."""
    parts: list[bytes] = []
    for r in rows:
        parts += (
            row_key(r.venue, r.trading_date, r.symbol),
            _HEAD.pack(r.interval_s, r.window_start_ns),
            _nullable(r.spread),
            _nullable(r.spread_bps),
            _U64.pack(r.two_sided_ns),
            _nullable(r.bid_depth),
            _nullable(r.ask_depth),
            _nullable(r.depth_imbalance),
            _U64.pack(r.depth_ns),
            _LIQUIDITY_TAIL.pack(r.depth_levels, r.updates, r.depth_updates),
        )
    return b"".join(parts)


def _text(value: float | None) -> bytes:
    return b"" if value is None else repr(value).encode()


_OFI_FIELDS = ("window_start", "ofi", "bid_flow", "ask_flow", "updates", "trading_date")
_LIQUIDITY_FIELDS = (
    "window_start", "spread", "spread_bps", "bid_depth", "ask_depth", "depth_imbalance", "depth_levels",
    "trading_date",
)  # fmt: skip


@lru_cache(maxsize=65_536)
def _head(key: str, fields: int) -> bytes:
    """``HSET key`` with the argument count of ``fields`` field-value pairs, as RESP."""
    data = key.encode()
    return b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * fields, len(data), data)


def _pairs(fields: tuple[str, ...]) -> bytes:
    """The field-value pairs of an ``HSET`` as one ``%`` template: each field's bulk string, then its
    value's (``%d`` its length, ``%b`` its bytes)."""
    return b"".join(b"$%d\r\n%s\r\n$%%d\r\n%%b\r\n" % (len(f), f.encode()) for f in fields)


_OFI_PAIRS, _LIQUIDITY_PAIRS = _pairs(_OFI_FIELDS), _pairs(_LIQUIDITY_FIELDS)


def flow_commands(ofi: Iterable[OfiRow], liquidity: Iterable[LiquidityRow], prefix: str) -> list[bytes]:
    """One ``HSET`` per (venue, symbol, size) and kind: the latest window of the batch."""
    latest_ofi: dict[tuple[str, str, int], OfiRow] = {}
    for r in ofi:
        key = (r.venue, r.symbol, r.interval_s)
        known = latest_ofi.get(key)
        if known is None or known.window_start_ns < r.window_start_ns:
            latest_ofi[key] = r
    latest_liquidity: dict[tuple[str, str, int], LiquidityRow] = {}
    for q in liquidity:
        key = (q.venue, q.symbol, q.interval_s)
        seen = latest_liquidity.get(key)
        if seen is None or seen.window_start_ns < q.window_start_ns:
            latest_liquidity[key] = q
    commands = []
    text = _text
    for (venue, symbol, interval_s), r in latest_ofi.items():
        start, flow, bid = b"%d" % r.window_start_ns, b"%d" % r.ofi, b"%d" % r.bid_flow
        ask, updates, day = b"%d" % r.ask_flow, b"%d" % r.updates, b"%d" % r.trading_date
        commands.append(
            _head(f"{prefix}:ofi:{interval_name(interval_s)}:{venue}:{symbol}", 6)
            + _OFI_PAIRS % (
                len(start), start, len(flow), flow, len(bid), bid, len(ask), ask, len(updates), updates,
                len(day), day,
            )
        )  # fmt: skip
    for (venue, symbol, interval_s), q in latest_liquidity.items():
        start, spread, bps = b"%d" % q.window_start_ns, text(q.spread), text(q.spread_bps)
        bid, ask, imbalance = text(q.bid_depth), text(q.ask_depth), text(q.depth_imbalance)
        levels, day = b"%d" % q.depth_levels, b"%d" % q.trading_date
        commands.append(
            _head(f"{prefix}:liquidity:{interval_name(interval_s)}:{venue}:{symbol}", 8)
            + _LIQUIDITY_PAIRS % (
                len(start), start, len(spread), spread, len(bps), bps, len(bid), bid, len(ask), ask,
                len(imbalance), imbalance, len(levels), levels, len(day), day,
            )
        )  # fmt: skip
    return commands
