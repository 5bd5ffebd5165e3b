"""The normalization job's core: one raw record in, normalized batch or dead letters out."""

from datetime import date

import pytest

from itchflow.avro.bundle import SegmentInput, encode_bundle, make_bundle
from itchflow.avro.deadletter import decode_dead_letter
from itchflow.avro.normalized import decode_normalized
from itchflow.itch.codec import encode
from itchflow.itch.messages import AddOrder, OrderDelete, OrderExecuted
from itchflow.normalize.bundle import run_batches
from itchflow.pipeline.keyed_state import MemoryKeyedState
from itchflow.pipeline.normalize_stage import RecordSource, normalize_record, state_from_tuple
from tests.unit.old_records import itch_batch_value

pytestmark = pytest.mark.usefixtures("implementation")  # each test on the Python and the C code

T0 = 34_200_000_000_000  # 09:30:00 in ns since midnight
DAY = date(2019, 12, 30)
SOURCE = RecordSource("market-data-raw", 3, 42, 1_577_716_200_000, b"MEAT")


def raw_record(batch_sequence: int = 1, first_message_seq: int = 0, session: str = "s1") -> bytes:
    """A per-symbol ``ItchBatch`` of an older producer: the stage still takes them (schemas/README.md)."""
    payloads = [
        encode(AddOrder(7, 0, T0, 1001, "B", 100, "MEAT", 1_000_000)),
        encode(OrderDelete(7, 0, T0 + 5, 1001)),
    ]
    return itch_batch_value(
        payloads,
        venue="XNAS",
        trading_date=DAY,
        session=session,
        symbol="MEAT",
        stock_locate=7,
        batch_sequence=batch_sequence,
        first_message_seq=first_message_seq,
        produced_at_ns=1,
    )


def test_a_per_symbol_batch_becomes_a_one_run_bundle_keyed_by_venue_and_symbol() -> None:
    outcome = normalize_record(raw_record(), SOURCE, None, now_ns=5)
    assert outcome.dead_letters == []
    assert outcome.output_key == b"XNAS:MEAT"
    bundle = decode_normalized(outcome.normalized)
    assert [(run.symbol, run.start, run.count) for run in bundle.runs] == [("MEAT", 0, 2)]
    assert (outcome.messages_in, outcome.events_out) == (2, 2)
    assert state_from_tuple(outcome.state)[("XNAS", "MEAT")] == ("2019-12-30", 1, 2)


def test_a_replayed_batch_is_a_duplicate_and_emits_nothing() -> None:
    first = normalize_record(raw_record(), SOURCE, None)
    again = normalize_record(raw_record(), SOURCE, first.state)
    assert again.duplicate and again.normalized is None and again.dead_letters == []
    assert again.state == first.state


def test_a_gap_is_counted_and_the_batch_still_flows() -> None:
    first = normalize_record(raw_record(), SOURCE, None)
    later = normalize_record(raw_record(batch_sequence=3, first_message_seq=10), SOURCE, first.state)
    assert later.normalized is not None
    assert later.gap_messages == 8


def test_garbage_becomes_one_dead_letter_with_the_source_position_and_a_reason() -> None:
    outcome = normalize_record(b"\x00\x01garbage", SOURCE, None, now_ns=99)
    assert outcome.normalized is None and outcome.state is None
    (letter,) = [decode_dead_letter(raw) for raw in outcome.dead_letters]
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("market-data-raw", 3, 42)
    assert letter.key == b"MEAT" and letter.value == b"\x00\x01garbage"
    assert letter.reason and letter.detail


