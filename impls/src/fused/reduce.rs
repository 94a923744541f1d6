//! The fixed-order reductions of `fused`: per-channel sums over chunks
//! whose boundaries depend only on the dims, added in chunk order.
//!
//! Contiguous: a channel's runs are cut into chunks of [`plan::runs_per_chunk`]
//! runs; a chunk is reduced into 16 `f64` lanes (run kernels), summed
//! pairwise ([`hsum`]), and the chunk sums are added in chunk order. Who
//! computes a chunk (a task owning a few channels, or an item of the
//! address-ordered schedule) does not change a bit of it.
//!
//! Channels-last: rows are cut into chunks of [`Rows::chunk_rows`] rows; a
//! chunk is reduced into one `f64` lane per super-row column, the lane
//! copies of a channel are folded in lane order ([`crate::engine::plan::SuperRow::fold`]), and
//! the chunk sums are added in chunk order.

use super::plan::{self, Rows};
use super::simd::{hsum, Lane, RunAcc};
use crate::activation::relu_grad;
use crate::engine::plan::map_ordered;
use crate::engine::scratch::Scratch;
use crate::layout::Dims;
use rayon::prelude::*;
use std::array::from_fn;
use std::ops::Range;

/// Consecutive runs handed to a [`RunFn`]: channels `c..c + runs` of one
/// batch row (contiguous layout, so they follow each other in memory from
/// `offset`); `next` is the distance (elements) from the last run's start
/// to the run reduced after them, where prefetching continues.
#[derive(Debug, Clone, Copy)]
pub struct Stretch {
    pub offset: usize,
    pub c: usize,
    pub runs: usize,
    pub next: Option<usize>,
}

/// A run reduction: `f(stretch, acc)` adds the stretch's run of channel
/// `stretch.c + i` into `acc[i]` — the runs of a batch row in one call, so
/// short runs (7×7) pay one kernel call per row of the block, not per run.
pub trait RunFn<const K: usize>: Fn(Stretch, &mut [RunAcc<K>]) + Sync {}
impl<const K: usize, F: Fn(Stretch, &mut [RunAcc<K>]) + Sync> RunFn<K> for F {}

/// Sums of chunk `j` of channels `c0..c0 + cs` (contiguous), runs visited
/// batch-major: `(n, c0)…(n, c0 + cs − 1)`, then `(n + 1, c0)`.
pub fn chunk<const K: usize>(
    dims: Dims,
    (c0, cs): (usize, usize),
    j: usize,
    f: &impl RunFn<K>,
) -> Vec<[f64; K]> {
    let rpc = plan::runs_per_chunk(dims);
    let mut acc = vec![[[0.0; 16]; K]; cs];
    for n in j * rpc..((j + 1) * rpc).min(dims.n) {
        f(Stretch::of(dims, n, (c0, cs)), &mut acc);
    }
    acc.iter().map(|a| from_fn(|s| hsum(&a[s]))).collect()
}

impl Stretch {
    /// Batch row `n`'s runs of channels `c0..c0 + cs`.
    pub fn of(dims: Dims, n: usize, (c0, cs): (usize, usize)) -> Stretch {
        let (offset, last) = (dims.offset(n, c0, 0), dims.offset(n, c0 + cs - 1, 0));
        // The run reduced after the block's last channel: the next batch
        // row's first (for a chunk's last row, the next chunk's).
        let next = (n + 1 < dims.n).then(|| dims.offset(n + 1, c0, 0) - last);
        Stretch {
            offset,
            c: c0,
            runs: cs,
            next,
        }
    }
}

/// Sums of channels `c0..c0 + cs` over all their chunks, in chunk order.
pub fn channels<const K: usize>(
    dims: Dims,
    block: (usize, usize),
    f: &impl RunFn<K>,
) -> Vec<[f64; K]> {
    let mut tot = vec![[0.0; K]; block.1];
    for j in 0..plan::chunks(dims) {
        add_into(&mut tot, &chunk(dims, block, j, f));
    }
    tot
}

/// The sums of a block of channels fed one batch row at a time, with the
/// bits of [`channels`] (and of [`all_channels`]' chunks): lanes per run,
/// a chunk's lanes summed pairwise ([`hsum`]) into the total after its last
/// row, chunk after chunk — for callers that interleave the rows with
/// other work (backward's pipelined channel tasks).
pub struct RowSums<const K: usize> {
    dims: Dims,
    acc: Vec<RunAcc<K>>,
    tot: Vec<[f64; K]>,
}

