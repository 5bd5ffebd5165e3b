"""`itchflow replay` into the real broker, consumed back: one ``ItchBundle`` record per shard
bundle, keyed ``@<shard>/<shards>``, in the shard's partition; every symbol's messages in its shard
(murmur2 of the symbol) and in feed order with contiguous numbering; market-wide messages in every
shard exactly once; an end-of-replay record per shard after its data; nothing lost or duplicated;
clear errors."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from itchflow.avro.bundle import decode_raw
from itchflow.config import TopicSpec
from itchflow.replay import partition_for
from itchflow.shards import SHARDS, parse_shard_key, partition_of_shard, shard_for
from itchflow.stack.topics import ensure_topics

from .stackutil import SHARED_DATA, free_ports, run_cli

pytestmark = pytest.mark.integration


def read_file_messages(path: Path) -> list[bytes]:
    """Expected messages, walked by hand (2-byte prefix, zero prefix -> length by type)."""
    import gzip

    lengths = dict(
        zip(
            "SRHYLVWKJhAFECXDUPQBINO",
            [12, 39, 25, 20, 26, 35, 12, 28, 35, 21, 36, 40, 31, 36, 23, 19, 35, 44, 40, 19, 50, 20, 48],
            strict=True,
        )
    )
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 2], "big") or lengths[chr(data[pos + 2])]
        out.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return out


def consume_all(bootstrap: str, topic: str, expected_records_at_least: int) -> list:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    records = []
    for _ in range(20):
        records.extend(consumer)
        if len(records) >= expected_records_at_least:
            break
    consumer.close()
    return records


def kafka_default_partition(key: str, partitions: int) -> int:
    """Where Kafka's default partitioner puts a record keyed ``key`` (murmur2, as the Java client)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def shard_of(key: bytes) -> int:
    parsed = parse_shard_key(key.decode())
    assert parsed is not None and parsed[1] == SHARDS, key
    return parsed[0]


def symbols_of(messages: list[bytes]) -> list[str]:
    """Each message's symbol by the documented routing, from the ITCH layout: "" for locate 0; the
    directory ('R', stock at 11) names a locate, and so does the first A/F/P (stock at 24) or Q (at 19)
    of a locate not named yet; "@<locate>" for a locate never named."""
    names: dict[int, str] = {}
    out = []
    for message in messages:
        locate = int.from_bytes(message[1:3], "big")
        kind = chr(message[0])
        at = {"R": 11, "A": 24, "F": 24, "P": 24, "Q": 19}.get(kind)
        if locate and at is not None and (kind == "R" or locate not in names):
            names[locate] = message[at : at + 8].decode("latin-1").rstrip(" ")
        out.append("" if locate == 0 else names.get(locate, f"@{locate}"))
    return out


def split_packed(payloads: bytes) -> list[bytes]:
    """A bundle's messages (each after its 2-byte big-endian length)."""
    out, pos = [], 0
    while pos < len(payloads):
        size = int.from_bytes(payloads[pos : pos + 2], "big")
        out.append(payloads[pos + 2 : pos + 2 + size])
        pos += 2 + size
    assert pos == len(payloads)
    return out


