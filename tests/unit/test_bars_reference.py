"""``itchflow bars`` (the offline OHLCV reference command) against hand-worked bars and against an
independent reference implementation (:mod:`tests.unit.bars_reference`).

Hand-worked cases: ITCH messages built here from message objects; every expected bar is a literal
worked out on paper from the rules (event time = midnight America/New_York + ITCH timestamp; tumbling
epoch-aligned windows; E at the order's price, C only if printable, P/Q only with shares; B removes a
print of the same stock; open/close by (event time, file position); vwap = exact sums, one division).
The cases share one file (each with its own stocks and minutes), so the command starts once per
interval; both the reference and the command must print the literals.

Real data: the shared ITCH samples, the RITCH sample with broken trades injected, and a synthetic feed;
the command must print exactly the reference's output for 1 s, 1 min and 5 min windows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from itchflow.itch import messages as m
from itchflow.itch.framing import iter_messages, write_messages
from tests.samples import sample
from tests.unit.bars_reference import midnight_ns, reference_bars

ROOT = Path(__file__).resolve().parents[2]
S = 10**9
DATE = "2019-12-30"
MIDNIGHT = 1_577_682_000 * S
"""2019-12-30 00:00 in New York (EST, UTC-5) = 2019-12-30 05:00 UTC: 18,260 days * 86,400 s + 5 h."""
T0 = 34_200 * S
"""09:30:00.000 as an ITCH timestamp (ns since midnight). Midnight and T0 are multiples of 5 min, so
``MIDNIGHT + T0`` starts a window of every interval."""
MIN = 60 * S

SIDES = ["reference", "cli"]


# --- building files --------------------------------------------------------------------------------------


def directory(locate: int, stock: str) -> m.StockDirectory:
    return m.StockDirectory(
        locate, 0, 0, stock, "Q", "N", 100, "N", "C", "C", "P", "N", "N", "1", "N", 0, "N"
    )


def add(locate: int, ts: int, ref: int, shares: int, stock: str, price: int) -> m.AddOrder:
    return m.AddOrder(locate, 0, ts, ref, "B", shares, stock, price)


def add_mpid(locate: int, ts: int, ref: int, shares: int, stock: str, price: int) -> m.AddOrderMPID:
    return m.AddOrderMPID(locate, 0, ts, ref, "S", shares, stock, price, "GSCO")


def executed(locate: int, ts: int, ref: int, shares: int, match: int) -> m.OrderExecuted:
    return m.OrderExecuted(locate, 0, ts, ref, shares, match)


def executed_at(
    locate: int, ts: int, ref: int, shares: int, match: int, printable: str, price: int
) -> m.OrderExecutedWithPrice:
    return m.OrderExecutedWithPrice(locate, 0, ts, ref, shares, match, printable, price)


def replace(locate: int, ts: int, old: int, new: int, shares: int, price: int) -> m.OrderReplace:
    return m.OrderReplace(locate, 0, ts, old, new, shares, price)


def trade(locate: int, ts: int, shares: int, stock: str, price: int, match: int) -> m.Trade:
    return m.Trade(locate, 0, ts, 0, "B", shares, stock, price, match)


def cross(locate: int, ts: int, shares: int, stock: str, price: int, match: int) -> m.CrossTrade:
    return m.CrossTrade(locate, 0, ts, shares, stock, price, match, "O")


def broken(locate: int, ts: int, match: int) -> m.BrokenTrade:
    return m.BrokenTrade(locate, 0, ts, match)


def bar(
    symbol: str, start: int, o: int, h: int, lo: int, c: int, volume: int, notional: int, trades: int
) -> dict[str, Any]:
    """A bar as the command prints it; ``notional`` = sum(price * shares), worked out by hand."""
    return {
        "symbol": symbol,
        "window_start_ns": start,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": volume,
        "vwap": notional / volume,
        "trades": trades,
    }


# --- running the two sides -------------------------------------------------------------------------------


@cache
def run_cli(path: Path, interval: str, date: str = DATE, symbols: tuple[str, ...] = ()) -> dict[str, Any]:
    """The command's JSON output without the venue (whose default the rules leave open); cached."""
    command = [sys.executable, "-m", "itchflow.cli", "bars", str(path), "--interval", interval]
    command += ["--date", date, "--json"]
    for symbol in symbols:
        command += ["--symbol", symbol]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command[1:])} exited {done.returncode}:\n{done.stderr}"
    output = json.loads(done.stdout)
    assert isinstance(output.pop("venue"), str)
    return output


