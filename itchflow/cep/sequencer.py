"""Every key's alerts in one deterministic order, for the Redis streams.

The detectors run per Flink key, in parallel; a Redis stream takes entries only in increasing id
order. :class:`AlertSequencer` (one task, fed by every key) holds each alert version until event
time has passed the moment it was emitted (:func:`emitted_at`: when it became certain, or ended),
then releases them sorted by (that moment, alert id, version) and numbers them ``<ms>-<n>``: the
same feed always gives the same ids, so the entries a restored job writes again are refused by Redis
as duplicates, never added twice. A version that comes after its millisecond was released (late) is
counted and left out of the streams (the ``alerts`` table has it).

A detector emits a version before the watermark passes its moment (the key releases events and
fires deadlines below the watermark before Flink forwards it), so by the time this task's watermark
-- the least of every key's -- is past a millisecond, every version of it has arrived.
"""

from __future__ import annotations

import heapq
import json
import pickle
from typing import NamedTuple

from itchflow.cep.alerts import Alert, AlertType, Severity
from itchflow.cep.detectors import DetectorConfig

STATE_VERSION = 1
NANOS_PER_MS = 1_000_000


def emitted_at(alert: Alert, config: DetectorConfig) -> int:
    """The event time (ns) at which the detectors emit ``alert``: its end once closed; while open,
    when it became certain (a halt at its start, a stale stretch once past the threshold, a crossing
    once it lasted the minimum)."""
    if alert.end_ns is not None:
        return alert.end_ns
    if alert.type is AlertType.STALE:
        return alert.start_ns + config.stale_after_ns
    if alert.type is AlertType.ARBITRAGE:
        return alert.start_ns + config.arbitrage_min_ns
    return alert.start_ns


class SequencedAlert(NamedTuple):
    """An alert version with its entry ids: in the stream of every alert and in its type's stream."""

    stream_id: str
    type_stream_id: str
    alert: Alert


def alert_json(alert: Alert) -> str:
    """The alert as the job carries it to the sequencer (:func:`alert_from_json` reads it back)."""
    return json.dumps(alert.to_json(), sort_keys=True, separators=(",", ":"))


def alert_from_json(text: str) -> Alert:
    data = json.loads(text)
    return Alert(
        AlertType(data["type"]),
        data["symbol"],
        tuple(data["venues"]),
        data["start_ns"],
        data["end_ns"],
        Severity(data["severity"]),
        data["details"],
    )


class AlertSequencer:
    """See the module docstring."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, str, int, str]] = []  # (at ns, alert id, version, alert json)
        self._released_ms = -1  # every millisecond up to this one went out
        self._last: dict[str, tuple[int, int]] = {}  # stream ("" for all, else the type) -> (ms, n)
        self.late = 0

    def add(self, at_ns: int, alert: str) -> None:
        """One alert version (:func:`alert_json`) emitted at ``at_ns`` (:func:`emitted_at`)."""
        if at_ns // NANOS_PER_MS <= self._released_ms:
            self.late += 1
            return
        parsed = alert_from_json(alert)
        heapq.heappush(self._pending, (at_ns, parsed.alert_id, int(not parsed.is_open), alert))

    def release(self, watermark_ms: int) -> list[SequencedAlert]:
        """The versions of every millisecond before ``watermark_ms``, in order, with their ids."""
        out: list[SequencedAlert] = []
        pending = self._pending
        while pending and pending[0][0] // NANOS_PER_MS < watermark_ms:
            at_ns, _, _, text = heapq.heappop(pending)
            alert = alert_from_json(text)
            ms = at_ns // NANOS_PER_MS
            out.append(SequencedAlert(self._next_id("", ms), self._next_id(str(alert.type), ms), alert))
        if watermark_ms - 1 > self._released_ms:
            self._released_ms = watermark_ms - 1
        return out

    def _next_id(self, stream: str, ms: int) -> str:
        last_ms, n = self._last.get(stream, (-1, 0))
        n = n + 1 if ms == last_ms else 0
        self._last[stream] = (ms, n)
        return f"{ms}-{n}"

    def next_timer_ms(self) -> int | None:
        """The watermark (ms) at which the earliest pending version can go."""
        return self._pending[0][0] // NANOS_PER_MS + 1 if self._pending else None

    def snapshot(self) -> bytes:
        return pickle.dumps(
            (STATE_VERSION, list(self._pending), self._released_ms, dict(self._last), self.late),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def restore(cls, state: bytes | None) -> AlertSequencer:
        sequencer = cls()
        if state:
            version, pending, released_ms, last, late = pickle.loads(state)  # noqa: S301 -- our own state
            if version != STATE_VERSION:
                raise ValueError(f"alert sequencer state version {version}, this code reads {STATE_VERSION}")
            sequencer._pending = [tuple(item) for item in pending]  # type: ignore[misc]
            heapq.heapify(sequencer._pending)
            sequencer._released_ms = released_ms
            sequencer._last = dict(last)
            sequencer.late = late
        return sequencer
