"""The alerts' ClickHouse rows (``schemas/clickhouse/003_alerts.sql``; :data:`ALERT_COLUMNS` is its
one Python definition, checked against the DDL by a test): one row per emitted version of an
episode, revision 0 open and 1 closed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from itchflow.avro.bundle import days_since_epoch
from itchflow.cep.alerts import Alert
from itchflow.normalize.clock import NEW_YORK
from itchflow.sinks.rowbinary import RowBinaryEncoder

ALERTS = "alerts"
ALERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trading_date", "Date"),
    ("symbol", "LowCardinality(String)"),
    ("type", "LowCardinality(String)"),
    ("start", "DateTime64(9, 'UTC')"),
    ("alert_id", "String"),
    ("venues", "Array(String)"),
    ("end", "DateTime64(9, 'UTC')"),
    ("is_open", "UInt8"),
    ("severity", "LowCardinality(String)"),
    ("details", "String"),
    ("revision", "UInt32"),
)
_ENCODER = RowBinaryEncoder(ALERT_COLUMNS)


def trading_date_of(ts_ns: int) -> int:
    """The trading date (days since 1970-01-01) of an event time: its date in New York."""
    return days_since_epoch(datetime.fromtimestamp(ts_ns / 1e9, NEW_YORK).date())


def alert_rows(alerts: Iterable[Alert]) -> bytes:
    """RowBinary rows of ``alerts`` (columns :data:`ALERT_COLUMNS`)."""
    return _ENCODER.encode(
        (
            trading_date_of(alert.start_ns),
            alert.symbol,
            str(alert.type),
            alert.start_ns,
            alert.alert_id,
            list(alert.venues),
            alert.start_ns if alert.end_ns is None else alert.end_ns,
            int(alert.is_open),
            str(alert.severity),
            json.dumps(dict(alert.details), sort_keys=True, separators=(",", ":")),
            int(not alert.is_open),
        )
        for alert in alerts
    )
