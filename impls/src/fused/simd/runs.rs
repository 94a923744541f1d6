//! Kernels over one contiguous run of one channel (contiguous layout):
//! scalar coefficients, 16 logical lanes for the reductions.
//!
//! Reductions keep their 16 lanes in `16 / W` registers across the run
//! (element `i` of the body goes to lane `i mod 16`) and add the tail
//! (`len mod 16` elements, element `body + l` into lane `l`) in scalar code
//! shared by every level. Each lane is a plain left-to-right sum of `f64`
//! terms, so every level gives the same bits; a product term (`d²`,
//! `dy·d`) is added with one fused multiply-add, in the scalar tails too
//! (one rounding instead of two, one instruction fewer per register).
//! Element-wise passes run in the lanes of `S` (`f64` or `f32`, see
//! [`super::prec`]) with coefficients of the lanes' type; their scalar
//! tails do the same operations.

use super::{nt, Lane, Post, Real, RunAcc, Simd, RUN_LANES};
use crate::activation::{relu, relu_grad};

/// `acc[s]` lanes into registers.
///
/// # Safety
/// The CPU has `S`'s features (`acc` rows have `RUN_LANES` elements).
#[inline(always)]
unsafe fn load_acc<S: Simd<E = f64>, const K: usize>(acc: &RunAcc<K>) -> [[S::V; RUN_LANES]; K] {
    // SAFETY: lane `j·W + w` < RUN_LANES for j < RUN_LANES / W; features by contract.
    unsafe {
        let mut r = [[S::splat(0.0); RUN_LANES]; K];
        for (rs, a) in r.iter_mut().zip(acc) {
            for (j, v) in rs.iter_mut().take(RUN_LANES / S::W).enumerate() {
                *v = S::load(a.as_ptr().add(j * S::W));
            }
        }
        r
    }
}

/// Registers back into `acc` (inverse of [`load_acc`]).
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
unsafe fn store_acc<S: Simd<E = f64>, const K: usize>(
    r: &[[S::V; RUN_LANES]; K],
    acc: &mut RunAcc<K>,
) {
    // SAFETY: as in `load_acc`, every store stays inside the 16-lane row.
    unsafe {
        for (rs, a) in r.iter().zip(acc.iter_mut()) {
            for (j, v) in rs.iter().take(RUN_LANES / S::W).enumerate() {
                S::store(a.as_mut_ptr().add(j * S::W), *v);
            }
        }
    }
}

/// `Σd` and `Σd²` per lane, `d = x − k` (the one-read statistics of
/// Chan, Golub & LeVeque's shifted data algorithm). A streaming level's
/// prefetch continues `next` elements on ([`prefetch_inputs`]).
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
pub unsafe fn sums<S: Simd<E = f64>, T: Lane>(
    x: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<2>,
) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: every load reads `x[i + j·W .. i + (j+1)·W]` with
    // `i + RUN_LANES <= body <= x.len()`; features by contract.
    unsafe {
        let [mut a, mut q] = load_acc::<S, 2>(acc);
        let (kv, p) = (S::splat(k), x.as_ptr());
        let mut i = 0;
        while i < body {
            prefetch_inputs::<S, T, 1>([(x, true)], i, RUN_LANES, next);
            for j in 0..RUN_LANES / S::W {
                let d = S::sub(T::load::<S>(p.add(i + j * S::W)), kv);
                a[j] = S::add(a[j], d);
                q[j] = S::fma(d, d, q[j]);
            }
            i += RUN_LANES;
        }
        store_acc::<S, 2>(&[a, q], acc);
    }
    for (l, v) in x[body..].iter().enumerate() {
        let d = v.as_f64() - k;
        acc[0][l] += d;
        acc[1][l] = d.mul_add(d, acc[1][l]);
    }
}

