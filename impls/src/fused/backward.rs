//! Backward: the three per-channel sums `Σdy`, `Σdy·(x − K)`, `Σ(x − K)`
//! in one read of `x` and `dy` (`K` = the given mean; half data in long
//! contiguous runs: six sums in `f32` blocks about a shifted `dy` too,
//! [`simd::grad_narrow`]), then the `dx` pass —
//! back to back per channel while it is in cache when it fits, and there
//! pipelined: one channel task's `dx` beside the next task's sums.
//!
//! The ReLU backward ([`backward_relu`]) has the same two passes: `dy` is
//! masked by the output `y` (`y <= 0 → 0`) as it is loaded, in the
//! reduction pass and again in the `dx` pass (which also writes the
//! residual's gradient) — it reads `y` twice but never writes or re-reads
//! a masked copy of `dy`, unlike the default composition.

use super::coeffs::{self, Grad, NarrowGradBound};
use super::plan::{self, Pass, Rows};
use super::reduce::{self, Stretch};
use super::simd::grad_narrow::{NarrowGrad, NARROW_GRAD_SUMS};
use super::simd::per_channel::GradSums;
use super::simd::runs::{self, NARROW_SUM_BITS};
use super::simd::{self, Lane, Level, Post, RowCoeffs, RowsDx, RunAcc, RunCoeffs};
use super::task_rule::TaskOp;
use crate::engine::awake::Awake;
use crate::engine::plan::{
    is_parallel, rows_pass, rows_pass_pair, runs_task_pass, runs_task_pass_pair,
    stretches_by_channel_task,
};
use crate::engine::scratch::Scratch;
use crate::layout::{Dims, Layout};
use crate::problem::{Backward, GradMode};
use rayon::prelude::*;
use std::ops::Range;

/// The per-channel inputs of the coefficients, copied out of [`Backward`]
/// so tasks can share them while `dx` is borrowed mutably.
#[derive(Clone, Copy)]
struct Params<'a> {
    mode: GradMode,
    m: usize,
    weight: Option<&'a [f64]>,
    mean: &'a [f64],
    /// `√(var + ε)` per channel ([`simd::std_inv`]).
    sd: &'a [f64],
    /// `1/√(var + ε)` per channel ([`simd::std_inv`]).
    inv: &'a [f64],
}

impl Params<'_> {
    /// Inlined into the per-channel loops: called out of line, 1024
    /// channels took 25–30 µs instead of 7 (2-core Xeon VM, 32×1024, same
    /// process) — as long as the whole `dx` pass of that shape.
    #[inline(always)]
    fn grad(&self, c: usize, sums: [f64; 3]) -> Grad {
        coeffs::grad(self.mode, self.m, self.inv[c], self.w(c), sums)
    }

    /// [`Params::grad`] from sums about a shifted `dy` too
    /// ([`coeffs::grad_shifted`]; batch statistics).
    #[inline(always)]
    fn grad_shifted(&self, c: usize, d0: f32, sums: [f64; 3]) -> Grad {
        coeffs::grad_shifted(self.m, self.inv[c], self.w(c), d0 as f64, sums)
    }

    /// Channel `c`'s weight (1 without one).
    #[inline(always)]
    fn w(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| w[c])
    }
}

/// Gradients of `x`, weight and bias.
pub fn backward<T: Lane>(p: Backward<'_, T>) {
    backward_relu(p, None, None)
}

/// [`backward`] of `relu(bn(x) [+ residual])` when `yo` (the activated
/// output) is given: `dy` masked by `yo` inside both passes, and the
/// masked `dy` written to `dres` (the residual's gradient) in the `dx` pass.
pub fn backward_relu<T: Lane>(p: Backward<'_, T>, yo: Option<&[T]>, dres: Option<&mut [T]>) {
    let dims = p.dims.canonical();
    // The other workers stay awake through the serial steps between passes.
    let _awake = Awake::new(is_parallel(dims));
    let lv = Level::detected();
    let (sd, inv) = simd::std_inv(lv, p.var, p.eps);
    let pr = Params {
        mode: p.mode,
        m: dims.per_channel(),
        weight: p.weight,
        mean: p.mean,
        sd: &sd,
        inv: &inv,
    };
    let out = Out { dx: p.dx, dres };
    let grads = match dims.layout {
        Layout::Contiguous => contiguous(p.x, p.dy, yo, out, dims, lv, pr),
        Layout::ChannelsLast => {
            let gwb = (p.grad_weight, p.grad_bias);
            return channels_last(p.x, p.dy, yo, (out, gwb), dims, lv, pr);
        }
    };
    for ((g, w), b) in grads.iter().zip(p.grad_weight).zip(p.grad_bias) {
        *w = g.weight;
        *b = g.bias;
    }
}

