package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
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
 * ProductService of the saga: the twin of {@code src/designs/saga/product_service.rs}.
 * Re-keyed by product, it keeps a ledger per product in {@code stock-ledger} (units available
 * and open reservations) and each decided order under its own key ({@code order/<id>}) in the
 * same store, so that no value grows with the orders a product has seen: it reserves
 * or rejects, confirms, releases on cancel; a wall-clock punctuation releases reservations
 * not confirmed within the timeout, through a {@code CancelReservation { reason: "timeout" }}
 * sent to its own input ({@code saga}) or directly ({@code saga-direct-timers}). Every
 * command is idempotent.
 */
final class SagaLedger implements Processor<String, String, String, String> {
    private static final String TIMEOUT = "timeout";

    private final String client;
    private final Events events;
    private final long timeoutMs;
    private final long everyMs;
    private final boolean direct;
    private final boolean pauseOnInit;
    private final SagaService.Pending pending = new SagaService.Pending();
    private ProcessorContext<String, String> ctx;
    private KeyValueStore<String, String> store;

    SagaLedger(String client, Events events, long timeoutMs, long everyMs, boolean direct, boolean pauseOnInit) {
        this.pauseOnInit = pauseOnInit;
        this.client = client;
        this.events = events;
        this.timeoutMs = timeoutMs;
        this.everyMs = everyMs;
        this.direct = direct;
    }

    /** Key prefix of a decided order in the store, as the simulator's {@code Decided::key}. */
    static final String DECIDED = "order/";

    /** A product's ledger, as the simulator's {@code Ledger} serialises. */
    static final class Ledger {
        long available;
        final TreeMap<String, long[]> reserved = new TreeMap<>(); // order → [units, expiry]

        static Ledger decode(String value) {
            Ledger l = new Ledger();
            JsonNode n = SagaOrders.decode(value);
            if (n == null) {
                return l;
            }
            l.available = n.path("available").asLong();
            n.path("reserved").fields().forEachRemaining(e -> l.reserved.put(e.getKey(),
                    new long[] {e.getValue().path(0).asLong(), e.getValue().path(1).asLong()}));
            return l;
        }

        String encode() {
            ObjectNode n = Events.JSON.createObjectNode();
            n.put("available", available);
            ObjectNode r = n.putObject("reserved");
            reserved.forEach((o, qe) -> r.putArray(o).add(qe[0]).add(qe[1]));
            return n.toString();
        }

