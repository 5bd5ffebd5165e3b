"""Unit tests for the ClickHouse endpoint's protocol helpers (no chDB engine, no sockets)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import subprocess
import sys
import zlib

import lz4.frame
import pytest
from clickhouse_connect.driver.compression import _zstd_compress, _zstd_decompressor

from itchflow.stack.clickhouse_engine import StatementPolicy, quote_identifier, quote_value, readonly_level
from itchflow.stack.clickhouse_errors import (
    ERROR_NAMES,
    ClickHouseError,
    error_from_engine,
    http_status_for,
)
from itchflow.stack.clickhouse_http import (
    BodyTooLarge,
    RawBody,
    ResponseEncoder,
    choose_response_encoding,
    content_type_for,
    decode_body,
    extract_credentials,
    parse_insert_head,
    parse_params,
    trailing_format,
)
from itchflow.stack.clickhouse_server import parse_args, read_statement, redact


def pieces(data: bytes, seed: int = 7, max_piece: int = 5000) -> list[bytes]:
    """Split ``data`` at random boundaries."""
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, max_piece)
        out.append(data[pos : pos + size])
        pos += size
    return out


PAYLOAD = b"".join(b"%d,sym%d,%f\n" % (i, i % 50, i / 3) for i in range(20000))


# --- errors -----------------------------------------------------------------------------------------------------
def test_error_from_engine_keeps_code_name_and_message() -> None:
    exc = RuntimeError(
        "Streaming insert finish failed: Code: 33. DB::Exception: Cannot read all data. Bytes read: 87. "
        "(CANNOT_READ_ALL_DATA) (version 26.9.2.1)"
    )
    err = error_from_engine(exc)
    assert (err.code, err.name) == (33, "CANNOT_READ_ALL_DATA")
    assert err.message == "Cannot read all data. Bytes read: 87"
    assert err.body("9.9") == (
        "Code: 33. DB::Exception: Cannot read all data. Bytes read: 87. (CANNOT_READ_ALL_DATA) (version 9.9)\n"
    )


def test_error_without_code_is_unknown_exception() -> None:
    err = error_from_engine(ValueError("boom"))
    assert err.code == 1002 and err.name == "UNKNOWN_EXCEPTION" and "boom" in err.message


@pytest.mark.parametrize(
    ("code", "status"),
    [(62, 400), (60, 404), (81, 404), (115, 404), (164, 403), (516, 401), (229, 413), (373, 423), (241, 500)],
)
def test_http_status_for(code: int, status: int) -> None:
    assert http_status_for(code) == status


def test_error_names_match_the_engine() -> None:
    """Our numeric codes are the engine's: ask chDB (in a subprocess: one engine per process)."""
    codes = ",".join(str(c) for c in ERROR_NAMES)
    script = (
        "import chdb.state.sqlitelike as s;"
        f"print(s.connect(':memory:').query('SELECT number, errorCodeToName(number) FROM numbers(1100) "
        f"WHERE number IN ({codes})', 'JSONEachRow').bytes().decode())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    engine_names = {
        row["number"]: row["errorCodeToName(number)"] for row in map(json.loads, out.stdout.split())
    }
    assert engine_names == ERROR_NAMES


# --- parameters and credentials ---------------------------------------------------------------------------------
def test_parse_params_splits_protocol_params_and_settings() -> None:
    params = parse_params(
        [
            ("query", "SELECT 1"),
            ("database", "db1"),
            ("param_x", "42"),
            ("max_result_rows", "5"),
            ("session_id", "s1"),
            ("session_timeout", "30"),
            ("wait_end_of_query", "1"),
            ("enable_http_compression", "1"),
            ("send_progress_in_http_headers", "1"),
            ("query_id", "q1"),
            ("default_format", "JSON"),
        ]
    )
    assert params.query == "SELECT 1" and params.database == "db1" and params.query_id == "q1"
    assert params.params == {"x": "42"}
    assert params.settings == {"max_result_rows": "5"}
    assert params.session_id == "s1" and params.session_timeout == 30.0
    assert params.wait_end_of_query and params.enable_http_compression
    assert params.default_format == "JSON"


@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        ([("bad name", "1")], 36),
        ([("compress", "1")], 48),
        ([("decompress", "1")], 48),
        ([("session_timeout", "0")], 374),
        ([("session_timeout", "abc")], 374),
    ],
)
def test_parse_params_rejects(pairs: list[tuple[str, str]], code: int) -> None:
    with pytest.raises(ClickHouseError) as info:
        parse_params(pairs)
    assert info.value.code == code


