"""An independent restatement of the ITCH 5.0 layouts, and the codec checked against it.

The table below is typed in from the specification ("Nasdaq TotalView-ITCH 5.0", 2015), not taken from
``itchflow.itch.codec``; ``parse_by_spec`` slices bytes with it. Other ``test_itch_*`` modules import
``SPEC_LENGTHS``, ``SPEC_FIELDS`` and ``parse_by_spec`` from here.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.itch.codec import decode, encode
from itchflow.itch.messages import MESSAGE_LENGTHS, MESSAGE_TYPES

# From PROVENANCE.md / the specification: payload length including the type byte.
SPEC_LENGTHS = dict(
    S=12, R=39, H=25, Y=20, L=26, V=35, W=12, K=28, J=35, h=21, A=36, F=40,
    E=31, C=36, X=23, D=19, U=35, P=44, Q=40, B=19, I=50, N=20, O=48,
)  # fmt: skip

# Body fields after the common header (u2 stock_locate, u2 tracking_number, u6 timestamp).
# "uN": N-byte unsigned big-endian integer; "c": one-byte alpha; "aN": N-byte space-padded alpha.
SPEC_FIELDS: dict[str, str] = {
    "S": "c:event_code",
    "R": "a8:stock c:market_category c:financial_status_indicator u4:round_lot_size c:round_lots_only "
    "c:issue_classification a2:issue_sub_type c:authenticity c:short_sale_threshold_indicator c:ipo_flag "
    "c:luld_reference_price_tier c:etp_flag u4:etp_leverage_factor c:inverse_indicator",
    "H": "a8:stock c:trading_state c:reserved a4:reason",
    "Y": "a8:stock c:reg_sho_action",
    "L": "a4:mpid a8:stock c:primary_market_maker c:market_maker_mode c:market_participant_state",
    "V": "u8:level_1 u8:level_2 u8:level_3",
    "W": "c:breached_level",
    "K": "a8:stock u4:ipo_quotation_release_time c:ipo_quotation_release_qualifier u4:ipo_price",
    "J": "a8:stock u4:auction_collar_reference_price u4:upper_auction_collar_price "
    "u4:lower_auction_collar_price u4:auction_collar_extension",
    "h": "a8:stock c:market_code c:operational_halt_action",
    "A": "u8:order_reference_number c:buy_sell_indicator u4:shares a8:stock u4:price",
    "F": "u8:order_reference_number c:buy_sell_indicator u4:shares a8:stock u4:price a4:attribution",
    "E": "u8:order_reference_number u4:executed_shares u8:match_number",
    "C": "u8:order_reference_number u4:executed_shares u8:match_number c:printable u4:execution_price",
    "X": "u8:order_reference_number u4:cancelled_shares",
    "D": "u8:order_reference_number",
    "U": "u8:original_order_reference_number u8:new_order_reference_number u4:shares u4:price",
    "P": "u8:order_reference_number c:buy_sell_indicator u4:shares a8:stock u4:price u8:match_number",
    "Q": "u8:shares a8:stock u4:cross_price u8:match_number c:cross_type",
    "B": "u8:match_number",
    "I": "u8:paired_shares u8:imbalance_shares c:imbalance_direction a8:stock u4:far_price u4:near_price "
    "u4:current_reference_price c:cross_type c:price_variation_indicator",
    "N": "a8:stock c:interest_flag",
    "O": "a8:stock c:open_eligibility_status u4:minimum_allowable_price u4:maximum_allowable_price "
    "u4:near_execution_price u8:near_execution_time u4:lower_price_range_collar u4:upper_price_range_collar",
}

HEADER = (("stock_locate", "u2"), ("tracking_number", "u2"), ("timestamp", "u6"))


def spec_fields(type_letter: str) -> list[tuple[str, str]]:
    """``[(name, kind), ...]`` of a message type, header included."""
    body = [(name, kind) for kind, name in (item.split(":") for item in SPEC_FIELDS[type_letter].split())]
    return [*HEADER, *body]


def width(kind: str) -> int:
    return 1 if kind == "c" else int(kind[1:])


def parse_by_spec(payload: bytes) -> dict[str, object]:
    """Field values of a payload, sliced by the table above (no codec involved)."""
    type_letter = chr(payload[0])
    values: dict[str, object] = {}
    position = 1
    for name, kind in spec_fields(type_letter):
        raw = payload[position : position + width(kind)]
        if kind.startswith("u"):
            values[name] = int.from_bytes(raw, "big")
        elif kind == "c":
            values[name] = raw.decode("latin-1")
        else:
            values[name] = raw.decode("latin-1").rstrip(" ")
        position += width(kind)
    assert position == len(payload)
    return values


def test_table_lengths_match_the_specification_lengths() -> None:
    for letter, length in SPEC_LENGTHS.items():
        assert 1 + sum(width(kind) for _, kind in spec_fields(letter)) == length, letter


def test_every_type_has_a_class_with_the_spec_field_names_in_wire_order() -> None:
    assert set(MESSAGE_TYPES) == set(SPEC_LENGTHS)
    for letter, cls in MESSAGE_TYPES.items():
        assert cls.message_type == letter
        assert [f.name for f in dataclasses.fields(cls)] == [name for name, _ in spec_fields(letter)]
        assert MESSAGE_LENGTHS[letter] == SPEC_LENGTHS[letter]


def test_message_classes_are_frozen_and_slotted() -> None:
    for cls in MESSAGE_TYPES.values():
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen
        assert hasattr(cls, "__slots__")


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Any bytes of the right length behind a valid type byte: every one must decode."""
    letter = draw(st.sampled_from(sorted(SPEC_LENGTHS)))
    return letter.encode() + draw(
        st.binary(min_size=SPEC_LENGTHS[letter] - 1, max_size=SPEC_LENGTHS[letter] - 1)
    )


@settings(max_examples=300, deadline=None)
@given(payloads())
def test_decoded_fields_equal_the_spec_slicing_and_encode_restores_the_bytes(payload: bytes) -> None:
    message = decode(payload)
    assert message.message_type == chr(payload[0])
    assert dataclasses.asdict(message) == parse_by_spec(payload)
    assert encode(message) == payload
