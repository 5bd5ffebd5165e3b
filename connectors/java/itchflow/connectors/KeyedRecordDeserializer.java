package itchflow.connectors;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Turns a Kafka record into {@code Row(key STRING, value BYTES)} in the JVM, so that jobs can key
 * by the record key without an extra Python operator (PLATFORM.md: one Python hop per record).
 *
 * <p>The value carries a fixed 32-byte big-endian header before the record's bytes: partition
 * (int32), offset (int64), Kafka timestamp in ms (int64), event time in UTC epoch ns (int64,
 * {@link EventTime#NONE} when the record has none) and flags (int32, {@link EventTime#END_OF_REPLAY},
 * {@link EventTime#HEARTBEAT}).
 * Jobs need them for dead-letter records, latency and event time ({@link EventTimeAssigner}); see
 * {@code connectors/kafka.py}. A null key becomes "", a null value an empty payload (the job
 * dead-letters it, unless it is an end-of-replay marker or a heartbeat).
 *
 * <p><b>Balanced shard keys.</b> A shard key {@code @<s>/<n>} (shard s of n, see
 * {@code itchflow/shards.py}) is keyed as {@code @<s>/<n>~<salt>}, the salt chosen
 * (deterministically, the smallest that works) so that Flink puts the key in key group
 * {@code (s + 1/2) * maxParallelism / n}. A handful of keys hashed at random often leave a subtask
 * without work (measured: 241 vs 2,711 records on two subtasks); evenly spaced key groups give every
 * subtask the same number of shards whenever the parallelism divides n, and the key depends on the
 * shard only, never on the parallelism or the topic's partitions, so state rescales by key group.
 * The earlier layout's partition keys {@code <venue>:#<p>/<n>} are balanced the same way. A key that
 * already carries a salt is re-salted from its base.
 */
public class KeyedRecordDeserializer implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    public static final int HEADER_BYTES = 32;
    public static final int EVENT_TIME_AT = 20;
    public static final int FLAGS_AT = 28;
    private static final Pattern BUNDLE_KEY = Pattern.compile("^((?:@|.*:#)(\\d{1,9})/(\\d{1,9}))(~\\d+)?$");
    private final int maxParallelism;
    private final long maxFutureMs;
    private transient Map<String, String> balanced;

    public KeyedRecordDeserializer() {
        this(128);
    }

    public KeyedRecordDeserializer(int maxParallelism) {
        this(maxParallelism, 0);
    }

    /**
     * @param maxFutureMs a record whose event time is more than this ahead of the wall clock is
     *     flagged {@link EventTime#FUTURE} (0: never): a replay stamped with a date to come, or a
     *     damaged header, would otherwise move the watermark past every real record.
     */
    public KeyedRecordDeserializer(int maxParallelism, long maxFutureMs) {
        this.maxParallelism = maxParallelism;
        this.maxFutureMs = maxFutureMs;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] key = record.key();
        byte[] value = record.value();
        int length = value == null ? 0 : value.length;
        ByteBuffer buffer = ByteBuffer.allocate(HEADER_BYTES + length);
        buffer.putInt(record.partition()).putLong(record.offset()).putLong(record.timestamp());
        long eventTime = EventTime.of(record.headers());
        int flags = EventTime.flags(record.headers());
        if (maxFutureMs > 0
                && eventTime != EventTime.NONE
                && Math.floorDiv(eventTime, 1_000_000L) > System.currentTimeMillis() + maxFutureMs) {
            flags |= EventTime.FUTURE;
        }
        buffer.putLong(eventTime).putInt(flags);
        if (value != null) {
            buffer.put(value);
        }
        String text = key == null ? "" : new String(key, StandardCharsets.UTF_8);
        out.collect(Row.of(balancedKey(text), buffer.array()));
    }

    /** The key to key by: a salted shard key (see the class comment), else {@code key} itself. */
    public String balancedKey(String key) {
        if (balanced == null) {
            balanced = new HashMap<>();
        }
        String cached = balanced.get(key);
        if (cached == null) {
            cached = salt(key, maxParallelism);
            if (balanced.size() < 100_000) {
                balanced.put(key, cached);
            }
        }
        return cached;
    }

    static String salt(String key, int maxParallelism) {
        Matcher match = BUNDLE_KEY.matcher(key);
        if (!match.matches()) {
            return key;
        }
        long shard = Long.parseLong(match.group(2));
        long shards = Long.parseLong(match.group(3));
        if (shards < 1 || shard >= shards) {
            return key;
        }
        // the middle of the shard's share of the key groups: each subtask's range of key groups
        // then holds the same number of shards whenever the parallelism divides n
        int target = (int) ((2 * shard + 1) * maxParallelism / (2 * shards));
        for (int salt = 0; salt < 1_000_000; salt++) {
            String candidate = match.group(1) + "~" + salt;
            // the key Flink sees is what KeyByKeySelector makes of the record: Row.of(field 0)
            if (KeyGroupRangeAssignment.assignToKeyGroup(Row.of(candidate), maxParallelism) == target) {
                return candidate;
            }
        }
        return key;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));
    }
}
