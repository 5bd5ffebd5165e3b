"""What the detectors emit: one :class:`Alert` per episode (a crossing, a stale stretch, a halt).

An episode is identified by ``(type, symbol, venues, start_ns)`` -- :attr:`Alert.alert_id` -- so the
same feed always gives the same ids and a sink can replace a version by a later one. A detector
may emit an episode twice: *open* (``end_ns`` None) as soon as it is certain, and *closed* when it
ends; the closed version is the final one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AlertType(StrEnum):
    """The kinds of episode the detectors report."""

    ARBITRAGE = "arbitrage"
    """a venue's bid at or above another venue's ask (locked or crossed across venues)"""
    STALE = "stale"
    """a symbol with no message on a venue for longer than the stale threshold while it trades"""
    HALT = "halt"
    """a trading halt (Stock Trading Action state ``H``, or ``Q``: quotation only) on a venue"""
    LULD_PAUSE = "luld_pause"
    """a Limit Up-Limit Down pause (Stock Trading Action state ``P``) on a venue"""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode. Times are event time (UTC epoch ns: midnight in New York + the ITCH timestamp);
    prices are ITCH ticks (10^-4 dollars), sizes shares."""

    type: AlertType
    symbol: str
    venues: tuple[str, ...]
    start_ns: int
    end_ns: int | None
    """None while the episode goes on (an open alert)"""
    severity: Severity
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        """Deterministic id of the episode: ``type:symbol:venue+venue:start_ns``."""
        return f"{self.type}:{self.symbol}:{'+'.join(self.venues)}:{self.start_ns}"

    @property
    def is_open(self) -> bool:
        return self.end_ns is None

    def to_json(self) -> dict[str, Any]:
        """The alert as ``itchflow detect --json`` prints it."""
        return {
            "type": str(self.type),
            "symbol": self.symbol,
            "venues": list(self.venues),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "severity": str(self.severity),
            "details": dict(self.details),
        }

    def sort_key(self) -> tuple[int, str, str, tuple[str, ...]]:
        return (self.start_ns, str(self.type), self.symbol, self.venues)
