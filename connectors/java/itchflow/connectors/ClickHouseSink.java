package itchflow.connectors;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.types.Row;

/**
 * Inserts pre-encoded rows into ClickHouse over its HTTP interface, batched per table.
 *
 * <p>Input: {@code Row(table STRING, rows BYTES)} where {@code rows} is a chunk in {@code format}
 * (e.g. JSONEachRow or RowBinary) produced by the Python core. The password is read on the
 * TaskManager from the environment variable named {@code passwordEnv}, never shipped in the job.
 * Tables are expected to deduplicate (ReplacingMergeTree on deterministic keys), so that the
 * re-insert of a replay after a restore changes no query result with FINAL.
 */
public class ClickHouseSink implements Sink<Row> {
    private static final long serialVersionUID = 1L;
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
    public SinkWriter<Row> createWriter(WriterInitContext context) {
        return new Writer(context);
    }

    private final class Writer extends BatchingWriter<Map<String, BatchingWriter.Buffer>> {
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
            // buffered rows that were not flushed by a checkpoint are replayed after a restart
            super.close();
        }
    }
}
