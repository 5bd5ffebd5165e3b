"""``itchflow replay``: an ITCH file into ``market-data-raw`` as per-shard bundles.

Routing (documented for every consumer):

* Each symbol belongs to one shard for good (:mod:`itchflow.shards`: murmur2 of the symbol modulo
  :data:`~itchflow.shards.SHARDS`), and each shard to one Kafka partition (a contiguous range of
  shards per partition, :func:`~itchflow.shards.partition_of_shard`), so every message of a symbol
  is in one partition, in feed order.
* Each record is an ``itchflow.itch.v1.ItchBundle`` (:mod:`itchflow.avro.bundle`) carrying the
  messages of **many symbols of one shard**, one segment per symbol (in the order the symbols
  first appeared in the bundle), written with an explicit partition and the key ``@<shard>/<shards>``
  (no venue: the jobs keep a shard's venues under one key). The envelope's ``partition`` and
  ``partitions`` are the Kafka partition and the topic's partition count.
  A segment is one per-symbol batch: ``batch_sequence`` 1, 2, 3 ... and ``first_message_seq`` (the
  messages of the symbol before it in the file, which is the feed day: the jobs number a symbol's
  events by it, so the same day replayed again -- under any session name -- is recognised as
  duplicates); ``bundle_sequence`` is 1, 2, 3 ... per shard.
* The stock locate of a message is resolved through the stock directory ('R'); a locate first seen
  on an order message with a ``stock`` field (A, F, P, Q) is learned from it too (captures that start
  mid-day may lack the directory).
* Messages that belong to no symbol (``stock_locate`` 0: system events 'S', MWCB 'V'/'W', ...) are
  **copied into every shard's bundle**, as a segment of symbol ``""`` and locate 0, so each
  key of the jobs sees the session events in order with its symbols' messages. The ``""``
  segments are numbered per shard (every shard gets every such message, so the numbering is
  consistent within a shard).
* Messages whose locate is unknown (no directory entry, no order with a stock yet) get the symbol
  ``@<locate>`` (routed by that text); the normalization job dead-letters them as an unknown symbol
  (never silently dropped).

A shard's bundle closes when it holds ``batch_size`` messages or when its first message is
``linger_ms`` old (wall time, checked as messages arrive, and while a paced replay waits), so latency
stays low on a quiet feed.

**Heartbeats.** A paced replay (``--speed``) that has sent a partition nothing for ``heartbeat_ms``
of wall time (default 1,000; ``--heartbeat-ms 0``: never) while it waits for the feed's next message
sends that partition an empty record with the header ``itchflow.heartbeat`` and, as its event time,
the feed's clock (the feed time the pacing has reached, before the next message's). The jobs skip
the record, but its event time moves the partition's watermark: a feed that goes quiet still closes
its bars and windows within about ``heartbeat_ms`` plus the jobs' out-of-orderness (in feed time,
divided by the speed) of wall time. A replay at full speed never waits, so it needs none.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

from itchflow.avro.bundle import ItchBundle, SegmentInput, encode_bundle, make_bundle
from itchflow.config import RAW_TOPIC
from itchflow.errors import UserError
from itchflow.extensions import native_function
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.shards import SHARDS, first_shard_of, partition_of_shard, shard_for, shard_key

SYSTEM_KEY = "__SYSTEM__"
"""Bookkeeping key of the market-wide messages (``stock_locate`` 0); their segments' symbol is ``""``."""
SYSTEM_SYMBOL = ""
# byte offsets inside an ITCH 5.0 message (type byte at 0)
_LOCATE = slice(1, 3)
_TIMESTAMP = slice(5, 11)
_STOCK_BY_TYPE = {
    ord("R"): slice(11, 19),
    ord("A"): slice(24, 32),
    ord("F"): slice(24, 32),
    ord("P"): slice(24, 32),
}
_STOCK_Q = slice(19, 27)
_R = ord("R")


def partition_for(symbol: str, partitions: int) -> int:
    """The partition of ``symbol``'s records: its shard's (:func:`~itchflow.shards.partition_of_shard`)."""
    return partition_of_shard(shard_for(symbol), partitions)


def check_partitions(partitions: int, topic: str = RAW_TOPIC) -> None:
    """A topic the replay can feed: 1 .. :data:`~itchflow.shards.SHARDS` partitions (a partition
    beyond the shards would never get a record, and its silence would hold every job's watermark)."""
    if partitions > SHARDS:
        raise UserError(
            f"topic {topic!r} has {partitions} partitions, but itchflow routes symbols by {SHARDS} shards: "
            f"recreate it with at most {SHARDS} (`itchflow stack up --partitions {SHARDS}`)"
        )


class LocateDirectory:
    """Resolves a message's stock locate to its symbol (stock directory, or a stock field seen first)."""

    def __init__(self) -> None:
        self.directory: dict[int, str] = {}

    def symbol_of(self, payload: bytes) -> tuple[str, int]:
        """``(symbol, locate)``: ``SYSTEM_KEY`` for locate 0, ``@<locate>`` for an unknown locate."""
        locate = int.from_bytes(payload[_LOCATE], "big")
        type_byte = payload[0]
        stock_slice = _STOCK_BY_TYPE.get(type_byte) or (_STOCK_Q if type_byte == 0x51 else None)
        if stock_slice is not None and len(payload) >= stock_slice.stop:
            symbol = payload[stock_slice].decode("latin-1").rstrip(" ")
            if locate and (type_byte == 0x52 or locate not in self.directory):
                self.directory[locate] = symbol
        if locate == 0:
            return SYSTEM_KEY, 0
        known = self.directory.get(locate)
        return (known if known is not None else f"@{locate}"), locate


