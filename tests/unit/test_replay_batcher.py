"""The replay's batcher: symbols routed to their shard (Kafka's murmur2 of the symbol modulo the
shards) and the shard to its partition, one bundle per shard closing on size or linger, per-symbol
numbering across bundles, market-wide messages copied to every shard, unresolved locates,
``--from-message`` skips, and what it yields surviving the Avro round trip. Messages are built byte
by byte from the ITCH 5.0 layout; shards and partitions come from a reference murmur2 written here
from Kafka's algorithm and checked against Kafka's own test vectors. The closing and numbering tests
use as many shards as partitions (a bundle per partition), the routing tests the real shards."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date

import pytest

from itchflow.avro.bundle import SegmentInput, decode_raw, encode_bundle, make_bundle
from itchflow.errors import UserError
from itchflow.itch.framing import iter_payloads as file_messages
from itchflow.replay import (
    END_OF_REPLAY_HEADER,
    EVENT_TIME_HEADER,
    HEARTBEAT_HEADER,
    BundleBatcher,
    ClosedBundle,
    partition_for,
    replay,
)
from itchflow.shards import SHARDS, parse_shard_key, shard_for
from tests.samples import SAMPLES

DAY = date(2019, 12, 30)

# --------------------------------------------------------------------------------- reference murmur2


def reference_murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (Java, 32-bit signed result), transcribed from the algorithm."""
    mask = 0xFFFFFFFF
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h  # as a Java int


