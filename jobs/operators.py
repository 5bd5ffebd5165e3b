"""The jobs' Flink operators: thin adapters that load state, call the core, save state, emit.

The work is in the pure core (``itchflow.pipeline``): :mod:`~itchflow.pipeline.normalize_stage`
normalizes a raw record, :mod:`~itchflow.pipeline.partition_books` applies a normalized record to a
key's books. Here each gets its Flink state (one adapter, :class:`FlinkKeyedState`), its metrics and
its outputs; the entry points (``normalize.py``, ``order_book.py``, ``market_data.py``) wire these
operators between sources and sinks in their ``build`` functions.

Outputs: the main output of the book operators is ClickHouse rows (``Row(table, RowBinary)``), the
normalize operator's is normalized records (``Row(key, value)``); side outputs are tagged below.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

from connectors.kafka import (
    END_OF_REPLAY,
    FUTURE,
    HEARTBEAT,
    KEYED_BYTES,
    KEYED_TIMED,
    control_record,
    record_event_time,
    split_record,
    topic_key,
)
from connectors.redis import REDIS_COMMANDS
from itchflow.analytics.bar_stage import BarConfig, BarRevision, BarStage, complete_before_ns
from itchflow.analytics.bars import eligible
from itchflow.analytics.bursts import Burst, BurstDetector
from itchflow.analytics.flow_stage import FlowConfig, FlowStage
from itchflow.analytics.rolling_stage import RollingStage
from itchflow.avro import InvalidReason, InvalidRecord
from itchflow.avro.deadletter import DeadLetter, dead_letter_for, encode_dead_letter
from itchflow.cep.bundle_events import activity_resolution_ns, bundle_events
from itchflow.cep.detectors import DetectorConfig
from itchflow.cep.sequencer import AlertSequencer, alert_json, emitted_at
from itchflow.cep.stage import CepStage
from itchflow.codeversion import check_loaded
from itchflow.normalize.bundle import NormalizedBundle
from itchflow.pipeline.book_events import decode_book_events, encode_book_events
from itchflow.pipeline.book_stage import BookStageConfig
from itchflow.pipeline.collector import CollectorFreeze
from itchflow.pipeline.latency import bucket_names, bucket_of
from itchflow.pipeline.normalize_stage import JOB_NAME as NORMALIZE_JOB_NAME
from itchflow.pipeline.normalize_stage import NormalizeOutcome, RecordSource, SequenceCache, normalize_record
from itchflow.pipeline.partition_books import COUNTER_NAMES, BookCache, BundleOutput, top_and_depth
from itchflow.sinks.alert_outputs import ALERTS, alert_commands, alert_rows
from itchflow.sinks.bar_outputs import BARS, bar_commands, bar_rows, interval_name
from itchflow.sinks.burst_outputs import BURSTS, burst_alert_commands, burst_rows
from itchflow.sinks.flow_outputs import LIQUIDITY, OFI, flow_commands, liquidity_rows, ofi_rows
from itchflow.sinks.rolling_outputs import MOVING_AVERAGES, VWAP, average_rows, rolling_commands, vwap_rows

LOG = logging.getLogger(__name__)
JOB_NAME = "itchflow-market-data"
ANALYTICS_JOB_NAME = "itchflow-analytics"

DEAD_LETTERS = OutputTag("dead-letters", KEYED_BYTES)
"""Dead letters (``Row(source key, DeadLetter Avro)``) of the normalize operators."""
NORMALIZED_OUT = OutputTag("normalized", KEYED_TIMED)
"""The market-data operator's normalized records (``Row(key, NormalizedBundle Avro, event time)``)."""
BOOK_EVENTS_OUT = OutputTag("book-events", KEYED_TIMED)
"""The order-book operator's book events (``Row(key, BookEvents Avro, event time)``, see
:mod:`itchflow.pipeline.book_events`) and the control records it passes on."""
ALERTS_OUT = OutputTag("alerts", Types.ROW([Types.LONG(), Types.STRING()]))
"""The detectors' alert versions (``Row(emitted at ns, alert JSON)``) for :class:`SequenceAlerts`."""
REDIS_OUT = OutputTag("redis-commands", REDIS_COMMANDS)
"""The book operators' Redis pipelines (``Row(command count, RESP bytes, fired_at_ms)``; the last
is 0 except on the records of bars fired by event time, see :class:`BarStep`)."""

BOOK_METRICS = {
    "events_applied": "eventsApplied",
    "duplicates_skipped": "duplicateEvents",
    "tob_changes": "topOfBookChanges",
    "trades": "trades",
    "unknown_refs": "unknownOrderRefs",
    "market_wide_runs": "marketWideRuns",
}
"""Book counters (:data:`~itchflow.pipeline.partition_books.COUNTER_NAMES`) -> Flink metric names."""

# PICKLED_BYTE_ARRAY, not PRIMITIVE_ARRAY(BYTE): thread mode cannot read an empty primitive-array
# state (PyFlink 2.3 converter bug); the values are the core's own bytes and tuples.
_STATE_TYPE = Types.PICKLED_BYTE_ARRAY()


