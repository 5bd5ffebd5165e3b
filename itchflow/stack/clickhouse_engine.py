"""The chDB side of the local ClickHouse HTTP endpoint: connections, settings isolation, sessions.

Measured with chdb-core 26.9 on the 2-core machine, and relied on here:

* One process hosts one engine bound to one data directory, but any number of ``chdb.connect(path)``
  connections may coexist: the first starts the engine (~20 ms), each further one costs ~0.1 ms. Each keeps its
  own session state (``SET``, ``USE``, temporary tables: a ``SET`` on one is invisible on another). Queries on
  *different* connections run in parallel with the GIL released (a CPU-bound query on two connections with
  ``max_threads=1``: 0.81 s one after the other, 0.44 s from two threads), and four concurrent streaming inserts
  (``send_insert``, 300k rows each, Native split at random byte boundaries) into one MergeTree table gave exact
  counts. A single connection must not be used by two threads at once (and is not: see below).
* ``SET a = .., b = ..`` is atomic (an unknown setting or bad value in it changes nothing) and costs about one
  trivial query (~0.45 ms); ``SET k = DEFAULT`` restores a default. ``classify_query`` (chDB's parser: READ_ONLY,
  MUTATING, CONTROL, statement count, has_secrets) costs ~40 us.
* So there is no global lock: every HTTP request leases a connection for itself (a pooled one, or its session's
  own), and requests run as concurrently as the engine allows.
* Per-request settings (URL parameters) are applied with one atomic ``SET a = .., b = ..`` on the leased
  connection, and the connection remembers exactly which values it carries on top of its baseline. The next
  request on it changes only the difference and resets keys it does not name (``SET k = DEFAULT`` on pristine
  connections, the snapshotted session value otherwise). Nothing leaks: at any moment a connection's settings are
  its baseline plus the current request's settings. ``readonly`` cannot be switched off again once on, so a pooled
  connection that ran with ``readonly`` is closed instead of being reused; state-changing statements (``SET``,
  ``USE``, ``CREATE TEMPORARY TABLE``, ...) also retire a pooled connection.
* Sessions (``session_id``) own a dedicated connection until they expire (``session_timeout``, default 60 s);
  their own ``SET``/``USE``/temporary tables persist as in ClickHouse. Two concurrent requests on one session
  get ``SESSION_IS_LOCKED``. Within a session, ``readonly`` (explicit or implied by GET) is enforced by
  classifying the statement instead of being set on the connection, and the URL settings of a state-changing
  statement (``SET``, ``USE``, ...) are not applied to it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itchflow.stack.clickhouse_errors import (
    BAD_ARGUMENTS,
    NETWORK_ERROR,
    READONLY,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    SYNTAX_ERROR,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    ClickHouseError,
    error_from_engine,
)

log = logging.getLogger(__name__)

INSERT_COALESCE_BYTES = 1 << 20
_READ_ONLY_CLASS = "READ_ONLY"
_CONTROL_CLASS = "CONTROL"


SESSION_RELEASE_WAIT_S = 0.25
"""How long a request waits for its session to be released before SESSION_IS_LOCKED (the window
between a response going out and the session being released is milliseconds; a real concurrent
client holds it for a whole query)."""


class DataDirLocked(RuntimeError):
    """The chDB data directory is in use by another process."""


# --- SQL quoting ------------------------------------------------------------------------------------------------
def quote_identifier(name: str) -> str:
    """Back-quote an identifier for ClickHouse SQL."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value: str) -> str:
    """Quote a setting value as a string literal; ClickHouse converts it to the setting's type."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Classification:
    """What chDB's parser says about a statement."""

    query_class: str
    statement_count: int
    has_secrets: bool

    @property
    def changes_session(self) -> bool:
        """SET, USE, CREATE TEMPORARY TABLE, SYSTEM, KILL, INTO OUTFILE, BEGIN, ..."""
        return self.query_class == _CONTROL_CLASS

    @property
    def read_only(self) -> bool:
        """SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN, ..."""
        return self.query_class == _READ_ONLY_CLASS


