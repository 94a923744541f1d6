//! Training forward: per-channel statistics in one read of `x` (a second
//! read only for channels whose shifted sums cancel), then the normalize
//! pass — back to back per channel while it is in cache when it fits.

use super::coeffs::{self, Channel};
use super::plan::{self, Pass, Rows};
use super::reduce::{self, Stretch};
use super::simd::{self, Lane, Level, Post, RunAcc, RunCoeffs};
use super::task_rule::TaskOp;
use crate::engine::awake::Awake;
use crate::engine::plan::{is_parallel, map_ordered, stretches_by_channel_task};
use crate::engine::scratch::Scratch;
use crate::layout::{Dims, Layout};
use crate::problem::{Affine, TrainForward};
use rayon::prelude::*;

/// Batch statistics and `y = (x − μ)/√(σ² + ε)·w + b`.
pub fn forward<T: Lane>(p: TrainForward<'_, T>) {
    let x = p.x;
    forward_post(p, x, Post::Plain)
}

/// [`forward`] with an epilogue applied inside the normalize pass:
/// `y = post(bn(x))`, `r` (the residual, as long as `x`) read only by
/// [`Post::AddRelu`]. Passes over memory are those of the plain forward —
/// one read of `x` for the statistics (a second only for channels that
/// cancel), one read of `x` (and `r`) and one write of `y` — so the ReLU
/// and the add cost no pass of their own.
pub fn forward_post<T: Lane>(p: TrainForward<'_, T>, r: &[T], post: Post) {
    let dims = p.dims.canonical();
    // The other workers stay awake through the serial steps between passes.
    let _awake = Awake::new(is_parallel(dims));
    let lv = Level::detected();
    let shift = reduce::shifts(p.x, dims);
    match dims.layout {
        Layout::Contiguous => contiguous(p, dims, lv, &shift, (r, post)),
        Layout::ChannelsLast => channels_last(p, dims, lv, &shift, (r, post)),
    }
}

/// The run reduction `[Σd, Σd²]` with shift `k[c − base]` for channel `c`.
fn run_sums<'a, T: Lane>(
    lv: Level,
    x: &'a [T],
    s: usize,
    (k, base): (&'a [f64], usize),
) -> impl Fn(Stretch, &mut [RunAcc<2>]) + Sync + 'a {
    move |st: Stretch, acc: &mut [RunAcc<2>]| {
        let xr = &x[st.offset..st.offset + st.runs * s];
        let kr = &k[st.c - base..st.c - base + st.runs];
        simd::runs_sums(lv, xr, s, st.next, kr, acc)
    }
}

/// Statistics of channels `c0..c0 + cs` (contiguous), first and second
/// passes, by one task.
fn block_stats<T: Lane>(
    lv: Level,
    x: &[T],
    dims: Dims,
    (c0, cs): (usize, usize),
    shift: &[f64],
) -> Vec<Channel> {
    let (n, g) = (
        dims.per_channel(),
        coeffs::max_growth::<T>(simd::runs::sum_bits::<T>(dims.s)),
    );
    let first = reduce::channels(dims, (c0, cs), &run_sums(lv, x, dims.s, (shift, 0)));
    first
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            coeffs::channel(n, shift[c0 + i], s, g).unwrap_or_else(|k| {
                let sh = (&[k][..], c0 + i);
                let again = reduce::channels(dims, (c0 + i, 1), &run_sums(lv, x, dims.s, sh));
                coeffs::accept(n, k, again[0])
            })
        })
        .collect()
}

/// Statistics of every channel (contiguous), address-ordered items.
fn all_stats<T: Lane>(lv: Level, x: &[T], dims: Dims, shift: &[f64]) -> Vec<Channel> {
    let (n, g, par) = (
        dims.per_channel(),
        coeffs::max_growth::<T>(simd::runs::sum_bits::<T>(dims.s)),
        is_parallel(dims),
    );
    let first = reduce::all_channels(dims, par, &run_sums(lv, x, dims.s, (shift, 0)));
    let pending: Vec<Result<Channel, f64>> = (0..dims.c)
        .map(|c| coeffs::channel(n, shift[c], first[c], g))
        .collect();
    let redo: Vec<usize> = (0..dims.c).filter(|&c| pending[c].is_err()).collect();
    let again = map_ordered(par, redo.len(), |i| {
        let k = pending[redo[i]].unwrap_err();
        let sums = reduce::channels(
            dims,
            (redo[i], 1),
            &run_sums(lv, x, dims.s, (&[k], redo[i])),
        );
        coeffs::accept(n, k, sums[0])
    });
    let mut again = again.into_iter();
    pending
        .into_iter()
        .map(|r| r.unwrap_or_else(|_| again.next().expect("one per retry")))
        .collect()
}

