"""ClickHouse-style errors for the local ClickHouse HTTP endpoint.

Every failure the endpoint reports looks like one from a real ClickHouse server: an HTTP status chosen from the
error code, an ``X-ClickHouse-Exception-Code`` header and a body of the form
``Code: 60. DB::Exception: <message>. (UNKNOWN_TABLE) (version 26.9.2.1)``. clickhouse-connect turns such a
response into its ordinary ``DatabaseError`` carrying the code.
"""

from __future__ import annotations

import re
from http import HTTPStatus

# Error codes the endpoint raises itself (numbers as in ClickHouse's ErrorCodes.cpp, checked against chDB's
# errorCodeToName() by the unit tests).
UNSUPPORTED_METHOD = 1
CANNOT_READ_ALL_DATA = 33
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_COMPRESSION_METHOD = 89
READONLY = 164
CANNOT_DECOMPRESS = 271
TOO_MANY_SIMULTANEOUS_QUERIES = 202
NETWORK_ERROR = 210
QUERY_IS_TOO_LARGE = 229
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
HTTP_LENGTH_REQUIRED = 381
QUERY_WAS_CANCELLED = 394
AUTHENTICATION_FAILED = 516
UNKNOWN_EXCEPTION = 1002

ERROR_NAMES: dict[int, str] = {
    UNSUPPORTED_METHOD: "UNSUPPORTED_METHOD",
    CANNOT_READ_ALL_DATA: "CANNOT_READ_ALL_DATA",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD",
    READONLY: "READONLY",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    TOO_MANY_SIMULTANEOUS_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES",
    NETWORK_ERROR: "NETWORK_ERROR",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    HTTP_LENGTH_REQUIRED: "HTTP_LENGTH_REQUIRED",
    QUERY_WAS_CANCELLED: "QUERY_WAS_CANCELLED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

# HTTP status per error code, following ClickHouse's exceptionCodeToHTTPStatus (plus the endpoint's own codes);
# anything else is 500.
# fmt: off
_BAD_REQUEST_CODES = frozenset(
    {6, 8, 15, 25, 26, 27, 36, 37, 38, 41, 44, 53, 62, 72, 117, 123, 167, 168, 223, 321, 376, 427, 441, 675, 676}
)
# fmt: on
_NOT_FOUND_CODES = frozenset({46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511})
_FORBIDDEN_CODES = frozenset({READONLY, 192, 193, 497, 512})
_STATUS_BY_CODE: dict[int, int] = {
    AUTHENTICATION_FAILED: HTTPStatus.UNAUTHORIZED,  # 401 + WWW-Authenticate, as the endpoint's contract says
    194: HTTPStatus.UNAUTHORIZED,  # REQUIRED_PASSWORD
    QUERY_IS_TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    NOT_IMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    UNSUPPORTED_METHOD: HTTPStatus.NOT_IMPLEMENTED,
    209: HTTPStatus.SERVICE_UNAVAILABLE,  # SOCKET_TIMEOUT
    76: HTTPStatus.SERVICE_UNAVAILABLE,  # CANNOT_OPEN_FILE
    439: HTTPStatus.SERVICE_UNAVAILABLE,  # CANNOT_SCHEDULE_TASK
    TOO_MANY_SIMULTANEOUS_QUERIES: HTTPStatus.SERVICE_UNAVAILABLE,
    NETWORK_ERROR: HTTPStatus.SERVICE_UNAVAILABLE,  # only raised here while shutting down
    HTTP_LENGTH_REQUIRED: HTTPStatus.LENGTH_REQUIRED,
    159: HTTPStatus.REQUEST_TIMEOUT,  # TIMEOUT_EXCEEDED
    779: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    SESSION_IS_LOCKED: HTTPStatus.LOCKED,
    SESSION_NOT_FOUND: HTTPStatus.NOT_FOUND,
}

_CODE_RE = re.compile(r"Code:\s*(\d+)\.\s*(?:DB::Exception:\s*)?", re.S)
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version [^)]*\)\s*)?$")
_VERSION_RE = re.compile(r"\s*\(version [^)]*\)\s*$")


def http_status_for(code: int) -> int:
    """The HTTP status ClickHouse answers with for exception ``code``."""
    if code in _STATUS_BY_CODE:
        return int(_STATUS_BY_CODE[code])
    if code in _BAD_REQUEST_CODES:
        return int(HTTPStatus.BAD_REQUEST)
    if code in _NOT_FOUND_CODES:
        return int(HTTPStatus.NOT_FOUND)
    if code in _FORBIDDEN_CODES:
        return int(HTTPStatus.FORBIDDEN)
    return int(HTTPStatus.INTERNAL_SERVER_ERROR)


class ClickHouseError(Exception):
    """An error reported to the client the way ClickHouse reports it.

    ``message`` is the text after ``DB::Exception:`` without the trailing ``(NAME)``; ``name`` is the symbolic
    error name (derived from the code when omitted).
    """

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message.rstrip()
        self.name = name or ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")

    @property
    def http_status(self) -> int:
        """HTTP status for this error."""
        return http_status_for(self.code)

    def body(self, version: str) -> str:
        """The response body: ``Code: N. DB::Exception: msg. (NAME) (version V)`` plus a newline."""
        text = self.message
        if not text.endswith("."):
            text += "."
        return f"Code: {self.code}. DB::Exception: {text} ({self.name}) (version {version})\n"

    def __str__(self) -> str:
        return f"Code: {self.code}. {self.message} ({self.name})"


def error_from_engine(exc: BaseException) -> ClickHouseError:
    """Convert an exception raised by chDB into a :class:`ClickHouseError`.

    chDB messages already carry ``Code: N. DB::Exception: ... (NAME)``, sometimes behind a wrapper prefix such as
    ``Streaming insert finish failed:``; the prefix and any ``(version ...)`` suffix are dropped so the body can be
    rebuilt in one canonical form. Messages without a code become ``UNKNOWN_EXCEPTION`` (1002).
    """
    if isinstance(exc, ClickHouseError):
        return exc
    text = str(exc).strip()
    match = _CODE_RE.search(text)
    if not match:
        return ClickHouseError(
            UNKNOWN_EXCEPTION, f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        )
    code = int(match.group(1))
    rest = _VERSION_RE.sub("", text[match.end() :]).rstrip()
    name = None
    name_match = _NAME_RE.search(rest)
    if name_match:
        name = name_match.group(1)
        rest = rest[: name_match.start()].rstrip()
    if rest.endswith("."):
        rest = rest[:-1]
    return ClickHouseError(code, rest, name)
