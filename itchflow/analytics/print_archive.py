"""A trading day's eligible prints of one (venue, symbol), kept compactly, so that a broken trade can
fold any bar of the day again after the bar stage has let its window go.

ITCH sends a Broken Trade (B) any time later in the day, hours after its print for a quiet symbol,
while the bar stage keeps a window only until the watermark passes its end plus the allowed
lateness. :class:`DayArchive` is what remains of a symbol's day after that: every print that counted
in some bar, one row each in six typed columns (``array``, 41 bytes per print: five 64-bit integers
and a byte of flags), with

* **which bars it counted in**: bit ``i`` of its flags for the stage's ``i``-th interval (a print
  late for its 1 s window may still count in its 1 m and 5 m ones), so a window folded again from
  the archive has exactly the prints its bar had;
* **whether a break took it** (:data:`BROKEN`); :meth:`DayArchive.find` finds the newest unbroken
  print with a match number (ITCH match numbers are unique per day; a break takes one print).

An archive is *complete* when it holds every print of its trading date that counted in a bar since
the stage started; the stage folds bars again only from complete archives (an incomplete one, e.g.
after the end of the feed cleared it, keeps just its date). Rows go to and come from the operator's
state as packed bytes (:data:`ROW`), :meth:`DayArchive.rows` and :meth:`DayArchive.extend`.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left

ROW = struct.Struct("<qqqqqB")
"""One archived print packed: ts_event, seq, match number, price, shares, flags (41 bytes)."""
BROKEN = 0x80
"""Flag of a print a broken trade took."""
MAX_INTERVALS = 7
"""Interval bits per print (the eighth bit is :data:`BROKEN`)."""
_RECENT = 256  # rows that :meth:`DayArchive.find` checks newest first before it scans the rest

PrintTuple = tuple[int, int, int, int, int]
"""(ts_event, seq, match_number, price, shares), :class:`~itchflow.analytics.bars.Print`'s order."""


class DayArchive:
    """The eligible prints of one (venue, symbol) on ``trading_date`` (days since 1970-01-01), in
    order of arrival. Mutable: :meth:`append`, :meth:`extend`, :meth:`mark_broken`."""

    __slots__ = ("trading_date", "complete", "ts_event", "seq", "match_number", "price", "shares", "flags",
                 "_ordered")  # fmt: skip

    def __init__(self, trading_date: int, complete: bool = True) -> None:
        self.trading_date = trading_date
        #: holds every print of its day that counted in a bar (else it stays empty)
        self.complete = complete
        self.ts_event = array("q")
        self.seq = array("q")
        self.match_number = array("q")
        self.price = array("q")
        self.shares = array("q")
        self.flags = array("B")
        self._ordered = True  # ts_event never decreases: windows are found by bisection

    def __len__(self) -> int:
        return len(self.flags)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows (the columns' items; Python adds some spare capacity per column)."""
        columns = (self.ts_event, self.seq, self.match_number, self.price, self.shares, self.flags)
        return sum(column.itemsize * len(column) for column in columns)

    def append(self, p: PrintTuple, counted: int) -> bytes:
        """Archive print ``p``, counted in the bars of the intervals whose bits are set in
        ``counted``; returns its packed row (for the operator's state)."""
        row = (p[0], p[1], p[2], p[3], p[4], counted)
        self._push(row)
        return ROW.pack(*row)

    def extend(self, rows: bytes) -> None:
        """Append packed rows (:meth:`append`'s or :meth:`rows`' bytes), flags as they were."""
        for row in ROW.iter_unpack(rows):
            self._push(row)

    def _push(self, row: tuple[int, int, int, int, int, int]) -> None:
        ts_event, seq, match_number, price, shares, flags = row
        if self._ordered and self.ts_event and ts_event < self.ts_event[-1]:
            self._ordered = False
        self.ts_event.append(ts_event)
        self.seq.append(seq)
        self.match_number.append(match_number)
        self.price.append(price)
        self.shares.append(shares)
        self.flags.append(flags)

    def rows(self) -> bytes:
        """Every row packed, broken ones with their flag: :meth:`extend` of an empty archive of the
        same day gives this archive back."""
        pack = ROW.pack
        return b"".join(
            pack(*row)
            for row in zip(self.ts_event, self.seq, self.match_number, self.price, self.shares, self.flags,
                           strict=True)
        )  # fmt: skip

    def find(self, match_number: int) -> int:
        """Position of the newest unbroken print with ``match_number``; -1 if there is none."""
        matches, flags = self.match_number, self.flags
        recent = max(0, len(matches) - _RECENT)
        for position in range(len(matches) - 1, recent - 1, -1):  # breaks mostly take recent prints
            if matches[position] == match_number and not flags[position] & BROKEN:
                return position
        found = position = -1
        while True:  # the older rows: array.index scans in C, the last unbroken hit is the newest
            try:
                position = matches.index(match_number, position + 1, recent)
            except ValueError:
                return found
            if not flags[position] & BROKEN:
                found = position

    def mark_broken(self, position: int) -> int:
        """A break took the print at ``position``; returns its interval bits."""
        flags = self.flags[position]
        self.flags[position] = flags | BROKEN
        return flags & ~BROKEN

    def window(self, bit: int, start: int, end: int) -> list[PrintTuple]:
        """The unbroken prints that counted in the bars of interval bit ``bit`` with ``start <=
        ts_event < end``, in order of arrival."""
        ts, flags = self.ts_event, self.flags
        if self._ordered:
            low, high = bisect_left(ts, start), bisect_left(ts, end)
        else:
            low, high = 0, len(ts)
        seq, matches, price, shares = self.seq, self.match_number, self.price, self.shares
        return [
            (ts[i], seq[i], matches[i], price[i], shares[i])
            for i in range(low, high)
            if start <= ts[i] < end and flags[i] & bit and not flags[i] & BROKEN
        ]
