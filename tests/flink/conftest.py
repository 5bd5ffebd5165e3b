"""The Flink test layer: jobs built with their ``build(env, sources, sinks, config)`` on a local
mini-cluster, fed from in-memory collections, their outputs collected back into the test.

* Sources are collections of ``Row(key, header + value)`` -- what the Kafka source emits -- made
  from ITCH files the way ``itchflow replay`` bundles them (same keys, salted in the JVM as the
  Kafka deserializer salts them).
* Sinks are collecting: every sink of a job is mapped to ``Row(sink name, key, value)``, the
  streams are united, and ``execute_and_collect`` hands the rows to the test.
* What the sinks carry is decoded independently of the code under test, by the unit tests' readers
  (``tests/unit/book_stage_support.py``): ClickHouse RowBinary by the column types of the DDL,
  Redis commands by a RESP reader.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import sysconfig
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pyflink.common import Configuration, Row
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway

from connectors.kafka import KEYED_RECORD, MAX_PARALLELISM, NO_EVENT_TIME, RECORD_HEADER, add_kafka_jars
from itchflow.analytics.book_tape import ofi_of_file
from itchflow.avro.bundle import encode_bundle
from itchflow.normalize.clock import midnight_epoch_ns
from itchflow.replay import BundleBatcher, ClosedBundle, file_payloads
from tests.unit.book_stage_support import fields_of, parse_resp, read_rows

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRADING_DATE = date(2019, 12, 30)
DEPTH = 10
GARBAGE = b"\x00\x01 not an ItchBundle"


# ----------------------------------------------------------------------------- the mini-cluster


def mini_cluster_env(parallelism: int) -> StreamExecutionEnvironment:
    """A local environment as the jobs run on the cluster: thread mode, the project's Java helpers."""
    config = Configuration()
    config.set_string("python.execution-mode", "thread")
    config.set_string("python.executable", sys.executable)
    # the embedded interpreter needs pemja from site-packages, and this checkout's code first
    site_packages = sysconfig.get_paths()["purelib"]
    config.set_string("python.pythonpath", os.pathsep.join([str(PROJECT_ROOT), site_packages]))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    add_kafka_jars(env)
    env.set_max_parallelism(MAX_PARALLELISM)
    env.set_parallelism(parallelism)
    return env


def balanced_key(key: str) -> str:
    """The key the Kafka source's deserializer gives a record key (bundle keys are salted)."""
    return get_gateway().jvm.itchflow.connectors.KeyedRecordDeserializer(MAX_PARALLELISM).balancedKey(key)


class Collector:
    """Collecting sinks: ``sink(name)`` for each of a job's sinks; :meth:`run` executes the job and
    returns what each sink received, collected in the JVM (``collectAsync``) and read over py4j."""

    def __init__(self) -> None:
        self.iterators: dict[str, list] = defaultdict(list)

    def sink(self, name: str) -> Callable[[DataStream], None]:
        def attach(stream: DataStream) -> None:
            self.iterators[name].append(stream._j_data_stream.collectAsync())

        return attach

    def bridge(
        self, name: str
    ) -> tuple[Callable[[DataStream], None], Callable[[StreamExecutionEnvironment], DataStream]]:
        """A sink of ``Row(key, value)`` records (also collected as ``name``) and a source of the
        same records as ``Row(key, header + value)``: one job's output topic as another's input.
        As the Kafka sink and source would: a one-byte value is a control record (its byte the
        header's flags, no payload), a ``Row(key, value, event time)`` has that event time in its
        header, and each record gets the next offset of its writer (a subtask writes all of a key's
        records, so a key's offsets increase)."""
        held: list[DataStream] = []

        def attach(stream: DataStream) -> None:
            self.sink(name)(stream)
            # no gateway inside an operator: the key stays as the topic has it (unsalted)
            held.append(stream.map(bridged, KEYED_RECORD))

        return attach, lambda env: held[0]

    def run(self, env: StreamExecutionEnvironment) -> dict[str, list[tuple[bytes, bytes]]]:
        """Execute the job and drain every collecting sink while it runs (a collecting sink whose
        buffer is full waits for its reader: read after the job, they would wait forever)."""
        client = env.execute_async("flink-test")
        by_sink: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
        errors: list[BaseException] = []

        def drain(name: str, iterator) -> None:
            try:
                rows = []
                while iterator.hasNext():
                    row = iterator.next()
                    rows.append((_bytes(row.getField(0)), _bytes(row.getField(1))))
                iterator.close()
                by_sink[name].extend(rows)
            except BaseException as error:  # noqa: BLE001 -- reported below, with the job's own error
                errors.append(error)

        readers = [
            threading.Thread(target=drain, args=(name, iterator), daemon=True)
            for name, iterators in self.iterators.items()
            for iterator in iterators
        ]
        for reader in readers:
            reader.start()
        client.get_job_execution_result().result()  # raises the job's failure
        for reader in readers:
            reader.join()
        if errors:
            raise errors[0]
        return by_sink


