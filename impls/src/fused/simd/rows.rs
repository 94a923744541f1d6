//! Kernels over channels-last rows of `L` lanes (a row, or a super-row of
//! several rows, of the `(N·S, C)` matrix), with per-lane coefficient
//! arrays of length `L`. Input is a sequence of full rows plus possibly one
//! shorter last row, whose values go to lanes `0..len`.
//!
//! Reductions: lane `l` is a left-to-right `f64` sum over the rows, so the
//! result does not depend on the register width; product terms are added
//! with one fused multiply-add, as in [`super::runs`]. For speed the rows are
//! cut into tiles of a few rows and the columns into blocks of `NB`
//! registers, whose accumulators stay in registers across the tile (the
//! `f64` accumulator arrays are read and written once per tile, not once
//! per row); columns left over by the blocks are done with accumulators in
//! memory, `W` lanes at a time, then one lane at a time.
//!
//! Element-wise passes run in the lanes of `S` (`f64` or `f32`, see
//! [`super::prec`]) with coefficient arrays of the lanes' type.

use super::prec::WRAP;
use super::runs::{dx_scalar, lane, narrow_d, post_scalar, prefetch_at, NARROW_BLOCK};
use super::{nt, Lane, Post, Real, Simd};
use crate::activation::relu_grad;
use std::array::from_fn;

/// Rows per register tile of one input array: about 16 KiB of it, so the
/// tile stays in L1 while its column blocks are visited; 8 to 64 rows.
#[inline(always)]
fn tile_rows<T>(l: usize) -> usize {
    (TILE_BYTES / (l * std::mem::size_of::<T>())).clamp(MIN_TILE_ROWS, 64)
}

/// Bytes per array of a register tile.
const TILE_BYTES: usize = 16 << 10;

/// Fewest rows per register tile, also for [`grad`]'s two arrays. Each
/// tile loads and stores every accumulator of its column blocks once, so
/// long rows (few rows per 16 KiB) spend their time on accumulator
/// traffic: the backward sums of 1024- and 4096-lane `f32` rows took 10–13
/// cycles per register of 8 lanes with 2-row tiles and 6–9 with 8 rows
/// (AVX-512, in-cache microbenchmark, variants interleaved, 2-core Xeon
/// VM). A tile larger than L1 costs no extra reads where a column block is
/// whole cache lines (AVX-512's; AVX2's `sums`, and its `grad` on rows of
/// [`LONG_ROW_BYTES`] or more). AVX2's `grad` on shorter rows reads half
/// lines of `f32` data, whose tiles stay in L1; on long rows half lines
/// cost L2 reads (see `avx2::GRAD_BLOCK`).
const MIN_TILE_ROWS: usize = 8;

/// Where a reduction over rows of `l` lanes prefetches `v` ([`nt::prefetch`]):
/// not at all (`None`) unless `S::STREAM` and rows shorter than the
/// prefetch distance, then up to `v`'s end — the line fetched lies rows
/// ahead, in memory order. In longer rows it would lie in the same row of
/// the same tile, which the tile reads anyway (4096×4096 `f32` train
/// without it: 0.96× at 1 thread, faster in 4 of 4 alternated rounds;
/// within noise at 2 threads); their column blocks prefetch
/// [`NEAR_BYTES`] on in their own row instead ([`near_ahead`]).
#[inline(always)]
fn ahead<S: Simd, T>(l: usize, v: &[T]) -> Option<*const T> {
    let short = l * std::mem::size_of::<T>() < nt::PREFETCH_BYTES;
    (S::STREAM && short).then_some(v.as_ptr_range().end)
}

/// How far ahead in its own row a register tile's column block prefetches
/// where [`ahead`] gives no prefetch (rows of [`nt::PREFETCH_BYTES`] or
/// more past the caches): the tile walks its rows block by block, so the
/// line it reads a few blocks later lies this many bytes on in the same
/// row. The hardware prefetchers alone follow a tile's rows (8 streams
/// per array) too slowly. `bnh bench` A/B on the Zen 5 VM (3 alternated
/// rounds, paired medians, with ÷ without): (N, C) 4096×4096 `f32` train
/// 0.87–0.90×, backward 0.85–0.87× (2 threads 0.88×), 2048×8192 0.82× /
/// 0.88×, `f64` train 0.92×; 512 bytes 0.92–0.94×, 2 KiB 0.88×; rows
/// shorter than the distance (prefetched by [`ahead`]) unchanged.
const NEAR_BYTES: usize = 1 << 10;

/// Elements from a column block's lanes at `c0` to what the tile (`tile`
/// elements of rows of `l`) reads [`NEAR_BYTES`] later: the same row
/// further on, or past the row's end the same row of the next tile, which
/// the pass reads next from its first column.
#[inline(always)]
fn near_ahead<T>(l: usize, c0: usize, tile: usize) -> usize {
    let near = NEAR_BYTES / std::mem::size_of::<T>();
    if c0 + near < l {
        near
    } else {
        tile + near - l
    }
}

/// Columns `[0, cols)` covered by whole blocks of `bw` lanes.
#[inline(always)]
fn block_cols(l: usize, bw: usize) -> usize {
    l / bw * bw
}

/// `Σd`, `Σd²` (`d = x − k[l]`) per lane, added into `s`.
///
/// Columns go in blocks of `NB` registers, then single registers, then the
/// last lanes short of a register row by row; every lane still adds its
/// rows in row order, so the split changes no bit.
///
/// # Safety
/// The CPU has `S`'s features; `s[i].len() == k.len() > 0`.
#[inline(always)]
pub unsafe fn sums<S: Simd<E = f64>, T: Lane, const NB: usize>(
    x: &[T],
    k: &[f64],
    s: [&mut [f64]; 2],
) {
    let (l, [s1, s2]) = (k.len(), s);
    let (full, cols) = (x.len() / l, block_cols(k.len(), NB * S::W));
    let ones = block_cols(k.len(), S::W);
    let pf = ahead::<S, T>(l, x);
    for tile in x[..full * l].chunks(tile_rows::<T>(l) * l) {
        for c0 in (0..cols).step_by(NB * S::W) {
            let st = [&mut *s1, &mut *s2];
            // SAFETY: c0 + NB·W <= cols <= l; the tile is whole rows of l; features by contract.
            unsafe { sums_block::<S, T, NB>(tile, pf, c0, k, st) };
        }
        for c0 in (cols..ones).step_by(S::W) {
            let st = [&mut *s1, &mut *s2];
            // SAFETY: c0 + W <= ones <= l; the tile is whole rows of l; features by contract.
            unsafe { sums_block::<S, T, 1>(tile, pf, c0, k, st) };
        }
        if ones < l {
            for row in tile.chunks_exact(l) {
                let st = [&mut s1[ones..], &mut s2[ones..]];
                // SAFETY: the slices are equally long (l − ones); features by contract.
                unsafe { sums_lanes::<S, T>(&row[ones..], &k[ones..], st) };
            }
        }
    }
    let n = x.len() - full * l;
    // SAFETY: the last row is shorter than l: n lanes of every array; features by contract.
    unsafe { sums_lanes::<S, T>(&x[full * l..], &k[..n], [&mut s1[..n], &mut s2[..n]]) };
}

