package oversell.live;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What src/live/ passes on a command line: key=value words and the twins' group lists. */
class ArgumentsTest {
    @Test
    void aValueMayHoldAnEqualsSignAndAMissingOneFallsBack() {
        Args a = new Args(new String[] {"bootstrap=127.0.0.1:9092", "extra=not-before-ms=3030", "brokers=3"});
        assertEquals("127.0.0.1:9092", a.get("bootstrap"));
        assertEquals("not-before-ms=3030", a.get("extra"));
        assertEquals(3, a.integer("brokers"));
        assertEquals("localhost:1", a.get("application-server", "localhost:1"));
    }

    /** The groups the driver waits on, as src/live/run.rs `twin` writes them. */
    @Test
    void theDriverReadsEachTwinsGroupsAndTheirInputs() {
        Map<String, List<String>> rekeyed = Driver.groups("inventory-service:orders,warehouse-inventory,"
                + "inventory-service-orders-by-product-repartition");
        assertEquals(List.of("orders", "warehouse-inventory", "inventory-service-orders-by-product-repartition"),
                rekeyed.get("inventory-service"));
        Map<String, List<String>> saga = Driver.groups("order-service:orders,order-replies;product-service:product-commands");
        assertEquals(List.of("order-service", "product-service"), List.copyOf(saga.keySet()));
        assertEquals(List.of("orders", "order-replies"), saga.get("order-service"));
        assertEquals(List.of("product-commands"), saga.get("product-service"));
    }

    /** The naive twin's stock check reads a missing store value as no stock at all. */
    @Test
    void aStockValueThatIsMissingOrNotANumberIsZero() {
        assertEquals(0, NaiveService.parse(null));
        assertEquals(0, NaiveService.parse("two"));
        assertEquals(2, NaiveService.parse("2"));
        assertEquals(-1, NaiveService.parse("-1"));
    }
}
