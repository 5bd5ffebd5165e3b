"""Broken trades for the whole trading day (itchflow.analytics.bar_stage with its day archives): a
break revises every bar its print was in, however long after the bar closed and whatever the allowed
lateness; revisions keep growing; the archive lives for one trading day and survives restores."""

from __future__ import annotations

import pickle
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.analytics.bar_stage import BarConfig, BarRevision, BarStage, complete_before_ns
from itchflow.analytics.bars import Print
from tests.unit.bar_stage_support import KeptState, apply, direct_bars, final_bars

S = 1_000_000_000
MS = 1_000_000
DAY = 18_260  # 2019-12-30
NEXT_DAY_S = 86_400
T0 = 9 * 3600 * S  # 09:00, in "exchange time" of the tests (any epoch-aligned origin will do)


def p(ts: int, seq: int, match: int, price: int, shares: int = 100) -> Print:
    return Print(ts, seq, match, price, shares)


def summary(revisions: list[BarRevision]) -> list[tuple]:
    return sorted(
        (r.bar.symbol, r.bar.interval_s, (r.bar.window_start_ns - T0) // S, r.revision, r.deleted, r.bar.open,
         r.bar.close, r.bar.volume, r.bar.trades)
        for r in revisions
    )  # fmt: skip


def late(stage: BarStage) -> list[tuple]:
    return [(x.kind, x.match_number, x.intervals_s) for x in stage.late]


