package oversell.live;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One real Kafka broker in KRaft combined mode (broker and controller in one JVM), on
 * 127.0.0.1 only. Writes its {@code server.properties}, formats its log directory with
 * Kafka's own {@code kafka.tools.StorageTool format}, then runs {@code kafka.Kafka}.
 * The command {@code stop} shuts it down cleanly; the end of standard input halts it.
 */
final class BrokerMain {
    private BrokerMain() {}

    static void run(Args a) throws Exception {
        Path dir = Path.of(a.get("dir"));
        Path logs = dir.resolve("data");
        Path props = dir.resolve("server.properties");
        int replication = a.integer("replication");
        String text = String.join("\n",
                "process.roles=broker,controller",
                "node.id=" + a.get("node"),
                "controller.quorum.voters=" + a.get("voters"),
                "listeners=PLAINTEXT://127.0.0.1:" + a.get("port") + ",CONTROLLER://127.0.0.1:" + a.get("controller"),
                "advertised.listeners=PLAINTEXT://127.0.0.1:" + a.get("port"),
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "log.dirs=" + logs,
                "num.partitions=1",
                "default.replication.factor=" + replication,
                "offsets.topic.replication.factor=" + replication,
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=" + replication,
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=1",
                "share.coordinator.state.topic.replication.factor=" + replication,
                "min.insync.replicas=1",
                "auto.create.topics.enable=false",
                // A group's first rebalance at once, and the scenario's short session
                // timeouts allowed (Kafka's own minimum is 6 s).
                "group.initial.rebalance.delay.ms=0",
                "group.min.session.timeout.ms=100",
                "") ;
        Files.createDirectories(logs);
        Files.writeString(props, text, StandardCharsets.UTF_8);
        PrintStream err = System.err;
        // A broker restarted after a crash keeps its log directory: formatted once only.
        if (!Files.exists(logs.resolve("meta.properties"))) {
            int formatted = kafka.tools.StorageTool.execute(
                    new String[] {"format", "-t", a.get("cluster"), "-c", props.toString()}, err);
            if (formatted != 0) {
                Args.fail("formatting " + logs + " failed (exit " + formatted + ")");
            }
        }
        Thread stopper = new Thread(() -> {
            try {
                Commands.await("stop");
                System.exit(0); // Kafka's shutdown hook stops the broker cleanly
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "oversell-stop");
        stopper.setDaemon(true);
        stopper.start();
        kafka.Kafka.main(new String[] {props.toString()});
    }
}
