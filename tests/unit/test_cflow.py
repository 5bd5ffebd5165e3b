"""The flow stage's C code (itchflow/analytics/_cflow.c) against the pure-Python cores, its reference:
the same rows (floats to the bit), late counts, timers and snapshots for any sequence of records,
timers and ends of feed -- late updates, trading-day changes, empty sides, crossed books, several
venues, symbols and window sizes -- with snapshots of either restored into either; values beyond the
C ranges carry on in Python with the same results; malformed rows are refused as the Python decoder
refuses them."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itchflow import extensions
from itchflow.analytics.flow_stage import FlowConfig, FlowOutput, FlowStage
from itchflow.extensions import native_function
from itchflow.sinks.book_tables import depth_row, row_key, top_of_book_rows
from tests.unit.tob_support import DAY, PX_99_99, PX_100_00, PX_100_01, PX_100_02, SECOND, T0

MS = 1_000_000
CONFIGS = [
    FlowConfig(),
    FlowConfig(ofi_intervals_s=(60, 1), liquidity_intervals_s=(1, 5), depth_levels=2),
]
VENUES = ["XNAS", "BATS"]
SYMBOLS = ["AAPL", "B", "É", "ZZ"]  # "É" sorts after "ZZ" by code point (and by UTF-8 bytes)
FLINK_START = (-(2**63) + 1) * MS  # complete_before of Flink's initial watermark


@pytest.fixture(autouse=True)
def _built() -> None:
    if not extensions.FLOW.target.exists():
        pytest.fail(f"{extensions.FLOW.target.name} not built: run `./dev setup` (needs gcc)")


@contextmanager
def native(choice: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ITCHFLOW_NATIVE", choice)
        yield


def stages(config: FlowConfig) -> tuple[FlowStage, FlowStage]:
    """(Python, C) stages of ``config``."""
    with native("python"):
        python = FlowStage(config)
    with native("native"):
        c = FlowStage(config)
    assert type(python._flow).__name__ == "_PythonFlow" and type(c._flow).__name__ == "Flow"
    return python, c


def restored(state: bytes, config: FlowConfig, choice: str) -> FlowStage:
    with native(choice):
        return FlowStage.restore(state, config)


def tops(rows: list[tuple]) -> bytes:
    """top_of_book rows of (venue, day, symbol, ts, bid px, bid shares, ask px, ask shares)."""
    return b"".join(
        top_of_book_rows(row_key(v, d, s), [(n, ts, bp, bs, 1 if bs else 0, ap, az, 1 if az else 0)])
        for n, (v, d, s, ts, bp, bs, ap, az) in enumerate(rows)
    )


def depths(rows: list[tuple]) -> bytes:
    """depth_snapshots rows of (venue, day, symbol, ts, bid shares per level, ask shares per level)."""
    out = b""
    for n, (v, d, s, ts, bids, asks) in enumerate(rows):
        columns = [
            [PX_100_00 - i for i in range(len(bids))], list(bids), [1] * len(bids),
            [PX_100_01 + i for i in range(len(asks))], list(asks), [1] * len(asks),
        ]  # fmt: skip
        out += depth_row(row_key(v, d, s), n, "change", ts, columns)
    return out


def same(a: object, b: object) -> None:
    """Equal, and equal to the bit (repr tells 0.0 from -0.0 and 0 from 0.0; floats print exactly)."""
    assert a == b
    assert repr(a) == repr(b)


def snapshot_data(stage: FlowStage) -> object:
    return pickle.loads(stage.snapshot())


def play(config: FlowConfig, steps: list[tuple], cross_at: frozenset[int] = frozenset()) -> None:
    """Run ``steps`` on both paths, comparing every output, timer and snapshot; at the steps in
    ``cross_at`` each stage continues from the other's snapshot."""
    python, c = stages(config)
    for number, step in enumerate(steps):
        outputs = []
        for stage in (python, c):
            if step[0] == "r":
                outputs.append(stage.record(step[1], tops(step[2]), depths(step[3]), step[4]))
            elif step[0] == "f":
                outputs.append(stage.fire(step[1]))
            else:
                outputs.append(stage.close_all())
        same(outputs[0], outputs[1])
        assert isinstance(outputs[1], FlowOutput)
        assert python.next_timer_ms() == c.next_timer_ms()
        same(snapshot_data(python), snapshot_data(c))
        if number in cross_at:
            python, c = (
                restored(c.snapshot(), config, "python"),
                restored(python.snapshot(), config, "native"),
            )


