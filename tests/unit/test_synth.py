"""Synthetic feeds: deterministic, framed, book-consistent (checked by an independent walk), realistic mix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from itchflow import synth
from itchflow.cli import main
from itchflow.errors import UserError
from itchflow.itch.codec import decode, decode_many

SYMBOLS = 20
MESSAGES = 120_000
SEED = 7


@pytest.fixture(scope="module")
def feed_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("synth") / "feed.itch"
    synth.write(path, SYMBOLS, MESSAGES, SEED)
    return path.read_bytes()


@pytest.fixture(scope="module")
def feed(feed_bytes: bytes) -> list:
    return decode_many(feed_bytes)


def walk_book_consistency(messages: list) -> dict[str, int]:
    """Replay a feed with a plain dict of orders and count every way it could be inconsistent."""
    orders: dict[int, list] = {}  # reference -> [locate, side, price, shares]
    seen_references: set[int] = set()
    problems: Counter[str] = Counter()

    order_counts: dict[tuple[int, str], Counter[int]] = {}  # (locate, side) -> price -> live orders

    def best(locate: int, side: str) -> int | None:
        prices = [price for price, count in order_counts.get((locate, side), {}).items() if count > 0]
        if not prices:
            return None
        return max(prices) if side == "B" else min(prices)

    def track(order: list, change: int) -> None:
        order_counts.setdefault((order[0], order[1]), Counter())[order[2]] += change

    def check_not_crossing(locate: int, side: str, price: int) -> None:
        other = best(locate, "S" if side == "B" else "B")
        if other is not None and (price >= other if side == "B" else price <= other):
            problems["crossing_add"] += 1

    def live(reference: int, locate: int) -> list | None:
        order = orders.get(reference)
        if order is None or order[0] != locate:
            problems["not_live"] += 1
            return None
        return order

    for message in messages:
        kind = message.message_type
        if kind in "AF":
            if message.order_reference_number in seen_references:
                problems["reused_reference"] += 1
            seen_references.add(message.order_reference_number)
            check_not_crossing(message.stock_locate, message.buy_sell_indicator, message.price)
            orders[message.order_reference_number] = [
                message.stock_locate,
                message.buy_sell_indicator,
                message.price,
                message.shares,
            ]
            track(orders[message.order_reference_number], +1)
        elif kind in "EC":
            order = live(message.order_reference_number, message.stock_locate)
            if order is not None:
                if message.executed_shares > order[3]:
                    problems["overfill"] += 1
                order[3] -= message.executed_shares
                if order[3] <= 0:
                    track(orders.pop(message.order_reference_number), -1)
        elif kind == "X":
            order = live(message.order_reference_number, message.stock_locate)
            if order is not None:
                if message.cancelled_shares >= order[3]:
                    problems["cancel_not_partial"] += 1
                order[3] -= message.cancelled_shares
        elif kind == "D":
            if live(message.order_reference_number, message.stock_locate) is not None:
                track(orders.pop(message.order_reference_number), -1)
        elif kind == "U":
            order = live(message.original_order_reference_number, message.stock_locate)
            if order is not None:
                track(orders.pop(message.original_order_reference_number), -1)
                if message.new_order_reference_number in seen_references:
                    problems["reused_reference"] += 1
                seen_references.add(message.new_order_reference_number)
                check_not_crossing(message.stock_locate, order[1], message.price)
                orders[message.new_order_reference_number] = [
                    message.stock_locate,
                    order[1],
                    message.price,
                    message.shares,
                ]
                track(orders[message.new_order_reference_number], +1)
        elif kind in "PQ":
            # prints against hidden interest or in a cross: inside the spread of an uncrossed book
            price = message.price if kind == "P" else message.cross_price
            bid, ask = best(message.stock_locate, "B"), best(message.stock_locate, "S")
            if bid is not None and ask is not None and bid < ask and not bid <= price <= ask:
                problems["print_outside_spread"] += 1
        if kind in "AFUCPQ":
            price = {"C": "execution_price", "Q": "cross_price"}.get(kind, "price")
            if getattr(message, price) <= 0 or getattr(message, price) % 100:
                problems["off_tick_grid"] += 1
    return dict(problems)


def check_prints(messages: list) -> dict[str, int]:
    """Count every way the prints' match numbers and the breaks that refer to them could be wrong."""
    prints: dict[int, tuple[int, str]] = {}  # match number -> (locate, type; C with its printable flag)
    broken: set[int] = set()
    problems: Counter[str] = Counter()
    for message in messages:
        kind = message.message_type
        if kind in "ECPQ":
            if message.match_number in prints:
                problems["reused_match"] += 1
            prints[message.match_number] = (
                message.stock_locate,
                kind + message.printable if kind == "C" else kind,
            )
        elif kind == "B":
            earlier = prints.get(message.match_number)
            if earlier is None:
                problems["break_of_unknown_match"] += 1
            elif earlier[0] != message.stock_locate:
                problems["break_of_other_symbol"] += 1
            elif earlier[1] not in ("E", "CY", "P"):
                problems[f"break_of_{earlier[1]}"] += 1
            if message.match_number in broken:
                problems["broken_twice"] += 1
            broken.add(message.match_number)
    return dict(problems)


