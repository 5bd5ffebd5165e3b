"""Is the benchmark's answer right? The books the pipeline left in ClickHouse and Redis against
``itchflow book FILE --json`` (a fast wrong answer does not count).

Per symbol, every one of these must equal the offline reference:

* the top ``depth`` levels per side ([price, shares, orders]) of the last ``depth_snapshots`` row in
  ClickHouse, and of the ``{prefix}:depth:{venue}:{symbol}`` hash in Redis;
* the best bid and ask of the ``{prefix}:tob:{venue}:{symbol}`` hash in Redis;
* resting orders and unknown order references of the last ``book_status`` row;
* the number of printable trades in ClickHouse ``trades``;
* the last sequence number applied (``book_status``) -- the one the replay produced last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

Level = list[int]
EMPTY_SIDE: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class StreamedBook:
    """One symbol's final book as the pipeline left it in ClickHouse and Redis."""

    clickhouse_bids: list[Level] = field(default_factory=list)
    clickhouse_asks: list[Level] = field(default_factory=list)
    redis_bids: list[Level] = field(default_factory=list)
    redis_asks: list[Level] = field(default_factory=list)
    redis_top: tuple[int, int, int, int, int, int] = EMPTY_SIDE + EMPTY_SIDE
    """(bid price, shares, orders, ask price, shares, orders) of the Redis top-of-book hash."""
    orders: int = 0
    unknown_refs: int = 0
    printable_trades: int = 0
    last_seq: int = -1


def expected_top(reference: Mapping) -> tuple[int, ...]:
    """The reference's best bid and ask as in :attr:`StreamedBook.redis_top` (0, 0, 0 for an empty side)."""
    bid = tuple(reference["bids"][0]) if reference["bids"] else EMPTY_SIDE
    ask = tuple(reference["asks"][0]) if reference["asks"] else EMPTY_SIDE
    return bid + ask


def compare_books(
    reference: Mapping[str, Mapping],
    streamed: Mapping[str, StreamedBook],
    last_seq: Mapping[str, int] | None = None,
) -> list[str]:
    """Every difference between the reference books and the streamed ones, one readable line each.

    ``reference`` is the ``symbols`` part of ``itchflow book --json``; ``last_seq`` (symbol -> seq
    of its last produced message) is checked when given. An empty list means equal.
    """
    if not reference:
        return ["the reference has no symbols: nothing to compare"]
    problems = []
    for symbol in sorted(set(streamed) - set(reference)):
        problems.append(f"{symbol}: the pipeline has a book the reference does not")
    for symbol, expected in sorted(reference.items()):
        book = streamed.get(symbol)
        if book is None:
            problems.append(f"{symbol}: no book in ClickHouse/Redis")
            continue
        problems += _compare_one(symbol, expected, book, None if last_seq is None else last_seq.get(symbol))
    return problems


def _compare_one(symbol: str, expected: Mapping, book: StreamedBook, last_seq: int | None) -> list[str]:
    problems = []
    for source, bids, asks in (
        ("ClickHouse depth", book.clickhouse_bids, book.clickhouse_asks),
        ("Redis depth", book.redis_bids, book.redis_asks),
    ):
        if bids != expected["bids"]:
            problems.append(f"{symbol}: {source} bids {bids} != {expected['bids']}")
        if asks != expected["asks"]:
            problems.append(f"{symbol}: {source} asks {asks} != {expected['asks']}")
    if book.redis_top != expected_top(expected):
        problems.append(f"{symbol}: Redis top of book {book.redis_top} != {expected_top(expected)}")
    for name, got, want in (
        ("resting orders", book.orders, expected["orders"]),
        ("unknown refs", book.unknown_refs, expected["unknown_refs"]),
        ("printable trades", book.printable_trades, expected["trade_count"]),
    ):
        if got != want:
            problems.append(f"{symbol}: {name} {got} != {want}")
    if last_seq is not None and book.last_seq != last_seq:
        problems.append(f"{symbol}: last seq applied {book.last_seq} != {last_seq} produced")
    return problems


# --------------------------------------------------------------------------------- reading


