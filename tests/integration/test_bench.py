"""`itchflow bench` end to end on a local stack: a small run whose result is complete and correct.

No timing thresholds: the machine is shared; the benchmark's numbers are for people to read.
"""

from __future__ import annotations

import json

import pytest

from itchflow.bench.report import missing_keys
from itchflow.config import StackConfig

from .stackutil import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench_result(local_stack: StackConfig) -> dict:
    completed = run_cli(
        local_stack,
        *("bench", "--messages", "50000", "--symbols", "50", "--parallelism", "1"),
        *("--latency-rate", "5000", "--latency-messages", "5000", "--json", "--cpp"),
        timeout=900,
    )
    return json.loads(completed.stdout)


def test_a_small_bench_reports_every_field_and_a_correct_result(bench_result: dict) -> None:
    assert missing_keys(bench_result) == []
    assert bench_result["correct"] is True, bench_result["mismatches"]
    assert bench_result["messages"] == 50_000 and bench_result["symbols"] == 50
    assert bench_result["msgs_per_s"] > 0
    assert bench_result["stages"]["replay"]["msgs_per_s"] > 0
    assert set(bench_result["run"]["jobs"]) == {"market_data"}  # the default pipeline: one job
    assert bench_result["peak_rss_mb"] > 0


def test_latency_is_measured_on_stream_entries_that_all_match_a_sent_batch(bench_result: dict) -> None:
    latency = bench_result["latency_ms"]
    assert latency["samples"] > 0 and latency["unmatched"] == 0
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]


def test_the_bar_publish_delay_counts_the_latency_phases_firings(bench_result: dict) -> None:
    """The default job writes bars, and the paced phase moves event time past many of their windows."""
    bars = bench_result["latency_ms"]["bar_publish_ms"]
    assert bars["firings"] > 0
    assert 0 < bars["p50"] <= bars["p99"] <= bars["max"]


def test_the_cpp_parsers_ran_on_the_same_file(bench_result: dict) -> None:
    for name, result in bench_result["cpp"].items():
        assert "error" in result or result["messages"] == 50_000, name


def test_the_run_cleans_up_its_jobs_and_topics(local_stack: StackConfig, bench_result: dict) -> None:
    from kafka import KafkaAdminClient

    from itchflow.flinkctl import list_jobs

    states = {job.job_id: job.state for job in list_jobs(local_stack.flink_rest_url)}
    assert all(
        states.get(job_id) in ("CANCELED", "CANCELLING") for job_id in bench_result["run"]["jobs"].values()
    )
    for job_id in bench_result["run"]["jobs"].values():  # retained on cancellation, deleted by the bench
        assert not [folder for folder in local_stack.job_checkpoint_folders(job_id) if folder.exists()]
    admin = KafkaAdminClient(bootstrap_servers=local_stack.bootstrap_servers)
    try:
        assert not [name for name in admin.list_topics() if name.startswith("itchflow-bench-")]
    finally:
        admin.close()
