package oversell.live;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;

/**
 * The remote half of an interactive query, as a service with several instances serves it:
 * each instance listens on a loopback port (its {@code application.server}), and an
 * instance whose key lives elsewhere asks the key's active host
 * ({@code KafkaStreams.queryMetadataForKey}) over HTTP. Kafka Streams ships no transport
 * for this; its documentation ("Querying remote state stores for the entire app") leaves
 * the RPC layer to the application, as here.
 *
 * <p>{@code GET /store/PARTITION/KEY}: 200 with the value, 404 when the key has none, 503
 * when this instance cannot read that partition now (not its active task, or rebalancing).
 */
final class StockEndpoint implements AutoCloseable {
    /** What a remote read found: a value, no value, or nothing readable (ask again). */
    record Answer(boolean available, String value) {
        static final Answer UNAVAILABLE = new Answer(false, null);

        static Answer of(String value) {
            return new Answer(true, value);
        }
    }

    /** The local read: a partition's key, or empty when that partition is not readable here. */
    interface Local {
        Optional<Answer> read(int partition, String key);
    }

    private final HttpServer server;

    /** Serve {@code local} on a free loopback port. */
    StockEndpoint(Local local) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/store/", exchange -> answer(exchange, local));
        server.start();
    }

    /** The {@code application.server} value of this instance. */
    String hostPort() {
        return "localhost:" + server.getAddress().getPort();
    }

    private static void answer(HttpExchange exchange, Local local) throws IOException {
        String[] parts = exchange.getRequestURI().getRawPath().split("/", 4);
        int status;
        String body = "";
        try {
            int partition = Integer.parseInt(parts[2]);
            String key = URLDecoder.decode(parts[3], StandardCharsets.UTF_8);
            Answer a = local.read(partition, key).orElse(Answer.UNAVAILABLE);
            status = !a.available() ? 503 : a.value() == null ? 404 : 200;
            body = a.value() == null ? "" : a.value();
        } catch (RuntimeException e) {
            status = 400;
        }
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
        if (bytes.length > 0) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(bytes);
            }
        }
        exchange.close();
    }

    private static final HttpClient CLIENT = HttpClient.newBuilder()
            .connectTimeout(Duration.ofSeconds(1))
            .build();

    /**
     * Ask {@code hostPort} for {@code key} of {@code partition}; a host that does not answer
     * in 2 s (SIGSTOPped, gone) or cannot read the partition is {@link Answer#UNAVAILABLE}.
     */
    static Answer query(String hostPort, int partition, String key) throws InterruptedException {
        URI uri = URI.create("http://" + hostPort + "/store/" + partition + "/"
                + URLEncoder.encode(key, StandardCharsets.UTF_8));
        HttpRequest request = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(2)).GET().build();
        try {
            HttpResponse<String> r = CLIENT.send(request, HttpResponse.BodyHandlers.ofString());
            return switch (r.statusCode()) {
                case 200 -> Answer.of(r.body());
                case 404 -> Answer.of(null);
                default -> Answer.UNAVAILABLE;
            };
        } catch (IOException e) {
            return Answer.UNAVAILABLE;
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