/// One column block `[c0, c0 + NB·W)` of [`sums`] over the rows of a tile,
/// prefetching up to `pf` ([`ahead`]), or without it (long rows, streaming)
/// [`near_ahead`].
///
/// # Safety
/// The CPU has `S`'s features; `c0 + NB·W <= k.len() == s[i].len()`,
/// `tile.len()` a multiple of `k.len()`.
#[inline(always)]
unsafe fn sums_block<S: Simd<E = f64>, T: Lane, const NB: usize>(
    tile: &[T],
    pf: Option<*const T>,
    c0: usize,
    k: &[f64],
    s: [&mut [f64]; 2],
) {
    let l = k.len();
    let [s1, s2] = s;
    // SAFETY: lanes c0 + j·W .. c0 + (j+1)·W < l for j < NB (contract), and
    // row r's lanes start at r·l + c0 with r < tile.len() / l.
    unsafe {
        let kv: [S::V; NB] = from_fn(|j| S::load(k.as_ptr().add(c0 + j * S::W)));
        let mut a: [S::V; NB] = from_fn(|j| S::load(s1.as_ptr().add(c0 + j * S::W)));
        let mut q: [S::V; NB] = from_fn(|j| S::load(s2.as_ptr().add(c0 + j * S::W)));
        let near = near_ahead::<T>(l, c0, tile.len());
        for r in 0..tile.len() / l {
            let p = tile.as_ptr().add(r * l + c0);
            if let Some(end) = pf {
                nt::prefetch::<S, T>(p, NB * S::W, end, None);
            } else if S::STREAM {
                nt::prefetch_lines(p.wrapping_add(near), NB * S::W);
            }
            for j in 0..NB {
                let d = S::sub(T::load::<S>(p.add(j * S::W)), kv[j]);
                a[j] = S::add(a[j], d);
                q[j] = S::fma(d, d, q[j]);
            }
        }
        for j in 0..NB {
            S::store(s1.as_mut_ptr().add(c0 + j * S::W), a[j]);
            S::store(s2.as_mut_ptr().add(c0 + j * S::W), q[j]);
        }
    }
}

/// [`sums`] over one row (or row piece) with accumulators in memory.
///
/// # Safety
/// The CPU has `S`'s features; `x`, `k`, `s[i]` equally long.
#[inline(always)]
unsafe fn sums_lanes<S: Simd<E = f64>, T: Lane>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
    let [s1, s2] = s;
    let body = x.len() / S::W * S::W;
    let mut i = 0;
    while i < body {
        // SAFETY: i + W <= body <= x.len() == k.len() == s1.len() == s2.len().
        unsafe {
            let d = S::sub(T::load::<S>(x.as_ptr().add(i)), S::load(k.as_ptr().add(i)));
            let (pa, pq) = (s1.as_mut_ptr().add(i), s2.as_mut_ptr().add(i));
            S::store(pa, S::add(S::load(pa), d));
            S::store(pq, S::fma(d, d, S::load(pq)));
        }
        i += S::W;
    }
    for i in body..x.len() {
        let d = x[i].as_f64() - k[i];
        s1[i] += d;
        s2[i] = d.mul_add(d, s2[i]);
    }
}

/// [`sums`] for half-precision data (`T::NARROW`) in `f32` lanes, as
/// [`super::runs::sums_narrow`] does for runs: `d = x − k_hi [− k_lo]` and
/// `Σd`, `Σd²` in `f32` over blocks of at most [`NARROW_BLOCK`] rows (a
/// register tile, cut in blocks), each block's sums then added into the
/// `f64` lanes `s`. `k_hi = f32(k)`, `k_lo = f32(k − k_hi)` per lane; the
/// low part is subtracted only where some lane has one (a second pass's
/// shift). The blocks are rows of the tile whatever the level, and the
/// columns the column blocks leave sum in the same blocks, so every level
/// gives the same bits. What a block loses is bounded by
/// [`super::runs::NARROW_SUM_BITS`].
///
/// # Safety
/// The CPU has the features of `S` and `S32`; `s[i].len() == k.len() > 0`.
#[inline(always)]
pub unsafe fn sums_narrow<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane, const NB: usize>(
    x: &[T],
    k: &[f64],
    s: [&mut [f64]; 2],
) {
    let (hi, lo): (Vec<f32>, Vec<f32>) = k
        .iter()
        .map(|&v| {
            let [h, l] = super::runs::narrow_shift(v);
            (h, l)
        })
        .unzip();
    // SAFETY: forwarded contract; `hi` and `lo` have k.len() lanes.
    unsafe {
        if lo.iter().all(|&v| v == 0.0) {
            narrow_tiles::<S, S32, T, NB, false>(x, [&hi, &lo], s)
        } else {
            narrow_tiles::<S, S32, T, NB, true>(x, [&hi, &lo], s)
        }
    }
}

/// [`sums_narrow`] with the shift's parts `k = [hi, lo]`, `lo` subtracted
/// with `LO`.
///
/// # Safety
/// As [`sums_narrow`], `k[i].len() == s[i].len()`.
#[inline(always)]
unsafe fn narrow_tiles<
    S: Simd<E = f64>,
    S32: Simd<E = f32>,
    T: Lane,
    const NB: usize,
    const LO: bool,
>(
    x: &[T],
    k: [&[f32]; 2],
    s: [&mut [f64]; 2],
) {
    let (l, [s1, s2]) = (k[0].len(), s);
    let (full, cols) = (x.len() / l, block_cols(l, NB * S32::W));
    let ones = block_cols(l, S32::W);
    let pf = ahead::<S, T>(l, x);
    // The block sums of the last lanes, short of a register.
    let mut part = [vec![0f32; l - ones], vec![0f32; l - ones]];
    for tile in x[..full * l].chunks(tile_rows::<T>(l) * l) {
        for blk in tile.chunks(NARROW_BLOCK * l) {
            for c0 in (0..cols).step_by(NB * S32::W) {
                let st = [&mut *s1, &mut *s2];
                // SAFETY: c0 + NB·W <= cols <= l; blocks are whole rows of l; features by contract.
                unsafe { narrow_block::<S, S32, T, NB, LO>(blk, pf, c0, k, st) };
            }
            // The whole registers the column blocks leave over, one at a
            // time: the same per-lane additions, in registers.
            for c0 in (cols..ones).step_by(S32::W) {
                let st = [&mut *s1, &mut *s2];
                // SAFETY: c0 + W <= ones <= l; as above.
                unsafe { narrow_block::<S, S32, T, 1, LO>(blk, pf, c0, k, st) };
            }
            if ones < l {
                part.iter_mut().for_each(|p| p.fill(0.0));
                let kr = [&k[0][ones..], &k[1][ones..]];
                for row in blk.chunks_exact(l) {
                    narrow_lanes::<T, LO>(&row[ones..], kr, &mut part);
                }
                for (i, (a, q)) in part[0].iter().zip(&part[1]).enumerate() {
                    s1[ones + i] += *a as f64;
                    s2[ones + i] += *q as f64;
                }
            }
        }
    }
    // The last, shorter row is a block of its own.
    for (i, v) in x[full * l..].iter().enumerate() {
        let d = narrow_d::<T, LO>(*v, [k[0][i], k[1][i]]);
        s1[i] += d as f64;
        s2[i] += d.mul_add(d, 0.0) as f64;
    }
}

/// One column block `[c0, c0 + NB·W)` of [`narrow_tiles`] over the rows of
/// a block, its `f32` sums then added into `s` (exactly widened).
///
/// # Safety
/// The CPU has the features of `S` and `S32`; `c0 + NB·W <= k[i].len() ==
/// s[i].len()`, `blk.len()` a multiple of `k[0].len()`.
#[inline(always)]
unsafe fn narrow_block<
    S: Simd<E = f64>,
    S32: Simd<E = f32>,
    T: Lane,
    const NB: usize,
    const LO: bool,
