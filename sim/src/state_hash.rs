//! A 64-bit hash of a state, for the exhaustive search's state matching: fed through
//! `fmt::Write` (a written form, no allocation for it) or through `Hasher` (a value's
//! `Hash`, as a processor's [`crate::Processor::fingerprint`] feeds it). Deterministic:
//! no random keys, the same bytes give the same digest in every run.

use std::fmt::{self, Write};
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A 64-bit hash of a written form, fed through `fmt::Write` (no allocation for the
/// written form): the bytes taken eight at a time as little-endian words, each mixed in
/// by a bijection of the state (xor, multiply by an odd constant, rotate), the length
/// and the last partial word at the end, then MurmurHash3's 64-bit finaliser. Equal
/// written forms hash equal however `fmt` splits them into pieces; the state's
/// fingerprint is written once per step of the search, so this is its inner loop.
/// Words already hashed (a component's cached digest) go in through `Hasher::write_u64`.
pub struct StateHash {
    h: u64,
    /// The bytes of the word being filled, and how many.
    word: u64,
    filled: u32,
    len: u64,
}

impl Default for StateHash {
    fn default() -> StateHash {
        StateHash::new()
    }
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl StateHash {
    pub fn new() -> StateHash {
        StateHash {
            h: 0xcbf2_9ce4_8422_2325,
            word: 0,
            filled: 0,
            len: 0,
        }
    }

    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(MIX).rotate_left(29);
    }

    /// Bytes in, eight at a time: a piece first fills the word begun by the pieces
    /// before it (`fmt` writes many short pieces), then whole words, then begins the next.
    fn write_bytes(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.filled != 0 {
            let take = (8 - self.filled as usize).min(bytes.len());
            self.word |= load(&bytes[..take]) << (8 * self.filled);
            self.filled += take as u32;
            bytes = &bytes[take..];
            if self.filled < 8 {
                return;
            }
            self.mix(self.word);
            (self.word, self.filled) = (0, 0);
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(load(w));
        }
        let rest = words.remainder();
        (self.word, self.filled) = (load(rest), rest.len() as u32);
    }

    /// The hash of everything written.
    pub fn finish(&self) -> u64 {
        let mut h = (self.h ^ self.word).wrapping_mul(MIX).rotate_left(29) ^ self.len;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Up to eight bytes as a little-endian word.
fn load(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(w)
}

impl Write for StateHash {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Hasher for StateHash {
    fn write(&mut self, bytes: &[u8]) {
        // The same path as a written form.
        self.write_bytes(bytes);
    }

    fn write_u64(&mut self, n: u64) {
        if self.filled == 0 {
            self.len += 8;
            self.mix(n);
        } else {
            self.write_bytes(&n.to_le_bytes());
        }
    }

    fn finish(&self) -> u64 {
        StateHash::finish(self)
    }
}

/// A component of the world whose digest is kept between steps, shared by copies of the
/// world until one of them changes it: any mutable access (`DerefMut`) forgets the digest
/// and, when a copy still shares the value, copies it first (`Arc::make_mut`). A step
/// that leaves the component alone neither hashes nor copies it again; one that changes
/// it cannot leave a stale digest behind. Its `Debug` is the value's.
pub(crate) struct Cached<T> {
    value: Arc<T>,
    /// The digest, 0 while unknown (a digest of 0 is taken as 1).
    digest: AtomicU64,
}

impl<T> Cached<T> {
    pub(crate) fn new(value: T) -> Cached<T> {
        Cached {
            value: Arc::new(value),
            digest: AtomicU64::new(0),
        }
    }

    /// The digest `hash` gives the value, computed once until the value is next borrowed
    /// mutably.
    pub(crate) fn digest(&self, hash: impl FnOnce(&T) -> u64) -> u64 {
        let known = self.digest.load(Ordering::Relaxed);
        if known != 0 {
            debug_assert_eq!(
                known,
                hash(&self.value).max(1),
                "a cached digest is current"
            );
            return known;
        }
        let d = hash(&self.value).max(1);
        self.digest.store(d, Ordering::Relaxed);
        d
    }
}

impl<T: Clone> Cached<T> {
    pub(crate) fn into_inner(self) -> T {
        Arc::try_unwrap(self.value).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Cached<T> {
        Cached {
            value: Arc::clone(&self.value),
            digest: AtomicU64::new(self.digest.load(Ordering::Relaxed)),
        }
    }
}

impl<T: Default> Default for Cached<T> {
    fn default() -> Cached<T> {
        Cached::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> std::ops::Deref for Cached<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Clone> std::ops::DerefMut for Cached<T> {
    fn deref_mut(&mut self) -> &mut T {
        *self.digest.get_mut() = 0;
        Arc::make_mut(&mut self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pieces: &[&str]) -> u64 {
        let mut h = StateHash::new();
        pieces
            .iter()
            .for_each(|p| Write::write_str(&mut h, p).expect("hashing"));
        h.finish()
    }

    #[test]
    fn equal_written_forms_hash_equal_however_split() {
        let whole = of(&["Broker { logs: [1, 2, 3], producers: {} }"]);
        assert_eq!(
            whole,
            of(&["Broker { logs: [", "1, 2", ", 3], produc", "ers: {} }"])
        );
        assert_eq!(
            whole,
            of(&["B", "r", "oker { logs: [1, 2, 3], producers: {} }"])
        );
        assert_ne!(whole, of(&["Broker { logs: [1, 2, 4], producers: {} }"]));
        assert_ne!(of(&["ab"]), of(&["ab\0"]), "the length is hashed");
    }

    #[test]
    fn a_mutable_borrow_forgets_the_cached_digest_and_unshares_the_value() {
        let mut c = Cached::new(1u64);
        assert_eq!(c.digest(|v| *v), 1);
        let copy = c.clone();
        *c += 1;
        assert_eq!(c.digest(|v| *v), 2);
        assert_eq!(
            (*copy, copy.digest(|v| *v)),
            (1, 1),
            "the copy keeps its own"
        );
    }
}
