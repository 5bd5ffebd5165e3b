"""Helpers for the order-book stage tests: batch factories, feeds, and readers of what the stage emits.

The readers are written from the formats' specifications, independently of the encoders under test:
a ClickHouse RowBinary reader driven by the column types parsed from ``schemas/clickhouse/*.sql``,
and a RESP (Redis protocol) parser.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from itchflow.itch.framing import iter_payloads
from itchflow.normalize import normalize_bundle, normalize_messages
from itchflow.normalize.bundle import RunBatch, run_batches
from itchflow.pipeline.book_stage import BookStage, BookStageConfig, StageOutput
from itchflow.replay import BundleBatcher
from tests.unit.book_factories import LOCATE, SYMBOL, T0

ROOT = Path(__file__).resolve().parents[2]
DDL = ROOT / "schemas" / "clickhouse" / "001_book.sql"
SAMPLES = ROOT.parent / "shared" / "data" / "itch"

VENUE = "XNAS"
TRADING_DATE = date(2019, 12, 30)
MIDNIGHT_NS = int(datetime(2019, 12, 30, 5, tzinfo=UTC).timestamp()) * 1_000_000_000
"""Midnight in New York on TRADING_DATE (UTC-5 in winter), as UTC epoch ns."""
SESSION = "feed.itch@2019-12-30"
CONFIG = BookStageConfig()

__all__ = ["LOCATE", "SYMBOL", "T0"]


def epoch(itch_ns: int) -> int:
    """ts_event of an ITCH timestamp (ns since midnight) on TRADING_DATE."""
    return MIDNIGHT_NS + itch_ns


def batch_of(
    messages: Sequence[Any], *, first_seq: int = 0, session: str = SESSION, trading_date: date = TRADING_DATE
) -> RunBatch:
    """The normalized run of ITCH message objects of SYMBOL on ``trading_date``; seqs run from ``first_seq``."""
    result = normalize_messages(
        messages,
        venue=VENUE,
        trading_date=trading_date,
        symbol=SYMBOL,
        stock_locate=LOCATE,
        session=session,
        first_message_seq=first_seq,
    )
    assert not result.rejected, result.rejected
    (run,) = run_batches(result.bundle)
    return run


def new_stage(config: BookStageConfig = CONFIG, symbol: str = SYMBOL) -> BookStage:
    return BookStage.restore(None, venue=VENUE, symbol=symbol, config=config)


# --- feeds of many symbols -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolFeed:
    """One symbol's part of a feed: its normalized runs and the raw messages behind them."""

    symbol: str
    batches: list[RunBatch]
    payloads: list[bytes]


def symbol_feeds(payloads: Iterable[bytes], batch_size: int, session: str = SESSION) -> dict[str, SymbolFeed]:
    """Cut a feed as the replay producer does (one partition: bundles of ``batch_size`` messages),
    normalize each bundle and give each symbol its runs."""
    batcher = BundleBatcher(partitions=1, batch_size=batch_size, linger_ms=float("inf"), clock=lambda: 0.0)
    closed = []
    for payload in payloads:
        closed.extend(batcher.add(payload))
    closed.extend(batcher.flush())
    feeds: dict[str, SymbolFeed] = {}
    for bundle in closed:
        segments = [s for s in bundle.segments if s.symbol and not s.symbol.startswith("@")]
        if not segments:
            continue  # market-wide or unresolved: no book
        raw = dataclasses.replace(bundle, segments=tuple(segments))
        result = normalize_bundle(
            raw.envelope(venue=VENUE, trading_date=TRADING_DATE, session=session, produced_at_ns=0)
        )
        assert not result.rejected, result.rejected
        for run, segment in zip(run_batches(result.bundle), segments, strict=True):
            feed = feeds.setdefault(run.symbol, SymbolFeed(run.symbol, [], []))
            feed.batches.append(run)
            feed.payloads.extend(segment.payloads)
    return feeds


def sample_payloads(name: str) -> list[bytes]:
    """The messages of a real sample file (any framing), as raw payloads."""
    return [payload for _, payload in iter_payloads(SAMPLES / name)]


# --- ClickHouse RowBinary --------------------------------------------------------------------------------

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*?)\)\s*ENGINE", re.DOTALL)


