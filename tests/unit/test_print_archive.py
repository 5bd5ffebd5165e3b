"""The day archive of a symbol's prints (itchflow.analytics.print_archive): finding a print by match
number, a window's unbroken prints of one bar size, packed rows, its size per print."""

from __future__ import annotations

from itchflow.analytics.print_archive import ROW, DayArchive

S = 1_000_000_000
DAY = 18_260
ONE_S, ONE_M = 0b01, 0b10  # interval bits: 1 s and 1 m bars


def archive_of(*rows: tuple[int, int, int, int, int, int]) -> DayArchive:
    archive = DayArchive(DAY)
    for ts, seq, match, price, shares, counted in rows:
        archive.append((ts, seq, match, price, shares), counted)
    return archive


def test_find_takes_the_newest_unbroken_print_with_the_match_number() -> None:
    archive = archive_of(
        (1 * S, 1, 7, 100, 10, ONE_S), (2 * S, 2, 8, 101, 10, ONE_S), (3 * S, 3, 7, 102, 10, ONE_S)
    )
    assert archive.find(7) == 2
    assert archive.mark_broken(2) == ONE_S
    assert archive.find(7) == 0  # a file that repeats a match number: the next break takes the older
    archive.mark_broken(0)
    assert archive.find(7) == -1
    assert archive.find(99) == -1


def test_find_reaches_prints_older_than_the_recent_ones() -> None:
    archive = archive_of(*[(i * S, i, 1_000 + i, 100, 1, ONE_S) for i in range(1_000)])
    assert archive.find(1_003) == 3
    archive.mark_broken(3)
    assert archive.find(1_003) == -1
    assert archive.find(1_999) == 999


def test_a_window_holds_the_unbroken_prints_that_counted_in_that_size() -> None:
    archive = archive_of(
        (59 * S, 1, 1, 100, 10, ONE_S | ONE_M),
        (60 * S, 2, 2, 101, 10, ONE_S | ONE_M),
        (60 * S + 5, 3, 3, 102, 10, ONE_M),  # late for its 1 s bar
        (61 * S, 4, 4, 103, 10, ONE_S | ONE_M),
        (119 * S, 5, 5, 104, 10, ONE_S | ONE_M),
        (120 * S, 6, 6, 105, 10, ONE_S | ONE_M),
    )
    archive.mark_broken(3)
    assert [p[2] for p in archive.window(ONE_M, 60 * S, 120 * S)] == [2, 3, 5]
    assert [p[2] for p in archive.window(ONE_S, 60 * S, 61 * S)] == [2]


def test_prints_out_of_order_are_found_without_bisection() -> None:
    archive = archive_of((70 * S, 1, 1, 100, 10, ONE_M), (65 * S, 2, 2, 100, 10, ONE_M), (130 * S, 3, 3, 1, 1, ONE_M),
                         (61 * S, 4, 4, 100, 10, ONE_M))  # fmt: skip
    assert sorted(p[2] for p in archive.window(ONE_M, 60 * S, 120 * S)) == [1, 2, 4]


def test_rows_round_trip_with_their_flags() -> None:
    archive = archive_of((1 * S, 1, 1, 100, 10, ONE_S), (2 * S, 2, 2, 101, 20, ONE_S | ONE_M))
    archive.mark_broken(0)
    copy = DayArchive(DAY)
    copy.extend(archive.rows())
    assert len(copy) == 2 and copy.rows() == archive.rows()
    assert copy.find(1) == -1 and copy.find(2) == 1


def test_a_print_takes_41_bytes() -> None:
    archive = archive_of(*[(i * S, i, i, 100, 1, ONE_S) for i in range(10_000)])
    assert ROW.size == 41
    assert archive.nbytes == 41 * 10_000
