"""The market-data operator's bar state (``BarStep`` in jobs/operators.py) over hand-written stubs of
Flink's keyed states, without a JVM: the day archive goes to its own list, appended per record and
never rewritten by a compaction; an operator started afresh on the same states (a restore) emits
exactly what the uninterrupted one emits, breaks of bars closed long ago included."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from itchflow.analytics.bar_stage import BarConfig
from itchflow.analytics.bursts import BurstConfig
from itchflow.analytics.rolling import RollingConfig
from itchflow.pipeline.partition_books import BundleOutput
from jobs.operators import REDIS_OUT, BarStep

S = 1_000_000_000
MS = 1_000_000
DAY = 18_260
T0 = 9 * 3600 * S
NOW_NS = 1_700_000_000_123_456_789
"""Wall-clock time (epoch ns) of a step"""


class ValueStub:
    def __init__(self) -> None:
        self.current = None

    def value(self):
        return self.current

    def update(self, value) -> None:
        self.current = value


class ListStub:
    def __init__(self) -> None:
        self.items: list = []
        self.rewrites = 0

    def get(self):
        return list(self.items)

    def add(self, item) -> None:
        self.items.append(item)

    def update(self, items) -> None:
        self.items = list(items)
        self.rewrites += 1

    def clear(self) -> None:
        self.items = []
        self.rewrites += 1


class States:
    """One key's Flink states by name, as a restarted operator finds them."""

    def __init__(self) -> None:
        self.by_name: dict[str, ValueStub | ListStub] = {}
        self.counts: dict[str, int] = {}

    def get_state(self, descriptor) -> ValueStub:
        return self.by_name.setdefault(descriptor.name, ValueStub())  # type: ignore[return-value]

    def get_list_state(self, descriptor) -> ListStub:
        return self.by_name.setdefault(descriptor.name, ListStub())  # type: ignore[return-value]

    def get_metrics_group(self):
        def counter(name: str) -> SimpleNamespace:
            def inc(count: int = 1) -> None:
                self.counts[name] = self.counts.get(name, 0) + count

            return SimpleNamespace(inc=inc)

        return SimpleNamespace(add_group=lambda name: SimpleNamespace(counter=counter))


class Context:
    def __init__(self, watermark_ms: int) -> None:
        self.watermark_ms = watermark_ms
        self.timers: list[int] = []

    def timer_service(self):
        return SimpleNamespace(
            current_watermark=lambda: self.watermark_ms, register_event_time_timer=self.timers.append
        )


