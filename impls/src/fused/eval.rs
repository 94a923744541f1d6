//! Eval forward (given statistics), and the channels-last normalize pass
//! the training forward shares: one read and one write of the tensor.

use super::coeffs;
use super::plan::{self, Pass, Rows};
use super::simd::{self, Lane, Level, Post, RowCoeffs, RunCoeffs};
use crate::engine::awake::Awake;
use crate::engine::plan::{is_parallel, rows_pass, runs_task_pass};
use crate::layout::{Dims, Layout};
use crate::problem::EvalForward;

/// `y = (x − mean)·a + b`, `a = w/√(var + ε)` (Ioffe & Szegedy 2015, Alg. 1).
pub fn forward<T: Lane>(p: EvalForward<'_, T>) {
    let x = p.x;
    forward_post(p, x, Post::Plain)
}

/// [`forward`] with an epilogue inside the one pass: `y = post(bn(x))`
/// (`r`, the residual, read only by [`Post::AddRelu`]). One read of `x`
/// (and `r`) and one write of `y`: the ReLU and the add cost no pass.
pub fn forward_post<T: Lane>(p: EvalForward<'_, T>, res: &[T], post: Post) {
    let dims = p.dims.canonical();
    // The other workers stay awake through the serial steps between passes.
    let _awake = Awake::new(is_parallel(dims));
    let lv = Level::detected();
    let (sd, inv) = simd::std_inv(lv, p.var, p.eps);
    let a: Vec<f64> = (0..dims.c).map(|c| p.affine.weight(c) * inv[c]).collect();
    let b: Vec<f64> = (0..dims.c).map(|c| p.affine.bias(c)).collect();
    let (x, mean) = (p.x, p.mean);
    match dims.layout {
        Layout::Contiguous => {
            let lv = lv.streaming(plan::stream_sweep::<T>(
                dims,
                Pass::Normalize,
                post.arrays(),
            ));
            let kab: Vec<[f64; 3]> = (0..dims.c).map(|c| [mean[c], a[c], b[c]]).collect();
            runs(lv, dims, x, p.y, &kab, (res, post))
        }
        Layout::ChannelsLast => {
            let kab = [mean, &a[..], &b[..]];
            rows(lv, &Rows::new(dims.c), x, p.y, (kab, &sd), (res, post))
        }
    }
}

/// Contiguous `y = (x − k)·a + b` per channel (`kab[c] = [k, a, b]`), the
/// runs of a task in one kernel call ([`simd::runs_affine_post`]); `post`
/// in the same pass (`res` read only by [`Post::AddRelu`]).
pub fn runs<T: Lane>(
    lv: Level,
    dims: Dims,
    x: &[T],
    y: &mut [T],
    kab: &[[f64; 3]],
    (res, post): (&[T], Post),
) {
    let c: Vec<RunCoeffs<3>> = kab.iter().map(|&k| RunCoeffs::affine::<T>(k)).collect();
    runs_task_pass(dims, plan::TASK, y, |c0, r, out| {
        let v = (&x[r.clone()], &res[r], out);
        simd::runs_affine_post(lv, v, dims.s, (&c, c0), post)
    })
}

/// Channels-last `y = (x − k)·a + c` per channel (`kac = [k, a, c]`, one
/// value per channel; `sd = √(var + ε)` per channel), tasks of whole
/// super-rows, in `T`'s element-wise precision ([`simd::prec`]). The shift
/// is folded into the bias ([`coeffs::fold_shift`]: `f32` data in `f64`
/// lanes, and since 2026-12-03 half data in `f32` lanes) when every
/// channel's `|k|/sd` is within [`coeffs::fold_ratio`] (`f32`: `2^24`, the
/// fold's error, `|k·a|·2⁻⁵³ = |w|·(|k|/sd)·2⁻⁵³`, then stays below
/// `2⁻²⁹·|w|`; a constant channel far from 0 — `sd = √ε` — would otherwise
/// get `b ± |k·a|·2⁻⁵³`, 25 `f32` ulps off `b` at offset 1e8; `bf16`/`f16`:
/// `2^10`/`2^7`, below a sixteenth of the output's half ulp) and every scale
/// is finite (eval with eps 0 on a zero variance: `(x − k)·∞` is ±∞ or NaN
/// element by element, which the folded `x·∞ − k·∞` would turn into NaN).
/// `post` is applied in the same pass (`res` read only by [`Post::AddRelu`]).
pub fn rows<T: Lane>(
    lv: Level,
    g: &Rows,
    x: &[T],
    y: &mut [T],
    (kac, sd): ([&[f64]; 3], &[f64]),
    (res, post): (&[T], Post),
) {
    let [k, a, c] = kac;
    let lv = lv.streaming(plan::stream_rows::<T>(x.len(), k.len(), post.arrays()));
    let task = g.task_rows * g.sr.c;
    let ar = g.sr.rep(a);
    if coeffs::folds::<T>(k, sd) && a.iter().all(|v| v.is_finite()) {
        let b: Vec<f64> = (0..k.len()).map(|i| c[i] - k[i] * a[i]).collect();
        let coef = RowCoeffs::scale::<T>([&ar, &g.sr.rep(&b)]);
        rows_pass(task, y, |r, out| {
            let (xr, rr) = (&x[r.clone()], &res[r]);
            simd::rows_scale_post(lv, xr, rr, out, &coef, post)
        });
    } else {
        let coef = RowCoeffs::affine::<T>([&g.sr.rep(k), &ar, &g.sr.rep(c)]);
        rows_pass(task, y, |r, out| {
            let (xr, rr) = (&x[r.clone()], &res[r]);
            simd::rows_affine_post(lv, xr, rr, out, &coef, post)
        });
    }
}