def test_same_seed_same_bytes_and_another_seed_other_bytes(tmp_path: Path, feed_bytes: bytes) -> None:
    again = tmp_path / "again.itch"
    other = tmp_path / "other.itch"
    synth.write(again, SYMBOLS, MESSAGES, SEED)
    synth.write(other, SYMBOLS, MESSAGES, SEED + 1)
    assert again.read_bytes() == feed_bytes
    assert other.read_bytes() != feed_bytes


def test_writes_exactly_the_requested_number_of_messages_in_standard_framing(
    feed_bytes: bytes, feed: list
) -> None:
    assert len(feed) == MESSAGES
    first_prefix = int.from_bytes(feed_bytes[:2], "big")
    assert first_prefix == 12  # a standard length prefix, not zero-prefixed framing


def test_session_structure_header_and_footer(feed: list) -> None:
    header = feed[: 2 * SYMBOLS + 3]
    assert (header[0].message_type, header[0].event_code) == ("S", "O")
    directory = header[1 : 1 + SYMBOLS]
    assert [message.message_type for message in directory] == ["R"] * SYMBOLS
    assert [message.stock_locate for message in directory] == list(range(1, SYMBOLS + 1))
    assert len({message.stock for message in directory}) == SYMBOLS
    trading = header[1 + SYMBOLS : 1 + 2 * SYMBOLS]
    assert {(message.message_type, message.trading_state) for message in trading} == {("H", "T")}
    assert [(message.message_type, message.event_code) for message in header[-2:]] == [("S", "S"), ("S", "Q")]
    assert [(message.message_type, message.event_code) for message in feed[-3:]] == [
        ("S", "M"),
        ("S", "E"),
        ("S", "C"),
    ]
    timestamps = [message.timestamp for message in feed]
    assert timestamps == sorted(timestamps)
    body = feed[2 * SYMBOLS + 3 : -3]
    continuous = [message for message in body if message.message_type != "Q"]
    assert all(34_200 * 10**9 <= message.timestamp < 57_600 * 10**9 for message in continuous)


@pytest.mark.parametrize("seed", range(20))
def test_small_feeds_end_their_session_before_the_close_whatever_the_seed(seed: int) -> None:
    # few body messages: the sum of random gaps varies widely around the length of the session
    feed = [decode(payload) for payload in synth.generate(3, 200, seed)]
    timestamps = [message.timestamp for message in feed]
    assert timestamps == sorted(timestamps)
    continuous = [message for message in feed[9:-3] if message.message_type != "Q"]
    assert max(message.timestamp for message in continuous) < 57_600 * 10**9
    assert feed[-3].timestamp == 57_600 * 10**9  # end of market hours


def test_every_event_refers_to_a_live_order_with_enough_shares_and_books_never_cross(feed: list) -> None:
    assert walk_book_consistency(feed) == {}


def test_message_mix_is_close_to_the_target(feed: list) -> None:
    body = [message for message in feed[2 * SYMBOLS + 3 : -3] if message.message_type != "Q"]
    counts = Counter(message.message_type for message in body)
    share = {kind: count / len(body) for kind, count in counts.items()}
    assert share["A"] + share["F"] == pytest.approx(0.45, abs=0.02)
    assert share["D"] == pytest.approx(0.35, abs=0.02)
    assert share["X"] == pytest.approx(0.10, abs=0.015)
    assert share["E"] + share["C"] == pytest.approx(0.06, abs=0.01)
    assert share["U"] == pytest.approx(0.03, abs=0.005)
    assert share["P"] == pytest.approx(0.01, abs=0.003)
    assert set(counts) == set("AFECXDUPB")
    printable = Counter(message.printable for message in body if message.message_type == "C")
    assert printable["Y"] > printable["N"] > 0
    prints = counts["E"] + printable["Y"] + counts["P"]
    assert 0.0005 < counts["B"] / prints < 0.006  # about 0.2 % of the prints are broken


def test_match_numbers_are_unique(feed: list) -> None:
    assert check_prints(feed) == {}


def test_every_symbol_opens_and_closes_with_a_cross_some_without_volume(feed: list) -> None:
    body = feed[2 * SYMBOLS + 3 : -3]
    opening, closing = body[:SYMBOLS], body[-SYMBOLS:]
    assert {(message.message_type, message.cross_type) for message in opening} == {("Q", "O")}
    assert {(message.message_type, message.cross_type) for message in closing} == {("Q", "C")}
    assert [message for message in body[SYMBOLS:-SYMBOLS] if message.message_type == "Q"] == []
    assert {message.timestamp for message in opening} == {(9 * 3600 + 30 * 60) * 10**9}  # 09:30:00
    assert {message.timestamp for message in closing} == {16 * 3600 * 10**9}  # 16:00:00
    traded = {message.stock_locate for message in body if message.message_type in "ECP"}
    assert traded == set(range(1, SYMBOLS + 1))
    assert sorted(message.stock_locate for message in opening) == sorted(traded)
    assert sorted(message.stock_locate for message in closing) == sorted(traded)
    stocks = {message.stock_locate: message.stock for message in feed if message.message_type == "R"}
    assert all(message.stock == stocks[message.stock_locate] for message in opening + closing)
    volumes = [message.shares for message in opening + closing]
    assert 0 < volumes.count(0) < len(volumes) / 4
    assert all(shares % 100 == 0 for shares in volumes)