/// `Σdy`, `Σdy·(x − k)` and `Σ(x − k)` per lane (the backward sums). With
/// `MASK`, `dy` is first masked by the ReLU output `yo` (`yo <= 0 → 0`,
/// [`Simd::relu_grad`]) in the same read; without, `yo` is not read.
/// `next` as in [`sums`].
///
/// # Safety
/// The CPU has `S`'s features; `dy.len() == x.len() == yo.len()`.
#[inline(always)]
pub unsafe fn grad<S: Simd<E = f64>, T: Lane, const MASK: bool>(
    x: &[T],
    dy: &[T],
    yo: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<3>,
) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: loads stay below `body <= x.len() == dy.len() == yo.len()`; features by contract.
    unsafe {
        let [mut s, mut t, mut u] = load_acc::<S, 3>(acc);
        let (kv, px, pg, po) = (S::splat(k), x.as_ptr(), dy.as_ptr(), yo.as_ptr());
        let mut i = 0;
        while i < body {
            let v = [(x, true), (dy, true), (yo, MASK)];
            prefetch_inputs::<S, T, 3>(v, i, RUN_LANES, next);
            for j in 0..RUN_LANES / S::W {
                let mut g = T::load::<S>(pg.add(i + j * S::W));
                if MASK {
                    g = S::relu_grad(T::load::<S>(po.add(i + j * S::W)), g);
                }
                let d = S::sub(T::load::<S>(px.add(i + j * S::W)), kv);
                s[j] = S::add(s[j], g);
                t[j] = S::fma(g, d, t[j]);
                u[j] = S::add(u[j], d);
            }
            i += RUN_LANES;
        }
        store_acc::<S, 3>(&[s, t, u], acc);
    }
    for (l, ((v, g), o)) in x[body..]
        .iter()
        .zip(&dy[body..])
        .zip(&yo[body..])
        .enumerate()
    {
        let mut g = g.as_f64();
        if MASK {
            g = relu_grad(o.as_f64(), g);
        }
        let d = v.as_f64() - k;
        acc[0][l] += g;
        acc[1][l] = g.mul_add(d, acc[1][l]);
        acc[2][l] += d;
    }
}

/// Where the prefetch of run `i` of `count` consecutive runs of `s`
/// elements continues: the next run of the stretch, and after the last
/// one the caller's `next` (counted from the last run's start).
#[inline(always)]
fn next_run(i: usize, count: usize, s: usize, next: Option<usize>) -> Option<usize> {
    if i + 1 < count {
        Some(s)
    } else {
        next
    }
}

/// [`sums`] of `k.len()` consecutive runs of `s` elements in one call: run
/// `i` with shift `k[i]` into `acc[i]`; `next` from the last run's start.
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
pub unsafe fn sums_runs<S: Simd<E = f64>, T: Lane>(
    x: &[T],
    s: usize,
    next: Option<usize>,
    k: &[f64],
    acc: &mut [RunAcc<2>],
) {
    for (i, (xr, a)) in x.chunks_exact(s).zip(acc.iter_mut()).enumerate() {
        // SAFETY: forwarded contract.
        unsafe { sums::<S, T>(xr, next_run(i, k.len(), s, next), k[i], a) }
    }
}

/// [`grad`] of `k.len()` consecutive runs of `s` elements in one call
/// (`v = [x, dy, yo]`), as [`sums_runs`].
///
/// # Safety
/// The CPU has `S`'s features; `x`, `dy`, `yo` equally long.
#[inline(always)]
pub unsafe fn grad_runs<S: Simd<E = f64>, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    s: usize,
    next: Option<usize>,
    k: &[f64],
    acc: &mut [RunAcc<3>],
) {
    let [x, dy, yo] = v.map(|a| a.chunks_exact(s));
    for (i, (((xr, gr), or), a)) in x.zip(dy).zip(yo).zip(acc.iter_mut()).enumerate() {
        // SAFETY: forwarded contract (the three runs are equally long).
        unsafe { grad::<S, T, MASK>(xr, gr, or, next_run(i, k.len(), s, next), k[i], a) }
    }
}

