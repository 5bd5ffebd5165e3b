"""The detectors of one Flink key in a streaming job: events in as records come, released to the
detectors in event-time order as the watermark passes them.

A key (a shard of the symbols, every venue) gets each venue's events in that venue's feed order,
but the venues' records interleave only roughly by time. :class:`CepStage` holds the events until
the watermark (``complete_before``: every event before it has arrived) passes them, then hands them to
:class:`~itchflow.cep.detectors.Detectors` sorted by (event time, venue, arrival within the venue) --
the order ``itchflow detect`` merges files in, restricted to the key's symbols -- so the job's alerts
are the offline ones. An event behind the watermark already applied (late) is applied at once and
counted. The end of a replay releases everything and closes every open episode at the latest event.

**State**: :meth:`snapshot` (plain data, pickled with a version) and :meth:`restore`; the operator
logs each step (:meth:`replay`) between snapshots, as for the bars.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable
from typing import NamedTuple

from itchflow.cep.alerts import Alert
from itchflow.cep.detectors import (
    Activity,
    DetectorConfig,
    Detectors,
    Event,
    QuoteChange,
    SystemEvent,
    TradingAction,
)

STATE_VERSION = 1
NANOS_PER_MS = 1_000_000


class CepOutput(NamedTuple):
    alerts: list[Alert]
    """open and closed versions, in the order the detectors emitted them"""
    late: int
    """events that came behind the watermark already applied"""


LogEntry = tuple
"""``("r", complete_before, events, end)`` for a record, ``("f", complete_before)`` for a timer,
``("c",)`` for the end of a replay."""


class CepStage:
    """The detectors of one key with their event-time buffer. See the module docstring."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._alerts: list[Alert] = []
        self.detectors = Detectors(self.config, self._alerts.append)
        self._pending: list[tuple[int, str, int, Event]] = []
        self._arrivals: dict[str, int] = {}  # venue -> events taken (the arrival tiebreak)
        self._released_before = -(2**63)  # every event before this went to the detectors
        self._late = 0

    def record(self, complete_before: int, events: Iterable[Event], end: bool = False) -> CepOutput:
        """One record's events, then what the watermark releases (everything at the end of a replay)."""
        arrivals, pending = self._arrivals, self._pending
        for event in events:
            if event.ts_event < self._released_before:
                self._late += 1
                self.detectors.apply(event)
                continue
            venue = event.venue
            arrival = arrivals.get(venue, 0)
            arrivals[venue] = arrival + 1
            heapq.heappush(pending, (event.ts_event, venue, arrival, event))
        return self.close_all() if end else self.fire(complete_before)

    def fire(self, complete_before: int) -> CepOutput:
        """Release the events before ``complete_before`` and open what became certain before it."""
        if complete_before > self._released_before:
            self._release(complete_before)
            self.detectors.advance(complete_before)
            self._released_before = complete_before
        return self._output()

    def close_all(self) -> CepOutput:
        """The end of a replay: every event to the detectors, every open episode closed."""
        self._release(None)
        self.detectors.finish()
        return self._output()

    def _release(self, before: int | None) -> None:
        pending, apply = self._pending, self.detectors.apply
        while pending and (before is None or pending[0][0] < before):
            apply(heapq.heappop(pending)[3])

    def _output(self) -> CepOutput:
        output = CepOutput(list(self._alerts), self._late)
        self._alerts.clear()
        self._late = 0
        return output

    def replay(self, entry: LogEntry) -> None:
        """Apply a logged step again (state restore); its outputs are dropped."""
        if entry[0] == "r":
            self.record(*entry[1:])
        elif entry[0] == "f":
            self.fire(entry[1])
        else:
            self.close_all()
        self._output()

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) at which pending events or a detector's deadline become due:
        the first whole millisecond after it (a watermark in ms passes it there)."""
        times = [self._pending[0][0]] if self._pending else []
        deadline = self.detectors.next_deadline()
        if deadline is not None:
            times.append(deadline)
        return min(times) // NANOS_PER_MS + 1 if times else None

    def snapshot(self) -> bytes:
        state = (
            STATE_VERSION,
            self.detectors.snapshot(),
            [
                (ts, venue, arrival, tuple(event), type(event).__name__)
                for ts, venue, arrival, event in self._pending
            ],
            dict(self._arrivals),
            self._released_before,
        )
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, state: bytes | None, config: DetectorConfig | None = None) -> CepStage:
        """The stage of :meth:`snapshot`'s ``state`` (None: a new one)."""
        stage = cls(config)
        if not state:
            return stage
        version, detectors, pending, arrivals, released_before = pickle.loads(state)  # noqa: S301 -- our own state
        if version != STATE_VERSION:
            raise ValueError(f"cep state version {version}, this code reads {STATE_VERSION}")
        stage.detectors.restore(detectors)
        stage._pending = [
            (ts, venue, arrival, _EVENT_TYPES[kind](*fields)) for ts, venue, arrival, fields, kind in pending
        ]
        heapq.heapify(stage._pending)
        stage._arrivals = dict(arrivals)
        stage._released_before = released_before
        return stage


_EVENT_TYPES: dict[str, type] = {
    kind.__name__: kind for kind in (Activity, QuoteChange, SystemEvent, TradingAction)
}