def bridged(row: Row, offsets=itertools.count()) -> Row:  # noqa: B008 -- one counter per subtask
    """A ``Row(key, value)`` of a job's sink as the Kafka source would give it to the next job."""
    value = bytes(row[1])
    flags, payload = (value[0], b"") if len(value) == 1 else (0, value)
    event_time = row[2] if len(row) > 2 and row[2] is not None else NO_EVENT_TIME
    header = RECORD_HEADER.pack(0, next(offsets), 0, event_time, flags)
    return Row(bytes(row[0]).decode(), header + payload)


def _bytes(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return str(value).encode()
    return bytes(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- the feeds


@dataclass
class Feed:
    """One ITCH file replayed under ``venue``: its raw records and the garbage mixed in."""

    path: Path
    venue: str
    records: list[tuple[str, bytes]] = field(default_factory=list)
    garbage: set[tuple[int, int]] = field(default_factory=set)
    """(partition, offset) of each undecodable record mixed in."""


_NEXT_OFFSETS: dict[int, int] = defaultdict(int)
"""Per partition, the next offset of a feed's record: unique across every feed made, as the records
of a partition are in Kafka."""


def raw_feed(
    path: Path, venue: str, partitions: int = 8, batch_size: int = 400, garbage_every: int = 25
) -> Feed:
    """``path`` bundled and encoded as ``itchflow replay`` produces it (per-shard bundles of at most
    ``batch_size`` messages in ``partitions`` partitions), keyed as the Kafka source keys it; the
    first and every ``garbage_every``-th record are followed by an undecodable one on the same key.
    The records are in order of event time across the partitions (each partition's order kept): a
    Kafka source's watermark is per partition, this collection's one for all."""
    batcher = BundleBatcher(
        partitions=partitions, batch_size=batch_size, linger_ms=float("inf"), clock=lambda: 0.0
    )
    closed = []
    for payload in file_payloads(path):
        closed.extend(batcher.add(payload))
    closed.extend(batcher.flush())
    feed = Feed(path, venue)
    offsets = _NEXT_OFFSETS  # feeds of several venues share the shards' keys and partitions
    keys: dict[str, str] = {}

    midnight_ns = midnight_epoch_ns(TRADING_DATE)
    closed.sort(key=ClosedBundle.earliest_timestamp)  # stable: each partition's order is kept

    def add(bundle: ClosedBundle, value: bytes, event_time: int = NO_EVENT_TIME) -> None:
        partition = bundle.partition
        key = keys.get(bundle.key) or keys.setdefault(bundle.key, balanced_key(bundle.key))
        header = RECORD_HEADER.pack(partition, offsets[partition], 0, event_time, 0)
        feed.records.append((key, header + value))
        offsets[partition] += 1

    for number, bundle in enumerate(closed, start=1):
        envelope = bundle.envelope(
            venue=venue, trading_date=TRADING_DATE, session=f"{venue}-1", produced_at_ns=0
        )
        add(bundle, encode_bundle(envelope), midnight_ns + bundle.earliest_timestamp())
        if number == 1 or number % garbage_every == 0:
            feed.garbage.add((bundle.partition, offsets[bundle.partition]))
            add(bundle, GARBAGE)
    return feed


def collection_source(feeds: list[Feed]) -> Callable[[StreamExecutionEnvironment], DataStream]:
    """A source of every feed's records, feeds one after the other (each key's order kept)."""
    rows = [Row(key, value) for feed in feeds for key, value in feed.records]
    return lambda env: env.from_collection(rows, type_info=KEYED_RECORD)


# ---------------------------------------------------------------------------- the reference


def reference(path: Path) -> dict[str, dict]:
    """Every symbol's book as ``itchflow book --json`` rebuilds it offline."""
    result = subprocess.run(
        [sys.executable, "-m", "itchflow.cli", "book", str(path), "--json", "--depth", str(DEPTH)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    return json.loads(result.stdout)["symbols"]


def bar_reference(path: Path, interval: str) -> list[dict]:
    """Every bar of ``path`` as ``itchflow bars --json`` folds it offline."""
    result = subprocess.run(
        [sys.executable, "-m", "itchflow.cli", "bars", str(path), "--interval", interval, "--json",
         "--date", TRADING_DATE.isoformat()],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    return json.loads(result.stdout)["bars"]


def ofi_reference(path: Path, venue: str) -> list[tuple]:
    """(symbol, interval_s, window start ns, ofi, updates) of every OFI window ``ofi_of_file`` finds
    in ``path``, sorted."""
    return sorted(
        (row.symbol, row.interval_s, row.window_start_ns, row.ofi, row.updates)
        for row in ofi_of_file(path, TRADING_DATE, venue)
    )


# --------------------------------------------------------------- decoding what the sinks carry


@dataclass
class Outputs:
    """What a job wrote, decoded: ClickHouse rows per table, the final Redis hashes, the stream
    entry ids per stream, and the other sinks' raw ``(key, value)`` records."""

    rows: dict[str, list[dict[str, object]]]
    hashes: dict[str, dict[str, str]]
    streams: dict[str, list[str]]
    other: dict[str, list[tuple[bytes, bytes]]]

    def ofi(self, venue: str) -> list[tuple]:
        """The ``ofi`` rows of ``venue`` as :func:`ofi_reference` gives them."""
        return sorted(
            (row["symbol"], row["interval_s"], row["window_start"], row["ofi"], row["updates"])
            for row in self.rows.get("ofi", [])
            if row["venue"] == venue
        )

    def final_books(self, venue: str) -> dict[str, dict]:
        """Per symbol of ``venue``: the last depth snapshot, the last status and the Redis depth."""
        books: dict[str, dict] = defaultdict(dict)
        for table, into in (("depth_snapshots", "depth"), ("book_status", "status")):
            for row in self.rows.get(table, []):
                if row["venue"] == venue:
                    book = books[str(row["symbol"])]
                    if into not in book or book[into]["seq"] < row["seq"]:
                        book[into] = row
        for symbol, book in books.items():
            redis_depth = self.hashes.get(f"itchflow:depth:{venue}:{symbol}", {})
            book["redis_bids"] = json.loads(redis_depth.get("bids", "[]"))
            book["redis_asks"] = json.loads(redis_depth.get("asks", "[]"))
            depth = book.get("depth")
            book["ch_bids"] = _levels(depth, "bid") if depth else []
            book["ch_asks"] = _levels(depth, "ask") if depth else []
        return books


def current_bars(rows: list[dict], venue: str) -> dict[tuple, dict]:
    """(symbol, interval_s, window_start) -> the bar's last revision, as ClickHouse reads it with FINAL
    (highest revision; deleted bars dropped)."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        if row["venue"] != venue:
            continue
        key = (row["symbol"], row["interval_s"], row["window_start"])
        if key not in latest or latest[key]["revision"] < row["revision"]:
            latest[key] = row
    return {key: row for key, row in latest.items() if not row["is_deleted"]}


def _levels(row: dict, side: str) -> list[list[int]]:
    return [
        list(level)
        for level in zip(row[f"{side}_prices"], row[f"{side}_shares"], row[f"{side}_orders"], strict=True)
    ]


def decode_outputs(collected: dict[str, list[tuple[bytes, bytes]]]) -> Outputs:
    rows: dict[str, list[dict[str, object]]] = defaultdict(list)
    for table, chunk in collected.pop("clickhouse", []):
        rows[table.decode()].extend(read_rows(table.decode(), chunk))
    hashes: dict[str, dict[str, str]] = defaultdict(dict)
    streams: dict[str, list[str]] = defaultdict(list)
    for count, pipeline in collected.pop("redis", []):
        commands = parse_resp(pipeline)
        assert len(commands) == int(count), "the command count travels with the pipeline"
        for command in commands:
            verb, key = command[0].upper(), command[1]
            if verb == "HSET":
                hashes[key].update(fields_of(command, 2))
            elif verb == "XADD":
                streams[key].append(command[command.index("~") + 2] if "~" in command else command[2])
    return Outputs(dict(rows), dict(hashes), dict(streams), collected)
