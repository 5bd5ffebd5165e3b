"""Normalization: event model, exact event time, columns round trip, bad input as typed reasons."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
from collections import defaultdict
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.avro import InvalidReason, InvalidRecord, pack_payloads
from itchflow.avro.bundle import ItchBundle, SegmentInput, make_bundle
from itchflow.avro.normalized import decode_normalized, encode_normalized_bundle
from itchflow.itch import messages as itch
from itchflow.itch.codec import decode_many, encode
from itchflow.normalize import (
    AuxiliaryMessage,
    BrokenTrade,
    CrossTrade,
    EventKind,
    NormalizedEvent,
    OperationalHalt,
    OrderAdded,
    OrderCancelled,
    OrderDeleted,
    OrderExecuted,
    OrderReplaced,
    RegShoRestriction,
    SequenceCheck,
    SequenceStatus,
    StockDirectory,
    SystemEvent,
    Trade,
    TradingState,
    iter_events,
    midnight_epoch_ns,
    normalize_bundle,
    normalize_messages,
    ts_event_ns,
)
from tests.samples import SAMPLES

pytestmark = pytest.mark.usefixtures("implementation")  # each test on the Python and the C code

WINTER = date(2019, 12, 30)
SUMMER = date(2020, 7, 1)
HOUR = 3_600_000_000_000
T_0930 = 9 * HOUR + HOUR // 2  # ITCH timestamp of 09:30:00.000000000
VENUE, SYMBOL, LOCATE = "XNAS", "MEAT", 7


def epoch_ns(*utc: int) -> int:
    return int(datetime(*utc, tzinfo=UTC).timestamp()) * 1_000_000_000


# --- factories ---------------------------------------------------------------------------------------------


def add(
    ref: int, side: str = "B", shares: int = 100, price: int = 1_000_000, ts: int = T_0930
) -> itch.AddOrder:
    return itch.AddOrder(LOCATE, 0, ts, ref, side, shares, SYMBOL, price)


def delete(ref: int, ts: int = T_0930) -> itch.OrderDelete:
    return itch.OrderDelete(LOCATE, 0, ts, ref)


def batch_of(messages: list, *, symbol: str = SYMBOL, locate: int = LOCATE, day: date = WINTER) -> ItchBundle:
    """The raw bundle of one segment: ``messages`` of one symbol, seqs from 100."""
    return make_bundle(
        [SegmentInput(symbol, locate, 1, 100, [encode(m) for m in messages])],
        venue=VENUE,
        trading_date=day,
        session="s1",
        partition=0,
        partitions=1,
        bundle_sequence=1,
        produced_at_ns=5,
    )


def with_payloads(bundle: ItchBundle, payloads: bytes, message_count: int | None = None) -> ItchBundle:
    """``bundle`` (of one segment) holding ``payloads`` instead, announcing ``message_count`` messages."""
    (segment,) = bundle.segments
    if message_count is not None:
        segment = dataclasses.replace(segment, message_count=message_count)
    return dataclasses.replace(bundle, payloads=payloads, segments=(segment,))


def sample_groups() -> dict[tuple[str, int], list[itch.Message]]:
    """Real messages per (file, stock locate), in feed order."""
    files = {
        "bx": gzip.decompress((SAMPLES / "RITCH_ex20101224.TEST_ITCH_50.gz").read_bytes()),
        "omi": (SAMPLES / "omi_Nasdaq_itch50_sample.bin").read_bytes(),
        "meatpy": (SAMPLES / "meatpy_sample.itch50").read_bytes(),
    }
    groups: dict[tuple[str, int], list[itch.Message]] = defaultdict(list)
    for name, data in files.items():
        for message in decode_many(data):
            groups[(name, message.stock_locate)].append(message)
    return groups


def expected_event(message: itch.Message, ts: int, seq: int, symbol: str) -> NormalizedEvent:
    """The reference mapping from one ITCH message to its event, written the slow, obvious way."""
    head = (ts, seq, VENUE, symbol)
    m = message
    match m:
        case itch.AddOrder():
            return OrderAdded(*head, m.order_reference_number, m.buy_sell_indicator, m.shares, m.price)
        case itch.AddOrderMPID():
            return OrderAdded(
                *head, m.order_reference_number, m.buy_sell_indicator, m.shares, m.price, m.attribution
            )
        case itch.OrderExecuted():
            return OrderExecuted(*head, m.order_reference_number, m.executed_shares, m.match_number, True)
        case itch.OrderExecutedWithPrice():
            return OrderExecuted(
                *head,
                m.order_reference_number,
                m.executed_shares,
                m.match_number,
                m.printable == "Y",
                m.execution_price,
            )
        case itch.OrderCancel():
            return OrderCancelled(*head, m.order_reference_number, m.cancelled_shares)
        case itch.OrderDelete():
            return OrderDeleted(*head, m.order_reference_number)
        case itch.OrderReplace():
            return OrderReplaced(
                *head, m.original_order_reference_number, m.new_order_reference_number, m.shares, m.price
            )
        case itch.Trade():
            return Trade(
                *head, m.order_reference_number, m.buy_sell_indicator, m.shares, m.price, m.match_number
            )
        case itch.CrossTrade():
            return CrossTrade(*head, m.shares, m.cross_price, m.match_number, m.cross_type)
        case itch.BrokenTrade():
            return BrokenTrade(*head, m.match_number)
        case itch.SystemEvent():
            return SystemEvent(*head, m.event_code)
        case itch.StockTradingAction():
            return TradingState(*head, m.trading_state, m.reason)
        case itch.RegSHORestriction():
            return RegShoRestriction(*head, m.reg_sho_action)
        case itch.OperationalHalt():
            return OperationalHalt(*head, m.market_code, m.operational_halt_action)
        case itch.StockDirectory():
            return StockDirectory(
                *head,
                m.market_category,
                m.financial_status_indicator,
                m.round_lot_size,
                m.round_lots_only,
                m.issue_classification,
                m.issue_sub_type,
                m.authenticity,
                m.short_sale_threshold_indicator,
                m.ipo_flag,
                m.luld_reference_price_tier,
                m.etp_flag,
                m.etp_leverage_factor,
                m.inverse_indicator,
            )
    return AuxiliaryMessage(*head, m.message_type, encode(m))


# --- event time ----------------------------------------------------------------------------------------------


def test_winter_0930_new_york_is_1430_utc() -> None:
    assert ts_event_ns(WINTER, T_0930) == epoch_ns(2019, 12, 30, 14, 30)


def test_summer_0930_new_york_is_1330_utc() -> None:
    assert ts_event_ns(SUMMER, T_0930) == epoch_ns(2020, 7, 1, 13, 30)


@pytest.mark.parametrize(
    ("day", "utc_hour"),
    [
        (date(2020, 3, 6), 5),  # Friday before spring-forward: EST
        (date(2020, 3, 8), 5),  # the change Sunday: midnight is still EST (change at 02:00)
        (date(2020, 3, 9), 4),  # Monday after: EDT
        (date(2020, 10, 30), 4),  # Friday before fall-back: EDT
        (date(2020, 11, 1), 4),  # fall-back Sunday: midnight still EDT
        (date(2020, 11, 2), 5),  # Monday after: EST
    ],
)
def test_midnight_follows_the_dst_rules_around_each_change(day: date, utc_hour: int) -> None:
    assert midnight_epoch_ns(day) == epoch_ns(day.year, day.month, day.day, utc_hour)


def test_nanoseconds_are_kept_exactly() -> None:
    last_nano = 24 * HOUR - 1
    assert ts_event_ns(SUMMER, last_nano) - ts_event_ns(SUMMER, 0) == last_nano


# --- the event model on real data ----------------------------------------------------------------------------


def test_every_sample_message_becomes_the_event_the_reference_mapping_expects() -> None:
    kinds_seen = set()
    for (_, locate), messages in sample_groups().items():
        named = next((m.stock for m in messages if hasattr(m, "stock")), None)
        symbol = named if named is not None else f"L{locate}" if locate else ""
        raw = batch_of(messages, symbol=symbol, locate=locate, day=WINTER)
        result = normalize_bundle(raw, ts_recv=9)
        assert result.rejected == ()
        events = list(iter_events(result.bundle))
        expected = [
            expected_event(m, ts_event_ns(WINTER, m.timestamp), 100 + i, symbol)
            for i, m in enumerate(messages)
        ]
        assert events == expected
        kinds_seen |= {event.kind for event in events}
    assert len(kinds_seen) >= 11


def test_normalized_bundle_round_trips_through_avro_and_fills_the_header() -> None:
    messages = sample_groups()[("bx", 2)][:512]
    check = SequenceCheck(SequenceStatus.GAP, gap_batches=2, gap_messages=700)
    bundle = normalize_bundle(batch_of(messages, symbol="BOB", locate=2), [check], ts_recv=77).bundle
    decoded = decode_normalized(encode_normalized_bundle(bundle))
    assert decoded == bundle
    (run,) = decoded.runs
    assert (run.symbol, run.stock_locate, run.start, run.count) == ("BOB", 2, 0, 512)
    assert (run.sequence_status, run.gap_batches, run.gap_messages) == (
        SequenceStatus.GAP,
        2,
        700,
    )
    assert (decoded.event_count, decoded.price_scale, decoded.ts_produced, decoded.ts_recv) == (512, 4, 5, 77)
    times = [ts_event_ns(WINTER, m.timestamp) for m in messages]
    assert (decoded.min_ts_event, decoded.max_ts_event) == (min(times), max(times))
    views = decoded.columns.views()
    assert list(views.ts_event) == times
    assert list(views.seq) == list(range(100, 612))


def test_columns_are_little_endian_arrays() -> None:
    bundle = normalize_bundle(batch_of([add(0x0102030405060708, price=1_234_500)])).bundle
    assert bundle.columns.order_ref == bytes.fromhex("0807060504030201")
    assert bundle.columns.price == (1_234_500).to_bytes(8, "little")
    assert bundle.columns.kind == bytes([EventKind.ORDER_ADDED])
    assert bundle.columns.side == b"B"


def test_market_wide_system_events_have_an_empty_symbol() -> None:
    start = itch.SystemEvent(0, 0, 3 * HOUR, "O")
    result = normalize_bundle(batch_of([start], symbol="", locate=0))
    assert list(iter_events(result.bundle)) == [
        SystemEvent(ts_event_ns(WINTER, 3 * HOUR), 100, VENUE, "", "O")
    ]


def test_auxiliary_messages_keep_their_exact_bytes() -> None:
    imbalance = itch.NetOrderImbalanceIndicator(LOCATE, 1, T_0930, 10, 20, "B", SYMBOL, 1, 2, 3, "O", "L")
    (event,) = iter_events(normalize_bundle(batch_of([imbalance])).bundle)
    assert isinstance(event, AuxiliaryMessage)
    assert (event.message_type, event.payload) == ("I", encode(imbalance))


def test_normalize_messages_equals_normalize_bundle_of_one_segment() -> None:
    messages = [add(1), delete(1)]
    by_messages = normalize_messages(
        messages,
        venue=VENUE,
        trading_date=WINTER,
        symbol=SYMBOL,
        stock_locate=LOCATE,
        session="s1",
        first_message_seq=100,
    )
    assert by_messages.bundle == dataclasses.replace(
        normalize_bundle(batch_of(messages)).bundle, ts_produced=0
    )


# --- symbols and the directory -------------------------------------------------------------------------------


def test_a_segment_without_symbol_is_resolved_through_the_directory() -> None:
    result = normalize_bundle(batch_of([add(1)], symbol=""), directory={LOCATE: SYMBOL})
    assert [run.symbol for run in result.bundle.runs] == [SYMBOL] and result.bundle.event_count == 1


def refused(result) -> InvalidReason:
    """The reason the one segment of ``result``'s bundle was refused as a whole (no event of it kept)."""
    (error,) = result.rejected
    assert result.bundle.runs == () and result.bundle.event_count == 0
    assert error.message_index is None
    return error.reason


