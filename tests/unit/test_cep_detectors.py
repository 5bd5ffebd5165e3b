"""The cross-venue detectors on hand-made scenarios: exactly the expected alerts, and none on clean input."""

from __future__ import annotations

import pytest

from itchflow.cep.alerts import Alert, AlertType, Severity
from itchflow.cep.consolidated import CrossedPair, Nbbo, best_pair, nbbo
from itchflow.cep.detectors import (
    Activity,
    DetectorConfig,
    Detectors,
    Event,
    QuoteChange,
    SystemEvent,
    TradingAction,
    final_alerts,
)

MS = 1_000_000
S = 1_000 * MS
OPEN = 34_200 * S  # 09:30 (times are plain ns here: the detectors only compare them)
CLOSE = 57_600 * S  # 16:00
T0 = OPEN + 600 * S
CONFIG = DetectorConfig(arbitrage_min_ms=100, stale_after_ms=60_000)


def opened(*venues: str) -> list[Event]:
    return [SystemEvent(OPEN + index, venue, "Q") for index, venue in enumerate(venues)]


def closed(*venues: str) -> list[Event]:
    return [SystemEvent(CLOSE + index, venue, "M") for index, venue in enumerate(venues)]


def quote(
    ts: int, venue: str, bid: int, bid_shares: int, ask: int, ask_shares: int, symbol: str = "AAPL"
) -> Event:
    return QuoteChange(ts, venue, symbol, (bid, bid_shares, ask, ask_shares))


def run(events: list[Event], config: DetectorConfig = CONFIG) -> tuple[list[Alert], list[Alert]]:
    """(every emission, the final version of each episode)"""
    detectors = Detectors(config)
    for event in sorted(events, key=lambda event: (event.ts_event, event.venue)):
        detectors.apply(event)
    detectors.finish()
    return detectors.alerts, final_alerts(detectors.alerts)


def of_type(alerts: list[Alert], alert_type: AlertType) -> list[Alert]:
    return [alert for alert in alerts if alert.type is alert_type]


def busy(venues: tuple[str, ...], symbol: str = "AAPL", every_s: int = 10) -> list[Event]:
    """Activity of the symbol on every venue every ``every_s`` seconds of the session: never stale."""
    return [
        Activity(OPEN + second * S + 1000 + index, venue, symbol)
        for second in range(every_s, (CLOSE - OPEN) // S, every_s)
        for index, venue in enumerate(venues)
    ]


# ---------------------------------------------------------------------- consolidated quotes


def test_best_pair_is_none_while_every_bid_is_below_every_other_venues_ask() -> None:
    quotes = {"A": (100, 5, 102, 5), "B": (101, 5, 103, 5)}
    assert best_pair(quotes, quotes) is None


def test_a_venues_own_locked_book_is_no_cross_venue_pair() -> None:
    quotes = {"A": (100, 5, 100, 5), "B": (90, 5, 110, 5)}
    assert best_pair(quotes, quotes) is None


def test_best_pair_takes_the_widest_cross_then_the_larger_size_then_the_names() -> None:
    quotes = {"A": (105, 100, 110, 1), "B": (103, 100, 104, 300), "C": (101, 100, 104, 50)}
    # A's bid 105 against B's and C's ask 104 (edge 1 each): B's 300 shares beat C's 50
    assert best_pair(quotes, quotes) == CrossedPair("A", "B", 105, 100, 104, 300)
    tied = {"A": (105, 100, 110, 1), "B": (103, 100, 104, 300), "C": (101, 100, 104, 300)}
    assert best_pair(tied, tied) == CrossedPair("A", "B", 105, 100, 104, 300)
    assert best_pair(quotes, ["B", "C"]) is None  # A not eligible


def test_edge_is_price_difference_times_the_smaller_size() -> None:
    assert CrossedPair("A", "B", 105, 100, 103, 300).edge == 200
    assert CrossedPair("A", "B", 104, 100, 104, 300).edge == 0


def test_nbbo_sums_the_shares_of_every_venue_at_the_best_price() -> None:
    quotes = {"A": (100, 5, 103, 7), "B": (100, 6, 102, 1), "C": (99, 9, 0, 0)}
    assert nbbo(quotes, quotes) == Nbbo(100, 11, 102, 1)
    assert nbbo(quotes, ["C"]) == Nbbo(99, 9, 0, 0)


# ---------------------------------------------------------------------- arbitrage


def test_a_clean_market_gives_no_alert() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 5, 102, 5),
        quote(T0 + 10 * MS, "B", 101, 5, 103, 5),
        quote(T0 + 20 * MS, "A", 100, 5, 102, 9),
        *busy(("A", "B")),
        *closed("A", "B"),
    ]
    assert run(events)[0] == []


