package oversell.live;

import java.util.LinkedHashMap;
import java.util.Map;

/** {@code key=value} arguments; a missing or malformed one stops the process (exit 2). */
final class Args {
    private final Map<String, String> values = new LinkedHashMap<>();

    Args(String[] words) {
        for (String w : words) {
            int eq = w.indexOf('=');
            if (eq <= 0) {
                fail("argument " + w + " is not key=value");
            }
            values.put(w.substring(0, eq), w.substring(eq + 1));
        }
    }

    String get(String key) {
        String v = values.get(key);
        if (v == null) {
            fail("missing argument " + key + "=...");
        }
        return v;
    }

    String get(String key, String fallback) {
        return values.getOrDefault(key, fallback);
    }

    /** Set (or replace) an argument: a value only known once the process runs. */
    void set(String key, String value) {
        values.put(key, value);
    }

    int integer(String key) {
        try {
            return Integer.parseInt(get(key));
        } catch (NumberFormatException e) {
            fail("argument " + key + " is not a number: " + get(key));
            return 0;
        }
    }

    static void fail(String message) {
        System.err.println("oversell live: " + message);
        System.exit(2);
    }
}
