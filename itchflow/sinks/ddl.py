"""Create the ClickHouse tables from ``schemas/clickhouse/*.sql`` (idempotent: IF NOT EXISTS)."""

from __future__ import annotations

import os
from pathlib import Path

from itchflow.config import PROJECT_ROOT


def ddl_dir() -> Path:
    override = os.environ.get("ITCHFLOW_SCHEMAS_DIR")
    return (Path(override) if override else PROJECT_ROOT / "schemas") / "clickhouse"


def ddl_statements(folder: Path | None = None) -> list[str]:
    """Every statement of every ``.sql`` file, in file-name order; ``--`` comments dropped."""
    statements = []
    for path in sorted((folder or ddl_dir()).glob("*.sql")):
        lines = [line for line in path.read_text().splitlines() if not line.strip().startswith("--")]
        statements += [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
    return statements


def apply_ddl(client, database: str | None = None) -> int:
    """Run the DDL through a clickhouse-connect client; returns the number of statements."""
    statements = ddl_statements()
    if database:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for statement in statements:
        client.command(statement)
    return len(statements)
