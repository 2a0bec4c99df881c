package oversell.live;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import org.apache.kafka.common.TopicPartition;

/**
 * What a service instance saw, one JSON object a line, each with its wall-clock time
 * {@code t} (ms since the epoch): records handed to a processor ({@code process}), store
 * reads ({@code get}) and writes ({@code put}), Kafka Streams state changes
 * ({@code state}), what a stream thread's consumer returned from each poll ({@code fetch},
 * {@link RecordingClients}), and the tasks a client owns once it is
 * running ({@code assigned}). Topic names are written without the run's prefix.
 */
final class Events {
    static final ObjectMapper JSON = new ObjectMapper();

    private final BufferedWriter out;
    private final String prefix;

    Events(Path file, String prefix) throws IOException {
        this.out = Files.newBufferedWriter(file, StandardCharsets.UTF_8);
        this.prefix = prefix;
    }

    String unprefixed(String topic) {
        return topic.startsWith(prefix) ? topic.substring(prefix.length()) : topic;
    }

    private ObjectNode event(String kind, String client) {
        ObjectNode e = JSON.createObjectNode();
        e.put("t", System.currentTimeMillis());
        e.put("kind", kind);
        e.put("client", client);
        return e;
    }

    void process(String client, String topic, int partition, long offset, String key, String value) {
        ObjectNode e = event("process", client);
        e.put("topic", unprefixed(topic));
        e.put("partition", partition);
        e.put("offset", offset);
        e.put("key", key);
        e.put("value", value);
        effect(e);
    }

    /** What a stream thread's consumer returned from one partition in one poll. */
    void fetch(String client, String topic, int partition, long from, int count, long next, String isolation) {
        ObjectNode e = event("fetch", client);
        e.put("topic", unprefixed(topic));
        e.put("partition", partition);
        e.put("offset", from);
        e.put("count", count);
        e.put("next", next);
        e.put("value", isolation);
        write(e);
    }

    void store(String kind, String client, String store, String key, String value) {
        ObjectNode e = event(kind, client);
        e.put("store", store);
        e.put("key", key);
        e.put("value", value);
        effect(e);
    }

    void state(String client, String before, String now) {
        ObjectNode e = event("state", client);
        e.put("value", before + " -> " + now);
        write(e);
    }

    /** Something a processor says about itself (a punctuation's effects). */
    void note(String client, String text) {
        ObjectNode e = event("note", client);
        e.put("value", text);
        effect(e);
    }

    void assigned(String client, Collection<TopicPartition> tasks) {
        ObjectNode e = event("assigned", client);
        ArrayNode a = e.putArray("tasks");
        for (TopicPartition tp : tasks) {
            a.addObject().put("topic", unprefixed(tp.topic())).put("partition", tp.partition());
        }
        write(e);
    }

    /** When a processor last did something: processed, read or wrote a store, noted. */
    private volatile long lastEffect = System.currentTimeMillis();

    private void effect(ObjectNode e) {
        lastEffect = System.currentTimeMillis();
        write(e);
    }

    /**
     * Wait until no processor has done anything for {@code stillMs} (a paused application
     * finishes the batch it was processing first), at most {@code maxMs}; whether it was.
     */
    boolean awaitStill(long stillMs, long maxMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + maxMs;
        while (System.currentTimeMillis() < deadline) {
            if (System.currentTimeMillis() - lastEffect >= stillMs) {
                return true;
            }
            Thread.sleep(20);
        }
        return false;
    }

    private synchronized void write(ObjectNode e) {
        try {
            out.write(JSON.writeValueAsString(e));
            out.write('\n');
            out.flush();
        } catch (IOException x) {
            throw new UncheckedIOException(x);
        }
    }

    synchronized void close() throws IOException {
        out.close();
    }
}
