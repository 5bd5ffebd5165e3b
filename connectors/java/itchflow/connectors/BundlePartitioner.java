package itchflow.connectors;

import java.nio.charset.StandardCharsets;

import org.apache.flink.connector.kafka.sink.KafkaPartitioner;
import org.apache.kafka.common.utils.Utils;

/**
 * Writes a bundle's derived record (key {@code <venue>:#<p>/<n>}, optionally salted) to partition
 * {@code p} of the target topic (modulo its partition count), every other key where Kafka's
 * default partitioner would (murmur2 of the key).
 *
 * <p>A raw partition's records are handled by exactly one subtask, so each output partition then
 * has one writer at a time: per-key order never depends on how the broker interleaves concurrent
 * producers of one partition (the local broker's behaviour there is unverified), and partition p
 * of the normalized topic holds exactly partition p of the raw topic.
 */
public class BundlePartitioner implements KafkaPartitioner<Object> {
    private static final long serialVersionUID = 1L;

    @Override
    public int partition(Object record, byte[] key, byte[] value, String topic, int[] partitions) {
        int count = partitions.length;
        if (key == null || count == 0) {
            return partitions[0];
        }
        int partition = bundlePartition(new String(key, StandardCharsets.UTF_8));
        if (partition >= 0) {
            return partitions[partition % count];
        }
        return partitions[Utils.toPositive(Utils.murmur2(key)) % count];
    }

    /** p of a key {@code <venue>:#<p>/<n>[~salt]}, or -1 for any other key. */
    static int bundlePartition(String key) {
        int hash = key.lastIndexOf(":#");
        int slash = key.indexOf('/', hash + 2);
        if (hash < 0 || slash < 0) {
            return -1;
        }
        try {
            int partition = Integer.parseInt(key.substring(hash + 2, slash));
            return partition >= 0 ? partition : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