class FlinkKeyedState:
    """:class:`~itchflow.pipeline.keyed_state.KeyedState` over the current key's Flink states:
    a ValueState, a ListState (the log) and, when the stage keeps entries, a MapState."""

    __slots__ = ("_value", "_entries", "_log")

    def __init__(
        self, runtime_context: RuntimeContext, value: str, log: str, entries: str | None = None
    ) -> None:
        """Declare the states under these names (savepoints know them by name: never rename)."""
        self._value = runtime_context.get_state(ValueStateDescriptor(value, _STATE_TYPE))
        self._log = runtime_context.get_list_state(ListStateDescriptor(log, _STATE_TYPE))
        self._entries = (
            None
            if entries is None
            else runtime_context.get_map_state(MapStateDescriptor(entries, Types.STRING(), _STATE_TYPE))
        )

    def value(self):
        return self._value.value()

    def set_value(self, value) -> None:
        self._value.update(value)

    def entries(self):
        return [] if self._entries is None else list(self._entries.items())

    def put_entry(self, name: str, value) -> None:
        if self._entries is None:
            raise TypeError("this state was declared without entries")
        self._entries.put(name, value)

    def log(self):
        return list(self._log.get() or ())

    def append_log(self, item) -> None:
        self._log.add(item)

    def clear_log(self) -> None:
        self._log.clear()


# Header flags (see connectors/kafka.py): END_OF_REPLAY and HEARTBEAT mark empty records, not input
# to normalize -- the end of a replay closes the partition's event-time windows, a heartbeat only moved
# the watermark (in the JVM, before the operator); both are passed on to the next job's topic. FUTURE
# marks a record whose event time the source found later than the wall clock allows: dead-lettered.


def _key_text(key: object) -> str:
    return key[0] if isinstance(key, (Row, tuple, list)) else str(key)


def future_letter(source_topic: str, job: str, key: bytes, value: bytes) -> Row:
    """The dead letter (``Row(key, DeadLetter)``) of a record the source flagged :data:`FUTURE`:
    the whole record, reason ``future``; nothing of it is applied."""
    partition, offset, timestamp_ms, payload = split_record(value)
    event_time_ms = record_event_time(value)[0] // 1_000_000
    error = InvalidRecord(
        InvalidReason.FUTURE,
        f"event time {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(event_time_ms / 1000))} UTC is more "
        "than --max-future-ms ahead of the wall clock: a replay stamped with a date to come, or a damaged "
        "record. Nothing of it was applied; replay it with its real --date",
    )
    return _dead_letter(error, source_topic, job, key, value)


def _dead_letter(error: InvalidRecord, source_topic: str, job: str, key: bytes, value: bytes) -> Row:
    """``Row(key, DeadLetter)`` of a whole keyed-record-source value rejected with ``error``."""
    partition, offset, timestamp_ms, payload = split_record(value)
    letter = dead_letter_for(
        error, source_topic=source_topic, source_partition=partition, source_offset=offset, key=key,
        value=bytes(payload), job=job, ts_failed=time.time_ns(), source_timestamp_ms=timestamp_ms,
    )  # fmt: skip
    return Row(key, encode_dead_letter(letter))


class NormalizeStep:
    """Normalization of one keyed raw record with its state and metrics (for an operator's
    ``open`` / ``process_element``)."""

    def __init__(self, runtime_context: RuntimeContext, source_topic: str) -> None:
        self.source_topic = source_topic
        # "sequence" keeps its name and form (savepoints of the earlier layout restore); the log
        # holds what each record changed since the last compaction (see SequenceCache)
        self.state = FlinkKeyedState(runtime_context, value="sequence", log="sequence-log")
        self.sequences = SequenceCache()
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.messages_in = metrics.counter("messagesIn")
        self.events_out = metrics.counter("eventsOut")
        self.dead_letters = metrics.counter("deadLetters")
        self.duplicates = metrics.counter("duplicateBatches")
        self.gap_messages = metrics.counter("gapMessages")
        self.latency = [metrics.counter(name) for name in bucket_names("producedToNormalizer")]

    def future(self, key: object, value: bytes) -> Row:
        """The dead letter of a raw record flagged :data:`FUTURE` (counted in ``deadLetters``)."""
        self.dead_letters.inc()
        return future_letter(self.source_topic, NORMALIZE_JOB_NAME, topic_key(_key_text(key)), value)

    def process(self, key: object, value: bytes) -> tuple[NormalizeOutcome, bytes]:
        """Normalize one keyed raw record (state read and written, metrics counted): the outcome and
        the record's key (what its dead letters are keyed by)."""
        key_text = _key_text(key)
        partition, offset, timestamp_ms, payload = split_record(value)
        source = RecordSource(self.source_topic, partition, offset, timestamp_ms, topic_key(key_text))
        outcome = normalize_record(bytes(payload), source, self.sequences.state(key_text, self.state))
        self.sequences.save(key_text, self.state, outcome)
        self.messages_in.inc(outcome.messages_in)
        if outcome.ts_produced:
            self.latency[bucket_of((outcome.ts_recv - outcome.ts_produced) / 1e6)].inc()
        self.events_out.inc(outcome.events_out)
        # each counter call crosses into the JVM: only the ones with something to count
        if outcome.gap_messages:
            self.gap_messages.inc(outcome.gap_messages)
        if outcome.duplicates:
            self.duplicates.inc(outcome.duplicates)
        if outcome.dead_letters:
            self.dead_letters.inc(len(outcome.dead_letters))
        return outcome, source.key


