"""Bursts (itchflow.analytics.bursts): worked out by hand, then against an independent reference
(:mod:`tests.unit.bursts_reference`) on random feeds (prints out of order within the allowed
lateness, random breaks, event time advanced at random points, snapshot / restore on the way) and on
the prints of a real ITCH sample.

Times are offsets from ``T0`` in ns, written with ``MS``; the gap is ``G`` = 500 ms unless a test
says otherwise. Every expected row is worked out on paper from the rules in the module docstring."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import date

import pytest

from itchflow.analytics.bar_stage import complete_before_ns
from itchflow.analytics.bars import Print
from itchflow.analytics.bursts import Burst, BurstConfig, BurstDetector, LatePrint
from tests.samples import sample
from tests.unit.bursts_reference import RefBurst, RefPrint, reference_bursts

MS = 1_000_000
S = 1_000_000_000
G = 500 * MS
T0 = 1_577_716_200 * S
"""2019-12-30 09:30:00 in New York (a whole ms)"""
DAY = 18_260
"""2019-12-30 as days since 1970-01-01"""
PRICE = 100_0000
"""$100.00 in ticks of 10^-4 dollars"""
VENUE = "XNAS"
NEVER = 10**30
"""A complete_before past everything (and every lateness)."""


def pr(at: int, match: int, shares: int = 100, price: int = PRICE) -> Print:
    """A print ``at`` ns after T0; its sequence number is its match number (feed order)."""
    return Print(T0 + at, match, match, price, shares)


def add(detector: BurstDetector, *prints: Print, symbol: str = "AAA", day: int = DAY) -> None:
    for p in prints:
        detector.add_print(VENUE, symbol, day, p)


def rows(bursts: Iterable[Burst]) -> list[tuple]:
    """(symbol, start, end (offsets from T0), prints, shares, flagged, revision, deleted)"""
    return [
        (b.symbol, b.start_ns - T0, b.end_ns - T0, b.prints, b.shares, b.flagged, b.revision, b.deleted)
        for b in bursts
    ]


def drained(detector: BurstDetector) -> bool:
    return detector.snapshot()["days"] == []


# ------------------------------------------------------------------------------- by hand: sessions


def test_prints_exactly_a_gap_apart_are_two_sessions() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(100 * MS + G, 3), pr(100 * MS + G + 1, 4))
    assert rows(detector.advance(T0 + NEVER)) == [
        ("AAA", 0, 100 * MS, 2, 200, False, 0, False),
        ("AAA", 100 * MS + G, 100 * MS + G + 1, 2, 200, False, 0, False),
    ]


def test_prints_a_gap_less_one_ns_apart_are_one_session() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(G - 1, 2), pr(2 * G - 2, 3))
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 0, 2 * G - 2, 3, 300, False, 0, False)]


def test_a_burst_fires_once_the_watermark_passes_its_last_print_plus_the_gap() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1, shares=100, price=10_0000), pr(200 * MS, 2, shares=300, price=10_1000))
    assert detector.next_wakeup_ns() == T0 + 200 * MS + G
    assert detector.advance(T0 + 200 * MS + G - 1) == []
    [burst] = detector.advance(T0 + 200 * MS + G)
    assert burst == Burst(
        VENUE, DAY, "AAA", T0, T0 + 200 * MS, 2, 400, 100 * 10_0000 + 300 * 10_1000,
        (100 * 10_0000 + 300 * 10_1000) / 400, False, 0, False,
    )  # fmt: skip
    assert burst.vwap == 10_0750.0 and burst.duration_ns == 200 * MS
    assert detector.advance(T0 + NEVER) == []  # each burst once
    assert drained(detector)


def test_equal_times_are_one_session() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(0, 2), pr(0, 3))
    assert rows(detector.advance(T0 + G)) == [("AAA", 0, 0, 3, 300, False, 0, False)]


def test_a_lone_print_is_no_burst_unless_min_prints_is_one() -> None:
    lone = BurstDetector()
    add(lone, pr(0, 1), pr(G, 2))
    assert lone.advance(T0 + NEVER) == []
    assert drained(lone)
    singles = BurstDetector(BurstConfig(min_prints=1))
    add(singles, pr(0, 1), pr(G, 2))
    assert rows(singles.advance(T0 + NEVER)) == [
        ("AAA", 0, 0, 1, 100, False, 0, False),
        ("AAA", G, G, 1, 100, False, 0, False),
    ]


def test_min_prints_three() -> None:
    detector = BurstDetector(BurstConfig(min_prints=3))
    add(detector, pr(0, 1), pr(1 * MS, 2), pr(2 * S, 3), pr(2 * S + 1 * MS, 4), pr(2 * S + 2 * MS, 5))
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 2 * S, 2 * S + 2 * MS, 3, 300, False, 0, False)]


def test_symbols_and_venues_are_apart() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), symbol="AAA")
    add(detector, pr(1 * MS, 2), symbol="BBB")
    detector.add_print("XBOS", "AAA", DAY, pr(2 * MS, 3))
    assert detector.advance(T0 + NEVER) == []


def test_out_of_order_print_inside_a_session() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(400 * MS, 3), pr(200 * MS, 2))
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 0, 400 * MS, 3, 300, False, 0, False)]
    assert detector.late == []


def test_a_print_bridging_two_open_sessions_merges_them() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(700 * MS, 4), pr(800 * MS, 5))
    assert detector.advance(T0 + 550 * MS) == []  # [0, 100] ends at 600
    add(detector, pr(400 * MS, 3))  # behind the watermark, 300 ms from both sides
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 0, 800 * MS, 5, 500, False, 0, False)]


# ------------------------------------------------------------------------------------ by hand: flag

# 10 prints per second over a gap of 500 ms: 5 prints; 1000 shares per second: 500 shares
FLAGS = BurstConfig(alert_prints_per_s=10, alert_shares_per_s=1000)


@pytest.mark.parametrize(
    ("times", "shares", "flagged"),
    [
        ([0, 100, 200, 300, 400], 1, True),  # 5 prints in 400 ms, counted over 500 ms: 10 / s
        ([0, 100, 200, 300], 1, False),  # 8 / s
        ([0, 0, 0, 0, 0], 1, True),  # one instant counts as one gap: 10 / s
        ([0, 0, 0, 0], 1, False),
        ([0, 400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600], 1, False),  # 10 in 3.6 s
        ([0, 100, 200, 300, 400, 500, 600, 700, 800, 900], 1, True),  # 10 in 900 ms: 11.1 / s
        ([0, 100], 250, True),  # 500 shares in a gap: 1000 / s
        ([0, 100], 249, False),
        ([0, 400, 800, 1000], 250, True),  # 1000 shares in 1 s
        ([0, 400, 800, 1001], 250, False),
    ],
)
def test_flagged_at_the_threshold_rate(times: list[int], shares: int, flagged: bool) -> None:
    detector = BurstDetector(FLAGS)
    add(detector, *(pr(at * MS, n, shares=shares) for n, at in enumerate(times, 1)))
    [burst] = detector.advance(T0 + NEVER)
    assert burst.flagged is flagged


def test_no_thresholds_flag_nothing() -> None:
    detector = BurstDetector()
    add(detector, *(pr(0, n, shares=10**6) for n in range(1, 100)))
    [burst] = detector.advance(T0 + NEVER)
    assert not burst.flagged


# ----------------------------------------------------------------------- by hand: lateness, merges

LATE_1S = BurstConfig(allowed_lateness_ms=1000)


def test_late_print_merging_two_fired_bursts_deletes_the_later_key() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(700 * MS, 4), pr(800 * MS, 5))  # 600 ms apart: two
    assert rows(detector.advance(T0 + 1300 * MS)) == [
        ("AAA", 0, 100 * MS, 2, 200, False, 0, False),
        ("AAA", 700 * MS, 800 * MS, 2, 200, False, 0, False),
    ]
    add(detector, pr(400 * MS, 3))  # 300 ms from both; 400 >= 1300 - 1000: within the lateness
    assert detector.late == []
    assert rows(detector.advance(T0 + 1300 * MS)) == [
        ("AAA", 0, 800 * MS, 5, 500, False, 1, False),
        ("AAA", 700 * MS, 700 * MS, 0, 0, False, 1, True),
    ]
    assert detector.advance(T0 + 2300 * MS - 1) == []  # held until 800 + 500 + 1000
    assert detector.snapshot()["days"] != []
    assert detector.advance(T0 + 2300 * MS) == []
    assert drained(detector)


def test_late_print_before_the_start_moves_the_key() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(300 * MS, 2), pr(400 * MS, 3))
    assert rows(detector.advance(T0 + 900 * MS)) == [("AAA", 300 * MS, 400 * MS, 2, 200, False, 0, False)]
    add(detector, pr(0, 1))
    assert rows(detector.advance(T0 + 900 * MS)) == [
        ("AAA", 0, 400 * MS, 3, 300, False, 0, False),
        ("AAA", 300 * MS, 300 * MS, 0, 0, False, 1, True),
    ]


def test_late_print_extending_a_fired_burst_past_now_waits_for_the_new_end() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    assert len(detector.advance(T0 + 600 * MS)) == 1
    add(detector, pr(400 * MS, 3))  # the session now ends at 900
    assert detector.advance(T0 + 899 * MS) == []  # the key stays as emitted meanwhile
    assert rows(detector.advance(T0 + 900 * MS)) == [("AAA", 0, 400 * MS, 3, 300, False, 1, False)]


def test_late_print_bridging_a_fired_and_an_open_session() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(700 * MS, 4))
    assert rows(detector.advance(T0 + 700 * MS)) == [("AAA", 0, 100 * MS, 2, 200, False, 0, False)]
    add(detector, pr(400 * MS, 3))  # merged: [0, 700], ends at 1200; 700 was never emitted
    assert detector.advance(T0 + 1199 * MS) == []
    assert rows(detector.advance(T0 + 1200 * MS)) == [("AAA", 0, 700 * MS, 4, 400, False, 1, False)]


def test_print_behind_the_watermark_joins_an_open_session() -> None:
    detector = BurstDetector()  # no allowed lateness
    add(detector, pr(0, 1))
    assert detector.advance(T0 + 300 * MS) == []
    add(detector, pr(200 * MS, 2))  # behind the watermark, but the session is open
    assert detector.late == []
    assert rows(detector.advance(T0 + 700 * MS)) == [("AAA", 0, 200 * MS, 2, 200, False, 0, False)]


def test_print_behind_the_watermark_of_a_symbol_without_sessions_is_late() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), symbol="BBB")
    detector.advance(T0 + 300 * MS)
    add(detector, pr(200 * MS, 7))  # AAA holds nothing: it cannot know what it let go
    assert detector.late == [LatePrint(VENUE, "AAA", "print", T0 + 200 * MS, 7)]
    assert detector.late_prints == 1


def test_print_touching_a_dropped_burst_is_late_and_changes_nothing() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(900 * MS, 4))
    assert len(detector.advance(T0 + 600 * MS)) == 1  # [0, 100] fired and dropped; 900 is open
    before = detector.snapshot()
    add(detector, pr(550 * MS, 3))  # 450 after the dropped burst (and 350 before the open print)
    assert detector.late == [LatePrint(VENUE, "AAA", "print", T0 + 550 * MS, 3)]
    snapshot = detector.snapshot()
    assert snapshot["days"] == before["days"]
    assert detector.advance(T0 + NEVER) == []
    assert drained(detector)


def test_print_whose_own_session_is_past_the_lateness_horizon_is_late() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(10 * S, 9))
    assert len(detector.advance(T0 + 5 * S)) == 1  # [0, 100] dropped at 1600; the floor is 100
    add(detector, pr(550 * MS, 3))  # 550 < 100 + 500: would touch the dropped burst
    add(detector, pr(3000 * MS, 4))  # joins nothing: its session ends at 3500, + 1000 <= 5000
    add(detector, pr(3600 * MS, 5), pr(3700 * MS, 6))  # 3600 + 500 + 1000 > 5000: accepted
    assert [late.match_number for late in detector.late] == [3, 4]
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 3600 * MS, 3700 * MS, 2, 200, False, 0, False)]


def test_a_print_joining_a_session_past_the_horizon_at_the_given_watermark_is_late() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2))
    # the watermark moved to 1000 before the operator advanced: [0, 100] ended at 600
    detector.add_print(VENUE, "AAA", DAY, pr(300 * MS, 3), complete_before_ns=T0 + 1000 * MS)
    detector.add_print(VENUE, "AAA", DAY, pr(999 * MS, 4), complete_before_ns=T0 + 1000 * MS)
    assert [late.match_number for late in detector.late] == [3]
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 0, 100 * MS, 2, 200, False, 0, False)]


def test_event_time_never_goes_back() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2))
    assert len(detector.advance(T0 + 600 * MS)) == 1
    assert detector.advance(T0) == []
    assert detector.complete_before_ns == T0 + 600 * MS
    add(detector, pr(50 * MS, 3))
    assert [late.match_number for late in detector.late] == [3]


# ------------------------------------------------------------------------------ by hand: breaks


def test_break_splitting_a_burst() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(400 * MS, 3), pr(700 * MS, 4), pr(800 * MS, 5))
    assert rows(detector.advance(T0 + 1300 * MS)) == [("AAA", 0, 800 * MS, 5, 500, False, 0, False)]
    detector.break_trade(VENUE, "AAA", 3, T0 + 1300 * MS)  # 100 .. 700 is 600 ms: two bursts
    assert rows(detector.advance(T0 + 1300 * MS)) == [
        ("AAA", 0, 100 * MS, 2, 200, False, 1, False),
        ("AAA", 700 * MS, 800 * MS, 2, 200, False, 0, False),
    ]


def test_break_leaving_a_lone_print_deletes_the_burst_and_a_late_print_brings_it_back() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    assert len(detector.advance(T0 + 600 * MS)) == 1
    detector.break_trade(VENUE, "AAA", 2, T0 + 600 * MS)
    assert rows(detector.advance(T0 + 600 * MS)) == [("AAA", 0, 0, 0, 0, False, 1, True)]
    add(detector, pr(50 * MS, 3))
    assert rows(detector.advance(T0 + 600 * MS)) == [("AAA", 0, 50 * MS, 2, 200, False, 2, False)]


def test_break_of_the_first_print_moves_the_key() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(200 * MS, 3))
    assert len(detector.advance(T0 + 700 * MS)) == 1
    detector.break_trade(VENUE, "AAA", 1, T0 + 700 * MS)
    assert rows(detector.advance(T0 + 700 * MS)) == [
        ("AAA", 0, 0, 0, 0, False, 1, True),
        ("AAA", 100 * MS, 200 * MS, 2, 200, False, 0, False),
    ]


def test_breaking_every_print_of_a_burst_deletes_it_and_the_state_drains() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    assert len(detector.advance(T0 + 600 * MS)) == 1
    detector.break_trade(VENUE, "AAA", 1, T0 + 600 * MS)
    detector.break_trade(VENUE, "AAA", 2, T0 + 600 * MS)
    assert rows(detector.advance(T0 + 600 * MS)) == [("AAA", 0, 0, 0, 0, False, 1, True)]
    assert detector.late == []
    assert detector.advance(T0 + NEVER) == []
    assert drained(detector)


def test_break_before_firing_is_never_seen() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(200 * MS, 3))
    detector.break_trade(VENUE, "AAA", 2, T0 + 300 * MS)
    assert rows(detector.advance(T0 + NEVER)) == [("AAA", 0, 200 * MS, 2, 200, False, 0, False)]


def test_break_of_an_unknown_or_dropped_print_is_reported() -> None:
    detector = BurstDetector()
    add(detector, pr(0, 1), pr(100 * MS, 2))
    detector.advance(T0 + 600 * MS)  # fired and dropped
    add(detector, pr(2 * S, 3))
    before = detector.snapshot()["days"]
    detector.break_trade(VENUE, "AAA", 2, T0 + 2 * S)  # dropped
    detector.break_trade(VENUE, "AAA", 99, T0 + 2 * S)  # never seen
    detector.break_trade(VENUE, "ZZZ", 3, T0 + 2 * S)  # another symbol's match number
    assert detector.late == [
        LatePrint(VENUE, "AAA", "break", T0 + 2 * S, 2),
        LatePrint(VENUE, "AAA", "break", T0 + 2 * S, 99),
        LatePrint(VENUE, "ZZZ", "break", T0 + 2 * S, 3),
    ]
    assert detector.late_breaks == 3
    assert detector.snapshot()["days"] == before


# -------------------------------------------------------------------- by hand: days, end of feed


def test_a_later_trading_day_never_joins_an_earlier_one() -> None:
    detector = BurstDetector(BurstConfig(min_prints=1))
    add(detector, pr(0, 1), day=DAY)
    add(detector, pr(1 * MS, 2), day=DAY + 1)  # times this close cannot happen, dates still split
    add(detector, pr(2 * MS, 3), day=DAY)
    out = detector.advance(T0 + NEVER)
    assert [(b.trading_date, b.start_ns - T0, b.end_ns - T0, b.prints) for b in out] == [
        (DAY, 0, 2 * MS, 2),
        (DAY + 1, 1 * MS, 1 * MS, 1),
    ]


def test_break_looks_at_the_latest_day_first() -> None:
    detector = BurstDetector(BurstConfig(min_prints=1))
    add(detector, pr(0, 1), pr(1 * MS, 2), day=DAY)
    add(detector, pr(2 * S, 1), day=DAY + 1)  # match numbers start again each day
    detector.break_trade(VENUE, "AAA", 1, T0 + 3 * S)
    out = detector.advance(T0 + NEVER)
    assert [(b.trading_date, b.start_ns - T0, b.prints) for b in out] == [(DAY, 0, 2)]


def test_close_all_fires_open_sessions_now_and_keeps_them_for_late_prints() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(5 * S, 3), pr(5 * S + 1 * MS, 4))
    assert len(detector.advance(T0 + 600 * MS)) == 1
    assert rows(detector.close_all()) == [("AAA", 5 * S, 5 * S + 1 * MS, 2, 200, False, 0, False)]
    assert detector.close_all() == []
    assert detector.advance(T0 + 5 * S + 501 * MS) == []  # it ends now: nothing new to say
    add(detector, pr(5 * S + 2 * MS, 5))
    assert rows(detector.advance(T0 + 5 * S + 502 * MS)) == [
        ("AAA", 5 * S, 5 * S + 2 * MS, 3, 300, False, 1, False)
    ]
    assert detector.advance(T0 + NEVER) == []
    assert drained(detector)


def test_a_merge_deletes_an_absorbed_key_at_once_even_if_the_merged_session_is_open() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2), pr(700 * MS, 4), pr(800 * MS, 5))
    assert len(detector.advance(T0 + 650 * MS)) == 1  # [0, 100]
    assert len(detector.close_all()) == 1  # [700, 800], not complete (it ends at 1300)
    add(detector, pr(400 * MS, 3))
    assert rows(detector.advance(T0 + 650 * MS)) == [("AAA", 700 * MS, 700 * MS, 0, 0, False, 1, True)]
    assert detector.advance(T0 + 1299 * MS) == []
    assert rows(detector.advance(T0 + 1300 * MS)) == [("AAA", 0, 800 * MS, 5, 500, False, 1, False)]


def test_a_key_whose_open_session_moved_its_start_is_deleted_at_once() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(700 * MS, 4), pr(800 * MS, 5), pr(900 * MS, 6))
    detector.advance(T0 + 650 * MS)
    assert len(detector.close_all()) == 1  # [700, 900], not complete (it ends at 1400)
    add(detector, pr(400 * MS, 3))  # a late print before it
    assert rows(detector.advance(T0 + 650 * MS)) == [("AAA", 700 * MS, 700 * MS, 0, 0, False, 1, True)]
    detector.break_trade(VENUE, "AAA", 3, T0)  # and the break of it: back to 700, revision 2
    assert rows(detector.advance(T0 + 650 * MS)) == []  # the session at 700 is not complete
    assert rows(detector.advance(T0 + 1400 * MS)) == [("AAA", 700 * MS, 900 * MS, 3, 300, False, 2, False)]


def test_a_key_whose_open_session_lost_its_first_print_is_deleted_at_once() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(700 * MS, 4), pr(800 * MS, 5), pr(900 * MS, 6))
    detector.advance(T0 + 650 * MS)
    assert len(detector.close_all()) == 1
    detector.break_trade(VENUE, "AAA", 4, T0)
    assert rows(detector.advance(T0 + 650 * MS)) == [("AAA", 700 * MS, 700 * MS, 0, 0, False, 1, True)]
    assert rows(detector.advance(T0 + 1400 * MS)) == [("AAA", 800 * MS, 900 * MS, 2, 200, False, 0, False)]


def test_close_all_emits_pending_deletions() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    detector.advance(T0 + 600 * MS)
    detector.break_trade(VENUE, "AAA", 1, T0 + 600 * MS)
    assert rows(detector.close_all()) == [("AAA", 0, 0, 0, 0, False, 1, True)]


# ------------------------------------------------------------------------------ by hand: the timer


def test_the_timer_fires_when_complete_before_reaches_the_wakeup() -> None:
    detector = BurstDetector()
    add(detector, pr(1, 1), pr(2, 2))  # the session ends at T0 + 2 ns + 500 ms: not a whole ms
    due = T0 + 2 + G
    assert detector.next_wakeup_ns() == due
    timer = detector.next_timer_ms()
    assert timer == (T0 + G) // MS  # W = T0 + 500 ms: complete before T0 + 501 ms >= due
    assert timer is not None
    assert complete_before_ns(timer - 1) < due <= complete_before_ns(timer)
    assert detector.advance(complete_before_ns(timer - 1)) == []
    assert len(detector.advance(complete_before_ns(timer))) == 1
    assert detector.next_wakeup_ns() is None and detector.next_timer_ms() is None


def test_the_wakeups_on_the_way_to_an_empty_state() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    assert detector.next_timer_ms() == (T0 + 600 * MS) // MS - 1  # complete before (W + 1) ms
    assert len(detector.advance(T0 + 600 * MS)) == 1
    assert detector.next_wakeup_ns() == T0 + 1600 * MS  # when to drop it
    detector.break_trade(VENUE, "AAA", 1, T0)
    assert detector.next_wakeup_ns() == T0 + 600 * MS  # key 0 to delete: at the next advance
    detector.break_trade(VENUE, "AAA", 2, T0)
    assert len(detector.advance(T0 + 600 * MS)) == 1
    # nothing held; key 0's revision is kept while a print at 0 would be accepted (0 >= now - 1000)
    assert detector.next_wakeup_ns() == T0 + 1000 * MS + 1
    assert detector.advance(T0 + 1000 * MS) == []
    assert not drained(detector)
    assert detector.advance(T0 + 1000 * MS + 1) == []
    assert detector.next_wakeup_ns() is None
    assert drained(detector)


def test_a_deleted_key_emitted_again_continues_its_revisions() -> None:
    detector = BurstDetector(LATE_1S)
    add(detector, pr(0, 1), pr(100 * MS, 2))
    detector.advance(T0 + 600 * MS)
    detector.break_trade(VENUE, "AAA", 1, T0)
    detector.break_trade(VENUE, "AAA", 2, T0)
    assert rows(detector.advance(T0 + 1000 * MS)) == [("AAA", 0, 0, 0, 0, False, 1, True)]
    add(detector, pr(0, 3), pr(1, 4))  # 0 >= 1000 - 1000: still within the lateness
    assert rows(detector.advance(T0 + 1000 * MS)) == [("AAA", 0, 1, 2, 200, False, 2, False)]


# --------------------------------------------------------------------------------- by hand: state


def test_snapshot_is_plain_data_and_restore_gives_the_same_outputs() -> None:
    def steps(detector: BurstDetector) -> list[list[Burst]]:
        out = []
        add(detector, pr(400 * MS, 3))  # merges the two fired bursts
        out.append(detector.advance(T0 + 1300 * MS))
        detector.break_trade(VENUE, "AAA", 1, T0)
        out.append(detector.advance(T0 + 1400 * MS))
        add(detector, pr(3 * S, 6), pr(3 * S + 1, 7))
        out.append(detector.close_all())
        out.append(detector.advance(T0 + NEVER))
        return out

    original = BurstDetector(LATE_1S)
    add(original, pr(0, 1), pr(100 * MS, 2), pr(700 * MS, 4), pr(800 * MS, 5), pr(2 * S, 9))
    assert len(original.advance(T0 + 1300 * MS)) == 2
    data = json.loads(json.dumps(original.snapshot()))
    assert data["version"] == 1
    restored = BurstDetector(LATE_1S)
    restored.restore(data)
    assert restored.snapshot() == original.snapshot()
    want = steps(original)
    assert want[0] and want[1] and want[2]
    assert steps(restored) == want
    assert drained(restored)


def test_restore_refuses_another_version_or_gap() -> None:
    detector = BurstDetector()
    data = detector.snapshot()
    with pytest.raises(ValueError, match="version"):
        detector.restore({**data, "version": 99})
    with pytest.raises(ValueError, match="gap_ms"):
        BurstDetector(BurstConfig(gap_ms=100)).restore(data)


@pytest.mark.parametrize(
    "config",
    [
        {"gap_ms": 0},
        {"gap_ms": 1.5},
        {"min_prints": 0},
        {"alert_prints_per_s": 0},
        {"alert_shares_per_s": -1},
        {"allowed_lateness_ms": -1},
        {"allowed_lateness_ms": True},
    ],
)
def test_config_errors(config: dict) -> None:
    with pytest.raises(ValueError):
        BurstConfig(**config)


# ------------------------------------------------------------------- against the reference: random


def live_keys(emissions: Iterable[list[Burst]]) -> dict[tuple, RefBurst]:
    """What an idempotent sink holds after ``emissions`` (one list per call), checking on the way that
    revisions of a key count 0, 1, 2, ..., that a call emits a key at most once and that a key is
    emitted again only with other values."""
    latest: dict[tuple, Burst] = {}
    for batch in emissions:
        keys = [(b.venue, b.trading_date, b.symbol, b.start_ns) for b in batch]
        assert len(keys) == len(set(keys)), "a key twice in one call"
        for key, burst in zip(keys, batch, strict=True):
            before = latest.get(key)
            assert burst.revision == (0 if before is None else before.revision + 1), (key, burst)
            if before is not None:
                assert before._replace(revision=0) != burst._replace(revision=0), f"{key} unchanged"
            else:
                assert not burst.deleted, f"{key} deleted before it was emitted"
            latest[key] = burst
    return {
        key: RefBurst(b.end_ns, b.prints, b.shares, b.notional, b.vwap, b.flagged)  # type: ignore[arg-type]
        for key, b in latest.items()
        if not b.deleted
    }


def random_prints(rng: random.Random, gap: int) -> list[RefPrint]:
    """Runs of prints of several venues, symbols and days; steps between neighbours often exactly a
    gap, one ns less or more, or nothing. The two days overlap in time (they must still stay apart)."""
    prints: list[RefPrint] = []
    steps = [0, 1, gap - 1, gap, gap + 1]
    for venue in ("XNAS", "XBOS"):
        for symbol in ("A", "B", "C", "D", "E", "F"):
            for trading_date in (DAY, DAY + 1):
                t = T0 + rng.randrange(3 * S)
                for _ in range(rng.randrange(40)):
                    kind = rng.random()
                    if kind < 0.4:
                        t += rng.choice(steps)
                    elif kind < 0.8:
                        t += rng.randrange(gap)
                    else:
                        t += rng.randrange(gap, 4 * gap)
                    price = rng.randrange(1, 200) * 10_000 + rng.randrange(10_000)
                    prints.append(RefPrint(venue, trading_date, symbol, t, 0, price, rng.randrange(1, 1000)))
    prints.sort(key=lambda p: p.ts_event)
    return [p._replace(seq=seq) for seq, p in enumerate(prints, 1)]  # seq = match number


def run_random_feed(seed: int, config: BurstConfig, use_given_watermark: bool, restore: bool) -> None:
    rng = random.Random(seed)
    gap, lateness = config.gap_ns, config.allowed_lateness_ns
    prints = random_prints(rng, gap)
    # each print arrives when event time is at most its own time + the lateness; some are broken
    # later, but before event time passes their own time + the lateness (their session is held)
    events: list[tuple[int, int, float, str, RefPrint]] = []
    broken: set[int] = set()
    for p in prints:
        arrival = p.ts_event + rng.randrange(lateness + 1)
        events.append((arrival, 0, rng.random(), "print", p))
        if rng.random() < 0.15:
            broken.add(p.seq)
            events.append((rng.randrange(arrival, p.ts_event + lateness + 1), 1, rng.random(), "break", p))
    events.sort(key=lambda event: event[:3])
    detector = BurstDetector(config)
    twin = BurstDetector(config)  # never restored: must say the same
    emissions: list[list[Burst]] = []
    for arrival, _, _, kind, p in events:
        if rng.random() < 0.3:  # the watermark moves: every event still to come arrives after it
            out = detector.advance(arrival)
            assert twin.advance(arrival) == out
            emissions.append(out)
        if restore and rng.random() < 0.05:
            restored = BurstDetector(config)
            restored.restore(json.loads(json.dumps(detector.snapshot())))
            detector = restored
        for core in (detector, twin):
            if kind == "print":
                given = arrival if use_given_watermark else None
                print_tuple = Print(p.ts_event, p.seq, p.seq, p.price, p.shares)
                core.add_print(p.venue, p.symbol, p.trading_date, print_tuple, given)
            else:
                core.break_trade(p.venue, p.symbol, p.seq, arrival)
        detector.check_integrity()
    if rng.random() < 0.5:
        out = detector.close_all()
        assert twin.close_all() == out
        emissions.append(out)
    emissions.append(detector.advance(T0 + NEVER))
    assert detector.late == [] and detector.late_prints == detector.late_breaks == 0
    want = reference_bursts(
        [p for p in prints if p.seq not in broken],
        gap,
        config.min_prints,
        config.alert_prints_per_s,
        config.alert_shares_per_s,
    )
    assert len(want) > 20  # the feed has substance
    assert live_keys(emissions) == want
    assert drained(detector)


CONFIGS = [
    BurstConfig(),
    BurstConfig(allowed_lateness_ms=300, alert_prints_per_s=8),
    BurstConfig(allowed_lateness_ms=2000, alert_shares_per_s=2000),
    BurstConfig(gap_ms=100, min_prints=1, allowed_lateness_ms=700, alert_prints_per_s=30),
    BurstConfig(gap_ms=250, min_prints=3, allowed_lateness_ms=5000),
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"gap{c.gap_ms}-min{c.min_prints}-late{c.allowed_lateness_ms}"
)
def test_random_feeds_match_the_reference(seed: int, config: BurstConfig) -> None:
    run_random_feed(seed, config, use_given_watermark=seed % 2 == 0, restore=seed % 3 != 0)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"gap{c.gap_ms}-late{c.allowed_lateness_ms}")
def test_random_feeds_with_prints_beyond_the_lateness(config: BurstConfig) -> None:
    """Some prints (and breaks) arrive after event time has passed their time + the lateness. Which of
    those the detector takes depends on what it still holds, but whatever it takes must give the
    bursts of the prints it took: had it taken a print that touches a burst it had let go, the
    reference (which merges them) would disagree. A print within the lateness is never late."""
    late = behind = 0
    for seed in range(4):
        late_prints, taken_behind = run_feed_beyond_the_lateness(seed, config)
        late += late_prints
        behind += taken_behind
    assert late > 20 and behind > 0  # both ways happen


def run_feed_beyond_the_lateness(seed: int, config: BurstConfig) -> tuple[int, int]:
    """(prints late, prints taken although more than the lateness behind)"""
    rng = random.Random(1000 + seed)
    gap, lateness = config.gap_ns, config.allowed_lateness_ns
    prints = random_prints(rng, gap)
    events: list[tuple[int, int, float, str, RefPrint]] = []
    for p in prints:
        delay = rng.randrange(lateness + 1) if rng.random() < 0.8 else rng.randrange(lateness + 6 * gap)
        events.append((p.ts_event + delay, 0, rng.random(), "print", p))
        if rng.random() < 0.15:
            events.append(
                (p.ts_event + delay + rng.randrange(lateness + 3 * gap), 1, rng.random(), "break", p)
            )
    events.sort(key=lambda event: event[:3])
    detector = BurstDetector(config)
    emissions: list[list[Burst]] = []
    late_prints: set[int] = set()
    late_breaks: set[int] = set()
    behind = 0  # prints taken although more than the lateness behind
    for arrival, _, _, kind, p in events:
        if rng.random() < 0.3:
            emissions.append(detector.advance(arrival))
        if rng.random() < 0.05:
            restored = BurstDetector(config)
            restored.restore(json.loads(json.dumps(detector.snapshot())))
            detector = restored
        now = detector.complete_before_ns
        if kind == "print":
            detector.add_print(
                p.venue, p.symbol, p.trading_date, Print(p.ts_event, p.seq, p.seq, p.price, p.shares)
            )
            if detector.late:
                assert now is not None and p.ts_event < now - lateness, "late within the lateness"
                late_prints.add(p.seq)
            elif now is not None and p.ts_event < now - lateness:
                behind += 1
        else:
            detector.break_trade(p.venue, p.symbol, p.seq, arrival)
            if detector.late:
                late_breaks.add(p.seq)
        assert len(detector.late) <= 1
        detector.late.clear()
        detector.check_integrity()
    emissions.append(detector.advance(T0 + NEVER))
    broken = {p.seq for _, _, _, kind, p in events if kind == "break"} - late_breaks
    taken = [p for p in prints if p.seq not in late_prints and p.seq not in broken]
    want = reference_bursts(
        taken, gap, config.min_prints, config.alert_prints_per_s, config.alert_shares_per_s
    )
    assert live_keys(emissions) == want
    assert drained(detector)
    return len(late_prints), behind


# ----------------------------------------------------------------- against the reference: real data

RITCH = "RITCH_ex20101224.TEST_ITCH_50.gz"
RITCH_DATE = date(2019, 12, 30)


@pytest.fixture(scope="module")
def ritch_prints() -> list[RefPrint]:
    from itchflow.analytics.cli import file_tape

    tape = file_tape(sample(RITCH), RITCH_DATE)
    return sorted(
        (
            RefPrint("XBX", DAY, symbol, p.ts_event, p.seq, p.price, p.shares)
            for symbol in tape.prints
            for p in tape.symbol_prints(symbol)
        ),
        key=lambda p: p.seq,
    )


@pytest.mark.parametrize("config", [BurstConfig(alert_prints_per_s=20), BurstConfig(gap_ms=50, min_prints=3)])
def test_a_real_sample_in_feed_order_matches_the_reference(
    ritch_prints: list[RefPrint], config: BurstConfig
) -> None:
    """Every print of the sample in file order, the watermark at the latest print's time."""
    detector = BurstDetector(config)
    emissions = []
    for n, p in enumerate(ritch_prints):
        detector.add_print(
            p.venue, p.symbol, p.trading_date, Print(p.ts_event, p.seq, p.seq, p.price, p.shares)
        )
        if n % 7 == 0:
            emissions.append(detector.advance(p.ts_event))
    emissions.append(detector.close_all())
    emissions.append(detector.advance(T0 + NEVER))
    want = reference_bursts(ritch_prints, config.gap_ns, config.min_prints, config.alert_prints_per_s)
    assert len(want) > 300
    assert live_keys(emissions) == want
    assert detector.late == []
    assert drained(detector)


