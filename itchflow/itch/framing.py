"""Reading and writing ITCH 5.0 files in the framings found in the field.

Readers (all detect the framing from the bytes, never from the file name):

* **standard** -- each message preceded by its length as 2 bytes big-endian (Nasdaq BinaryFILE);
* **zero-prefix** -- the same layout with every length prefix 0: the message type gives the length.
  The first record decides; a nonzero prefix later in such a file is an error, and so is a zero
  prefix in a standard file;
* either of those **gzip**-compressed (detected by the gzip magic);
* **pcap** (microsecond or nanosecond, either byte order, optionally gzip-compressed) of
  Ethernet (optionally VLAN-tagged) / Linux SLL / raw IP, IPv4 or IPv6, UDP, **MoldUDP64**
  (10-byte session, 8-byte sequence number, 2-byte message count, then 2-byte-length-prefixed
  messages).

Every reader reports a message by the byte offset of its type byte in the (decompressed) file.
Bad input raises :class:`~itchflow.itch.codec.ItchDecodeError` naming that offset, unless an
:class:`ErrorLog` is passed: then the reader records the error, resynchronizes and continues.

Writers produce the standard framing (or zero prefixes on request), optionally gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

from itchflow.extensions import native_function
from itchflow.itch.codec import (
    _LENGTHS,
    ItchDecodeError,
    _type_name,
    decode,
    decode_run,
    encode,
    message_length,
    record_error,
)
from itchflow.itch.messages import MESSAGE_LENGTHS, Message

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ErrorLog",
    "FileFormat",
    "Framing",
    "ItchWriter",
    "MoldPacket",
    "detect_format",
    "iter_message_batches",
    "iter_messages",
    "iter_mold_packets",
    "iter_payloads",
    "write_messages",
]

DEFAULT_CHUNK_SIZE = 1 << 20
"""Bytes read from the (decompressed) file per step by the stream readers."""

_GZIP_MAGIC = b"\x1f\x8b"
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# magic -> (struct byte order, nanosecond timestamps)
_PCAP_MAGICS: dict[bytes, tuple[str, bool]] = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_RESYNC_RECORDS = 3
"""Consecutive valid records that must follow a position before a reader resumes there after an error."""
_MAX_RECORD = 2 + max(MESSAGE_LENGTHS.values())


class Framing(StrEnum):
    """How messages are delimited in a file."""

    STANDARD = "standard"
    ZERO_PREFIX = "zero-prefix"
    PCAP = "pcap"
    PCAPNG = "pcapng"
    """Recognized but not supported: readers report it as an error."""
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class FileFormat:
    """What :func:`detect_format` found: the framing and whether the file is gzip-compressed."""

    framing: Framing
    gzip: bool

    def __str__(self) -> str:
        return f"{self.framing}{' (gzip)' if self.gzip else ''}"


@dataclass(slots=True)
class ErrorLog:
    """Decode errors met by a reader that was asked to continue past them.

    ``count`` counts every error; ``samples`` keeps the first ``max_samples`` of them;
    ``skipped_bytes`` is how many bytes were passed over while resynchronizing (for pcap: the bytes
    of rejected packets).
    """

    max_samples: int = 20
    count: int = 0
    skipped_bytes: int = 0
    samples: list[ItchDecodeError] = field(default_factory=list)

    def record(self, error: ItchDecodeError) -> None:
        """Count ``error`` and keep it if fewer than ``max_samples`` are kept."""
        self.count += 1
        if len(self.samples) < self.max_samples:
            self.samples.append(error)


@dataclass(frozen=True, slots=True)
class MoldPacket:
    """One MoldUDP64 downstream packet from a capture.

    ``payloads`` holds ``(offset, payload)`` per message, offsets being positions of the type byte in
    the (decompressed) capture file; ``sequence_number`` is that of the first message.
    """

    offset: int
    ts_capture: int
    session: str
    sequence_number: int
    message_count: int
    payloads: tuple[tuple[int, bytes], ...]


# --- opening and detection --------------------------------------------------------------------------------


class _Gunzip:
    """Incremental gzip reader (all members of a multi-member file).

    Unlike ``gzip.GzipFile`` it hands out everything decompressed before a corrupt or truncated spot
    and only then raises, naming the offset in the decompressed stream.
    """

    _INPUT_SIZE = 1 << 16

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buffer = bytearray()
        self._produced = 0
        self._done = False
        self._error: ItchDecodeError | None = None

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size and not self._done:
            self._fill()
        if not self._buffer and self._error is not None:
            error, self._error = self._error, None
            raise error
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        self._raw.close()

    def _fill(self) -> None:
        data = self._raw.read(self._INPUT_SIZE)
        if not data:
            self._done = True
            if not self._inflater.eof:
                self._fail("truncated gzip data (the compressed stream ends early)")
            return
        try:
            while data:
                if self._inflater.eof:  # next member of a multi-member file
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                output = self._inflater.decompress(data)
                self._buffer += output
                self._produced += len(output)
                data = self._inflater.unused_data if self._inflater.eof else b""
        except zlib.error as exc:
            self._done = True
            self._fail(f"corrupt gzip data: {exc}")

    def _fail(self, reason: str) -> None:
        self._error = ItchDecodeError(self._produced, reason)


def _open(path: str | Path) -> tuple[IO[bytes] | _Gunzip, bool]:
    """Open ``path`` for reading, transparently decompressing gzip (detected by magic)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    try:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return (_Gunzip(raw), True) if compressed else (raw, False)