@dataclass(frozen=True, slots=True)
class ClosedBundle:
    """A bundle ready to produce: the segments of one shard (symbol ``""`` = market-wide), for its
    Kafka partition."""

    partition: int
    #: partitions of the topic
    partitions: int
    bundle_sequence: int
    segments: tuple[SegmentInput, ...]
    #: the shard of the bundle's symbols (the record key is ``@<shard>/<shards>``)
    shard: int = 0
    shards: int = SHARDS
    #: the venue of a multi-venue replay's bundle ('': the replay's one venue)
    venue: str = ""

    @property
    def key(self) -> str:
        """The record key, :func:`~itchflow.shards.shard_key`."""
        return shard_key(self.shard, self.shards)

    @property
    def message_count(self) -> int:
        return sum(len(segment.payloads) for segment in self.segments)

    def earliest_timestamp(self) -> int:
        """The earliest ITCH timestamp (ns since midnight) of the bundle's messages: each segment's
        first, as a feed's timestamps never decrease. The record's event time (see
        :data:`EVENT_TIME_HEADER`)."""
        return min(
            (
                int.from_bytes(segment.payloads[0][_TIMESTAMP], "big")
                for segment in self.segments
                if segment.payloads
            ),
            default=0,
        )

    def latest_timestamp(self) -> int:
        """The latest ITCH timestamp (ns since midnight) of the bundle's messages: each segment's
        last, as a feed's timestamps never decrease."""
        return max(
            (
                int.from_bytes(segment.payloads[-1][_TIMESTAMP], "big")
                for segment in self.segments
                if segment.payloads
            ),
            default=0,
        )

    def envelope(self, *, venue: str, trading_date: date, session: str, produced_at_ns: int) -> ItchBundle:
        """The ``ItchBundle`` record of this bundle (what is produced to ``market-data-raw``)."""
        return make_bundle(
            self.segments,
            venue=venue,
            trading_date=trading_date,
            session=session,
            partition=self.partition,
            partitions=self.partitions,
            bundle_sequence=self.bundle_sequence,
            produced_at_ns=produced_at_ns,
        )


@dataclass
class _PendingBundle:
    opened_at: float
    count: int = 0
    #: symbol (``SYSTEM_KEY`` for market-wide) -> its payloads, in first-seen order
    segments: dict[str, list[bytes]] = field(default_factory=dict)
    #: symbol -> locate of its first pending message
    locates: dict[str, int] = field(default_factory=dict)


MAX_BATCH_SIZE = 100_000
"""Messages per bundle at most: ~4 MB raw, ~6 MB normalized (59 bytes per event)."""


