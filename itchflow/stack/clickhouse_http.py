"""Protocol helpers for the local ClickHouse HTTP endpoint: no chDB and no sockets here.

What lives here: splitting URL parameters into protocol parameters, server-side query parameters and per-request
settings; extracting credentials the three ways ClickHouse accepts them; recognising ``INSERT ... FORMAT X``
statements whose data follows in the body; reading request bodies (Content-Length or chunked) under a size limit;
streaming decompression of request bodies (gzip, deflate, lz4 and zstd, several concatenated frames allowed) and
streaming compression of responses.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import lz4.frame

from itchflow.stack.clickhouse_errors import (
    BAD_ARGUMENTS,
    CANNOT_DECOMPRESS,
    CANNOT_READ_ALL_DATA,
    INVALID_SESSION_TIMEOUT,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    SYNTAX_ERROR,
    UNKNOWN_COMPRESSION_METHOD,
    ClickHouseError,
)

try:  # Python 3.14+
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - clickhouse-connect requires backports.zstd before Python 3.14
    from backports import zstd as _zstd  # type: ignore[no-redef]

# URL parameters that belong to the HTTP protocol, not to the query's settings. Some of them are ClickHouse
# settings in name (enable_http_compression, ...), but they only steer the HTTP layer, which is this module.
PROTOCOL_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "output_format_parallel_formatting",
    }
)
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE_VALUES = frozenset({"1", "true", "True", "TRUE", "yes", "on"})

DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
READ_CHUNK = 1 << 16
DECODE_CHUNK = 1 << 20


def is_true(value: str | None) -> bool:
    """ClickHouse-style boolean URL parameter."""
    return value is not None and value.strip() in _TRUE_VALUES


@dataclass
class RequestParams:
    """The URL parameters of one request, split by meaning."""

    query: str | None = None
    database: str | None = None
    default_format: str = "TabSeparated"
    query_id: str | None = None
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    session_check: bool = False
    wait_end_of_query: bool = False
    enable_http_compression: bool | None = None
    zlib_level: int = 3
    user: str | None = None
    password: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


def parse_params(pairs: Iterable[tuple[str, str]]) -> RequestParams:
    """Split URL parameters into protocol parameters, ``param_*`` bindings and per-request settings.

    Raises :class:`ClickHouseError` for settings names that are not identifiers, for the ClickHouse-native
    compression parameters (``compress=1``/``decompress=1``, not implemented) and for bad session timeouts.
    """
    result = RequestParams()
    for key, value in pairs:
        if key.startswith("param_"):
            result.params[key[6:]] = value
        elif key in PROTOCOL_PARAMS:
            _apply_protocol_param(result, key, value)
        else:
            if not _SETTING_NAME_RE.match(key):
                raise ClickHouseError(BAD_ARGUMENTS, f"Invalid setting name in URL parameters: {key!r}")
            result.settings[key] = value
    return result


def _apply_protocol_param(result: RequestParams, key: str, value: str) -> None:
    if key == "query":
        result.query = value
    elif key == "database":
        result.database = value or None
    elif key == "default_format":
        result.default_format = value or "TabSeparated"
    elif key == "query_id":
        result.query_id = value or None
    elif key == "session_id":
        result.session_id = value or None
    elif key == "session_timeout":
        result.session_timeout = _session_timeout(value)
    elif key == "session_check":
        result.session_check = is_true(value)
    elif key in ("wait_end_of_query", "http_wait_end_of_query"):
        result.wait_end_of_query = result.wait_end_of_query or is_true(value)
    elif key == "enable_http_compression":
        result.enable_http_compression = is_true(value)
    elif key == "http_zlib_compression_level":
        result.zlib_level = max(1, min(9, int(value))) if value.strip().isdigit() else 3
    elif key == "user":
        result.user = value
    elif key == "password":
        result.password = value
    elif key in ("compress", "decompress") and is_true(value):
        raise ClickHouseError(
            NOT_IMPLEMENTED,
            f"'{key}=1' (ClickHouse native block compression) is not supported by this endpoint; "
            "use HTTP compression (Content-Encoding / Accept-Encoding) instead",
        )


def _session_timeout(value: str) -> float:
    try:
        timeout = float(value)
    except ValueError:
        raise ClickHouseError(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{value}'") from None
    if not 0 < timeout <= MAX_SESSION_TIMEOUT:
        raise ClickHouseError(
            INVALID_SESSION_TIMEOUT,
            f"Session timeout '{value}' is out of range (0, {int(MAX_SESSION_TIMEOUT)}]",
        )
    return timeout


class HeaderLookup(Protocol):
    """Request headers: ``http.server``'s message object or any mapping."""

    def get(self, name: str, default: None = None, /) -> str | None: ...


