//! Inner loops over one contiguous run or one tile of channels-last rows,
//! written once in portable Rust with explicit lane-blocked accumulators.
//!
//! Every function is `#[inline(always)]` so that it is compiled into its
//! caller, for the baseline target, where LLVM vectorizes the
//! `[f64; LANES]` accumulators. No `mul_add` and no reassociation: Rust does
//! not contract `a*b + c` into an FMA, so the explicit AVX-512 lane sums of
//! [`super::avx512`] produce the same bits as these loops.
//!
//! # Accumulator strategy (statistics)
//! Values are widened to `f64` (exact for `f32`) and shifted by the
//! channel's first value `K_c` (as in `welford`). Each statistics chunk — a
//! contiguous group of at most 64 Ki values of one channel (256 KiB of
//! `f32`, L2-resident), or a channels-last tile of at least [`TILE`]
//! elements and [`MIN_TILE_ROWS`] rows — is small enough to stay in cache,
//! so its statistics are computed with the *corrected two-pass* algorithm
//! (Björck; Chan, Golub & LeVeque 1983, eq. 1.7) at no extra DRAM traffic:
//!
//! 1. `m_b = Σ(x − K)/n` (pass 1);
//! 2. `e = (x − K) − m_b`, `mean = m_b + Σe/n`, `M2 = Σe² − (Σe)²/n` (pass 2).
//!
//! Its error is `M2·O(n·ε)` independent of how far `K` is from the data
//! (the correction term `(Σe)²/n` is of the order of the rounding error of
//! `m_b`), so an outlier first element does not cause the cancellation that a
//! one-pass `Σd² − (Σd)²/n` would. Chunks are then merged with Chan, Golub &
//! LeVeque's pairwise formula ([`Moments::merge`]) in a fixed order.

use crate::element::Element;
use crate::engine::plan::fold_lane_copies;
use crate::moments::Moments;

/// Independent accumulators per loop: 2 zmm / 4 ymm of `f64`, enough to hide
/// the add latency and to vectorize.
pub const LANES: usize = 16;
/// Target elements of a channels-last tile (about 32 KiB of `f32`).
pub const TILE: usize = 8192;
/// Fewest rows of a channels-last tile, so the per-channel work of a tile
/// (fold, mean, merge) is spread over at least this many values per channel.
pub const MIN_TILE_ROWS: usize = 16;
/// Minimum width of a channels-last "super-row": `m = ⌈64/C⌉` rows are
/// processed as one row of `L = m·C` lanes so few-channel shapes vectorize.
pub const MIN_SUPER_ROW: usize = 64;

/// Widest column block of the row kernels: with many channels (`L = C`
/// up to 10⁴) the per-channel arrays would not fit in L1, so rows are
/// processed in blocks of this many channels (4 KiB per `f64` array).
/// The normalize passes ([`rows_affine`], [`rows_scale`]) are not blocked:
/// they stream whole rows with their read-only coefficients from L1/L2,
/// which measured faster than blocked columns (a block visits each row in a
/// short stretch with a long stride, which the prefetchers follow worse):
/// `256x1024x64` channels-last `f32` eval 1.6–1.9× → 1.0–1.2× memcpy on the
/// 2-core EPYC VM. The statistics (accumulators read and written per
/// element) and `rows_dx` (unblocked was not measurably faster) still are.
pub const COLS: usize = 512;

/// Column blocks `[lo, hi)` of a row of `l` lanes. Each lane still sees the
/// rows in order, so blocking changes no result.
#[inline(always)]
fn col_blocks(l: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..l.div_ceil(COLS)).map(move |b| b * COLS..((b + 1) * COLS).min(l))
}

/// Largest factor `Σd²/M2` for which the one-pass `M2 = Σd² − (Σd)²/n`
/// (in `f64`) is kept: it loses `log2(Σd²/M2)` bits to cancellation, and
/// the result must still carry 13 bits more than the data's precision
/// `p` — `2^(53 − p − 13)`, at least 2 (1 bit): 2¹⁶ for `f32` (as accurate
/// as the corrected two-pass for `f32` outputs), 2 for `f64`.
#[inline(always)]
pub fn one_pass_max_loss<T: Element>() -> f64 {
    let bits = 53i32 - T::DTYPE.mantissa_bits() as i32 - 13;
    (bits.max(1) as f64).exp2()
}

