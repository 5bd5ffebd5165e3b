"""The raw bundle envelope, the single-object wire format, dead letters, and bad bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.avro import (
    HEADER_SIZE,
    InvalidReason,
    InvalidRecord,
    dead_letter_for,
    decode_dead_letter,
    default_registry,
    encode_dead_letter,
    iter_payloads,
    pack_payloads,
)
from itchflow.avro.bundle import ItchBundle, SegmentInput, decode_raw, encode_bundle, make_bundle
from itchflow.itch.codec import decode, decode_many, encode

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "itch"
TRADING_DATE = date(2019, 12, 30)
T_PRODUCED = 1_577_716_200_000_000_000  # 2019-12-30 14:30:00 UTC
EXAMPLE_MESSAGES = decode_many((SAMPLES / "meatpy_sample.itch50").read_bytes())


def payloads_by_locate() -> dict[int, list[bytes]]:
    """The real BX sample's message bytes, grouped per stock locate in feed order."""
    data = gzip.decompress((SAMPLES / "RITCH_ex20101224.TEST_ITCH_50.gz").read_bytes())
    groups: dict[int, list[bytes]] = defaultdict(list)
    for message in decode_many(data):
        groups[message.stock_locate].append(encode(message))
    return groups


def bundle_of(
    payloads: list[bytes], *, symbol: str = "BOB", locate: int = 2, sequence: int = 1
) -> ItchBundle:
    """A bundle of one segment: ``payloads`` of one symbol."""
    return make_bundle(
        [SegmentInput(symbol, locate, sequence, 0, payloads)],
        venue="XBOS",
        trading_date=TRADING_DATE,
        session="XBOS-2019-12-30-test",
        partition=0,
        partitions=1,
        bundle_sequence=sequence,
        produced_at_ns=T_PRODUCED,
    )


@pytest.fixture(scope="module")
def bob() -> list[bytes]:
    return payloads_by_locate()[2][:512]


def test_envelope_round_trip_keeps_every_payload_byte_identical(bob: list[bytes]) -> None:
    bundle = bundle_of(bob)
    decoded = decode_raw(encode_bundle(bundle))
    assert decoded == bundle
    assert list(iter_payloads(decoded.payloads)) == bob
    (segment,) = decoded.segments
    assert segment.message_count == 512
    assert segment.first_timestamp == decode(bob[0]).timestamp
    assert segment.last_timestamp == decode(bob[-1]).timestamp


def test_every_symbol_of_the_sample_round_trips_in_batches_of_512() -> None:
    for locate, payloads in payloads_by_locate().items():
        for sequence, start in enumerate(range(0, len(payloads), 512), start=1):
            chunk = payloads[start : start + 512]
            bundle = bundle_of(chunk, symbol="" if locate == 0 else "X", locate=locate, sequence=sequence)
            assert list(iter_payloads(decode_raw(encode_bundle(bundle)).payloads)) == chunk


def test_values_start_with_the_single_object_header_of_the_current_schema(bob: list[bytes]) -> None:
    data = encode_bundle(bundle_of(bob[:3]))
    assert data[:HEADER_SIZE] == default_registry().current("itchflow.itch.v1.ItchBundle").header


def test_pack_payloads_uses_two_byte_big_endian_lengths() -> None:
    assert pack_payloads([b"ab", b"c"]) == b"\x00\x02ab\x00\x01c"
    with pytest.raises(ValueError):
        pack_payloads([b""])


def test_iter_payloads_yields_the_good_messages_then_reports_the_truncation() -> None:
    packed = pack_payloads([b"abc", b"defg"])
    seen = []
    with pytest.raises(InvalidRecord) as caught:
        for payload in iter_payloads(packed[:-1]):
            seen.append(payload)
    assert seen == [b"abc"]
    assert caught.value.reason is InvalidReason.TRUNCATED_PAYLOAD
    assert caught.value.message_index == 1


