//! Seeded random data for tests, property checks and benchmarks.
//!
//! A tiny deterministic generator, so every run (and every machine) sees the
//! same batches without a dependency: SplitMix64 (Steele, Lea & Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014) for
//! uniform bits, and the Box–Muller transform (Box & Muller, 1958) for
//! normal deviates.

use bn_impls::DType;

/// SplitMix64: 64 bits of state, one add and a mixing function per draw.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator with the given seed (any value, including 0, is fine).
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A standard normal deviate (Box–Muller; the second value is dropped for simplicity).
    pub fn normal(&mut self) -> f64 {
        // 1 − u is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `n` normal values with the given mean and standard deviation,
    /// rounded to `dtype` (so they are exactly the values an `f32` batch holds).
    pub fn normal_vec(&mut self, n: usize, mean: f64, std: f64, dtype: DType) -> Vec<f64> {
        (0..n)
            .map(|_| round_to(dtype, mean + std * self.normal()))
            .collect()
    }
}

/// Round an `f64` to the nearest value of `dtype` (identity for `f64`).
pub fn round_to(dtype: DType, v: f64) -> f64 {
    dtype.round(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_roughly_normal() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(7);
        assert!(a.iter().all(|&v| v == r.next_u64()));
        assert_ne!(Rng::new(8).next_u64(), a[0]);
        let mut r = Rng::new(1);
        let v = r.normal_vec(20_000, 3.0, 2.0, DType::F64);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 3.0).abs() < 0.05, "mean {mean}");
        assert!((var - 4.0).abs() < 0.15, "var {var}");
        let f = r.normal_vec(10, 1e4, 1.0, DType::F32);
        assert!(f.iter().all(|&x| x == x as f32 as f64));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&r.uniform())));
    }
}
