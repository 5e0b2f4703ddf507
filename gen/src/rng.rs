//! NumPy's `default_rng(int)` stream, bit for bit: `SeedSequence` followed by `PCG64`.
//!
//! The reference generators (`gen_ckpt.py`, `gen_image.py`) take only the raw 64-bit words of
//! `np.random.default_rng(seed).bit_generator.random_raw`, precisely because NumPy documents
//! these two algorithms as stable across versions while its distributions are not. Reproducing
//! exactly those two algorithms is therefore all that is needed for byte-identical checkpoints
//! and images without Python.
//!
//! `SeedSequence` turns the (arbitrary size, non-negative) integer seed into 32-bit words, mixes
//! them into a pool of four words with multiply/xorshift hashes, and draws the PCG64 state from
//! the pool. `PCG64` is the 128-bit LCG with the XSL-RR output permutation. `advance` (the
//! classic O(log n) LCG jump) lets one tensor's stream be filled by several threads with the
//! same result as a sequential fill.

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

/// The entropy pool of NumPy's `SeedSequence(entropy)` (no spawn key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

impl SeedSequence {
    /// `SeedSequence(entropy)` for a non-negative integer seed up to 128 bits.
    pub fn new(entropy: u128) -> Self {
        // The integer is split into little-endian 32-bit words; zero is one word, not none.
        let mut words = Vec::with_capacity(4);
        let mut e = entropy;
        loop {
            words.push(e as u32);
            e >>= 32;
            if e == 0 {
                break;
            }
        }
        Self::from_words(&words)
    }

    /// `SeedSequence` from entropy already split into 32-bit words (least significant first).
    pub fn from_words(entropy: &[u32]) -> Self {
        let mut hash_const = INIT_A;
        let mut hashmix = |value: u32| -> u32 {
            let mut v = value ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_A);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> XSHIFT)
        };
        let mix = |x: u32, y: u32| -> u32 {
            let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
            r ^ (r >> XSHIFT)
        };
        let mut pool = [0u32; POOL_SIZE];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0));
        }
        for src in 0..POOL_SIZE {
            for dst in 0..POOL_SIZE {
                if src != dst {
                    let h = hashmix(pool[src]);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word);
                *slot = mix(*slot, h);
            }
        }
        SeedSequence { pool }
    }

    /// `generate_state(n, np.uint32)`.
    pub fn generate_state_u32(&self, n: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n, np.uint64)`: twice as many 32-bit words, paired little-endian.
    pub fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        self.generate_state_u32(2 * n).chunks_exact(2).map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32)).collect()
    }
}

const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341u128;

/// NumPy's `PCG64` bit generator (128-bit LCG, XSL-RR 64-bit output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

impl Pcg64 {
    /// `np.random.default_rng(seed).bit_generator` for a non-negative integer seed.
    pub fn from_seed(seed: u128) -> Self {
        Self::from_seed_sequence(&SeedSequence::new(seed))
    }

    /// `PCG64(seed_sequence)`: four 64-bit words; (w0:w1) is the initial state, (w2:w3) the stream.
    pub fn from_seed_sequence(ss: &SeedSequence) -> Self {
        let w = ss.generate_state_u64(4);
        let initstate = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let initseq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        let mut rng = Pcg64 { state: 0, inc: (initseq << 1) | 1 };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    #[inline(always)]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next raw 64-bit word (`random_raw`).
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let x = ((s >> 64) as u64) ^ (s as u64);
        x.rotate_right((s >> 122) as u32)
    }

    /// Skip `delta` outputs, as if `next_u64` had been called `delta` times.
    pub fn advance(&mut self, delta: u128) {
        let (mut acc_mult, mut acc_plus) = (1u128, 0u128);
        let (mut cur_mult, mut cur_plus) = (PCG_MULT, self.inc);
        let mut d = delta;
        while d > 0 {
            if d & 1 == 1 {
                acc_mult = acc_mult.wrapping_mul(cur_mult);
                acc_plus = acc_plus.wrapping_mul(cur_mult).wrapping_add(cur_plus);
            }
            cur_plus = cur_mult.wrapping_add(1).wrapping_mul(cur_plus);
            cur_mult = cur_mult.wrapping_mul(cur_mult);
            d >>= 1;
        }
        self.state = acc_mult.wrapping_mul(self.state).wrapping_add(acc_plus);
    }

    /// `random_raw(n)`.
    pub fn random_raw(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next_u64()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by NumPy 2.4.6:
    //   r = np.random.default_rng(seed).bit_generator.random_raw(1003); r[0], r[1], r[2], r[1000], r[1002]
    const CASES: &[(u128, [u64; 5])] = &[
        (0, [0xa30febcfd9c2825f, 0x4510bdf882d9d721, 0x0a7d3da94ecde8b8, 0x0354788bbdffa81e, 0x7f09cd34c6473ad7]),
        (1, [0x8306bdf37922e4ff, 0xf35196bbc152a866, 0x24e7a4f608ec18cd, 0x8ad5e8dba0e5f5d5, 0xb46c9f2ba34bce69]),
        (12, [0x4036081c9cd9cf38, 0xf25e669ef91596a8, 0x30774cfc107dc072, 0xbd3ddca2687ec868, 0xeb44316e87467519]),
        (1 << 32, [0xe3c5ebe285ac1625, 0x8ea09968fe31dbcc, 0xcd084ff84d8de9be, 0x3709fffcf65a9b05, 0x53730bf39919faa9]),
        // tensor_seed(104, "language_model.model.embed_tokens.weight")
        (11947834262877212401, [0x71c125a6f5ef1952, 0xe61ed76facfa7396, 0x4b0c54293fb1e413, 0xa9d93d8a7e9f565a, 0x0a2f41021f93baa2]),
        (u64::MAX as u128, [0xae163a7a8c47568f, 0xd86659f5f3382359, 0x01e52b195bc2d24a, 0x32e9ecb0cc5c17cf, 0xa50e6d726c6467ae]),
    ];

    #[test]
    fn pcg64_matches_numpy() {
        for &(seed, want) in CASES {
            let raw = Pcg64::from_seed(seed).random_raw(1003);
            assert_eq!([raw[0], raw[1], raw[2], raw[1000], raw[1002]], want, "seed {seed}");
        }
    }

    #[test]
    fn advance_matches_sequential() {
        for &(seed, want) in CASES {
            let mut r = Pcg64::from_seed(seed);
            r.advance(1000);
            assert_eq!(r.next_u64(), want[3]);
            r.advance(1);
            assert_eq!(r.next_u64(), want[4]);
        }
        let mut a = Pcg64::from_seed(5);
        let mut b = a.clone();
        for _ in 0..123_457 {
            a.next_u64();
        }
        b.advance(123_457);
        assert_eq!(a, b);
    }

    #[test]
    fn seed_sequence_matches_numpy() {
        // np.random.SeedSequence(0).generate_state(4, np.uint32)
        assert_eq!(SeedSequence::new(0).generate_state_u32(4), [0xb0f478be, 0xdb2cd7e7, 0x2c71ba49, 0xabf4641a]);
        // np.random.SeedSequence(5599419438272790651).generate_state(4, np.uint64)
        // (= tensor_seed(104, "mlp1.0.weight"))
        assert_eq!(
            SeedSequence::new(5599419438272790651).generate_state_u64(4),
            [0x322b5a8acb3750e4, 0x5f77b75c07ed02a7, 0x4e5467757de4d197, 0x2f6a6c61d991782b]
        );
    }
}
