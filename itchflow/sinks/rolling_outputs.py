"""The rolling analytics' ClickHouse rows and Redis commands.

* ClickHouse (``schemas/clickhouse/002_analytics.sql``; the column tuples here are their one Python
  definition, checked against the DDL by a test), one row per revision, ReplacingMergeTree by
  revision, a deleted key with ``is_deleted = 1``:

  - ``vwap``: the sliding VWAP of ``[window_end - window_s, window_end)``;
  - ``moving_averages``: SMA and EMA of the ``n`` closes of ``interval_s`` bars up to the bar at
    ``window_start`` (``sma`` NULL where fewer than ``n`` bars of the day lead up to it).

* Redis, under the prefix: ``{prefix}:vwap:{venue}:{symbol}`` and
  ``{prefix}:ma:{interval}:{venue}:{symbol}``, hashes with the latest value (a revision of an older
  window never overwrites them). A deleted latest value is written with empty values.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from itchflow.analytics.rolling_stage import AverageRevision, VwapRevision
from itchflow.sinks.bar_outputs import interval_name
from itchflow.sinks.book_tables import row_key
from itchflow.sinks.resp import hset

VWAP = "vwap"
MOVING_AVERAGES = "moving_averages"
VWAP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("venue", "LowCardinality(String)"),
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("window_s", "UInt32"),
    ("window_end", "DateTime64(9, 'UTC')"),
    ("vwap", "Float64"),
    ("volume", "UInt64"),
    ("notional", "Int128"),
    ("trades", "UInt32"),
    ("revision", "UInt32"),
    ("is_deleted", "UInt8"),
)
AVERAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("venue", "LowCardinality(String)"),
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("interval_s", "UInt32"),
    ("n", "UInt32"),
    ("window_start", "DateTime64(9, 'UTC')"),
    ("sma", "Nullable(Float64)"),
    ("ema", "Float64"),
    ("revision", "UInt32"),
    ("is_deleted", "UInt8"),
)

# window_s, window_end, vwap, volume, notional (two 64-bit halves), trades, revision, is_deleted
_VWAP_TAIL = struct.Struct("<IqdQQqIIB")
# interval_s, n, window_start; then sma (Nullable: a null byte, the value if not null); then ema ..
_AVERAGE_HEAD = struct.Struct("<IIq")
_AVERAGE_TAIL = struct.Struct("<dIB")
_NOT_NULL = struct.Struct("<Bd")


def vwap_rows(revisions: Iterable[VwapRevision]) -> bytes:
    """RowBinary rows of ``vwap`` (columns :data:`VWAP_COLUMNS`)."""
    parts = []
    pack = _VWAP_TAIL.pack
    for r in revisions:
        v = r.value
        notional = v.notional
        parts.append(row_key(r.venue, r.trading_date, v.symbol))
        parts.append(
            pack(v.window_s, v.window_end_ns, 0.0 if v.vwap is None else v.vwap, v.volume,
                 notional & 0xFFFF_FFFF_FFFF_FFFF, notional >> 64, v.trades, v.revision, v.deleted)
        )  # fmt: skip
    return b"".join(parts)


def average_rows(revisions: Iterable[AverageRevision]) -> bytes:
    """RowBinary rows of ``moving_averages`` (columns :data:`AVERAGE_COLUMNS`)."""
    parts = []
    for r in revisions:
        a = r.value
        parts.append(row_key(r.venue, r.trading_date, a.symbol))
        parts.append(_AVERAGE_HEAD.pack(a.interval_s, a.n, a.window_start_ns))
        parts.append(b"\x01" if a.sma is None else _NOT_NULL.pack(0, a.sma))
        parts.append(_AVERAGE_TAIL.pack(0.0 if a.ema is None else a.ema, a.revision, a.deleted))
    return b"".join(parts)


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def rolling_commands(
    vwaps: Iterable[VwapRevision], averages: Iterable[AverageRevision], prefix: str
) -> list[bytes]:
    """The latest-value hashes: one ``HSET`` per (venue, symbol) and kind, of the newest value of the
    batch that is the latest so far."""
    newest_vwap = {(r.venue, r.value.symbol): r for r in vwaps if r.latest}
    newest_average = {(r.venue, r.value.symbol): r for r in averages if r.latest}
    commands = []
    for (venue, symbol), r in newest_vwap.items():
        v = r.value
        commands.append(
            hset(
                f"{prefix}:vwap:{venue}:{symbol}",
                (
                    ("window_end", v.window_end_ns),
                    ("window_s", v.window_s),
                    ("vwap", _number(v.vwap)),
                    ("volume", v.volume),
                    ("trades", v.trades),
                    ("revision", v.revision),
                    ("trading_date", r.trading_date),
                ),
            )
        )
    for (venue, symbol), m in newest_average.items():
        a = m.value
        commands.append(
            hset(
                f"{prefix}:ma:{interval_name(a.interval_s)}:{venue}:{symbol}",
                (
                    ("window_start", a.window_start_ns),
                    ("n", a.n),
                    ("sma", _number(a.sma)),
                    ("ema", _number(a.ema)),
                    ("revision", a.revision),
                    ("trading_date", m.trading_date),
                ),
            )
        )
    return commands