def test_an_envelope_with_impossible_counters_is_a_bad_envelope(bob: list[bytes]) -> None:
    bundle = bundle_of(bob[:2])
    (segment,) = bundle.segments
    for impossible in (
        dataclasses.replace(bundle, bundle_sequence=0),
        dataclasses.replace(bundle, partition=1),
        dataclasses.replace(bundle, segments=(dataclasses.replace(segment, batch_sequence=0),)),
        dataclasses.replace(bundle, segments=(dataclasses.replace(segment, message_count=0),)),
    ):
        with pytest.raises(InvalidRecord) as caught:
            decode_raw(encode_bundle(impossible))
        assert caught.value.reason is InvalidReason.BAD_ENVELOPE


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: b"", InvalidReason.EMPTY),
        (lambda data: data[:9], InvalidReason.EMPTY),
        (lambda data: b"\x00\x00\x00\x00\x01" + data[5:], InvalidReason.BAD_MAGIC),  # Confluent framing
        (lambda data: data[:2] + bytes(8) + data[10:], InvalidReason.UNKNOWN_SCHEMA),
        (lambda data: data[:-1], InvalidReason.MALFORMED_AVRO),
        (lambda data: data[: len(data) // 2], InvalidReason.MALFORMED_AVRO),
        (lambda data: data + b"\x00", InvalidReason.TRAILING_BYTES),
    ],
    ids=["empty", "short", "confluent", "unknown-fingerprint", "last-byte-cut", "half", "trailing"],
)
def test_damaged_values_give_a_typed_reason(bob: list[bytes], mangle, reason: InvalidReason) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_raw(mangle(encode_bundle(bundle_of(bob[:20]))))
    assert caught.value.reason is reason


def test_a_value_of_another_topic_is_the_wrong_schema() -> None:
    letter = dead_letter_for(
        InvalidRecord(InvalidReason.BAD_MAGIC, "x"),
        source_topic="market-data-raw",
        source_partition=0,
        source_offset=0,
        key=None,
        value=b"",
        job="normalize",
        ts_failed=0,
    )
    with pytest.raises(InvalidRecord) as caught:
        decode_raw(encode_dead_letter(letter))
    assert caught.value.reason is InvalidReason.WRONG_SCHEMA


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_invalid_record(garbage: bytes) -> None:
    with pytest.raises(InvalidRecord):
        decode_raw(garbage)


@settings(max_examples=400, deadline=None)
@given(cut=st.integers(0, 400), flip=st.integers(0, 400), byte=st.integers(0, 255))
def test_truncated_or_corrupted_bodies_never_raise_anything_but_invalid_record(
    cut: int, flip: int, byte: int
) -> None:
    data = bytearray(encode_bundle(bundle_of([encode(m) for m in EXAMPLE_MESSAGES])))
    position = HEADER_SIZE + flip % (len(data) - HEADER_SIZE)
    data[position] = byte
    data = data[: max(HEADER_SIZE, len(data) - cut % len(data))]
    # a typed reason is what we want; a flipped byte inside the payloads may also pass unnoticed here
    # (the normalizer checks the ITCH framing)
    with contextlib.suppress(InvalidRecord):
        decode_raw(bytes(data))


def test_dead_letter_round_trip_carries_the_failing_message_of_a_batch() -> None:
    error = InvalidRecord(InvalidReason.UNKNOWN_MESSAGE_TYPE, "type 0x7a", message_index=7, payload=b"z123")
    letter = dead_letter_for(
        error,
        source_topic="market-data-raw",
        source_partition=3,
        source_offset=42,
        key=b"BOB",
        value=b"whole record",
        job="normalize",
        ts_failed=T_PRODUCED,
        source_timestamp_ms=1_577_716_200_000,
    )
    assert (letter.value, letter.message_index, letter.reason) == (b"z123", 7, "unknown_message_type")
    assert letter.error_class == "InvalidRecord"
    assert decode_dead_letter(encode_dead_letter(letter)) == letter


def test_dead_letter_for_a_whole_record_keeps_its_bytes_and_the_cause_class() -> None:
    error = InvalidRecord(InvalidReason.MALFORMED_AVRO, "EOFError", cause_class="EOFError")
    letter = dead_letter_for(
        error,
        source_topic="t",
        source_partition=0,
        source_offset=1,
        key=None,
        value=b"\xc3\x01junk",
        job="normalize",
        ts_failed=1,
    )
    assert (letter.value, letter.message_index, letter.error_class) == (b"\xc3\x01junk", None, "EOFError")
    unexpected = dead_letter_for(
        KeyError("boom"),
        source_topic="t",
        source_partition=0,
        source_offset=1,
        key=None,
        value=b"v",
        job="j",
        ts_failed=1,
    )
    assert (unexpected.reason, unexpected.error_class) == ("internal_error", "KeyError")