/// The outputs of the element-wise pass: `dx`, and the residual's gradient.
struct Out<'a, T> {
    dx: &'a mut [T],
    dres: Option<&'a mut [T]>,
}

impl<T> Out<'_, T> {
    /// Tensor-sized arrays the `dx` pass reads and writes: `x`, `dy`, the
    /// ReLU output `yo` when given, `dx`, and the residual's gradient
    /// (the footprint [`plan::stream`] compares with the L3).
    fn pass_arrays(&self, relu: bool) -> usize {
        3 + usize::from(relu) + usize::from(self.dres.is_some())
    }
}

fn contiguous<T: Lane>(
    x: &[T],
    dy: &[T],
    yo: Option<&[T]>,
    out: Out<'_, T>,
    dims: Dims,
    lv: Level,
    pr: Params<'_>,
) -> Vec<Grad> {
    let s = dims.s;
    let arrays = if yo.is_some() { 3 } else { 2 };
    let bytes = arrays * dims.per_channel() * std::mem::size_of::<T>();
    let tasks = plan::channel_tasks(TaskOp::Backward, dims, bytes, std::mem::size_of::<T>());
    // The sums prefetch past the caches (channel tasks: along long runs);
    // the `dx` pass may stream its output (by task stretches in channel
    // tasks, else swept across runs).
    let lvr = lv.streaming(plan::prefetch_contiguous::<T>(dims, tasks.is_some()));
    let dx_arrays = out.pass_arrays(yo.is_some());
    let f = move |st: Stretch, acc: &mut [RunAcc<3>]| {
        let r = st.offset..st.offset + st.runs * s;
        let v = (&x[r.clone()], &dy[r.clone()], yo.map(|yo| &yo[r]));
        let k = &pr.mean[st.c..st.c + st.runs];
        simd::runs_grad(lvr, v, s, st.next, k, acc)
    };
    // Half data in long runs with batch statistics: the sums in `f32`
    // blocks about shifted `dy` and `x` ([`simd::grad_narrow`]), the shift
    // `d0` a value of (masked) `dy` near its mean ([`reduce::shifts_masked`]: the
    // ReLU backward sums what the composition's masked copy holds, bit
    // for bit).
    let narrow = pr.mode == GradMode::Batch && runs::narrow_sums::<T>(s);
    let d0: Vec<f32> = match narrow {
        true => reduce::shifts_masked(dy, yo, dims)
            .iter()
            .map(|&v| v as f32)
            .collect(),
        false => Vec::new(),
    };
    let f_narrow = |st: Stretch, acc: &mut [NarrowGrad]| {
        let r = st.offset..st.offset + st.runs * s;
        let v = (&x[r.clone()], &dy[r.clone()], yo.map(|yo| &yo[r]));
        let c = st.c..st.c + st.runs;
        simd::runs_grad_narrow(lvr, v, s, st.next, (&pr.mean[c.clone()], &d0[c]), acc)
    };
    let sums = ChannelGrads {
        dims,
        pr,
        wide: &f,
        narrow: narrow.then_some((
            &f_narrow,
            &d0[..],
            NarrowGradBound::of::<T>(NARROW_SUM_BITS),
        )),
    };
    let Out { dx, dres } = out;
    if let Some(cpt) = tasks {
        // The `dx` pass reads what the task's sums just brought into cache
        // (and prefetches on where the L2 is small: `plan::task_pass_level`).
        let lvs = lv.streaming(plan::stream_task_runs::<T>(dims, Pass::Dx, dx_arrays));
        let lvs = plan::task_pass_level(lvs);
        let tasks = stretches_by_channel_task(dx, dims, cpt);
        // Without the ReLU, in `f64` lanes, in cache: pipelined where it pays.
        let plain = yo.is_none() && dres.is_none() && pr.mode == GradMode::Batch;
        let cache = !lvr.streams() && !lvs.streams();
        if plain && !T::NARROW && cache && plan::pipelined_tasks(dims) {
            return pipelined(tasks, (dims, cpt), (x, dy), lv, pr, &f);
        }
        let n = tasks.len();
        let tasks2: Vec<Option<Vec<&mut [T]>>> = match dres {
            Some(d) => stretches_by_channel_task(d, dims, cpt)
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..n).map(|_| None).collect(),
        };
        let per_task: Vec<Vec<Grad>> = tasks
            .into_par_iter()
            .zip(tasks2)
            .enumerate()
            .map(|(t, (mut outs, mut outs2))| {
                let (c0, cs) = (t * cpt, cpt.min(dims.c - t * cpt));
                let g = sums.block((c0, cs));
                let c = DxCoeffs::new::<T>(&g, &pr.mean[c0..c0 + cs]);
                // Each batch row's runs of the task's channels in one call.
                for (row, out) in outs.iter_mut().enumerate() {
                    let o = dims.offset(row, c0, 0);
                    let r = o..o + out.len();
                    let d2 = outs2.as_mut().map(|d| &mut *d[row]);
                    let v = (&x[r.clone()], &dy[r.clone()], yo.map(|yo| &yo[r]));
                    dx_stretch(lvs, v, (out, d2), s, (&c, 0), pr.mode);
                }
                g
            })
            .collect();
        return per_task.into_iter().flatten().collect();
    }
    let g = sums.all(is_parallel(dims));
    let lva = lv.streaming(plan::stream_sweep::<T>(dims, Pass::Dx, dx_arrays));
    let c = DxCoeffs::new::<T>(&g, pr.mean);
    let part = move |r: Range<usize>| (&x[r.clone()], &dy[r.clone()], yo.map(|yo| &yo[r]));
    match dres {
        Some(d) => runs_task_pass_pair(dims, plan::TASK, dx, d, |c0, r, out, out2| {
            dx_stretch(lva, part(r), (out, Some(out2)), s, (&c, c0), pr.mode)
        }),
        None => runs_task_pass(dims, plan::TASK, dx, |c0, r, out| {
            dx_stretch(lva, part(r), (out, None), s, (&c, c0), pr.mode)
        }),
    }
    g
}

