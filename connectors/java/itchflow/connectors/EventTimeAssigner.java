package itchflow.connectors;

import java.nio.ByteBuffer;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.types.Row;

/**
 * Flink's timestamp of a {@code Row(key, header + value)} from {@link KeyedRecordDeserializer}: the
 * event time in its header, in milliseconds (floored). A record without one, or flagged
 * {@link EventTime#FUTURE}, gets {@code Long.MIN_VALUE}, which never advances a watermark.
 */
public class EventTimeAssigner implements SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public long extractTimestamp(Row row, long recordTimestamp) {
        Object field = row.getField(1);
        if (!(field instanceof byte[])) {
            return Long.MIN_VALUE;
        }
        byte[] value = (byte[]) field;
        if (value.length < KeyedRecordDeserializer.HEADER_BYTES) {
            return Long.MIN_VALUE;
        }
        if ((ByteBuffer.wrap(value, KeyedRecordDeserializer.FLAGS_AT, 4).getInt() & EventTime.FUTURE) != 0) {
            return Long.MIN_VALUE;
        }
        long nanos = ByteBuffer.wrap(value, KeyedRecordDeserializer.EVENT_TIME_AT, 8).getLong();
        return nanos == EventTime.NONE ? Long.MIN_VALUE : Math.floorDiv(nanos, 1_000_000L);
    }
}
