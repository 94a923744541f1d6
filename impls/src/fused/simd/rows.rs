//! Kernels over channels-last rows of `L` lanes (a row, or a super-row of
//! several rows, of the `(N·S, C)` matrix), with per-lane coefficient
//! arrays of length `L`. Input is a sequence of full rows plus possibly one
//! shorter last row, whose values go to lanes `0..len`.
//!
//! Reductions: lane `l` is a left-to-right `f64` sum over the rows, so the
//! result does not depend on the register width. For speed the rows are
//! cut into tiles of a few rows and the columns into blocks of `NB`
//! registers, whose accumulators stay in registers across the tile (the
//! `f64` accumulator arrays are read and written once per tile, not once
//! per row); columns left over by the blocks are done with accumulators in
//! memory, `W` lanes at a time, then one lane at a time.

use super::runs::post_scalar;
use super::{Lane, Simd};
use crate::activation::relu_grad;
use std::array::from_fn;

/// Rows per register tile: about 16 KiB of input per array read, so the
/// tile stays in L1 while its column blocks are visited; 4 to 64 rows.
#[inline(always)]
fn tile_rows<T>(l: usize) -> usize {
    (TILE_BYTES / (l * std::mem::size_of::<T>())).clamp(4, 64)
}

/// Bytes per array of a register tile.
const TILE_BYTES: usize = 16 << 10;

/// Columns `[0, cols)` covered by whole blocks of `bw` lanes.
#[inline(always)]
fn block_cols(l: usize, bw: usize) -> usize {
    l / bw * bw
}

/// `Σd`, `Σd²` (`d = x − k[l]`) per lane, added into `s`.
///
/// # Safety
/// The CPU has `S`'s features; `s[i].len() == k.len() > 0`.
#[inline(always)]
pub unsafe fn sums<S: Simd, T: Lane, const NB: usize>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
    let (l, [s1, s2]) = (k.len(), s);
    let (full, cols) = (x.len() / l, block_cols(k.len(), NB * S::W));
    for tile in x[..full * l].chunks(tile_rows::<T>(l) * l) {
        for c0 in (0..cols).step_by(NB * S::W) {
            // SAFETY: c0 + NB·W <= cols <= l; the tile is whole rows of l; features by contract.
            unsafe { sums_block::<S, T, NB>(tile, c0, k, [&mut *s1, &mut *s2]) };
        }
        if cols < l {
            for row in tile.chunks_exact(l) {
                let st = [&mut s1[cols..], &mut s2[cols..]];
                // SAFETY: the slices are equally long (l − cols); features by contract.
                unsafe { sums_lanes::<S, T>(&row[cols..], &k[cols..], st) };
            }
        }
    }
    let n = x.len() - full * l;
    // SAFETY: the last row is shorter than l: n lanes of every array; features by contract.
    unsafe { sums_lanes::<S, T>(&x[full * l..], &k[..n], [&mut s1[..n], &mut s2[..n]]) };
}

