"""The local stack's ClickHouse endpoint: the ClickHouse HTTP interface over an embedded chDB engine.

chDB lets one process open a data directory, so this one long-lived process owns it and serves ClickHouse's HTTP
protocol well enough that ``clickhouse_connect.get_client(host=..., port=...)`` works unchanged - the same code
path as against a real ClickHouse server (Flink sink workers write through it while users query)::

    python -m itchflow.stack.clickhouse_server --data-dir .itchflow/clickhouse --host 127.0.0.1 --port 8123 \\
        [--user USER --password-env ITCHFLOW_CLICKHOUSE_PASSWORD] [--max-request-bytes N] [--log-file F]

Supported: ``GET /ping`` and ``GET /`` (``Ok.``); queries by ``?query=`` and/or the POST body (concatenated with
a newline, as ClickHouse does); ``INSERT ... FORMAT X`` with the data in the body, streamed into chDB while it
arrives (statement in the URL or at the head of the body, as clickhouse-connect sends it); request bodies with
``Content-Encoding`` gzip/deflate/lz4/zstd (several concatenated frames allowed) and chunked transfer encoding;
compressed responses (lz4/zstd/gzip/deflate by ``Accept-Encoding`` unless ``enable_http_compression=0``);
``database``, ``default_format``, ``param_*`` (server-side binding), ``query_id``, sessions (``session_id``,
``session_timeout``, ``session_check``); every other URL parameter is a setting for that request only (see
``clickhouse_engine`` for how isolation is guaranteed); ``readonly`` (and GET implying ``readonly=2``);
authentication by ``X-ClickHouse-User/Key``, basic auth or ``user``/``password`` parameters; ClickHouse-style errors
(status, ``X-ClickHouse-Exception-Code``, ``Code: N. DB::Exception: ...`` body, tagged in-stream errors for
streamed results); the ``X-ClickHouse-Summary/Format/Timezone/Query-Id/Server-Display-Name`` headers; a request
size limit (413); clean shutdown on SIGTERM/SIGINT.

Measured on the 2-core machine (shared), clickhouse-connect 1.12 in another process on the same host:
``client.insert`` of 1M rows x (UInt64, Int64, Float64, LowCardinality(String)), column-oriented: ~5.4M rows/s
with lz4, ~4.7M with zstd, ~5.6M uncompressed (median of 3); a raw 31 MB RowBinary POST with the statement in the
URL (what the Java sink sends): ~2.9M rows/s; 1000-row inserts one after another: ~5 ms each (~3.5 ms of it is
chDB writing the part); ``SELECT 1`` round trip ~1.6-1.9 ms.

Not supported: ClickHouse-native block compression (``compress=1``/``decompress=1``, answered with
NOT_IMPLEMENTED), external data (multipart), progress headers (``send_progress_in_http_headers`` is accepted and
ignored), query cancellation by ``KILL QUERY``/``query_id``, TLS, more than one user, the ``/play`` UI.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from itchflow.stack.clickhouse_engine import (
    DataDirLocked,
    Engine,
    EngineConnection,
    QueryStats,
    StatementPolicy,
    engine_settings,
    readonly_level,
    result_stats,
)
from itchflow.stack.clickhouse_errors import (
    AUTHENTICATION_FAILED,
    NETWORK_ERROR,
    UNKNOWN_EXCEPTION,
    ClickHouseError,
)
from itchflow.stack.clickhouse_http import (
    InsertHead,
    RawBody,
    RequestParams,
    ResponseEncoder,
    choose_response_encoding,
    compress_whole,
    content_type_for,
    decode_body,
    empty_query_error,
    extract_credentials,
    looks_like_insert,
    parse_insert_head,
    parse_params,
    trailing_format,
)

log = logging.getLogger("itchflow.clickhouse_server")

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024
# Formats whose blocks chDB emits as self-contained pieces that concatenate into one valid stream.
STREAMABLE_FORMATS = frozenset(
    {"native", "rowbinary", "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "csv", "jsoneachrow",
     "jsoncompacteachrow", "jsonstringseachrow", "values", "rowbinarywithdefaults"}
)  # fmt: skip
_SET_RE = re.compile(rb"^\s*SET\s", re.I)
_DRAIN_CAP = 64 * 1024 * 1024
KEEP_ALIVE_GRACE = 5.0


@dataclass(frozen=True)
class ServerConfig:
    """Configuration of the endpoint (the password is never printed by ``repr``)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8123
    user: str | None = None
    password: str = field(default="", repr=False)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    log_file: Path | None = None
    log_level: str = "INFO"
    keep_alive_timeout: float = 60.0
    shutdown_grace: float = 30.0
    max_sessions: int = 512
    display_name: str = "itchflow-chdb"
    nice: int = 0

    @property
    def effective_user(self) -> str:
        """The one user the endpoint accepts."""
        return self.user or "default"


