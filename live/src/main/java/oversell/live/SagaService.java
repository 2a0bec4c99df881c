package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.InvalidStateStoreException;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The saga on real Kafka Streams: the twin of {@code src/designs/saga/}. One JVM runs one
 * service instance, {@code app=order-service} (the process manager,
 * {@link SagaOrders}) or {@code app=product-service} (the stock ledger,
 * {@link SagaLedger}), as the simulator runs {@code order-service-N} and
 * {@code product-service-N}; both {@code exactly_once_v2}, one stream thread. Topics,
 * keys, stores, decisions and timers are the simulated design's: {@code orders} (by order),
 * {@code product-commands} (by product; the warehouse's {@code StockAdded} too),
 * {@code order-replies} and {@code order-outcomes} (by order), stores {@code order-state}
 * and {@code stock-ledger}. {@code direct-timers=true} is {@code saga-direct-timers}: the
 * wall-clock punctuations write their effects themselves instead of sending a record to
 * their own input.
 *
 * <p>Times kept in the stores (a payment's due time, a reservation's expiry) are wall-clock
 * ms since the epoch, where the simulator keeps simulated ms; the checker reads neither.
 */
final class SagaService {
    static final String ORDER_APP = "order-service";
    static final String PRODUCT_APP = "product-service";
    static final String ORDER_STORE = "order-state";
    static final String LEDGER_STORE = "stock-ledger";
    static final String ORDERS = "orders";
    static final String COMMANDS = "product-commands";
    static final String REPLIES = "order-replies";
    static final String OUTCOMES = "order-outcomes";
    /** How long a self-addressed timer record may stay unseen before it is sent again
     *  ({@code timers.rs}'s {@code RESEND_MS}). */
    static final long RESEND_MS = 500;

    private SagaService() {}

    static void run(Args a) throws Exception {
        String prefix = a.get("prefix");
        String instance = a.get("instance");
        String app = a.get("app");
        boolean direct = Boolean.parseBoolean(a.get("direct-timers"));
        Events events = new Events(Path.of(a.get("events")), prefix);
        String client = instance + "/" + app;
        Topology topology;
        String store;
        if (ORDER_APP.equals(app)) {
            JsonNode payments = Events.JSON.readTree(Files.readString(Path.of(a.get("payments"))));
            topology = new Topology()
                    .addSource("sources", prefix + ORDERS, prefix + REPLIES)
                    .addProcessor("process-manager",
                            () -> new SagaOrders(client, events, payments, direct), "sources")
                    .addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(ORDER_STORE),
                            Serdes.String(), Serdes.String()), "process-manager")
                    .addSink(COMMANDS, prefix + COMMANDS, "process-manager")
                    .addSink(REPLIES, prefix + REPLIES, "process-manager")
                    .addSink(OUTCOMES, prefix + OUTCOMES, "process-manager");
            store = ORDER_STORE;
        } else if (PRODUCT_APP.equals(app)) {
            long timeoutMs = Long.parseLong(a.get("timeout-ms"));
            long everyMs = Long.parseLong(a.get("punctuate-ms"));
            topology = new Topology()
                    .addSource("sources", prefix + COMMANDS)
                    .addProcessor("ledger",
                            () -> new SagaLedger(client, events, timeoutMs, everyMs, direct), "sources")
                    .addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(LEDGER_STORE),
                            Serdes.String(), Serdes.String()), "ledger")
                    .addSink(COMMANDS, prefix + COMMANDS, "ledger")
                    .addSink(REPLIES, prefix + REPLIES, "ledger");
            store = LEDGER_STORE;
        } else {
            Args.fail("app=" + app + " is neither " + ORDER_APP + " nor " + PRODUCT_APP);
            return;
        }
        CountDownLatch running = new CountDownLatch(1);
        KafkaStreams streams = streams(a, app, topology, client, events, running);
        streams.start();
        if (!running.await(Integer.parseInt(a.get("start-timeout-ms", "60000")), TimeUnit.MILLISECONDS)) {
            Args.fail("the Kafka Streams application did not reach RUNNING in time");
        }
        Commands.say("RUNNING");
        Commands.await("stop");
        dumpStore(streams, instance, app, store, Integer.parseInt(a.get("partitions")), Path.of(a.get("stores")));
        streams.close(Duration.ofSeconds(10));
        events.close();
        Commands.say("STOPPED");
        System.exit(0);
    }

    /** The application's Kafka Streams: exactly_once_v2, one thread, the scenario's settings. */
    private static KafkaStreams streams(Args a, String app, Topology topology, String client, Events events,
            CountDownLatch running) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("prefix") + app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, Path.of(a.get("state")).resolve(app).toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("commit-interval-ms"));
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), a.get("session-timeout-ms"));
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG),
                a.get("heartbeat-interval-ms"));
        p.put(StreamsConfig.topicPrefix("message.timestamp.type"), "LogAppendTime");
        KafkaStreams s = new KafkaStreams(topology, p);
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

    /** Every partition of the store held here, by interactive query (retried for 30 s). */
    private static void dumpStore(KafkaStreams s, String instance, String app, String name, int partitions,
            Path file) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            try {
                ObjectNode root = Events.JSON.createObjectNode();
                root.put("instance", instance);
                var stores = root.putArray("stores");
                for (int p = 0; p < partitions; p++) {
                    ReadOnlyKeyValueStore<String, String> store = s.store(StoreQueryParameters
                            .fromNameAndType(name, QueryableStoreTypes.<String, String>keyValueStore())
                            .withPartition(p));
                    ObjectNode entry = stores.addObject();
                    entry.put("application", app);
                    entry.put("store", name);
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
                return;
            } catch (InvalidStateStoreException e) {
                if (System.currentTimeMillis() > deadline) {
                    // Not holding a partition is no store to report (another instance
                    // holds it); an empty dump says so.
                    Files.writeString(file, "{\"instance\":\"" + instance + "\",\"stores\":[]}");
                    return;
                }
                Thread.sleep(50);
            }
        }
    }

    /** A domain message as the simulator encodes it: {@code {"type": ..., fields...}}. */
    static ObjectNode msg(String type) {
        ObjectNode m = Events.JSON.createObjectNode();
        m.put("type", type);
        return m;
    }

    /**
     * Self-addressed timer records sent and not yet seen back: key → when last sent
     * ({@code timers.rs}'s {@code Pending}). In memory: a new task sends again.
     */
    static final class Pending {
        private final TreeMap<String, Long> sent = new TreeMap<>();

        boolean due(String key, long now) {
            Long at = sent.get(key);
            return at == null || now >= at + RESEND_MS;
        }

        void sent(String key, long now) {
            sent.put(key, now);
        }

        void seen(String key) {
            sent.remove(key);
        }

        void retain(Set<String> keep) {
            sent.keySet().retainAll(keep);
        }
    }

    /** The keys of a map node, sorted. */
    static Set<String> keys(JsonNode node) {
        Set<String> out = new TreeSet<>();
        node.fieldNames().forEachRemaining(out::add);
        return out;
    }
}
