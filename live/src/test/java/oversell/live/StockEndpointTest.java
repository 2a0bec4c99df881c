package oversell.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The naive twin's remote stock read: what one instance asks another for a product. */
class StockEndpointTest {
    /** Partition 0 is active here with product1 = 2; partition 1 is not this instance's. */
    private static Optional<StockEndpoint.Answer> local(int partition, String key) {
        if (partition != 0) {
            return Optional.empty();
        }
        return Optional.of(StockEndpoint.Answer.of(Map.of("product1", "2", "a b/c", "7").get(key)));
    }

    @Test
    void aHostedKeyIsReadAMissingOneIsNoValueAndAnotherPartitionIsUnavailable() throws Exception {
        try (StockEndpoint e = new StockEndpoint(StockEndpointTest::local)) {
            String host = e.hostPort();
            assertTrue(host.startsWith("localhost:"));
            StockEndpoint.Answer found = StockEndpoint.query(host, 0, "product1");
            assertTrue(found.available());
            assertEquals("2", found.value());
            StockEndpoint.Answer none = StockEndpoint.query(host, 0, "product9");
            assertTrue(none.available());
            assertNull(none.value());
            assertFalse(StockEndpoint.query(host, 1, "product1").available());
            assertEquals("7", StockEndpoint.query(host, 0, "a b/c").value());
        }
    }

    @Test
    void aHostThatDoesNotAnswerIsUnavailable() throws Exception {
        String gone;
        try (StockEndpoint e = new StockEndpoint(StockEndpointTest::local)) {
            gone = e.hostPort();
        }
        assertFalse(StockEndpoint.query(gone, 0, "product1").available());
    }
}