@cache
def run_reference(
    path: Path, interval: str, date: str = DATE, symbols: tuple[str, ...] = ()
) -> dict[str, Any]:
    return reference_bars(path, interval, date, symbols)


def run(
    side: str, path: Path, interval: str, date: str = DATE, symbols: tuple[str, ...] = ()
) -> dict[str, Any]:
    return (run_cli if side == "cli" else run_reference)(path, interval, date, symbols)


# --- hand-worked cases -----------------------------------------------------------------------------------
# Each case has its own stocks, locates, match numbers and ten minutes of the morning, so that all of them
# fit in one file (one run of the command per interval) and each is still checked on its own.


@dataclass
class Case:
    directory: list[Any]
    messages: list[Any]
    bars: dict[str, list[dict[str, Any]]]
    """Expected bars by interval."""

    @property
    def symbols(self) -> set[str]:
        return {message.stock for message in self.directory} | {bar["symbol"] for bar in self.bars["1m"]}


# E at the order's price, after a U at the new order's price, on an unknown order not at all
T = T0  # 09:30
EXEC = 1
EXECUTIONS = Case(
    [directory(EXEC, "EXEC")],
    [
        add(EXEC, T + 1 * S, 1, 500, "EXEC", 1_000_000),
        add(EXEC, T + 2 * S, 2, 300, "EXEC", 1_010_000),
        executed(EXEC, T + 3 * S, 1, 100, 11),  # 100 @ order 1's price 1_000_000
        replace(EXEC, T + 4 * S, 2, 3, 300, 1_020_000),
        executed(EXEC, T + 5 * S, 3, 200, 12),  # 200 @ the replacing order's price 1_020_000
        executed(EXEC, T + 6 * S, 99, 50, 13),  # order 99 never seen: price unknown, not counted
        m.OrderCancel(EXEC, 0, T + 7 * S, 1, 100),  # a cancel keeps the price
        executed(EXEC, T + 8 * S, 1, 50, 14),  # 50 @ 1_000_000
    ],
    {
        # notional 100_000_000 + 204_000_000 + 50_000_000
        "1m": [bar("EXEC", MIDNIGHT + T, 1_000_000, 1_020_000, 1_000_000, 1_000_000, 350, 354_000_000, 3)],
        "1s": [
            bar("EXEC", MIDNIGHT + T + 3 * S, *[1_000_000] * 4, 100, 100_000_000, 1),
            bar("EXEC", MIDNIGHT + T + 5 * S, *[1_020_000] * 4, 200, 204_000_000, 1),
            bar("EXEC", MIDNIGHT + T + 8 * S, *[1_000_000] * 4, 50, 50_000_000, 1),
        ],
    },
)

# C printable or not, P, Q with and without shares
T = T0 + 10 * MIN  # 09:40
PRNT = 2
PRINTS = Case(
    [directory(PRNT, "PRNT")],
    [
        add(PRNT, T + 1 * S, 21, 1000, "PRNT", 1_000_000),
        executed_at(PRNT, T + 2 * S, 21, 100, 21, "Y", 1_005_000),  # printable: 100 @ 1_005_000
        executed_at(PRNT, T + 3 * S, 21, 200, 22, "N", 990_000),  # non-printable: not counted
        trade(PRNT, T + 4 * S, 300, "PRNT", 1_003_000, 23),
        cross(PRNT, T + 5 * S, 0, "PRNT", 0, 24),  # a cross with no shares: not counted
        cross(PRNT, T + 6 * S, 5000, "PRNT", 1_002_000, 25),
        trade(PRNT, T + 7 * S, 0, "PRNT", 500_000, 26),  # a trade with no shares: not counted
    ],
    {
        # 100 @ 1_005_000 + 300 @ 1_003_000 + 5000 @ 1_002_000 = 100_500_000 + 300_900_000 + 5_010_000_000
        "1m": [bar("PRNT", MIDNIGHT + T, 1_005_000, 1_005_000, 1_002_000, 1_002_000, 5400, 5_411_400_000, 3)],
    },
)

