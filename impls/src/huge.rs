//! Huge finite data: redo a channel whose statistics overflowed, with the
//! implementation's own pass, on values scaled by a power of two.
//!
//! Shifted sums overflow `f64` only when a channel's values span more than
//! about 1e154 (`(x − K)²`) or 1e308 (`x − K`), e.g. `x = [1e308, −1e308]`.
//! Such a channel comes out of an implementation's statistics with a
//! non-finite mean or variance although its values are finite. It is then
//! redone, alone, by the same implementation's pass (given as a function,
//! so `welford`, `parallel` and `fused` each keep their own arithmetic and
//! share only this non-arithmetic wrapper) on `x·2^−e` with `e` the exponent of its largest
//! `|x|` (exact: a power of two only shifts exponents): statistics of the
//! scaled values in `[−1, 1]` cannot overflow, and batch norm is
//! scale-equivariant, so `mean = mean_s·2^e`, `var = var_s·4^e` (inf only
//! when the true variance exceeds `f64::MAX`), `y = y_s` with `eps·4^−e`,
//! and backward `dx = dx_s·2^(e_dy − e_x)`, `grad_weight, grad_bias = ·2^e_dy`
//! (backward also for a variance so large that its coefficients underflow).
//! The check is one `is_finite` per channel, so normal data pay nothing.

use crate::element::Element;
use crate::engine::pow2::{exponent, ldexp};
use crate::layout::{Dims, Layout};
use crate::problem::{Affine, Backward, TrainForward};

/// Exponent of channel `c`'s largest `|value|` (and of `extra`), or `None`
/// when a value is NaN/inf (a non-finite result is then the right one).
fn channel_exponent<T: Element>(v: &[T], dims: Dims, c: usize, extra: f64) -> Option<i32> {
    let mut max = extra.abs();
    for o in dims.channel_offsets(c) {
        let a = v[o].as_f64().abs();
        if !a.is_finite() {
            return None;
        }
        max = max.max(a);
    }
    max.is_finite().then(|| exponent(max))
}

/// Channel `c` gathered into one contiguous channel, each value times `2^−e`.
fn scaled<T: Element>(v: &[T], dims: Dims, c: usize, e: i32) -> Vec<T> {
    (dims.channel_offsets(c))
        .map(|o| T::from_f64(ldexp(v[o].as_f64(), -e)))
        .collect()
}

/// One channel of N·S values as its own contiguous batch.
fn one_channel(dims: Dims) -> Dims {
    Dims {
        n: 1,
        c: 1,
        s: dims.per_channel(),
        layout: Layout::Contiguous,
    }
}

/// `eps·4^−e`, kept positive (it is negligible next to the scaled variance).
fn scaled_eps(eps: f64, e: i32) -> f64 {
    let s = ldexp(eps, -2 * e);
    // A positive eps stays positive; 0 (eval) and NaN (which PyTorch
    // accepts) stay what they are.
    if eps > 0.0 {
        s.max(f64::from_bits(1))
    } else {
        s
    }
}

/// Run the training forward `pass`, then redo, scaled, every channel whose
/// mean or variance came out non-finite while its values are finite.
pub fn train_then_redo<T: Element>(mut p: TrainForward<'_, T>, pass: impl Fn(TrainForward<'_, T>)) {
    pass(p.reborrow());
    if all_finite(p.mean) && all_finite(p.var) {
        return;
    }
    let dims = p.dims;
    for c in 0..dims.c {
        if p.mean[c].is_finite() && p.var[c].is_finite() {
            continue;
        }
        let Some(e) = channel_exponent(p.x, dims, c, 0.0) else {
            continue;
        };
        let xs = scaled(p.x, dims, c, e);
        let mut ys = xs.clone();
        let (mut mean, mut var) = ([0.0], [0.0]);
        let (w, b) = ([p.affine.weight(c)], [p.affine.bias(c)]);
        pass(TrainForward {
            dims: one_channel(dims),
            x: &xs,
            y: &mut ys,
            affine: Affine {
                weight: Some(&w),
                bias: Some(&b),
            },
            eps: scaled_eps(p.eps, e),
            mean: &mut mean,
            var: &mut var,
            checked: p.checked,
        });
        p.mean[c] = ldexp(mean[0], e);
        p.var[c] = ldexp(var[0], 2 * e);
        for (o, v) in dims.channel_offsets(c).zip(ys) {
            p.y[o] = v;
        }
    }
}

