"""Order-flow imbalance and liquidity of one Flink key, from what its books wrote: the books'
``top_of_book`` and ``depth_snapshots`` rows in, OFI and liquidity rows out when event time passes
their windows.

The market-data operator keeps one :class:`FlowStage` per key next to its books and hands it, per
record, the RowBinary rows the books produced (:meth:`FlowStage.record`) -- so the analytics see
exactly what ClickHouse gets, and the C book needs no second output. The stage decodes them
(:mod:`itchflow.analytics.top_of_book`) and feeds the pure cores
:class:`~itchflow.analytics.ofi.OrderFlowImbalance` (every top-of-book change) and
:class:`~itchflow.analytics.liquidity.Liquidity` (every top-of-book change, and the depth of each
depth snapshot: the book after a batch, summed over the best ``depth_levels`` levels). The rules of
the windows are the cores'; each window is emitted once, when final.

**Depth is per batch** in the streaming job (a depth snapshot per batch that changed the top levels,
or per cadence interval), per event offline (:func:`~itchflow.analytics.book_tape.liquidity_of_file`):
spread and OFI are the same either way; the time-weighted depth is of the snapshots.

**Late updates** (a book's timestamps going backwards across a window the watermark has passed) are
counted (:attr:`FlowOutput.late`) and carried as the cores define; they never fail the job.

**State**: :meth:`snapshot` (plain data) and :meth:`restore`; the operator logs each step's input
bytes (:meth:`replay` applies them again) between snapshots, as it does for the bars.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import NamedTuple

from itchflow.analytics.liquidity import Liquidity, LiquidityConfig, LiquidityRow
from itchflow.analytics.ofi import OfiConfig, OfiRow, OrderFlowImbalance
from itchflow.analytics.top_of_book import decode_depth_rows, decode_rows

STATE_VERSION = 1


@dataclass(frozen=True)
class FlowConfig:
    """The book analytics of the market-data job."""

    ofi_intervals_s: tuple[int, ...] = (1, 60)
    liquidity_intervals_s: tuple[int, ...] = (1,)
    depth_levels: int = 10
    """N of the liquidity's depth (at most the books' depth levels)."""

    def __post_init__(self) -> None:
        OfiConfig(self.ofi_intervals_s)
        LiquidityConfig(self.liquidity_intervals_s, self.depth_levels)


class FlowOutput(NamedTuple):
    ofi: list[OfiRow]
    liquidity: list[LiquidityRow]
    late: int
    """updates that came after their window fired"""


LogEntry = tuple
"""``("r", complete_before, top_of_book rows, depth rows, end)`` for a record, ``("f",
complete_before)`` for a timer, ``("c",)`` for the end of a replay."""


class FlowStage:
    """OFI and liquidity of every (venue, symbol) of one key. See the module docstring."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self.ofi = OrderFlowImbalance(OfiConfig(config.ofi_intervals_s))
        self.liquidity = Liquidity(LiquidityConfig(config.liquidity_intervals_s, config.depth_levels))

    def record(self, complete_before: int, tops: bytes, depths: bytes, end: bool) -> FlowOutput:
        """One record's ``top_of_book`` and ``depth_snapshots`` rows, then what is due (everything,
        when the record ends the feed)."""
        if tops:
            ofi, liquidity = self.ofi, self.liquidity
            for key, changes in _runs(decode_rows(tops)):
                ofi.add(key[0], key[2], key[1], changes)
                liquidity.add_tops(key[0], key[2], key[1], changes)
        if depths:
            for key, updates in _runs(decode_depth_rows(depths, self.config.depth_levels)):
                self.liquidity.add_depth(key[0], key[2], key[1], updates)
        return self.close_all() if end else self.fire(complete_before)

    def fire(self, complete_before: int) -> FlowOutput:
        return self._out(self.ofi.advance(complete_before), self.liquidity.advance(complete_before))

    def close_all(self) -> FlowOutput:
        return self._out(self.ofi.close_all(), self.liquidity.close_all())

    def _out(self, ofi: list[OfiRow], liquidity: list[LiquidityRow]) -> FlowOutput:
        late = len(self.ofi.late) + len(self.liquidity.late)
        self.ofi.late.clear()
        self.liquidity.late.clear()
        return FlowOutput(ofi, liquidity, late)

    def replay(self, entry: LogEntry) -> None:
        """Apply a logged step again (state restore); its outputs are dropped."""
        if entry[0] == "r":
            self.record(*entry[1:])
        elif entry[0] == "f":
            self.fire(entry[1])
        else:
            self.close_all()

    def next_timer_ms(self) -> int | None:
        """The event-time timer (ms) at which a window next becomes due."""
        times = [t for t in (self.ofi.next_timer_ms(), self.liquidity.next_timer_ms()) if t is not None]
        return min(times, default=None)

    def snapshot(self) -> bytes:
        return pickle.dumps(
            (STATE_VERSION, _shape(self.config), self.ofi.snapshot(), self.liquidity.snapshot()),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def restore(cls, state: bytes | None, config: FlowConfig) -> FlowStage:
        """The stage of :meth:`snapshot`'s ``state`` (None: a new one). A state of other windows starts
        empty (the windows under way are lost, the next ones are whole)."""
        stage = cls(config)
        if not state:
            return stage
        version, shape, ofi, liquidity = pickle.loads(state)  # noqa: S301 -- our own state bytes
        if version != STATE_VERSION:
            raise ValueError(f"flow state version {version}, this code reads {STATE_VERSION}")
        if shape == _shape(config):
            stage.ofi.restore(ofi)
            stage.liquidity.restore(liquidity)
        return stage


def _shape(config: FlowConfig) -> tuple:
    return config.ofi_intervals_s, config.liquidity_intervals_s, config.depth_levels


def _runs(rows: list[tuple]) -> list[tuple]:
    """Consecutive rows of the same book as ``(key, [values])``, in order."""
    runs: list[tuple] = []
    current = None
    values: list = []
    for key, value in rows:
        if key is not current and key != current:
            if values:
                runs.append((current, values))
            current, values = key, []
        values.append(value)
    if values:
        runs.append((current, values))
    return runs
