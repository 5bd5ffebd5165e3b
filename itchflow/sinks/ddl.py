"""Create the ClickHouse tables from ``schemas/clickhouse/*.sql`` (idempotent: IF NOT EXISTS).

A table that exists with other columns than its ``CREATE TABLE`` (made by an earlier release, e.g.
the book tables before ``trading_date`` joined their keys) is renamed aside to
``<table>_superseded_<n>`` -- its rows kept, nothing dropped -- and created anew; the rename is
reported, so the user can copy what they need from it or drop it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from itchflow.config import PROJECT_ROOT


def ddl_dir() -> Path:
    override = os.environ.get("ITCHFLOW_SCHEMAS_DIR")
    return (Path(override) if override else PROJECT_ROOT / "schemas") / "clickhouse"


def ddl_statements(folder: Path | None = None) -> list[str]:
    """Every statement of every ``.sql`` file, in file-name order; ``--`` comment lines dropped."""
    statements = []
    for path in sorted((folder or ddl_dir()).glob("*.sql")):
        lines = [line for line in path.read_text().splitlines() if not line.strip().startswith("--")]
        # a statement ends with ';' at the end of a line (comments may hold ';')
        text = "\n".join(lines)
        statements += [s.strip() for s in re.split(r";[ \t]*$", text, flags=re.MULTILINE) if s.strip()]
    return statements


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+`?(\w+)`?\s*\((.*)\)\s*ENGINE", re.DOTALL)
_COLUMN = re.compile(r"^\s*`?(\w+)`?\s+\S", re.MULTILINE)


def table_columns(statement: str) -> tuple[str, list[str]] | None:
    """``(table, column names in order)`` of a ``CREATE TABLE IF NOT EXISTS`` statement written one
    column per line (as the project's DDL is), else None."""
    match = _CREATE.search(statement)
    if match is None:
        return None
    body = match.group(2)
    # one column per line: its name is the line's first word (lines of INDEX/PROJECTION skipped)
    names = [
        name for name in _COLUMN.findall(body) if name.upper() not in {"INDEX", "PROJECTION", "CONSTRAINT"}
    ]
    return match.group(1), names


def apply_ddl(client, database: str | None = None, log: Callable[[str], None] = print) -> int:
    """Run the DDL through a clickhouse-connect client; returns the number of statements. Tables of
    an earlier layout are renamed aside first (see the module docstring), each rename ``log``-ged."""
    statements = ddl_statements()
    if database:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for statement in statements:
        wanted = table_columns(statement)
        if wanted is not None:
            _rename_if_superseded(client, *wanted, log=log)
        client.command(statement)
    return len(statements)


def _rename_if_superseded(client, table: str, columns: list[str], log: Callable[[str], None]) -> None:
    query = "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position"
    existing = [row[0] for row in client.query(query, parameters={"t": table}).result_rows]
    if not existing or existing == columns:
        return
    taken = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {p:String})",
            parameters={"p": f"{table}_superseded_"},
        ).result_rows
    }
    aside = next(
        f"{table}_superseded_{n}" for n in range(1, len(taken) + 2) if f"{table}_superseded_{n}" not in taken
    )
    client.command(f"RENAME TABLE `{table}` TO `{aside}`")
    log(
        f"ClickHouse table {table} had the columns of an earlier release ({', '.join(existing)}): "
        f"renamed to {aside} (its rows are kept; drop it when you no longer need them) and created anew"
    )


def create_tables(
    url: str, user: str | None = None, password_env: str = "ITCHFLOW_CLICKHOUSE_PASSWORD"
) -> int:
    """Run the DDL against the ClickHouse server at ``url`` (HTTP); the password comes from the
    environment variable ``password_env``. Idempotent; returns the number of statements."""
    from urllib.parse import urlparse

    import clickhouse_connect

    parsed = urlparse(url)
    client = clickhouse_connect.get_client(
        host=parsed.hostname,
        port=parsed.port or 8123,
        username=user or "default",
        password=os.environ.get(password_env, ""),
    )
    try:
        return apply_ddl(client)
    finally:
        client.close()
