"""Order-flow imbalance (:mod:`itchflow.analytics.ofi`): each term of e_n worked by hand, empty sides, the
first change of a day, window boundaries, firing, late changes, days, state; then a seeded
differential test against the brute-force reference of ``tests/unit/flow_reference.py``."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from itchflow.analytics.ofi import OfiConfig, OfiRow, OrderFlowImbalance
from itchflow.analytics.tumbling import LateUpdate
from tests.unit.flow_reference import e_terms, ofi_reference, run_ofi
from tests.unit.tob_support import (
    DAY,
    DAY_NS,
    EMPTY,
    MS,
    PX_99_99,
    PX_100_00,
    PX_100_01,
    PX_100_04,
    PX_100_05,
    PX_100_06,
    SECOND,
    SYMBOL,
    T0,
    VENUE,
    random_log,
    tob,
)

MINUTE = 60 * SECOND
BID = (PX_100_00, 300)
ASK = (PX_100_05, 200)
OPEN = tob(T0, BID, ASK)
OPEN_FLOWS = (300, -200)
"""From the empty book: the bid appears (+300), the ask appears (-200)."""


def ofi_row(
    start: int, bid_flow: int, ask_flow: int, updates: int, interval_s: int = 1, day: int = DAY
) -> OfiRow:
    return OfiRow(VENUE, day, SYMBOL, interval_s, start, bid_flow + ask_flow, bid_flow, ask_flow, updates)


# ------------------------------------------------------------------ each term by hand


def flows_of_second_change(after: tuple[int, ...]) -> tuple[int, int]:
    """(bid_flow, ask_flow) of the change ``after`` following OPEN, within one 1 s window."""
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [OPEN, after])
    (row,) = core.close_all()
    assert row.updates == 2
    assert row.ofi == row.bid_flow + row.ask_flow
    return row.bid_flow - OPEN_FLOWS[0], row.ask_flow - OPEN_FLOWS[1]


CASES = {
    # name: (the change after OPEN = bid 100.00 x 300, ask 100.05 x 200; its (bid, ask) terms)
    "bid up: the new bid's shares count": (tob(T0, (PX_100_01, 100), ASK), (100, 0)),
    "bid same price, more shares: the difference": (tob(T0, (PX_100_00, 450), ASK), (150, 0)),
    "bid same price, fewer shares: the difference": (tob(T0, (PX_100_00, 120), ASK), (-180, 0)),
    "bid down: the old bid's shares leave": (tob(T0, (PX_99_99, 900), ASK), (-300, 0)),
    "ask up: the old ask's shares leave": (tob(T0, BID, (PX_100_06, 700)), (0, 200)),
    "ask same price, more shares: minus the difference": (tob(T0, BID, (PX_100_05, 260)), (0, -60)),
    "ask down: minus the new ask's shares": (tob(T0, BID, (PX_100_04, 50)), (0, -50)),
    "only the order count changed: nothing": ((T0, 0, *BID, 2, *ASK, 1), (0, 0)),
    "both sides move": (tob(T0, (PX_100_01, 10), (PX_100_06, 20)), (10, 200)),
    "the bid empties: its last shares leave": (tob(T0, EMPTY, ASK), (-300, 0)),
    "the ask empties: its last shares leave, + for the ask": (tob(T0, BID, EMPTY), (0, 200)),
}


@pytest.mark.parametrize("name", CASES)
def test_each_term_of_e_n_by_hand(name: str) -> None:
    after, expected = CASES[name]
    assert flows_of_second_change(after) == expected
    assert e_terms((*BID, *ASK), (after[2], after[3], after[5], after[6])) == expected  # the reference too


def test_the_first_change_of_the_day_is_measured_from_the_empty_book() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [OPEN])
    assert core.close_all() == [ofi_row(T0, *OPEN_FLOWS, 1)]


def test_a_side_that_appears_counts_as_an_improving_quote_and_staying_empty_counts_nothing() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    changes = [
        tob(T0, BID, EMPTY),  # bid appears: +300
        tob(T0 + 1, BID, EMPTY),  # the same (an order count, say): 0
        tob(T0 + 2, BID, ASK),  # ask appears: -200
        tob(T0 + 3, EMPTY, ASK),  # bid empties: -300
        tob(T0 + 4, EMPTY, EMPTY),  # ask empties: +200
        tob(T0 + 5, EMPTY, EMPTY),  # nothing at all: 0
    ]
    core.add(VENUE, SYMBOL, DAY, changes)
    assert core.close_all() == [ofi_row(T0, 300 - 300, -200 + 200, 6)]


def test_e_n_uses_the_previous_change_across_a_window_boundary() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1, 60)))
    core.add(VENUE, SYMBOL, DAY, [OPEN, tob(T0 + 900 * MS, (PX_100_01, 100), ASK)])  # bid up: +100
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 1_100 * MS, (PX_100_01, 100), (PX_100_04, 70))])  # ask down: -70
    assert core.advance(T0 + SECOND) == [ofi_row(T0, 300 + 100, -200, 2)]
    assert core.advance(T0 + 2 * SECOND) == [ofi_row(T0 + SECOND, 0, -70, 1)]
    assert core.advance(T0 + MINUTE) == [ofi_row(T0, 400, -270, 3, interval_s=60)]


# ------------------------------------------------------------------ firing, late changes, days


def test_a_window_fires_once_event_time_passes_its_end_and_the_timer_says_when() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    assert core.next_timer_ms() is None
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 400 * MS, BID, ASK)])
    end_ms = (T0 + SECOND) // MS
    assert core.next_timer_ms() == end_ms - 1  # watermark end_ms - 1: every event before end_ms seen
    assert core.advance(T0 + SECOND - 1) == []
    assert core.advance(T0 + SECOND) == [ofi_row(T0, *OPEN_FLOWS, 1)]
    assert core.advance(T0 + 5 * SECOND) == []  # once only
    assert core.next_timer_ms() is None


def test_a_window_without_changes_has_no_row() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [OPEN])
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 3 * SECOND, (PX_100_01, 5), ASK)])
    assert [row.window_start_ns for row in core.advance(T0 + 10 * SECOND)] == [T0, T0 + 3 * SECOND]


def test_a_change_into_a_fired_window_is_late_but_moves_the_carry_state() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1, 60)))
    core.add(VENUE, SYMBOL, DAY, [OPEN])
    assert core.advance(T0 + SECOND) == [ofi_row(T0, *OPEN_FLOWS, 1)]
    straggler = tob(T0 + 900 * MS, (PX_100_01, 100), ASK, seq=7)  # bid up: +100, for [T0, T0 + 1 s) only
    core.add(VENUE, SYMBOL, DAY, [straggler])
    assert core.late == [LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 900 * MS, 7, (1,), "window")]
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 1_500 * MS, (PX_100_01, 160), ASK)])  # after the straggler: +60
    assert core.advance(T0 + 2 * SECOND) == [ofi_row(T0 + SECOND, 60, 0, 1)]
    assert core.advance(T0 + MINUTE) == [ofi_row(T0, 300 + 100 + 60, -200, 3, interval_s=60)]


def test_event_time_never_goes_back() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.advance(T0 + 5 * SECOND)
    assert core.advance(T0) == []
    assert core.complete_before_ns == T0 + 5 * SECOND
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 4 * SECOND, BID, ASK)])
    assert [late.intervals_s for late in core.late] == [(1,)]


def test_close_all_emits_open_windows_and_later_changes_in_them_are_late() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1, 60)))
    core.add(VENUE, SYMBOL, DAY, [OPEN, tob(T0 + 2 * SECOND, (PX_100_01, 100), ASK)])
    assert core.close_all() == [
        ofi_row(T0, *OPEN_FLOWS, 1),
        ofi_row(T0 + 2 * SECOND, 100, 0, 1),
        ofi_row(T0, 400, -200, 2, interval_s=60),
    ]
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 1_500 * MS, (PX_100_01, 150), ASK, seq=3)])  # +50, nowhere
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 3 * SECOND, (PX_100_01, 180), ASK, seq=4)])  # +30 after it
    assert core.late == [
        LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 1_500 * MS, 3, (1, 60), "window"),
        LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 3 * SECOND, 4, (60,), "window"),  # the minute was emitted
    ]
    assert core.close_all() == [ofi_row(T0 + 3 * SECOND, 30, 0, 1)]


def test_after_close_all_every_window_up_to_the_latest_it_emitted_is_late_even_if_time_went_back() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 2 * SECOND, BID, ASK), tob(T0 + 500 * MS, BID, EMPTY)])
    assert [row.window_start_ns for row in core.close_all()] == [T0, T0 + 2 * SECOND]
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 1_500 * MS, BID, ASK, seq=5)])  # between them: late too
    assert [(late.seq, late.intervals_s) for late in core.late] == [(5, (1,))]
    assert core.close_all() == []


def test_a_new_trading_day_starts_from_the_empty_book_and_an_earlier_day_is_late() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [OPEN])
    core.add(VENUE, SYMBOL, DAY + 1, [tob(T0 + DAY_NS, (PX_100_01, 40), (PX_100_06, 10))])
    core.add(VENUE, SYMBOL, DAY, [tob(T0 + 1, (PX_100_01, 40), ASK, seq=9)])
    assert core.late == [LateUpdate(VENUE, SYMBOL, DAY, "top", T0 + 1, 9, (1,), "day")]
    assert core.advance(T0 + DAY_NS + SECOND) == [
        ofi_row(T0, *OPEN_FLOWS, 1),
        ofi_row(T0 + DAY_NS, 40, -10, 1, day=DAY + 1),
    ]


def test_symbols_and_venues_are_apart() -> None:
    core = OrderFlowImbalance(OfiConfig(intervals_s=(1,)))
    core.add(VENUE, SYMBOL, DAY, [OPEN])
    core.add(VENUE, "OTHER", DAY, [tob(T0, (PX_100_00, 5), EMPTY)])
    core.add("XBOS", SYMBOL, DAY, [tob(T0, EMPTY, (PX_100_00, 7))])
    assert [(row.venue, row.symbol, row.ofi) for row in core.advance(T0 + SECOND)] == [
        ("XBOS", SYMBOL, -7),
        (VENUE, "OTHER", 5),
        (VENUE, SYMBOL, 100),
    ]


def test_config_rejects_bad_sizes() -> None:
    for bad in [(), (0,), (1, 1), (1.5,), [1]]:
        with pytest.raises(ValueError):
            OfiConfig(intervals_s=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ state


def test_state_drains_to_the_last_top_of_book_per_symbol() -> None:
    core = OrderFlowImbalance()
    for seed in range(2):
        for op in random_log(seed, steps=300):
            if op[0] == "tops":
                core.add(*op[1:])
    core.close_all()
    core.advance(T0 + 3 * DAY_NS)
    snapshot = core.snapshot()
    assert snapshot["symbols"]
    assert all(saved["windows"] == [] and saved["closed"] == [] for saved in snapshot["symbols"])
    assert core.next_timer_ms() is None


def test_restore_rejects_another_version_or_other_sizes() -> None:
    snapshot = OrderFlowImbalance().snapshot()
    with pytest.raises(ValueError, match="version"):
        OrderFlowImbalance().restore({**snapshot, "version": 99})
    with pytest.raises(ValueError, match="intervals_s"):
        OrderFlowImbalance(OfiConfig(intervals_s=(1,))).restore(snapshot)


@pytest.mark.parametrize("seed", range(4))
def test_snapshot_and_restore_anywhere_give_the_same_later_outputs(seed: int) -> None:
    log = random_log(seed, steps=600)
    whole = run_ofi(OrderFlowImbalance(), log)
    for cut in range(0, len(log), 37):
        core = OrderFlowImbalance()
        before = run_ofi(core, log[:cut])
        restored = OrderFlowImbalance()
        restored.restore(json.loads(json.dumps(core.snapshot())))
        assert restored.snapshot() == core.snapshot()
        assert before + run_ofi(restored, log[cut:]) == whole


# ------------------------------------------------------------------ differential


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("intervals_s", [(1, 60), (1, 7, 60)])
def test_outputs_equal_the_reference_call_by_call(seed: int, intervals_s: tuple[int, ...]) -> None:
    log = random_log(seed)
    got = run_ofi(OrderFlowImbalance(OfiConfig(intervals_s=intervals_s)), log)
    expected = ofi_reference(log, intervals_s)
    assert got == expected
    rows = [row for output in got for row in output if isinstance(row, OfiRow)]
    late = [row for output in got for row in output if isinstance(row, LateUpdate)]
    # the log exercises what it should
    kinds: dict[str, int] = defaultdict(int)
    for item in late:
        kinds[item.reason] += 1
    assert kinds["window"] > 10 and kinds["day"] > 3
    assert len(rows) > 500
    assert {row.trading_date for row in rows} == {DAY, DAY + 1}
    assert len({(row.venue, row.symbol, row.interval_s, row.window_start_ns) for row in rows}) == len(rows)
