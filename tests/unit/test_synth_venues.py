"""Multi-venue synthetic days, checked by reading the files back and replaying every venue's books
independently of the generator: one strictly increasing timeline, books never crossed, the consolidated
book locked or crossed exactly during the planted crossings, keepalive kept everywhere but in the planted
windows, and a truth file that says exactly what the files show."""

from __future__ import annotations

import heapq
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from itchflow import synth_venues
from itchflow.analytics.cli import trading_date_of
from itchflow.book.market import MarketBooks
from itchflow.cli import main
from itchflow.errors import UserError
from itchflow.itch.framing import iter_messages
from itchflow.normalize.clock import midnight_epoch_ns
from tests.unit.test_synth import walk_book_consistency

VENUES = ["NASDAQ", "BX", "PSX"]
SYMBOLS = 12
MESSAGES = 150_000
SEED = 3
PLANTS = {"crossings": 3, "stale": 3, "halts": 2, "pauses": 2}
KEEPALIVE_NS = 20_000 * 10**6
TRADING_DATE = date(2020, 1, 2)
MIDNIGHT = midnight_epoch_ns(TRADING_DATE)
OPEN_NS = (9 * 3600 + 30 * 60) * 10**9
CLOSE_NS = 16 * 3600 * 10**9
BOOK_TYPES = frozenset("AFECXDU")
HALT_TYPES = {"halt": ("H", "T1"), "luld_pause": ("P", "LUDP")}


@dataclass
class Day:
    directory: Path
    truth: dict[str, Any]
    feeds: dict[str, list[Any]]  # venue -> messages in file order
    timeline: list[tuple[int, str, Any]]  # every message of every venue, by timestamp
    replay: Replay


@dataclass
class Replay:
    """What an independent replay of the merged timeline saw."""

    own_crossed: list[tuple[str, str, int]]  # (venue, symbol, ts) where a venue's own book locked/crossed
    crossings: list[dict[str, Any]]  # consolidated locked/crossed stretches, as the detector reports them
    totals: dict[str, dict[str, int]]  # venue -> MarketBooks totals


def load(directory: Path) -> Day:
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    feeds = {
        venue: [message for _, message in iter_messages(directory / name)]
        for venue, name in truth["files"].items()
    }
    streams = [[(message.timestamp, venue, message) for message in feeds[venue]] for venue in truth["venues"]]
    timeline = list(heapq.merge(*streams, key=lambda item: item[0]))
    return Day(directory, truth, feeds, timeline, replay(timeline, truth["venues"]))


def best_pair(levels: dict[str, tuple[Any, Any]]) -> dict[str, Any] | None:
    """The crossed pair of different venues with the largest bid - ask, then min shares, then names."""
    candidates = [
        (bid.price - ask.price, min(bid.shares, ask.shares), bid_venue, ask_venue, bid, ask)
        for bid_venue, (bid, _) in levels.items()
        for ask_venue, (_, ask) in levels.items()
        if bid_venue != ask_venue and bid is not None and ask is not None and bid.price >= ask.price
    ]
    if not candidates:
        return None
    candidates.sort(key=lambda item: (-item[0], -item[1], item[2], item[3]))
    _, _, bid_venue, ask_venue, bid, ask = candidates[0]
    return {
        "venues": [bid_venue, ask_venue],
        "details": {
            "kind": "locked" if bid.price == ask.price else "crossed",
            "bid": bid.price,
            "ask": ask.price,
            "bid_shares": bid.shares,
            "ask_shares": ask.shares,
            "edge": (bid.price - ask.price) * min(bid.shares, ask.shares),
        },
    }


