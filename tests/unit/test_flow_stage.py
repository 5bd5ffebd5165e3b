"""The flow stage: the order-book stage's own ``top_of_book`` and ``depth_snapshots`` rows in, OFI and
liquidity rows out -- equal to the offline functions over the same file for everything that does not
depend on batching (OFI; spread, its basis points and two-sided time), and with depth from the
batches' snapshots; a restore mid-stream changes nothing; rows and hashes read back with the tests'
own readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from itchflow import synth
from itchflow.analytics.book_tape import liquidity_of_file, ofi_of_file
from itchflow.analytics.flow_stage import FlowConfig, FlowOutput, FlowStage
from itchflow.analytics.liquidity import LiquidityRow
from itchflow.analytics.ofi import OfiRow
from itchflow.analytics.top_of_book import decode_depth_rows
from itchflow.itch.framing import iter_payloads
from itchflow.pipeline.book_stage import BookStage
from itchflow.sinks.flow_outputs import (
    LIQUIDITY_COLUMNS,
    OFI_COLUMNS,
    flow_commands,
    liquidity_rows,
    ofi_rows,
)
from tests.unit.book_stage_support import (
    CONFIG,
    DDL,
    TRADING_DATE,
    ddl_columns,
    fields_of,
    parse_resp,
    read_rows,
)
from tests.unit.book_stage_support import VENUE as STAGE_VENUE
from tests.unit.book_stage_support import symbol_feeds as cut_feeds

ANALYTICS_DDL = DDL.parent / "002_analytics.sql"
S = 1_000_000_000


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    path = tmp_path_factory.mktemp("flow") / "synth.itch"
    synth.write(path, symbols=12, messages=12_000, seed=9)
    return path, [payload for _, payload in iter_payloads(path)]


def stage_records(payloads: list[bytes], batch_size: int) -> list[tuple[int, bytes, bytes]]:
    """Per symbol batch, in order of the batch's first event: (its first event time, the books'
    top_of_book rows, their depth_snapshots rows)."""
    records = []
    for symbol_feed in cut_feeds(payloads, batch_size).values():
        stage = BookStage.restore(None, venue=STAGE_VENUE, symbol=symbol_feed.symbol, config=CONFIG)
        for batch in symbol_feed.batches:
            chunks = dict(stage.apply(batch).clickhouse)
            records.append(
                (
                    min(batch.columns.views().ts_event),
                    chunks.get("top_of_book", b""),
                    chunks.get("depth_snapshots", b""),
                )
            )
    records.sort(key=lambda record: record[0])
    return records


def run(records, config: FlowConfig, restore_at: int | None = None) -> list[FlowOutput]:
    """Each record with event time complete up to its first event (every later record starts at or
    after it: nothing is late, windows fire along the way), then the end."""
    stage = FlowStage(config)
    outputs = []
    for number, (first, tops, depths) in enumerate(records):
        outputs.append(stage.record(first, tops, depths, False))
        if number == restore_at:
            stage = FlowStage.restore(stage.snapshot(), config)
    outputs.append(stage.close_all())
    return outputs


def spreads(rows: list[LiquidityRow]) -> list[tuple]:
    """The spread of the windows with top-of-book changes (windows with depth updates only depend on
    how often depth is known: per event offline, per batch in the job)."""
    return [
        (r.venue, r.symbol, r.window_start_ns, r.spread_bps, r.spread, r.two_sided_ns, r.updates)
        for r in rows
        if r.updates
    ]


@pytest.mark.parametrize("batch_size", [50, 1_000])
def test_ofi_and_spread_equal_the_offline_functions(feed, batch_size: int) -> None:
    path, payloads = feed
    outputs = run(stage_records(payloads, batch_size), FlowConfig())
    ofi = sorted(row for out in outputs for row in out.ofi)
    liquidity = sorted(row for out in outputs for row in out.liquidity)
    expected_ofi = ofi_of_file(path, TRADING_DATE, STAGE_VENUE)
    assert expected_ofi and ofi == sorted(expected_ofi)
    expected = liquidity_of_file(path, TRADING_DATE, STAGE_VENUE)
    got, want = spreads(liquidity), spreads(sorted(expected))
    # the spread in ticks is exact; the basis points are a float sum over the states in force, which
    # depth updates (per event offline, per batch here) cut into other pieces: equal to rounding
    assert [row[:3] + row[4:] for row in got] == [row[:3] + row[4:] for row in want]
    assert [row[3] is None for row in got] == [row[3] is None for row in want]
    assert [row[3] or 0.0 for row in got] == pytest.approx([row[3] or 0.0 for row in want], rel=1e-12)
    assert sum(out.late for out in outputs) == 0
    assert any(r.bid_depth for r in liquidity), "depth from the books' snapshots"


def test_a_restore_mid_stream_changes_nothing(feed) -> None:
    _, payloads = feed
    records = stage_records(payloads, 200)
    straight = run(records, FlowConfig())
    for restore_at in (0, len(records) // 3, len(records) - 2):
        assert run(records, FlowConfig(), restore_at) == straight


def test_depth_updates_are_the_snapshots_best_levels() -> None:
    # a depth_snapshots row as the books write it, read back: the best 2 of 3 levels per side
    from itchflow.sinks.book_tables import row_key

    def array(values, fmt):
        import struct

        return bytes([len(values)]) + struct.pack(f"<{len(values)}{fmt}", *values)

    row = (
        row_key("XNAS", 18_260, "AAPL")
        + (7).to_bytes(8, "little")
        + b"\x06change"
        + (123).to_bytes(8, "little", signed=True)
        + array([101, 100, 99], "q") + array([5, 6, 7], "Q") + array([1, 1, 1], "I")
        + array([102, 103], "q") + array([8, 9], "Q") + array([1, 2], "I")
    )  # fmt: skip
    ((key, update),) = decode_depth_rows(row, levels=2)
    assert (key.venue, key.trading_date, key.symbol) == ("XNAS", 18_260, "AAPL")
    assert update == (123, 7, 11, 17)
    with pytest.raises(ValueError):
        decode_depth_rows(row[:-3], levels=2)


def test_columns_are_the_ddl_columns() -> None:
    tables = ddl_columns(ANALYTICS_DDL)
    assert tables["ofi"] == list(OFI_COLUMNS)
    assert tables["liquidity"] == list(LIQUIDITY_COLUMNS)


def test_rows_and_hashes_read_back_with_independent_readers() -> None:
    ofi = OfiRow("XNAS", 18_260, "AAPL", 1, 5 * S, -300, 200, -500, 7)
    liquidity = LiquidityRow("XNAS", 18_260, "AAPL", 1, 5 * S, 100.5, 9.95, S, None, 40.0, None, 0, 10, 3, 0)
    assert read_rows("ofi", ofi_rows([ofi]), ANALYTICS_DDL) == [
        {"venue": "XNAS", "trading_date": 18_260, "symbol": "AAPL", "interval_s": 1, "window_start": 5 * S,
         "ofi": -300, "bid_flow": 200, "ask_flow": -500, "updates": 7}
    ]  # fmt: skip
    (row,) = read_rows("liquidity", liquidity_rows([liquidity]), ANALYTICS_DDL)
    assert row == {
        "venue": "XNAS", "trading_date": 18_260, "symbol": "AAPL", "interval_s": 1, "window_start": 5 * S,
        "spread": 100.5, "spread_bps": 9.95, "two_sided_ns": S, "bid_depth": None, "ask_depth": 40.0,
        "depth_imbalance": None, "depth_ns": 0, "depth_levels": 10, "updates": 3, "depth_updates": 0,
    }  # fmt: skip
    earlier = ofi._replace(window_start_ns=4 * S, ofi=1)
    commands = parse_resp(b"".join(flow_commands([ofi, earlier], [liquidity], "itchflow")))
    assert [c[1] for c in commands] == ["itchflow:ofi:1s:XNAS:AAPL", "itchflow:liquidity:1s:XNAS:AAPL"]
    assert fields_of(commands[0], 2)["ofi"] == "-300"  # the latest window, whatever the order given
    assert fields_of(commands[1], 2)["bid_depth"] == ""


def test_a_config_the_cores_refuse_is_an_error() -> None:
    with pytest.raises(ValueError):
        FlowConfig(ofi_intervals_s=())
