"""The alerts' ClickHouse rows: the DDL's columns, read back by the tests' own RowBinary reader."""

from __future__ import annotations

import json

from itchflow.cep.alerts import Alert, AlertType, Severity
from itchflow.sinks.alert_outputs import ALERT_COLUMNS, alert_rows
from tests.unit.book_stage_support import DDL, ddl_columns, read_rows

ALERTS_DDL = DDL.parent / "003_alerts.sql"
S = 1_000_000_000
OPEN_2020_01_02 = 1_577_975_400 * S  # 09:30 in New York (UTC-5) on 2020-01-02, worked out by hand
DAY_2020_01_02 = 18_263  # days since 1970-01-01


def test_columns_are_the_ddl_columns() -> None:
    assert ddl_columns(ALERTS_DDL)["alerts"] == list(ALERT_COLUMNS)


def test_an_open_and_a_closed_version_read_back() -> None:
    details = {"kind": "crossed", "bid": 1_000_100, "ask": 1_000_000, "bid_shares": 300, "ask_shares": 100}
    opened = Alert(
        AlertType.ARBITRAGE, "AAPL", ("BX", "NASDAQ"), OPEN_2020_01_02 + 5, None, Severity.CRITICAL, details
    )
    closed = Alert(
        AlertType.ARBITRAGE,
        "AAPL",
        ("BX", "NASDAQ"),
        OPEN_2020_01_02 + 5,
        OPEN_2020_01_02 + S,
        Severity.CRITICAL,
        details,
    )
    first, second = read_rows("alerts", alert_rows([opened, closed]), ALERTS_DDL)
    assert first == {
        "trading_date": DAY_2020_01_02,
        "symbol": "AAPL",
        "type": "arbitrage",
        "start": OPEN_2020_01_02 + 5,
        "alert_id": f"arbitrage:AAPL:BX+NASDAQ:{OPEN_2020_01_02 + 5}",
        "venues": ["BX", "NASDAQ"],
        "end": OPEN_2020_01_02 + 5,
        "is_open": 1,
        "severity": "critical",
        "details": json.dumps(details, sort_keys=True, separators=(",", ":")),
        "revision": 0,
    }
    assert (second["end"], second["is_open"], second["revision"]) == (OPEN_2020_01_02 + S, 0, 1)
    assert json.loads(second["details"]) == details


def test_the_trading_date_is_the_new_york_date_of_the_start() -> None:
    late_evening = OPEN_2020_01_02 + 14 * 3600 * S  # 23:30 in New York, 04:30 UTC the next day
    [row] = read_rows(
        "alerts", alert_rows([Alert(AlertType.HALT, "X", ("A",), late_evening, None, Severity.WARNING)])
    )
    assert row["trading_date"] == DAY_2020_01_02
