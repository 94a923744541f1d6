//! `fused`: one-read statistics, explicit SIMD with runtime dispatch, and
//! cache blocking by channel — an implementation of its own (it shares no
//! arithmetic with `parallel`; only the non-arithmetic planning layer of
//! [`crate::engine::plan`]).
//!
//! Algorithm (batch norm: Ioffe & Szegedy 2015):
//! - **Shift.** Each channel is shifted by `K_c`, the value of its first 64
//!   values nearest to their mean ([`reduce::shifts`]): a value from the
//!   data, so `x − K_c` is exact for clustered data (Sterbenz lemma), and
//!   near the mean, so shifted sums barely cancel.
//! - **Training statistics in one read.** `Σd` and `Σd²` (`d = x − K_c`,
//!   `f64`) over fixed chunks, added in chunk order; `x̄ = K + Σd/n`,
//!   `M2 = Σd² − Σd·Σd/n` (Chan, Golub & LeVeque 1983, shifted data). If
//!   that cancels by more than `2^(53 − p − 16)` (`p` the data's precision;
//!   [`coeffs::max_growth`]) the channel takes a second pass about the
//!   one-read mean (the corrected two-pass algorithm). Data decide, so the
//!   result is deterministic.
//! - **Normalize** `y = (x − K)·a + c` (channels-last data of ≤ 25 bits:
//!   `y = x·a + (c − K·a)`, [`coeffs::fold_shift`]).
//! - **Backward**: `Σdy`, `Σdy·(x − μ)`, `Σ(x − μ)` in one read (the last
//!   recovers the rounding error of the `f64` mean), then `dx`; with fixed
//!   statistics `dx = w·inv·dy` never reads `x`.
//! - **Cache blocking** (contiguous): when a channel's slice fits in cache a
//!   task owns whole channels and runs the statistics (or backward sums)
//!   and the element-wise pass back to back, so the second read hits cache.
//! - **Channels-last**: vectorized across channels (super-rows of ≥ 64
//!   lanes for few channels), register-blocked column tiles.
//! - **SIMD** ([`simd`]): AVX-512F / AVX2 / scalar twin, chosen once per
//!   process; every level computes the same bits.
//! - **Determinism**: chunk boundaries depend only on the dims and partial
//!   sums are added in chunk order, so results are bitwise identical for
//!   any rayon thread count (and either schedule of the contiguous path).
//! - **Huge data** (`huge`): a channel whose sums overflow on finite data
//!   (values spanning more than ~1e154) is redone alone on values scaled
//!   by a power of two; the SIMD kernels are unchanged.

pub mod backward;
pub mod coeffs;
pub mod eval;
pub mod plan;
pub mod reduce;
pub mod simd;
pub mod train;

use crate::huge;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::problem::{Backward, EvalForward, TrainForward};
use simd::Lane;

/// One-read, SIMD-dispatched, cache-blocked batch norm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fused;

impl<T: Lane> Kernel<T> for Fused {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        huge::train_then_redo(p, train::forward)
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        eval::forward(p)
    }

    fn backward(&self, p: Backward<'_, T>) {
        huge::backward_then_redo(p, backward::backward)
    }
}

impl Implementation for Fused {
    fn info(&self) -> Info {
        Info {
            name: "fused",
            description: "one read of x for the statistics (shifted f64 sums added in chunk order), explicit AVX-512/AVX2 kernels with a scalar twin, cache-blocked by channel",
            stable: true,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
