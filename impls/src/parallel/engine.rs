//! Orchestration of the three operations over the fixed plan of [`super::plan`],
//! generic over the inner loops ([`Backend`]) and one option that only
//! `fused` turns on (cache blocking by channel).

use super::avx512::X86Sums as Sums;
use super::lanes::{self, LaneSums, RowScratch, LANES};
use super::plan::{self, RowPlan};
use crate::element::Element;
use crate::engine::plan::{is_parallel, map_ordered, rows_pass, runs_by_channel_task, runs_pass};
use crate::formulas::{GradCoeffs, NormCoeffs};
use crate::layout::{Dims, Layout};
use crate::moments::Moments;
use crate::problem::{Affine, Backward, EvalForward, GradMode, TrainForward};
use rayon::prelude::*;

/// The inner loops over a run (contiguous) or whole rows (channels-last);
/// see [`lanes`] for what each computes.
pub trait Backend {
    fn rows_moments<T: Element>(
        x: &[T],
        plan: &RowPlan,
        k: &[f64],
        w: &mut RowScratch,
        out: &mut [Moments],
    );
    fn run_affine<T: Element>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64);
    fn rows_affine<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 3]);
    fn rows_scale<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 2]);
    fn rows_grad_sums<T: Element>(x: &[T], dy: &[T], c: usize, mean: &[f64], st: [&mut [f64]; 3]);
    fn run_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], mean: f64, k: [f64; 3]);
    fn rows_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], c: usize, k: [&[f64]; 4]);
}

/// The inner loops compiled for the baseline target (what `parallel` uses).
pub struct Portable;

impl Backend for Portable {
    fn rows_moments<T: Element>(
        x: &[T],
        plan: &RowPlan,
        k: &[f64],
        w: &mut RowScratch,
        out: &mut [Moments],
    ) {
        lanes::rows_moments(x, plan.c, k, plan.tile_rows, w, out)
    }
    fn run_affine<T: Element>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
        lanes::run_affine(x, y, k, a, b)
    }
    fn rows_affine<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 3]) {
        lanes::rows_affine(x, y, c, k[0], k[1], k[2])
    }
    fn rows_scale<T: Element>(x: &[T], y: &mut [T], c: usize, k: [&[f64]; 2]) {
        lanes::rows_scale(x, y, c, k[0], k[1])
    }
    fn rows_grad_sums<T: Element>(x: &[T], dy: &[T], c: usize, mean: &[f64], st: [&mut [f64]; 3]) {
        lanes::rows_grad_sums(x, dy, c, mean, st)
    }
    fn run_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], mean: f64, k: [f64; 3]) {
        lanes::run_dx(x, dy, dx, mean, k)
    }
    fn rows_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], c: usize, k: [&[f64]; 4]) {
        lanes::rows_dx(x, dy, dx, c, k)
    }
}

/// How the work is scheduled (never what is computed).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Contiguous layout: give each task whole channels, so a channel's slice
    /// is re-read from L2 by the second pass instead of DRAM.
    pub channel_tasks: bool,
}

/// A channel-task's bytes per pass above which a channel's slice is not
/// expected to stay in L2 (1 MiB per core here) plus its share of L3.
const CHANNEL_CACHE: usize = 2 << 20;
/// Shortest runs (S) for which per-channel tasks pay: with short runs a
/// task's second pass jumps between many short stretches and measured slower
/// than the address-ordered pass (64×512×7×7, 256×1024×64 on the 2-core
/// EPYC VM), while 64×64×56×56 (S = 3136) gained.
const CHANNEL_TASK_MIN_RUN: usize = 1024;
/// Bytes of input a channel task aims for.
const CHANNEL_TASK: usize = 256 << 10;

