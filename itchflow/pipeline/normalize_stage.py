"""The pure core of the normalization job: one ``market-data-raw`` record in, outputs out.

The Flink operator (``jobs/operators.py``) only loads the key's state, calls :func:`normalize_record`,
saves the new state and emits what it returns. Everything here is testable without a JVM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from itchflow.avro import InvalidRecord
from itchflow.avro.bundle import ItchBundle, decode_raw
from itchflow.avro.deadletter import dead_letter_for, encode_dead_letter
from itchflow.avro.normalized import encode_normalized_bundle
from itchflow.normalize import check_sequence
from itchflow.normalize.bundle import NormalizedBundle
from itchflow.normalize.normalizer import normalize_bundle
from itchflow.normalize.sequence import SequenceState, SequenceStatus
from itchflow.pipeline.keyed_state import KeyedState
from itchflow.shards import unsalted

JOB_NAME = "itchflow-normalize"
STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class RecordSource:
    """Where a raw record came from (for dead letters)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes


@dataclass
class NormalizeOutcome:
    """What one raw record produced."""

    state: tuple | None
    normalized: bytes | None = None
    #: key of the normalized record (see :func:`output_key`)
    output_key: bytes = b""
    dead_letters: list[bytes] = field(default_factory=list)
    messages_in: int = 0
    events_out: int = 0
    #: segments (per-symbol batches) already seen, dropped
    duplicates: int = 0
    gap_messages: int = 0
    #: produced_at_ns of the raw record (0 if it did not decode)
    ts_produced: int = 0
    #: when the record was received (epoch ns)
    ts_recv: int = 0
    #: the bundle ``normalized`` encodes, for a consumer in the same process (the market-data job's
    #: books apply it without decoding the bytes again)
    bundle: NormalizedBundle | None = None
    #: the sequence entries this record set (``state`` is the input's with these put in): what
    #: :class:`SequenceCache` logs instead of the whole state
    changed: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)

    @property
    def duplicate(self) -> bool:
        """Nothing of the record was new."""
        return self.duplicates > 0 and self.normalized is None


def normalized_key(venue: str, symbol: str) -> bytes:
    """``market-data-normalized`` key of a per-symbol batch: ``venue:symbol`` (``venue:`` market-wide)."""
    return f"{venue}:{symbol}".encode()


def output_key(bundle: ItchBundle, source_key: bytes) -> bytes:
    """Key of the normalized record: the raw record's own key without the JVM's salt (a shard key
    ``@<shard>/<shards>``: the books of a shard stay together), ``venue:symbol`` for a per-symbol
    ``ItchBatch``."""
    if bundle.partition >= 0:
        return unsalted(source_key.decode()).encode()
    return normalized_key(bundle.venue, bundle.segments[0].symbol)


SequenceStates = dict[tuple[str, str], tuple[str, int, int]]
"""Sequence tracking per (venue, symbol) of one Flink key, as plain tuples
``(trading date, last batch sequence, next message seq)`` (cheap to pickle; see :class:`SequenceState`)."""


def state_to_tuple(states: SequenceStates) -> tuple | None:
    """Versioned, plain state for Flink: ``(2, {(venue, symbol): (trading date ISO, last batch, next seq)})``."""
    if not states:
        return None
    return (STATE_VERSION, states)


def state_from_tuple(value: tuple | None, bundle: ItchBundle | None = None) -> SequenceStates:
    """Read :func:`state_to_tuple`'s form (the dict itself: copy it before changing it); a version-1
    state (one symbol's tuple, when the job was keyed by symbol) is taken as ``bundle``'s symbol's."""
    if not value:
        return {}
    version = value[0]
    if version == 1 and bundle is not None:
        return {(bundle.venue, bundle.segments[0].symbol): (value[1], value[2], value[3])}
    if version != STATE_VERSION:
        raise ValueError(
            f"normalize state version {version} is not one this job understands ({STATE_VERSION})"
        )
    return value[1]


