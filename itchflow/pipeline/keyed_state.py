"""The state of one Flink key as the stages keep it: a value, named entries and a log.

Both stateful stages compact the same way: what each record changed is appended to the key's
*log*, and every so often the whole state is written anew and the log cleared.

* the normalizer (:class:`~itchflow.pipeline.normalize_stage.SequenceCache`): the *value* is the
  sequence state as of the last compaction, the log holds each record's changed entries;
* the books (:class:`~itchflow.pipeline.partition_books.BookCache`): the *value* is a token naming
  the live books that equal the state, the *entries* are each book's snapshot by name, the log holds
  the records applied since the snapshots.

The Flink operators adapt Flink's value, map and list states to :class:`KeyedState` (one adapter in
``jobs/operators.py``); :class:`MemoryKeyedState` is the same in memory, for tests and benchmarks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Protocol


class KeyedState(Protocol):
    """One key's state: a value, entries by name, and a log of what records changed since."""

    def value(self) -> Any | None: ...

    def set_value(self, value: Any) -> None: ...

    def entries(self) -> Iterable[tuple[str, Any]]: ...

    def put_entry(self, name: str, value: Any) -> None: ...

    def log(self) -> Iterable[Any]: ...

    def append_log(self, item: Any) -> None: ...

    def clear_log(self) -> None: ...


class MemoryKeyedState:
    """:class:`KeyedState` in memory, counting the reads and writes a cache should avoid."""

    __slots__ = ("_value", "_entries", "_log", "entry_reads", "value_writes")

    def __init__(self, value: Any | None = None) -> None:
        self._value = value
        self._entries: dict[str, Any] = {}
        self._log: list[Any] = []
        #: reads of every entry (a book cache hit must not read them)
        self.entry_reads = 0
        #: writes of the value (the normalizer writes it only at a compaction)
        self.value_writes = 0

    def value(self) -> Any | None:
        return self._value

    def set_value(self, value: Any) -> None:
        self._value = value
        self.value_writes += 1

    def entries(self) -> Iterable[tuple[str, Any]]:
        self.entry_reads += 1
        return list(self._entries.items())

    def put_entry(self, name: str, value: Any) -> None:
        self._entries[name] = value

    def log(self) -> Iterable[Any]:
        return list(self._log)

    def append_log(self, item: Any) -> None:
        # a copy, as Flink's state serializes the item when it is added
        self._log.append(copy.copy(item))

    def clear_log(self) -> None:
        self._log = []

    def checkpoint(self) -> MemoryKeyedState:
        """A deep copy: what a restore from a checkpoint taken now would see."""
        copied = MemoryKeyedState(copy.deepcopy(self._value))
        copied._entries = copy.deepcopy(self._entries)
        copied._log = copy.deepcopy(self._log)
        return copied
