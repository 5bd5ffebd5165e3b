"""Statistics of an ITCH 5.0 file: message counts per type, symbols, time span, decode errors.

``compute_stats(path)`` reads the whole file in any supported framing (see :mod:`.framing`), continuing
past bad input, and returns an :class:`ItchStats`. Bad bytes never raise here: they are counted in
``errors`` with the first few described in ``error_samples``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itchflow.itch.codec import ItchDecodeError
from itchflow.itch.framing import ErrorLog, detect_format, iter_message_batches
from itchflow.itch.messages import MESSAGE_TYPES, Message

__all__ = ["SYMBOL_MESSAGE_TYPES", "ItchStats", "StatsAccumulator", "compute_stats", "format_timestamp"]

SYMBOL_MESSAGE_TYPES = frozenset("RAFPQ")
"""Message types whose ``stock`` field contributes to the distinct symbols."""

NANOS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ItchStats:
    """What one ITCH file holds. Timestamps are nanoseconds since midnight, in file order."""

    path: str
    format: str
    messages: int
    by_type: dict[str, int]
    symbols: tuple[str, ...]
    first_timestamp: int | None
    last_timestamp: int | None
    errors: int
    skipped_bytes: int
    error_samples: tuple[str, ...]

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``by_type`` maps type letters to counts, ``symbols`` is a sorted list."""
        return {
            "path": self.path,
            "format": self.format,
            "messages": self.messages,
            "by_type": dict(self.by_type),
            "symbols": list(self.symbols),
            "symbol_count": len(self.symbols),
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "errors": self.errors,
            "skipped_bytes": self.skipped_bytes,
            "error_samples": list(self.error_samples),
        }


@dataclass(slots=True)
class StatsAccumulator:
    """Mutable running totals; feed it batches of messages, then call :meth:`result`."""

    counts: dict[str, int] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)
    first_timestamp: int | None = None
    last_timestamp: int | None = None

    def add(self, messages: Iterable[Message]) -> None:
        """Count a batch of messages (in file order)."""
        counts = self.counts
        symbols = self.symbols
        last: Message | None = None
        for message in messages:
            message_type = message.message_type
            counts[message_type] = counts.get(message_type, 0) + 1
            if message_type in SYMBOL_MESSAGE_TYPES:
                symbols.add(message.stock)  # type: ignore[union-attr]
            if last is None and self.first_timestamp is None:
                self.first_timestamp = message.timestamp
            last = message
        if last is not None:
            self.last_timestamp = last.timestamp

    def result(self, path: str, file_format: str, errors: ErrorLog) -> ItchStats:
        """Freeze the totals into an :class:`ItchStats`; ``by_type`` follows the specification's order."""
        by_type = {letter: self.counts[letter] for letter in MESSAGE_TYPES if letter in self.counts}
        return ItchStats(
            path=path,
            format=file_format,
            messages=sum(by_type.values()),
            by_type=by_type,
            symbols=tuple(sorted(self.symbols)),
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            errors=errors.count,
            skipped_bytes=errors.skipped_bytes,
            error_samples=tuple(str(sample) for sample in errors.samples),
        )


def compute_stats(path: str | Path, *, max_error_samples: int = 20) -> ItchStats:
    """Read ``path`` completely (any framing, gzip or not) and return its statistics.

    Decode errors are counted, not raised. ``OSError`` (missing or unreadable file) propagates.
    """
    errors = ErrorLog(max_samples=max_error_samples)
    accumulator = StatsAccumulator()
    file_format = "unknown"
    try:
        file_format = str(detect_format(path))
        for batch in iter_message_batches(path, errors=errors):
            accumulator.add(batch)
    except ItchDecodeError as exc:  # unrecoverable (e.g. a broken pcap header): count, stop reading
        errors.record(exc)
    return accumulator.result(str(path), file_format, errors)


def format_timestamp(timestamp: int | None) -> str:
    """``HH:MM:SS.nnnnnnnnn`` for nanoseconds since midnight (``-`` for None)."""
    if timestamp is None:
        return "-"
    seconds, nanos = divmod(timestamp, NANOS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{nanos:09d}"
