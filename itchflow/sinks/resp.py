"""Redis commands as RESP bytes, so a batch of commands travels as one pipelined write."""

from __future__ import annotations

from collections.abc import Sequence


def _arg(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float):
        return repr(value).encode("ascii")
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def command(*args: object) -> bytes:
    """One RESP array of bulk strings: ``*N\\r\\n$len\\r\\narg\\r\\n...``."""
    parts = [b"*%d\r\n" % len(args)]
    for value in args:
        data = _arg(value)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def hset(key: str, mapping: Sequence[tuple[str, object]]) -> bytes:
    flat: list[object] = ["HSET", key]
    for field, value in mapping:
        flat += [field, value]
    return command(*flat)


def xadd(key: str, entry_id: str, fields: Sequence[tuple[str, object]], maxlen: int | None = None) -> bytes:
    """XADD with an explicit id (replay-safe: Redis refuses an id not above the last one)."""
    flat: list[object] = ["XADD", key]
    if maxlen:
        flat += ["MAXLEN", "~", maxlen]
    flat.append(entry_id)
    for field, value in fields:
        flat += [field, value]
    return command(*flat)
