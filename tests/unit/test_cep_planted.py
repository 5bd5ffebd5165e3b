"""``itchflow detect`` over synthetic multi-venue days: every planted event found exactly as the
generator's truth file says, and no alert where nothing was planted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from itchflow import synth_venues
from itchflow.cli import main

VENUES = ["NASDAQ", "BX", "PSX"]
PLANTS = {"crossings": 5, "stale": 3, "halts": 2, "pauses": 2}
KEEPALIVE_MS = 20_000
STALE_AFTER_MS = 60_000  # between the keepalive and the shortest planted quiet (120 s)


def detect(directory: Path, capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, Any]:
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    feeds = [
        arg for venue, name in truth["files"].items() for arg in ("--feed", f"{venue}={directory / name}")
    ]
    capsys.readouterr()
    assert main(["detect", *feeds, "--stale-after-ms", str(STALE_AFTER_MS), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def as_truth(alert: dict[str, Any], detail_names: set[str]) -> dict[str, Any]:
    """An alert in the truth file's terms (the truth leaves out severity and max_edge)."""
    return {
        "type": alert["type"],
        "symbol": alert["symbol"],
        "venues": alert["venues"],
        "start_ns": alert["start_ns"],
        "end_ns": alert["end_ns"],
        "details": {name: value for name, value in alert["details"].items() if name in detail_names},
    }


@pytest.mark.parametrize("seed", [5, 6])
def test_every_planted_event_is_found_exactly_and_nothing_else(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "day"
    synth_venues.write(directory, VENUES, 20, 200_000, seed, plants=PLANTS, keepalive_ms=KEEPALIVE_MS)
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    report = detect(directory, capsys)
    names = {name for alert in truth["alerts"] for name in alert["details"]}
    assert [as_truth(alert, names) for alert in report["alerts"]] == truth["alerts"]
    assert report["counts"] == {"arbitrage": 5, "halt": 6, "luld_pause": 6, "stale": 3}
    assert report["venues"] == sorted(VENUES) and report["date"] == truth["date"]
    # the arbitrage alerts are the closed, whole episodes: max_edge is the start's (the symbol is still)
    assert all(
        alert["details"]["max_edge"] == alert["details"]["edge"] and alert["end_ns"] > alert["start_ns"]
        for alert in report["alerts"]
        if alert["type"] == "arbitrage"
    )


def test_a_clean_day_gives_no_alert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "clean"
    synth_venues.write(directory, VENUES, 12, 120_000, 7, keepalive_ms=KEEPALIVE_MS)
    assert detect(directory, capsys)["alerts"] == []


def test_a_shorter_minimum_still_finds_the_crossings_and_a_longer_one_drops_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "day"
    synth_venues.write(directory, VENUES, 20, 150_000, 8, plants={"crossings": 3}, keepalive_ms=KEEPALIVE_MS)
    assert detect(directory, capsys, "--arbitrage-min-ms", "0")["counts"] == {"arbitrage": 3}
    # planted crossings last 300 .. 3,000 ms
    assert detect(directory, capsys, "--arbitrage-min-ms", "3100")["counts"] == {}