>(
    blk: &[T],
    pf: Option<*const T>,
    c0: usize,
    k: [&[f32]; 2],
    s: [&mut [f64]; 2],
) {
    let l = k[0].len();
    // SAFETY: lanes c0 + j·W .. c0 + (j+1)·W <= l for j < NB (contract);
    // row r's lanes start at r·l + c0 with r < blk.len() / l.
    unsafe {
        let [hv, lv]: [[S32::V; NB]; 2] =
            k.map(|v| from_fn(|j| S32::load(v.as_ptr().add(c0 + j * S32::W))));
        let [mut a, mut q] = [[S32::splat(0.0); NB]; 2];
        for r in 0..blk.len() / l {
            let p = blk.as_ptr().add(r * l + c0);
            if let Some(end) = pf {
                nt::prefetch::<S, T>(p, NB * S32::W, end, None);
            }
            for j in 0..NB {
                let mut d = S32::sub(T::load::<S32>(p.add(j * S32::W)), hv[j]);
                if LO {
                    d = S32::sub(d, lv[j]);
                }
                a[j] = S32::add(a[j], d);
                q[j] = S32::fma(d, d, q[j]);
            }
        }
        let mut buf = [0f32; 16];
        for (v, acc) in [a, q].iter().zip(s) {
            for (j, r) in v.iter().enumerate() {
                S32::store(buf.as_mut_ptr(), *r);
                for h in 0..S32::W / S::W {
                    let p = acc.as_mut_ptr().add(c0 + j * S32::W + h * S::W);
                    S::store(
                        p,
                        S::add(S::load(p), S::load_f32(buf.as_ptr().add(h * S::W))),
                    );
                }
            }
        }
    }
}

/// One row (piece) of [`narrow_tiles`]' last lanes, short of a register,
/// into the block sums `part`, lane by lane (as a register lane adds them).
fn narrow_lanes<T: Lane, const LO: bool>(x: &[T], k: [&[f32]; 2], part: &mut [Vec<f32>; 2]) {
    let [pa, pq] = part;
    for (i, &v) in x.iter().enumerate() {
        let d = narrow_d::<T, LO>(v, [k[0][i], k[1][i]]);
        pa[i] += d;
        pq[i] = d.mul_add(d, pq[i]);
    }
}

/// `Σdy`, `Σdy·(x − k[l])`, `Σ(x − k[l])` per lane, added into `s`; with
/// `MASK`, `dy` is masked by the ReLU output `yo` in the same read (`yo`
/// is not read without). Rows of at least [`LONG_ROW_BYTES`] take column
/// blocks of `NB` registers, shorter rows of `NS` (see `avx2::GRAD_BLOCK`).
///
/// # Safety
/// The CPU has `S`'s features; `dy.len() == yo.len() == x.len()`,
/// `s[i].len() == k.len() > 0`.
#[inline(always)]
pub unsafe fn grad<
    S: Simd<E = f64>,
    T: Lane,
    const NB: usize,
    const NS: usize,
    const MASK: bool,
>(
    x: &[T],
    dy: &[T],
    yo: &[T],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let long = k.len() * std::mem::size_of::<T>() >= LONG_ROW_BYTES;
    let block = if long { NB } else { NS } * S::W;
    // SAFETY: the caller's contract, passed on.
    unsafe {
        if S::STREAM && k.len() > block && pairs_pay::<T>(long) {
            grad_pairs::<S, T, MASK>([x, dy, yo], k, s)
        } else if long {
            grad_blocks::<S, T, NB, MASK>(x, dy, yo, k, s)
        } else {
            grad_blocks::<S, T, NS, MASK>(x, dy, yo, k, s)
        }
    }
}

/// Whether [`grad_pairs`] beats the register tiles for data of `T` past the
/// caches: `f64` data, and `f32` rows shorter than [`LONG_ROW_BYTES`],
/// whose tiles AVX2 reads in half lines. `bnh bench` A/B on the 2-core Zen
/// 2 VM (AVX2, 1 thread, 3 alternated rounds, paired medians, pairs ÷
/// tiles), backward / `backward_relu`:
/// - `f32` channels-last 64×64×56×56 0.84× / 0.76×, 8×32×16×32×32 0.98× /
///   0.84×;
/// - `f64` everywhere: channels-last 0.84–0.94× / 0.69–0.75×, (N, C)
///   4096×4096 0.92× / 0.77×;
/// - but `f32` rows of 512 and 4096 lanes, which AVX2 reads in whole-line
///   blocks, 1.03–1.11× (`backward_relu` 512 lanes 0.80×), and half data,
///   four times the accumulator traffic per byte read, 1.06–1.12× slower.
///   `f32` rows of exactly 1 KiB (256 lanes, 16×256×28×28) measured 0.95×
///   with pairs but fall on the tiles' side of the line; not tuned.
#[inline(always)]
fn pairs_pay<T>(long: bool) -> bool {
    match std::mem::size_of::<T>() {
        8 => true,
        4 => !long,
        _ => false,
    }
}

/// Row length from which [`grad`] takes its wide column blocks: rows 1 KiB
/// apart or more put a tile's lines in a few L1 sets (4 KiB apart: one).
pub const LONG_ROW_BYTES: usize = 1 << 10;

/// [`grad`] in column blocks of `NB` registers. Columns are split as in
/// [`sums`]: a tail of whole registers stays in registers (before, a
/// 32-lane tail of AVX-512's 64-lane blocks kept its accumulators in
/// memory, row by row).
///
/// # Safety
/// The CPU has `S`'s features; `dy.len() == yo.len() == x.len()`,
/// `s[i].len() == k.len() > 0`.
#[inline(always)]
unsafe fn grad_blocks<S: Simd<E = f64>, T: Lane, const NB: usize, const MASK: bool>(
    x: &[T],
    dy: &[T],
    yo: &[T],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let (l, [s1, s2, s3]) = (k.len(), s);
    let (full, cols) = (x.len() / l, block_cols(k.len(), NB * S::W));
    let ones = block_cols(k.len(), S::W);
    let tl = (tile_rows::<T>(l) / 2).max(MIN_TILE_ROWS) * l; // two arrays per tile
    let tiles = x[..full * l].chunks(tl).zip(dy[..full * l].chunks(tl));
    let ends = [x, dy, yo].map(|v| ahead::<S, T>(l, v));
    for ((tx, tg), to) in tiles.zip(yo[..full * l].chunks(tl)) {
        for c0 in (0..cols).step_by(NB * S::W) {
            let st = [&mut *s1, &mut *s2, &mut *s3];
            // SAFETY: c0 + NB·W <= cols <= l; tiles are whole rows; features by contract.
            unsafe { grad_block::<S, T, NB, MASK>([tx, tg, to], ends, c0, k, st) };
        }
        for c0 in (cols..ones).step_by(S::W) {
            let st = [&mut *s1, &mut *s2, &mut *s3];
            // SAFETY: c0 + W <= ones <= l; tiles are whole rows; features by contract.
            unsafe { grad_block::<S, T, 1, MASK>([tx, tg, to], ends, c0, k, st) };
        }
        if ones < l {
            let rows = tx.chunks_exact(l).zip(tg.chunks_exact(l));
            for ((rx, rg), ro) in rows.zip(to.chunks_exact(l)) {
                let st = [&mut s1[ones..], &mut s2[ones..], &mut s3[ones..]];
                let v = [&rx[ones..], &rg[ones..], &ro[ones..]];
                // SAFETY: all slices have l − ones elements; features by contract.
                unsafe { grad_lanes::<S, T, MASK>(v, &k[ones..], st) };
            }
        }
    }
    let (n, o) = (x.len() - full * l, full * l);
    let st = [&mut s1[..n], &mut s2[..n], &mut s3[..n]];
    // SAFETY: the last row has n < l lanes; all slices have n elements.
    unsafe { grad_lanes::<S, T, MASK>([&x[o..], &dy[o..], &yo[o..]], &k[..n], st) };
}

