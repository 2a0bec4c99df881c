package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * OrderService of the saga, the process manager: the twin of
 * {@code src/designs/saga/order_service.rs}. It consumes {@code orders} and
 * {@code order-replies}, keeps each order's state in {@code order-state}, sends commands to
 * ProductService, runs the payment step (its delay and which payments fail are scenario
 * data), and ends each order with {@code OrderConfirmed} or {@code OrderCancelled}. A
 * wall-clock punctuation every 10 ms settles due payments: through a
 * {@code PaymentSettled} record to its own input ({@code saga}) or directly
 * ({@code saga-direct-timers}).
 *
 * <p>An order's state serialises as the simulator's {@code OrderState}:
 * {@code {"product":..,"quantity":..,"status":"Reserving"|{"Paying":{"due":ms}}|...}}.
 */
final class SagaOrders implements Processor<String, String, String, String> {
    private static final long PUNCTUATE_MS = 10;

    private final String client;
    private final Events events;
    private final Set<String> fail = new TreeSet<>();
    private final long delayMs;
    private final Map<String, Long> delays = new TreeMap<>();
    private final boolean direct;
    private final SagaService.Pending pending = new SagaService.Pending();
    private ProcessorContext<String, String> ctx;
    private KeyValueStore<String, String> store;

    SagaOrders(String client, Events events, JsonNode payments, boolean direct) {
        this.client = client;
        this.events = events;
        payments.path("fail").forEach(o -> fail.add(o.asText()));
        this.delayMs = payments.path("delay_ms").asLong();
        payments.path("delays").fields().forEachRemaining(e -> delays.put(e.getKey(), e.getValue().asLong()));
        this.direct = direct;
    }