/// [`affine`] with the epilogue `post` chosen at run time (`r` read only
/// by [`Post::AddRelu`]); `c = [k, a, b]`.
///
/// # Safety
/// As [`affine`].
#[inline(always)]
pub unsafe fn affine_post<S: Simd, T: Lane>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: [S::E; 3],
    post: Post,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match post {
            Post::Plain => affine::<S, T, false, false>(x, x, y, c),
            Post::Relu => affine::<S, T, false, true>(x, x, y, c),
            Post::AddRelu => affine::<S, T, true, true>(x, r, y, c),
        }
    }
}

/// `v = fma(x − k, a, b)` (`c = [k, a, b]`), then with `ADD` `v += r` and
/// with `RELU` `v = relu(v)`, rounded once to `T` — all in the one pass
/// (`r` is not read without `ADD`).
///
/// # Safety
/// The CPU has `S`'s features; `y.len() == x.len() == r.len()`.
#[inline(always)]
pub unsafe fn affine<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(
    x: &[T],
    r: &[T],
    y: &mut [T],
    [k, a, b]: [S::E; 3],
) {
    // Registers over `h..body` (whole lines when streaming), scalar code
    // for the rest.
    let (len, py) = (x.len(), y.as_mut_ptr());
    let (h, body) = nt::span::<S, T>(py, len);
    for i in (0..h).chain(body..len) {
        let v = (lane::<S::E, T>(x[i]) - k).fma(a, b);
        let v = T::from_f64(post_scalar::<S::E, T, ADD, RELU>(v, r[i]).to_f64());
        // SAFETY: i < len == y.len(); every write goes through `py`.
        unsafe { *py.add(i) = v };
    }
    // SAFETY: `h <= i`, `i + W <= body <= x.len() == y.len() == r.len()`;
    // with `S::STREAM` every store is at `h + m·W`, aligned (`nt::span`);
    // features by contract.
    unsafe {
        let (kv, av, bv) = (S::splat(k), S::splat(a), S::splat(b));
        let (px, pr) = (x.as_ptr(), r.as_ptr());
        let post = |v: S::V, p: usize| {
            let v = if ADD {
                S::add(v, T::load::<S>(pr.add(p)))
            } else {
                v
            };
            if RELU {
                S::relu(v)
            } else {
                v
            }
        };
        // Four registers per loop turn (more loads in flight per
        // instruction in a streaming pass), then one at a time.
        let mut i = h;
        while i + 4 * S::W <= body {
            prefetch_inputs::<S, T, 2>([(x, true), (r, ADD)], i, 4 * S::W, Some(len));
            for u in 0..4 {
                let p = i + u * S::W;
                let v = S::sub(T::load::<S>(px.add(p)), kv);
                T::store::<S>(py.add(p), post(S::fma(v, av, bv), p));
            }
            i += 4 * S::W;
        }
        while i < body {
            prefetch_inputs::<S, T, 2>([(x, true), (r, ADD)], i, S::W, Some(len));
            let v = S::sub(T::load::<S>(px.add(i)), kv);
            T::store::<S>(py.add(i), post(S::fma(v, av, bv), i));
            i += S::W;
        }
        S::fence();
    }
}

/// Element `i` of the `dx` pass in scalar code (`v = [x, dy, yo]`, `c = [k,
/// kd, kx, kc]`): the lanes' operations on one value, so tails and heads give
/// the registers' bits; with `RES` also writes the masked `dy` to `dres[i]`.
///
/// # Safety
/// With `RES`, `dres` is valid for a write at `i`.
#[inline(always)]
pub unsafe fn dx_scalar<E: Real, T: Lane, const MASK: bool, const FIXED: bool, const RES: bool>(
    [x, dy, yo]: [&[T]; 3],
    dres: *mut T,
    i: usize,
    [k, kd, kx, kc]: [E; 4],
) -> T {
    let mut g = dy[i].as_f64();
    if MASK {
        g = relu_grad(yo[i].as_f64(), g);
    }
    let m = E::from_f64(g);
    if RES {
        // SAFETY: valid for a write at `i` (contract).
        unsafe { *dres.add(i) = T::from_f64(m.to_f64()) };
    }
    let v = if FIXED {
        kd.fma(m, E::from_f64(-0.0))
    } else {
        kd.fma(m, kx.fma(lane::<E, T>(x[i]) - k, kc))
    };
    T::from_f64(v.to_f64())
}