def test_a_crossed_market_lasting_longer_than_the_minimum_is_one_critical_alert() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 500, 102, 500),
        quote(T0 + 1 * MS, "B", 98, 300, 101, 200),
        quote(T0 + 2 * MS, "A", 103, 400, 104, 500),  # A's bid 103 over B's ask 101
        quote(T0 + 502 * MS, "A", 100, 400, 104, 500),
        *busy(("A", "B")),
        *closed("A", "B"),
    ]
    emitted, final = run(events)
    expected = Alert(
        AlertType.ARBITRAGE,
        "AAPL",
        ("A", "B"),
        T0 + 2 * MS,
        T0 + 502 * MS,
        Severity.CRITICAL,
        {
            "kind": "crossed",
            "bid": 103,
            "ask": 101,
            "bid_shares": 400,
            "ask_shares": 200,
            "edge": 400,
            "max_edge": 400,
        },
    )
    assert final == [expected]
    # it opened once it had lasted 100 ms (at the first event after that), then closed
    assert [alert.end_ns for alert in emitted] == [None, T0 + 502 * MS]


def test_a_locked_market_is_a_warning_with_no_edge() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 500, 102, 500),
        quote(T0 + 1 * MS, "B", 102, 300, 104, 200),  # B bids A's ask
        quote(T0 + 201 * MS, "B", 101, 300, 104, 200),
        *closed("A", "B"),
    ]
    [alert] = of_type(run(events)[1], AlertType.ARBITRAGE)
    assert (alert.venues, alert.severity, alert.details["kind"], alert.details["edge"]) == (
        ("B", "A"),
        Severity.WARNING,
        "locked",
        0,
    )
    assert (alert.start_ns, alert.end_ns) == (T0 + 1 * MS, T0 + 201 * MS)


@pytest.mark.parametrize(("lasting_ms", "alerts"), [(99, 0), (100, 1), (101, 1)])
def test_a_crossing_must_last_the_minimum(lasting_ms: int, alerts: int) -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 5, 102, 5),
        quote(T0 + 1 * MS, "B", 103, 5, 104, 5),
        quote(T0 + 1 * MS + lasting_ms * MS, "B", 99, 5, 104, 5),
        *closed("A", "B"),
    ]
    assert len(of_type(run(events)[1], AlertType.ARBITRAGE)) == alerts


def test_the_edge_at_the_start_and_the_largest_edge_while_it_lasted() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 100, 102, 100),
        quote(T0 + 1 * MS, "B", 103, 100, 104, 100),  # edge (103 - 102) x 100
        quote(T0 + 50 * MS, "B", 105, 100, 106, 100),  # edge (105 - 102) x 100
        quote(T0 + 90 * MS, "B", 102, 50, 106, 100),  # locked, still one episode
        quote(T0 + 300 * MS, "B", 101, 50, 106, 100),
        *closed("A", "B"),
    ]
    [alert] = of_type(run(events)[1], AlertType.ARBITRAGE)
    assert (alert.start_ns, alert.end_ns) == (T0 + 1 * MS, T0 + 300 * MS)
    assert (alert.details["kind"], alert.details["edge"], alert.details["max_edge"]) == ("crossed", 100, 300)


def test_no_crossing_while_the_symbol_is_halted_on_a_venue_of_the_pair() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 100, 5, 102, 5),
        TradingAction(T0 + 1 * MS, "B", "AAPL", "H", "T1  "),
        quote(T0 + 2 * MS, "B", 105, 5, 106, 5),  # crossed with A's ask, but B is halted
        TradingAction(T0 + 500 * MS, "B", "AAPL", "T", "    "),  # trading again: crossed from here
        quote(T0 + 900 * MS, "B", 101, 5, 106, 5),
        *closed("A", "B"),
    ]
    [alert] = of_type(run(events)[1], AlertType.ARBITRAGE)
    assert (alert.start_ns, alert.end_ns) == (T0 + 500 * MS, T0 + 900 * MS)


