"""The real ITCH samples in ../shared/data/itch: counts per type, exact byte round trips, pcaps.

Expected counts come from walking the framing by hand here (a length table and the type bytes), never
from the decoder under test.
"""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import pytest

from itchflow.itch.codec import decode, decode_many, encode
from itchflow.itch.framing import Framing, detect_format, iter_messages, iter_mold_packets, iter_payloads
from tests.samples import SAMPLES_DIR, sample
from tests.unit.test_itch_spec import SPEC_LENGTHS, parse_by_spec

DATA = SAMPLES_DIR
# without the samples each test still runs once, and fails saying what is missing
STREAM_FILES = sorted(p for p in DATA.glob("*") if p.is_file() and p.suffix != ".md") or [DATA]
PCAP_FILES = sorted(DATA.glob("pcap/*.pcap")) or [DATA]


@pytest.fixture(autouse=True)
def samples_present() -> None:
    sample()  # fails the test, saying where the samples belong, when they are missing


# What PROVENANCE.md says about each file (message totals), as a second, human-written check.
DOCUMENTED_TOTALS = {
    "RITCH_ex20101224.TEST_ITCH_50.gz": 12_012,
    "omi_Nasdaq_itch50_sample.bin": 111,
    "meatpy_sample.itch50": 20,
}

PCAP_TYPES = {
    "AddOrderNoMPID": "A",
    "AddOrderWithMPID": "F",
    "CrossTrade": "Q",
    "LULDAuctionCollar": "J",
    "MarketParticipantPosition": "L",
    "NetOrderImbalanceIndicator": "I",
    "NonCrossTrade": "P",
    "OrderCancel": "X",
    "OrderDelete": "D",
    "OrderExecuted": "E",
    "OrderExecutedWithPrice": "C",
    "OrderReplace": "U",
    "RegSHORestriction": "Y",
    "StockTradingAction": "H",
    "SystemEvent": "S",
}


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def walk_by_hand(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """``(offset of type byte, prefix bytes, payload)`` per record; a zero prefix means the type's length."""
    records = []
    position = 0
    while position < len(data):
        prefix = data[position : position + 2]
        letter = chr(data[position + 2])
        length = int.from_bytes(prefix, "big") or SPEC_LENGTHS[letter]
        assert length == SPEC_LENGTHS[letter]
        records.append((position + 2, prefix, data[position + 2 : position + 2 + length]))
        position += 2 + length
    assert position == len(data)
    return records


@pytest.mark.parametrize("path", STREAM_FILES, ids=lambda p: p.name)
def test_counts_per_type_match_a_hand_walk_of_the_framing(path: Path) -> None:
    expected = Counter(chr(payload[0]) for _, _, payload in walk_by_hand(raw_bytes(path)))
    assert sum(expected.values()) == DOCUMENTED_TOTALS[path.name]
    decoded = Counter(message.message_type for _, message in iter_messages(path))
    assert decoded == expected


@pytest.mark.parametrize("path", STREAM_FILES, ids=lambda p: p.name)
def test_offsets_payloads_and_fields_agree_with_the_hand_walk(path: Path) -> None:
    records = walk_by_hand(raw_bytes(path))
    messages = list(iter_messages(path, chunk_size=4096))
    payloads = list(iter_payloads(path, chunk_size=4096))
    assert [offset for offset, _ in messages] == [offset for offset, _, _ in records]
    assert payloads == [(offset, payload) for offset, _, payload in records]
    for (_, message), (_, _, payload) in zip(messages, records, strict=True):
        assert {name: getattr(message, name) for name in message.__slots__} == parse_by_spec(payload)


@pytest.mark.parametrize("path", STREAM_FILES, ids=lambda p: p.name)
def test_every_file_round_trips_byte_for_byte(path: Path) -> None:
    data = raw_bytes(path)
    rebuilt = b"".join(prefix + encode(decode(payload)) for _, prefix, payload in walk_by_hand(data))
    assert rebuilt == data
    # and through the batch decoder, re-framing with the file's own prefix convention
    zero = data[:2] == b"\x00\x00"
    reframed = b"".join(
        (b"\x00\x00" if zero else len(payload).to_bytes(2, "big")) + payload
        for payload in map(encode, decode_many(data))
    )
    assert reframed == data


def test_the_zero_prefix_sample_is_detected_as_such_and_gzip_by_magic() -> None:
    detected = detect_format(DATA / "RITCH_ex20101224.TEST_ITCH_50.gz")
    assert (detected.framing, detected.gzip) == (Framing.ZERO_PREFIX, True)
    assert detect_format(DATA / "omi_Nasdaq_itch50_sample.bin").framing == Framing.STANDARD


def test_known_facts_of_the_samples() -> None:
    symbols = {
        m.stock for _, m in iter_messages(DATA / "RITCH_ex20101224.TEST_ITCH_50.gz") if m.message_type == "R"
    }
    assert symbols == {"ALC", "BOB", "CHAR"}
    meatpy = [m for _, m in iter_messages(DATA / "meatpy_sample.itch50")]
    assert {m.stock for m in meatpy if m.message_type == "R"} == {"MEAT", "PYTH"}
    omi = {
        m.stock for _, m in iter_messages(DATA / "omi_Nasdaq_itch50_sample.bin") if m.message_type in "AFPQ"
    }
    assert {"GOOGL", "META"} <= omi


def pcap_payloads_by_hand(path: Path) -> list[bytes]:
    """Walk pcap records, Ethernet(+VLAN)/IPv4/UDP and MoldUDP64 with fixed offsets."""
    data = path.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    payloads = []
    position = 24
    while position < len(data):
        captured = struct.unpack_from(f"{order}I", data, position + 8)[0]
        frame = data[position + 16 : position + 16 + captured]
        ip = 18 if frame[12:14] == b"\x81\x00" else 14
        udp = ip + (frame[ip] & 0x0F) * 4
        mold = udp + 8
        count = int.from_bytes(frame[mold + 18 : mold + 20], "big")
        cursor = mold + 20
        for _ in range(count):
            length = int.from_bytes(frame[cursor : cursor + 2], "big")
            payloads.append(frame[cursor + 2 : cursor + 2 + length])
            cursor += 2 + length
        position += 16 + captured
    return payloads


@pytest.mark.parametrize("path", PCAP_FILES, ids=lambda p: p.stem)
def test_every_pcap_decodes_to_the_type_in_its_name(path: Path) -> None:
    expected = pcap_payloads_by_hand(path)
    assert expected, "the hand walk found no messages"
    messages = [message for _, message in iter_messages(path)]
    assert [m.message_type for m in messages] == [PCAP_TYPES[path.stem]] * len(expected)
    assert [encode(m) for m in messages] == expected
    assert [payload for _, payload in iter_payloads(path)] == expected


def test_pcap_offsets_point_at_the_type_byte_in_the_file() -> None:
    path = DATA / "pcap" / "AddOrderWithMPID.pcap"
    data = path.read_bytes()
    for offset, payload in iter_payloads(path):
        assert data[offset : offset + len(payload)] == payload
        assert data[offset - 2 : offset] == len(payload).to_bytes(2, "big")


def test_mold_packets_carry_session_and_sequence_numbers() -> None:
    packets = list(iter_mold_packets(DATA / "pcap" / "OrderDelete.pcap"))
    assert [p.message_count for p in packets] == [len(p.payloads) for p in packets]
    assert all(len(p.session) == 10 and isinstance(p.sequence_number, int) for p in packets)
    assert all(p.ts_capture > 1_600_000_000 * 10**9 for p in packets)  # nanosecond pcap, epoch 2020+
