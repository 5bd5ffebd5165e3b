"""The rolling stage: the bar stage's revisions in, sliding VWAP and moving averages per venue and
trading day out -- against values worked by hand and an independent reference computed from the
prints, through revisions, two trading days, the end of the feed and a restore; and their rows and
hashes read back with the tests' own RowBinary and RESP readers."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from itchflow.analytics.bar_stage import BarConfig, BarRevision, BarStage
from itchflow.analytics.bars import Bar
from itchflow.analytics.rolling import RollingConfig
from itchflow.analytics.rolling_stage import RollingOutput, RollingStage
from itchflow.sinks.rolling_outputs import (
    AVERAGE_COLUMNS,
    VWAP_COLUMNS,
    average_rows,
    rolling_commands,
    vwap_rows,
)
from tests.unit.book_stage_support import DDL, ddl_columns, fields_of, parse_resp, read_rows
from tests.unit.rolling_reference import assert_rolling_values, rolling_reference

ANALYTICS_DDL = DDL.parent / "002_analytics.sql"
S = 1_000_000_000
M = 60 * S
DAY_NS = 86_400 * S
DAY = 18_260  # 2019-12-30
BREAK_AFTER = 30 * M
"""A break comes this long after its print: past any lateness and window here."""
T0 = DAY * DAY_NS + 14 * 3_600 * S + 30 * M  # 14:30 UTC = 09:30 New York


def bar(symbol: str, size_s: int, start: int, close: int, volume: int, notional: int, trades: int = 1) -> Bar:
    return Bar(symbol, size_s, start, close, close, close, close, volume, notional, trades)


def revision(
    b: Bar, revision: int = 0, deleted: bool = False, day: int = DAY, venue: str = "XNAS"
) -> BarRevision:
    return BarRevision(venue, day, b, revision, deleted)


def current(outputs: list[RollingOutput]) -> tuple[dict, dict]:
    """Keys -> their latest revision's value, deleted keys dropped (as ClickHouse FINAL reads them)."""
    vwaps: dict[tuple, tuple] = {}
    averages: dict[tuple, tuple] = {}
    for out in outputs:
        for r in out.vwaps:
            v = r.value
            key = (r.venue, r.trading_date, v.symbol, v.window_end_ns)
            if key not in vwaps or vwaps[key][0] < v.revision:
                vwaps[key] = (v.revision, v.deleted, v.volume, v.notional, v.trades, v.vwap)
        for m in out.averages:
            a = m.value
            key = (m.venue, m.trading_date, a.symbol, a.window_start_ns)
            if key not in averages or averages[key][0] < a.revision:
                averages[key] = (a.revision, a.deleted, a.sma, a.ema)
    return (
        {k: v[2:] for k, v in vwaps.items() if not v[1]},
        {k: v[2:] for k, v in averages.items() if not v[1]},
    )


# ---------------------------------------------------------------------------------- worked by hand


def test_vwap_and_averages_worked_by_hand() -> None:
    stage = RollingStage(RollingConfig(vwap_window_s=3, vwap_slide_s=1, ma_bars=2, ma_interval_s=60))
    # 1 s bars at T0 (10 @ 100) and T0+1s (30 @ 200): windows of 3 s ending T0+1s .. T0+5s
    out = stage.apply(
        [revision(bar("AAPL", 1, T0, 100, 10, 1_000)), revision(bar("AAPL", 1, T0 + S, 200, 30, 6_000))],
        T0 + 2 * S,
    )
    assert [(r.value.window_end_ns - T0, r.value.vwap) for r in out.vwaps] == [
        (S, 100.0),  # the first bar alone
        (2 * S, 175.0),  # (1,000 + 6,000) / 40
    ]
    out = stage.apply([], T0 + 10 * S)
    # T0+3s: unchanged bars, not emitted; T0+4s: the first bar left (30 @ 200); T0+5s: the last left, empty
    assert [(r.value.window_end_ns - T0, r.value.vwap, r.value.volume) for r in out.vwaps] == [
        (4 * S, 200.0, 30)
    ]
    # 1 m closes 100, 110, 130: SMA(2) from the second bar on, EMA alpha 2/3 from the first close
    out = stage.apply(
        [revision(bar("AAPL", 60, T0 + i * M, close, 1, close)) for i, close in enumerate((100, 110, 130))],
        T0 + 3 * M,
    )
    ema2 = 2 / 3 * 110 + 1 / 3 * 100
    ema3 = 2 / 3 * 130 + 1 / 3 * ema2
    assert [(a.value.window_start_ns - T0, a.value.sma, a.value.ema) for a in out.averages] == [
        (M, 105.0, pytest.approx(ema2, abs=0, rel=1e-15)),
        (2 * M, 120.0, pytest.approx(ema3, abs=0, rel=1e-15)),
    ]
    assert all(a.latest for a in out.averages)