/// Moments of group `g` of channels `c0..c0 + cs` (contiguous), relative to
/// the shifts: the corrected two-pass algorithm over the group's run pieces
/// (the group, ≤ 256 KiB of `f32` per channel, is re-read from L2 by the
/// second pass). Memory is visited piece by piece and, within a piece,
/// channel by channel — i.e. in address order when runs are short — while
/// each channel's lanes still see its pieces in order, so the result does
/// not depend on how channels are batched.
fn group_moments<T: Element>(
    x: &[T],
    dims: Dims,
    c0: usize,
    cs: usize,
    g: usize,
    shift: &[f64],
) -> Vec<Moments> {
    let pieces = || plan::group_pieces(dims, c0, g);
    let at = |r: &std::ops::Range<usize>, i: usize| &x[r.start + i * dims.s..r.end + i * dims.s];
    let n: usize = pieces().map(|r| r.len()).sum();
    let nf = n as f64;
    // Pass 1: Σd and Σd² (d = x − K), in f64. The one-pass
    // M2 = Σd² − (Σd)²/n loses log2(Σd²/M2) bits to cancellation. For f64
    // data it is used when that is at most 1 bit (as accurate as the
    // corrected two-pass result); for f32 data when it is at most 16 bits
    // (f64 then still carries 2⁻³⁷ relative, far below f32's 2⁻²⁴). Then
    // the group is done with one read; otherwise (K far from the group's
    // mean, e.g. an outlier first value) pass 2 runs for that channel.
    let (mut d1, mut d2) = (vec![[0.0f64; LANES]; cs], vec![[0.0f64; LANES]; cs]);
    for r in pieces() {
        for i in 0..cs {
            let [a, b] = Sums::shifted_sq(at(&r, i), shift[c0 + i]);
            add_lanes(&mut d1[i], &a);
            add_lanes(&mut d2[i], &b);
        }
    }
    let max_loss = lanes::one_pass_max_loss::<T>();
    let one_pass: Vec<Option<Moments>> = (0..cs)
        .map(|i| {
            let (a, b) = (lanes::hsum(&d1[i]), lanes::hsum(&d2[i]));
            let c = a * (a / nf);
            ((b - c) * max_loss >= b).then(|| Moments {
                count: n as u64,
                mean: a / nf,
                m2: b - c,
            })
        })
        .collect();
    if one_pass.iter().all(Option::is_some) {
        return one_pass.into_iter().flatten().collect();
    }
    let mb: Vec<f64> = d1.iter().map(|a| lanes::hsum(a) / nf).collect();
    let (mut s1, mut s2) = (vec![[0.0f64; LANES]; cs], vec![[0.0f64; LANES]; cs]);
    for r in pieces() {
        for i in (0..cs).filter(|&i| one_pass[i].is_none()) {
            let [a, b] = Sums::deviations(at(&r, i), shift[c0 + i], mb[i]);
            add_lanes(&mut s1[i], &a);
            add_lanes(&mut s2[i], &b);
        }
    }
    (0..cs)
        .map(|i| {
            one_pass[i].unwrap_or_else(|| {
                let (a, b) = (lanes::hsum(&s1[i]), lanes::hsum(&s2[i]));
                Moments {
                    count: n as u64,
                    mean: mb[i] + a / nf,
                    m2: b - a * (a / nf),
                }
            })
        })
        .collect()
}

/// Moments of channels `c0..c0 + cs` over the whole batch: their groups
/// merged in order.
fn channels_moments<T: Element>(
    x: &[T],
    dims: Dims,
    c0: usize,
    cs: usize,
    shift: &[f64],
) -> Vec<Moments> {
    let mut m = vec![Moments::default(); cs];
    for g in 0..plan::groups(dims) {
        for (acc, gm) in m.iter_mut().zip(group_moments(x, dims, c0, cs, g, shift)) {
            *acc = acc.merge(gm);
        }
    }
    m
}

#[inline]
fn add_lanes(acc: &mut [f64; LANES], v: &[f64; LANES]) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

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

/// Channel sums over the whole batch: groups added in order.
fn channels_grad_sums<T: Element>(
    x: &[T],
    dy: &[T],
    dims: Dims,
    c0: usize,
    cs: usize,
    mean: &[f64],
) -> Vec<GradSums> {
    let mut acc = vec![[0.0; 3]; cs];
    for g in 0..plan::groups(dims) {
        for (a, s) in acc
            .iter_mut()
            .zip(group_grad_sums(x, dy, dims, (c0, cs), g, mean))
        {
            *a = add_sums(*a, s);
        }
    }
    acc
}

/// Per-channel shifts `K_c`: the channel's first value.
fn shifts<T: Element>(x: &[T], dims: Dims) -> Vec<f64> {
    (0..dims.c)
        .map(|c| x[dims.offset(0, c, 0)].as_f64())
        .collect()
}