def _read(stream: IO[bytes] | _Gunzip, size: int) -> bytes:
    """Read exactly ``size`` bytes, fewer only at the end of the stream."""
    data = stream.read(size)
    if len(data) < size and data:
        parts = [data]
        while (got := sum(map(len, parts))) < size and (more := stream.read(size - got)):
            parts.append(more)
        data = b"".join(parts)
    return data


def _framing_of(head: bytes) -> Framing:
    if len(head) == 0:
        return Framing.EMPTY
    if head[:4] in _PCAP_MAGICS:
        return Framing.PCAP
    if head[:4] == _PCAPNG_MAGIC:
        return Framing.PCAPNG
    if head[:2] == b"\x00\x00":
        return Framing.ZERO_PREFIX
    return Framing.STANDARD


def detect_format(path: str | Path) -> FileFormat:
    """Detect the framing and compression of an ITCH file from its first bytes.

    A gzip file too corrupt to yield its first bytes is reported as standard framing; reading it
    then reports the corruption.
    """
    stream, compressed = _open(path)
    try:
        head = _read(stream, 4)
    except ItchDecodeError:
        return FileFormat(Framing.STANDARD, compressed)
    finally:
        stream.close()
    return FileFormat(_framing_of(head), compressed)


# --- length-prefixed streams -----------------------------------------------------------------------------

T = TypeVar("T")
Run = Callable[[bytes, int, int, bool], tuple[list[T], int]]


def _incomplete(buffer: bytes, position: int, end: int, zero_prefix: bool) -> bool:
    """True if the record at ``position`` is valid so far but runs past ``end`` (more data needed)."""
    if end - position < 3:
        return True
    length = _LENGTHS[buffer[position + 2]]
    prefix = (buffer[position] << 8) | buffer[position + 1]
    return bool(length) and prefix == (0 if zero_prefix else length) and position + 2 + length > end


def _chain_ok(buffer: bytes, position: int, end: int, zero_prefix: bool, at_eof: bool) -> bool | None:
    """Whether ``_RESYNC_RECORDS`` valid records start at ``position``; None if more data is needed."""
    for _ in range(_RESYNC_RECORDS):
        if position == end and at_eof:
            return True
        if end - position < 3:
            return False if at_eof else None
        length = _LENGTHS[buffer[position + 2]]
        prefix = (buffer[position] << 8) | buffer[position + 1]
        if not length or prefix != (0 if zero_prefix else length):
            return False
        position += 2 + length
        if position > end:
            return False if at_eof else None
    return True


def _resync(
    buffer: bytes, position: int, end: int, zero_prefix: bool, at_eof: bool, continued: bool
) -> int | None:
    """Where to resume after a bad record at ``position``: the record its prefix points past (standard
    framing), else the first later position followed by valid records; ``continued`` means an earlier
    scan stopped at ``position`` for want of data, so it is itself a candidate. None: read more data."""
    prefix = (buffer[position] << 8) | buffer[position + 1] if end - position >= 2 else 0
    candidates: Iterable[int] = range(position if continued else position + 1, end + 1)
    if not zero_prefix and prefix and not continued:
        candidates = (position + 2 + prefix, *candidates)
    for candidate in candidates:
        if candidate > end:
            continue
        verdict = _chain_ok(buffer, candidate, end, zero_prefix, at_eof)
        if verdict is None:
            return None
        if verdict:
            return candidate
    return end