class BundleBatcher(LocateDirectory):
    """Groups raw ITCH payloads into per-shard bundles of per-symbol segments (pure: no Kafka,
    clock injected), each for its shard's partition of ``partitions``.

    **A partition's bundles close together**, in order of their first message: when one of them is
    full or old, every open bundle of its partition closes with it. So the messages of a partition's
    records never go back in time by more than one closing's span, and with each record's event
    time its *earliest* message's (:data:`EVENT_TIME_HEADER`), no record of a partition is behind
    the watermark its earlier records moved: a quiet shard's bundle, open for a long stretch of a
    fast replay's feed time, would otherwise follow a busy shard's records of later feed time into
    the same partition, and its prints would all be late.

    A shard's bundle closes when it holds ``batch_size`` messages or when its first message has
    waited ``linger_ms`` (checked on each :meth:`add`); :meth:`flush` closes every bundle.
    """

    def __init__(
        self,
        partitions: int,
        batch_size: int = 1000,
        linger_ms: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        shards: int = SHARDS,
        venue: str = "",
    ):
        super().__init__()
        self.venue = venue
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise UserError(
                f"--batch-size must be 1..{MAX_BATCH_SIZE:,} messages (a bundle's normalized record must "
                "stay well under the 16 MB Kafka request limit of the jobs' producers)"
            )
        if not 1 <= partitions <= shards:
            raise ValueError(f"{shards} shards fill 1 .. {shards} partitions, got {partitions}")
        self.partitions = partitions
        self.shards = shards
        #: per shard, its partition
        self.partition_of = [partition_of_shard(shard, partitions, shards) for shard in range(shards)]
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000.0
        self.clock = clock
        self.pending: dict[int, _PendingBundle] = {}
        self.shard_of: dict[str, int] = {}
        self.bundle_sequences = [0] * shards
        #: per symbol (not market-wide): segments closed, and messages produced or skipped
        self.batch_sequences: dict[str, int] = {}
        self.message_sequences: dict[str, int] = {}
        #: per symbol: messages produced (closed in a bundle); ``SYSTEM_KEY``: market-wide messages
        #: taken (counted once, not per shard copy)
        self.messages_by_symbol: dict[str, int] = {}
        #: per shard: its market-wide (``""``) segments closed, and messages closed or skipped
        self.system_batch_sequences = [0] * shards
        self.system_message_sequences = [0] * shards
        self._oldest = float("inf")  # opened_at of the oldest pending bundle
        #: messages taken by :meth:`add` / :meth:`add_many`
        self.added = 0
        #: locate -> (its segment in the pending bundle, that bundle, shard): the shortcut of
        #: :meth:`add_many`, for locates the directory resolves (see there)
        self._routes: dict[int, tuple[list[bytes], _PendingBundle, int]] = {}

    def add(self, payload: bytes) -> Iterator[ClosedBundle]:
        """Add one message; yields the bundles that close because of it (size or linger)."""
        if payload[0] == _R:
            # a directory message may rename its locate: route it afresh from now on
            self._routes.pop(int.from_bytes(payload[_LOCATE], "big"), None)
        self.added += 1
        symbol, locate = self.symbol_of(payload)
        now = self.clock()
        if locate == 0:
            self.messages_by_symbol[SYSTEM_KEY] = self.messages_by_symbol.get(SYSTEM_KEY, 0) + 1
            self.message_sequences[SYSTEM_KEY] = self.message_sequences.get(SYSTEM_KEY, 0) + 1
            for shard in range(self.shards):
                if self._append(shard, SYSTEM_KEY, 0, payload, now):
                    yield from self._close(shard)
        else:
            home = self.shard_of.get(symbol)
            if home is None:
                home = self.shard_of[symbol] = shard_for(symbol, self.shards)
            if self._append(home, symbol, locate, payload, now):
                yield from self._close(home)
        if now - self._oldest >= self.linger_s:
            yield from self.expired(now)

    def _append(self, shard: int, symbol: str, locate: int, payload: bytes, now: float) -> bool:
        """Add ``payload`` to ``shard``'s bundle; whether the bundle is now full."""
        bundle = self.pending.get(shard)
        if bundle is None:
            bundle = self.pending[shard] = _PendingBundle(now)
            if now < self._oldest:
                self._oldest = now
        payloads = bundle.segments.get(symbol)
        if payloads is None:
            payloads = bundle.segments[symbol] = []
            bundle.locates[symbol] = locate
            if locate and self.directory.get(locate) == symbol:
                self._routes[locate] = (payloads, bundle, shard)
        payloads.append(payload)
        bundle.count += 1
        return bundle.count >= self.batch_size

    def add_many(self, payloads: Iterable[bytes]) -> Iterator[ClosedBundle]:
        """:meth:`add` for each payload in turn (the same bundles, in the same order), with the common
        case inlined: a message of a locate the directory resolves whose symbol already has a segment
        in its shard's pending bundle, and that is not a directory message ('R', which may
        rename the locate). Any other message takes :meth:`add`.

        Why the shortcut is exact: for such a message :meth:`~LocateDirectory.symbol_of` returns the
        directory's symbol and changes nothing (it writes the directory only for an 'R' or an
        unknown locate), so the message joins that segment; a route is dropped when its bundle
        closes or an 'R' names its locate.
        """
        routes = self._routes
        clock = self.clock
        batch_size, linger = self.batch_size, self.linger_s
        directory_type = _R
        for payload in payloads:
            route = routes.get(payload[1] << 8 | payload[2])
            if route is None or payload[0] == directory_type:
                yield from self.add(payload)
                continue
            self.added += 1
            segment, bundle, shard = route
            segment.append(payload)
            bundle.count += 1
            now = clock()
            if bundle.count >= batch_size:
                yield from self._close(shard)
            if now - self._oldest >= linger:
                yield from self.expired(now)

    def add_runs(self, runs: Iterable[list[bytes]]) -> Iterator[ClosedBundle]:
        """:meth:`add_many` over lists of payloads (the same bundles, in the same order), with its
        shortcut in C when built (``route_run`` in ``itchflow/normalize/_cscan.c``): the C loop
        takes the common messages and hands back at each one that needs :meth:`add`, each full
        bundle and each expired linger."""
        route_run = native_function("itchflow.normalize._cscan", "route_run")
        if route_run is None:
            for run in runs:
                yield from self.add_many(run)
            return
        routes, clock = self._routes, self.clock
        batch_size, linger = self.batch_size, self.linger_s
        for run in runs:
            index, size = 0, len(run)
            while index < size:
                index, taken, status, shard, now = route_run(
                    run, index, routes, clock, batch_size, linger, self._oldest
                )
                self.added += taken
                if status == _SLOW:
                    yield from self.add(run[index])
                    index += 1
                    continue
                if status == _FULL:
                    yield from self._close(shard)
                if status != _RUN_END and now - self._oldest >= linger:
                    yield from self.expired(now)

    def skip(self, payload: bytes) -> None:
        """Account for a message without producing it (``--from-message``): the directory and the
        per-symbol message sequence (every shard's for a market-wide message) advance exactly as
        if it had been sent, so later messages get the same sequence numbers as in a full replay."""
        if payload[0] == _R:
            self._routes.pop(int.from_bytes(payload[_LOCATE], "big"), None)
        symbol, locate = self.symbol_of(payload)
        self.message_sequences[symbol] = self.message_sequences.get(symbol, 0) + 1
        if locate == 0:
            for shard in range(self.shards):
                self.system_message_sequences[shard] += 1

    def expired(self, now: float | None = None) -> Iterator[ClosedBundle]:
        """Bundles whose first message has waited ``linger_ms``."""
        now = self.clock() if now is None else now
        for shard in [s for s, b in self.pending.items() if now - b.opened_at >= self.linger_s]:
            if shard in self.pending:  # not closed with an earlier one of its partition
                yield from self._close(shard)

    def flush(self) -> Iterator[ClosedBundle]:
        """Every pending bundle (end of input)."""
        for shard in list(self.pending):
            if shard in self.pending:
                yield from self._close(shard)

    def _close(self, shard: int) -> list[ClosedBundle]:
        """``shard``'s bundle and every other open bundle of its partition, in order of their first
        message (see the class docstring)."""
        partition_of = self.partition_of
        closing = [s for s in self.pending if partition_of[s] == partition_of[shard]]
        bundles = [self._close_one(s) for s in closing]
        bundles.sort(key=ClosedBundle.earliest_timestamp)
        return bundles

    def _close_one(self, shard: int) -> ClosedBundle:
        bundle = self.pending.pop(shard)
        routes = self._routes
        for locate in bundle.locates.values():
            route = routes.get(locate)
            if route is not None and route[1] is bundle:
                del routes[locate]
        if bundle.opened_at <= self._oldest:
            self._oldest = min((b.opened_at for b in self.pending.values()), default=float("inf"))
        segments = []
        for symbol, payloads in bundle.segments.items():
            count = len(payloads)
            if symbol == SYSTEM_KEY:
                sequence = self.system_batch_sequences[shard] + 1  # 1-based per (session, shard)
                self.system_batch_sequences[shard] = sequence
                first = self.system_message_sequences[shard]
                self.system_message_sequences[shard] = first + count
                segments.append(SegmentInput(SYSTEM_SYMBOL, 0, sequence, first, tuple(payloads)))
                continue
            sequence = self.batch_sequences.get(symbol, 0) + 1  # 1-based per (session, symbol)
            self.batch_sequences[symbol] = sequence
            first = self.message_sequences.get(symbol, 0)
            self.message_sequences[symbol] = first + count
            self.messages_by_symbol[symbol] = self.messages_by_symbol.get(symbol, 0) + count
            segments.append(SegmentInput(symbol, bundle.locates[symbol], sequence, first, tuple(payloads)))
        self.bundle_sequences[shard] += 1  # 1-based per (session, shard)
        return ClosedBundle(
            self.partition_of[shard],
            self.partitions,
            self.bundle_sequences[shard],
            tuple(segments),
            shard,
            self.shards,
            self.venue,
        )