class BookStep:
    """One normalized record applied to a key's order books, with their state and metrics (for an
    operator's ``open`` / ``process_element``)."""

    def __init__(self, runtime_context: RuntimeContext, config: BookStageConfig) -> None:
        # v2 layout: per bundle (shard) key a token, the books' snapshots and the records applied since
        self.state = FlinkKeyedState(runtime_context, value="token", log="log", entries="snapshots")
        self.books = BookCache(config)
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.counters = {name: metrics.counter(BOOK_METRICS[name]) for name in COUNTER_NAMES}
        self.latency = [metrics.counter(name) for name in bucket_names("producedToBook")]
        self.bad_records = metrics.counter("badRecords")
        self.restores = metrics.counter("bookRestores")
        # No Python gauges: in thread mode Flink's metrics thread would call into the embedded
        # interpreter to read them, which crashed the TaskManager (SIGSEGV in pemja) when the web UI
        # or REST polled metrics. Counters are Java-side and safe; latency is measured by `itchflow bench`.

    def process(
        self, key: object, payload: bytes, bundle: NormalizedBundle | None = None
    ) -> Generator[Row | tuple[OutputTag, Row], None, BundleOutput | None]:
        """Apply one normalized record of ``key`` (``bundle``: the same, decoded, when the caller has
        it); its outputs: ClickHouse rows on the main output, the Redis pipeline on ``REDIS_OUT``;
        returns what the books produced. An undecodable record is counted and skipped (None)."""
        restores = self.books.restores
        try:
            output = self.books.process(key, payload, self.state, bundle)
        except InvalidRecord as error:
            self.bad_records.inc()  # not our normalizer's output: counted and skipped, never a crash loop
            LOG.warning("order book: skipped an undecodable normalized record: %s", error)
            return None
        self.latency[bucket_of((time.time_ns() - output.ts_produced) / 1e6)].inc()
        if self.books.restores != restores:
            self.restores.inc()
        for name, count in output.counters.items():
            if count:
                self.counters[name].inc(count)
        for table, rows in output.clickhouse:
            yield Row(table, rows)
        if output.redis_commands:
            yield REDIS_OUT, Row(output.redis_commands, output.redis, 0)
        return output