/// [`grad`] past the caches (`S::STREAM`) on rows wider than one column
/// block: rows two at a time in address order, each register's three
/// accumulators loaded from `s` (in L1), given the pair's two rows and
/// stored back. A register tile's column blocks walk its rows at a stride
/// of a row, and read from memory that order fed the core more slowly than
/// the read itself: a C model of the loop on the 2-core Zen 2 VM (AVX2,
/// 12.8 M-value `f32` `x` and `dy`, prefetch 8 KiB ahead, best of 7, two
/// sittings) took 0.43–0.47 ns per value in row pairs against 0.53–0.55
/// in tiles on 32-lane rows, 0.46 against 0.70–0.71 on 64, 0.63–0.67
/// against 0.71–0.73 on 512 and 0.52–0.53 against 0.96–1.06 on 4096 (a
/// plain read of both arrays: 0.40). In cache the tiles stay faster
/// (6.4 MB, 64 lanes: 0.25 against 0.39), hence `S::STREAM`. Every lane
/// still adds its rows in row order: the same bits as the tiles.
///
/// # Safety
/// As [`grad`] (`v = [x, dy, yo]`).
#[inline(always)]
unsafe fn grad_pairs<S: Simd<E = f64>, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let (l, [s1, s2, s3]) = (k.len(), s);
    let full = v[0].len() / l;
    let mut r = 0;
    while r + 2 <= full {
        // SAFETY: rows r, r + 1 < full are whole rows; the rest by contract.
        unsafe { grad_rows::<S, T, MASK, 2>(v, r, k, [s1, s2, s3]) };
        r += 2;
    }
    if r < full {
        // SAFETY: row r < full is a whole row; the rest by contract.
        unsafe { grad_rows::<S, T, MASK, 1>(v, r, k, [s1, s2, s3]) };
    }
    let (n, o) = (v[0].len() - full * l, full * l);
    let st = [&mut s1[..n], &mut s2[..n], &mut s3[..n]];
    // SAFETY: the last row has n < l lanes; all slices have n elements.
    unsafe { grad_lanes::<S, T, MASK>(v.map(|a| &a[o..]), &k[..n], st) };
}

/// Rows `r..r + R` of [`grad_pairs`], register by register (each
/// register's accumulators loaded once, given the `R` rows in row order,
/// stored once), then the lanes short of a register row by row. Inputs are
/// prefetched [`nt::PREFETCH_BYTES`] ahead without an end test (past the
/// end a prefetch is only wasted). `R` a constant (before: a run-time
/// count of 1 or 2, an inner loop with its own counter, and end tests per
/// prefetch): in cache 0.29 ns per value against 0.48 (64 lanes, direct
/// calls), and `bnh bench` A/B `f32` backward channels-last 64×64×56×56
/// 0.89×, 8×32×16×32×32 0.80–0.89× (`backward_relu` 0.81–0.93×), `f64`
/// within noise (0.93–1.05×). One prefetch per line instead of one per
/// register measured 1.03–1.07× slower than this.
///
/// # Safety
/// As [`grad`] (`v = [x, dy, yo]`), and rows `r..r + R` are whole rows of
/// every input.
#[inline(always)]
unsafe fn grad_rows<S: Simd<E = f64>, T: Lane, const MASK: bool, const R: usize>(
    v: [&[T]; 3],
    r: usize,
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let (l, [s1, s2, s3]) = (k.len(), s);
    let ones = block_cols(l, S::W);
    let base = v.map(|a| a[r * l..(r + R) * l].as_ptr());
    for c in (0..ones).step_by(S::W) {
        // SAFETY: c + W <= ones <= l lanes of the accumulators and the
        // shift; row r + q < r + R, lanes c..c + W, of every input
        // (contract); features by contract.
        unsafe {
            let kv = S::load(k.as_ptr().add(c));
            let ps = [s1.as_mut_ptr(), s2.as_mut_ptr(), s3.as_mut_ptr()].map(|p| p.add(c));
            let mut acc = ps.map(|p| S::load(p));
            for q in 0..R {
                let [px, pg, po] = base.map(|b| b.add(q * l + c));
                nt::prefetch_from(px, S::W);
                nt::prefetch_from(pg, S::W);
                let mut g = T::load::<S>(pg);
                if MASK {
                    nt::prefetch_from(po, S::W);
                    g = S::relu_grad(T::load::<S>(po), g);
                }
                let d = S::sub(T::load::<S>(px), kv);
                acc[0] = S::add(acc[0], g);
                acc[1] = S::fma(g, d, acc[1]);
                acc[2] = S::add(acc[2], d);
            }
            for (p, a) in ps.into_iter().zip(acc) {
                S::store(p, a);
            }
        }
    }
    if ones < l {
        for q in r..r + R {
            let row = v.map(|a| &a[q * l + ones..(q + 1) * l]);
            let st = [&mut s1[ones..], &mut s2[ones..], &mut s3[ones..]];
            // SAFETY: all slices have l − ones elements; features by contract.
            unsafe { grad_lanes::<S, T, MASK>(row, &k[ones..], st) };
        }
    }
}

/// One column block of [`grad`] over the rows of a tile, prefetching
/// `[x, dy, yo]` up to `ends` ([`ahead`]), or without them (long rows,
/// streaming) [`near_ahead`].
///
/// # Safety
/// As [`sums_block`], and `tg.len() == to.len() == tx.len()` (`t = [tx, tg, to]`).
#[inline(always)]
unsafe fn grad_block<S: Simd<E = f64>, T: Lane, const NB: usize, const MASK: bool>(
    t: [&[T]; 3],
    ends: [Option<*const T>; 3],
    c0: usize,
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let ([tx, tg, to], l) = (t, k.len());
    // SAFETY: lanes c0 + j·W + w < l (contract); row r < tx.len() / l of both tiles.
    unsafe {
        let kv: [S::V; NB] = from_fn(|j| S::load(k.as_ptr().add(c0 + j * S::W)));
        let mut acc: [[S::V; NB]; 3] =
            from_fn(|i| from_fn(|j| S::load(s[i].as_ptr().add(c0 + j * S::W))));
        let near = near_ahead::<T>(l, c0, tx.len());
        for r in 0..tx.len() / l {
            let (px, pg) = (tx.as_ptr().add(r * l + c0), tg.as_ptr().add(r * l + c0));
            let po = to.as_ptr().add(r * l + c0);
            let inputs = [(px, ends[0]), (pg, ends[1]), (po, ends[2])];
            for (p, e) in inputs.into_iter().take(if MASK { 3 } else { 2 }) {
                if let Some(end) = e {
                    nt::prefetch::<S, T>(p, NB * S::W, end, None);
                } else if S::STREAM {
                    nt::prefetch_lines(p.wrapping_add(near), NB * S::W);
                }
            }
            for j in 0..NB {
                let mut g = T::load::<S>(pg.add(j * S::W));
                if MASK {
                    g = S::relu_grad(T::load::<S>(po.add(j * S::W)), g);
                }
                let d = S::sub(T::load::<S>(px.add(j * S::W)), kv[j]);
                acc[0][j] = S::add(acc[0][j], g);
                acc[1][j] = S::fma(g, d, acc[1][j]);
                acc[2][j] = S::add(acc[2][j], d);
            }
        }
        for (a, v) in acc.iter().zip(s) {
            for (j, &aj) in a.iter().enumerate() {
                S::store(v.as_mut_ptr().add(c0 + j * S::W), aj);
            }
        }
    }
}

