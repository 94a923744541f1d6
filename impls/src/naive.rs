//! `naive`: the textbook formulas, transcribed plainly.
//!
//! Ioffe & Szegedy (2015), Algorithm 1: `μ = (1/m)Σx`, `σ² = (1/m)Σ(x − μ)²`,
//! `x̂ = (x − μ)/√(σ² + ε)`, `y = γx̂ + β`; and the backward pass of §3. All
//! arithmetic runs in the data's own type, as a straightforward port would.
//! It is the readable baseline and is registered `stable: false`: in `f32`,
//! summing values with a large common offset (mean 1e4, spread 1) loses the
//! spread to rounding, and the harness shows it.

use crate::element::Element;
use crate::kernel::{Implementation, Info, Kernel, Kernels};
use crate::layout::Dims;
use crate::problem::{Backward, EvalForward, GradMode, TrainForward};
use std::ops::Range;

/// Textbook batch norm in the data's own precision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive;

fn t<T: Element>(v: f64) -> T {
    T::from_f64(v)
}

/// Channels walked together when a channel's values are every C-th value
/// (channels-last, `(N, C)`): one 64-byte line holds 16 `f32` channels, so
/// a row of the block costs one line fetch instead of 16. Each channel's
/// values are still visited alone and in `(n, s)` order, so the results are
/// those of walking the channels one by one.
const BLOCK: usize = 16;

/// Whether channel `c`'s values lie in N runs of S contiguous values (the
/// contiguous layout with spatial extent); otherwise they are every C-th
/// value from offset `c` (channels-last, and `(N, C)` in either layout).
fn unit_runs(dims: Dims) -> bool {
    dims.strides3()[2] == 1 && dims.s > 1
}

/// The N runs of channel `c` in the contiguous layout, as offset ranges.
fn runs(dims: Dims, c: usize) -> impl Iterator<Item = Range<usize>> {
    let [sn, sc, _] = dims.strides3();
    (0..dims.n).map(move |n| n * sn + c * sc..n * sn + c * sc + dims.s)
}

/// The channels in the order they are walked: one at a time over unit runs
/// and over rows shorter than a block (a row of C < 16 values is mostly one
/// cache line already, and the per-row work of a block would dominate), in
/// blocks of [`BLOCK`] over longer rows of C values.
fn channel_blocks(dims: Dims) -> impl Iterator<Item = Range<usize>> {
    let width = if unit_runs(dims) || dims.c < BLOCK {
        1
    } else {
        BLOCK
    };
    (0..dims.c)
        .step_by(width)
        .map(move |c| c..(c + width).min(dims.c))
}

/// Folds every value of each channel `c` of the block `cs`, in `(n, s)`
/// order, with the step `per(c)` (made once per channel, so its constants
/// are resolved outside the loop); returns the block's accumulators (entry
/// `j` is channel `cs.start + j`; entries past the block are `init`). Unit
/// runs are walked as slices (they vectorize); otherwise rows of C values
/// (`chunks_exact`, so the bound is checked once per row).
fn fold_block<T: Element, A: Copy, G: Fn(A, T, T) -> A>(
    dims: Dims,
    cs: Range<usize>,
    [x, y]: [&[T]; 2],
    init: A,
    per: impl Fn(usize) -> G,
) -> [A; BLOCK] {
    let mut acc = [init; BLOCK];
    let rows = || x.chunks_exact(dims.c).zip(y.chunks_exact(dims.c));
    if cs.len() == 1 {
        let (c, mut sum) = (cs.start, init);
        let step = per(c);
        if unit_runs(dims) {
            for r in runs(dims, c) {
                for (&u, &v) in x[r.clone()].iter().zip(&y[r]) {
                    sum = step(sum, u, v);
                }
            }
        } else {
            for (xr, yr) in rows() {
                sum = step(sum, xr[c], yr[c]);
            }
        }
        acc[0] = sum;
    } else {
        let steps = per_channel(&cs, per);
        for (xr, yr) in rows() {
            let row = xr[cs.clone()].iter().zip(&yr[cs.clone()]);
            for ((a, step), (&u, &v)) in acc.iter_mut().zip(&steps).zip(row) {
                *a = step(*a, u, v);
            }
        }
    }
    acc
}

/// `v(c)` for each channel of the block, on the stack (no allocation per
/// channel); entries past the block repeat the first channel's value.
fn per_channel<V>(cs: &Range<usize>, v: impl Fn(usize) -> V) -> [V; BLOCK] {
    std::array::from_fn(|j| {
        v(if cs.start + j < cs.end {
            cs.start + j
        } else {
            cs.start
        })
    })
}

