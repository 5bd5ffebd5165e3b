"""File framings: standard, zero-prefix, gzip (by magic), MoldUDP64 pcap; errors, resync, writer."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itchflow.itch.codec import ItchDecodeError, encode
from itchflow.itch.framing import (
    ErrorLog,
    Framing,
    ItchWriter,
    detect_format,
    iter_message_batches,
    iter_messages,
    iter_mold_packets,
    iter_payloads,
    write_messages,
)
from itchflow.itch.messages import AddOrder, Message, OrderDelete, OrderExecuted, SystemEvent, Trade

T0 = 34_200_000_000_000  # 09:30:00


def feed() -> list[Message]:
    """A small book-shaped feed of mixed lengths (12, 36, 31, 19, 44 bytes)."""
    return [
        SystemEvent(0, 0, T0, "Q"),
        AddOrder(1, 0, T0 + 1, 1, "B", 100, "AAPL", 1_900_000),
        AddOrder(1, 0, T0 + 2, 2, "S", 200, "AAPL", 1_900_100),
        OrderExecuted(1, 0, T0 + 3, 1, 40, 9001),
        Trade(2, 0, T0 + 4, 0, "B", 10, "MSFT", 4_000_000, 9002),
        OrderDelete(1, 0, T0 + 5, 2),
        SystemEvent(0, 0, T0 + 6, "M"),
    ]


def framed(messages: list[Message], zero_prefix: bool = False) -> bytes:
    return b"".join(
        (b"\x00\x00" if zero_prefix else len(p).to_bytes(2, "big")) + p for p in (encode(m) for m in messages)
    )


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def messages_of(path: Path, **kwargs: object) -> list[Message]:
    return [message for _, message in iter_messages(path, **kwargs)]  # type: ignore[arg-type]


# --- stream framings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_prefix", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_written_files_read_back_identically_in_every_chunking(
    tmp_path: Path, zero_prefix: bool, compress: bool
) -> None:
    path = tmp_path / "feed.itch"
    assert write_messages(path, feed(), compress=compress, zero_prefix=zero_prefix) == len(feed())
    raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    assert raw == framed(feed(), zero_prefix)
    for chunk_size in (1, 2, 5, 37, 1 << 20):
        assert messages_of(path, chunk_size=chunk_size) == feed()
    assert [m for batch in iter_message_batches(path) for m in batch] == feed()
    expected = Framing.ZERO_PREFIX if zero_prefix else Framing.STANDARD
    assert (detect_format(path).framing, detect_format(path).gzip) == (expected, compress)


def test_gzip_is_detected_by_magic_not_by_name(tmp_path: Path) -> None:
    hidden = write(tmp_path / "plain.bin", gzip.compress(framed(feed())))
    misnamed = write(tmp_path / "not-compressed.gz", framed(feed()))
    assert messages_of(hidden) == feed() == messages_of(misnamed)


def test_multi_member_gzip_is_read_to_the_end(tmp_path: Path) -> None:
    path = write(tmp_path / "two.gz", gzip.compress(framed(feed())) + gzip.compress(framed(feed())))
    assert messages_of(path) == feed() * 2


def test_write_messages_compresses_by_suffix_and_accepts_raw_payloads(tmp_path: Path) -> None:
    path = tmp_path / "out.itch.gz"
    write_messages(path, [encode(m) for m in feed()])
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert messages_of(path) == feed()


def test_writer_refuses_a_payload_that_is_not_one_message() -> None:
    class Sink:
        def write(self, data: bytes) -> int:
            raise AssertionError("nothing may be written")

    writer = ItchWriter(Sink())  # type: ignore[arg-type]
    with pytest.raises(ItchDecodeError):
        writer.write_payload(encode(feed()[0]) + b"x")


def test_offsets_are_type_byte_positions(tmp_path: Path) -> None:
    data = framed(feed())
    path = write(tmp_path / "f.itch", data)
    for offset, payload in iter_payloads(path):
        assert data[offset : offset + len(payload)] == payload


def test_empty_file_has_no_messages(tmp_path: Path) -> None:
    path = write(tmp_path / "empty", b"")
    assert messages_of(path) == []
    assert detect_format(path).framing == Framing.EMPTY


# --- bad input ------------------------------------------------------------------------------------------


def test_truncated_last_message_is_an_error_after_the_good_ones(tmp_path: Path) -> None:
    data = framed(feed())
    path = write(tmp_path / "cut.itch", data[:-3])
    seen: list[Message] = []
    with pytest.raises(ItchDecodeError, match="truncated message: type 'S' needs 12 bytes, only 9") as info:
        seen.extend(messages_of(path))
    assert info.value.offset == len(data) - 12
    errors = ErrorLog()
    assert messages_of(path, errors=errors) == feed()[:-1]
    assert errors.count == 1 and errors.skipped_bytes == 11


def test_zero_prefix_file_rejects_an_unknown_type_byte(tmp_path: Path) -> None:
    data = (
        framed(feed()[:2], zero_prefix=True) + b"\x00\x00Z" + bytes(20) + framed(feed()[2:], zero_prefix=True)
    )
    path = write(tmp_path / "z.itch", data)
    with pytest.raises(ItchDecodeError, match="unknown message type 'Z'") as info:
        messages_of(path)
    assert info.value.offset == 14 + 38 + 2


def test_zero_prefix_file_rejects_a_nonzero_prefix(tmp_path: Path) -> None:
    data = framed(feed()[:2], zero_prefix=True) + framed(feed()[2:3]) + framed(feed()[3:], zero_prefix=True)
    with pytest.raises(ItchDecodeError, match="prefix 36 in a stream whose length prefixes are all 0"):
        messages_of(write(tmp_path / "z.itch", data))


def test_standard_file_rejects_a_zero_prefix_and_a_wrong_length(tmp_path: Path) -> None:
    good = framed(feed())
    zeroed = good[:14] + b"\x00\x00" + good[16:]
    with pytest.raises(ItchDecodeError, match="prefix says 0 bytes, type 'A' is 36") as info:
        messages_of(write(tmp_path / "a.itch", zeroed))
    assert info.value.offset == 14
    wrong = good[:14] + b"\x00\x25" + good[16:]
    with pytest.raises(ItchDecodeError, match="prefix says 37 bytes"):
        messages_of(write(tmp_path / "b.itch", wrong))


@pytest.mark.parametrize("zero_prefix", [False, True])
def test_continuing_past_garbage_resynchronizes_and_counts(tmp_path: Path, zero_prefix: bool) -> None:
    head, tail = framed(feed()[:3], zero_prefix), framed(feed()[3:], zero_prefix)
    garbage = b"\x00\x00\xfe\x01\x02 not itch at all \x00"
    path = write(tmp_path / "g.itch", head + garbage + tail)
    with pytest.raises(ItchDecodeError) as info:
        messages_of(path)
    assert info.value.offset in (len(head), len(head) + 2)
    errors = ErrorLog()
    assert messages_of(path, errors=errors, chunk_size=16) == feed()
    assert errors.count == 1
    assert errors.skipped_bytes == len(garbage)


def test_a_non_itch_file_is_an_error_not_an_empty_result(tmp_path: Path) -> None:
    path = write(tmp_path / "README", b"# hello\nthis is text, not ITCH\n")
    with pytest.raises(ItchDecodeError):
        messages_of(path)
    errors = ErrorLog()
    assert messages_of(path, errors=errors) == []
    assert errors.count >= 1


def test_truncated_gzip_yields_what_it_can_then_reports(tmp_path: Path) -> None:
    compressed = gzip.compress(framed(feed() * 200))
    path = write(tmp_path / "cut.gz", compressed[: len(compressed) // 2])
    errors = ErrorLog()
    got = messages_of(path, errors=errors)
    assert 0 < len(got) < len(feed()) * 200
    assert got == (feed() * 200)[: len(got)]
    assert any("gzip" in str(sample) for sample in errors.samples)
    with pytest.raises(ItchDecodeError):
        messages_of(path)


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """A valid stream with a few byte ranges overwritten, inserted or cut."""
    data = bytearray(framed(feed() * 3, zero_prefix=draw(st.booleans())))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        junk = draw(st.binary(min_size=1, max_size=12))
        action = draw(st.sampled_from(["overwrite", "insert", "cut"]))
        if action == "overwrite":
            data[position : position + len(junk)] = junk
        elif action == "insert":
            data[position:position] = junk
        else:
            del data[position : position + len(junk)]
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(st.one_of(damaged_files(), st.binary(max_size=200)), st.sampled_from([3, 64, 1 << 20]))
def test_damaged_files_raise_itch_decode_error_or_account_for_every_byte(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk_size: int
) -> None:
    path = tmp_path_factory.mktemp("damaged") / "f.itch"
    path.write_bytes(data)
    try:
        strict = list(iter_payloads(path, chunk_size=chunk_size))
    except ItchDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert sum(2 + len(p) for _, p in strict) == len(data)  # nothing skipped silently
    errors = ErrorLog()
    lenient = list(iter_payloads(path, errors=errors, chunk_size=chunk_size))
    detected = detect_format(path)  # random bytes can start with a pcap or gzip magic
    if detected.framing != Framing.PCAP and not detected.gzip:
        assert sum(2 + len(p) for _, p in lenient) + errors.skipped_bytes == len(data)
        assert (errors.count == 0) == (errors.skipped_bytes == 0)
    for offset, payload in lenient:
        assert data[offset : offset + len(payload)] == payload


# --- pcap ---------------------------------------------------------------------------------------------------


def mold(messages: list[Message], sequence_number: int = 1, count: int | None = None) -> bytes:
    payloads = [encode(m) for m in messages]
    body = b"".join(len(p).to_bytes(2, "big") + p for p in payloads)
    return (
        b"SESSION001" + struct.pack(">QH", sequence_number, len(payloads) if count is None else count) + body
    )


def ipv4_udp(payload: bytes, port: int = 26477) -> bytes:
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0x4000, 64, 17, 0, bytes(4), bytes(4)
    )
    return ip + struct.pack(">HHHH", 5000, port, 8 + len(payload), 0) + payload


def ethernet(ip_packet: bytes, vlan: bool = False, pad_to: int = 60) -> bytes:
    header = b"\x01\x00\x5e\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x01"
    header += b"\x81\x00\x00\x8d\x08\x00" if vlan else b"\x08\x00"
    frame = header + ip_packet
    return frame + bytes(max(0, pad_to - len(frame)))  # Ethernet minimum-size padding


def pcap(frames: list[bytes], byte_order: str = "<", nanoseconds: bool = False, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = struct.pack(f"{byte_order}IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for index, frame in enumerate(frames):
        out += struct.pack(f"{byte_order}IIII", 1_700_000_000 + index, 500, len(frame), len(frame)) + frame
    return out


@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
@pytest.mark.parametrize("vlan", [False, True])
def test_pcap_in_both_byte_orders_and_resolutions(
    tmp_path: Path, byte_order: str, nanoseconds: bool, vlan: bool
) -> None:
    frames = [ethernet(ipv4_udp(mold(feed()[:3])), vlan), ethernet(ipv4_udp(mold(feed()[3:], 4)), vlan)]
    path = write(tmp_path / "cap.pcap", pcap(frames, byte_order, nanoseconds))
    assert detect_format(path).framing == Framing.PCAP
    assert messages_of(path) == feed()
    packets = list(iter_mold_packets(path))
    assert [p.sequence_number for p in packets] == [1, 4]
    assert packets[0].session == "SESSION001"
    assert packets[0].ts_capture == 1_700_000_000 * 10**9 + (500 if nanoseconds else 500_000)


def test_short_frames_with_ethernet_padding_are_bounded_by_ip_and_udp_lengths(tmp_path: Path) -> None:
    frame = ethernet(ipv4_udp(mold([SystemEvent(0, 0, T0, "O")])), pad_to=120)
    assert messages_of(write(tmp_path / "p.pcap", pcap([frame]))) == [SystemEvent(0, 0, T0, "O")]


def test_gzipped_pcap_and_raw_ip_linktype(tmp_path: Path) -> None:
    path = write(tmp_path / "cap.bin", gzip.compress(pcap([ipv4_udp(mold(feed()))], linktype=101)))
    assert messages_of(path) == feed()


def test_heartbeats_end_of_session_and_non_udp_packets_yield_nothing(tmp_path: Path) -> None:
    arp = ethernet(b"\x00" * 28)[:12] + b"\x08\x06" + b"\x00" * 46
    tcp = ethernet(ipv4_udp(b"x")[:9] + b"\x06" + ipv4_udp(b"x")[10:])
    frames = [arp, tcp, ethernet(ipv4_udp(mold([]))), ethernet(ipv4_udp(mold([], count=0xFFFF)))]
    frames.append(ethernet(ipv4_udp(mold(feed()[:1]))))
    errors = ErrorLog()
    assert messages_of(write(tmp_path / "p.pcap", pcap(frames)), errors=errors) == feed()[:1]
    assert errors.count == 0


def test_udp_port_filter(tmp_path: Path) -> None:
    frames = [ethernet(ipv4_udp(mold(feed()[:2]), port=1)), ethernet(ipv4_udp(mold(feed()[2:]), port=2))]
    assert messages_of(write(tmp_path / "p.pcap", pcap(frames)), udp_port=2) == feed()[2:]


def test_malformed_mold_packets_are_errors_that_can_be_skipped(tmp_path: Path) -> None:
    lying_count = ethernet(ipv4_udp(mold(feed()[:2], count=3)))
    bad_type = ethernet(ipv4_udp(mold(feed()[:1])[:20] + b"\x00\x05Zabcd"))
    good = ethernet(ipv4_udp(mold(feed()[2:])))
    path = write(tmp_path / "p.pcap", pcap([lying_count, bad_type, good]))
    with pytest.raises(ItchDecodeError, match="announces 3 messages"):
        messages_of(path)
    errors = ErrorLog()
    assert messages_of(path, errors=errors) == feed()[2:]
    assert errors.count == 2
    assert "unknown message type 'Z'" in str(errors.samples[1])


def test_truncated_pcap_record_is_reported(tmp_path: Path) -> None:
    data = pcap([ethernet(ipv4_udp(mold(feed())))])
    path = write(tmp_path / "p.pcap", data[:-10])
    with pytest.raises(ItchDecodeError, match="truncated pcap record"):
        messages_of(path)


def test_pcapng_is_refused_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path / "p.pcapng", b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ItchDecodeError, match="editcap"):
        messages_of(path)


@st.composite
def damaged_containers(draw: st.DrawFn) -> bytes:
    """A gzip file or a pcap capture of a valid feed with a few bytes overwritten or cut off."""
    if draw(st.booleans()):
        data = bytearray(gzip.compress(framed(feed() * 3)))
    else:
        frames = [ethernet(ipv4_udp(mold(feed()[:3]))), ethernet(ipv4_udp(mold(feed()[3:])), vlan=True)]
        data = bytearray(pcap(frames, draw(st.sampled_from("<>")), draw(st.booleans())))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=6))
        data[position : position + len(junk)] = junk
    if draw(st.booleans()):
        del data[draw(st.integers(min_value=0, max_value=len(data))) :]
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(damaged_containers())
def test_damaged_gzip_and_pcap_give_only_itch_decode_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("damaged") / "f.bin"
    path.write_bytes(data)
    try:
        list(iter_messages(path))
    except ItchDecodeError as exc:
        assert exc.offset >= 0
    errors = ErrorLog()
    for offset, message in iter_messages(path, errors=errors):  # never raises
        assert offset >= 0 and encode(message)
