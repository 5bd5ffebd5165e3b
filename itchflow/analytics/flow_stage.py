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

**C code**: when built (:mod:`itchflow.extensions`), ``itchflow/analytics/_cflow.c`` does the work
of the decoders and both cores -- reading the rows, folding each change into the windows, firing them
-- with the same rows, late counts, timers and snapshots (``tests/unit/test_cflow.py``); the snapshots
are the cores' own, so either path restores the other's. It takes the values of real feeds (see its
header); a record, event time or snapshot beyond them carries the stage on in the Python cores.
``ITCHFLOW_NATIVE=python`` runs the cores alone.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, NamedTuple

from itchflow.analytics.liquidity import Liquidity, LiquidityConfig, LiquidityRow
from itchflow.analytics.ofi import OfiConfig, OfiRow, OrderFlowImbalance
from itchflow.analytics.top_of_book import decode_depth_rows, decode_rows
from itchflow.analytics.tumbling import check_snapshot
from itchflow.extensions import native_function

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
        self._flow: _PythonFlow | Any = _native_flow(config) or _PythonFlow(config)

    def record(self, complete_before: int, tops: bytes, depths: bytes, end: bool) -> FlowOutput:
        """One record's ``top_of_book`` and ``depth_snapshots`` rows, then what is due (everything,
        when the record ends the feed)."""
        if tops or depths:
            try:
                self._flow.record(tops, depths)
            except OverflowError:  # values beyond the C code's ranges: nothing changed
                if isinstance(self._flow, _PythonFlow):
                    raise
                self._to_python().record(tops, depths)
        return self.close_all() if end else self.fire(complete_before)

    def fire(self, complete_before: int) -> FlowOutput:
        try:
            return FlowOutput(*self._flow.advance(complete_before))
        except OverflowError:  # event time beyond the C code's range: nothing changed
            if isinstance(self._flow, _PythonFlow):
                raise
            return FlowOutput(*self._to_python().advance(complete_before))

    def close_all(self) -> FlowOutput:
        return FlowOutput(*self._flow.close_all())

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
        return self._flow.next_timer_ms()

    def snapshot(self) -> bytes:
        ofi, liquidity = self._flow.snapshot()
        return pickle.dumps(
            (STATE_VERSION, _shape(self.config), ofi, liquidity), protocol=pickle.HIGHEST_PROTOCOL
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
            if isinstance(stage._flow, _PythonFlow):
                stage._flow.restore(ofi, liquidity)
            else:
                check_snapshot(ofi, {"intervals_s": list(config.ofi_intervals_s)})
                check_snapshot(liquidity, {"intervals_s": list(config.liquidity_intervals_s)})
                try:
                    stage._flow.restore(ofi, liquidity)
                except OverflowError:  # values beyond the C code's ranges
                    stage._flow = _PythonFlow(config)
                    stage._flow.restore(ofi, liquidity)
        return stage

    def _to_python(self) -> _PythonFlow:
        """Carry on with the Python cores, from the C code's state (the same snapshot)."""
        if not isinstance(self._flow, _PythonFlow):
            flow = _PythonFlow(self.config)
            flow.restore(*self._flow.snapshot())
            self._flow = flow
        return self._flow


class _PythonFlow:
    """The pure cores behind a stage (the reference, and the fallback of the C code
    ``itchflow/analytics/_cflow.c``, which has the same methods)."""

    def __init__(self, config: FlowConfig) -> None:
        self.depth_levels = config.depth_levels
        self.ofi = OrderFlowImbalance(OfiConfig(config.ofi_intervals_s))
        self.liquidity = Liquidity(LiquidityConfig(config.liquidity_intervals_s, config.depth_levels))

    def record(self, tops: bytes, depths: bytes) -> None:
        if tops:
            ofi, liquidity = self.ofi, self.liquidity
            for key, changes in _runs(decode_rows(tops)):
                ofi.add(key[0], key[2], key[1], changes)
                liquidity.add_tops(key[0], key[2], key[1], changes)
        if depths:
            for key, updates in _runs(decode_depth_rows(depths, self.depth_levels)):
                self.liquidity.add_depth(key[0], key[2], key[1], updates)

    def advance(self, complete_before: int) -> tuple[list[OfiRow], list[LiquidityRow], int]:
        return self._out(self.ofi.advance(complete_before), self.liquidity.advance(complete_before))

    def close_all(self) -> tuple[list[OfiRow], list[LiquidityRow], int]:
        return self._out(self.ofi.close_all(), self.liquidity.close_all())

    def _out(
        self, ofi: list[OfiRow], liquidity: list[LiquidityRow]
    ) -> tuple[list[OfiRow], list[LiquidityRow], int]:
        late = len(self.ofi.late) + len(self.liquidity.late)
        self.ofi.late.clear()
        self.liquidity.late.clear()
        return ofi, liquidity, late

    def next_timer_ms(self) -> int | None:
        times = [t for t in (self.ofi.next_timer_ms(), self.liquidity.next_timer_ms()) if t is not None]
        return min(times, default=None)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.ofi.snapshot(), self.liquidity.snapshot()

    def restore(self, ofi: dict[str, Any], liquidity: dict[str, Any]) -> None:
        self.ofi.restore(ofi)
        self.liquidity.restore(liquidity)


def _native_flow(config: FlowConfig) -> Any:
    """The C code's state for ``config`` (None: not built, ``ITCHFLOW_NATIVE=python``, or window
    sizes beyond its range)."""
    flow_type = native_function("itchflow.analytics._cflow", "Flow")
    if flow_type is None:
        return None
    try:
        return flow_type(
            config.ofi_intervals_s, config.liquidity_intervals_s, config.depth_levels, OfiRow, LiquidityRow
        )
    except OverflowError:
        return None


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