@pytest.mark.parametrize(("messages", "crossing"), [(100, set()), (400, {1, 2}), (600, {1, 2, 3})])
def test_only_symbols_active_enough_cross_and_the_crosses_count_in_the_messages(
    messages: int, crossing: set[int]
) -> None:
    # 3 symbols, Zipf 1: symbol i gets about (messages - 12) / (i + 1) / 1.83 body messages, and crosses
    # when that is at least 100
    feed = [decode(payload) for payload in synth.generate(3, messages, SEED)]
    assert len(feed) == messages
    crosses = Counter(
        (message.stock_locate, message.cross_type) for message in feed if message.message_type == "Q"
    )
    assert crosses == Counter({(locate, cross_type): 1 for locate in crossing for cross_type in "OC"})
    assert walk_book_consistency(feed) == {}
    assert check_prints(feed) == {}


def test_breaks_refer_to_earlier_unbroken_prints_of_their_symbol_never_twice_never_a_cross(
    feed: list,
) -> None:
    assert sum(message.message_type == "B" for message in feed) > 10
    assert check_prints(feed) == {}


def test_breaks_stay_valid_when_drawn_more_often_than_there_are_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(synth.MESSAGE_MIX, "break", 0.2)
    feed = [decode(payload) for payload in synth.generate(5, 30_000, SEED)]
    counts = Counter(message.message_type for message in feed)
    assert counts["B"] > 1_000
    assert counts["B"] < counts["E"] + counts["C"] + counts["P"]  # a break needs an unbroken print
    assert check_prints(feed) == {}
    assert walk_book_consistency(feed) == {}


def test_activity_is_skewed_across_symbols(feed: list) -> None:
    body = feed[2 * SYMBOLS + 3 : -3]
    per_locate = Counter(message.stock_locate for message in body)
    assert len(per_locate) == SYMBOLS
    # Zipf with exponent 1: symbol 1 about twice symbol 2, about ten times symbol 10
    assert per_locate[1] / per_locate[2] == pytest.approx(2.0, rel=0.1)
    assert per_locate[1] / per_locate[10] == pytest.approx(10.0, rel=0.15)


def test_allow_crossed_lets_the_book_cross(tmp_path: Path) -> None:
    path = tmp_path / "crossed.itch"
    synth.write(path, 3, 20_000, SEED, allow_crossed=True)
    problems = walk_book_consistency(decode_many(path.read_bytes()))
    assert problems.get("crossing_add", 0) > 0
    assert set(problems) == {"crossing_add"}  # still consistent in every other way


def test_generate_yields_the_payloads_that_write_frames(feed_bytes: bytes) -> None:
    payloads = list(synth.generate(SYMBOLS, 5_000, SEED))
    assert len(payloads) == 5_000
    framed = b"".join(len(payload).to_bytes(2, "big") + payload for payload in payloads)
    decoded = [decode(payload) for payload in payloads]
    assert decode_many(framed) == decoded
    assert payloads[0][:1] == b"S"


def test_gz_output_is_gzipped(tmp_path: Path) -> None:
    import gzip

    synth.write(tmp_path / "feed.itch.gz", 2, 1_000, SEED)
    synth.write(tmp_path / "feed.itch", 2, 1_000, SEED)
    assert gzip.decompress((tmp_path / "feed.itch.gz").read_bytes()) == (tmp_path / "feed.itch").read_bytes()


def test_ticker_names_are_four_letters_in_order() -> None:
    assert [synth.ticker(index) for index in (0, 1, 25, 26, 27)] == ["AAAA", "AAAB", "AAAZ", "AABA", "AABB"]


def test_too_few_messages_for_the_header_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="at least 26"):
        synth.write(tmp_path / "small.itch", 10, 25, SEED)


def test_command_line_writes_the_file_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "cli.itch"
    code = main(
        ["synth", "--symbols", "3", "--messages", "2000", "--seed", "5", "-o", str(path), "--no-progress"]
    )
    assert code == 0
    assert len(decode_many(path.read_bytes())) == 2000
    assert "wrote 2,000 messages for 3 symbols" in capsys.readouterr().out


def test_command_line_refuses_zero_symbols(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["synth", "--symbols", "0", "--messages", "100", "-o", str(tmp_path / "x.itch"), "--no-progress"]
    )
    assert code == 1
    assert "--symbols must be between 1" in capsys.readouterr().err