def test_a_break_long_after_its_bars_closed_revises_every_one_of_them() -> None:
    stage = BarStage(BarConfig(intervals_s=(1, 60, 300)))
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 11, 100), complete_before=0)
    stage.add_print("X", "A", DAY, p(T0 + 10 * S + 5, 2, 12, 105), complete_before=0)
    stage.add_print("X", "A", DAY, p(T0 + 70 * S, 3, 13, 110), complete_before=0)
    assert len(stage.fire(complete_before_ns((T0 + 3_600 * S) // MS))) == 5
    assert stage.windows == {}  # no allowed lateness: every window dropped
    # an hour later, a break of the first print
    stage.break_trade("X", "A", 11, T0 + 3_600 * S)
    assert stage.late == []
    assert summary(stage.fire(complete_before_ns((T0 + 3_600 * S) // MS))) == [
        ("A", 1, 10, 1, False, 105, 105, 100, 1),
        ("A", 60, 0, 1, False, 105, 105, 100, 1),
        ("A", 300, 0, 1, False, 105, 110, 200, 2),
    ]
    stage.break_trade("X", "A", 12, T0 + 3_700 * S)  # the last print of two bars: deleted
    assert summary(stage.fire(complete_before_ns((T0 + 3_700 * S) // MS))) == [
        ("A", 1, 10, 2, True, 0, 0, 0, 0),
        ("A", 60, 0, 2, True, 0, 0, 0, 0),
        ("A", 300, 0, 2, False, 110, 110, 100, 1),
    ]
    stage.break_trade("X", "A", 12, T0 + 3_800 * S)  # broken already: nothing left to take
    stage.break_trade("X", "A", 99, T0 + 3_800 * S)  # a match number the day never printed
    assert late(stage) == [("break", 12, (1, 60, 300)), ("break", 99, (1, 60, 300))]
    assert stage.fire(complete_before_ns((T0 + 3_800 * S) // MS)) == []


def test_breaks_of_one_window_before_the_next_firing_make_one_revision() -> None:
    stage = BarStage(BarConfig(intervals_s=(60,)))
    for match in (1, 2, 3):
        stage.add_print("X", "A", DAY, p(T0 + match * S, match, match, 100 + match), complete_before=0)
    stage.fire(complete_before_ns((T0 + 600 * S) // MS))
    stage.break_trade("X", "A", 1, T0 + 600 * S)
    stage.break_trade("X", "A", 3, T0 + 600 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 600 * S) // MS))) == [
        ("A", 60, 0, 1, False, 102, 102, 100, 1)
    ]


def test_a_revision_from_the_archive_exceeds_the_revisions_the_window_had() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,), allowed_lateness_ms=2_000))
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    assert summary(stage.fire(complete_before_ns((T0 + 11 * S) // MS))) == [
        ("A", 1, 10, 0, False, 100, 100, 100, 1)
    ]
    stage.add_print("X", "A", DAY, p(T0 + 10 * S + 5, 2, 2, 101), complete_before_ns((T0 + 12 * S) // MS))
    stage.add_print("X", "A", DAY, p(T0 + 10 * S + 6, 3, 3, 102), complete_before_ns((T0 + 12 * S) // MS))
    stage.break_trade("X", "A", 3, T0 + 12 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 12 * S) // MS))) == [
        ("A", 1, 10, 1, False, 100, 101, 200, 2)
    ]
    assert stage.fire(complete_before_ns((T0 + 13 * S) // MS)) == []
    assert stage.windows == {}  # dropped at revision 1
    stage.break_trade("X", "A", 2, T0 + 60 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 60 * S) // MS))) == [
        ("A", 1, 10, 2, False, 100, 100, 100, 1)
    ]
    stage.break_trade("X", "A", 1, T0 + 70 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 70 * S) // MS))) == [("A", 1, 10, 3, True, 0, 0, 0, 0)]


def test_a_print_late_for_its_short_bar_is_taken_only_from_the_bars_it_counted_in() -> None:
    stage = BarStage(BarConfig(intervals_s=(1, 60)))
    stage.add_print("X", "A", DAY, p(T0 + 30 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "A", DAY, p(T0 + 30 * S + 5, 2, 2, 120), complete_before_ns((T0 + 40 * S) // MS))
    assert late(stage) == [("print", 2, (1,))]
    stage.late.clear()
    assert summary(stage.fire(complete_before_ns((T0 + 120 * S) // MS))) == [
        ("A", 1, 30, 0, False, 100, 100, 100, 1),
        ("A", 60, 0, 0, False, 100, 120, 200, 2),
    ]
    stage.break_trade("X", "A", 2, T0 + 200 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 200 * S) // MS))) == [
        ("A", 60, 0, 1, False, 100, 100, 100, 1)
    ]
    assert late(stage) == [("break", 2, (1,))]  # its 1 s bar never had it
    stage.late.clear()
    stage.add_print("X", "A", DAY, p(T0 + 5 * S, 3, 3, 90), complete_before_ns((T0 + 200 * S) // MS))
    stage.break_trade("X", "A", 3, T0 + 200 * S)  # a print late for every bar is in no archive
    assert late(stage) == [("print", 3, (1, 60)), ("break", 3, (1, 60))]


def test_a_break_of_a_kept_window_still_takes_the_live_path() -> None:
    stage = BarStage(BarConfig(intervals_s=(1, 300)))
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "A", DAY, p(T0 + 11 * S, 2, 2, 101), complete_before=0)
    stage.fire(complete_before_ns((T0 + 20 * S) // MS))  # the 1 s bars closed, the 5 m one is open
    stage.break_trade("X", "A", 1, T0 + 20 * S)
    assert summary(stage.fire(complete_before_ns((T0 + 20 * S) // MS))) == [("A", 1, 10, 1, True, 0, 0, 0, 0)]
    assert summary(stage.fire(complete_before_ns((T0 + 300 * S) // MS))) == [
        ("A", 300, 0, 0, False, 101, 101, 100, 1)
    ]


def test_the_end_of_the_feed_empties_the_archives_of_the_key() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,)))
    kept = KeptState(stage)
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "B", DAY, p(T0 + 10 * S, 1, 2, 100), complete_before=0)
    stage.fire(complete_before_ns((T0 + 60 * S) // MS))
    assert kept.after(stage, ("f", 0)) is not None and len(kept.archive) == 1
    stage.close_all()
    assert stage.archive_rewrite
    kept.after(stage, ("c",))
    assert kept.archive == [] and kept.rewrites == 1
    assert [len(archive) for archive in stage.archives.values()] == [0, 0]
    stage.break_trade("X", "A", 1, T0 + 70 * S)
    assert late(stage) == [("break", 1, (1,))]
    # prints of the same day after its end are not archived; the next day's are
    stage.add_print("X", "A", DAY, p(T0 + 80 * S, 2, 3, 100), complete_before=0)
    stage.add_print("X", "B", DAY + 1, p(T0 + (NEXT_DAY_S + 10) * S, 1, 1, 100), complete_before=0)
    assert [(archive.trading_date, len(archive)) for archive in stage.archives.values()] == [
        (DAY, 0),
        (DAY + 1, 1),
    ]


def test_a_later_trading_date_starts_that_symbols_archive_afresh() -> None:
    stage = BarStage(BarConfig(intervals_s=(1,)))
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "B", DAY, p(T0 + 10 * S, 1, 2, 100), complete_before=0)
    stage.fire(complete_before_ns((T0 + NEXT_DAY_S * S) // MS))
    stage.add_print("X", "A", DAY + 1, p(T0 + (NEXT_DAY_S + 1) * S, 1, 7, 100), complete_before=0)
    stage.break_trade("X", "A", 1, T0 + (NEXT_DAY_S + 2) * S)  # yesterday's print: its day is over
    stage.break_trade("X", "B", 2, T0 + (NEXT_DAY_S + 2) * S)  # B has no print of the new day yet
    assert late(stage) == [("break", 1, (1,))]
    assert summary(stage.fire(complete_before_ns((T0 + NEXT_DAY_S * S) // MS))) == [
        ("B", 1, 10, 1, True, 0, 0, 0, 0)
    ]
    stage.add_print("X", "A", DAY, p(T0 + 20 * S, 2, 3, 100), complete_before=0)  # a straggler of yesterday
    assert [(archive.trading_date, len(archive)) for archive in stage.archives.values()] == [
        (DAY + 1, 1),
        (DAY, 1),
    ]


def test_a_version_2_state_restores_with_archives_that_cannot_revise() -> None:
    config = BarConfig(intervals_s=(1,), allowed_lateness_ms=1_000)
    stage = BarStage(config)
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    stage.fire(complete_before_ns((T0 + 60 * S) // MS))
    version_2 = pickle.dumps((2, {}, dict(stage.dates), dict(stage.latest)))
    restored = BarStage.restore(version_2, config)
    restored.break_trade("X", "A", 1, T0 + 70 * S)  # its print is in no archive: late, as before
    assert late(restored) == [("break", 1, (1,))]
    restored.add_print("X", "A", DAY, p(T0 + 80 * S, 2, 2, 100), complete_before=0)
    restored.add_print("X", "A", DAY + 1, p(T0 + (NEXT_DAY_S + 1) * S, 1, 3, 100), complete_before=0)
    assert [(a.trading_date, a.complete, len(a)) for a in restored.archives.values()] == [(DAY + 1, True, 1)]


def test_a_state_without_its_archive_entries_revises_nothing_it_cannot_fold() -> None:
    config = BarConfig(intervals_s=(1,))
    stage = BarStage(config)
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "A", DAY, p(T0 + 10 * S, 2, 2, 100), complete_before=0)
    stage.fire(complete_before_ns((T0 + 60 * S) // MS))
    assert stage.take_archive() is not None
    restored = BarStage.restore(stage.snapshot(), config, archive=[])  # the entries lost
    restored.break_trade("X", "A", 1, T0 + 70 * S)
    assert (
        late(restored) == [("break", 1, (1,))]
        and restored.fire(complete_before_ns((T0 + 70 * S) // MS)) == []
    )
    assert restored.archive_rewrite


def test_earlier_days_rows_leave_the_archive_state_once_they_outnumber_the_live_ones() -> None:
    config = BarConfig(intervals_s=(1,))
    stage = EagerRewrite(config)
    kept = KeptState(stage)
    for match in (1, 2, 3):
        stage.add_print("X", "A", DAY, p(T0 + match * S, match, match, 100), complete_before=0)
    stage.add_print("X", "B", DAY, p(T0 + 1 * S, 4, 4, 100), complete_before=0)
    kept.after(stage, ("f", 0))
    stage.fire(complete_before_ns((T0 + NEXT_DAY_S * S) // MS))
    kept.after(stage, ("f", 0))
    # no end of the feed: A's first print of the next day makes yesterday's three rows dead, B's one
    # row still counts (a live feed that never sent System Event C)
    stage.add_print("X", "A", DAY + 1, p(T0 + (NEXT_DAY_S + 1) * S, 5, 5, 100), complete_before=0)
    assert stage.archive_rewrite
    kept.after(stage, ("f", 0))
    assert kept.rewrites == 1 and kept.log == []
    assert sorted((op[2], op[3], len(op[4]) // 41) for entry in kept.archive for op in entry) == [
        ("A", DAY + 1, 1),
        ("B", DAY, 1),
    ]
    restored = kept.restore(config, EagerRewrite)
    restored.break_trade("X", "B", 4, T0 + (NEXT_DAY_S + 2) * S)  # B's day goes on
    assert summary(restored.fire(complete_before_ns((T0 + NEXT_DAY_S * S) // MS))) == [
        ("B", 1, 1, 1, True, 0, 0, 0, 0)
    ]


def test_an_archive_entry_keeps_each_days_prints_apart() -> None:
    config = BarConfig(intervals_s=(1,))
    stage = BarStage(config)
    kept = KeptState(stage)
    stage.add_print("X", "A", DAY, p(T0 + 1 * S, 1, 1, 100), complete_before=0)
    stage.add_print("X", "A", DAY + 1, p(T0 + (NEXT_DAY_S + 1) * S, 2, 2, 100), complete_before=0)
    kept.after(stage, ("f", 0), compact=True)
    restored = kept.restore(config)
    assert [(a.trading_date, a.rows()) for a in restored.archives.values()] == [
        (a.trading_date, a.rows()) for a in stage.archives.values()
    ]
    assert len(restored.archives[("X", "A")]) == 1


class EagerRewrite(BarStage):
    """Writes its archive entries anew as soon as an earlier day's rows are dead."""

    REWRITE_MIN_DEAD_ROWS = 0


def in_order_feed(rng: random.Random, lateness_ms: int, days: int = 1, ends: bool = True) -> list[tuple]:
    """Steps of an in-order feed of three symbols (records of prints and breaks, timers), watermarks
    trailing by a bound; breaks of any earlier print of the day, however old (or of a match number
    that never printed, or broken already); the end of each day's feed (with ``ends``; without, only
    the last day's)."""
    steps: list[tuple] = []
    match = 0
    for day in range(days):
        ts = T0 + day * NEXT_DAY_S * S
        bound_ms = rng.choice([0, 200, 1_000])
        printed: list[tuple[str, int]] = []
        for seq in range(rng.randint(1, 250)):
            ts += rng.choice([0, 1, 10 * MS, 300 * MS, 2 * S, 70 * S, 400 * S])
            complete = complete_before_ns(ts // MS - bound_ms - 1)
            if rng.random() < 0.08:
                steps.append(("f", complete))
                continue
            prints, breaks = [], []
            for _ in range(rng.randint(0, 3)):
                match += 1
                symbol = rng.choice("ABC")
                q = (ts, seq, match, rng.randint(100, 110), rng.randint(1, 500))
                prints.append(("X", symbol, DAY + day, q))
                printed.append((symbol, match))
            if printed and rng.random() < 0.25:
                symbol, victim = rng.choice(printed) if rng.random() < 0.9 else ("A", 10_000_000 + seq)
                breaks.append(("X", symbol, victim, ts))
            steps.append(("r", complete, prints, breaks, False))
        if ends or day == days - 1:
            steps.append(("r", complete_before_ns(ts // MS - bound_ms - 1), [], [], True))
    return steps


def expected_bars(steps: list[tuple], intervals: tuple[int, ...]) -> dict:
    """The bars of the feed's unbroken prints, from the definition (breaks as ``itchflow bars``
    applies them: to the whole day's prints)."""
    standing: dict[tuple[str, int], tuple] = {}
    for step in steps:
        if step[0] == "r":
            for _, symbol, _, q in step[2]:
                standing[(symbol, q[2])] = q
            for _, symbol, match, _ in step[3]:
                standing.pop((symbol, match), None)
    return direct_bars(((symbol, q) for (symbol, _), q in standing.items()), intervals)


def breaks_of_nothing(steps: list[tuple]) -> list[tuple[str, int]]:
    """The feed's breaks of no standing print (a match number never printed, or broken already)."""
    standing: set[tuple[str, int]] = set()
    nothing = []
    for step in steps:
        if step[0] == "r":
            standing.update((symbol, q[2]) for _, symbol, _, q in step[2])
            for _, symbol, match, _ in step[3]:
                if (symbol, match) in standing:
                    standing.remove((symbol, match))
                else:
                    nothing.append((symbol, match))
    return nothing


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32), lateness_ms=st.sampled_from([0, 0, 500, 5_000]))
def test_arbitrarily_late_breaks_end_with_the_offline_bars(seed: int, lateness_ms: int) -> None:
    """Prints in feed order, breaks of any earlier print of the day (hours later, mostly long after
    the allowed lateness): the last revision of every bar equals the fold of the unbroken prints,
    each window's revisions count up by one, and only breaks of no standing print are late."""
    rng = random.Random(seed)
    intervals = (1, 60, 300)
    stage = BarStage(BarConfig(intervals_s=intervals, allowed_lateness_ms=lateness_ms))
    steps = in_order_feed(rng, lateness_ms)
    emitted: list[BarRevision] = []
    revisions: dict[tuple, int] = {}
    for step in steps:
        for revision in apply(stage, step):
            key = (revision.bar.symbol, revision.bar.interval_s, revision.bar.window_start_ns)
            assert revision.revision == revisions.get(key, -1) + 1, key
            revisions[key] = revision.revision
            emitted.append(revision)
    assert [x for x in stage.late if x.kind == "print"] == []
    assert sorted((x.symbol, x.match_number) for x in stage.late) == sorted(breaks_of_nothing(steps))
    assert final_bars(emitted) == expected_bars(steps, intervals)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), compact_every=st.sampled_from([1, 5, 64]))
def test_a_snapshot_the_archive_entries_and_the_log_restore_the_stage_exactly(
    seed: int, compact_every: int
) -> None:
    """The operator's protocol over two trading days with late breaks: restored at any step from
    the snapshot, the archive entries and the logged steps, the stage emits what the uninterrupted
    one emits, is late where it is late, and appends the same archive entry."""
    rng = random.Random(seed)
    config = BarConfig(intervals_s=(1, 60, 300), allowed_lateness_ms=rng.choice([0, 2_000]))
    steps = in_order_feed(rng, config.allowed_lateness_ms, days=2, ends=rng.random() < 0.5)
    if rng.random() < 0.5:  # an end of replay before the second day is over: that day's prints after it
        steps.insert(rng.randrange(len(steps)), ("c",))
    live = EagerRewrite(config)
    kept = KeptState(live)
    for number, step in enumerate(steps):
        if number % 7 == 0 or number == len(steps) - 1:
            restored = kept.restore(config, EagerRewrite)
            assert summary(apply(restored, step)) == summary(apply(live, step)), number
            assert late(restored) == late(live)
            assert restored.archive_rewrite == live.archive_rewrite
            if not live.archive_rewrite:
                entry = restored.take_archive()
                assert kept.after(live, step, compact=(number + 1) % compact_every == 0) == entry
            else:
                kept.after(live, step)
        else:
            apply(live, step)
            kept.after(live, step, compact=(number + 1) % compact_every == 0)
        live.late.clear()
    assert kept.rewrites >= 1  # the end of the feed at least