def reference_partition(symbol: str, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % numPartitions`` of the Java producer."""
    return (reference_murmur2(symbol.encode("utf-8")) & 0x7FFFFFFF) % partitions


# Kafka's clients/src/test/.../utils/UtilsTest.java testMurmur2, and further Java-computed values
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}

SYMBOLS = ["AAPL", "MSFT", "ZVZZT", "QQQ", "SPY", "A", "BRK A", "GOOGL", "@17", "TSLA", "NVDA", "IBM"]


def test_the_reference_murmur2_is_kafkas() -> None:
    assert {data: reference_murmur2(data) for data in JAVA_MURMUR2} == JAVA_MURMUR2


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 5, 12, 16])
def test_a_symbol_goes_to_its_shards_partition(partitions: int) -> None:
    for symbol in SYMBOLS:
        shard = reference_partition(symbol, SHARDS)  # murmur2 modulo the shards
        assert shard_for(symbol) == shard, symbol
        # a contiguous range of shards per partition
        assert partition_for(symbol, partitions) == shard * partitions // SHARDS, symbol


def test_a_symbols_shard_is_kafka_pythons_default_partition_of_the_symbol_among_the_shards() -> None:
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:
        def topics(self):
            return {"raw"}

        def partitions_for_topic(self, topic):
            return set(range(SHARDS))

        available_partitions_for_topic = partitions_for_topic

    for symbol in SYMBOLS:
        key = symbol.encode()
        expected = DefaultPartitioner().partition("raw", key, key, b"", b"", Cluster())
        assert shard_for(symbol) == expected


def symbols_by_partition(partitions: int) -> dict[int, list[str]]:
    """Test symbols grouped by their reference partition."""
    grouped: dict[int, list[str]] = defaultdict(list)
    for index in range(400):
        symbol = f"S{index}"
        grouped[reference_partition(symbol, partitions)].append(symbol)
    return grouped


# --------------------------------------------------------------------------------- ITCH messages


def message(kind: str, locate: int, timestamp: int, body: bytes) -> bytes:
    """Type, stock locate, tracking number 0, 6-byte timestamp, then ``body``."""
    return kind.encode() + locate.to_bytes(2, "big") + b"\x00\x00" + timestamp.to_bytes(6, "big") + body


def stock(symbol: str) -> bytes:
    return symbol.encode().ljust(8)


def system_event(timestamp: int, code: bytes = b"O") -> bytes:
    return message("S", 0, timestamp, code)  # 12 bytes


def directory(locate: int, symbol: str, timestamp: int = 1) -> bytes:
    return message("R", locate, timestamp, stock(symbol) + b"N" + b" " * 19)  # 39 bytes


def add_order(locate: int, symbol: str, timestamp: int, ref: int) -> bytes:
    return message(
        "A",
        locate,
        timestamp,
        ref.to_bytes(8, "big") + b"B" + (100).to_bytes(4, "big") + stock(symbol) + (1).to_bytes(4, "big"),
    )  # 36 bytes


def delete(locate: int, timestamp: int, ref: int) -> bytes:
    return message("D", locate, timestamp, ref.to_bytes(8, "big"))  # 19 bytes, no stock field


def cross_trade(locate: int, symbol: str, timestamp: int) -> bytes:
    return message(
        "Q",
        locate,
        timestamp,
        (5).to_bytes(8, "big") + stock(symbol) + (1).to_bytes(4, "big") + bytes(8) + b"O",
    )  # 40 bytes


def test_the_hand_built_messages_have_the_spec_lengths() -> None:
    lengths = [
        len(m)
        for m in (
            system_event(1),
            directory(1, "X"),
            add_order(1, "X", 1, 1),
            delete(1, 1, 1),
            cross_trade(1, "X", 1),
        )
    ]
    assert lengths == [12, 39, 36, 19, 40]


def segments_of(bundle: ClosedBundle) -> list[tuple[str, int, int, int, list[bytes]]]:
    """(symbol, stock_locate, batch_sequence, first_message_seq, payloads) per segment."""
    return [
        (s.symbol, s.stock_locate, s.batch_sequence, s.first_message_seq, list(s.payloads))
        for s in bundle.segments
    ]


def run(batcher: BundleBatcher, payloads: list[bytes]) -> list[ClosedBundle]:
    closed = []
    for payload in payloads:
        closed.extend(batcher.add(payload))
    closed.extend(batcher.flush())
    return closed


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------------- closing and numbering


def test_a_bundle_closes_at_batch_size_messages_with_a_segment_per_symbol_in_first_seen_order() -> None:
    r_aapl, r_msft = directory(1, "AAPL"), directory(2, "MSFT")
    a1, m1, a2, s1, m2 = (
        add_order(1, "AAPL", 10, 1),
        delete(2, 11, 9),
        delete(1, 12, 1),
        system_event(13),
        delete(2, 14, 8),
    )
    batcher = BundleBatcher(1, batch_size=3, linger_ms=float("inf"), clock=FakeClock(), shards=1)
    closed = []
    for payload in (r_aapl, r_msft):
        closed.extend(batcher.add(payload))
    assert closed == []
    closed.extend(batcher.add(a1))  # third message: the bundle is full
    assert [(b.partition, b.bundle_sequence) for b in closed] == [(0, 1)]
    assert segments_of(closed[0]) == [("AAPL", 1, 1, 0, [r_aapl, a1]), ("MSFT", 2, 1, 0, [r_msft])]
    closed.extend(batcher.add(m1))
    closed.extend(batcher.add(a2))
    closed.extend(batcher.add(s1))
    assert len(closed) == 2
    assert closed[1].bundle_sequence == 2
    assert segments_of(closed[1]) == [
        ("MSFT", 2, 2, 1, [m1]),
        ("AAPL", 1, 2, 2, [a2]),
        ("", 0, 1, 0, [s1]),
    ]
    closed.extend(batcher.add(m2))
    closed.extend(batcher.flush())
    assert [b.bundle_sequence for b in closed] == [1, 2, 3]
    assert segments_of(closed[2]) == [("MSFT", 2, 3, 2, [m2])]
    assert list(batcher.flush()) == []
    assert batcher.messages_by_symbol == {"AAPL": 3, "MSFT": 3, "__SYSTEM__": 1}
    assert batcher.message_sequences == {"AAPL": 3, "MSFT": 3, "__SYSTEM__": 1}


def test_a_bundle_closes_when_its_first_message_is_linger_old() -> None:
    p_x, p_y = 0, 1
    grouped = symbols_by_partition(2)
    x, y = grouped[p_x][0], grouped[p_y][0]
    clock = FakeClock()
    batcher = BundleBatcher(2, batch_size=1000, linger_ms=250, clock=clock, shards=2)
    x1, y1, x2, y2, x3, x4 = (
        add_order(1, x, 1, 1),
        add_order(2, y, 2, 2),
        delete(1, 3, 1),
        delete(2, 4, 2),
        add_order(1, x, 5, 3),
        delete(1, 6, 3),
    )

    def add_at(now: float, payload: bytes) -> list[ClosedBundle]:
        clock.now = now
        return list(batcher.add(payload))

    assert add_at(0.0, x1) == []  # x's bundle opens at 0
    assert add_at(0.125, y1) == []  # y's at 0.125
    assert add_at(0.125, x2) == []  # x's first message is 0.125 s old: not yet
    closed = add_at(0.25, y2)  # 0.25 s: x's bundle closes; y's (0.125 s old) keeps y2
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in closed] == [
        (p_x, 1, [(x, 1, 1, 0, [x1, x2])])
    ]
    assert add_at(0.25, x3) == []  # a new bundle for x, opened at 0.25
    closed = add_at(0.375, x4)
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in closed] == [
        (p_y, 1, [(y, 2, 1, 0, [y1, y2])])
    ]
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in batcher.flush()] == [
        (p_x, 2, [(x, 1, 2, 2, [x3, x4])])
    ]


def test_expired_closes_only_the_bundles_older_than_the_linger() -> None:
    grouped = symbols_by_partition(3)
    clock = FakeClock()
    batcher = BundleBatcher(3, batch_size=1000, linger_ms=500, clock=clock, shards=3)
    list(batcher.add(add_order(1, grouped[2][0], 1, 1)))
    clock.now = 0.25
    list(batcher.add(add_order(2, grouped[0][0], 2, 2)))
    assert [b.partition for b in batcher.expired(0.499)] == []
    assert [b.partition for b in batcher.expired(0.5)] == [2]
    assert [b.partition for b in batcher.flush()] == [0]


def test_symbols_of_one_partition_share_its_bundles_and_keep_their_own_numbering() -> None:
    grouped = symbols_by_partition(2)
    (a, b), c = grouped[0][:2], grouped[1][0]
    batcher = BundleBatcher(2, batch_size=2, linger_ms=float("inf"), clock=FakeClock(), shards=2)
    feed = [
        add_order(1, a, 1, 1),  # a #0 -> p0
        add_order(3, c, 2, 2),  # c #0 -> p1
        add_order(2, b, 3, 3),  # b #0 -> p0: p0 full
        delete(1, 4, 1),  # a #1 -> p0
        delete(3, 5, 2),  # c #1 -> p1: p1 full
        delete(2, 6, 3),  # b #1 -> p0: p0 full
        add_order(1, a, 7, 4),  # a #2 -> p0 (flushed)
    ]
    closed = run(batcher, feed)
    assert [(bundle.partition, bundle.bundle_sequence, segments_of(bundle)) for bundle in closed] == [
        (0, 1, [(a, 1, 1, 0, [feed[0]]), (b, 2, 1, 0, [feed[2]])]),
        (1, 1, [(c, 3, 1, 0, [feed[1], feed[4]])]),
        (0, 2, [(a, 1, 2, 1, [feed[3]]), (b, 2, 2, 1, [feed[5]])]),
        (0, 3, [(a, 1, 3, 2, [feed[6]])]),
    ]


def test_market_wide_messages_are_copied_to_every_partition_and_numbered_per_partition() -> None:
    grouped = symbols_by_partition(2)
    x = grouped[1][0]
    batcher = BundleBatcher(2, batch_size=2, linger_ms=float("inf"), clock=FakeClock(), shards=2)
    s1, s2, s3 = system_event(1, b"O"), system_event(2, b"S"), system_event(3, b"Q")
    ax = add_order(5, x, 4, 1)
    closed = list(batcher.add(s1))
    assert closed == []
    closed = list(batcher.add(s2))  # both partitions hold two messages now
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in closed] == [
        (0, 1, [("", 0, 1, 0, [s1, s2])]),
        (1, 1, [("", 0, 1, 0, [s1, s2])]),
    ]
    assert list(batcher.add(ax)) == []
    closed = list(batcher.add(s3))  # x's partition is full, the other holds s3 only
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in closed] == [
        (1, 2, [(x, 5, 1, 0, [ax]), ("", 0, 2, 2, [s3])])
    ]
    assert [(b.partition, b.bundle_sequence, segments_of(b)) for b in batcher.flush()] == [
        (0, 2, [("", 0, 2, 2, [s3])])
    ]
    assert batcher.messages_by_symbol == {"__SYSTEM__": 3, x: 1}  # counted once, not per copy


def test_a_partitions_bundles_close_together_in_order_of_their_first_message() -> None:
    # a quiet symbol and a busy one in two shards of one partition: the busy one fills its bundle after
    # the quiet one's message, and both close then, the quiet one's (the older) first
    by_shard: dict[int, str] = {}
    for index in range(400):
        by_shard.setdefault(reference_partition(f"S{index}", SHARDS), f"S{index}")
    (quiet_shard, quiet), (busy_shard, busy) = sorted(by_shard.items())[-1], sorted(by_shard.items())[0]
    batcher = BundleBatcher(1, batch_size=3, linger_ms=float("inf"), clock=FakeClock())
    feed = [add_order(1, quiet, 1, 1), add_order(2, busy, 2, 2), delete(2, 3, 2), add_order(2, busy, 4, 3)]
    closed = run(batcher, feed)
    assert [(b.shard, b.earliest_timestamp(), [s.symbol for s in b.segments]) for b in closed] == [
        (quiet_shard, 1, [quiet]),
        (busy_shard, 2, [busy]),
    ]
    assert [b.key for b in closed] == [f"@{quiet_shard}/{SHARDS}", f"@{busy_shard}/{SHARDS}"]
    # in two partitions the quiet shard's bundle waits for its own partition
    if quiet_shard * 2 // SHARDS != busy_shard * 2 // SHARDS:
        batcher = BundleBatcher(2, batch_size=3, linger_ms=float("inf"), clock=FakeClock())
        assert [b.shard for b in run(batcher, feed[1:] + feed[:1])] == [busy_shard, quiet_shard]


def test_unresolved_locates_are_routed_by_their_at_name_until_the_directory_names_them() -> None:
    partitions = 4
    batcher = BundleBatcher(partitions, batch_size=1000, linger_ms=float("inf"), clock=FakeClock())
    d1 = delete(7, 1, 11)  # locate 7 unknown: "@7"
    r7 = directory(7, "ZVZZT", 2)  # now it is ZVZZT
    d2 = delete(7, 3, 12)
    q9 = cross_trade(9, "QQQ", 4)  # a Q message names its locate too
    d3 = delete(9, 5, 13)
    closed = run(batcher, [d1, r7, d2, q9, d3])
    found = {
        (b.partition, s.symbol, s.stock_locate, s.batch_sequence, s.first_message_seq): list(s.payloads)
        for b in closed
        for s in b.segments
    }

    def partition(symbol: str) -> int:
        return reference_partition(symbol, SHARDS) * partitions // SHARDS

    assert found == {
        (partition("@7"), "@7", 7, 1, 0): [d1],
        (partition("ZVZZT"), "ZVZZT", 7, 1, 0): [r7, d2],
        (partition("QQQ"), "QQQ", 9, 1, 0): [q9, d3],
    }


def test_skipped_messages_advance_the_directory_and_every_sequence_as_if_sent() -> None:
    batcher = BundleBatcher(2, batch_size=1000, linger_ms=float("inf"), clock=FakeClock(), shards=2)
    feed = [
        directory(1, "AAPL"),  # AAPL #0   skipped
        system_event(2),  # market-wide #0   skipped
        add_order(1, "AAPL", 3, 1),  # AAPL #1   skipped
        delete(1, 4, 1),  # AAPL #2: resolved through the skipped directory message
        system_event(5, b"C"),  # market-wide #1
    ]
    for payload in feed[:3]:
        batcher.skip(payload)
    closed = run(batcher, feed[3:])
    aapl = reference_partition("AAPL", 2)
    by_partition = {b.partition: segments_of(b) for b in closed}
    assert by_partition[aapl] == [("AAPL", 1, 1, 2, [feed[3]]), ("", 0, 1, 1, [feed[4]])]
    assert by_partition[1 - aapl] == [("", 0, 1, 1, [feed[4]])]
    assert batcher.message_sequences == {"AAPL": 3, "__SYSTEM__": 2}
    assert batcher.messages_by_symbol == {"AAPL": 1, "__SYSTEM__": 1}


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(UserError, match="--batch-size"):
        BundleBatcher(4, batch_size=0)


# --------------------------------------------------------------------------------- round trip


def split_packed(payloads: bytes) -> list[bytes]:
    """The messages of a bundle's ``payloads`` (2-byte big-endian length before each)."""
    out, pos = [], 0
    while pos < len(payloads):
        size = int.from_bytes(payloads[pos : pos + 2], "big")
        out.append(payloads[pos + 2 : pos + 2 + size])
        pos += 2 + size
    assert pos == len(payloads)
    return out


def reference_symbols(payloads: list[bytes]) -> list[str]:
    """Each message's symbol per the routing rules, from the ITCH layout: locate 0 -> "" (market-wide);
    R names its locate; A/F/P (stock at 24) and Q (stock at 19) name a locate not named yet."""
    names: dict[int, str] = {}
    out = []
    for payload in payloads:
        locate = int.from_bytes(payload[1:3], "big")
        kind = chr(payload[0])
        at = {"R": 11, "A": 24, "F": 24, "P": 24, "Q": 19}.get(kind)
        if locate and at is not None and (kind == "R" or locate not in names):
            names[locate] = payload[at : at + 8].decode("latin-1").rstrip(" ")
        out.append("" if locate == 0 else names.get(locate, f"@{locate}"))
    return out


@pytest.mark.parametrize(
    ("sample", "partitions", "batch_size"),
    [
        ("omi_Nasdaq_itch50_sample.bin", 4, 7),
        ("RITCH_ex20101224.TEST_ITCH_50.gz", 3, 50),
        ("meatpy_sample.itch50", 5, 1),
    ],
)
def test_what_the_batcher_yields_encodes_and_decodes_back_to_the_feed(
    sample: str, partitions: int, batch_size: int
) -> None:
    feed = [payload for _, payload in file_messages(SAMPLES / sample)]
    symbols = reference_symbols(feed)
    expected: dict[str, list[bytes]] = defaultdict(list)
    for symbol, payload in zip(symbols, feed, strict=True):
        expected[symbol].append(payload)

    clock = FakeClock()
    batcher = BundleBatcher(partitions, batch_size=batch_size, linger_ms=3, clock=clock)
    values = []  # (key, value) of each record
    for payload in feed:
        clock.now += 0.001  # a message per ms: bundles close on linger too
        for bundle in batcher.add(payload):
            values.append((bundle.key, encode_bundle(make_record(bundle))))
    values.extend((bundle.key, encode_bundle(make_record(bundle))) for bundle in batcher.flush())

    got: dict[tuple[str, int], list[tuple[int, bytes]]] = defaultdict(
        list
    )  # (symbol, shard) -> (seq, message)
    bundle_sequences: dict[int, list[int]] = defaultdict(list)
    batch_sequences: dict[tuple[str, int], list[int]] = defaultdict(list)
    earliest: dict[int, list[int]] = defaultdict(list)  # per partition, each record's earliest message
    for key, value in values:
        bundle = decode_raw(value)
        earliest[bundle.partition].append(min(segment.first_timestamp for segment in bundle.segments))
        shard, shards = (int(part) for part in key.removeprefix("@").split("/"))
        assert shards == SHARDS
        assert (bundle.partition, bundle.partitions) == (shard * partitions // SHARDS, partitions)
        bundle_sequences[shard].append(bundle.bundle_sequence)
        messages = iter(split_packed(bundle.payloads))
        assert bundle.message_count <= batch_size
        for segment in bundle.segments:
            part = [next(messages) for _ in range(segment.message_count)]
            if segment.symbol:
                assert shard == reference_partition(segment.symbol, SHARDS)
            assert segment.first_timestamp == int.from_bytes(part[0][5:11], "big")
            batch_sequences[(segment.symbol, shard)].append(segment.batch_sequence)
            got[(segment.symbol, shard)].extend(
                (segment.first_message_seq + i, m) for i, m in enumerate(part)
            )
        assert next(messages, None) is None
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in bundle_sequences.values())
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in batch_sequences.values())
    # a partition's records never go back in time: no message is behind an earlier record's event time
    assert all(times == sorted(times) for times in earliest.values())
    market_wide = [(i, m) for i, m in enumerate(expected.pop("", []))]
    if market_wide:
        for shard in range(SHARDS):  # every shard, every market-wide message, numbered
            assert got.pop(("", shard)) == market_wide
    assert {symbol: messages for (symbol, _), messages in got.items()} == {
        symbol: list(enumerate(messages)) for symbol, messages in expected.items()
    }
    assert len(got) == len(expected)  # each symbol in one shard


