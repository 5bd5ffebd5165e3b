"""ITCH 5.0 in pure Python (no Flink): message types (:mod:`.messages`), the binary codec
(:mod:`.codec`), file framings (:mod:`.framing`) and file statistics (:mod:`.stats`).

The most used names are re-exported here::

    from itchflow.itch import iter_messages, decode, encode, AddOrder
"""

from itchflow.itch.codec import (
    ItchDecodeError,
    ItchEncodeError,
    decode,
    decode_at,
    decode_many,
    encode,
    encode_framed,
    message_length,
)
from itchflow.itch.framing import (
    ErrorLog,
    detect_format,
    iter_message_batches,
    iter_messages,
    iter_payloads,
    write_messages,
)
from itchflow.itch.messages import MESSAGE_LENGTHS, MESSAGE_TYPES, PRICE_SCALE, Message

__all__ = [
    "MESSAGE_LENGTHS",
    "MESSAGE_TYPES",
    "PRICE_SCALE",
    "ErrorLog",
    "ItchDecodeError",
    "ItchEncodeError",
    "Message",
    "decode",
    "decode_at",
    "decode_many",
    "detect_format",
    "encode",
    "encode_framed",
    "iter_message_batches",
    "iter_messages",
    "iter_payloads",
    "message_length",
    "write_messages",
]