/// `out = per(c)(x, y)` over each channel `c` of the block, walked like
/// [`fold_block`].
fn map_block<T: Element, G: Fn(T, T) -> T>(
    dims: Dims,
    cs: Range<usize>,
    [x, y]: [&[T]; 2],
    out: &mut [T],
    per: impl Fn(usize) -> G,
) {
    let rows = x.chunks_exact(dims.c).zip(y.chunks_exact(dims.c));
    let out_rows = out.chunks_exact_mut(dims.c);
    if cs.len() == 1 && unit_runs(dims) {
        let (c, f) = (cs.start, per(cs.start));
        for r in runs(dims, c) {
            let (xs, ys) = (&x[r.clone()], &y[r.clone()]);
            for ((o, &u), &v) in out[r].iter_mut().zip(xs).zip(ys) {
                *o = f(u, v);
            }
        }
    } else if cs.len() == 1 {
        let (c, f) = (cs.start, per(cs.start));
        for (or, (xr, yr)) in out_rows.zip(rows) {
            or[c] = f(xr[c], yr[c]);
        }
    } else {
        let fs = per_channel(&cs, per);
        for (or, (xr, yr)) in out_rows.zip(rows) {
            let row = xr[cs.clone()].iter().zip(&yr[cs.clone()]);
            for ((o, f), (&u, &v)) in or[cs.clone()].iter_mut().zip(&fs).zip(row) {
                *o = f(u, v);
            }
        }
    }
}

impl<T: Element> Kernel<T> for Naive {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        let m: T = t(dims.per_channel() as f64);
        for cs in channel_blocks(dims) {
            let c0 = cs.start;
            let sum = |_| |a: T, v: T, _| a + v;
            let mean = fold_block(dims, cs.clone(), [x, x], T::zero(), sum).map(|s| s / m);
            let sq = |c: usize| {
                let mean = mean[c - c0];
                move |a: T, v: T, _| a + (v - mean) * (v - mean)
            };
            let var = fold_block(dims, cs.clone(), [x, x], T::zero(), sq).map(|s| s / m);
            let normalize = |c: usize| {
                let (mean, inv_std) = (mean[c - c0], T::one() / (var[c - c0] + t(p.eps)).sqrt());
                let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
                move |v: T, _| (v - mean) * inv_std * w + b
            };
            map_block(dims, cs.clone(), [x, x], y, normalize);
            for (j, c) in cs.enumerate() {
                p.mean[c] = mean[j].as_f64();
                p.var[c] = var[j].as_f64();
            }
        }
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        let normalize = |c: usize| {
            let (mean, var) = (t::<T>(p.mean[c]), t::<T>(p.var[c]));
            let inv_std = T::one() / (var + t(p.eps)).sqrt();
            let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
            move |v: T, _| (v - mean) * inv_std * w + b
        };
        for cs in channel_blocks(dims) {
            map_block(dims, cs, [x, x], y, normalize);
        }
    }

    fn backward(&self, p: Backward<'_, T>) {
        let (x, dy, dx, dims) = (p.x, p.dy, p.dx, p.dims);
        let m: T = t(dims.per_channel() as f64);
        let coeff = |c: usize| {
            let mean = t::<T>(p.mean[c]);
            let inv_std = T::one() / (t::<T>(p.var[c]) + t(p.eps)).sqrt();
            let w = t::<T>(p.weight.map_or(1.0, |w| w[c]));
            (mean, inv_std, w)
        };
        for cs in channel_blocks(dims) {
            let c0 = cs.start;
            // Σdy and Σdy·(x − mean), then Σdy·x̂ = inv_std·Σdy·(x − mean)
            // as PyTorch's CPU kernel (`dotp · invstd`): with an infinite
            // inv_std (eval, eps 0, zero variance) that is ±inf, not NaN.
            let accumulate = |c: usize| {
                let (mean, _, _) = coeff(c);
                move |(s, q): (T, T), x: T, g: T| (s + g, q + g * (x - mean))
            };
            let zero = (T::zero(), T::zero());
            let sums: Vec<(T, T)> = fold_block(dims, cs.clone(), [x, dy], zero, accumulate)
                .into_iter()
                .zip(cs.clone())
                .map(|((s, q), c)| (s, q * coeff(c).1))
                .collect();
            let grad = |c: usize| {
                let (mean, inv_std, w) = coeff(c);
                let (sum_dy, sum_dy_xhat) = sums[c - c0];
                let mode = p.mode;
                move |x: T, dy: T| match mode {
                    GradMode::Batch => {
                        let x_hat = (x - mean) * inv_std;
                        w * inv_std / m * (m * dy - sum_dy - x_hat * sum_dy_xhat)
                    }
                    GradMode::Fixed => dy * w * inv_std,
                }
            };
            map_block(dims, cs.clone(), [x, dy], dx, grad);
            for (j, c) in cs.enumerate() {
                p.grad_bias[c] = sums[j].0.as_f64();
                p.grad_weight[c] = sums[j].1.as_f64();
            }
        }
    }
}

impl Implementation for Naive {
    fn info(&self) -> Info {
        Info {
            name: "naive",
            description:
                "textbook two-pass formulas in the data's own precision (readable baseline)",
            stable: false,
            deterministic: true,
        }
    }

    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