class VenueBatchers:
    """Several venues' feeds in one replay: a :class:`BundleBatcher` per venue (each venue's own
    directory, segment and bundle numbering, as if replayed alone), whose bundles carry their venue.

    The venues' messages come in merged by event time (:class:`MergedFeeds`), and a partition's
    bundles of **every venue** close together, in order of their first message: the rule of
    :class:`BundleBatcher`, across venues, so a partition's records never go back in event time by
    more than one closing's span whichever venue they are of.
    """

    def __init__(
        self,
        venues: Sequence[str],
        partitions: int,
        batch_size: int = 1000,
        linger_ms: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        shards: int = SHARDS,
    ) -> None:
        self.batchers = {
            venue: BundleBatcher(partitions, batch_size, linger_ms, clock, shards, venue) for venue in venues
        }
        first = next(iter(self.batchers.values()))
        self.partition_of = first.partition_of
        self.linger_s = first.linger_s
        self.clock = clock

    @property
    def added(self) -> int:
        return sum(batcher.added for batcher in self.batchers.values())

    @property
    def pending(self) -> set[int]:
        """Shards with an open bundle of any venue."""
        return {shard for batcher in self.batchers.values() for shard in batcher.pending}

    @property
    def messages_by_symbol(self) -> dict[str, int]:
        """``venue:symbol`` -> messages produced (``venue:`` + :data:`SYSTEM_KEY`: market-wide)."""
        return {
            f"{venue}:{symbol}": count
            for venue, batcher in self.batchers.items()
            for symbol, count in batcher.messages_by_symbol.items()
        }

    @property
    def message_sequences(self) -> dict[str, int]:
        """``venue:symbol`` -> the sequence number its next message would get."""
        return {
            f"{venue}:{symbol}": count
            for venue, batcher in self.batchers.items()
            for symbol, count in batcher.message_sequences.items()
        }

    def add_tagged(self, messages: Iterable[tuple[str, bytes]]) -> Iterator[ClosedBundle]:
        """Add ``(venue, payload)`` pairs in order; yields the bundles that close (with their
        partition's bundles of the other venues)."""
        batchers = self.batchers
        for index, (venue, payload) in enumerate(messages, 1):
            closed = list(batchers[venue].add(payload))
            if closed:
                yield from self._with_partners(closed)
            if not index % 256:  # a quiet venue's bundles expire too, not only at its next message
                yield from self.expired()

    def expired(self, now: float | None = None) -> Iterator[ClosedBundle]:
        """Bundles of any venue whose first message has waited ``linger_ms`` (with their partners)."""
        now = self.clock() if now is None else now
        closed = [bundle for batcher in self.batchers.values() for bundle in batcher.expired(now)]
        if closed:
            yield from self._with_partners(closed)

    def flush(self) -> Iterator[ClosedBundle]:
        closed = [bundle for batcher in self.batchers.values() for bundle in batcher.flush()]
        closed.sort(key=ClosedBundle.earliest_timestamp)
        yield from closed

    def _with_partners(self, closed: list[ClosedBundle]) -> list[ClosedBundle]:
        partitions = {bundle.partition for bundle in closed}
        for batcher in self.batchers.values():
            for shard in [s for s in batcher.pending if self.partition_of[s] in partitions]:
                if shard in batcher.pending:  # not closed with an earlier one of its partition
                    closed.extend(batcher._close(shard))
        closed.sort(key=ClosedBundle.earliest_timestamp)
        return closed


