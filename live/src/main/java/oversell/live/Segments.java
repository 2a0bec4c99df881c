package oversell.live;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.record.internal.ControlRecordType;
import org.apache.kafka.common.record.internal.FileLogInputStream.FileChannelRecordBatch;
import org.apache.kafka.common.record.internal.FileRecords;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.record.TimestampType;

/**
 * The brokers' logs as they are on disk: every entry of every partition of the run, read
 * from the segment files with Kafka's own {@code FileRecords} (what
 * {@code kafka.tools.DumpLogSegments} does), with what a consumer never shows: each
 * batch's producer id, epoch and base sequence, whether it is transactional, and the
 * control records (COMMIT / ABORT markers, {@code ControlRecordType.parse}). Read from the
 * first broker's log directory that holds the partition (replicas are copies).
 */
final class Segments {
    private Segments() {}

    static void record(String logDirs, String prefix, List<TopicPartition> all, ArrayNode out) throws Exception {
        if (logDirs.isEmpty()) {
            return;
        }
        for (TopicPartition tp : all) {
            Path dir = null;
            for (String d : logDirs.split(",")) {
                Path p = Path.of(d).resolve(tp.topic() + "-" + tp.partition());
                if (Files.isDirectory(p)) {
                    dir = p;
                    break;
                }
            }
            if (dir == null) {
                Args.fail("no log directory holds " + tp);
            }
            for (Path segment : segments(dir)) {
                read(segment.toFile(), tp.topic().substring(prefix.length()), tp.partition(), out);
            }
        }
    }

    private static List<Path> segments(Path dir) throws Exception {
        List<Path> out = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            files.filter(f -> f.getFileName().toString().endsWith(".log")).sorted().forEach(out::add);
        }
        return out;
    }

    private static void read(File file, String topic, int partition, ArrayNode out) throws Exception {
        try (FileRecords records = FileRecords.open(file, false)) {
            for (FileChannelRecordBatch batch : records.batches()) {
                boolean appendTime = batch.timestampType() == TimestampType.LOG_APPEND_TIME;
                for (Record r : batch) {
                    ObjectNode e = out.addObject();
                    e.put("topic", topic);
                    e.put("partition", partition);
                    e.put("offset", r.offset());
                    e.put("timestamp", appendTime ? batch.maxTimestamp() : r.timestamp());
                    if (batch.producerId() != RecordBatch.NO_PRODUCER_ID) {
                        e.put("producer_id", batch.producerId());
                        e.put("epoch", (int) batch.producerEpoch());
                    }
                    if (batch.baseSequence() != RecordBatch.NO_SEQUENCE) {
                        e.put("sequence", batch.baseSequence() + (int) (r.offset() - batch.baseOffset()));
                    }
                    e.put("transactional", batch.isTransactional());
                    if (batch.isControlBatch()) {
                        ControlRecordType type = ControlRecordType.parse(r.key());
                        e.put("control", type.name());
                    }
                }
            }
        }
    }
}