def test_a_segment_without_symbol_and_unknown_locate_is_an_unknown_symbol() -> None:
    result = normalize_bundle(batch_of([add(1)], symbol=""), directory={})
    assert refused(result) is InvalidReason.UNKNOWN_SYMBOL


def test_a_segment_whose_symbol_contradicts_the_directory_is_refused() -> None:
    result = normalize_bundle(batch_of([add(1)]), directory={LOCATE: "OTHER"})
    assert refused(result) is InvalidReason.SYMBOL_MISMATCH


def test_a_segment_with_a_non_itch_symbol_is_a_bad_envelope() -> None:
    result = normalize_bundle(batch_of([add(1)], symbol="TOOLONGSYMBOL"))
    assert refused(result) is InvalidReason.BAD_ENVELOPE


# --- bad messages inside a good batch ------------------------------------------------------------------------


def reasons(result) -> list[tuple[InvalidReason, int | None]]:
    return [(r.reason, r.message_index) for r in result.rejected]


def test_a_message_of_another_locate_is_rejected_and_the_rest_keep_their_seq() -> None:
    stray = itch.OrderDelete(LOCATE + 1, 0, T_0930, 9)
    result = normalize_bundle(batch_of([add(1), stray, delete(1)]))
    assert reasons(result) == [(InvalidReason.LOCATE_MISMATCH, 1)]
    assert result.rejected[0].payload == encode(stray)
    assert [(e.seq, e.kind) for e in iter_events(result.bundle)] == [
        (100, EventKind.ORDER_ADDED),
        (102, EventKind.ORDER_DELETED),
    ]