def test_credentials_from_headers_basic_auth_and_params() -> None:
    none = parse_params([])
    with_params = parse_params([("user", "u3"), ("password", "p3")])
    basic = "Basic " + base64.b64encode(b"u2:p:2").decode()
    assert extract_credentials({"X-ClickHouse-User": "u1", "X-ClickHouse-Key": "p1"}, none) == ("u1", "p1")
    assert extract_credentials({"Authorization": basic}, none) == ("u2", "p:2")
    assert extract_credentials({}, with_params) == ("u3", "p3")
    assert extract_credentials({}, none) == ("default", "")
    assert extract_credentials({"Authorization": "Bearer abc"}, none) == ("", "")


def test_readonly_level() -> None:
    assert readonly_level({}, "POST") == 0
    assert readonly_level({}, "GET") == 2
    assert readonly_level({"readonly": "1"}, "GET") == 1
    assert readonly_level({"readonly": "1"}, "POST") == 1
    with pytest.raises(ClickHouseError):
        readonly_level({"readonly": "7"}, "POST")
    assert StatementPolicy().readonly == 0


def test_quoting() -> None:
    assert quote_value("it's \\ x") == "'it\\'s \\\\ x'"
    assert quote_identifier("a`b") == "`a\\`b`"


# --- statements -------------------------------------------------------------------------------------------------
def test_parse_insert_head_variants() -> None:
    head = parse_insert_head(b"INSERT INTO db.t (a, b) FORMAT Native\n\x01\x02", complete=False)
    assert head is not None and head.statement == "INSERT INTO db.t (a, b)" and head.fmt == "Native"
    assert head.data_offset == len(b"INSERT INTO db.t (a, b) FORMAT Native\n")
    crlf = parse_insert_head(b"insert into t\r\n(a)\r\nformat CSV\r\n1\r\n", complete=True)
    assert (
        crlf is not None
        and crlf.fmt == "CSV"
        and crlf.data_offset == len(b"insert into t\r\n(a)\r\nformat CSV\r\n")
    )
    same_line = parse_insert_head(b"INSERT INTO t FORMAT CSV 1,2", complete=True)
    assert same_line is not None and same_line.data_offset == len(b"INSERT INTO t FORMAT CSV ")
    assert parse_insert_head(b"INSERT INTO t VALUES (1, 'FORMAT x')", complete=True) is None
    assert parse_insert_head(b"INSERT INTO t SELECT 1 FORMAT Native", complete=True) is None
    assert parse_insert_head(b"SELECT 1", complete=True) is None
    with pytest.raises(LookupError):
        parse_insert_head(b"INSERT INTO t\n(a, b)", complete=False)
    with pytest.raises(LookupError):
        parse_insert_head(b"INSERT INTO t FORMAT Native", complete=False)


def test_read_statement_streams_inserts_from_body_and_url() -> None:
    body = b"INSERT INTO t (a) FORMAT CSV\n" + PAYLOAD
    statement = read_statement(None, iter(pieces(body, max_piece=7)))
    assert statement.insert is not None and statement.insert.fmt == "CSV"
    assert statement.data is not None and b"".join(statement.data) == PAYLOAD
    statement = read_statement("INSERT INTO t FORMAT TSV", iter(pieces(PAYLOAD)))
    assert statement.insert is not None and b"".join(statement.data or []) == PAYLOAD


def test_read_statement_queries() -> None:
    assert read_statement("SELECT 1", iter([])).sql == b"SELECT 1"
    assert (
        read_statement("INSERT INTO t VALUES", iter([b"(1),", b"(2)"])).sql
        == b"INSERT INTO t VALUES\n(1),(2)"
    )
    assert read_statement(None, iter([b"SEL", b"ECT 2"])).sql == b"SELECT 2"
    values = b"INSERT INTO t VALUES " + b"(1)," * 50000 + b"(2)"
    assert read_statement(None, iter(pieces(values))).sql == values
    with pytest.raises(ClickHouseError) as info:
        read_statement(None, iter([b"  \n"]))
    assert info.value.code == 62


def test_trailing_format_and_content_type() -> None:
    assert trailing_format("SELECT 1\n FORMAT Native") == "Native"
    assert trailing_format("SELECT 1 FORMAT JSONEachRow;") == "JSONEachRow"
    assert trailing_format("SELECT 'FORMAT' AS x") is None
    assert content_type_for("Native") == "application/octet-stream"
    assert content_type_for("TabSeparated").startswith("text/tab-separated-values")
    assert content_type_for("JSON").startswith("application/json")


# --- bodies -----------------------------------------------------------------------------------------------------
def chunked(data: bytes, size: int = 1000) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        part = data[i : i + size]
        out += b"%x;ext=1\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\nTrailer: x\r\n\r\n"


