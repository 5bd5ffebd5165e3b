"""``itchflow book``: the offline reference run, checked against hand-worked expectations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from itchflow import synth
from itchflow.cli import main
from tests.samples import SAMPLES

DATA = SAMPLES
MEATPY = DATA / "meatpy_sample.itch50"

# Worked by hand from the 20 messages of meatpy_sample.itch50 (S O, S S, R MEAT=1, R PYTH=2, S Q, ...):
#   A 1001 B 200 MEAT @100.00    A 1002 B 100 @99.95    A 1003 S 150 @100.05    A 1004 S 200 @100.10
#   A 2001 B  50 PYTH @42.50     A 2002 S  75 @42.75
#   E 1003 150 (match 9001, 09:30:00.004): 1003 fully executed at its own price 100.05
#   P MEAT 150 @100.05 (match 9001, same time): a non-cross print, book untouched
#   A 1005 S 100 MEAT @100.05    X 1002 50 -> 50 left    D 1001
#   E 2002 75 (match 9002, 09:30:00.006): fully executed at 42.75
#   S M, S E, S C
MEATPY_EXPECTED = {
    "depth": 5,
    "symbols": {
        "MEAT": {
            "bids": [[999500, 50, 1]],
            "asks": [[1000500, 100, 1], [1001000, 200, 1]],
            "last_trade": {
                "price": 1000500,
                "shares": 150,
                "timestamp": 34_200_004_000_000,
                "match_number": 9001,
            },
            "orders": 3,
            "unknown_refs": 0,
            "overfills": 0,
            "duplicate_refs": 0,
            "invalid_messages": 0,
            "trade_count": 2,  # the E and the P both print (the sample reports the same match twice)
            "traded_shares": 300,
            "messages": {"A": 5, "D": 1, "E": 1, "P": 1, "X": 1},
            "integrity": [],
        },
        "PYTH": {
            "bids": [[425000, 50, 1]],
            "asks": [],
            "last_trade": {
                "price": 427500,
                "shares": 75,
                "timestamp": 34_200_006_000_000,
                "match_number": 9002,
            },
            "orders": 1,
            "unknown_refs": 0,
            "overfills": 0,
            "duplicate_refs": 0,
            "invalid_messages": 0,
            "trade_count": 1,
            "traded_shares": 75,
            "messages": {"A": 2, "E": 1},
            "integrity": [],
        },
    },
    "totals": {
        "messages": 20,
        "message_counts": {"A": 7, "D": 1, "E": 2, "P": 1, "R": 2, "S": 6, "X": 1},
        "symbols": 2,
        "orders": 4,
        "unknown_refs": 0,
        "overfills": 0,
        "duplicate_refs": 0,
        "invalid_messages": 0,
        "trade_count": 3,
        "traded_shares": 375,
        "unrouted_messages": 0,
        "locate_conflicts": 0,
    },
}


def run_json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main(["book", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_meatpy_sample_equals_the_hand_worked_book(capsys: pytest.CaptureFixture) -> None:
    assert run_json(capsys, str(MEATPY)) == MEATPY_EXPECTED


def test_depth_and_symbol_filter(capsys: pytest.CaptureFixture) -> None:
    report = run_json(capsys, str(MEATPY), "--depth", "1", "--symbol", "MEAT")
    assert list(report["symbols"]) == ["MEAT"]
    assert report["symbols"]["MEAT"]["asks"] == [[1000500, 100, 1]]
    assert report["depth"] == 1


def test_readable_output_shows_each_symbol_and_the_totals(capsys: pytest.CaptureFixture) -> None:
    assert main(["book", str(MEATPY)]) == 0
    out = capsys.readouterr().out
    assert "MEAT: live orders 3, last 150 @ 100.0500 at 09:30:00.004000000" in out
    assert "99.9500 | 100.0500" in out
    assert "PYTH: live orders 1" in out
    assert "totals: 20 messages" in out
    assert "replayed 20 messages in" in out  # with decode and book rates


def test_real_capture_with_unknown_orders_is_reported_not_fatal(capsys: pytest.CaptureFixture) -> None:
    report = run_json(capsys, str(DATA / "RITCH_ex20101224.TEST_ITCH_50.gz"))
    assert report["totals"]["messages"] == 12_012
    assert report["totals"]["unknown_refs"] > 0
    assert sorted(report["symbols"]) == ["ALC", "BOB", "CHAR"]


def test_synthetic_file_books_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "feed.itch"
    synth.write(path, 4, 5_000, 3)
    report = run_json(capsys, str(path))
    assert report["totals"]["messages"] == 5_000
    assert report["totals"]["unknown_refs"] == report["totals"]["overfills"] == 0
    assert sorted(report["symbols"]) == ["AAAA", "AAAB", "AAAC", "AAAD"]
    assert all(entry["integrity"] == [] for entry in report["symbols"].values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["does-not-exist.itch"], "no such file"),
        ([str(MEATPY), "--depth", "-1"], "--depth must be zero or more"),
        ([str(MEATPY), "--symbol", "NOPE"], "not in the file: NOPE"),
    ],
)
def test_user_mistakes_are_readable_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["book", *argv]) == 1
    assert message in capsys.readouterr().err


def test_garbage_file_is_a_readable_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "garbage.itch"
    path.write_bytes(MEATPY.read_bytes()[:100] + b"\x00\x24\xff" + b"\x01" * 40)
    assert main(["book", str(path)]) == 1
    assert "not a readable ITCH 5.0 file" in capsys.readouterr().err
