package oversell.live;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.streams.KafkaClientSupplier;
import org.apache.kafka.streams.processor.internals.DefaultKafkaClientSupplier;

/**
 * Kafka Streams' clients as {@code DefaultKafkaClientSupplier} makes them, except that the
 * main consumer (the stream thread's, the one whose records are processed) logs what each
 * {@code poll} returned: per partition, the first offset, the number of records, the
 * position after it, and the consumer's {@code isolation.level} as Kafka Streams configured
 * it ({@code StreamsConfig.getMainConsumerConfigs}: {@code read_committed} under
 * {@code exactly_once_v2}). A {@code read_committed} consumer never returns a record of an
 * aborted transaction ({@code FetchCollector}/{@code CompletedFetch} skip the aborted
 * transactions the fetch response lists), so {@code oversell} checks what was processed
 * against the markers on disk.
 */
final class RecordingClients implements KafkaClientSupplier {
    private final DefaultKafkaClientSupplier inner = new DefaultKafkaClientSupplier();
    private final Events events;
    private final String client;

    RecordingClients(Events events, String client) {
        this.events = events;
        this.client = client;
    }

    @Override
    public Admin getAdmin(Map<String, Object> config) {
        return inner.getAdmin(config);
    }

    @Override
    public Producer<byte[], byte[]> getProducer(Map<String, Object> config) {
        return inner.getProducer(config);
    }

    @Override
    public Consumer<byte[], byte[]> getConsumer(Map<String, Object> config) {
        Object isolation = config.getOrDefault(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        return new Recording(config, events, client, isolation.toString());
    }

    @Override
    public Consumer<byte[], byte[]> getRestoreConsumer(Map<String, Object> config) {
        return inner.getRestoreConsumer(config);
    }

    @Override
    public Consumer<byte[], byte[]> getGlobalConsumer(Map<String, Object> config) {
        return inner.getGlobalConsumer(config);
    }

    /** A {@code KafkaConsumer} that logs what each poll returned. */
    private static final class Recording extends KafkaConsumer<byte[], byte[]> {
        private final Events events;
        private final String client;
        private final String isolation;

        Recording(Map<String, Object> config, Events events, String client, String isolation) {
            super(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
            this.events = events;
            this.client = client;
            this.isolation = isolation;
        }

        @Override
        public ConsumerRecords<byte[], byte[]> poll(Duration timeout) {
            ConsumerRecords<byte[], byte[]> out = super.poll(timeout);
            for (TopicPartition tp : out.partitions()) {
                List<ConsumerRecord<byte[], byte[]>> rs = out.records(tp);
                long next = rs.get(rs.size() - 1).offset() + 1;
                events.fetch(client, tp.topic(), tp.partition(), rs.get(0).offset(), rs.size(), next, isolation);
            }
            return out;
        }
    }
}
