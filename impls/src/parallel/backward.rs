//! `parallel`'s backward: one pass for the per-channel sums (fixed groups,
//! added in group order), one pass writing `grad_input`.

use super::avx512::X86Sums as Sums;
use super::lanes::{self, LaneSums, LANES};
use super::plan::{self, RowPlan};
use super::stats::add_lanes;
use crate::element::Element;
use crate::engine::plan::{is_parallel, map_ordered, rows_pass, runs_pass};
use crate::formulas::GradCoeffs;
use crate::layout::{Dims, Layout};
use crate::problem::{Backward, GradMode};

/// The backward sums of one channel: `[Σ dy, Σ dy·(x − mean), Σ (x − mean)]`
/// with the given (rounded) `mean`.
type GradSums = [f64; 3];

#[inline]
fn add_sums(a: GradSums, b: GradSums) -> GradSums {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// [`GradSums`] of group `g` of channels `c0..c0 + cs` (contiguous), visited
/// like [`group_moments`].
fn group_grad_sums<T: Element>(
    x: &[T],
    dy: &[T],
    dims: Dims,
    (c0, cs): (usize, usize),
    g: usize,
    mean: &[f64],
) -> Vec<GradSums> {
    let mut acc = vec![[[0.0f64; LANES]; 3]; cs];
    for r in plan::group_pieces(dims, c0, g) {
        for (i, a) in acc.iter_mut().enumerate() {
            let o = r.start + i * dims.s..r.end + i * dims.s;
            let sums = Sums::grad(&x[o.clone()], &dy[o], mean[c0 + i]);
            for (a, v) in a.iter_mut().zip(&sums) {
                add_lanes(a, v);
            }
        }
    }
    acc.iter().map(|a| a.each_ref().map(lanes::hsum)).collect()
}

/// Gradient coefficients of channel `c` from its [`GradSums`].
///
/// With batch statistics the `f64` mean is the true batch mean rounded at
/// the scale of the data (with an offset of 1e6, by ~6e-11), and that error
/// times `Σ dy` would dominate the gradients of `f64` data. So the sums also
/// hold `Σ (x − mean)` (each `x − mean` exact by Sterbenz for clustered
/// data), whose average `d` is the correction `mean_true − mean`; then
/// `Σ dy·(x − mean_true) = Σ dy·(x − mean) − d·Σ dy`, and `−k_xmu·d` is
/// folded into `k_const` so that `dx = k_dy·dy + k_xmu·(x − mean) + k_const`
/// is taken about the true mean (as `welford`'s backward does with its
/// shift). With fixed statistics the mean is an exact input: no correction.
fn channel_grad_coeffs<T>(p: &Backward<'_, T>, m: usize, c: usize, sums: GradSums) -> GradCoeffs {
    let [s, t, u] = sums;
    let w = p.weight.map_or(1.0, |w| w[c]);
    let d = match p.mode {
        GradMode::Batch => u / m as f64,
        GradMode::Fixed => 0.0,
    };
    let mut k = GradCoeffs::new(p.mode, m, p.mean[c], p.var[c], p.eps, w, s, t - d * s);
    k.k_const -= k.k_xmu * d;
    k
}

/// Per-channel gradient coefficients from the sums; fills grad_weight/grad_bias.
fn grad_coeffs(
    p: &mut Backward<'_, impl Element>,
    sums: &[GradSums],
    dims: Dims,
) -> Vec<GradCoeffs> {
    let m = dims.per_channel();
    let k: Vec<GradCoeffs> = (sums.iter().enumerate())
        .map(|(c, &s)| channel_grad_coeffs(p, m, c, s))
        .collect();
    for (c, k) in k.iter().enumerate() {
        p.grad_weight[c] = k.grad_weight;
        p.grad_bias[c] = k.grad_bias;
    }
    k
}

/// Backward: one pass for the [`GradSums`], one pass writing `dx`.
pub fn backward<T: Element>(p: Backward<'_, T>) {
    match p.dims.canonical().layout {
        Layout::Contiguous => backward_contiguous(p),
        Layout::ChannelsLast => backward_rows(p),
    }
}

/// Contiguous backward: group sums of each channel (added in group order),
/// then `dx` run by run.
fn backward_contiguous<T: Element>(mut p: Backward<'_, T>) {
    let dims = p.dims.canonical();
    let (x, dy) = (p.x, p.dy);
    let (g, cb) = (plan::groups(dims), plan::stat_channels(dims));
    let items = map_ordered(is_parallel(dims), dims.c.div_ceil(cb) * g, |i| {
        let c0 = i / g * cb;
        group_grad_sums(x, dy, dims, (c0, cb.min(dims.c - c0)), i % g, p.mean)
    });
    let sums: Vec<GradSums> = (0..dims.c)
        .map(|c| {
            let item = |gi: usize| items[c / cb * g + gi][c % cb];
            (0..g).fold([0.0; 3], |a, gi| add_sums(a, item(gi)))
        })
        .collect();
    let k = grad_coeffs(&mut p, &sums, dims);
    runs_pass(dims, plan::TASK, p.dx, |c, r, out| {
        run_dx_or_scale(&x[r.clone()], &dy[r], out, &k[c])
    });
}

/// [`GradSums`] of every channel of a channels-last batch: fixed groups of
/// rows in parallel, added group-major (each channel's groups in order).
fn rows_grad_sums<T: Element>(p: &Backward<'_, T>, plan: &RowPlan, mrep: &[f64]) -> Vec<GradSums> {
    let dims = p.dims.canonical();
    let (x, dy) = (p.x, p.dy);
    let rows = dims.n * dims.s;
    let per_group = map_ordered(is_parallel(dims), rows.div_ceil(plan.group_rows), |g| {
        let r = g * plan.group_rows * plan.sr.c..((g + 1) * plan.group_rows).min(rows) * plan.sr.c;
        let [mut s, mut t, mut u] = [0; 3].map(|_| vec![0.0; plan.sr.l]);
        let st = [&mut s, &mut t, &mut u].map(|v| v.as_mut_slice());
        lanes::rows_grad_sums(&x[r.clone()], &dy[r], plan.sr.c, mrep, st);
        [&s, &t, &u].map(|v| {
            let mut f = vec![0.0; plan.sr.c];
            plan.sr.fold(v, &mut f);
            f
        })
    });
    let mut sums: Vec<GradSums> = vec![[0.0; 3]; dims.c];
    for [s, t, u] in &per_group {
        for (c, a) in sums.iter_mut().enumerate() {
            *a = add_sums(*a, [s[c], t[c], u[c]]);
        }
    }
    sums
}

/// Channels-last backward: row-group sums, then `dx` over whole rows.
fn backward_rows<T: Element>(mut p: Backward<'_, T>) {
    let dims = p.dims.canonical();
    let plan = RowPlan::new(dims.c);
    let mrep = plan.sr.rep(p.mean);
    let sums = rows_grad_sums(&p, &plan, &mrep);
    let k = grad_coeffs(&mut p, &sums, dims);
    let rep = |f: fn(&GradCoeffs) -> f64| plan.sr.rep(&k.iter().map(f).collect::<Vec<_>>());
    let (kd, kx, kc) = (rep(|k| k.k_dy), rep(|k| k.k_xmu), rep(|k| k.k_const));
    let zeros = vec![0.0; plan.sr.l];
    let (x, dy, batch) = (p.x, p.dy, p.mode == GradMode::Batch);
    rows_pass(plan.task_rows * plan.sr.c, p.dx, |r, out| {
        if batch {
            lanes::rows_dx(&x[r.clone()], &dy[r], out, dims.c, [&mrep, &kd, &kx, &kc]);
        } else {
            lanes::rows_affine(&dy[r], out, dims.c, &zeros, &kd, &zeros);
        }
    });
}

/// `dx` of one run piece: the full formula, or `k_dy·dy` with fixed
/// statistics (where `x` must not be read: a NaN in `x` must not reach `dx`).
#[inline]
fn run_dx_or_scale<T: Element>(x: &[T], dy: &[T], out: &mut [T], k: &GradCoeffs) {
    if k.uses_x {
        lanes::run_dx(x, dy, out, k.mean, [k.k_dy, k.k_xmu, k.k_const]);
    } else {
        lanes::run_affine(dy, out, 0.0, k.k_dy, 0.0);
    }
}