def test_no_crossing_outside_the_regular_session_and_one_open_at_the_close_ends_there() -> None:
    events = [
        quote(OPEN - 10 * S, "A", 100, 5, 102, 5),
        quote(OPEN - 9 * S, "B", 103, 5, 104, 5),  # crossed before the open: not in the session yet
        *opened("A", "B"),  # A opens at OPEN, B at OPEN + 1: the crossing starts when both are open
        *closed("A", "B"),  # A closes at CLOSE: it ends there
    ]
    [alert] = of_type(run(events)[1], AlertType.ARBITRAGE)
    assert (alert.type, alert.start_ns, alert.end_ns) == (AlertType.ARBITRAGE, OPEN + 1, CLOSE)


def test_an_empty_side_takes_a_venue_out_of_the_pairs() -> None:
    events = [
        *opened("A", "B"),
        quote(T0, "A", 0, 0, 102, 5),
        quote(T0 + 1 * MS, "B", 103, 5, 0, 0),  # B's bid over A's ask
        quote(T0 + 300 * MS, "A", 0, 0, 0, 0),  # A's book empties
        *closed("A", "B"),
    ]
    [alert] = of_type(run(events)[1], AlertType.ARBITRAGE)
    assert (alert.venues, alert.start_ns, alert.end_ns) == (("B", "A"), T0 + 1 * MS, T0 + 300 * MS)


def test_an_episode_open_at_the_end_of_the_input_ends_there() -> None:
    events = [*opened("A", "B"), quote(T0, "A", 100, 5, 102, 5), quote(T0 + 1 * MS, "B", 103, 5, 104, 5)]
    detectors = Detectors(CONFIG)
    for event in events:
        detectors.apply(event)
    detectors.finish(T0 + 2 * S)
    [alert] = of_type(final_alerts(detectors.alerts), AlertType.ARBITRAGE)
    assert (alert.start_ns, alert.end_ns) == (T0 + 1 * MS, T0 + 2 * S)


# ---------------------------------------------------------------------- stale symbols