def test_the_averages_start_afresh_each_trading_day() -> None:
    stage = RollingStage(RollingConfig(ma_bars=2))
    first = [revision(bar("AAPL", 60, T0 + i * M, 100 + i, 1, 100 + i)) for i in range(3)]
    out = stage.apply(first, T0 + 3 * M)
    assert len(out.averages) == 2
    next_day = [revision(bar("AAPL", 60, T0 + DAY_NS + i * M, 200, 1, 200), day=DAY + 1) for i in range(2)]
    out = stage.apply(next_day, T0 + DAY_NS + 2 * M)
    # the second day's first bar has no SMA (one bar of the day) and is not emitted; its EMA starts at 200
    assert [(a.trading_date, a.value.window_start_ns, a.value.sma, a.value.ema) for a in out.averages] == [
        (DAY + 1, T0 + DAY_NS + M, 200.0, 200.0)
    ]


def test_the_end_of_the_feed_emits_what_is_due_and_closes_the_day() -> None:
    stage = RollingStage(RollingConfig())
    out = stage.apply([revision(bar("AAPL", 1, T0, 100, 10, 1_000))], None, end=True)
    # the bar entered at T0+1s and left the 5 m window at T0+301s: one value, emitted now
    assert [(r.value.window_end_ns - T0, r.value.volume) for r in out.vwaps] == [(S, 10)]
    assert stage.days == {}
    # the same day again (a replay after its end): ignored, counted
    again = stage.apply([revision(bar("AAPL", 1, T0 + S, 100, 10, 1_000))], T0 + 2 * S)
    assert again == RollingOutput([], []) and stage.unrevised == 1
    # the next day is new
    out = stage.apply([revision(bar("AAPL", 1, T0 + DAY_NS, 100, 5, 500), day=DAY + 1)], T0 + DAY_NS + S)
    assert [(r.trading_date, r.value.volume) for r in out.vwaps] == [(DAY + 1, 5)]


def test_an_earlier_day_is_dropped_once_a_later_one_runs_and_it_has_nothing_pending() -> None:
    stage = RollingStage(RollingConfig())
    stage.apply([revision(bar("AAPL", 1, T0, 100, 10, 1_000))], T0 + S)
    stage.apply([revision(bar("AAPL", 1, T0 + DAY_NS, 100, 10, 1_000), day=DAY + 1)], T0 + DAY_NS + S)
    assert set(stage.days) == {("XNAS", DAY + 1)} and stage.closed == {"XNAS": DAY}


def test_a_revision_of_an_older_window_is_not_the_latest() -> None:
    stage = RollingStage(RollingConfig(), allowed_lateness_ns=10 * S)
    stage.apply(
        [revision(bar("AAPL", 1, T0, 100, 10, 1_000)), revision(bar("AAPL", 1, T0 + 2 * S, 100, 1, 100))],
        T0 + 3 * S,
    )
    out = stage.apply([revision(bar("AAPL", 1, T0, 101, 20, 2_020), revision=1)], T0 + 4 * S)
    assert [(r.value.window_end_ns - T0, r.value.revision, r.latest) for r in out.vwaps] == [
        (S, 1, False),  # the window of T0+3s was emitted before: the revision of T0+1s is not the latest
        (3 * S, 1, True),
    ]
    (command,) = parse_resp(b"".join(rolling_commands(out.vwaps, out.averages, "itchflow")))
    assert fields_of(command, 2)["window_end"] == str(T0 + 3 * S)


def test_a_deleted_bar_deletes_the_windows_it_alone_filled() -> None:
    stage = RollingStage(RollingConfig(), allowed_lateness_ns=10 * S)
    b = bar("AAPL", 1, T0, 100, 10, 1_000)
    stage.apply([revision(b)], T0 + S)
    out = stage.apply([revision(b, revision=1, deleted=True)], T0 + 2 * S)
    assert [(r.value.window_end_ns - T0, r.value.revision, r.value.deleted) for r in out.vwaps] == [
        (S, 1, True)
    ]


# ---------------------------------------------------------------------------------- against a reference