# window boundaries; prints at the same time (file order decides open and close)
T = T0 + 20 * MIN  # 09:50
EDGE = 3
BOUNDARIES = Case(
    [directory(EDGE, "EDGE")],
    [
        trade(EDGE, T + 59 * S + 999_999_999, 100, "EDGE", 1_000_000, 31),  # the last ns of 09:50
        trade(EDGE, T + 60 * S, 200, "EDGE", 1_010_000, 32),  # exactly 09:51:00: the next window
        trade(EDGE, T + 90 * S, 300, "EDGE", 1_020_000, 33),
        trade(EDGE, T + 90 * S, 400, "EDGE", 1_030_000, 34),  # same time, later in the file: close
        trade(EDGE, T + 120 * S, 10, "EDGE", 1_050_000, 35),  # same time, earlier in the file: open
        trade(EDGE, T + 120 * S, 20, "EDGE", 1_000_000, 36),
        trade(EDGE, T + 150 * S, 30, "EDGE", 990_000, 37),
        trade(EDGE, T + 150 * S, 40, "EDGE", 1_060_000, 38),  # same time, later in the file: close
    ],
    # notionals: 100 @ 1_000_000 = 100_000_000; 200 @ 1_010_000 = 202_000_000; 300 @ 1_020_000 = 306_000_000;
    # 400 @ 1_030_000 = 412_000_000; 10 @ 1_050_000 = 10_500_000; 20 @ 1_000_000 = 20_000_000;
    # 30 @ 990_000 = 29_700_000; 40 @ 1_060_000 = 42_400_000
    {
        "1s": [
            bar("EDGE", MIDNIGHT + T + 59 * S, *[1_000_000] * 4, 100, 100_000_000, 1),
            bar("EDGE", MIDNIGHT + T + 60 * S, *[1_010_000] * 4, 200, 202_000_000, 1),
            bar(
                "EDGE", MIDNIGHT + T + 90 * S, 1_020_000, 1_030_000, 1_020_000, 1_030_000, 700, 718_000_000, 2
            ),
            bar(
                "EDGE", MIDNIGHT + T + 120 * S, 1_050_000, 1_050_000, 1_000_000, 1_000_000, 30, 30_500_000, 2
            ),
            bar("EDGE", MIDNIGHT + T + 150 * S, 990_000, 1_060_000, 990_000, 1_060_000, 70, 72_100_000, 2),
        ],
        "1m": [
            bar("EDGE", MIDNIGHT + T, *[1_000_000] * 4, 100, 100_000_000, 1),
            bar("EDGE", MIDNIGHT + T + MIN, 1_010_000, 1_030_000, 1_010_000, 1_030_000, 900, 920_000_000, 3),
            bar(
                "EDGE", MIDNIGHT + T + 2 * MIN, 1_050_000, 1_060_000, 990_000, 1_060_000, 100, 102_600_000, 4
            ),
        ],
        "5m": [bar("EDGE", MIDNIGHT + T, 1_000_000, 1_060_000, 990_000, 1_060_000, 1100, 1_122_600_000, 8)],
    },
)