def test_a_symbol_quiet_on_a_venue_longer_than_the_threshold_is_stale_from_its_last_to_its_next_message() -> (
    None
):
    events = [
        *opened("A"),
        Activity(OPEN + 30 * S, "A", "AAPL"),
        Activity(OPEN + 95 * S, "A", "AAPL"),  # 65 s quiet: stale
        Activity(OPEN + 155 * S, "A", "AAPL"),  # exactly 60 s: not stale
        Activity(OPEN + 200 * S, "A", "AAPL"),
        *[Activity(OPEN + second * S, "A", "AAPL") for second in range(240, (CLOSE - OPEN) // S, 30)],
        *closed("A"),
    ]
    emitted, final = run(events)
    assert final == [
        Alert(AlertType.STALE, "AAPL", ("A",), OPEN + 30 * S, OPEN + 95 * S, Severity.WARNING, {})
    ]
    assert [alert.end_ns for alert in emitted] == [None, OPEN + 95 * S]


def test_stale_counts_from_the_open_and_ends_at_the_close_or_a_halt() -> None:
    events = [
        Activity(OPEN - 3_600 * S, "A", "AAPL"),  # before the session: not stale until the open + 60 s
        Activity(OPEN - 3_600 * S, "A", "MSFT"),
        *opened("A"),
        Activity(OPEN + 50 * S, "A", "AAPL"),
        TradingAction(OPEN + 200 * S, "A", "AAPL", "H", "T1  "),  # AAPL quiet since +50 s: ends at the halt
        Activity(CLOSE - 100 * S, "A", "MSFT"),  # MSFT quiet from the open
        *closed("A"),  # ... and from CLOSE - 100 s to the close
    ]
    stale = of_type(run(events)[1], AlertType.STALE)
    assert [(alert.symbol, alert.start_ns, alert.end_ns) for alert in stale] == [
        ("MSFT", OPEN, CLOSE - 100 * S),
        ("AAPL", OPEN + 50 * S, OPEN + 200 * S),
        ("MSFT", CLOSE - 100 * S, CLOSE),
    ]


def test_a_halted_symbol_is_not_stale_and_its_clock_restarts_when_it_resumes() -> None:
    events = [
        *opened("A"),
        Activity(OPEN + 10 * S, "A", "AAPL"),
        TradingAction(OPEN + 20 * S, "A", "AAPL", "H", "T1  "),
        TradingAction(OPEN + 600 * S, "A", "AAPL", "T", "    "),  # 580 s halted: no stale
        Activity(OPEN + 650 * S, "A", "AAPL"),  # 50 s after the resumption: not stale
        Activity(OPEN + 720 * S, "A", "AAPL"),  # 70 s: stale
        *[Activity(OPEN + second * S, "A", "AAPL") for second in range(750, (CLOSE - OPEN) // S, 30)],
        *closed("A"),
    ]
    stale = of_type(run(events)[1], AlertType.STALE)
    assert [(alert.start_ns, alert.end_ns) for alert in stale] == [(OPEN + 650 * S, OPEN + 720 * S)]


def test_stale_is_per_venue() -> None:
    events = [
        *opened("A", "B"),
        *[Activity(OPEN + second * S, "A", "AAPL") for second in range(5, (CLOSE - OPEN) // S, 30)],
        Activity(OPEN + 5 * S, "B", "AAPL"),
        *[Activity(OPEN + second * S, "B", "AAPL") for second in range(300, (CLOSE - OPEN) // S, 30)],
        *closed("A", "B"),
    ]
    stale = run(events)[1]
    assert [(alert.venues, alert.start_ns, alert.end_ns) for alert in stale] == [
        (("B",), OPEN + 5 * S, OPEN + 300 * S)
    ]


# ---------------------------------------------------------------------- halts and pauses


def test_a_halt_through_quotation_only_to_trading_is_one_halt_with_its_reason() -> None:
    events = [
        *opened("A"),
        TradingAction(T0, "A", "AAPL", "H", "T1  "),
        TradingAction(T0 + 300 * S, "A", "AAPL", "Q", "T1  "),
        TradingAction(T0 + 305 * S, "A", "AAPL", "T", "    "),
        *busy(("A",)),
        *closed("A"),
    ]
    emitted, final = run(events)
    assert final == [
        Alert(AlertType.HALT, "AAPL", ("A",), T0, T0 + 305 * S, Severity.WARNING, {"reason": "T1"})
    ]
    assert [alert.end_ns for alert in emitted] == [None, T0 + 305 * S]


def test_a_pause_is_a_luld_pause_and_a_halt_after_it_a_new_episode() -> None:
    events = [
        *opened("A"),
        TradingAction(T0, "A", "AAPL", "P", "LUDP"),
        TradingAction(T0 + 300 * S, "A", "AAPL", "H", "LUDP"),
        TradingAction(T0 + 900 * S, "A", "AAPL", "T", "    "),
        TradingAction(T0 + 901 * S, "A", "AAPL", "T", "    "),  # no change
        *busy(("A",)),
        *closed("A"),
    ]
    final = run(events)[1]
    assert [(alert.type, alert.start_ns, alert.end_ns, alert.details["reason"]) for alert in final] == [
        (AlertType.LULD_PAUSE, T0, T0 + 300 * S, "LUDP"),
        (AlertType.HALT, T0 + 300 * S, T0 + 900 * S, "LUDP"),
    ]


def test_a_halt_never_lifted_ends_with_the_input() -> None:
    detectors = Detectors(CONFIG)
    for event in [*opened("A"), TradingAction(T0, "A", "AAPL", "H", "IPO1")]:
        detectors.apply(event)
    detectors.finish(T0 + 5 * S)
    assert [(alert.type, alert.start_ns, alert.end_ns) for alert in final_alerts(detectors.alerts)] == [
        (AlertType.HALT, T0, T0 + 5 * S)
    ]


def test_alert_ids_name_the_episode() -> None:
    alert = Alert(AlertType.ARBITRAGE, "AAPL", ("A", "B"), 17, None, Severity.CRITICAL)
    assert alert.alert_id == "arbitrage:AAPL:A+B:17"
    assert alert.to_json()["end_ns"] is None


@pytest.mark.parametrize("field", ["arbitrage_min_ms", "stale_after_ms"])
def test_config_refuses_negative_or_fractional_values(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DetectorConfig(**{field: -1})
    with pytest.raises(ValueError, match=field):
        DetectorConfig(**{field: 1.5})