/// Contiguous backward's per-channel sums, as gradients: in `f64` lanes
/// (`wide`), or for half data in long runs with batch statistics
/// (`narrow`: the kernel, the `dy` shifts `d0`, their bound) in `f32`
/// blocks about shifted `dy` and `x`, where a channel past
/// [`NarrowGradBound::holds`] is summed again in `f64` lanes. A channel's
/// sums do not depend on the schedule, and neither does that choice.
struct ChannelGrads<'a, F, N> {
    dims: Dims,
    pr: Params<'a>,
    wide: &'a F,
    narrow: Option<(&'a N, &'a [f32], NarrowGradBound)>,
}

impl<F: reduce::RunFn<3>, N: reduce::RunFn<NARROW_GRAD_SUMS>> ChannelGrads<'_, F, N> {
    /// Channels `c0..c0 + cs`.
    fn block(&self, (c0, cs): (usize, usize)) -> Vec<Grad> {
        match self.narrow {
            Some((n, d0, g)) => {
                let sums = reduce::channels(self.dims, (c0, cs), n);
                self.checked(c0, sums, (d0, g))
            }
            None => self.wide(c0, reduce::channels(self.dims, (c0, cs), self.wide)),
        }
    }

    /// Every channel, in parallel when `par`.
    fn all(&self, par: bool) -> Vec<Grad> {
        match self.narrow {
            Some((n, d0, g)) => self.checked(0, reduce::all_channels(self.dims, par, n), (d0, g)),
            None => self.wide(0, reduce::all_channels(self.dims, par, self.wide)),
        }
    }

    /// Gradients of channels `c0..` from `f64`-lane sums.
    fn wide(&self, c0: usize, sums: Vec<[f64; 3]>) -> Vec<Grad> {
        let it = sums.into_iter().enumerate();
        it.map(|(i, s)| self.pr.grad(c0 + i, s)).collect()
    }

    /// Gradients of channels `c0..` from `f32`-block sums about the `dy`
    /// shifts `d0` where they hold ([`NarrowGradBound::holds`]), else from
    /// the channel's sums in `f64` lanes.
    fn checked(
        &self,
        c0: usize,
        sums: Vec<[f64; NARROW_GRAD_SUMS]>,
        (d0, bound): (&[f32], NarrowGradBound),
    ) -> Vec<Grad> {
        let pr = self.pr;
        let it = sums.into_iter().enumerate().map(|(i, s)| (c0 + i, s));
        it.map(|(c, s)| match bound.holds(pr.m, pr.inv[c], s) {
            true => pr.grad_shifted(c, d0[c], [s[0], s[1], s[2]]),
            false => pr.grad(c, reduce::channels(self.dims, (c, 1), self.wide)[0]),
        })
        .collect()
    }
}