/// `[a, c]` of `y = (x − K)·a + c` for every channel of `stats`, from `c0`
/// ([`coeffs::norm`]), and each channel's `√(var + ε)`; the square
/// roots and divisions at the level's width ([`simd::std_inv`]).
fn norm_coeffs(
    lv: Level,
    n: usize,
    eps: f64,
    af: Affine<'_>,
    c0: usize,
    stats: &[Channel],
) -> (Vec<[f64; 2]>, Scratch) {
    let n = n as f64;
    let var: Vec<f64> = stats.iter().map(|s| s.m2 / n).collect();
    let (sd, inv) = simd::std_inv(lv, &var, eps);
    let k = (stats.iter().zip(inv.iter()).enumerate())
        .map(|(i, (s, &inv))| coeffs::norm(s.mean, inv, af.weight(c0 + i), af.bias(c0 + i)))
        .collect();
    (k, sd)
}

/// Write the batch mean and biased variance.
fn write_stats(stats: &[Channel], n: usize, mean: &mut [f64], var: &mut [f64]) {
    for ((s, m), v) in stats.iter().zip(mean).zip(var) {
        *m = s.shift + s.mean;
        *v = s.m2 / n as f64;
    }
}

fn contiguous<T: Lane>(
    p: TrainForward<'_, T>,
    dims: Dims,
    lv: Level,
    shift: &[f64],
    (res, post): (&[T], Post),
) {
    let x = p.x;
    let bytes = dims.per_channel() * std::mem::size_of::<T>();
    let tasks = plan::channel_tasks(TaskOp::Train, dims, bytes, std::mem::size_of::<T>());
    // The statistics prefetch past the caches (channel tasks: along long
    // runs); the normalize pass may stream `y` (by task stretches in channel
    // tasks, else swept across runs).
    let lvr = lv.streaming(plan::prefetch_contiguous::<T>(dims, tasks.is_some()));
    let stats = if let Some(cpt) = tasks {
        // The normalize pass reads what the task's statistics just brought
        // into cache (and prefetches on where the L2 is small:
        // `plan::task_pass_level`).
        let arrays = post.arrays();
        let lvs = lv.streaming(plan::stream_task_runs::<T>(dims, Pass::Normalize, arrays));
        let lvs = plan::task_pass_level(lvs);
        let (n, eps, af) = (dims.per_channel(), p.eps, p.affine);
        let tasks = stretches_by_channel_task(p.y, dims, cpt);
        let per_task: Vec<Vec<Channel>> = tasks
            .into_par_iter()
            .enumerate()
            .map(|(t, mut stretches)| {
                let (c0, cs) = (t * cpt, cpt.min(dims.c - t * cpt));
                let st = block_stats(lvr, x, dims, (c0, cs), shift);
                let (k, _) = norm_coeffs(lv, n, eps, af, c0, &st);
                let kab: Vec<RunCoeffs<3>> = (st.iter().zip(&k))
                    .map(|(st, &[a, b])| RunCoeffs::affine::<T>([st.shift, a, b]))
                    .collect();
                // Each batch row's runs of the task's channels in one call.
                for (row, out) in stretches.iter_mut().enumerate() {
                    let o = dims.offset(row, c0, 0);
                    let r = o..o + out.len();
                    let v = (&x[r.clone()], &res[r], &mut **out);
                    simd::runs_affine_post(lvs, v, dims.s, (&kab, 0), post);
                }
                st
            })
            .collect();
        per_task.into_iter().flatten().collect()
    } else {
        let st = all_stats(lvr, x, dims, shift);
        let (k, _) = norm_coeffs(lv, dims.per_channel(), p.eps, p.affine, 0, &st);
        let kab: Vec<[f64; 3]> = (0..dims.c)
            .map(|c| [st[c].shift, k[c][0], k[c][1]])
            .collect();
        let lvs = lv.streaming(plan::stream_sweep::<T>(
            dims,
            Pass::Normalize,
            post.arrays(),
        ));
        super::eval::runs(lvs, dims, x, p.y, &kab, (res, post));
        st
    };
    write_stats(&stats, dims.per_channel(), p.mean, p.var);
}

