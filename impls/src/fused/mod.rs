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
//! - **Normalize** `y = (x − K)·a + c` (channels-last data of ≤ 25 bits,
//!   while `|K|/σ` is within [`coeffs::fold_ratio`]: `y = x·a + (c − K·a)`).
//! - **Backward**: `Σdy`, `Σdy·(x − μ)`, `Σ(x − μ)` in one read (the last
//!   recovers the rounding error of the `f64` mean), then `dx`; with fixed
//!   statistics `dx = w·inv·dy` never reads `x`. Channels-last `dx` folds
//!   the shift into its constant while `|K|/σ ≤ 16`, tighter than the
//!   normalize pass's bound because `dx` can cancel far below its terms
//!   ([`coeffs::folds_dx`]): `dx = kd·dy + kx·x + (kc − kx·K)`.
//! - **Precision**: statistics and reductions in `f64` (half-precision
//!   train: `f32` blocks of 32 values or rows per lane added into `f64`
//!   lanes, [`simd::runs::sums_narrow`], [`simd::rows::sums_narrow`]); the element-wise passes in
//!   `f64` lanes for `f32`/`f64` data and in `f32` lanes with fused
//!   multiply-add for `bf16`/`f16` data, the shift split in two so nothing
//!   cancels ([`simd::prec`]).
//! - **Cache blocking** (contiguous): when a channel's slice fits in cache a
//!   task owns whole channels and runs the statistics (or backward sums)
//!   and the element-wise pass back to back, so the second read hits cache —
//!   on machines where that beats two address-ordered sweeps
//!   ([`task_rule`]: one core's L2 and the L3 decide).
//! - **Channels-last**: vectorized across channels (super-rows of ≥ 64
//!   lanes for few channels), register-blocked column tiles (past the
//!   caches the backward sums read row pairs in address order instead,
//!   `simd::rows`).
//! - **Streaming stores** ([`simd::nt`]): outputs of at least 24 MiB
//!   ([`plan::STREAM_MIN_BYTES`]; the L3's size where that is smaller,
//!   [`plan::stream_min_bytes`]), and outputs of passes whose arrays
//!   together exceed the L3 ([`plan::exceeds_l3`]), are written with
//!   non-temporal stores over
//!   whole cache lines, skipping the read for ownership of lines the pass
//!   overwrites anyway (same bits; contiguous runs of ≥ 2048 values).
//! - **Software prefetch** ([`simd::nt::prefetch`]): the passes that stream,
//!   and the reductions over inputs of at least 12 MiB, prefetch their
//!   inputs 8 KiB ahead — one core's reads reach a copy's rate only with
//!   that many lines in flight.
//! - **SIMD** ([`simd`]): AVX-512F / AVX2+FMA / scalar twin, chosen once
//!   per process; every level computes the same bits.
//! - **Determinism**: chunk boundaries depend only on the dims and partial
//!   sums are added in chunk order, so results are bitwise identical for
//!   any rayon thread count (and either schedule of the contiguous path).
//! - **Fused activations** (`relu(bn(x))`, `relu(bn(x) + residual)`): the
//!   ReLU and the residual add run inside the normalize pass
//!   ([`simd::Post`]), and the ReLU backward masks `dy` by the output as it
//!   loads it, in the reduction pass and in the `dx` pass (which also writes
//!   the residual's gradient): the passes over memory of the plain
//!   operations, plus the reads of `residual`/`y` themselves.
//! - **Huge data** (`huge`): a channel whose sums overflow on finite data
//!   (values spanning more than ~1e154) is redone alone on values scaled
//!   by a power of two; the SIMD kernels are unchanged.

pub mod backward;
pub mod coeffs;
pub mod eval;
pub mod plan;
pub mod reduce;
pub mod simd;
pub mod task_rule;
pub mod train;

use crate::activation;
use crate::error::Result;
use crate::huge;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::problem::{Backward, BackwardRelu, EvalForward, EvalRelu, TrainForward, TrainRelu};
use simd::{Lane, Post};

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

    /// One statistics read and one normalize pass with the ReLU (and the
    /// residual add) inside it. Huge finite data whose statistics overflow
    /// (see [`huge`]) fall back to the default composition, which redoes
    /// such channels scaled.
    fn try_forward_train_relu(&self, mut p: TrainRelu<'_, T>) -> Result<()> {
        let (post, res) = post_of(p.residual, p.bn.x);
        train::forward_post(p.bn.reborrow(), res, post);
        if huge::train_needs_redo(&p.bn) {
            return activation::train_then_relu(self, p);
        }
        Ok(())
    }

    /// One pass: read `x` (and `residual`), write `y`.
    fn try_forward_eval_relu(&self, p: EvalRelu<'_, T>) -> Result<()> {
        let (post, res) = post_of(p.residual, p.bn.x);
        eval::forward_post(p.bn, res, post);
        Ok(())
    }

    /// The plain backward's two passes with `dy` masked by `y` as it is
    /// loaded; the residual's gradient is written in the `dx` pass.
    fn try_backward_relu(&self, mut p: BackwardRelu<'_, T>) -> Result<()> {
        let dres = p.grad_residual.as_deref_mut();
        backward::backward_relu(p.bn.reborrow(), Some(p.y), dres);
        if huge::backward_needs_redo(&p.bn) {
            return activation::mask_then_backward(self, p);
        }
        Ok(())
    }
}

/// The epilogue for an optional residual, and the slice the kernels get as
/// the residual (`x` itself, never read, when there is none).
fn post_of<'a, T>(residual: Option<&'a [T]>, x: &'a [T]) -> (Post, &'a [T]) {
    match residual {
        Some(r) => (Post::AddRelu, r),
        None => (Post::Relu, x),
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
