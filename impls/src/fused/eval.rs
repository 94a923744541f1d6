//! Eval forward (given statistics), and the channels-last normalize pass
//! the training forward shares: one read and one write of the tensor.

use super::coeffs::inv_std;
use super::plan::{self, Rows};
use super::simd::{self, Lane, Level, Post, RowCoeffs};
use crate::engine::plan::{rows_pass, runs_pass};
use crate::layout::Layout;
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
    let lv = Level::detected();
    let a: Vec<f64> = (0..dims.c)
        .map(|c| p.affine.weight(c) * inv_std(p.var[c], p.eps))
        .collect();
    let b: Vec<f64> = (0..dims.c).map(|c| p.affine.bias(c)).collect();
    let (x, mean) = (p.x, p.mean);
    match dims.layout {
        Layout::Contiguous => runs_pass(dims, plan::TASK, p.y, |c, r, out| {
            let (xr, rr) = (&x[r.clone()], &res[r]);
            simd::run_affine_post(lv, xr, rr, out, mean[c], a[c], b[c], post)
        }),
        Layout::ChannelsLast => {
            let kab = [mean, &a[..], &b[..]];
            rows(lv, &Rows::new(dims.c), x, p.y, kab, (res, post))
        }
    }
}

/// Channels-last `y = (x − k)·a + c` per channel (`kac = [k, a, c]`, one
/// value per channel), tasks of whole super-rows, in `T`'s element-wise
/// precision ([`simd::prec`]). `post` is applied in the same pass (`res`
/// read only by [`Post::AddRelu`]).
pub fn rows<T: Lane>(
    lv: Level,
    g: &Rows,
    x: &[T],
    y: &mut [T],
    kac: [&[f64]; 3],
    (res, post): (&[T], Post),
) {
    let task = g.task_rows * g.sr.c;
    let [k, a, c] = kac.map(|v| g.sr.rep(v));
    let coef = RowCoeffs::affine::<T>([&k, &a, &c]);
    rows_pass(task, y, |r, out| {
        let (xr, rr) = (&x[r.clone()], &res[r]);
        simd::rows_affine_post(lv, xr, rr, out, &coef, post)
    });
}