/// Fixed-order pairwise sum of the lanes.
#[inline(always)]
pub fn hsum(a: &[f64; LANES]) -> f64 {
    let mut h = [0.0f64; 8];
    for i in 0..8 {
        h[i] = a[i] + a[i + 8];
    }
    ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]))
}

/// The three lane reductions the statistics need. Lane `l` accumulates
/// elements `16i + l` in order; the tail (`len % 16` elements) is summed
/// separately and added to lane 0. Every implementation follows exactly this
/// order with separate multiply and add (no FMA), so all give the same bits.
pub trait LaneSums {
    /// `Σ (x − k)` per lane.
    fn shifted<T: Element>(x: &[T], k: f64) -> [f64; LANES];
    /// `Σ d` and `Σ d²` per lane, `d = x − k` (the one-pass sums, see
    /// `stats::group_moments` for when they are used).
    fn shifted_sq<T: Element>(x: &[T], k: f64) -> [[f64; LANES]; 2];
    /// `Σ e` and `Σ e²` per lane, `e = (x − k) − m`.
    fn deviations<T: Element>(x: &[T], k: f64, m: f64) -> [[f64; LANES]; 2];
    /// `Σ dy`, `Σ dy·(x − mean)` and `Σ (x − mean)` per lane (the last one
    /// recovers the rounding error of `mean`, see `backward::channel_grad_coeffs`).
    fn grad<T: Element>(x: &[T], dy: &[T], mean: f64) -> [[f64; LANES]; 3];
}

/// The lane reductions in portable Rust.
pub struct PortableSums;

impl LaneSums for PortableSums {
    #[inline(always)]
    fn shifted<T: Element>(x: &[T], k: f64) -> [f64; LANES] {
        lane_sum(x, |v| v - k)
    }
    #[inline(always)]
    fn shifted_sq<T: Element>(x: &[T], k: f64) -> [[f64; LANES]; 2] {
        Self::deviations(x, k, 0.0)
    }
    #[inline(always)]
    fn deviations<T: Element>(x: &[T], k: f64, m: f64) -> [[f64; LANES]; 2] {
        [
            lane_sum(x, |v| (v - k) - m),
            lane_sum(x, |v| {
                let e = (v - k) - m;
                e * e
            }),
        ]
    }
    #[inline(always)]
    fn grad<T: Element>(x: &[T], dy: &[T], mean: f64) -> [[f64; LANES]; 3] {
        [
            lane_sum(dy, |g| g),
            lane_sum2(x, dy, |v, g| g * (v - mean)),
            lane_sum(x, |v| v - mean),
        ]
    }
}

/// `Σ f(x_i)` in lanes of [`LANES`], the tail into lane 0 (see [`LaneSums`]).
#[inline(always)]
fn lane_sum<T: Element>(x: &[T], f: impl Fn(f64) -> f64) -> [f64; LANES] {
    let mut it = x.chunks_exact(LANES);
    let mut a = [0.0f64; LANES];
    for ch in &mut it {
        let ch: &[T; LANES] = ch.try_into().expect("chunk of LANES");
        for l in 0..LANES {
            a[l] += f(ch[l].as_f64());
        }
    }
    let mut tail = 0.0;
    for v in it.remainder() {
        tail += f(v.as_f64());
    }
    a[0] += tail;
    a
}

/// `Σ f(x_i, y_i)` over two equally long slices, in lanes.
#[inline(always)]
fn lane_sum2<T: Element>(x: &[T], y: &[T], f: impl Fn(f64, f64) -> f64) -> [f64; LANES] {
    let mut xi = x.chunks_exact(LANES);
    let mut yi = y.chunks_exact(LANES);
    let mut a = [0.0f64; LANES];
    for (xc, yc) in (&mut xi).zip(&mut yi) {
        let xc: &[T; LANES] = xc.try_into().expect("chunk of LANES");
        let yc: &[T; LANES] = yc.try_into().expect("chunk of LANES");
        for l in 0..LANES {
            a[l] += f(xc[l].as_f64(), yc[l].as_f64());
        }
    }
    let mut tail = 0.0;
    for (v, w) in xi.remainder().iter().zip(yi.remainder()) {
        tail += f(v.as_f64(), w.as_f64());
    }
    a[0] += tail;
    a
}

/// `y = (x − k)·a + b` over a run.
#[inline(always)]
pub fn run_affine<T: Element>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = T::from_f64((v.as_f64() - k) * a + b);
    }
}

