"""Avro encoding of every itchflow topic, with schemas loaded from ``schemas/*.avsc``.

Values are Avro single-object encoded (``C3 01`` + 8-byte CRC-64-AVRO writer fingerprint + body);
readers resolve any published writer revision against the current schema. See ``schemas/README.md``
for the record designs and the evolution rules.

Public API:

* raw feed (``market-data-raw``): :mod:`itchflow.avro.bundle` (``ItchBundle``: ``make_bundle``,
  ``encode_bundle``, ``decode_raw``), :func:`pack_payloads`, :func:`iter_payloads`; per-type ITCH
  records: :func:`message_to_record`, :func:`record_to_message`, :func:`encode_message`,
  :func:`decode_message`
* normalized events (``market-data-normalized``): :mod:`itchflow.avro.normalized`
  (``encode_normalized_bundle``, ``decode_normalized``)
* dead letters: :class:`DeadLetter`, :func:`dead_letter_for`, :func:`encode_dead_letter`,
  :func:`decode_dead_letter`
* bad input: :class:`InvalidRecord` with an :class:`InvalidReason`
* schemas: :class:`SchemaRegistry`, :func:`default_registry`, :func:`schemas_dir`
"""

from itchflow.avro.deadletter import (
    DEAD_LETTER_SCHEMA,
    DeadLetter,
    dead_letter_for,
    decode_dead_letter,
    encode_dead_letter,
)
from itchflow.avro.invalid import InvalidReason, InvalidRecord
from itchflow.avro.raw import (
    BATCH_SCHEMA,
    decode_message,
    encode_message,
    iter_payloads,
    message_to_record,
    pack_payloads,
    record_name,
    record_to_message,
)
from itchflow.avro.registry import (
    HEADER_SIZE,
    SCHEMAS_DIR_ENV,
    SchemaEntry,
    SchemaError,
    SchemaRegistry,
    default_registry,
    schemas_dir,
)

__all__ = [
    "BATCH_SCHEMA",
    "DEAD_LETTER_SCHEMA",
    "HEADER_SIZE",
    "SCHEMAS_DIR_ENV",
    "DeadLetter",
    "InvalidReason",
    "InvalidRecord",
    "SchemaEntry",
    "SchemaError",
    "SchemaRegistry",
    "dead_letter_for",
    "decode_dead_letter",
    "decode_message",
    "default_registry",
    "encode_dead_letter",
    "encode_message",
    "iter_payloads",
    "message_to_record",
    "pack_payloads",
    "record_name",
    "record_to_message",
    "schemas_dir",
]