def read_streamed_books(
    clickhouse, cache, venue: str, redis_prefix: str = "itchflow"
) -> dict[str, StreamedBook]:
    """Every symbol's final book of ``venue`` from ClickHouse (``clickhouse``, a clickhouse-connect
    client) and Redis (``cache``, a redis-py client)."""
    parameters = {"venue": venue}
    status = {
        symbol: (int(seq), int(orders), int(unknown))
        for symbol, seq, orders, unknown in clickhouse.query(
            "SELECT symbol, max(seq), argMax(orders, seq), argMax(unknown_refs, seq) "
            "FROM book_status FINAL WHERE venue = {venue:String} GROUP BY symbol",
            parameters=parameters,
        ).result_rows
    }
    depth = {
        symbol: columns
        for symbol, columns in clickhouse.query(
            "SELECT symbol, argMax((bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders), seq) "
            "FROM depth_snapshots FINAL WHERE venue = {venue:String} GROUP BY symbol",
            parameters=parameters,
        ).result_rows
    }
    trades = dict(
        clickhouse.query(
            "SELECT symbol, countIf(printable = 1) FROM trades FINAL WHERE venue = {venue:String} GROUP BY symbol",
            parameters=parameters,
        ).result_rows
    )
    symbols = sorted(status)
    redis_books = _read_redis(cache, venue, symbols, redis_prefix)
    books = {}
    for symbol in symbols:
        seq, orders, unknown = status[symbol]
        bid_prices, bid_shares, bid_orders, ask_prices, ask_shares, ask_orders = depth.get(symbol, ([],) * 6)
        redis_bids, redis_asks, redis_top = redis_books[symbol]
        books[symbol] = StreamedBook(
            clickhouse_bids=_levels(bid_prices, bid_shares, bid_orders),
            clickhouse_asks=_levels(ask_prices, ask_shares, ask_orders),
            redis_bids=redis_bids,
            redis_asks=redis_asks,
            redis_top=redis_top,
            orders=orders,
            unknown_refs=unknown,
            printable_trades=int(trades.get(symbol, 0)),
            last_seq=seq,
        )
    return books


def _levels(prices, shares, orders) -> list[Level]:
    return [[int(p), int(s), int(o)] for p, s, o in zip(prices, shares, orders, strict=True)]


def _read_redis(cache, venue: str, symbols: list[str], prefix: str, chunk: int = 500) -> dict[str, tuple]:
    """symbol -> (bids, asks, top) from the depth and top-of-book hashes (pipelined HGETALLs)."""
    top_fields = ("bid_px", "bid_sz", "bid_n", "ask_px", "ask_sz", "ask_n")
    books = {}
    for start in range(0, len(symbols), chunk):
        part = symbols[start : start + chunk]
        pipe = cache.pipeline(transaction=False)
        for symbol in part:
            pipe.hgetall(f"{prefix}:depth:{venue}:{symbol}")
            pipe.hgetall(f"{prefix}:tob:{venue}:{symbol}")
        replies = pipe.execute()
        for i, symbol in enumerate(part):
            depth, top = _text(replies[2 * i]), _text(replies[2 * i + 1])
            books[symbol] = (
                json.loads(depth.get("bids", "[]")),
                json.loads(depth.get("asks", "[]")),
                tuple(int(top.get(name, 0)) for name in top_fields),
            )
    return books


def _text(mapping: Mapping) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in mapping.items()
    }


BarKey = tuple[str, int, int]
"""(symbol, interval_s, window_start_ns)"""


def read_streamed_bars(clickhouse, venue: str, trading_date: str) -> dict[BarKey, list[int]]:
    """The current bars of ``venue`` on ``trading_date`` (ISO) in ClickHouse ``bars`` (FINAL: the
    latest revision, deleted bars left out), as :func:`compare_bars` takes them."""
    rows = clickhouse.query(
        "SELECT symbol, interval_s, toUnixTimestamp64Nano(window_start), open, high, low, close, volume, trades "
        "FROM bars FINAL WHERE venue = {venue:String} AND trading_date = {day:Date}",
        parameters={"venue": venue, "day": trading_date},
    ).result_rows
    return {(row[0], int(row[1]), int(row[2])): [int(value) for value in row[3:]] for row in rows}


def compare_bars(reference: Mapping[BarKey, list[int]], streamed: Mapping[BarKey, list[int]]) -> list[str]:
    """Every difference between the reference bars (open, high, low, close, volume, trades per
    (symbol, interval, window start)) and the streamed ones, one readable line each. An empty list
    means equal."""
    if not reference:
        return ["the reference has no bars: nothing to compare"]
    problems = []
    names = ("open", "high", "low", "close", "volume", "trades")
    for key in sorted(reference.keys() | streamed.keys()):
        expected, got = reference.get(key), streamed.get(key)
        symbol, interval, start = key
        where = f"{symbol} {interval} s bar at {start}"
        if expected is None:
            problems.append(f"{where}: in ClickHouse, not in the reference")
        elif got is None:
            problems.append(f"{where}: missing in ClickHouse")
        elif list(got) != list(expected):
            diffs = ", ".join(
                f"{name} {g} != {e}" for name, g, e in zip(names, got, expected, strict=True) if g != e
            )
            problems.append(f"{where}: {diffs}")
    return problems
