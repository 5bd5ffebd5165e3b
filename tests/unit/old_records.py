"""Values that older itchflow versions wrote and the current readers must still take (nothing writes
them any more): a per-symbol ``ItchBatch`` on ``market-data-raw`` and a per-symbol
``NormalizedBatch`` on ``market-data-normalized``. Built straight from the published schemas
(``schemas/itch/ItchBatch.avsc``, ``schemas/normalized/NormalizedBatch.avsc``), field by field as
those versions encoded them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from itchflow.avro import default_registry, message_to_record, pack_payloads, record_name
from itchflow.avro.normalized import NORMALIZED_SCHEMA
from itchflow.avro.raw import BATCH_SCHEMA
from itchflow.itch.codec import decode
from itchflow.normalize.bundle import NormalizedBundle
from itchflow.normalize.columns import EventColumns


def itch_batch_value(
    payloads: Sequence[bytes],
    *,
    venue: str,
    trading_date: date,
    session: str,
    symbol: str,
    stock_locate: int,
    batch_sequence: int,
    first_message_seq: int,
    produced_at_ns: int,
    message_count: int | None = None,
    typed: bool = False,
) -> bytes:
    """An ``ItchBatch`` value of ``payloads`` (one symbol's ITCH messages); ``typed`` adds the
    optional typed mirror (one per-type record per message)."""
    messages = None
    if typed:
        messages = [(record_name(type(m)), message_to_record(m)) for m in map(decode, payloads)]
    datum = {
        "venue": venue,
        "trading_date": trading_date,
        "session": session,
        "symbol": symbol,
        "stock_locate": stock_locate,
        "batch_sequence": batch_sequence,
        "first_message_seq": first_message_seq,
        "message_count": len(payloads) if message_count is None else message_count,
        "first_timestamp": int.from_bytes(payloads[0][5:11], "big"),
        "last_timestamp": int.from_bytes(payloads[-1][5:11], "big"),
        "produced_at_ns": produced_at_ns,
        "payloads": pack_payloads(payloads),
        "messages": messages,
    }
    return default_registry().encode(BATCH_SCHEMA, datum)


def normalized_batch_value(bundle: NormalizedBundle) -> bytes:
    """The ``NormalizedBatch`` value an older normalizer wrote for the one run of ``bundle``."""
    (run,) = bundle.runs
    datum = {
        "venue": bundle.venue,
        "trading_date": bundle.trading_date,
        "symbol": run.symbol,
        "stock_locate": run.stock_locate,
        "session": bundle.session,
        "batch_sequence": run.batch_sequence,
        "sequence_status": run.sequence_status.value,
        "gap_batches": run.gap_batches,
        "gap_messages": run.gap_messages,
        "price_scale": bundle.price_scale,
        "event_count": bundle.event_count,
        "min_ts_event": bundle.min_ts_event,
        "max_ts_event": bundle.max_ts_event,
        "ts_produced": bundle.ts_produced,
        "ts_recv": bundle.ts_recv,
        **{name: getattr(bundle.columns, name) for name in EventColumns.__slots__},
        "details": [(f"itchflow.normalized.v1.{name}", fields) for name, fields in bundle.details],
    }
    return default_registry().encode(NORMALIZED_SCHEMA, datum)