/// [`grad`] over one row (or row piece) with accumulators in memory.
///
/// # Safety
/// The CPU has `S`'s features; all slices equally long (`v = [x, dy, yo]`).
#[inline(always)]
unsafe fn grad_lanes<S: Simd<E = f64>, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let ([x, dy, yo], [s1, s2, s3]) = (v, s);
    let body = x.len() / S::W * S::W;
    let mut i = 0;
    while i < body {
        // SAFETY: i + W <= body <= the common length of all slices.
        unsafe {
            let mut g = T::load::<S>(dy.as_ptr().add(i));
            if MASK {
                g = S::relu_grad(T::load::<S>(yo.as_ptr().add(i)), g);
            }
            let d = S::sub(T::load::<S>(x.as_ptr().add(i)), S::load(k.as_ptr().add(i)));
            let p = [s1.as_mut_ptr(), s2.as_mut_ptr(), s3.as_mut_ptr()].map(|p| p.add(i));
            S::store(p[0], S::add(S::load(p[0]), g));
            S::store(p[1], S::fma(g, d, S::load(p[1])));
            S::store(p[2], S::add(S::load(p[2]), d));
        }
        i += S::W;
    }
    for i in body..x.len() {
        let (mut g, d) = (dy[i].as_f64(), x[i].as_f64() - k[i]);
        if MASK {
            g = relu_grad(yo[i].as_f64(), g);
        }
        s1[i] += g;
        s2[i] = g.mul_add(d, s2[i]);
        s3[i] += d;
    }
}

/// The `ADD`/`RELU` epilogue of the forward passes on one register:
/// `v + r` (residual at `pr`), then PyTorch's ReLU.
///
/// # Safety
/// The CPU has `S`'s features; with `ADD`, `pr` valid for `W` reads.
#[inline(always)]
unsafe fn post<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(v: S::V, pr: *const T) -> S::V {
    // SAFETY: `pr` is read only with `ADD` (contract); features by contract.
    unsafe {
        let v = if ADD { S::add(v, T::load::<S>(pr)) } else { v };
        if RELU {
            S::relu(v)
        } else {
            v
        }
    }
}

/// Element-wise passes walk whole rows as one flat stream when `L` is a
/// multiple of `W` (the lane index `j` wraps at `L`), which measured faster
/// than a loop per row for short rows; this many leading elements. The
/// register step of each pass is an `#[inline(always)]` function called
/// from both loops, not a closure: a closure the compiler does not inline
/// loses the caller's target features, and every intrinsic in it becomes a
/// call (`bf16` channels-last measured 6–9× slower that way).
#[inline(always)]
fn flat_len<S: Simd>(len: usize, l: usize) -> usize {
    if l.is_multiple_of(S::W) {
        len / l * l
    } else {
        0
    }
}

/// The lane after `j..j + W`, wrapping at `l`.
#[inline(always)]
fn next_lane<S: Simd>(j: usize, l: usize) -> usize {
    if j + S::W == l {
        0
    } else {
        j + S::W
    }
}

/// Rows after the flat stream: `(row start, lanes in the row, lanes in
/// whole registers)` for the rows `[flat, len)` of `l` lanes.
#[inline(always)]
fn rows_after<S: Simd>(
    flat: usize,
    len: usize,
    l: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    (flat..len).step_by(l).map(move |row| {
        let n = l.min(len - row);
        (row, n, n / S::W * S::W)
    })
}

/// Registers per turn of [`stream_sweep`]: as many as the coefficient
/// arrays' [`WRAP`] lanes allow past any lane `j < l` (4 on AVX2, 2 on
/// AVX-512), at most 4.
#[inline(always)]
const fn sweep_regs<S: Simd>() -> usize {
    let u = WRAP / S::W;
    if u > 4 {
        4
    } else if u == 0 {
        1
    } else {
        u
    }
}

/// The streaming form of a row pass (`S::STREAM`), and the form of any
/// pass that goes by column blocks ([`block_lanes`], [`cached_blocks`]):
/// one sweep across row ends — registers start at any lane, the
/// coefficient arrays being wrapped ([`WRAP`]) — so every register store
/// is aligned ([`nt::span`])
/// and no line mixes streaming and ordinary stores except the first and
/// last of the slice; `one(i, j)` does element `i` (lane `j`) in scalar
/// code, `step(i, j)` the register at element `i`, lane `j`, called for
/// the [`sweep_regs`] registers of a turn (the `q`-th at `i + q·W`, lanes
/// `j + q·W` of the wrapped arrays) after `turn_at(p)` (the callers'
/// prefetches for the turn: the turn's worth of elements at `p`, where the
/// sweep reads [`nt::PREFETCH_BYTES`] later). The last whole registers
/// short of a turn (a line of `f64` data) go to `one`, in ordinary stores
/// of whole lines. With `blocks`, the column block width from
/// [`sweep_blocks`], the sweep goes by column blocks ([`block_segments`]).
///
/// Four registers a turn, and the callers' prefetches one per line a turn
/// (not one per register): with the loop's bookkeeping (lane wrap, bounds,
/// prefetch end tests) once per register, about 25 instructions for the 4
/// values of `dx`, the streaming `dx` pass took 0.59 ns per value in cache
/// against 0.40–0.47 for a C loop of the same arithmetic, and 0.46 after
/// (direct calls, Zen 2 VM). `bnh bench` A/B (3–4 alternated rounds, 1
/// thread, paired medians, new ÷ old), `f32`: channels-last 64×64×56×56
/// eval 0.83–0.85×, train 0.90–0.91×, backward 0.92–0.94×; (N, C)
/// 4096×4096 0.86× / 0.92× / 0.95×; 8×32×16×32×32 within noise
/// (0.92–1.03×); half data, which do not stream here, level.
///
/// # Safety
/// `step(i, j)` must be sound for `i + W <= len`, `j + W <= l + WRAP`.
#[inline(always)]
unsafe fn stream_sweep<S: Simd, T: Lane>(
    y: *const T,
    (len, l, blocks): (usize, usize, Option<usize>),
    (mut one, mut turn_at): (impl FnMut(usize, usize), impl FnMut(usize)),
    mut step: impl FnMut(usize, usize),
) {
    let turn = sweep_regs::<S>() * S::W;
    let ahead = nt::PREFETCH_BYTES / std::mem::size_of::<T>();
    let (h, end) = match blocks {
        Some(_) => (0, len),
        None => {
            let (h, end) = nt::span::<S, T>(y, len);
            (h, h + (end - h) / turn * turn)
        }
    };
    for i in (0..h).chain(end..len) {
        one(i, i % l);
    }
    // Segments `(first element, its lane, elements, prefetch target)`: the
    // span in address order, or the column blocks' row segments. One loop
    // over both, so `step` is inlined at one call site (a closure called
    // from two loops was left a call, and every intrinsic in it became
    // one: 8–19× the time).
    let flat = blocks.is_none().then_some((h, h % l, end - h, h + ahead));
    let blocked = blocks
        .into_iter()
        .flat_map(|cb| block_segments::<T>(len, l, cb));
    for (i0, j0, n, p0) in flat.into_iter().chain(blocked) {
        let (mut i, mut j, mut p) = (i0, j0, p0);
        while i < i0 + n {
            turn_at(p);
            for q in 0..sweep_regs::<S>() {
                // `i + q·W + W <= i0 + n <= len`; `j < l`, so `j + q·W + W <=
                // l + sweep_regs·W <= l + WRAP` (`sweep_regs`).
                step(i + q * S::W, j + q * S::W);
            }
            i += turn;
            j += turn;
            p += turn;
            // One subtraction, not a loop: rows of at least a turn wrap once; a
            // `while` here compiled to an inner loop that ran once per register
            // (with the subtraction: 4096×4096 `f32` eval called directly
            // 0.85–0.95× the time, in `bnh bench` level; (N, C) `f32` backward
            // 0.92×; Zen 2 VM). Shorter rows may wrap more than once. A block
            // segment never passes its row's end.
            if j >= l {
                j -= l;
                if j >= l {
                    j %= l;
                }
            }
        }
    }
    // SAFETY: the caller's features (contract of the kernels that call this).
    unsafe { S::fence() };
}

