package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * Confluent's {@code InventoryService} on real Kafka Streams: the twin of
 * {@code src/designs/rekeyed.rs} ({@code rekeyed-alo} under {@code at_least_once},
 * {@code rekeyed-eos} under {@code exactly_once_v2}).
 *
 * <pre>
 * orders.selectKey(order -> order.product)            // through inventory-service-orders-by-product-repartition
 *       .join(warehouseInventory)                      // KStream-KTable inner join
 *       .process(InventoryValidator, reserved-stock)   // check and reserve in one step
 *       .to(order-validations)                         // PASS / FAIL, keyed by order id
 * </pre>
 *
 * As in confluentinc/kafka-streams-examples' {@code InventoryService}: the warehouse
 * inventory topic is read as a table (its value the product's absolute count; the
 * frontend writes a JSON row, whose {@code count} is the table's value, as Confluent's
 * {@code AddInventory} writes the count itself), materialized as
 * {@code warehouse-inventory-store}; the validator reads the product's row and its
 * {@code reserved-stock} entry and, if {@code inventory - reserved - quantity >= 0},
 * reserves (a store put) and emits PASS, otherwise FAIL. Reserved units are never
 * released; an order whose product has no row is dropped by the inner join.
 *
 * The crash point {@code crash-point=after-changelog-before-commit} (a test hook, as
 * FoundationDB's BUGGIFY points are) halts the process once per run (a marker file
 * remembers it across restarts) right after a PASS: the {@code reserved-stock} store
 * has no cache, so its put is sent to the changelog by the task's producer as it
 * happens; the stream thread then waits, inside {@code process()}, until the
 * changelog's and {@code order-validations}' end offsets on the broker show the new
 * records, and halts. A stream thread commits its offsets only between records, on its
 * own thread, so no commit can come between the records reaching the broker and the
 * halt: the reservation is in the changelog (committed, under at-least-once; in an open
 * transaction, under exactly-once) and the order's offset is not committed.
 */
final class RekeyedService {
    static final String APP = "inventory-service";
    static final String REPARTITION = "orders-by-product";
    static final String INVENTORY = "warehouse-inventory";
    static final String INVENTORY_STORE = "warehouse-inventory-store";
    static final String RESERVED_STORE = "reserved-stock";
    static final String VALIDATIONS = "order-validations";

    private RekeyedService() {}

    static void run(Args a) throws Exception {
        String prefix = a.get("prefix");
        String instance = a.get("instance");
        String client = instance + "/" + APP;
        String guarantee = a.get("guarantee");
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            Args.fail("guarantee=" + guarantee + ": at_least_once or exactly_once_v2");
        }
        Events events = new Events(Path.of(a.get("events")), prefix);
        CrashPoint crash = CrashPoint.of(a, prefix + APP + "-" + RESERVED_STORE + "-changelog", prefix + VALIDATIONS);

        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(RESERVED_STORE), Serdes.String(), Serdes.String()));
        KTable<String, String> inventory = builder
                .stream(prefix + INVENTORY, Consumed.with(Serdes.String(), Serdes.String()))
                .processValues(() -> new Logged(client, events))
                .mapValues(row -> {
                    JsonNode m = NaiveService.decode(row);
                    return m == null ? null : Long.toString(m.path("count").asLong());
                })
                // The table's put, logged as it is handed to the store (which the DSL
                // does in the same step): under caching the changelog gets it only at
                // the next commit, and a store read before that is explained by it.
                .peek((product, count) -> events.store("put", client, INVENTORY_STORE, product, count))
                .toTable(Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(INVENTORY_STORE)
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()));
        KStream<String, String> orders = builder
                .stream(prefix + "orders", Consumed.with(Serdes.String(), Serdes.String()))
                .processValues(() -> new Logged(client, events))
                .filter((k, v) -> {
                    JsonNode m = NaiveService.decode(v);
                    return m != null && "OrderPlaced".equals(m.path("type").asText());
                })
                .selectKey((k, v) -> NaiveService.decode(v).path("product_id").asText())
                .repartition(Repartitioned.<String, String>as(REPARTITION)
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
                .processValues(() -> new Logged(client, events));
        orders.join(inventory, (order, count) -> {
                    ObjectNode joined = Events.JSON.createObjectNode();
                    joined.put("order", order);
                    joined.put("inventory", count);
                    return joined.toString();
                })
                .process(() -> new Validator(client, events, crash), RESERVED_STORE)
                .to(prefix + VALIDATIONS, Produced.with(Serdes.String(), Serdes.String()));

        CountDownLatch running = new CountDownLatch(1);
        KafkaStreams streams = Service.streams(a, APP, builder.build(), guarantee, instance, events, running);
        String server = a.get("application-server", "localhost:1");
        Service.serve(a, List.of(streams), running, events, stores -> {
            Service.dumpStore(streams, APP, INVENTORY_STORE, server, stores);
            Service.dumpStore(streams, APP, RESERVED_STORE, server, stores);
        });
    }

    /** Logs each record a task takes from a source topic ({@code process}), unchanged. */
    static final class Logged implements FixedKeyProcessor<String, String, String> {
        private final String client;
        private final Events events;
        private FixedKeyProcessorContext<String, String> ctx;

        Logged(String client, Events events) {
            this.client = client;
            this.events = events;
        }

        @Override
        public void init(FixedKeyProcessorContext<String, String> context) {
            this.ctx = context;
        }

        @Override
        public void process(FixedKeyRecord<String, String> r) {
            RecordMetadata m = ctx.recordMetadata().orElseThrow();
            events.process(client, m.topic(), m.partition(), m.offset(), r.key(), r.value());
            ctx.forward(r);
        }
    }

    /** Confluent's {@code InventoryValidator}: check and reserve in one step. */
    static final class Validator implements Processor<String, String, String, String> {
        private final String client;
        private final Events events;
        private final CrashPoint crash;
        private ProcessorContext<String, String> ctx;
        private KeyValueStore<String, String> reserved;

        Validator(String client, Events events, CrashPoint crash) {
            this.client = client;
            this.events = events;
            this.crash = crash;
        }

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.ctx = context;
            this.reserved = context.getStateStore(RESERVED_STORE);
        }

        @Override
        public void process(Record<String, String> r) {
            JsonNode joined = NaiveService.decode(r.value());
            JsonNode order = NaiveService.decode(joined.path("order").asText());
            String product = r.key();
            String orderId = order.path("order_id").asText();
            long quantity = order.path("quantity").asLong();
            long inventory = NaiveService.parse(joined.path("inventory").asText());
            String held = reserved.get(product);
            events.store("get", client, RESERVED_STORE, product, held);
            long reservedNow = NaiveService.parse(held);
            boolean pass = inventory - reservedNow - quantity >= 0;
            int partition = ctx.recordMetadata().orElseThrow().partition();
            long[] before = pass ? crash.ends(partition) : null;
            if (pass) {
                String value = Long.toString(reservedNow + quantity);
                reserved.put(product, value);
                events.store("put", client, RESERVED_STORE, product, value);
            }
            ObjectNode out = Events.JSON.createObjectNode();
            out.put("type", "OrderValidation");
            out.put("order_id", orderId);
            out.put("product_id", product);
            out.put("quantity", quantity);
            out.put("result", pass ? "PASS" : "FAIL");
            ctx.forward(r.withKey(orderId).withValue(out.toString()));
            if (pass) {
                crash.maybeHalt(partition, before);
            }
        }
    }
}
