"""The bars' ClickHouse rows and Redis commands.

* ClickHouse ``bars`` (``schemas/clickhouse/002_analytics.sql``; :data:`BAR_COLUMNS` is its one
  Python definition, checked against the DDL by a test): one row per bar revision.
* Redis, under the prefix: ``{prefix}:bar:{interval}:{venue}:{symbol}``, a hash with the latest bar
  of that size (:data:`BAR_FIELDS`; never overwritten by a revision of an older bar), and
  ``{prefix}:bars:{venue}:{symbol}``, a stream of the symbol's bars as they close, every size, id
  ``{window end ms}-{interval_s * 1000 + revision}``: ids grow with the window's end, then the size,
  then the revision, so a restored job's replayed emissions are refused as duplicates, never added
  twice. A revision of a bar that is no longer the stream's latest is not appended (ClickHouse and
  the hash have it).
"""

from __future__ import annotations

from collections.abc import Iterable

from itchflow.analytics.bar_stage import BarRevision
from itchflow.sinks.resp import command
from itchflow.sinks.rowbinary import RowBinaryEncoder

BARS = "bars"
BAR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("venue", "LowCardinality(String)"),
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("interval_s", "UInt32"),
    ("window_start", "DateTime64(9, 'UTC')"),
    ("open", "Int64"),
    ("high", "Int64"),
    ("low", "Int64"),
    ("close", "Int64"),
    ("volume", "UInt64"),
    ("notional", "Int128"),
    ("vwap", "Float64"),
    ("trades", "UInt32"),
    ("revision", "UInt32"),
    ("is_deleted", "UInt8"),
)
BAR_FIELDS = (
    "window_start",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trades",
    "revision",
    "trading_date",
)
"""Fields of the latest-bar hash and of each stream entry (the stream adds ``interval``)."""

INTERVAL_NAMES = {1: "1s", 60: "1m", 300: "5m"}
_ENCODER = RowBinaryEncoder(BAR_COLUMNS)
_NANOS_PER_MS = 1_000_000


def interval_name(interval_s: int) -> str:
    """``1s``, ``1m``, ``5m`` (else ``{n}s``)."""
    return INTERVAL_NAMES.get(interval_s) or f"{interval_s}s"


def bar_rows(revisions: Iterable[BarRevision]) -> bytes:
    """RowBinary rows of ``bars``, one per revision."""
    rows = []
    for r in revisions:
        b = r.bar
        vwap = b.notional / b.volume if b.volume else 0.0
        rows.append(
            (r.venue, r.trading_date, b.symbol, b.interval_s, b.window_start_ns, b.open, b.high, b.low,
             b.close, b.volume, b.notional, vwap, b.trades, r.revision, int(r.deleted))
        )  # fmt: skip
    return _ENCODER.encode(rows)


def bar_commands(revision: BarRevision, prefix: str, stream_maxlen: int, latest: bool) -> list[bytes]:
    """The Redis commands of one bar revision: the stream entry, and the hash when the bar is the
    latest of its size (``latest``)."""
    b = revision.bar
    if revision.deleted:
        values: list[object] = [
            b.window_start_ns,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            revision.revision,
            revision.trading_date,
        ]
    else:
        vwap = repr(b.notional / b.volume)
        values = [b.window_start_ns, b.open, b.high, b.low, b.close, b.volume, vwap, b.trades, revision.revision,
                  revision.trading_date]  # fmt: skip
    name = interval_name(b.interval_s)
    end_ms = (b.window_start_ns + b.interval_s * 1_000_000_000) // _NANOS_PER_MS
    entry_id = f"{end_ms}-{b.interval_s * 1000 + revision.revision}"
    xadd: list[object] = ["XADD", f"{prefix}:bars:{revision.venue}:{b.symbol}"]
    if stream_maxlen:
        xadd += ["MAXLEN", "~", stream_maxlen]
    xadd += [entry_id, "interval", name]
    for field, value in zip(BAR_FIELDS, values, strict=True):
        xadd += [field, value]
    commands = [command(*xadd)]
    if latest:
        hset: list[object] = ["HSET", f"{prefix}:bar:{name}:{revision.venue}:{b.symbol}"]
        for field, value in zip(BAR_FIELDS, values, strict=True):
            hset += [field, value]
        commands.append(command(*hset))
    return commands
