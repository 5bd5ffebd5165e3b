"""Event time: ITCH timestamps (ns since midnight, New York) to epoch nanoseconds (UTC)."""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
"""ITCH timestamps count from midnight Eastern Time (EST or EDT, whichever is in force)."""

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_DAY = 86_400 * NANOS_PER_SECOND
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=256)
def midnight_epoch_ns(trading_date: date) -> int:
    """UTC epoch nanoseconds of midnight America/New_York at the start of ``trading_date``.

    Exact integer arithmetic: the UTC offset in force at local midnight (-5 h in winter, -4 h in
    summer, from the tz database) is subtracted from the date's UTC midnight. US DST changes happen
    at 02:00 local, so local midnight is never ambiguous or skipped.
    """
    offset = datetime.combine(trading_date, time(0), tzinfo=NEW_YORK).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    offset_seconds = offset.days * 86_400 + offset.seconds
    days = trading_date.toordinal() - _EPOCH_ORDINAL
    return (days * 86_400 - offset_seconds) * NANOS_PER_SECOND


def ts_event_ns(trading_date: date, itch_timestamp: int) -> int:
    """Event time in UTC epoch nanoseconds of an ITCH ``timestamp`` on ``trading_date``.

    ITCH counts elapsed nanoseconds since local midnight; on the two DST-change Sundays (no
    trading) this is elapsed time, not wall-clock time.
    """
    return midnight_epoch_ns(trading_date) + itch_timestamp
