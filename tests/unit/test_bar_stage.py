"""Bars in event time (itchflow.analytics.bar_stage): firing on the watermark, allowed lateness and
revisions, late prints, broken trades, the end of the feed, state -- hand-worked, and the final bars
of a whole feed against the offline fold."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from itchflow.analytics.bar_stage import BarConfig, BarRevision, BarStage, complete_before_ns
from itchflow.analytics.bars import Print, bars
from tests.unit.bar_stage_support import KeptState, apply

S = 1_000_000_000
MS = 1_000_000
DAY = 18_260  # 2019-12-30


def p(ts: int, seq: int, match: int, price: int, shares: int = 100) -> Print:
    return Print(ts, seq, match, price, shares)


def summary(revisions: list[BarRevision]) -> list[tuple]:
    return [
        (r.bar.symbol, r.bar.interval_s, r.bar.window_start_ns // S, r.revision, r.deleted, r.bar.open,
         r.bar.close, r.bar.volume, r.bar.trades)
        for r in revisions
    ]  # fmt: skip


def test_a_window_fires_once_the_watermark_passes_its_end() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,)))
    stage.add_print("X", "A", DAY, p(10 * S + 5, 1, 1, 100), complete_before=0)
    stage.add_print("X", "A", DAY, p(10 * S + 7, 2, 2, 101), complete_before=0)
    # watermark 10,999 ms: events up to 10.999999999 s may still come
    assert stage.fire(complete_before_ns(10_998)) == []
    assert stage.next_timer_ms() == 10_999  # fires when the watermark reaches 10,999 ms
    fired = stage.fire(complete_before_ns(10_999))
    assert summary(fired) == [("A", 1, 10, 0, False, 100, 101, 200, 2)]
    assert fired[0].trading_date == DAY and fired[0].venue == "X"
    assert stage.fire(complete_before_ns(20_000)) == []  # emitted once
    assert stage.windows == {}  # no allowed lateness: dropped


def test_a_late_print_within_the_allowed_lateness_revises_the_bar_and_later_ones_are_late() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,), allowed_lateness_ms=2_000))
    stage.add_print("X", "A", DAY, p(10 * S, 1, 1, 100), complete_before=0)
    assert summary(stage.fire(complete_before_ns(11_000))) == [("A", 1, 10, 0, False, 100, 100, 100, 1)]
    assert stage.next_timer_ms() == 12_999  # kept until 11 s + 2 s
    # a print for [10 s, 11 s) arriving with the watermark at 12 s: within the lateness
    stage.add_print("X", "A", DAY, p(10 * S + 900 * MS, 2, 2, 105), complete_before_ns(12_000))
    assert summary(stage.fire(complete_before_ns(12_000))) == [("A", 1, 10, 1, False, 100, 105, 200, 2)]
    # with the watermark at 13 s the window is gone: the next one for it is late
    assert stage.fire(complete_before_ns(12_999)) == []
    assert stage.windows == {}
    stage.add_print("X", "A", DAY, p(10 * S + 950 * MS, 3, 3, 99), complete_before_ns(13_000))
    assert stage.fire(complete_before_ns(13_000)) == []
    assert [(late.kind, late.match_number, late.intervals_s) for late in stage.late] == [("print", 3, (1,))]


def test_a_print_late_for_a_short_window_still_counts_in_a_longer_one() -> None:
    stage = BarStage(BarConfig(intervals_s=(1, 60)))
    stage.add_print("X", "A", DAY, p(30 * S, 1, 1, 100), complete_before_ns(40_000))
    assert [(late.intervals_s) for late in stage.late] == [(1,)]
    assert summary(stage.fire(complete_before_ns(59_999))) == [("A", 60, 0, 0, False, 100, 100, 100, 1)]


def test_broken_trades_before_and_after_the_bar_fired() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,), allowed_lateness_ms=5_000))
    stage.add_print("X", "A", DAY, p(1 * S, 1, 11, 100), 0)
    stage.add_print("X", "A", DAY, p(1 * S + 1, 2, 12, 110), 0)
    stage.add_print("X", "A", DAY, p(2 * S, 3, 13, 120), 0)
    stage.break_trade("X", "A", 11, 1 * S + 2)  # before the bar fired: it never shows the print
    assert summary(stage.fire(complete_before_ns(2_999))) == [
        ("A", 1, 1, 0, False, 110, 110, 100, 1),
        ("A", 1, 2, 0, False, 120, 120, 100, 1),
    ]
    stage.break_trade("X", "A", 12, 3 * S)  # the only print of a fired bar: the bar is deleted
    assert summary(stage.fire(complete_before_ns(3_000))) == [("A", 1, 1, 1, True, 0, 0, 0, 0)]
    stage.break_trade("X", "A", 99, 3 * S)  # no print with that match number
    assert [(late.kind, late.match_number) for late in stage.late] == [("break", 99)]


def test_the_end_of_the_feed_closes_every_window_and_late_prints_revise_them() -> None:
    stage = BarStage(BarConfig(intervals_s=(60, 300), allowed_lateness_ms=0))
    stage.add_print("X", "A", DAY, p(61 * S, 1, 1, 100), 0)
    stage.add_print("X", "B", DAY, p(62 * S, 1, 2, 200), 0)
    closed = stage.close_all()
    assert sorted(summary(closed)) == [
        ("A", 60, 60, 0, False, 100, 100, 100, 1),
        ("A", 300, 0, 0, False, 100, 100, 100, 1),
        ("B", 60, 60, 0, False, 200, 200, 100, 1),
        ("B", 300, 0, 0, False, 200, 200, 100, 1),
    ]
    assert stage.close_all() == []
    stage.add_print("X", "A", DAY, p(63 * S, 2, 3, 90), 0)  # the windows are still open in event time
    assert sorted(summary(stage.close_all())) == [
        ("A", 60, 60, 1, False, 100, 90, 200, 2),
        ("A", 300, 0, 1, False, 100, 90, 200, 2),
    ]


def test_state_round_trip_keeps_revisions_and_prints() -> None:
    config = BarConfig(intervals_s=(1, 60), allowed_lateness_ms=1_000)
    stage = BarStage(config)
    stage.add_print("X", "A", DAY, p(1 * S, 1, 1, 100), 0)
    stage.fire(complete_before_ns(1_999))
    stage.add_print("X", "A", DAY, p(1 * S + 5, 2, 2, 101), complete_before_ns(1_999))
    restored = BarStage.restore(stage.snapshot(), config)
    assert summary(restored.fire(complete_before_ns(2_000))) == summary(stage.fire(complete_before_ns(2_000)))
    assert restored.next_timer_ms() == stage.next_timer_ms()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), lateness_ms=st.sampled_from([0, 500, 5_000]))
def test_an_in_order_feed_ends_with_the_offline_bars(seed: int, lateness_ms: int) -> None:
    """Prints of a few symbols in feed order, watermarks trailing by a bound, breaks of recent
    prints, the end of the feed: the last revision of every bar equals the offline fold."""
    rng = random.Random(seed)
    intervals = (1, 60, 300)
    stage = BarStage(BarConfig(intervals_s=intervals, allowed_lateness_ms=lateness_ms))
    bound_ms = rng.choice([0, 200, 1_000])
    ts, match = 9 * 3600 * S, 0
    standing: dict[str, dict[int, Print]] = {"A": {}, "B": {}, "C": {}}
    latest: dict[tuple, BarRevision] = {}

    def take(revisions: list[BarRevision]) -> None:
        for revision in revisions:
            key = (revision.bar.symbol, revision.bar.interval_s, revision.bar.window_start_ns)
            assert key not in latest or latest[key].revision == revision.revision - 1
            latest[key] = revision

    for seq in range(rng.randint(1, 300)):
        ts += rng.choice([0, 1, 10 * MS, 300 * MS, 2 * S, 70 * S])
        watermark_ms = ts // MS - bound_ms - 1
        symbol = rng.choice("ABC")
        if rng.random() < 0.1 and standing[symbol]:
            # break a print still inside every window's lateness (older ones go to the late output)
            horizon = complete_before_ns(watermark_ms) - lateness_ms * MS
            recent = [
                q
                for q in standing[symbol].values()
                if all(q.ts_event - q.ts_event % (i * S) + i * S > horizon for i in intervals)
            ]
            if recent:
                victim = rng.choice(recent)
                del standing[symbol][victim.match_number]
                stage.break_trade("X", symbol, victim.match_number, ts)
        else:
            match += 1
            q = p(ts, seq, match, rng.randint(100, 110), rng.randint(1, 500))
            standing[symbol][match] = q
            stage.add_print("X", symbol, DAY, q, complete_before_ns(watermark_ms))
        take(stage.fire(complete_before_ns(watermark_ms)))
    take(stage.close_all())
    assert [late for late in stage.late if late.kind == "print"] == []
    expected = {
        (bar.symbol, bar.interval_s, bar.window_start_ns): bar
        for symbol, prints in standing.items()
        for interval in intervals
        for bar in bars(symbol, prints.values(), interval)
    }
    final = {key: r.bar for key, r in latest.items() if not r.deleted}
    assert final == expected


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), snapshot_at=st.integers(0, 40))
@example(seed=409, snapshot_at=3)  # a window whose print was broken, then a late print within the lateness
def test_a_snapshot_plus_the_logged_steps_restores_the_stage_exactly(seed: int, snapshot_at: int) -> None:
    """What the operator keeps as state: a snapshot, then each step as logged (a record's prints and
    breaks with its watermark, a timer, an end of replay), and the archive entries. Restored from
    them, the stage goes on to emit exactly what the uninterrupted one emits."""
    rng = random.Random(seed)
    config = BarConfig(intervals_s=(1, 60), allowed_lateness_ms=rng.choice([0, 2_000]))
    live = BarStage(config)
    kept = KeptState(live)
    ts, match = 9 * 3600 * S, 0
    steps = []
    for _ in range(60):
        ts += rng.choice([1, 5 * MS, 400 * MS, 3 * S, 90 * S])
        complete = complete_before_ns(ts // MS - rng.choice([0, 1_500, 4_000]))
        roll = rng.random()
        if roll < 0.1:
            steps.append(("f", complete))
        elif roll < 0.13:
            steps.append(("c",))
        else:
            prints = []
            for _ in range(rng.randint(0, 4)):
                match += 1
                prints.append(
                    ("X", rng.choice("AB"), DAY, (ts - rng.choice([0, 2 * S]), match, match, 100, 10))
                )
            breaks = [("X", "A", rng.randint(1, max(match, 1)), ts)] if rng.random() < 0.2 else []
            steps.append(("r", complete, prints, breaks, rng.random() < 0.05))

    for number, step in enumerate(steps):
        if number >= snapshot_at:
            restored = kept.restore(config)
            assert summary(apply(restored, step)) == summary(apply(live, step)), number
            restored.late.clear()
        else:
            apply(live, step)
        live.late.clear()
        kept.after(live, step, compact=number == snapshot_at)
