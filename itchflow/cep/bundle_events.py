"""The detectors' events of one normalized record, in a streaming job: what
:func:`~itchflow.cep.files.venue_events` makes of a file, from the record and its books' rows.

* a :class:`~itchflow.cep.detectors.SystemEvent` per System Event (the market-wide run);
* a :class:`~itchflow.cep.detectors.TradingAction` per Stock Trading Action;
* a :class:`~itchflow.cep.detectors.QuoteChange` per ``top_of_book`` row the books wrote (a row also
  when only the order count at the best price changed: the same quote again changes nothing);
* :class:`~itchflow.cep.detectors.Activity` for the messages of each symbol **thinned** to the first
  and the last of each ``resolution_ns`` bucket of event time (and of the record): every stretch
  between two kept messages is then either shorter than ``2 x resolution_ns`` or a true silence with
  the same ends, so with ``resolution_ns <= stale threshold / 2`` the stale symbols are exactly the
  ones every message would give, at a fraction of the events.

Events come sorted by (event time, system events first, sequence): a symbol's in feed order.
"""

from __future__ import annotations

from itchflow.analytics.top_of_book import decode_rows
from itchflow.cep.detectors import Activity, Event, QuoteChange, SystemEvent, TradingAction
from itchflow.normalize.bundle import NormalizedBundle, run_details


def activity_resolution_ns(stale_after_ms: int) -> int:
    """The thinning that keeps the stale symbols of ``stale_after_ms`` exact (see the module docstring)."""
    return max(1, stale_after_ms * 1_000_000 // 2)


def bundle_events(bundle: NormalizedBundle, tops: bytes, resolution_ns: int) -> list[Event]:
    """The detector events of ``bundle`` and its books' ``top_of_book`` rows ``tops``."""
    venue = bundle.venue
    views = bundle.columns.views()
    ts_column, seq_column = views.ts_event, views.seq
    items: list[tuple[int, int, int, Event]] = []
    append = items.append
    for run, details in zip(bundle.runs, run_details(bundle), strict=True):
        symbol, start = run.symbol, run.start
        if not symbol:
            for name, fields in details:
                if name == "SystemEventDetail":
                    at = start + fields["index"]
                    ts = ts_column[at]
                    append((ts, 0, seq_column[at], SystemEvent(ts, venue, fields["event_code"])))
            continue
        for name, fields in details:
            if name == "TradingStateDetail":
                at = start + fields["index"]
                ts = ts_column[at]
                action = TradingAction(ts, venue, symbol, fields["trading_state"], fields["reason"])
                append((ts, 1, seq_column[at], action))
        times = ts_column[start : start + run.count].tolist()
        seqs = seq_column[start : start + run.count].tolist()
        last = len(times) - 1
        buckets = [ts // resolution_ns for ts in times]
        for index, ts in enumerate(times):
            bucket = buckets[index]
            if index in (0, last) or bucket != buckets[index - 1] or bucket != buckets[index + 1]:
                append((ts, 1, seqs[index], Activity(ts, venue, symbol)))
    if tops:
        for key, (ts, seq, bid, bid_shares, _, ask, ask_shares, _) in decode_rows(tops):
            append((ts, 1, seq, QuoteChange(ts, key.venue, key.symbol, (bid, bid_shares, ask, ask_shares))))
    items.sort(key=_order)
    return [item[3] for item in items]


def _order(item: tuple[int, int, int, Event]) -> tuple[int, int, int]:
    return item[0], item[1], item[2]
