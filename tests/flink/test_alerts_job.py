"""The market-data job's cross-venue alerts on a local mini-cluster: a three-venue synthetic day with
planted crossings, stale stretches, halts and LULD pauses, replayed as ``itchflow replay --feed``
bundles it -- every planted event is one ``alerts`` episode exactly as the generator's truth file
says, and there is no other, at parallelism 1 and 2."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyflink.common import Row

from connectors.kafka import KEYED_RECORD, RECORD_HEADER
from itchflow import synth_venues
from itchflow.avro.bundle import encode_bundle
from itchflow.cep.detectors import DetectorConfig
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.replay import ClosedBundle, MergedFeeds, VenueBatchers
from jobs import market_data

from .conftest import _NEXT_OFFSETS, Collector, Outputs, balanced_key, decode_outputs, mini_cluster_env

pytestmark = pytest.mark.flink

DAY = date(2020, 1, 2)
VENUES = ["NASDAQ", "BX", "PSX"]
PLANTS = {"crossings": 3, "stale": 2, "halts": 1, "pauses": 1}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("alerts") / "day"
    synth_venues.write(directory, VENUES, 10, 60_000, 23, plants=PLANTS, keepalive_ms=20_000)
    return directory


def merged_records(directory: Path, partitions: int = 4, batch_size: int = 300) -> list[Row]:
    """The venues' files as one multi-venue replay produces them (bundles per venue and shard, a
    partition's bundles of every venue closed together), in event-time order, keyed and headed as
    the Kafka source gives them."""
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    merged = MergedFeeds([(venue, directory / name) for venue, name in truth["files"].items()])
    batcher = VenueBatchers(merged.venues, partitions, batch_size, float("inf"), lambda: 0.0)
    closed = list(batcher.add_tagged(merged))
    closed.extend(batcher.flush())
    closed.sort(key=ClosedBundle.earliest_timestamp)  # stable: each partition's order is kept
    midnight = midnight_epoch_ns(DAY)
    rows = []
    for bundle in closed:
        envelope = bundle.envelope(venue=bundle.venue, trading_date=DAY, session="s", produced_at_ns=0)
        header = RECORD_HEADER.pack(
            bundle.partition, _NEXT_OFFSETS[bundle.partition], 0, midnight + bundle.earliest_timestamp(), 0
        )
        _NEXT_OFFSETS[bundle.partition] += 1
        rows.append(Row(balanced_key(bundle.key), header + encode_bundle(envelope)))
    return rows


def final_episodes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest version of each episode, in the truth file's terms, sorted as the truth is."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["alert_id"] not in latest or latest[row["alert_id"]]["revision"] <= row["revision"]:
            latest[row["alert_id"]] = row
    episodes = [
        {
            "type": row["type"],
            "symbol": row["symbol"],
            "venues": row["venues"],
            "start_ns": row["start"],
            "end_ns": None if row["is_open"] else row["end"],
            "details": json.loads(row["details"]),
        }
        for row in latest.values()
    ]
    return sorted(episodes, key=lambda e: (e["start_ns"], e["type"], e["symbol"], e["venues"]))


@pytest.fixture(scope="module")
def runs(day: Path) -> dict[int, Outputs]:
    """The job's outputs at parallelism 1 and 2."""
    outputs = {}
    for parallelism in (1, 2):
        env = mini_cluster_env(parallelism)  # first: the keys are salted by the project's Java helper
        rows = merged_records(day)
        collector = Collector()
        sinks = {name: collector.sink(name) for name in ("normalized", "dead-letters", "clickhouse", "redis")}
        source = lambda env, rows=rows: env.from_collection(rows, type_info=KEYED_RECORD)  # noqa: E731
        config = market_data.MarketDataConfig(alerts=DetectorConfig())  # the defaults: 100 ms, 60 s
        market_data.build(env, {"raw": source}, sinks, config)
        outputs[parallelism] = decode_outputs(collector.run(env))
    return outputs


def truth_of(day: Path) -> list[dict[str, Any]]:
    return json.loads((day / synth_venues.TRUTH_FILE).read_text())["alerts"]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_every_planted_event_is_one_alert_and_nothing_else(
    day: Path, runs: dict[int, Outputs], parallelism: int
) -> None:
    outputs = runs[parallelism]
    truth = truth_of(day)
    got = final_episodes(outputs.rows.get("alerts", []))
    names = {name for alert in truth for name in alert["details"]}
    assert [{**e, "details": {k: v for k, v in e["details"].items() if k in names}} for e in got] == truth
    assert {row["revision"] for row in outputs.rows["alerts"]} == {0, 1}  # open, then closed versions


@pytest.mark.parametrize("parallelism", [1, 2])
def test_the_redis_streams_hold_every_version_once_in_order_and_the_hash_the_latest(
    day: Path, runs: dict[int, Outputs], parallelism: int
) -> None:
    outputs = runs[parallelism]
    versions = outputs.rows["alerts"]
    ids = outputs.streams["itchflow:alerts"]
    assert len(ids) == len(versions)
    as_numbers = [tuple(map(int, entry.split("-"))) for entry in ids]
    assert as_numbers == sorted(as_numbers) and len(set(as_numbers)) == len(as_numbers)
    by_type: dict[str, int] = {}
    for row in versions:
        by_type[row["type"]] = by_type.get(row["type"], 0) + 1
    assert {kind: len(outputs.streams[f"itchflow:alerts:{kind}"]) for kind in by_type} == by_type
    for alert in truth_of(day):
        state = outputs.hashes[f"itchflow:alert-state:{alert['symbol']}"]
        latest = json.loads(state[f"{alert['type']}:{'+'.join(alert['venues'])}"])
        assert (latest["start_ns"], latest["end_ns"]) == (alert["start_ns"], alert["end_ns"])


def test_the_stream_ids_are_the_same_whatever_the_parallelism(runs: dict[int, Outputs]) -> None:
    assert runs[1].streams["itchflow:alerts"] == runs[2].streams["itchflow:alerts"]
