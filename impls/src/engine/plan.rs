//! Work planning shared by the multi-threaded implementations.
//!
//! Determinism rule: every reduction is cut into chunks whose boundaries
//! depend only on the tensor's dims — never on the number of threads — and
//! partial results are combined in chunk order. Threads only decide *who*
//! computes a chunk, so results are bitwise identical for any rayon pool
//! size. The helpers here provide exactly that: ordered maps over chunk
//! indices, element-wise passes over fixed output chunks, and the geometry
//! of channels-last rows. *What* a chunk computes is the implementation's.

use crate::layout::Dims;
use rayon::prelude::*;
use std::ops::Range;

/// Below this many elements no rayon task is spawned: a fork/join costs a few
/// microseconds, which is the whole run time of a 32 Ki-element tensor.
pub const SERIAL_THRESHOLD: usize = 1 << 15;

/// Whether a batch of these dims is worth splitting over threads.
pub fn is_parallel(dims: Dims) -> bool {
    dims.len() >= SERIAL_THRESHOLD
}

/// `f(0), …, f(n − 1)`, in parallel when `par`, results in index order.
pub fn map_ordered<R: Send>(par: bool, n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if par {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// Contiguous element-wise pass: `f(c, run_range, out_run)` for every run
/// (the S values of one `(n, c)`), tasks of about `task_len` elements
/// (whole runs, at least one).
pub fn runs_pass<T: Send>(
    dims: Dims,
    task_len: usize,
    out: &mut [T],
    f: impl Fn(usize, Range<usize>, &mut [T]) + Sync + Send,
) {
    runs_task_pass(dims, task_len, out, |c0, range, chunk| {
        let mut c = c0;
        for (i, run) in chunk.chunks_mut(dims.s).enumerate() {
            let o = range.start + i * dims.s;
            f(c, o..o + dims.s, run);
            c = if c + 1 == dims.c { 0 } else { c + 1 };
        }
    })
}

/// [`runs_pass`] by whole tasks: `f(c0, range, out_chunk)` for each task of
/// about `task_len` elements (whole runs, at least one), `c0` the channel
/// of its first run. For kernels that walk many short runs in one call
/// (a call per 7×7 run of `f16` cost as much as the run's arithmetic).
pub fn runs_task_pass<T: Send>(
    dims: Dims,
    task_len: usize,
    out: &mut [T],
    f: impl Fn(usize, Range<usize>, &mut [T]) + Sync + Send,
) {
    let rpt = (task_len / dims.s).max(1);
    let task = |(t, chunk): (usize, &mut [T])| {
        let o = t * rpt * dims.s;
        f((t * rpt) % dims.c, o..o + chunk.len(), chunk)
    };
    if is_parallel(dims) {
        out.par_chunks_mut(rpt * dims.s).enumerate().for_each(task);
    } else {
        out.chunks_mut(rpt * dims.s).enumerate().for_each(task);
    }
}

/// [`runs_task_pass`] writing two outputs of the same dims at once
/// (`f(c0, range, out_chunk, out2_chunk)`), e.g. a gradient and the
/// residual's gradient of a fused pass.
pub fn runs_task_pass_pair<T: Send>(
    dims: Dims,
    task_len: usize,
    out: &mut [T],
    out2: &mut [T],
    f: impl Fn(usize, Range<usize>, &mut [T], &mut [T]) + Sync + Send,
) {
    assert_eq!(out.len(), out2.len(), "runs_task_pass_pair: output lengths");
    let rpt = (task_len / dims.s).max(1);
    let task = |(t, (chunk, chunk2)): (usize, (&mut [T], &mut [T]))| {
        let o = t * rpt * dims.s;
        f((t * rpt) % dims.c, o..o + chunk.len(), chunk, chunk2)
    };
    let len = rpt * dims.s;
    if is_parallel(dims) {
        let chunks = out.par_chunks_mut(len).zip(out2.par_chunks_mut(len));
        chunks.enumerate().for_each(task);
    } else {
        let chunks = out.chunks_mut(len).zip(out2.chunks_mut(len));
        chunks.enumerate().for_each(task);
    }
}

/// [`rows_pass`] writing two outputs of the same length at once.
pub fn rows_pass_pair<T: Send>(
    task_len: usize,
    out: &mut [T],
    out2: &mut [T],
    f: impl Fn(Range<usize>, &mut [T], &mut [T]) + Sync + Send,
) {
    assert_eq!(out.len(), out2.len(), "rows_pass_pair: output lengths");
    let chunk = task_len.max(1);
    let task = |(t, (rows, rows2)): (usize, (&mut [T], &mut [T]))| {
        f(t * chunk..t * chunk + rows.len(), rows, rows2)
    };
    if out.len() >= SERIAL_THRESHOLD {
        let chunks = out.par_chunks_mut(chunk).zip(out2.par_chunks_mut(chunk));
        chunks.enumerate().for_each(task);
    } else {
        out.chunks_mut(chunk)
            .zip(out2.chunks_mut(chunk))
            .enumerate()
            .for_each(task);
    }
}

/// Channels-last element-wise pass: `f(range, out_rows)` over tasks of
/// `task_len` elements (whole rows), in parallel for large outputs.
pub fn rows_pass<T: Send>(
    task_len: usize,
    out: &mut [T],
    f: impl Fn(Range<usize>, &mut [T]) + Sync + Send,
) {
    let chunk = task_len.max(1);
    let task = |(t, rows): (usize, &mut [T])| f(t * chunk..t * chunk + rows.len(), rows);
    if out.len() >= SERIAL_THRESHOLD {
        out.par_chunks_mut(chunk).enumerate().for_each(task);
    } else {
        out.chunks_mut(chunk).enumerate().for_each(task);
    }
}

/// Split a contiguous output into stretches and deal them to tasks of
/// `channels_per_task` channels: `tasks[t][n]` holds the runs of channels
/// `t·cpt ..` in batch row `n` (adjacent in memory, one kernel call). Lets
/// one task own whole channels (statistics, then normalize while the
/// channel is still in cache).
pub fn stretches_by_channel_task<T>(
    out: &mut [T],
    dims: Dims,
    channels_per_task: usize,
) -> Vec<Vec<&mut [T]>> {
    let cpt = channels_per_task.max(1);
    let tasks = dims.c.div_ceil(cpt);
    let mut v: Vec<Vec<&mut [T]>> = (0..tasks).map(|_| Vec::new()).collect();
    if dims.s == 0 || dims.c == 0 {
        return v;
    }
    for row in out.chunks_mut(dims.c * dims.s) {
        for (t, stretch) in row.chunks_mut(cpt * dims.s).enumerate() {
            v[t].push(stretch);
        }
    }
    v
}

/// Channels-last rows seen as "super-rows" of `m` consecutive rows, so that
/// few-channel shapes (C = 3) still give loops of at least `min_width`
/// lanes: lane `l` of a super-row holds channel `l mod C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperRow {
    /// Channels per row.
    pub c: usize,
    /// Rows per super-row, `⌈min_width / C⌉`.
    pub m: usize,
    /// Lanes per super-row, `m·C`.
    pub l: usize,
}

/// `v` repeated cyclically to `len` values (empty when `v` is). Whole-slice
/// copies: `cycle().take()` has no exact size hint and cost more than the
/// kernel itself on small tensors, an index modulo per value 12 µs for the
/// four 1024-lane coefficient arrays of a `dx` pass (2-core Xeon VM). The
/// copy doubles what is there, so short `v` take few calls.
pub fn cycled<E: Copy>(v: &[E], len: usize) -> Vec<E> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&v[..v.len().min(len)]);
    extend_cyclic(&mut out, len);
    out
}

