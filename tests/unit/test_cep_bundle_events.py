"""The job's path to the detectors -- replay bundles per shard, normalized, applied to the books,
turned into events by ``bundle_events`` and released by the stage per key -- gives exactly the
alerts of ``itchflow detect``, and the planted ones."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pytest

from itchflow import synth_venues
from itchflow.cep.alerts import Alert
from itchflow.cep.bundle_events import activity_resolution_ns, bundle_events
from itchflow.cep.detectors import Activity, DetectorConfig, Event, final_alerts
from itchflow.cep.files import detect_files
from itchflow.cep.stage import CepStage
from itchflow.normalize import normalize_bundle
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.partition_books import PartitionBooks, top_and_depth
from itchflow.replay import BundleBatcher, file_payloads

DAY = date(2020, 1, 2)
CONFIG = DetectorConfig(arbitrage_min_ms=100, stale_after_ms=60_000)
VENUES = ["NASDAQ", "BX", "PSX"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cep") / "day"
    plants = {"crossings": 3, "stale": 2, "halts": 1, "pauses": 1}
    synth_venues.write(directory, VENUES, 10, 90_000, 11, plants=plants, keepalive_ms=20_000)
    return directory


def feeds_of(directory: Path) -> list[tuple[str, Path]]:
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    return [(venue, directory / name) for venue, name in truth["files"].items()]


def shard_records(
    feeds: list[tuple[str, Path]], partitions: int, batch_size: int, resolution_ns: int
) -> dict[int, dict[str, list[list[Event]]]]:
    """shard -> venue -> each record's events, as the market-data job makes them."""
    books: dict[int, PartitionBooks] = {}
    records: dict[int, dict[str, list[list[Event]]]] = {}
    for venue, path in feeds:
        batcher = BundleBatcher(partitions, batch_size, float("inf"), lambda: 0.0, venue=venue)
        closed = [bundle for payload in file_payloads(path) for bundle in batcher.add(payload)]
        closed.extend(batcher.flush())
        for bundle in closed:
            envelope = bundle.envelope(venue=venue, trading_date=DAY, session="s", produced_at_ns=0)
            result = normalize_bundle(envelope)
            assert not result.rejected, result.rejected
            shard_books = books.setdefault(bundle.shard, PartitionBooks(BookStageConfig()))
            tops, _ = top_and_depth(shard_books.apply_bundle(result.bundle, 0))
            events = bundle_events(result.bundle, tops, resolution_ns)
            records.setdefault(bundle.shard, {}).setdefault(venue, []).append(events)
    return records


def streamed(records: dict[int, dict[str, list[list[Event]]]], seed: int) -> list[Alert]:
    """Each shard's records of every venue in a random interleaving, each venue's in order, with the
    watermark the shard's source could have (no venue sends anything before its latest record's start)."""
    rng = random.Random(seed)
    emitted: list[Alert] = []
    for by_venue in records.values():
        queues = {
            venue: [record for record in venue_records if record] for venue, venue_records in by_venue.items()
        }
        latest = dict.fromkeys(queues, -(2**63))
        stage = CepStage(CONFIG)
        while any(queues.values()):
            venue = rng.choice([venue for venue, queue in queues.items() if queue])
            record = queues[venue].pop(0)
            latest[venue] = record[0].ts_event
            watermark = min(latest[v] if queues[v] else 2**62 for v in queues)
            emitted.extend(stage.record(watermark, record).alerts)
        emitted.extend(stage.close_all().alerts)
    return emitted


@pytest.mark.parametrize(("partitions", "batch_size", "seed"), [(1, 400, 1), (4, 2_000, 2), (3, 150, 3)])
def test_the_job_path_gives_the_offline_alerts_and_the_planted_ones(
    planted: Path, partitions: int, batch_size: int, seed: int
) -> None:
    feeds = feeds_of(planted)
    records = shard_records(feeds, partitions, batch_size, activity_resolution_ns(CONFIG.stale_after_ms))
    offline = detect_files(feeds, DAY, CONFIG)
    assert {str(alert.type) for alert in offline} == {"arbitrage", "stale", "halt", "luld_pause"}
    # every key ends open episodes at its last event: the venues' last System Event, which every shard gets
    assert final_alerts(streamed(records, seed)) == offline


def test_activity_is_thinned_to_the_first_and_last_message_of_each_bucket(planted: Path) -> None:
    feeds = feeds_of(planted)
    coarse = shard_records(feeds, 1, 5_000, activity_resolution_ns(CONFIG.stale_after_ms))
    fine = shard_records(feeds, 1, 5_000, 1)  # a bucket per nanosecond: every message
    count = lambda records: sum(  # noqa: E731
        isinstance(event, Activity)
        for by_venue in records.values()
        for venue_records in by_venue.values()
        for record in venue_records
        for event in record
    )
    assert count(coarse) * 3 < count(fine) * 2  # a quiet day: a few messages per bucket and pair
    # ... and a thinning coarser than half the threshold would find false stale stretches
    too_coarse = shard_records(feeds, 1, 5_000, activity_resolution_ns(CONFIG.stale_after_ms) * 3)
    stale = lambda alerts: [a for a in alerts if a.type == "stale"]  # noqa: E731
    assert len(stale(final_alerts(streamed(too_coarse, 1)))) > len(stale(detect_files(feeds, DAY, CONFIG)))
