package oversell.live;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
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
import org.apache.kafka.streams.StreamsMetadata;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.InvalidStateStoreException;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * What every service twin shares: its Kafka Streams applications with the scenario's
 * settings, and its life as oversell drives it. Started, it says {@code RUNNING} once
 * every application is; on {@code dump} it writes the stores it hosts (interactive
 * queries) and says {@code DUMPED}; on {@code stop} it closes and says {@code STOPPED}.
 * Several instances of a twin are several JVMs of the same applications (one consumer
 * group each), each with its own state directory; a restarted instance is the same
 * command again, on the same state directory.
 */
final class Service {
    private Service() {}

    /** One application's Kafka Streams, with the scenario's settings and the guarantee. */
    static KafkaStreams streams(Args a, String app, Topology topology, String guarantee, String instance,
            Events events, CountDownLatch running) {
        Properties p = new Properties();
        String prefix = a.get("prefix");
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix + app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, Path.of(a.get("state")).resolve(app).toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.get("commit-interval-ms"));
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // Only metadata (which instance hosts which store partition), never listened on.
        p.put(StreamsConfig.APPLICATION_SERVER_CONFIG, a.get("application-server", "localhost:1"));
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), a.get("session-timeout-ms"));
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG),
                a.get("heartbeat-interval-ms"));
        if (a.get("transaction-timeout-ms", null) != null) {
            p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), a.get("transaction-timeout-ms"));
        }
        // Kafka Streams deletes a repartition topic's consumed records after a commit, every
        // repartition.purge.interval.ms (30 s; StreamThread.maybeCommit, TaskManager
        // .maybePurgeCommittedRecords: Admin.deleteRecords up to the committed offset). It
        // changes nothing the application reads, but the recorder must read every record
        // back: a run longer than 30 s would lose its first repartition records (a refused
        // history), so the twins never purge.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, Long.MAX_VALUE);
        // Every topic stamped with the broker's append time, as the input topics are, so
        // that the recorded history orders appends by when the broker took them.
        p.put(StreamsConfig.topicPrefix("message.timestamp.type"), "LogAppendTime");
        String client = instance + "/" + app;
        KafkaStreams s = new KafkaStreams(topology, p, new RecordingClients(events, client));
        s.setStateListener((now, before) -> {
            events.state(client, before.name(), now.name());
            if (now == KafkaStreams.State.RUNNING) {
                events.assigned(client, tasks(s));
                running.countDown();
            }
        });
        s.setUncaughtExceptionHandler(e -> {
            System.err.println("oversell live: " + client + " failed: " + e);
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
            return null;
        });
        return s;
    }

    /** What a twin writes on {@code dump}: its stores, one JSON object per store partition. */
    interface Dump {
        void into(ArrayNode stores) throws Exception;
    }

    /** Start the applications, report, dump, stop: the twin's life under oversell. */
    static void serve(Args a, List<KafkaStreams> apps, CountDownLatch running, Events events, Dump dump)
            throws Exception {
        for (KafkaStreams s : apps) {
            s.start();
        }
        if (!running.await(Integer.parseInt(a.get("start-timeout-ms", "60000")), TimeUnit.MILLISECONDS)) {
            Args.fail("the Kafka Streams applications did not reach RUNNING in time");
        }
        Commands.say("RUNNING");
        Commands.await("dump");
        // One cut (src/live/run.rs stop_all): KafkaStreams.pause() (KIP-834) skips processing
        // and punctuation from the stream thread's next loop on (TaskExecutor.process and
        // .punctuate ask TaskExecutionMetadata.canProcessTask / canPunctuateTask, false for a
        // paused topology); once no processor has done
        // anything for a while the stores are dumped, and close() then commits (flushes the
        // stores' caches to their changelogs, commits the offsets or the transaction), so the
        // logs the driver reads afterwards hold exactly what the dumped stores say.
        for (KafkaStreams s : apps) {
            s.pause();
        }
        if (!events.awaitStill(500, 10_000)) {
            Args.fail("the paused applications were still processing after 10 s");
        }
        ObjectNode root = Events.JSON.createObjectNode();
        root.put("instance", a.get("instance"));
        dump.into(root.putArray("stores"));
        Files.writeString(Path.of(a.get("stores")), Events.JSON.writeValueAsString(root));
        Commands.say("DUMPED");
        Commands.await("stop");
        for (KafkaStreams s : apps) {
            s.close(Duration.ofSeconds(10));
        }
        events.close();
        Commands.say("STOPPED");
        System.exit(0);
    }

    static List<TopicPartition> tasks(KafkaStreams s) {
        List<TopicPartition> out = new ArrayList<>();
        for (ThreadMetadata t : s.metadataForLocalThreads()) {
            for (TaskMetadata task : t.activeTasks()) {
                out.addAll(task.topicPartitions());
            }
        }
        return out;
    }

    /**
     * Every partition of {@code store} this instance hosts as an active task (by the
     * application's metadata), by interactive query; while the application rebalances, it
     * is asked again, for up to 30 s.
     */
    static void dumpStore(KafkaStreams s, String app, String store, String server, ArrayNode out) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            try {
                ArrayNode mine = Events.JSON.createArrayNode();
                for (int p : hosted(s, store, server)) {
                    ReadOnlyKeyValueStore<String, String> kv = s.store(StoreQueryParameters
                            .fromNameAndType(store, QueryableStoreTypes.<String, String>keyValueStore())
                            .withPartition(p));
                    ObjectNode entry = mine.addObject();
                    entry.put("application", app);
                    entry.put("store", store);
                    entry.put("partition", p);
                    ObjectNode entries = entry.putObject("entries");
                    try (KeyValueIterator<String, String> it = kv.all()) {
                        while (it.hasNext()) {
                            KeyValue<String, String> e = it.next();
                            entries.put(e.key, e.value);
                        }
                    }
                }
                out.addAll(mine);
                return;
            } catch (InvalidStateStoreException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                Thread.sleep(50);
            }
        }
    }

    /** The partitions of {@code store} whose active task runs here. */
    private static TreeSet<Integer> hosted(KafkaStreams s, String store, String server) {
        TreeSet<Integer> out = new TreeSet<>();
        for (StreamsMetadata m : s.streamsMetadataForStore(store)) {
            String host = m.hostInfo().host() + ":" + m.hostInfo().port();
            if (host.equals(server)) {
                for (TopicPartition tp : m.topicPartitions()) {
                    out.add(tp.partition());
                }
            }
        }
        return out;
    }
}
