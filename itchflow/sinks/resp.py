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


class IntStreamEncoder:
    """``XADD key [MAXLEN ~ n] <ms>-<seq> field value ...`` for one stream whose fields are all integers.

    Built once per stream: the key, the trimming clause and the field names are encoded up front,
    and a command template is cached per combination of value lengths (few in practice), so
    :meth:`encode` is two ``%`` formats (about 6x faster than :func:`xadd`, for per-event streams).
    """

    __slots__ = ("_head", "_names", "_format", "_templates")

    MAX_TEMPLATES = 4096
    """Cached templates before the cache starts over (bounds memory on unusual data)."""

    def __init__(self, key: str, fields: Sequence[str], maxlen: int | None = None) -> None:
        if not fields:
            raise ValueError("a stream entry needs at least one field")
        trim: list[object] = ["MAXLEN", "~", maxlen] if maxlen else []
        argument_count = 3 + len(trim) + 2 * len(fields)
        # the command up to the id: a partial command with its array header replaced
        partial = command("XADD", key, *trim)
        self._head = b"*%d\r\n" % argument_count + partial[partial.index(b"\r\n") + 2 :]
        self._names = tuple(command(name)[4:] for name in fields)  # "$len\r\nname\r\n" each
        self._format = b" ".join([b"%d-%d"] + [b"%d"] * len(fields))
        self._templates: dict[tuple[int, ...], bytes] = {}

    def encode(self, ms: int, sequence: int, values: Sequence[int]) -> bytes:
        """The command adding entry ``{ms}-{sequence}``; ``values`` in the order of the fields."""
        texts = (self._format % (ms, sequence, *values)).split(b" ")
        if len(texts) != len(self._names) + 1:
            raise ValueError(f"{len(values)} values for {len(self._names)} fields")
        lengths = tuple(map(len, texts))
        template = self._templates.get(lengths)
        if template is None:
            template = self._template(lengths)
        return template % tuple(texts)

    def _template(self, lengths: tuple[int, ...]) -> bytes:
        parts = [self._head.replace(b"%", b"%%"), b"$%d\r\n%%s\r\n" % lengths[0]]
        for name, length in zip(self._names, lengths[1:], strict=True):
            parts += (name.replace(b"%", b"%%"), b"$%d\r\n%%s\r\n" % length)
        if len(self._templates) >= self.MAX_TEMPLATES:
            self._templates.clear()
        template = self._templates[lengths] = b"".join(parts)
        return template
