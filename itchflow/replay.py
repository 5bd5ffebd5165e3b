"""``itchflow replay``: an ITCH file into ``market-data-raw`` as per-symbol micro-batches.

Routing (documented for every consumer):

* Each record carries messages of **one symbol**, keyed by the symbol, so Kafka's default
  partitioner puts every message of a symbol in one partition, in feed order.
* The stock locate of a message is resolved through the stock directory ('R'); a locate first seen
  on an order message with a ``stock`` field (A, F, P, Q) is learned from it too (captures that start
  mid-day may lack the directory).
* Messages that belong to no symbol (``stock_locate`` 0: system events 'S', MWCB 'V'/'W', ...) are
  **broadcast**: the same batch, key ``SYSTEM_KEY``, is written to *every* partition, so each
  consumer of any partition sees the session events in order with its symbols' messages.
* Messages whose locate is unknown (no directory entry, no order with a stock yet) are keyed
  ``@<locate>``; the normalization job dead-letters them as an unknown symbol (never silently
  dropped).

A batch closes when it reaches ``batch_size`` messages or when its first message is
``linger_ms`` old (wall time), so latency stays low on a quiet feed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from itchflow.config import RAW_TOPIC
from itchflow.errors import UserError

SYSTEM_KEY = "__SYSTEM__"
# byte offsets inside an ITCH 5.0 message (type byte at 0)
_LOCATE = slice(1, 3)
_TIMESTAMP = slice(5, 11)
_STOCK_BY_TYPE = {
    ord("R"): slice(11, 19),
    ord("A"): slice(24, 32),
    ord("F"): slice(24, 32),
    ord("P"): slice(24, 32),
}
_STOCK_Q = slice(19, 27)


@dataclass
class PendingBatch:
    symbol: str
    stock_locate: int
    opened_at: float
    payloads: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClosedBatch:
    """A batch ready to produce: messages of one symbol (or of the system)."""

    symbol: str
    stock_locate: int
    batch_sequence: int
    first_message_seq: int
    payloads: tuple[bytes, ...]

    @property
    def broadcast(self) -> bool:
        return self.symbol == SYSTEM_KEY

    @property
    def envelope_symbol(self) -> str:
        """The envelope's symbol: empty for market-wide and for unresolved-locate batches."""
        return "" if self.symbol == SYSTEM_KEY or self.symbol.startswith("@") else self.symbol


class MicroBatcher:
    """Groups raw ITCH payloads into per-symbol batches (pure: no Kafka, clock injected)."""

    def __init__(
        self, batch_size: int = 1000, linger_ms: float = 10.0, clock: Callable[[], float] = time.monotonic
    ):
        if batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000.0
        self.clock = clock
        self.directory: dict[int, str] = {}
        self.pending: dict[str, PendingBatch] = {}
        self.batch_sequences: dict[str, int] = {}
        self.message_sequences: dict[str, int] = {}
        self.messages_by_symbol: dict[str, int] = {}
        self._next_linger_check = 0.0

    def symbol_of(self, payload: bytes) -> tuple[str, int]:
        locate = int.from_bytes(payload[_LOCATE], "big")
        type_byte = payload[0]
        stock_slice = _STOCK_BY_TYPE.get(type_byte) or (_STOCK_Q if type_byte == 0x51 else None)
        if stock_slice is not None and len(payload) >= stock_slice.stop:
            symbol = payload[stock_slice].decode("latin-1").rstrip(" ")
            if locate and (type_byte == 0x52 or locate not in self.directory):
                self.directory[locate] = symbol
        if locate == 0:
            return SYSTEM_KEY, 0
        known = self.directory.get(locate)
        return (known if known is not None else f"@{locate}"), locate

    def add(self, payload: bytes) -> Iterator[ClosedBatch]:
        """Add one message; yields the batches that close because of it (size or linger)."""
        symbol, locate = self.symbol_of(payload)
        batch = self.pending.get(symbol)
        now = self.clock()
        if batch is None:
            batch = self.pending[symbol] = PendingBatch(symbol, locate, now)
        batch.payloads.append(payload)
        if len(batch.payloads) >= self.batch_size:
            yield self._close(symbol)
        if now >= self._next_linger_check:
            yield from self.expired(now)
            self._next_linger_check = now + self.linger_s / 2

    def skip(self, payload: bytes) -> None:
        """Account for a message without producing it (``--from-message``): the directory and the
        per-symbol message sequence advance exactly as if it had been sent, so later messages get
        the same sequence numbers as in a full replay."""
        symbol, _ = self.symbol_of(payload)
        self.message_sequences[symbol] = self.message_sequences.get(symbol, 0) + 1

    def expired(self, now: float | None = None) -> Iterator[ClosedBatch]:
        """Batches whose first message has waited ``linger_ms``."""
        now = self.clock() if now is None else now
        for symbol in [s for s, b in self.pending.items() if now - b.opened_at >= self.linger_s]:
            yield self._close(symbol)

    def flush(self) -> Iterator[ClosedBatch]:
        """Every pending batch (end of input)."""
        for symbol in list(self.pending):
            yield self._close(symbol)

    def _close(self, symbol: str) -> ClosedBatch:
        batch = self.pending.pop(symbol)
        sequence = self.batch_sequences.get(symbol, 0) + 1  # 1-based per (session, key)
        self.batch_sequences[symbol] = sequence
        first = self.message_sequences.get(symbol, 0)
        count = len(batch.payloads)
        self.message_sequences[symbol] = first + count
        self.messages_by_symbol[symbol] = self.messages_by_symbol.get(symbol, 0) + count
        return ClosedBatch(symbol, batch.stock_locate, sequence, first, tuple(batch.payloads))


