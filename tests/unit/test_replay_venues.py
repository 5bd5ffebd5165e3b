"""Several venues' files in one replay: merged by event time, each venue's bundles numbered as if it
were replayed alone, a partition's records of every venue in event-time order."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from itchflow import synth
from itchflow.avro.bundle import decode_raw
from itchflow.cli import main
from itchflow.errors import UserError
from itchflow.itch.framing import iter_payloads
from itchflow.replay import EVENT_TIME_HEADER, MergedFeeds, replay
from itchflow.shards import SHARDS, shard_for
from tests.unit.test_replay_batcher import (
    DAY,
    MIDNIGHT_NS,
    FakeProducer,
    TickingClock,
    add_order,
    directory,
    reference_symbols,
    shard_of_key,
    split_packed,
    system_event,
)


def write_payloads(path: Path, payloads: list[bytes]) -> Path:
    with open(path, "wb") as out:
        for payload in payloads:
            out.write(len(payload).to_bytes(2, "big") + payload)
    return path


@pytest.fixture(scope="module")
def two_venues(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("venues")
    feeds = []
    for seed, venue in ((3, "NASDAQ"), (4, "BX")):
        path = folder / f"{venue}.itch"
        synth.write(path, symbols=40, messages=6_000, seed=seed)
        feeds.append((venue, path))
    return feeds


def test_merged_feeds_interleave_by_timestamp_then_venue_name_keeping_each_files_order(
    tmp_path: Path,
) -> None:
    b_file = write_payloads(
        tmp_path / "b", [system_event(5), add_order(1, "AAPL", 7, 1), add_order(1, "AAPL", 7, 2)]
    )
    a_file = write_payloads(tmp_path / "a", [system_event(7), add_order(1, "AAPL", 9, 1)])
    merged = list(MergedFeeds([("BX", b_file), ("ARCA", a_file)]))
    assert merged == [
        ("BX", system_event(5)),
        ("ARCA", system_event(7)),  # ARCA before BX at 7
        ("BX", add_order(1, "AAPL", 7, 1)),
        ("BX", add_order(1, "AAPL", 7, 2)),
        ("ARCA", add_order(1, "AAPL", 9, 1)),
    ]


def test_a_venue_given_twice_is_refused(tmp_path: Path) -> None:
    path = write_payloads(tmp_path / "a", [system_event(1)])
    with pytest.raises(UserError, match="twice"):
        MergedFeeds([("BX", path), ("BX", path)])


@pytest.mark.parametrize(
    ("partitions", "batch_size", "linger_ms"), [(4, 300, 1e9), (3, 2_000, 1e9), (1, 50, 1e9), (4, 2_000, 3.0)]
)
def test_each_venues_messages_come_back_per_symbol_in_file_order_numbered_as_if_alone(
    two_venues: list[tuple[str, Path]], partitions: int, batch_size: int, linger_ms: float
) -> None:
    producer = FakeProducer(partitions)
    summary = replay(
        MergedFeeds(two_venues),
        producer,
        topic="raw",
        venue="unused",
        trading_date=DAY,
        session="default",
        sessions={"NASDAQ": "n-1", "BX": "b-1"},
        batch_size=batch_size,
        linger_ms=linger_ms,
        clock=TickingClock(0.0005),  # bundles also close on linger mid-feed
    )
    got: dict[tuple[str, str], list[tuple[int, int, list[bytes]]]] = defaultdict(list)
    event_times: dict[int, list[int]] = defaultdict(list)
    for (_, key, value, partition), headers in zip(producer.sent, producer.headers, strict=True):
        record = decode_raw(value)
        assert record.session == {"NASDAQ": "n-1", "BX": "b-1"}[record.venue]
        assert record.partition == partition
        event_times[partition].append(int.from_bytes(headers[EVENT_TIME_HEADER], "big", signed=True))
        packed = iter(split_packed(record.payloads))
        for segment in record.segments:
            messages = [next(packed) for _ in range(segment.message_count)]
            if segment.symbol:
                assert shard_of_key(key) == shard_for(segment.symbol)
            got[(record.venue, segment.symbol)].append(
                (segment.batch_sequence, segment.first_message_seq, messages)
            )
        assert next(packed, None) is None
    for venue, path in two_venues:
        payloads = [payload for _, payload in iter_payloads(path)]
        per_symbol: dict[str, list[bytes]] = defaultdict(list)
        for symbol, payload in zip(reference_symbols(payloads), payloads, strict=True):
            per_symbol[symbol].append(payload)
        for symbol, expected in per_symbol.items():
            segments = got[(venue, symbol)]
            if symbol == "":  # market-wide: a copy in every shard, numbered per shard
                assert len(segments) >= SHARDS
                continue
            assert [sequence for sequence, _, _ in segments] == list(range(1, len(segments) + 1))
            firsts = [first for _, first, _ in segments]
            sizes = [len(messages) for _, _, messages in segments]
            assert firsts == [sum(sizes[:index]) for index in range(len(sizes))]
            assert [m for _, _, messages in segments for m in messages] == expected
    # a partition's records never go back in event time: its bundles of every venue close together
    for partition, times in event_times.items():
        assert times == sorted(times), partition
    total = sum(sum(1 for _ in iter_payloads(path)) for _, path in two_venues)
    assert summary.messages == total
    for venue, path in two_venues:  # what each venue's books must have applied when done
        counts: dict[str, int] = defaultdict(int)
        for symbol in reference_symbols([payload for _, payload in iter_payloads(path)]):
            counts[symbol] += 1
        assert summary.last_seq_by_symbol(venue) == {s: n - 1 for s, n in counts.items() if s}
    assert min(min(times) for times in event_times.values()) >= MIDNIGHT_NS
    assert sorted({key for key, _, _ in producer.ends}) == sorted(
        f"@{s}/{SHARDS}".encode() for s in range(SHARDS)
    )


def test_a_partial_replay_of_several_venues_is_refused(two_venues: list[tuple[str, Path]]) -> None:
    with pytest.raises(UserError, match="whole"):
        replay(
            MergedFeeds(two_venues),
            FakeProducer(2),
            topic="raw",
            venue="V",
            trading_date=DAY,
            session="s",
            to_message=10,
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "--date", "2020-01-02"], "which file"),
        (["replay", "x.itch", "--feed", "BX=y.itch", "--date", "2020-01-02"], "not both"),
        (["replay", "--feed", "BX", "--date", "2020-01-02"], "VENUE=FILE"),
        (["replay", "--feed", "BX=missing.itch", "--date", "2020-01-02"], r"no such file \(--feed BX=FILE\)"),
    ],
)
def test_replay_command_line_mistakes_say_what_to_do(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) != 0
    assert re.search(message, capsys.readouterr().err)


def test_hand_built_directory_feeds_of_two_venues_keep_their_own_locates(tmp_path: Path) -> None:
    # the same locate names different symbols on the two venues: each venue's directory is its own
    a_file = write_payloads(tmp_path / "a", [directory(1, "AAPL", 1), add_order(1, "AAPL", 5, 1)])
    b_file = write_payloads(tmp_path / "b", [directory(1, "MSFT", 2), add_order(1, "MSFT", 6, 1)])
    producer = FakeProducer(1)
    replay(
        MergedFeeds([("A", a_file), ("B", b_file)]),
        producer,
        topic="raw",
        venue="V",
        trading_date=DAY,
        session="s",
        linger_ms=1e9,
    )
    seen = {
        (record.venue, segment.symbol)
        for record in map(decode_raw, (value for _, _, value, _ in producer.sent))
        for segment in record.segments
    }
    assert seen == {("A", "AAPL"), ("B", "MSFT")}
