"""The normalized event model's packed columns: one little-endian array per field, one entry per event.

:class:`EventColumns` holds the columns of a :class:`~itchflow.normalize.bundle.NormalizedBundle`
(``schemas/README.md`` describes each). :meth:`EventColumns.views` gives zero-copy typed views
(``memoryview.cast``); ``numpy.frombuffer(column, "<i8")`` works too. Attributes that only a few
kinds have travel in the sparse ``details`` list (:data:`Detail`), linked by event index.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.normalize.events import (
    EventKind,
)

BYTE_COLUMNS = ("kind", "flags", "side")
"""uint8 columns."""
SIGNED_COLUMNS = ("ts_event", "seq", "price")
"""int64 little-endian columns."""
UNSIGNED_COLUMNS = ("order_ref", "new_order_ref", "match_number", "shares")
"""uint64 little-endian columns."""

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"
_MAX_KIND = max(EventKind)

Detail = tuple[str, dict[str, Any]]
"""A sparse attribute record: (short record name, fields including ``index``), e.g.
``("Attribution", {"index": 3, "mpid": "GSCO"})``."""


class ColumnViews(NamedTuple):
    """Typed, zero-copy views of the columns: index ``i`` is event ``i``."""

    kind: memoryview | array[int]
    flags: memoryview | array[int]
    side: memoryview | array[int]
    ts_event: memoryview | array[int]
    seq: memoryview | array[int]
    order_ref: memoryview | array[int]
    new_order_ref: memoryview | array[int]
    match_number: memoryview | array[int]
    shares: memoryview | array[int]
    price: memoryview | array[int]


def _view(column: bytes, typecode: Literal["q", "Q"]) -> memoryview | array[int]:
    if _LITTLE_ENDIAN_HOST:
        return memoryview(column).cast(typecode)
    values = array(typecode, column)  # pragma: no cover - big-endian hosts only
    values.byteswap()  # pragma: no cover
    return values  # pragma: no cover


def pack_int64(values: list[int] | tuple[int, ...]) -> bytes:
    """Little-endian int64 array bytes of ``values``."""
    return _pack("q", values)


def pack_uint64(values: list[int] | tuple[int, ...]) -> bytes:
    """Little-endian uint64 array bytes of ``values``."""
    return _pack("Q", values)


def _pack(typecode: str, values: list[int] | tuple[int, ...]) -> bytes:
    packed = array(typecode, values)
    if not _LITTLE_ENDIAN_HOST:  # pragma: no cover - big-endian hosts only
        packed.byteswap()
    return packed.tobytes()


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The packed per-event columns of a batch (see the schema docs for each column)."""

    kind: bytes
    flags: bytes
    side: bytes
    ts_event: bytes
    seq: bytes
    order_ref: bytes
    new_order_ref: bytes
    match_number: bytes
    shares: bytes
    price: bytes

    def views(self) -> ColumnViews:
        """Zero-copy typed views: uint8 for kind/flags/side, int64 or uint64 for the rest."""
        return ColumnViews(
            memoryview(self.kind),
            memoryview(self.flags),
            memoryview(self.side),
            _view(self.ts_event, "q"),
            _view(self.seq, "q"),
            _view(self.order_ref, "Q"),
            _view(self.new_order_ref, "Q"),
            _view(self.match_number, "Q"),
            _view(self.shares, "Q"),
            _view(self.price, "q"),
        )


EMPTY_COLUMNS = EventColumns(b"", b"", b"", b"", b"", b"", b"", b"", b"", b"")


def check_columns(columns: EventColumns, count: int) -> None:
    """Raise ``bad_columns`` unless every column holds ``count`` entries of known kinds."""
    if count < 0:
        raise InvalidRecord(InvalidReason.BAD_COLUMNS, f"event_count {count}")
    for name in BYTE_COLUMNS:
        if len(getattr(columns, name)) != count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS,
                f"column {name}: {len(getattr(columns, name))} bytes for {count} events",
            )
    for name in SIGNED_COLUMNS + UNSIGNED_COLUMNS:
        if len(getattr(columns, name)) != 8 * count:
            raise InvalidRecord(
                InvalidReason.BAD_COLUMNS,
                f"column {name}: {len(getattr(columns, name))} bytes for {count} events of 8 bytes",
            )
    if count and (min(columns.kind) < 1 or max(columns.kind) > _MAX_KIND):
        raise InvalidRecord(
            InvalidReason.BAD_COLUMNS,
            f"unknown event kind in {sorted(set(columns.kind))} (this reader knows 1..{_MAX_KIND})",
        )
