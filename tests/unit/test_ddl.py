"""The ClickHouse DDL splits into whole statements, and every table dedupes on a deterministic key."""

from itchflow.sinks.ddl import ddl_statements


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
