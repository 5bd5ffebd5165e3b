"""Shards: where a symbol's state lives, whatever the topics' partition counts and the jobs' parallelism.

Every symbol belongs to one of :data:`SHARDS` shards for good: :func:`shard_for`, Kafka's default
partitioner's hash of the symbol (``murmur2(UTF-8) & 0x7fffffff``) modulo :data:`SHARDS`. The
replay bundles a feed per shard, and every record of the pipeline -- raw, normalized, book events --
is keyed ``@<shard>/<shards>`` (:func:`shard_key`), without the venue: the jobs keep a shard's
state (every venue's books, sequences and analytics of its symbols) under that one Flink key, so

* **a symbol's venues meet in one key** (the cross-venue detectors need them together);
* **the topics can grow**: a shard's records go to partition ``shard * partitions // shards``
  (:func:`partition_of_shard`: each partition takes a contiguous range of shards); with 4 or 8
  partitions the keys, and so the state, are the same (growing 4 -> 8 halves each range);
* **a derived topic keeps its partitions' order**: the JVM puts the shards in key groups in the same
  contiguous order, so with a parallelism that divides the partition count, a partition's shards
  are all one subtask's and each partition of the normalized and book-events topics has one writer,
  in the raw partition's order (the event times downstream stay as ordered as the replay made
  them: see :class:`~itchflow.replay.BundleBatcher`);
* **the jobs rescale** up to :data:`SHARDS` subtasks through a savepoint: the JVM salts each shard
  key into a key group of its own share of the jobs' key groups (``KeyedRecordDeserializer.java``),
  so any parallelism that divides :data:`SHARDS` gets the same number of shards per subtask.

:data:`SHARDS` is fixed: changing it re-keys every state (a new deployment, not an upgrade).
It is 16 and not more because a Flink record is one key: a paced replay closes a bundle per active
shard every linger (10 ms), and each record costs the PyFlink jobs a fixed ~0.3 ms (measured in
``docs/performance.md``); 16 keeps a 20,000 msgs/s paced feed within a 2-core machine while any
topic of up to 16 partitions and any job of up to 16 subtasks is served.
"""

from __future__ import annotations

import re

SHARDS = 16
"""Shards of the symbol space: the most partitions a topic and subtasks a job can use."""

_SHARD_KEY = re.compile(r"^@(\d{1,9})/(\d{1,9})(?:~\d+)?$")
_SALT = re.compile(r"~\d+$")


def shard_for(symbol: str, shards: int = SHARDS) -> int:
    """The shard of ``symbol``: ``murmur2(symbol) & 0x7fffffff % shards`` (Kafka's murmur2, as the
    Java client's ``Utils.murmur2``)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(symbol.encode("utf-8")) & 0x7FFFFFFF) % shards


def shard_key(shard: int, shards: int = SHARDS) -> str:
    """The record key of ``shard``: ``@<shard>/<shards>``."""
    return f"@{shard}/{shards}"


def parse_shard_key(key: str) -> tuple[int, int] | None:
    """``(shard, shards)`` of a shard key (a JVM salt ``~<n>`` allowed), None for any other key."""
    match = _SHARD_KEY.match(key)
    if match is None:
        return None
    shard, shards = int(match.group(1)), int(match.group(2))
    return (shard, shards) if shard < shards else None


def unsalted(key: str) -> str:
    """``key`` without the salt the JVM adds to shard keys (``@3/16~41`` -> ``@3/16``)."""
    return _SALT.sub("", key)


def partition_of_shard(shard: int, partitions: int, shards: int = SHARDS) -> int:
    """The Kafka partition of ``shard``'s records in a topic of ``partitions`` partitions (at most
    ``shards``): ``shard * partitions // shards``, a contiguous range of shards per partition."""
    if not 1 <= partitions <= shards:
        raise ValueError(f"a topic for {shards} shards has 1 .. {shards} partitions, got {partitions}")
    return shard * partitions // shards


def first_shard_of(partition: int, partitions: int, shards: int = SHARDS) -> int:
    """The lowest shard whose records go to ``partition`` (:func:`partition_of_shard`)."""
    return -(-partition * shards // partitions)
