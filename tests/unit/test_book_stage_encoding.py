"""The encoder fast paths the order-book stage uses: per-stream XADD templates and fixed-width RowBinary."""

from __future__ import annotations

import pytest

from itchflow.sinks.resp import IntStreamEncoder, xadd
from itchflow.sinks.rowbinary import RowBinaryEncoder, encode_string, fixed_width_struct
from tests.unit.book_stage_support import parse_resp

FIELDS = ("bid_px", "bid_sz", "seq")


def test_stream_entry_is_the_xadd_command_spelled_out() -> None:
    encoder = IntStreamEncoder("p:tob-stream:XNAS:AB", FIELDS, maxlen=500)

    command = encoder.encode(1577716200123, 42, (1000500, 7, 42))

    assert parse_resp(command) == [
        [
            "XADD",
            "p:tob-stream:XNAS:AB",
            "MAXLEN",
            "~",
            "500",
            "1577716200123-42",
            "bid_px",
            "1000500",
            "bid_sz",
            "7",
            "seq",
            "42",
        ]
    ]


def test_stream_entry_without_trimming_and_with_every_value_length() -> None:
    encoder = IntStreamEncoder("k", ("v",))
    for value in (0, -1, 9, 10, 2**63 - 1, -(2**63), 2**64 - 1):
        for _ in range(2):  # the second time through the cached template
            assert parse_resp(encoder.encode(1, 2, (value,))) == [["XADD", "k", "1-2", "v", str(value)]]
            assert encoder.encode(1, 2, (value,)) == xadd("k", "1-2", [("v", value)])


def test_stream_encoder_escapes_percent_signs_in_names() -> None:
    encoder = IntStreamEncoder("100%:stream", ("%d",), maxlen=1)

    assert parse_resp(encoder.encode(3, 4, (5,))) == [
        ["XADD", "100%:stream", "MAXLEN", "~", "1", "3-4", "%d", "5"]
    ]


def test_stream_encoder_refuses_a_wrong_number_of_values_and_no_fields() -> None:
    encoder = IntStreamEncoder("k", FIELDS)
    with pytest.raises((ValueError, TypeError)):
        encoder.encode(1, 1, (1, 2))
    with pytest.raises(ValueError):
        IntStreamEncoder("k", ())


def test_fixed_width_struct_packs_like_the_generic_encoder() -> None:
    types = ["UInt64", "DateTime64(9, 'UTC')", "Int64", "UInt32", "UInt8"]
    values = (2**64 - 1, 1_577_716_200_123_456_789, -5, 2**32 - 1, 1)
    generic = RowBinaryEncoder([(f"c{i}", column_type) for i, column_type in enumerate(types)])

    assert fixed_width_struct(types).pack(*values) == generic.encode([values])
    assert fixed_width_struct(types).size == 8 + 8 + 8 + 4 + 1


def test_fixed_width_struct_refuses_variable_width_types() -> None:
    with pytest.raises(ValueError, match="fixed-width"):
        fixed_width_struct(["UInt64", "String"])


@pytest.mark.parametrize(
    ("text", "encoded"), [("", b"\x00"), ("XNAS", b"\x04XNAS"), ("é" * 64, b"\x80\x01" + "é".encode() * 64)]
)
def test_encode_string_is_leb128_length_then_utf8(text: str, encoded: bytes) -> None:
    assert encode_string(text) == encoded
