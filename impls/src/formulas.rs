//! Per-channel coefficients shared by the optimised implementations.
//!
//! Batch norm is an affine map per channel in both directions, so a kernel
//! computes a few `f64` coefficients per channel once and then streams the
//! tensor with one multiply-add per element. `naive` deliberately does not
//! use these: it transcribes the textbook formulas independently, which
//! makes it a cross-check for the rest.

use crate::problem::{inv_std, Affine, GradMode};

/// `y = (x - mean) * scale + bias`, with `scale = w / sqrt(var + eps)`
/// (Ioffe & Szegedy 2015, Algorithm 1, with the affine step folded in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormCoeffs {
    pub mean: f64,
    pub scale: f64,
    pub bias: f64,
}

impl NormCoeffs {
    /// Coefficients of channel `c`.
    #[inline]
    pub fn new(mean: f64, var: f64, eps: f64, affine: &Affine<'_>, c: usize) -> NormCoeffs {
        NormCoeffs {
            mean,
            scale: affine.weight(c) * inv_std(var, eps),
            bias: affine.bias(c),
        }
    }

    /// Normalize one value.
    #[inline(always)]
    pub fn apply(&self, x: f64) -> f64 {
        (x - self.mean) * self.scale + self.bias
    }
}

/// `dx = k_dy·dy + k_xmu·(x − mean) + k_const` for one channel, from the two
/// per-channel sums `Σ dy` and `Σ dy·(x − mean)` over its m = N·S values.
///
/// With `x̂ = (x − mean)·inv_std`, the batch-statistics gradient is
/// `dx = w·inv_std·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)` (Ioffe & Szegedy 2015, §3),
/// which expands to the three coefficients below; with fixed statistics it
/// is `dx = w·inv_std·dy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCoeffs {
    pub mean: f64,
    pub k_dy: f64,
    pub k_xmu: f64,
    pub k_const: f64,
    /// `Σ dy·x̂`: the weight gradient.
    pub grad_weight: f64,
    /// `Σ dy`: the bias gradient.
    pub grad_bias: f64,
    /// False with fixed statistics: `dx` then does not depend on `x`, so a
    /// NaN in `x` must not reach `dx` (PyTorch's eval backward ignores `x`).
    pub uses_x: bool,
}

impl GradCoeffs {
    /// Coefficients from the channel's sums; `m` is the count N·S.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn new(
        mode: GradMode,
        m: usize,
        mean: f64,
        var: f64,
        eps: f64,
        weight: f64,
        sum_dy: f64,
        sum_dy_xmu: f64,
    ) -> GradCoeffs {
        let inv = inv_std(var, eps);
        let k_dy = weight * inv;
        let (k_xmu, k_const) = match mode {
            GradMode::Batch => {
                let m = m as f64;
                (-k_dy * inv * inv * sum_dy_xmu / m, -k_dy * sum_dy / m)
            }
            GradMode::Fixed => (0.0, 0.0),
        };
        GradCoeffs {
            mean,
            k_dy,
            k_xmu,
            k_const,
            grad_weight: sum_dy_xmu * inv,
            grad_bias: sum_dy,
            uses_x: mode == GradMode::Batch,
        }
    }

    /// The input gradient of one element.
    #[inline(always)]
    pub fn apply(&self, x: f64, dy: f64) -> f64 {
        if self.uses_x {
            self.k_dy * dy + self.k_xmu * (x - self.mean) + self.k_const
        } else {
            self.k_dy * dy
        }
    }
}