def ddl_columns(path: Path = DDL) -> dict[str, list[tuple[str, str]]]:
    """``{table: [(column, type), ...]}`` from the DDL file, in declaration order."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("--"))
    tables = {}
    for name, body in _TABLE.findall(text):
        columns = []
        for line in body.splitlines():
            line = re.sub(r"\s+COMMENT\s+'.*'", "", line).strip().rstrip(",")
            if line:
                column, column_type = line.split(None, 1)
                columns.append((column, column_type.strip()))
        tables[name] = columns
    return tables


_INTEGERS = {
    "Int64": (8, True),
    "UInt64": (8, False),
    "UInt32": (4, False),
    "UInt16": (2, False),
    "UInt8": (1, False),
}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, size: int) -> bytes:
        chunk = self.data[self.position : self.position + size]
        assert len(chunk) == size, "RowBinary data ends inside a value"
        self.position += size
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def value(self, column_type: str) -> Any:
        if column_type in _INTEGERS:
            size, signed = _INTEGERS[column_type]
            return int.from_bytes(self.take(size), "little", signed=signed)
        if column_type == "Int128":
            return int.from_bytes(self.take(16), "little", signed=True)
        if column_type == "Float64":
            return struct.unpack("<d", self.take(8))[0]
        if column_type == "Date":
            return int.from_bytes(self.take(2), "little")
        if column_type.startswith("DateTime64(9"):
            return int.from_bytes(self.take(8), "little", signed=True)
        if column_type.startswith("Nullable(") and column_type.endswith(")"):
            return None if self.take(1) == b"\x01" else self.value(column_type[9:-1])
        if column_type in ("String", "LowCardinality(String)"):
            return self.take(self.varint()).decode("utf-8")
        if column_type.startswith("Array(") and column_type.endswith(")"):
            return [self.value(column_type[6:-1]) for _ in range(self.varint())]
        raise AssertionError(f"no reader for {column_type}")


def read_rows(table: str, data: bytes, ddl: Path | None = None) -> list[dict[str, Any]]:
    """Decode RowBinary rows of ``table`` using the column types of the DDL file ``ddl`` (default:
    the file of ``schemas/clickhouse`` that creates the table)."""
    if ddl is None:
        found = [path for path in sorted(DDL.parent.glob("*.sql")) if table in ddl_columns(path)]
        assert found, f"no DDL creates table {table}"
        ddl = found[0]
    columns = ddl_columns(ddl)[table]
    reader = _Reader(data)
    rows = []
    while reader.position < len(data):
        rows.append({name: reader.value(column_type) for name, column_type in columns})
    return rows


# --- Redis RESP ------------------------------------------------------------------------------------------


def parse_resp(data: bytes) -> list[list[str]]:
    """Split pipelined RESP arrays of bulk strings into commands (lists of arguments)."""
    commands = []
    position = 0

    def line() -> bytes:
        nonlocal position
        end = data.index(b"\r\n", position)
        text, position = data[position:end], end + 2
        return text

    while position < len(data):
        header = line()
        assert header[:1] == b"*", header
        arguments = []
        for _ in range(int(header[1:])):
            bulk = line()
            assert bulk[:1] == b"$", bulk
            size = int(bulk[1:])
            arguments.append(data[position : position + size].decode("utf-8"))
            assert data[position + size : position + size + 2] == b"\r\n"
            position += size + 2
        commands.append(arguments)
    return commands


def fields_of(command: list[str], start: int) -> dict[str, str]:
    """``field value ...`` pairs of a command from argument ``start`` on."""
    pairs = command[start:]
    assert len(pairs) % 2 == 0, command
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


# --- one batch's output, decoded --------------------------------------------------------------------------


@dataclass
class Decoded:
    """A StageOutput read back through the independent readers."""

    rows: dict[str, list[dict[str, Any]]]
    commands: list[list[str]]

    def table(self, name: str) -> list[dict[str, Any]]:
        return self.rows.get(name, [])

    def xadds(self) -> list[list[str]]:
        return [command for command in self.commands if command[0] == "XADD"]

    def hset(self, key: str) -> dict[str, str] | None:
        found = [fields_of(command, 2) for command in self.commands if command[:2] == ["HSET", key]]
        assert len(found) <= 1, f"{len(found)} HSET {key} in one batch"
        return found[0] if found else None


def decode(output: StageOutput) -> Decoded:
    tables = [table for table, _ in output.clickhouse]
    assert len(tables) == len(set(tables)), f"one chunk per table, got {tables}"
    assert all(chunk for _, chunk in output.clickhouse), "no empty chunks"
    commands = parse_resp(output.redis)
    assert len(commands) == output.redis_commands
    return Decoded({table: read_rows(table, chunk) for table, chunk in output.clickhouse}, commands)


def run(stage: BookStage, batches: Iterable[RunBatch]) -> Iterator[StageOutput]:
    for batch in batches:
        yield stage.apply(batch)
