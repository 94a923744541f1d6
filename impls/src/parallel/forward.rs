//! `parallel`'s forward passes: statistics ([`super::stats`]), then one
//! element-wise pass `y = (x − K)·a + b` over fixed tasks.

use super::lanes;
use super::plan::{self, RowPlan};
use super::stats::{contiguous_moments, rows_moments, shifts, train_coeffs};
use crate::element::Element;
use crate::engine::plan::{is_parallel, rows_pass, runs_pass};
use crate::formulas::NormCoeffs;
use crate::layout::Layout;
use crate::problem::{EvalForward, TrainForward};

/// Training forward: statistics pass, then normalize pass.
pub fn forward_train<T: Element>(p: TrainForward<'_, T>) {
    let dims = p.dims.canonical();
    let x = p.x;
    let shift = shifts(x, dims);
    let par = is_parallel(dims);
    match dims.layout {
        Layout::Contiguous => {
            let moments = contiguous_moments(x, dims, &shift, par);
            let [a, b] = train_coeffs(&shift, &moments, p.eps, &p.affine, p.mean, p.var);
            runs_pass(dims, plan::TASK, p.y, |c, r, out| {
                lanes::run_affine(&x[r], out, shift[c], a[c], b[c])
            });
        }
        Layout::ChannelsLast => {
            let plan = RowPlan::new(dims.c);
            let krep = plan.sr.rep(&shift);
            let moments = rows_moments(x, dims, &plan, &krep, par);
            let [a, b] = train_coeffs(&shift, &moments, p.eps, &p.affine, p.mean, p.var);
            let (a, b) = (plan.sr.rep(&a), plan.sr.rep(&b));
            rows_normalize(&plan, x, p.y, [&krep, &a, &b], (p.var, p.eps));
        }
    }
}

/// Channels-last normalize pass `y = (x − k)·a + b` (arrays replicated to
/// `L`). For `f32` data the shift is folded into the bias in `f64`,
/// `y = x·a + (b − k·a)`, which saves one of the three coefficient streams
/// per element. The fold is accurate enough for `f32` outputs: `x·a`, `k·a`
/// and the subtraction are each rounded by 2⁻⁵³ relative (`f64`), so the
/// absolute error is about `|k·a|·2⁻⁵¹` = `|y|`-scale `(|k|/σ)·2⁻⁵¹` for
/// data of spread σ — below the `f32` output rounding (2⁻²⁴ relative) for
/// any condition number `|k|/σ` under 2²⁶, while distinct `f32` values limit
/// the condition number of non-constant data to about 2²⁴. The fold is
/// taken only when every channel has `|k| ≤ 2²⁴·√(var + ε)` (`var` per
/// channel, not replicated): a constant channel far from 0 has `σ = 0`, so
/// `a = w/√ε` and `k·a` is huge — its rounding left the bias 25 `f32` ulps
/// off at offset 1e8 (0.29999924 for 0.3). Measured: the f32 offset-1e4
/// agreement error of `y` is unchanged (0.43 units). `f64` data keeps the
/// unfolded form, and so does a non-finite scale (eval with eps 0 on a zero
/// variance), where `x·∞ − k·∞` would be NaN instead of `(x − k)·∞`.
fn rows_normalize<T: Element>(
    plan: &RowPlan,
    x: &[T],
    y: &mut [T],
    k: [&[f64]; 3],
    (var, eps): (&[f64], f64),
) {
    let [kk, a, b] = k;
    let tame = kk
        .iter()
        .zip(var)
        .all(|(k, v)| k.abs() <= 2f64.powi(24) * (v + eps).sqrt());
    let narrow = T::DTYPE.mantissa_bits() <= f32::MANTISSA_DIGITS;
    if narrow && tame && a.iter().all(|v| v.is_finite()) {
        let b: Vec<f64> = kk
            .iter()
            .zip(a)
            .zip(b)
            .map(|((&k, &a), &b)| b - k * a)
            .collect();
        rows_pass(plan.task_rows * plan.sr.c, y, |r, out| {
            lanes::rows_scale(&x[r], out, plan.sr.c, a, &b)
        });
    } else {
        rows_pass(plan.task_rows * plan.sr.c, y, |r, out| {
            lanes::rows_affine(&x[r], out, plan.sr.c, kk, a, b)
        });
    }
}

/// Eval forward: `y = (x − mean)·scale + bias`, one read and one write.
pub fn forward_eval<T: Element>(p: EvalForward<'_, T>) {
    let dims = p.dims.canonical();
    let k: Vec<NormCoeffs> = (0..dims.c)
        .map(|c| NormCoeffs::new(p.mean[c], p.var[c], p.eps, &p.affine, c))
        .collect();
    let x = p.x;
    match dims.layout {
        Layout::Contiguous => runs_pass(dims, plan::TASK, p.y, |c, r, out| {
            lanes::run_affine(&x[r], out, k[c].mean, k[c].scale, k[c].bias)
        }),
        Layout::ChannelsLast => {
            let plan = RowPlan::new(dims.c);
            let m = plan.sr.rep(&k.iter().map(|k| k.mean).collect::<Vec<_>>());
            let a = plan.sr.rep(&k.iter().map(|k| k.scale).collect::<Vec<_>>());
            let b = plan.sr.rep(&k.iter().map(|k| k.bias).collect::<Vec<_>>());
            rows_normalize(&plan, x, p.y, [&m, &a, &b], (p.var, p.eps));
        }
    }
}