    static JsonNode decode(String value) {
        return NaiveService.decode(value);
    }

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.ctx = context;
        this.store = context.getStateStore(SagaService.ORDER_STORE);
        context.schedule(Duration.ofMillis(PUNCTUATE_MS), PunctuationType.WALL_CLOCK_TIME, this::punctuate);
    }

    private ObjectNode load(String order) {
        String v = store.get(order);
        events.store("get", client, SagaService.ORDER_STORE, order, v);
        JsonNode n = decode(v);
        return n instanceof ObjectNode o ? o : null;
    }

    private void save(String order, ObjectNode state) {
        String v = state.toString();
        store.put(order, v);
        events.store("put", client, SagaService.ORDER_STORE, order, v);
    }

    private void send(String sink, String key, ObjectNode msg) {
        ctx.forward(new Record<>(key, msg.toString(), ctx.currentSystemTimeMs()), sink);
    }

    /** {@code Reserving}, {@code Paying}, {@code Confirming}, {@code Confirmed} or {@code Cancelled}. */
    private static String status(ObjectNode state) {
        JsonNode s = state.path("status");
        return s.isTextual() ? s.asText() : s.fieldNames().next();
    }

    /** Release whatever is still held for an order cancelled after its reservation. */
    private void compensate(String order, ObjectNode state, String reason) {
        ObjectNode cmd = SagaService.msg("CancelReservation");
        String product = state.path("product").asText();
        cmd.put("order_id", order).put("product_id", product).put("reason", reason);
        send(SagaService.COMMANDS, product, cmd);
    }

    private void finish(String order, ObjectNode state, ObjectNode outcome) {
        state.put("status", "OrderConfirmed".equals(outcome.path("type").asText()) ? "Confirmed" : "Cancelled");
        save(order, state);
        send(SagaService.OUTCOMES, order, outcome);
    }

    private void cancel(String order, ObjectNode state, String reason) {
        ObjectNode outcome = SagaService.msg("OrderCancelled");
        outcome.put("order_id", order).put("reason", reason);
        finish(order, state, outcome);
    }

    private void placed(String order, String product, long quantity) {
        ObjectNode state = Events.JSON.createObjectNode();
        state.put("product", product).put("quantity", quantity).put("status", "Reserving");
        save(order, state);
        ObjectNode cmd = SagaService.msg("ReserveStock");
        cmd.put("order_id", order).put("product_id", product).put("quantity", quantity);
        send(SagaService.COMMANDS, product, cmd);
    }

    private void settle(String order, ObjectNode state, boolean succeeded) {
        if (succeeded) {
            ObjectNode cmd = SagaService.msg("ConfirmReservation");
            String product = state.path("product").asText();
            cmd.put("order_id", order).put("product_id", product);
            send(SagaService.COMMANDS, product, cmd);
            state.put("status", "Confirming");
            save(order, state);
        } else {
            compensate(order, state, "payment failed");
            cancel(order, state, "payment failed");
        }
    }

    @Override
    public void process(Record<String, String> r) {
        NaiveService.logProcess(events, client, ctx, r);
        JsonNode m = decode(r.value());
        if (m == null || !m.hasNonNull("order_id")) {
            return;
        }
        String order = m.path("order_id").asText();
        String type = m.path("type").asText();
        if ("PaymentSettled".equals(type)) {
            pending.seen(order);
        }
        ObjectNode state = load(order);
        String status = state == null ? null : status(state);
        step(order, type, m, state, status);
    }

    /** One step of an order's saga for one input message (order_service.rs's step). */
    private void step(String order, String type, JsonNode m, ObjectNode state, String status) {
        if (state == null) {
            if ("OrderPlaced".equals(type)) {
                placed(order, m.path("product_id").asText(), m.path("quantity").asLong());
            }
            return;
        }
        switch (type) {
            case "StockReserved" -> {
                if ("Reserving".equals(status)) {
                    long due = ctx.currentSystemTimeMs() + delays.getOrDefault(order, delayMs);
                    state.putObject("status").putObject("Paying").put("due", due);
                    save(order, state);
                }
            }
            case "StockRejected" -> {
                if ("Reserving".equals(status)) {
                    cancel(order, state, m.path("reason").asText());
                }
            }
            case "PaymentSettled" -> {
                if ("Paying".equals(status)) {
                    settle(order, state, m.path("succeeded").asBoolean());
                }
            }
            case "ReservationConfirmed" -> {
                if ("Confirming".equals(status)) {
                    ObjectNode outcome = SagaService.msg("OrderConfirmed");
                    outcome.put("order_id", order);
                    finish(order, state, outcome);
                }
            }
            case "ConfirmRejected" -> {
                if ("Confirming".equals(status)) {
                    compensate(order, state, "reservation expired");
                    cancel(order, state, "reservation expired before confirmation; payment refunded");
                }
            }
            case "ReservationReleased" -> {
                if ("Paying".equals(status) || "Confirming".equals(status)) {
                    compensate(order, state, "order cancelled");
                    cancel(order, state, "reservation released (" + m.path("reason").asText() + ")");
                }
            }
            default -> { } // repeated or late: already handled
        }
    }

    /** Every paying order whose payment is due: settle it here, or send its result to ourselves. */
    private void punctuate(long now) {
        Map<String, ObjectNode> paying = new TreeMap<>();
        try (KeyValueIterator<String, String> it = store.all()) {
            while (it.hasNext()) {
                KeyValue<String, String> kv = it.next();
                JsonNode n = decode(kv.value);
                if (n instanceof ObjectNode o && "Paying".equals(status(o))) {
                    paying.put(kv.key, o);
                }
            }
        }
        pending.retain(paying.keySet());
        for (Map.Entry<String, ObjectNode> e : paying.entrySet()) {
            String order = e.getKey();
            long due = e.getValue().path("status").path("Paying").path("due").asLong();
            if (due > now) {
                continue;
            }
            boolean succeeded = !fail.contains(order);
            if (direct) {
                settle(order, e.getValue(), succeeded);
            } else if (pending.due(order, now)) {
                ObjectNode msg = SagaService.msg("PaymentSettled");
                msg.put("order_id", order).put("succeeded", succeeded);
                send(SagaService.REPLIES, order, msg);
                pending.sent(order, now);
            }
        }
    }

    @Override
    public void close() {}
}
