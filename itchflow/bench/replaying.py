"""The benchmark's replays: the project's replay producer with timing around it.

* :class:`RecordingEncoder` -- ``itchflow replay``'s Avro encoder that also notes when each symbol's
  batch (a segment of a bundle) was sent (latency starts there);
* :class:`FirstHandoff` -- notes when the replay took the first message (throughput starts there);
* :class:`PacedRuns` -- messages at a fixed rate per wall-clock second, in runs (the latency replay).
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import date

from itchflow.bench import stats
from itchflow.replay import ClosedBundle

TRADING_DATE = date(2019, 12, 30)
"""The throughput phase's trading date; the phases before it replay earlier days (event time is
global to a job: a phase replayed on the day of an earlier one would be late data)."""
"""Trading date stamped on the synthetic feed (it has none of its own)."""


class RecordingEncoder:
    """The replay's Avro encoder (as ``itchflow replay``'s) that also notes when each symbol's
    segment was sent.

    The bundle's ``produced_at_ns`` and the noted time are the same clock reading: latency is
    measured from there (a message waited up to ``--linger-ms`` in its bundle before that). The
    market-wide segments (symbol ``""``, one per shard, numbered per shard) are not noted:
    no book waits for them.
    """

    def __init__(self, venue: str, session: str, record: bool, trading_date: date = TRADING_DATE) -> None:
        self.venue = venue
        self.session = session
        self.record = record
        self.trading_date = trading_date
        self.sent: dict[str, list[stats.SentBatch]] = defaultdict(list)

    def __call__(self, bundle: ClosedBundle) -> bytes:
        from itchflow.avro.bundle import encode_bundle

        sent_ns = time.time_ns()
        envelope = bundle.envelope(
            venue=self.venue, trading_date=self.trading_date, session=self.session, produced_at_ns=sent_ns
        )
        if self.record:
            for segment in bundle.segments:
                if segment.symbol:
                    self.sent[segment.symbol].append(
                        stats.SentBatch(segment.first_message_seq, len(segment.payloads), sent_ns)
                    )
        return encode_bundle(envelope)


class FirstHandoff:
    """Wraps the payloads given to the replay and notes when the first one was taken."""

    def __init__(self, payloads: Iterable[bytes]) -> None:
        self.payloads = payloads
        self.monotonic: float | None = None
        self.epoch_ms: float | None = None

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self.payloads)
        first = next(iterator, None)
        if first is None:
            return
        self._stamp()
        yield first
        yield from iterator

    @property
    def runs(self) -> Callable[[], Iterator[list[bytes]]] | None:
        """The wrapped payloads' ``runs`` (lists of payloads, see ``replay.FilePayloads``), stamped
        at the first; None when they have none."""
        runs = getattr(self.payloads, "runs", None)
        if runs is None:
            return None

        def stamped() -> Iterator[list[bytes]]:
            for run in runs():
                if run and self.monotonic is None:
                    self._stamp()
                yield run

        return stamped

    def _stamp(self) -> None:
        self.monotonic, self.epoch_ms = time.monotonic(), time.time() * 1000


class PacedRuns:
    """The first ``count`` payloads of ``runs`` at ``rate`` messages per wall-clock second, handed
    over as runs (lists): each run is every message due by then (message i is due at i / rate), and
    when none is due it sleeps until the next one is, but at least ``tick_s``.

    Runs, not one message at a time: the replay takes them through the batcher's C loop instead of
    one Python step per message (pacing and batching 20 k msg/s: ~5-6% of a core instead of ~6-8%; the
    replay's Kafka client costs far more). Iterating gives one payload at a time (what
    :class:`FirstHandoff` and :func:`itchflow.replay.replay` also accept).
    """

    def __init__(
        self,
        runs: Callable[[], Iterator[list[bytes]]],
        count: int,
        rate: float,
        tick_s: float = 0.001,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self._runs, self.count, self.rate, self.tick_s = runs, count, rate, tick_s
        self.clock, self.sleep = clock, sleep

    def runs(self) -> Iterator[list[bytes]]:
        rate, clock = self.rate, self.clock
        handed = 0
        started: float | None = None
        for run in self._runs():
            position = 0
            while position < len(run) and handed < self.count:
                if started is None:
                    started = clock()
                elapsed = clock() - started
                due = min(int(elapsed * rate) + 1, self.count)  # messages 0 .. due-1 are due
                if due <= handed:
                    self.sleep(max(handed / rate - elapsed, self.tick_s))
                    continue
                take = min(due - handed, len(run) - position)
                yield run[position : position + take]
                position += take
                handed += take
            if handed >= self.count:
                return

    def __iter__(self) -> Iterator[bytes]:
        for run in self.runs():
            yield from run


def limited(payloads: Iterable[bytes], count: int) -> Iterator[bytes]:
    """The first ``count`` payloads."""
    for index, payload in enumerate(payloads):
        if index >= count:
            return
        yield payload


# --------------------------------------------------------------------------------- the run


def replay_with_progress(replay, payloads, producer, show: bool, **options):
    """``replay(payloads, producer, **options)`` with a progress bar on stderr."""
    from tqdm import tqdm

    with tqdm(desc="replay", unit=" msg", unit_scale=True, file=sys.stderr, disable=not show) as bar:
        return replay(payloads, producer, progress=bar.update, **options)


def busiest_symbols(payloads: Iterable[bytes], limit: int) -> list[str]:
    """The ``limit`` symbols with the most messages in ``payloads`` (ties by name), busiest first;
    messages of locates no directory message named yet are not counted."""
    from itchflow.replay import LocateDirectory

    directory = LocateDirectory()
    counts: Counter[str] = Counter()
    for payload in payloads:
        symbol, locate = directory.symbol_of(payload)
        if locate and not symbol.startswith("@"):
            counts[symbol] += 1
    return [symbol for symbol, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


# --------------------------------------------------------------------------------- result parts
