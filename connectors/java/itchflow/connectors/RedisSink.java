package itchflow.connectors;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;

/**
 * Sends pre-encoded, pipelined Redis commands (RESP) in batches.
 *
 * <p>Input: {@code Row(commands INT, resp BYTES, firedAtMs BIGINT)}: {@code resp} holds
 * {@code commands} complete RESP commands produced by the Python core. Stream entries are written
 * with explicit, deterministic ids; Redis refuses an id that is not above the stream's last one,
 * which is exactly what a replay after a restore sends again: such replies are counted as duplicates
 * and skipped. Any other error reply fails the task (and Flink restarts it from the last checkpoint).
 *
 * <p>{@code firedAtMs} (epoch ms) is set on the records that carry bars the watermark has just
 * closed (0 on the others): once Redis has answered every command of the batch holding such a record,
 * the writer counts {@code now - firedAtMs} in the bar publish delay histogram (counter buckets named
 * by the job, see {@link LatencyBuckets}). A batch sent again after a failure counts once, when it
 * finally succeeds.
 */
public class RedisSink implements Sink<Row> {
    private static final long serialVersionUID = 1L;
    private final String host;
    private final int port;
    private final String passwordEnv;
    private final long lingerMs;
    private final int maxBytes;
    private final String[] delayBuckets;
    private final long[] delayBoundsMs;

    /**
     * @param delayBuckets the bar publish delay histogram's counter names (one per bound, then the
     *     overflow bucket)
     * @param delayBoundsMs the buckets' upper bounds (ms), ascending
     */
    public RedisSink(
            String host,
            int port,
            String passwordEnv,
            long lingerMs,
            int maxBytes,
            String[] delayBuckets,
            long[] delayBoundsMs) {
        this.host = host;
        this.port = port;
        this.passwordEnv = passwordEnv;
        this.lingerMs = lingerMs;
        this.maxBytes = maxBytes;
        this.delayBuckets = delayBuckets.clone();
        this.delayBoundsMs = delayBoundsMs.clone();
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) {
        return new Writer(context);
    }

    /**
     * RESP commands taken from the writer's buffer, how many they are, and the {@code firedAtMs} of
     * the records among them that carry bars the watermark closed.
     */
    private static final class Batch {
        final BatchingWriter.Buffer buffer;
        final int commands;
        final long[] firedAtMs;

        Batch(BatchingWriter.Buffer buffer, int commands, long[] firedAtMs) {
            this.buffer = buffer;
            this.commands = commands;
            this.firedAtMs = firedAtMs;
        }
    }

    private final class Writer extends BatchingWriter<Batch> {
        private Buffer buffer = new Buffer(1 << 16);
        private int commands;
        private long[] firedAtMs = new long[8];
        private int fired;
        private Socket socket;
        private OutputStream out;
        private InputStream in;
        private final Counter duplicates;
        private final LatencyBuckets barPublishDelay;

        Writer(WriterInitContext context) {
            super(context, lingerMs, maxBytes, "redis");
            duplicates = context.metricGroup().counter("itchflowRedisDuplicateStreamIds");
            barPublishDelay = new LatencyBuckets(context.metricGroup(), delayBuckets, delayBoundsMs);
        }

        @Override
        protected int append(Row record) throws IOException {
            commands += (Integer) record.getField(0);
            buffer.write((byte[]) record.getField(1));
            Long firedAt = record.getArity() > 2 ? (Long) record.getField(2) : null;
            if (firedAt != null && firedAt > 0) {
                if (fired == firedAtMs.length) {
                    firedAtMs = Arrays.copyOf(firedAtMs, 2 * fired);
                }
                firedAtMs[fired++] = firedAt;
            }
            recordsOut.inc();
            return buffer.size();
        }

        @Override
        protected boolean isEmpty() {
            return commands == 0;
        }

        @Override
        protected Batch take() {
            Batch batch = new Batch(buffer, commands, Arrays.copyOf(firedAtMs, fired));
            buffer = new Buffer(Math.max(1 << 16, batch.buffer.size()));
            commands = 0;
            fired = 0;
            return batch;
        }

        @Override
        protected void send(Batch batch) throws IOException, InterruptedException {
            withRetries("redis pipeline", () -> sendOnce(batch));
            if (batch.firedAtMs.length > 0) {
                long now = System.currentTimeMillis(); // every reply of the batch has been read
                for (long firedAt : batch.firedAtMs) {
                    barPublishDelay.record(now - firedAt);
                }
            }
        }

        private void sendOnce(Batch batch) throws IOException {
            try {
                connect();
                out.write(batch.buffer.array(), 0, batch.buffer.size());
                out.flush();
                for (int i = 0; i < batch.commands; i++) {
                    String error = readReply();
                    if (error != null) {
                        if (error.contains("equal or smaller than the target stream top item")) {
                            duplicates.inc();
                        } else {
                            throw new IllegalStateException("Redis error reply: " + error);
                        }
                    }
                }
            } catch (IOException e) {
                disconnect();
                throw e;
            }
        }

        private void connect() throws IOException {
            if (socket != null) {
                return;
            }
            socket = new Socket();
            socket.connect(new InetSocketAddress(host, port), 10_000);
            socket.setSoTimeout(60_000);
            socket.setTcpNoDelay(true);
            out = socket.getOutputStream();
            in = new BufferedInputStream(socket.getInputStream(), 1 << 16);
            String password = passwordEnv == null || passwordEnv.isEmpty() ? null : System.getenv(passwordEnv);
            if (password != null && !password.isEmpty()) {
                byte[] pw = password.getBytes(StandardCharsets.UTF_8);
                String auth = "*2\r\n$4\r\nAUTH\r\n$" + pw.length + "\r\n";
                out.write(auth.getBytes(StandardCharsets.UTF_8));
                out.write(pw);
                out.write("\r\n".getBytes(StandardCharsets.UTF_8));
                out.flush();
                String error = readReply();
                if (error != null) {
                    throw new IOException("Redis AUTH failed: " + error);
                }
            }
        }

        private void disconnect() {
            try {
                if (socket != null) {
                    socket.close();
                }
            } catch (IOException ignored) {
                // closing a broken connection
            }
            socket = null;
        }

        /** Reads one complete reply; returns its text if it is an error reply, else null. */
        private String readReply() throws IOException {
            int type = in.read();
            if (type < 0) {
                throw new IOException("Redis closed the connection");
            }
            String line = readLine();
            switch (type) {
                case '+':
                case ':':
                    return null;
                case '-':
                    return line;
                case '$': {
                    int length = Integer.parseInt(line);
                    if (length >= 0) {
                        in.readNBytes(length + 2);
                    }
                    return null;
                }
                case '*': {
                    int count = Integer.parseInt(line);
                    String error = null;
                    for (int i = 0; i < count; i++) {
                        String nested = readReply();
                        error = error == null ? nested : error;
                    }
                    return error;
                }
                default:
                    // RESP3 types are not requested (no HELLO 3): anything else is a protocol error
                    throw new IOException("unexpected Redis reply type '" + (char) type + "'");
            }
        }

        private String readLine() throws IOException {
            StringBuilder line = new StringBuilder();
            int c;
            while ((c = in.read()) != '\r') {
                if (c < 0) {
                    throw new IOException("Redis closed the connection");
                }
                line.append((char) c);
            }
            in.read(); // '\n'
            return line.toString();
        }

        @Override
        public void close() throws Exception {
            super.close();
            disconnect();
        }
    }
}