/// Whether every value is finite, in a loop without an early exit (it
/// vectorizes): the common case of the redo checks, which channel by
/// channel took 1–2 µs of 1024 channels (`perf`, 256×1024 `f32`, 2-core
/// Xeon VM).
fn all_finite(v: &[f64]) -> bool {
    v.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// Whether no variance exceeds [`HUGE_VAR`] (NaN does not), as [`all_finite`].
fn none_huge(v: &[f64]) -> bool {
    v.iter()
        .fold(true, |ok, &x| ok & (x <= HUGE_VAR || x.is_nan()))
}

/// Whether [`train_then_redo`] would redo a channel of this finished
/// training forward: a non-finite mean or variance on finite values. Lets
/// a pass that cannot be redone channel by channel (a fused activation)
/// fall back to one that can.
pub fn train_needs_redo<T: Element>(p: &TrainForward<'_, T>) -> bool {
    (0..p.dims.c).any(|c| {
        !(p.mean[c].is_finite() && p.var[c].is_finite())
            && channel_exponent(p.x, p.dims, c, 0.0).is_some()
    })
}

/// Whether [`backward_then_redo`] might redo a channel of this finished
/// backward (conservative: `dy` is not inspected, so it may say yes when
/// the redo would skip the channel, never no when it would redo it).
pub fn backward_needs_redo<T: Element>(p: &Backward<'_, T>) -> bool {
    (0..p.dims.c).any(|c| {
        let sums_ok = p.grad_weight[c].is_finite() && p.grad_bias[c].is_finite();
        let (mean, var) = (p.mean[c], p.var[c]);
        !(sums_ok && var <= HUGE_VAR)
            && mean.is_finite()
            && !var.is_nan()
            && channel_exponent(p.x, p.dims, c, mean).is_some()
    })
}

/// Variances above this (2^300 ≈ 2e90, never reached by `f32` data) make
/// the backward coefficient `w·inv³·Σdy·(x − μ)/m` underflow in `f64`
/// (`inv = 1/√(var + eps)`), so such channels are redone scaled as well.
pub const HUGE_VAR: f64 = 2.037035976334486e90;

/// Run the backward `pass`, then redo, scaled, every channel whose weight or
/// bias gradient came out non-finite, or whose variance exceeds
/// [`HUGE_VAR`], while `x`, `dy` and the mean are finite (and the variance
/// is not NaN).
pub fn backward_then_redo<T: Element>(mut p: Backward<'_, T>, pass: impl Fn(Backward<'_, T>)) {
    pass(p.reborrow());
    // A NaN variance is never redone, so `none_huge` may let it through.
    if all_finite(p.grad_weight) && all_finite(p.grad_bias) && none_huge(p.var) {
        return;
    }
    let dims = p.dims;
    for c in 0..dims.c {
        let sums_ok = p.grad_weight[c].is_finite() && p.grad_bias[c].is_finite();
        if sums_ok && p.var[c] <= HUGE_VAR {
            continue;
        }
        let (mean, var) = (p.mean[c], p.var[c]);
        if !mean.is_finite() || var.is_nan() {
            continue;
        }
        let (Some(ex), Some(ey)) = (
            channel_exponent(p.x, dims, c, mean),
            channel_exponent(p.dy, dims, c, 0.0),
        ) else {
            continue;
        };
        let (xs, dys) = (scaled(p.x, dims, c, ex), scaled(p.dy, dims, c, ey));
        let mut dxs = xs.clone();
        let (ms, vs, w) = (
            [ldexp(mean, -ex)],
            [ldexp(var, -2 * ex)],
            [p.weight.map_or(1.0, |w| w[c])],
        );
        let (mut gw, mut gb) = ([0.0], [0.0]);
        pass(Backward {
            dims: one_channel(dims),
            x: &xs,
            dy: &dys,
            dx: &mut dxs,
            mean: &ms,
            var: &vs,
            weight: Some(&w),
            eps: scaled_eps(p.eps, ex),
            mode: p.mode,
            grad_weight: &mut gw,
            grad_bias: &mut gb,
            checked: p.checked,
        });
        p.grad_weight[c] = ldexp(gw[0], ey);
        p.grad_bias[c] = ldexp(gb[0], ey);
        for (o, v) in dims.channel_offsets(c).zip(dxs) {
            p.dx[o] = T::from_f64(ldexp(v.as_f64(), ey - ex));
        }
    }
}
