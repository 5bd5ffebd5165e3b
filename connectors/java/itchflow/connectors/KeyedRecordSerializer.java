package itchflow.connectors;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.types.Row;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * Writes {@code Row(key bytes, value bytes[, event time ns])} to a topic: the partition
 * {@link BundlePartitioner} chooses, the element's event time in the {@link EventTime#HEADER} header
 * (the third field when the row has it and it is not {@link EventTime#NONE}, else Flink's timestamp,
 * ms: PyFlink's side outputs carry no timestamp), and no Kafka timestamp of ours (the producer's
 * clock; see {@link EventTime} why).
 *
 * <p>A value of exactly one byte is a control record a job passes on (no Avro value is that short:
 * the single-object header alone is 10 bytes): its byte holds the {@link EventTime} flags, and it
 * goes out as the replay sends it, an empty record with the end-of-replay and / or heartbeat header,
 * so that every job downstream sees the end of a replay and the heartbeats of a quiet feed.
 */
public class KeyedRecordSerializer implements KafkaRecordSerializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private static final byte[] MARK = {'1'};
    private final String topic;
    private final BundlePartitioner partitioner = new BundlePartitioner();

    public KeyedRecordSerializer(String topic) {
        this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Row element, KafkaSinkContext context, Long timestamp) {
        byte[] key = (byte[]) element.getField(0);
        byte[] value = (byte[]) element.getField(1);
        int[] partitions = context.getPartitionsForTopic(topic);
        Integer partition =
                partitions == null || partitions.length == 0
                        ? null
                        : partitioner.partition(element, key, value, topic, partitions);
        RecordHeaders headers = new RecordHeaders();
        long eventTime = EventTime.NONE;
        if (element.getArity() > 2 && element.getField(2) != null) {
            eventTime = (Long) element.getField(2);
        }
        if (eventTime == EventTime.NONE && timestamp != null && timestamp != Long.MIN_VALUE) {
            eventTime = timestamp * 1_000_000L;
        }
        if (eventTime != EventTime.NONE) {
            headers.add(EventTime.HEADER, EventTime.encode(eventTime));
        }
        if (value != null && value.length == 1) {
            int flags = value[0];
            value = new byte[0];
            if ((flags & EventTime.END_OF_REPLAY) != 0) {
                headers.add(EventTime.END_HEADER, MARK);
            }
            if ((flags & EventTime.HEARTBEAT) != 0) {
                headers.add(EventTime.HEARTBEAT_HEADER, MARK);
            }
        }
        return new ProducerRecord<>(topic, partition, null, key, value, headers);
    }
}