def slide_sums(prints: list[tuple[str, int, tuple]]) -> dict[tuple, tuple[int, int, int]]:
    one_s: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for symbol, day, (ts, _, _, price, shares) in prints:
        sums = one_s[(day, symbol, ts - ts % S)]
        sums[0] += shares
        sums[1] += price * shares
        sums[2] += 1
    return {key: (v[0], v[1], v[2]) for key, v in one_s.items()}


def reference(prints: list[tuple[str, int, tuple]], config: RollingConfig) -> tuple[dict, dict]:
    """The final values, straight from the prints: their 1 s sums and 1 m closes, then
    :func:`rolling_reference`."""
    return rolling_reference("XNAS", slide_sums(prints), minute_closes(prints), config)


def minute_closes(prints: list[tuple[str, int, tuple]]) -> dict[tuple, int]:
    closes: dict[tuple, tuple] = {}
    for symbol, day, (ts, seq, _, price, _) in prints:
        minute = (day, symbol, ts - ts % M)
        if minute not in closes or closes[minute][0] < (ts, seq):
            closes[minute] = ((ts, seq), price)
    return {key: close for key, (_, close) in closes.items()}


def random_prints(rng: random.Random) -> list[tuple[str, int, tuple]]:
    prints = []
    match = 0
    for day in (DAY, DAY + 1):
        start = T0 + (day - DAY) * DAY_NS
        for symbol in ("AAPL", "MSFT", "ZVZZT"):
            ts = start + rng.randrange(S)
            for seq in range(rng.randrange(200, 400)):
                ts += rng.choice([0, rng.randrange(S // 3), rng.randrange(20 * S), rng.randrange(200 * S)])
                match += 1
                prints.append(
                    (symbol, day, (ts, seq, match, rng.randrange(990_000, 1_010_000), rng.randrange(1, 500)))
                )
    prints.sort(key=lambda p: (p[2][0], p[0]))
    return prints


def run(
    prints,
    config: RollingConfig,
    lateness_ms: int,
    rng: random.Random,
    restore_at: int | None = None,
    broken: frozenset[int] = frozenset(),
):
    """Feed the prints through a bar stage and a rolling stage, a chunk per record, the event time at
    most ``lateness`` behind the chunk's prints; ``restore_at``: snapshot and restore both there;
    ``broken``: match numbers of prints to break, each in the first record whose event time is
    ``BREAK_AFTER`` past the print (or with the day's last record)."""
    bar_config = BarConfig(intervals_s=(1, 60), allowed_lateness_ms=lateness_ms, rolling=config)
    bars, rolling = BarStage(bar_config), RollingStage(config, bar_config.allowed_lateness_ns)
    outputs = []
    position = records = 0
    pending: list[tuple[str, int, tuple]] = []
    while position < len(prints):
        day = prints[position][1]
        chunk = []
        while position < len(prints) and prints[position][1] == day and len(chunk) < rng.randrange(1, 40):
            chunk.append(prints[position])
            position += 1
        complete = chunk[0][2][0] + rng.randrange(lateness_ms * 1_000_000 + 1)
        ends_day = position == len(prints) or prints[position][1] != day
        pending += [p for p in chunk if p[2][2] in broken]
        due = [p for p in pending if ends_day or p[2][0] + BREAK_AFTER < complete]
        pending = [p for p in pending if p not in due]
        breaks = [("XNAS", symbol, p[2], p[0]) for symbol, _, p in due]
        # the day's last record: the feed's end in it (System Event C), or after it (end of replay)
        in_record = ends_day and rng.random() < 0.5
        revisions = bars.record(complete, [("XNAS", s, d, p) for s, d, p in chunk], breaks, in_record)
        outputs.append(rolling.apply(revisions, None if in_record else complete, in_record, bars.day_bars))
        if ends_day and not in_record:
            outputs.append(rolling.apply(bars.close_all(), None, end=True, history=bars.day_bars))
        records += 1
        if records == restore_at:
            rolling = RollingStage.restore(rolling.snapshot(), config, bar_config.allowed_lateness_ns)
    return outputs, rolling


@pytest.mark.parametrize("seed", range(6))
def test_final_values_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    config = RollingConfig(vwap_window_s=rng.choice([5, 60, 300]), ma_bars=rng.choice([1, 3, 20]))
    prints = random_prints(rng)
    lateness_ms = rng.choice([0, 1_500])
    outputs, stage = run(prints, config, lateness_ms, rng)
    assert current(outputs) == reference(prints, config)
    assert stage.days == {} and stage.unrevised == 0
    if lateness_ms:
        assert any(r.value.revision for out in outputs for r in out.vwaps), "late prints revised windows"


@pytest.mark.parametrize("seed", range(4))
def test_breaks_long_after_their_bars_revise_the_values(seed: int) -> None:
    rng = random.Random(seed)
    config = RollingConfig(vwap_window_s=rng.choice([5, 60, 300]), ma_bars=rng.choice([1, 3, 20]))
    prints = random_prints(rng)
    broken = frozenset(rng.sample([p[2][2] for p in prints], 40))
    outputs, stage = run(prints, config, rng.choice([0, 1_500]), rng, broken=broken)
    unbroken = [p for p in prints if p[2][2] not in broken]
    vwaps, averages = current(outputs)
    assert_rolling_values("XNAS", vwaps, averages, slide_sums(unbroken), minute_closes(unbroken), config)
    assert stage.rebuilt > 0 and stage.unrevised == 0


@pytest.mark.parametrize("seed", range(3))
def test_a_restore_mid_stream_changes_nothing(seed: int) -> None:
    config = RollingConfig(vwap_window_s=60, ma_bars=3)
    prints = random_prints(random.Random(seed))
    straight, _ = run(prints, config, 1_500, random.Random(seed + 100))
    for restore_at in (1, 17, 60):
        restored, _ = run(prints, config, 1_500, random.Random(seed + 100), restore_at=restore_at)
        assert restored == straight


def test_a_state_of_other_settings_starts_empty() -> None:
    stage = RollingStage(RollingConfig(vwap_window_s=60))
    stage.apply([revision(bar("AAPL", 1, T0, 100, 10, 1_000))], T0 + S)
    assert RollingStage.restore(stage.snapshot(), RollingConfig(vwap_window_s=60)).days
    assert not RollingStage.restore(stage.snapshot(), RollingConfig(vwap_window_s=300)).days


# ---------------------------------------------------------------------------------- rows and hashes


def test_columns_are_the_ddl_columns() -> None:
    tables = ddl_columns(ANALYTICS_DDL)
    assert tables["vwap"] == list(VWAP_COLUMNS)
    assert tables["moving_averages"] == list(AVERAGE_COLUMNS)


def test_rows_and_hashes_read_back_with_independent_readers() -> None:
    stage = RollingStage(RollingConfig(vwap_window_s=300, ma_bars=2))
    out = stage.apply(
        [
            revision(bar("AAPL", 1, T0, 1_000_001, 3, 3_000_003)),
            revision(bar("AAPL", 60, T0, 1_000_001, 3, 3_000_003)),
            revision(bar("AAPL", 60, T0 + M, 1_000_004, 1, 1_000_004)),
        ],
        T0 + 2 * M,
    )
    (vwap,) = read_rows("vwap", vwap_rows(out.vwaps), ANALYTICS_DDL)
    assert vwap == {
        "venue": "XNAS", "trading_date": DAY, "symbol": "AAPL", "window_s": 300, "window_end": T0 + S,
        "vwap": 1_000_001.0, "volume": 3, "notional": 3_000_003, "trades": 1, "revision": 0, "is_deleted": 0,
    }  # fmt: skip
    (average,) = read_rows("moving_averages", average_rows(out.averages), ANALYTICS_DDL)
    alpha = 2 / 3
    ema = alpha * 1_000_004 + (1 - alpha) * 1_000_001  # the formula as specified
    assert average == {
        "venue": "XNAS", "trading_date": DAY, "symbol": "AAPL", "interval_s": 60, "n": 2,
        "window_start": T0 + M, "sma": 1_000_002.5, "ema": ema, "revision": 0, "is_deleted": 0,
    }  # fmt: skip
    null_sma = out.averages[0]._replace(value=out.averages[0].value._replace(sma=None))
    assert read_rows("moving_averages", average_rows([null_sma]), ANALYTICS_DDL)[0]["sma"] is None
    commands = parse_resp(b"".join(rolling_commands(out.vwaps, out.averages, "itchflow")))
    assert [c[:2] for c in commands] == [
        ["HSET", "itchflow:vwap:XNAS:AAPL"],
        ["HSET", "itchflow:ma:1m:XNAS:AAPL"],
    ]
    assert fields_of(commands[0], 2)["vwap"] == "1000001.0"
    assert fields_of(commands[1], 2) == {
        "window_start": str(T0 + M), "n": "2", "sma": "1000002.5", "ema": repr(ema), "revision": "0",
        "trading_date": str(DAY),
    }  # fmt: skip
