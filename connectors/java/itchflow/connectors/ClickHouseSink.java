package itchflow.connectors;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.SupportsWriterState;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.types.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Inserts pre-encoded rows into ClickHouse over its HTTP interface, batched per table.
 *
 * <p>Input: {@code Row(table STRING, rows BYTES)} where {@code rows} is a chunk in {@code format}
 * (e.g. JSONEachRow or RowBinary) produced by the Python core. The password is read on the
 * TaskManager from the environment variable named {@code passwordEnv}, never shipped in the job.
 * Tables are expected to deduplicate (ReplacingMergeTree on deterministic keys), so that the
 * re-insert of a replay after a restore changes no query result with FINAL.
 *
 * <p>A checkpoint does not wait for ClickHouse: the rows buffered at the barrier, and the batch
 * still being inserted, go into the writer's state, and a restored writer inserts them again before
 * it takes new rows (at-least-once, as a flush at the barrier would be). Inserting at every barrier
 * held the writer's task for the insert (0.2-0.4 s on the local stack), and the rows queueing
 * behind it back-pressured the order books: a latency spike on the Redis path at every checkpoint.
 */
public class ClickHouseSink implements Sink<Row>, SupportsWriterState<Row, byte[]> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(ClickHouseSink.class);
    private final String url;
    private final String user;
    private final String passwordEnv;
    private final String format;
    private final long lingerMs;
    private final long idleMs;
    private final int maxBytes;

    public ClickHouseSink(
            String url, String user, String passwordEnv, String format, long lingerMs, long idleMs, int maxBytes) {
        this.url = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
        this.user = user;
        this.passwordEnv = passwordEnv;
        this.format = format;
        this.lingerMs = lingerMs;
        this.idleMs = idleMs;
        this.maxBytes = maxBytes;
    }

    @Override
    public StatefulSinkWriter<Row, byte[]> createWriter(WriterInitContext context) {
        return new Writer(context);
    }

    @Override
    public StatefulSinkWriter<Row, byte[]> restoreWriter(WriterInitContext context, Collection<byte[]> recovered)
            throws IOException {
        Writer writer = new Writer(context);
        try {
            for (byte[] state : recovered) {
                Map<String, BatchingWriter.Buffer> rows = decode(state);
                LOG.info("inserting {} bytes of rows for {} that the restored checkpoint held", state.length, rows.keySet());
                writer.send(rows); // before any new row: the rows stay in order per table
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while inserting the rows a checkpoint held", e);
        }
        return writer;
    }

    @Override
    public SimpleVersionedSerializer<byte[]> getWriterStateSerializer() {
        return new StateSerializer();
    }

    /** The writer's state: {@code int chunks}, then per chunk the table (UTF) and its rows (int length, bytes). */
    static byte[] encode(List<Map<String, BatchingWriter.Buffer>> batches) throws IOException {
        List<Map.Entry<String, BatchingWriter.Buffer>> chunks = new ArrayList<>();
        int size = Integer.BYTES;
        for (Map<String, BatchingWriter.Buffer> batch : batches) {
            for (Map.Entry<String, BatchingWriter.Buffer> entry : batch.entrySet()) {
                if (entry.getValue().size() > 0) {
                    chunks.add(entry);
                    size += 2 + 3 * entry.getKey().length() + Integer.BYTES + entry.getValue().size();
                }
            }
        }
        // sized up front (worst-case UTF): the rows, megabytes at a checkpoint, are not copied on regrowth
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(size);
        DataOutputStream out = new DataOutputStream(bytes);
        out.writeInt(chunks.size());
        for (Map.Entry<String, BatchingWriter.Buffer> chunk : chunks) {
            BatchingWriter.Buffer buffer = chunk.getValue();
            out.writeUTF(chunk.getKey());
            out.writeInt(buffer.size());
            out.write(buffer.array(), 0, buffer.size());
        }
        out.flush();
        return bytes.toByteArray();
    }

    /** {@link #encode}'s chunks, merged per table in order. */
    static Map<String, BatchingWriter.Buffer> decode(byte[] state) throws IOException {
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(state));
        Map<String, BatchingWriter.Buffer> tables = new LinkedHashMap<>();
        int chunks = in.readInt();
        for (int i = 0; i < chunks; i++) {
            String table = in.readUTF();
            byte[] rows = new byte[in.readInt()];
            in.readFully(rows);
            tables.computeIfAbsent(table, t -> new BatchingWriter.Buffer(rows.length)).write(rows);
        }
        return tables;
    }

    private static final class StateSerializer implements SimpleVersionedSerializer<byte[]> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(byte[] state) {
            return state;
        }

        @Override
        public byte[] deserialize(int version, byte[] serialized) throws IOException {
            if (version != 1) {
                throw new IOException("unknown ClickHouse writer state version " + version);
            }
            return serialized;
        }
    }

    private final class Writer extends BatchingWriter<Map<String, BatchingWriter.Buffer>>
            implements StatefulSinkWriter<Row, byte[]> {
        private Map<String, Buffer> tables = new LinkedHashMap<>();
        private int buffered;
        private final String authorization;

        Writer(WriterInitContext context) {
            super(context, lingerMs, idleMs, maxBytes, "clickhouse");
            String password = passwordEnv == null || passwordEnv.isEmpty() ? null : System.getenv(passwordEnv);
            if (user != null && !user.isEmpty()) {
                String pair = user + ":" + (password == null ? "" : password);
                authorization = "Basic " + Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8));
            } else {
                authorization = null;
            }
        }

        @Override
        protected int append(Row record) throws IOException {
            String table = (String) record.getField(0);
            byte[] rows = (byte[]) record.getField(1);
            tables.computeIfAbsent(table, t -> new Buffer(1 << 16)).write(rows);
            buffered += rows.length;
            recordsOut.inc();
            return buffered;
        }

        @Override
        protected boolean isEmpty() {
            return buffered == 0;
        }

        @Override
        protected Map<String, Buffer> take() {
            Map<String, Buffer> batch = tables;
            tables = new LinkedHashMap<>();
            buffered = 0;
            return batch;
        }

        @Override
        protected boolean keepsBufferInCheckpoint() {
            return true;
        }

        /** The batch still being inserted (it may land twice: the tables deduplicate) and the buffer. */
        @Override
        public List<byte[]> snapshotState(long checkpointId) throws IOException {
            Map<String, Buffer> unconfirmed;
            try {
                unconfirmed = unconfirmedBatch();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while checking the batch in flight", e);
            }
            return List.of(encode(unconfirmed == null ? List.of(tables) : List.of(unconfirmed, tables)));
        }

        @Override
        protected void send(Map<String, Buffer> batch) throws IOException, InterruptedException {
            for (Map.Entry<String, Buffer> entry : batch.entrySet()) {
                Buffer buffer = entry.getValue();
                if (buffer.size() == 0) {
                    continue;
                }
                String query = "INSERT INTO " + entry.getKey() + " FORMAT " + format;
                withRetries("insert into " + entry.getKey(), () -> post(query, buffer.array(), buffer.size()));
            }
        }

        private void post(String query, byte[] body, int length) throws IOException {
            URI uri = URI.create(url + "/?query=" + URLEncoder.encode(query, StandardCharsets.UTF_8));
            HttpURLConnection connection = (HttpURLConnection) uri.toURL().openConnection();
            connection.setRequestMethod("POST");
            connection.setDoOutput(true);
            connection.setConnectTimeout(10_000);
            connection.setReadTimeout(120_000);
            connection.setFixedLengthStreamingMode(length);
            if (authorization != null) {
                connection.setRequestProperty("Authorization", authorization);
            }
            connection.getOutputStream().write(body, 0, length);
            int status = connection.getResponseCode();
            if (status != 200) {
                InputStream error = connection.getErrorStream();
                String message = error == null ? "" : new String(error.readAllBytes(), StandardCharsets.UTF_8);
                throw new IOException("ClickHouse answered " + status + ": " + message.strip());
            }
            connection.getInputStream().readAllBytes();
            connection.disconnect();
        }

        @Override
        public void close() throws Exception {
            // rows buffered since the last checkpoint are replayed from Kafka after a restart
            super.close();
        }
    }
}
