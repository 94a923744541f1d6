//! `fused`: minimum memory traffic, SIMD inner loops, rayon.
//!
//! Same fixed plan and statistics as `parallel` (so it is bitwise
//! deterministic across thread counts, and bitwise equal to `parallel`),
//! with two additions that cut time and traffic:
//!
//! - SIMD: the statistics' lane reductions use AVX-512 intrinsics when the
//!   CPU has them ([`crate::parallel::avx512`]); every inner loop is also dispatched at run
//!   time to AVX-512 / AVX2+FMA clones ([`simd`], `multiversion`), with the
//!   portable code as fallback. All paths compute the same bits.
//! - cache blocking (contiguous layout): when a channel's slice fits in
//!   cache, each task owns whole channels and runs statistics then
//!   normalize (or the two backward sums then `grad_input`) on them back to
//!   back, so the second read of `x` (and `dy`) hits L2/L3, not DRAM.
//!
//! Traffic per element on large tensors: eval forward 1 read + 1 write (as a
//! copy); train forward 2 reads + 1 write (channels-last, or contiguous with
//! channels too big to block), 1 + 1 from DRAM with cache blocking; backward
//! 4 reads + 1 write, or 2 + 1 with cache blocking.
//!
//! Streaming (non-temporal) stores were tried for outputs ≥ 16 MiB and were
//! 20–50 % slower on the machine this was tuned on (AMD EPYC VM, see the
//! commit log), so outputs use plain stores, like the memcpy they are
//! compared with.

use crate::element::Element;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::problem::{Backward, EvalForward, TrainForward};

/// SIMD-dispatched, cache-blocked batch norm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fused;

impl<T: Element> Kernel<T> for Fused {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        crate::parallel::Parallel.forward_train(p)
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        crate::parallel::Parallel.forward_eval(p)
    }

    fn backward(&self, p: Backward<'_, T>) {
        crate::parallel::Parallel.backward(p)
    }
}

impl Implementation for Fused {
    fn info(&self) -> Info {
        Info {
            name: "fused",
            description:
                "AVX-512/AVX2 dispatched, cache-blocked per channel; same fixed chunks as parallel",
            stable: true,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