def _iter_stream_runs(
    stream: IO[bytes] | _Gunzip,
    run: Run[T],
    errors: ErrorLog | None,
    chunk_size: int,
) -> Iterator[tuple[int, bool, list[T]]]:
    """Walk a length-prefixed stream chunk by chunk; yield ``(offset of first record, zero_prefix,
    items)`` for every run of valid records, handling records split across chunks, errors and
    resynchronization."""
    buffer = b""
    base = 0  # stream offset of buffer[0]
    position = 0  # within buffer
    zero_prefix: bool | None = None
    at_eof = False
    resyncing = False
    continued = False  # a resync scan is waiting for more data at ``position``
    while True:
        if not at_eof:
            try:
                chunk = stream.read(chunk_size)
            except ItchDecodeError as exc:
                if errors is None:
                    raise
                errors.record(exc)
                chunk = b""
            if chunk:
                buffer = buffer[position:] + chunk
                base += position
                position = 0
            else:
                at_eof = True
        end = len(buffer)
        if zero_prefix is None:
            if end < 2 and not at_eof:
                continue
            zero_prefix = buffer[:2] == b"\x00\x00"
        while True:
            if resyncing:
                resume = _resync(buffer, position, end, zero_prefix, at_eof, continued)
                if resume is None:  # keep enough bytes to retry once more data is in
                    keep = max(position + (not continued), end - _RESYNC_RECORDS * _MAX_RECORD)
                    if errors is not None:
                        errors.skipped_bytes += keep - position
                    position = keep
                    continued = True
                    break
                continued = False
                if errors is not None:
                    errors.skipped_bytes += resume - position
                position = resume
                resyncing = False
            items, stop = run(buffer, position, end, zero_prefix)
            if items:
                yield base + position, zero_prefix, items
            position = stop
            if position >= end or (not at_eof and _incomplete(buffer, position, end, zero_prefix)):
                break
            error = record_error(buffer, position, end, zero_prefix)
            error = ItchDecodeError(base + error.offset, error.reason)
            if errors is None:
                raise error
            errors.record(error)
            resyncing = True
        if at_eof:
            return


def _split_run(buffer: bytes, position: int, end: int, zero_prefix: bool) -> tuple[list[bytes], int]:
    """Like :func:`~itchflow.itch.codec.decode_run` but returning the raw payloads."""
    lengths = _LENGTHS
    payloads: list[bytes] = []
    append = payloads.append
    try:
        while position < end:
            type_byte = buffer[position + 2]
            length = lengths[type_byte]
            if not length or ((buffer[position] << 8) | buffer[position + 1]) != (
                0 if zero_prefix else length
            ):
                break
            start = position + 2
            if start + length > end:
                break
            append(buffer[start : start + length])
            position = start + length
    except IndexError:
        pass
    return payloads, position


_LENGTH_TABLE = bytes(_LENGTHS)


def _splitter() -> Callable[[bytes, int, int, bool], tuple[list[bytes], int]]:
    """:func:`_split_run`, in C when built (``split_run`` in ``itchflow/normalize/_cscan.c``) and
    ``ITCHFLOW_NATIVE`` allows it."""
    split_run = native_function("itchflow.normalize._cscan", "split_run")
    return _split_run if split_run is None else partial(_native_split_run, split_run)


def _native_split_run(split_run, buffer: bytes, position: int, end: int, zero_prefix: bool):
    return split_run(buffer, position, end, zero_prefix, _LENGTH_TABLE)


# --- pcap ------------------------------------------------------------------------------------------------

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
_UDP = 17
_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = (101, 12, 14)
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_NULL = 0
_MOLD_HEADER = struct.Struct(">10sQH")
_MOLD_END_OF_SESSION = 0xFFFF


class _NotItch(Exception):
    """A packet that is not UDP (ARP, TCP, ...): skipped without counting an error."""