/// Coefficient bytes (all arrays) per column block of a row pass over
/// long rows ([`block_segments`]): a third of the smallest L1
/// data cache bnh targets (32 KiB on AVX2 machines, 48 KiB on AVX-512
/// ones), so a block's coefficients stay in L1 beside the lines in flight.
///
/// A row pass in address order reloads every row's coefficients; once they
/// overflow L1 they come from L2 for every row, and their misses take the
/// line-fill buffers the input stream from memory needs. (N, C) `f32` eval
/// (`f64` coefficients `a`, `b`) on the Zen 5 VM, 1 thread, `bnh bench`,
/// 67 MB, ratio to the copy: 1.12× at 256 and 1024 channels (16 KiB of
/// coefficients), 1.51× at 2048, 2.05× at 3072, 2.2× at 4096. A C model of
/// the 4096-channel pass: 4.7–4.9 ms in address order, 3.5–3.8 ms reading
/// two rows per coefficient load, 2.6–2.7 ms by blocks of 1024 lanes
/// within 16-row tasks with the prefetch two block rows ahead, against a
/// 2.2–2.3 ms streaming copy (medians of 31, variants interleaved).
const BLOCK_BYTES: usize = 16 << 10;

/// Coefficient bytes per row past which a streaming row pass (and an
/// `f32` one within the caches, [`cached_blocks`]) goes by column blocks
/// ([`BLOCK_BYTES`]). `bnh bench` A/B on the Zen 5 VM (3
/// alternated rounds, 1 thread, `f32`, paired medians, blocked ÷ address
/// order): 3072 channels (48–96 KiB) eval 0.59×, train 0.77×, backward
/// 0.85×; 2048 channels backward (48–64 KiB) 0.85×, eval and train (32
/// KiB) level; but 1024-channel backward (24–32 KiB) by blocks of 512
/// lanes 1.04–1.09×: blocks of a few KiB per row cost more than the
/// coefficients they keep in L1.
const BLOCK_PAST_BYTES: usize = 32 << 10;

/// Lanes per column block of a row pass over `len` elements of rows of `l`
/// lanes with `lane_bytes` of coefficients per lane, or `None` for a sweep
/// in address order: rows whose coefficients fit [`BLOCK_PAST_BYTES`], slices of
/// fewer than two rows or not of whole rows, an output not aligned to a
/// cache line, or rows that are not whole lines and turns (the blocks'
/// stores must be whole streamed lines). A power of two, at least a turn.
#[inline(always)]
fn block_lanes<S: Simd, T>(y: *const T, len: usize, l: usize, lane_bytes: usize) -> Option<usize> {
    let (sz, turn) = (std::mem::size_of::<T>(), sweep_regs::<S>() * S::W);
    let long = l * lane_bytes > BLOCK_PAST_BYTES;
    let rows = l > 0 && len >= 2 * l && len.is_multiple_of(l);
    let lines = (y as usize).is_multiple_of(64) && (l * sz).is_multiple_of(64);
    if !(long && rows && lines && l.is_multiple_of(turn)) {
        return None;
    }
    let cb = prev_power_of_two(BLOCK_BYTES / lane_bytes.max(1)).max(turn);
    ((cb * sz).is_multiple_of(64) && cb.is_multiple_of(turn)).then_some(cb)
}

/// Whether row passes that do not stream (data within the caches) go by
/// column blocks too ([`block_lanes`]): for `f32` data, whose `f64`
/// coefficients are the widest per value. `bnh bench` A/B on the Zen 5 VM
/// (3 alternated rounds, 1 thread, paired medians, blocked ÷ address order):
/// `f32` 256×4096 eval 0.73×, train 0.78×, backward 0.79×; 512×3072 0.68×,
/// 0.77×, 0.85×. `f64` 256×4096 eval 0.92× and train 0.95× but backward
/// 1.04–1.18×; half data (`f32` lanes) block only in backward, 0.85–0.87×
/// at 256×4096, but the sweep in their kernels cost `bf16` eval 1.09–1.37×
/// where it did not run (256×1024, 256×4096). Streaming passes block for
/// every type.
#[inline(always)]
fn cached_blocks<T>() -> bool {
    std::mem::size_of::<T>() == 4
}

/// Whether a row pass writing `y` (`len` elements of rows of `l` lanes,
/// `lane_bytes` of coefficients per lane) runs as [`stream_sweep`], and if
/// so its column block width: `Some(blocks)` for streaming passes and for
/// passes that go by blocks within the caches ([`cached_blocks`]), `None`
/// for the address-order loops of the passes' plain form. One rule for
/// every row pass, evaluated once per call.
#[inline(always)]
fn sweep_blocks<S: Simd, T>(
    y: *const T,
    len: usize,
    l: usize,
    lane_bytes: usize,
) -> Option<Option<usize>> {
    if !S::STREAM && !cached_blocks::<T>() {
        return None;
    }
    let blocks = block_lanes::<S, T>(y, len, l, lane_bytes);
    (S::STREAM || blocks.is_some()).then_some(blocks)
}

/// The largest power of two not above `n` (1 for 0).
#[inline(always)]
fn prev_power_of_two(n: usize) -> usize {
    if n <= 1 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// The row segments of a sweep by column blocks of `cb` lanes (from
/// [`block_lanes`]), as [`stream_sweep`]'s `(first element, its lane,
/// elements, prefetch target)`: for each block, the block's segment of
/// every row of the slice in turn, so the block's coefficients are read
/// from memory once per slice instead of once per row. The prefetch target
/// is the element the sweep reaches [`nt::PREFETCH_BYTES`] later: the same
/// offset in the row segment that many bytes ahead — rows further down the
/// block, then the next block's first rows, past the last block the
/// slice after this one (where the next task of a pass over the tensor
/// starts), in the same order.
/// `len` is a multiple of `l`, and `l` and `cb` of a turn.
#[inline(always)]
fn block_segments<T>(
    len: usize,
    l: usize,
    cb: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let (rows, ends) = (len / l, l.div_ceil(cb) * cb);
    let ahead = nt::PREFETCH_BYTES.div_ceil(cb * std::mem::size_of::<T>());
    (0..l).step_by(cb).flat_map(move |c0| {
        (0..rows).map(move |r| {
            let (mut tr, mut tc) = (r + ahead, c0);
            while tr >= rows {
                tr -= rows;
                tc += cb;
            }
            // Past the last block: the same block pattern in the next slice.
            let target = if tc < l {
                tr * l + tc
            } else {
                len + tr * l + (tc - ends)
            };
            (r * l + c0, c0, cb.min(l - c0), target)
        })
    })
}

/// [`affine`] (`c = [k, a, b]`) or, with `SCALE`, the scale form (`c = [a, b]`),
/// with the epilogue `post` chosen at run time (`r` read only by
/// [`Post::AddRelu`]).
///
/// # Safety
/// As [`affine`].
#[inline(always)]
pub unsafe fn affine_post<S: Simd, T: Lane, const SCALE: bool>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: &[&[S::E]],
    post: Post,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match post {
            Post::Plain => affine::<S, T, SCALE, false, false>(x, x, y, c),
            Post::Relu => affine::<S, T, SCALE, false, true>(x, x, y, c),
            Post::AddRelu => affine::<S, T, SCALE, true, true>(x, r, y, c),
        }
    }
}

