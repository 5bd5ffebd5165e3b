"""Brute-force references of the top-of-book analytics, written from the rules in the module docstrings of
:mod:`itchflow.analytics.ofi` and :mod:`itchflow.analytics.liquidity` (not from their code): every
update listed with what the rules say of it, every row computed afresh from that list. Logs are
what :func:`tests.unit.tob_support.random_log` describes; ``run_*`` plays one through a core."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

from itchflow.analytics.liquidity import Liquidity, LiquidityRow
from itchflow.analytics.ofi import OfiRow, OrderFlowImbalance
from itchflow.analytics.tumbling import LateUpdate
from tests.unit.tob_support import SECOND, Op

# ------------------------------------------------------------------ OFI


def run_ofi(core: OrderFlowImbalance, log: list[Op]) -> list[list[Any]]:
    """Each call's output: rows of advance / close_all, the late list after an add."""
    outputs = []
    for op in log:
        if op[0] == "tops":
            core.add(*op[1:])
            outputs.append(core.late[:])
            core.late.clear()
        elif op[0] == "advance":
            outputs.append(core.advance(op[1]))
        elif op[0] == "close":
            outputs.append(core.close_all())
    return outputs


def e_terms(before: tuple[int, int, int, int], after: tuple[int, int, int, int]) -> tuple[int, int]:
    """(bid term, ask term) of e_n, the paper's formula with indicator functions; an empty side
    (price 0) is a bid at -infinity or an ask at +infinity with no shares."""

    def one(condition: bool) -> int:
        return 1 if condition else 0

    inf = float("inf")
    pb0, qb0, pa0, qa0 = before
    pb1, qb1, pa1, qa1 = after
    pb0, pb1 = (pb0 if pb0 else -inf), (pb1 if pb1 else -inf)
    pa0, pa1 = (pa0 if pa0 else inf), (pa1 if pa1 else inf)
    bid = one(pb1 >= pb0) * qb1 - one(pb1 <= pb0) * qb0
    ask = -one(pa1 <= pa0) * qa1 + one(pa1 >= pa0) * qa0
    return bid, ask


def ofi_reference(log: list[Op], intervals_s: tuple[int, ...]) -> list[list[Any]]:
    """The outputs of every call of ``log``, from the module's rules, by brute force: every change
    is listed under the windows it counted in, with its terms; each call scans every window."""
    clock = -1
    days: dict[tuple[str, str], int] = {}
    tops: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    counted: dict[tuple[str, int, str, int, int], list[tuple[int, int]]] = defaultdict(list)
    emitted: set[tuple[str, int, str, int, int]] = set()
    closed_ends: dict[tuple[str, str, int], list[int]] = defaultdict(list)  # ends of close_all's rows
    outputs: list[list[Any]] = []

    def rows(keys: set[tuple[str, int, str, int, int]]) -> list[OfiRow]:
        found = []
        for key in sorted(keys):
            bid = sum(b for b, _ in counted[key])
            ask = sum(a for _, a in counted[key])
            found.append(OfiRow(*key, bid + ask, bid, ask, len(counted[key])))
        return found

    def end(key: tuple[str, int, str, int, int]) -> int:
        return key[4] + key[3] * SECOND

    for op in log:
        if op[0] == "tops":
            _, venue, symbol, day, changes = op
            late = []
            if day < days.get((venue, symbol), day):
                late = [
                    LateUpdate(venue, symbol, day, "top", c[0], c[1], intervals_s, "day") for c in changes
                ]
                outputs.append(late)
                continue
            if day != days.get((venue, symbol)):
                days[(venue, symbol)] = day
                tops[(venue, symbol)] = (0, 0, 0, 0)
            for change in changes:
                after = (change[2], change[3], change[5], change[6])
                bid, ask = e_terms(tops[(venue, symbol)], after)
                tops[(venue, symbol)] = after
                missed = []
                for interval in intervals_s:
                    size = interval * SECOND
                    start = change[0] // size * size
                    if start + size <= max([clock, *closed_ends[(venue, symbol, interval)]]):
                        missed.append(interval)
                    else:
                        counted[(venue, day, symbol, interval, start)].append((bid, ask))
                if missed:
                    late.append(
                        LateUpdate(venue, symbol, day, "top", change[0], change[1], tuple(missed), "window")
                    )
            outputs.append(late)
        elif op[0] == "advance":
            clock = max(clock, op[1])
            due = {key for key in counted if end(key) <= clock} - emitted
            emitted |= due
            outputs.append(rows(due))
        else:
            due = set(counted) - emitted
            emitted |= due
            for key in due:
                closed_ends[(key[0], key[2], key[3])].append(end(key))
            outputs.append(rows(due))
    return outputs


# ------------------------------------------------------------------ liquidity


INITIAL = (0, 0, None)
"""(bid price, ask price, (bid shares, ask shares) or None): a day's start"""


class Entry(NamedTuple):
    day: int
    kind: str
    after: tuple[int, int, tuple[int, int] | None]
    te: dict[int, int]