/// The per-channel coefficients of the contiguous `dx` passes, built once
/// per operation (or channel task): `[k, kd, kx, kc]`, and the scale
/// `[0, kd, −0]` of fixed statistics without the ReLU.
struct DxCoeffs {
    dx: Vec<RunCoeffs<4>>,
    fixed: Vec<RunCoeffs<3>>,
}

impl DxCoeffs {
    /// For channels with gradients `g` and means `mean` (as many).
    fn new<T: Lane>(g: &[Grad], mean: &[f64]) -> Self {
        let dx = (g.iter().zip(mean))
            .map(|(g, &k)| RunCoeffs::dx::<T>([k, g.kd, g.kx, g.kc]))
            .collect();
        let fixed = g
            .iter()
            .map(|g| RunCoeffs::affine::<T>([0.0, g.kd, -0.0]))
            .collect();
        Self { dx, fixed }
    }
}

/// The `dx` pass over consecutive runs of `s` values in address order, the
/// first of channel `c0` of `c` (`v = (x, dy, yo)`): with `yo`, `dy` masked
/// by the ReLU output and the masked `dy` written to `dres` when given
/// ([`simd::runs_dx_relu`]); without, the full formula ([`simd::runs_dx`])
/// or, with fixed statistics, `dx = kd·dy − 0` (`x` unread, so a NaN in `x`
/// cannot reach `dx`; −0 keeps the product's bits).
fn dx_stretch<T: Lane>(
    lv: Level,
    (x, dy, yo): (&[T], &[T], Option<&[T]>),
    (out, dres): (&mut [T], Option<&mut [T]>),
    s: usize,
    (c, c0): (&DxCoeffs, usize),
    mode: GradMode,
) {
    let fixed = mode == GradMode::Fixed;
    match (yo, fixed) {
        (Some(yo), _) => simd::runs_dx_relu(lv, [x, dy, yo], out, dres, s, (&c.dx, c0), fixed),
        (None, false) => simd::runs_dx(lv, (x, dy, out), s, (&c.dx, c0)),
        (None, true) => simd::runs_affine_post(lv, (dy, dy, out), s, (&c.fixed, c0), Post::Plain),
    }
}

