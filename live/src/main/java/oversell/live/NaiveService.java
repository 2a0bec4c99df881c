package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
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
 *       {@code ProductStock} store of the other application by interactive query whether
 *       stock covers the order, and writes {@code ProductReserved} or {@code OrderRejected}
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
        Topology checker = new Topology()
                .addSource("orders-source", prefix + "orders")
                .addProcessor("check-stock",
                        () -> new CheckStock(instance + "/" + CHECKER_APP, events, () -> stock[0]),
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
        stock[0] = streams(a, STOCK_APP, stockTopology, state, instance, events, running);
        KafkaStreams check = streams(a, CHECKER_APP, checker, state, instance, events, running);
        stock[0].start();
        check.start();
        if (!running.await(Integer.parseInt(a.get("start-timeout-ms", "60000")), TimeUnit.MILLISECONDS)) {
            Args.fail("the Kafka Streams applications did not reach RUNNING in time");
        }
        Commands.say("RUNNING");
        Commands.await("stop");
        dumpStores(stock[0], instance, Integer.parseInt(a.get("partitions")), Path.of(a.get("stores")));
        check.close(Duration.ofSeconds(10));
        stock[0].close(Duration.ofSeconds(10));
        events.close();
        Commands.say("STOPPED");
        System.exit(0);
    }

    /** One application's Kafka Streams, with the scenario's settings. */
    private static KafkaStreams streams(Args a, String app, Topology topology, Path state, String instance,
            Events events, CountDownLatch running) {
        Properties p = new Properties();
        String prefix = a.get("prefix");
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix + app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, state.resolve(app).toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("commit-interval-ms"));
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), a.get("session-timeout-ms"));
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG),
                a.get("heartbeat-interval-ms"));
        // Changelogs stamped with the broker's append time, as the input topics are, so
        // that the recorded history orders appends by when the broker took them.
        p.put(StreamsConfig.topicPrefix("message.timestamp.type"), "LogAppendTime");
        KafkaStreams s = new KafkaStreams(topology, p);
        String client = instance + "/" + app;
        s.setStateListener((now, before) -> {
            events.state(client, before.name(), now.name());
            if (now == KafkaStreams.State.RUNNING) {
                events.assigned(client, tasks(s));
                running.countDown();
            }
        });
        s.setUncaughtExceptionHandler(e -> {
            System.err.println("oversell live: " + client + " failed: " + e);
            Runtime.getRuntime().halt(1);
            return null;
        });
        return s;
    }

    private static List<TopicPartition> tasks(KafkaStreams s) {
        List<TopicPartition> out = new ArrayList<>();
        for (ThreadMetadata t : s.metadataForLocalThreads()) {
            for (TaskMetadata task : t.activeTasks()) {
                out.addAll(task.topicPartitions());
            }
        }
        return out;
    }

    /**
     * Every partition of {@code ProductStock} held here, by interactive query; while the
     * application rebalances (a partition is not queryable), it is asked again, for up to
     * 30 s.
     */
    private static void dumpStores(KafkaStreams s, String instance, int partitions, Path file) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            try {
                tryDumpStores(s, instance, partitions, file);
                return;
            } catch (InvalidStateStoreException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
    }

    private static void tryDumpStores(KafkaStreams s, String instance, int partitions, Path file) throws Exception {
        ObjectNode root = Events.JSON.createObjectNode();
        root.put("instance", instance);
        ArrayNode stores = root.putArray("stores");
        for (int p = 0; p < partitions; p++) {
            ReadOnlyKeyValueStore<String, String> store = s.store(StoreQueryParameters
                    .fromNameAndType(STORE, QueryableStoreTypes.<String, String>keyValueStore())
                    .withPartition(p));
            ObjectNode entry = stores.addObject();
            entry.put("application", STOCK_APP);
            entry.put("store", STORE);
            entry.put("partition", p);
            ObjectNode kv = entry.putObject("entries");
            try (KeyValueIterator<String, String> it = store.all()) {
                while (it.hasNext()) {
                    KeyValue<String, String> e = it.next();
                    kv.put(e.key, e.value);
                }
            }
        }
        Files.writeString(file, Events.JSON.writeValueAsString(root));
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
        private ProcessorContext<String, String> ctx;

        CheckStock(String client, Events events, java.util.function.Supplier<KafkaStreams> stock) {
            this.client = client;
            this.events = events;
            this.stock = stock;
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

        /** The store's value, retried while it cannot be queried (as the twin's Retry). */
        private String query(String product) {
            while (true) {
                try {
                    ReadOnlyKeyValueStore<String, String> store = stock.get().store(StoreQueryParameters
                            .fromNameAndType(STORE, QueryableStoreTypes.<String, String>keyValueStore()));
                    return store.get(product);
                } catch (InvalidStateStoreException e) {
                    try {
                        Thread.sleep(10);
                    } catch (InterruptedException x) {
                        Thread.currentThread().interrupt();
                        throw e;
                    }
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
