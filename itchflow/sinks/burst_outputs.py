"""The bursts' ClickHouse rows and Redis commands.

* ClickHouse ``bursts`` (``schemas/clickhouse/002_analytics.sql``; :data:`BURST_COLUMNS` is its one
  Python definition, checked against the DDL by a test): one row per burst revision.
* Redis, under the prefix: ``{prefix}:burst-alerts:{venue}:{symbol}``, a stream of the symbol's
  flagged bursts as they are emitted (the analytics alerts), ``MAXLEN ~`` capped, id ``{start
  ms}-{revision}``: a burst's emissions grow by revision and a later burst starts later, so a
  restored job's replayed entries are refused as duplicates, never added twice (a burst whose start
  moved back, by a merge, is not appended again: ClickHouse has it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from itchflow.analytics.bursts import Burst
from itchflow.sinks.book_tables import row_key
from itchflow.sinks.resp import xadd

BURSTS = "bursts"
BURST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("venue", "LowCardinality(String)"),
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("start", "DateTime64(9, 'UTC')"),
    ("end", "DateTime64(9, 'UTC')"),
    ("prints", "UInt32"),
    ("shares", "UInt64"),
    ("notional", "Int128"),
    ("vwap", "Float64"),
    ("flagged", "UInt8"),
    ("revision", "UInt32"),
    ("is_deleted", "UInt8"),
)
_TAIL = struct.Struct("<qqIQQqdBIB")
_NANOS_PER_MS = 1_000_000


def burst_rows(bursts: Iterable[Burst]) -> bytes:
    """RowBinary rows of ``bursts`` (columns :data:`BURST_COLUMNS`)."""
    parts = []
    pack = _TAIL.pack
    for b in bursts:
        notional = b.notional
        parts.append(row_key(b.venue, b.trading_date, b.symbol))
        parts.append(
            pack(b.start_ns, b.end_ns, b.prints, b.shares, notional & 0xFFFF_FFFF_FFFF_FFFF, notional >> 64,
                 0.0 if b.vwap is None else b.vwap, b.flagged, b.revision, b.deleted)
        )  # fmt: skip
    return b"".join(parts)


def burst_alert_commands(bursts: Iterable[Burst], prefix: str, maxlen: int) -> list[bytes]:
    """``XADD`` of every flagged, not deleted burst emission to its symbol's alert stream."""
    return [
        xadd(
            f"{prefix}:burst-alerts:{b.venue}:{b.symbol}",
            f"{b.start_ns // _NANOS_PER_MS}-{b.revision}",
            (
                ("type", "burst"),
                ("start", b.start_ns),
                ("end", b.end_ns),
                ("prints", b.prints),
                ("shares", b.shares),
                ("notional", b.notional),
                ("vwap", repr(b.vwap)),
                ("revision", b.revision),
                ("trading_date", b.trading_date),
            ),
            maxlen or None,
        )
        for b in bursts
        if b.flagged and not b.deleted
    ]