@dataclass
class Statement:
    """A request's statement: an ordinary query (``sql``) or a streamed insert (``insert`` + ``data``)."""

    sql: bytes | None = None
    insert: InsertHead | None = None
    data: Iterator[bytes] | None = None


def read_statement(query: str | None, body: Iterator[bytes]) -> Statement:
    """Work out what to run from the ``query`` parameter and the (decoded) body, reading only what is needed.

    ``INSERT ... FORMAT X`` (in the URL, or at the head of the body when there is no ``query`` parameter) makes a
    streamed insert whose data is the rest of the body. Otherwise the statement is the ``query`` parameter and the
    body joined by a newline.
    """
    if query is not None:
        encoded = query.encode("utf-8")
        head = parse_insert_head(encoded, complete=True)
        if head is not None:
            return Statement(insert=head, data=_chain([encoded[head.data_offset :]], body))
        rest = b"".join(body)
        return Statement(sql=encoded + b"\n" + rest if rest else encoded)
    buffered = b""
    for piece in body:
        buffered += piece
        if not looks_like_insert(buffered) and len(buffered.lstrip()) >= 8:
            break
        try:
            head = parse_insert_head(buffered, complete=False)
        except LookupError:
            continue
        if head is not None:
            return Statement(insert=head, data=_chain([buffered[head.data_offset :]], body))
        break
    else:
        head = parse_insert_head(buffered, complete=True)
        if head is not None:
            return Statement(insert=head, data=iter([buffered[head.data_offset :]]))
    sql = buffered + b"".join(body)
    if not sql.strip():
        raise empty_query_error()
    return Statement(sql=sql)


_SECRET_PARAM_RE = re.compile(r"(password|key)=[^&\s'\"]*", re.I)