def replay(timeline: list[tuple[int, str, Any]], venues: list[str]) -> Replay:
    markets = {venue: MarketBooks(venue) for venue in venues}
    own_crossed: list[tuple[str, str, int]] = []
    crossings: list[dict[str, Any]] = []
    open_crossings: dict[str, dict[str, Any]] = {}
    for ts, venue, message in timeline:
        markets[venue].apply(message)
        if message.message_type not in BOOK_TYPES:
            continue
        symbol = markets[venue].symbol_of(message.stock_locate)
        assert symbol is not None
        levels = {}
        for name, market in markets.items():
            book = market.book(symbol)
            if book is not None:
                levels[name] = (book.best_bid(), book.best_ask())
        bid, ask = levels[venue]
        if bid is not None and ask is not None and bid.price >= ask.price:
            own_crossed.append((venue, symbol, ts))
        bids = [level.price for level, _ in levels.values() if level is not None]
        asks = [level.price for _, level in levels.values() if level is not None]
        consolidated_crossed = bool(bids and asks and max(bids) >= min(asks))
        if consolidated_crossed and symbol not in open_crossings:
            pair = best_pair(levels)
            assert pair is not None, "the consolidated book crossed within one venue"
            open_crossings[symbol] = {"symbol": symbol, "start_ns": MIDNIGHT + ts, **pair}
        elif not consolidated_crossed and symbol in open_crossings:
            crossing = open_crossings.pop(symbol)
            crossing["end_ns"] = MIDNIGHT + ts
            crossings.append(crossing)
    assert not open_crossings, "a crossing lasted to the end of the day"
    return Replay(own_crossed, crossings, {venue: market.totals() for venue, market in markets.items()})


def long_quiets(day: Day, keepalive_ns: int) -> set[tuple[str, str, int, int]]:
    """Every (venue, symbol, start, end) stretch of market hours longer than the keepalive without a message
    of the symbol on the venue (start: the venue's Q or the symbol's message; end: a message or the M)."""
    quiets = set()
    for venue, messages in day.feeds.items():
        events = {
            message.event_code: message.timestamp for message in messages if message.message_type == "S"
        }
        symbols = {
            message.stock_locate: message.stock.strip() for message in messages if message.message_type == "R"
        }
        last = dict.fromkeys(symbols, events["Q"])
        for message in messages:
            locate = message.stock_locate
            if locate and events["Q"] < message.timestamp < events["M"]:
                if message.timestamp - last[locate] > keepalive_ns:
                    quiets.add(
                        (venue, symbols[locate], MIDNIGHT + last[locate], MIDNIGHT + message.timestamp)
                    )
                last[locate] = message.timestamp
        for locate, timestamp in last.items():
            if events["M"] - timestamp > keepalive_ns:
                quiets.add((venue, symbols[locate], MIDNIGHT + timestamp, MIDNIGHT + events["M"]))
    return quiets


def alerts_of(day: Day, *types: str) -> list[dict[str, Any]]:
    return [alert for alert in day.truth["alerts"] if alert["type"] in types]


def messages_of_symbol(day: Day, symbol: str, start_ns: int, end_ns: int) -> list[tuple[int, str, Any]]:
    """Every message of ``symbol`` on any venue from ``start_ns`` to ``end_ns`` (epoch ns, both included)."""
    locate = day.truth["symbols"].index(symbol) + 1
    return [
        (ts, venue, message)
        for ts, venue, message in day.timeline
        if message.stock_locate == locate and start_ns <= MIDNIGHT + ts <= end_ns
    ]


@pytest.fixture(scope="session")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    directory = tmp_path_factory.mktemp("venues") / "day"
    synth_venues.write(directory, VENUES, SYMBOLS, MESSAGES, SEED, plants=PLANTS)
    return load(directory)


@pytest.fixture(scope="session")
def clean_day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    directory = tmp_path_factory.mktemp("venues") / "clean"
    synth_venues.write(directory, ["NASDAQ", "BX"], 8, 60_000, SEED)
    return load(directory)


# ---------------------------------------------------------------------- files and determinism


def test_one_file_per_venue_named_by_date_and_venue_and_the_truth_file(day: Day) -> None:
    names = {venue: f"01022020.{venue}_ITCH50" for venue in VENUES}
    assert sorted(path.name for path in day.directory.iterdir()) == sorted([*names.values(), "truth.json"])
    assert {
        venue: trading_date_of(day.directory / name, None) for venue, name in names.items()
    } == dict.fromkeys(VENUES, TRADING_DATE)
    truth = day.truth
    assert {key: value for key, value in truth.items() if key != "alerts"} == {
        "date": "2020-01-02",
        "venues": VENUES,
        "symbols": [synth_venues.ticker(index) for index in range(SYMBOLS)],
        "seed": SEED,
        "keepalive_ms": 20_000,
        "files": names,
    }
    first = (day.directory / names["NASDAQ"]).read_bytes()
    assert int.from_bytes(first[:2], "big") == 12  # standard framing: a length prefix, then the O event


