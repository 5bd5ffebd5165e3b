"""The bars' ClickHouse rows and Redis commands.

* ClickHouse ``bars`` (``schemas/clickhouse/002_analytics.sql``; :data:`BAR_COLUMNS` is its one
  Python definition, checked against the DDL by a test): one row per bar revision.
* Redis, under the prefix: ``{prefix}:bar:{interval}:{venue}:{symbol}``, a hash with the latest bar
  of that size (:data:`BAR_FIELDS`; never overwritten by a revision of an older bar), and
  ``{prefix}:bars:{venue}:{symbol}``, a stream of the symbol's bars as they close (the sizes the
  job streams, by default 1 m and 5 m), id
  ``{window end ms}-{interval_s * 1000 + revision}``: ids grow with the window's end, then the size,
  then the revision, so a restored job's replayed emissions are refused as duplicates, never added
  twice. A revision of a bar that is no longer the stream's latest is not appended (ClickHouse and
  the hash have it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache

from itchflow.analytics.bar_stage import BarRevision
from itchflow.sinks.book_tables import row_key

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
_NANOS_PER_MS = 1_000_000


def interval_name(interval_s: int) -> str:
    """``1s``, ``1m``, ``5m`` (else ``{n}s``)."""
    return INTERVAL_NAMES.get(interval_s) or f"{interval_s}s"


# interval_s .. volume, notional as two 64-bit halves (Int128, little endian), vwap .. is_deleted
_ROW_TAIL = struct.Struct("<IqqqqqQQqdIIB")


def bar_rows(revisions: Iterable[BarRevision]) -> bytes:
    """RowBinary rows of ``bars``, one per revision (columns :data:`BAR_COLUMNS`)."""
    parts = []
    pack = _ROW_TAIL.pack
    for r in revisions:
        b = r.bar
        vwap = b.notional / b.volume if b.volume else 0.0
        notional = b.notional
        parts.append(row_key(r.venue, r.trading_date, b.symbol))
        parts.append(
            pack(b.interval_s, b.window_start_ns, b.open, b.high, b.low, b.close, b.volume,
                 notional & 0xFFFF_FFFF_FFFF_FFFF, notional >> 64, vwap, b.trades, r.revision, r.deleted)
        )  # fmt: skip
    return b"".join(parts)


@lru_cache(maxsize=65_536)
def _heads(
    prefix: str, venue: str, symbol: str, interval_s: int, stream_maxlen: int
) -> tuple[bytes, bytes, bytes]:
    """RESP heads of a symbol's commands: ``XADD key [MAXLEN ~ n]`` (before the id), ``interval
    name`` (after it), and ``HSET key`` of the size's hash; the argument counts come with them."""
    stream = [b"XADD", f"{prefix}:bars:{venue}:{symbol}".encode()]
    if stream_maxlen:
        stream += [b"MAXLEN", b"~", str(stream_maxlen).encode()]
    name = interval_name(interval_s).encode()
    count = len(stream) + 1 + 2 + 2 * len(BAR_FIELDS)
    xadd = b"*%d\r\n" % count + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in stream)
    after_id = b"$8\r\ninterval\r\n$%d\r\n%s\r\n" % (len(name), name)
    key = f"{prefix}:bar:{interval_name(interval_s)}:{venue}:{symbol}".encode()
    hset = b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * len(BAR_FIELDS), len(key), key)
    return xadd, after_id, hset


_FIELD_NAMES = tuple(b"$%d\r\n%s\r\n" % (len(f), f.encode()) for f in BAR_FIELDS)


def bar_commands(
    revision: BarRevision, prefix: str, stream_maxlen: int, latest: bool, stream: bool = True
) -> list[bytes]:
    """The Redis commands of one bar revision: the stream entry (with ``stream``), and the hash when
    the bar is the latest of its size (``latest``)."""
    b = revision.bar
    if revision.deleted:
        values: tuple = (b.window_start_ns, 0, 0, 0, 0, 0, 0, 0, revision.revision, revision.trading_date)
    else:
        vwap = repr(b.notional / b.volume)
        values = (b.window_start_ns, b.open, b.high, b.low, b.close, b.volume, vwap, b.trades, revision.revision,
                  revision.trading_date)  # fmt: skip
    xadd_head, after_id, hset_head = _heads(prefix, revision.venue, b.symbol, b.interval_s, stream_maxlen)
    end_ms = (b.window_start_ns + b.interval_s * 1_000_000_000) // _NANOS_PER_MS
    entry_id = b"%d-%d" % (end_ms, b.interval_s * 1000 + revision.revision)
    body = b"".join(
        name + b"$%d\r\n%s\r\n" % (len(text), text)
        for name, text in zip(_FIELD_NAMES, (str(v).encode() for v in values), strict=True)
    )
    commands = [xadd_head + b"$%d\r\n%s\r\n" % (len(entry_id), entry_id) + after_id + body] if stream else []
    if latest:
        commands.append(hset_head + body)
    return commands
