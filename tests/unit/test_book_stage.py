"""Order-book stage, hand-worked: every event kind, top-of-book rows exactly on BBO changes, trades,
depth snapshots, status, idempotence (duplicates, overlaps, sessions), stream ids, state.

Expectations are written out from the ITCH semantics and the DDL; every output is read back through
the independent RowBinary reader and RESP parser of ``book_stage_support``.
"""

from __future__ import annotations

import json
import pickle
from datetime import date

import pytest

from itchflow.book import IntegrityProblem, OrderBook
from itchflow.book.engine import PythonEngine
from itchflow.itch import messages as m
from itchflow.pipeline.book_stage import BookStage, BookStageConfig
from tests.unit.book_factories import (
    add_attributed,
    add_order,
    cancel,
    cross_trade,
    delete,
    dollars,
    executed,
    executed_at,
    replace,
    trade,
)
from tests.unit.book_stage_support import (
    CONFIG,
    LOCATE,
    SESSION,
    SYMBOL,
    T0,
    VENUE,
    batch_of,
    decode,
    epoch,
    new_stage,
)

pytestmark = pytest.mark.usefixtures("implementation")  # each test on the Python and the C code

MS = 1_000_000
SECOND = 1_000_000_000
PX_998, PX_999, PX_1000, PX_1001 = dollars("9.98"), dollars("9.99"), dollars("10.00"), dollars("10.01")
PX_1005, PX_1010 = dollars("10.05"), dollars("10.10")
DAY = 18_260  # 2019-12-30 (TRADING_DATE) in days since 1970-01-01: 2020-01-01 is 18,262
TOB_KEY = f"itchflow:tob:{VENUE}:{SYMBOL}"
DEPTH_KEY = f"itchflow:depth:{VENUE}:{SYMBOL}"
STREAM_KEY = f"itchflow:tob-stream:{VENUE}:{SYMBOL}"
EMPTY = (0, 0, 0)


def tob(seq: int, ts: int, bid: tuple[int, int, int], ask: tuple[int, int, int]) -> dict:
    """An expected top_of_book row."""
    return {
        "venue": VENUE,
        "trading_date": DAY,
        "symbol": SYMBOL,
        "seq": seq,
        "ts_event": ts,
        "bid_price": bid[0],
        "bid_shares": bid[1],
        "bid_orders": bid[2],
        "ask_price": ask[0],
        "ask_shares": ask[1],
        "ask_orders": ask[2],
    }


def trade_row(seq: int, source: str, match: int, price: int, shares: int, side: str, printable: int) -> dict:
    """An expected trades row at T0."""
    return {
        "venue": VENUE,
        "trading_date": DAY,
        "symbol": SYMBOL,
        "seq": seq,
        "ts_event": epoch(T0),
        "source": source,
        "match_number": match,
        "price": price,
        "shares": shares,
        "side": side,
        "printable": printable,
    }


def tops(decoded) -> list[tuple]:
    """top_of_book rows as (seq, bid, ask) for compact expectations."""
    return [
        (
            row["seq"],
            (row["bid_price"], row["bid_shares"], row["bid_orders"]),
            (row["ask_price"], row["ask_shares"], row["ask_orders"]),
        )
        for row in decoded.table("top_of_book")
    ]


# --- one event, every output --------------------------------------------------------------------------------