class MergedFeeds:
    """Several venues' files as one stream of ``(venue, payload)`` in event-time order: by ITCH
    timestamp, at equal times by venue name, each file's own order kept (the order the detectors
    of :mod:`itchflow.cep` take them in)."""

    def __init__(self, feeds: Sequence[tuple[str, Path]]) -> None:
        venues = [venue for venue, _ in feeds]
        if len(set(venues)) != len(venues):
            raise UserError("a venue is given twice: one --feed per venue")
        self.feeds = sorted(feeds)

    @property
    def venues(self) -> list[str]:
        return [venue for venue, _ in self.feeds]

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        streams = [_ranked(rank, path) for rank, (_, path) in enumerate(self.feeds)]
        venues = self.venues
        for _, rank, payload in heapq.merge(*streams):
            yield venues[rank], payload


def _ranked(rank: int, path: Path) -> Iterator[tuple[bytes, int, bytes]]:
    """``(timestamp bytes, rank, payload)`` of a file's messages: what :class:`MergedFeeds` merges
    (big-endian timestamps compare as bytes; the rank breaks ties, so payloads are never compared)."""
    for payload in file_payloads(path):
        yield payload[_TIMESTAMP], rank, payload


_SLOW, _FULL, _EXPIRED, _RUN_END = 0, 1, 2, 3
"""Why ``route_run`` handed back (see ``_cscan.c``)."""


class Pacer:
    """Sleeps so that feed time advances at ``speed`` × wall time (None: full speed)."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._origin: tuple[float, int] | None = None

    def delay(self, timestamp_ns: int) -> float:
        """Seconds until the message of ``timestamp_ns`` (feed ns) is due; the first message sets
        the origin and is due at once."""
        if not self.speed:
            return 0.0
        if self._origin is None:
            self._origin = (self.clock(), timestamp_ns)
            return 0.0
        wall0, feed0 = self._origin
        return wall0 + (timestamp_ns - feed0) / 1e9 / self.speed - self.clock()

    def feed_time(self) -> int | None:
        """The feed time (ns) the pacing has reached now (None before the first message)."""
        if not self.speed or self._origin is None:
            return None
        wall0, feed0 = self._origin
        return feed0 + int((self.clock() - wall0) * self.speed * 1e9)

    def wait(self, timestamp_ns: int) -> None:
        delay = self.delay(timestamp_ns)
        if delay > _DUE:
            self.sleep(delay)


_DUE = 0.0005
"""A message less than this (s) ahead of its time is sent at once."""


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    #: messages produced (a market-wide message counts once, though every shard gets a copy)
    messages: int
    #: segments produced: per-symbol batches, plus each shard's market-wide (``""``) segments
    batches: int
    #: Kafka records produced: one per bundle
    records: int
    seconds: float
    #: per symbol (``@<locate>`` for unresolved, ``SYSTEM_KEY`` for market-wide), messages produced
    messages_by_symbol: dict[str, int]
    #: per key, the sequence number the next message would get (= messages of the key up to the
    #: end of this replay, counting those skipped by ``--from-message``)
    next_seq_by_symbol: dict[str, int] = field(default_factory=dict)
    #: heartbeat records sent (paced replays; not counted in ``records``)
    heartbeats: int = 0

    def last_seq_by_symbol(self, venue: str | None = None) -> dict[str, int]:
        """Symbols replayed in this run -> sequence number of their last message (markets-wide
        and unresolved keys left out): what the order books must have applied when done. A replay of
        several venues counts ``venue:symbol``: ``venue`` picks one venue's symbols."""
        prefix = "" if venue is None else f"{venue}:"
        return {
            key.removeprefix(prefix): self.next_seq_by_symbol[key] - 1
            for key in self.messages_by_symbol
            if key.startswith(prefix) and not key.removeprefix(prefix).startswith(("@", "__"))
        }

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def make_producer(bootstrap_servers: str, client_properties: dict[str, str] | None = None):
    """The replay's Kafka producer (:class:`itchflow.producer.Producer`, librdkafka): acks=all, lz4,
    idempotence, one request in flight; ``client_properties`` in librdkafka's names override them.
    An unreachable broker is reported by the replay's first call to it (a :class:`UserError`)."""
    from itchflow.producer import Producer

    return Producer(bootstrap_servers, client_properties)


