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


class _IntFieldsCommand:
    """A command ``<head arguments> [<ms>-<seq>] field value ...`` whose values are all integers.

    Built once per key: the head and the field names are encoded up front, and a template of the
    part after the head is cached per combination of value lengths (few in practice; the cache is
    shared by every key with the same fields), so encoding is two ``%`` formats (about 6x faster
    than :func:`command`; for commands sent per event or per batch).
    """

    __slots__ = ("_head", "_names", "_format", "_templates")

    MAX_TEMPLATES = 4096
    """Cached templates before the cache starts over (bounds memory on unusual data)."""

    def __init__(self, head: Sequence[object], fields: Sequence[str], *, stream_id: bool) -> None:
        if not fields:
            raise ValueError("a command with integer fields needs at least one field")
        argument_count = len(head) + stream_id + 2 * len(fields)
        partial = command(*head)  # its array header counts the head only: replaced below
        self._head = b"*%d\r\n" % argument_count + partial[partial.index(b"\r\n") + 2 :]
        names = tuple(command(name)[4:] for name in fields)  # "$len\r\nname\r\n" each
        self._names = (b"", *names) if stream_id else names
        self._format = b" ".join(([b"%d-%d"] if stream_id else []) + [b"%d"] * len(fields))
        self._templates = _TEMPLATES.setdefault(self._names, {})

    @property
    def layout(self) -> tuple[bytes, tuple[bytes, ...]]:
        """(the command up to its first value -- a stream's entry id --, each field name as a RESP bulk
        string): what a compiled encoder needs to write the same bytes (the C book does)."""
        return self._head, tuple(name for name in self._names if name)

    def _encode(self, values: tuple[int, ...]) -> bytes:
        texts = (self._format % values).split(b" ")
        lengths = tuple(map(len, texts))
        template = self._templates.get(lengths)
        if template is None:
            template = self._template(lengths)
        return self._head + template % tuple(texts)

    def _template(self, lengths: tuple[int, ...]) -> bytes:
        parts: list[bytes] = []
        for name, length in zip(self._names, lengths, strict=True):
            parts += (name.replace(b"%", b"%%"), b"$%d\r\n%%s\r\n" % length)
        if len(self._templates) >= self.MAX_TEMPLATES:
            self._templates.clear()
        template = self._templates[lengths] = b"".join(parts)
        return template


_TEMPLATES: dict[tuple[bytes, ...], dict[tuple[int, ...], bytes]] = {}
"""Templates of :class:`_IntFieldsCommand`, by encoded field names, then by value lengths."""


class IntStreamEncoder(_IntFieldsCommand):
    """``XADD key [MAXLEN ~ n] <ms>-<seq> field value ...`` for a stream whose fields are all integers."""

    __slots__ = ()

    def __init__(self, key: str, fields: Sequence[str], maxlen: int | None = None) -> None:
        trim: list[object] = ["MAXLEN", "~", maxlen] if maxlen else []
        super().__init__(["XADD", key, *trim], fields, stream_id=True)

    def encode(self, ms: int, sequence: int, values: Sequence[int]) -> bytes:
        """The command adding entry ``{ms}-{sequence}``; ``values`` in the order of the fields."""
        return self._encode((ms, sequence, *values))


class IntHashEncoder(_IntFieldsCommand):
    """``HSET key field value ...`` for a hash whose fields are all integers."""

    __slots__ = ()

    def __init__(self, key: str, fields: Sequence[str]) -> None:
        super().__init__(["HSET", key], fields, stream_id=False)

    def encode(self, values: Sequence[int]) -> bytes:
        """The command setting every field; ``values`` in the order of the fields."""
        return self._encode(tuple(values))