def test_first_add_emits_top_of_book_depth_status_and_redis() -> None:
    stage = new_stage()
    output = stage.apply(batch_of([add_order(1, "B", PX_1000, 100, ts=T0)]))
    decoded = decode(output)
    ts = epoch(T0)

    assert decoded.table("top_of_book") == [tob(0, ts, (PX_1000, 100, 1), EMPTY)]
    assert decoded.table("trades") == []
    depth = {
        "venue": VENUE,
        "trading_date": DAY,
        "symbol": SYMBOL,
        "seq": 0,
        "ts_event": ts,
        "bid_prices": [PX_1000],
        "bid_shares": [100],
        "bid_orders": [1],
        "ask_prices": [],
        "ask_shares": [],
        "ask_orders": [],
    }
    # one row per batch at most: the change also stands for the first cadence interval
    assert decoded.table("depth_snapshots") == [{**depth, "reason": "change"}]
    assert decoded.table("book_status") == [
        {
            "venue": VENUE,
            "trading_date": DAY,
            "symbol": SYMBOL,
            "seq": 0,
            "ts_event": ts,
            "messages": 1,
            "orders": 1,
            "unknown_refs": 0,
            "overfills": 0,
            "integrity": "",
        }
    ]
    stream_id = f"{ts // MS}-0"
    assert decoded.xadds() == [
        [
            "XADD", STREAM_KEY, "MAXLEN", "~", "100000", stream_id,
            "bid_px", str(PX_1000), "bid_sz", "100", "bid_n", "1",
            "ask_px", "0", "ask_sz", "0", "ask_n", "0",
            "seq", "0", "ts_event", str(ts),
        ]
    ]  # fmt: skip
    assert decoded.hset(TOB_KEY) == {
        "bid_px": str(PX_1000),
        "bid_sz": "100",
        "bid_n": "1",
        "ask_px": "0",
        "ask_sz": "0",
        "ask_n": "0",
        "seq": "0",
        "ts_event": str(ts),
        "last_trade_px": "0",
        "last_trade_sz": "0",
        "last_trade_ts": "0",
        "unknown_refs": "0",
        "orders": "1",
    }
    assert decoded.hset(DEPTH_KEY) == {
        "bids": f"[[{PX_1000},100,1]]",
        "asks": "[]",
        "seq": "0",
        "ts_event": str(ts),
    }
    assert output.redis_commands == 3
    assert output.counters == {
        "events_applied": 1,
        "duplicates_skipped": 0,
        "tob_changes": 1,
        "trades": 0,
        "unknown_refs": 0,
    }


# --- top of book --------------------------------------------------------------------------------------------


def test_top_of_book_row_exactly_when_the_best_bid_or_ask_changes() -> None:
    events = [
        add_order(1, "B", PX_1000, 100),  # 0 new best bid
        add_order(2, "B", PX_999, 100),  # 1 below the best bid: no row
        add_order(3, "S", PX_1005, 200),  # 2 first ask
        add_order(4, "B", PX_1000, 50),  # 3 joins the best bid: shares and order count change
        cancel(2, 50),  # 4 a level below the best: no row
        cancel(4, 20),  # 5 best bid shares 150 -> 130
        delete(2),  # 6 below the best: no row
        add_order(5, "S", PX_1010, 100),  # 7 above the best ask: no row
        delete(1),  # 8 best bid 10.00 keeps order 4 (30 shares)
        delete(4),  # 9 10.00 empties: 9.99 emptied at 6, so the bid side is empty
    ]
    decoded = decode(new_stage().apply(batch_of(events)))

    ask = (PX_1005, 200, 1)
    assert tops(decoded) == [
        (0, (PX_1000, 100, 1), EMPTY),
        (2, (PX_1000, 100, 1), ask),
        (3, (PX_1000, 150, 2), ask),
        (5, (PX_1000, 130, 2), ask),
        (8, (PX_1000, 30, 1), ask),
        (9, EMPTY, ask),
    ]
    assert [command[5] for command in decoded.xadds()] == [
        f"{epoch(T0) // MS}-{seq}" for seq in (0, 2, 3, 5, 8, 9)
    ]
    assert decoded.hset(TOB_KEY)["seq"] == "9"  # the hash holds the batch's final state