def replay(
    payloads: Iterable[bytes] | MergedFeeds,
    producer,
    *,
    topic: str,
    venue: str,
    trading_date: date,
    session: str,
    batch_size: int = 1000,
    linger_ms: float = 10.0,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    encode: Callable[..., bytes] | None = None,
    from_message: int = 0,
    to_message: int | None = None,
    heartbeat_ms: float = 1000.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    sessions: Mapping[str, str] | None = None,
) -> ReplaySummary:
    """Produce ``payloads`` (raw ITCH messages in feed order) as per-shard bundles; waits for
    every ack. ``payloads`` may be several venues' feeds (:class:`MergedFeeds`): each bundle is then
    of one venue (its envelope's ``venue``, its session from ``sessions``, default ``session``). ``encode`` turns a :class:`ClosedBundle` into the record value (default: the
    ``ItchBundle`` Avro encoding, stamped with the wall clock when the bundle closes). A paced
    replay (``speed``) sends heartbeats to partitions quiet for ``heartbeat_ms`` (0: none; see the
    module docstring); ``clock`` and ``sleep`` are the wall clock's."""
    from itchflow.producer import ProduceError

    encode = encode or _avro_encoder(venue, trading_date, session, sessions or {})
    # Kafka numbers a topic's partitions 0 .. n-1: the batcher's partition numbers are the topic's
    partitions = len(producer.partitions_for(topic) or [])
    if not partitions:
        raise UserError(f"topic {topic!r} does not exist on the broker; `itchflow stack up` creates it")
    check_partitions(partitions, topic)
    merged = payloads if isinstance(payloads, MergedFeeds) else None
    batcher: BundleBatcher | VenueBatchers
    if merged is not None:
        if from_message or to_message is not None:
            raise UserError("--from-message / --to-message take one feed: replay several venues whole")
        batcher = VenueBatchers(merged.venues, partitions, batch_size, linger_ms, clock)
    else:
        batcher = BundleBatcher(partitions, batch_size, linger_ms, clock)
    pacer = Pacer(speed, clock, sleep)
    futures = []
    counters = {"batches": 0, "records": 0, "reported": 0, "heartbeats": 0}
    # shard s's key; a partition's heartbeats go under the key of its first shard
    keys = [shard_key(shard).encode() for shard in range(SHARDS)]
    started = time.monotonic()

    midnight_ns = midnight_epoch_ns(trading_date)
    latest = [NO_EVENT_TIME] * partitions  # per partition: the latest event time produced
    last_sent = [clock()] * partitions  # per partition: when it was last sent a record (wall clock)
    heartbeat_s = heartbeat_ms / 1000.0

    def send(bundle: ClosedBundle) -> None:
        value = encode(bundle)
        event_time = midnight_ns + bundle.earliest_timestamp()
        latest[bundle.partition] = max(latest[bundle.partition], midnight_ns + bundle.latest_timestamp())
        last_sent[bundle.partition] = clock()
        headers = [(EVENT_TIME_HEADER, event_time.to_bytes(8, "big", signed=True))]
        futures.append(
            producer.send(
                topic, key=keys[bundle.shard], value=value, partition=bundle.partition, headers=headers
            )
        )
        counters["records"] += 1
        counters["batches"] += len(bundle.segments)
        if progress:  # messages taken so far, reported per record produced
            progress(batcher.added - counters["reported"])
            counters["reported"] = batcher.added
        if len(futures) > 20000:
            _settle(futures)

    def waiting() -> None:
        """While a paced replay waits for the next message: close the bundles whose linger is
        over, and send heartbeats to the partitions that have been quiet for ``heartbeat_ms``."""
        now = clock()
        for bundle in batcher.expired(now):
            send(bundle)
        feed_time = pacer.feed_time()
        if not heartbeat_s or feed_time is None:
            return
        waiting_data = {batcher.partition_of[shard] for shard in batcher.pending}
        for partition in range(partitions):
            if partition in waiting_data or now - last_sent[partition] < heartbeat_s:
                continue
            event_time = max(latest[partition], midnight_ns + feed_time)
            latest[partition] = event_time
            last_sent[partition] = now
            headers = heartbeat_headers(event_time)
            futures.append(
                producer.send(
                    topic,
                    key=keys[first_shard_of(partition, partitions)],
                    value=b"",
                    partition=partition,
                    headers=headers,
                )
            )
            counters["heartbeats"] += 1

    # the batcher's state is whole between two messages: a paced replay's waits close bundles and
    # send heartbeats while it is between them
    tick = max(0.001, min(batcher.linger_s, heartbeat_s or batcher.linger_s))
    bundles: Iterator[ClosedBundle]
    if isinstance(batcher, VenueBatchers):
        assert merged is not None
        tagged: Iterable[tuple[str, bytes]] = merged
        if speed:
            tagged = _paced(tagged, pacer, waiting, tick, lambda message: message[1])
        bundles = batcher.add_tagged(tagged)
    else:
        source: Iterable[bytes] = payloads  # type: ignore[assignment]
        if from_message or to_message is not None:
            source = _window(source, from_message, to_message, batcher)
        if speed:
            source = _paced(source, pacer, waiting, tick, lambda payload: payload)
        runs = getattr(source, "runs", None)  # lists of payloads (FilePayloads): the batcher's C loop
        bundles = batcher.add_runs(runs()) if callable(runs) else batcher.add_many(source)
    try:
        for bundle in bundles:
            send(bundle)
        for bundle in batcher.flush():
            send(bundle)
        if to_message is None:
            # the whole feed went out: every shard is complete up to the feed's latest event time
            end = end_of_replay_headers(max(latest))
            for shard in range(SHARDS):
                partition = batcher.partition_of[shard]
                futures.append(
                    producer.send(topic, key=keys[shard], value=b"", partition=partition, headers=end)
                )
        producer.flush()
        _settle(futures)
    except ProduceError as exc:
        raise UserError(
            f"producing to {topic!r} failed: {exc}. Is the broker up? `itchflow stack status`"
        ) from exc
    if progress:
        progress(batcher.added - counters["reported"])
    return ReplaySummary(
        batcher.added,
        counters["batches"],
        counters["records"],
        time.monotonic() - started,
        dict(batcher.messages_by_symbol),
        dict(batcher.message_sequences),
        counters["heartbeats"],
    )


def _window(
    payloads: Iterable[bytes], first: int, stop: int | None, batcher: BundleBatcher
) -> Iterator[bytes]:
    """Messages ``first`` .. ``stop - 1``; the ones before only advance the batcher (:meth:`~BundleBatcher.skip`)."""
    for index, payload in enumerate(payloads):
        if index < first:
            batcher.skip(payload)
            continue
        if stop is not None and index >= stop:
            return
        yield payload


_Message = TypeVar("_Message")


def _paced(
    messages: Iterable[_Message],
    pacer: Pacer,
    waiting: Callable[[], None],
    tick_s: float,
    payload_of: Callable[[_Message], bytes],
) -> Iterator[_Message]:
    """Each message when it is due; while it is not, ``waiting()`` at least every ``tick_s``."""
    for payload in messages:
        timestamp = int.from_bytes(payload_of(payload)[_TIMESTAMP], "big")
        delay = pacer.delay(timestamp)
        while delay > _DUE:
            pacer.sleep(min(delay, tick_s))
            waiting()
            delay = pacer.delay(timestamp)
        yield payload


