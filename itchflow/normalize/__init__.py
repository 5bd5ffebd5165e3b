"""Normalization: raw ITCH bundles -> one clean, columnar event model (pure core, no pyflink).

* :func:`normalize_bundle` -- an ``ItchBundle`` from ``market-data-raw`` to a :class:`NormalizedBundle`
  with a run per symbol (plus the segments and messages it refused, as
  :class:`~itchflow.avro.InvalidRecord`); :func:`normalize_messages` for decoded messages of one symbol
* :func:`check_sequence` -- per-symbol gap/duplicate tracking on each segment's envelope
* :func:`iter_events` -- a bundle's events as frozen dataclasses (:mod:`.events`)
* :func:`ts_event_ns` / :func:`midnight_epoch_ns` -- ITCH time to UTC epoch nanoseconds

The ``market-data-normalized`` value's Avro encoding is :mod:`itchflow.avro.normalized`; the
normalization job's core is :func:`itchflow.pipeline.normalize_stage.normalize_record`. See
``schemas/README.md`` for the record layout and the column encodings.
"""

from itchflow.normalize.bundle import NormalizedBundle, NormalizedRun, iter_events
from itchflow.normalize.clock import NANOS_PER_DAY, NEW_YORK, midnight_epoch_ns, ts_event_ns
from itchflow.normalize.columns import ColumnViews, Detail, EventColumns
from itchflow.normalize.events import (
    FLAG_HAS_PRICE,
    FLAG_PRINTABLE,
    PRICE_DECIMALS,
    AuxiliaryMessage,
    BrokenTrade,
    CrossTrade,
    Event,
    EventKind,
    NormalizedEvent,
    OperationalHalt,
    OrderAdded,
    OrderCancelled,
    OrderDeleted,
    OrderExecuted,
    OrderReplaced,
    RegShoRestriction,
    StockDirectory,
    SystemEvent,
    Trade,
    TradingState,
)
from itchflow.normalize.normalizer import BundleResult, normalize_bundle, normalize_messages
from itchflow.normalize.sequence import SequenceCheck, SequenceState, SequenceStatus, check_sequence

__all__ = [
    "FLAG_HAS_PRICE",
    "FLAG_PRINTABLE",
    "NANOS_PER_DAY",
    "NEW_YORK",
    "PRICE_DECIMALS",
    "AuxiliaryMessage",
    "BrokenTrade",
    "ColumnViews",
    "CrossTrade",
    "Detail",
    "Event",
    "EventColumns",
    "EventKind",
    "BundleResult",
    "NormalizedBundle",
    "NormalizedEvent",
    "NormalizedRun",
    "OperationalHalt",
    "OrderAdded",
    "OrderCancelled",
    "OrderDeleted",
    "OrderExecuted",
    "OrderReplaced",
    "RegShoRestriction",
    "SequenceCheck",
    "SequenceState",
    "SequenceStatus",
    "StockDirectory",
    "SystemEvent",
    "Trade",
    "TradingState",
    "check_sequence",
    "iter_events",
    "midnight_epoch_ns",
    "normalize_bundle",
    "normalize_messages",
    "ts_event_ns",
]
