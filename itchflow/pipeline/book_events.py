"""The book-events topic: what the books made of one normalized record, for the analytics job.

The order-book job writes one ``BookEvents`` record (``schemas/book/BookEvents.avsc``) per normalized
record it applies, keyed like it (``@<shard>/<shards>``) and stamped with its event time: the prints
with their match numbers, the broken-trade corrections, the top-of-book changes with sizes and the
depth snapshots. The analytics job decodes it back into the fields of a
:class:`~itchflow.pipeline.partition_books.BundleOutput` that the bars, bursts, OFI and liquidity
read, so a split deployment (normalize -> order book -> analytics over Kafka) computes what the
one-job pipeline computes in one operator.

Top-of-book changes and depth snapshots travel as the books' own ClickHouse RowBinary rows (the
columns of ``schemas/clickhouse/001_book.sql``): the OFI and liquidity stages read that layout, in C,
and re-encoding every change as Avro records would cost both jobs per change for nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from itchflow.avro.registry import SchemaRegistry, default_registry
from itchflow.pipeline.partition_books import BundleOutput, top_and_depth
from itchflow.sinks.book_tables import DEPTH_SNAPSHOTS, TOP_OF_BOOK

BOOK_EVENTS_SCHEMA = "itchflow.book.v1.BookEvents"


class BookEvents(NamedTuple):
    """A decoded book-events value."""

    output: BundleOutput
    """What the books produced, as the analytics read it."""
    source_partition: int
    source_offset: int
    """Where the normalized record the books applied sits in its topic (a key's records come in
    offset order: a reader skips what it has passed)."""


def book_events(output: BundleOutput, source_partition: int, source_offset: int) -> dict[str, Any]:
    """The ``BookEvents`` datum of what the books produced from one record (the normalized record
    at ``source_offset`` of ``source_partition``)."""
    tops, depths = top_and_depth(output)
    return {
        "source_partition": source_partition,
        "source_offset": source_offset,
        "trading_date": output.trading_date,
        "ts_produced": output.ts_produced,
        "end_of_messages": output.end_of_messages,
        "prints": [
            {
                "venue": venue,
                "symbol": symbol,
                "prints": [
                    {
                        "seq": seq,
                        "ts_event": ts_event,
                        "kind": kind,
                        "match_number": match,
                        "price": price,
                        "shares": shares,
                        "side": side,
                        "printable": bool(printable),
                    }
                    for seq, ts_event, kind, match, price, shares, side, printable in rows
                ],
            }
            for venue, symbol, rows in output.prints
        ],
        "breaks": [
            {"venue": venue, "symbol": symbol, "ts_event": ts_event, "seq": seq, "match_number": match}
            for venue, symbol, ts_event, seq, match in output.breaks
        ],
        "top_of_book": tops,
        "depth_snapshots": depths,
    }


def encode_book_events(
    output: BundleOutput, source_partition: int, source_offset: int, registry: SchemaRegistry | None = None
) -> bytes:
    """Single-object encode what the books produced from one record for the book-events topic."""
    datum = book_events(output, source_partition, source_offset)
    return (registry or default_registry()).encode(BOOK_EVENTS_SCHEMA, datum)


def decode_book_events(data: bytes, registry: SchemaRegistry | None = None) -> BookEvents:
    """A book-events value, its output as the :class:`BundleOutput` fields the analytics read:
    prints, breaks, the trading date, the end of messages and the ``top_of_book`` /
    ``depth_snapshots`` rows (no Redis commands, no counters).

    Raises:
        InvalidRecord: ``data`` is not a ``BookEvents`` record.
    """
    record = (registry or default_registry()).decode(BOOK_EVENTS_SCHEMA, data)
    clickhouse = tuple(
        (table, rows)
        for table, rows in (
            (TOP_OF_BOOK, record["top_of_book"]),
            (DEPTH_SNAPSHOTS, record["depth_snapshots"]),
        )
        if rows
    )
    prints = [
        (
            run["venue"],
            run["symbol"],
            [
                (
                    p["seq"],
                    p["ts_event"],
                    p["kind"],
                    p["match_number"],
                    p["price"],
                    p["shares"],
                    p["side"],
                    int(p["printable"]),
                )
                for p in run["prints"]
            ],
        )
        for run in record["prints"]
    ]
    breaks = [(b["venue"], b["symbol"], b["ts_event"], b["seq"], b["match_number"]) for b in record["breaks"]]
    output = BundleOutput(
        clickhouse=clickhouse,
        redis_commands=0,
        redis=b"",
        counters={},
        ts_produced=record["ts_produced"],
        prints=prints,
        breaks=breaks,
        trading_date=record["trading_date"],
        end_of_messages=record["end_of_messages"],
    )
    return BookEvents(output, record["source_partition"], record["source_offset"])
