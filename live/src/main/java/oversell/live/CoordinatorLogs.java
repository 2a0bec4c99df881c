package oversell.live;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.internals.ConsumerProtocol;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.record.internal.ControlRecordType;
import org.apache.kafka.common.record.internal.FileLogInputStream.FileChannelRecordBatch;
import org.apache.kafka.common.record.internal.FileRecords;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.coordinator.common.runtime.CoordinatorRecord;
import org.apache.kafka.coordinator.common.runtime.CoordinatorRecordSerde;
import org.apache.kafka.coordinator.group.GroupCoordinatorRecordSerde;
import org.apache.kafka.coordinator.group.generated.GroupMetadataKey;
import org.apache.kafka.coordinator.group.generated.GroupMetadataValue;
import org.apache.kafka.coordinator.group.generated.OffsetCommitKey;
import org.apache.kafka.coordinator.group.generated.OffsetCommitValue;
import org.apache.kafka.coordinator.transaction.TransactionCoordinatorRecordSerde;
import org.apache.kafka.coordinator.transaction.TransactionState;
import org.apache.kafka.coordinator.transaction.generated.TransactionLogKey;
import org.apache.kafka.coordinator.transaction.generated.TransactionLogValue;

/**
 * The coordinators' own logs, {@code __consumer_offsets} and {@code __transaction_state},
 * read from the segment files with Kafka's {@code FileRecords} and decoded with Kafka's own
 * serdes ({@code GroupCoordinatorRecordSerde}, {@code TransactionCoordinatorRecordSerde}:
 * what {@code kafka.tools.DumpLogSegments --offsets-decoder / --transaction-log-decoder}
 * use). Only the run's groups and transactional ids are kept (their names start with the
 * run's prefix, written without it), with the control records (COMMIT / ABORT) of the
 * transactional offset commits kept. Each entry: the log, partition, offset, batch time,
 * the batch's producer id, epoch and transactional flag, and the decoded record:
 * <ul>
 * <li>{@code offset-commit}: group, topic, partition, offset (absent: a tombstone),
 *     commit time, leader epoch. An {@code OffsetCommitValue} carries no generation and
 *     no member: the coordinator checks them ({@code OffsetMetadataManager
 *     .validateOffsetCommit}) and does not write them, under the classic protocol and
 *     KIP-848's consumer protocol alike;</li>
 * <li>{@code group-metadata} (classic protocol, {@code GroupMetadataValue}, written when a
 *     generation's assignment is stored): generation, protocol, leader, and each member with
 *     its client id and assigned partitions ({@code ConsumerProtocol.deserializeAssignment});</li>
 * <li>{@code transaction} ({@code TransactionLogValue}): transactional id, producer id and
 *     epoch, the state ({@code TransactionState}), its partitions, the update time;</li>
 * <li>{@code other}: any other group record type (KIP-848 consumer or streams groups),
 *     by name, not decoded further.</li>
 * </ul>
 */
final class CoordinatorLogs {
    private CoordinatorLogs() {}

    static final String OFFSETS = "__consumer_offsets";
    static final String TXNS = "__transaction_state";

    static void record(String logDirs, String prefix, ArrayNode out) throws Exception {
        if (logDirs.isEmpty()) {
            return;
        }
        read(logDirs, OFFSETS, new GroupCoordinatorRecordSerde(), prefix, out);
        read(logDirs, TXNS, new TransactionCoordinatorRecordSerde(), prefix, out);
    }

    /** Every partition of {@code topic}, each from the first log directory that holds it. */
    private static void read(String logDirs, String topic, CoordinatorRecordSerde serde, String prefix, ArrayNode out)
            throws Exception {
        Set<Integer> done = new HashSet<>();
        for (String d : logDirs.split(",")) {
            List<Path> dirs = new ArrayList<>();
            try (Stream<Path> files = Files.list(Path.of(d))) {
                files.filter(f -> f.getFileName().toString().startsWith(topic + "-")).sorted().forEach(dirs::add);
            } catch (java.nio.file.NoSuchFileException e) {
                continue;
            }
            for (Path dir : dirs) {
                int partition = Integer.parseInt(dir.getFileName().toString().substring(topic.length() + 1));
                if (!done.add(partition)) {
                    continue;
                }
                Set<Long> open = new HashSet<>(); // producer ids with a kept transactional record
                try (Stream<Path> files = Files.list(dir)) {
                    for (Path segment : files.filter(f -> f.toString().endsWith(".log")).sorted().toList()) {
                        segment(segment.toFile(), topic, partition, serde, prefix, open, out);
                    }
                }
            }
        }
    }

