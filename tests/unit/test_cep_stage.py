"""The streaming stage's alerts are ``itchflow detect``'s, however the venues' records interleave,
wherever the watermark stands, and across snapshots and restores."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from itchflow import synth
from itchflow.cep.alerts import Alert
from itchflow.cep.detectors import DetectorConfig, Event, final_alerts
from itchflow.cep.files import detect_files, venue_events
from itchflow.cep.stage import CepStage

DAY = date(2020, 1, 2)
CONFIG = DetectorConfig(arbitrage_min_ms=50, stale_after_ms=20_000)


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    """Two venues' independent feeds of the same tickers: their prices differ, so they lock and cross
    each other all day, and quiet symbols go stale."""
    folder = tmp_path_factory.mktemp("cep")
    feeds = []
    for seed, venue in ((7, "BX"), (8, "NASDAQ")):
        path = folder / f"{venue}.itch"
        synth.write(path, symbols=12, messages=8_000, seed=seed)
        feeds.append((venue, path))
    return feeds


def records_of(events: list[Event], rng: random.Random) -> list[list[Event]]:
    """A venue's events cut into records of 1 .. 200 events."""
    records, start = [], 0
    while start < len(events):
        size = rng.randint(1, 200)
        records.append(events[start : start + size])
        start += size
    return records


def streamed(
    venues: list[tuple[str, Path]], seed: int, restore_every: int | None, config: DetectorConfig = CONFIG
) -> list[Alert]:
    """The venues' records in a random interleaving (each venue's in order), each followed by the
    watermark such a source would have: no venue sends an event before its latest record's first."""
    rng = random.Random(seed)
    queues = {venue: records_of(list(venue_events(venue, path, DAY)), rng) for venue, path in venues}
    latest = {venue: -(2**63) for venue in queues}
    stage = CepStage(config)
    emitted: list[Alert] = []
    steps = 0
    while any(queues.values()):
        venue = rng.choice([venue for venue, queue in queues.items() if queue])
        record = queues[venue].pop(0)
        latest[venue] = record[0].ts_event
        watermark = min(
            (latest[v] if queues[v] else 2**62) for v in queues
        )  # a finished venue holds nothing back
        emitted.extend(stage.record(watermark, record).alerts)
        steps += 1
        if restore_every and steps % restore_every == 0:
            stage = CepStage.restore(stage.snapshot(), config)
    emitted.extend(stage.close_all().alerts)
    return emitted


def test_the_offline_run_finds_crossings_and_stale_symbols(venues: list[tuple[str, Path]]) -> None:
    kinds = {str(alert.type) for alert in detect_files(venues, DAY, CONFIG)}
    assert {"arbitrage", "stale"} <= kinds  # the comparisons below compare something


@pytest.mark.parametrize(("seed", "restore_every"), [(1, None), (2, None), (3, 7), (4, 1)])
def test_the_stage_gives_the_offline_alerts(
    venues: list[tuple[str, Path]], seed: int, restore_every: int | None
) -> None:
    assert final_alerts(streamed(venues, seed, restore_every)) == detect_files(venues, DAY, CONFIG)


def test_every_closed_alert_follows_at_most_one_open_version(venues: list[tuple[str, Path]]) -> None:
    emitted = streamed(venues, 5, None)
    seen: dict[str, list[bool]] = {}
    for alert in emitted:
        seen.setdefault(alert.alert_id, []).append(alert.is_open)
    assert all(versions in ([False], [True, False]) for versions in seen.values()), seen


def test_an_event_behind_the_released_watermark_is_applied_and_counted() -> None:
    from itchflow.cep.detectors import Activity, SystemEvent

    stage = CepStage(CONFIG)
    stage.record(1_000, [SystemEvent(10, "A", "Q")])
    output = stage.record(1_000, [Activity(500, "A", "AAPL")])
    assert output.late == 1
    assert stage.detectors.last_event_ns == 500


def test_next_timer_is_the_first_millisecond_after_what_is_pending() -> None:
    from itchflow.cep.detectors import Activity

    stage = CepStage(CONFIG)
    assert stage.next_timer_ms() is None
    stage.record(0, [Activity(2_500_000, "A", "AAPL")])
    assert stage.next_timer_ms() == 3


def test_the_watermark_alone_opens_an_episode_once_it_is_certain() -> None:
    from itchflow.cep.detectors import Activity, SystemEvent

    stage = CepStage(CONFIG)
    stage.record(0, [SystemEvent(1_000, "A", "Q"), Activity(2_000, "A", "AAPL")])
    assert stage.fire(2_000 + 20_000 * 1_000_000).alerts == []  # quiet exactly the threshold: not yet
    [alert] = stage.fire(2_001 + 20_000 * 1_000_000).alerts
    assert (alert.type, alert.start_ns, alert.end_ns) == ("stale", 2_000, None)