def weigh(sums: list[Any], state: tuple[int, int, tuple[int, int] | None], ns: int) -> None:
    """[two-sided ns, sum of spread x ns, sum of bps terms, depth ns, bid share-ns, ask share-ns]"""
    bid, ask, shares = state
    if ns <= 0:
        return
    if bid > 0 and ask > 0:
        sums[0] += ns
        sums[1] += (ask - bid) * ns
        sums[2] += 20_000 * (ask - bid) * ns / (ask + bid)
    if shares is not None:
        sums[3] += ns
        sums[4] += shares[0] * ns
        sums[5] += shares[1] * ns


def window_row(
    entries: list[Entry], depth_levels: int, venue: str, day: int, symbol: str, interval: int, start: int
) -> LiquidityRow:
    end = start + interval * SECOND
    state: tuple[int, int, tuple[int, int] | None] = INITIAL
    for entry in entries:
        if entry.te[interval] < start:
            state = entry.after if entry.day == day else INITIAL
    sums: list[Any] = [0, 0, 0.0, 0, 0, 0]
    counts = {"top": 0, "depth": 0}
    t = start
    for entry in entries:
        if start <= entry.te[interval] < end:
            weigh(sums, state, entry.te[interval] - t)
            state, t = entry.after, entry.te[interval]
            counts[entry.kind] += 1
    weigh(sums, state, end - t)
    two_sided, spread, bps_sum, depth_ns, bid, ask = sums
    return LiquidityRow(
        venue, day, symbol, interval, start,
        spread / two_sided if two_sided else None,
        bps_sum / two_sided if two_sided else None,
        two_sided,
        bid / depth_ns if depth_ns else None,
        ask / depth_ns if depth_ns else None,
        (bid - ask) / (bid + ask) if bid + ask else None,
        depth_ns, depth_levels, counts["top"], counts["depth"],
    )  # fmt: skip


def liquidity_reference(
    log: list[Op], intervals_s: tuple[int, ...], depth_levels: int = 10
) -> list[list[Any]]:
    """The outputs of every call of ``log`` from the module's rules: the te of every update
    computed from its definition, and every row integrated afresh from all updates of its symbol."""
    clock = -1
    closed: dict[tuple[str, str, int], int] = defaultdict(lambda: -1)  # end of close_all's last row
    entries: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    days: dict[tuple[str, str], int] = {}
    windows: set[tuple[str, int, str, int, int]] = set()  # (venue, day, symbol, interval, start) with updates
    emitted: set[tuple[str, int, str, int, int]] = set()
    outputs: list[list[Any]] = []

    def rows(keys: set[tuple[str, int, str, int, int]]) -> list[LiquidityRow]:
        return [window_row(entries[(k[0], k[2])], depth_levels, *k) for k in sorted(keys)]

    for op in log:
        if op[0] in ("tops", "depth"):
            kind, venue, symbol, day, updates = "top" if op[0] == "tops" else "depth", *op[1:]
            listed = entries[(venue, symbol)]
            if day < days.get((venue, symbol), day):
                outputs.append(
                    [LateUpdate(venue, symbol, day, kind, u[0], u[1], intervals_s, "day") for u in updates]
                )
                continue
            new_day = (venue, symbol) in days and days[(venue, symbol)] != day
            days[(venue, symbol)] = day
            late = []
            for update in updates:
                ts = update[0]
                te, missed = {}, []
                for interval in intervals_s:
                    size = interval * SECOND
                    fired = max(clock, closed[(venue, symbol, interval)])
                    if ts // size * size + size <= fired:
                        missed.append(interval)
                    candidates = [ts]
                    if listed:
                        previous = listed[-1].te[interval]
                        candidates.append(previous // size * size + size if new_day else previous)
                    if fired >= 0:
                        candidates.append(fired // size * size)
                    te[interval] = max(candidates)
                before = listed[-1].after if listed and not new_day else INITIAL
                if kind == "top":
                    after = (update[2], update[5], before[2])
                else:
                    after = (before[0], before[1], (update[2], update[3]))
                listed.append(Entry(day, kind, after, te))
                windows.update(
                    (venue, day, symbol, i, te[i] // (i * SECOND) * i * SECOND) for i in intervals_s
                )
                new_day = False
                if missed:
                    late.append(LateUpdate(venue, symbol, day, kind, ts, update[1], tuple(missed), "window"))
            outputs.append(late)
        elif op[0] == "advance":
            clock = max(clock, op[1])
            due = {k for k in windows - emitted if k[4] + k[3] * SECOND <= clock}
            emitted |= due
            outputs.append(rows(due))
        else:
            due = windows - emitted
            emitted |= due
            for k in due:
                closed[(k[0], k[2], k[3])] = max(closed[(k[0], k[2], k[3])], k[4] + k[3] * SECOND)
            outputs.append(rows(due))
    return outputs


def run_liquidity(core: Liquidity, log: list[Op]) -> list[list[Any]]:
    """Each call's output: rows of advance / close_all, the late list after an add."""
    outputs = []
    for op in log:
        if op[0] in ("tops", "depth"):
            (core.add_tops if op[0] == "tops" else core.add_depth)(*op[1:])
            outputs.append(core.late[:])
            core.late.clear()
        elif op[0] == "advance":
            outputs.append(core.advance(op[1]))
        else:
            outputs.append(core.close_all())
    return outputs
