"""The bursts' ClickHouse rows (against the DDL, read back by the tests' own RowBinary reader) and
their alert stream entries (read back by the tests' RESP reader)."""

from __future__ import annotations

from itchflow.analytics.bursts import Burst
from itchflow.sinks.burst_outputs import BURST_COLUMNS, burst_alert_commands, burst_rows
from tests.unit.book_stage_support import DDL, ddl_columns, fields_of, parse_resp, read_rows

ANALYTICS_DDL = DDL.parent / "002_analytics.sql"
S = 1_000_000_000
T0 = 1_577_716_200 * S


def test_columns_are_the_ddl_columns() -> None:
    assert ddl_columns(ANALYTICS_DDL)["bursts"] == list(BURST_COLUMNS)


def test_rows_read_back() -> None:
    # 30 @ 100.0000 and 10 @ 100.0004 within 200 ms
    burst = Burst("XNAS", 18_260, "AAPL", T0, T0 + S // 5, 2, 40, 40_000_040, 1_000_001.0, True, 3, False)
    gone = burst._replace(notional=0, shares=0, prints=0, vwap=None, flagged=False, revision=4, deleted=True)
    rows = read_rows("bursts", burst_rows([burst, gone]), ANALYTICS_DDL)
    assert rows[0] == {
        "venue": "XNAS", "trading_date": 18_260, "symbol": "AAPL", "start": T0, "end": T0 + S // 5,
        "prints": 2, "shares": 40, "notional": 40_000_040, "vwap": 1_000_001.0, "flagged": 1, "revision": 3,
        "is_deleted": 0,
    }  # fmt: skip
    assert (rows[1]["revision"], rows[1]["is_deleted"], rows[1]["vwap"]) == (4, 1, 0.0)


def test_only_flagged_bursts_are_alerts_with_replay_safe_ids() -> None:
    flagged = Burst("XNAS", 18_260, "AAPL", T0 + 7, T0 + S, 30, 900, 90_000_000, 100_000.0, True, 2, False)
    quiet = flagged._replace(symbol="MSFT", flagged=False)
    deleted = flagged._replace(symbol="IBM", deleted=True)
    (command,) = parse_resp(b"".join(burst_alert_commands([flagged, quiet, deleted], "itchflow", 1000)))
    assert command[:6] == [
        "XADD",
        "itchflow:burst-alerts:XNAS:AAPL",
        "MAXLEN",
        "~",
        "1000",
        f"{T0 // 1_000_000}-2",
    ]
    fields = fields_of(command, 6)
    assert (fields["type"], fields["prints"], fields["start"]) == ("burst", "30", str(T0 + 7))
