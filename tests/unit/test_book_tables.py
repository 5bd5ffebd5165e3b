"""The order book's ClickHouse tables: the one Python definition of their columns against the DDL,
and rows read back with the independent RowBinary reader of ``book_stage_support``."""

from __future__ import annotations

import pytest

from itchflow.sinks.book_tables import TABLE_COLUMNS, depth_row, row_key
from tests.unit.book_stage_support import DDL, ddl_columns, read_rows


def test_table_columns_are_the_ddl_columns_of_every_table() -> None:
    """Names, types and order of every table of ``schemas/clickhouse/001_book.sql`` (parsed by the
    test support, not by the code under test), and no table on one side only."""
    ddl = ddl_columns(DDL)
    assert set(ddl) == {"top_of_book", "depth_snapshots", "trades", "broken_trades", "book_status"}
    assert {table: list(columns) for table, columns in TABLE_COLUMNS.items()} == ddl


@pytest.mark.parametrize(("bids", "asks"), [(0, 0), (3, 10), (130, 2)])
def test_depth_rows_of_any_length_read_back_with_an_independent_reader(bids: int, asks: int) -> None:
    depth = [
        [1_000_000 - i for i in range(bids)],
        [100 + i for i in range(bids)],
        [1 + i % 3 for i in range(bids)],
        [1_000_100 + i for i in range(asks)],
        [200 + i for i in range(asks)],
        [2 + i % 5 for i in range(asks)],
    ]
    (row,) = read_rows(
        "depth_snapshots", depth_row(row_key("XNAS", 20_454, "AAPL"), 42, "change", 123_456_789, depth)
    )
    assert row == {
        "venue": "XNAS",
        "trading_date": 20_454,  # 2026-01-01
        "symbol": "AAPL",
        "seq": 42,
        "reason": "change",
        "ts_event": 123_456_789,
        "bid_prices": depth[0],
        "bid_shares": depth[1],
        "bid_orders": depth[2],
        "ask_prices": depth[3],
        "ask_shares": depth[4],
        "ask_orders": depth[5],
    }