# ------------------------------------------------------------------ hand-made cases


def test_a_quiet_day_of_two_venues() -> None:
    a, b = ("XNAS", DAY, "AAPL"), ("BATS", DAY, "É")
    steps = [
        ("f", FLINK_START),
        ("r", FLINK_START, [
            (*a, T0 + 10 * MS, PX_100_00, 100, 0, 0),  # the ask side empty
            (*a, T0 + 20 * MS, PX_100_00, 100, PX_100_02, 50),
            (*b, T0 + 30 * MS, PX_99_99, 7, PX_100_01, 9),
            (*a, T0 + 1_500 * MS, PX_100_01, 30, PX_100_02, 40),
        ], [(*a, T0 + 25 * MS, (100, 200, 300), (50,)), (*b, T0 + 40 * MS, (), (9, 1))], False),
        ("r", T0 + SECOND, [(*b, T0 + 2_100 * MS, PX_100_01, 5, PX_100_01, 5)], [], False),  # locked
        ("f", T0 + 2 * SECOND),
        ("r", T0 + 2 * SECOND, [(*a, T0 + 2_500 * MS, PX_100_02, 3, PX_100_01, 4)], [], False),  # crossed
        ("c",),
    ]  # fmt: skip
    for config in CONFIGS:
        play(config, steps, frozenset({1, 3}))


def test_late_updates_day_changes_and_the_end_of_the_feed() -> None:
    a = ("XNAS", DAY, "AAPL")
    steps = [
        ("r", T0, [(*a, T0 + 100 * MS, PX_100_00, 10, PX_100_01, 10)], [(*a, T0 + 100 * MS, (5,), (6,))], False),
        ("f", T0 + 3 * SECOND),
        ("r", T0 + 3 * SECOND, [(*a, T0 + 200 * MS, PX_100_00, 20, PX_100_01, 10)], [(*a, T0, (1,), (1,))], False),
        ("r", T0 + 3 * SECOND, [("XNAS", DAY + 1, "AAPL", T0 + 3_100 * MS, PX_100_00, 1, 0, 0)], [], False),
        ("r", T0 + 3 * SECOND, [(*a, T0 + 3_200 * MS, PX_100_00, 1, 0, 0)], [(*a, T0 + 3_300 * MS, (1,), ())], False),
        ("c",),
        ("r", T0 + 3 * SECOND, [("XNAS", DAY + 1, "AAPL", T0 + 3_400 * MS, 0, 0, PX_100_01, 8)], [], False),
        ("f", T0 + 70 * SECOND),
        ("r", T0 + 70 * SECOND, [("XNAS", DAY + 2, "B", T0 + 71 * SECOND, PX_100_00, 1, PX_100_01, 1)], [], True),
    ]  # fmt: skip
    for config in CONFIGS:
        play(config, steps, frozenset({2, 5}))


# ------------------------------------------------------------------ random sequences

