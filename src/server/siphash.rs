//! SipHash (Aumasson and Bernstein, 2012) with a key drawn once per process: what an agent
//! session compares of a conversation (`transcript.rs`). Keyed, a digest cannot be aimed at
//! another without the key, and sessions never outlive the process, so the key need not
//! either; it hashes a long history several times faster than SHA-256. SipHash-1-3 (the
//! rounds std's own hash maps use); tests check the rounds against std's SipHash-2-4.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

/// SipHash-C-D over bytes fed in any pieces (the digest of the whole either way).
#[derive(Debug, Clone)]
pub struct SipHasher<const C: usize, const D: usize> {
    v: [u64; 4],
    /// Bytes not yet compressed (fewer than eight), little-endian.
    tail: u64,
    filled: usize,
    length: u64,
}

/// The session digests' hasher.
pub type Keyed = SipHasher<1, 3>;

impl Keyed {
    /// A hasher with this process's key.
    pub fn keyed() -> Self {
        static KEY: OnceLock<(u64, u64)> = OnceLock::new();
        let &(k0, k1) = KEY.get_or_init(|| {
            let random = RandomState::new();
            (random.hash_one(0u8), random.hash_one(1u8))
        });
        SipHasher::new(k0, k1)
    }
}

impl<const C: usize, const D: usize> SipHasher<C, D> {
    pub fn new(k0: u64, k1: u64) -> Self {
        let v = [
            k0 ^ 0x736f6d6570736575,
            k1 ^ 0x646f72616e646f6d,
            k0 ^ 0x6c7967656e657261,
            k1 ^ 0x7465646279746573,
        ];
        SipHasher { v, tail: 0, filled: 0, length: 0 }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        while self.filled > 0 && !data.is_empty() {
            self.tail |= u64::from(data[0]) << (8 * self.filled);
            self.filled += 1;
            data = &data[1..];
            if self.filled == 8 {
                self.compress(self.tail);
                (self.tail, self.filled) = (0, 0);
            }
        }
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            self.compress(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        for (index, byte) in words.remainder().iter().enumerate() {
            self.tail |= u64::from(*byte) << (8 * index);
        }
        self.filled += words.remainder().len();
    }

    pub fn finish(mut self) -> u64 {
        let last = (self.length << 56) | self.tail;
        self.compress(last);
        self.v[2] ^= 0xff;
        for _ in 0..D {
            self.round();
        }
        self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3]
    }

    fn compress(&mut self, word: u64) {
        self.v[3] ^= word;
        for _ in 0..C {
            self.round();
        }
        self.v[0] ^= word;
    }

    fn round(&mut self) {
        let [mut v0, mut v1, mut v2, mut v3] = self.v;
        v0 = v0.wrapping_add(v1);
        v1 = v1.rotate_left(13) ^ v0;
        v0 = v0.rotate_left(32);
        v2 = v2.wrapping_add(v3);
        v3 = v3.rotate_left(16) ^ v2;
        v0 = v0.wrapping_add(v3);
        v3 = v3.rotate_left(21) ^ v0;
        v2 = v2.wrapping_add(v1);
        v1 = v1.rotate_left(17) ^ v2;
        v2 = v2.rotate_left(32);
        self.v = [v0, v1, v2, v3];
    }
}

/// For `serde_json::to_writer`: canonical JSON hashed as it is written.
impl<const C: usize, const D: usize> std::io::Write for SipHasher<C, D> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type SipHash24 = SipHasher<2, 4>;

    fn one_shot(k0: u64, k1: u64, data: &[u8]) -> u64 {
        let mut hasher = SipHash24::new(k0, k1);
        hasher.update(data);
        hasher.finish()
    }

    #[test]
    fn the_papers_example() {
        // Appendix A: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(one_shot(k0, k1, &message), 0xa129ca6149be45e5);
    }

    #[test]
    #[allow(deprecated)]
    fn rounds_agree_with_std_at_every_length_and_split() {
        use std::hash::Hasher;
        let data: Vec<u8> = (0..40u32).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..=data.len() {
            let mut std_hasher = std::hash::SipHasher::new_with_keys(7, 9);
            std_hasher.write(&data[..len]);
            let expected = std_hasher.finish();
            for split in 0..=len {
                let mut hasher = SipHash24::new(7, 9);
                hasher.update(&data[..split]);
                hasher.update(&data[split..len]);
                assert_eq!(hasher.finish(), expected, "length {len} split at {split}");
            }
        }
    }

    #[test]
    fn one_process_one_key() {
        let digest = |data: &[u8]| {
            let mut hasher = Keyed::keyed();
            hasher.update(data);
            hasher.finish()
        };
        assert_eq!(digest(b"turn"), digest(b"turn"));
        assert_ne!(digest(b"turn"), digest(b"turn "));
    }
}