def test_replace_moves_the_order_to_its_new_price_on_the_same_side() -> None:
    stage = new_stage()
    decoded = decode(stage.apply(batch_of([add_order(1, "B", PX_1000, 100), replace(1, 2, PX_1001, 200)])))

    assert tops(decoded) == [(0, (PX_1000, 100, 1), EMPTY), (1, (PX_1001, 200, 1), EMPTY)]
    assert stage.book.order(1) is None
    assert stage.book.order(2).side == "B"


def test_a_batch_that_leaves_the_top_unchanged_has_no_top_of_book_rows_but_status_and_hash() -> None:
    stage = new_stage()
    stage.apply(batch_of([add_order(1, "B", PX_1000, 100)]))
    decoded = decode(stage.apply(batch_of([add_order(2, "B", PX_999, 100)], first_seq=1)))

    assert decoded.table("top_of_book") == []
    assert decoded.xadds() == []
    assert decoded.hset(TOB_KEY)["orders"] == "2"
    assert [row["seq"] for row in decoded.table("book_status")] == [1]


# --- trades -------------------------------------------------------------------------------------------------


def test_execution_is_a_trade_at_the_resting_orders_price() -> None:
    stage = new_stage()
    output = stage.apply(batch_of([add_order(7, "S", PX_1005, 100), executed(7, 30, match=9001)]))
    decoded = decode(output)

    assert decoded.table("trades") == [trade_row(1, "E", 9001, PX_1005, 30, "S", 1)]
    assert tops(decoded)[-1] == (1, EMPTY, (PX_1005, 70, 1))
    tob_hash = decoded.hset(TOB_KEY)
    assert (tob_hash["last_trade_px"], tob_hash["last_trade_sz"], tob_hash["last_trade_ts"]) == (
        str(PX_1005),
        "30",
        str(epoch(T0)),
    )
    assert output.trades == 1


def test_execution_of_an_unknown_order_is_counted_and_no_trade_is_invented() -> None:
    stage = new_stage()
    output = stage.apply(batch_of([add_order(1, "B", PX_1000, 100), executed(99, 30), delete(98)]))
    decoded = decode(output)

    assert decoded.table("trades") == []
    assert output.unknown_refs == 2
    assert decoded.table("book_status")[0]["unknown_refs"] == 2
    assert decoded.hset(TOB_KEY)["unknown_refs"] == "2"
    assert tops(decoded) == [(0, (PX_1000, 100, 1), EMPTY)]  # the unknown events changed nothing


def test_execution_with_price_trades_at_its_own_price_with_its_printable_flag() -> None:
    stage = new_stage()
    events = [
        add_order(1, "B", PX_1000, 100),
        executed_at(1, 40, PX_999, printable="N", match=11),  # non-printable: a row, flagged 0
        executed_at(1, 10, PX_998, printable="Y", match=12),
        executed_at(55, 5, PX_1001, printable="Y", match=13),  # unknown order: the price is known
    ]
    output = stage.apply(batch_of(events))
    decoded = decode(output)

    assert decoded.table("trades") == [
        trade_row(1, "C", 11, PX_999, 40, "B", 0),
        trade_row(2, "C", 12, PX_998, 10, "B", 1),
        trade_row(3, "C", 13, PX_1001, 5, "", 1),
    ]
    assert output.unknown_refs == 1
    assert tops(decoded) == [
        (0, (PX_1000, 100, 1), EMPTY),
        (1, (PX_1000, 60, 1), EMPTY),
        (2, (PX_1000, 50, 1), EMPTY),
    ]


def test_non_cross_and_cross_trades_are_trades_that_leave_the_book_alone() -> None:
    stage = new_stage()
    output = stage.apply(
        batch_of(
            [
                add_order(1, "S", PX_1005, 100),
                trade(PX_1001, 300, match=21),
                cross_trade(PX_1000, 5000, match=22),
            ]
        )
    )
    decoded = decode(output)

    assert decoded.table("trades") == [
        trade_row(1, "P", 21, PX_1001, 300, "B", 1),
        trade_row(2, "Q", 22, PX_1000, 5000, "", 1),
    ]
    assert tops(decoded) == [(0, EMPTY, (PX_1005, 100, 1))]
    assert decoded.hset(TOB_KEY)["last_trade_px"] == str(PX_1000)


