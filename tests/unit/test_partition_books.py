"""The order-book job's per-key core: every book of a partition from bundles, state as snapshots + log.

Feeds are cut into bundles here by a deliberately simple bundler (consecutive messages, one segment
per symbol), independent of the replay producer. Books are checked against ``MarketBooks`` applying
the same messages one by one; restores against an uninterrupted run.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from itchflow.avro import InvalidRecord
from itchflow.avro.bundle import SegmentInput, encode_bundle, make_bundle
from itchflow.avro.normalized import decode_normalized
from itchflow.book import MarketBooks
from itchflow.itch.codec import decode
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.keyed_state import MemoryKeyedState
from itchflow.pipeline.normalize_stage import NormalizeOutcome, RecordSource, normalize_record
from itchflow.pipeline.partition_books import BookCache, PartitionBooks, book_key
from itchflow.synth import generate

pytestmark = pytest.mark.usefixtures("implementation")  # each test on the Python and the C code

VENUE = "XNAS"
DAY = date(2019, 12, 30)
SOURCE = RecordSource("market-data-raw", 0, 0, 0, b"XNAS:#0")
CONFIG = BookStageConfig(compact_every_records=5)


def bundle_feed(payloads: list[bytes], per_bundle: int) -> list[bytes]:
    """Normalized records of ``payloads`` cut every ``per_bundle`` messages, one segment per locate."""
    return [outcome.normalized for outcome in normalized_outcomes(payloads, per_bundle)]


def normalized_outcomes(payloads: list[bytes], per_bundle: int) -> list[NormalizeOutcome]:
    """:func:`bundle_feed`'s records as the normalizer's outcomes (bytes and bundle objects)."""
    symbols: dict[int, str] = {}
    batches: dict[int, int] = {}
    sent: dict[int, int] = {}
    records: list[NormalizeOutcome] = []
    state = None
    for number, start in enumerate(range(0, len(payloads), per_bundle)):
        by_locate: dict[int, list[bytes]] = {}
        for payload in payloads[start : start + per_bundle]:
            locate = int.from_bytes(payload[1:3], "big")
            if payload[:1] == b"R":
                symbols[locate] = decode(payload).stock
            by_locate.setdefault(locate, []).append(payload)
        segments = []
        for locate, messages in by_locate.items():
            batches[locate] = batches.get(locate, 0) + 1
            segments.append(
                SegmentInput(symbols.get(locate, ""), locate, batches[locate], sent.get(locate, 0), messages)
            )
            sent[locate] = sent.get(locate, 0) + len(messages)
        bundle = make_bundle(
            segments,
            venue=VENUE,
            trading_date=DAY,
            session="s",
            partition=0,
            partitions=1,
            bundle_sequence=number + 1,
            produced_at_ns=0,
        )
        outcome = normalize_record(encode_bundle(bundle), SOURCE, state, now_ns=1)
        assert not outcome.dead_letters
        state = outcome.state
        if outcome.normalized is not None:
            records.append(outcome)
    return records


@pytest.fixture(scope="module")
def feed() -> tuple[list[bytes], list[bytes]]:
    payloads = list(generate(symbols=12, messages=6000, seed=5))
    return payloads, bundle_feed(payloads, per_bundle=97)


def contents(state: MemoryKeyedState) -> tuple:
    """(token, snapshots, log) of a key's state."""
    return state.value(), dict(state.entries()), list(state.log())


def final_books(books: PartitionBooks) -> dict[str, tuple]:
    return {
        key: (stage.book.depth(10), stage.book.unknown_refs, stage.book.order_count, stage.last_book_seq)
        for key, stage in books.stages.items()
    }


def test_every_book_equals_the_message_by_message_reference(feed) -> None:
    payloads, records = feed
    books = PartitionBooks(CONFIG)
    for record in records:
        books.apply(record)
    reference = MarketBooks(VENUE)
    reference.apply_all(decode(payload) for payload in payloads)
    assert sorted(books.stages) == sorted(book_key(VENUE, symbol) for symbol in reference.symbols())
    for symbol in reference.symbols():
        expected = reference.book(symbol)
        stage = books.stages[book_key(VENUE, symbol)]
        assert stage.book.depth(10) == expected.depth(10), symbol
        assert (stage.book.unknown_refs, stage.book.order_count) == (
            expected.unknown_refs,
            expected.order_count,
        )
        # MPID adds (ITCH F) counted apart from A: the attribution of any run of a bundle, not just its first
        assert stage.book.message_counts == expected.message_counts, symbol
    assert sum(reference.book(symbol).message_counts["F"] for symbol in reference.symbols()) > 50


def test_a_record_touches_many_books_and_market_wide_runs_are_counted_not_booked(feed) -> None:
    _, records = feed
    books = PartitionBooks(CONFIG)
    first = books.apply(records[0])
    runs = decode_normalized(records[0]).runs
    assert len([run for run in runs if run.symbol]) > 3
    assert first.counters["market_wide_runs"] == len([run for run in runs if not run.symbol]) >= 1
    assert first.counters["events_applied"] == sum(run.count for run in runs if run.symbol)
    tables = [table for table, _ in first.clickhouse]
    assert len(tables) == len(set(tables)), "one chunk per table"


