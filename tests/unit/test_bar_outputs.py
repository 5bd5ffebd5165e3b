"""The bars' ClickHouse rows (against the DDL, read back by the tests' own RowBinary reader) and
Redis commands (read back by the tests' RESP reader)."""

from __future__ import annotations

from itchflow.analytics.bar_stage import BarRevision
from itchflow.analytics.bars import Bar
from itchflow.sinks.bar_outputs import BAR_COLUMNS, bar_commands, bar_rows
from tests.unit.book_stage_support import DDL, ddl_columns, fields_of, parse_resp, read_rows

ANALYTICS_DDL = DDL.parent / "002_analytics.sql"
S = 1_000_000_000
DAY = 18_260  # 2019-12-30


def test_bar_columns_are_the_ddl_columns() -> None:
    assert ddl_columns(ANALYTICS_DDL)["bars"] == list(BAR_COLUMNS)


def test_rows_read_back_with_an_independent_reader() -> None:
    # 3 @ 100.0001 and 7 @ 100.0002: notional 10,000,017, vwap 1,000,001.7
    bar = Bar("AAPL", 60, 1_577_716_200 * S, 1_000_001, 1_000_002, 1_000_001, 1_000_002, 10, 10_000_017, 2)
    huge = Bar("BRK", 300, 1_577_716_200 * S, 4_294_967_295, 4_294_967_295, 4_294_967_295, 4_294_967_295,
               4_000_000_000, 4_294_967_295 * 4_000_000_000, 1)  # fmt: skip
    deleted = Bar("AAPL", 1, 1_577_716_201 * S, 0, 0, 0, 0, 0, 0, 0)
    rows = read_rows(
        "bars",
        bar_rows(
            [
                BarRevision("XNAS", DAY, bar, 0, False),
                BarRevision("XNAS", DAY, huge, 3, False),
                BarRevision("XNAS", DAY, deleted, 1, True),
            ]
        ),
        ANALYTICS_DDL,
    )
    assert rows[0] == {
        "venue": "XNAS",
        "trading_date": DAY,
        "symbol": "AAPL",
        "interval_s": 60,
        "window_start": 1_577_716_200 * S,
        "open": 1_000_001,
        "high": 1_000_002,
        "low": 1_000_001,
        "close": 1_000_002,
        "volume": 10,
        "notional": 10_000_017,
        "vwap": 1_000_001.7,
        "trades": 2,
        "revision": 0,
        "is_deleted": 0,
    }
    assert rows[1]["notional"] == 17_179_869_180_000_000_000  # beyond Int64: exact in Int128
    assert (rows[2]["revision"], rows[2]["is_deleted"], rows[2]["vwap"]) == (1, 1, 0.0)


def test_redis_commands_of_a_revision() -> None:
    bar = Bar("AAPL", 60, 1_577_716_200 * S, 100, 110, 90, 105, 10, 1_000, 2)
    latest = parse_resp(
        b"".join(bar_commands(BarRevision("XNAS", DAY, bar, 2, False), "itchflow", 500, True))
    )
    xadd, hset = latest
    # id: the window's end in ms, then size and revision
    assert xadd[:6] == ["XADD", "itchflow:bars:XNAS:AAPL", "MAXLEN", "~", "500", "1577716260000-60002"]
    assert fields_of(xadd, 6)["interval"] == "1m"
    assert hset[1] == "itchflow:bar:1m:XNAS:AAPL"
    expected = {"window_start": str(1_577_716_200 * S), "open": "100", "high": "110", "low": "90",
                "close": "105", "volume": "10", "vwap": "100.0", "trades": "2", "revision": "2",
                "trading_date": str(DAY)}  # fmt: skip
    assert fields_of(hset, 2) == expected
    assert {k: v for k, v in fields_of(xadd, 6).items() if k != "interval"} == expected
    older = parse_resp(b"".join(bar_commands(BarRevision("XNAS", DAY, bar, 3, False, False), "p", 0, False)))
    assert [c[0] for c in older] == ["XADD"]  # not the latest bar: the hash keeps the newer one
    assert older[0][2] == "1577716260000-60003"