/// One column block `[c0, c0 + NB·W)` of [`sums`] over the rows of a tile.
///
/// # Safety
/// The CPU has `S`'s features; `c0 + NB·W <= k.len() == s[i].len()`,
/// `tile.len()` a multiple of `k.len()`.
#[inline(always)]
unsafe fn sums_block<S: Simd, T: Lane, const NB: usize>(
    tile: &[T],
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
        for r in 0..tile.len() / l {
            let p = tile.as_ptr().add(r * l + c0);
            for j in 0..NB {
                let d = S::sub(T::load::<S>(p.add(j * S::W)), kv[j]);
                a[j] = S::add(a[j], d);
                q[j] = S::add(q[j], S::mul(d, d));
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
unsafe fn sums_lanes<S: Simd, T: Lane>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
    let [s1, s2] = s;
    let body = x.len() / S::W * S::W;
    let mut i = 0;
    while i < body {
        // SAFETY: i + W <= body <= x.len() == k.len() == s1.len() == s2.len().
        unsafe {
            let d = S::sub(T::load::<S>(x.as_ptr().add(i)), S::load(k.as_ptr().add(i)));
            let (pa, pq) = (s1.as_mut_ptr().add(i), s2.as_mut_ptr().add(i));
            S::store(pa, S::add(S::load(pa), d));
            S::store(pq, S::add(S::load(pq), S::mul(d, d)));
        }
        i += S::W;
    }
    for i in body..x.len() {
        let d = x[i].as_f64() - k[i];
        s1[i] += d;
        s2[i] += d * d;
    }
}

/// `Σdy`, `Σdy·(x − k[l])`, `Σ(x − k[l])` per lane, added into `s`; with
/// `MASK`, `dy` is masked by the ReLU output `yo` in the same read (`yo`
/// is not read without).
///
/// # Safety
/// The CPU has `S`'s features; `dy.len() == yo.len() == x.len()`,
/// `s[i].len() == k.len() > 0`.
#[inline(always)]
pub unsafe fn grad<S: Simd, T: Lane, const NB: usize, const MASK: bool>(
    x: &[T],
    dy: &[T],
    yo: &[T],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let (l, [s1, s2, s3]) = (k.len(), s);
    let (full, cols) = (x.len() / l, block_cols(k.len(), NB * S::W));
    let tl = tile_rows::<T>(l) / 2 * l; // two arrays per tile
    let tiles = x[..full * l].chunks(tl).zip(dy[..full * l].chunks(tl));
    for ((tx, tg), to) in tiles.zip(yo[..full * l].chunks(tl)) {
        for c0 in (0..cols).step_by(NB * S::W) {
            let st = [&mut *s1, &mut *s2, &mut *s3];
            // SAFETY: c0 + NB·W <= cols <= l; tiles are whole rows; features by contract.
            unsafe { grad_block::<S, T, NB, MASK>([tx, tg, to], c0, k, st) };
        }
        if cols < l {
            let rows = tx.chunks_exact(l).zip(tg.chunks_exact(l));
            for ((rx, rg), ro) in rows.zip(to.chunks_exact(l)) {
                let st = [&mut s1[cols..], &mut s2[cols..], &mut s3[cols..]];
                let v = [&rx[cols..], &rg[cols..], &ro[cols..]];
                // SAFETY: all slices have l − cols elements; features by contract.
                unsafe { grad_lanes::<S, T, MASK>(v, &k[cols..], st) };
            }
        }
    }
    let (n, o) = (x.len() - full * l, full * l);
    let st = [&mut s1[..n], &mut s2[..n], &mut s3[..n]];
    // SAFETY: the last row has n < l lanes; all slices have n elements.
    unsafe { grad_lanes::<S, T, MASK>([&x[o..], &dy[o..], &yo[o..]], &k[..n], st) };
}

/// One column block of [`grad`] over the rows of a tile.
///
/// # Safety
/// As [`sums_block`], and `tg.len() == to.len() == tx.len()` (`t = [tx, tg, to]`).
#[inline(always)]
unsafe fn grad_block<S: Simd, T: Lane, const NB: usize, const MASK: bool>(
    t: [&[T]; 3],
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
        for r in 0..tx.len() / l {
            let (px, pg) = (tx.as_ptr().add(r * l + c0), tg.as_ptr().add(r * l + c0));
            let po = to.as_ptr().add(r * l + c0);
            for j in 0..NB {
                let mut g = T::load::<S>(pg.add(j * S::W));
                if MASK {
                    g = S::relu_grad(T::load::<S>(po.add(j * S::W)), g);
                }
                let d = S::sub(T::load::<S>(px.add(j * S::W)), kv[j]);
                acc[0][j] = S::add(acc[0][j], g);
                acc[1][j] = S::add(acc[1][j], S::mul(g, d));
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
unsafe fn grad_lanes<S: Simd, T: Lane, const MASK: bool>(
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
            S::store(p[1], S::add(S::load(p[1]), S::mul(g, d)));
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
        s2[i] += g * d;
        s3[i] += d;
    }
}

/// Element-wise passes walk whole rows as one flat stream when `L` is a
/// multiple of `W` (the lane index `j` wraps at `L`), which measured faster
/// than a loop per row for short rows; this many leading elements.
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

/// `y = (x − k[l])·a[l] + b[l]`, `c = [k, a, b]`; with `ADD` plus `r`,
/// with `RELU` then PyTorch's ReLU, rounded once (`r` unread without `ADD`).
///
/// # Safety
/// The CPU has `S`'s features; `y.len() == x.len() == r.len()`, the arrays
/// of `c` equally long and non-empty.
#[inline(always)]
pub unsafe fn affine<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: [&[f64]; 3],
) {
    let l = c[0].len();
    let flat = flat_len::<S>(x.len(), l);
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // SAFETY: i + W <= flat <= x.len() == y.len() == r.len(); j + W <= l (see `flat_len`).
        unsafe {
            let [k, a, b] = c.map(|v| S::load(v.as_ptr().add(j)));
            let v = S::sub(T::load::<S>(x.as_ptr().add(i)), k);
            let v = post::<S, T, ADD, RELU>(S::add(S::mul(v, a), b), r.as_ptr().add(i));
            T::store::<S>(y.as_mut_ptr().add(i), v);
        }
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    let (x, r, y) = (&x[flat..], &r[flat..], &mut y[flat..]);
    for ((xr, rr), yr) in x.chunks(l).zip(r.chunks(l)).zip(y.chunks_mut(l)) {
        let n = xr.len();
        let body = n / S::W * S::W;
        let mut i = 0;
        while i < body {
            // SAFETY: i + W <= body <= n = row length <= l = length of every array.
            unsafe {
                let [k, a, b] = c.map(|v| S::load(v.as_ptr().add(i)));
                let v = S::sub(T::load::<S>(xr.as_ptr().add(i)), k);
                let v = post::<S, T, ADD, RELU>(S::add(S::mul(v, a), b), rr.as_ptr().add(i));
                T::store::<S>(yr.as_mut_ptr().add(i), v);
            }
            i += S::W;
        }
        for i in body..n {
            let v = (xr[i].as_f64() - c[0][i]) * c[1][i] + c[2][i];
            yr[i] = T::from_f64(post_scalar::<T, ADD, RELU>(v, rr[i]));
        }
    }
}

/// `y = x·a[l] + b[l]`, `c = [a, b]`, with the epilogue of [`affine`].
///
/// # Safety
/// As [`affine`].
#[inline(always)]
pub unsafe fn scale<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: [&[f64]; 2],
) {
    let l = c[0].len();
    let flat = flat_len::<S>(x.len(), l);
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // SAFETY: i + W <= flat <= x.len() == y.len() == r.len(); j + W <= l (see `flat_len`).
        unsafe {
            let [a, b] = c.map(|v| S::load(v.as_ptr().add(j)));
            let v = T::load::<S>(x.as_ptr().add(i));
            let v = post::<S, T, ADD, RELU>(S::add(S::mul(v, a), b), r.as_ptr().add(i));
            T::store::<S>(y.as_mut_ptr().add(i), v);
        }
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    let (x, r, y) = (&x[flat..], &r[flat..], &mut y[flat..]);
    for ((xr, rr), yr) in x.chunks(l).zip(r.chunks(l)).zip(y.chunks_mut(l)) {
        let n = xr.len();
        let body = n / S::W * S::W;
        let mut i = 0;
        while i < body {
            // SAFETY: i + W <= body <= n <= l = length of both arrays.
            unsafe {
                let [a, b] = c.map(|v| S::load(v.as_ptr().add(i)));
                let v = T::load::<S>(xr.as_ptr().add(i));
                let v = post::<S, T, ADD, RELU>(S::add(S::mul(v, a), b), rr.as_ptr().add(i));
                T::store::<S>(yr.as_mut_ptr().add(i), v);
            }
            i += S::W;
        }
        for i in body..n {
            let v = xr[i].as_f64() * c[0][i] + c[1][i];
            yr[i] = T::from_f64(post_scalar::<T, ADD, RELU>(v, rr[i]));
        }
    }
}

/// `dx = c₁[l]·dy + c₂[l]·(x − c₀[l]) + c₃[l]`.
///
/// # Safety
/// As [`affine`], and `dy.len() == x.len()`.
#[inline(always)]
pub unsafe fn dx<S: Simd, T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: [&[f64]; 4]) {
    let l = c[0].len();
    let flat = flat_len::<S>(x.len(), l);
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // SAFETY: i + W <= flat <= x.len() == dy.len() == dx.len(); j + W <= l
        // (see `flat_len`) = length of every array.
        unsafe {
            let [k, kd, kx, kc] = c.map(|v| S::load(v.as_ptr().add(j)));
            let g = S::mul(kd, T::load::<S>(dy.as_ptr().add(i)));
            let d = S::mul(kx, S::sub(T::load::<S>(x.as_ptr().add(i)), k));
            T::store::<S>(dx.as_mut_ptr().add(i), S::add(S::add(g, d), kc));
        }
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    let (x, dy, dx) = (&x[flat..], &dy[flat..], &mut dx[flat..]);
    for ((xr, gr), or) in x.chunks(l).zip(dy.chunks(l)).zip(dx.chunks_mut(l)) {
        let n = xr.len();
        let body = n / S::W * S::W;
        let mut i = 0;
        while i < body {
            // SAFETY: i + W <= body <= n <= l = length of every array; rows equally long.
            unsafe {
                let [k, kd, kx, kc] = c.map(|v| S::load(v.as_ptr().add(i)));
                let g = S::mul(kd, T::load::<S>(gr.as_ptr().add(i)));
                let d = S::mul(kx, S::sub(T::load::<S>(xr.as_ptr().add(i)), k));
                T::store::<S>(or.as_mut_ptr().add(i), S::add(S::add(g, d), kc));
            }
            i += S::W;
        }
        for i in body..n {
            let (g, d) = (gr[i].as_f64(), xr[i].as_f64() - c[0][i]);
            or[i] = T::from_f64(c[1][i] * g + c[2][i] * d + c[3][i]);
        }
    }
}

/// The ReLU backward's element-wise pass over rows: `g` = `dy` masked by
/// the output `yo`, `dx = c₁[l]·g + c₂[l]·(x − c₀[l]) + c₃[l]` (with
/// `FIXED`: `dx = c₁[l]·g − 0`, `x` unread), and with `RES`
/// `grad_residual = g` at `dres` — one pass.
///
/// # Safety
/// As [`dx`], `yo.len() == x.len()`; with `RES`, `dres` valid for
/// `x.len()` writes and not overlapping the slices.
#[inline(always)]
pub unsafe fn dx_relu<S: Simd, T: Lane, const FIXED: bool, const RES: bool>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [&[f64]; 4],
) {
    let ([x, dy, yo], l) = (v, c[0].len());
    let flat = flat_len::<S>(x.len(), l);
    // One element-wise step at element `i`, lane `j`.
    // SAFETY (of each call): `i + W <= x.len()` and `j + W <= l`, checked below.
    let step = |i: usize, j: usize, dx: *mut T| unsafe {
        let [k, kd, kx, kc] = c.map(|v| S::load(v.as_ptr().add(j)));
        let m = S::relu_grad(
            T::load::<S>(yo.as_ptr().add(i)),
            T::load::<S>(dy.as_ptr().add(i)),
        );
        if RES {
            T::store::<S>(dres.add(i), m);
        }
        let g = S::mul(kd, m);
        let v = if FIXED {
            S::add(g, S::splat(-0.0))
        } else {
            let d = S::mul(kx, S::sub(T::load::<S>(x.as_ptr().add(i)), k));
            S::add(S::add(g, d), kc)
        };
        T::store::<S>(dx.add(i), v);
    };
    let pd = dx.as_mut_ptr();
    let (mut i, mut j) = (0, 0);
    while i < flat {
        // i + W <= flat <= x.len(); j + W <= l (see `flat_len`).
        step(i, j, pd);
        (i, j) = (i + S::W, next_lane::<S>(j, l));
    }
    let mut row = flat;
    while row < x.len() {
        let n = l.min(x.len() - row);
        let body = n / S::W * S::W;
        let mut j = 0;
        while j < body {
            // row + j + W <= row + n <= x.len(); j + W <= n <= l.
            step(row + j, j, pd);
            j += S::W;
        }
        #[allow(clippy::needless_range_loop)] // `j` indexes four arrays and the rows
        for j in body..n {
            let i = row + j;
            let m = relu_grad(yo[i].as_f64(), dy[i].as_f64());
            if RES {
                // SAFETY: i < x.len(), for which `dres` is valid (contract).
                unsafe { *dres.add(i) = T::from_f64(m) };
            }
            let v = if FIXED {
                c[1][j] * m + -0.0
            } else {
                c[1][j] * m + c[2][j] * (x[i].as_f64() - c[0][j]) + c[3][j]
            };
            // SAFETY: i < x.len() == dx.len(); `pd` is `dx`'s pointer (all
            // writes go through it, so it stays valid).
            unsafe { *pd.add(i) = T::from_f64(v) };
        }
        row += n;
    }
}