/// With `S::STREAM` (a pass past the caches), prefetch the lines
/// [`nt::PREFETCH_BYTES`] ahead of elements `i..i + n` of each input
/// `(slice, read)` the pass reads; a no-op otherwise. Lines past a slice's
/// end are taken where the pass reads next, `next` elements from the
/// slice's start, at the same distance: `Some(len)` is the memory right
/// after it (element-wise passes walk runs in memory order), another run's
/// distance chains a reduction over a channel's runs (`n`, then `n + 1`),
/// `None` prefetches nothing past the end.
///
/// Bounded by the run end (before), the first 8 KiB of every 12.5 KiB run
/// of a channel task (64×64×56×56) were left to the hardware prefetchers;
/// chained, contiguous 64×64×56×56 train took 0.85× the time (`f32`, 3 of
/// 4 alternated rounds) and 0.77× (`bf16`, 4 of 4), backward 0.92× and
/// 0.90× (3 of 4; `bnh bench`, 1 thread, 2-core Xeon VM).
#[inline(always)]
pub fn prefetch_inputs<S: Simd, T, const K: usize>(
    v: [(&[T], bool); K],
    i: usize,
    n: usize,
    next: Option<usize>,
) {
    if !S::STREAM {
        return;
    }
    for (s, read) in v {
        if read {
            let r = s.as_ptr_range();
            let then = next.map(|j| r.start.wrapping_add(j));
            nt::prefetch::<S, T>(r.start.wrapping_add(i), n, r.end, then);
        }
    }
}

/// One element in a lane's type (exact for the types that compute in it).
#[inline(always)]
pub fn lane<E: Real, T: Lane>(v: T) -> E {
    E::from_f64(v.as_f64())
}

/// The scalar tail's `ADD`/`RELU` epilogue (the same operations as the lanes').
#[inline(always)]
pub fn post_scalar<E: Real, T: Lane, const ADD: bool, const RELU: bool>(v: E, r: T) -> E {
    let v = if ADD { v + lane(r) } else { v };
    if RELU {
        // Exact in either lane type: relu returns its argument or +0.
        E::from_f64(relu(v.to_f64()))
    } else {
        v
    }
}

/// `dx = fma(kd, dy, fma(kx, x − k, kc))` (`c = [k, kd, kx, kc]`):
/// [`dx_relu`]'s pass without the mask (`dy` read once).
///
/// # Safety
/// The CPU has `S`'s features; `dy`, `dx` as long as `x`.
#[inline(always)]
pub unsafe fn dx<S: Simd, T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: [S::E; 4]) {
    // SAFETY: forwarded contract; `yo` = `dy` is never read without `MASK`.
    unsafe { dx_pass::<S, T, false, false, false>([x, dy, dy], dx, std::ptr::null_mut(), c) }
}

/// [`dx_relu`] with `fixed` and the presence of `dres` chosen at run time.
///
/// # Safety
/// As [`dx_relu`] (`dres` valid for `x.len()` writes when not null).
#[inline(always)]
pub unsafe fn dx_relu_any<S: Simd, T: Lane>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [S::E; 4],
    fixed: bool,
) {
    // SAFETY: forwarded contract; `RES` exactly when `dres` is not null.
    unsafe {
        match (fixed, dres.is_null()) {
            (false, true) => dx_relu::<S, T, false, false>(v, dx, dres, c),
            (false, false) => dx_relu::<S, T, false, true>(v, dx, dres, c),
            (true, true) => dx_relu::<S, T, true, false>(v, dx, dres, c),
            (true, false) => dx_relu::<S, T, true, true>(v, dx, dres, c),
        }
    }
}