def test_messages_for_another_symbol_are_rejected() -> None:
    other_add = itch.AddOrder(LOCATE, 0, T_0930, 5, "S", 1, "PYTH", 1)
    other_halt = itch.StockTradingAction(LOCATE, 0, T_0930, "PYTH", "H", " ", "")
    result = normalize_bundle(batch_of([other_add, other_halt, add(1)]))
    assert reasons(result) == [(InvalidReason.SYMBOL_MISMATCH, 0), (InvalidReason.SYMBOL_MISMATCH, 1)]
    assert result.bundle.event_count == 1


def test_a_timestamp_beyond_the_trading_day_is_rejected() -> None:
    result = normalize_bundle(
        batch_of([add(1, ts=24 * HOUR), itch.SystemEvent(LOCATE, 0, 25 * HOUR, "C"), delete(1)])
    )
    assert reasons(result) == [
        (InvalidReason.TIMESTAMP_OUT_OF_RANGE, 0),
        (InvalidReason.TIMESTAMP_OUT_OF_RANGE, 1),
    ]
    assert result.bundle.event_count == 1


def test_unknown_types_and_wrong_lengths_are_skipped_by_their_length_prefix() -> None:
    good = encode(add(1))
    payloads = pack_payloads([good, b"z" + bytes(10), good[:-1], encode(delete(1))])
    result = normalize_bundle(with_payloads(batch_of([add(1)]), payloads, message_count=4))
    assert reasons(result) == [(InvalidReason.UNKNOWN_MESSAGE_TYPE, 1), (InvalidReason.BAD_MESSAGE_LENGTH, 2)]
    assert result.rejected[1].payload == good[:-1]
    assert [e.seq for e in iter_events(result.bundle)] == [100, 103]


