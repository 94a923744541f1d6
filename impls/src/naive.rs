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

/// Textbook batch norm in the data's own precision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Naive;

fn t<T: Element>(v: f64) -> T {
    T::from_f64(v)
}

/// Whether channel `c`'s values lie in N runs of S contiguous values (the
/// contiguous layout with spatial extent); otherwise they are every C-th
/// value from offset `c` (channels-last, and `(N, C)` in either layout).
fn unit_runs(dims: Dims) -> bool {
    dims.strides3()[2] == 1 && dims.s > 1
}

/// The N runs of channel `c` in the contiguous layout, as offset ranges.
fn runs(dims: Dims, c: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let [sn, sc, _] = dims.strides3();
    (0..dims.n).map(move |n| n * sn + c * sc..n * sn + c * sc + dims.s)
}

/// `acc = f(acc, x, y)` over channel `c` of two tensors, in `(n, s)` order,
/// walked as slices: unit-stride runs (they vectorize), rows of C values
/// (`chunks_exact`, so the index `c < C` is checked once, not per value), or
/// for `(N, C)` slices that start at the channel (measured fastest for the
/// long stride C).
fn fold_channel<T: Element, A>(
    dims: Dims,
    c: usize,
    [x, y]: [&[T]; 2],
    mut acc: A,
    mut f: impl FnMut(A, T, T) -> A,
) -> A {
    if unit_runs(dims) {
        for r in runs(dims, c) {
            for (&a, &b) in x[r.clone()].iter().zip(&y[r]) {
                acc = f(acc, a, b);
            }
        }
    } else if dims.s == 1 {
        // (N, C): slices starting at the channel, so each value is `[0]`.
        for (a, b) in x[c..].chunks(dims.c).zip(y[c..].chunks(dims.c)) {
            acc = f(acc, a[0], b[0]);
        }
    } else {
        let rows = x.chunks_exact(dims.c).zip(y.chunks_exact(dims.c));
        for (a, b) in rows {
            acc = f(acc, a[c], b[c]);
        }
    }
    acc
}

/// `out = f(x, y)` over channel `c`, walked like [`fold_channel`].
fn map_channel<T: Element>(
    dims: Dims,
    c: usize,
    [x, y]: [&[T]; 2],
    out: &mut [T],
    f: impl Fn(T, T) -> T,
) {
    if unit_runs(dims) {
        for r in runs(dims, c) {
            let (xs, ys) = (&x[r.clone()], &y[r.clone()]);
            for ((o, &a), &b) in out[r].iter_mut().zip(xs).zip(ys) {
                *o = f(a, b);
            }
        }
    } else if dims.s == 1 {
        let rows = x[c..].chunks(dims.c).zip(y[c..].chunks(dims.c));
        for (o, (a, b)) in out[c..].chunks_mut(dims.c).zip(rows) {
            o[0] = f(a[0], b[0]);
        }
    } else {
        let rows = x.chunks_exact(dims.c).zip(y.chunks_exact(dims.c));
        for (o, (a, b)) in out.chunks_exact_mut(dims.c).zip(rows) {
            o[c] = f(a[c], b[c]);
        }
    }
}

impl<T: Element> Kernel<T> for Naive {
    fn forward_train(&self, p: TrainForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        let m: T = t(dims.per_channel() as f64);
        for c in 0..dims.c {
            let mean = fold_channel(dims, c, [x, x], T::zero(), |acc, v, _| acc + v) / m;
            let sq = |acc: T, v: T, _| acc + (v - mean) * (v - mean);
            let var = fold_channel(dims, c, [x, x], T::zero(), sq) / m;
            let inv_std = T::one() / (var + t(p.eps)).sqrt();
            let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
            map_channel(dims, c, [x, x], y, |v, _| (v - mean) * inv_std * w + b);
            p.mean[c] = mean.as_f64();
            p.var[c] = var.as_f64();
        }
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        let (x, y, dims) = (p.x, p.y, p.dims);
        for c in 0..dims.c {
            let (mean, var) = (t::<T>(p.mean[c]), t::<T>(p.var[c]));
            let inv_std = T::one() / (var + t(p.eps)).sqrt();
            let (w, b) = (t::<T>(p.affine.weight(c)), t::<T>(p.affine.bias(c)));
            map_channel(dims, c, [x, x], y, |v, _| (v - mean) * inv_std * w + b);
        }
    }

    fn backward(&self, p: Backward<'_, T>) {
        let (x, dy, dx, dims) = (p.x, p.dy, p.dx, p.dims);
        let m: T = t(dims.per_channel() as f64);
        for c in 0..dims.c {
            let mean = t::<T>(p.mean[c]);
            let inv_std = T::one() / (t::<T>(p.var[c]) + t(p.eps)).sqrt();
            let w = t::<T>(p.weight.map_or(1.0, |w| w[c]));
            let zero = (T::zero(), T::zero());
            let (sum_dy, sum_dy_xhat) = fold_channel(dims, c, [x, dy], zero, |(s, q), x, g| {
                (s + g, q + g * (x - mean) * inv_std)
            });
            map_channel(dims, c, [x, dy], dx, |x, dy| match p.mode {
                GradMode::Batch => {
                    let x_hat = (x - mean) * inv_std;
                    w * inv_std / m * (m * dy - sum_dy - x_hat * sum_dy_xhat)
                }
                GradMode::Fixed => dy * w * inv_std,
            });
            p.grad_weight[c] = sum_dy_xhat.as_f64();
            p.grad_bias[c] = sum_dy.as_f64();
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