/// `dx = k_dy·dy + k_xmu·(x − mean) + k_const` over a run.
#[inline(always)]
pub fn run_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], mean: f64, k: [f64; 3]) {
    for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        *o = T::from_f64(k[0] * g.as_f64() + k[1] * (v.as_f64() - mean) + k[2]);
    }
}

/// Per-lane `Σd` and `Σd²` with `d = x − k[l]` over whole rows, the one-read
/// statistics of a tile.
#[inline(always)]
fn rows_shifted_sq<T: Element>(x: &[T], c: usize, k: &[f64], s1: &mut [f64], s2: &mut [f64]) {
    let l = k.len();
    for cols in col_blocks(l) {
        let k = &k[cols.clone()];
        let (s1, s2) = (&mut s1[cols.clone()], &mut s2[cols.clone()]);
        for row in x.chunks_exact(l) {
            shifted_sq_row(&row[cols.clone()], k, s1, s2);
        }
    }
    for row in x[x.len() / l * l..].chunks_exact(c) {
        shifted_sq_row(row, &k[..c], &mut s1[..c], &mut s2[..c]);
    }
}

#[inline(always)]
fn shifted_sq_row<T: Element>(row: &[T], k: &[f64], s1: &mut [f64], s2: &mut [f64]) {
    for (((a, b), &v), &kk) in s1.iter_mut().zip(s2.iter_mut()).zip(row).zip(k) {
        let d = v.as_f64() - kk;
        *a += d;
        *b += d * d;
    }
}

/// Per-lane `Σe` and `Σe²` with `e = (x − k[l]) − m[l]` over whole rows.
#[inline(always)]
fn rows_deviations<T: Element>(
    x: &[T],
    c: usize,
    k: &[f64],
    m: &[f64],
    s1: &mut [f64],
    s2: &mut [f64],
) {
    let l = k.len();
    for cols in col_blocks(l) {
        let (k, m) = (&k[cols.clone()], &m[cols.clone()]);
        let (s1, s2) = (&mut s1[cols.clone()], &mut s2[cols.clone()]);
        for row in x.chunks_exact(l) {
            deviations_row(&row[cols.clone()], k, m, s1, s2);
        }
    }
    for row in x[x.len() / l * l..].chunks_exact(c) {
        deviations_row(row, &k[..c], &m[..c], &mut s1[..c], &mut s2[..c]);
    }
}

#[inline(always)]
fn deviations_row<T: Element>(row: &[T], k: &[f64], m: &[f64], s1: &mut [f64], s2: &mut [f64]) {
    let lanes = s1.iter_mut().zip(s2.iter_mut()).zip(row).zip(k).zip(m);
    for ((((a, b), &v), &kk), &mm) in lanes {
        let e = (v.as_f64() - kk) - mm;
        *a += e;
        *b += e * e;
    }
}