_price = st.one_of(st.sampled_from([0, PX_99_99, PX_100_00, PX_100_01, PX_100_02]), st.integers(1, 2**40))
_shares = st.sampled_from([0, 1, 100, 2_500])
_key = st.tuples(
    st.sampled_from(VENUES), st.sampled_from([DAY - 1, DAY, DAY, DAY + 1]), st.sampled_from(SYMBOLS)
)
_offset = st.integers(-2 * SECOND, 8 * SECOND).map(lambda ns: ns - ns % (MS // 4))
_top = st.builds(
    lambda k, t, bp, bs, ap, az: (*k, T0 + t, bp, bs, ap, az), _key, _offset, _price, _shares, _price, _shares
)
_levels = st.lists(_shares, max_size=3)
_depth = st.builds(lambda k, t, b, a: (*k, T0 + t, tuple(b), tuple(a)), _key, _offset, _levels, _levels)
_clock = st.one_of(st.just(FLINK_START), _offset.map(lambda t: T0 + t))
_step = st.one_of(
    st.builds(lambda c, t, d: ("r", c, t, d, False), _clock, st.lists(_top, max_size=12), st.lists(_depth, max_size=4)),
    st.builds(lambda c: ("f", c), _clock),
    st.just(("c",)),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.sampled_from(CONFIGS),
    steps=st.lists(_step, max_size=14),
    cross_at=st.frozensets(st.integers(0, 13), max_size=3),
)
def test_random_sequences_give_the_same_rows_timers_and_state(config, steps, cross_at) -> None:
    play(config, steps, cross_at)


def test_wide_spreads_sum_the_same_basis_points() -> None:
    # 20000 * spread * ns far above 2^53: each term is a correctly rounded int / int, as in Python
    rng = random.Random(5)
    a = ("XNAS", DAY, "AAPL")
    rows = []
    for n in range(400):
        bid = rng.randrange(1, 2**39)
        rows.append((*a, T0 + n * 37 * MS + rng.randrange(MS), bid, 1, bid + rng.randrange(1, 2**39), 1))
    play(CONFIGS[1], [("r", T0, rows, [], False), ("f", T0 + 20 * SECOND), ("c",)])


# ------------------------------------------------------------------ beyond the C ranges


@pytest.mark.parametrize(
    "step",
    [
        ("r", T0, [("XNAS", DAY, "AAPL", T0 + 5 * MS, PX_100_00, 2**63, PX_100_01, 5)], [], False),
        ("r", T0, [("XNAS", DAY, "AAPL", T0 + 5 * MS, 2**62, 1, 0, 0)], [], False),
        ("r", T0, [], [("XNAS", DAY, "AAPL", T0 + 5 * MS, (2**63, 2**63), (1,))], False),
        ("r", T0, [("XNAS", DAY, "AAPL", 2**62, PX_100_00, 1, PX_100_01, 1)], [], False),
        ("f", 2**70),
    ],
    ids=["shares", "price", "depth", "time", "clock"],
)
def test_values_beyond_the_c_ranges_carry_on_in_python(step) -> None:
    a = ("XNAS", DAY, "AAPL")
    before = ("r", T0, [(*a, T0 + MS, PX_100_00, 10, PX_100_01, 10)], [(*a, T0 + MS, (4,), (3,))], False)
    after = ("r", T0 + SECOND, [(*a, T0 + 2 * SECOND, PX_100_01, 10, PX_100_02, 10)], [], False)
    for config in CONFIGS:
        play(config, [before, step, after, ("f", T0 + 4 * SECOND), ("c",)], frozenset({1}))


def test_window_sizes_beyond_the_c_range_run_in_python() -> None:
    with native("native"):
        stage = FlowStage(FlowConfig(ofi_intervals_s=(1, 10**8)))
    assert type(stage._flow).__name__ == "_PythonFlow"


@settings(max_examples=500, deadline=None)
@given(
    a=st.one_of(st.integers(-(2**125), 2**125), st.integers(-(2**60), 2**60)),
    b=st.one_of(st.integers(1, 2**63), st.integers(1, 2**54), st.integers(-(2**125), 2**125)).filter(bool),
)
def test_divisions_round_as_python_divides_ints(a: int, b: int) -> None:
    divide = native_function("itchflow.analytics._cflow", "true_divide")
    got = divide(a, b)
    assert repr(got) == repr(a / b)
    assert abs(Fraction(got) - Fraction(a, b)) <= abs(Fraction(a / b) - Fraction(a, b))


# ------------------------------------------------------------------ malformed rows


def test_malformed_rows_are_refused_as_python_refuses_them() -> None:
    a, b = ("XNAS", DAY, "AAPL"), ("BATS", DAY, "B")
    good_tops = tops([(*a, T0 + MS, PX_100_00, 10, PX_100_01, 10), (*b, T0 + 2 * MS, PX_100_00, 1, 0, 0)])
    good_depths = depths([(*a, T0 + MS, (4, 5), (3,)), (*b, T0 + 2 * MS, (1,), (2, 2))])
    bad_utf8 = good_depths.replace(b"change", b"chang\xff")
    cases = [(good_tops[:cut], good_depths) for cut in range(1, len(good_tops))]
    cases += [(good_tops, good_depths[:cut]) for cut in range(1, len(good_depths))]
    cases += [(good_tops, bad_utf8), (good_tops.replace(b"AAPL", b"AA\xc3\x28"), b"")]
    refused = 0
    for config in CONFIGS:
        for top_rows, depth_rows in cases:
            python, c = stages(config)
            outcomes = []
            for stage in (python, c):
                try:
                    outcomes.append(stage.record(T0, top_rows, depth_rows, False))
                except ValueError:
                    outcomes.append(ValueError)
            same(outcomes[0], outcomes[1])
            refused += outcomes[0] is ValueError
            same(snapshot_data(python), snapshot_data(c))
            same(python.close_all(), c.close_all())
    assert refused > len(cases)  # cut inside a row, mostly
