"""`itchflow replay` into the real broker, consumed back: the same messages, every symbol's
messages in one partition and in feed order, nothing lost or duplicated; clear errors."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from itchflow.avro import decode_batch, iter_payloads
from itchflow.config import TopicSpec
from itchflow.replay import SYSTEM_KEY
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


@pytest.mark.parametrize("sample", ["RITCH_ex20101224.TEST_ITCH_50.gz", "omi_Nasdaq_itch50_sample.bin"])
def test_replay_puts_every_message_in_its_symbols_partition_in_order(local_stack, sample: str) -> None:
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    ensure_topics(local_stack, [TopicSpec(topic, local_stack.partitions)])
    path = SHARED_DATA / sample
    expected = read_file_messages(path)
    result = run_cli(
        local_stack, "replay", str(path), "--date", "2019-12-30", "--topic", topic, "--batch-size", "100"
    )
    assert f"replayed {len(expected):,} messages" in result.stdout
    assert "messages/s" in result.stdout

    records = consume_all(local_stack.bootstrap_servers, topic, 1)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    batches_of: dict[tuple[str, int], list] = defaultdict(list)
    for record in records:
        key = record.key.decode()
        partitions_of[key].add(record.partition)
        batches_of[(key, record.partition)].append(decode_batch(record.value))

    # every symbol in exactly one partition; system events broadcast to every partition
    for key, partitions in partitions_of.items():
        if key == SYSTEM_KEY:
            assert partitions == set(range(local_stack.partitions))
        else:
            assert len(partitions) == 1, key

    def messages_of(key: str, partition: int) -> list[bytes]:
        batches = batches_of[(key, partition)]
        sequences = [b.batch_sequence for b in batches]
        assert sequences == list(range(1, len(batches) + 1)), "batches in order, none lost or doubled"
        return [bytes(m) for b in batches for m in iter_payloads(b.payloads)]

    replayed = []
    for key, partitions in partitions_of.items():
        copies = [messages_of(key, p) for p in sorted(partitions)]
        assert all(copy == copies[0] for copy in copies)  # broadcast copies identical
        replayed.append(copies[0])
    # the per-key streams interleave back to the file: same multiset, and each key's order is the file's
    assert sorted(m for stream in replayed for m in stream) == sorted(expected)
    for stream in replayed:
        assert is_subsequence(stream, expected), "feed order kept within a key"


def is_subsequence(part: list[bytes], whole: list[bytes]) -> bool:
    remaining = iter(whole)
    return all(any(item == candidate for candidate in remaining) for item in part)


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