class Pacer:
    """Sleeps so that feed time advances at ``speed`` × wall time (None: full speed)."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._origin: tuple[float, int] | None = None

    def wait(self, timestamp_ns: int) -> None:
        if not self.speed:
            return
        if self._origin is None:
            self._origin = (self.clock(), timestamp_ns)
            return
        wall0, feed0 = self._origin
        due = wall0 + (timestamp_ns - feed0) / 1e9 / self.speed
        delay = due - self.clock()
        if delay > 0.0005:
            self.sleep(delay)


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    messages: int
    batches: int
    records: int
    seconds: float
    messages_by_symbol: dict[str, int]
    #: per key, the sequence number the next message would get (= messages of the key up to the
    #: end of this replay, counting those skipped by ``--from-message``)
    next_seq_by_symbol: dict[str, int] = field(default_factory=dict)

    def last_seq_by_symbol(self) -> dict[str, int]:
        """Symbols replayed in this run -> sequence number of their last message (markets-wide
        and unresolved keys left out): what the order books must have applied when done."""
        return {
            symbol: self.next_seq_by_symbol[symbol] - 1
            for symbol in self.messages_by_symbol
            if not symbol.startswith(("@", "__"))
        }

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def make_producer(bootstrap_servers: str, linger_ms: float, client_properties: dict[str, str] | None = None):
    """kafka-python producer with the field's settings: acks=all, lz4, idempotence, batching."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=int(linger_ms),
            batch_size=1 << 20,
            max_request_size=16 << 20,
            retries=10,
            request_timeout_ms=30000,
            client_id="itchflow-replay",
            **(client_properties or {}),
        )
    except (KafkaError, OSError) as exc:
        raise UserError(
            f"cannot reach the Kafka broker at {bootstrap_servers} ({exc}). "
            "Start the local stack with `itchflow stack up`, or pass --bootstrap-servers."
        ) from exc


def replay(
    payloads: Iterable[bytes],
    producer,
    *,
    topic: str,
    venue: str,
    trading_date: date,
    session: str,
    batch_size: int = 1000,
    linger_ms: float = 10.0,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    encode: Callable[..., bytes] | None = None,
    from_message: int = 0,
    to_message: int | None = None,
) -> ReplaySummary:
    """Produce ``payloads`` (raw ITCH messages in feed order) as micro-batches; waits for every ack."""
    from kafka.errors import KafkaError

    encode = encode or _avro_encoder(venue, trading_date, session)
    partitions = sorted(producer.partitions_for(topic) or [])
    if not partitions:
        raise UserError(f"topic {topic!r} does not exist on the broker; `itchflow stack up` creates it")
    batcher = MicroBatcher(batch_size, linger_ms)
    pacer = Pacer(speed)
    futures = []
    counters = {"messages": 0, "batches": 0, "records": 0}
    started = time.monotonic()

    def send(batch: ClosedBatch) -> None:
        value = encode(batch)
        key = batch.symbol.encode("utf-8")
        targets = partitions if batch.broadcast else [None]
        for partition in targets:
            futures.append(producer.send(topic, key=key, value=value, partition=partition))
            counters["records"] += 1
        counters["batches"] += 1
        if len(futures) > 20000:
            _settle(futures)

    try:
        for index, payload in enumerate(payloads):
            if index < from_message:
                batcher.skip(payload)
                continue
            if to_message is not None and index >= to_message:
                break
            pacer.wait(int.from_bytes(payload[_TIMESTAMP], "big"))
            for batch in batcher.add(payload):
                send(batch)
            counters["messages"] += 1
            if progress and counters["messages"] % 4096 == 0:
                progress(4096)
        for batch in batcher.flush():
            send(batch)
        producer.flush()
        _settle(futures)
    except KafkaError as exc:
        raise UserError(
            f"producing to {topic!r} failed: {exc}. Is the broker up? `itchflow stack status`"
        ) from exc
    if progress:
        progress(counters["messages"] % 4096)
    return ReplaySummary(
        counters["messages"],
        counters["batches"],
        counters["records"],
        time.monotonic() - started,
        dict(batcher.messages_by_symbol),
        dict(batcher.message_sequences),
    )


