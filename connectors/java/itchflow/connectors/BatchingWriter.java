package itchflow.connectors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.concurrent.ScheduledFuture;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;

/**
 * A sink writer that collects pre-encoded bytes and sends them in large batches.
 *
 * <p>Flushes when the buffer reaches {@code maxBytes}, when the oldest buffered record is
 * {@code lingerMs} old (a processing-time timer, so a quiet feed still flushes), and always when
 * Flink flushes the writer before a checkpoint barrier: everything written before a checkpoint is
 * in the external system when the checkpoint completes (at-least-once; the Python side makes every
 * write idempotent, so a replay after a restore changes nothing).
 */
abstract class BatchingWriter implements SinkWriter<Row> {
    private final ProcessingTimeService time;
    private final long lingerMs;
    private final int maxBytes;
    private ScheduledFuture<?> timer;
    protected final Counter recordsOut;
    protected final Counter flushes;

    BatchingWriter(WriterInitContext context, long lingerMs, int maxBytes) {
        this.time = context.getProcessingTimeService();
        this.lingerMs = lingerMs;
        this.maxBytes = maxBytes;
        this.recordsOut = context.metricGroup().counter("itchflowSinkRecordsOut");
        this.flushes = context.metricGroup().counter("itchflowSinkFlushes");
    }

    /** Appends one record to the batch; returns the buffered size in bytes. */
    protected abstract int append(Row record) throws IOException;

    /** Sends everything buffered and clears the buffer. Throws (failing the task) if it cannot. */
    protected abstract void send() throws IOException, InterruptedException;

    protected abstract boolean isEmpty();

    @Override
    public void write(Row record, Context context) throws IOException, InterruptedException {
        int size = append(record);
        if (size >= maxBytes) {
            flush(false);
        } else if (timer == null && lingerMs > 0) {
            timer = time.registerTimer(time.getCurrentProcessingTime() + lingerMs, ts -> onTimer());
        } else if (lingerMs == 0) {
            flush(false);
        }
    }

    private void onTimer() throws IOException, InterruptedException {
        timer = null;
        flush(false);
    }

    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
        if (!isEmpty()) {
            send();
            flushes.inc();
        }
    }

    /** Retries {@code action} with exponential backoff; the last failure propagates. */
    protected static void withRetries(String what, IoAction action) throws IOException, InterruptedException {
        long backoffMs = 100;
        for (int attempt = 1; ; attempt++) {
            try {
                action.run();
                return;
            } catch (IOException e) {
                if (attempt >= 5) {
                    throw new IOException(what + " failed after " + attempt + " attempts: " + e.getMessage(), e);
                }
                Thread.sleep(backoffMs);
                backoffMs = Math.min(backoffMs * 2, 2000);
            }
        }
    }

    interface IoAction {
        void run() throws IOException, InterruptedException;
    }

    static final class Buffer extends ByteArrayOutputStream {
        Buffer(int size) {
            super(size);
        }

        byte[] array() {
            return buf;
        }
    }
}