fn channels_last<T: Lane>(
    p: TrainForward<'_, T>,
    dims: Dims,
    lv: Level,
    shift: &[f64],
    rp: (&[T], Post),
) {
    let (x, g, rows) = (p.x, Rows::new(dims.c), dims.n * dims.s);
    let (n, par) = (dims.per_channel(), is_parallel(dims));
    let narrow = simd::narrow_rows::<T>(n);
    let growth = coeffs::max_growth::<T>(simd::runs::sum_bits_of(narrow));
    let lvr = lv.streaming(plan::prefetch_rows::<T>(x.len(), dims.c));
    let sums = |k: &[f64]| {
        let kr = g.sr.rep(k);
        reduce::rows::<2>(&g, rows, par, |r, acc| {
            if narrow {
                simd::rows_sums_narrow(lvr, &x[r], &kr, acc)
            } else {
                simd::rows_sums(lvr, &x[r], &kr, acc)
            }
        })
    };
    let first = sums(shift);
    // Every channel from one read (the rule): the per-channel arithmetic
    // at the level's width.
    let (ones, zeros) = (p.affine.weight.is_none(), p.affine.bias.is_none());
    let fill = |on: bool, v: f64| {
        let mut s = Scratch::zeroed(if on { dims.c } else { 0 });
        s.fill(v);
        s
    };
    let (w1, b0) = (fill(ones, 1.0), fill(zeros, 0.0));
    let ts = simd::per_channel::TrainSums {
        n,
        growth,
        eps: p.eps,
        shift,
        sums: [&first[0], &first[1]],
        weight: p.affine.weight.unwrap_or(&w1),
        bias: p.affine.bias.unwrap_or(&b0),
    };
    if let Some([a, c, sd]) = simd::train_stats(lv, &ts, p.mean, p.var) {
        return super::eval::rows(lv, &g, x, p.y, ([shift, &a, &c], &sd), rp);
    }
    let pending: Vec<Result<Channel, f64>> = (0..dims.c)
        .map(|c| coeffs::channel(n, shift[c], [first[0][c], first[1][c]], growth))
        .collect();
    // Second pass for the channels that cancel (all lanes are summed; the
    // others keep their one-read result).
    let again = if pending.iter().any(Result::is_err) {
        let k2: Vec<f64> = pending
            .iter()
            .zip(shift)
            .map(|(r, &k)| r.err().unwrap_or(k))
            .collect();
        Some(sums(&k2))
    } else {
        None
    };
    // One exact-size collect either way: `flatten` has no size hint, and
    // its growing vector cost 6.5 µs of 1024 channels' bookkeeping (1.8 µs
    // this way; 32×1024, 2-core Xeon VM).
    let redo = |(c, r): (usize, Result<Channel, f64>)| {
        r.unwrap_or_else(|k| {
            let s = again
                .as_ref()
                .expect("a second pass when a channel asks for one");
            coeffs::accept(n, k, [s[0][c], s[1][c]])
        })
    };
    let stats: Vec<Channel> = pending.into_iter().enumerate().map(redo).collect();
    let (k, sd) = norm_coeffs(lv, n, p.eps, p.affine, 0, &stats);
    let ks: Vec<f64> = stats.iter().map(|s| s.shift).collect();
    let (a, c): (Vec<f64>, Vec<f64>) = k.iter().map(|&[a, c]| (a, c)).unzip();
    super::eval::rows(lv, &g, x, p.y, ([&ks, &a, &c], &sd), rp);
    write_stats(&stats, n, p.mean, p.var);
}
