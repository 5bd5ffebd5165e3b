"""The RowBinary of the ``ofi`` and ``liquidity`` rows: the C encoders (``ofi_rowbinary``,
``liquidity_rowbinary`` of itchflow/analytics/_cflow.c) write byte for byte what the Python encoders
write -- hand-made rows at the edges of every column (None, negative flows, NaN and infinities,
non-ASCII and long names, each integer column's extremes) and random rows -- and read back with the
tests' own RowBinary reader; rows the C code does not take are encoded (or refused) by Python with
Python's result; ``ITCHFLOW_NATIVE=python`` runs the Python encoders alone. The Redis hashes of the
latest window per key read back with the tests' own RESP reader."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow import extensions
from itchflow.analytics.liquidity import LiquidityRow
from itchflow.analytics.ofi import OfiRow
from itchflow.extensions import native_function
from itchflow.sinks import flow_outputs
from itchflow.sinks.flow_outputs import (
    flow_commands,
    liquidity_rows,
    ofi_rows,
    python_liquidity_rows,
    python_ofi_rows,
)
from tests.unit.book_stage_support import DDL, parse_resp, read_rows

ANALYTICS_DDL = DDL.parent / "002_analytics.sql"
S = 1_000_000_000
I64 = (-(2**63), 2**63 - 1)
U64 = (0, 2**64 - 1)
U32 = (0, 2**32 - 1)
U16 = (0, 2**16 - 1)
LONG = "V" * 200  # a 2-byte LEB128 length
EXTREMES = (U64[1], U16[1], U32[1], U32[1])  # depth_ns .. depth_updates at their largest


@pytest.fixture(autouse=True)
def _built() -> None:
    if not extensions.FLOW.target.exists():
        pytest.fail(f"{extensions.FLOW.target.name} not built: run `./dev setup` (needs gcc)")


def c_encoder(name: str) -> Callable[[list[Any]], bytes]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ITCHFLOW_NATIVE", "native")
        encode = native_function("itchflow.analytics._cflow", name)
    assert encode is not None
    return encode  # type: ignore[no-any-return]


def c_ofi(rows: list[Any]) -> bytes:
    return c_encoder("ofi_rowbinary")(rows)


def c_liquidity(rows: list[Any]) -> bytes:
    return c_encoder("liquidity_rowbinary")(rows)


OFI = [
    OfiRow("XNAS", 18_260, "AAPL", 1, 5 * S, -300, 200, -500, 7),
    OfiRow("XNAS", 18_260, "É", 60, -5 * S, 0, 0, 0, 0),
    OfiRow(LONG, U16[1], "株式", U32[1], I64[1], I64[0], I64[1], I64[0], U32[1]),
    OfiRow("", 0, "", 0, I64[0], I64[1], -1, 1, 1),
    OfiRow("XNAS", 18_260, "🚀" * 70, 1, 0, 10**12, 10**12, 0, 2**31),  # 280 UTF-8 bytes
]
LIQUIDITY = [
    LiquidityRow("XNAS", 18_260, "AAPL", 1, 5 * S, 100.5, 9.95, S, None, 40.0, None, 0, 10, 3, 0),
    LiquidityRow("XNAS", 18_260, "É", 1, 6 * S, None, None, 0, None, None, None, 0, 0, 0, 0),
    LiquidityRow(LONG, U16[1], "株式", U32[1], I64[1], 1e308, 5e-324, U64[1], -0.0, 0.0, -1.0, *EXTREMES),
    LiquidityRow("", 0, "", 0, I64[0], math.inf, -math.inf, 0, 2.0**53 + 1, 1 / 3, 1.0, 1, 1, 1, 1),
    LiquidityRow("XNAS", 18_260, "ZZ", 5, 0, 3, -7, 0, 2**70, 0, 1, 0, 10, 0, 0),  # ints as struct packs them
]


def test_the_c_encoders_write_what_the_python_encoders_write() -> None:
    assert c_ofi(OFI) == python_ofi_rows(OFI)
    assert c_liquidity(LIQUIDITY) == python_liquidity_rows(LIQUIDITY)
    for row in OFI:
        assert c_ofi([row]) == python_ofi_rows([row])
    for row in LIQUIDITY:
        assert c_liquidity([row]) == python_liquidity_rows([row])
    assert c_ofi([]) == b"" == c_liquidity(())


def test_the_c_bytes_read_back_with_an_independent_reader() -> None:
    assert read_rows("ofi", c_ofi(OFI[:3]), ANALYTICS_DDL) == [
        {"venue": "XNAS", "trading_date": 18_260, "symbol": "AAPL", "interval_s": 1, "window_start": 5 * S,
         "ofi": -300, "bid_flow": 200, "ask_flow": -500, "updates": 7},
        {"venue": "XNAS", "trading_date": 18_260, "symbol": "É", "interval_s": 60, "window_start": -5 * S,
         "ofi": 0, "bid_flow": 0, "ask_flow": 0, "updates": 0},
        {"venue": LONG, "trading_date": U16[1], "symbol": "株式", "interval_s": U32[1], "window_start": I64[1],
         "ofi": I64[0], "bid_flow": I64[1], "ask_flow": I64[0], "updates": U32[1]},
    ]  # fmt: skip
    first, second, third = read_rows("liquidity", c_liquidity(LIQUIDITY[:3]), ANALYTICS_DDL)
    assert first == {
        "venue": "XNAS", "trading_date": 18_260, "symbol": "AAPL", "interval_s": 1, "window_start": 5 * S,
        "spread": 100.5, "spread_bps": 9.95, "two_sided_ns": S, "bid_depth": None, "ask_depth": 40.0,
        "depth_imbalance": None, "depth_ns": 0, "depth_levels": 10, "updates": 3, "depth_updates": 0,
    }  # fmt: skip
    columns = ("spread", "spread_bps", "bid_depth", "ask_depth", "depth_imbalance")
    assert [second[c] for c in columns] == [None] * 5
    assert third["venue"] == LONG and third["symbol"] == "株式" and third["two_sided_ns"] == U64[1]
    assert (third["spread"], third["spread_bps"], third["depth_imbalance"]) == (1e308, 5e-324, -1.0)
    assert math.copysign(1.0, third["bid_depth"]) == -1.0  # -0.0 kept


def test_a_liquidity_row_byte_by_byte() -> None:
    row = LiquidityRow("XNAS", 18_260, "É", 1, -2, None, 0.5, 3, None, None, None, 4, 10, 5, 6)
    expected = (
        b"\x04XNAS" + (18_260).to_bytes(2, "little") + b"\x02\xc3\x89"
        + (1).to_bytes(4, "little") + (-2).to_bytes(8, "little", signed=True)
        + b"\x01" + b"\x00" + bytes.fromhex("000000000000e03f")  # 0.5
        + (3).to_bytes(8, "little") + b"\x01\x01\x01" + (4).to_bytes(8, "little")
        + (10).to_bytes(2, "little") + (5).to_bytes(4, "little") + (6).to_bytes(4, "little")
    )  # fmt: skip
    assert c_liquidity([row]) == expected == python_liquidity_rows([row])


def test_nan_keeps_its_bits() -> None:
    nan = struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0]  # a NaN with a payload
    row = LIQUIDITY[0]._replace(spread=nan, ask_depth=math.nan)
    assert c_liquidity([row]) == python_liquidity_rows([row])


names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=150) | st.binary(max_size=150)


def ints(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    return st.integers(*bounds) | st.sampled_from(bounds)


nullable = st.none() | st.floats() | st.integers(-(2**80), 2**80)
ofi_row = st.builds(
    OfiRow, names, ints(U16), names, ints(U32), ints(I64), ints(I64), ints(I64), ints(I64), ints(U32)
)
liquidity_row = st.builds(
    LiquidityRow, names, ints(U16), names, ints(U32), ints(I64), nullable, nullable, ints(U64), nullable,
    nullable, nullable, ints(U64), ints(U16), ints(U32), ints(U32),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(ofi_row, max_size=20), st.lists(liquidity_row, max_size=20))
def test_random_rows_encode_alike(ofi: list[OfiRow], liquidity: list[LiquidityRow]) -> None:
    assert c_ofi(ofi) == python_ofi_rows(ofi)
    assert c_liquidity(liquidity) == python_liquidity_rows(liquidity)
    assert ofi_rows(iter(ofi)) == python_ofi_rows(ofi)  # any iterable
    assert liquidity_rows(iter(liquidity)) == python_liquidity_rows(liquidity)


@pytest.mark.parametrize(
    "row",
    [
        OFI[0]._replace(trading_date=-1),
        OFI[0]._replace(trading_date=2**16),
        OFI[0]._replace(interval_s=2**32),
        OFI[0]._replace(window_start_ns=2**63),
        OFI[0]._replace(ofi=-(2**63) - 1),
        OFI[0]._replace(updates=-1),
        OFI[0]._replace(ofi=1.0),
        OFI[0]._replace(symbol=None),
        OFI[0]._replace(symbol="\ud800"),  # a lone surrogate: no UTF-8
    ],
)
def test_ofi_rows_the_c_code_does_not_take_get_python_s_error(row: OfiRow) -> None:
    with pytest.raises((TypeError, ValueError, OverflowError)):
        c_ofi([OFI[1], row])
    with pytest.raises(Exception) as python:
        python_ofi_rows([OFI[1], row])
    with pytest.raises(type(python.value)):
        ofi_rows([OFI[1], row])


@pytest.mark.parametrize(
    "row",
    [
        LIQUIDITY[0]._replace(two_sided_ns=-1),
        LIQUIDITY[0]._replace(depth_ns=2**64),
        LIQUIDITY[0]._replace(depth_levels=2**16),
        LIQUIDITY[0]._replace(depth_updates=2**32),
        LIQUIDITY[0]._replace(spread="1.0"),
        LIQUIDITY[0]._replace(spread_bps=2**1024),
    ],
)
def test_liquidity_rows_the_c_code_does_not_take_get_python_s_error(row: LiquidityRow) -> None:
    with pytest.raises((TypeError, ValueError, OverflowError)):
        c_liquidity([row])
    with pytest.raises(Exception) as python:
        python_liquidity_rows([row])
    with pytest.raises(type(python.value)):
        liquidity_rows([row])


def test_rows_that_are_not_tuples_are_encoded_by_python() -> None:
    plain = SimpleNamespace(**OFI[0]._asdict())
    with pytest.raises(TypeError):
        c_ofi([plain])
    assert ofi_rows([OFI[1], plain]) == python_ofi_rows(OFI[1:2]) + python_ofi_rows(OFI[:1])


def test_itchflow_native_python_runs_the_python_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(name: str, encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
        def run(rows: Any) -> bytes:
            calls.append(name)
            return encode(rows)

        return run

    monkeypatch.setattr(flow_outputs, "python_ofi_rows", spy("ofi", python_ofi_rows))
    monkeypatch.setattr(flow_outputs, "python_liquidity_rows", spy("liquidity", python_liquidity_rows))
    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    assert ofi_rows(OFI) == python_ofi_rows(OFI)
    assert liquidity_rows(LIQUIDITY) == python_liquidity_rows(LIQUIDITY)
    assert calls == []
    monkeypatch.setenv("ITCHFLOW_NATIVE", "python")
    assert ofi_rows(OFI) == python_ofi_rows(OFI)
    assert liquidity_rows(LIQUIDITY) == python_liquidity_rows(LIQUIDITY)
    assert calls == ["ofi", "liquidity"]


def expected_hashes(rows: list[Any], kind: str, fields: dict[str, str]) -> list[list[str]]:
    """``HSET`` of the latest window of each (venue, symbol, interval), in the order the keys first
    come (an equal later window does not replace the first)."""
    latest: dict[tuple[str, str, int], Any] = {}
    for row in rows:
        key = (row.venue, row.symbol, row.interval_s)
        if key not in latest or latest[key].window_start_ns < row.window_start_ns:
            latest[key] = row
    names = {1: "1s", 60: "1m", 300: "5m"}
    commands = []
    for (venue, symbol, interval_s), row in latest.items():
        command = ["HSET", f"pre:{kind}:{names.get(interval_s, f'{interval_s}s')}:{venue}:{symbol}"]
        for field, attribute in fields.items():
            value = getattr(row, attribute)
            command += [field, "" if value is None else str(value) if isinstance(value, int) else repr(value)]
        commands.append(command)
    return commands


OFI_HASH = {"window_start": "window_start_ns", "ofi": "ofi", "bid_flow": "bid_flow", "ask_flow": "ask_flow",
            "updates": "updates", "trading_date": "trading_date"}  # fmt: skip
LIQUIDITY_HASH = {"window_start": "window_start_ns", "spread": "spread", "spread_bps": "spread_bps",
                  "bid_depth": "bid_depth", "ask_depth": "ask_depth", "depth_imbalance": "depth_imbalance",
                  "depth_levels": "depth_levels", "trading_date": "trading_date"}  # fmt: skip
text_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=4)
small = st.sampled_from([1, 60, 300, 7])
ofi_hash_row = st.builds(
    OfiRow, st.sampled_from(["XNAS", "É"]), ints(U16), text_names, small, st.integers(0, 3), ints(I64), ints(I64),
    ints(I64), ints(U32),
)  # fmt: skip
liquidity_hash_row = st.builds(
    LiquidityRow, st.sampled_from(["XNAS", "É"]), ints(U16), text_names, small, st.integers(0, 3),
    st.none() | st.floats(), st.none() | st.floats(), ints(U64), st.none() | st.floats(), st.none() | st.floats(),
    st.none() | st.floats(), ints(U64), ints(U16), ints(U32), ints(U32),
)  # fmt: skip


def test_hashes_by_hand() -> None:
    rows = [OFI[0], OFI[1], OFI[0]._replace(window_start_ns=4 * S, ofi=1), OFI[1]._replace(window_start_ns=0)]
    (first, second) = parse_resp(b"".join(flow_commands(rows, [LIQUIDITY[1]], "pre")[:2]))
    assert first == ["HSET", "pre:ofi:1s:XNAS:AAPL", "window_start", "5000000000", "ofi", "-300", "bid_flow", "200",
                     "ask_flow", "-500", "updates", "7", "trading_date", "18260"]  # fmt: skip
    assert second[1] == "pre:ofi:1m:XNAS:É" and second[3] == "0"  # window 0 is after -5 s
    (liquidity,) = parse_resp(flow_commands([], [LIQUIDITY[0], LIQUIDITY[1]], "pre")[1])
    assert liquidity == ["HSET", "pre:liquidity:1s:XNAS:É", "window_start", "6000000000", "spread", "",
                         "spread_bps", "", "bid_depth", "", "ask_depth", "", "depth_imbalance", "", "depth_levels",
                         "0", "trading_date", "18260"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(ofi_hash_row, max_size=30), st.lists(liquidity_hash_row, max_size=30))
def test_random_hashes_read_back(ofi: list[OfiRow], liquidity: list[LiquidityRow]) -> None:
    commands = flow_commands(ofi, liquidity, "pre")
    assert parse_resp(b"".join(commands)) == expected_hashes(ofi, "ofi", OFI_HASH) + expected_hashes(
        liquidity, "liquidity", LIQUIDITY_HASH
    )
    assert all(len(parse_resp(command)) == 1 for command in commands)