/// Scratch arrays of one channels-last group, of length `L` or `c`.
#[derive(Debug, Clone)]
pub struct RowScratch {
    s: Vec<f64>,
    s2: Vec<f64>,
    mrep: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl RowScratch {
    pub fn new(l: usize, c: usize) -> RowScratch {
        let v = |n| vec![0.0; n];
        RowScratch {
            s: v(l),
            s2: v(l),
            mrep: v(l),
            a: v(c),
            b: v(c),
            mean: v(c),
            m2: v(c),
        }
    }
}

/// Moments of every channel over a set of whole channels-last rows, relative
/// to the replicated shifts `k` (length `L`): tiles of `tile_rows` rows, each
/// with the corrected two-pass algorithm per lane, merged left to right with
/// Chan's formula. All channels share the counts, so the merge weights are
/// scalars and the per-channel updates vectorize (kept as arrays, not
/// [`Moments`] structs). Writes `out` (length `c`).
#[inline(always)]
pub fn rows_moments<T: Element>(
    x: &[T],
    c: usize,
    k: &[f64],
    tile_rows: usize,
    w: &mut RowScratch,
    out: &mut [Moments],
) {
    let mut count = 0u64;
    for tile in x.chunks(tile_rows * c) {
        let rows = (tile.len() / c) as f64;
        // One read: Σd and Σd² (d = x − k). M2 = Σd² − (Σd)²/n loses
        // log2(Σd²/M2) bits to cancellation; the tile keeps it when every
        // channel loses at most 1 bit (f64 data) or 16 bits (f32 data), the
        // rule of the contiguous path (stats::group_moments). Otherwise
        // the whole tile takes the corrected two-pass below. The decision
        // depends only on the tile's data, never on the thread count.
        w.s.fill(0.0);
        w.s2.fill(0.0);
        rows_shifted_sq(tile, c, k, &mut w.s, &mut w.s2);
        fold_lane_copies(&w.s, c, &mut w.a);
        fold_lane_copies(&w.s2, c, &mut w.b);
        let max_loss = one_pass_max_loss::<T>();
        let one_read =
            w.a.iter()
                .zip(&w.b)
                .all(|(&a, &b)| (b - a * (a / rows)) * max_loss >= b);
        if one_read {
            for (a, b) in w.a.iter_mut().zip(w.b.iter_mut()) {
                let d = *a;
                *a = d / rows;
                *b -= d * (d / rows);
            }
        } else {
            two_pass_tile(tile, c, k, rows, w);
        }
        // Chan's merge of the tile (a, b) into the running (mean, m2),
        // exactly as `Moments::merge` computes it.
        let tn = tile.len() as u64 / c as u64;
        if count == 0 {
            w.mean.copy_from_slice(&w.a);
            w.m2.copy_from_slice(&w.b);
        } else {
            let nf = (count + tn) as f64;
            let r = tn as f64 / nf;
            let q = count as f64 * r;
            let lanes = w.mean.iter_mut().zip(w.m2.iter_mut()).zip(&w.a).zip(&w.b);
            for (((m, m2), &tm), &tm2) in lanes {
                let d = tm - *m;
                *m += d * r;
                *m2 = *m2 + tm2 + d * d * q;
            }
        }
        count += tn;
    }
    for ((o, &m), &m2) in out.iter_mut().zip(&w.mean).zip(&w.m2) {
        *o = Moments { count, mean: m, m2 };
    }
}

/// The corrected two-pass moments of one tile (Chan, Golub & LeVeque 1983),
/// given `w.a` = per-channel `Σd` of the tile: leaves the tile mean
/// (relative to `k`) in `w.a` and its M2 in `w.b`.
#[inline(always)]
fn two_pass_tile<T: Element>(tile: &[T], c: usize, k: &[f64], rows: f64, w: &mut RowScratch) {
    for v in w.a.iter_mut() {
        *v /= rows;
    }
    for copy in w.mrep.chunks_exact_mut(c) {
        copy.copy_from_slice(&w.a);
    }
    w.s.fill(0.0);
    w.s2.fill(0.0);
    rows_deviations(tile, c, k, &w.mrep, &mut w.s, &mut w.s2);
    // Tile moments: mean = m_b + Σe/n, M2 = Σe² − (Σe)²/n, in place
    // (a <- Σe then tile mean, b <- Σe² then tile M2).
    fold_lane_copies(&w.s, c, &mut w.a);
    fold_lane_copies(&w.s2, c, &mut w.b);
    for ((a, b), &mb) in w.a.iter_mut().zip(w.b.iter_mut()).zip(&w.mrep) {
        let e = *a;
        *a = mb + e / rows;
        *b -= e * (e / rows);
    }
}

/// `y = (x − k[l])·a[l] + b[l]` over whole rows (arrays replicated to `L`).
#[inline(always)]
pub fn rows_affine<T: Element>(x: &[T], y: &mut [T], c: usize, k: &[f64], a: &[f64], b: &[f64]) {
    let l = k.len();
    for (xr, yr) in x.chunks_exact(l).zip(y.chunks_exact_mut(l)) {
        affine_row(xr, yr, k, a, b);
    }
    let done = x.len() / l * l;
    for (xr, yr) in x[done..].chunks_exact(c).zip(y[done..].chunks_exact_mut(c)) {
        affine_row(xr, yr, &k[..c], &a[..c], &b[..c]);
    }
}

/// `y = x·a[l] + b[l]` over whole rows (arrays replicated to `L`): the
/// normalize pass of `f32` data with the shift folded into `b` in `f64`
/// (see `forward::rows_normalize`), one coefficient stream fewer than [`rows_affine`].
#[inline(always)]
pub fn rows_scale<T: Element>(x: &[T], y: &mut [T], c: usize, a: &[f64], b: &[f64]) {
    let l = a.len();
    for (xr, yr) in x.chunks_exact(l).zip(y.chunks_exact_mut(l)) {
        scale_row(xr, yr, a, b);
    }
    let done = x.len() / l * l;
    for (xr, yr) in x[done..].chunks_exact(c).zip(y[done..].chunks_exact_mut(c)) {
        scale_row(xr, yr, &a[..c], &b[..c]);
    }
}

#[inline(always)]
fn scale_row<T: Element>(x: &[T], y: &mut [T], a: &[f64], b: &[f64]) {
    for (((o, &v), &aa), &bb) in y.iter_mut().zip(x).zip(a).zip(b) {
        *o = T::from_f64(v.as_f64() * aa + bb);
    }
}

#[inline(always)]
fn affine_row<T: Element>(x: &[T], y: &mut [T], k: &[f64], a: &[f64], b: &[f64]) {
    for ((((o, &v), &kk), &aa), &bb) in y.iter_mut().zip(x).zip(k).zip(a).zip(b) {
        *o = T::from_f64((v.as_f64() - kk) * aa + bb);
    }
}

/// Per-lane `Σ dy`, `Σ dy·(x − mean)` and `Σ (x − mean)` over whole rows,
/// accumulated into `st = [s, t, u]`.
#[inline(always)]
pub fn rows_grad_sums<T: Element>(x: &[T], dy: &[T], c: usize, mean: &[f64], st: [&mut [f64]; 3]) {
    let [s, t, u] = st;
    let l = mean.len();
    for cols in col_blocks(l) {
        let mean = &mean[cols.clone()];
        let (s, t, u) = (
            &mut s[cols.clone()],
            &mut t[cols.clone()],
            &mut u[cols.clone()],
        );
        for (xr, gr) in x.chunks_exact(l).zip(dy.chunks_exact(l)) {
            grad_sums_row(&xr[cols.clone()], &gr[cols.clone()], mean, [s, t, u]);
        }
    }
    let done = x.len() / l * l;
    for (xr, gr) in x[done..].chunks_exact(c).zip(dy[done..].chunks_exact(c)) {
        let stu = [&mut s[..c], &mut t[..c], &mut u[..c]];
        grad_sums_row(xr, gr, &mean[..c], stu);
    }
}

#[inline(always)]
fn grad_sums_row<T: Element>(x: &[T], dy: &[T], mean: &[f64], st: [&mut [f64]; 3]) {
    let [s, t, u] = st;
    let lanes = s.iter_mut().zip(t.iter_mut()).zip(u.iter_mut());
    for (((((a, b), e), &v), &g), &m) in lanes.zip(x).zip(dy).zip(mean) {
        let g = g.as_f64();
        let d = v.as_f64() - m;
        *a += g;
        *b += g * d;
        *e += d;
    }
}

/// `dx = k_dy·dy + k_xmu·(x − mean) + k_const` over whole rows; `k` holds the
/// replicated arrays `[mean, k_dy, k_xmu, k_const]`.
#[inline(always)]
pub fn rows_dx<T: Element>(x: &[T], dy: &[T], dx: &mut [T], c: usize, k: [&[f64]; 4]) {
    let l = k[0].len();
    for cols in col_blocks(l) {
        let kb = k.map(|v| &v[cols.clone()]);
        let rows = x
            .chunks_exact(l)
            .zip(dy.chunks_exact(l))
            .zip(dx.chunks_exact_mut(l));
        for ((xr, gr), or) in rows {
            dx_row(
                &xr[cols.clone()],
                &gr[cols.clone()],
                &mut or[cols.clone()],
                kb,
            );
        }
    }
    let done = x.len() / l * l;
    let rest = x[done..]
        .chunks_exact(c)
        .zip(dy[done..].chunks_exact(c))
        .zip(dx[done..].chunks_exact_mut(c));
    for ((xr, gr), or) in rest {
        dx_row(xr, gr, or, k.map(|v| &v[..c]));
    }
}

#[inline(always)]
fn dx_row<T: Element>(x: &[T], dy: &[T], dx: &mut [T], k: [&[f64]; 4]) {
    let [m, kd, kx, kc] = k;
    let lanes = dx.iter_mut().zip(x).zip(dy).zip(m).zip(kd).zip(kx).zip(kc);
    for ((((((o, &v), &g), &mm), &d), &xm), &cc) in lanes {
        *o = T::from_f64(d * g.as_f64() + xm * (v.as_f64() - mm) + cc);
    }
}