/// `y = fma(x − k[l], a[l], b[l])` (`c = [k, a, b]`) or with `SCALE`
/// `y = x·a[l] + b[l]` (`c = [a, b]`); with `ADD` plus `r`, with `RELU`
/// then PyTorch's ReLU, rounded once (`r` unread without `ADD`). The scale
/// form multiplies and adds separately: with a shift folded into `b`
/// (`b = c − K·a`), a constant channel `x = K` then cancels exactly
/// (`round(K·a) − round(K·a)`), where a fused multiply-add would leave the
/// rounding error of `K·a` — up to 1.7e-6 relative in `f32` at offset 1e8,
/// found by `bnh accuracy`.
///
/// # Safety
/// The CPU has `S`'s features; `y.len() == x.len() == r.len()`, `c` has 2
/// (`SCALE`) or 3 arrays of `L + WRAP` lanes each, `L > 0` (a
/// [`super::RowCoeffs`] array: `L` lanes, then its first [`WRAP`] again).
#[inline(always)]
pub unsafe fn affine<S: Simd, T: Lane, const SCALE: bool, const ADD: bool, const RELU: bool>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: &[&[S::E]],
) {
    let (k, ab) = if SCALE {
        (None, [c[0], c[1]])
    } else {
        (Some(c[0]), [c[1], c[2]])
    };
    let (len, l, py) = (x.len(), ab[0].len() - WRAP, y.as_mut_ptr());
    let one = |i: usize, j: usize| {
        let v = lane::<S::E, T>(x[i]);
        let v = match k {
            Some(k) => (v - k[j]).fma(ab[0][j], ab[1][j]),
            None => v * ab[0][j] + ab[1][j],
        };
        let v = post_scalar::<S::E, T, ADD, RELU>(v, r[i]);
        // SAFETY: i < len == y.len(); every write goes through `py`.
        unsafe { *py.add(i) = T::from_f64(v.to_f64()) };
    };
    let lane_bytes = c.len() * std::mem::size_of::<S::E>();
    if let Some(blocks) = sweep_blocks::<S, T>(py, len, l, lane_bytes) {
        let turn = |p| prefetch_at::<S, T, 2>([(x, true), (r, ADD)], p, sweep_regs::<S>() * S::W);
        // SAFETY: i + W <= len, j + W <= l + WRAP lanes of the arrays
        // (`stream_sweep`'s contract); features by contract.
        let step = |i, j| unsafe { affine_step::<S, T, ADD, RELU>([x, r], py, k, ab, i, j) };
        // SAFETY: `step` is sound for the sweep's (i, j); features by contract.
        return unsafe { stream_sweep::<S, T>(py, (len, l, blocks), (one, turn), step) };
    }
    let flat = flat_len::<S>(len, l);
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // SAFETY: i + W <= flat <= len, j + W <= l (`flat_len`); features by contract.
        unsafe { affine_step::<S, T, ADD, RELU>([x, r], py, k, ab, i, j) };
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    for (row, n, body) in rows_after::<S>(flat, len, l) {
        let mut j = 0;
        while j < body {
            // SAFETY: row + j + W <= row + n <= len, j + W <= n <= l; features by contract.
            unsafe { affine_step::<S, T, ADD, RELU>([x, r], py, k, ab, row + j, j) };
            j += S::W;
        }
        for j in body..n {
            one(row + j, j);
        }
    }
}

/// One register of [`affine`] at element `i`, lane `j` (`xr = [x, r]`,
/// `ab = [a, b]`, `k` absent with `SCALE`).
///
/// # Safety
/// The CPU has `S`'s features; `i + W <= x.len() == r.len()`, `y` valid
/// for writes there; `j + W <=` the length of every array.
#[inline(always)]
unsafe fn affine_step<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(
    [x, r]: [&[T]; 2],
    y: *mut T,
    k: Option<&[S::E]>,
    [a, b]: [&[S::E]; 2],
    i: usize,
    j: usize,
) {
    // SAFETY: bounds and features by contract.
    unsafe {
        let (xv, av, bv) = (
            T::load::<S>(x.as_ptr().add(i)),
            S::load(a.as_ptr().add(j)),
            S::load(b.as_ptr().add(j)),
        );
        let v = match k {
            Some(k) => S::fma(S::sub(xv, S::load(k.as_ptr().add(j))), av, bv),
            None => S::add(S::mul(xv, av), bv),
        };
        T::store::<S>(y.add(i), post::<S, T, ADD, RELU>(v, r.as_ptr().add(i)));
    }
}

/// `dx = fma(kd[l], dy, fma(kx[l], x − k[l], kc[l]))`, `c = [k, kd, kx, kc]`:
/// [`dx_relu`] without the mask (`dy` read once). Without `shift` the shift
/// is folded into `kc` and `c[0]` is not read: `fma(kx[l], x, kc[l])`, the
/// same bits as `k = 0` with one coefficient stream fewer.
///
/// # Safety
/// As [`affine`], and `dy.len() == x.len()`.
#[inline(always)]
pub unsafe fn dx<S: Simd, T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: [&[S::E]; 4], shift: bool) {
    let (v, dres) = ([x, dy, dy], std::ptr::null_mut());
    // SAFETY: forwarded contract; `yo` = `dy` is never read without `MASK`.
    unsafe {
        if shift {
            dx_pass::<S, T, false, false, false, true>(v, dx, dres, c)
        } else {
            dx_pass::<S, T, false, false, false, false>(v, dx, dres, c)
        }
    }
}

/// [`dx_relu`] with `fixed`, the presence of `dres` and `shift` (whether
/// `c[0]` is read, see [`dx`]) chosen at run time.
///
/// # Safety
/// As [`dx_relu`] (`dres` valid for `x.len()` writes when not null).
#[inline(always)]
pub unsafe fn dx_relu_any<S: Simd, T: Lane>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [&[S::E]; 4],
    (fixed, shift): (bool, bool),
) {
    // SAFETY: forwarded contract; `RES` exactly when `dres` is not null.
    unsafe {
        match (fixed, dres.is_null(), shift) {
            (false, true, true) => dx_relu::<S, T, false, false, true>(v, dx, dres, c),
            (false, false, true) => dx_relu::<S, T, false, true, true>(v, dx, dres, c),
            (true, true, true) => dx_relu::<S, T, true, false, true>(v, dx, dres, c),
            (true, false, true) => dx_relu::<S, T, true, true, true>(v, dx, dres, c),
            (false, true, false) => dx_relu::<S, T, false, false, false>(v, dx, dres, c),
            (false, false, false) => dx_relu::<S, T, false, true, false>(v, dx, dres, c),
            (true, true, false) => dx_relu::<S, T, true, false, false>(v, dx, dres, c),
            (true, false, false) => dx_relu::<S, T, true, true, false>(v, dx, dres, c),
        }
    }
}

