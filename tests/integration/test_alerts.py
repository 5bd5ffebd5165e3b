"""The cross-venue alerts end to end on the local stack: a three-venue synthetic day with planted
events, replayed in one paced run (``itchflow replay --feed ...``) into the market-data job with
``--alerts``, the TaskManager killed mid-replay -- every planted event is one episode in ClickHouse
``alerts`` as the truth file says, nothing else, and the Redis stream holds each version once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis

from itchflow import synth_venues
from itchflow.config import StackConfig, TopicSpec
from itchflow.demo import MARKET_DATA_JOBS, clickhouse_client, ensure_jobs, wait_until_applied
from itchflow.flinkctl import cancel, rest_get, wait_for_state
from itchflow.replay import ReplaySummary, make_producer, run_replay_feeds
from itchflow.stack import procs
from itchflow.stack.manager import Stack
from itchflow.stack.topics import ensure_topics

pytestmark = pytest.mark.integration

DAY = date(2021, 3, 1)
VENUES = ["NASDAQ", "BX", "PSX"]
PLANTS = {"crossings": 4, "stale": 3, "halts": 2, "pauses": 2}


RAW = "alerts-test-raw"
NORMALIZED = "alerts-test-normalized"
"""Topics of their own: the other tests' jobs read the shared ones from the start, and this day's
event time would move their watermarks past the days they replay after it."""


@pytest.fixture(scope="module")
def alert_job(local_stack: StackConfig):
    ensure_topics(
        local_stack, [TopicSpec(RAW, local_stack.partitions), TopicSpec(NORMALIZED, local_stack.partitions)]
    )
    job_args = ("--alerts", "--input-topic", RAW, "--output-topic", NORMALIZED)
    ids = ensure_jobs(local_stack, 2, log=lambda message: None, jobs=MARKET_DATA_JOBS, job_args=job_args)
    yield local_stack, ids
    for job_id in ids.values():
        cancel(local_stack.flink_rest_url, job_id)
        # gone before the next module submits a job of the same name
        wait_for_state(local_stack.flink_rest_url, job_id, {"CANCELED", "FAILED", "FINISHED"})


def closed_alerts(config: StackConfig, symbols: list[str]) -> list[dict[str, Any]]:
    rows = (
        clickhouse_client(config)
        .query(
            "SELECT type, symbol, venues, toUnixTimestamp64Nano(start), toUnixTimestamp64Nano(end), details "
            "FROM alerts FINAL WHERE trading_date = {day:Date} AND symbol IN {symbols:Array(String)} "
            "AND is_open = 0 ORDER BY start, type, symbol, venues",
            parameters={"day": DAY, "symbols": symbols},
        )
        .result_rows
    )
    return [
        {"type": kind, "symbol": symbol, "venues": list(venues), "start_ns": start, "end_ns": end,
         "details": json.loads(details)}
        for kind, symbol, venues, start, end, details in rows
    ]  # fmt: skip


def test_every_planted_alert_survives_a_taskmanager_kill_once(alert_job, tmp_path: Path) -> None:
    config, ids = alert_job
    directory = tmp_path / "day"
    synth_venues.write(
        directory, VENUES, 20, 240_000, 31, trading_date=DAY, plants=PLANTS, keepalive_ms=20_000
    )
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    feeds = [(venue, directory / name) for venue, name in truth["files"].items()]
    result: dict[str, ReplaySummary] = {}

    def replay() -> None:
        producer = make_producer(config.bootstrap_servers)
        try:
            result["summary"] = run_replay_feeds(
                feeds, producer, topic=RAW, venue="unused", trading_date=DAY, session="alerts-kill",
                batch_size=1000, linger_ms=10, speed=900, show_progress=False,
            )  # fmt: skip
        finally:
            producer.close()

    def completed() -> int:
        return sum(
            rest_get(config.flink_rest_url, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
            for job_id in ids.values()
        )

    before = completed()
    worker = threading.Thread(target=replay)  # the day's 6.5 h at 900x: ~26 s
    worker.start()
    time.sleep(8)
    deadline = time.monotonic() + 30
    while completed() <= before:  # a checkpoint with some of the day in it: the restore starts there
        assert time.monotonic() < deadline, "no checkpoint completed during the replay"
        time.sleep(0.5)
    assert worker.is_alive(), "the replay ended before the kill"
    taskmanager = procs.ProcessRegistry(config.run_dir).get("flink-taskmanager")
    assert taskmanager is not None and procs.is_alive(taskmanager)
    os.killpg(taskmanager.pid, signal.SIGKILL)  # a crash, not a clean stop
    time.sleep(3)
    Stack(config).up()  # a new TaskManager; Flink restores the job from its last checkpoint
    worker.join(timeout=300)
    summary = result["summary"]
    for venue, _ in feeds:
        wait_until_applied(config, venue, summary.last_seq_by_symbol(venue), timeout_s=600, show=False)
    for job_id in ids.values():
        assert rest_get(config.flink_rest_url, f"/jobs/{job_id}/checkpoints")["counts"]["restored"] >= 1

    expected = truth["alerts"]
    deadline = time.monotonic() + 120
    while len(got := closed_alerts(config, truth["symbols"])) < len(expected) and time.monotonic() < deadline:
        time.sleep(1)
    names = {name for alert in expected for name in alert["details"]}
    assert [{**a, "details": {k: v for k, v in a["details"].items() if k in names}} for a in got] == expected

    # Redis: each version of the day's alerts once in the stream of every alert, in id order -- every
    # planted episode opens (a halt at once, a stale stretch after 60 s, a crossing after 100 ms: all
    # last longer) and closes: two versions each
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    first_ms = min(a["start_ns"] for a in expected) // 1_000_000 - 24 * 3600 * 1000
    entries = [
        (entry_id, fields)
        for entry_id, fields in cache.xrange("itchflow:alerts", min=f"{first_ms}-0")
        if fields["symbol"] in truth["symbols"]
    ]
    versions = sorted(
        (fields["type"], fields["symbol"], fields["venues"], int(fields["start"]), fields["open"])
        for _, fields in entries
    )
    assert versions == sorted(
        (a["type"], a["symbol"], "+".join(a["venues"]), a["start_ns"], is_open)
        for a in expected
        for is_open in ("0", "1")
    )
    ids = [tuple(map(int, entry_id.split("-"))) for entry_id, _ in entries]
    assert ids == sorted(set(ids))