def test_a_truncated_tail_is_one_rejection_after_the_good_messages() -> None:
    payloads = pack_payloads([encode(add(1)), encode(delete(1))])[:-5]
    result = normalize_bundle(with_payloads(batch_of([add(1)]), payloads, message_count=2))
    assert reasons(result) == [(InvalidReason.TRUNCATED_PAYLOAD, 1)]
    assert result.bundle.event_count == 1


def test_a_message_count_that_disagrees_with_the_payloads_is_reported() -> None:
    result = normalize_bundle(
        with_payloads(batch_of([add(1), delete(1)]), pack_payloads([encode(add(1)), encode(delete(1))]), 3)
    )
    assert reasons(result) == [(InvalidReason.COUNT_MISMATCH, None)]
    assert result.bundle.event_count == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_payloads_give_rejections_never_exceptions(garbage: bytes) -> None:
    result = normalize_bundle(with_payloads(batch_of([add(1)]), garbage))
    assert all(isinstance(r, InvalidRecord) for r in result.rejected)
    # the batch claims one message: garbage yields at most one event, and whenever the bytes are not
    # exactly one length-prefixed message (framing checked here by hand), a rejection says so
    assert result.bundle.event_count <= 1
    framed_one = len(garbage) >= 2 and int.from_bytes(garbage[:2], "big") == len(garbage) - 2 > 0
    if not framed_one:
        assert result.rejected, garbage
    assert result.bundle.event_count + len(result.rejected) >= 1 or (
        framed_one and result.bundle.event_count == 0
    )


# --- damaged normalized records ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoded() -> bytes:
    return encode_normalized_bundle(normalize_bundle(batch_of([add(1), delete(1)])).bundle)


def test_a_short_column_is_bad_columns() -> None:
    bundle = normalize_bundle(batch_of([add(1), delete(1)])).bundle
    short = dataclasses.replace(
        bundle, columns=dataclasses.replace(bundle.columns, price=bundle.columns.price[:-8])
    )
    with pytest.raises(InvalidRecord) as caught:
        decode_normalized(encode_normalized_bundle(short))
    assert caught.value.reason is InvalidReason.BAD_COLUMNS


def test_an_unknown_event_kind_is_bad_columns() -> None:
    bundle = normalize_bundle(batch_of([add(1)])).bundle
    future = dataclasses.replace(bundle, columns=dataclasses.replace(bundle.columns, kind=bytes([99])))
    with pytest.raises(InvalidRecord) as caught:
        decode_normalized(encode_normalized_bundle(future))
    assert caught.value.reason is InvalidReason.BAD_COLUMNS


def test_a_detail_pointing_outside_the_bundle_is_bad_columns() -> None:
    bundle = normalize_bundle(batch_of([add(1)])).bundle
    stray = dataclasses.replace(bundle, details=(("Attribution", {"index": 5, "mpid": "GSCO"}),))
    with pytest.raises(InvalidRecord) as caught:
        decode_normalized(encode_normalized_bundle(stray))
    assert caught.value.reason is InvalidReason.BAD_COLUMNS


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(1, 300), flip=st.integers(0, 300), byte=st.integers(0, 255))
def test_damaged_normalized_values_raise_only_invalid_record(
    encoded: bytes, cut: int, flip: int, byte: int
) -> None:
    data = bytearray(encoded)
    data[10 + flip % (len(data) - 10)] = byte
    for candidate in (bytes(data), encoded[: len(encoded) - cut % len(encoded)]):
        with contextlib.suppress(InvalidRecord):
            decode_normalized(candidate)