impl<const K: usize> RowSums<K> {
    /// Empty sums of `cs` channels.
    pub fn new(dims: Dims, cs: usize) -> Self {
        RowSums {
            dims,
            acc: vec![[[0.0; 16]; K]; cs],
            tot: vec![[0.0; K]; cs],
        }
    }

    /// The lanes the next batch row's runs are added into.
    pub fn lanes(&mut self) -> &mut [RunAcc<K>] {
        &mut self.acc
    }

    /// Batch row `n` is in: at a chunk's end, its lanes join the total.
    pub fn row_done(&mut self, n: usize) {
        if (n + 1).is_multiple_of(plan::runs_per_chunk(self.dims)) || n + 1 == self.dims.n {
            for (t, a) in self.tot.iter_mut().zip(self.acc.iter_mut()) {
                for (ts, lanes) in t.iter_mut().zip(a.iter_mut()) {
                    *ts += hsum(lanes);
                    *lanes = [0.0; 16];
                }
            }
        }
    }

    /// The totals (every row done).
    pub fn sums(self) -> Vec<[f64; K]> {
        self.tot
    }
}

/// Sums of every channel (contiguous), items of [`plan::item_channels`]
/// channels × one chunk, in parallel when `par`.
pub fn all_channels<const K: usize>(dims: Dims, par: bool, f: &impl RunFn<K>) -> Vec<[f64; K]> {
    let (cb, nj) = (plan::item_channels(dims), plan::chunks(dims));
    let items = map_ordered(par, dims.c.div_ceil(cb) * nj, |i| {
        let c0 = i / nj * cb;
        chunk(dims, (c0, cb.min(dims.c - c0)), i % nj, f)
    });
    let mut tot = vec![[0.0; K]; dims.c];
    for (b, block) in items.chunks(nj).enumerate() {
        for part in block {
            add_into(&mut tot[b * cb..b * cb + part.len()], part);
        }
    }
    tot
}

/// Per-channel sums over channels-last rows (`rows` rows of `c` values):
/// `f(range, acc)` adds the whole super-rows of `x[range]` into the lanes.
/// Returns sum `s` of channel `ch` at `[s][ch]` (one array per sum, so the
/// per-channel arithmetic after it runs at the level's width).
///
/// Chunks are reduced in waves of `WAVE_PER_THREAD` per thread (one at a
/// time when not `par`) into scratch reused between calls, and each
/// wave's partials are added into the total in chunk order — the bits of
/// one chunk at a time, for any pool. A partial kept per chunk until the
/// end was 3 MB of fresh pages per call on 4096 channels (32 chunks × 3
/// sums × 32 KiB; about 850 page faults per backward's sums).
pub fn rows<const K: usize>(
    g: &Rows,
    rows: usize,
    par: bool,
    f: impl Fn(Range<usize>, [&mut [f64]; K]) + Sync + Send,
) -> [Scratch; K] {
    let (c, cr) = (g.sr.c, g.chunk_rows);
    let chunks = rows.div_ceil(cr);
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let per = if threads > 1 { WAVE_PER_THREAD } else { 1 };
    let wave = (threads * per).min(chunks).max(1);
    let mut slots: Vec<Slot<K>> = (0..wave).map(|_| Slot::new(g.sr.l, c)).collect();
    let mut tot: [Scratch; K] = from_fn(|_| Scratch::zeroed(c));
    for w0 in (0..chunks).step_by(wave) {
        let n = wave.min(chunks - w0);
        let work = |(i, slot): (usize, &mut Slot<K>)| {
            let j = w0 + i;
            if j >= wave {
                for v in slot.lanes.iter_mut() {
                    v.fill(0.0);
                }
            }
            let lanes = slot.lanes.each_mut().map(|v| &mut v[..]);
            f(j * cr * c..((j + 1) * cr).min(rows) * c, lanes);
            // One row per super-row: the fold is the lanes themselves.
            if g.sr.m > 1 {
                for (l, o) in slot.lanes.iter().zip(slot.out.iter_mut()) {
                    g.sr.fold(l, o);
                }
            }
        };
        if par {
            slots[..n].par_iter_mut().enumerate().for_each(work);
        } else {
            slots[..n].iter_mut().enumerate().for_each(work);
        }
        for slot in &slots[..n] {
            let part = if g.sr.m > 1 { &slot.out } else { &slot.lanes };
            for (t, p) in tot.iter_mut().zip(part) {
                for (ts, v) in t.iter_mut().zip(&p[..c]) {
                    *ts += v;
                }
            }
        }
    }
    tot
}