/// `out` extended in place to `len` values by repeating its own values
/// cyclically ([`cycled`] without the copy of a source; nothing when `out`
/// is empty or already that long).
pub fn extend_cyclic<E: Copy>(out: &mut Vec<E>, len: usize) {
    while !out.is_empty() && out.len() < len {
        let n = out.len().min(len - out.len());
        out.extend_from_within(..n);
    }
}

impl SuperRow {
    /// The super-row geometry of rows of `c` channels.
    pub fn new(c: usize, min_width: usize) -> SuperRow {
        let m = min_width.div_ceil(c).max(1);
        SuperRow { c, m, l: m * c }
    }

    /// A per-channel array repeated to the super-row width `L`.
    pub fn rep(&self, v: &[f64]) -> Vec<f64> {
        cycled(v, self.l)
    }

    /// Fold the `L/C` lane copies of each channel into `out` (length C), in
    /// lane order (see [`fold_lane_copies`]).
    pub fn fold(&self, acc: &[f64], out: &mut [f64]) {
        fold_lane_copies(acc, self.c, out)
    }
}

/// Fold the copies of `c` channels in super-row lanes `acc` (length a
/// multiple of `c`) into `out` (length `c`), in lane order: a fixed order,
/// so the result is deterministic.
#[inline(always)]
pub fn fold_lane_copies(acc: &[f64], c: usize, out: &mut [f64]) {
    out.copy_from_slice(&acc[..c]);
    for copy in acc[c..].chunks_exact(c) {
        for (o, &v) in out.iter_mut().zip(copy) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    #[test]
    fn stretches_by_channel_task_deal_each_batch_row_to_its_channels() {
        let dims = Dims::from_shape("x", &[2, 5, 3], Layout::Contiguous).unwrap();
        let mut out: Vec<usize> = (0..dims.len()).collect();
        let tasks = stretches_by_channel_task(&mut out, dims, 2);
        assert_eq!(tasks.len(), 3);
        for (t, stretches) in tasks.iter().enumerate() {
            assert_eq!(stretches.len(), dims.n);
            for (n, st) in stretches.iter().enumerate() {
                let cs = 2.min(dims.c - 2 * t);
                let first = dims.offset(n, 2 * t, 0);
                let want: Vec<usize> = (first..first + cs * dims.s).collect();
                assert_eq!(st.to_vec(), want, "task {t} row {n}");
            }
        }
    }

    #[test]
    fn super_row_folds_lane_copies() {
        let sr = SuperRow::new(3, 8);
        assert_eq!((sr.m, sr.l), (3, 9));
        let acc: Vec<f64> = (0..9).map(|i| i as f64).collect();
        let mut out = [0.0; 3];
        sr.fold(&acc, &mut out);
        assert_eq!(out, [9.0, 12.0, 15.0]);
        assert_eq!(sr.rep(&[1.0, 2.0, 3.0]).len(), 9);
    }

    /// Lane `l` of a repeated array holds channel `l mod C`, for every
    /// channel count and width (including widths that are not multiples).
    #[test]
    fn repeated_arrays_cycle_the_channels() {
        for c in 1..=12 {
            let v: Vec<f64> = (0..c).map(|i| i as f64 + 0.5).collect();
            for l in [c, 2 * c, 3 * c + 1, 64, 130] {
                let sr = SuperRow {
                    c,
                    m: l.div_ceil(c),
                    l,
                };
                let want: Vec<f64> = v.iter().copied().cycle().take(l).collect();
                assert_eq!(sr.rep(&v), want, "c {c} l {l}");
            }
        }
        let sr = SuperRow::new(1, 8);
        assert!(sr.rep(&[]).is_empty());
    }
}
