"""Every schema parses and follows the rules; the per-type ITCH records mirror the messages exactly."""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.avro import (
    InvalidReason,
    InvalidRecord,
    SchemaRegistry,
    decode_message,
    default_registry,
    encode_message,
    message_to_record,
    record_name,
    record_to_message,
    schemas_dir,
)
from itchflow.avro.evolution import registry_violations, static_violations
from itchflow.itch.codec import decode, decode_many, encode
from itchflow.itch.messages import MESSAGE_LENGTHS, MESSAGE_TYPES, Message

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "itch"
REGISTRY = default_registry()

WIRE_BYTES = {"u16": 2, "u32": 4, "u48": 6, "u64": 8, "price4": 4, "price8": 8, "char": 1}
WIRE_LIMIT = {
    "u16": 1 << 16,
    "u32": 1 << 32,
    "u48": 1 << 48,
    "u64": 1 << 64,
    "price4": 1 << 32,
    "price8": 1 << 64,
}


def sample_messages() -> list[Message]:
    """Every message of the real samples that the codec's standard framing reads."""
    messages = decode_many(gzip.decompress((SAMPLES / "RITCH_ex20101224.TEST_ITCH_50.gz").read_bytes()))
    messages += decode_many((SAMPLES / "omi_Nasdaq_itch50_sample.bin").read_bytes())
    messages += decode_many((SAMPLES / "meatpy_sample.itch50").read_bytes())
    return messages


def itch_fields(message_class: type[Message]) -> list[dict]:
    return REGISTRY.current(record_name(message_class)).schema["fields"]


def wire_width(itch_type: str) -> int:
    match = re.fullmatch(r"alpha\((\d+)\)", itch_type)
    return int(match.group(1)) if match else WIRE_BYTES[itch_type]


def test_schemas_dir_is_the_repository_schemas_folder() -> None:
    assert schemas_dir() == Path(__file__).resolve().parents[2] / "schemas"


def test_schemas_dir_follows_the_environment_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ITCHFLOW_SCHEMAS_DIR", str(tmp_path))
    assert schemas_dir() == tmp_path


def test_every_topic_schema_is_present() -> None:
    names = set(REGISTRY.names())
    assert {
        "itchflow.itch.v1.ItchBatch",
        "itchflow.normalized.v1.NormalizedBatch",
        "itchflow.deadletter.v1.DeadLetter",
    } <= names
    assert {record_name(cls) for cls in MESSAGE_TYPES.values()} <= names


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_schema_parses_with_fastavro_and_follows_the_static_rules(name: str) -> None:
    entry = REGISTRY.current(name)
    fastavro.parse_schema(entry.schema, named_schemas={})
    assert static_violations(entry.schema) == []
    assert len(entry.fingerprint) == 8 and entry.header == b"\xc3\x01" + entry.fingerprint


def test_every_current_schema_is_published_and_its_history_obeys_the_evolution_rules() -> None:
    assert registry_violations(REGISTRY) == []


@pytest.mark.parametrize("letter", sorted(MESSAGE_TYPES))
def test_per_type_record_mirrors_the_message_dataclass_and_the_wire_layout(letter: str) -> None:
    message_class = MESSAGE_TYPES[letter]
    fields = itch_fields(message_class)
    assert [f["name"] for f in fields] == [f.name for f in dataclasses.fields(message_class)]
    assert 1 + sum(wire_width(f["itch_type"]) for f in fields) == MESSAGE_LENGTHS[letter]
    for field in fields:
        expected = (
            "int" if field["itch_type"] == "u16" else "long" if field["itch_type"] in WIRE_LIMIT else "string"
        )
        assert field["type"] == expected, field["name"]


def test_unsigned_64_bit_values_survive_as_signed_longs() -> None:
    message_class = MESSAGE_TYPES["A"]
    message = message_class(1, 2, 3, (1 << 64) - 1, "B", (1 << 32) - 1, "ZZZZ", 5)
    record = message_to_record(message)
    assert record["order_reference_number"] == -1
    assert record_to_message(record_name(message_class), record) == message
    assert decode_message(encode_message(message)) == message


def test_every_real_sample_message_round_trips_through_its_per_type_record() -> None:
    messages = sample_messages()
    assert len({type(m) for m in messages}) >= 16
    for message in messages:
        assert decode_message(encode_message(message)) == message


def _value(itch_type: str) -> st.SearchStrategy[object]:
    if itch_type in WIRE_LIMIT:
        return st.integers(0, WIRE_LIMIT[itch_type] - 1)
    latin1 = st.characters(min_codepoint=0, max_codepoint=255)
    if itch_type == "char":
        return latin1
    width = wire_width(itch_type)
    return st.text(latin1, max_size=width).map(lambda text: text.rstrip(" "))


@st.composite
def any_message(draw: st.DrawFn) -> Message:
    message_class = draw(st.sampled_from(sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.__name__)))
    return message_class(*(draw(_value(field["itch_type"])) for field in itch_fields(message_class)))


@settings(max_examples=300, deadline=None)
@given(any_message())
def test_any_message_round_trips_through_avro_and_the_codec_unchanged(message: Message) -> None:
    assert decode(encode(message)) == message  # the strategy draws only valid ITCH messages
    assert decode_message(encode_message(message)) == message


def test_decode_message_refuses_a_batch_record() -> None:
    letter = REGISTRY.encode(
        "itchflow.deadletter.v1.DeadLetter",
        {
            "source_topic": "t",
            "source_partition": 0,
            "source_offset": 0,
            "source_timestamp_ms": None,
            "key": None,
            "value": None,
            "message_index": None,
            "reason": "r",
            "detail": "d",
            "error_class": "E",
            "job": "j",
            "ts_failed": 0,
        },
    )
    with pytest.raises(InvalidRecord) as caught:
        decode_message(letter)
    assert caught.value.reason is InvalidReason.WRONG_SCHEMA


def test_a_schema_referring_to_an_unknown_type_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.avsc").write_text(
        '{"type": "record", "name": "A", "namespace": "itchflow.t.v1", "fields": [{"name": "b", "type": "Missing"}]}'
    )
    with pytest.raises(Exception, match="Missing"):
        SchemaRegistry(tmp_path).current("itchflow.t.v1.A")
