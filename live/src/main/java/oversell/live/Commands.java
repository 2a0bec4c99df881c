package oversell.live;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Commands from oversell on standard input, one per line. The end of the input means
 * oversell is gone: the process halts at once (no shutdown hooks), never left orphaned.
 */
final class Commands {
    private static final BlockingQueue<String> LINES = new LinkedBlockingQueue<>();

    private Commands() {}

    static void start() {
        Thread t = new Thread(Commands::read, "oversell-stdin");
        t.setDaemon(true);
        t.start();
    }

    private static void read() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                LINES.add(line.trim());
            }
        } catch (IOException e) {
            // the same as the end of the input
        }
        Runtime.getRuntime().halt(3);
    }

    /** Wait for the command {@code word}; other lines are ignored. */
    static void await(String word) throws InterruptedException {
        while (true) {
            String line = LINES.poll(1, TimeUnit.DAYS);
            if (word.equals(line)) {
                return;
            }
        }
    }

    /** Tell oversell something (one line on standard output). */
    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
