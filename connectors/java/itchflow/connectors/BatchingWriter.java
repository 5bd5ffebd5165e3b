package itchflow.connectors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * {@code lingerMs} old (a processing-time timer, so a quiet feed still flushes), when no record came
 * for {@code idleMs} (if set, below {@code lingerMs}: a long linger batches a busy stream without
 * holding the last rows of a burst that long), and always when Flink flushes the writer before a
 * checkpoint barrier: everything written before a checkpoint is in the external system when the
 * checkpoint completes (at-least-once; the Python side makes every write idempotent, so a replay
 * after a restore changes nothing).
 *
 * <p>A subclass may keep its buffer in the checkpoint instead ({@link #keepsBufferInCheckpoint}):
 * then the flush before a barrier sends nothing and the writer's state (a {@code StatefulSinkWriter}
 * of the subclass) holds the buffered records and the batch still on the wire, which a restored
 * writer sends again -- still at-least-once, and a checkpoint never waits for the external system.
 *
 * <p>Batches closed by size or linger are sent by a background thread, so the task keeps taking
 * records while a batch is on the wire (a slow insert no longer back-pressures the operator
 * upstream, e.g. the order book's Redis writes). At most one batch is in flight -- batches go out in
 * order and memory stays bounded -- and a checkpoint's flush waits for it and sends the rest before
 * the barrier passes. When the linger ends while the previous batch is still on the wire, the
 * writer keeps buffering and looks again {@link #BUSY_RETRY_MS} later instead of waiting: the task
 * thread waits for the external system only when the buffer is full or at a checkpoint (a Redis
 * server that is slow to be scheduled on a busy machine no longer stalls the books). A failed send
 * fails the task at its next record or flush.
 *
 * @param <B> a batch taken from the buffer ({@link #take}), handed to {@link #send}
 */
abstract class BatchingWriter<B> implements SinkWriter<Row> {
    /** How soon a linger that ended while a batch was in flight looks again. */
    static final long BUSY_RETRY_MS = 1;

    private final ProcessingTimeService time;
    private final long lingerMs;
    private final long idleMs;
    private final int maxBytes;
    private long oldestMs;
    private long lastAppendMs;
    private final ExecutorService sender;
    private ScheduledFuture<?> timer;
    private Future<?> inFlight;
    private B inFlightBatch;
    protected final Counter recordsOut;
    protected final Counter flushes;

    BatchingWriter(WriterInitContext context, long lingerMs, int maxBytes, String name) {
        this(context, lingerMs, 0, maxBytes, name);
    }

    /** {@code idleMs} 0 (or not below {@code lingerMs}): no idle flush, only the linger. */
    BatchingWriter(WriterInitContext context, long lingerMs, long idleMs, int maxBytes, String name) {
        this.time = context.getProcessingTimeService();
        this.lingerMs = lingerMs;
        this.idleMs = idleMs > 0 && idleMs < lingerMs ? idleMs : 0;
        this.maxBytes = maxBytes;
        this.recordsOut = context.metricGroup().counter("itchflowSinkRecordsOut");
        this.flushes = context.metricGroup().counter("itchflowSinkFlushes");
        String thread = "itchflow-" + name + "-sender-" + context.getTaskInfo().getIndexOfThisSubtask();
        this.sender = Executors.newSingleThreadExecutor(task -> {
            Thread t = new Thread(task, thread);
            t.setDaemon(true);
            return t;
        });
    }

    /** Appends one record to the batch; returns the buffered size in bytes. */
    protected abstract int append(Row record) throws IOException;

    protected abstract boolean isEmpty();

    /** Everything buffered, as a batch; leaves the buffer empty. Runs on the task thread. */
    protected abstract B take();

    /** Sends one batch; throws (failing the task) if it cannot. Runs on one thread at a time, in order. */
    protected abstract void send(B batch) throws IOException, InterruptedException;

    @Override
    public void write(Row record, Context context) throws IOException, InterruptedException {
        if (inFlight != null && inFlight.isDone()) {
            awaitInFlight(); // surfaces a failed send
        }
        long now = time.getCurrentProcessingTime();
        if (isEmpty()) {
            oldestMs = now;
        }
        lastAppendMs = now;
        int size = append(record);
        if (size >= maxBytes) {
            sendInBackground();
        } else if (timer == null && lingerMs > 0) {
            armTimer(deadline());
        } else if (lingerMs == 0) {
            sendInBackground();
        }
    }

    /** When the buffer is due: its linger, or earlier when the input has been idle for idleMs. */
    private long deadline() {
        long linger = oldestMs + lingerMs;
        return idleMs > 0 ? Math.min(linger, lastAppendMs + idleMs) : linger;
    }

    private void onTimer() throws IOException, InterruptedException {
        timer = null;
        if (isEmpty()) {
            return;
        }
        long now = time.getCurrentProcessingTime();
        if (now < deadline()) {
            armTimer(deadline()); // records kept coming since: the idle deadline moved on
            return;
        }
        if (inFlight != null && !inFlight.isDone()) {
            armTimer(now + BUSY_RETRY_MS); // the previous batch is still on the wire: keep buffering
            return;
        }
        sendInBackground();
    }

    private void armTimer(long atMs) {
        timer = time.registerTimer(atMs, ts -> onTimer());
    }

    private void cancelTimer() {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }

    private void sendInBackground() throws IOException, InterruptedException {
        cancelTimer();
        if (isEmpty()) {
            return;
        }
        awaitInFlight();
        B batch = take();
        flushes.inc();
        inFlightBatch = batch;
        inFlight = sender.submit(() -> {
            send(batch);
            return null;
        });
    }

    private void awaitInFlight() throws IOException, InterruptedException {
        Future<?> pending = inFlight;
        if (pending == null) {
            return;
        }
        inFlight = null;
        inFlightBatch = null;
        try {
            pending.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException) {
                throw (IOException) cause;
            }
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof InterruptedException) {
                throw (InterruptedException) cause;
            }
            throw new IOException(cause);
        }
    }

    /**
     * Whether the buffer goes into the checkpoint rather than to the external system before each
     * barrier (default false: {@link #flush} sends everything).
     */
    protected boolean keepsBufferInCheckpoint() {
        return false;
    }

    /**
     * For a subclass's {@code snapshotState}: the batch still on the wire (its send not finished), or
     * null; a batch whose send failed fails the checkpoint here (it is retried from the last one).
     */
    protected B unconfirmedBatch() throws IOException, InterruptedException {
        if (inFlight != null && inFlight.isDone()) {
            awaitInFlight(); // surfaces a failed send
        }
        return inFlight == null ? null : inFlightBatch;
    }

    /**
     * Before every checkpoint barrier and at the end of input: everything is sent when this returns
     * (before a barrier, unless {@link #keepsBufferInCheckpoint}).
     */
    @Override
    public void flush(boolean endOfInput) throws IOException, InterruptedException {
        if (!endOfInput && keepsBufferInCheckpoint()) {
            return; // the subclass's snapshotState puts the buffer into the checkpoint
        }
        cancelTimer();
        awaitInFlight();
        if (!isEmpty()) {
            B batch = take();
            flushes.inc();
            send(batch);
        }
    }

    /** Stops the sender thread; subclasses close their connections after calling this. */
    @Override
    public void close() throws Exception {
        cancelTimer();
        sender.shutdownNow();
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
