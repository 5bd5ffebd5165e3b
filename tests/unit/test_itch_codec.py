"""The ITCH 5.0 codec: hand-worked messages from spec bytes, errors, and property-based round trips."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.itch.codec import (
    ItchDecodeError,
    ItchEncodeError,
    decode,
    decode_at,
    decode_many,
    encode,
    encode_framed,
    message_length,
)
from itchflow.itch.messages import (
    MESSAGE_TYPES,
    AddOrder,
    AddOrderMPID,
    CrossTrade,
    OrderReplace,
    StockDirectory,
    SystemEvent,
)
from tests.unit.test_itch_spec import SPEC_LENGTHS, spec_fields, width

T0930 = 34_200_000_000_000  # 09:30:00 in nanoseconds since midnight, 0x1F1ACED9F000


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- hand-worked examples -------------------------------------------------------------------------------


def test_system_event_start_of_market_hours() -> None:
    payload = hexbytes("53 0000 0000 1f1aced9f000 51")  # 'S', locate 0, tracking 0, 09:30:00, 'Q'
    assert decode(payload) == SystemEvent(stock_locate=0, tracking_number=0, timestamp=T0930, event_code="Q")
    assert encode(SystemEvent(0, 0, T0930, "Q")) == payload


def test_add_order_mpid_from_a_real_capture() -> None:
    # From pcap/AddOrderWithMPID.pcap: CASY sell 100 @ 255.5200 attributed to FLTU, locate 1738.
    payload = hexbytes(
        "46 06ca 0000 1f1aced99936 000000000120be75 53 00000064 4341535920202020 0026fd40 464c5455"
    )
    assert decode(payload) == AddOrderMPID(
        stock_locate=1738,
        tracking_number=0,
        timestamp=34_199_999_977_782,  # 09:29:59.999977782
        order_reference_number=18_923_125,
        buy_sell_indicator="S",
        shares=100,
        stock="CASY",
        price=2_555_200,
        attribution="FLTU",
    )
    assert encode(decode(payload)) == payload


def test_order_replace_from_the_omi_sample() -> None:
    payload = hexbytes("55 1db3 0000 1f1aced771e9 0000000000e6897f 000000000145f2c7 00000064 001036c8")
    message = decode(payload)
    assert message == OrderReplace(7603, 0, 0x1F1ACED771E9, 15_108_479, 21_361_351, 100, 1_062_600)


def test_add_order_built_field_by_field() -> None:
    message = AddOrder(
        stock_locate=2,
        tracking_number=7,
        timestamp=T0930 + 123_456,
        order_reference_number=1_004,
        buy_sell_indicator="B",
        shares=300,
        stock="MEAT",
        price=1_000_500,  # 100.0500
    )
    expected = hexbytes("41 0002 0007 1f1acedbd240 00000000000003ec 42 0000012c 4d45415420202020 000f4434")
    assert encode(message) == expected
    assert encode_framed(message) == b"\x00\x24" + expected  # 36-byte length prefix


def test_stock_directory_keeps_one_byte_spaces_and_strips_padded_alphas() -> None:
    payload = (
        hexbytes("52 0001 0000 1f1aced9f000")
        + b"MEAT    "
        + b"QN"
        + (100).to_bytes(4, "big")
        + b"NC"
        + b"Z "  # issue sub-type, space padded
        + b"PN 1N"  # authenticity, short sale threshold, IPO flag ' ', LULD tier '1', ETP flag
        + (0).to_bytes(4, "big")
        + b"N"
    )
    message = decode(payload)
    assert isinstance(message, StockDirectory)
    assert (message.stock, message.issue_sub_type, message.ipo_flag, message.round_lot_size) == (
        "MEAT",
        "Z",
        " ",
        100,
    )
    assert encode(message) == payload


def test_cross_trade_shares_are_eight_bytes() -> None:
    shares = 5_000_000_000  # does not fit in 4 bytes
    message = CrossTrade(1, 0, T0930, shares, "QQQ", 3_900_000, 77, "O")
    payload = encode(message)
    assert payload[11:19] == shares.to_bytes(8, "big")
    assert decode(payload) == message


def test_text_fields_with_other_padding_still_round_trip() -> None:
    # NUL padding is not what the spec says, but the bytes must survive unchanged.
    payload = hexbytes("59 0001 0000 1f1aced9f000") + b"AB\x00\x00    " + b"1"
    message = decode(payload)
    assert message.stock == "AB\x00\x00"  # type: ignore[union-attr]
    assert encode(message) == payload


def test_message_length_by_letter_or_byte() -> None:
    assert message_length("A") == 36
    assert message_length(ord("Q")) == 40
    assert message_length("Z") == 0
    assert message_length(999) == 0


# --- decode errors ----------------------------------------------------------------------------------------

VALID_DELETE = hexbytes("44 0001 0000 1f1aced9f000 00000000000003ec")


@pytest.mark.parametrize(
    ("payload", "offset", "match"),
    [
        (b"", 0, "empty"),
        (b"Z" + bytes(18), 0, "unknown message type 'Z'"),
        (b"\x00" * 19, 0, "unknown message type 0x00"),
        (VALID_DELETE[:-1], 0, "truncated message: type 'D' needs 19 bytes, only 18"),
        (VALID_DELETE + b"\x00", 0, "bad length: type 'D' is 19 bytes, payload has 20"),
        (b"xx" + VALID_DELETE[:10], 2, "at byte offset 2: truncated"),
    ],
)
def test_decode_errors_name_the_offset_and_the_problem(payload: bytes, offset: int, match: str) -> None:
    with pytest.raises(ItchDecodeError, match=match) as info:
        decode(payload, offset)
    assert info.value.offset == offset
    assert isinstance(info.value, ValueError)


def test_decode_at_ignores_what_follows_and_decode_accepts_memoryview_and_offset() -> None:
    buffer = b"junk" + VALID_DELETE + b"more"
    assert decode_at(buffer, 4) == decode(VALID_DELETE)
    assert decode(memoryview(b"junk" + VALID_DELETE), 4) == decode(VALID_DELETE)
    with pytest.raises(ItchDecodeError, match="unknown"):
        decode_at(buffer, 0)


def test_decode_many_reports_the_first_bad_record() -> None:
    record = b"\x00\x13" + VALID_DELETE
    assert len(decode_many(record * 3)) == 3
    with pytest.raises(ItchDecodeError, match="at byte offset 42: bad length: prefix says 20 bytes") as info:
        decode_many(record * 2 + b"\x00\x14" + VALID_DELETE)
    assert info.value.offset == 42
    with pytest.raises(ItchDecodeError, match="at byte offset 23: truncated message"):
        decode_many(record + record[:-1])
    with pytest.raises(ItchDecodeError, match="prefixes are all 0"):
        decode_many(b"\x00\x00" + VALID_DELETE + record)  # zero-prefix stream with a nonzero prefix


# --- encode errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (SystemEvent(0, 0, 1 << 48, "O"), "timestamp"),
        (SystemEvent(0, 0, -1, "O"), "timestamp"),
        (SystemEvent(70_000, 0, 0, "O"), "stock_locate=70000"),
        (SystemEvent(0, 0, 0, "OO"), "event_code='OO' is not one Latin-1 character"),
        (SystemEvent(0, 0, 0, "\u20ac"), "event_code"),
        (AddOrder(1, 0, 0, 1, "B", 100, "TOOLONGSYM", 1), "stock: 'TOOLONGSYM' is longer than 8 bytes"),
        (AddOrder(1, 0, 0, 1, "B", -5, "A", 1), "shares=-5"),
        (AddOrder(1, 0, 0, 1 << 64, "B", 5, "A", 1), "order_reference_number"),
    ],
)
def test_encode_rejects_values_that_do_not_fit_and_names_the_field(message: object, match: str) -> None:
    with pytest.raises(ItchEncodeError, match=match):
        encode(message)  # type: ignore[arg-type]


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(ItchEncodeError, match="not an ITCH 5.0 message"):
        encode("A")  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------------------

latin1_char = st.characters(min_codepoint=0, max_codepoint=255)


def alpha(size: int) -> st.SearchStrategy[str]:
    """Values as decoded: up to ``size`` Latin-1 characters without trailing spaces."""
    return st.text(latin1_char, max_size=size).map(lambda s: s.rstrip(" "))


def field_strategy(kind: str) -> st.SearchStrategy[object]:
    if kind.startswith("u"):
        return st.integers(min_value=0, max_value=(1 << (8 * width(kind))) - 1)
    if kind == "c":
        return latin1_char
    return alpha(width(kind))


@st.composite
def messages(draw: st.DrawFn) -> object:
    letter = draw(st.sampled_from(sorted(MESSAGE_TYPES)))
    values = {name: draw(field_strategy(kind)) for name, kind in spec_fields(letter)}
    return MESSAGE_TYPES[letter](**values)


@settings(max_examples=400, deadline=None)
@given(messages())
def test_random_valid_messages_round_trip(message: object) -> None:
    payload = encode(message)  # type: ignore[arg-type]
    assert len(payload) == SPEC_LENGTHS[message.message_type]  # type: ignore[attr-defined]
    decoded = decode(payload)
    assert decoded == message
    assert encode(decoded) == payload
    assert dataclasses.replace(decoded) == message  # frozen dataclass behaviour intact


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.integers(min_value=0, max_value=3))
def test_random_bytes_decode_or_raise_itch_decode_error(data: bytes, offset: int) -> None:
    try:
        message = decode(data, offset)
    except ItchDecodeError as exc:
        assert exc.offset == offset
    else:
        assert encode(message) == data[offset:]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_buffers_in_decode_many_consume_everything_or_raise(data: bytes) -> None:
    try:
        decoded = decode_many(data)
    except ItchDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        zero = data[:2] == b"\x00\x00"
        framed = b"".join(
            (b"\x00\x00" if zero else len(p).to_bytes(2, "big")) + p for p in map(encode, decoded)
        )
        assert framed == data  # nothing skipped silently


@settings(max_examples=200, deadline=None)
@given(messages(), st.data())
def test_every_truncation_is_an_error(message: object, data: st.DataObject) -> None:
    payload = encode(message)  # type: ignore[arg-type]
    cut = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    with pytest.raises(ItchDecodeError):
        decode(payload[:cut])
    framed = encode_framed(message)  # type: ignore[arg-type]
    with pytest.raises(ItchDecodeError):
        decode_many(framed + framed[: cut + 1])


def test_decoded_messages_are_plain_frozen_instances_of_their_class() -> None:
    message = decode(
        hexbytes("41 0002 0007 1f1acedbd240 00000000000003ec 42 0000012c 4d45415420202020 000f4434")
    )
    assert type(message) is AddOrder
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.price = 1  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(message)) == message
    assert hash(message) == hash(AddOrder(2, 7, T0930 + 123_456, 1_004, "B", 300, "MEAT", 1_000_500))
    assert not hasattr(message, "__dict__")


@pytest.mark.parametrize("letter", sorted(SPEC_LENGTHS))
def test_the_fallback_slot_filling_decoder_gives_the_same_messages(letter: str) -> None:
    from itchflow.itch.codec import _compile

    payload = letter.encode() + bytes(range(1, SPEC_LENGTHS[letter]))
    slot_decoder = _compile(letter, retype=False)[2]
    assert slot_decoder.__defaults__ is not None and "_twin" not in slot_decoder.__code__.co_varnames
    assert slot_decoder(payload, 0) == decode(payload)
    assert type(slot_decoder(payload, 0)) is MESSAGE_TYPES[letter]


def test_decode_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(ItchDecodeError(42, "unknown message type 'Z'")))
    assert (error.offset, error.reason, str(error)) == (
        42,
        "unknown message type 'Z'",
        "at byte offset 42: unknown message type 'Z'",
    )
