"""The bar accumulator as a fold: create / add / merge / result against a plain reference, and the
rules of which prints count, on hand-worked examples."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.analytics.bars import (
    Bar,
    BarAccumulator,
    Print,
    add,
    bars,
    create,
    eligible,
    fold,
    merge,
    parse_interval,
    result,
    window_start,
)

SECOND = 1_000_000_000


def plain_bar(prints: list[Print]) -> tuple | None:
    """The bar of ``prints`` by the definition, written the obvious way."""
    if not prints:
        return None
    ordered = sorted(prints, key=lambda p: (p.ts_event, p.seq))
    prices = [p.price for p in prints]
    volume = sum(p.shares for p in prints)
    notional = sum(p.price * p.shares for p in prints)
    return (ordered[0].price, max(prices), min(prices), ordered[-1].price, volume, notional, len(prints))


def as_tuple(bar: Bar | None) -> tuple | None:
    if bar is None:
        return None
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.notional, bar.trades)


prints_strategy = st.lists(
    st.builds(
        Print,
        ts_event=st.integers(0, 5 * SECOND),
        seq=st.integers(0, 10**6),
        match_number=st.integers(1, 10**9),
        price=st.integers(1, 10**7),
        shares=st.integers(1, 10**5),
    ),
    max_size=40,
    unique_by=lambda p: (p.ts_event, p.seq),  # (event time, sequence) identifies a print of a symbol
)


@settings(max_examples=300, deadline=None)
@given(prints=prints_strategy, seed=st.integers(0, 2**32))
def test_fold_in_any_order_and_split_equals_the_definition(prints: list[Print], seed: int) -> None:
    rng = random.Random(seed)
    shuffled = prints[:]
    rng.shuffle(shuffled)
    whole = fold(shuffled)
    assert as_tuple(result(whole, "S", 1, 0)) == plain_bar(prints)
    # any partition into parts, merged in any order, is the same bar
    parts: list[BarAccumulator] = [create() for _ in range(rng.randint(1, 4))]
    for p in shuffled:
        add(rng.choice(parts), p)
    rng.shuffle(parts)
    merged = create()
    for part in parts:
        merge(merged, part)
    assert merged == whole
    assert BarAccumulator.from_tuple(whole.to_tuple()) == whole


def test_same_timestamp_prints_open_and_close_in_feed_order() -> None:
    # three prints at one nanosecond: the sequence decides, not the arrival
    p1, p2, p3 = Print(7, 1, 11, 500, 10), Print(7, 2, 12, 300, 10), Print(7, 3, 13, 400, 10)
    bar = result(fold([p3, p1, p2]), "S", 1, 0)
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close) == (500, 500, 300, 400)


def test_vwap_is_the_exact_quotient() -> None:
    # 3 @ 100.0001 + 7 @ 100.0002: (3 * 1000001 + 7 * 1000002) / 10 = 1000001.7
    bar = result(fold([Print(1, 1, 1, 1_000_001, 3), Print(2, 2, 2, 1_000_002, 7)]), "S", 1, 0)
    assert bar is not None
    assert bar.notional == 10_000_017 and bar.volume == 10
    assert bar.vwap == 1_000_001.7


def test_empty_window_has_no_bar() -> None:
    assert result(create(), "S", 60, 0) is None
    assert merge(create(), create()).trades == 0


def test_bars_are_epoch_aligned_half_open_windows() -> None:
    # a print exactly at the next window's start belongs to it
    prints = [Print(59 * SECOND + 999_999_999, 1, 1, 10, 1), Print(60 * SECOND, 2, 2, 20, 2)]
    found = list(bars("S", prints, 60))
    assert [(b.window_start_ns, b.open, b.volume) for b in found] == [(0, 10, 1), (60 * SECOND, 20, 2)]
    assert window_start(119 * SECOND, 60 * SECOND) == 60 * SECOND


@pytest.mark.parametrize(
    ("kind", "printable", "shares", "counts"),
    [
        ("E", True, 100, True),
        ("C", True, 100, True),
        ("C", False, 100, False),  # Printable = N: reported elsewhere
        ("P", True, 100, True),
        ("Q", True, 100, True),
        ("Q", True, 0, False),  # a cross without volume
        ("A", True, 100, False),  # not a print
    ],
)
def test_which_prints_count(kind: str, printable: bool, shares: int, counts: bool) -> None:
    assert eligible(kind, printable, shares) is counts


def test_intervals() -> None:
    assert [parse_interval(text) for text in ("1s", "1m", "5m", "15s", "2m")] == [1, 60, 300, 15, 120]
    for bad in ("", "0s", "1h", "m", "-1s", "1.5m"):
        with pytest.raises(ValueError, match="interval"):
            parse_interval(bad)