/// Chunks per thread in a wave of [`rows`] in a pool of several threads:
/// two, so a thread delayed by the machine holds up less than a whole
/// wave's share.
const WAVE_PER_THREAD: usize = 2;

/// One chunk's scratch in [`rows`]: the super-row lanes (zeroed) and, for
/// super-rows of several rows, their fold (reused between calls, [`Scratch`]).
struct Slot<const K: usize> {
    lanes: [Scratch; K],
    out: [Scratch; K],
}

impl<const K: usize> Slot<K> {
    fn new(lanes: usize, channels: usize) -> Self {
        let folds = if lanes > channels { channels } else { 0 };
        Slot {
            lanes: from_fn(|_| Scratch::zeroed(lanes)),
            out: from_fn(|_| Scratch::zeroed(folds)),
        }
    }
}

fn add_into<const K: usize>(tot: &mut [[f64; K]], part: &[[f64; K]]) {
    for (t, p) in tot.iter_mut().zip(part) {
        for (a, b) in t.iter_mut().zip(p) {
            *a += b;
        }
    }
}

/// Most values of a channel's prefix used to pick its shift.
const PREFIX: usize = 64;
/// At most 1/64 of a channel's values are in the prefix (it is read twice).
const PREFIX_SHARE: usize = 64;

/// Per-channel shifts `K_c`: the value of the channel's first few (1 to
/// 64, at most 1/64 of the channel) values nearest to their mean. A value *from* the data keeps `x − K_c`
/// exact for clustered data (Sterbenz lemma), and one near the mean keeps
/// the one-read sums from cancelling (Chan, Golub & LeVeque 1983, shifted
/// data). Falls back to the first value when the prefix is not finite.
/// The prefix is visited in memory order (rows of all channels when
/// channels-last).
pub fn shifts<T: Lane>(x: &[T], dims: Dims) -> Vec<f64> {
    let len = prefix_len(dims);
    let sc = dims.strides3()[1];
    // Offset of channel 0 at each prefix position (n, s), in (n, s) order.
    let base: Vec<usize> = (0..len)
        .map(|i| dims.offset(i / dims.s, 0, i % dims.s))
        .collect();
    // Channels-last rows are slices, which the loops below vectorize; a
    // strided iterator over them does not (256×1024 `f32` train spent a
    // tenth of its time here, 2-core Xeon VM, `perf`).
    if sc == 1 {
        shifts_of(&base, |o| x[o..o + dims.c].iter(), dims.c)
    } else {
        shifts_by_blocks(x, None, dims, len)
    }
}

/// [`shifts`] of `dy` masked by the ReLU output `yo` when given
/// (`yo <= 0 → 0`, [`relu_grad`]): the shifts of the masked copy the
/// default composition backward reads. Contiguous layout only (where
/// backward's half sums use them).
pub fn shifts_masked<T: Lane>(dy: &[T], yo: Option<&[T]>, dims: Dims) -> Vec<f64> {
    match yo {
        None => shifts(dy, dims),
        Some(yo) => {
            assert!(
                dims.strides3()[1] != 1,
                "shifts_masked: contiguous layout only"
            );
            shifts_by_blocks(dy, Some(yo), dims, prefix_len(dims))
        }
    }
}

/// Values in each channel's prefix ([`shifts`]).
fn prefix_len(dims: Dims) -> usize {
    (dims.per_channel() / PREFIX_SHARE).clamp(1, PREFIX)
}

/// Channels per block of [`shifts_by_blocks`]: two 512-bit registers of
/// `f64`.
const SHIFT_BLOCK: usize = 16;

/// [`shifts`] of contiguous data, where one prefix position's values of
/// all channels are strided (`S` apart) but one channel's are runs. Each
/// block of [`SHIFT_BLOCK`] channels is converted run by run (slices, which
/// vectorize) into a small buffer of prefix positions × channels, which is
/// then walked as channels-last rows are: the same values in the same
/// order, so the same shifts. The strided walk it replaces, a scalar
/// conversion per value, took a seventh of 64×512×7×7 `f16` train at one
/// thread (`perf`, 2-core Xeon VM), all of it before the first parallel
/// pass.
fn shifts_by_blocks<T: Lane>(x: &[T], mask: Option<&[T]>, dims: Dims, len: usize) -> Vec<f64> {
    const B: usize = SHIFT_BLOCK;
    let rows: Vec<usize> = (0..len).map(|i| i * B).collect();
    let mut buf = vec![0.0f64; len * B];
    let mut run: Vec<f64> = Vec::with_capacity(dims.s.min(len));
    let mut out = Vec::with_capacity(dims.c);
    for c0 in (0..dims.c).step_by(B) {
        let w = B.min(dims.c - c0);
        for j in 0..w {
            // Prefix positions i..i + take are batch row i / S's run start.
            let mut i = 0;
            while i < len {
                let take = dims.s.min(len - i);
                let o = dims.offset(i / dims.s, c0 + j, 0);
                run.clear();
                let v = x[o..o + take].iter().map(|v| v.as_f64());
                match mask {
                    None => run.extend(v),
                    Some(m) => run.extend(
                        m[o..o + take]
                            .iter()
                            .zip(v)
                            .map(|(y, g)| relu_grad(y.as_f64(), g)),
                    ),
                }
                for (k, &v) in run.iter().enumerate() {
                    buf[(i + k) * B + j] = v;
                }
                i += take;
            }
        }
        out.extend(shifts_of(&rows, |o| buf[o..o + w].iter(), w));
    }
    out
}