def test_raw_body_content_length_and_chunked() -> None:
    body = RawBody(io.BytesIO(PAYLOAD + b"NEXT"), {"Content-Length": str(len(PAYLOAD))}, 10**9)
    assert b"".join(body.chunks()) == PAYLOAD and body.complete
    stream = io.BytesIO(chunked(PAYLOAD) + b"NEXT")
    body = RawBody(stream, {"Transfer-Encoding": "chunked"}, 10**9)
    assert b"".join(body.chunks()) == PAYLOAD and body.complete
    assert stream.read() == b"NEXT"  # the next request on the connection is untouched


def test_raw_body_limit() -> None:
    declared = RawBody(io.BytesIO(PAYLOAD), {"Content-Length": str(len(PAYLOAD))}, 1000)
    assert declared.declared_too_large
    with pytest.raises(BodyTooLarge) as info:
        list(declared.chunks())
    assert info.value.code == 229 and info.value.http_status == 413
    body = RawBody(io.BytesIO(chunked(PAYLOAD)), {"Transfer-Encoding": "chunked"}, 1000)
    with pytest.raises(BodyTooLarge):
        list(body.chunks())
    assert body.drain(10**9) and body.complete


def lz4_frames(data: bytes) -> bytes:
    """Compressed as clickhouse-connect does: one frame per insert block."""
    return b"".join(lz4.frame.compress(part) for part in pieces(data, max_piece=60000))


def gzip_members(data: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in pieces(data, max_piece=60000))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("lz4", lz4_frames),
        ("zstd", lambda d: b"".join(_zstd_compress(p) for p in pieces(d, max_piece=60000))),
        ("gzip", gzip_members),
        ("deflate", zlib.compress),
        ("identity", lambda d: d),
    ],
)
def test_decode_body_concatenated_frames_any_split(encoding: str, compress) -> None:
    compressed = compress(PAYLOAD)
    for seed in (1, 2):
        assert b"".join(decode_body(iter(pieces(compressed, seed)), encoding, 10**9)) == PAYLOAD


def test_decode_body_errors() -> None:
    with pytest.raises(BodyTooLarge):
        list(decode_body(iter([gzip.compress(b"\0" * 5_000_000)]), "gzip", 1_000_000))
    with pytest.raises(ClickHouseError) as info:
        list(decode_body(iter([lz4.frame.compress(PAYLOAD)[:-10]]), "lz4", 10**9))
    assert info.value.code == 271
    with pytest.raises(ClickHouseError) as info:
        list(decode_body(iter([b"not zstd at all"]), "zstd", 10**9))
    assert info.value.code == 271
    with pytest.raises(ClickHouseError) as info:
        list(decode_body(iter([b"x"]), "snappy", 10**9))
    assert info.value.code == 89


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_response_encoder_streams_one_decodable_frame(encoding: str) -> None:
    encoder = ResponseEncoder(encoding)
    parts = pieces(PAYLOAD, max_piece=30000)
    compressed = b"".join(encoder.compress(p) for p in parts) + encoder.finish()
    if encoding == "lz4":  # clickhouse-connect reads a streamed response with one decompressor
        assert lz4.frame.LZ4FrameDecompressor().decompress(compressed) == PAYLOAD
    elif encoding == "zstd":
        assert _zstd_decompressor().decompress(compressed) == PAYLOAD
    elif encoding == "gzip":
        assert gzip.decompress(compressed) == PAYLOAD
    else:
        assert zlib.decompress(compressed) == PAYLOAD


def test_choose_response_encoding() -> None:
    assert choose_response_encoding("lz4,zstd,gzip,deflate") == "lz4"
    assert choose_response_encoding("br, gzip;q=0.8") == "gzip"
    assert choose_response_encoding("gzip;q=0, deflate") == "deflate"
    assert choose_response_encoding("br") is None
    assert choose_response_encoding(None) is None


# --- command line -----------------------------------------------------------------------------------------------
def test_parse_args_password_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CH_TEST_PW", "s3cret")
    config = parse_args(["--data-dir", str(tmp_path), "--user", "writer", "--password-env", "CH_TEST_PW"])
    assert config.user == "writer" and config.password == "s3cret" and config.port == 8123
    assert "s3cret" not in repr(config)
    monkeypatch.delenv("CH_TEST_PW")
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", str(tmp_path), "--password-env", "CH_TEST_PW"])


def test_redact() -> None:
    assert redact("GET /?user=a&password=xyz&x=1") == "GET /?user=a&password=***&x=1"
