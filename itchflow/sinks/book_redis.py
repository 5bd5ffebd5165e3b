"""The order book's Redis keys and commands, as RESP bytes.

Per (venue, symbol), under the configured prefix:

* ``{prefix}:tob-stream:{venue}:{symbol}``: a stream, one entry per top-of-book change, fields
  :data:`TOB_FIELDS`, id ``{ms}-{book seq}`` (``XADD .. MAXLEN ~ n``);
* ``{prefix}:tob:{venue}:{symbol}``: a hash, fields :data:`TOB_HASH_FIELDS`;
* ``{prefix}:depth:{venue}:{symbol}``: a hash ``bids <json> asks <json> seq .. ts_event ..`` with
  the levels as ``[[price, shares, orders], ...]``.

:func:`book_keys` builds the encoders of one book once. The C book writes the stream entries and
the depth hash itself (from :attr:`BookKeys.stream_layout` and :attr:`BookKeys.depth_head`), byte
for byte as :func:`stream_entries` and :func:`depth_hash` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from itchflow.book.values import DepthColumns
from itchflow.sinks.resp import IntHashEncoder, IntStreamEncoder, command

TOB_FIELDS = ("bid_px", "bid_sz", "bid_n", "ask_px", "ask_sz", "ask_n", "seq", "ts_event")
"""Fields of every top-of-book stream entry, in order."""
TOB_HASH_FIELDS = (
    *TOB_FIELDS,
    "last_trade_px",
    "last_trade_sz",
    "last_trade_ts",
    "unknown_refs",
    "orders",
)
"""Fields of the top-of-book hash, in order."""

_NANOS_PER_MS = 1_000_000


class BookKeys(NamedTuple):
    """The Redis encoders of one book: built once per key and shared (pure, so sharing is safe)."""

    stream: IntStreamEncoder
    """The top-of-book stream's XADD."""
    tob_hash: IntHashEncoder
    """The top-of-book hash's HSET."""
    depth_head: bytes
    """``HSET {depth key} bids`` as the head of a 10-argument RESP array."""
    stream_layout: tuple[bytes, tuple[bytes, ...]]
    """``stream.layout`` (for the C book's encoder)"""
    tob_layout: tuple[bytes, tuple[bytes, ...]]
    """``tob_hash.layout`` (for :func:`~itchflow.book.native.encode_int_hash`)"""


@lru_cache(maxsize=16_384)
def book_keys(venue: str, symbol: str, redis_prefix: str, stream_maxlen: int) -> BookKeys:
    """The encoders of one (venue, symbol); cached, since a stage is rebuilt from state often.
    ``stream_maxlen`` 0 keeps every stream entry."""
    prefix = f"{redis_prefix}:"
    stream = IntStreamEncoder(f"{prefix}tob-stream:{venue}:{symbol}", TOB_FIELDS, stream_maxlen or None)
    tob_hash = IntHashEncoder(f"{prefix}tob:{venue}:{symbol}", TOB_HASH_FIELDS)
    return BookKeys(
        stream=stream,
        tob_hash=tob_hash,
        depth_head=b"*10\r\n" + command(b"HSET", f"{prefix}depth:{venue}:{symbol}", b"bids")[4:],
        stream_layout=stream.layout,
        tob_layout=tob_hash.layout,
    )


def stream_entries(
    stream: IntStreamEncoder, top_rows: Sequence[tuple[int, ...]], last_ms: int
) -> tuple[list[bytes], int]:
    """One XADD per (book seq, ts_event, *top of book) change, ids ``{ms}-{book seq}`` strictly
    increasing after an entry of millisecond ``last_ms``; returns them and the last entry's ms."""
    encode = stream.encode
    entries = []
    for seq, ts_event, *top in top_rows:
        ms = ts_event // _NANOS_PER_MS
        if ms < last_ms:
            ms = last_ms  # event time went backwards: keep the id increasing
        last_ms = ms
        entries.append(encode(ms, seq, (*top, seq, ts_event)))
    return entries, last_ms


def depth_hash(depth_head: bytes, seq: int, ts_event: int, depth: DepthColumns) -> bytes:
    """``HSET {depth key} bids <json> asks <json> seq <seq> ts_event <ts>`` as RESP."""
    bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = depth
    bids = levels_json(bid_prices, bid_shares, bid_orders)
    asks = levels_json(ask_prices, ask_shares, ask_orders)
    seq_text, ts_text = b"%d" % seq, b"%d" % ts_event
    return (
        b"%s$%d\r\n%s\r\n$4\r\nasks\r\n$%d\r\n%s\r\n$3\r\nseq\r\n$%d\r\n%s\r\n$8\r\nts_event\r\n$%d\r\n%s\r\n"
        % (
            depth_head,
            len(bids),
            bids,
            len(asks),
            asks,
            len(seq_text),
            seq_text,
            len(ts_text),
            ts_text,
        )
    )


def levels_json(prices: list[int], shares: list[int], orders: list[int]) -> bytes:
    """``[[price,shares,orders],...]`` (compact JSON) for the depth hash."""
    return (
        b"[" + b",".join([b"[%d,%d,%d]" % level for level in zip(prices, shares, orders, strict=True)]) + b"]"
    )