def test_same_arguments_same_bytes_another_seed_other_bytes(day: Day, tmp_path: Path) -> None:
    synth_venues.write(tmp_path / "again", VENUES, SYMBOLS, MESSAGES, SEED, plants=PLANTS)
    synth_venues.write(tmp_path / "other", VENUES, SYMBOLS, MESSAGES, SEED + 1, plants=PLANTS)
    for path in day.directory.iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name
        assert (tmp_path / "other" / path.name).read_bytes() != path.read_bytes(), path.name


def test_every_venue_has_the_header_and_footer_with_its_own_nanosecond(day: Day) -> None:
    for index, (venue, messages) in enumerate(day.feeds.items()):
        header = messages[: 2 * SYMBOLS + 3]
        assert (header[0].message_type, header[0].event_code) == ("S", "O")
        directory = header[1 : 1 + SYMBOLS]
        assert [(message.message_type, message.stock_locate) for message in directory] == [
            ("R", locate) for locate in range(1, SYMBOLS + 1)
        ]
        assert [message.stock.strip() for message in directory] == day.truth["symbols"]
        trading = header[1 + SYMBOLS : 1 + 2 * SYMBOLS]
        assert {(message.message_type, message.trading_state) for message in trading} == {("H", "T")}
        assert [(message.event_code, message.timestamp) for message in header[-2:]] == [
            ("S", 4 * 3600 * 10**9 + index),
            ("Q", OPEN_NS + index),
        ]
        assert [(message.event_code, message.timestamp) for message in messages[-3:]] == [
            ("M", CLOSE_NS + index),
            ("E", 20 * 3600 * 10**9 + index),
            ("C", (20 * 3600 + 5 * 60) * 10**9 + index),
        ]
        body = messages[2 * SYMBOLS + 3 : -3]
        assert all(OPEN_NS < message.timestamp < CLOSE_NS for message in body), venue
        assert "Q" not in {message.message_type for message in body}  # no opening or closing crosses
        assert "S" not in {message.message_type for message in body}


def test_one_strictly_increasing_timeline_across_every_venue(day: Day) -> None:
    for venue, messages in day.feeds.items():
        timestamps = [message.timestamp for message in messages]
        assert all(a < b for a, b in zip(timestamps, timestamps[1:], strict=False)), venue
    merged = [ts for ts, _, _ in day.timeline]
    assert all(a < b for a, b in zip(merged, merged[1:], strict=False))


def test_the_steps_split_evenly_across_venues_and_skew_across_symbols(day: Day) -> None:
    body = [(venue, message) for _, venue, message in day.timeline if message.message_type in "AFECXDUPB"]
    assert MESSAGES <= len(body) <= MESSAGES * 1.01  # the steps, plus planted events and keepalive top-ups
    per_venue = Counter(venue for venue, _ in body)
    assert all(count / len(body) == pytest.approx(1 / 3, abs=0.01) for count in per_venue.values())
    per_locate = Counter(message.stock_locate for _, message in body)
    assert per_locate[1] / per_locate[2] == pytest.approx(2.0, rel=0.15)  # Zipf, exponent 1


# ---------------------------------------------------------------------- books


def test_every_venue_is_book_consistent_and_never_locks_or_crosses_itself(day: Day) -> None:
    for venue, messages in day.feeds.items():
        assert walk_book_consistency(messages) == {}, venue
        totals = day.replay.totals[venue]
        assert {
            name: totals[name] for name in ("unknown_refs", "overfills", "duplicate_refs", "invalid_messages")
        } == {
            "unknown_refs": 0,
            "overfills": 0,
            "duplicate_refs": 0,
            "invalid_messages": 0,
        }
    assert day.replay.own_crossed == []


def test_references_and_match_numbers_are_unique_across_venues(day: Day) -> None:
    references = [
        message.order_reference_number for _, _, message in day.timeline if message.message_type in "AF"
    ]
    references += [
        message.new_order_reference_number for _, _, message in day.timeline if message.message_type == "U"
    ]
    assert len(references) == len(set(references))
    matches = [message.match_number for _, _, message in day.timeline if message.message_type in "ECP"]
    assert len(matches) == len(set(matches))


def test_consolidated_book_locks_or_crosses_exactly_during_the_planted_crossings(day: Day) -> None:
    expected = alerts_of(day, "arbitrage")
    assert len(expected) == PLANTS["crossings"]
    # the replay computes the pair, prices, shares and edge at the start from the rebuilt books
    assert day.replay.crossings == [
        {key: alert[key] for key in ("symbol", "start_ns", "venues", "details", "end_ns")}
        for alert in expected
    ]
    for alert in expected:
        assert 300 * 10**6 <= alert["end_ns"] - alert["start_ns"] <= 3_000 * 10**6 + 1_000
        assert alert["details"]["bid"] - alert["details"]["ask"] in (0, 100, 200, 300)  # 0 to 3 cents


