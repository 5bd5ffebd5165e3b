"""The ClickHouse DDL splits into whole statements, and every table dedupes on a deterministic key."""

from itchflow.sinks.ddl import ddl_statements, table_columns


def test_statements_split_at_line_end_semicolons_only(tmp_path) -> None:
    (tmp_path / "001_x.sql").write_text(
        "-- a comment; with a semicolon\n"
        "CREATE TABLE a (x UInt8 COMMENT 'one; two') ENGINE = Memory;\n"
        "CREATE TABLE b (y UInt8) ENGINE = Memory;\n"
    )
    assert ddl_statements(tmp_path) == [
        "CREATE TABLE a (x UInt8 COMMENT 'one; two') ENGINE = Memory",
        "CREATE TABLE b (y UInt8) ENGINE = Memory",
    ]


def test_project_tables_are_replacing_merge_trees() -> None:
    statements = ddl_statements()
    tables = [s for s in statements if s.startswith("CREATE TABLE")]
    assert {"top_of_book", "depth_snapshots", "trades", "book_status"} <= {s.split()[5] for s in tables}
    assert all("ReplacingMergeTree" in s for s in tables)


def test_a_create_statements_columns_are_read_one_per_line() -> None:
    statement = (
        "CREATE TABLE IF NOT EXISTS t\n(\n    a UInt8 COMMENT 'x, y',\n    `b` Array(Int64),\n"
        "    c DateTime64(9, 'UTC')\n)\nENGINE = ReplacingMergeTree\nORDER BY (a, c)"
    )
    assert table_columns(statement) == ("t", ["a", "b", "c"])
    assert table_columns("CREATE DATABASE IF NOT EXISTS d") is None
    named = dict(filter(None, map(table_columns, ddl_statements())))
    assert named["trades"][:4] == ["venue", "trading_date", "symbol", "seq"]