def records(seed: int, days: int = 1) -> list[tuple[int, BundleOutput]]:
    """(watermark ms, the books' output) per record: prints of two symbols, now and then a break of
    any earlier print of the day (mostly long after its bars closed), each day ending the feed."""
    rng = random.Random(seed)
    out = []
    seq = 0
    for day in range(days):
        ts, printed = T0 + day * 86_400 * S, []
        for _ in range(120):
            ts += rng.choice([10 * MS, 2 * S, 90 * S])
            prints = []
            for symbol in rng.sample(["AAA", "BBB"], rng.randint(1, 2)):
                seq += 1
                rows = [(seq, ts, "E", seq, rng.randint(100, 120), rng.randint(1, 300), 0, 1)]
                prints.append(("X", symbol, rows))
                printed.append((symbol, seq))
            breaks = []
            if rng.random() < 0.2:
                symbol, match = printed.pop(rng.randrange(len(printed)))
                breaks.append(("X", symbol, ts, seq, match))
            out.append((ts // MS - 1, BundleOutput((), 0, b"", {}, 0, prints, breaks, DAY + day, False)))
        out.append((ts // MS, BundleOutput((), 0, b"", {}, 0, [], [], DAY + day, True)))
    return out


def run(step: BarStep, watermark_ms: int, output: BundleOutput) -> list:
    return list(step.on_books("key", output, Context(watermark_ms), (0, 0, 0, b"key")))


def clock() -> int:
    """A wall clock that stands still: the Redis records' firing times are then the same in every run."""
    return NOW_NS


@pytest.mark.parametrize("derived", [False, True])
def test_a_restarted_operator_emits_what_the_uninterrupted_one_emits(derived: bool) -> None:
    rolling = RollingConfig(vwap_window_s=60, ma_bars=3) if derived else None
    bursts = BurstConfig(gap_ms=5_000, alert_prints_per_s=1) if derived else None
    config = BarConfig(intervals_s=(1, 60, 300), rolling=rolling, bursts=bursts)
    tables: set[str] = set()
    live_states, kept_states = States(), States()
    live = BarStep(live_states, config, "itchflow", "raw", compact_every=8, clock=clock)  # type: ignore[arg-type]
    kept = BarStep(kept_states, config, "itchflow", "raw", compact_every=8, clock=clock)  # type: ignore[arg-type]
    feed = records(seed=3, days=2)
    for number, (watermark_ms, output) in enumerate(feed):
        if number % 5 == 0:  # a restore: the operator starts afresh on the states the last step left
            kept = BarStep(kept_states, config, "itchflow", "raw", compact_every=8, clock=clock)  # type: ignore[arg-type]
        got, expected = run(kept, watermark_ms, output), run(live, watermark_ms, output)
        assert got == expected, number
        tables.update(item[0] for item in expected if not isinstance(item, tuple))
        if number == 119:
            # no allowed lateness: a bar fired is dropped at once, so only the archive revises it
            assert live_states.counts.get("barRevisions", 0) > 0
    assert live_states.counts.get("lateEvents", 0) == 0
    archive = live_states.by_name["bars-archive"]
    assert isinstance(archive, ListStub)
    assert archive.rewrites == 2 and archive.items == []  # only the end of each day's feed rewrote it
    assert tables == ({"bars", "vwap", "moving_averages", "bursts"} if derived else {"bars"})
    if derived:
        assert live_states.counts.get("burstAlerts", 0) > 0


def test_the_archive_is_appended_per_record_and_the_snapshot_stays_small() -> None:
    config = BarConfig(intervals_s=(1, 60, 300))
    states = States()
    step = BarStep(states, config, "itchflow", "raw", compact_every=8)  # type: ignore[arg-type]
    feed = records(seed=4)[:-1]  # without the end of the feed
    for watermark_ms, output in feed:
        run(step, watermark_ms, output)
    archive, snapshot = states.by_name["bars-archive"], states.by_name["bars"]
    assert isinstance(archive, ListStub) and isinstance(snapshot, ValueStub)
    assert archive.rewrites == 0 and len(archive.items) == len(feed)
    rows = sum(len(op[4]) // 41 for entry in archive.items for op in entry if op[0] == "p")
    assert rows == sum(len(output.prints) for _, output in feed)
    assert len(snapshot.current) < 2_000  # the windows still open, not the day's prints


def print_at(seq: int, ts_event: int) -> BundleOutput:
    """A record of one eligible print of AAA (price 100, 10 shares)."""
    rows = [(seq, ts_event, "E", seq, 100, 10, 0, 1)]
    return BundleOutput((), 0, b"", {}, 0, [("X", "AAA", rows)], [], DAY, False)


def redis_records(items: list) -> list:
    return [item[1] for item in items if isinstance(item, tuple) and item[0] is REDIS_OUT]


def test_only_the_redis_records_of_bars_the_watermark_closed_carry_their_firing_time() -> None:
    """Bars first emitted because event time passed their ends (a timer, or a record that finds the
    watermark past them) carry the step's wall-clock ms; revisions and bars closed by the end of the
    feed carry 0; ``barFirings`` counts the stamped records."""
    times = iter([NOW_NS + step * 7 * MS for step in range(10)])
    config = BarConfig(intervals_s=(1, 60, 300), allowed_lateness_ms=2_000)
    states = States()
    step = BarStep(states, config, "itchflow", "raw", clock=lambda: next(times))  # type: ignore[arg-type]
    stamps = []

    def stamped(items: list) -> list[int]:
        records = redis_records(items)
        stamps.extend(record[2] for record in records)
        return [record[2] for record in records]

    # a print at 09:00:00.100 while the watermark is before it: no bar yet (clock step 0)
    assert stamped(run(step, T0 // MS + 50, print_at(1, T0 + 100 * MS))) == []
    # the watermark reaches 09:00:01 (clock step 1): the 1 s bar fires
    timer = list(step.on_timer("key", Context(T0 // MS + 999)))
    assert stamped(timer) == [(NOW_NS + 7 * MS) // MS]
    # a late print in that second, within the allowed lateness (step 2): a revision, not a firing
    assert stamped(run(step, T0 // MS + 999, print_at(2, T0 + 500 * MS))) == [0]
    # a record that finds the watermark past 09:01 (step 3): the 1 m bar fires with it
    assert stamped(run(step, T0 // MS + 60_000, print_at(3, T0 + 61 * S))) == [(NOW_NS + 21 * MS) // MS]
    # the end of the feed (step 4) closes the rest before event time reaches their ends
    end = BundleOutput((), 0, b"", {}, 0, [], [], DAY, True)
    assert stamped(run(step, T0 // MS + 61_000, end)) == [0]
    # the end of a replay likewise
    assert stamped(run(step, T0 // MS + 61_500, print_at(4, T0 + 62 * S))) == []
    assert stamped(list(step.close_all("key", Context(T0 // MS + 61_500)))) == [0]
    assert states.counts["barFirings"] == len([s for s in stamps if s]) == 2
    assert states.counts["barRevisions"] > 0