def test_a_cross_that_matched_nothing_is_not_a_trade() -> None:
    decoded = decode(new_stage().apply(batch_of([cross_trade(PX_1000, 0)])))

    assert decoded.table("trades") == []


def test_an_overfill_is_clamped_counted_and_traded_as_reported() -> None:
    stage = new_stage()
    decoded = decode(stage.apply(batch_of([add_order(1, "B", PX_1000, 100), executed(1, 150, match=5)])))

    assert decoded.table("trades") == [trade_row(1, "E", 5, PX_1000, 150, "B", 1)]
    assert decoded.table("book_status")[0]["overfills"] == 1
    assert tops(decoded)[-1] == (1, EMPTY, EMPTY)


# --- other kinds --------------------------------------------------------------------------------------------


def test_events_that_are_not_book_events_are_counted_only() -> None:
    events = [
        m.StockTradingAction(LOCATE, 0, T0, SYMBOL, "T", " ", ""),
        m.RegSHORestriction(LOCATE, 0, T0, SYMBOL, "0"),
        m.BrokenTrade(LOCATE, 0, T0, 77),
    ]
    stage = new_stage()
    output = stage.apply(batch_of(events))
    decoded = decode(output)

    assert output.events_applied == 3
    assert decoded.table("top_of_book") == decoded.table("trades") == []
    assert [row["reason"] for row in decoded.table("depth_snapshots")] == ["cadence"]  # nothing to change
    assert decoded.table("book_status")[0]["messages"] == 3
    assert stage.book.order_count == 0


def test_a_broken_trade_is_listed_for_the_broken_trades_table_and_leaves_the_print_standing() -> None:
    stage = new_stage()
    printed = stage.apply(batch_of([add_order(1, "B", PX_1000, 100), executed(1, 40, match=5)]))
    broken = decode(stage.apply(batch_of([m.BrokenTrade(LOCATE, 0, T0 + 9, 5)], first_seq=2)))

    assert decode(printed).table("trades") == [trade_row(1, "E", 5, PX_1000, 40, "B", 1)]
    assert decode(printed).table("broken_trades") == []
    # the B is the book's third event (seq 2); the print's row stays as it was written
    assert broken.table("broken_trades") == [
        {
            "venue": VENUE,
            "trading_date": DAY,
            "symbol": SYMBOL,
            "match_number": 5,
            "seq": 2,
            "ts_event": epoch(T0 + 9),
        }
    ]
    assert broken.table("trades") == []
    assert stage.book.order_count == 1  # 60 shares still rest: a break does not restore the order


def test_attributed_adds_are_booked_and_counted_as_such() -> None:
    stage = new_stage()
    decoded = decode(
        stage.apply(batch_of([add_attributed(1, "S", PX_1005, 100), add_order(2, "S", PX_1005, 50)]))
    )

    assert tops(decoded)[-1] == (1, EMPTY, (PX_1005, 150, 2))
    assert (stage.book.message_counts["F"], stage.book.message_counts["A"]) == (1, 1)


# --- depth snapshots ----------------------------------------------------------------------------------------


