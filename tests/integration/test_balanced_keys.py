"""The JVM side of shard keys: salted so that a job's subtasks get the same number of shards.

Runs the project's compiled ``KeyedRecordDeserializer`` in a JVM (PyFlink's gateway) and asks
Flink's own ``KeyGroupRangeAssignment`` where each key lands -- the same computation the keyed
stream's partitioner makes -- for several partition counts and parallelisms.
"""

from __future__ import annotations

import pytest

from connectors.kafka import MAX_PARALLELISM, add_kafka_jars
from itchflow.shards import SHARDS, partition_of_shard, shard_key


@pytest.fixture(scope="module")
def jvm():
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    add_kafka_jars(StreamExecutionEnvironment.get_execution_environment())  # as a job's client does
    return get_gateway().jvm


def operator_index(jvm, key: str, parallelism: int) -> int:
    assignment = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    row = jvm.org.apache.flink.types.Row(1)  # exactly what KeyByKeySelector makes of a record
    row.setField(0, key)
    return assignment.assignKeyToParallelOperator(row, MAX_PARALLELISM, parallelism)


@pytest.mark.parametrize("parallelism", [1, 2, 4, 8, 16])
def test_salted_shard_keys_spread_the_shards_evenly_over_any_parallelism_that_divides_them(
    jvm, parallelism: int
) -> None:
    keyer = jvm.itchflow.connectors.KeyedRecordDeserializer(MAX_PARALLELISM)
    keys = [keyer.balancedKey(shard_key(shard)) for shard in range(SHARDS)]
    assert all(key.startswith(f"{shard_key(shard)}~") for shard, key in enumerate(keys))
    assignment = jvm.org.apache.flink.runtime.state.KeyGroupRangeAssignment
    groups = []
    for key in keys:
        row = jvm.org.apache.flink.types.Row(1)
        row.setField(0, key)
        groups.append(assignment.assignToKeyGroup(row, MAX_PARALLELISM))
    # shard s in the middle of its share of the key groups: the same groups whatever the topic or the job
    assert groups == [(2 * shard + 1) * MAX_PARALLELISM // (2 * SHARDS) for shard in range(SHARDS)]
    per_subtask = [0] * parallelism
    for key in keys:
        per_subtask[operator_index(jvm, key, parallelism)] += 1
    assert per_subtask == [SHARDS // parallelism] * parallelism


@pytest.mark.parametrize(("partitions", "parallelism"), [(4, 2), (4, 4), (8, 2), (8, 4), (6, 3), (16, 2)])
def test_salted_partition_keys_of_the_earlier_layout_spread_partitions_evenly(
    jvm, partitions: int, parallelism: int
) -> None:
    gateway_jvm = jvm
    keyer = gateway_jvm.itchflow.connectors.KeyedRecordDeserializer(MAX_PARALLELISM)
    per_subtask = [0] * parallelism
    for venue in ("XNAS", "XBOS"):
        keys = [keyer.balancedKey(f"{venue}:#{p}/{partitions}") for p in range(partitions)]
        assert all(key.startswith(f"{venue}:#{p}/{partitions}~") for p, key in enumerate(keys))
        assert len(set(keys)) == partitions
        for key in keys:
            per_subtask[operator_index(gateway_jvm, key, parallelism)] += 1
    assert per_subtask == [2 * partitions // parallelism] * parallelism


def test_other_keys_pass_unchanged_and_salts_are_replaced_not_stacked(jvm) -> None:
    gateway_jvm = jvm
    keyer = gateway_jvm.itchflow.connectors.KeyedRecordDeserializer(MAX_PARALLELISM)
    assert keyer.balancedKey("XNAS:AAPL") == "XNAS:AAPL"
    assert keyer.balancedKey("XNAS:#5/4") == "XNAS:#5/4"  # not a partition of 4
    assert keyer.balancedKey("@16/16") == "@16/16"  # not a shard of 16
    assert keyer.balancedKey("XNAS:@1/16") == "XNAS:@1/16"  # a symbol key, not a shard key
    for key in ("XNAS:#1/4", "@1/16"):
        once = keyer.balancedKey(key)
        assert once != key and keyer.balancedKey(once) == once


def test_bundle_records_keep_their_partition_and_other_keys_hash_like_kafka(jvm) -> None:
    """kafka-python's murmur2 is the independent reference for keys that are not bundle keys."""
    from kafka.partitioner.default import murmur2
    from pyflink.java_gateway import get_gateway

    partitioner = jvm.itchflow.connectors.BundlePartitioner()
    gateway = get_gateway()

    def partition(key: str, count: int) -> int:
        partitions = gateway.new_array(gateway.jvm.int, count)
        for index in range(count):
            partitions[index] = index
        return partitioner.partition(None, key.encode(), b"", "t", partitions)

    # a contiguous range of shards per partition, as the replay writes them (worked by hand for 16)
    assert [partition(f"@{s}/{SHARDS}~{s * 7}", 4) for s in range(16)] == [0] * 4 + [1] * 4 + [2] * 4 + [
        3
    ] * 4
    assert [partition(f"@{s}/{SHARDS}", 8) for s in range(16)] == [p for p in range(8) for _ in range(2)]
    assert [partition(f"@{s}/{SHARDS}", 3) for s in range(16)] == [
        partition_of_shard(s, 3) for s in range(16)
    ]
    assert [partition(f"XNAS:#{p}/4~{p * 7}", 4) for p in range(4)] == [0, 1, 2, 3]
    assert [partition(f"XNAS:#{p}/8", 4) for p in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    for key in ("AAPL", "XNAS:AAPL", "XNAS:#x/4", "@x/16", "XNAS:@17", ""):
        expected = (murmur2(key.encode()) & 0x7FFFFFFF) % 4
        assert partition(key, 4) == expected, key
