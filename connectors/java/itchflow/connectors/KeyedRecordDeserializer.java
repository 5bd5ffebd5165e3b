package itchflow.connectors;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Turns a Kafka record into {@code Row(key STRING, value BYTES)} in the JVM, so that jobs can key
 * by the record key without an extra Python operator (PLATFORM.md: one Python hop per record).
 *
 * <p>The value carries a fixed 20-byte big-endian header before the record's bytes: partition
 * (int32), offset (int64), Kafka timestamp in ms (int64). Jobs need them for dead-letter records
 * and latency; see {@code connectors/kafka.py}. A null key becomes "", a null value an empty
 * payload (the job dead-letters it).
 */
public class KeyedRecordDeserializer implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    public static final int HEADER_BYTES = 20;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] key = record.key();
        byte[] value = record.value();
        int length = value == null ? 0 : value.length;
        ByteBuffer buffer = ByteBuffer.allocate(HEADER_BYTES + length);
        buffer.putInt(record.partition()).putLong(record.offset()).putLong(record.timestamp());
        if (value != null) {
            buffer.put(value);
        }
        out.collect(Row.of(key == null ? "" : new String(key, StandardCharsets.UTF_8), buffer.array()));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));
    }
}
