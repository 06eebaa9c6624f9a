//! The seeded random number generator behind weight initialisation and dropout.
//!
//! candle cannot seed its CPU generator, so Hone draws its own numbers: the same seed gives the
//! same run on the CPU. Training derives a fresh generator per optimizer step from the seed and
//! the step number, so a resumed run draws the same dropout masks as an uninterrupted one.

use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A seeded, splittable generator (xoshiro256++).
#[derive(Debug, Clone)]
pub struct HoneRng {
    inner: Xoshiro256PlusPlus,
}

impl HoneRng {
    /// A generator for `seed`; `stream` separates independent uses of one seed.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mixed = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        HoneRng {
            inner: Xoshiro256PlusPlus::seed_from_u64(mixed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform f32 in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.inner.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// `n` draws from N(0, std²) (Box–Muller).
    pub fn normal(&mut self, n: usize, std: f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = 1.0 - self.uniform() as f64; // (0, 1]
            let u2 = self.uniform() as f64;
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * u2;
            out.push((r * theta.cos()) as f32 * std);
            out.push((r * theta.sin()) as f32 * std);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_streams_differ() {
        assert_eq!(
            HoneRng::new(1, 0).normal(5, 1.0),
            HoneRng::new(1, 0).normal(5, 1.0)
        );
        assert_ne!(
            HoneRng::new(1, 0).normal(5, 1.0),
            HoneRng::new(1, 1).normal(5, 1.0)
        );
    }

    #[test]
    fn normal_has_the_asked_spread() {
        let xs = HoneRng::new(3, 0).normal(100_000, 0.02);
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 5e-4, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 5e-4, "{}", var.sqrt());
    }
}