def _settle(futures: list) -> None:
    """Raise the first failed send (acks=all), then forget the settled futures."""
    for future in futures:
        future.get(timeout=60)
    futures.clear()


EVENT_TIME_HEADER = "itchflow.event-time-ns"
"""Kafka header of a record's event time: the feed time of its earliest message, UTC epoch ns, 8 bytes
big-endian; what the jobs' watermarks follow (the earliest, so that a partition's watermark never
passes a message of a record still to come: see :class:`BundleBatcher`). The Kafka timestamp stays
the wall clock, so topics' time-based retention keeps historical feeds."""
END_OF_REPLAY_HEADER = "itchflow.end-of-replay"
"""Kafka header of the empty record that ends a replay in each shard: the jobs close the
shard key's open event-time windows (bars) when they read it."""
NO_EVENT_TIME = -(2**63)


HEARTBEAT_HEADER = "itchflow.heartbeat"
"""Kafka header of a paced replay's heartbeat: an empty record whose event time (the feed's clock)
moves the partition's watermark while the feed is quiet."""


def heartbeat_headers(event_time: int) -> list[tuple[str, bytes]]:
    """The headers of a heartbeat record (``event_time``: the feed's clock, UTC epoch ns)."""
    return [(EVENT_TIME_HEADER, event_time.to_bytes(8, "big", signed=True)), (HEARTBEAT_HEADER, b"1")]


def end_of_replay_headers(event_time: int) -> list[tuple[str, bytes]]:
    """The headers of the end-of-replay records (``event_time``: the feed's latest event time)."""
    return [
        (EVENT_TIME_HEADER, event_time.to_bytes(8, "big", signed=True)),
        (END_OF_REPLAY_HEADER, b"1"),
    ]


def _avro_encoder(
    venue: str, trading_date: date, session: str, sessions: Mapping[str, str]
) -> Callable[[ClosedBundle], bytes]:
    def encode(bundle: ClosedBundle) -> bytes:
        envelope = bundle.envelope(
            venue=bundle.venue or venue,
            trading_date=trading_date,
            session=sessions.get(bundle.venue, session),
            produced_at_ns=time.time_ns(),
        )
        return encode_bundle(envelope)

    return encode


LATENCY_BUNDLES = (1000, 10.0)
"""(messages, linger ms) of a paced replay's bundles: a message waits at most 10 ms in its bundle."""
THROUGHPUT_BUNDLES = (20_000, 100.0)
"""(messages, linger ms) of a full-speed replay's bundles: few, large Kafka records, since the jobs'
cost is largely per record (measured with ``itchflow bench``: 68,721 msgs/s end to end with the
latency settings against 246,272 with these, same machine, same hour)."""


def bundling(paced: bool, batch_size: int | None = None, linger_ms: float | None = None) -> tuple[int, float]:
    """(messages, linger ms) of a replay's bundles: what is given, else :data:`LATENCY_BUNDLES` for
    a paced replay and :data:`THROUGHPUT_BUNDLES` for a full-speed one."""
    default_size, default_linger = LATENCY_BUNDLES if paced else THROUGHPUT_BUNDLES
    return (
        default_size if batch_size is None else batch_size,
        default_linger if linger_ms is None else linger_ms,
    )


