package itchflow.connectors;

import java.util.Arrays;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;

/**
 * A latency histogram as one counter per bucket, the scheme of the jobs' Python histograms
 * ({@code itchflow/pipeline/latency.py}): the counter {@code names[i]} counts latencies of at most
 * {@code boundsMs[i]} ms and more than the bound before; the last name (one more than the bounds)
 * counts the rest. Names and bounds come from the Python side, so both schemes stay one.
 */
final class LatencyBuckets {
    private final long[] boundsMs;
    private final Counter[] buckets;

    LatencyBuckets(MetricGroup group, String[] names, long[] boundsMs) {
        if (names.length != boundsMs.length + 1) {
            throw new IllegalArgumentException("one bucket name per bound, plus the overflow bucket");
        }
        this.boundsMs = boundsMs.clone();
        this.buckets = new Counter[names.length];
        for (int i = 0; i < names.length; i++) {
            buckets[i] = group.counter(names[i]);
        }
    }

    /** Counts one latency (a negative one, from a clock step, counts in the first bucket). */
    void record(long latencyMs) {
        buckets[bucketOf(boundsMs, latencyMs)].inc();
    }

    /** The bucket of a latency: the first bound at or above it (Python's {@code bisect_left}). */
    static int bucketOf(long[] boundsMs, long latencyMs) {
        int found = Arrays.binarySearch(boundsMs, latencyMs);
        return found >= 0 ? found : -found - 1;
    }
}