    private static void segment(File file, String topic, int partition, CoordinatorRecordSerde serde,
            String prefix, Set<Long> open, ArrayNode out) throws Exception {
        try (FileRecords records = FileRecords.open(file, false)) {
            for (FileChannelRecordBatch batch : records.batches()) {
                for (Record r : batch) {
                    ObjectNode e = Events.JSON.createObjectNode();
                    if (batch.isControlBatch()) {
                        if (!open.remove(batch.producerId())) {
                            continue;
                        }
                        e.put("control", ControlRecordType.parse(r.key()).name());
                    } else {
                        ObjectNode decoded = decode(serde, r, prefix);
                        if (decoded == null) {
                            continue;
                        }
                        if (batch.isTransactional()) {
                            open.add(batch.producerId());
                        }
                        e.set("record", decoded);
                    }
                    e.put("log", topic);
                    e.put("partition", partition);
                    e.put("offset", r.offset());
                    e.put("timestamp", r.timestamp());
                    if (batch.producerId() != RecordBatch.NO_PRODUCER_ID) {
                        e.put("producer_id", batch.producerId());
                        e.put("epoch", (int) batch.producerEpoch());
                    }
                    e.put("transactional", batch.isTransactional());
                    out.add(e);
                }
            }
        }
    }

    /** The record, decoded; {@code null} when it is not of the run (another prefix). */
    private static ObjectNode decode(CoordinatorRecordSerde serde, Record r, String prefix) {
        ByteBuffer value = r.hasValue() ? r.value() : null;
        CoordinatorRecord c = serde.deserialize(r.key(), value);
        ApiMessage key = c.key();
        ApiMessage v = c.value() == null ? null : c.value().message();
        ObjectNode o = Events.JSON.createObjectNode();
        if (key instanceof OffsetCommitKey k) {
            if (!k.group().startsWith(prefix)) {
                return null;
            }
            o.put("type", "offset-commit");
            o.put("group", k.group().substring(prefix.length()));
            o.put("topic", unprefixed(k.topic(), prefix));
            o.put("partition", k.partition());
            if (v instanceof OffsetCommitValue ov) {
                o.put("offset", ov.offset());
                o.put("commit_timestamp", ov.commitTimestamp());
                o.put("leader_epoch", ov.leaderEpoch());
            }
        } else if (key instanceof GroupMetadataKey k) {
            if (!k.group().startsWith(prefix)) {
                return null;
            }
            o.put("type", "group-metadata");
            o.put("group", k.group().substring(prefix.length()));
            if (v instanceof GroupMetadataValue gv) {
                groupMetadata(gv, prefix, o);
            }
        } else if (key instanceof TransactionLogKey k) {
            if (!k.transactionalId().startsWith(prefix)) {
                return null;
            }
            o.put("type", "transaction");
            o.put("transactional_id", k.transactionalId().substring(prefix.length()));
            if (v instanceof TransactionLogValue tv) {
                transaction(tv, prefix, o);
            }
        } else {
            // KIP-848 consumer groups, streams groups, share groups: named, not decoded.
            String text = key.toString();
            if (!text.contains(prefix)) {
                return null;
            }
            o.put("type", "other");
            o.put("name", key.getClass().getSimpleName());
        }
        return o;
    }

    private static void groupMetadata(GroupMetadataValue gv, String prefix, ObjectNode o) {
        o.put("generation", gv.generation());
        o.put("protocol_type", gv.protocolType());
        o.put("protocol", gv.protocol());
        o.put("leader", gv.leader());
        ArrayNode members = o.putArray("members");
        for (GroupMetadataValue.MemberMetadata m : gv.members()) {
            ObjectNode mo = members.addObject();
            mo.put("member_id", m.memberId());
            mo.put("client_id", m.clientId());
            ArrayNode tps = mo.putArray("assignment");
            if ("consumer".equals(gv.protocolType()) && m.assignment().length > 0) {
                for (TopicPartition tp : ConsumerProtocol.deserializeAssignment(ByteBuffer.wrap(m.assignment()))
                        .partitions()) {
                    tps.addObject().put("topic", unprefixed(tp.topic(), prefix)).put("partition", tp.partition());
                }
            }
        }
    }

    private static void transaction(TransactionLogValue tv, String prefix, ObjectNode o) {
        o.put("producer_id", tv.producerId());
        o.put("epoch", (int) tv.producerEpoch());
        o.put("state", TransactionState.fromId(tv.transactionStatus()).stateName());
        o.put("last_update", tv.transactionLastUpdateTimestampMs());
        o.put("timeout_ms", tv.transactionTimeoutMs());
        ArrayNode parts = o.putArray("partitions");
        if (tv.transactionPartitions() != null) {
            for (TransactionLogValue.PartitionsSchema p : tv.transactionPartitions()) {
                for (int id : p.partitionIds()) {
                    parts.addObject().put("topic", unprefixed(p.topic(), prefix)).put("partition", id);
                }
            }
        }
    }

    private static String unprefixed(String topic, String prefix) {
        return topic.startsWith(prefix) ? topic.substring(prefix.length()) : topic;
    }
}
