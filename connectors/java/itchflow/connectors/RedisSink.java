package itchflow.connectors;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.types.Row;

/**
 * Sends pre-encoded, pipelined Redis commands (RESP) in batches.
 *
 * <p>Input: {@code Row(commands INT, resp BYTES)}: {@code resp} holds {@code commands} complete RESP
 * commands produced by the Python core. Stream entries are written with explicit, deterministic ids;
 * Redis refuses an id that is not above the stream's last one, which is exactly what a replay after
 * a restore sends again: such replies are counted as duplicates and skipped. Any other error reply
 * fails the task (and Flink restarts it from the last checkpoint).
 */
public class RedisSink implements Sink<Row> {
    private static final long serialVersionUID = 1L;
    private final String host;
    private final int port;
    private final String passwordEnv;
    private final long lingerMs;
    private final int maxBytes;

    public RedisSink(String host, int port, String passwordEnv, long lingerMs, int maxBytes) {
        this.host = host;
        this.port = port;
        this.passwordEnv = passwordEnv;
        this.lingerMs = lingerMs;
        this.maxBytes = maxBytes;
    }

    @Override
    public SinkWriter<Row> createWriter(WriterInitContext context) {
        return new Writer(context);
    }

    /** RESP commands taken from the writer's buffer, and how many they are. */
    private static final class Batch {
        final BatchingWriter.Buffer buffer;
        final int commands;

        Batch(BatchingWriter.Buffer buffer, int commands) {
            this.buffer = buffer;
            this.commands = commands;
        }
    }

    private final class Writer extends BatchingWriter<Batch> {
        private Buffer buffer = new Buffer(1 << 16);
        private int commands;
        private Socket socket;
        private OutputStream out;
        private InputStream in;
        private final Counter duplicates;

        Writer(WriterInitContext context) {
            super(context, lingerMs, maxBytes, "redis");
            duplicates = context.metricGroup().counter("itchflowRedisDuplicateStreamIds");
        }

        @Override
        protected int append(Row record) throws IOException {
            commands += (Integer) record.getField(0);
            buffer.write((byte[]) record.getField(1));
            recordsOut.inc();
            return buffer.size();
        }

        @Override
        protected boolean isEmpty() {
            return commands == 0;
        }

        @Override
        protected Batch take() {
            Batch batch = new Batch(buffer, commands);
            buffer = new Buffer(Math.max(1 << 16, batch.buffer.size()));
            commands = 0;
            return batch;
        }

        @Override
        protected void send(Batch batch) throws IOException, InterruptedException {
            withRetries("redis pipeline", () -> sendOnce(batch));
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