def _is_day(text: str) -> bool:
    """Whether a state's ``session`` is a trading date (ISO), as this release writes it."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def normalize_record(
    payload: bytes, source: RecordSource, state: tuple | None, now_ns: int | None = None
) -> NormalizeOutcome:
    """Decode, sequence-check and normalize one raw record; bad input becomes dead letters."""
    now_ns = time.time_ns() if now_ns is None else now_ns

    def letter(error: Exception, value: bytes | None = None) -> bytes:
        return encode_dead_letter(
            dead_letter_for(
                error,
                source_topic=source.topic,
                source_partition=source.partition,
                source_offset=source.offset,
                key=source.key,
                value=payload if value is None else value,
                job=JOB_NAME,
                ts_failed=now_ns,
                source_timestamp_ms=source.timestamp_ms,
            )
        )

    try:
        raw = decode_raw(payload)
        states = dict(state_from_tuple(state, raw))  # a copy: the caller's state stays as it was
        changed: SequenceStates = {}
        checks = []
        # numbering is per feed day, whatever the producer called its session (replays idempotent)
        venue, session = raw.venue, raw.trading_date.isoformat()
        for segment in raw.segments:
            key = (venue, segment.symbol)
            entry = states.get(key)
            if entry is not None and entry[0] != session and not _is_day(entry[0]):
                entry = (session, entry[1], entry[2])  # named by a session (earlier releases): this day
            check, new_state = check_sequence(
                None if entry is None else SequenceState(*entry),
                session=session,
                batch_sequence=segment.batch_sequence,
                first_message_seq=segment.first_message_seq,
                message_count=segment.message_count,
            )
            checks.append(check)
            if new_state is not None and check.status is not SequenceStatus.DUPLICATE:
                entry = (new_state.session, new_state.last_batch_sequence, new_state.next_message_seq)
                states[key] = changed[key] = entry
        result = normalize_bundle(raw, checks, ts_recv=now_ns)
    except InvalidRecord as error:
        return NormalizeOutcome(state=state, dead_letters=[letter(error)])
    except Exception as error:  # a bug must be visible and counted, never a crash loop
        return NormalizeOutcome(state=state, dead_letters=[letter(error)])
    outcome = NormalizeOutcome(
        state=state_to_tuple(states),
        messages_in=result.messages,
        events_out=result.bundle.event_count,
        duplicates=result.duplicate_segments,
        gap_messages=result.gap_messages,
        dead_letters=[letter(rejected) for rejected in result.rejected],
        ts_produced=raw.produced_at_ns,
        ts_recv=now_ns,
        changed=changed,
    )
    if result.bundle.event_count:
        outcome.normalized = encode_normalized_bundle(result.bundle)
        outcome.output_key = output_key(raw, source.key)
        outcome.bundle = result.bundle
    return outcome


# ------------------------------------------------------------------ the state, per Flink key


class SequenceCache:
    """Each Flink key's sequence state, live in memory between records.

    Reading and writing the whole per-key state for every record (a dict of every symbol of a
    partition, ~5.5 KB pickled at 250 symbols) took ~11% of the market-data task's Python time at a
    paced 20 k msg/s (py-spy samples of a TaskManager) and was 45% of the bytes its state wrote
    (README, Performance). Instead a record
    appends only the entries it changed to the key's log, and every ``compact_every`` records the
    whole state becomes the new snapshot and the log is cleared. A key's first record in this
    operator instance reads snapshot + log; later ones read nothing.

    No token is checked (unlike :class:`~itchflow.pipeline.partition_books.BookCache`): the cache
    lives in one operator instance (made in ``open``), only this instance writes its keys' state,
    and Flink never restores state into a live instance -- a failure fails the task and its restart
    opens a new instance with an empty cache. A snapshot of the earlier layout (the whole state in
    the value, no log) loads as is.
    """

    __slots__ = ("compact_every", "max_keys", "loads", "_entries")

    def __init__(self, compact_every: int = 128, max_keys: int = 4096) -> None:
        if compact_every < 1 or max_keys < 1:
            raise ValueError(
                f"compact_every and max_keys must be at least 1, not {compact_every}, {max_keys}"
            )
        self.compact_every = compact_every
        self.max_keys = max_keys
        #: how many times a key's state was read from the store (first record of a key, evictions)
        self.loads = 0
        #: key -> [state tuple or None, records logged since the snapshot]
        self._entries: dict[object, list] = {}

    def state(self, key: object, store: KeyedState) -> tuple | None:
        """The key's state (:func:`state_to_tuple`'s form; treat it as read-only)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._load(store)
            if len(self._entries) >= self.max_keys:
                self._entries.pop(next(iter(self._entries)))  # the oldest key: it reloads if it comes back
            self._entries[key] = entry
        return entry[0]

    def save(self, key: object, store: KeyedState, outcome: NormalizeOutcome) -> None:
        """Record what ``outcome`` (of the key's last :meth:`state`) changed, in memory and in ``store``."""
        state = outcome.state
        if not outcome.changed or state is None:  # changed entries imply a state
            return
        entry = self._entries[key]
        entry[0] = state
        if entry[1] + 1 >= self.compact_every:
            store.set_value(state)
            store.clear_log()
            entry[1] = 0
        else:
            store.append_log(outcome.changed)
            entry[1] += 1

    def _load(self, store: KeyedState) -> list:
        self.loads += 1
        snapshot = store.value()
        changes = list(store.log() or ())
        if snapshot and snapshot[0] != STATE_VERSION:
            # an older layout (normalize_record reads it): the next change rewrites the snapshot,
            # so a log never sits on top of a snapshot it cannot be applied to
            return [snapshot, self.compact_every - 1]
        if not changes:
            return [snapshot, 0]
        states = dict(state_from_tuple(snapshot))
        for changed in changes:
            states.update(changed)
        return [state_to_tuple(states), len(changes)]