/// Coefficients of `y = (x − K)·a + b` from shifted moments, and the outputs `mean`, `var`.
fn train_coeffs(
    shift: &[f64],
    moments: &[Moments],
    eps: f64,
    affine: &Affine<'_>,
    mean: &mut [f64],
    var: &mut [f64],
) -> [Vec<f64>; 2] {
    let mut a = vec![0.0; shift.len()];
    let mut b = vec![0.0; shift.len()];
    for (c, m) in moments.iter().enumerate() {
        mean[c] = shift[c] + m.mean;
        var[c] = m.var();
        let k = NormCoeffs::new(m.mean, m.var(), eps, affine, c);
        a[c] = k.scale;
        b[c] = k.bias - k.mean * k.scale;
    }
    [a, b]
}

/// Whether `fused`'s per-channel tasks apply to a contiguous batch whose
/// per-channel slices (over `arrays` input arrays) take `bytes` bytes.
fn channel_tasks(opts: Options, dims: Dims, bytes: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let ok = opts.channel_tasks
        && dims.layout == Layout::Contiguous
        && dims.s >= CHANNEL_TASK_MIN_RUN
        && is_parallel(dims)
        && bytes <= CHANNEL_CACHE
        && dims.c >= 4 * threads;
    ok.then(|| (CHANNEL_TASK / bytes).clamp(1, (dims.c / (4 * threads)).max(1)))
}