def test_truncated_record_is_dead_lettered_not_raised() -> None:
    good = raw_record()
    for cut in (1, 5, len(good) // 2, len(good) - 1):
        outcome = normalize_record(good[:cut], SOURCE, None)
        assert outcome.normalized is None or outcome.dead_letters, cut
        assert outcome.dead_letters, cut


# ----------------------------------------------------------------------------- bundles

BUNDLE_SOURCE = RecordSource("market-data-raw", 1, 7, 1_577_716_200_000, b"@1/16~44")  # a salted shard key


def segment(symbol: str, locate: int, batch_sequence: int, first_seq: int, refs: list[int]) -> SegmentInput:
    """Adds of 100 shares at 100.0000, one per ref, then nothing else."""
    messages = [encode(AddOrder(locate, 0, T0 + ref, ref, "S", 100, symbol, 1_000_000)) for ref in refs]
    return SegmentInput(symbol, locate, batch_sequence, first_seq, messages)


def bundle_record(*segments: SegmentInput, bundle_sequence: int = 1, payload_suffix: bytes = b"") -> bytes:
    bundle = make_bundle(
        list(segments),
        venue="XNAS",
        trading_date=DAY,
        session="s1",
        partition=1,
        partitions=4,
        bundle_sequence=bundle_sequence,
        produced_at_ns=11,
    )
    if payload_suffix:
        from dataclasses import replace

        bundle = replace(bundle, payloads=bundle.payloads + payload_suffix)
    return encode_bundle(bundle)


def test_a_bundle_becomes_one_normalized_record_with_a_run_per_symbol() -> None:
    record = bundle_record(
        segment("AAA", 1, 1, 0, [1, 2]),
        segment("BBB", 2, 1, 0, [3]),
        segment("CCC", 3, 1, 0, [4, 5, 6]),
    )
    outcome = normalize_record(record, BUNDLE_SOURCE, None, now_ns=5)
    assert outcome.dead_letters == []
    assert outcome.output_key == b"@1/16"  # the raw record's key, without the salt
    bundle = decode_normalized(outcome.normalized)
    assert [(run.symbol, run.start, run.count) for run in bundle.runs] == [
        ("AAA", 0, 2),
        ("BBB", 2, 1),
        ("CCC", 3, 3),
    ]
    # per-symbol seqs restart at each symbol's first_message_seq; refs follow the input
    by_symbol = {
        batch.symbol: (list(batch.columns.views().seq), list(batch.columns.views().order_ref))
        for batch in run_batches(bundle)
    }
    assert by_symbol == {"AAA": ([0, 1], [1, 2]), "BBB": ([0], [3]), "CCC": ([0, 1, 2], [4, 5, 6])}
    assert (bundle.ts_produced, bundle.ts_recv, outcome.messages_in, outcome.events_out) == (11, 5, 6, 6)
    states = state_from_tuple(outcome.state)
    assert {key[1]: (last, following) for key, (_, last, following) in states.items()} == {
        "AAA": (1, 2),
        "BBB": (1, 1),
        "CCC": (1, 3),
    }


def test_in_a_bundle_only_the_segments_already_seen_are_dropped() -> None:
    first = normalize_record(
        bundle_record(segment("AAA", 1, 1, 0, [1, 2]), segment("BBB", 2, 1, 0, [3])), BUNDLE_SOURCE, None
    )
    # AAA's batch 1 again (a re-sent segment), BBB's next batch, a first batch of CCC
    second = normalize_record(
        bundle_record(
            segment("AAA", 1, 1, 0, [1, 2]),
            segment("BBB", 2, 2, 1, [7]),
            segment("CCC", 3, 1, 0, [8]),
            bundle_sequence=2,
        ),
        BUNDLE_SOURCE,
        first.state,
    )
    assert second.duplicates == 1 and not second.duplicate
    bundle = decode_normalized(second.normalized)
    assert [(run.symbol, run.count) for run in bundle.runs] == [("BBB", 1), ("CCC", 1)]
    assert [list(b.columns.views().seq) for b in run_batches(bundle)] == [[1], [0]]
    assert second.messages_in == 4 and second.events_out == 2


def test_a_gap_in_one_segment_is_counted_and_flows() -> None:
    first = normalize_record(bundle_record(segment("AAA", 1, 1, 0, [1])), BUNDLE_SOURCE, None)
    later = normalize_record(bundle_record(segment("AAA", 1, 4, 9, [2])), BUNDLE_SOURCE, first.state)
    assert later.gap_messages == 8
    (run,) = decode_normalized(later.normalized).runs
    assert (run.sequence_status.value, run.gap_batches, run.gap_messages) == ("GAP", 2, 8)


def test_bad_messages_and_trailing_bytes_of_a_bundle_are_dead_letters_and_the_rest_flows() -> None:
    wrong_stock = SegmentInput("BBB", 2, 1, 0, [encode(AddOrder(2, 0, T0, 9, "B", 1, "ZZZ", 1))])
    record = bundle_record(
        segment("AAA", 1, 1, 0, [1]),
        wrong_stock,
        segment("CCC", 3, 1, 0, [4]),
        payload_suffix=b"\x00\x05ABCDE",
    )
    outcome = normalize_record(record, BUNDLE_SOURCE, None)
    reasons = sorted(decode_dead_letter(raw).reason for raw in outcome.dead_letters)
    assert reasons == ["count_mismatch", "symbol_mismatch"]
    bundle = decode_normalized(outcome.normalized)
    assert [run.symbol for run in bundle.runs] == ["AAA", "CCC"]


def test_a_bundle_cut_short_keeps_the_whole_segments_before_the_cut() -> None:
    record = bundle_record(segment("AAA", 1, 1, 0, [1, 2]), segment("BBB", 2, 1, 0, [3, 4]))
    from itchflow.avro.bundle import decode_raw

    raw = decode_raw(record)
    from dataclasses import replace

    cut = encode_bundle(replace(raw, payloads=raw.payloads[: 2 * 38 + 38 + 10]))
    outcome = normalize_record(cut, BUNDLE_SOURCE, None)
    assert [decode_dead_letter(raw).reason for raw in outcome.dead_letters] == ["truncated_payload"]
    bundle = decode_normalized(outcome.normalized)
    assert [(run.symbol, run.count) for run in bundle.runs] == [("AAA", 2), ("BBB", 1)]


def test_executions_refer_to_orders_of_their_own_symbol_only() -> None:
    # E carries no stock field: the segment's locate decides, and a foreign locate is rejected
    foreign = SegmentInput("AAA", 1, 2, 1, [encode(OrderExecuted(2, 0, T0, 1, 10, 77))])
    first = normalize_record(bundle_record(segment("AAA", 1, 1, 0, [1])), BUNDLE_SOURCE, None)
    outcome = normalize_record(bundle_record(foreign), BUNDLE_SOURCE, first.state)
    assert [decode_dead_letter(raw).reason for raw in outcome.dead_letters] == ["locate_mismatch"]
    assert outcome.normalized is None


# ----------------------------------------------------------------------- state per Flink key


def feed_of_bundles(count: int, seed: int = 7) -> list[bytes]:
    """Bundles over 12 symbols: mostly in order, some segments re-sent (duplicates), some gaps."""
    import random

    rng = random.Random(seed)
    symbols = [(f"S{index:02d}", index + 1) for index in range(12)]
    batches = {symbol: 0 for symbol, _ in symbols}
    seqs = {symbol: 0 for symbol, _ in symbols}
    records, ref = [], 0
    for bundle_sequence in range(1, count + 1):
        segments = []
        for symbol, locate in rng.sample(symbols, rng.randint(1, 5)):
            if batches[symbol] and rng.random() < 0.1:  # the last batch of the symbol, re-sent
                batch, first = batches[symbol], seqs[symbol] - 1
            else:
                skip = 2 if rng.random() < 0.05 else 0  # a lost batch of 1 message: a gap
                batch, first = batches[symbol] + 1 + skip, seqs[symbol] + skip
                batches[symbol], seqs[symbol] = batch, first + 1
            ref += 1
            segments.append(segment(symbol, locate, batch, first, [ref]))
        records.append(bundle_record(*segments, bundle_sequence=bundle_sequence))
    return records


def test_the_cached_state_gives_every_record_the_outcome_of_the_whole_state_chain() -> None:
    from itchflow.pipeline.normalize_stage import SequenceCache

    records = feed_of_bundles(300)
    cache, store = SequenceCache(compact_every=16), MemoryKeyedState()
    reference = None
    duplicates = gaps = 0
    for record in records:
        expected = normalize_record(record, BUNDLE_SOURCE, reference, now_ns=1)
        reference = expected.state
        outcome = normalize_record(record, BUNDLE_SOURCE, cache.state("k", store), now_ns=1)
        cache.save("k", store, outcome)
        assert (outcome.normalized, outcome.duplicates, outcome.gap_messages) == (
            expected.normalized,
            expected.duplicates,
            expected.gap_messages,
        )
        duplicates, gaps = duplicates + outcome.duplicates, gaps + outcome.gap_messages
        # a restore at this point (a new operator instance over the same state) sees the same state
        restored = SequenceCache(compact_every=16)
        assert state_from_tuple(restored.state("k", store)) == state_from_tuple(reference)
        assert len(list(store.log())) < 16
    assert duplicates and gaps  # the feed exercised both
    assert cache.loads == 1 and store.value_writes == 300 // 16


def test_a_record_logs_only_the_entries_it_changed() -> None:
    from itchflow.pipeline.normalize_stage import SequenceCache

    cache, store = SequenceCache(), MemoryKeyedState()
    first = normalize_record(
        bundle_record(segment("AAA", 1, 1, 0, [1]), segment("BBB", 2, 1, 0, [2])), BUNDLE_SOURCE, None
    )
    cache.state("k", store)
    cache.save("k", store, first)
    # AAA re-sent (a duplicate: unchanged), CCC new
    second = normalize_record(
        bundle_record(segment("AAA", 1, 1, 0, [1]), segment("CCC", 3, 1, 0, [3]), bundle_sequence=2),
        BUNDLE_SOURCE,
        cache.state("k", store),
    )
    cache.save("k", store, second)
    assert list(store.log()) == [
        {("XNAS", "AAA"): ("2019-12-30", 1, 1), ("XNAS", "BBB"): ("2019-12-30", 1, 1)},
        {("XNAS", "CCC"): ("2019-12-30", 1, 1)},
    ]
    assert store.value() is None  # no compaction yet: nothing but the log was written
    # a record that changes nothing (all duplicates) writes nothing
    again = normalize_record(
        bundle_record(segment("CCC", 3, 1, 0, [3])), BUNDLE_SOURCE, cache.state("k", store)
    )
    cache.save("k", store, again)
    assert again.duplicate and len(list(store.log())) == 2


def test_state_of_the_earlier_layout_loads_and_is_rewritten_as_a_snapshot() -> None:
    from itchflow.pipeline.normalize_stage import SequenceCache

    # earlier code wrote the whole state into the value per record and had no log
    earlier = normalize_record(bundle_record(segment("AAA", 1, 1, 0, [1])), BUNDLE_SOURCE, None).state
    cache, store = SequenceCache(), MemoryKeyedState(earlier)
    again = normalize_record(
        bundle_record(segment("AAA", 1, 1, 0, [1])), BUNDLE_SOURCE, cache.state("k", store)
    )
    assert again.duplicate
    # a version-1 state (one symbol's tuple, from when the job was keyed by symbol, named by the
    # producer's session): it goes on in the record's day, and the next change rewrites the snapshot
    # in the current form instead of logging on top of it
    old = SequenceCache()
    store = MemoryKeyedState((1, "s1", 1, 1))
    outcome = normalize_record(
        raw_record(batch_sequence=2, first_message_seq=1), SOURCE, old.state("k", store)
    )
    assert outcome.gap_messages == 0 and outcome.normalized is not None
    old.save("k", store, outcome)
    assert list(store.log()) == [] and state_from_tuple(store.value()) == {
        ("XNAS", "MEAT"): ("2019-12-30", 2, 3)
    }


def test_keys_evicted_from_the_cache_reload_their_own_state() -> None:
    from itchflow.pipeline.normalize_stage import SequenceCache

    cache = SequenceCache(compact_every=4, max_keys=1)
    stores = {"a": MemoryKeyedState(), "b": MemoryKeyedState()}
    reference: dict[str, tuple | None] = {"a": None, "b": None}
    for index, record in enumerate(feed_of_bundles(40, seed=3)):
        key = "ab"[index % 2]
        expected = normalize_record(record, BUNDLE_SOURCE, reference[key], now_ns=1)
        reference[key] = expected.state
        outcome = normalize_record(record, BUNDLE_SOURCE, cache.state(key, stores[key]), now_ns=1)
        cache.save(key, stores[key], outcome)
        assert outcome.normalized == expected.normalized
    assert cache.loads == 40
    for key, store in stores.items():
        assert state_from_tuple(SequenceCache().state(key, store)) == state_from_tuple(reference[key])
