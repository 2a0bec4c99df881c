package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
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
            boolean pause = Boolean.parseBoolean(a.get("pause-on-init", "false"));
            topology = new Topology()
                    .addSource("sources", prefix + COMMANDS)
                    .addProcessor("ledger",
                            () -> new SagaLedger(client, events, timeoutMs, everyMs, direct, pause), "sources")
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
        // Both services of the simulated saga run exactly_once_v2 (src/designs/saga/mod.rs).
        KafkaStreams streams = Service.streams(a, app, topology, StreamsConfig.EXACTLY_ONCE_V2, instance, events,
                running);
        String server = a.get("application-server", "localhost:1");
        Service.serve(a, List.of(streams), running, events,
                stores -> Service.dumpStore(streams, app, store, server, stores));
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
