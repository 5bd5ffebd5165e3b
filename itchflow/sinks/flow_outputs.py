"""The book analytics' ClickHouse rows and Redis commands.

* ClickHouse ``ofi`` and ``liquidity`` (``schemas/clickhouse/002_analytics.sql``; the column tuples
  here are their one Python definition, checked against the DDL by a test): one row per window.
* Redis, under the prefix: ``{prefix}:ofi:{interval}:{venue}:{symbol}`` and
  ``{prefix}:liquidity:{interval}:{venue}:{symbol}``, hashes with the latest window's values (empty
  where a value is undefined).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from itchflow.analytics.liquidity import LiquidityRow
from itchflow.analytics.ofi import OfiRow
from itchflow.sinks.bar_outputs import interval_name
from itchflow.sinks.book_tables import row_key
from itchflow.sinks.resp import hset

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


def ofi_rows(rows: Iterable[OfiRow]) -> bytes:
    """RowBinary rows of ``ofi`` (columns :data:`OFI_COLUMNS`)."""
    parts = []
    for r in rows:
        parts.append(row_key(r.venue, r.trading_date, r.symbol))
        parts.append(_HEAD.pack(r.interval_s, r.window_start_ns))
        parts.append(_OFI_TAIL.pack(r.ofi, r.bid_flow, r.ask_flow, r.updates))
    return b"".join(parts)


def liquidity_rows(rows: Iterable[LiquidityRow]) -> bytes:
    """RowBinary rows of ``liquidity`` (columns :data:`LIQUIDITY_COLUMNS`)."""
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


def _text(value: float | None) -> str:
    return "" if value is None else repr(value)


def flow_commands(ofi: Iterable[OfiRow], liquidity: Iterable[LiquidityRow], prefix: str) -> list[bytes]:
    """One ``HSET`` per (venue, symbol, size) and kind: the latest window of the batch."""
    latest_ofi = {(r.venue, r.symbol, r.interval_s): r for r in sorted(ofi, key=lambda r: r.window_start_ns)}
    latest_liquidity = {
        (r.venue, r.symbol, r.interval_s): r for r in sorted(liquidity, key=lambda r: r.window_start_ns)
    }
    commands = []
    for (venue, symbol, interval_s), r in latest_ofi.items():
        commands.append(
            hset(
                f"{prefix}:ofi:{interval_name(interval_s)}:{venue}:{symbol}",
                (
                    ("window_start", r.window_start_ns),
                    ("ofi", r.ofi),
                    ("bid_flow", r.bid_flow),
                    ("ask_flow", r.ask_flow),
                    ("updates", r.updates),
                    ("trading_date", r.trading_date),
                ),
            )  # fmt: skip
        )
    for (venue, symbol, interval_s), q in latest_liquidity.items():
        commands.append(
            hset(
                f"{prefix}:liquidity:{interval_name(interval_s)}:{venue}:{symbol}",
                (
                    ("window_start", q.window_start_ns),
                    ("spread", _text(q.spread)),
                    ("spread_bps", _text(q.spread_bps)),
                    ("bid_depth", _text(q.bid_depth)),
                    ("ask_depth", _text(q.ask_depth)),
                    ("depth_imbalance", _text(q.depth_imbalance)),
                    ("depth_levels", q.depth_levels),
                    ("trading_date", q.trading_date),
                ),
            )  # fmt: skip
        )
    return commands