/// Channels-last backward; the weight and bias gradients go to `gwb`.
fn channels_last<T: Lane>(
    x: &[T],
    dy: &[T],
    yo: Option<&[T]>,
    (out, gwb): (Out<'_, T>, (&mut [f64], &mut [f64])),
    dims: Dims,
    lv: Level,
    pr: Params<'_>,
) {
    let (g, rows) = (Rows::new(dims.c), dims.n * dims.s);
    let kr = g.sr.rep(pr.mean);
    let lvr = lv.streaming(plan::prefetch_rows::<T>(x.len(), dims.c));
    let sums = reduce::rows::<3>(&g, rows, is_parallel(dims), |r, acc| match yo {
        Some(yo) => simd::rows_grad_relu(lvr, &x[r.clone()], &dy[r.clone()], &yo[r], &kr, acc),
        None => simd::rows_grad(lvr, &x[r.clone()], &dy[r], &kr, acc),
    });
    let mut ones = Scratch::zeroed(if pr.weight.is_some() { 0 } else { dims.c });
    ones.fill(1.0);
    let gs = GradSums {
        mode: pr.mode,
        m: pr.m,
        inv: pr.inv,
        weight: pr.weight.unwrap_or(&ones),
        sums: sums.each_ref().map(|v| &v[..]),
    };
    let [kd, kx, kc] = simd::grad_coeffs(lv, &gs, gwb.0, gwb.1);
    let task = g.task_rows * dims.c;
    let fixed = pr.mode == GradMode::Fixed;
    // Fixed statistics never read `x`: nothing to fold.
    let folded = if fixed {
        None
    } else {
        folded_kc::<T>(&pr, [&kd, &kx, &kc])
    };
    let [kd, kx] = [&kd, &kx].map(|v| g.sr.rep(v));
    let coef = match folded {
        Some(kc) => RowsDx::folded::<T>([&kd, &kx, &g.sr.rep(&kc)]),
        None => RowsDx::shifted::<T>([&kr, &kd, &kx, &g.sr.rep(&kc)]),
    };
    // The `dx` pass may stream its output.
    let dx_arrays = out.pass_arrays(yo.is_some());
    let lv = lv.streaming(plan::stream_out::<T>(x.len(), dx_arrays));
    let Out { dx, dres } = out;
    match (yo, dres) {
        (Some(yo), Some(d)) => rows_pass_pair(task, dx, d, |r, out, out2| {
            let v = [&x[r.clone()], &dy[r.clone()], &yo[r]];
            simd::rows_dx_relu(lv, v, out, Some(out2), &coef, fixed)
        }),
        (Some(yo), None) => rows_pass(task, dx, |r, out| {
            let v = [&x[r.clone()], &dy[r.clone()], &yo[r]];
            simd::rows_dx_relu(lv, v, out, None, &coef, fixed)
        }),
        (None, _) => {
            // Fixed statistics: `dx = kd·dy − 0` (`x` unread; −0 keeps the
            // product's bits).
            match pr.mode {
                GradMode::Batch => rows_pass(task, dx, |r, out| {
                    simd::rows_dx(lv, &x[r.clone()], &dy[r], out, &coef)
                }),
                GradMode::Fixed => {
                    let scale = RowCoeffs::scale::<T>([&kd, &vec![-0.0; g.sr.l]]);
                    rows_pass(task, dx, |r, out| simd::rows_scale(lv, &dy[r], out, &scale))
                }
            }
        }
    }
}

/// `kc − kx·K` per channel (`c = [kd, kx, kc]`), the channels-last `dx`
/// pass's shift folded into its constant ([`RowsDx::Folded`]: one
/// coefficient stream fewer), where [`coeffs::folds_dx`] bounds the fold's
/// error and every folded coefficient is finite; `None` keeps the shift,
/// so a NaN or infinite channel (`inv = ∞`) gets `f64`'s NaNs and
/// infinities element by element, as before the fold.
fn folded_kc<T: Lane>(pr: &Params<'_>, [kd, kx, kc]: [&[f64]; 3]) -> Option<Vec<f64>> {
    if !coeffs::folds_dx::<T>(pr.mean, pr.sd) {
        return None;
    }
    let out: Vec<f64> = (0..kc.len()).map(|c| kc[c] - kx[c] * pr.mean[c]).collect();
    let finite = |v: &[f64]| v.iter().all(|v| v.is_finite());
    (finite(kd) && finite(kx) && finite(&out)).then_some(out)
}

/// Channel tasks (without the ReLU, batch statistics, `f64` lanes, levels
/// that do not stream) as pipelines over consecutive tasks: the `dx` pass
/// of task `t` runs batch row by batch row beside the sums of task `t + 1`
/// ([`simd::runs_grad_dx`]), so the sums' loads from memory overlap the
/// `dx` arithmetic on data in cache instead of following it. Each pipeline
/// (one per thread, two per thread in a larger pool) starts with its first
/// task's sums alone and ends with its last task's `dx` alone. The sums are
/// those of [`reduce::channels`] bit for bit, so the bits do not depend on
/// the schedule.
fn pipelined<T: Lane>(
    tasks: Vec<Vec<&mut [T]>>,
    (dims, cpt): (Dims, usize),
    (x, dy): (&[T], &[T]),
    lv: Level,
    pr: Params<'_>,
    f: &impl reduce::RunFn<3>,
) -> Vec<Grad> {
    let threads = rayon::current_num_threads();
    let lines = if threads == 1 { 1 } else { 2 * threads };
    let per = tasks.len().div_ceil(lines.min(tasks.len()).max(1));
    let mut groups = Vec::new();
    let mut it = tasks.into_iter();
    for t0 in (0..it.len()).step_by(per.max(1)) {
        groups.push((t0, it.by_ref().take(per).collect::<Vec<_>>()));
    }
    let pipe = Pipe {
        dims,
        cpt,
        x,
        dy,
        lv,
        pr,
        f,
    };
    let per_group: Vec<Vec<Grad>> = groups
        .into_par_iter()
        .map(|(t0, group)| pipe.line(group, t0))
        .collect();
    per_group.into_iter().flatten().collect()
}

/// What every pipeline of [`pipelined`] shares.
struct Pipe<'a, T, F> {
    dims: Dims,
    cpt: usize,
    x: &'a [T],
    dy: &'a [T],
    lv: Level,
    pr: Params<'a>,
    f: &'a F,
}

