"""A deliberately simple reference for bursts, written from the issue's rules only (nothing under
``itchflow.analytics`` is used): per (venue, trading date, symbol), sort the prints that stand by
(event time, sequence), cut wherever two neighbours are a gap or more apart, and keep the runs with
at least ``min_prints`` prints.

The flag is computed with exact fractions: rate = count / max(last - first, gap) (in seconds), and a
burst is flagged when a rate reaches its threshold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple


class RefPrint(NamedTuple):
    venue: str
    trading_date: int
    symbol: str
    ts_event: int
    seq: int
    price: int
    shares: int


class RefBurst(NamedTuple):
    end_ns: int
    prints: int
    shares: int
    notional: int
    vwap: float
    flagged: bool


BurstKey = tuple[str, int, str, int]
"""(venue, trading date, symbol, start ns)"""


def reference_bursts(
    prints: Iterable[RefPrint],
    gap_ns: int,
    min_prints: int = 2,
    alert_prints_per_s: int | None = None,
    alert_shares_per_s: int | None = None,
) -> dict[BurstKey, RefBurst]:
    """Every burst of ``prints`` (breaks already taken out), by key."""
    groups: dict[tuple[str, int, str], list[RefPrint]] = defaultdict(list)
    for p in prints:
        groups[(p.venue, p.trading_date, p.symbol)].append(p)
    result: dict[BurstKey, RefBurst] = {}
    for (venue, trading_date, symbol), group in groups.items():
        group.sort(key=lambda p: (p.ts_event, p.seq))
        runs: list[list[RefPrint]] = [[group[0]]]
        for before, after in zip(group, group[1:], strict=False):
            if after.ts_event - before.ts_event >= gap_ns:
                runs.append([])
            runs[-1].append(after)
        for run in runs:
            if len(run) < min_prints:
                continue
            first, last = run[0].ts_event, run[-1].ts_event
            shares = sum(p.shares for p in run)
            notional = sum(p.price * p.shares for p in run)
            seconds = Fraction(max(last - first, gap_ns), 10**9)
            flagged = (
                alert_prints_per_s is not None and Fraction(len(run)) / seconds >= alert_prints_per_s
            ) or (alert_shares_per_s is not None and Fraction(shares) / seconds >= alert_shares_per_s)
            result[(venue, trading_date, symbol, first)] = RefBurst(
                last, len(run), shares, notional, notional / shares, flagged
            )
    return result
