//! Streaming moments: Welford's update and Chan's pairwise merge.
//!
//! `Moments` holds (count, mean, M2) with `M2 = Σ (x - mean)²`, so the biased
//! variance is `M2 / count`. Both updates avoid the catastrophic cancellation
//! of the textbook `E[x²] - E[x]²`.

/// Count, mean and sum of squared deviations of a set of values, in `f64`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// Number of values.
    pub count: u64,
    /// Mean of the values.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Add one value (Welford 1962; Knuth, TAOCP vol. 2, 4.2.2):
    /// `δ = x − mean; mean += δ/n; M2 += δ·(x − mean)`.
    #[inline(always)]
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Moments of a slice of already-widened values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Moments {
        let mut m = Moments::default();
        values.into_iter().for_each(|x| m.push(x));
        m
    }

    /// Moments of the union of two disjoint sets (Chan, Golub & LeVeque 1979):
    /// `δ = mean_b − mean_a; n = n_a + n_b; mean = mean_a + δ·n_b/n;
    /// M2 = M2_a + M2_b + δ²·n_a·n_b/n`.
    #[inline]
    pub fn merge(self, other: Moments) -> Moments {
        if self.count == 0 {
            return other;
        }
        if other.count == 0 {
            return self;
        }
        let n = self.count + other.count;
        let (na, nb, nf) = (self.count as f64, other.count as f64, n as f64);
        let delta = other.mean - self.mean;
        Moments {
            count: n,
            mean: self.mean + delta * (nb / nf),
            m2: self.m2 + other.m2 + delta * delta * (na * (nb / nf)),
        }
    }

    /// Merge any number of disjoint sets, left to right (the empty set for none).
    pub fn merge_all(parts: impl IntoIterator<Item = Moments>) -> Moments {
        parts.into_iter().fold(Moments::default(), Moments::merge)
    }

    /// Biased variance `M2 / count` (what batch norm normalizes with); NaN when empty.
    pub fn var(&self) -> f64 {
        self.m2 / self.count as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_pass(v: &[f64]) -> (f64, f64) {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        (m, var)
    }

    #[test]
    fn push_matches_two_pass() {
        let v: Vec<f64> = (0..1000)
            .map(|i| ((i * 37) % 101) as f64 * 0.25 - 3.0)
            .collect();
        let m = Moments::of(v.iter().copied());
        let (mean, var) = two_pass(&v);
        assert_eq!(m.count, 1000);
        assert!((m.mean - mean).abs() < 1e-12);
        assert!((m.var() - var).abs() < 1e-10 * var);
    }

    #[test]
    fn merge_of_unequal_shards_equals_whole() {
        let v: Vec<f64> = (0..997)
            .map(|i| ((i * 7919) % 613) as f64 * 0.01 + 1e4)
            .collect();
        let whole = Moments::of(v.iter().copied());
        for cut in [0, 1, 2, 10, 500, 996, 997] {
            let merged =
                Moments::of(v[..cut].iter().copied()).merge(Moments::of(v[cut..].iter().copied()));
            assert_eq!(merged.count, whole.count);
            assert!((merged.mean - whole.mean).abs() < 1e-10, "cut {cut}");
            assert!((merged.m2 - whole.m2).abs() < 1e-9 * whole.m2, "cut {cut}");
        }
    }
}