# broken trades: of the open, of an E, of a bar's only print; unknown ones
T = T0 + 30 * MIN  # 10:00
BRKA, BRKB = 4, 5
BREAKS = Case(
    [directory(BRKA, "BRKA"), directory(BRKB, "BRKB")],
    [
        trade(BRKA, T + 1 * S, 100, "BRKA", 1_000_000, 51),  # the open, broken below
        trade(BRKA, T + 2 * S, 200, "BRKA", 1_010_000, 52),
        trade(BRKA, T + 3 * S, 300, "BRKA", 990_000, 53),
        broken(BRKA, T + 4 * S, 51),  # applied
        broken(BRKB, T + 5 * S, 56),  # unknown: the print with match number 56 comes later
        trade(BRKB, T + 6 * S, 20, "BRKB", 2_010_000, 56),  # stays
        add(BRKB, T + 7 * S, 55, 100, "BRKB", 2_000_000),
        executed_at(BRKB, T + 8 * S, 55, 10, 57, "N", 1_990_000),
        broken(BRKB, T + 9 * S, 57),  # unknown: match 57 was not an eligible print
        executed(BRKB, T + 10 * S, 77, 10, 58),  # order 77 never seen: not a print
        broken(BRKB, T + 11 * S, 58),  # unknown
        executed(BRKB, T + 12 * S, 55, 30, 59),  # 30 @ 2_000_000, broken below
        broken(BRKB, T + 13 * S, 59),  # applied: a break of an E
        trade(BRKA, T + 61 * S, 50, "BRKA", 1_020_000, 54),  # the only print of BRKA's 10:01 bar
        broken(BRKA, T + 62 * S, 54),  # applied: the bar disappears
        broken(BRKA, T + 63 * S, 999),  # unknown: no such match number
    ],
    {
        # BRKA 10:00 without match 51: 200 @ 1_010_000 + 300 @ 990_000 = 202_000_000 + 297_000_000
        "1m": [
            bar("BRKA", MIDNIGHT + T, 1_010_000, 1_010_000, 990_000, 990_000, 500, 499_000_000, 2),
            bar("BRKB", MIDNIGHT + T, *[2_010_000] * 4, 20, 40_200_000, 1),
        ],
    },
)
BREAKS_APPLIED, BREAKS_UNKNOWN = 3, 4

# a B of one stock does not break another stock's print
T = T0 + 40 * MIN  # 10:10
OTHA, OTHB = 6, 7
OTHER_STOCK_BREAK = Case(
    [directory(OTHA, "OTHA"), directory(OTHB, "OTHB")],
    [
        trade(OTHB, T + 1 * S, 10, "OTHB", 2_000_000, 61),
        broken(OTHA, T + 2 * S, 61),  # a break of OTHA: OTHB's print with match number 61 stays; unknown
    ],
    {"1m": [bar("OTHB", MIDNIGHT + T, *[2_000_000] * 4, 10, 20_000_000, 1)]},
)
OTHER_STOCK_UNKNOWN = 1

# two symbols, one without a directory entry (its name comes from its orders); sorted by symbol, window
T = T0 + 50 * MIN  # 10:20
AAPL, MSFT = 8, 9
TWO_SYMBOLS = Case(
    [directory(AAPL, "AAPL")],
    [
        add_mpid(MSFT, T + 1 * S, 91, 1000, "MSFT", 2_000_000),
        executed(MSFT, T + 2 * S, 91, 100, 72),  # 100 @ 2_000_000
        trade(AAPL, T + 10 * S, 100, "AAPL", 1_001_000, 73),
        executed_at(MSFT, T + 65 * S, 91, 200, 74, "Y", 2_001_000),
        trade(AAPL, T + 70 * S, 100, "AAPL", 1_000_000, 71),
    ],
    {
        "1m": [
            bar("AAPL", MIDNIGHT + T, *[1_001_000] * 4, 100, 100_100_000, 1),
            bar("AAPL", MIDNIGHT + T + MIN, *[1_000_000] * 4, 100, 100_000_000, 1),
            bar("MSFT", MIDNIGHT + T, *[2_000_000] * 4, 100, 200_000_000, 1),
            bar("MSFT", MIDNIGHT + T + MIN, *[2_001_000] * 4, 200, 400_200_000, 1),
        ],
        "5m": [
            bar("AAPL", MIDNIGHT + T, 1_001_000, 1_001_000, 1_000_000, 1_000_000, 200, 200_100_000, 2),
            bar("MSFT", MIDNIGHT + T, 2_000_000, 2_001_000, 2_000_000, 2_001_000, 300, 600_200_000, 2),
        ],
    },
)

