package oversell.live;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * One live run's outside world and recorder. Waits for the cluster, creates the run's
 * topics (stamped with the broker's append time), says {@code TOPICS}; on {@code play}
 * writes the workload at its times with an order producer and records every
 * acknowledgement; waits until every group has committed the end of its inputs and stays
 * there ({@code quiescent}) or a time bound passes ({@code time-bound}); says
 * {@code SETTLED} and, on {@code record} (every application stopped), reads back
 * every topic of the run twice, {@code read_uncommitted} and {@code read_committed}, and the
 * groups' committed offsets, and writes the history as JSON. Says {@code DONE}.
 */
final class Driver {
    private Driver() {}

    static void run(Args a) throws Exception {
        String prefix = a.get("prefix");
        String bootstrap = a.get("bootstrap");
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            awaitBrokers(admin, a.integer("brokers"), a.integer("start-timeout-ms"));
            createTopics(admin, prefix, a.get("topics").split(","), a.integer("partitions"),
                    (short) a.integer("replication"));
            createTopics(admin, "", new String[] {a.get("warmup")}, 1, (short) a.integer("replication"));
            Commands.say("TOPICS");
            Commands.await("play");
            ObjectNode history = Events.JSON.createObjectNode();
            history.put("kafka_version", org.apache.kafka.common.utils.internals.AppInfoParser.getVersion());
            ArrayNode acks = history.putArray("acks");
            long t0 = play(a, bootstrap, prefix, acks);
            history.put("t0", t0);
            Map<String, List<String>> groups = groups(a.get("groups"));
            // Not quiescent before the last fault has healed (a restart, a continuation).
            long notBefore = t0 + Long.parseLong(a.get("not-before-ms", "0"));
            String outcome = awaitQuiet(admin, prefix, groups, a.integer("quiet-ms"), a.integer("time-bound-ms"),
                    notBefore);
            history.put("outcome", outcome);
            history.put("recorded_at", System.currentTimeMillis());
            // One cut: oversell pauses every application, dumps its stores and closes it
            // (src/live/run.rs stop_all) before the logs are read, so that stores, logs and
            // committed offsets are one state and no repartition purge runs between the
            // two reads below.
            Commands.say("SETTLED");
            Commands.await("record");
            List<TopicPartition> all = record(admin, bootstrap, prefix, history);
            Segments.record(a.get("log-dirs", ""), prefix, all, history.putArray("log"));
            recordGroups(admin, prefix, groups.keySet(), history.putObject("group_offsets"));
            // After the committed offsets, so that the coordinators' logs hold them.
            CoordinatorLogs.record(a.get("log-dirs", ""), prefix, history.putArray("coordinator"));
            Files.writeString(Path.of(a.get("history")), Events.JSON.writeValueAsString(history));
        }
        Commands.say("DONE");
        System.exit(0);
    }

    private static void awaitBrokers(Admin admin, int brokers, int timeoutMs) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (true) {
            try {
                int n = admin.describeCluster().nodes().get().size();
                if (n >= brokers) {
                    return;
                }
            } catch (Exception e) {
                // not up yet
            }
            if (System.currentTimeMillis() > deadline) {
                Args.fail("the cluster did not show " + brokers + " brokers within " + timeoutMs + " ms");
            }
            Thread.sleep(100);
        }
    }

    private static void createTopics(Admin admin, String prefix, String[] topics, int partitions, short replication)
            throws Exception {
        List<NewTopic> create = new ArrayList<>();
        for (String t : topics) {
            create.add(new NewTopic(prefix + t, partitions, replication)
                    .configs(Map.of("message.timestamp.type", "LogAppendTime")));
        }
        admin.createTopics(create).all().get();
        // Wait until every partition has a leader.
        while (true) {
            boolean ready = true;
            try {
                for (TopicDescription d : admin.describeTopics(names(prefix, topics)).allTopicNames().get().values()) {
                    for (TopicPartitionInfo p : d.partitions()) {
                        ready &= p.leader() != null;
                    }
                }
            } catch (Exception e) {
                ready = false;
            }
            if (ready) {
                return;
            }
            Thread.sleep(50);
        }
    }

    private static List<String> names(String prefix, String[] topics) {
        List<String> out = new ArrayList<>();
        for (String t : topics) {
            out.add(prefix + t);
        }
        return out;
    }

    /** Write the workload at its times; returns the wall-clock time of workload time 0. */
    private static long play(Args a, String bootstrap, String prefix, ArrayNode acks) throws Exception {
        JsonNode workload = Events.JSON.readTree(Files.readString(Path.of(a.get("workload"))));
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, a.get("idempotent"));
        p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "frontend-producer");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            Set<String> topics = new TreeSet<>();
            workload.forEach(r -> topics.add(r.path("topic").asText()));
            for (String t : topics) {
                producer.partitionsFor(prefix + t); // metadata before the clock starts
            }
            // The producer's id, connections and metadata before the clock starts: one
            // write to a topic outside the run (not recorded), so that the workload's
            // first record is not late by the producer's start-up.
            producer.send(new ProducerRecord<>(a.get("warmup"), "warm-up", "warm-up")).get();
            long t0 = System.currentTimeMillis();
            Commands.say("T0 " + t0); // oversell plays the faults from it
            for (JsonNode r : workload) {
                long wait = t0 + r.path("at").asLong() - System.currentTimeMillis();
                if (wait > 0) {
                    Thread.sleep(wait);
                }
                String topic = r.path("topic").asText();
                producer.send(new ProducerRecord<>(prefix + topic, r.path("key").asText(), r.path("value").asText()),
                        (meta, error) -> {
                            if (error != null) {
                                System.err.println("oversell live: a write to " + topic + " failed: " + error);
                                return;
                            }
                            synchronized (acks) {
                                acks.addObject().put("t", System.currentTimeMillis()).put("topic", topic)
                                        .put("partition", meta.partition()).put("offset", meta.offset());
                            }
                        });
            }
            producer.flush();
            return t0;
        }
    }

    /** {@code app:topic,topic;app:topic} → application → its input topics. */
    static Map<String, List<String>> groups(String text) {
        Map<String, List<String>> out = new TreeMap<>();
        for (String g : text.split(";")) {
            String[] parts = g.split(":");
            out.put(parts[0], List.of(parts[1].split(",")));
        }
        return out;
    }

    /**
     * {@code quiescent} once every group's committed offset is the end of each of its input
     * partitions, and stays so for {@code quietMs}; {@code time-bound} if that does not
     * happen within {@code boundMs}.
     */
    private static String awaitQuiet(Admin admin, String prefix, Map<String, List<String>> groups, int quietMs,
            int boundMs, long notBefore) throws Exception {
        long deadline = System.currentTimeMillis() + boundMs;
        long caughtUpSince = -1;
        Map<TopicPartition, Long> lastEnds = null;
        while (System.currentTimeMillis() < deadline) {
            Map<TopicPartition, Long> ends = new HashMap<>();
            boolean caughtUp = true;
            try {
                for (Map.Entry<String, List<String>> g : groups.entrySet()) {
                    Map<TopicPartition, OffsetAndMetadata> committed =
                            admin.listConsumerGroupOffsets(prefix + g.getKey()).partitionsToOffsetAndMetadata().get();
                    for (Map.Entry<TopicPartition, Long> end : endOffsets(admin, prefix, g.getValue()).entrySet()) {
                        ends.put(end.getKey(), end.getValue());
                        OffsetAndMetadata c = committed.get(end.getKey());
                        long at = c == null ? 0 : c.offset();
                        caughtUp &= at >= end.getValue();
                    }
                }
            } catch (java.util.concurrent.ExecutionException e) {
                // A broker is down (a broker crash): not quiet, ask again.
                caughtUp = false;
            }
            long now = System.currentTimeMillis();
            if (caughtUp && ends.equals(lastEnds)) {
                if (caughtUpSince < 0) {
                    caughtUpSince = now;
                }
                if (now - caughtUpSince >= quietMs && now >= notBefore) {
                    return "quiescent";
                }
            } else {
                caughtUpSince = -1;
            }
            lastEnds = ends;
            Thread.sleep(50);
        }
        return "time-bound";
    }

    private static Map<TopicPartition, Long> endOffsets(Admin admin, String prefix, List<String> topics)
            throws Exception {
        Map<TopicPartition, OffsetSpec> ask = new HashMap<>();
        for (TopicDescription d : admin.describeTopics(names(prefix, topics.toArray(String[]::new)))
                .allTopicNames().get().values()) {
            for (TopicPartitionInfo p : d.partitions()) {
                ask.put(new TopicPartition(d.name(), p.partition()), OffsetSpec.latest());
            }
        }
        Map<TopicPartition, Long> out = new HashMap<>();
        admin.listOffsets(ask).all().get().forEach((tp, info) -> out.put(tp, info.offset()));
        return out;
    }

    /**
     * Every topic of the run (the workload's and the applications' changelogs), read to its
     * end with {@code read_uncommitted}; each record says whether a {@code read_committed}
     * consumer saw it too. Offsets no record holds (control records, compaction) are the
     * gaps between them up to {@code end_offsets}.
     */
    private static List<TopicPartition> record(Admin admin, String bootstrap, String prefix, ObjectNode history)
            throws Exception {
        List<TopicPartition> all = new ArrayList<>();
        for (TopicDescription d : admin.describeTopics(runTopics(admin, prefix)).allTopicNames().get().values()) {
            for (TopicPartitionInfo p : d.partitions()) {
                all.add(new TopicPartition(d.name(), p.partition()));
            }
        }
        Map<TopicPartition, Long> ends = new HashMap<>();
        Map<TopicPartition, List<ConsumerRecord<String, String>>> uncommitted = readAll(bootstrap, all,
                "read_uncommitted", ends);
        Map<TopicPartition, List<ConsumerRecord<String, String>>> committed = readAll(bootstrap, all,
                "read_committed", new HashMap<>());
        ArrayNode records = history.putArray("records");
        ObjectNode endOffsets = history.putObject("end_offsets");
        for (TopicPartition tp : all) {
            String topic = tp.topic().substring(prefix.length());
            ObjectNode perTopic = endOffsets.has(topic) ? (ObjectNode) endOffsets.get(topic) : endOffsets.putObject(topic);
            perTopic.put(Integer.toString(tp.partition()), ends.getOrDefault(tp, 0L));
            Set<Long> seen = new TreeSet<>();
            committed.getOrDefault(tp, List.of()).forEach(r -> seen.add(r.offset()));
            for (ConsumerRecord<String, String> r : uncommitted.getOrDefault(tp, List.of())) {
                ObjectNode o = records.addObject();
                o.put("topic", topic);
                o.put("partition", r.partition());
                o.put("offset", r.offset());
                o.put("key", r.key());
                o.put("value", r.value());
                o.put("timestamp", r.timestamp());
                o.put("timestamp_type", r.timestampType().name);
                o.put("committed", seen.contains(r.offset()));
            }
        }
        return all;
    }

    private static List<String> runTopics(Admin admin, String prefix) throws Exception {
        List<String> out = new ArrayList<>();
        for (String t : new TreeSet<>(admin.listTopics().names().get())) {
            if (t.startsWith(prefix)) {
                out.add(t);
            }
        }
        return out;
    }

    private static Map<TopicPartition, List<ConsumerRecord<String, String>>> readAll(String bootstrap,
            List<TopicPartition> all, String isolation, Map<TopicPartition, Long> endsOut) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        Map<TopicPartition, List<ConsumerRecord<String, String>>> out = new HashMap<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(all);
            c.seekToBeginning(all);
            Map<TopicPartition, Long> ends = c.endOffsets(all);
            endsOut.putAll(ends);
            long deadline = System.currentTimeMillis() + 30_000;
            while (!done(c, ends)) {
                if (System.currentTimeMillis() > deadline) {
                    Args.fail("reading the run's topics back (" + isolation + ") did not reach their end in 30 s");
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                    out.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r);
                }
            }
        }
        return out;
    }

    private static boolean done(KafkaConsumer<String, String> c, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> e : ends.entrySet()) {
            if (c.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    private static void recordGroups(Admin admin, String prefix, Set<String> apps, ObjectNode out) throws Exception {
        for (String app : apps) {
            ObjectNode g = out.putObject(app);
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(prefix + app).partitionsToOffsetAndMetadata().get();
            Map<String, Long> sorted = new TreeMap<>();
            offsets.forEach((tp, o) -> sorted.put(tp.topic().substring(prefix.length()) + "-" + tp.partition(),
                    o.offset()));
            sorted.forEach(g::put);
        }
    }
}