def test_the_cache_reuses_live_books_and_writes_snapshots_only_at_compaction(feed) -> None:
    _, records = feed
    cache, state = BookCache(CONFIG), MemoryKeyedState()
    for number, record in enumerate(records[:12], start=1):
        cache.process("k", record, state)
        assert len(list(state.log())) == number % CONFIG.compact_every_records
    assert state.entry_reads == 1 and cache.restores == 1  # the first record only
    assert contents(state)[1]


def test_restoring_from_any_checkpoint_gives_the_outputs_and_books_of_an_uninterrupted_run(feed) -> None:
    _, records = feed
    clean_cache, clean_state = BookCache(CONFIG), MemoryKeyedState()
    clean = [clean_cache.process("k", record, clean_state) for record in records]
    clean_books = final_books(clean_cache._entries["k"])
    rng = random.Random(3)
    for _ in range(4):
        checkpoint_at = rng.randrange(1, len(records) - 1)
        fail_at = rng.randrange(checkpoint_at, len(records))
        cache, state = BookCache(CONFIG), MemoryKeyedState()
        saved = state.checkpoint()
        for number, record in enumerate(records[:fail_at]):
            if number == checkpoint_at:
                saved = state.checkpoint()
            cache.process("k", record, state)
        # the TaskManager dies: a new process restores the checkpoint and replays from its offset
        restored = BookCache(CONFIG)
        again = [restored.process("k", record, saved) for record in records[checkpoint_at:]]
        assert again == clean[checkpoint_at:], (checkpoint_at, fail_at)
        assert final_books(restored._entries["k"]) == clean_books


def test_a_stale_cache_is_not_trusted_after_a_restore_in_the_same_process(feed) -> None:
    _, records = feed
    cache, state = BookCache(CONFIG), MemoryKeyedState()
    for record in records[:3]:
        cache.process("k", record, state)
    checkpoint = state.checkpoint()
    for record in records[3:9]:
        cache.process("k", record, state)  # the cache's books are now 6 records ahead of the checkpoint
    replayed = [cache.process("k", record, checkpoint) for record in records[3:9]]
    reference_cache, reference_state = BookCache(CONFIG), MemoryKeyedState()
    expected = [reference_cache.process("k", record, reference_state) for record in records[:9]][3:]
    assert replayed == expected


def test_applying_the_normalizers_bundle_objects_equals_applying_the_bytes(feed) -> None:
    """The market-data job hands the books the normalizer's bundle instead of decoding its bytes:
    outputs, state and books must be the same as from the bytes (the two-job pipeline's path)."""
    payloads, _ = feed
    outcomes = normalized_outcomes(payloads, per_bundle=61)
    assert any(outcome.bundle.details for outcome in outcomes), "the feed must exercise details"
    by_bytes, bytes_state = BookCache(CONFIG), MemoryKeyedState()
    by_object, object_state = BookCache(CONFIG), MemoryKeyedState()
    for outcome in outcomes:
        expected = by_bytes.process("k", outcome.normalized, bytes_state)
        assert by_object.process("k", outcome.normalized, object_state, outcome.bundle) == expected

    # the token names a cache instance: random by design
    assert contents(object_state)[1:] == contents(bytes_state)[1:]
    assert final_books(by_object._entries["k"]) == final_books(by_bytes._entries["k"])


def test_an_undecodable_record_changes_neither_state_nor_books(feed) -> None:
    _, records = feed
    cache, state = BookCache(CONFIG), MemoryKeyedState()
    cache.process("k", records[0], state)
    before = contents(state)
    with pytest.raises(InvalidRecord):
        cache.process("k", b"\xc3\x01garbage", state)
    assert contents(state) == before
    reads = state.entry_reads
    cache.process("k", records[1], state)
    assert state.entry_reads == reads  # the live books were still trusted


def test_the_books_report_every_eligible_print_every_applied_break_and_the_end_of_messages() -> None:
    """What the bars are fed: per record the prints (book seq, event time, kind, match, price,
    shares, side, printable) and the broken trades, checked against the independent reference's
    reading of the same messages; the System Event C's record says the feed ended."""
    from tests.unit.bars_reference import read_prints

    payloads = list(generate(symbols=12, messages=60_000, seed=5))
    messages = [decode(payload) for payload in payloads]
    assert sum(m.message_type == "B" for m in messages) >= 3, "the feed must hold broken trades"
    books = PartitionBooks(CONFIG)
    prints, breaks, ends = [], [], []
    for record in bundle_feed(payloads, per_bundle=97):
        output = books.apply(record)
        for _, symbol, rows in output.prints:
            prints += [(symbol, match, price, shares) for _, _, kind, match, price, shares, _, printable in rows
                       if printable and shares > 0]  # fmt: skip
        breaks += [(symbol, match) for _, symbol, _, _, match in output.breaks]
        ends.append(output.end_of_messages)
    every_print = read_prints((m for m in messages if m.message_type != "B"), "2019-12-30")
    assert sorted(prints) == sorted((p.symbol, p.match_number, p.price, p.shares) for p in every_print.prints)
    symbols = {m.stock_locate: m.stock.rstrip() for m in messages if m.message_type == "R"}
    assert sorted(breaks) == sorted(
        (symbols[m.stock_locate], m.match_number) for m in messages if m.message_type == "B"
    )
    assert ends[-1] and not any(ends[:-1])  # the footer's C is in the last record