def test_depth_rows_on_change_of_the_top_levels_and_on_each_new_cadence_interval() -> None:
    stage = new_stage(BookStageConfig(depth_levels=2, cadence_ns=SECOND))
    assert epoch(T0) % SECOND == 0  # T0 is on a cadence boundary
    first = decode(
        stage.apply(
            batch_of(
                [
                    add_order(1, "B", PX_1000, 100),
                    add_order(2, "B", PX_999, 100),
                    add_order(3, "B", PX_998, 100),
                ]
            )
        )
    )
    inside_top = decode(
        stage.apply(batch_of([add_order(4, "B", dollars("9.97"), 100, ts=T0 + 500 * MS)], first_seq=3))
    )
    next_second = decode(stage.apply(batch_of([cancel(4, 10, ts=T0 + 1200 * MS)], first_seq=4)))
    changed = decode(stage.apply(batch_of([cancel(2, 40, ts=T0 + 1300 * MS)], first_seq=5)))

    assert [
        (row["reason"], row["bid_prices"], row["bid_shares"]) for row in first.table("depth_snapshots")
    ] == [("change", [PX_1000, PX_999], [100, 100])]
    assert inside_top.table("depth_snapshots") == []  # 9.97 is the 4th level, outside the top 2
    assert inside_top.hset(DEPTH_KEY) is None
    assert [(row["reason"], row["seq"], row["ts_event"]) for row in next_second.table("depth_snapshots")] == [
        ("cadence", 4, epoch(T0 + 1200 * MS))
    ]
    assert next_second.hset(DEPTH_KEY) is None  # Redis gets the depth on change only
    assert [
        (row["reason"], row["bid_shares"], row["bid_orders"]) for row in changed.table("depth_snapshots")
    ] == [("change", [100, 60], [1, 1])]
    assert json.loads(changed.hset(DEPTH_KEY)["bids"]) == [[PX_1000, 100, 1], [PX_999, 60, 1]]


def test_a_level_whose_order_count_alone_changes_is_a_depth_change_and_a_restore_keeps_the_depth() -> None:
    stage = new_stage(BookStageConfig(depth_levels=2))
    stage.apply(batch_of([add_order(1, "B", PX_1000, 200), add_order(2, "S", PX_1001, 100)]))
    # 200 shares at 10.00 stay 200, in two orders now; then the ask keeps 100 shares, in two orders
    bid = decode(stage.apply(batch_of([add_order(3, "B", PX_1000, 100), executed(1, 100)], first_seq=2)))
    ask = decode(stage.apply(batch_of([add_order(4, "S", PX_1001, 50), executed(2, 50)], first_seq=4)))
    depth = ("reason", "bid_shares", "bid_orders", "ask_shares", "ask_orders")
    assert [tuple(row[name] for name in depth) for row in bid.table("depth_snapshots")] == [
        ("change", [200], [2], [100], [1])
    ]
    assert [tuple(row[name] for name in depth) for row in ask.table("depth_snapshots")] == [
        ("change", [200], [2], [100], [2])
    ]
    assert stage.depth == [[PX_1000], [200], [2], [PX_1001], [100], [2]]
    restored = BookStage.restore(stage.snapshot(), venue=VENUE, symbol=SYMBOL, config=stage.config)
    assert restored.depth == stage.depth
    # the same levels again after the restore: no depth row (the restored depth is the one compared)
    again = decode(restored.apply(batch_of([add_order(5, "B", PX_999, 10), delete(5)], first_seq=6)))
    assert again.table("depth_snapshots") == []


# --- status and integrity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bid", "ask", "code"), [(PX_1005, PX_1000, "crossed"), (PX_1000, PX_1000, "locked")]
)
def test_status_reports_a_crossed_or_locked_book_every_batch(bid: int, ask: int, code: str) -> None:
    decoded = decode(new_stage().apply(batch_of([add_order(1, "B", bid, 100), add_order(2, "S", ask, 100)])))

    assert decoded.table("book_status")[0]["integrity"] == code


class ProblemBook(OrderBook):
    """A book whose full integrity check always finds a structural problem, and counts its calls."""

    __slots__ = ()
    checks = 0

    def check_integrity(self) -> list[IntegrityProblem]:
        ProblemBook.checks += 1
        return [IntegrityProblem("level_mismatch", "stub"), IntegrityProblem("locked", "stub")]


