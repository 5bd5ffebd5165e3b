"""The alert sequencer: every key's versions in one order with deterministic ids, whatever order they
arrive in; late versions counted and left out; the Redis commands of what it releases."""

from __future__ import annotations

import json
import random

from itchflow.cep.alerts import Alert, AlertType, Severity
from itchflow.cep.detectors import DetectorConfig
from itchflow.cep.sequencer import AlertSequencer, alert_from_json, alert_json, emitted_at
from itchflow.sinks.alert_outputs import alert_commands
from tests.unit.book_stage_support import fields_of, parse_resp

MS = 1_000_000
CONFIG = DetectorConfig(arbitrage_min_ms=100, stale_after_ms=60_000)


def halt(symbol: str, start_ms: int, end_ms: int | None) -> Alert:
    end = None if end_ms is None else end_ms * MS
    return Alert(AlertType.HALT, symbol, ("BX",), start_ms * MS, end, Severity.WARNING, {"reason": "T1"})


def test_emitted_at_is_when_the_version_became_certain_or_ended() -> None:
    stale = Alert(AlertType.STALE, "A", ("BX",), 5 * MS, None, Severity.WARNING)
    crossing = Alert(AlertType.ARBITRAGE, "A", ("BX", "PSX"), 5 * MS, None, Severity.CRITICAL)
    assert emitted_at(stale, CONFIG) == 5 * MS + 60_000 * MS
    assert emitted_at(crossing, CONFIG) == 5 * MS + 100 * MS
    assert emitted_at(halt("A", 5, None), CONFIG) == 5 * MS
    assert emitted_at(halt("A", 5, 9), CONFIG) == 9 * MS


def test_alerts_travel_as_json_and_come_back_equal() -> None:
    alert = Alert(
        AlertType.ARBITRAGE, "A", ("BX", "PSX"), 7, 9, Severity.CRITICAL, {"kind": "locked", "edge": 0}
    )
    assert alert_from_json(alert_json(alert)) == alert


def sequence(
    versions: list[tuple[int, Alert]], watermarks: list[int], seed: int
) -> list[tuple[str, str, Alert]]:
    """The versions in a random order of arrival, each watermark released in turn (after the versions
    emitted before it)."""
    rng = random.Random(seed)
    sequencer = AlertSequencer()
    out = []
    remaining = list(versions)
    for watermark in watermarks:
        due = [v for v in remaining if v[0] // MS < watermark]
        remaining = [v for v in remaining if v[0] // MS >= watermark]
        rng.shuffle(due)
        for at_ns, alert in due:
            sequencer.add(at_ns, alert_json(alert))
        if rng.random() < 0.5:
            sequencer = AlertSequencer.restore(sequencer.snapshot())
        out.extend(sequencer.release(watermark))
    return [(entry.stream_id, entry.type_stream_id, entry.alert) for entry in out]


def test_the_order_and_ids_do_not_depend_on_arrival() -> None:
    versions = [
        (5 * MS, halt("B", 5, None)),
        (5 * MS, halt("A", 5, None)),
        (5 * MS + 1, halt("C", 5, None)),
        (9 * MS, halt("A", 5, 9)),
        (12 * MS, Alert(AlertType.STALE, "A", ("BX",), 2 * MS, 12 * MS, Severity.WARNING)),
    ]
    first = sequence(versions, [6, 10, 20], seed=1)
    assert [(stream_id, type_id, alert.symbol) for stream_id, type_id, alert in first] == [
        ("5-0", "5-0", "A"),  # same millisecond: by alert id
        ("5-1", "5-1", "B"),
        ("5-2", "5-2", "C"),
        ("9-0", "9-0", "A"),
        ("12-0", "12-0", "A"),  # the stale stream's first entry
    ]
    for seed in range(2, 8):
        assert sequence(versions, [6, 10, 20], seed) == first
        assert sequence(versions, [3, 5, 6, 7, 9, 10, 13, 20], seed) == first


def test_a_version_of_a_released_millisecond_is_late_and_left_out() -> None:
    sequencer = AlertSequencer()
    sequencer.add(5 * MS, alert_json(halt("A", 5, None)))
    assert len(sequencer.release(6)) == 1
    sequencer.add(5 * MS + 3, alert_json(halt("B", 5, None)))
    assert sequencer.late == 1
    assert sequencer.release(100) == []
    assert sequencer.next_timer_ms() is None


def test_released_versions_become_stream_entries_and_the_symbols_latest_state() -> None:
    sequencer = AlertSequencer()
    sequencer.add(5 * MS, alert_json(halt("A", 5, None)))
    sequencer.add(9 * MS, alert_json(halt("A", 5, 9)))
    commands = parse_resp(b"".join(alert_commands(sequencer.release(10), "itchflow", 1000)))
    assert [command[:6] for command in commands if command[0] == "XADD"] == [
        ["XADD", "itchflow:alerts", "MAXLEN", "~", "1000", "5-0"],
        ["XADD", "itchflow:alerts:halt", "MAXLEN", "~", "1000", "5-0"],
        ["XADD", "itchflow:alerts", "MAXLEN", "~", "1000", "9-0"],
        ["XADD", "itchflow:alerts:halt", "MAXLEN", "~", "1000", "9-0"],
    ]
    first = fields_of(commands[0], 6)
    assert (first["type"], first["symbol"], first["venues"], first["end"], first["open"]) == (
        "halt",
        "A",
        "BX",
        "",
        "1",
    )
    hsets = [command for command in commands if command[0] == "HSET"]
    assert [command[1:3] for command in hsets] == [["itchflow:alert-state:A", "halt:BX"]] * 2
    assert json.loads(hsets[-1][3])["end_ns"] == 9 * MS