/// The ReLU backward's `dx` and residual gradient in one pass: `g` = `dy`
/// masked by the output `yo` ([`Simd::relu_grad`]), then
/// `dx = fma(kd, g, fma(kx, x − k, kc))`, or with `FIXED` statistics
/// `dx = kd·g − 0` (`x` not read, as in the plain fixed pass); with `RES`
/// also `grad_residual = g` at `dres` (`v = [x, dy, yo]`, `c = [k, kd, kx, kc]`).
///
/// # Safety
/// The CPU has `S`'s features; `dy`, `yo`, `dx` as long as `x`; with `RES`,
/// `dres` valid for `x.len()` writes and not overlapping the slices.
#[inline(always)]
pub unsafe fn dx_relu<S: Simd, T: Lane, const FIXED: bool, const RES: bool>(
    v: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [S::E; 4],
) {
    // SAFETY: forwarded contract.
    unsafe { dx_pass::<S, T, true, FIXED, RES>(v, dx, dres, c) }
}

/// The `dx` pass of one run: `g = dy`, masked by `yo` with `MASK`; then as
/// [`dx_relu`].
///
/// # Safety
/// As [`dx_relu`]; `yo` is read only with `MASK`.
#[inline(always)]
unsafe fn dx_pass<S: Simd, T: Lane, const MASK: bool, const FIXED: bool, const RES: bool>(
    [x, dy, yo]: [&[T]; 3],
    dx: &mut [T],
    dres: *mut T,
    c: [S::E; 4],
) {
    // Registers over `h..body` (whole lines when streaming — never with
    // `RES`: `simd::run_dx_relu`), scalar code for the rest.
    debug_assert!(
        !(RES && S::STREAM),
        "dx_pass: streaming with a residual gradient"
    );
    let (len, pd) = (x.len(), dx.as_mut_ptr());
    let (h, body) = nt::span::<S, T>(pd, len);
    for i in (0..h).chain(body..len) {
        // SAFETY: i < len == dx.len(), for which `dres` is valid with `RES`
        // (contract); every write to `dx` goes through `pd`.
        unsafe { *pd.add(i) = dx_scalar::<S::E, T, MASK, FIXED, RES>([x, dy, yo], dres, i, c) };
    }
    let nz = S::E::from_f64(-0.0);
    // SAFETY: `h <= i`, `i + W <= body <= x.len()`, and `dy`, `yo`, `dx`
    // (and `dres` with `RES`) are as long; with `S::STREAM` (never with
    // `RES`) the stores are aligned from `h` (`nt::span`); features by contract.
    unsafe {
        let [k, kd, kx, kc] = c.map(|v| S::splat(v));
        let nzv = S::splat(nz);
        let (px, pg, po) = (x.as_ptr(), dy.as_ptr(), yo.as_ptr());
        let mut i = h;
        while i < body {
            let v = [(x, !FIXED), (dy, true), (yo, MASK)];
            prefetch_inputs::<S, T, 3>(v, i, S::W, Some(x.len()));
            let mut m = T::load::<S>(pg.add(i));
            if MASK {
                m = S::relu_grad(T::load::<S>(po.add(i)), m);
            }
            if RES {
                T::store::<S>(dres.add(i), m);
            }
            let v = if FIXED {
                S::fma(kd, m, nzv)
            } else {
                S::fma(kd, m, S::fma(kx, S::sub(T::load::<S>(px.add(i)), k), kc))
            };
            T::store::<S>(pd.add(i), v);
            i += S::W;
        }
        S::fence();
    }
}