def test_full_integrity_check_runs_every_n_batches_and_its_findings_persist_between() -> None:
    stage = BookStage(
        venue=VENUE, symbol=SYMBOL, config=BookStageConfig(integrity_check_every=3), trading_date=DAY
    )
    stage.engine = PythonEngine(ProblemBook(symbol=SYMBOL, venue=VENUE), stage.wire)
    ProblemBook.checks = 0
    checks, codes = [], []
    for seq in range(5):
        decoded = decode(stage.apply(batch_of([add_order(seq + 1, "B", PX_1000, 100)], first_seq=seq)))
        checks.append(ProblemBook.checks)
        codes.append(decoded.table("book_status")[0]["integrity"])

    assert checks == [1, 1, 1, 2, 2]  # batches 1 and 4
    assert codes == ["level_mismatch"] * 5  # 'locked' comes from the top of book, which is not locked


# --- idempotence --------------------------------------------------------------------------------------------

THREE_EVENTS = [add_order(1, "B", PX_1000, 100), add_order(2, "S", PX_1005, 100), executed(1, 10, match=3)]


def test_a_duplicate_batch_produces_nothing_and_changes_no_state() -> None:
    stage = new_stage()
    batch = batch_of(THREE_EVENTS)
    stage.apply(batch)
    state = stage.snapshot()

    output = stage.apply(batch)

    assert (output.clickhouse, output.redis, output.redis_commands) == ((), b"", 0)
    assert (output.events_applied, output.duplicates_skipped) == (0, 3)
    assert stage.snapshot() == state


def test_a_partially_overlapping_batch_applies_only_its_new_events() -> None:
    events = [*THREE_EVENTS, cancel(2, 30), add_order(3, "S", PX_1001, 10)]
    overlapping, reference = new_stage(), new_stage()
    overlapping.apply(batch_of(events[:3]))
    reference.apply(batch_of(events[:3]))

    output = overlapping.apply(batch_of(events[1:], first_seq=1))  # seqs 1..4, of which 1 and 2 were applied
    expected = reference.apply(batch_of(events[3:], first_seq=3))

    assert (output.events_applied, output.duplicates_skipped) == (2, 2)
    assert (output.clickhouse, output.redis) == (expected.clickhouse, expected.redis)
    assert pickle.loads(overlapping.snapshot()) == pickle.loads(reference.snapshot())


def test_the_same_day_replayed_under_another_session_name_and_batching_is_a_duplicate() -> None:
    stage = new_stage()
    stage.apply(batch_of(THREE_EVENTS[:2], session="first.itch@2019-12-30"))
    state = stage.snapshot()

    again = stage.apply(batch_of(THREE_EVENTS[:2], session="renamed.itch"))
    assert (again.events_applied, again.duplicates_skipped, again.clickhouse, again.redis) == (0, 2, (), b"")
    assert stage.snapshot() == state
    # a replay in other batches: only the event not applied yet is new, numbered as the feed numbers it
    decoded = decode(stage.apply(batch_of(THREE_EVENTS, session="third")))
    assert [row["seq"] for row in decoded.table("trades")] == [2]
    assert decoded.table("book_status")[0]["messages"] == 3


def test_another_trading_date_starts_that_days_book() -> None:
    stage = new_stage()
    first_day = stage.apply(batch_of(THREE_EVENTS))
    next_day = date(2019, 12, 31)

    decoded = decode(stage.apply(batch_of([add_order(9, "B", PX_999, 5)], trading_date=next_day)))

    # the day's own book: yesterday's orders are gone, numbering starts at the day's first event
    assert stage.book.order(2) is None and stage.book.order(9) is not None
    assert stage.trading_date == DAY + 1
    (status,) = decoded.table("book_status")
    assert (status["trading_date"], status["seq"], status["messages"], status["orders"]) == (DAY + 1, 0, 1, 1)
    ts = epoch(T0) + 86_400 * 10**9
    assert decoded.table("top_of_book") == [{**tob(0, ts, (PX_999, 5, 1), EMPTY), "trading_date": DAY + 1}]
    # and the first day replayed after it is written exactly as the first time (idempotent keys)
    assert stage.apply(batch_of(THREE_EVENTS)) == first_day