/// The ReLU backward's element-wise pass over rows: `g` = `dy` masked by
/// the output `yo`, `dx = fma(kd[l], g, fma(kx[l], x − k[l], kc[l]))` (with
/// `FIXED`: `dx = kd[l]·g − 0`, `x` unread; without `SHIFT` as [`dx`]'s
/// folded form), and with `RES`
/// `grad_residual = g` at `dres` — one pass (`v = [x, dy, yo]`).
///
/// # Safety
/// As [`dx`], `yo.len() == x.len()`; with `RES`, `dres` valid for
/// `x.len()` writes and not overlapping the slices.
#[inline(always)]
pub unsafe fn dx_relu<S: Simd, T: Lane, const FIXED: bool, const RES: bool, const SHIFT: bool>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [&[S::E]; 4],
) {
    // SAFETY: forwarded contract.
    unsafe { dx_pass::<S, T, true, FIXED, RES, SHIFT>(v, dx, dres, c) }
}

/// The `dx` pass: `g = dy`, masked by `yo` with `MASK`; then as [`dx_relu`],
/// or without `SHIFT` as if `k = 0` (`c[0]`, the shift, is then not read).
///
/// # Safety
/// As [`dx_relu`]; `yo` is read only with `MASK`.
#[inline(always)]
unsafe fn dx_pass<
    S: Simd,
    T: Lane,
    const MASK: bool,
    const FIXED: bool,
    const RES: bool,
    const SHIFT: bool,
>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [&[S::E]; 4],
) {
    let x = v[0];
    let (len, l, pd) = (x.len(), c[0].len() - WRAP, dx.as_mut_ptr());
    let one = |i: usize, j: usize| {
        let mut cj = c.map(|v| v[j]);
        if !SHIFT {
            cj[0] = S::E::from_f64(0.0);
        }
        // SAFETY: i < len == dx.len(), for which `dres` is valid with `RES`
        // (contract); every write to `dx` goes through `pd`.
        unsafe { *pd.add(i) = dx_scalar::<S::E, T, MASK, FIXED, RES>(v, dres, i, cj) };
    };
    // Coefficient arrays read: `kd`, and unless `FIXED` `kx`, `kc` and the shift.
    let arrays = if FIXED { 1 } else { 3 + usize::from(SHIFT) };
    let lane_bytes = arrays * std::mem::size_of::<S::E>();
    if let Some(blocks) = sweep_blocks::<S, T>(pd, len, l, lane_bytes) {
        // `dres` would not share `dx`'s alignment: never streamed
        // (`simd::rows_dx_relu` takes the plain level when it is given).
        debug_assert!(
            !(RES && S::STREAM),
            "dx_pass: streaming with a residual gradient"
        );
        let inputs = [(v[0], !FIXED), (v[1], true), (v[2], MASK)];
        let turn = |p| prefetch_at::<S, T, 3>(inputs, p, sweep_regs::<S>() * S::W);
        // SAFETY: i + W <= len, j + W <= l + WRAP lanes of the arrays
        // (`stream_sweep`'s contract); the rest by contract.
        let step =
            |i, j| unsafe { dx_step::<S, T, MASK, FIXED, RES, SHIFT>(v, [pd, dres], c, i, j) };
        // SAFETY: `step` is sound for the sweep's (i, j); features by contract.
        return unsafe { stream_sweep::<S, T>(pd, (len, l, blocks), (one, turn), step) };
    }
    let flat = flat_len::<S>(len, l);
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // SAFETY: i + W <= flat <= len, j + W <= l (`flat_len`); the rest by contract.
        unsafe { dx_step::<S, T, MASK, FIXED, RES, SHIFT>(v, [pd, dres], c, i, j) };
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    for (row, n, body) in rows_after::<S>(flat, len, l) {
        let mut j = 0;
        while j < body {
            // SAFETY: row + j + W <= row + n <= len, j + W <= n <= l; the rest by contract.
            unsafe { dx_step::<S, T, MASK, FIXED, RES, SHIFT>(v, [pd, dres], c, row + j, j) };
            j += S::W;
        }
        for j in body..n {
            one(row + j, j);
        }
    }
}

/// One register of [`dx_pass`] at element `i`, lane `j` (`out = [dx, dres]`).
///
/// # Safety
/// The CPU has `S`'s features; `i + W <=` the length of `v`'s slices, for
/// which `dx` (and with `RES` `dres`) are valid; `j + W <=` every array's length.
#[inline(always)]
unsafe fn dx_step<
    S: Simd,
    T: Lane,
    const MASK: bool,
    const FIXED: bool,
    const RES: bool,
    const SHIFT: bool,
>(
    [x, dy, yo]: [&[T]; 3],
    [dx, dres]: [*mut T; 2],
    c: [&[S::E]; 4],
    i: usize,
    j: usize,
) {
    // SAFETY: bounds and features by contract.
    unsafe {
        let [kd, kx, kc] = [c[1], c[2], c[3]].map(|v| S::load(v.as_ptr().add(j)));
        let mut m = T::load::<S>(dy.as_ptr().add(i));
        if MASK {
            m = S::relu_grad(T::load::<S>(yo.as_ptr().add(i)), m);
        }
        if RES {
            T::store::<S>(dres.add(i), m);
        }
        let v = if FIXED {
            S::fma(kd, m, S::splat(S::E::from_f64(-0.0)))
        } else {
            let mut d = T::load::<S>(x.as_ptr().add(i));
            if SHIFT {
                d = S::sub(d, S::load(c[0].as_ptr().add(j)));
            }
            S::fma(kd, m, S::fma(kx, d, kc))
        };
        T::store::<S>(dx.add(i), v);
    }
}

#[cfg(test)]
mod tests {
    use super::{block_segments, nt};

    /// A sweep by column blocks covers every element of the slice once,
    /// each at its own lane, block by block and row by row within a block;
    /// each segment's prefetch target is the segment the sweep reaches
    /// [`nt::PREFETCH_BYTES`] later (same offset), or past the slice the
    /// next slice's first block.
    #[test]
    fn column_blocks_cover_every_element_once_and_prefetch_ahead_in_sweep_order() {
        for (l, cb, rows) in [
            (4096, 1024, 16),
            (4112, 1024, 5),
            (2304, 512, 2),
            (64, 16, 7),
        ] {
            let len = l * rows;
            let segs: Vec<_> = block_segments::<f32>(len, l, cb).collect();
            let mut seen = vec![0u8; len];
            for &(i0, j0, n, _) in &segs {
                assert_eq!(i0 % l, j0, "lane of the segment start");
                assert!(j0 + n <= l, "segment past its row");
                seen[i0..i0 + n].iter_mut().for_each(|v| *v += 1);
            }
            assert!(seen.iter().all(|&v| v == 1), "L {l} cb {cb}: not once each");
            let ahead = nt::PREFETCH_BYTES.div_ceil(cb * 4);
            for (s, &(_, j0, _, target)) in segs.iter().enumerate() {
                let want = match segs.get(s + ahead) {
                    Some(&(i0, ..)) => i0,
                    // The next slice's segments, in the same order.
                    None => {
                        let past = s + ahead - segs.len();
                        len + past % rows * l + past / rows * cb
                    }
                };
                assert_eq!(target, want, "L {l} cb {cb} segment {s} (lane {j0})");
            }
        }
    }
}
