"""Helpers for the tests of the top-of-book analytics (OFI, liquidity): named times and prices,
change factories, and random logs of what an operator would call (for the differential tests)."""

from __future__ import annotations

import random
from typing import Any

SECOND = 1_000_000_000
MS = 1_000_000
T0 = 1_577_714_400 * SECOND
"""2019-12-30 14:00 UTC (09:00 in New York): a multiple of every window size the tests use."""
DAY = 18_260
"""2019-12-30 as days since 1970-01-01"""
DAY_NS = 86_400 * SECOND
VENUE = "XNAS"
SYMBOL = "TEST"

PX_99_99 = 999_900
PX_100_00 = 1_000_000
PX_100_01 = 1_000_100
PX_100_02 = 1_000_200
PX_100_03 = 1_000_300
PX_100_04 = 1_000_400
PX_100_05 = 1_000_500
PX_100_06 = 1_000_600

Side = tuple[int, int]
"""(price, shares) of one side; (0, 0) when empty"""
EMPTY: Side = (0, 0)


def tob(ts: int, bid: Side = EMPTY, ask: Side = EMPTY, seq: int = 0) -> tuple[int, ...]:
    """A top-of-book change (the decoder's tuple): one order per non-empty level."""
    return (ts, seq, bid[0], bid[1], 1 if bid[1] else 0, ask[0], ask[1], 1 if ask[1] else 0)


Op = tuple[Any, ...]
"""("tops", venue, symbol, trading_date, [changes]) | ("depth", venue, symbol, trading_date,
[(ts_event, seq, bid_shares, ask_shares)]) | ("advance", complete_before_ns) | ("close",)"""


def random_log(seed: int, *, symbols: int = 8, steps: int = 1_500, depth: bool = False) -> list[Op]:
    """What an operator might hand a core: batches of many symbols' top-of-book changes (and depth
    updates), timestamps mostly rising but also going back, watermark advances that lag, overtake
    and go back, two trading days, changes of the earlier day after the later one began, an end of
    the feed in the middle of the day, then one at the end."""
    rng = random.Random(seed)
    names = [(("XNAS", "XBOS")[i % 2], f"S{i}") for i in range(symbols)]
    books = {name: [PX_100_00, 300, PX_100_05, 200] for name in names}
    seqs = dict.fromkeys(names, 0)
    day, now = DAY, T0 + rng.randrange(SECOND)
    log: list[Op] = []
    for step in range(steps):
        if step == steps // 2:  # the next trading day
            day, now = day + 1, now + DAY_NS
            books = {name: [0, 0, 0, 0] for name in names}
        if step == steps // 3:
            log.append(("close",))  # an end of the feed, and then the day goes on
        roll = rng.random()
        if roll < 0.2:
            lag = rng.choice([0, rng.randrange(-SECOND // 2, 3 * SECOND), rng.randrange(70 * SECOND)])
            log.append(("advance", now - lag))
            continue
        name = rng.choice(names)
        if roll < 0.22 and day > DAY:  # a straggler of the earlier day
            log.append(("tops", *name, day - 1, [tob(now - DAY_NS, (PX_100_00, 5), EMPTY, 10**6 + step)]))
            continue
        changes = []
        for _ in range(rng.randrange(1, 5)):
            now += rng.randrange(400 * MS)
            ts = now - (rng.randrange(2 * SECOND) if rng.random() < 0.1 else 0)
            book = books[name]
            _move(rng, book)
            seqs[name] += rng.randrange(1, 4)
            bid = (book[0], book[1])
            ask = (book[2], book[3])
            changes.append(tob(ts, bid, ask, seqs[name]))
        log.append(("tops", *name, day, changes))
        if depth and rng.random() < 0.7:
            book, last = books[name], changes[-1]
            bid_depth = book[1] + rng.randrange(0, 2_000) if book[1] else 0
            ask_depth = book[3] + rng.randrange(0, 2_000) if book[3] else 0
            log.append(("depth", *name, day, [(last[0], last[1], bid_depth, ask_depth)]))
    log.append(("close",))
    return log


def _move(rng: random.Random, book: list[int]) -> None:
    """One random change of ``[bid px, bid shares, ask px, ask shares]``: a price up or down, shares
    up or down, a side emptied or refilled; the book may lock or cross now and then (feeds do)."""
    side = rng.randrange(2) * 2
    roll = rng.random()
    if book[side] == 0 or roll < 0.05:
        if book[side] == 0:  # refill near the other side, or near 100.00
            other = book[2 - side] or PX_100_00
            book[side] = max(100, other + (-1 if side == 0 else 1) * 100 * rng.randrange(0, 4))
            book[side + 1] = 100 * rng.randrange(1, 10)
        else:
            book[side] = book[side + 1] = 0
    elif roll < 0.4:
        book[side] = max(100, book[side] + 100 * rng.choice([-2, -1, 1, 2]))
        book[side + 1] = 100 * rng.randrange(1, 10)
    else:
        book[side + 1] = max(1, book[side + 1] + rng.choice([-150, -100, -1, 1, 100, 250]))