def _udp_payload(packet: bytes, linktype: int, udp_port: int | None) -> tuple[int, int]:
    """``(start, end)`` of the UDP payload in a captured frame. Raises ValueError for a malformed
    frame and _NotItch for traffic that is not (the selected) UDP."""
    if linktype == _LINKTYPE_ETHERNET:
        if len(packet) < 14:
            raise ValueError("Ethernet frame shorter than its header")
        ethertype = int.from_bytes(packet[12:14], "big")
        ip = 14
        while ethertype in _ETHERTYPE_VLAN:
            if len(packet) < ip + 4:
                raise ValueError("VLAN tag cut short")
            ethertype = int.from_bytes(packet[ip + 2 : ip + 4], "big")
            ip += 4
    elif linktype == _LINKTYPE_LINUX_SLL:
        if len(packet) < 16:
            raise ValueError("Linux SLL header cut short")
        ethertype, ip = int.from_bytes(packet[14:16], "big"), 16
    elif linktype == _LINKTYPE_NULL:
        family = int.from_bytes(packet[:4], "little") if len(packet) >= 4 else -1
        ethertype, ip = (
            (_ETHERTYPE_IPV4 if family == 2 else _ETHERTYPE_IPV6 if family in (24, 28, 30) else -1),
            4,
        )
    elif linktype in _LINKTYPE_RAW:
        version = packet[0] >> 4 if packet else 0
        ethertype, ip = (_ETHERTYPE_IPV4 if version == 4 else _ETHERTYPE_IPV6 if version == 6 else -1), 0
    else:
        raise ValueError(f"unsupported pcap link type {linktype}")

    if ethertype == _ETHERTYPE_IPV4:
        if len(packet) < ip + 20 or packet[ip] >> 4 != 4:
            raise ValueError("IPv4 header cut short or malformed")
        header_length = (packet[ip] & 0x0F) * 4
        total_length = int.from_bytes(packet[ip + 2 : ip + 4], "big")
        if packet[ip + 9] != _UDP:
            raise _NotItch
        if int.from_bytes(packet[ip + 6 : ip + 8], "big") & 0x3FFF:  # more-fragments flag or offset
            raise ValueError("fragmented IPv4 packet (reassembly is not supported)")
        if header_length < 20 or total_length < header_length + 8 or len(packet) < ip + total_length:
            raise ValueError("IPv4 lengths disagree with the captured bytes (snap length too small?)")
        udp = ip + header_length
    elif ethertype == _ETHERTYPE_IPV6:
        if len(packet) < ip + 40:
            raise ValueError("IPv6 header cut short")
        if packet[ip + 6] != _UDP:
            raise _NotItch
        udp = ip + 40
    else:
        raise _NotItch
    if len(packet) < udp + 8:
        raise ValueError("UDP header cut short")
    if udp_port is not None and int.from_bytes(packet[udp + 2 : udp + 4], "big") != udp_port:
        raise _NotItch
    udp_length = int.from_bytes(packet[udp + 4 : udp + 6], "big")
    if udp_length < 8 or len(packet) < udp + udp_length:
        raise ValueError("UDP length disagrees with the captured bytes (snap length too small?)")
    return udp + 8, udp + udp_length


def _mold_packet(packet: bytes, start: int, end: int, file_offset: int, ts_capture: int) -> MoldPacket:
    """Parse the MoldUDP64 packet ``packet[start:end]``; ``file_offset`` is where ``packet`` starts."""
    if end - start < _MOLD_HEADER.size:
        raise ItchDecodeError(
            file_offset + start, f"MoldUDP64 packet of {end - start} bytes is shorter than its header"
        )
    session, sequence_number, count = _MOLD_HEADER.unpack_from(packet, start)
    payloads: list[tuple[int, bytes]] = []
    position = start + _MOLD_HEADER.size
    if count != _MOLD_END_OF_SESSION:
        for _ in range(count):
            if end - position < 2:
                raise ItchDecodeError(
                    file_offset + position,
                    f"MoldUDP64 packet announces {count} messages, holds {len(payloads)}",
                )
            length = int.from_bytes(packet[position : position + 2], "big")
            position += 2
            if position + length > end:
                raise ItchDecodeError(
                    file_offset + position,
                    f"truncated message: length {length}, {end - position} bytes left in packet",
                )
            payload = packet[position : position + length]
            expected = message_length(payload[0]) if payload else 0
            if not expected:
                what = f"unknown message type {_type_name(payload[0])}" if payload else "empty message"
                raise ItchDecodeError(file_offset + position, what)
            if length != expected:
                raise ItchDecodeError(
                    file_offset + position - 2,
                    f"bad length: prefix says {length} bytes, type {_type_name(payload[0])} is {expected} bytes",
                )
            payloads.append((file_offset + position, payload))
            position += length
    if position != end:
        raise ItchDecodeError(
            file_offset + position, f"{end - position} unexpected bytes after the MoldUDP64 messages"
        )
    return MoldPacket(
        offset=file_offset + start,
        ts_capture=ts_capture,
        session=session.decode("latin-1"),
        sequence_number=sequence_number,
        message_count=count,
        payloads=tuple(payloads),
    )


