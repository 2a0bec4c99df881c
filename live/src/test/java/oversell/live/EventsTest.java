package oversell.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The recorder's event log is read by src/live/history.rs ({@code LiveEvent}): one JSON
 * object a line, with only the fields it knows, topic names without the run's prefix.
 */
class EventsTest {
    /** The fields of {@code LiveEvent} in src/live/history.rs. */
    static final Set<String> FIELDS = Set.of(
            "t", "kind", "client", "topic", "partition", "offset", "store", "key", "value", "tasks", "count", "next");

    static List<JsonNode> lines(Path file) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            out.add(Events.JSON.readTree(line));
        }
        return out;
    }

    @Test
    void everyEventIsOneLineOfFieldsTheHistoryReaderKnows(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("events.jsonl");
        Events e = new Events(file, "run-7-");
        e.process("product-service-0/product-stock", "run-7-orders", 1, 42L, "product1", "{\"type\":\"OrderPlaced\"}");
        e.store("put", "product-service-0/product-stock", "ProductStock", "product1", "2");
        e.fetch("product-service-0/product-stock", "run-7-stock", 0, 3L, 2, 5L, "read_committed");
        e.state("product-service-0/product-stock", "REBALANCING", "RUNNING");
        e.assigned("product-service-0/product-stock",
                List.of(new TopicPartition("run-7-orders", 1), new TopicPartition("run-7-stock", 1)));
        e.note("product-service-0/product-service", "released order1");
        e.close();
        List<JsonNode> events = lines(file);
        assertEquals(6, events.size());
        for (JsonNode ev : events) {
            assertTrue(ev.path("t").isIntegralNumber(), ev.toString());
            assertTrue(ev.path("kind").isTextual() && ev.path("client").isTextual(), ev.toString());
            for (Iterator<String> f = ev.fieldNames(); f.hasNext();) {
                String name = f.next();
                assertTrue(FIELDS.contains(name), "field " + name + " unknown to LiveEvent: " + ev);
            }
        }
        JsonNode process = events.get(0);
        assertEquals("process", process.get("kind").asText());
        assertEquals("orders", process.get("topic").asText(), "the run's prefix is not written");
        assertEquals(1, process.get("partition").asInt());
        assertEquals(42L, process.get("offset").asLong());
        assertEquals("product1", process.get("key").asText());
        JsonNode put = events.get(1);
        assertEquals("ProductStock", put.get("store").asText());
        assertEquals("2", put.get("value").asText());
        JsonNode fetch = events.get(2);
        assertEquals("stock", fetch.get("topic").asText());
        assertEquals(2, fetch.get("count").asInt());
        assertEquals(5L, fetch.get("next").asLong());
        assertEquals("read_committed", fetch.get("value").asText());
        assertEquals("REBALANCING -> RUNNING", events.get(3).get("value").asText(),
                "history.rs reads a state change as BEFORE -> NOW");
        JsonNode tasks = events.get(4).get("tasks");
        assertEquals(2, tasks.size());
        assertEquals("orders", tasks.get(0).get("topic").asText());
        assertEquals(1, tasks.get(1).get("partition").asInt());
    }

    @Test
    void eventsAreInTimeOrder(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("events.jsonl");
        Events e = new Events(file, "p-");
        for (int i = 0; i < 50; i++) {
            e.store("get", "c", "S", "k" + i, null);
        }
        e.close();
        long last = 0;
        for (JsonNode ev : lines(file)) {
            assertTrue(ev.get("t").asLong() >= last, "time goes back at " + ev);
            last = ev.get("t").asLong();
            assertTrue(ev.get("value").isNull(), "a missing store value is null, not a string: " + ev);
        }
    }

    @Test
    void aTopicOutsideTheRunKeepsItsName(@TempDir Path dir) throws Exception {
        Events e = new Events(dir.resolve("e.jsonl"), "run-1-");
        assertEquals("orders", e.unprefixed("run-1-orders"));
        assertEquals("__consumer_offsets", e.unprefixed("__consumer_offsets"));
        assertEquals("run-2-orders", e.unprefixed("run-2-orders"));
        e.close();
    }
}
