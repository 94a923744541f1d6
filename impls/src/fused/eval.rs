//! Eval forward (given statistics), and the channels-last normalize pass
//! the training forward shares: one read and one write of the tensor.

use super::coeffs::{self, inv_std};
use super::plan::{self, Rows};
use super::simd::{self, Lane, Level};
use crate::engine::plan::{rows_pass, runs_pass};
use crate::layout::Layout;
use crate::problem::EvalForward;

/// `y = (x − mean)·a + b`, `a = w/√(var + ε)` (Ioffe & Szegedy 2015, Alg. 1).
pub fn forward<T: Lane>(p: EvalForward<'_, T>) {
    let dims = p.dims.canonical();
    let lv = Level::detected();
    let a: Vec<f64> = (0..dims.c)
        .map(|c| p.affine.weight(c) * inv_std(p.var[c], p.eps))
        .collect();
    let b: Vec<f64> = (0..dims.c).map(|c| p.affine.bias(c)).collect();
    let (x, mean) = (p.x, p.mean);
    match dims.layout {
        Layout::Contiguous => runs_pass(dims, plan::TASK, p.y, |c, r, out| {
            simd::run_affine(lv, &x[r], out, mean[c], a[c], b[c])
        }),
        Layout::ChannelsLast => rows(lv, &Rows::new(dims.c), x, p.y, [mean, &a, &b]),
    }
}

/// Channels-last `y = (x − k)·a + c` per channel (`kac = [k, a, c]`, one
/// value per channel), tasks of whole super-rows. Data of at most 25 bits
/// fold the shift into the bias ([`coeffs::fold_shift`]) — unless a scale is
/// not finite (eval with eps 0 on a zero variance): `(x − k)·∞` is ±∞ or NaN
/// element by element, which the folded `x·∞ − k·∞` would turn into NaN.
pub fn rows<T: Lane>(lv: Level, g: &Rows, x: &[T], y: &mut [T], kac: [&[f64]; 3]) {
    let [k, a, c] = kac;
    let task = g.task_rows * g.sr.c;
    let ar = g.sr.rep(a);
    if coeffs::fold_shift::<T>() && a.iter().all(|v| v.is_finite()) {
        let b: Vec<f64> = (0..k.len()).map(|i| c[i] - k[i] * a[i]).collect();
        let br = g.sr.rep(&b);
        rows_pass(task, y, |r, out| {
            simd::rows_scale(lv, &x[r], out, [&ar, &br])
        });
    } else {
        let (kr, cr) = (g.sr.rep(k), g.sr.rep(c));
        rows_pass(task, y, |r, out| {
            simd::rows_affine(lv, &x[r], out, [&kr, &ar, &cr])
        });
    }
}