/// Training forward.
pub fn forward_train<T: Element, B: Backend>(p: TrainForward<'_, T>, opts: Options) {
    let dims = p.dims.canonical();
    let x = p.x;
    let shift = shifts(x, dims);
    let par = is_parallel(dims);
    match dims.layout {
        Layout::Contiguous => {
            let slice = dims.per_channel() * std::mem::size_of::<T>();
            if let Some(cpt) = channel_tasks(opts, dims, slice) {
                let tasks = runs_by_channel_task(p.y, dims, cpt);
                let (eps, affine) = (p.eps, p.affine);
                let stats: Vec<Vec<Moments>> = tasks
                    .into_par_iter()
                    .enumerate()
                    .map(|(t, mut runs)| {
                        let c0 = t * cpt;
                        let cs = cpt.min(dims.c - c0);
                        let m = channels_moments(x, dims, c0, cs, &shift);
                        let (mut mm, mut vv) = (vec![0.0; cs], vec![0.0; cs]);
                        let [a, b] = train_coeffs(
                            &shift[c0..c0 + cs],
                            &m,
                            eps,
                            &Affine {
                                weight: affine.weight.map(|w| &w[c0..c0 + cs]),
                                bias: affine.bias.map(|b| &b[c0..c0 + cs]),
                            },
                            &mut mm,
                            &mut vv,
                        );
                        for (i, run) in runs.iter_mut().enumerate() {
                            let (n, ci) = (i / cs, i % cs);
                            let base = dims.offset(n, c0 + ci, 0);
                            let xr = &x[base..base + dims.s];
                            B::run_affine(xr, run, shift[c0 + ci], a[ci], b[ci]);
                        }
                        m
                    })
                    .collect();
                let moments: Vec<Moments> = stats.into_iter().flatten().collect();
                train_coeffs(&shift, &moments, p.eps, &p.affine, p.mean, p.var);
                return;
            }
            let (g, cb) = (plan::groups(dims), plan::stat_channels(dims));
            let items = map_ordered(par, dims.c.div_ceil(cb) * g, |i| {
                let c0 = i / g * cb;
                group_moments(x, dims, c0, cb.min(dims.c - c0), i % g, &shift)
            });
            let moments: Vec<Moments> = (0..dims.c)
                .map(|c| {
                    let item = |gi: usize| items[c / cb * g + gi][c % cb];
                    (0..g).fold(Moments::default(), |a, gi| a.merge(item(gi)))
                })
                .collect();
            let [a, b] = train_coeffs(&shift, &moments, p.eps, &p.affine, p.mean, p.var);
            runs_pass(dims, plan::runs_per_task(dims), p.y, |c, r, out| {
                B::run_affine(&x[r], out, shift[c], a[c], b[c])
            });
        }
        Layout::ChannelsLast => {
            let plan = RowPlan::new(dims.c);
            let rows = dims.n * dims.s;
            let krep = plan.rep(&shift);
            let groups = rows.div_ceil(plan.group_rows);
            let per_group = map_ordered(par, groups, |g| {
                let r0 = g * plan.group_rows;
                let r1 = (r0 + plan.group_rows).min(rows);
                let mut w = RowScratch::new(plan.l, plan.c);
                let mut out = vec![Moments::default(); plan.c];
                B::rows_moments(&x[r0 * plan.c..r1 * plan.c], &plan, &krep, &mut w, &mut out);
                out
            });
            // Group-major (streams each group's array once); every channel
            // still merges its groups in order.
            let mut moments = vec![Moments::default(); dims.c];
            for m in &per_group {
                for (a, &b) in moments.iter_mut().zip(m) {
                    *a = a.merge(b);
                }
            }
            let [a, b] = train_coeffs(&shift, &moments, p.eps, &p.affine, p.mean, p.var);
            let (a, b) = (plan.rep(&a), plan.rep(&b));
            rows_normalize::<T, B>(&plan, x, p.y, [&krep, &a, &b]);
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
/// the condition number of non-constant data to about 2²⁴; `x = k` (a
/// constant channel) cancels exactly. Measured: the f32 offset-1e4 agreement
/// error of `y` is unchanged (0.43 units). `f64` data keeps the unfolded form.
fn rows_normalize<T: Element, B: Backend>(plan: &RowPlan, x: &[T], y: &mut [T], k: [&[f64]; 3]) {
    let [kk, a, b] = k;
    if T::DTYPE.mantissa_bits() <= f32::MANTISSA_DIGITS {
        let b: Vec<f64> = kk
            .iter()
            .zip(a)
            .zip(b)
            .map(|((&k, &a), &b)| b - k * a)
            .collect();
        rows_pass(plan.task_rows * plan.c, y, |r, out| {
            B::rows_scale(&x[r], out, plan.c, [a, &b])
        });
    } else {
        rows_pass(plan.task_rows * plan.c, y, |r, out| {
            B::rows_affine(&x[r], out, plan.c, [kk, a, b])
        });
    }
}

/// Eval forward: `y = (x − mean)·scale + bias`, one read and one write.
pub fn forward_eval<T: Element, B: Backend>(p: EvalForward<'_, T>) {
    let dims = p.dims.canonical();
    let k: Vec<NormCoeffs> = (0..dims.c)
        .map(|c| NormCoeffs::new(p.mean[c], p.var[c], p.eps, &p.affine, c))
        .collect();
    let x = p.x;
    match dims.layout {
        Layout::Contiguous => runs_pass(dims, plan::runs_per_task(dims), p.y, |c, r, out| {
            B::run_affine(&x[r], out, k[c].mean, k[c].scale, k[c].bias)
        }),
        Layout::ChannelsLast => {
            let plan = RowPlan::new(dims.c);
            let m = plan.rep(&k.iter().map(|k| k.mean).collect::<Vec<_>>());
            let a = plan.rep(&k.iter().map(|k| k.scale).collect::<Vec<_>>());
            let b = plan.rep(&k.iter().map(|k| k.bias).collect::<Vec<_>>());
            rows_normalize::<T, B>(&plan, x, p.y, [&m, &a, &b]);
        }
    }
}

/// The per-channel inputs of the backward coefficients (copied out of
/// [`Backward`] so tasks can share them while `dx` is borrowed mutably).
#[derive(Clone, Copy)]
struct GradParams<'a> {
    mode: GradMode,
    eps: f64,
    weight: Option<&'a [f64]>,
    mean: &'a [f64],
    var: &'a [f64],
}

impl<'a> GradParams<'a> {
    fn of<T>(p: &Backward<'a, T>) -> GradParams<'a> {
        GradParams {
            mode: p.mode,
            eps: p.eps,
            weight: p.weight,
            mean: p.mean,
            var: p.var,
        }
    }
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
fn channel_grad_coeffs(p: &GradParams<'_>, m: usize, c: usize, sums: GradSums) -> GradCoeffs {
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
    let gp = GradParams::of(p);
    sums.iter()
        .enumerate()
        .map(|(c, &s)| {
            let k = channel_grad_coeffs(&gp, m, c, s);
            p.grad_weight[c] = k.grad_weight;
            p.grad_bias[c] = k.grad_bias;
            k
        })
        .collect()
}

/// Backward: one pass for the [`GradSums`], one pass writing `dx`.
pub fn backward<T: Element, B: Backend>(mut p: Backward<'_, T>, opts: Options) {
    let dims = p.dims.canonical();
    let (x, dy) = (p.x, p.dy);
    let par = is_parallel(dims);
    let batch = p.mode == GradMode::Batch;
    match dims.layout {
        Layout::Contiguous => {
            let slice = 2 * dims.per_channel() * std::mem::size_of::<T>();
            if let Some(cpt) = channel_tasks(opts, dims, slice) {
                let pr = GradParams::of(&p);
                let tasks = runs_by_channel_task(p.dx, dims, cpt);
                let sums: Vec<Vec<GradSums>> = tasks
                    .into_par_iter()
                    .enumerate()
                    .map(|(t, mut runs)| {
                        let c0 = t * cpt;
                        let cs = cpt.min(dims.c - c0);
                        let sums = channels_grad_sums(x, dy, dims, c0, cs, pr.mean);
                        let k: Vec<GradCoeffs> = sums
                            .iter()
                            .enumerate()
                            .map(|(i, &s)| channel_grad_coeffs(&pr, dims.per_channel(), c0 + i, s))
                            .collect();
                        for (i, run) in runs.iter_mut().enumerate() {
                            let (n, ci) = (i / cs, i % cs);
                            let base = dims.offset(n, c0 + ci, 0);
                            let kc = k[ci];
                            let r = base..base + dims.s;
                            run_dx_or_scale::<T, B>(&x[r.clone()], &dy[r], run, &kc);
                        }
                        sums
                    })
                    .collect();
                let sums: Vec<GradSums> = sums.into_iter().flatten().collect();
                grad_coeffs(&mut p, &sums, dims);
                return;
            }
            let (g, cb) = (plan::groups(dims), plan::stat_channels(dims));
            let items = map_ordered(par, dims.c.div_ceil(cb) * g, |i| {
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
            runs_pass(dims, plan::runs_per_task(dims), p.dx, |c, r, out| {
                run_dx_or_scale::<T, B>(&x[r.clone()], &dy[r], out, &k[c])
            });
        }
        Layout::ChannelsLast => {
            let plan = RowPlan::new(dims.c);
            let rows = dims.n * dims.s;
            let mrep = plan.rep(p.mean);
            let groups = rows.div_ceil(plan.group_rows);
            let per_group = map_ordered(par, groups, |g| {
                let r =
                    g * plan.group_rows * plan.c..((g + 1) * plan.group_rows).min(rows) * plan.c;
                let [mut s, mut t, mut u] = [0; 3].map(|_| vec![0.0; plan.l]);
                let st = [&mut s, &mut t, &mut u].map(|v| v.as_mut_slice());
                B::rows_grad_sums(&x[r.clone()], &dy[r], plan.c, &mrep, st);
                [&s, &t, &u].map(|v| {
                    let mut f = vec![0.0; plan.c];
                    lanes::fold_lanes(v, plan.c, &mut f);
                    f
                })
            });
            // Group-major, each channel's groups in order (as for the moments).
            let mut sums: Vec<GradSums> = vec![[0.0; 3]; dims.c];
            for [s, t, u] in &per_group {
                for (c, a) in sums.iter_mut().enumerate() {
                    *a = add_sums(*a, [s[c], t[c], u[c]]);
                }
            }
            let k = grad_coeffs(&mut p, &sums, dims);
            let rep = |f: fn(&GradCoeffs) -> f64| plan.rep(&k.iter().map(f).collect::<Vec<_>>());
            let (kd, kx, kc) = (rep(|k| k.k_dy), rep(|k| k.k_xmu), rep(|k| k.k_const));
            let zeros = vec![0.0; plan.l];
            rows_pass(plan.task_rows * plan.c, p.dx, |r, out| {
                if batch {
                    B::rows_dx(&x[r.clone()], &dy[r], out, dims.c, [&mrep, &kd, &kx, &kc]);
                } else {
                    B::rows_affine(&dy[r], out, dims.c, [&zeros, &kd, &zeros]);
                }
            });
        }
    }
}

/// `dx` of one run piece: the full formula, or `k_dy·dy` with fixed
/// statistics (where `x` must not be read: a NaN in `x` must not reach `dx`).
#[inline]
fn run_dx_or_scale<T: Element, B: Backend>(x: &[T], dy: &[T], out: &mut [T], k: &GradCoeffs) {
    if k.uses_x {
        B::run_dx(x, dy, out, k.mean, [k.k_dy, k.k_xmu, k.k_const]);
    } else {
        B::run_affine(dy, out, 0.0, k.k_dy, 0.0);
    }
}
