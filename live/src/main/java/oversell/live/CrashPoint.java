package oversell.live;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.TopicPartition;

/**
 * A BUGGIFY-style crash point: {@code crash-point=after-changelog-before-commit} with
 * {@code crash-marker=FILE}. Armed (the marker absent), {@link #maybeHalt} waits until the
 * broker's end offsets (read_uncommitted: the high watermark, open transactions included)
 * of the given topics' partition have passed what they were before the write, creates the
 * marker, says {@code CRASH-POINT <wall ms>} and halts the JVM (exit 86, no shutdown
 * hook, no commit, no close). Disarmed, it costs nothing.
 */
final class CrashPoint {
    private final Admin admin;
    private final String[] topics;
    private final Path marker;

    private CrashPoint(Admin admin, String[] topics, Path marker) {
        this.admin = admin;
        this.topics = topics;
        this.marker = marker;
    }

    static CrashPoint of(Args a, String... topics) {
        String point = a.get("crash-point", "");
        if (point.isEmpty()) {
            return new CrashPoint(null, topics, null);
        }
        if (!point.equals("after-changelog-before-commit")) {
            Args.fail("crash-point=" + point + ": the only crash point is after-changelog-before-commit");
        }
        Path marker = Path.of(a.get("crash-marker"));
        if (Files.exists(marker)) {
            return new CrashPoint(null, topics, null); // it fired in an earlier incarnation
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
        return new CrashPoint(Admin.create(p), topics, marker);
    }

    boolean armed() {
        return admin != null && !Files.exists(marker);
    }

    /** The topics' end offsets at {@code partition}, if armed. */
    long[] ends(int partition) {
        if (!armed()) {
            return null;
        }
        Map<TopicPartition, OffsetSpec> ask = new HashMap<>();
        for (String t : topics) {
            ask.put(new TopicPartition(t, partition), OffsetSpec.latest());
        }
        try {
            var got = admin.listOffsets(ask).all().get();
            long[] out = new long[topics.length];
            for (int i = 0; i < topics.length; i++) {
                out[i] = got.get(new TopicPartition(topics[i], partition)).offset();
            }
            return out;
        } catch (Exception e) {
            throw new IllegalStateException("crash point: listing end offsets failed", e);
        }
    }

    /** Halt once every topic's end offset has passed {@code before}. */
    void maybeHalt(int partition, long[] before) {
        if (before == null || !armed()) {
            return;
        }
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            long[] now = ends(partition);
            boolean reached = true;
            for (int i = 0; i < now.length; i++) {
                reached &= now[i] > before[i];
            }
            if (reached) {
                break;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("crash point: the writes did not reach the broker in 30 s");
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        try {
            Files.createFile(marker);
        } catch (Exception e) {
            throw new IllegalStateException("crash point: cannot create " + marker, e);
        }
        Commands.say("CRASH-POINT " + System.currentTimeMillis());
        Runtime.getRuntime().halt(86);
    }
}