def test_a_real_sample_shuffled_within_the_lateness_with_breaks(ritch_prints: list[RefPrint]) -> None:
    """The sample's prints delayed at random by up to the allowed lateness, every print whose sequence
    number is a multiple of 5 broken up to the lateness later."""
    config = BurstConfig(allowed_lateness_ms=2000, alert_prints_per_s=20)
    lateness = config.allowed_lateness_ns
    rng = random.Random(5)
    events = []
    for p in ritch_prints:
        arrival = p.ts_event + rng.randrange(lateness + 1)
        events.append((arrival, 0, p))
        if p.seq % 5 == 0:
            events.append((rng.randrange(arrival, p.ts_event + lateness + 1), 1, p))
    events.sort(key=lambda event: event[:2])
    detector = BurstDetector(config)
    emissions = []
    for arrival, is_break, p in events:
        if is_break:
            detector.break_trade(p.venue, p.symbol, p.seq, arrival)
        else:
            print_tuple = Print(p.ts_event, p.seq, p.seq, p.price, p.shares)
            detector.add_print(p.venue, p.symbol, p.trading_date, print_tuple, arrival)
        emissions.append(detector.advance(arrival))
    emissions.append(detector.advance(T0 + NEVER))
    want = reference_bursts(
        [p for p in ritch_prints if p.seq % 5], config.gap_ns, config.min_prints, config.alert_prints_per_s
    )
    assert live_keys(emissions) == want
    assert detector.late == []
    assert drained(detector)
