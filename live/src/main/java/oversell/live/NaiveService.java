package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyQueryMetadata;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.errors.InvalidStateStoreException;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.HostInfo;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The question's naive design on real Kafka Streams: the twin of {@code src/designs/naive.rs}.
 *
 * One service instance runs two Kafka Streams applications side by side:
 * <ul>
 *   <li>{@code product-checker} reads {@code orders}; for an {@code OrderPlaced} it asks the
 *       {@code ProductStock} store of the other application by interactive query, at the
 *       product's active host ({@link StockEndpoint}), whether stock covers the order, and writes {@code ProductReserved} or {@code OrderRejected}
 *       to {@code orders}, keyed by product;</li>
 *   <li>{@code product-stock} reads {@code orders} and {@code stock} and keeps the
 *       changelog-backed {@code ProductStock} store: {@code StockAdded} adds units,
 *       {@code ProductReserved} takes them.</li>
 * </ul>
 * Both run {@code at_least_once}, one stream thread each, with the scenario's commit
 * interval and session timeout. The store only changes when {@code product-stock} gets
 * to the {@code ProductReserved} event, so a second order checked before that sees the
 * old stock.
 */
final class NaiveService {
    static final String CHECKER_APP = "product-checker";
    static final String STOCK_APP = "product-stock";
    static final String STORE = "ProductStock";

    private NaiveService() {}