def make_record(bundle: ClosedBundle):
    return make_bundle(
        bundle.segments,
        venue="XNAS",
        trading_date=DAY,
        session="s",
        partition=bundle.partition,
        partitions=bundle.partitions,
        bundle_sequence=bundle.bundle_sequence,
        produced_at_ns=1,
    )


# --------------------------------------------------------------------------------- replay() with a fake producer


class FakeProducer:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.headers: list[dict[str, bytes]] = []
        self.ends: list[tuple[bytes, int, dict[str, bytes]]] = []

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic: str, *, key: bytes, value: bytes, partition: int, headers=None):
        if headers and any(name == END_OF_REPLAY_HEADER for name, _ in headers):
            self.ends.append((key, partition, dict(headers)))
        else:
            self.sent.append((topic, key, value, partition))
            self.headers.append(dict(headers or ()))

        class Done:
            def get(self, timeout=None):
                return None

        return Done()

    def flush(self) -> None:
        pass


def shard_of_key(key: bytes) -> int:
    parsed = parse_shard_key(key.decode())
    assert parsed is not None and parsed[1] == SHARDS, key
    return parsed[0]


def test_replay_sends_one_record_per_bundle_to_its_shards_partition_keyed_by_the_shard() -> None:
    feed = [
        directory(1, "AAPL"),
        directory(2, "MSFT"),
        system_event(3),
        add_order(1, "AAPL", 4, 1),
        add_order(2, "MSFT", 5, 2),
        delete(1, 6, 1),
    ]
    producer = FakeProducer(3)
    summary = replay(
        feed,
        producer,
        topic="raw",
        venue="XNAS",
        trading_date=DAY,
        session="s",
        batch_size=1000,
        linger_ms=1e9,
        from_message=1,
    )
    # flushed at the end: one bundle per shard (every shard holds the market-wide message)
    assert sorted((key, partition) for _, key, _, partition in producer.sent) == sorted(
        (f"@{shard}/{SHARDS}".encode(), shard * 3 // SHARDS) for shard in range(SHARDS)
    )
    segments = {}
    for _, key, value, partition in producer.sent:
        shard = shard_of_key(key)
        bundle = decode_raw(value)
        assert (
            bundle.partition,
            bundle.partitions,
            bundle.bundle_sequence,
            bundle.venue,
            bundle.session,
        ) == (
            partition,
            3,
            1,
            "XNAS",
            "s",
        )
        assert bundle.produced_at_ns > 1_500_000_000 * 10**9  # wall clock, ns
        for segment in bundle.segments:
            segments[(shard, segment.symbol)] = (
                segment.batch_sequence,
                segment.first_message_seq,
                segment.message_count,
            )
    assert segments[(reference_partition("AAPL", SHARDS), "AAPL")] == (1, 1, 2)  # the skipped R was AAPL #0
    assert segments[(reference_partition("MSFT", SHARDS), "MSFT")] == (1, 0, 2)
    assert all(segments[(shard, "")] == (1, 0, 1) for shard in range(SHARDS))
    assert len(segments) == SHARDS + 2
    assert (summary.messages, summary.records, summary.batches) == (5, SHARDS, SHARDS + 2)
    assert summary.last_seq_by_symbol() == {"AAPL": 2, "MSFT": 1}


def test_encode_hook_gets_the_closed_bundles() -> None:
    seen: list[ClosedBundle] = []

    def encode(bundle: ClosedBundle) -> bytes:
        seen.append(bundle)
        return b"v"

    producer = FakeProducer(1)
    replay(
        [add_order(1, "AAPL", 1, 1), delete(1, 2, 1)],
        producer,
        topic="raw",
        venue="V",
        trading_date=DAY,
        session="s",
        batch_size=1,
        encode=encode,
    )
    assert [segments_of(b) for b in seen] == [
        [("AAPL", 1, 1, 0, [add_order(1, "AAPL", 1, 1)])],
        [("AAPL", 1, 2, 1, [delete(1, 2, 1)])],
    ]
    assert [(key, value, partition) for _, key, value, partition in producer.sent] == [
        (f"@{reference_partition('AAPL', SHARDS)}/{SHARDS}".encode(), b"v", 0)
    ] * 2
    assert isinstance(seen[0].segments[0], SegmentInput)


# New York midnight of DAY (EST, UTC-5) in UTC epoch ns, worked out by hand: 2019-12-30T05:00:00Z
MIDNIGHT_NS = 1_577_682_000 * 10**9


def test_every_record_carries_its_earliest_event_time_and_each_shard_ends_with_the_feeds() -> None:
    aapl, ibm = reference_partition("AAPL", SHARDS), reference_partition("IBM", SHARDS)
    assert aapl != ibm
    feed = [
        directory(1, "AAPL", 10),
        directory(2, "IBM", 11),
        add_order(1, "AAPL", 500, 1),
        add_order(2, "IBM", 700, 2),
        delete(1, 900, 1),
    ]
    producer = FakeProducer(3)
    replay(
        feed, producer, topic="raw", venue="V", trading_date=DAY, session="s", batch_size=1000, linger_ms=1e9
    )
    by_shard = {
        shard_of_key(key): int.from_bytes(headers[EVENT_TIME_HEADER], "big", signed=True)
        for (_, key, _, _), headers in zip(producer.sent, producer.headers, strict=True)
    }
    # one bundle per shard that got messages at the end; its event time is its earliest message's
    # (the directory messages at 10 and 11), the end markers' the feed's latest
    assert by_shard == {aapl: MIDNIGHT_NS + 10, ibm: MIDNIGHT_NS + 11}
    ends = {shard_of_key(key): (partition, headers) for key, partition, headers in producer.ends}
    assert sorted(ends) == list(range(SHARDS))
    assert all(partition == shard * 3 // SHARDS for shard, (partition, _) in ends.items())
    for _, headers in ends.values():  # every shard is complete up to the feed's end
        assert int.from_bytes(headers[EVENT_TIME_HEADER], "big", signed=True) == MIDNIGHT_NS + 900
        assert headers[END_OF_REPLAY_HEADER] == b"1"


def test_a_partial_replay_sends_no_end_marker() -> None:
    producer = FakeProducer(2)
    feed = [add_order(1, "AAPL", 5, 1), delete(1, 6, 1), add_order(1, "AAPL", 7, 2)]
    replay(feed, producer, topic="raw", venue="V", trading_date=DAY, session="s", to_message=2)
    assert producer.sent and not producer.ends


def test_a_topic_with_more_partitions_than_shards_is_refused_with_what_to_do() -> None:
    producer = FakeProducer(SHARDS + 1)
    with pytest.raises(UserError, match=f"has {SHARDS + 1} partitions.*at most {SHARDS}"):
        replay([add_order(1, "AAPL", 5, 1)], producer, topic="raw", venue="V", trading_date=DAY, session="s")
    assert producer.sent == []


def test_a_bundle_size_over_the_limit_is_refused_with_the_limit() -> None:
    from itchflow.errors import UserError
    from itchflow.replay import MAX_BATCH_SIZE

    BundleBatcher(partitions=2, batch_size=MAX_BATCH_SIZE)
    with pytest.raises(UserError, match="--batch-size must be 1..100,000"):
        BundleBatcher(partitions=2, batch_size=MAX_BATCH_SIZE + 1)
    with pytest.raises(UserError, match="--batch-size"):
        BundleBatcher(partitions=2, batch_size=0)


# --------------------------------------------------------------------------------- add_many's shortcut


class TickingClock:
    """A clock that advances a fixed step on every reading (so lingers expire mid-feed)."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def tricky_feed(rng: random.Random, count: int) -> list[bytes]:
    """Orders over 12 locates with the cases the shortcut must get right: directory messages that
    rename a locate mid-feed, two locates named alike, locates first seen without a directory entry
    (on a delete, then on an add), market-wide messages, cross trades."""
    names = {locate: f"S{locate}" for locate in range(1, 13)}
    names[12] = names[11]  # two locates, one symbol
    feed = [directory(locate, names[locate]) for locate in range(1, 11)]  # 11, 12 unknown at first
    for index in range(count):
        locate = rng.randrange(1, 13)
        roll = rng.random()
        if roll < 0.01:
            names[locate] = f"R{index}"
            feed.append(directory(locate, names[locate], index))  # renamed
        elif roll < 0.03:
            feed.append(system_event(index))
        elif roll < 0.04:
            feed.append(cross_trade(locate, names[locate], index))
        elif roll < 0.5:
            feed.append(add_order(locate, names[locate], index, index))
        else:
            feed.append(delete(locate, index, index))
    return feed


@pytest.mark.parametrize("batch_size, step", [(7, 0.0), (50, 0.0001), (1000, 0.0003), (3, 0.01)])
def test_add_many_closes_exactly_the_bundles_add_closes(batch_size: int, step: float) -> None:
    feed = tricky_feed(random.Random(batch_size), 5000)
    one_by_one = BundleBatcher(3, batch_size, linger_ms=5, clock=TickingClock(step))
    expected = run(one_by_one, feed)
    many = BundleBatcher(3, batch_size, linger_ms=5, clock=TickingClock(step))
    got = [*many.add_many(feed), *many.flush()]
    assert [segments_of(b) for b in got] == [segments_of(b) for b in expected]
    assert [(b.partition, b.bundle_sequence) for b in got] == [
        (b.partition, b.bundle_sequence) for b in expected
    ]
    assert many.messages_by_symbol == one_by_one.messages_by_symbol and many.added == len(feed)
    assert sum(b.message_count for b in got) > len(feed)  # market-wide copies: the feed had some
    assert any(s.symbol.startswith("@") for b in got for s in b.segments)  # unknown locates came up


@pytest.mark.parametrize("implementation", ["python", "native"])
@pytest.mark.parametrize("batch_size, step", [(7, 0.0), (50, 0.0001), (1000, 0.0003), (3, 0.01)])
def test_add_runs_closes_exactly_the_bundles_add_closes(
    batch_size: int, step: float, implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add_runs (the C loop, or add_many per run) over runs of any length, empty ones too."""
    monkeypatch.setenv("ITCHFLOW_NATIVE", implementation)
    rng = random.Random(batch_size)
    feed = tricky_feed(rng, 5000)
    one_by_one = BundleBatcher(3, batch_size, linger_ms=5, clock=TickingClock(step))
    expected = run(one_by_one, feed)
    cuts = sorted(rng.sample(range(len(feed)), 60)) + [len(feed), len(feed)]
    runs = [feed[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]  # the last one empty
    runs_batcher = BundleBatcher(3, batch_size, linger_ms=5, clock=TickingClock(step))
    got = [*runs_batcher.add_runs(runs), *runs_batcher.flush()]
    assert [segments_of(b) for b in got] == [segments_of(b) for b in expected]
    assert [(b.partition, b.bundle_sequence) for b in got] == [
        (b.partition, b.bundle_sequence) for b in expected
    ]
    assert runs_batcher.messages_by_symbol == one_by_one.messages_by_symbol
    assert runs_batcher.added == len(feed) and runs_batcher.message_sequences == one_by_one.message_sequences


# --------------------------------------------------------------------------------- paced replays: waits and heartbeats


class WallClock(FakeClock):
    """A wall clock that only ``sleep`` moves."""

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class TimedProducer(FakeProducer):
    """Records every send with the wall time it happened at: (time, partition, value, headers)."""

    def __init__(self, partitions: int, clock: WallClock) -> None:
        super().__init__(partitions)
        self.clock = clock
        self.log: list[tuple[float, int, bytes, dict[str, bytes]]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, partition: int, headers=None):
        self.log.append((self.clock.now, partition, value, dict(headers or ())))
        return super().send(topic, key=key, value=value, partition=partition, headers=headers)


S = 10**9


def test_a_paced_replay_sends_waiting_bundles_and_heartbeats_while_the_feed_is_quiet() -> None:
    # AAPL trades at 1 s of feed time, then nothing until IBM at 10 s: a 9 s quiet spell at speed 1
    aapl, ibm = partition_for("AAPL", 3), partition_for("IBM", 3)
    feed = [
        directory(1, "AAPL", 0),
        directory(2, "IBM", 0),
        add_order(1, "AAPL", S, 1),
        add_order(2, "IBM", 10 * S, 2),
    ]
    clock = WallClock()
    producer = TimedProducer(3, clock)
    summary = replay(
        feed, producer, topic="raw", venue="V", trading_date=DAY, session="s", linger_ms=10, speed=1.0,
        heartbeat_ms=1000, clock=clock, sleep=clock.sleep,
    )  # fmt: skip

    def event_time(headers: dict[str, bytes]) -> int:
        return int.from_bytes(headers[EVENT_TIME_HEADER], "big", signed=True) - MIDNIGHT_NS

    bundles = [(t, p, event_time(h)) for t, p, v, h in producer.log if v and HEARTBEAT_HEADER not in h]
    beats = [(t, p, event_time(h)) for t, p, v, h in producer.log if HEARTBEAT_HEADER in h]
    assert all(v == b"" for _, _, v, h in producer.log if HEARTBEAT_HEADER in h)
    # AAPL's bundle leaves its linger after it is due (1 s), not with IBM's message at 10 s
    (aapl_sent,) = [t for t, p, ts in bundles if ts == S]
    assert 0.999 <= aapl_sent <= 1.0 + 0.021  # its linger, give or take a tick
    (ibm_sent,) = [t for t, p, ts in bundles if ts == 10 * S]
    assert 9.999 <= ibm_sent <= 10.011  # due, give or take the 0.5 ms the pacer allows
    assert {p for t, p, ts in bundles if ts == S} == {aapl} and {
        p for t, p, ts in bundles if ts == 10 * S
    } == {ibm}
    # every partition hears something at least every heartbeat (+ one tick) until the feed resumes ...
    for partition in range(3):
        times = [0.0] + [t for t, p, _ in bundles + beats if p == partition and t < 10.0]
        times.sort()
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) <= 1.0 + 0.021
        assert 10.0 - times[-1] <= 1.0 + 0.021
    # ... with the feed's clock at that moment: rising, never past the next message
    for partition in range(3):
        clocks = [(t, ts) for t, p, ts in beats if p == partition]
        assert len(clocks) >= 8
        assert all(ts == pytest.approx(t * S, abs=1e6) for t, ts in clocks)  # speed 1, origin (0 s, 0 ns)
        assert [ts for _, ts in clocks] == sorted(ts for _, ts in clocks) and clocks[-1][1] < 10 * S
    assert summary.heartbeats == len(beats) and summary.records == len(bundles)
    # the end of the replay follows every heartbeat, at the feed's last event time
    assert {event_time(h) for _, _, h in producer.ends} == {10 * S}


def test_a_replay_at_full_speed_or_without_heartbeats_sends_none() -> None:
    feed = [directory(1, "AAPL", 0), add_order(1, "AAPL", S, 1), add_order(1, "AAPL", 30 * S, 2)]
    for speed, heartbeat_ms in ((None, 1000.0), (1.0, 0.0)):
        clock = WallClock()
        producer = TimedProducer(2, clock)
        summary = replay(
            feed, producer, topic="raw", venue="V", trading_date=DAY, session="s", speed=speed,
            heartbeat_ms=heartbeat_ms, clock=clock, sleep=clock.sleep,
        )  # fmt: skip
        assert summary.heartbeats == 0
        assert not [h for _, _, _, h in producer.log if HEARTBEAT_HEADER in h]


def test_full_speed_replays_bundle_for_throughput_and_paced_ones_for_latency() -> None:
    from itchflow.replay import bundling

    assert bundling(paced=False) == (20_000, 100.0)
    assert bundling(paced=True) == (1000, 10.0)
    # what the user gives wins, each setting on its own
    assert bundling(False, 500) == (500, 100.0)
    assert bundling(True, None, 3.0) == (1000, 3.0)
    assert bundling(False, 7, 0.0) == (7, 0.0)
