"""Shard keys: their text, parsing, salt removal, and how shards map to partitions as topics grow."""

from __future__ import annotations

import pytest

from itchflow.shards import (
    SHARDS,
    first_shard_of,
    parse_shard_key,
    partition_of_shard,
    shard_for,
    shard_key,
    unsalted,
)


def test_a_shard_key_names_the_shard_and_the_shard_count_and_parses_back() -> None:
    assert shard_key(3) == f"@3/{SHARDS}"
    assert parse_shard_key(shard_key(3)) == (3, SHARDS)
    assert parse_shard_key("@3/16~41") == (3, 16)  # as the JVM salted it


@pytest.mark.parametrize("key", ["XNAS:#1/4", "XNAS:@1/4", "@16/16", "@1", "@x/4", "AAPL", "", "@1/4~"])
def test_other_keys_are_not_shard_keys(key: str) -> None:
    assert parse_shard_key(key) is None


def test_the_salt_goes_and_nothing_else() -> None:
    assert unsalted("@3/16~41") == "@3/16"
    assert unsalted("@3/16") == "@3/16"
    assert unsalted("XNAS:AAPL") == "XNAS:AAPL"
    assert unsalted("XNAS:A~B") == "XNAS:A~B"


def test_growing_a_topic_from_4_to_8_partitions_moves_shards_but_never_splits_one() -> None:
    symbols = [f"S{index}" for index in range(2000)]
    by_shard: dict[int, set[int]] = {}
    for symbol in symbols:
        shard = shard_for(symbol)
        assert 0 <= shard < SHARDS
        by_shard.setdefault(shard, set()).add(partition_of_shard(shard, 4))
        # a shard's partition of 8 is one of the two its partition of 4 splits into
        assert partition_of_shard(shard, 8) // 2 == partition_of_shard(shard, 4)
    assert sorted(by_shard) == list(range(SHARDS))  # 2,000 symbols reach every shard
    assert all(len(partitions) == 1 for partitions in by_shard.values())


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 5, 7, 8, 12, 16])
def test_every_partition_takes_a_contiguous_range_of_shards_that_starts_at_its_first_shard(
    partitions: int,
) -> None:
    owners = [partition_of_shard(shard, partitions) for shard in range(SHARDS)]
    assert owners == sorted(owners) and set(owners) == set(range(partitions))
    for partition in range(partitions):
        assert first_shard_of(partition, partitions) == owners.index(partition)


def test_a_topic_has_one_to_shards_partitions() -> None:
    with pytest.raises(ValueError):
        partition_of_shard(0, 0)
    with pytest.raises(ValueError):
        partition_of_shard(0, SHARDS + 1)
