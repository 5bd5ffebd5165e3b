"""Create the ClickHouse tables from ``schemas/clickhouse/*.sql`` (idempotent: IF NOT EXISTS)."""

from __future__ import annotations

import os
import re
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


def apply_ddl(client, database: str | None = None) -> int:
    """Run the DDL through a clickhouse-connect client; returns the number of statements."""
    statements = ddl_statements()
    if database:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for statement in statements:
        client.command(statement)
    return len(statements)


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
