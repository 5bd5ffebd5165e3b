"""Liquidity per window (:mod:`itchflow.analytics.liquidity`): time-weighted spread and depth worked by
hand (across window boundaries, one-sided and empty books, unknown depth), when updates take effect
(time going back, late updates, a new day, the end of the feed), state; then a seeded differential
test against the brute-force reference of ``tests/unit/flow_reference.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from itchflow.analytics.liquidity import Liquidity, LiquidityConfig, LiquidityRow, depth_update
from itchflow.analytics.tumbling import LateUpdate
from tests.unit.flow_reference import liquidity_reference, run_liquidity
from tests.unit.tob_support import (
    DAY,
    DAY_NS,
    EMPTY,
    MS,
    PX_99_99,
    PX_100_00,
    PX_100_01,
    PX_100_03,
    PX_100_05,
    SECOND,
    SYMBOL,
    T0,
    VENUE,
    Op,
    random_log,
    tob,
)

LEVELS = 10
MINUTE = 60 * SECOND
BID = (PX_100_00, 300)
ASK = (PX_100_05, 200)


def bps(bid: int, ask: int) -> float:
    """The spread of one state in basis points of its mid, written out: (ask - bid) / mid * 10^4."""
    return (ask - bid) / ((ask + bid) / 2) * 10_000


def depth(ts: int, bid_shares: int, ask_shares: int, seq: int = 0) -> tuple[int, int, int, int]:
    return (ts, seq, bid_shares, ask_shares)


def only_spread(row: LiquidityRow) -> tuple[Any, ...]:
    return (row.window_start_ns, row.spread, row.two_sided_ns, row.updates)


def only_depth(row: LiquidityRow) -> tuple[Any, ...]:
    return (
        row.window_start_ns,
        row.bid_depth,
        row.ask_depth,
        row.depth_imbalance,
        row.depth_ns,
        row.depth_updates,
    )


# ------------------------------------------------------------------ spread by hand


def test_spread_is_weighted_by_the_ns_each_quote_stood_and_carries_into_the_next_window() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 200 * MS, BID, ASK)])  # 500 ticks wide from 0.2 s
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 700 * MS, BID, (PX_100_03, 100))])  # 300 from 0.7 s
    core.add_tops(
        VENUE, SYMBOL, DAY, [tob(T0 + 1_400 * MS, (PX_100_01, 50), (PX_100_03, 100))]
    )  # 200 from 1.4 s
    first, second = core.advance(T0 + 2 * SECOND)
    # [0, 1 s): empty book (the day's start) until 0.2 s, then 0.5 s of 500 and 0.3 s of 300 ticks
    assert only_spread(first) == (T0, (500 * 0.5 + 300 * 0.3) / 0.8, 800 * MS, 2)
    assert first.spread_bps == pytest.approx(
        (bps(PX_100_00, PX_100_05) * 0.5 + bps(PX_100_00, PX_100_03) * 0.3) / 0.8, rel=1e-12
    )
    # [1 s, 2 s): 300 carried in for 0.4 s, then 200 for 0.6 s
    assert only_spread(second) == (T0 + SECOND, 300 * 0.4 + 200 * 0.6, SECOND, 1)
    assert second.spread_bps == pytest.approx(
        bps(PX_100_00, PX_100_03) * 0.4 + bps(PX_100_01, PX_100_03) * 0.6, rel=1e-12
    )
    assert (first.trading_date, first.interval_s, first.depth_levels) == (DAY, 1, LEVELS)


def test_one_sided_and_empty_books_have_no_spread_time() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0, BID, ASK), tob(T0 + 250 * MS, BID, EMPTY)])
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 500 * MS, EMPTY, EMPTY), tob(T0 + 900 * MS, BID, ASK)])
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 2 * SECOND, EMPTY, ASK)])
    first, second = core.advance(T0 + 3 * SECOND)
    assert only_spread(first) == (T0, 500.0, 250 * MS + 100 * MS, 4)
    assert only_spread(second) == (T0 + 2 * SECOND, None, 0, 1)  # one-sided all along
    assert second.spread_bps is None


def test_a_locked_or_crossed_book_counts_with_its_spread() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0, (PX_100_01, 1), (PX_100_01, 1))])  # locked
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 500 * MS, (PX_100_03, 1), (PX_100_01, 1))])  # crossed by 200
    (row,) = core.advance(T0 + SECOND)
    assert only_spread(row) == (T0, (0 * 0.5 - 200 * 0.5) / 1.0, SECOND, 2)
    assert row.spread_bps == pytest.approx(bps(PX_100_03, PX_100_01) * 0.5, rel=1e-12)


# ------------------------------------------------------------------ depth by hand


def test_depth_is_time_weighted_from_the_first_depth_update_and_imbalance_is_of_the_weighted_sums() -> None:
    core = Liquidity()
    core.add_depth(VENUE, SYMBOL, DAY, [depth(T0 + 250 * MS, 1_000, 3_000)])
    core.add_depth(VENUE, SYMBOL, DAY, [depth(T0 + 750 * MS, 2_000, 0)])
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 1_500 * MS, BID, EMPTY)])
    first, second = core.advance(T0 + 2 * SECOND)
    # unknown until 0.25 s; then 1000 / 3000 for 0.5 s, 2000 / 0 for 0.25 s
    bid_area, ask_area = 1_000 * 0.5 + 2_000 * 0.25, 3_000 * 0.5  # share-seconds: 1000 and 1500
    assert only_depth(first) == (
        T0,
        bid_area / 0.75,
        ask_area / 0.75,
        (bid_area - ask_area) / (bid_area + ask_area),  # -0.2
        750 * MS,
        2,
    )
    assert (first.updates, first.spread, first.two_sided_ns) == (0, None, 0)
    # carried in: 2000 / 0 all the window long
    assert only_depth(second) == (T0 + SECOND, 2_000.0, 0.0, 1.0, SECOND, 0)


def test_an_empty_book_has_known_zero_depth_and_no_imbalance() -> None:
    core = Liquidity()
    core.add_depth(VENUE, SYMBOL, DAY, [depth(T0, 0, 0)])
    (row,) = core.advance(T0 + SECOND)
    assert only_depth(row) == (T0, 0.0, 0.0, None, SECOND, 1)


def test_no_depth_update_in_the_day_leaves_depth_unknown() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0, BID, ASK)])
    (row,) = core.advance(T0 + SECOND)
    assert only_depth(row) == (T0, None, None, None, 0, 0)


# ------------------------------------------------------------------ when updates take effect


def test_time_going_back_within_open_windows_takes_effect_at_the_symbols_latest_time() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 1_200 * MS, BID, ASK)])  # 500 wide from 1.2 s
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 800 * MS, BID, (PX_100_03, 10))])  # back: at 1.2 s too
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 1_600 * MS, BID, ASK)])
    assert core.late == []
    (row,) = core.advance(T0 + 2 * SECOND)
    # [1 s, 2 s): nothing until 1.2 s, 300 (the second change) until 1.6 s, then 500
    assert only_spread(row) == (T0 + SECOND, (300 * 0.4 + 500 * 0.4) / 0.8, 800 * MS, 3)


def test_a_late_update_takes_effect_at_the_start_of_the_first_window_not_fired() -> None:
    core = Liquidity(LiquidityConfig(intervals_s=(1, 60)))
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 500 * MS, BID, ASK)])
    (fired,) = core.advance(T0 + 2_300 * MS)  # [0, 1 s) fired, and [1 s, 2 s) has no row
    assert only_spread(fired) == (T0, 500.0, 500 * MS, 1)
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 1_700 * MS, BID, (PX_100_03, 10), seq=4)])
    assert core.late == [LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 1_700 * MS, 4, (1,), "window")]
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 2_500 * MS, BID, ASK)])
    (second,) = core.advance(T0 + 3 * SECOND)
    # [2 s, 3 s): the late 300 from 2 s (the first window not fired) until 2.5 s, then 500
    assert only_spread(second) == (T0 + 2 * SECOND, 300 * 0.5 + 500 * 0.5, SECOND, 2)
    # the minute is still open: there the late change took effect at its own time
    (minute,) = core.advance(T0 + MINUTE)
    expected = (500 * 1.2 + 300 * 0.8 + 500 * 57.5) / 59.5
    assert only_spread(minute) == (T0, pytest.approx(expected, rel=1e-15), 59_500 * MS, 3)


def test_a_new_day_completes_the_earlier_days_window_and_starts_empty_with_depth_unknown() -> None:
    core = Liquidity()
    core.add_depth(VENUE, SYMBOL, DAY, [depth(T0 + 100 * MS, 500, 500)])
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 600 * MS, BID, ASK)])
    core.add_tops(VENUE, SYMBOL, DAY + 1, [tob(T0 + DAY_NS + 500 * MS, BID, (PX_100_03, 1))])
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 700 * MS, EMPTY, EMPTY, seq=8)])  # the earlier day: ignored
    assert core.late == [LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 700 * MS, 8, (1,), "day")]
    old, new = core.advance(T0 + DAY_NS + SECOND)
    assert only_spread(old) + only_depth(old)[1:] == (T0, 500.0, 400 * MS, 1, 500.0, 500.0, 0.0, 900 * MS, 1)
    assert (old.trading_date, new.trading_date) == (DAY, DAY + 1)
    assert only_spread(new) + only_depth(new)[1:] == (T0 + DAY_NS, 300.0, 500 * MS, 1, None, None, None, 0, 0)


def test_a_new_days_update_never_lands_in_the_earlier_days_window_even_with_an_early_timestamp() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 200 * MS, BID, ASK)])
    core.add_tops(VENUE, SYMBOL, DAY + 1, [tob(T0 + 500 * MS, BID, (PX_100_03, 1))])  # nonsense time
    old, new = core.advance(T0 + 2 * SECOND)
    assert (old.trading_date, *only_spread(old)) == (DAY, T0, 500.0, 800 * MS, 1)
    assert (new.trading_date, *only_spread(new)) == (DAY + 1, T0 + SECOND, 300.0, SECOND, 1)


def test_close_all_weighs_the_last_state_to_the_windows_end_and_later_updates_in_it_are_late() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 200 * MS, BID, ASK)])
    (row,) = core.close_all()
    assert only_spread(row) == (T0, 500.0, 800 * MS, 1)
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 300 * MS, BID, (PX_100_03, 1), seq=2)])
    assert [late.seq for late in core.late] == [2]
    (after,) = core.close_all()  # it took effect at the end of the feed's last window
    assert only_spread(after) == (T0 + SECOND, 300.0, SECOND, 1)


def test_a_window_fires_once_event_time_passes_its_end_and_the_timer_says_when() -> None:
    core = Liquidity()
    core.add_tops(VENUE, SYMBOL, DAY, [tob(T0 + 400 * MS, BID, ASK)])
    end_ms = (T0 + SECOND) // MS
    assert core.next_timer_ms() == end_ms - 1
    assert core.advance(T0 + SECOND - 1) == []
    assert len(core.advance(T0 + SECOND)) == 1
    assert core.advance(T0 + 9 * SECOND) == []  # a quiet symbol has no rows
    assert core.next_timer_ms() is None


def test_a_depth_update_of_depth_columns_sums_the_best_levels_of_each_side() -> None:
    columns = [[PX_100_00, PX_99_99], [100, 250], [1, 2], [PX_100_05], [70], [1]]  # bids, asks: best first
    assert depth_update(T0, 9, columns, levels=1) == (T0, 9, 100, 70)
    assert depth_update(T0, 9, columns, levels=LEVELS) == (T0, 9, 350, 70)
    assert depth_update(T0, 9, [[], [], [], [], [], []], levels=LEVELS) == (T0, 9, 0, 0)


def test_config_rejects_nonsense() -> None:
    for bad in [{"intervals_s": ()}, {"intervals_s": (0,)}, {"depth_levels": 0}, {"depth_levels": 2.0}]:
        with pytest.raises(ValueError):
            LiquidityConfig(**bad)  # type: ignore[arg-type]


def test_the_reference_agrees_with_the_worked_examples() -> None:
    log: list[Op] = [
        ("tops", VENUE, SYMBOL, DAY, [tob(T0 + 200 * MS, BID, ASK)]),
        ("tops", VENUE, SYMBOL, DAY, [tob(T0 + 700 * MS, BID, (PX_100_03, 100))]),
        ("depth", VENUE, SYMBOL, DAY, [depth(T0 + 750 * MS, 2_000, 0)]),
        ("tops", VENUE, SYMBOL, DAY, [tob(T0 + 1_400 * MS, (PX_100_01, 50), (PX_100_03, 100))]),
        ("advance", T0 + 2 * SECOND),
    ]
    first, second = liquidity_reference(log, (1,))[-1]
    assert only_spread(first) == (T0, (500 * 0.5 + 300 * 0.3) / 0.8, 800 * MS, 2)
    assert only_spread(second) == (T0 + SECOND, 300 * 0.4 + 200 * 0.6, SECOND, 1)
    assert only_depth(second) == (T0 + SECOND, 2_000.0, 0.0, 1.0, SECOND, 0)


# ------------------------------------------------------------------ differential and state


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("intervals_s", [(1,), (1, 7, 60)])
def test_outputs_equal_the_reference_call_by_call(seed: int, intervals_s: tuple[int, ...]) -> None:
    log = random_log(seed, depth=True)
    got = run_liquidity(Liquidity(LiquidityConfig(intervals_s=intervals_s)), log)
    assert got == liquidity_reference(log, intervals_s)
    rows = [row for output in got for row in output if isinstance(row, LiquidityRow)]
    late = [row for output in got for row in output if isinstance(row, LateUpdate)]
    assert {item.reason for item in late} == {"window", "day"}
    assert {item.kind for item in late} == {"top", "depth"}
    assert len(rows) > 500
    assert any(row.spread is not None and row.spread <= 0 for row in rows)  # locked or crossed
    assert any(row.spread is None for row in rows) and any(row.depth_imbalance is None for row in rows)


@pytest.mark.parametrize("seed", range(4))
def test_snapshot_and_restore_anywhere_give_the_same_later_outputs(seed: int) -> None:
    log = random_log(seed, steps=600, depth=True)
    config = LiquidityConfig(intervals_s=(1, 60))
    whole = run_liquidity(Liquidity(config), log)
    for cut in range(0, len(log), 67):
        core = Liquidity(config)
        before = run_liquidity(core, log[:cut])
        restored = Liquidity(config)
        restored.restore(json.loads(json.dumps(core.snapshot())))
        assert restored.snapshot() == core.snapshot()
        assert before + run_liquidity(restored, log[cut:]) == whole


def test_state_drains_to_each_symbols_last_state() -> None:
    core = Liquidity(LiquidityConfig(intervals_s=(1, 60)))
    run_liquidity(core, [op for op in random_log(1, steps=400, depth=True) if op[0] != "advance"])
    core.advance(T0 + 3 * DAY_NS)
    snapshot = core.snapshot()
    assert snapshot["symbols"]
    assert all(saved["tracks"] == [] and saved["closed"] == [] for saved in snapshot["symbols"])
    assert core.next_timer_ms() is None


def test_restore_rejects_another_version_or_other_sizes() -> None:
    snapshot = Liquidity().snapshot()
    with pytest.raises(ValueError, match="version"):
        Liquidity().restore({**snapshot, "version": 2})
    with pytest.raises(ValueError, match="intervals_s"):
        Liquidity(LiquidityConfig(intervals_s=(60,))).restore(snapshot)
