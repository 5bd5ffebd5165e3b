package itchflow.connectors;

import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.connector.kafka.sink.KafkaPartitioner;
import org.apache.kafka.common.utils.Utils;

/**
 * Writes a shard's derived record (key {@code @<s>/<n>}, optionally salted) to partition
 * {@code s * partitions / n} of the target topic -- a contiguous range of shards per partition, where
 * the replay writes the shard's raw records ({@code itchflow/shards.py}) -- and every other key where
 * Kafka's default partitioner would (murmur2 of the key). The earlier layout's partition keys
 * {@code <venue>:#<p>/<n>} go to partition {@code p} modulo the partition count.
 *
 * <p>The shards are in key groups in the same contiguous order, so with a parallelism that divides
 * the partition count, all the shards of a partition are one subtask's: each output partition has
 * one writer, in the order of the input partition (its event times as ordered as the raw ones),
 * and a shard's normalized records are in the partition of its raw records.
 */
public class BundlePartitioner implements KafkaPartitioner<Object> {
    private static final long serialVersionUID = 1L;
    private static final Pattern SHARD_KEY = Pattern.compile("^@(\\d{1,9})/(\\d{1,9})(~\\d+)?$");

    @Override
    public int partition(Object record, byte[] key, byte[] value, String topic, int[] partitions) {
        int count = partitions.length;
        if (key == null || count == 0) {
            return partitions[0];
        }
        String text = new String(key, StandardCharsets.UTF_8);
        long[] shard = shardOf(text);
        if (shard != null) {
            return partitions[(int) (shard[0] * Math.min(count, shard[1]) / shard[1])];
        }
        int partition = bundlePartition(text);
        if (partition >= 0) {
            return partitions[partition % count];
        }
        return partitions[Utils.toPositive(Utils.murmur2(key)) % count];
    }

    /** {s, n} of a shard key {@code @<s>/<n>[~salt]} with s < n, or null for any other key. */
    static long[] shardOf(String key) {
        Matcher match = SHARD_KEY.matcher(key);
        if (!match.matches()) {
            return null;
        }
        long shard = Long.parseLong(match.group(1));
        long shards = Long.parseLong(match.group(2));
        return shards > 0 && shard < shards ? new long[] {shard, shards} : null;
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
