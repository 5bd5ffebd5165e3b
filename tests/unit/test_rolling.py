"""Sliding VWAP and moving averages over bars (itchflow.analytics.rolling): worked out by hand, then
against a brute-force reference written here from the rules on random feeds (in order, with revisions
and removals, with event time advanced at random points), snapshot / restore, and config errors."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.analytics.bars import Bar
from itchflow.analytics.rolling import (
    MovingAverage,
    MovingAverageConfig,
    MovingAverages,
    SlidingVwap,
    SlidingVwapConfig,
    SlidingVwapValue,
)

S = 1_000_000_000
MINUTE = 60 * S
T0 = 1_699_999_980 * S
"""a multiple of a minute (2023-11-14 22:13 UTC)"""


def vbar(
    start_s: int, volume: int, notional: int, trades: int = 1, symbol: str = "A", size_s: int = 1
) -> Bar:
    """A bar of ``size_s`` starting ``start_s`` after T0; only the sums matter to the VWAP."""
    return Bar(symbol, size_s, T0 + start_s * S, 0, 0, 0, 0, volume, notional, trades)


def mbar(minute: int, close: int, symbol: str = "A") -> Bar:
    """A 1 m bar starting ``minute`` minutes after T0; only the close matters to the averages."""
    return Bar(symbol, 60, T0 + minute * MINUTE, close, close, close, close, 100, 100 * close, 1)


def vwaps(values: Iterable[SlidingVwapValue]) -> list[tuple]:
    """(symbol, end in s after T0, vwap, volume, notional, trades, revision)"""
    return [
        (v.symbol, (v.window_end_ns - T0) / S, v.vwap, v.volume, v.notional, v.trades, v.revision)
        for v in values
    ]


def averages(values: Iterable[MovingAverage]) -> list[tuple]:
    """(symbol, start in minutes after T0, sma, ema, revision)"""
    return [(v.symbol, (v.window_start_ns - T0) // MINUTE, v.sma, v.ema, v.revision) for v in values]


# ------------------------------------------------------------------------------------ by hand: VWAP

# price 1000 x 100, price 1010 x 300, price 1030 x 100
THREE_BARS = [vbar(0, 100, 100_000), vbar(1, 300, 303_000, trades=2), vbar(2, 100, 103_000)]


def test_three_bars_in_a_three_second_window_sliding_by_one_second() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1))
    for bar in THREE_BARS:
        vwap.add(bar)
    assert vwap.advance(T0 + 1 * S - 1) == []  # [T0 - 2 s, T0 + 1 s) is not complete yet
    assert vwaps(vwap.advance(T0 + 1 * S)) == [("A", 1, 1000.0, 100, 100_000, 1, 0)]
    assert vwaps(vwap.advance(T0 + 10 * S)) == [
        ("A", 2, 1007.5, 400, 403_000, 3, 0),  # 0 and 1
        ("A", 3, 1012.0, 500, 506_000, 4, 0),  # 0, 1 and 2
        ("A", 4, 1015.0, 400, 406_000, 3, 0),  # 0 left
        ("A", 5, 1030.0, 100, 103_000, 1, 0),  # 1 left
    ]  # end 6: 2 left, the window is empty: nothing
    assert vwap.advance(T0 + 20 * S) == []  # each window once
    assert vwap.snapshot()["symbols"] == {}  # state drained


def test_a_quiet_symbol_with_one_bar_gives_exactly_one_value() -> None:
    vwap = SlidingVwap()  # 300 s sliding by 1 s
    vwap.add(vbar(10, 50, 50 * 1234))
    values = vwap.advance(T0 + 3600 * S)
    # entered at end 11 s; left at end 311 s, where the window is empty: no emission
    assert vwaps(values) == [("A", 11, 1234.0, 50, 61_700, 1, 0)]
    assert values[0].window_start_ns == T0 + 11 * S - 300 * S


def test_two_bars_further_apart_than_the_window() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1))
    vwap.add(vbar(0, 10, 1_000))
    vwap.add(vbar(10, 10, 2_000))
    assert vwaps(vwap.advance(T0 + 60 * S)) == [
        ("A", 1, 100.0, 10, 1_000, 1, 0),
        ("A", 11, 200.0, 10, 2_000, 1, 0),
    ]


def test_a_two_second_slide_takes_two_second_bars_on_the_even_grid() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=4, slide_s=2))
    vwap.add(vbar(0, 10, 1_000, size_s=2))
    vwap.add(vbar(2, 30, 6_000, size_s=2))
    assert vwaps(vwap.advance(T0 + 9 * S)) == [
        ("A", 2, 100.0, 10, 1_000, 1, 0),
        ("A", 4, 175.0, 40, 7_000, 2, 0),
        ("A", 6, 200.0, 30, 6_000, 1, 0),
    ]


def test_revisions_and_removals_within_the_allowed_lateness_re_emit_what_changed() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1, allowed_lateness_ns=2 * S))
    for bar in THREE_BARS:
        vwap.add(bar)
    assert [v[1] for v in vwaps(vwap.advance(T0 + 3 * S))] == [1, 2, 3]
    # bar 1 revised (a print broken): 200 x 1010 -- it ended at 2 s, + 2 s lateness > 3 s
    vwap.add(vbar(1, 200, 202_000))
    assert vwaps(vwap.advance(T0 + 4 * S)) == [
        ("A", 2, 302_000 / 300, 300, 302_000, 2, 1),
        ("A", 3, 1012.5, 400, 405_000, 3, 1),
        ("A", 4, 305_000 / 300, 300, 305_000, 2, 0),  # first emission, already with the revised bar
    ]
    # bar 2 removed: ends 3 and 4 change; end 5 (bar 1 leaves) would hold no bar: never emitted
    vwap.remove("A", T0 + 2 * S)
    assert vwaps(vwap.advance(T0 + 5 * S)) == [
        ("A", 3, 302_000 / 300, 300, 302_000, 2, 2),
        ("A", 4, 1010.0, 200, 202_000, 1, 1),
    ]
    # bar 1 ended at 2 s: + 2 s lateness <= 5 s, too late
    vwap.add(vbar(1, 1, 1))
    vwap.remove("A", T0 + 0 * S)
    assert vwap.dropped_revisions == 2
    assert vwap.advance(T0 + 30 * S) == []


def test_a_removal_that_empties_an_emitted_window_re_emits_it_as_deleted() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1, allowed_lateness_ns=5 * S))
    vwap.add(vbar(0, 100, 100_000))
    assert vwaps(vwap.advance(T0 + 2 * S)) == [("A", 1, 1000.0, 100, 100_000, 1, 0)]
    vwap.remove("A", T0)
    deleted = vwap.advance(T0 + 2 * S)
    assert vwaps(deleted) == [("A", 1, None, 0, 0, 0, 1)]
    assert deleted[0].deleted
    vwap.add(vbar(0, 100, 110_000))  # back again: a further revision of the same key
    assert vwaps(vwap.advance(T0 + 3 * S)) == [("A", 1, 1100.0, 100, 110_000, 1, 2)]
    vwap.remove("A", T0 + 7 * S)  # a bar never given: nothing to do
    assert vwap.advance(T0 + 30 * S) == []
    assert vwap.snapshot()["symbols"] == {}


def test_a_late_bar_makes_an_earlier_window_change_and_it_is_emitted_once_complete() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1, allowed_lateness_ns=10 * S))
    vwap.add(vbar(0, 10, 1_000))
    vwap.add(vbar(5, 10, 3_000))
    assert [v[1] for v in vwaps(vwap.advance(T0 + 8 * S))] == [1, 6]
    # a bar at 2 s: enters at end 3, and makes the window where bar 0 leaves (end 4) non-empty
    vwap.add(vbar(2, 10, 2_000))
    assert vwaps(vwap.advance(T0 + 8 * S)) == [
        ("A", 3, 150.0, 20, 3_000, 2, 0),
        ("A", 4, 200.0, 10, 2_000, 1, 0),
    ]


def test_event_time_never_goes_back() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=3, slide_s=1))
    vwap.advance(T0 + 10 * S)
    vwap.add(vbar(12, 10, 1_000))
    assert vwap.advance(T0 + 5 * S) == []  # a watermark from before: still 10 s
    assert vwap.complete_before_ns == T0 + 10 * S
    vwap.add(vbar(8, 10, 1_000))  # ended before 10 s
    assert vwap.dropped_revisions == 1


def test_symbols_are_kept_apart_and_values_come_sorted_by_end_then_symbol() -> None:
    vwap = SlidingVwap(SlidingVwapConfig(window_s=2, slide_s=1))
    vwap.add(vbar(1, 10, 1_000, symbol="B"))
    vwap.add(vbar(0, 10, 2_000, symbol="C"))
    vwap.add(vbar(1, 10, 3_000, symbol="A"))
    # each bar enters once; where each leaves its symbol's window is empty
    assert [(v[0], v[1], v[2]) for v in vwaps(vwap.advance(T0 + 9 * S))] == [
        ("C", 1, 200.0),
        ("A", 2, 300.0),
        ("B", 2, 100.0),
    ]


# ------------------------------------------------------------------------ by hand: moving averages


def test_sma_and_ema_of_four_closes_with_n_3() -> None:
    averages_ = MovingAverages(MovingAverageConfig(n=3))  # alpha = 0.5
    for minute, close in enumerate([10, 11, 12, 13]):
        averages_.add(mbar(minute, close))
    assert averages_.advance(T0 + 3 * MINUTE - 1) == []  # bar 3 not complete; bars 1 and 2 never emitted
    # EMA: 10, 10.5, 11.25, 12.125; SMA from the third bar: 11, 12
    assert averages(averages_.advance(T0 + 3 * MINUTE)) == [("A", 2, 11.0, 11.25, 0)]
    values = averages_.advance(T0 + 4 * MINUTE)
    assert averages(values) == [("A", 3, 12.0, 12.125, 0)]
    assert values[0] == MovingAverage("A", 60, T0 + 3 * MINUTE, 3, 12.0, 12.125, 0)


def test_gaps_are_not_filled_the_next_bar_is_the_next_in_the_sequence() -> None:
    averages_ = MovingAverages(MovingAverageConfig(n=2))  # alpha = 2/3
    averages_.add(mbar(0, 30))
    averages_.add(mbar(7, 60))  # minutes 1-6 without prints
    [(symbol, minute, sma, ema, revision)] = averages(averages_.advance(T0 + 60 * MINUTE))
    assert (symbol, minute, sma, revision) == ("A", 7, 45.0, 0)
    assert ema == pytest.approx(2 / 3 * 60 + 1 / 3 * 30)  # 50


def test_revisions_and_removals_re_emit_the_bar_and_every_later_one() -> None:
    averages_ = MovingAverages(MovingAverageConfig(n=3, allowed_lateness_ns=3 * MINUTE))
    for minute, close in enumerate([10, 11, 12, 13]):
        averages_.add(mbar(minute, close))
    assert len(averages_.advance(T0 + 4 * MINUTE)) == 2
    averages_.add(mbar(2, 15))  # closes 10, 11, 15, 13
    assert averages(averages_.advance(T0 + 4 * MINUTE)) == [
        ("A", 2, 12.0, 12.75, 1),
        ("A", 3, 13.0, 12.875, 1),
    ]
    averages_.remove("A", T0 + 1 * MINUTE)  # closes 10, 15, 13: minute 2 is the second bar now
    assert averages(averages_.advance(T0 + 4 * MINUTE)) == [
        ("A", 2, None, 12.5, 2),
        ("A", 3, 38 / 3, 12.75, 2),
    ]
    averages_.remove("A", T0 + 3 * MINUTE)
    deleted = averages_.advance(T0 + 4 * MINUTE)
    assert averages(deleted) == [("A", 3, None, None, 3)]
    assert deleted[0].deleted
    averages_.add(mbar(2, 15))  # the same close again: nothing changed
    assert averages_.advance(T0 + 5 * MINUTE) == []
    averages_.add(mbar(0, 99))  # ended at 1 m, + 3 m lateness <= 5 m
    assert averages_.dropped_revisions == 1


def test_the_averages_go_on_from_bars_that_became_final() -> None:
    """No lateness: each bar is final once complete; the state keeps n - 1 closes and the EMA."""
    averages_ = MovingAverages(MovingAverageConfig(n=3))
    emitted = []
    for minute, close in enumerate([10, 11, 12, 13, 14]):
        averages_.add(mbar(minute, close))
        emitted += averages(averages_.advance(T0 + (minute + 1) * MINUTE))
    assert emitted == [("A", 2, 11.0, 11.25, 0), ("A", 3, 12.0, 12.125, 0), ("A", 4, 13.0, 13.0625, 0)]
    saved = averages_.snapshot()["symbols"]["A"]
    assert (saved["bars"], saved["emitted"], saved["final_count"]) == ([], [], 5)
    assert (saved["final_closes"], saved["final_ema"]) == ([13, 14], 13.0625)


# ------------------------------------------------------------------------------ the reference (VWAP)


def window_sums(
    bars: dict[int, tuple[int, int, int]], end: int, window: int, slide: int
) -> tuple[int, int, int]:
    """Brute force: the sums of the bars whose [start, start + slide) lies inside [end - window, end)."""
    inside = [sums for start, sums in bars.items() if end - window <= start and start + slide <= end]
    return sum(s[0] for s in inside), sum(s[1] for s in inside), sum(s[2] for s in inside)


def changed_ends(bars: dict[int, tuple[int, int, int]], until: int, window: int, slide: int) -> set[int]:
    """Brute force: every end on the slide grid up to ``until`` whose window holds bars and not the
    same bars as the window one slide earlier."""

    def held(end: int) -> set[int]:
        return {start for start in bars if end - window <= start and start + slide <= end}

    if not bars:
        return set()
    first, last = min(bars), max(bars) + window + 2 * slide
    return {
        end
        for end in range(first, min(last, until) + 1, slide)
        if held(end) and held(end) != held(end - slide)
    }


class VwapModel:
    """The bars the core should hold, from the lateness rule alone, and everything it emitted."""

    def __init__(self, config: SlidingVwapConfig) -> None:
        self.config = config
        self.slide, self.window = config.slide_s * S, config.window_s * S
        self.bars: dict[str, dict[int, tuple[int, int, int]]] = {}
        self.now: int | None = None
        self.dropped = 0
        self.sink: dict[tuple[str, int], list[SlidingVwapValue]] = {}

    def accepts(self, start: int) -> bool:
        return self.now is None or start + self.slide + self.config.allowed_lateness_ns > self.now

    def apply(self, core: SlidingVwap, step: tuple) -> None:
        if step[0] == "add":
            bar: Bar = step[1]
            core.add(bar)
            if self.accepts(bar.window_start_ns):
                self.bars.setdefault(bar.symbol, {})[bar.window_start_ns] = (
                    bar.volume,
                    bar.notional,
                    bar.trades,
                )
            else:
                self.dropped += 1
        elif step[0] == "remove":
            core.remove(step[1], step[2])
            if self.accepts(step[2]):
                self.bars.get(step[1], {}).pop(step[2], None)
            else:
                self.dropped += 1
        else:
            self.now = step[1] if self.now is None else max(self.now, step[1])
            self.take(core.advance(step[1]))
            self.check(core)

    def take(self, values: list[SlidingVwapValue]) -> None:
        keys = [(v.symbol, v.window_end_ns) for v in values]
        assert len(set(keys)) == len(keys), "a key twice in one advance"
        assert [(end, symbol) for symbol, end in keys] == sorted((end, symbol) for symbol, end in keys)
        for value in values:
            assert value.window_s == self.config.window_s
            earlier = self.sink.setdefault((value.symbol, value.window_end_ns), [])
            assert value.revision == len(earlier), "revisions count 0, 1, 2, ..."
            if earlier:
                assert value[3:7] != earlier[-1][3:7], "emitted again without a change"
            earlier.append(value)

    def check(self, core: SlidingVwap) -> None:
        assert self.now is not None
        for (symbol, end), emitted in self.sink.items():
            assert end <= self.now
            volume, notional, trades = window_sums(self.bars.get(symbol, {}), end, self.window, self.slide)
            latest = emitted[-1]
            assert (latest.volume, latest.notional, latest.trades) == (volume, notional, trades), (
                symbol,
                end,
            )
            assert latest.vwap == (notional / volume if volume else None)
        for symbol, bars in self.bars.items():
            for end in changed_ends(bars, self.now, self.window, self.slide):
                assert (symbol, end) in self.sink, f"changed window {symbol} {end - T0} never emitted"
        assert core.dropped_revisions == self.dropped
        # bounded state: only bars and emissions that an allowed change can still reach
        lateness = self.config.allowed_lateness_ns
        for saved in core.snapshot()["symbols"].values():
            assert all(start + self.window + self.slide + lateness > self.now for start, *_ in saved["bars"])
            assert all(end + lateness > self.now for end, *_ in saved["emitted"])


def random_vwap_config(rng: random.Random) -> SlidingVwapConfig:
    slide_s = rng.choice([1, 1, 2])
    lateness = rng.choice([0, 0, slide_s * S, 3 * slide_s * S + 1, 10 * S])
    return SlidingVwapConfig(
        window_s=slide_s * rng.randint(1, 5), slide_s=slide_s, allowed_lateness_ns=lateness
    )


def random_sums(rng: random.Random) -> tuple[int, int, int]:
    volume = rng.randint(1, 1_000)
    return volume, volume * rng.randint(900, 1_100) + rng.randint(0, volume), rng.randint(1, 5)


def in_order_vwap_feed(rng: random.Random, config: SlidingVwapConfig) -> list[tuple]:
    """Bars slot by slot as the bar stage fires them, event time advanced now and then (not only on
    the grid), then far past the last window."""
    slide = config.slide_s * S
    steps: list[tuple] = []
    slots = rng.randint(1, 40)
    for slot in range(slots):
        for symbol in "AB":
            if rng.random() < 0.4:
                steps.append(
                    (
                        "add",
                        vbar(slot * config.slide_s, *random_sums(rng), symbol=symbol, size_s=config.slide_s),
                    )
                )
        if rng.random() < 0.5:
            steps.append(("advance", T0 + (slot + 1) * slide + rng.choice([0, 0, 1, slide // 2, slide - 1])))
    steps.append(("advance", T0 + (slots + 1) * slide + config.window_s * S + config.allowed_lateness_ns))
    return steps


def revised_vwap_feed(rng: random.Random, config: SlidingVwapConfig) -> list[tuple]:
    """Adds (new and revised bars) and removals around the current event time, some of them past the
    allowed lateness, and advances by random steps."""
    slide = config.slide_s * S
    steps: list[tuple] = []
    now = T0 + rng.randint(0, 5) * slide
    held: dict[str, set[int]] = {"A": set(), "B": set()}
    reach = config.allowed_lateness_ns // slide + 2
    for _ in range(rng.randint(1, 80)):
        roll = rng.random()
        if roll < 0.25:
            now += rng.choice(
                [1, slide // 2, slide, slide, 2 * slide, config.window_s * S, config.window_s * S + slide]
            )
            steps.append(("advance", now))
            continue
        symbol = rng.choice("AB")
        start = now - now % slide + rng.randint(-reach, 4) * slide
        if roll < 0.8:
            steps.append(("add", Bar(symbol, config.slide_s, start, 0, 0, 0, 0, *random_sums(rng))))
            held[symbol].add(start)
        else:
            if held[symbol] and rng.random() < 0.7:
                start = rng.choice(sorted(held[symbol]))
            held[symbol].discard(start)
            steps.append(("remove", symbol, start))
    steps.append(("advance", now + 5 * slide + config.window_s * S + config.allowed_lateness_ns))
    return steps


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_vwap_of_an_in_order_feed_is_the_reference_each_changed_window_once(seed: int) -> None:
    rng = random.Random(seed)
    config = random_vwap_config(rng)
    core, model = SlidingVwap(config), VwapModel(config)
    for step in in_order_vwap_feed(rng, config):
        model.apply(core, step)
    assert model.dropped == 0
    assert model.now is not None
    expected = {
        (symbol, end)
        for symbol, bars in model.bars.items()
        for end in changed_ends(bars, model.now, model.window, model.slide)
    }
    assert set(model.sink) == expected
    assert all(len(emitted) == 1 for emitted in model.sink.values())
    assert core.snapshot()["symbols"] == {}


@settings(max_examples=250, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_vwap_with_revisions_and_removals_matches_the_reference_after_every_advance(seed: int) -> None:
    rng = random.Random(seed)
    config = random_vwap_config(rng)
    core, model = SlidingVwap(config), VwapModel(config)
    for step in revised_vwap_feed(rng, config):
        model.apply(core, step)
    assert core.snapshot()["symbols"] == {}


# --------------------------------------------------------------------- the reference (moving averages)


def reference_averages(closes_by_start: dict[int, int], until: int, size: int, n: int) -> dict[int, tuple]:
    """Plain loops over the closes of the complete bars: start -> (SMA or None, EMA)."""
    starts = sorted(start for start in closes_by_start if start + size <= until)
    closes = [closes_by_start[start] for start in starts]
    alpha = 2 / (n + 1)
    out: dict[int, tuple] = {}
    ema = 0.0
    for k in range(1, len(closes) + 1):
        close = closes[k - 1]
        ema = close if k == 1 else alpha * close + (1 - alpha) * ema
        sma = sum(closes[k - n : k]) / n if k >= n else None
        out[starts[k - 1]] = (sma, ema)
    return out


class AverageModel:
    """The closes the core should hold, from the lateness rule alone, and everything it emitted."""

    def __init__(self, config: MovingAverageConfig) -> None:
        self.config = config
        self.size = config.interval_s * S
        self.closes: dict[str, dict[int, int]] = {}
        self.now: int | None = None
        self.dropped = 0
        self.sink: dict[tuple[str, int], list[MovingAverage]] = {}

    def accepts(self, start: int) -> bool:
        return self.now is None or start + self.size + self.config.allowed_lateness_ns > self.now

    def apply(self, core: MovingAverages, step: tuple) -> None:
        if step[0] == "add":
            bar: Bar = step[1]
            core.add(bar)
            if self.accepts(bar.window_start_ns):
                self.closes.setdefault(bar.symbol, {})[bar.window_start_ns] = bar.close
            else:
                self.dropped += 1
        elif step[0] == "remove":
            core.remove(step[1], step[2])
            if self.accepts(step[2]):
                self.closes.get(step[1], {}).pop(step[2], None)
            else:
                self.dropped += 1
        else:
            self.now = step[1] if self.now is None else max(self.now, step[1])
            self.take(core.advance(step[1]))
            self.check(core)

    def take(self, values: list[MovingAverage]) -> None:
        keys = [(v.window_start_ns, v.symbol) for v in values]
        assert len(set(keys)) == len(keys), "a key twice in one advance"
        assert keys == sorted(keys)
        for value in values:
            assert (value.interval_s, value.n) == (self.config.interval_s, self.config.n)
            earlier = self.sink.setdefault((value.symbol, value.window_start_ns), [])
            assert value.revision == len(earlier), "revisions count 0, 1, 2, ..."
            if earlier:
                assert (value.sma, value.ema) != (earlier[-1].sma, earlier[-1].ema), (
                    "emitted again without a change"
                )
            earlier.append(value)

    def check(self, core: MovingAverages) -> None:
        assert self.now is not None
        n = self.config.n
        expected = {
            (symbol, start): values
            for symbol, closes in self.closes.items()
            for start, values in reference_averages(closes, self.now, self.size, n).items()
        }
        for key, emitted in self.sink.items():
            latest = emitted[-1]
            if key in expected:
                sma, ema = expected[key]
                assert latest.sma == sma, key
                assert latest.ema == pytest.approx(ema, rel=1e-12), key
            else:
                assert latest.deleted and latest.sma is None, key
        for key, (sma, _) in expected.items():
            if sma is not None:
                assert key in self.sink, f"bar {key[0]} {(key[1] - T0) / S} s never emitted"
        assert core.dropped_revisions == self.dropped
        lateness = self.config.allowed_lateness_ns
        for saved in core.snapshot()["symbols"].values():
            assert all(start + self.size + lateness > self.now for start, _ in saved["bars"])
            assert all(start + self.size + lateness > self.now for start, *_ in saved["emitted"])
            assert len(saved["final_closes"]) <= n - 1


def random_average_config(rng: random.Random) -> MovingAverageConfig:
    interval_s = rng.choice([1, 60])
    lateness = rng.choice([0, 0, interval_s * S, 3 * interval_s * S + 1])
    return MovingAverageConfig(
        n=rng.choice([1, 2, 3, 5]), interval_s=interval_s, allowed_lateness_ns=lateness
    )


def average_feed(rng: random.Random, config: MovingAverageConfig, in_order: bool) -> list[tuple]:
    size = config.interval_s * S
    steps: list[tuple] = []
    now = T0
    held: dict[str, set[int]] = {"A": set(), "B": set()}
    reach = config.allowed_lateness_ns // size + 2
    for _ in range(rng.randint(1, 80)):
        roll = rng.random()
        if roll < 0.3:
            now += rng.choice([1, size - 1, size // 2, size, size, 3 * size])
            steps.append(("advance", now))
            continue
        symbol = rng.choice("AB")
        if in_order:
            start = now - now % size + (size if now % size else 0) + rng.randint(0, 1) * size
            if start in held[symbol]:
                continue
        else:
            start = now - now % size + rng.randint(-reach, 3) * size
        if in_order or roll < 0.8:
            close = rng.randint(90, 110)
            steps.append(
                ("add", Bar(symbol, config.interval_s, start, close, close, close, close, 1, close, 1))
            )
            held[symbol].add(start)
        else:
            if held[symbol] and rng.random() < 0.7:
                start = rng.choice(sorted(held[symbol]))
            held[symbol].discard(start)
            steps.append(("remove", symbol, start))
    steps.append(("advance", now + 5 * size + config.allowed_lateness_ns))
    return steps


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_averages_of_an_in_order_feed_are_the_reference_each_bar_once(seed: int) -> None:
    rng = random.Random(seed)
    config = random_average_config(rng)
    core, model = MovingAverages(config), AverageModel(config)
    for step in average_feed(rng, config, in_order=True):
        model.apply(core, step)
    assert model.dropped == 0
    assert all(len(emitted) == 1 for emitted in model.sink.values())
    counts = {symbol: len(closes) for symbol, closes in model.closes.items()}
    assert len(model.sink) == sum(max(0, count - config.n + 1) for count in counts.values())


@settings(max_examples=250, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_averages_with_revisions_and_removals_match_the_reference_after_every_advance(seed: int) -> None:
    rng = random.Random(seed)
    config = random_average_config(rng)
    core, model = MovingAverages(config), AverageModel(config)
    for step in average_feed(rng, config, in_order=False):
        model.apply(core, step)
    for saved in core.snapshot()["symbols"].values():
        assert (saved["bars"], saved["emitted"]) == ([], [])


# ------------------------------------------------------------------------------------ snapshot / restore


def run(core: Any, steps: Iterable[tuple]) -> list[list]:
    outputs: list[list] = []
    for step in steps:
        if step[0] == "add":
            core.add(step[1])
        elif step[0] == "remove":
            core.remove(step[1], step[2])
        else:
            outputs.append(core.advance(step[1]))
    return outputs


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), kind=st.sampled_from(["vwap", "averages"]), cut=st.floats(0, 1))
def test_a_restored_snapshot_goes_on_exactly_as_the_uninterrupted_core(
    seed: int, kind: str, cut: float
) -> None:
    rng = random.Random(seed)
    make: Callable[[], Any]
    if kind == "vwap":
        vwap_config = random_vwap_config(rng)
        steps = revised_vwap_feed(rng, vwap_config)

        def make() -> Any:
            return SlidingVwap(vwap_config)
    else:
        average_config = random_average_config(rng)
        steps = average_feed(rng, average_config, in_order=False)

        def make() -> Any:
            return MovingAverages(average_config)

    at = int(cut * len(steps))
    live = make()
    run(live, steps[:at])
    saved = live.snapshot()
    plain = json.loads(json.dumps(saved))
    assert plain == saved  # plain data only: survives JSON unchanged
    restored = make()
    restored.restore(plain)
    assert restored.snapshot() == saved
    assert run(restored, steps[at:]) == run(live, steps[at:])
    assert restored.snapshot() == live.snapshot()
    assert restored.dropped_revisions == live.dropped_revisions


def test_restore_refuses_another_version_or_another_window() -> None:
    saved = SlidingVwap(SlidingVwapConfig(window_s=60)).snapshot()
    with pytest.raises(ValueError, match="window_s"):
        SlidingVwap(SlidingVwapConfig(window_s=300)).restore(saved)
    with pytest.raises(ValueError, match="version"):
        SlidingVwap(SlidingVwapConfig(window_s=60)).restore({**saved, "version": 2})
    with pytest.raises(ValueError, match="n="):
        MovingAverages(MovingAverageConfig(n=5)).restore(MovingAverages(MovingAverageConfig(n=20)).snapshot())


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "settings_",
    [
        {"window_s": 5, "slide_s": 2},
        {"window_s": 0},
        {"slide_s": 0},
        {"slide_s": 1.5, "window_s": 3},
        {"allowed_lateness_ns": -1},
    ],
)
def test_sliding_vwap_config_refuses_nonsense(settings_: dict) -> None:
    with pytest.raises(ValueError):
        SlidingVwapConfig(**settings_)


@pytest.mark.parametrize("settings_", [{"n": 0}, {"n": 2.5}, {"interval_s": 0}, {"allowed_lateness_ns": -5}])
def test_moving_average_config_refuses_nonsense(settings_: dict) -> None:
    with pytest.raises(ValueError):
        MovingAverageConfig(**settings_)


def test_bars_of_the_wrong_size_or_off_the_grid_are_refused() -> None:
    vwap = SlidingVwap()
    with pytest.raises(ValueError, match="1 s bars"):
        vwap.add(mbar(0, 100))
    with pytest.raises(ValueError, match="multiple"):
        vwap.add(Bar("A", 1, T0 + 5, 0, 0, 0, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="multiple"):
        vwap.remove("A", T0 + 5)
    with pytest.raises(ValueError, match="volume"):
        vwap.add(vbar(0, 0, 0))
    averages_ = MovingAverages()
    with pytest.raises(ValueError, match="60 s bars"):
        averages_.add(vbar(0, 1, 1))
    with pytest.raises(ValueError, match="multiple"):
        averages_.add(Bar("A", 60, T0 + S, 1, 1, 1, 1, 1, 1, 1))
