//! Randomness and sizes for the long-running tests (crash consistency, soak): a small
//! deterministic generator, so a failing run can be replayed from its printed seed, and
//! the environment variables that size a run.

/// xorshift64*: fast, deterministic from its seed, and good enough to pick operations and
/// delays (never used for anything secret).
pub struct Rng(u64);

impl Rng {
    /// A generator that replays the same sequence for the same seed.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A generator seeded from the kernel's random source.
    pub fn from_entropy() -> Self {
        Self::seeded(random_seed())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A fresh seed from the kernel's random source.
pub fn random_seed() -> u64 {
    let hex = crate::users::random_hex(16);
    u64::from_str_radix(&hex, 16).unwrap_or(1)
}

/// The number in the environment variable `name`, or `default` when it is not set; a
/// value that is not a number stops the test with a clear message.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}
