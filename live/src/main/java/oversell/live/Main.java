package oversell.live;

/**
 * The live twins' one entry point: {@code broker}, {@code naive} or {@code driver}, each
 * started by oversell ({@code src/live/}) as its own JVM. Arguments are {@code key=value}
 * words. Every process reads its standard input: a line is a command, and the end of the
 * input (oversell exited, however it ended) stops the process at once, so that no JVM
 * outlives the run that started it.
 */
public final class Main {
    private Main() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            System.err.println("usage: oversell.live.Main broker|naive|rekeyed|saga|driver key=value...");
            System.exit(2);
        }
        Args args = new Args(java.util.Arrays.copyOfRange(argv, 1, argv.length));
        Commands.start();
        try {
            switch (argv[0]) {
                case "broker" -> BrokerMain.run(args);
                case "naive" -> NaiveService.run(args);
                case "rekeyed" -> RekeyedService.run(args);
                case "saga" -> SagaService.run(args);
                case "driver" -> Driver.run(args);
                default -> Args.fail("unknown command " + argv[0] + "; known: broker, naive, rekeyed, saga, driver");
            }
        } catch (Throwable e) {
            // Kafka's own threads are not daemons: a failed main thread must end the JVM.
            System.err.println("oversell live: " + argv[0] + " failed:");
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
    }
}