def redact(text: str) -> str:
    """Mask ``password=...``-style URL parameters in a log message."""
    return _SECRET_PARAM_RE.sub(r"\1=***", text)


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    for piece in first:
        if piece:
            yield piece
    yield from rest


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its engine and config and counts requests in flight."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog: many sink workers may connect at once

    def __init__(self, config: ServerConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.draining = False
        self._active = 0
        self._active_cond = threading.Condition()
        # Idle keep-alive connections are closed a little after the advertised keep_alive_timeout, so that
        # clients honouring "Keep-Alive: timeout=N" drop them first (no race on a connection being closed).
        handler = type(
            "BoundClickHouseRequestHandler",
            (ClickHouseRequestHandler,),
            {"timeout": config.keep_alive_timeout + KEEP_ALIVE_GRACE},
        )
        super().__init__((config.host, config.port), handler)

    def handle_error(self, request, client_address) -> None:
        """A client that drops its connection (e.g. resets an idle keep-alive one) is routine: one
        line, not socketserver's traceback; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            log.info("client %s:%s dropped the connection (%s)", *client_address[:2], error)
            return
        log.exception("request from %s:%s failed outside the query handler", *client_address[:2])

    def request_started(self) -> None:
        """Count a request in flight."""
        with self._active_cond:
            self._active += 1

    def request_finished(self) -> None:
        """Uncount a request in flight."""
        with self._active_cond:
            self._active -= 1
            self._active_cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._active_cond:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._active_cond.wait(left)
        return True


class ClickHouseRequestHandler(BaseHTTPRequestHandler):
    """One HTTP connection; every request on it goes through :meth:`_dispatch`."""

    protocol_version = "HTTP/1.1"
    server: ClickHouseHTTPServer
    server_version = "itchflow-clickhouse"

    def setup(self) -> None:
        """Set up the connection (its idle timeout is the class attribute set per server)."""
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + the client's delayed ACK
        # stall every small response by ~40 ms (measured: 22 requests/s instead of hundreds).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by :meth:`_dispatch` (without their URL, which may hold a password)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Route http.server's own messages (malformed requests) to the log, passwords masked."""
        log.info("%s - %s", self.address_string(), redact(format % args))

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """GET: ping, the root, or a (read-only) query."""
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """POST: queries and inserts."""
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        """HEAD on /ping or / (health checks)."""
        self._send_simple(200, b"Ok.\n", head_only=True)

    # -- request flow ----------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        self.server.request_started()
        started = time.perf_counter()
        self._query_id = str(uuid.uuid4())
        self._status = 0
        self._log_sql = ""
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.request_finished()
            log.debug(
                "%s %s status=%s query_id=%s %.1f ms %s",
                self.address_string(),
                self.command,
                self._status,
                self._query_id,
                (time.perf_counter() - started) * 1000,
                self._log_sql,
            )

    def _route(self) -> None:
        url = urlsplit(self.path)
        if url.path not in ("", "/"):
            self.close_connection = self.close_connection or self._has_body()
            if url.path in ("/ping", "/ping/"):
                self._send_simple(200, b"Ok.\n")
            else:
                self._send_simple(404, f"There is no handle {url.path}\n\nUse / or /ping.\n".encode())
            return
        config = self.server.config
        body = None
        try:
            body = RawBody(self.rfile, self.headers, config.max_request_bytes)
            params = parse_params(parse_qsl(url.query, keep_blank_values=True))
            if params.query_id:
                self._query_id = params.query_id
            if self.command == "GET" and params.query is None:
                self._send_simple(200, b"Ok.\n")
                return
            self._authenticate(params)
            if self.server.draining:
                raise ClickHouseError(NETWORK_ERROR, "Server is shutting down")
            self._execute(params, body)
        except ClickHouseError as exc:
            self._send_error(exc, body)
        except Exception as exc:  # a bug or an engine failure without a code: still answer properly
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                raise
            log.exception("unexpected error in query %s", self._query_id)
            self._send_error(ClickHouseError(UNKNOWN_EXCEPTION, f"{type(exc).__name__}: {exc}"), body)

    def _has_body(self) -> bool:
        length = (self.headers.get("Content-Length") or "0").strip()
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() or length not in ("", "0")

    def _authenticate(self, params: RequestParams) -> None:
        config = self.server.config
        user, password = extract_credentials(self.headers, params)
        user_ok = hmac.compare_digest(user.encode(), config.effective_user.encode())
        password_ok = hmac.compare_digest(password.encode(), config.password.encode())
        if not (user_ok and password_ok):
            log.info("authentication failed for user %r from %s", user, self.address_string())
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def _execute(self, params: RequestParams, body: RawBody) -> None:
        limit = self.server.config.max_request_bytes
        decoded = decode_body(body.chunks(), self.headers.get("Content-Encoding"), limit)
        statement = read_statement(params.query, decoded)
        engine = self.server.engine
        policy = StatementPolicy(readonly_level(params.settings, self.command))
        with engine.lease(params.session_id, params.session_timeout, params.session_check) as connection:
            try:
                if statement.insert is not None:
                    self._run_insert(connection, statement, params, policy)
                else:
                    assert statement.sql is not None
                    self._run_query(connection, statement.sql, params, policy)
            except BaseException as exc:
                if not isinstance(exc, ClickHouseError) and not connection.in_session:
                    connection.reusable = False  # unknown state after an unexpected failure
                raise

    def _run_insert(
        self,
        connection: EngineConnection,
        statement: Statement,
        params: RequestParams,
        policy: StatementPolicy,
    ) -> None:
        head = statement.insert
        assert head is not None and statement.data is not None
        sql = head.statement.encode("utf-8")
        self._log_sql = f"{head.statement[:200]} FORMAT {head.fmt}"
        info = connection.classify(sql + b" FORMAT " + head.fmt.encode())
        self.server.engine.check_statement(connection, info, policy, is_set=False)
        connection.prepare(engine_settings(params.settings, connection, policy), params.database)
        stats = connection.insert(sql, head.fmt, statement.data)
        self._send_result(b"", stats.summary(), fmt=None, params=params)

    def _run_query(
        self, connection: EngineConnection, sql: bytes, params: RequestParams, policy: StatementPolicy
    ) -> None:
        info = connection.classify(sql)
        self._log_sql = "(query with secrets)" if info.has_secrets else sql[:200].decode("utf-8", "replace")
        engine = self.server.engine
        engine.check_statement(connection, info, policy, is_set=bool(_SET_RE.match(sql)))
        tail = sql[-512:].decode("utf-8", errors="replace")
        fmt = trailing_format(tail) or params.default_format
        result_fmt = fmt if info.read_only else None
        if info.changes_session:
            result = self._run_session_changing(connection, sql, fmt, params, policy)
            self._send_engine_result(result, result_fmt, params)
            return
        connection.prepare(engine_settings(params.settings, connection, policy), params.database)
        blocks = (
            connection.stream(sql, fmt, params.params)
            if self._can_stream(info.read_only, fmt, params)
            else None
        )
        if blocks is not None:
            try:
                self._send_stream(blocks, fmt, params)
            finally:
                blocks.close()  # cancels the engine-side query if the client went away
            return
        result = connection.execute(sql, fmt, params.params)
        self._send_engine_result(result, result_fmt, params)

    def _can_stream(self, read_only: bool, fmt: str, params: RequestParams) -> bool:
        """Stream (chunked) unless the client waits for the end of the query, the format has a global
        header/footer, or the client speaks HTTP/1.0."""
        return (
            read_only
            and not params.wait_end_of_query
            and fmt.lower() in STREAMABLE_FORMATS
            and self.request_version == "HTTP/1.1"
        )

    def _run_session_changing(
        self,
        connection: EngineConnection,
        sql: bytes,
        fmt: str,
        params: RequestParams,
        policy: StatementPolicy,
    ) -> Any:
        """SET/USE/CREATE TEMPORARY TABLE/...: persists in a session, retires a pooled connection."""
        if not connection.in_session:
            connection.reusable = False
            connection.prepare(engine_settings(params.settings, connection, policy), params.database)
            return connection.execute(sql, fmt, params.params)
        connection.restore_all()
        connection.prepare({}, params.database)
        database_before = connection.current_db
        try:
            return connection.execute(sql, fmt, params.params)
        finally:
            connection.after_session_change(database_before)

    # -- responses -----------------------------------------------------------------------------------------------
    def _common_headers(self) -> dict[str, str]:
        engine = self.server.engine
        return {
            "X-ClickHouse-Server-Display-Name": self.server.config.display_name,
            "X-ClickHouse-Query-Id": self._query_id,
            "X-ClickHouse-Timezone": engine.timezone,
            "Keep-Alive": f"timeout={int(self.server.config.keep_alive_timeout)}",
        }

    def _response_encoding(self, params: RequestParams) -> str | None:
        if params.enable_http_compression is False:
            return None
        return choose_response_encoding(self.headers.get("Accept-Encoding"))

    def _send_engine_result(self, result: Any, fmt: str | None, params: RequestParams) -> None:
        data = result.bytes()
        self._send_result(data, result_stats(result).summary(len(data)), fmt, params)

    def _send_result(
        self, data: bytes, summary: dict[str, str], fmt: str | None, params: RequestParams
    ) -> None:
        headers = self._common_headers()
        headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        headers["Content-Type"] = content_type_for(fmt) if fmt else "text/plain; charset=UTF-8"
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        encoding = self._response_encoding(params) if data else None
        if encoding:
            data = compress_whole(data, encoding, params.zlib_level)
            headers["Content-Encoding"] = encoding
        self._write_response(200, headers, data)

    def _send_stream(self, blocks: Generator[bytes, None, None], fmt: str, params: RequestParams) -> None:
        """Stream a result: errors before the first block get a normal error response, later ones are written
        into the stream between ``__exception__`` markers (the tag is in ``X-ClickHouse-Exception-Tag``)."""
        first = next(blocks, b"")
        tag = secrets.token_hex(8)
        headers = self._common_headers()
        headers.update(
            {
                "X-ClickHouse-Format": fmt,
                "Content-Type": content_type_for(fmt),
                "X-ClickHouse-Summary": json.dumps(QueryStats().summary(), separators=(",", ":")),
                "X-ClickHouse-Exception-Tag": tag,
                "Transfer-Encoding": "chunked",
            }
        )
        encoding = self._response_encoding(params)
        encoder = ResponseEncoder(encoding, params.zlib_level) if encoding else None
        if encoding:
            headers["Content-Encoding"] = encoding
        self._status = 200
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self._stream_body(first, blocks, encoder, tag)

    def _stream_body(
        self, first: bytes, blocks: Iterator[bytes], encoder: ResponseEncoder | None, tag: str
    ) -> None:
        def emit(data: bytes) -> None:
            payload = encoder.compress(data) if encoder else data
            if payload:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        try:
            if first:
                emit(first)
            for block in blocks:
                emit(block)
        except ClickHouseError as exc:
            message = exc.body(self.server.engine.version).encode()
            emit(
                b"__exception__\r\n%s\r\n%s%d %s\r\n__exception__\r\n"
                % (tag.encode(), message, len(message), tag.encode())
            )
            self.close_connection = True
        if encoder:
            tail = encoder.finish()
            if tail:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
        self.wfile.write(b"0\r\n\r\n")

    def _send_error(self, exc: ClickHouseError, body: RawBody | None) -> None:
        if body is None:
            self.close_connection = self.close_connection or self._has_body()
        elif not body.complete and not body.drain(_DRAIN_CAP):
            self.close_connection = True
        if self._status:  # headers already sent: only streaming gets here, and it reports in-stream
            self.close_connection = True
            return
        headers = self._common_headers()
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        if exc.code == AUTHENTICATION_FAILED:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        if exc.http_status >= 500 or exc.code != AUTHENTICATION_FAILED:
            log.info("query %s failed: %s", self._query_id, exc)
        self._write_response(exc.http_status, headers, exc.body(self.server.engine.version).encode())

    def _send_simple(self, status: int, data: bytes, head_only: bool = False) -> None:
        headers = {"Content-Type": "text/html; charset=UTF-8"}
        self._write_response(status, headers, data, head_only=head_only)

    def _write_response(
        self, status: int, headers: dict[str, str], data: bytes, head_only: bool = False
    ) -> None:
        self._status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only and data:
            self.wfile.write(data)


# --- process --------------------------------------------------------------------------------------------------------
class StartupError(RuntimeError):
    """The endpoint cannot start (port taken, data directory locked, bad configuration)."""


def configure_logging(config: ServerConfig) -> None:
    """Log to ``config.log_file`` (or stderr) with timestamps."""
    handler: logging.Handler
    if config.log_file:
        Path(config.log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config.log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger("itchflow")
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    root.propagate = False


def create_server(config: ServerConfig) -> ClickHouseHTTPServer:
    """Bind the port and open the data directory; raises :class:`StartupError` with a readable reason."""
    engine = Engine(config.data_dir, max_sessions=config.max_sessions)
    try:
        server = ClickHouseHTTPServer(config, engine)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc} "
            "(is another ClickHouse endpoint or server already using this port?)"
        ) from None
    try:
        engine.open()
    except (DataDirLocked, RuntimeError) as exc:
        server.server_close()
        raise StartupError(str(exc)) from None
    return server


