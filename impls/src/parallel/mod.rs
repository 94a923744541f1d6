//! `parallel`: rayon over fixed chunks, statistics merged with Chan's formula.
//!
//! Statistics are computed in parallel *within* a channel as well as across
//! channels: each channel's values are cut into fixed groups (see [`plan`]),
//! each group yields a partial `(count, mean, M2)` ([`Moments`]), and the
//! partials are merged with Chan, Golub & LeVeque's pairwise formula in group
//! order. So few-channel / large-batch shapes (`256×3×64×64`) get as many
//! tasks as many-channel ones, and because chunk boundaries never depend on
//! the thread count the results are bitwise identical for any pool size.
//! Normalize and backward are parallel over fixed runs/rows too. Inputs
//! below [`crate::engine::plan::SERIAL_THRESHOLD`] elements run on the calling thread.
//!
//! The statistics' lane reductions use AVX-512 when the CPU has it
//! ([`avx512`], bitwise equal to the portable fallback); the element-wise
//! loops are the portable loops of [`lanes`] compiled for the baseline
//! target and left to LLVM's auto-vectorizer.
//!
//! Files: [`plan`] (parallel's chunk sizes), `stats` (group statistics and
//! their merge), `forward` (train and eval), `backward`, [`lanes`] (the
//! inner loops), [`avx512`] (the statistics' lane sums with intrinsics),
//! `huge` (a channel whose statistics overflow on finite data is redone on
//! values scaled by a power of two).

pub mod avx512;
mod backward;
mod forward;
pub mod lanes;
pub mod plan;
mod stats;

use crate::element::Element;
use crate::huge;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::moments::Moments;
use crate::problem::{Backward, EvalForward, TrainForward};

/// Rayon-parallel batch norm with fixed chunks and Chan merges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parallel;

/// Statistics of a whole batch from the statistics of arbitrary disjoint
/// shards (Chan, Golub & LeVeque 1979, applied left to right): what a
/// synchronized, multi-device batch norm needs to combine per-device
/// `(count, mean, M2)`. Empty shards are allowed and ignored.
pub fn merge_shards(shards: &[Moments]) -> Moments {
    Moments::merge_all(shards.iter().copied())
}

impl<T: Element> Kernel<T> for Parallel {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        huge::train_then_redo(p, forward::forward_train)
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        forward::forward_eval(p)
    }

    fn backward(&self, p: Backward<'_, T>) {
        huge::backward_then_redo(p, backward::backward)
    }
}

impl Implementation for Parallel {
    fn info(&self) -> Info {
        Info {
            name: "parallel",
            description: "rayon over fixed chunks, corrected two-pass per chunk merged with Chan's formula; thread-count independent",
            stable: true,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