impl<T: Lane, F: reduce::RunFn<3>> Pipe<'_, T, F> {
    /// One pipeline: tasks `t0..t0 + group.len()`.
    fn line(&self, group: Vec<Vec<&mut [T]>>, t0: usize) -> Vec<Grad> {
        let Pipe {
            dims,
            cpt,
            x,
            dy,
            lv,
            pr,
            f,
        } = *self;
        let s = dims.s;
        let block = |t: usize| (t * cpt, cpt.min(dims.c - t * cpt));
        let end = t0 + group.len();
        let mut grads = Vec::new();
        let mut sums = reduce::channels(dims, block(t0), f);
        for (t, mut outs) in (t0..end).zip(group) {
            let (c0, cs) = block(t);
            let g: Vec<Grad> = (0..cs).map(|i| pr.grad(c0 + i, sums[i])).collect();
            let c = DxCoeffs::new::<T>(&g, &pr.mean[c0..c0 + cs]);
            let next = (t + 1 < end).then(|| block(t + 1));
            let mut rows = reduce::RowSums::<3>::new(dims, next.map_or(0, |b| b.1));
            // Lock step needs stretches of one shape and `f64` coefficients.
            let wide = c.dx.iter().all(|c| c.is_in::<f64>());
            let c64: Vec<[f64; 4]> = c.dx.iter().map(|c| c.lanes::<f64>()).collect();
            for (row, out) in outs.iter_mut().enumerate() {
                let o = dims.offset(row, c0, 0);
                let r = o..o + out.len();
                let v = [&x[r.clone()], &dy[r]];
                // With the next task: in lock step where the stretches have one
                // shape, else this row's `dx`, then the next task's row.
                let st = next.map(|nb| (nb, Stretch::of(dims, row, nb)));
                if let Some((nb, st)) = st.filter(|(nb, _)| nb.1 == cs && wide) {
                    let r1 = st.offset..st.offset + cs * s;
                    let (red, k) = ([&x[r1.clone()], &dy[r1]], &pr.mean[nb.0..nb.0 + cs]);
                    simd::runs_grad_dx(lv, red, (k, rows.lanes()), v, out, (&c64, s));
                } else {
                    let (v, outs) = ((v[0], v[1], None), (&mut **out, None));
                    dx_stretch(lv, v, outs, s, (&c, 0), pr.mode);
                    if let Some((_, st)) = st {
                        f(st, rows.lanes());
                    }
                }
                rows.row_done(row);
            }
            grads.extend(g);
            sums = rows.sums();
        }
        grads
    }
}