@dataclass(frozen=True)
class QueryStats:
    """Counters for the ``X-ClickHouse-Summary`` header."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    elapsed_s: float = 0.0

    def summary(self, result_bytes: int = 0) -> dict[str, str]:
        """The summary as ClickHouse sends it (all values strings)."""
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows),
            "result_rows": "0",
            "result_bytes": str(result_bytes),
            "elapsed_ns": str(int(self.elapsed_s * 1e9)),
        }


def result_stats(result: Any) -> QueryStats:
    """The counters of a chDB query result."""
    try:
        return QueryStats(
            read_rows=int(result.rows_read()),
            read_bytes=int(result.bytes_read()),
            written_rows=int(result.rows_written()),
            written_bytes=int(result.bytes_written()),
            elapsed_s=float(result.elapsed()),
        )
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return QueryStats()


# --- one connection ---------------------------------------------------------------------------------------------
class EngineConnection:
    """A chDB connection plus exact knowledge of the session state the endpoint put on it.

    ``baseline`` maps a setting name to the literal that restores it (``None``: ``DEFAULT``); a *pristine*
    connection never had a user ``SET``, so its baseline is ``DEFAULT`` for everything and needs no snapshot.
    """

    def __init__(self, raw: Any, *, in_session: bool) -> None:
        self.raw = raw
        self.in_session = in_session
        self.pristine = True
        self.overrides: dict[str, str] = {}
        self.baseline: dict[str, str | None] = {}
        self.base_db = "default"
        self.current_db = "default"
        self.reusable = True
        self.last_used = time.monotonic()

    # -- state ---------------------------------------------------------------------------------------------------
    def prepare(self, settings: Mapping[str, str], database: str | None) -> None:
        """Make the connection's settings exactly baseline + ``settings`` and select ``database``."""
        self._use(database or self.base_db)
        stale = [key for key in self.overrides if key not in settings]
        changed = {key: value for key, value in settings.items() if self.overrides.get(key) != value}
        if not stale and not changed:
            return
        if not self.pristine:
            self._snapshot([key for key in changed if key not in self.baseline])
        assignments = [f"{key} = {self._restore_literal(key)}" for key in stale]
        assignments += [
            f"{key} = {quote_value(value)}" for key, value in changed.items() if key != "readonly"
        ]
        if "readonly" in changed:  # last, so the other assignments are checked before it takes effect
            assignments.append(f"readonly = {quote_value(changed['readonly'])}")
        self.execute("SET " + ", ".join(assignments))
        for key in stale:
            del self.overrides[key]
        self.overrides.update(changed)
        if self.overrides.get("readonly", "0") not in ("0", ""):
            self.reusable = False  # readonly cannot be switched off again

    def restore_all(self) -> None:
        """Drop every request-level override and return to the session's own database."""
        self.prepare({}, None)

    def after_session_change(self, database_before: str) -> None:
        """Re-learn the session state after a statement that may have changed it (SET, USE, ...)."""
        self.pristine = False
        self.baseline.clear()
        now_db = self.scalar("SELECT currentDatabase()")
        if now_db != database_before:
            self.base_db = now_db
        self.current_db = now_db

    def _use(self, database: str) -> None:
        if database != self.current_db:
            self.execute(f"USE {quote_identifier(database)}")
            self.current_db = database

    def _snapshot(self, keys: list[str]) -> None:
        if not keys:
            return
        names = ", ".join(quote_value(key) for key in keys)
        result = self.execute(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})", fmt="JSONEachRow"
        )
        found = {}
        for line in result.bytes().splitlines():
            row = json.loads(line)
            found[row["name"]] = (row["value"], bool(row["changed"]))
        for key in keys:
            value, changed = found.get(key, ("", False))
            if not changed:
                self.baseline[key] = None
            elif len(value) >= 2 and value[0] == "'" and value[-1] == "'":
                self.baseline[key] = value  # an expression repr such as 'auto(14)'
            else:
                self.baseline[key] = quote_value(value)

    def _restore_literal(self, key: str) -> str:
        literal = self.baseline.get(key)
        return "DEFAULT" if literal is None else literal

    # -- execution -----------------------------------------------------------------------------------------------
    def execute(
        self, sql: str | bytes, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None
    ) -> Any:
        """Run one statement and return chDB's result; engine errors become :class:`ClickHouseError`."""
        try:
            return self.raw.query(sql, fmt, params=dict(params) if params else None)
        except Exception as exc:  # chDB raises ChdbError/RuntimeError with a "Code: N" message
            raise error_from_engine(exc) from None

    def scalar(self, sql: str) -> str:
        """First value of a one-row query, as text."""
        return self.execute(sql).bytes().decode().rstrip("\n")

    def classify(self, sql: bytes) -> Classification:
        """Ask chDB's parser what kind of statement ``sql`` is."""
        try:
            info = self.raw._conn.classify_query(sql)
        except Exception:  # an unparsable statement: let execution report the syntax error
            return Classification(_READ_ONLY_CLASS, 1, False)
        query_class = getattr(info["query_class"], "name", str(info["query_class"]))
        return Classification(query_class, int(info["statement_count"]), bool(info["has_secrets"]))

    def stream(self, sql: bytes, fmt: str, params: Mapping[str, str]) -> Generator[bytes, None, None] | None:
        """Run a query and yield its output block by block (each block is self-contained in ``fmt``).

        Returns None for statements chDB cannot stream (SHOW, DESCRIBE, EXISTS, EXPLAIN: it says so before
        running anything), which the caller then runs with :meth:`execute`.
        """
        try:
            result = self.raw.send_query(sql, fmt, params=dict(params) if params else None)
        except Exception as exc:
            error = error_from_engine(exc)
            if error.code == BAD_ARGUMENTS and error.message.startswith("Streaming query is not supported"):
                return None
            raise error from None
        return _stream_blocks(result)

    def insert(self, statement: bytes, fmt: str, data: Iterable[bytes]) -> QueryStats:
        """Stream ``data`` (already decompressed) into ``statement`` (an INSERT without FORMAT) as ``fmt``."""
        started = time.perf_counter()
        try:
            inserter = self.raw.send_insert(statement, fmt)
        except Exception as exc:
            raise error_from_engine(exc) from None
        try:
            for block in _coalesce(data, INSERT_COALESCE_BYTES):
                inserter.append(block)
            result = inserter.finish()
        except BaseException as exc:
            with suppress(Exception):
                inserter.cancel()
            if isinstance(exc, Exception):
                raise error_from_engine(exc) from None
            raise
        return QueryStats(
            written_rows=int(result.rows_written),
            written_bytes=int(result.bytes_written),
            elapsed_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        """Close the chDB connection (errors ignored)."""
        with suppress(Exception):
            self.raw.close()


def _stream_blocks(result: Any) -> Generator[bytes, None, None]:
    finished = False
    try:
        while True:
            try:
                chunk = result.fetch()
            except Exception as exc:
                finished = True
                raise error_from_engine(exc) from None
            if chunk is None:
                finished = True
                return
            data = chunk.bytes()
            if data:
                yield data
    finally:
        if not finished:
            with suppress(Exception):
                result.cancel()


def _coalesce(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Join small pieces into blocks of about ``size`` bytes (fewer calls into the engine)."""
    pending: list[bytes] = []
    pending_bytes = 0
    for piece in pieces:
        pending.append(piece)
        pending_bytes += len(piece)
        if pending_bytes >= size:
            yield b"".join(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)


# --- the engine -------------------------------------------------------------------------------------------------
@dataclass
class _Session:
    connection: EngineConnection
    timeout: float
    expires_at: float
    busy: bool = False


@dataclass(frozen=True)
class StatementPolicy:
    """How a statement may run: ``readonly`` level (0, 1, 2) requested for it."""

    readonly: int = 0


class Engine:
    """Owns the chDB data directory for this process and hands out connections to requests."""

    def __init__(self, data_dir: Path, *, max_idle: int = 16, max_sessions: int = 512) -> None:
        self.data_dir = Path(data_dir)
        self.max_idle = max_idle
        self.max_sessions = max_sessions
        self.version = ""
        self.timezone = "UTC"
        self._anchor: Any = None
        self._idle: list[EngineConnection] = []
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        #: signalled when a session is released (a client's next request may arrive before that:
        #: the response goes out while the session is still held)
        self._released = threading.Condition(self._lock)
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the data directory (raises :class:`DataDirLocked` if another process holds it)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        check_not_locked(self.data_dir)
        try:
            self._anchor = self._connect()
        except Exception as exc:
            check_not_locked(self.data_dir)
            raise RuntimeError(f"cannot open chDB data directory {self.data_dir}: {exc}") from exc
        anchor = EngineConnection(self._anchor, in_session=False)
        self.version, self.timezone = anchor.scalar("SELECT version(), timezone()").split("\t")

    def _connect(self) -> Any:
        from chdb.state import sqlitelike

        return sqlitelike.connect(str(self.data_dir))

    def close(self) -> None:
        """Close every connection; the last one (the anchor) shuts the engine down and releases the directory."""
        with self._lock:
            self._closed = True
            connections = list(self._idle) + [s.connection for s in self._sessions.values()]
            self._idle.clear()
            self._sessions.clear()
        for connection in connections:
            connection.close()
        if self._anchor is not None:
            with suppress(Exception):
                self._anchor.close()
            self._anchor = None

    # -- leasing -------------------------------------------------------------------------------------------------
    @contextmanager
    def lease(
        self, session_id: str | None, session_timeout: float, session_check: bool
    ) -> Iterator[EngineConnection]:
        """A connection for one request: the session's own, or a pooled one."""
        if session_id is None:
            connection = self._acquire_pooled()
            try:
                yield connection
            finally:
                self._release_pooled(connection)
            return
        session = self._acquire_session(session_id, session_timeout, session_check)
        try:
            yield session.connection
        finally:
            self._release_session(session, session_timeout)

    def _acquire_pooled(self) -> EngineConnection:
        with self._lock:
            self._check_open()
            if self._idle:
                return self._idle.pop()
        return EngineConnection(self._connect(), in_session=False)

    def _release_pooled(self, connection: EngineConnection) -> None:
        connection.last_used = time.monotonic()
        with self._lock:
            if connection.reusable and not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(connection)
                return
        connection.close()

    def _acquire_session(self, session_id: str, timeout: float, check: bool) -> _Session:
        now = time.monotonic()
        with self._lock:
            self._check_open()
            session = self._sessions.get(session_id)
            if session is not None and not session.busy and session.expires_at < now:
                del self._sessions[session_id]
                session.connection.close()
                session = None
            if session is None:
                session = self._new_session(session_id, timeout, check, now)
            elif session.busy:
                # the same client's previous request may still be finishing (its response is sent
                # before the session is released): wait a moment before calling it concurrent use
                deadline = now + SESSION_RELEASE_WAIT_S
                while session.busy and self._sessions.get(session_id) is session:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ClickHouseError(
                            SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                        )
                    self._released.wait(left)
                if self._sessions.get(session_id) is not session:
                    session = self._new_session(session_id, timeout, check, time.monotonic())
            session.busy = True
            return session

    def _new_session(self, session_id: str, timeout: float, check: bool, now: float) -> _Session:
        if check:
            raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
        if len(self._sessions) >= self.max_sessions:
            raise ClickHouseError(
                TOO_MANY_SIMULTANEOUS_QUERIES, f"Too many sessions (max {self.max_sessions})"
            )
        session = _Session(EngineConnection(self._connect(), in_session=True), timeout, now + timeout)
        self._sessions[session_id] = session
        return session

    def _release_session(self, session: _Session, timeout: float) -> None:
        with self._lock:
            session.busy = False
            session.timeout = timeout
            session.expires_at = time.monotonic() + timeout
            self._released.notify_all()

    def expire_sessions(self) -> int:
        """Close sessions idle past their timeout; returns how many were closed."""
        now = time.monotonic()
        with self._lock:
            expired = [sid for sid, s in self._sessions.items() if not s.busy and s.expires_at < now]
            connections = [self._sessions.pop(sid).connection for sid in expired]
        for connection in connections:
            connection.close()
        return len(connections)

    def _check_open(self) -> None:
        if self._closed:
            raise ClickHouseError(NETWORK_ERROR, "Server is shutting down")

    @property
    def session_count(self) -> int:
        """Number of open sessions."""
        with self._lock:
            return len(self._sessions)

    # -- statements ----------------------------------------------------------------------------------------------
    def check_statement(
        self, connection: EngineConnection, info: Classification, policy: StatementPolicy, is_set: bool
    ) -> None:
        """Reject what ClickHouse's HTTP interface rejects before running anything."""
        if info.statement_count > 1:
            raise ClickHouseError(SYNTAX_ERROR, "Syntax error (Multi-statements are not allowed)")
        if not connection.in_session or policy.readonly == 0 or info.read_only:
            return
        if policy.readonly == 2 and is_set:
            return
        raise ClickHouseError(READONLY, "Cannot execute query in readonly mode")


def engine_settings(
    settings: Mapping[str, str], connection: EngineConnection, policy: StatementPolicy
) -> dict:
    """The settings to apply on ``connection``: ``readonly`` goes to the engine only outside sessions."""
    result = {k: v for k, v in settings.items() if k != "readonly"}
    if policy.readonly and not connection.in_session:
        result["readonly"] = str(policy.readonly)
    return result


def readonly_level(settings: Mapping[str, str], method: str) -> int:
    """The ``readonly`` level of a request: its ``readonly`` setting, at least 2 for GET (as in ClickHouse)."""
    raw = settings.get("readonly", "0").strip() or "0"
    if raw not in ("0", "1", "2"):
        raise ClickHouseError(BAD_ARGUMENTS, f"Invalid value for setting 'readonly': {raw!r}")
    level = int(raw)
    if method == "GET" and level == 0:
        level = 2
    return level


# --- startup checks ---------------------------------------------------------------------------------------------
def check_not_locked(data_dir: Path) -> None:
    """Raise :class:`DataDirLocked` if another process holds chDB's lock on ``data_dir/status``.

    chDB (like clickhouse-server) takes an exclusive ``flock`` on that file; its own error for a second opener is
    unreadable (``Error initializing EmbeddedServer``), so the endpoint checks first. The probe lock is released
    at once; the window until chDB takes it is harmless (chDB would fail, and this check explains why).
    """
    import fcntl

    status = data_dir / "status"
    if not status.exists():
        return
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = handle.read(200).decode("utf-8", errors="replace").strip().replace("\n", "; ")
            raise DataDirLocked(
                f"chDB data directory {data_dir} is locked by another process ({owner or 'unknown owner'}); "
                "only one process may open it - stop that process or use another --data-dir"
            ) from None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