def _settle(futures: list) -> None:
    """Raise the first failed send (acks=all), then forget the settled futures."""
    for future in futures:
        future.get(timeout=60)
    futures.clear()


def _avro_encoder(venue: str, trading_date: date, session: str) -> Callable[[ClosedBatch], bytes]:
    from itchflow.avro.raw import encode_batch, make_batch

    def encode(batch: ClosedBatch) -> bytes:
        envelope = make_batch(
            list(batch.payloads),
            venue=venue,
            trading_date=trading_date,
            session=session,
            symbol=batch.envelope_symbol,
            stock_locate=batch.stock_locate,
            batch_sequence=batch.batch_sequence,
            first_message_seq=batch.first_message_seq,
            produced_at_ns=time.time_ns(),
        )
        return encode_batch(envelope)

    return encode


# --- command line -------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    from itchflow.stack.cli import add_stack_options

    parser = subparsers.add_parser(
        "replay",
        help="produce an ITCH 5.0 file to market-data-raw as per-symbol micro-batches",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("file", type=Path, help="ITCH 5.0 file (length-prefixed, gzip, zero-prefix or pcap)")
    parser.add_argument(
        "--date",
        required=True,
        help="trading date of the file, YYYY-MM-DD (event time = date + ITCH timestamp)",
    )
    parser.add_argument("--venue", default="NASDAQ", help="venue tag (default NASDAQ)")
    parser.add_argument("--session", help="session id in every envelope (default: file name and date)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="pace by feed timestamps, X times real time")
    pace.add_argument("--max", action="store_true", help="full speed (default)")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="messages per batch at most (default 1000)"
    )
    parser.add_argument(
        "--linger-ms",
        type=float,
        default=10.0,
        help="close a batch this long after its first message (default 10)",
    )
    parser.add_argument(
        "--from-message",
        type=int,
        default=0,
        metavar="N",
        help="start at the N-th message (0-based); earlier ones only advance the directory and sequence numbers",
    )
    parser.add_argument("--to-message", type=int, metavar="M", help="stop before the M-th message")
    parser.add_argument("--topic", default=RAW_TOPIC, help=f"topic (default {RAW_TOPIC})")
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: the local stack's broker)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stack_options(parser)
    parser.set_defaults(func=_replay_command)


def parse_trading_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--date must be YYYY-MM-DD, got {text!r}") from None


def _replay_command(args: argparse.Namespace) -> int:
    from itchflow.stack.cli import stack_config_from_args

    trading_date = parse_trading_date(args.date)
    if args.speed is not None and args.speed <= 0:
        raise UserError("--speed must be positive")
    if not args.file.exists():
        raise UserError(f"{args.file}: no such file")
    bootstrap = args.bootstrap_servers or stack_config_from_args(args).bootstrap_servers
    producer = make_producer(bootstrap, args.linger_ms)
    session = args.session or f"{args.file.name}@{trading_date.isoformat()}"
    summary = run_replay_file(
        args.file,
        producer,
        topic=args.topic,
        venue=args.venue,
        trading_date=trading_date,
        session=session,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
        speed=args.speed,
        show_progress=not args.no_progress,
        from_message=args.from_message,
        to_message=args.to_message,
    )
    producer.close()
    print(
        f"replayed {summary.messages:,} messages of {len(summary.messages_by_symbol):,} keys in {summary.batches:,} batches "
        f"({summary.records:,} records) to {args.topic} in {summary.seconds:.2f}s: {summary.messages_per_second:,.0f} messages/s"
    )
    return 0


def run_replay_file(path: Path, producer, *, show_progress: bool = True, **options) -> ReplaySummary:
    """Replay a file with a progress bar on stderr; decoding errors become a UserError with the offset."""
    from tqdm import tqdm

    from itchflow.itch.codec import ItchDecodeError

    bar = tqdm(
        desc=f"replay {path.name}", unit=" msg", unit_scale=True, file=sys.stderr, disable=not show_progress
    )
    try:
        return replay(file_payloads(path), producer, progress=bar.update, **options)
    except ItchDecodeError as exc:
        raise UserError(f"{path}: {exc}. Check the file with `itchflow itch stats {path}`.") from exc
    finally:
        bar.close()


def file_payloads(path: Path) -> Iterator[bytes]:
    """Raw ITCH payloads of ``path`` in order, whatever the framing."""
    from itchflow.itch import framing

    for _offset, payload in framing.iter_payloads(path):
        yield payload