def test_a_crossing_is_one_round_lot_added_then_deleted_by_its_venue_with_nothing_else_of_the_symbol(
    day: Day,
) -> None:
    for alert in alerts_of(day, "arbitrage"):
        window = messages_of_symbol(day, alert["symbol"], alert["start_ns"], alert["end_ns"])
        assert len(window) == 2, alert
        (start, venue, add), (end, delete_venue, delete) = window
        assert (MIDNIGHT + start, MIDNIGHT + end) == (alert["start_ns"], alert["end_ns"])
        assert (add.message_type, add.shares, delete.message_type) == ("A", 100, "D")
        assert delete.order_reference_number == add.order_reference_number
        assert delete_venue == venue
        bid_venue, ask_venue = alert["venues"]
        assert venue == (bid_venue if add.buy_sell_indicator == "B" else ask_venue)
        assert add.price == (
            alert["details"]["bid"] if add.buy_sell_indicator == "B" else alert["details"]["ask"]
        )


def test_a_clean_day_never_locks_or_crosses_and_has_no_long_quiet(clean_day: Day) -> None:
    assert clean_day.truth["alerts"] == []
    assert clean_day.replay.crossings == []
    assert clean_day.replay.own_crossed == []
    assert long_quiets(clean_day, KEEPALIVE_NS) == set()


# ---------------------------------------------------------------------- keepalive, stale windows, halts


def test_no_venue_goes_quiet_on_a_symbol_longer_than_the_keepalive_but_in_planted_windows(day: Day) -> None:
    planted = {
        (alert["venues"][0], alert["symbol"], alert["start_ns"], alert["end_ns"])
        for alert in alerts_of(day, "stale", "halt", "luld_pause")
    }
    assert long_quiets(day, KEEPALIVE_NS) == planted


def test_stale_windows_are_quiet_on_their_venue_only(day: Day) -> None:
    stale = alerts_of(day, "stale")
    assert len(stale) == PLANTS["stale"]
    for alert in stale:
        assert 120 * 10**9 <= alert["end_ns"] - alert["start_ns"] <= 300 * 10**9 + KEEPALIVE_NS
        window = messages_of_symbol(day, alert["symbol"], alert["start_ns"], alert["end_ns"])
        on_venue = [ts for ts, venue, _ in window if venue == alert["venues"][0]]
        assert [MIDNIGHT + ts for ts in on_venue] == [alert["start_ns"], alert["end_ns"]]
        assert len(window) > 2  # the other venues go on quoting the symbol


def test_halts_and_pauses_are_trading_actions_on_every_venue_with_nothing_of_the_symbol_between(
    day: Day,
) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alert in alerts_of(day, "halt", "luld_pause"):
        groups.setdefault((alert["type"], alert["symbol"]), []).append(alert)
    assert Counter(kind for kind, _ in groups) == {"halt": PLANTS["halts"], "luld_pause": PLANTS["pauses"]}
    for (kind, symbol), alerts in groups.items():
        state, reason = HALT_TYPES[kind]
        assert sorted(alert["venues"][0] for alert in alerts) == sorted(VENUES)
        assert {alert["details"]["reason"] for alert in alerts} == {reason}
        window = messages_of_symbol(
            day, symbol, min(a["start_ns"] for a in alerts), max(a["end_ns"] for a in alerts)
        )
        assert {message.message_type for _, _, message in window} == {"H"}
        assert len(window) == 2 * len(VENUES)
        for alert in alerts:
            on_venue = [
                (MIDNIGHT + ts, message) for ts, venue, message in window if venue == alert["venues"][0]
            ]
            (start, halted), (end, resumed) = on_venue
            assert (start, end) == (alert["start_ns"], alert["end_ns"])
            assert (halted.trading_state, halted.reason.strip()) == (state, reason)
            assert (resumed.trading_state, resumed.reason.strip()) == ("T", "")
        low, high = (60, 600) if kind == "halt" else (300, 600)
        assert all(
            low * 10**9 <= alert["end_ns"] - alert["start_ns"] <= high * 10**9 + 10 for alert in alerts
        )