        /** Reservations whose timeout has passed at {@code now}: order → units. */
        Map<String, Long> expired(long now) {
            Map<String, Long> out = new TreeMap<>();
            reserved.forEach((o, qe) -> {
                if (qe[1] <= now) {
                    out.put(o, qe[0]);
                }
            });
            return out;
        }
    }

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.ctx = context;
        this.store = context.getStateStore(SagaService.LEDGER_STORE);
        context.schedule(Duration.ofMillis(everyMs), PunctuationType.WALL_CLOCK_TIME, this::punctuate);
        // The task is initialised once its stores are restored (StreamTask.completeRestoration
        // → initializeTopology), on the stream thread, before it processes or punctuates.
        events.note(client, "ledger task " + context.taskId() + " initialised, its store restored");
        if (pauseOnInit) {
            // The trigger of the zombie-punctuation experiment: oversell SIGSTOPs this JVM
            // when it reads the line; the stream thread waits here meanwhile.
            Commands.say("INITIALISED");
            try {
                Thread.sleep(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private Ledger load(String product) {
        String v = store.get(product);
        events.store("get", client, SagaService.LEDGER_STORE, product, v);
        return Ledger.decode(v);
    }

    private void save(String product, Ledger l) {
        String v = l.encode();
        store.put(product, v);
        events.store("put", client, SagaService.LEDGER_STORE, product, v);
    }

    /** How the ledger decided an order ({@code confirmed}, {@code released}, {@code rejected}), or null. */
    private JsonNode decided(String order) {
        String v = store.get(DECIDED + order);
        events.store("get", client, SagaService.LEDGER_STORE, DECIDED + order, v);
        return v == null ? null : SagaOrders.decode(v);
    }

    private boolean released(String order) {
        JsonNode d = decided(order);
        return d != null && "released".equals(d.path("decision").asText());
    }

    /** Write how the ledger decided an order, as the simulator's {@code Decided} serialises. */
    private void decide(String order, String product, String decision, long units) {
        ObjectNode n = Events.JSON.createObjectNode();
        n.put("product", product).put("decision", decision).put("units", units);
        String v = n.toString();
        store.put(DECIDED + order, v);
        events.store("put", client, SagaService.LEDGER_STORE, DECIDED + order, v);
    }

    private void reply(String order, ObjectNode msg) {
        ctx.forward(new Record<>(order, msg.toString(), ctx.currentSystemTimeMs()), SagaService.REPLIES);
    }

    private static ObjectNode released(String order, String product, long quantity, String reason) {
        ObjectNode m = SagaService.msg("ReservationReleased");
        m.put("order_id", order).put("product_id", product).put("quantity", quantity).put("reason", reason);
        return m;
    }

    @Override
    public void process(Record<String, String> r) {
        NaiveService.logProcess(events, client, ctx, r);
        JsonNode m = SagaOrders.decode(r.value());
        if (m == null) {
            return;
        }
        String order = m.path("order_id").asText();
        String product = m.path("product_id").asText();
        switch (m.path("type").asText()) {
            case "StockAdded" -> {
                Ledger l = load(product);
                l.available += m.path("quantity").asLong();
                save(product, l);
            }
            case "ReserveStock" -> reserve(order, product, m.path("quantity").asLong());
            case "ConfirmReservation" -> confirm(order, product);
            case "CancelReservation" -> {
                pending.seen(order);
                cancel(order, product, m.path("reason").asText());
            }
            default -> { }
        }
    }

    private void reserve(String order, String product, long quantity) {
        Ledger l = load(product);
        boolean seen = l.reserved.containsKey(order) || decided(order) != null;
        if (seen) {
            return; // already handled: the same answer was given
        }
        ObjectNode msg;
        if (l.available >= quantity) {
            l.available -= quantity;
            l.reserved.put(order, new long[] {quantity, ctx.currentSystemTimeMs() + timeoutMs});
            save(product, l);
            msg = SagaService.msg("StockReserved");
            msg.put("order_id", order).put("product_id", product).put("quantity", quantity);
        } else {
            decide(order, product, "rejected", 0);
            msg = SagaService.msg("StockRejected");
            msg.put("order_id", order).put("product_id", product)
                    .put("reason", l.available + " available, " + quantity + " wanted");
        }
        reply(order, msg);
    }

    private void confirm(String order, String product) {
        Ledger l = load(product);
        long[] held = l.reserved.remove(order);
        if (held != null) {
            save(product, l);
            decide(order, product, "confirmed", held[0]);
            ObjectNode m = SagaService.msg("ReservationConfirmed");
            m.put("order_id", order).put("product_id", product).put("quantity", held[0]);
            reply(order, m);
        } else if (released(order)) {
            ObjectNode m = SagaService.msg("ConfirmRejected");
            m.put("order_id", order).put("product_id", product);
            reply(order, m);
        }
    }

    private void cancel(String order, String product, String reason) {
        Ledger l = load(product);
        long[] held = l.reserved.remove(order);
        if (held == null) {
            return; // a repeated compensation: no second effect
        }
        l.available += held[0];
        save(product, l);
        decide(order, product, "released", held[0]);
        reply(order, released(order, product, held[0], reason));
    }

    /** Every ledger's expired reservations: released here, or asked of ourselves. */
    private void punctuate(long now) {
        List<KeyValue<String, String>> all = new ArrayList<>();
        try (KeyValueIterator<String, String> it = store.all()) {
            it.forEachRemaining(all::add);
        }
        Set<String> waiting = new TreeSet<>();
        for (KeyValue<String, String> kv : all) {
            if (kv.key.startsWith(DECIDED)) {
                continue; // an order's decision, not a product's ledger
            }
            Ledger l = Ledger.decode(kv.value);
            Map<String, Long> due = l.expired(now);
            waiting.addAll(due.keySet());
            if (direct) {
                releaseExpired(kv.key, l, due);
            } else {
                requestExpiry(kv.key, due, now);
            }
        }
        pending.retain(waiting);
    }

    /** The unfixed timer: release every expired reservation of a product here. */
    private void releaseExpired(String product, Ledger l, Map<String, Long> due) {
        if (due.isEmpty()) {
            return;
        }
        events.note(client, "punctuation releases " + due.keySet() + " of " + product + " (ledger: " + l.encode() + ")");
        for (Map.Entry<String, Long> e : due.entrySet()) {
            l.reserved.remove(e.getKey());
            l.available += e.getValue();
        }
        save(product, l);
        due.forEach((order, q) -> decide(order, product, "released", q));
        due.forEach((order, q) -> reply(order, released(order, product, q, TIMEOUT)));
    }

    /** The fixed timer: ask ourselves to cancel each expired reservation of a product. */
    private void requestExpiry(String product, Map<String, Long> due, long now) {
        for (String order : due.keySet()) {
            if (!pending.due(order, now)) {
                continue;
            }
            ObjectNode cmd = SagaService.msg("CancelReservation");
            cmd.put("order_id", order).put("product_id", product).put("reason", TIMEOUT);
            events.note(client, "punctuation asks to release " + order + " of " + product);
            ctx.forward(new Record<>(product, cmd.toString(), now), SagaService.COMMANDS);
            pending.sent(order, now);
        }
    }

    @Override
    public void close() {}
}