# open and close by event time, not by position in the file (last in the file: the rest is in time order)
T = T0 + 60 * MIN  # 10:30
LATE = 10
OUT_OF_ORDER = Case(
    [directory(LATE, "LATE")],
    [
        trade(LATE, T + 10 * S, 100, "LATE", 1_000_000, 41),
        trade(LATE, T + 5 * S, 100, "LATE", 1_100_000, 42),  # earlier event time, later in the file: open
    ],
    {"1m": [bar("LATE", MIDNIGHT + T, 1_100_000, 1_100_000, 1_000_000, 1_000_000, 200, 210_000_000, 2)]},
)

CASES = {
    "executions": EXECUTIONS,
    "printable-and-crosses": PRINTS,
    "boundaries": BOUNDARIES,
    "breaks": BREAKS,
    "break-of-another-stock": OTHER_STOCK_BREAK,
    "two-symbols": TWO_SYMBOLS,
    "out-of-order": OUT_OF_ORDER,
}
HAND_WORKED = [(name, interval) for name, case in CASES.items() for interval in case.bars]


@pytest.fixture(scope="module")
def hand_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case in one file: the directory first, then the cases one after another."""
    path = tmp_path_factory.mktemp("hand") / "hand.itch"
    cases = CASES.values()
    directories = [message for case in cases for message in case.directory]
    write_messages(path, directories + [message for case in cases for message in case.messages])
    return path


def test_midnight_in_new_york_by_hand() -> None:
    assert midnight_ns(DATE) == MIDNIGHT
    # summer time (EDT, UTC-4): 2019-07-01 = 18,078 days after 1970-01-01, midnight at 04:00 UTC
    assert midnight_ns("2019-07-01") == (18_078 * 86_400 + 4 * 3600) * S == 1_561_953_600 * S


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("case", "interval"), HAND_WORKED)
def test_hand_worked_bars(case: str, interval: str, side: str, hand_file: Path) -> None:
    output = run(side, hand_file, interval)
    assert output["interval_s"] == {"1s": 1, "1m": 60, "5m": 300}[interval]
    assert output["date"] == DATE
    symbols = CASES[case].symbols
    assert [bar for bar in output["bars"] if bar["symbol"] in symbols] == CASES[case].bars[interval]


@pytest.mark.parametrize("side", SIDES)
def test_hand_worked_file_has_no_other_bars_and_counts_the_breaks(side: str, hand_file: Path) -> None:
    output = run(side, hand_file, "1m")
    every_bar = [bar for case in CASES.values() for bar in case.bars["1m"]]
    assert output["bars"] == sorted(every_bar, key=lambda bar: (bar["symbol"], bar["window_start_ns"]))
    unknown = BREAKS_UNKNOWN + OTHER_STOCK_UNKNOWN
    assert output["breaks"] == {"applied": BREAKS_APPLIED, "unknown": unknown}


def test_reference_counts_the_breaks_case_by_case(tmp_path: Path) -> None:
    for case, want in [
        (BREAKS, (BREAKS_APPLIED, BREAKS_UNKNOWN)),
        (OTHER_STOCK_BREAK, (0, OTHER_STOCK_UNKNOWN)),
    ]:
        path = tmp_path / "case.itch"
        write_messages(path, case.directory + case.messages)
        output = reference_bars(path, "1m", DATE)
        assert output["bars"] == case.bars["1m"]
        assert (output["breaks"]["applied"], output["breaks"]["unknown"]) == want


@pytest.mark.parametrize("side", SIDES)
def test_symbol_filter(side: str, hand_file: Path) -> None:
    msft = [bar for bar in TWO_SYMBOLS.bars["1m"] if bar["symbol"] == "MSFT"]
    assert run(side, hand_file, "1m", symbols=("MSFT",))["bars"] == msft


@pytest.mark.parametrize("side", SIDES)
def test_the_date_sets_the_event_time(side: str, hand_file: Path) -> None:
    summer = run(side, hand_file, "1m", date="2019-07-01")
    assert summer["date"] == "2019-07-01"
    # 09:30 New York on 2019-07-01 (EDT) = 13:30 UTC; on 2019-12-30 (EST) 14:30 UTC
    assert summer["bars"][:1] == [
        bar("AAPL", (1_561_953_600 + 10 * 3600 + 20 * 60) * S, *[1_001_000] * 4, 100, 100_100_000, 1)
    ]
    assert EXECUTIONS.bars["1m"][0]["window_start_ns"] == 1_577_716_200 * S
    assert [b for b in summer["bars"] if b["symbol"] == "EXEC"][0]["window_start_ns"] == 1_561_987_800 * S


@pytest.mark.parametrize("side", SIDES)
def test_a_file_without_prints_has_no_bars(side: str, tmp_path: Path) -> None:
    path = tmp_path / "quiet.itch"
    write_messages(path, [directory(1, "QUIET"), add(1, T0, 1, 100, "QUIET", 1_000_000)])
    assert run(side, path, "5m") == {
        "interval_s": 300,
        "date": DATE,
        "bars": [],
        "breaks": {"applied": 0, "unknown": 0},
    }


# --- real data: the command against the reference --------------------------------------------------------

INTERVALS = ["1s", "1m", "5m"]
RITCH = "RITCH_ex20101224.TEST_ITCH_50.gz"
REAL_SAMPLES = [
    *[(RITCH, (), interval) for interval in INTERVALS],
    (RITCH, ("BOB",), "1m"),
    *[("omi_Nasdaq_itch50_sample.bin", (), interval) for interval in INTERVALS],
    *[("meatpy_sample.itch50", (), interval) for interval in INTERVALS],
    # printable C's of orders and stocks the capture never names: no stock, no bar
    ("pcap/OrderExecutedWithPrice.pcap", (), "1m"),
]


@pytest.mark.parametrize(("name", "symbols", "interval"), REAL_SAMPLES)
def test_real_samples_match_the_reference(name: str, symbols: tuple[str, ...], interval: str) -> None:
    path = sample(name)
    want = run_reference(path, interval, DATE, symbols)
    if name == RITCH and not symbols:
        assert len(want["bars"]) > 100  # the comparison has substance
    assert run_cli(path, interval, DATE, symbols) == want


@pytest.fixture(scope="module")
def sample_with_breaks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The RITCH sample with a B, 50 messages later, for every execution or trade whose match number is a
    multiple of 5 (whether it was an eligible print or not), and a B of a match number never used."""
    out: list[Any] = []
    pending: list[tuple[int, Any]] = []  # (position to break after, the print)
    for position, (_, message) in enumerate(iter_messages(sample(RITCH))):
        out.append(message)
        if getattr(message, "match_number", 1) % 5 == 0:
            pending.append((position + 50, message))
        while pending and pending[0][0] <= position:
            _, printed = pending.pop(0)
            out.append(m.BrokenTrade(printed.stock_locate, 0, message.timestamp, printed.match_number))
    out.append(m.BrokenTrade(out[-1].stock_locate, 0, out[-1].timestamp, 1 << 60))
    path = tmp_path_factory.mktemp("breaks") / "breaks.itch"
    write_messages(path, out)
    return path


@pytest.mark.parametrize("interval", INTERVALS)
def test_sample_with_breaks_matches_the_reference(sample_with_breaks: Path, interval: str) -> None:
    want = run_reference(sample_with_breaks, interval)
    assert want["breaks"]["applied"] > 500 and want["breaks"]["unknown"] >= 1
    assert run_cli(sample_with_breaks, interval) == want


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth.itch"
    command = [sys.executable, "-m", "itchflow.cli", "synth", "--symbols", "20", "--messages", "200000"]
    command += ["--seed", "7", "-o", str(path), "--no-progress"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    return path


@pytest.mark.parametrize("interval", INTERVALS)
def test_synthetic_feed_matches_the_reference(synthetic: Path, interval: str) -> None:
    want = run_reference(synthetic, interval)
    assert len({bar["symbol"] for bar in want["bars"]}) == 20
    assert run_cli(synthetic, interval) == want