def _drain(stream: IO[bytes] | _Gunzip) -> int:
    """Read the rest of ``stream``; return how many bytes that was (what a reader gives up on)."""
    total = 0
    try:
        while chunk := stream.read(DEFAULT_CHUNK_SIZE):
            total += len(chunk)
    except ItchDecodeError:
        pass
    return total


def _iter_pcap(
    stream: IO[bytes] | _Gunzip, errors: ErrorLog | None, udp_port: int | None
) -> Iterator[MoldPacket]:
    header = _read(stream, 24)
    if len(header) < 24 or header[:4] not in _PCAP_MAGICS:
        error = ItchDecodeError(0, f"not a pcap file: global header of {len(header)} bytes, 24 expected")
        if errors is None:
            raise error
        errors.record(error)
        errors.skipped_bytes += len(header) + _drain(stream)
        return
    order, nanoseconds = _PCAP_MAGICS[header[:4]]
    linktype = struct.unpack(f"{order}I", header[20:24])[0] & 0x0FFFFFFF
    record_header = struct.Struct(f"{order}IIII")
    offset = 24
    while True:
        head = packet = b""
        try:
            head = _read(stream, 16)
            if not head:
                return
            if len(head) < 16:
                raise ItchDecodeError(offset, "truncated pcap record header at end of file")
            seconds, fraction, captured, _ = record_header.unpack(head)
            packet = _read(stream, captured)
            if len(packet) < captured:
                raise ItchDecodeError(
                    offset + 16, f"truncated pcap record: {captured} bytes announced, {len(packet)} left"
                )
        except ItchDecodeError as exc:
            if errors is None:
                raise
            errors.record(exc)
            errors.skipped_bytes += len(head) + len(packet) + _drain(stream)
            return
        data_offset = offset + 16
        offset = data_offset + captured
        ts_capture = seconds * 1_000_000_000 + (fraction if nanoseconds else fraction * 1000)
        try:
            start, end = _udp_payload(packet, linktype, udp_port)
            yield _mold_packet(packet, start, end, data_offset, ts_capture)
        except _NotItch:
            continue
        except ValueError as exc:
            error = exc if isinstance(exc, ItchDecodeError) else ItchDecodeError(data_offset, str(exc))
            if errors is None:
                raise error from None
            errors.record(error)
            errors.skipped_bytes += captured


# --- public readers --------------------------------------------------------------------------------------


def iter_mold_packets(
    path: str | Path, *, errors: ErrorLog | None = None, udp_port: int | None = None
) -> Iterator[MoldPacket]:
    """Yield every MoldUDP64 packet of a pcap capture (gzip-compressed or not).

    Packets that are not UDP (or not to ``udp_port``, if given) are skipped. A malformed packet raises
    :class:`~itchflow.itch.codec.ItchDecodeError`, or with ``errors`` is recorded there and skipped.
    """
    stream, _ = _open(path)
    try:
        yield from _iter_pcap(stream, errors, udp_port)
    finally:
        stream.close()


def _iter_runs(
    path: str | Path, run: Run[T], errors: ErrorLog | None, chunk_size: int, udp_port: int | None
) -> Iterator[tuple[int, bool, list[T]] | MoldPacket]:
    framing = detect_format(path).framing
    stream, _ = _open(path)
    try:
        if framing == Framing.PCAP:
            yield from _iter_pcap(stream, errors, udp_port)
        elif framing == Framing.PCAPNG:
            error = ItchDecodeError(
                0, "pcapng captures are not supported; convert with `editcap -F pcap IN OUT`"
            )
            if errors is None:
                raise error
            errors.record(error)
            errors.skipped_bytes += _drain(stream)
        elif framing != Framing.EMPTY:
            yield from _iter_stream_runs(stream, run, errors, chunk_size)
    finally:
        stream.close()


