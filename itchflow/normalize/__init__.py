"""Normalization: raw ITCH batches -> one clean, columnar event model (pure core, no pyflink).

* :func:`normalize_batch` -- an ``ItchBatch`` from ``market-data-raw`` to a :class:`NormalizedBatch`
  (plus the messages it refused, as :class:`~itchflow.avro.InvalidRecord`)
* :func:`check_sequence` -- per-symbol gap/duplicate tracking on the batch envelope
* :func:`encode_normalized_batch` / :func:`decode_normalized_batch` -- the ``market-data-normalized`` value
* :func:`iter_events` -- the batch's events as frozen dataclasses (:mod:`.events`)
* :func:`ts_event_ns` / :func:`midnight_epoch_ns` -- ITCH time to UTC epoch nanoseconds

Per Kafka record of ``market-data-raw`` (keyed by symbol), the normalization job does::

    try:
        raw = decode_batch(value)
        check, state = check_sequence(
            state, session=raw.session, batch_sequence=raw.batch_sequence,
            first_message_seq=raw.first_message_seq, message_count=raw.message_count,
        )
        if check.status is SequenceStatus.DUPLICATE:
            ...  # count it, emit nothing
        result = normalize_batch(raw, sequence=check, ts_recv=time.time_ns())
        ...  # emit encode_normalized_batch(result.batch); dead-letter every result.rejected
    except InvalidRecord as error:
        ...  # emit dead_letter_for(error, source_topic=..., ...)

See ``schemas/README.md`` for the record layout and the column encodings.
"""

from itchflow.normalize.batch import (
    ColumnViews,
    Detail,
    EventColumns,
    NormalizedBatch,
    iter_events,
)
from itchflow.normalize.clock import NANOS_PER_DAY, NEW_YORK, midnight_epoch_ns, ts_event_ns
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
from itchflow.normalize.normalizer import NormalizeResult, normalize_batch, normalize_messages
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
    "NormalizeResult",
    "NormalizedBatch",
    "NormalizedEvent",
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
    "normalize_batch",
    "normalize_messages",
    "ts_event_ns",
]
