//! Kafka's default partitioner: a keyed record goes to `toPositive(murmur2(key)) % partitions`.
//!
//! This is a bit-for-bit port of `org.apache.kafka.common.utils.Utils.murmur2` and
//! `Utils.toPositive`, so a key lands on the partition real Kafka would choose (the Java
//! producer's `BuiltInPartitioner.partitionForKey`, and Kafka Streams' default
//! `StreamPartitioner`, which serialise a `String` key as its UTF-8 bytes).

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// Kafka's 32-bit murmur2 hash (`Utils.murmur2`), with Java's signed `int` result.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java works on `int` with wrapping arithmetic and `>>>` (logical shift): u32 is exact.
    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;

    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // The `switch (length % 4)` with fall-through.
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a record with key bytes `key`.
///
/// Panics if `partitions == 0` (a topic always has at least one partition).
pub fn partition_for_key_bytes(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    // to_positive's result is in 0..=i32::MAX, so the cast is lossless.
    (to_positive(murmur2(key)) as u32) % partitions
}

/// The partition Kafka's default partitioner picks for a `String` key (its UTF-8 bytes).
///
/// Panics if `partitions == 0`.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    partition_for_key_bytes(key.as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Lengths 0..=7 exercise the empty input and each fall-through branch twice; the
        // values must be stable (a regression here moves keys across partitions).
        let hashes: Vec<i32> = (0..8).map(|n| murmur2(&b"abcdefgh"[..n])).collect();
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), hashes.len(), "distinct prefixes hash apart");
        assert_eq!(murmur2(b"abc"), hashes[3]);
    }

    #[test]
    fn to_positive_clears_only_the_sign_bit() {
        assert_eq!(to_positive(0), 0);
        assert_eq!(to_positive(5), 5);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-973_932_308), -973_932_308 & 0x7fff_ffff);
    }

    #[test]
    fn partition_for_key_is_positive_hash_modulo_partitions() {
        for key in ["21", "foobar", "abc", "product-1", "product-2", ""] {
            for n in [1u32, 2, 3, 7, 12] {
                let p = partition_for_key(key, n);
                assert!(p < n);
                assert_eq!(p, (to_positive(murmur2(key.as_bytes())) as u32) % n);
            }
        }
        // "foobar": to_positive(-790332482) = 1357151166; 1357151166 % 3 = 0.
        assert_eq!(partition_for_key("foobar", 3), 1_357_151_166 % 3);
        assert_eq!(partition_for_key("abc", 10), 479_470_107 % 10);
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn zero_partitions_is_a_bug() {
        partition_for_key("k", 0);
    }
}
