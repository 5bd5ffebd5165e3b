"""Helpers for the bar stage tests: what the market-data operator keeps of a stage (``BarStep`` in
``jobs/operators.py``, here without Flink), and the bars of a feed folded directly from their
definition, independently of :mod:`itchflow.analytics.bars`."""

from __future__ import annotations

from collections.abc import Iterable

from itchflow.analytics.bar_stage import ArchiveEntry, BarConfig, BarRevision, BarStage, LogEntry

S = 1_000_000_000


class KeptState:
    """A stage's state as the operator keeps it: a snapshot, the steps taken since (the log), and
    the archive entries (appended per step; written anew when the stage asks, with a snapshot)."""

    def __init__(self, stage: BarStage) -> None:
        self.snapshot = stage.snapshot()
        self.log: list[LogEntry] = []
        self.archive: list[ArchiveEntry] = []
        self.rewrites = 0

    def after(self, stage: BarStage, step: LogEntry, compact: bool = False) -> ArchiveEntry | None:
        """Keep what ``step`` changed; returns the archive entry it appended."""
        entry = None
        if stage.archive_rewrite:
            self.archive = stage.rewrite_archive()
            self.rewrites += 1
            compact = True
        else:
            entry = stage.take_archive()
            if entry is not None:
                self.archive.append(entry)
        if compact:
            self.snapshot, self.log = stage.snapshot(), []
        else:
            self.log.append(step)
        return entry

    def restore(self, config: BarConfig, stage_class: type[BarStage] = BarStage) -> BarStage:
        stage = stage_class.restore(self.snapshot, config, list(self.archive))
        for logged in self.log:
            stage.replay(logged)
        return stage


def apply(stage: BarStage, step: LogEntry) -> list[BarRevision]:
    """Take one logged step (a record, a timer, an end of replay) live."""
    if step[0] == "r":
        return stage.record(*step[1:])
    return stage.fire(step[1]) if step[0] == "f" else stage.close_all()


def direct_bars(
    prints: Iterable[tuple[str, tuple[int, int, int, int, int]]], intervals_s: Iterable[int]
) -> dict[tuple[str, int, int], tuple[int, int, int, int, int, int, int]]:
    """(symbol, interval_s, window start) -> (open, high, low, close, volume, notional, trades) of
    ``(symbol, (ts_event, seq, match, price, shares))`` prints, straight from the definition: the
    prints of each window sorted by (ts_event, seq), open the first price, close the last."""
    windows: dict[tuple[str, int, int], list[tuple[int, int, int, int, int]]] = {}
    for symbol, p in prints:
        for interval in intervals_s:
            start = p[0] // (interval * S) * (interval * S)
            windows.setdefault((symbol, interval, start), []).append(p)
    bars = {}
    for key, held in windows.items():
        held = sorted(held, key=lambda q: (q[0], q[1]))
        prices = [q[3] for q in held]
        bars[key] = (
            prices[0], max(prices), min(prices), prices[-1], sum(q[4] for q in held),
            sum(q[3] * q[4] for q in held), len(held),
        )  # fmt: skip
    return bars


def final_bars(revisions: Iterable[BarRevision]) -> dict[tuple[str, int, int], tuple]:
    """What ClickHouse's ``FINAL`` reads of emitted revisions: the highest revision of each window,
    deleted ones dropped, in :func:`direct_bars`' form."""
    latest: dict[tuple[str, int, int], BarRevision] = {}
    for r in revisions:
        key = (r.bar.symbol, r.bar.interval_s, r.bar.window_start_ns)
        if key not in latest or latest[key].revision < r.revision:
            latest[key] = r
    return {
        key: (r.bar.open, r.bar.high, r.bar.low, r.bar.close, r.bar.volume, r.bar.notional, r.bar.trades)
        for key, r in latest.items()
        if not r.deleted
    }