/// [`shifts`] over the prefix positions `base`, `values(o)` giving the `c`
/// channels' values at position `o`.
#[inline(always)]
fn shifts_of<'a, T: Lane + 'a, I: Iterator<Item = &'a T>>(
    base: &[usize],
    values: impl Fn(usize) -> I,
    c: usize,
) -> Vec<f64> {
    let mut mean = vec![0.0; c];
    for &o in base {
        for (m, v) in mean.iter_mut().zip(values(o)) {
            *m += v.as_f64();
        }
    }
    for m in mean.iter_mut() {
        *m /= base.len() as f64;
    }
    let mut best: Vec<f64> = values(base[0]).map(|v| v.as_f64()).collect();
    for &o in &base[1..] {
        for ((b, v), m) in best.iter_mut().zip(values(o)).zip(&mean) {
            let v = v.as_f64();
            // A select, not a conditional store: vectorizes to a blend.
            *b = if (v - m).abs() < (*b - m).abs() {
                v
            } else {
                *b
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::shifts;
    use crate::layout::{Dims, Layout};

    /// The definition, one channel at a time: the first `len` values in
    /// `(n, s)` order, their mean, the first value nearest to it.
    fn shifts_by_definition(x: &[f64], dims: Dims) -> Vec<f64> {
        let len = (dims.per_channel() / 64).clamp(1, 64);
        (0..dims.c)
            .map(|c| {
                let p: Vec<f64> = dims.channel_offsets(c).take(len).map(|o| x[o]).collect();
                let m = p.iter().sum::<f64>() / len as f64;
                let mut best = p[0];
                for &v in &p[1..] {
                    if (v - m).abs() < (best - m).abs() {
                        best = v;
                    }
                }
                best
            })
            .collect()
    }

    /// Both layouts (the blocked and the slice paths) and a prefix length
    /// in every regime (1, a few, 64 values), on data with ties and
    /// channels of different offsets; the same logical tensor gives the
    /// same shifts in either layout.
    #[test]
    fn shifts_are_the_prefix_value_nearest_its_mean_in_both_layouts() {
        for shape in [
            [3, 5, 1],
            [256, 7, 1],
            [64, 3, 9],
            [4, 1030, 3],
            [700, 2, 11],
            // Contiguous blocks of 16 channels (two whole, one partial),
            // each channel's prefix of 32 values over five batch rows.
            [300, 37, 7],
        ] {
            let [n, c, s] = shape;
            // Even channels alternate 0 and 1 in prefix order: with an even
            // prefix every value is as near the mean as the first (a tie,
            // which the first value wins).
            let value = |n: usize, c: usize, si: usize| {
                let h = (n * 7919 + si * 104_729 + c * 31) % 1013;
                let v = if c.is_multiple_of(2) {
                    (n * s + si) % 2
                } else {
                    h % 17
                };
                (c as f64) * 100.0 + v as f64 * 0.25
            };
            let mut per_layout = Vec::new();
            for layout in [Layout::Contiguous, Layout::ChannelsLast] {
                let dims = Dims::from_shape("x", &[n, c, s], layout)
                    .unwrap()
                    .canonical();
                let mut x = vec![0.0; n * c * s];
                for ni in 0..n {
                    for ci in 0..c {
                        for si in 0..s {
                            x[dims.offset(ni, ci, si)] = value(ni, ci, si);
                        }
                    }
                }
                let got = shifts(&x, dims);
                assert_eq!(got, shifts_by_definition(&x, dims), "{shape:?} {layout:?}");
                per_layout.push(got);
            }
            assert_eq!(per_layout[0], per_layout[1], "{shape:?}");
        }
    }
}
