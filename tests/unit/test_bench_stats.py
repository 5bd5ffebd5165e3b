"""The benchmark's arithmetic, checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from itchflow.bench.stats import (
    SentBatch,
    checkpoint_triggers,
    match_arrivals,
    percentile,
    rate,
    split_near_checkpoints,
    stage_window,
    summarize_checkpoints,
    summarize_latencies,
)

MS = 1_000_000  # nanoseconds


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # rank 1.5: halfway between 2 and 3
        ([10.0, 20.0, 30.0, 40.0, 50.0], 25, 20.0),  # rank 1 exactly
        (list(range(1, 101)), 99, 99.01),  # rank 98.01: 99 + 0.01 * (100 - 99)
        ([0.0, 100.0], 99, 99.0),
    ],
)
def test_percentile_interpolates_between_the_nearest_ranks(values, q, expected) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_refuses_no_values_and_out_of_range_ranks() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds_whatever_the_input_order() -> None:
    summary = summarize_latencies([3 * MS, 1 * MS, 2 * MS, 10 * MS])
    assert summary is not None
    assert summary.samples == 4
    assert summary.p50 == pytest.approx(2.5)
    assert summary.p99 == pytest.approx(3 + 0.97 * 7)  # rank 2.97 of [1, 2, 3, 10]
    assert summary.max == pytest.approx(10.0)
    assert summary.mean == pytest.approx(4.0)
    assert set(summary.to_dict()) == {"p50", "p99", "max", "mean", "samples"}


def test_no_latencies_summarize_to_none() -> None:
    assert summarize_latencies([]) is None


def test_each_arrival_is_timed_from_the_batch_that_carried_its_seq() -> None:
    sent = {
        "AAPL": [SentBatch(0, 3, 1_000), SentBatch(3, 2, 5_000)],  # seqs 0-2 at 1000, 3-4 at 5000
        "MSFT": [SentBatch(0, 1, 2_000)],
    }
    arrivals = [("AAPL", 0, 1_500), ("AAPL", 2, 1_700), ("AAPL", 3, 9_000), ("MSFT", 0, 2_100)]
    pairs, unmatched = match_arrivals(arrivals, sent)
    assert pairs == [(1_500, 500), (1_700, 700), (9_000, 4_000), (2_100, 100)]  # (arrived, latency)
    assert unmatched == 0


def test_arrivals_no_batch_carried_are_counted_not_guessed() -> None:
    sent = {"AAPL": [SentBatch(5, 2, 1_000)]}  # seqs 5 and 6 only
    arrivals = [("AAPL", 4, 2_000), ("AAPL", 7, 2_000), ("IBM", 0, 2_000), ("AAPL", 6, 1_250)]
    assert match_arrivals(arrivals, sent) == ([(1_250, 250)], 3)


def test_entries_that_arrive_within_the_shadow_of_a_checkpoint_are_split_off() -> None:
    ms = 1_000_000  # ns
    pairs = [
        (999 * ms, 1),  # before the first trigger
        (1_000 * ms, 2),  # at it
        (2_000 * ms, 3),  # 1000 ms after it: still near (inclusive)
        (2_001 * ms, 4),
        (5_500 * ms, 5),  # 500 ms after the second
        (7_000 * ms, 6),
    ]
    near, elsewhere = split_near_checkpoints(pairs, [5_000.0, 1_000.0], after_ms=1_000.0)
    assert near == [2, 3, 5]
    assert elsewhere == [1, 4, 6]
    assert split_near_checkpoints(pairs, [], after_ms=1_000.0) == ([], [1, 2, 3, 4, 5, 6])


def test_checkpoint_triggers_of_a_window_include_failed_ones_but_not_savepoints() -> None:
    history = [
        checkpoint(1, 500, 9_999),
        checkpoint(3, 3_000, 200),
        checkpoint(2, 1_000, 100),
        checkpoint(5, 3_500, 0, status="FAILED"),
        checkpoint(6, 3_600, 5_000, is_savepoint=True),
        checkpoint(7, 9_000, 8_888),
    ]
    assert checkpoint_triggers(history, (1_000, 4_000)) == [1_000.0, 3_000.0, 3_500.0]


def test_stage_window_runs_from_the_last_idle_sample_to_the_first_final_one() -> None:
    samples = [(0.0, 10.0), (1.0, 10.0), (2.0, 40.0), (3.0, 90.0), (4.0, 100.0), (5.0, 100.0)]
    window = stage_window(samples)
    assert window is not None
    assert (window.started, window.finished, window.count) == (1.0, 4.0, 90.0)
    assert window.seconds == 3.0


def test_a_counter_that_never_moved_has_no_window() -> None:
    assert stage_window([(0.0, 5.0), (1.0, 5.0)]) is None
    assert stage_window([(0.0, 5.0)]) is None


def test_rate_of_no_time_is_zero() -> None:
    assert rate(100, 4) == 25
    assert rate(100, 0) == 0.0


def checkpoint(id_: int, triggered_ms: int, duration_ms: int, status: str = "COMPLETED", **extra) -> dict:
    return {
        "id": id_,
        "status": status,
        "trigger_timestamp": triggered_ms,
        "end_to_end_duration": duration_ms,
        "state_size": 1_000_000 * id_,
        "is_savepoint": False,
        **extra,
    }


def test_checkpoints_outside_the_window_and_savepoints_are_left_out() -> None:
    history = [
        checkpoint(1, 500, 9_999),  # before the run
        checkpoint(2, 1_000, 100),
        checkpoint(3, 2_000, 300),
        checkpoint(4, 3_000, 200),
        checkpoint(5, 3_500, 0, status="FAILED"),
        checkpoint(6, 3_600, 5_000, is_savepoint=True),
        checkpoint(7, 9_000, 8_888),  # after it
    ]
    summary = summarize_checkpoints(history, (1_000, 4_000))
    assert summary == {"completed": 3, "failed": 1, "p50": 200.0, "max": 300.0, "state_mb": 4.0}


def test_no_checkpoints_summarize_to_empty_durations() -> None:
    assert summarize_checkpoints([], (0, 1)) == {
        "completed": 0,
        "failed": 0,
        "p50": None,
        "max": None,
        "state_mb": 0.0,
    }


def test_describe_ms_gives_interpolated_percentiles_worked_by_hand() -> None:
    from itchflow.bench.stats import describe_ms

    # 1..100 ms: rank q/100 * 99 -> p50 50.5, p90 90.1, p99 99.01
    text = describe_ms(float(v) for v in reversed(range(1, 101)))
    assert text == "p50    50.5  p90    90.1  p99    99.0  max   100.0 ms  (n=100)"
    assert describe_ms([]) == "none"