def test_stream_ids_keep_increasing_when_event_time_goes_backwards() -> None:
    late, early = T0 + 5 * MS, T0 + 1 * MS
    decoded = decode(
        new_stage().apply(
            batch_of([add_order(1, "B", PX_1000, 1, ts=late), add_order(2, "B", PX_1001, 1, ts=early)])
        )
    )

    xadds = decoded.xadds()
    assert [command[5] for command in xadds] == [f"{epoch(late) // MS}-0", f"{epoch(late) // MS}-1"]
    assert [command[-1] for command in xadds] == [str(epoch(late)), str(epoch(early))]  # the true event time
    assert [row["ts_event"] for row in decoded.table("top_of_book")] == [epoch(late), epoch(early)]


# --- state --------------------------------------------------------------------------------------------------


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, int | str)


def test_snapshot_is_versioned_plain_data_and_restores_exactly() -> None:
    stage = new_stage()
    stage.apply(batch_of(THREE_EVENTS))
    state = stage.snapshot()

    saved = pickle.loads(state)
    assert saved["version"] == 2 and saved["trading_date"] == DAY
    assert _plain(saved)
    restored = BookStage.restore(state, venue=VENUE, symbol=SYMBOL, config=CONFIG)
    assert pickle.loads(restored.snapshot()) == saved
    follow = batch_of([cancel(2, 30)], first_seq=3)
    assert restored.apply(follow) == stage.apply(follow)


def test_restore_refuses_another_version_another_symbol_and_pickled_objects() -> None:
    state = pickle.loads(new_stage().snapshot()) | {"version": 3}
    with pytest.raises(ValueError, match="version 3"):
        BookStage.restore(pickle.dumps(state), venue=VENUE, symbol=SYMBOL, config=CONFIG)
    with pytest.raises(ValueError, match="keying"):
        BookStage.restore(new_stage().snapshot(), venue=VENUE, symbol="OTHER", config=CONFIG)
    with pytest.raises(pickle.UnpicklingError, match="plain data"):
        BookStage.restore(
            pickle.dumps({"version": 1, "when": date(2020, 1, 1)}), venue=VENUE, symbol=SYMBOL, config=CONFIG
        )


def test_empty_state_is_a_new_book() -> None:
    for state in (None, b""):
        stage = BookStage.restore(state, venue=VENUE, symbol=SYMBOL, config=CONFIG)
        assert (stage.book.order_count, stage.last_book_seq, stage.trading_date) == (0, -1, None)


def test_a_batch_of_another_symbol_is_refused() -> None:
    with pytest.raises(ValueError, match="applied to the book"):
        new_stage(symbol="OTHER").apply(batch_of(THREE_EVENTS))


@pytest.mark.parametrize(
    "settings",
    [{"depth_levels": 0}, {"cadence_ns": 0}, {"stream_maxlen": -1}, {"integrity_check_every": 0}],
)
def test_config_refuses_nonsense(settings: dict) -> None:
    with pytest.raises(ValueError):
        BookStageConfig(**settings)


def test_a_state_of_the_session_numbered_layout_restores_and_goes_on_in_the_next_batchs_day() -> None:
    stage = new_stage()
    stage.apply(batch_of(THREE_EVENTS))
    saved = pickle.loads(stage.snapshot())
    del saved["trading_date"]
    version_1 = saved | {"version": 1, "session": SESSION, "retired_sessions": []}

    restored = BookStage.restore(pickle.dumps(version_1), venue=VENUE, symbol=SYMBOL, config=CONFIG)
    follow = batch_of([cancel(2, 30)], first_seq=3)

    assert restored.apply(follow) == stage.apply(follow)
    assert restored.book.order(1) is not None and restored.trading_date == DAY