def serve(config: ServerConfig, ready: threading.Event | None = None) -> int:
    """Run the endpoint until SIGTERM/SIGINT (or ``shutdown()`` from another thread); returns an exit code."""
    configure_logging(config)
    try:
        server = create_server(config)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"itchflow clickhouse endpoint: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    _install_signal_handlers(server, stop)
    reaper = threading.Thread(
        target=_expire_sessions, args=(server.engine, stop), name="session-reaper", daemon=True
    )
    reaper.start()
    auth = (
        f"user {config.effective_user!r} with password"
        if config.password
        else f"user {config.effective_user!r}"
    )
    log.info(
        "ClickHouse HTTP endpoint (chDB %s, tz %s) listening on http://%s:%d, data dir %s, %s, max request %d bytes",
        server.engine.version, server.engine.timezone, config.host, server.server_address[1],
        config.data_dir, auth, config.max_request_bytes,
    )  # fmt: skip
    if ready is not None:
        ready.set()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        _shutdown(server, config.shutdown_grace)
    return 0


def _install_signal_handlers(server: ClickHouseHTTPServer, stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _expire_sessions(engine: Engine, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        closed = engine.expire_sessions()
        if closed:
            log.debug("closed %d expired sessions", closed)


def _shutdown(server: ClickHouseHTTPServer, grace: float) -> None:
    server.draining = True
    server.server_close()
    if not server.wait_idle(grace):
        log.warning("requests still running after %.0f s; closing the engine anyway", grace)
    server.engine.close()
    log.info("stopped; chDB data directory %s released", server.config.data_dir)


# --- command line ---------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """Build a :class:`ServerConfig` from the command line (password from the environment only)."""
    parser = argparse.ArgumentParser(
        prog="python -m itchflow.stack.clickhouse_server",
        description="ClickHouse HTTP interface over an embedded chDB data directory (the local stack's ClickHouse).",
    )
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="chDB data directory (owned by this process)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8123, help="listen port (default 8123; 0 picks a free one)"
    )
    parser.add_argument("--user", help="the one accepted user (default: 'default')")
    parser.add_argument(
        "--password-env", metavar="VAR", help="name of the environment variable holding the user's password"
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"largest request body, compressed and decompressed (default {DEFAULT_MAX_REQUEST_BYTES})",
    )
    parser.add_argument("--log-file", type=Path, help="log file (default: stderr)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--keep-alive-timeout", type=float, default=60.0, help="idle connection timeout, seconds"
    )
    parser.add_argument("--max-sessions", type=int, default=512, help="most concurrent HTTP sessions")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        choices=range(20),
        metavar="0-19",
        help="lower the process's CPU priority by this much before the engine starts (default 0)",
    )
    args = parser.parse_args(argv)
    password = ""
    if args.password_env:
        if args.password_env not in os.environ:
            parser.error(f"--password-env: environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    if args.max_request_bytes <= 0:
        parser.error("--max-request-bytes must be positive")
    return ServerConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        user=args.user,
        password=password,
        max_request_bytes=args.max_request_bytes,
        log_file=args.log_file,
        log_level=args.log_level,
        keep_alive_timeout=args.keep_alive_timeout,
        max_sessions=args.max_sessions,
        nice=args.nice,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    config = parse_args(argv)
    if config.nice:
        os.nice(config.nice)  # before chDB starts its threads: they inherit it
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