def iter_message_batches(
    path: str | Path,
    *,
    errors: ErrorLog | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    udp_port: int | None = None,
) -> Iterator[list[Message]]:
    """Decode a file of any supported framing; yield its messages in lists (one per chunk or packet).

    The fastest way to read a file as message objects. See :func:`iter_messages` for errors.
    """
    for item in _iter_runs(path, decode_run, errors, chunk_size, udp_port):
        if isinstance(item, MoldPacket):
            if item.payloads:
                yield [decode(payload) for _, payload in item.payloads]
        else:
            yield item[2]


def iter_messages(
    path: str | Path,
    *,
    errors: ErrorLog | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    udp_port: int | None = None,
) -> Iterator[tuple[int, Message]]:
    """Yield ``(offset, message)`` for every message of an ITCH file, whatever its framing.

    ``offset`` is the position of the message's type byte in the (decompressed) file. The framing
    (standard, zero-prefix, pcap/MoldUDP64; gzip or not) is detected from the bytes. Bad input raises
    :class:`~itchflow.itch.codec.ItchDecodeError`; with ``errors`` given, each error is recorded there
    instead and reading continues at the next recognizable record (or packet).
    """
    for item in _iter_runs(path, decode_run, errors, chunk_size, udp_port):
        if isinstance(item, MoldPacket):
            for offset, payload in item.payloads:
                yield offset, decode(payload)
        else:
            offset, _, messages = item
            lengths = MESSAGE_LENGTHS
            offset += 2
            for message in messages:
                yield offset, message
                offset += 2 + lengths[message.message_type]


def iter_payloads(
    path: str | Path,
    *,
    errors: ErrorLog | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    udp_port: int | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, payload)`` -- the raw bytes of every message, unframed -- without decoding.

    Each payload has a known type byte and exactly its type's length, so it decodes; otherwise the
    same framing detection, offsets and error handling as :func:`iter_messages`.
    """
    for item in _iter_runs(path, _splitter(), errors, chunk_size, udp_port):
        if isinstance(item, MoldPacket):
            yield from item.payloads
        else:
            offset, _, payloads = item
            offset += 2
            for payload in payloads:
                yield offset, payload
                offset += 2 + len(payload)


def iter_payload_runs(
    path: str | Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE, udp_port: int | None = None
) -> Iterator[list[bytes]]:
    """The payloads of :func:`iter_payloads` (same framing detection, errors raised), as lists of
    consecutive payloads: no offsets, no per-message step (for readers that stream a whole file)."""
    for item in _iter_runs(path, _splitter(), None, chunk_size, udp_port):
        if isinstance(item, MoldPacket):
            yield [payload for _, payload in item.payloads]
        else:
            yield item[2]


# --- writing ---------------------------------------------------------------------------------------------


class ItchWriter:
    """Writes messages to a binary stream in the standard framing (or with zeroed length prefixes)."""

    def __init__(self, stream: IO[bytes], *, zero_prefix: bool = False) -> None:
        self._stream = stream
        self._zero_prefix = zero_prefix
        self.count = 0
        """Messages written so far."""

    def write(self, message: Message) -> None:
        """Encode ``message`` and write it with its length prefix."""
        self._write_payload(encode(message))

    def write_payload(self, payload: bytes | bytearray | memoryview) -> None:
        """Write one raw payload with its length prefix; it must be exactly one valid message."""
        decode(payload)  # validates type and length; ItchDecodeError otherwise
        self._write_payload(bytes(payload))

    def _write_payload(self, payload: bytes) -> None:
        prefix = b"\x00\x00" if self._zero_prefix else len(payload).to_bytes(2, "big")
        self._stream.write(prefix + payload)
        self.count += 1


def write_messages(
    path: str | Path,
    messages: Iterable[Message | bytes],
    *,
    compress: bool | None = None,
    zero_prefix: bool = False,
) -> int:
    """Write messages (objects or raw payloads) to ``path`` in the standard framing; return the count.

    ``compress`` gzips the output; by default it does when ``path`` ends in ``.gz``.
    """
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    opener: Any = gzip.open if compress else open
    with opener(path, "wb") as stream:
        writer = ItchWriter(stream, zero_prefix=zero_prefix)
        for message in messages:
            if isinstance(message, bytes | bytearray | memoryview):
                writer.write_payload(message)
            else:
                writer.write(message)
    return writer.count