# --- command line -------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    from itchflow.stack.cli import add_stack_options

    parser = subparsers.add_parser(
        "replay",
        help="produce an ITCH 5.0 file to market-data-raw as per-shard bundles of per-symbol batches",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "file", type=Path, nargs="?", help="ITCH 5.0 file (length-prefixed, gzip, zero-prefix or pcap)"
    )
    parser.add_argument(
        "--feed",
        action="append",
        metavar="VENUE=FILE",
        help="instead of FILE: several venues' files in one replay, merged by event time (repeat per "
        "venue), e.g. --feed NASDAQ=01022020.NASDAQ_ITCH50 --feed BX=01022020.BX_ITCH50",
    )
    parser.add_argument(
        "--date",
        required=True,
        help="trading date of the file, YYYY-MM-DD (event time = date + ITCH timestamp)",
    )
    parser.add_argument("--venue", default="NASDAQ", help="venue tag (default NASDAQ)")
    parser.add_argument(
        "--session",
        help="producer session name in every envelope, informational: the jobs number events per "
        "venue and trading date, so a day replayed again changes nothing (default: file name and date)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="pace by feed timestamps, X times real time")
    pace.add_argument("--max", action="store_true", help="full speed (default)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"messages per shard bundle (one Kafka record) at most (default: {LATENCY_BUNDLES[0]:,} "
        f"with --speed, {THROUGHPUT_BUNDLES[0]:,} at full speed)",
    )
    parser.add_argument(
        "--linger-ms",
        type=float,
        help=f"close a shard's bundle this long after its first message (default: "
        f"{LATENCY_BUNDLES[1]:g} with --speed, {THROUGHPUT_BUNDLES[1]:g} at full speed)",
    )
    parser.add_argument(
        "--heartbeat-ms",
        type=float,
        default=1000.0,
        help="paced replays: send an empty heartbeat record (event time = the feed's clock) to a "
        "partition that got nothing for this long, so the jobs' bars still close while the feed is "
        "quiet (default 1000; 0: never)",
    )
    parser.add_argument(
        "--from-message",
        type=int,
        default=0,
        metavar="N",
        help="start at the N-th message (0-based); earlier ones only advance the directory and sequence numbers",
    )
    parser.add_argument("--to-message", type=int, metavar="M", help="stop before the M-th message")
    parser.add_argument("--topic", default=RAW_TOPIC, help=f"topic (default {RAW_TOPIC})")
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: the local stack's broker)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stack_options(parser)
    parser.set_defaults(func=_replay_command)


def parse_trading_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def _replay_command(args: argparse.Namespace) -> int:
    from itchflow.stack.cli import stack_config_from_args

    trading_date = parse_trading_date(args.date)
    if args.speed is not None and args.speed <= 0:
        raise UserError("--speed must be positive")
    if args.heartbeat_ms < 0:
        raise UserError("--heartbeat-ms must be 0 (no heartbeats) or positive")
    feeds = _feeds_of(args)
    for venue, path in feeds:
        if not path.exists():
            raise UserError(f"{path}: no such file" + (f" (--feed {venue}=FILE)" if args.feed else ""))
    bootstrap = args.bootstrap_servers or stack_config_from_args(args).bootstrap_servers
    producer = make_producer(bootstrap)
    sessions = {venue: args.session or f"{path.name}@{trading_date.isoformat()}" for venue, path in feeds}
    batch_size, linger_ms = bundling(args.speed is not None, args.batch_size, args.linger_ms)
    summary = run_replay_feeds(
        feeds,
        producer,
        topic=args.topic,
        venue=feeds[0][0],
        trading_date=trading_date,
        session=sessions[feeds[0][0]],
        sessions=sessions,
        batch_size=batch_size,
        linger_ms=linger_ms,
        speed=args.speed,
        show_progress=not args.no_progress,
        from_message=args.from_message,
        to_message=args.to_message,
        heartbeat_ms=args.heartbeat_ms,
    )
    producer.close()
    print(
        f"replayed {summary.messages:,} messages of {len(summary.messages_by_symbol):,} keys in {summary.batches:,} segments "
        f"({summary.records:,} records) to {args.topic} in {summary.seconds:.2f}s: {summary.messages_per_second:,.0f} messages/s"
    )
    return 0


def _feeds_of(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The replay's (venue, file): FILE with --venue, or the --feed VENUE=FILE list."""
    if args.feed and args.file is not None:
        raise UserError("give either FILE (with --venue) or --feed VENUE=FILE ..., not both")
    if not args.feed:
        if args.file is None:
            raise UserError("which file? `itchflow replay FILE --date D`, or --feed VENUE=FILE per venue")
        return [(args.venue, args.file)]
    return parse_feeds(args.feed)


def parse_feeds(values: list[str]) -> list[tuple[str, Path]]:
    """``--feed VENUE=FILE`` arguments as (venue, path), venues unique (``replay`` and ``detect``)."""
    feeds: list[tuple[str, Path]] = []
    for value in values:
        venue, sep, name = value.partition("=")
        venue = venue.strip()
        if not sep or not venue or not name:
            raise UserError(
                f"--feed takes VENUE=FILE, e.g. --feed NASDAQ=01022020.NASDAQ_ITCH50; got {value!r}"
            )
        if any(venue == known for known, _ in feeds):
            raise UserError(f"venue {venue} is given twice: one --feed per venue")
        feeds.append((venue, Path(name)))
    return feeds


def run_replay_file(path: Path, producer, *, show_progress: bool = True, **options) -> ReplaySummary:
    """Replay a file with a progress bar on stderr; decoding errors become a UserError with the offset."""
    return _run_with_progress(path.name, str(path), file_payloads(path), producer, show_progress, **options)


def run_replay_feeds(
    feeds: Sequence[tuple[str, Path]], producer, *, show_progress: bool = True, **options
) -> ReplaySummary:
    """Replay one venue's file, or several venues' files merged by event time (:class:`MergedFeeds`),
    with a progress bar on stderr."""
    if len(feeds) == 1:
        venue, path = feeds[0]
        return run_replay_file(path, producer, show_progress=show_progress, **{**options, "venue": venue})
    names = ", ".join(f"{venue}={path.name}" for venue, path in feeds)
    return _run_with_progress(names, "FILE", MergedFeeds(feeds), producer, show_progress, **options)


def _run_with_progress(
    name: str, check: str, payloads: Iterable[bytes] | MergedFeeds, producer, show_progress: bool, **options
) -> ReplaySummary:
    from tqdm import tqdm

    from itchflow.itch.codec import ItchDecodeError

    bar = tqdm(
        desc=f"replay {name}", unit=" msg", unit_scale=True, file=sys.stderr, disable=not show_progress
    )
    try:
        return replay(payloads, producer, progress=bar.update, **options)
    except ItchDecodeError as exc:
        raise UserError(f"{name}: {exc}. Check the file with `itchflow itch stats {check}`.") from exc
    finally:
        bar.close()


class FilePayloads:
    """Raw ITCH payloads of a file in order, whatever the framing: iterate for one payload at a
    time, or :meth:`runs` for lists of consecutive payloads (what :func:`replay` takes at full speed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def runs(self) -> Iterator[list[bytes]]:
        from itchflow.itch import framing

        return framing.iter_payload_runs(self.path)

    def __iter__(self) -> Iterator[bytes]:
        for run in self.runs():
            yield from run


def file_payloads(path: Path) -> FilePayloads:
    """Raw ITCH payloads of ``path`` in order, whatever the framing (see :class:`FilePayloads`)."""
    return FilePayloads(path)
