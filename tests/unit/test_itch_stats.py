"""``itchflow itch stats``: counts, symbols, time span, errors; text and JSON output; user errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from itchflow.errors import UserError
from itchflow.itch import cli as itch_cli
from itchflow.itch.codec import encode
from itchflow.itch.messages import AddOrder, CrossTrade, OrderDelete, StockDirectory, SystemEvent, Trade
from itchflow.itch.stats import compute_stats, format_timestamp
from tests.samples import SAMPLES

T0 = 34_200_000_000_000  # 09:30:00
DATA = SAMPLES


def directory(locate: int, stock: str) -> StockDirectory:
    return StockDirectory(
        locate, 0, T0 - 1_000, stock, "Q", "N", 100, "N", "C", "Z", "P", "N", " ", "1", "N", 0, "N"
    )


FEED = [
    SystemEvent(0, 0, T0 - 2_000, "O"),
    directory(1, "AAPL"),
    directory(2, "MSFT"),
    AddOrder(1, 0, T0 + 10, 1, "B", 100, "AAPL", 1_900_000),
    AddOrder(3, 0, T0 + 20, 2, "S", 100, "ZZZZ", 100),  # symbol never in the directory
    Trade(2, 0, T0 + 30, 0, "B", 5, "MSFT", 4_000_000, 1),
    CrossTrade(4, 0, T0 + 40, 0, "QQQ", 3_900_000, 2, "O"),
    OrderDelete(1, 0, T0 + 5, 1),  # timestamps need not be monotonic: first/last are in file order
]


def write_feed(path: Path, extra: bytes = b"") -> Path:
    path.write_bytes(b"".join(len(p).to_bytes(2, "big") + p for p in map(encode, FEED)) + extra)
    return path


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="itchflow")
    itch_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_stats_count_types_symbols_and_time_span(tmp_path: Path) -> None:
    stats = compute_stats(write_feed(tmp_path / "f.itch"))
    assert stats.messages == 8
    assert stats.by_type == {"S": 1, "R": 2, "A": 2, "D": 1, "P": 1, "Q": 1}
    assert stats.symbols == ("AAPL", "MSFT", "QQQ", "ZZZZ")
    assert (stats.first_timestamp, stats.last_timestamp) == (T0 - 2_000, T0 + 5)
    assert (stats.errors, stats.format) == (0, "standard")


def test_stats_count_errors_instead_of_raising(tmp_path: Path) -> None:
    stats = compute_stats(write_feed(tmp_path / "f.itch", extra=b"\x00\x13D\x00"))
    assert stats.messages == 8
    assert stats.errors == 1
    assert "truncated" in stats.error_samples[0]


def test_json_output_is_one_object_with_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["itch", "stats", str(write_feed(tmp_path / "f.itch")), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 8
    assert report["by_type"]["A"] == 2
    assert report["symbols"] == ["AAPL", "MSFT", "QQQ", "ZZZZ"]
    assert report["errors"] == 0


def test_text_output_and_exit_code_one_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["itch", "stats", str(write_feed(tmp_path / "f.itch", extra=b"\xff"))]) == 1
    out = capsys.readouterr().out
    assert "messages   8" in out
    assert "first      09:29:59.999998000" in out
    assert "errors     1" in out
    assert "A  AddOrder" in out


def test_missing_file_and_directory_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        run(["itch", "stats", str(tmp_path / "nope.itch")])
    with pytest.raises(UserError, match="is a directory"):
        run(["itch", "stats", str(tmp_path)])


def test_unreadable_file_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_feed(tmp_path / "f.itch")

    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(itch_cli, "compute_stats", refuse)
    with pytest.raises(UserError, match="cannot read .*Permission denied"):
        run(["itch", "stats", str(path)])


def test_format_timestamp() -> None:
    assert format_timestamp(T0 + 1) == "09:30:00.000000001"
    assert format_timestamp(None) == "-"


def test_stats_of_the_zero_prefix_sample_through_the_real_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from itchflow.cli import main

    assert main(["itch", "stats", str(DATA / "RITCH_ex20101224.TEST_ITCH_50.gz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 12_012
    assert report["symbols"] == ["ALC", "BOB", "CHAR"]
    assert report["format"] == "zero-prefix (gzip)"