@pytest.mark.parametrize("sample", ["RITCH_ex20101224.TEST_ITCH_50.gz", "omi_Nasdaq_itch50_sample.bin"])
def test_replay_puts_every_message_in_its_symbols_partition_in_order(local_stack, sample: str) -> None:
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    partitions = local_stack.partitions
    ensure_topics(local_stack, [TopicSpec(topic, partitions)])
    path = SHARED_DATA / sample
    expected = read_file_messages(path)
    result = run_cli(
        local_stack,
        "replay",
        str(path),
        "--date",
        "2019-12-30",
        "--venue",
        "XTST",
        "--topic",
        topic,
        "--batch-size",
        "100",
    )
    assert f"replayed {len(expected):,} messages" in result.stdout
    assert "messages/s" in result.stdout

    records = sorted(
        consume_all(local_stack.bootstrap_servers, topic, 1), key=lambda r: (r.partition, r.offset)
    )
    assert records
    # the replay ends each shard with one empty record headed end-of-replay, in the shard's partition,
    # carrying the feed's latest event time: New York midnight of the date (05:00 UTC in winter) + the
    # file's latest ITCH time
    ends = [r for r in records if not r.value]
    assert sorted(r.key for r in ends) == sorted(f"@{shard}/{SHARDS}".encode() for shard in range(SHARDS))
    first_end = {r.partition: r.offset for r in reversed(ends)}
    latest_ns = max(int.from_bytes(m[5:11], "big") for m in expected)
    midnight_ns = int(datetime(2019, 12, 30, 5, tzinfo=UTC).timestamp()) * 10**9
    for end in ends:
        assert end.partition == partition_of_shard(shard_of(end.key), partitions)
        headers = dict(end.headers)
        assert headers["itchflow.end-of-replay"] == b"1"
        assert (
            int.from_bytes(headers["itchflow.event-time-ns"], "big", signed=True) == midnight_ns + latest_ns
        )
    records = [r for r in records if r.value]
    assert all(r.offset < first_end[r.partition] for r in records), (
        "the end markers are the partitions' last records"
    )
    # per (symbol, shard): (batch_sequence, first_message_seq, messages) of each segment, in partition order
    segments: dict[tuple[str, int], list[tuple[int, int, list[bytes]]]] = defaultdict(list)
    bundle_sequences: dict[int, list[int]] = defaultdict(list)
    for record in records:
        shard = shard_of(record.key)
        assert record.partition == partition_of_shard(shard, partitions)
        bundle = decode_raw(record.value)
        assert (bundle.partition, bundle.partitions, bundle.venue) == (record.partition, partitions, "XTST")
        assert bundle.message_count <= 100
        bundle_sequences[shard].append(bundle.bundle_sequence)
        messages = iter(split_packed(bundle.payloads))
        for segment in bundle.segments:
            part = [next(messages) for _ in range(segment.message_count)]
            segments[(segment.symbol, shard)].append(
                (segment.batch_sequence, segment.first_message_seq, part)
            )
        assert next(messages, None) is None, "payloads hold exactly the segments' messages"
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in bundle_sequences.values())

    def stream(symbol: str, shard: int) -> list[bytes]:
        """The segments' messages; batch_sequence 1..n and contiguous first_message_seq from 0."""
        batches = segments[(symbol, shard)]
        assert [b[0] for b in batches] == list(range(1, len(batches) + 1)), "segments in order, none lost"
        firsts = [b[1] for b in batches]
        assert firsts == [sum(len(b[2]) for b in batches[:i]) for i in range(len(batches))], symbol
        return [m for b in batches for m in b[2]]

    # the file's messages per symbol, in feed order
    by_symbol: dict[str, list[bytes]] = defaultdict(list)
    for symbol, message in zip(symbols_of(expected), expected, strict=True):
        by_symbol[symbol].append(message)
    market_wide = by_symbol.pop("", [])
    assert market_wide, "the samples have system events"

    # every shard got every market-wide message exactly once, in order
    for shard in range(SHARDS):
        assert stream("", shard) == market_wide
    # every symbol in exactly its shard (so in its shard's partition), in feed order
    symbols = {symbol for symbol, _ in segments if symbol}
    assert symbols == set(by_symbol)
    for symbol, shard in segments:
        if symbol:
            assert shard == shard_for(symbol), symbol
            assert partition_of_shard(shard, partitions) == partition_for(symbol, partitions), symbol
    for symbol in symbols:
        assert stream(symbol, shard_for(symbol)) == by_symbol[symbol], symbol
    # nothing lost or doubled: the (symbol, message) multiset is the file's (market-wide once per shard)
    replayed = Counter(
        (symbol, m) for (symbol, _), batches in segments.items() for b in batches for m in b[2]
    )
    wanted = Counter((symbol, m) for symbol, messages in by_symbol.items() for m in messages)
    wanted.update({("", m): SHARDS * n for m, n in Counter(market_wide).items()})
    assert replayed == wanted


def test_replay_to_an_unreachable_broker_fails_clearly(local_stack) -> None:
    (dead_port,) = free_ports(1)
    result = run_cli(
        local_stack,
        "replay",
        str(SHARED_DATA / "meatpy_sample.itch50"),
        "--date",
        "2019-12-30",
        "--bootstrap-servers",
        f"127.0.0.1:{dead_port}",
        "--no-progress",
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "broker" in result.stderr and "Traceback" not in result.stderr


def test_replay_of_a_bad_file_fails_clearly(local_stack, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.itch"
    bad.write_bytes(b"\x00\x05Zxxxx" * 10)
    result = run_cli(local_stack, "replay", str(bad), "--date", "2019-12-30", "--no-progress", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "garbage.itch" in result.stderr
    missing = run_cli(local_stack, "replay", str(tmp_path / "nope.itch"), "--date", "2019-12-30", check=False)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    bad_date = run_cli(local_stack, "replay", str(bad), "--date", "30/12/2019", check=False)
    assert bad_date.returncode != 0 and "YYYY-MM-DD" in bad_date.stderr


def test_the_replay_producer_keeps_kafka_partitioning_and_reports_refused_records(local_stack) -> None:
    from itchflow.producer import ProduceError, Producer

    topic = f"producer-{uuid.uuid4().hex[:8]}"
    ensure_topics(local_stack, [TopicSpec(topic, 4)])
    producer = Producer(local_stack.bootstrap_servers)
    assert producer.partitions_for(topic) == {0, 1, 2, 3}
    assert producer.partitions_for(f"missing-{uuid.uuid4().hex[:8]}") is None
    # keyed records without a partition land where the Java client puts them
    keys = [f"SYM{index}" for index in range(40)]
    deliveries = [
        producer.send(topic, key=key.encode(), value=f"v{index}".encode()) for index, key in enumerate(keys)
    ]
    # an explicit partition wins over the key
    deliveries.append(producer.send(topic, key=b"SYM0", value=b"explicit", partition=3))
    producer.flush()
    for delivery in deliveries:
        delivery.get(timeout=10)
    with pytest.raises(ProduceError):  # larger than the client's limit: refused, reported, no crash
        producer.send(topic, value=b"x" * (17 << 20))
    producer.close()
    records = consume_all(local_stack.bootstrap_servers, topic, len(deliveries))
    placed = {(r.key.decode(), r.value.decode()): r.partition for r in records}
    expected = {(key, f"v{index}"): kafka_default_partition(key, 4) for index, key in enumerate(keys)}
    expected[("SYM0", "explicit")] = 3
    assert placed == expected
    assert len(set(expected.values())) == 4  # the keys spread over every partition