    static void run(Args a) throws Exception {
        String prefix = a.get("prefix");
        String instance = a.get("instance");
        Events events = new Events(Path.of(a.get("events")), prefix);
        Path state = Path.of(a.get("state"));
        KafkaStreams[] stock = new KafkaStreams[1];
        // Each instance serves its own ProductStock partitions to the others on a loopback
        // port, which is its application.server: the checker reads a product's stock where
        // the product's partition is hosted (StockEndpoint), as a service with several
        // instances must, and as the simulator's interactive query does.
        StockEndpoint endpoint = new StockEndpoint((partition, key) -> localRead(stock[0], partition, key));
        String server = endpoint.hostPort();
        a.set("application-server", server);
        Topology checker = new Topology()
                .addSource("orders-source", prefix + "orders")
                .addProcessor("check-stock",
                        () -> new CheckStock(instance + "/" + CHECKER_APP, events, () -> stock[0], server),
                        "orders-source")
                .addSink("orders-sink", prefix + "orders", "check-stock");
        Topology stockTopology = new Topology()
                .addSource("sources", prefix + "orders", prefix + "stock")
                .addProcessor("update-stock", () -> new UpdateStock(instance + "/" + STOCK_APP, events),
                        "sources")
                .addStateStore(Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.String()),
                        "update-stock");
        CountDownLatch running = new CountDownLatch(2);
        String alo = StreamsConfig.AT_LEAST_ONCE;
        stock[0] = Service.streams(a, STOCK_APP, stockTopology, alo, instance, events, running);
        KafkaStreams check = Service.streams(a, CHECKER_APP, checker, alo, instance, events, running);
        Service.serve(a, List.of(stock[0], check), running, events,
                stores -> Service.dumpStore(stock[0], STOCK_APP, STORE, server, stores));
    }

    /**
     * {@code key} of this instance's active {@code ProductStock} partition, or empty when
     * that partition is not active here now (moved away, restoring, rebalancing).
     */
    static Optional<StockEndpoint.Answer> localRead(KafkaStreams stock, int partition, String key) {
        try {
            ReadOnlyKeyValueStore<String, String> store = stock.store(StoreQueryParameters
                    .fromNameAndType(STORE, QueryableStoreTypes.<String, String>keyValueStore())
                    .withPartition(partition));
            return Optional.of(StockEndpoint.Answer.of(store.get(key)));
        } catch (InvalidStateStoreException e) {
            return Optional.empty();
        }
    }

    static JsonNode decode(String value) {
        try {
            return value == null ? null : Events.JSON.readTree(value);
        } catch (Exception e) {
            return null;
        }
    }

    static void logProcess(Events events, String client, ProcessorContext<?, ?> ctx, Record<String, String> r) {
        RecordMetadata m = ctx.recordMetadata().orElseThrow();
        events.process(client, m.topic(), m.partition(), m.offset(), r.key(), r.value());
    }

    /** The question's consumer: check stock by interactive query, then publish. */
    static final class CheckStock implements Processor<String, String, String, String> {
        private final String client;
        private final Events events;
        private final java.util.function.Supplier<KafkaStreams> stock;
        /** This instance's {@code application.server}. */
        private final String server;
        private ProcessorContext<String, String> ctx;

        CheckStock(String client, Events events, java.util.function.Supplier<KafkaStreams> stock, String server) {
            this.client = client;
            this.events = events;
            this.stock = stock;
            this.server = server;
        }

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.ctx = context;
        }

        @Override
        public void process(Record<String, String> r) {
            logProcess(events, client, ctx, r);
            JsonNode m = decode(r.value());
            if (m == null || !"OrderPlaced".equals(m.path("type").asText())) {
                return; // not an order: the other processor's business
            }
            String order = m.path("order_id").asText();
            String product = m.path("product_id").asText();
            long quantity = m.path("quantity").asLong();
            // Integer productStock = getProductStock(order.getProductId());
            String seen = query(product);
            events.store("get", client, STORE, product, seen);
            long stockNow = parse(seen);
            ObjectNode reply = Events.JSON.createObjectNode();
            reply.put("type", stockNow >= quantity ? "ProductReserved" : "OrderRejected");
            reply.put("order_id", order);
            reply.put("product_id", product);
            if (stockNow >= quantity) {
                reply.put("quantity", quantity);
            } else {
                reply.put("reason", "stock " + stockNow + " < " + quantity);
            }
            ctx.forward(r.withKey(product).withValue(reply.toString()));
        }

        /**
         * The store's value where the product's partition is active, retried while no
         * instance can answer (as the twin's Retry): {@code KafkaStreams.queryMetadataForKey}
         * names the active host (this JVM: a local read; another: {@link StockEndpoint}).
         */
        private String query(String product) {
            KafkaStreams s = stock.get();
            while (true) {
                KeyQueryMetadata where = s.queryMetadataForKey(STORE, product, Serdes.String().serializer());
                Optional<StockEndpoint.Answer> got = Optional.empty();
                try {
                    if (!KeyQueryMetadata.NOT_AVAILABLE.equals(where)) {
                        HostInfo host = where.activeHost();
                        String hostPort = host.host() + ":" + host.port();
                        got = hostPort.equals(server)
                                ? localRead(s, where.partition(), product)
                                : Optional.of(StockEndpoint.query(hostPort, where.partition(), product))
                                        .filter(StockEndpoint.Answer::available);
                    }
                    if (got.isPresent()) {
                        return got.get().value();
                    }
                    Thread.sleep(10);
                } catch (InterruptedException x) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while querying " + STORE, x);
                }
            }
        }
    }

    static long parse(String v) {
        try {
            return v == null ? 0 : Long.parseLong(v);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** The question's stream processor: fold stock changes into {@code ProductStock}. */
    static final class UpdateStock implements Processor<String, String, Void, Void> {
        private final String client;
        private final Events events;
        private ProcessorContext<Void, Void> ctx;
        private KeyValueStore<String, String> store;

        UpdateStock(String client, Events events) {
            this.client = client;
            this.events = events;
        }

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            this.ctx = context;
            this.store = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, String> r) {
            logProcess(events, client, ctx, r);
            JsonNode m = decode(r.value());
            if (m == null) {
                return;
            }
            String type = m.path("type").asText();
            long delta;
            if ("StockAdded".equals(type)) {
                delta = m.path("quantity").asLong();
            } else if ("ProductReserved".equals(type)) {
                delta = -m.path("quantity").asLong();
            } else {
                return;
            }
            String product = m.path("product_id").asText();
            String value = Long.toString(parse(store.get(product)) + delta);
            store.put(product, value);
            events.store("put", client, STORE, product, value);
        }
    }
}