def test_planted_events_sit_between_10_and_15_30_never_overlapping_and_the_truth_is_sorted(day: Day) -> None:
    alerts = day.truth["alerts"]
    assert alerts == sorted(
        alerts, key=lambda alert: (alert["start_ns"], alert["type"], alert["symbol"], alert["venues"])
    )
    spans = sorted(
        {(alert["type"], alert["symbol"]): (alert["start_ns"], alert["end_ns"]) for alert in alerts}.values()
    )
    assert spans[0][0] >= MIDNIGHT + 10 * 3600 * 10**9 - KEEPALIVE_NS  # a stale quiet starts before its slot
    assert spans[-1][1] <= MIDNIGHT + (15 * 3600 + 30 * 60) * 10**9 + 10
    assert all(end < next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


# ---------------------------------------------------------------------- command line


def test_command_line_writes_the_feeds_and_truth_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "new" / "day"
    code = main(
        [
            "synth", "--venues", "NASDAQ,BX", "--symbols", "3", "--messages", "20000", "--seed", "5",
            "--date", "2021-07-01", "--plant", "crossings=1,halts=1", "-o", str(directory), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote ")
    assert "for 2 venues x 3 symbols" in out
    assert "07012021.NASDAQ_ITCH50" in out and "07012021.BX_ITCH50" in out
    assert "planted 1 crossings, 1 halts" in out
    assert "truth:" in out and "1 arbitrage, 2 halt" in out
    truth = json.loads((directory / "truth.json").read_text())
    assert truth["files"] == {"NASDAQ": "07012021.NASDAQ_ITCH50", "BX": "07012021.BX_ITCH50"}
    assert [alert["type"] for alert in truth["alerts"]].count("halt") == 2
    # times are epoch ns of the given date (summer time: midnight is 04:00 UTC)
    halt = next(alert for alert in truth["alerts"] if alert["type"] == "halt" and alert["venues"] == ["BX"])
    messages: list[Any] = [message for _, message in iter_messages(directory / "07012021.BX_ITCH50")]
    halted = next(
        message for message in messages if message.message_type == "H" and message.trading_state == "H"
    )
    assert halt["start_ns"] == midnight_epoch_ns(date(2021, 7, 1)) + halted.timestamp


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--venues", "NASDAQ"], "needs 2 to 32 venues"),
        (["--venues", "NASDAQ,BX,NASDAQ"], "NASDAQ is listed twice"),
        (["--venues", "NASDAQ,BX,nasdaq"], "NASDAQ and nasdaq are the same venue"),
        (["--venues", "NASDAQ,B X"], "'B X' is not a venue name"),
        (["--venues", "NASDAQ,"], "'' is not a venue name"),
        (["--venues", "A,B", "--plant", "crossings=1,swaps=2"], "unknown event 'swaps'; known: crossings"),
        (["--venues", "A,B", "--plant", "halts=-1"], "the count of halts must not be negative"),
        (["--venues", "A,B", "--plant", "halts=two"], "is not halts=COUNT with a whole number"),
        (["--venues", "A,B", "--plant", "halts"], "is not halts=COUNT"),
        (["--venues", "A,B", "--plant", "halts=1,halts=2"], "halts is given twice"),
        (["--venues", "A,B", "--plant", "pauses=40"], "40 events do not fit between 10:00 and 15:30"),
        (
            ["--venues", "A,B", "--plant", "stale=1", "--keepalive-ms", "150000"],
            "needs --keepalive-ms below 120,000",
        ),
        (["--venues", "A,B", "--date", "2020-13-01"], "--date must be YYYY-MM-DD"),
        (["--venues", "A,B", "--keepalive-ms", "100"], "--keepalive-ms must be between 5000"),
        (
            ["--venues", "A,B", "--messages", "1000"],
            "--messages must be at least 7,026 for 2 venues x 3 symbols",
        ),
        (["--venues", "A,B", "--symbols", "1", "--plant", "halts=1"], "--plant needs at least 2 symbols"),
        (["--venues", "A,B", "--allow-crossed"], "--allow-crossed is for a single feed"),
        (["--plant", "crossings=1"], "--plant goes with --venues"),
        (["--keepalive-ms", "10000"], "--keepalive-ms goes with --venues"),
    ],
)
def test_command_line_refuses_bad_values_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    base = ["synth", "--symbols", "3", "--messages", "20000", "-o", str(tmp_path / "out"), "--no-progress"]
    assert main(base + arguments) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feed.itch"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="not a directory"):
        synth_venues.write(path, ["A", "B"], 3, 20_000, SEED)
