"""ClickHouse RowBinary encoding for the column types our tables use.

RowBinary is ClickHouse's cheapest input format to parse: fixed-width little-endian numbers,
LEB128-length-prefixed strings and arrays, no escaping. A :class:`RowBinaryEncoder` is built once
per table from its column types and then turns tuples into bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence

Writer = Callable[[bytearray, object], None]

_FIXED = {
    "Int64": struct.Struct("<q"),
    "UInt64": struct.Struct("<Q"),
    "Int32": struct.Struct("<i"),
    "UInt32": struct.Struct("<I"),
    "UInt8": struct.Struct("<B"),
    "Float64": struct.Struct("<d"),
    "Date": struct.Struct("<H"),  # days since 1970-01-01
    "DateTime64(9, 'UTC')": struct.Struct("<q"),  # nanoseconds since the epoch
}


def _int128(out: bytearray, value: object) -> None:
    out += int(value).to_bytes(16, "little", signed=True)  # type: ignore[call-overload]


def _leb128(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _string(out: bytearray, value: object) -> None:
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]
    _leb128(out, len(data))
    out += data


def encode_string(value: str | bytes) -> bytes:
    """One ``String``/``LowCardinality(String)`` value: LEB128 length, then the UTF-8 bytes.

    Encode constant columns (venue, symbol) once and prepend the bytes to every row.
    """
    out = bytearray()
    _string(out, value)
    return bytes(out)


def fixed_width_struct(column_types: Sequence[str]) -> struct.Struct:
    """One ``struct`` packing a run of fixed-width columns (integers, ``DateTime64(9, 'UTC')``).

    A hot path packs such a run with a single call instead of one writer call per value.
    """
    codes = []
    for column_type in column_types:
        packer = _FIXED.get(column_type.strip())
        if packer is None:
            raise ValueError(f"RowBinary: {column_type!r} is not a fixed-width column type")
        codes.append(packer.format[1:])
    return struct.Struct("<" + "".join(codes))


def _fixed(packer: struct.Struct) -> Writer:
    pack = packer.pack

    def write(out: bytearray, value: object) -> None:
        out += pack(value)

    return write


def _array(element_type: str) -> Writer:
    if element_type in _FIXED:
        code = _FIXED[element_type].format[1:]

        packers: dict[int, Callable[..., bytes]] = {}

        def write_fixed(out: bytearray, values: object) -> None:
            items = values if isinstance(values, list | tuple) else list(values)  # type: ignore[call-overload]
            count = len(items)
            if count < 0x80:
                out.append(count)
            else:
                _leb128(out, count)
            pack = packers.get(count)
            if pack is None:
                pack = packers[count] = struct.Struct(f"<{count}{code}").pack
            out += pack(*items)

        return write_fixed
    element = writer_for(element_type)

    def write(out: bytearray, values: object) -> None:
        items = list(values)  # type: ignore[call-overload]
        _leb128(out, len(items))
        for item in items:
            element(out, item)

    return write


def writer_for(column_type: str) -> Writer:
    """The writer of one value of ``column_type`` (a ClickHouse type name as in our DDL)."""
    column_type = column_type.strip()
    if column_type in _FIXED:
        return _fixed(_FIXED[column_type])
    if column_type in ("String", "LowCardinality(String)"):
        return _string
    if column_type == "Int128":
        return _int128
    if column_type.startswith("Array(") and column_type.endswith(")"):
        return _array(column_type[6:-1])
    raise ValueError(f"RowBinary: unsupported column type {column_type!r}")


class RowBinaryEncoder:
    """Encodes rows (tuples in column order) of one table."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        self.columns = tuple(columns)
        self._writers = tuple(writer_for(column_type) for _, column_type in columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def encode(self, rows: Iterable[Sequence[object]]) -> bytes:
        out = bytearray()
        writers = self._writers
        for row in rows:
            for write, value in zip(writers, row, strict=True):
                write(out, value)
        return bytes(out)
