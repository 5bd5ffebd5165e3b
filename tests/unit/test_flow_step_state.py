"""The market-data operator's OFI and liquidity state (``FlowStep`` in jobs/operators.py) over the stubs
of Flink's keyed states of ``test_bar_step_state``, without a JVM: an operator started afresh on the
same states (a restore) emits exactly what the uninterrupted one emits, and a snapshot is written only
once the log since the last one outweighs it -- never per record of a key with a large state."""

from __future__ import annotations

import pytest

from itchflow import synth
from itchflow.analytics.flow_stage import FlowConfig
from itchflow.itch.framing import iter_payloads
from itchflow.pipeline.partition_books import BundleOutput
from itchflow.sinks.book_tables import DEPTH_SNAPSHOTS, TOP_OF_BOOK
from jobs.operators import FlowStep
from tests.unit.test_bar_step_state import Context, States, ValueStub
from tests.unit.test_flow_stage import stage_records

MS = 1_000_000


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, BundleOutput]]:
    """(watermark ms, the books' output) per record: each symbol batch of a 12-symbol feed, the
    watermark just before its first event, then the end of the feed."""
    path = tmp_path_factory.mktemp("flow-step") / "synth.itch"
    synth.write(path, symbols=12, messages=12_000, seed=9)
    out = []
    for first, tops, depths in stage_records([p for _, p in iter_payloads(path)], 100):
        chunks = tuple(
            (table, rows) for table, rows in ((TOP_OF_BOOK, tops), (DEPTH_SNAPSHOTS, depths)) if rows
        )
        out.append((first // MS - 1, BundleOutput(chunks, 0, b"", {}, 0)))
    last = out[-1][0]
    out.append((last, BundleOutput((), 0, b"", {}, 0, [], [], 0, True)))
    return out


def run(step: FlowStep, watermark_ms: int, output: BundleOutput) -> list:
    return list(step.on_books("key", output, Context(watermark_ms)))


class CountingValue(ValueStub):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def update(self, value) -> None:
        super().update(value)
        self.sizes.append(len(value))


def test_a_restarted_operator_emits_what_the_uninterrupted_one_emits(records) -> None:
    live_states, kept_states = States(), States()
    live = FlowStep(live_states, FlowConfig(), "itchflow")  # type: ignore[arg-type]

    def restarted() -> FlowStep:
        return FlowStep(kept_states, FlowConfig(), "itchflow", compact_bytes=2_048, step_bytes=256)  # type: ignore[arg-type]

    kept = restarted()
    emitted = 0
    for number, (watermark_ms, output) in enumerate(records):
        if number % 7 == 0:  # a restore: the operator starts afresh on the states the last step left
            kept = restarted()
        got, expected = run(kept, watermark_ms, output), run(live, watermark_ms, output)
        assert got == expected, number
        emitted += len(expected)
    assert emitted > 50
    assert live_states.counts["flowWindowsEmitted"] > 100


def test_a_snapshot_is_written_once_the_log_outweighs_the_last_one(records) -> None:
    states = States()
    snapshots = states.by_name["flow"] = CountingValue()
    step = FlowStep(states, FlowConfig(), "itchflow", compact_bytes=1_024, step_bytes=64)  # type: ignore[arg-type]
    weights = []
    for watermark_ms, output in records[:-1]:
        run(step, watermark_ms, output)
        weights.append(max(64, sum(len(rows) for _, rows in output.clickhouse)))
    sizes = snapshots.sizes
    assert len(sizes) >= 3 and max(sizes) > 4 * 1_024  # the state outgrew the floor...
    # ... and each snapshot came after at least the previous one's weight of logged steps
    assert sum(sizes[:-1]) <= sum(weights)
    assert len(sizes) < len(records) // 4
    # what is logged since the last snapshot weighs less than it
    logged = len(states.by_name["flow-log"].get())
    assert logged < len(records) // 2
    assert sum(weights[len(weights) - logged :]) < max(1_024, sizes[-1])