class ByteReader(Protocol):
    """The request stream (``rfile``)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


# --- credentials ------------------------------------------------------------------------------------------------
def extract_credentials(headers: HeaderLookup, params: RequestParams) -> tuple[str, str]:
    """The (user, password) of a request: ``X-ClickHouse-User/Key`` headers, else HTTP basic auth, else the
    ``user``/``password`` URL parameters, else ``default`` with an empty password."""
    header_user = headers.get("X-ClickHouse-User")
    if header_user is not None or headers.get("X-ClickHouse-Key") is not None:
        return header_user or "default", headers.get("X-ClickHouse-Key") or ""
    authorization = headers.get("Authorization")
    if authorization:
        return _basic_credentials(authorization)
    if params.user is not None or params.password is not None:
        return params.user or "default", params.password or ""
    return "default", ""


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        # Bearer tokens (JWT) are a ClickHouse Cloud feature; they can never match a local user.
        return "", ""
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user or "default", password


# --- statements -------------------------------------------------------------------------------------------------
# "INSERT INTO <target> [(cols)] [SETTINGS ...] FORMAT <name>" followed by the data. The head must not contain a
# VALUES/SELECT clause: those carry their data in the statement itself and are run as ordinary queries.
_INSERT_FORMAT_RE = re.compile(
    rb"^(?P<head>\s*INSERT\s+INTO\s(?:(?!\bVALUES\b|\bSELECT\b|\bFORMAT\b).)+?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)",
    re.I | re.S,
)
# ... or definitely not, because a VALUES or SELECT clause comes before any FORMAT.
_INSERT_WITH_INLINE_DATA_RE = re.compile(
    rb"^\s*INSERT\s+INTO\s(?:(?!\bFORMAT\b).)*?\b(?:VALUES|SELECT)\b", re.I | re.S
)
_INSERT_START_RE = re.compile(rb"^\s*INSERT\s", re.I)
_TRAILING_FORMAT_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
MAX_INSERT_HEAD = 1 << 16


@dataclass(frozen=True)
class InsertHead:
    """A parsed ``INSERT ... FORMAT X`` statement: ``statement`` is everything before ``FORMAT``."""

    statement: str
    fmt: str
    data_offset: int


def looks_like_insert(data: bytes) -> bool:
    """Whether ``data`` starts with an INSERT statement."""
    return bool(_INSERT_START_RE.match(data[:256]))


def parse_insert_head(data: bytes, complete: bool) -> InsertHead | None:
    """Find ``INSERT ... FORMAT X`` at the start of ``data`` and where its data begins.

    The data starts after the format name, optional spaces/tabs and one optional line break (as in ClickHouse).
    Returns None when ``data`` is not such a statement. When ``complete`` is False and the answer could still
    change with more bytes (the line after the format name is not finished), raises ``LookupError``.
    """
    match = _INSERT_FORMAT_RE.match(data)
    if not match:
        undecided = not _INSERT_WITH_INLINE_DATA_RE.match(data) and len(data) < MAX_INSERT_HEAD
        if not complete and undecided:
            raise LookupError("need more data")
        return None
    pos = match.end()
    while pos < len(data) and data[pos : pos + 1] in (b" ", b"\t"):
        pos += 1
    if pos == len(data) and not complete:
        raise LookupError("need more data")
    if data[pos : pos + 2] == b"\r\n":
        pos += 2
    elif data[pos : pos + 1] == b"\n":
        pos += 1
    elif data[pos : pos + 1] == b"\r" and not complete and pos + 1 == len(data):
        raise LookupError("need more data")
    elif data[pos : pos + 1] == b";":
        pos += 1
    head = match.group("head").decode("utf-8", errors="strict").strip()
    return InsertHead(head, match.group("fmt").decode("ascii"), pos)


def trailing_format(sql: str) -> str | None:
    """The format named by a trailing ``FORMAT X`` clause of a query, if any."""
    match = _TRAILING_FORMAT_RE.search(sql[-512:])
    return match.group(1) if match else None


_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
}


def content_type_for(fmt: str) -> str:
    """The Content-Type ClickHouse sends for output format ``fmt``."""
    lower = fmt.lower()
    if lower in _CONTENT_TYPES:
        return _CONTENT_TYPES[lower]
    if lower.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lower.startswith("json"):
        return (
            "application/x-ndjson; charset=UTF-8" if "eachrow" in lower else "application/json; charset=UTF-8"
        )
    if lower.startswith(
        ("pretty", "vertical", "markdown", "values", "template", "raw", "linea", "prometheus")
    ):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


# --- request bodies ---------------------------------------------------------------------------------------------
class BodyTooLarge(ClickHouseError):
    """The request body exceeded the configured limit (HTTP 413)."""

    def __init__(self, limit: int, what: str = "request body") -> None:
        super().__init__(
            QUERY_IS_TOO_LARGE, f"The {what} is larger than the limit of {limit} bytes (max_request_bytes)"
        )


class RawBody:
    """Reads an HTTP request body from ``stream`` (Content-Length or chunked), at most ``limit`` bytes.

    ``chunks()`` yields the raw (still content-encoded) bytes; ``complete`` tells whether the whole body was read,
    so the connection can be kept alive; ``drain()`` discards the rest of a body the handler gave up on.
    """

    def __init__(self, stream: ByteReader, headers: HeaderLookup, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        transfer = (headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in transfer
        length_header = headers.get("Content-Length")
        self.length: int | None = None
        if not self.chunked and length_header is not None:
            try:
                self.length = int(length_header)
            except ValueError:
                raise ClickHouseError(BAD_ARGUMENTS, f"Invalid Content-Length: {length_header!r}") from None
            if self.length < 0:
                raise ClickHouseError(BAD_ARGUMENTS, f"Invalid Content-Length: {length_header!r}")
        self.read_bytes = 0
        self.complete = not self.chunked and not self.length
        self._remaining = self.length or 0
        self._chunk_left = 0

    @property
    def declared_too_large(self) -> bool:
        """Whether Content-Length alone already exceeds the limit."""
        return self.length is not None and self.length > self._limit

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in pieces of at most 64 KiB; raise :class:`BodyTooLarge` past the limit."""
        if self.declared_too_large:
            raise BodyTooLarge(self._limit)
        reader = self._chunked_pieces() if self.chunked else self._length_pieces()
        for piece in reader:
            self.read_bytes += len(piece)
            if self.read_bytes > self._limit:
                raise BodyTooLarge(self._limit)
            yield piece

    def _length_pieces(self) -> Iterator[bytes]:
        while self._remaining > 0:
            piece = self._stream.read(min(READ_CHUNK, self._remaining))
            if not piece:
                raise ClickHouseError(CANNOT_READ_ALL_DATA, "Unexpected end of request body")
            self._remaining -= len(piece)
            yield piece
        self.complete = True

    def _chunked_pieces(self) -> Iterator[bytes]:
        while True:
            if self._chunk_left == 0:
                size = self._next_chunk_size()
                if size == 0:
                    self._skip_trailers()
                    self.complete = True
                    return
                self._chunk_left = size
            piece = self._stream.read(min(READ_CHUNK, self._chunk_left))
            if not piece:
                raise ClickHouseError(CANNOT_READ_ALL_DATA, "Unexpected end of chunked request body")
            self._chunk_left -= len(piece)
            if self._chunk_left == 0:
                self._stream.readline(8)  # the CRLF after the chunk data
            yield piece

    def _next_chunk_size(self) -> int:
        line = self._stream.readline(1024)
        if not line:
            raise ClickHouseError(CANNOT_READ_ALL_DATA, "Unexpected end of chunked request body")
        try:
            return int(line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise ClickHouseError(BAD_ARGUMENTS, "Malformed chunk size in chunked request body") from None

    def _skip_trailers(self) -> None:
        while True:
            line = self._stream.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return

    def drain(self, cap: int) -> bool:
        """Read and discard up to ``cap`` more bytes of the body; True if the body is then fully consumed."""
        if self.complete:
            return True
        self._limit = self.read_bytes + cap
        try:
            for _ in self.chunks():
                pass
        except (ClickHouseError, OSError):
            return False
        return self.complete


# --- request decompression --------------------------------------------------------------------------------------
class _StreamDecompressor(Protocol):
    eof: bool
    needs_input: bool
    unused_data: bytes

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _framed(
    chunks: Iterable[bytes], factory: Callable[[], _StreamDecompressor], name: str
) -> Iterator[bytes]:
    """Decompress a sequence of concatenated frames (lz4, zstd) in bounded pieces."""
    decoder = factory()
    started = False
    for chunk in chunks:
        data = chunk
        while data or (started and not decoder.needs_input and not decoder.eof):
            started = True
            out = decoder.decompress(data, DECODE_CHUNK)
            data = b""
            if out:
                yield out
            if decoder.eof:
                data = decoder.unused_data
                decoder = factory()
                started = False
    if started:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Truncated {name} data in the request body")


def _zlib_stream(chunks: Iterable[bytes], wbits: int, name: str) -> Iterator[bytes]:
    """Decompress gzip (several members allowed) or zlib data in bounded pieces."""
    decoder = zlib.decompressobj(wbits)
    started = False
    for chunk in chunks:
        data = chunk
        while data:
            started = True
            out = decoder.decompress(data, DECODE_CHUNK)
            if out:
                yield out
            data = decoder.unconsumed_tail
            if decoder.eof:
                data = decoder.unused_data + data
                decoder = zlib.decompressobj(wbits)
                started = False
    if started:
        tail = decoder.flush()
        if tail:
            yield tail
        if not decoder.eof:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Truncated {name} data in the request body")


def decode_body(chunks: Iterable[bytes], encoding: str | None, limit: int) -> Iterator[bytes]:
    """Undo ``Content-Encoding`` on a stream of body pieces, enforcing ``limit`` on the decoded size."""
    name = (encoding or "").strip().lower()
    try:
        if name in ("", "identity", "none"):
            decoded: Iterator[bytes] = iter(chunks)
        elif name in ("gzip", "x-gzip"):
            decoded = _zlib_stream(chunks, 16 + zlib.MAX_WBITS, "gzip")
        elif name == "deflate":
            decoded = _zlib_stream(chunks, zlib.MAX_WBITS, "deflate")
        elif name == "lz4":
            decoded = _framed(chunks, lz4.frame.LZ4FrameDecompressor, "lz4")
        elif name == "zstd":
            decoded = _framed(chunks, _zstd.ZstdDecompressor, "zstd")
        else:
            raise ClickHouseError(
                UNKNOWN_COMPRESSION_METHOD, f"Unknown Content-Encoding of HTTP request: {name}"
            )
        yield from _limited(decoded, limit)
    except (zlib.error, RuntimeError, _zstd.ZstdError) as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress {name} request body: {exc}") from None


def _limited(pieces: Iterable[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > limit:
            raise BodyTooLarge(limit, "decompressed request body")
        yield piece


# --- response compression ---------------------------------------------------------------------------------------
RESPONSE_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")


def choose_response_encoding(accept_encoding: str | None) -> str | None:
    """The first encoding in the client's ``Accept-Encoding`` that this endpoint can produce (q=0 excluded)."""
    if not accept_encoding:
        return None
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        token = token.strip().lower()
        if params.replace(" ", "").lower() in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        if token in RESPONSE_ENCODINGS:
            return token
        if token == "x-gzip":
            return "gzip"
    return None


class ResponseEncoder:
    """Streaming compression of a response body as one frame/stream, flushed after every piece."""

    def __init__(self, encoding: str, level: int = 3) -> None:
        self.encoding = encoding
        self._started = False
        if encoding == "gzip":
            self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS)
        elif encoding == "zstd":
            self._zstd = _zstd.ZstdCompressor(level=level)
        elif encoding == "lz4":
            self._lz4 = lz4.frame.LZ4FrameCompressor()
        else:
            raise ValueError(f"unsupported response encoding {encoding!r}")

    def compress(self, data: bytes | memoryview) -> bytes:
        """Compress and flush ``data``; the output decodes to it on its own (after earlier outputs)."""
        if self.encoding in ("gzip", "deflate"):
            return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self.encoding == "zstd":
            return self._zstd.compress(data, _zstd.ZstdCompressor.FLUSH_BLOCK)
        prefix = b""
        if not self._started:
            prefix = self._lz4.begin()
            self._started = True
        return prefix + self._lz4.compress(bytes(data))

    def finish(self) -> bytes:
        """End the stream/frame."""
        if self.encoding in ("gzip", "deflate"):
            return self._zlib.flush(zlib.Z_FINISH)
        if self.encoding == "zstd":
            return self._zstd.flush(_zstd.ZstdCompressor.FLUSH_FRAME)
        prefix = b"" if self._started else self._lz4.begin()
        self._started = True
        return prefix + self._lz4.flush()


def compress_whole(data: bytes | memoryview, encoding: str, level: int = 3) -> bytes:
    """Compress a complete response body in one go."""
    encoder = ResponseEncoder(encoding, level)
    return encoder.compress(data) + encoder.finish()


def empty_query_error() -> ClickHouseError:
    """The error ClickHouse returns for a request without a query."""
    return ClickHouseError(SYNTAX_ERROR, "Empty query")
