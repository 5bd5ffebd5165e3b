"""The local ClickHouse endpoint, end to end: a real server process over a real chDB directory, driven by
clickhouse-connect's ordinary HTTP client (and by raw HTTP where the protocol itself is the subject)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import lz4.frame
import pandas as pd
import pytest
from clickhouse_connect.driver.compression import _zstd_decompress
from clickhouse_connect.driver.exceptions import DatabaseError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "ITCHFLOW_TEST_CH_PASSWORD"
PASSWORD = "pw-" + uuid.uuid4().hex[:8]
SMALL_LIMIT = 1 << 20


@dataclass
class Endpoint:
    """A running endpoint process."""

    process: subprocess.Popen
    port: int
    data_dir: Path
    log_file: Path

    def client(self, **kwargs):
        """A clickhouse-connect HTTP client for this endpoint."""
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **kwargs)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_endpoint(data_dir: Path, log_file: Path, *extra: str, port: int | None = None) -> Endpoint:
    """Start the endpoint as a subprocess and wait for ``/ping``."""
    port = port or free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), **{PASSWORD_ENV: PASSWORD})
    command = [sys.executable, "-m", "itchflow.stack.clickhouse_server", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-file", str(log_file), *extra]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    endpoint = Endpoint(process, port, data_dir, log_file)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise RuntimeError(f"endpoint exited with {process.returncode}: {err.decode()} {endpoint.log()}")
        with contextlib.suppress(OSError):
            if http_request(port, "GET", "/ping")[0] == 200:
                return endpoint
        time.sleep(0.1)
    stop_endpoint(endpoint)
    raise RuntimeError(f"endpoint did not answer /ping: {endpoint.log()}")


def stop_endpoint(endpoint: Endpoint, timeout: float = 30) -> int:
    """SIGTERM the endpoint by PID and wait; SIGKILL if it does not stop."""
    if endpoint.process.poll() is None:
        endpoint.process.send_signal(signal.SIGTERM)
        try:
            endpoint.process.wait(timeout)
        except subprocess.TimeoutExpired:
            endpoint.process.kill()
            endpoint.process.wait(10)
    for stream in (endpoint.process.stdout, endpoint.process.stderr):
        if stream:
            stream.close()
    return endpoint.process.returncode


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request; returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """An endpoint without authentication and with the default request-size limit."""
    base = tmp_path_factory.mktemp("chserver")
    running = start_endpoint(base / "data", base / "server.log")
    yield running
    stop_endpoint(running)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """An endpoint with a user/password and a 1 MiB request-size limit."""
    base = tmp_path_factory.mktemp("chsecured")
    extra = ("--user", "writer", "--password-env", PASSWORD_ENV, "--max-request-bytes", str(SMALL_LIMIT))
    running = start_endpoint(base / "data", base / "server.log", *extra)
    yield running
    stop_endpoint(running)


@pytest.fixture(scope="module")
def client(endpoint: Endpoint):
    return endpoint.client()


def table_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- basics -----------------------------------------------------------------------------------------------------
def test_ping_and_root(endpoint: Endpoint) -> None:
    assert http_request(endpoint.port, "GET", "/ping")[::2] == (200, b"Ok.\n")
    assert http_request(endpoint.port, "GET", "/")[::2] == (200, b"Ok.\n")
    assert http_request(endpoint.port, "GET", "/nothing")[0] == 404


def test_version_and_headers(endpoint: Endpoint, client) -> None:
    import chdb

    version = client.command("SELECT version()")
    assert version == client.server_version
    assert version.split(".")[:2] == chdb.__version__.split(".")[:2]
    status, headers, body = http_request(endpoint.port, "GET", "/?query=SELECT%201&query_id=my-query")
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Query-Id"] == "my-query"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert "read_rows" in headers["X-ClickHouse-Summary"]


# --- round trips --------------------------------------------------------------------------------------------------
def sample_rows(n: int, offset: int = 0) -> list[list]:
    base = dt.datetime(2024, 3, 1, 9, 30)
    return [
        [
            offset + i,
            f"SYM{i % 37}",
            (offset + i) * 0.25,
            base + dt.timedelta(microseconds=offset + i),
            Decimal(i) / 100,
        ]
        for i in range(n)
    ]


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_mergetree_round_trip(endpoint: Endpoint, compression: str | None) -> None:
    client = endpoint.client(compress=compression or False)
    table = table_name("mt")
    client.command(
        f"CREATE TABLE {table} (id UInt64, sym LowCardinality(String), px Float64, ts DateTime64(6), "
        "qty Decimal(18, 2)) ENGINE = MergeTree ORDER BY id"
    )
    rows = sample_rows(5000)
    summary = client.insert(table, rows, column_names=["id", "sym", "px", "ts", "qty"])
    assert summary.written_rows == len(rows)
    back = client.query(f"SELECT id, sym, px, ts, qty FROM {table} ORDER BY id").result_rows
    assert [list(r) for r in back] == rows
    expected_sum = sum(r[2] for r in rows)
    assert client.command(f"SELECT sum(px) FROM {table}") == pytest.approx(expected_sum)
    assert client.command(f"SELECT count() FROM {table} WHERE sym = 'SYM5'") == sum(
        r[1] == "SYM5" for r in rows
    )


def test_replacing_merge_tree_final(client) -> None:
    table = table_name("rmt")
    client.command(
        f"CREATE TABLE {table} (k UInt32, v String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY k"
    )
    batches = [
        [[k, f"first-{k}", 1] for k in range(1000)],
        [[k, f"second-{k}", 2] for k in range(0, 1000, 3)],
    ]
    latest: dict[int, tuple[str, int]] = {}
    for batch in batches:
        client.insert(table, batch, column_names=["k", "v", "ver"])
        for k, v, ver in batch:
            if k not in latest or ver >= latest[k][1]:
                latest[k] = (v, ver)
    # replaying the second batch (as after a failure) must not change the FINAL result
    client.insert(table, batches[1], column_names=["k", "v", "ver"])
    assert client.command(f"SELECT count() FROM {table}") == 1000 + 2 * len(batches[1])
    final = client.query(f"SELECT k, v, ver FROM {table} FINAL ORDER BY k").result_rows
    assert final == [(k, v, ver) for k, (v, ver) in sorted(latest.items())]


def test_million_row_insert(client) -> None:
    table = table_name("big")
    client.command(f"CREATE TABLE {table} (id UInt64, x Int64, sym String) ENGINE = MergeTree ORDER BY id")
    n = 1_000_000
    ids = list(range(n))
    xs = [(i * 7919) % 100_003 - 50_000 for i in ids]
    syms = [f"S{i % 500}" for i in ids]
    started = time.perf_counter()
    client.insert(table, [ids, xs, syms], column_names=["id", "x", "sym"], column_oriented=True)
    elapsed = time.perf_counter() - started
    print(f"\n1M-row insert through HTTP: {n / elapsed:,.0f} rows/s")
    count, sum_id, sum_x = client.query(f"SELECT count(), sum(id), sum(x) FROM {table}").result_rows[0]
    assert (count, sum_id, sum_x) == (n, sum(ids), sum(xs))
    assert client.command(f"SELECT uniqExact(sym) FROM {table}") == 500


def test_concurrent_writers_and_readers(endpoint: Endpoint, client) -> None:
    table = table_name("conc")
    client.command(
        f"CREATE TABLE {table} (writer UInt8, id UInt64, v Float64) ENGINE = MergeTree ORDER BY (writer, id)"
    )
    writers, batches, batch_rows = 4, 10, 5000
    errors: list[BaseException] = []
    reads: list[int] = []

    def write(w: int) -> None:
        try:
            own = endpoint.client(compress="lz4")
            for b in range(batches):
                start = b * batch_rows
                rows = [[w, start + i, (start + i) / 10] for i in range(batch_rows)]
                own.insert(table, rows, column_names=["writer", "id", "v"])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def read(stop: threading.Event) -> None:
        try:
            reader = endpoint.client(autogenerate_session_id=False)
            while not stop.is_set():
                reads.append(reader.command(f"SELECT count() FROM {table}"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    stop = threading.Event()
    reader = threading.Thread(target=read, args=(stop,))
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    reader.join(30)
    assert not errors, errors
    per_writer = dict(client.query(f"SELECT writer, count() FROM {table} GROUP BY writer").result_rows)
    assert per_writer == {w: batches * batch_rows for w in range(writers)}
    expected_v = writers * sum((i / 10) for i in range(batches * batch_rows))
    # float sums depend on the order rows are added in; `command` returns non-integral values as text
    assert float(client.command(f"SELECT sum(v) FROM {table}")) == pytest.approx(expected_v)
    assert reads and reads == sorted(reads)  # counts only grow; inserts are never seen half-way back


# --- settings, parameters, errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("session", [True, False])
def test_settings_do_not_leak_between_requests(endpoint: Endpoint, session: bool) -> None:
    client = endpoint.client(autogenerate_session_id=session)
    setting = "SELECT getSetting('max_result_rows')"
    assert client.command(setting, settings={"max_result_rows": 3}) == 3
    assert client.command(setting) == 0
    rows = "SELECT number FROM numbers(10)"
    with pytest.raises(DatabaseError) as info:
        client.query(rows, settings={"max_result_rows": 3, "result_overflow_mode": "throw"})
    assert info.value.code == 396  # TOO_MANY_ROWS_OR_BYTES
    assert len(client.query(rows).result_rows) == 10
    with pytest.raises(DatabaseError) as info:
        client.command(f"CREATE TABLE {table_name('ro')} (x UInt8) ENGINE = Memory", settings={"readonly": 1})
    assert info.value.code == 164
    client.command(f"CREATE TABLE {table_name('rw')} (x UInt8) ENGINE = Memory")
    assert client.command("SELECT getSetting('readonly')") == 0


def test_settings_do_not_leak_across_many_pooled_requests(endpoint: Endpoint) -> None:
    """Alternate requests with and without a setting, from several threads, over pooled connections."""
    failures: list[str] = []

    def worker(n: int) -> None:
        client = endpoint.client(autogenerate_session_id=False)
        for i in range(30):
            want = (n * 100 + i) if i % 2 else 0
            settings = {"max_result_rows": want} if want else None
            got = client.command("SELECT getSetting('max_result_rows')", settings=settings)
            if got != want:
                failures.append(f"worker {n} request {i}: {got} != {want}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures


def test_session_state_persists_but_request_settings_do_not(endpoint: Endpoint) -> None:
    client = endpoint.client()  # clickhouse-connect generates a session id
    client.command("CREATE TEMPORARY TABLE tmp_session (x UInt32)")
    client.command("INSERT INTO tmp_session VALUES (1), (2), (3)")
    assert client.command("SELECT sum(x) FROM tmp_session") == 6
    client.command("SET max_threads = 1")
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 2}) == 2
    assert client.command("SELECT getSetting('max_threads')") == 1
    other = endpoint.client()
    with pytest.raises(DatabaseError):
        other.command("SELECT sum(x) FROM tmp_session")


def test_session_is_locked_for_concurrent_requests(endpoint: Endpoint) -> None:
    path = "/?session_id=locked-session&query="
    slow = threading.Thread(target=http_request, args=(endpoint.port, "POST", path, b"SELECT sleep(1.5)"))
    slow.start()
    time.sleep(0.5)
    status, headers, body = http_request(endpoint.port, "POST", path, b"SELECT 1")
    slow.join()
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (423, "373"), body


def test_session_expires_after_its_timeout(endpoint: Endpoint) -> None:
    session = f"/?session_id=expiring-{uuid.uuid4().hex}&session_timeout=1&query="
    assert http_request(endpoint.port, "POST", session, b"CREATE TEMPORARY TABLE t_exp (x UInt8)")[0] == 200
    assert http_request(endpoint.port, "POST", session, b"SELECT count() FROM t_exp")[::2] == (200, b"0\n")
    checked = session.replace("&query=", "&session_check=1&query=")
    assert http_request(endpoint.port, "POST", checked, b"SELECT 1")[0] == 200
    time.sleep(2.5)
    status, headers, _ = http_request(endpoint.port, "POST", checked, b"SELECT 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "372")  # SESSION_NOT_FOUND
    status, headers, _ = http_request(endpoint.port, "POST", session, b"SELECT count() FROM t_exp")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")  # a new session: the table is gone


def test_parameter_binding(client) -> None:
    assert client.command("SELECT {x:UInt32} * 2", parameters={"x": 21}) == 42
    result = client.query("SELECT {s:String} AS s, {n:Int64} + 1 AS n", parameters={"s": "it's", "n": -5})
    assert result.result_rows == [("it's", -4)]


def test_sql_error_surfaces_as_database_error(endpoint: Endpoint, client) -> None:
    with pytest.raises(DatabaseError) as info:
        client.query("SELECT * FROM no_such_table_xyz")
    assert info.value.code == 60 and "UNKNOWN_TABLE" in str(info.value)
    status, headers, body = http_request(endpoint.port, "POST", "/", b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error") and b"(SYNTAX_ERROR) (version " in body
    status, headers, _ = http_request(endpoint.port, "POST", "/", b"SELECT 1; SELECT 2")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, _ = http_request(
        endpoint.port, "GET", "/?query=" + "CREATE%20TABLE%20g%20(x%20UInt8)%20ENGINE=Memory"
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")  # GET implies readonly


def test_error_in_the_middle_of_a_streamed_result(client) -> None:
    query = "SELECT throwIf(number = 200000, 'late failure') FROM numbers(300000)"
    with pytest.raises(DatabaseError) as info, client.query_row_block_stream(query) as stream:
        for _ in stream:
            pass
    assert "late failure" in str(info.value)
    assert client.command("SELECT 1") == 1  # the client and endpoint carry on


def test_commands_dataframes_and_database_parameter(endpoint: Endpoint, client) -> None:
    database = table_name("db")
    client.command(f"CREATE DATABASE {database}")
    in_db = endpoint.client(database=database)
    in_db.command(
        "CREATE TABLE frames (id UInt64, name String, n Nullable(Int32)) ENGINE = MergeTree ORDER BY id"
    )
    assert in_db.command("EXISTS TABLE frames") == 1 and in_db.command("SHOW TABLES") == "frames"
    frame = pd.DataFrame({"id": range(100), "name": [f"n{i}" for i in range(100)], "n": [None, 1] * 50})
    in_db.insert_df("frames", frame)
    assert in_db.query_arrow("SELECT id FROM frames").num_rows == 100
    back = client.query_df(f"SELECT id, name FROM {database}.frames ORDER BY id")
    assert back["name"].tolist() == frame["name"].tolist()
    assert client.command(f"SELECT countIf(n IS NULL) FROM {database}.frames") == 50
    session = endpoint.client()
    session.command(f"USE {database}")
    assert session.command("SELECT count() FROM frames") == 100
    assert session.command("SELECT currentDatabase()", settings=None) == database
    with pytest.raises(DatabaseError) as info:
        endpoint.client(database="no_such_database_xyz")
    assert info.value.code == 81


# --- protocol details ---------------------------------------------------------------------------------------------
def test_raw_inserts_in_url_and_body_with_encodings(endpoint: Endpoint, client) -> None:
    table = table_name("raw")
    client.command(f"CREATE TABLE {table} (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    csv = b"".join(b"%d,v%d\n" % (i, i) for i in range(1000))
    query = f"/?query=INSERT%20INTO%20{table}%20FORMAT%20CSV"
    assert (
        http_request(endpoint.port, "POST", query, gzip.compress(csv), {"Content-Encoding": "gzip"})[0] == 200
    )
    body = f"INSERT INTO {table} FORMAT CSV\n".encode() + csv
    frames = lz4.frame.compress(body[:5000]) + lz4.frame.compress(body[5000:])
    status, headers, _ = http_request(endpoint.port, "POST", "/", frames, {"Content-Encoding": "lz4"})
    assert status == 200 and '"written_rows":"1000"' in headers["X-ClickHouse-Summary"]
    chunks = iter([body[:10], body[10:3000], body[3000:]])  # http.client sends an iterator chunked
    assert http_request(endpoint.port, "POST", "/", chunks)[0] == 200
    values = f"INSERT INTO {table} VALUES (5000, 'x'), (5001, 'y')".encode()
    assert http_request(endpoint.port, "POST", "/", values)[0] == 200
    assert client.query(f"SELECT count(), sum(a) FROM {table}").result_rows == [
        (3002, 3 * sum(range(1000)) + 10001)
    ]


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4", "deflate"])
def test_compressed_responses(endpoint: Endpoint, encoding: str) -> None:
    path = "/?query=SELECT%20number%20FROM%20numbers(100000)&enable_http_compression=1"
    status, headers, body = http_request(endpoint.port, "GET", path, headers={"Accept-Encoding": encoding})
    assert status == 200 and headers.get("Content-Encoding") == encoding
    decoders = {
        "gzip": gzip.decompress,
        "zstd": _zstd_decompress,
        "lz4": lz4.frame.decompress,
        "deflate": __import__("zlib").decompress,
    }
    assert decoders[encoding](body) == b"".join(b"%d\n" % i for i in range(100000))
    client = endpoint.client(compress=encoding)
    assert client.query("SELECT sum(number) FROM numbers(100000)").result_rows == [(sum(range(100000)),)]


# --- auth and limits ----------------------------------------------------------------------------------------------
def test_authentication(endpoint: Endpoint, secured: Endpoint) -> None:
    assert secured.client(username="writer", password=PASSWORD).command("SELECT 1") == 1
    with pytest.raises(DatabaseError) as info:
        secured.client(username="writer", password="wrong")
    assert info.value.code == 516
    with pytest.raises(DatabaseError) as info:
        secured.client()  # 'default' without a password is not accepted once a user is configured
    assert info.value.code == 516
    status, headers, body = http_request(secured.port, "POST", "/", b"SELECT 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (401, "516")
    assert body.startswith(b"Code: 516. DB::Exception: default: Authentication failed")
    header_auth = {"X-ClickHouse-User": "writer", "X-ClickHouse-Key": PASSWORD}
    assert http_request(secured.port, "POST", "/", b"SELECT 1", header_auth)[::2] == (200, b"1\n")
    url_auth = f"/?user=writer&password={PASSWORD}&query=SELECT%202"
    assert http_request(secured.port, "GET", url_auth)[::2] == (200, b"2\n")
    assert http_request(secured.port, "GET", "/ping")[0] == 200  # health checks need no credentials
    assert PASSWORD not in secured.log()
    assert endpoint.client().command("SELECT 1") == 1  # no user configured: default without password
    with pytest.raises(DatabaseError) as info:
        endpoint.client(username="someone", password="x")
    assert info.value.code == 516


def test_request_size_limit(secured: Endpoint) -> None:
    client = secured.client(username="writer", password=PASSWORD, compress=False)
    table = table_name("limit")
    client.command(f"CREATE TABLE {table} (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    rows = [[i, "x" * 40] for i in range(60_000)]  # ~3 MB of Native data, streamed chunked
    with pytest.raises(DatabaseError) as info:
        client.insert(table, rows, column_names=["id", "s"])
    assert info.value.code == 229
    assert client.command(f"SELECT count() FROM {table}") == 0
    client.insert(table, rows[:1000], column_names=["id", "s"])  # under the limit: fine, connection reusable
    assert client.command(f"SELECT count() FROM {table}") == 1000
    auth = {"X-ClickHouse-User": "writer", "X-ClickHouse-Key": PASSWORD}
    status, headers, body = http_request(
        secured.port, "POST", "/", b"SELECT 1 -- " + b"x" * (2 * SMALL_LIMIT), auth
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (413, "229") and b"QUERY_IS_TOO_LARGE" in body
    bomb = gzip.compress(b"SELECT 1 -- " + b"\0" * (4 * SMALL_LIMIT))
    status, headers, _ = http_request(secured.port, "POST", "/", bomb, {**auth, "Content-Encoding": "gzip"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (413, "229")


# --- process lifecycle --------------------------------------------------------------------------------------------
def test_sigterm_stops_cleanly_and_data_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_endpoint(data_dir, tmp_path / "first.log")
    try:
        client = first.client()
        client.command("CREATE TABLE kept (id UInt64, v String) ENGINE = MergeTree ORDER BY id")
        client.insert("kept", [[i, f"v{i}"] for i in range(12345)], column_names=["id", "v"])
        # a second process on the same directory gets a readable error, not chDB's "EmbeddedServer" message
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "itchflow.stack.clickhouse_server",
                "--data-dir",
                str(data_dir),
                "--port",
                "0",
            ],
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and "locked by another process" in second.stderr
        taken = subprocess.run(
            [sys.executable, "-m", "itchflow.stack.clickhouse_server", "--data-dir", str(tmp_path / "other")]
            + ["--port", str(first.port)],
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{first.port}" in taken.stderr
    finally:
        assert stop_endpoint(first) == 0
    assert "data directory" in first.log() and "released" in first.log()
    restarted = start_endpoint(data_dir, tmp_path / "second.log")
    try:
        client = restarted.client()
        assert client.query("SELECT count(), sum(id) FROM kept").result_rows == [(12345, sum(range(12345)))]
    finally:
        assert stop_endpoint(restarted) == 0


def test_back_to_back_requests_of_one_session_are_never_locked_out(endpoint: Endpoint) -> None:
    # the response of a request goes out a moment before its session is released; a client that
    # sends the next request at once must not get SESSION_IS_LOCKED (seen once on a loaded machine)
    path = f"/?session_id=b2b-{uuid.uuid4().hex}&query="
    statuses = [http_request(endpoint.port, "POST", path, b"SELECT 1")[0] for _ in range(200)]
    assert statuses == [200] * 200


def test_a_client_resetting_its_connection_is_one_log_line_not_a_traceback(endpoint: Endpoint) -> None:
    import struct

    before = len(endpoint.log())
    stderr = endpoint.process.stderr
    assert stderr is not None
    os.set_blocking(stderr.fileno(), False)
    stderr.read()  # what the endpoint wrote to stderr so far
    # a client that resets its connection (as an HTTP pool may with an idle keep-alive one) while
    # the server reads a request line from it
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=10)
        sock.sendall(b"GET /pi")
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        sock.close()
    deadline = time.monotonic() + 10
    while endpoint.log()[before:].count("dropped the connection") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert endpoint.log()[before:].count("dropped the connection") == 3
    written = (stderr.read() or b"").decode()
    assert "Traceback" not in written and "Traceback" not in endpoint.log()[before:]
    assert http_request(endpoint.port, "GET", "/ping")[0] == 200  # and it serves on


def test_the_project_ddl_renames_a_table_of_an_earlier_layout_aside_and_keeps_its_rows(
    endpoint: Endpoint,
) -> None:
    from itchflow.sinks.ddl import apply_ddl, ddl_statements

    database = table_name("ddl")
    endpoint.client().command(f"CREATE DATABASE {database}")
    client = endpoint.client(database=database)
    # the trades table as the releases before trading dates created it
    client.command(
        "CREATE TABLE trades (venue LowCardinality(String), symbol LowCardinality(String), seq UInt64, "
        "ts_event DateTime64(9, 'UTC'), source LowCardinality(String), match_number UInt64, price Int64, "
        "shares UInt64, side LowCardinality(String), printable UInt8) ENGINE = ReplacingMergeTree "
        "ORDER BY (venue, symbol, seq)"
    )
    client.command("INSERT INTO trades VALUES ('XNAS', 'AAPL', 7, 0, 'E', 1, 1000000, 100, 'B', 1)")
    said: list[str] = []

    assert apply_ddl(client, log=said.append) == len(ddl_statements())

    assert len(said) == 1 and "renamed to trades_superseded_1" in said[0]
    assert client.query("SELECT venue, symbol, seq FROM trades_superseded_1").result_rows == [
        ("XNAS", "AAPL", 7)
    ]
    columns = [
        row[0]
        for row in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'trades' ORDER BY position"
        ).result_rows
    ]
    assert columns[:4] == ["venue", "trading_date", "symbol", "seq"]
    assert client.query("SELECT count() FROM trades").result_rows == [(0,)]
    # the prints that stand, as the DDL reads them: a break takes its symbol's print of that match
    # number, not another symbol's with the same number
    client.command(
        "INSERT INTO trades VALUES ('XNAS', '2020-01-30', 'AAPL', 7, 0, 'E', 41, 1000000, 100, 'B', 1), "
        "('XNAS', '2020-01-30', 'MSFT', 3, 0, 'E', 41, 2000000, 50, 'S', 1)"
    )
    client.command("INSERT INTO broken_trades VALUES ('XNAS', '2020-01-30', 'AAPL', 41, 9, 0)")
    assert client.query(
        "SELECT t.symbol, t.seq FROM trades AS t FINAL LEFT ANTI JOIN broken_trades AS b "
        "USING (venue, trading_date, symbol, match_number)"
    ).result_rows == [("MSFT", 3)]
    # run again: the tables are the DDL's now, nothing is renamed
    apply_ddl(client, log=said.append)
    assert len(said) == 1
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert {
        "trades",
        "trades_superseded_1",
        "broken_trades",
        "top_of_book",
        "depth_snapshots",
        "book_status",
        "bars",
        "vwap",
        "moving_averages",
        "bursts",
        "ofi",
        "liquidity",
        "alerts",
    } == tables
