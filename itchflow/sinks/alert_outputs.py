"""The alerts' ClickHouse rows and Redis commands.

* ClickHouse ``alerts`` (``schemas/clickhouse/003_alerts.sql``; :data:`ALERT_COLUMNS` is its one
  Python definition, checked against the DDL by a test): one row per emitted version of an episode,
  revision 0 open and 1 closed.
* Redis, under the prefix, from the :class:`~itchflow.cep.sequencer.AlertSequencer`'s ordered
  versions: ``{prefix}:alerts``, a stream of every version, and ``{prefix}:alerts:{type}``, one per
  type, both ``MAXLEN ~`` capped, with the sequencer's deterministic ids (a restored job's entries
  are refused as duplicates); ``{prefix}:alert-state:{symbol}``, a hash of the symbol's latest version
  per ``{type}:{venues}`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from itchflow.avro.bundle import days_since_epoch
from itchflow.cep.alerts import Alert
from itchflow.cep.sequencer import SequencedAlert
from itchflow.normalize.clock import NEW_YORK
from itchflow.sinks.resp import hset, xadd
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
            details_json(alert),
            int(not alert.is_open),
        )
        for alert in alerts
    )


def details_json(alert: Alert) -> str:
    """The alert's details as one JSON object (keys sorted)."""
    return json.dumps(dict(alert.details), sort_keys=True, separators=(",", ":"))


def alert_commands(entries: Sequence[SequencedAlert], prefix: str, maxlen: int) -> list[bytes]:
    """``XADD`` of each version to the stream of every alert and to its type's stream, and ``HSET`` of
    the symbol's latest state."""
    commands = []
    for stream_id, type_stream_id, alert in entries:
        fields = (
            ("type", str(alert.type)),
            ("symbol", alert.symbol),
            ("venues", "+".join(alert.venues)),
            ("start", alert.start_ns),
            ("end", "" if alert.end_ns is None else alert.end_ns),
            ("open", int(alert.is_open)),
            ("severity", str(alert.severity)),
            ("details", details_json(alert)),
        )
        commands.append(xadd(f"{prefix}:alerts", stream_id, fields, maxlen or None))
        commands.append(xadd(f"{prefix}:alerts:{alert.type}", type_stream_id, fields, maxlen or None))
        state = json.dumps(alert.to_json(), sort_keys=True, separators=(",", ":"))
        commands.append(
            hset(f"{prefix}:alert-state:{alert.symbol}", ((f"{alert.type}:{'+'.join(alert.venues)}", state),))
        )
    return commands
