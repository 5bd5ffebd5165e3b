"""The benchmark's verdict: streamed books against the offline reference, from hand-made inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from itchflow.bench.correctness import (
    StreamedBook,
    compare_bars,
    compare_books,
    expected_top,
    read_streamed_books,
)
from itchflow.bench.runner import BenchOptions, bar_intervals

BIDS = [[1_000_500, 300, 2], [1_000_400, 100, 1]]
ASKS = [[1_000_700, 200, 1]]


def reference_book(bids=BIDS, asks=ASKS, orders=4, unknown_refs=0, trade_count=7) -> dict:
    """One symbol as `itchflow book --json` reports it (only the fields the benchmark compares)."""
    return {
        "bids": bids,
        "asks": asks,
        "orders": orders,
        "unknown_refs": unknown_refs,
        "trade_count": trade_count,
    }


def streamed_book(bids=BIDS, asks=ASKS, **changes) -> StreamedBook:
    """The streamed book that equals :func:`reference_book`, with ``changes``."""
    top = (*(bids[0] if bids else (0, 0, 0)), *(asks[0] if asks else (0, 0, 0)))
    book = StreamedBook(
        clickhouse_bids=bids,
        clickhouse_asks=asks,
        redis_bids=bids,
        redis_asks=asks,
        redis_top=tuple(top),
        orders=4,
        unknown_refs=0,
        printable_trades=7,
        last_seq=41,
    )
    return dataclasses.replace(book, **changes)


def test_equal_books_have_no_differences() -> None:
    assert compare_books({"AAPL": reference_book()}, {"AAPL": streamed_book()}, {"AAPL": 41}) == []


def test_an_empty_book_has_an_all_zero_top() -> None:
    assert expected_top(reference_book(bids=[], asks=[])) == (0, 0, 0, 0, 0, 0)
    assert (
        compare_books({"X": reference_book(bids=[], asks=[])}, {"X": streamed_book(bids=[], asks=[])}) == []
    )


def test_one_share_off_in_redis_depth_is_a_difference() -> None:
    off = [[1_000_500, 299, 2], [1_000_400, 100, 1]]
    problems = compare_books({"AAPL": reference_book()}, {"AAPL": streamed_book(redis_bids=off)})
    assert problems == [f"AAPL: Redis depth bids {off} != {BIDS}"]


def test_clickhouse_depth_top_of_book_and_counters_are_each_compared() -> None:
    streamed = streamed_book(
        clickhouse_asks=[],
        redis_top=(1_000_500, 300, 2, 1_000_800, 200, 1),
        orders=5,
        unknown_refs=1,
        printable_trades=6,
        last_seq=40,
    )
    problems = compare_books({"AAPL": reference_book()}, {"AAPL": streamed}, {"AAPL": 41})
    assert [problem.split(":")[1].split(" ")[1] for problem in problems] == [
        "ClickHouse",
        "Redis",
        "resting",
        "unknown",
        "printable",
        "last",
    ]


def test_missing_and_extra_books_are_differences() -> None:
    problems = compare_books({"AAPL": reference_book()}, {"MSFT": streamed_book()})
    assert problems == [
        "MSFT: the pipeline has a book the reference does not",
        "AAPL: no book in ClickHouse/Redis",
    ]


def test_an_empty_reference_is_never_a_pass() -> None:
    assert compare_books({}, {}) != []


# --------------------------------------------------------------------------------- reading, with stubs


class StubResult:
    def __init__(self, rows: list[tuple]) -> None:
        self.result_rows = rows


class StubClickHouse:
    """Answers each query by the table it reads."""

    def __init__(self, tables: dict[str, list[tuple]]) -> None:
        self.tables = tables
        self.parameters: list[dict] = []

    def query(self, sql: str, parameters: dict) -> StubResult:
        self.parameters.append(parameters)
        table = next(name for name in self.tables if f"FROM {name} " in sql)
        return StubResult(self.tables[table])


class StubPipeline:
    def __init__(self, data: dict[str, dict]) -> None:
        self.data = data
        self.keys: list[str] = []

    def hgetall(self, key: str) -> None:
        self.keys.append(key)

    def execute(self) -> list[dict]:
        return [self.data.get(key, {}) for key in self.keys]


class StubRedis:
    def __init__(self, data: dict[str, dict]) -> None:
        self.data = data

    def pipeline(self, transaction: bool) -> StubPipeline:
        return StubPipeline(self.data)


def test_books_are_read_from_clickhouse_and_redis_as_the_order_book_job_writes_them() -> None:
    clickhouse = StubClickHouse(
        {
            "book_status": [("AAPL", 41, 4, 0), ("IDLE", 1, 0, 0)],
            "depth_snapshots": [
                ("AAPL", ([1_000_500, 1_000_400], [300, 100], [2, 1], [1_000_700], [200], [1]))
            ],
            "trades": [("AAPL", 7)],
        }
    )
    redis = StubRedis(
        {
            "itchflow:depth:V:AAPL": {b"bids": json.dumps(BIDS).encode(), b"asks": json.dumps(ASKS).encode()},
            "itchflow:tob:V:AAPL": {
                b"bid_px": b"1000500",
                b"bid_sz": b"300",
                b"bid_n": b"2",
                b"ask_px": b"1000700",
                b"ask_sz": b"200",
                b"ask_n": b"1",
                b"seq": b"41",
            },
        }
    )
    books = read_streamed_books(clickhouse, redis, "V")
    assert books["AAPL"] == streamed_book()
    assert books["IDLE"] == StreamedBook(last_seq=1)  # no depth rows, no Redis hashes: empty
    assert all(parameters == {"venue": "V"} for parameters in clickhouse.parameters)
    assert compare_books({"AAPL": reference_book()}, {"AAPL": books["AAPL"]}, {"AAPL": 41}) == []


# --- bars ------------------------------------------------------------------------------------------


def test_equal_bars_have_no_differences_and_each_difference_is_named() -> None:
    reference = {("AAPL", 60, 0): [100, 110, 90, 105, 300, 3], ("AAPL", 1, 0): [100, 100, 100, 100, 100, 1]}
    assert compare_bars(reference, dict(reference)) == []
    streamed = {("AAPL", 60, 0): [100, 110, 90, 104, 300, 3], ("MSFT", 1, 0): [1, 1, 1, 1, 1, 1]}
    assert compare_bars(reference, streamed) == [
        "AAPL 1 s bar at 0: missing in ClickHouse",
        "AAPL 60 s bar at 0: close 104 != 105",
        "MSFT 1 s bar at 0: in ClickHouse, not in the reference",
    ]
    assert compare_bars({}, streamed) == ["the reference has no bars: nothing to compare"]


@pytest.mark.parametrize(
    ("pipeline", "job_args", "expected"),
    [
        ("market-data", (), (1, 60, 300)),
        ("market-data", ("--no-bars",), ()),
        ("split", (), (1, 60, 300)),
        ("market-data", ("--bar-intervals=5m,1s",), (1, 300)),
        ("market-data", ("--clickhouse-linger-ms=10", "--bar-intervals", "1m"), (60,)),
    ],
)
def test_the_bench_checks_the_bars_the_job_writes(pipeline: str, job_args: tuple, expected: tuple) -> None:
    assert bar_intervals(BenchOptions(pipeline=pipeline, job_args=job_args)) == expected
