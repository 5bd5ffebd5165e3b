"""The JVM side of bundle keys: salted so that a job's subtasks get the same number of partitions.

Runs the project's compiled ``KeyedRecordDeserializer`` in a JVM (PyFlink's gateway) and asks
Flink's own ``KeyGroupRangeAssignment`` where each key lands -- the same computation the keyed
stream's partitioner makes -- for several partition counts and parallelisms.
"""

from __future__ import annotations

import pytest

from connectors.kafka import MAX_PARALLELISM, add_kafka_jars


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


@pytest.mark.parametrize(("partitions", "parallelism"), [(4, 2), (4, 4), (8, 2), (8, 4), (6, 3), (16, 2)])
def test_salted_bundle_keys_spread_partitions_evenly(jvm, partitions: int, parallelism: int) -> None:
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
    once = keyer.balancedKey("XNAS:#1/4")
    assert keyer.balancedKey(once) == once


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

    assert [partition(f"XNAS:#{p}/4~{p * 7}", 4) for p in range(4)] == [0, 1, 2, 3]
    assert [partition(f"XNAS:#{p}/8", 4) for p in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    for key in ("AAPL", "XNAS:AAPL", "XNAS:#x/4", ""):
        expected = (murmur2(key.encode()) & 0x7FFFFFFF) % 4
        assert partition(key, 4) == expected, key
