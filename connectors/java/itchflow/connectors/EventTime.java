package itchflow.connectors;

import java.nio.ByteBuffer;

import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

/**
 * How event time travels with our Kafka records: a record header, never the Kafka timestamp.
 *
 * <p>A record's event time is the feed time of the earliest message it carries (UTC epoch ns,
 * 8 bytes big-endian, header {@value #HEADER}): the replay closes a partition's shard bundles
 * together, oldest first, so a partition's event times never decrease. The Kafka timestamp stays the producer's wall
 * clock: a historical feed stamped with its own dates would fall out of the topics' time-based
 * retention as soon as its segments roll. The end of a replay is an empty record per shard with
 * the header {@value #END_HEADER}; a paced replay that has nothing to send to a partition for a while
 * sends it an empty heartbeat record with the header {@value #HEARTBEAT_HEADER} and the feed's clock
 * as its event time, so that the watermark moves on (see {@code itchflow/replay.py}).
 */
public final class EventTime {
    public static final String HEADER = "itchflow.event-time-ns";
    public static final String END_HEADER = "itchflow.end-of-replay";
    public static final String HEARTBEAT_HEADER = "itchflow.heartbeat";
    /** No event time known (records of other producers; undecodable input). */
    public static final long NONE = Long.MIN_VALUE;
    /** Flag bit in the record header: the producer's end-of-replay marker. */
    public static final int END_OF_REPLAY = 1;
    /** Flag bit in the record header: a heartbeat (no messages; its event time moves the watermark). */
    public static final int HEARTBEAT = 2;
    /**
     * Flag bit set by {@link KeyedRecordDeserializer}: the record's event time is later than the
     * wall clock allows; it never moves a watermark, and the jobs dead-letter the record.
     */
    public static final int FUTURE = 4;

    private EventTime() {}

    /** The event time of a record's headers, or {@link #NONE}. */
    public static long of(Headers headers) {
        if (headers == null) {
            return NONE;
        }
        Header header = headers.lastHeader(HEADER);
        if (header == null || header.value() == null || header.value().length != 8) {
            return NONE;
        }
        return ByteBuffer.wrap(header.value()).getLong();
    }

    /** The flags of a record's headers ({@link #END_OF_REPLAY}, {@link #HEARTBEAT}). */
    public static int flags(Headers headers) {
        if (headers == null) {
            return 0;
        }
        return (headers.lastHeader(END_HEADER) != null ? END_OF_REPLAY : 0)
                | (headers.lastHeader(HEARTBEAT_HEADER) != null ? HEARTBEAT : 0);
    }

    static byte[] encode(long nanos) {
        return ByteBuffer.allocate(8).putLong(nanos).array();
    }
}