class BarStep:
    """The bars of a key in event time (:class:`~itchflow.analytics.bar_stage.BarStage`) with their
    state, timer and metrics, for the market-data operator: the books' prints go in per record; bars
    come out when the watermark passes their windows (here or in ``on_timer``), at the end of a
    replay, and as revisions for late prints and broken trades.

    State: a snapshot of the stage (``bars``) and the steps taken since (``bars-log``: each record's
    prints and breaks with the watermark it saw, each timer, each end of replay), written as a new
    snapshot every ``compact_every`` steps -- a record costs its own prints, not the whole stage.
    The trading day's archive of prints, which lets a broken trade revise a bar long closed, is its
    own list (``bars-archive``): each step appends its new prints (packed rows) and breaks; it is
    written anew, with a snapshot, only when the stage asks (the end of the feed empties it, earlier
    days' rows outgrow the live ones), so a snapshot never rewrites a day of prints.

    The sliding VWAP and moving averages (:class:`~itchflow.analytics.rolling_stage.RollingStage`,
    when the config has them) take every batch of bars the stage emits; their snapshot (``rolling``)
    is written with the stage's, and a restore applies the logged steps' bars to it again. The bursts
    (:class:`~itchflow.analytics.bursts.BurstDetector`) take the same prints and breaks: their
    snapshot (``bursts``) is written with the stage's, and a restore applies the logged steps to them.

    Bar publish delay: when the watermark passes the end of bars' windows (the timer, or a record that
    finds it past them) and bars are emitted for the first time, the step's Redis record carries the
    wall-clock time (epoch ms) the step began, for the Redis writer to count the time until Redis has
    it (``barPublishDelay``); one record per such step, counted in ``barFirings``. The end of a replay
    or of the feed closes bars before event time reaches their ends, and revisions follow late data:
    their records carry 0."""

    def __init__(
        self,
        runtime_context: RuntimeContext,
        config: BarConfig,
        redis_prefix: str,
        source_topic: str,
        compact_every: int = 64,
        clock: Callable[[], int] = time.time_ns,
        job: str = JOB_NAME,
    ):
        self.config = config
        self.job = job
        self.clock = clock
        self.redis_prefix = redis_prefix
        self.source_topic = source_topic
        self.compact_every = compact_every
        self.snapshot = runtime_context.get_state(ValueStateDescriptor("bars", _STATE_TYPE))
        self.log = runtime_context.get_list_state(ListStateDescriptor("bars-log", _STATE_TYPE))
        self.archive = runtime_context.get_list_state(ListStateDescriptor("bars-archive", _STATE_TYPE))
        self.rolling = runtime_context.get_state(ValueStateDescriptor("rolling", _STATE_TYPE))
        self.bursts = runtime_context.get_state(ValueStateDescriptor("bursts", _STATE_TYPE))
        #: per key: the live stage and how many steps its log holds
        self.stages: dict[object, list] = {}
        self.timers: dict[object, int] = {}
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.bars_out = metrics.counter("barsEmitted")
        self.revisions_out = metrics.counter("barRevisions")
        self.firings = metrics.counter("barFirings")
        self.late_events = metrics.counter("lateEvents")
        self.unnamed_prints = metrics.counter("printsOfUnnamedLocates")
        self.rolling_out = metrics.counter("rollingValuesEmitted")
        self.rolling_unrevised = metrics.counter("rollingBarsUnrevised")
        self.bursts_out = metrics.counter("burstsEmitted")
        self.burst_alerts = metrics.counter("burstAlerts")
        self.late_burst_prints = metrics.counter("lateBurstPrints")

    def _stage(self, key: object) -> list:
        entry = self.stages.get(key)
        if entry is None:
            config = self.config
            stage = BarStage.restore(self.snapshot.value(), config, self.archive.get() or ())
            rolling = (
                None
                if config.rolling is None
                else RollingStage.restore(self.rolling.value(), config.rolling, config.allowed_lateness_ns)
            )
            bursts = None
            if config.bursts is not None:
                bursts = BurstDetector(replace(config.bursts, allowed_lateness_ms=config.allowed_lateness_ms))
                saved = self.bursts.value()
                if saved:
                    bursts.restore(pickle.loads(saved))  # noqa: S301 -- our own state bytes
            logged = 0
            for step in self.log.get() or ():
                revisions = stage.replay(step)
                if rolling is not None:
                    rolling.apply(revisions, *_step_time(step), history=stage.day_bars)
                if bursts is not None:
                    _burst_step(bursts, step)
                    bursts.late.clear()
                logged += 1
            entry = self.stages[key] = [stage, logged, rolling, bursts]
        return entry

    def on_books(
        self, key: object, output: BundleOutput, ctx, source: tuple[int, int, int, bytes]
    ) -> Iterator:
        """A record's prints and broken trades (``source``: partition, offset, Kafka ms, key bytes)."""
        now_ns = self.clock()
        complete = complete_before_ns(ctx.timer_service().current_watermark())
        trading_date = output.trading_date
        prints = []
        for venue, symbol, rows in output.prints:
            if symbol.startswith("@"):  # a locate the feed never named: no symbol to put bars under
                self.unnamed_prints.inc(len(rows))
                continue
            for seq, ts_event, kind, match, price, shares, _, printable in rows:
                if eligible(kind, bool(printable), shares):
                    prints.append((venue, symbol, trading_date, (ts_event, seq, match, price, shares)))
        breaks = [(venue, symbol, match, ts_event) for venue, symbol, ts_event, _, match in output.breaks]
        if not prints and not breaks and not output.end_of_messages and key in self.timers:
            return  # nothing for the bars; the timer fires them when the watermark passes
        step = ("r", complete, prints, breaks, output.end_of_messages)
        entry = self._stage(key)
        revisions = entry[0].record(complete, prints, breaks, output.end_of_messages)
        yield from self._late(entry[0], source)
        fired_at_ns = 0 if output.end_of_messages else now_ns
        yield from self._emit(key, entry, step, revisions, ctx, fired_at_ns)

    def on_timer(self, key: object, ctx) -> Iterator:
        now_ns = self.clock()
        complete = complete_before_ns(ctx.timer_service().current_watermark())
        entry = self._stage(key)
        yield from self._emit(key, entry, ("f", complete), entry[0].fire(complete), ctx, now_ns)

    def close_all(self, key: object, ctx) -> Iterator:
        """The end of a replay in this key's partition: every open bar now."""
        entry = self._stage(key)
        yield from self._emit(key, entry, ("c",), entry[0].close_all(), ctx)

    def _late(self, stage: BarStage, source: tuple[int, int, int, bytes]) -> Iterator:
        if not stage.late:
            return
        partition, offset, timestamp_ms, key = source
        now = time.time_ns()
        for late in stage.late:
            self.late_events.inc()
            detail = (
                f"{late.kind} of {late.venue}:{late.symbol} match {late.match_number} at {late.ts_event} ns "
                f"came after the {'/'.join(interval_name(i) for i in late.intervals_s)} bar(s) closed"
            )
            letter = DeadLetter(
                self.source_topic, partition, offset, timestamp_ms, key, None, None,
                InvalidReason.LATE.value, detail, "LatePrint", self.job, now,
            )  # fmt: skip
            yield DEAD_LETTERS, Row(key, encode_dead_letter(letter))
        stage.late.clear()

    def _emit(
        self, key: object, entry: list, step: tuple, revisions: list[BarRevision], ctx, fired_at_ns: int = 0
    ) -> Iterator:
        """``fired_at_ns``: when a step driven by the watermark began (0: the end of a replay or feed)."""
        stage = entry[0]
        rewrite = stage.archive_rewrite
        if rewrite:
            archive = stage.rewrite_archive()
            if archive:
                self.archive.update(archive)
            else:
                self.archive.clear()
        else:
            archived = stage.take_archive()
            if archived is not None:
                self.archive.add(archived)
        rolling: RollingStage | None = entry[2]
        if rolling is None:
            derived = None
        else:
            unrevised = rolling.unrevised
            derived = rolling.apply(revisions, *_step_time(step), history=stage.day_bars)
            if rolling.unrevised != unrevised:
                self.rolling_unrevised.inc(rolling.unrevised - unrevised)
        detector: BurstDetector | None = entry[3]
        bursts = [] if detector is None else _burst_step(detector, step)
        if detector is not None and detector.late:
            self.late_burst_prints.inc(len(detector.late))  # the bars' late output has them already
            detector.late.clear()
        if rewrite or entry[1] + 1 >= self.compact_every:  # the snapshot names the entries it has seen
            self.snapshot.update(stage.snapshot())
            if rolling is not None:
                self.rolling.update(rolling.snapshot())
            if detector is not None:
                self.bursts.update(pickle.dumps(detector.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
            self.log.clear()
            entry[1] = 0
        else:
            self.log.add(step)
            entry[1] += 1
        redis: list[bytes] = []
        fired_at_ms = 0
        if revisions:
            # the latest-bar hashes: one write per (venue, symbol, size), the newest of the batch
            last = {(r.venue, r.bar.symbol, r.bar.interval_s): r for r in revisions if r.latest}
            for revision in revisions:
                hashed = last.get((revision.venue, revision.bar.symbol, revision.bar.interval_s)) is revision
                streamed = revision.bar.interval_s in self.config.stream_intervals_s
                commands = bar_commands(
                    revision, self.redis_prefix, self.config.stream_maxlen, hashed, streamed
                )
                redis += commands
                if revision.revision:
                    self.revisions_out.inc()
                else:
                    self.bars_out.inc()
                    # a bar's first emission in a watermark step, written to Redis: the watermark
                    # just passed its end (with allowed lateness, a late print may also open a window
                    # that ended already)
                    if fired_at_ns and commands:
                        fired_at_ms = fired_at_ns // 1_000_000
            yield Row(BARS, bar_rows(revisions))
        if derived is not None and (derived.vwaps or derived.averages):
            if derived.vwaps:
                yield Row(VWAP, vwap_rows(derived.vwaps))
            if derived.averages:
                yield Row(MOVING_AVERAGES, average_rows(derived.averages))
            self.rolling_out.inc(len(derived.vwaps) + len(derived.averages))
            redis += rolling_commands(derived.vwaps, derived.averages, self.redis_prefix)
        if bursts:
            yield Row(BURSTS, burst_rows(bursts))
            self.bursts_out.inc(len(bursts))
            alerts = burst_alert_commands(bursts, self.redis_prefix, self.config.stream_maxlen)
            if alerts:
                self.burst_alerts.inc(len(alerts))
                redis += alerts
        if redis:
            if fired_at_ms:
                self.firings.inc()
            yield REDIS_OUT, Row(len(redis), b"".join(redis), fired_at_ms)
        timers = [stage.next_timer_ms()]
        if rolling is not None:
            timers.append(rolling.next_timer_ms())
        if detector is not None:
            timers.append(detector.next_timer_ms())
        timer = min((t for t in timers if t is not None), default=None)
        if timer is not None and self.timers.get(key) != timer:
            ctx.timer_service().register_event_time_timer(timer)
            self.timers[key] = timer


class _LoggedStageStep:
    """What :class:`FlowStep` and :class:`CepStep` share: per key, a live stage rebuilt from its state
    (a snapshot, ``<name>``, and the steps since, ``<name>-log``) on first use, each step logged until
    the log outweighs the last snapshot (each step weighing at least ``step_bytes``, see
    :class:`FlowStep`), and one event-time timer per key at the stage's next due time."""

    def __init__(
        self,
        runtime_context: RuntimeContext,
        name: str,
        restore: Callable,
        compact_bytes: int,
        step_bytes: int,
    ) -> None:
        self.restore = restore
        self.compact_bytes = compact_bytes
        self.step_bytes = step_bytes
        self.snapshot = runtime_context.get_state(ValueStateDescriptor(name, _STATE_TYPE))
        self.log = runtime_context.get_list_state(ListStateDescriptor(f"{name}-log", _STATE_TYPE))
        #: per key: the live stage, the weight of its log (bytes) and the size of its last snapshot
        self.stages: dict[object, list] = {}
        self.timers: dict[object, int] = {}

    def _stage(self, key: object) -> list:
        entry = self.stages.get(key)
        if entry is None:
            stage = self.restore(self.snapshot.value())
            for step in self.log.get() or ():
                stage.replay(step)
            entry = self.stages[key] = [stage, self.compact_bytes, 0]  # a restore compacts at once
        return entry

    def on_timer(self, key: object, ctx) -> Iterator:
        complete = complete_before_ns(ctx.timer_service().current_watermark())
        entry = self._stage(key)
        yield from self._emit(key, entry, ("f", complete), entry[0].fire(complete), ctx)

    def close_all(self, key: object, ctx) -> Iterator:
        """The end of a replay: everything the stage holds, now."""
        entry = self._stage(key)
        yield from self._emit(key, entry, ("c",), entry[0].close_all(), ctx)

    def _emit(self, key: object, entry: list, step: tuple, out, ctx) -> Iterator:
        """Save the step (:meth:`_save`), emit the stage's output, set the timer (the subclass')."""
        raise NotImplementedError

    def _save(self, entry: list, step: tuple, step_bytes: int) -> None:
        """Log ``step`` (of ``step_bytes``), or write a snapshot when the log outweighs the last one."""
        weight = entry[1] + max(self.step_bytes, step_bytes)
        if weight >= max(self.compact_bytes, entry[2]):
            snapshot = entry[0].snapshot()
            self.snapshot.update(snapshot)
            self.log.clear()
            entry[1], entry[2] = 0, len(snapshot)
        else:
            self.log.add(step)
            entry[1] = weight

    def _set_timer(self, key: object, stage, ctx) -> None:
        timer = stage.next_timer_ms()
        if timer is not None and self.timers.get(key) != timer:
            ctx.timer_service().register_event_time_timer(timer)
            self.timers[key] = timer


class FlowStep(_LoggedStageStep):
    """Order-flow imbalance and liquidity of a key in event time
    (:class:`~itchflow.analytics.flow_stage.FlowStage`) with their state, timer and metrics, for the
    market-data operator: the books' ``top_of_book`` and ``depth_snapshots`` rows go in per record;
    rows of ``ofi`` and ``liquidity`` come out when the watermark passes their windows (here or in
    ``on_timer``) and at the end of a replay.

    State: a snapshot of the stage (``flow``) and the steps since (``flow-log``: each record's rows
    as the books wrote them, each timer, each end of replay). A new snapshot is written once the log
    outweighs the last one: its rows, each step counted as at least ``step_bytes``, reach the larger
    of ``compact_bytes`` and the last snapshot's size. So the snapshots cost at most about what the
    records' rows do, however many symbols and open windows a key has (a snapshot per record made a
    key of 1,000 symbols spend its time pickling), and a restore replays at most that much."""

    def __init__(
        self,
        runtime_context: RuntimeContext,
        config: FlowConfig,
        redis_prefix: str,
        compact_bytes: int = 256 * 1024,
        step_bytes: int = 4096,
    ) -> None:
        super().__init__(
            runtime_context, "flow", lambda state: FlowStage.restore(state, config), compact_bytes, step_bytes
        )
        self.config = config
        self.redis_prefix = redis_prefix
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.rows_out = metrics.counter("flowWindowsEmitted")
        self.late_updates = metrics.counter("lateBookUpdates")

    def on_books(self, key: object, output: BundleOutput, ctx) -> Iterator:
        tops, depths = top_and_depth(output)
        if not tops and not depths and not output.end_of_messages and key in self.timers:
            return  # nothing new; the timer fires the windows when the watermark passes them
        complete = complete_before_ns(ctx.timer_service().current_watermark())
        entry = self._stage(key)
        step = ("r", complete, tops, depths, output.end_of_messages)
        yield from self._emit(
            key, entry, step, entry[0].record(complete, tops, depths, output.end_of_messages), ctx
        )

    def _emit(self, key: object, entry: list, step: tuple, out, ctx) -> Iterator:
        self._save(entry, step, len(step[2]) + len(step[3]) if step[0] == "r" else 0)
        if out.late:
            self.late_updates.inc(out.late)
        if out.ofi or out.liquidity:
            if out.ofi:
                yield Row(OFI, ofi_rows(out.ofi))
            if out.liquidity:
                yield Row(LIQUIDITY, liquidity_rows(out.liquidity))
            self.rows_out.inc(len(out.ofi) + len(out.liquidity))
            redis = flow_commands(out.ofi, out.liquidity, self.redis_prefix)
            if redis:
                yield REDIS_OUT, Row(len(redis), b"".join(redis), 0)
        self._set_timer(key, entry[0], ctx)


class CepStep(_LoggedStageStep):
    """The cross-venue detectors of a key (:class:`~itchflow.cep.stage.CepStage`) with their state,
    timer and metrics, for the market-data operator: each record's events (its system events and
    trading actions, its symbols' activity, its books' top-of-book changes:
    :func:`~itchflow.cep.bundle_events.bundle_events`) go in; the stage hands them to the detectors as
    the watermark passes them (here or in ``on_timer``), and the alerts come out as ``alerts`` rows --
    an episode open, then closed. The end of a replay closes what is still open.

    State: a snapshot of the stage (``cep``) and the steps since (``cep-log``), compacted like
    :class:`FlowStep`'s (a step weighs ``event_bytes`` per event)."""

    def __init__(
        self,
        runtime_context: RuntimeContext,
        config: DetectorConfig,
        compact_bytes: int = 256 * 1024,
        event_bytes: int = 64,
    ) -> None:
        super().__init__(
            runtime_context, "cep", lambda state: CepStage.restore(state, config), compact_bytes, event_bytes
        )
        self.config = config
        self.resolution_ns = activity_resolution_ns(config.stale_after_ms)
        self.event_bytes = event_bytes
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.alerts_out = metrics.counter("alertsEmitted")
        self.late_events = metrics.counter("lateMarketEvents")

    def on_books(self, key: object, bundle: NormalizedBundle, output: BundleOutput, ctx) -> Iterator:
        events = bundle_events(bundle, top_and_depth(output)[0], self.resolution_ns)
        if not events and key in self.timers:
            return  # nothing new; the timer releases what the watermark passes
        complete = complete_before_ns(ctx.timer_service().current_watermark())
        entry = self._stage(key)
        yield from self._emit(key, entry, ("r", complete, events), entry[0].record(complete, events), ctx)

    def _emit(self, key: object, entry: list, step: tuple, out, ctx) -> Iterator:
        self._save(entry, step, self.event_bytes * len(step[2]) if step[0] == "r" else 0)
        if out.late:
            self.late_events.inc(out.late)
        if out.alerts:
            yield Row(ALERTS, alert_rows(out.alerts))
            for alert in out.alerts:
                yield ALERTS_OUT, Row(emitted_at(alert, self.config), alert_json(alert))
            self.alerts_out.inc(len(out.alerts))
        self._set_timer(key, entry[0], ctx)


class AnalyticsSteps:
    """The analytics of a key from its books' output: the bars with their rolling values and bursts
    (:class:`BarStep`) and the OFI and liquidity (:class:`FlowStep`), either of them off when its
    config is None. One timer service per key: a timer of either step fires both (Flink keeps one
    timer per key and time; each step re-registers what it still needs)."""

    def __init__(
        self,
        runtime_context: RuntimeContext,
        bars: BarConfig | None,
        flow: FlowConfig | None,
        redis_prefix: str,
        source_topic: str,
        job: str = JOB_NAME,
        alerts: DetectorConfig | None = None,
    ) -> None:
        self.bars = (
            None if bars is None else BarStep(runtime_context, bars, redis_prefix, source_topic, job=job)
        )
        self.flow = None if flow is None else FlowStep(runtime_context, flow, redis_prefix)
        self.cep = None if alerts is None else CepStep(runtime_context, alerts)

    @property
    def enabled(self) -> bool:
        """Whether any analytic is on."""
        return self.bars is not None or self.flow is not None or self.cep is not None

    def on_books(
        self,
        key: object,
        output: BundleOutput,
        ctx,
        source: tuple[int, int, int, bytes],
        bundle: NormalizedBundle | None = None,
    ) -> Iterator:
        """One record's output of the books (``source``: its partition, offset, Kafka ms, key bytes;
        ``bundle``: the normalized record they applied, which the detectors read)."""
        if self.bars is not None:
            yield from self.bars.on_books(key, output, ctx, source)
        if self.flow is not None:
            yield from self.flow.on_books(key, output, ctx)
        if self.cep is not None and bundle is not None:
            yield from self.cep.on_books(key, bundle, output, ctx)

    def close_all(self, key: object, ctx) -> Iterator:
        """The end of a replay in this key's partition: every open window now."""
        if self.bars is not None:
            yield from self.bars.close_all(key, ctx)
        if self.flow is not None:
            yield from self.flow.close_all(key, ctx)
        if self.cep is not None:
            yield from self.cep.close_all(key, ctx)

    def on_timer(self, key: object, ctx) -> Iterator:
        if self.bars is not None:
            self.bars.timers.pop(key, None)
            yield from self.bars.on_timer(key, ctx)
        if self.flow is not None:
            self.flow.timers.pop(key, None)
            yield from self.flow.on_timer(key, ctx)
        if self.cep is not None:
            self.cep.timers.pop(key, None)
            yield from self.cep.on_timer(key, ctx)


def _burst_step(detector: BurstDetector, step: tuple) -> list[Burst]:
    """A logged bar step applied to the bursts: a record's prints and breaks, a timer, an end of replay."""
    if step[0] == "r":
        _, complete, prints, breaks, end = step
        for venue, symbol, trading_date, p in prints:
            detector.add_print(venue, symbol, trading_date, p, complete)
        for venue, symbol, match_number, ts_event in breaks:
            detector.break_trade(venue, symbol, match_number, ts_event)
        return detector.close_all() if end else detector.advance(complete)
    if step[0] == "f":
        return detector.advance(step[1])
    return detector.close_all()


def _step_time(step: tuple) -> tuple[int | None, bool]:
    """A logged bar step's event time (``complete_before``, None for the end of a replay) and whether
    it ended the feed, as :meth:`RollingStage.apply` takes them."""
    if step[0] == "r":
        return step[1], step[4]
    if step[0] == "f":
        return step[1], False
    return None, True


class _Operator(KeyedProcessFunction):
    """What every operator here does on open and close: check that the TaskManager runs the code
    that was submitted (thread mode keeps modules of older jobs loaded), freeze the collector per
    record (no 0.1 s full-collection pauses, see :mod:`itchflow.pipeline.collector`) and give the
    frozen objects back on close, so a closed job's garbage cycles do not outlive it."""

    def __init__(self, code: str) -> None:
        self.code = code

    def open(self, runtime_context: RuntimeContext) -> None:
        check_loaded(self.code)
        self.collector = CollectorFreeze()
        self.open_steps(runtime_context)

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.collector.release()


class Normalize(_Operator):
    """Raw record -> normalized record (main output), dead letters on :data:`DEAD_LETTERS`."""

    def __init__(self, source_topic: str, code: str) -> None:
        super().__init__(code)
        self.source_topic = source_topic

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        self.step = NormalizeStep(runtime_context, self.source_topic)

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        flags = record_event_time(value)[1]
        if flags & FUTURE:
            yield DEAD_LETTERS, self.step.future(ctx.get_current_key(), value)
            return
        if flags & (END_OF_REPLAY | HEARTBEAT):  # passed on to the jobs downstream
            yield control_record(_key_text(ctx.get_current_key()), flags)
            return
        outcome, source_key = self.step.process(ctx.get_current_key(), value)
        if outcome.normalized is not None:
            yield Row(outcome.output_key, outcome.normalized)
        for letter in outcome.dead_letters:
            yield DEAD_LETTERS, Row(source_key, letter)


class MaintainBooks(_Operator):
    """Normalized record (a bundle of one partition's symbols) -> the key's books: ClickHouse rows
    (main output), one Redis pipeline on :data:`REDIS_OUT` and, with ``events``, what the books made
    of it on :data:`BOOK_EVENTS_OUT` (with the end-of-replay markers and heartbeats passed on)."""

    def __init__(self, config: BookStageConfig, code: str, events: bool = False) -> None:
        super().__init__(code)
        self.config = config
        self.events = events

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        self.step = BookStep(runtime_context, self.config)

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        key = ctx.get_current_key()
        event_time, flags = record_event_time(value)
        if flags & (END_OF_REPLAY | HEARTBEAT):
            if self.events:
                yield BOOK_EVENTS_OUT, control_record(_key_text(key), flags, event_time)
            return
        partition, offset, _, payload = split_record(value)
        output = yield from self.step.process(key, bytes(payload))
        if self.events and output is not None:
            events = encode_book_events(output, partition, offset)
            yield BOOK_EVENTS_OUT, Row(topic_key(_key_text(key)), events, event_time)


class ComputeAnalytics(_Operator):
    """Book-events record (what the books made of one normalized record) -> the key's analytics:
    ClickHouse rows (main output), Redis pipelines on :data:`REDIS_OUT`, late prints and undecodable
    records as dead letters on :data:`DEAD_LETTERS`. The end of a replay closes every window.

    A record whose normalized record's offset is not past the last one the key applied from the
    same normalized partition (``applied-offset``, ``applied-partition``) is skipped: the order-book
    job writes its records again after a restore (at-least-once), and the analytics must not count
    their prints twice. A record from another partition (the key's shard moved: the normalized topic
    grew) is new."""

    def __init__(
        self, source_topic: str, redis_prefix: str, code: str, bars: BarConfig | None, flow: FlowConfig | None
    ) -> None:
        super().__init__(code)
        self.source_topic = source_topic
        self.redis_prefix = redis_prefix
        self.bar_config = bars
        self.flow_config = flow

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        self.analytics = AnalyticsSteps(
            runtime_context, self.bar_config, self.flow_config, self.redis_prefix, self.source_topic,
            job=ANALYTICS_JOB_NAME,
        )  # fmt: skip
        self.applied = runtime_context.get_state(ValueStateDescriptor("applied-offset", Types.LONG()))
        self.applied_partition = runtime_context.get_state(
            ValueStateDescriptor("applied-partition", Types.INT())
        )
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.bad_records = metrics.counter("deadLetters")
        self.duplicates = metrics.counter("duplicateRecords")

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        key = ctx.get_current_key()
        flags = record_event_time(value)[1]
        source_key = topic_key(_key_text(key))
        if flags & FUTURE:
            self.bad_records.inc()
            yield DEAD_LETTERS, future_letter(self.source_topic, ANALYTICS_JOB_NAME, source_key, value)
            return
        if flags & (END_OF_REPLAY | HEARTBEAT):
            if flags & END_OF_REPLAY:
                yield from self.analytics.close_all(key, ctx)
            return
        partition, offset, timestamp_ms, payload = split_record(value)
        try:
            events = decode_book_events(bytes(payload))
        except InvalidRecord as error:
            self.bad_records.inc()  # not the book job's output: a dead letter, never a crash loop
            yield DEAD_LETTERS, _dead_letter(error, self.source_topic, ANALYTICS_JOB_NAME, source_key, value)
            return
        applied = self.applied.value()
        same_partition = self.applied_partition.value() == events.source_partition
        if applied is not None and same_partition and events.source_offset <= applied:
            self.duplicates.inc()
            return
        self.applied.update(events.source_offset)
        if not same_partition:
            self.applied_partition.update(events.source_partition)
        yield from self.analytics.on_books(
            key, events.output, ctx, (partition, offset, timestamp_ms, source_key)
        )

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        yield from self.analytics.on_timer(ctx.get_current_key(), ctx)


class SequenceAlerts(_Operator):
    """Every key's alert versions (:data:`ALERTS_OUT`, keyed by one constant: a single task) in one
    deterministic order (:class:`~itchflow.cep.sequencer.AlertSequencer`), released as the watermark
    passes them, as Redis commands: the streams of every alert and of each type, the latest state per
    symbol. State: the sequencer's snapshot (``alert-sequencer``), written per record and timer --
    alerts are few."""

    def __init__(self, redis_prefix: str, stream_maxlen: int, code: str) -> None:
        super().__init__(code)
        self.redis_prefix = redis_prefix
        self.stream_maxlen = stream_maxlen

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("alert-sequencer", _STATE_TYPE))
        self.sequencer: AlertSequencer | None = None
        self.timer: int | None = None
        metrics = runtime_context.get_metrics_group().add_group("itchflow")
        self.late = metrics.counter("lateAlertVersions")

    def _sequencer(self) -> AlertSequencer:
        if self.sequencer is None:  # first use, or a restore: the state is the truth
            self.sequencer = AlertSequencer.restore(self.state.value())
        return self.sequencer

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        sequencer = self._sequencer()
        late = sequencer.late
        sequencer.add(value[0], value[1])
        if sequencer.late != late:
            self.late.inc(sequencer.late - late)
        yield from self._release(sequencer, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        self.timer = None
        yield from self._release(self._sequencer(), ctx)

    def _release(self, sequencer: AlertSequencer, ctx) -> Iterator:
        # every version of a millisecond at or below the watermark has arrived (see the sequencer)
        entries = sequencer.release(ctx.timer_service().current_watermark() + 1)
        self.state.update(sequencer.snapshot())
        if entries:
            commands = alert_commands(entries, self.redis_prefix, self.stream_maxlen)
            yield Row(len(commands), b"".join(commands), 0)
        timer = sequencer.next_timer_ms()
        if timer is not None and timer != self.timer:
            ctx.timer_service().register_event_time_timer(timer)
            self.timer = timer


class NormalizeAndMaintainBooks(_Operator):
    """Both of the above per raw record, with both states: normalize (normalized record on
    :data:`NORMALIZED_OUT`, dead letters on :data:`DEAD_LETTERS`), then apply the normalized record to
    the key's books (ClickHouse rows on the main output, Redis pipelines on :data:`REDIS_OUT`)."""

    def __init__(
        self,
        source_topic: str,
        config: BookStageConfig,
        code: str,
        bars: BarConfig | None = None,
        flow: FlowConfig | None = None,
        alerts: DetectorConfig | None = None,
    ) -> None:
        super().__init__(code)
        self.source_topic = source_topic
        self.config = config
        self.bar_config = bars
        self.flow_config = flow
        self.alert_config = alerts

    def open_steps(self, runtime_context: RuntimeContext) -> None:
        self.normalize = NormalizeStep(runtime_context, self.source_topic)
        self.books = BookStep(runtime_context, self.config)
        self.analytics = AnalyticsSteps(
            runtime_context, self.bar_config, self.flow_config, self.config.redis_prefix, self.source_topic,
            alerts=self.alert_config,
        )  # fmt: skip

    def process_element(self, value: bytes, ctx: KeyedProcessFunction.Context):
        self.collector.tick()
        key = ctx.get_current_key()
        event_time, flags = record_event_time(value)
        if flags & FUTURE:
            yield DEAD_LETTERS, self.normalize.future(key, value)
            return
        if flags & (END_OF_REPLAY | HEARTBEAT):
            # passed on with the normalized records: an order-book job reading them sees it too
            yield NORMALIZED_OUT, control_record(_key_text(key), flags, event_time)
            if flags & END_OF_REPLAY:
                yield from self.analytics.close_all(key, ctx)
            return
        outcome, source_key = self.normalize.process(key, value)
        for letter in outcome.dead_letters:
            yield DEAD_LETTERS, Row(source_key, letter)
        if outcome.normalized is not None:
            yield NORMALIZED_OUT, Row(outcome.output_key, outcome.normalized, event_time)
            # the normalizer's bundle object: the books need not decode the bytes they log
            output = yield from self.books.process(key, outcome.normalized, outcome.bundle)
            if self.analytics.enabled and output is not None:
                partition, offset, timestamp_ms, _ = split_record(value)
                source = (partition, offset, timestamp_ms, source_key)
                yield from self.analytics.on_books(key, output, ctx, source, outcome.bundle)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        yield from self.analytics.on_timer(ctx.get_current_key(), ctx)
