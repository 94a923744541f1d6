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

use super::{nt, Lane, Post, Real, RunAcc, RunCoeffs, Simd, RUN_LANES};
use crate::activation::{relu, relu_grad};

/// `acc[s]` lanes into registers.
///
/// # Safety
/// The CPU has `S`'s features (`acc` rows have `RUN_LANES` elements).
#[inline(always)]
pub(super) unsafe fn load_acc<S: Simd<E = f64>, const K: usize>(
    acc: &RunAcc<K>,
) -> [[S::V; RUN_LANES]; K] {
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
pub(super) unsafe fn store_acc<S: Simd<E = f64>, const K: usize>(
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

/// Loop iterations ([`RUN_LANES`] elements each, one per lane) that
/// [`sums_narrow`] adds up in `f32` lanes before adding the partial sums
/// into the `f64` lanes: each block's `f32` sum of `B` terms is within
/// `(B − 1)·2⁻²⁴` of the sum of their magnitudes (Higham 2002, §4.2), so
/// the blocks lose at most `2⁻¹⁹` ([`NARROW_SUM_BITS`]), and the `f64`
/// sum of the blocks nothing more at this scale.
pub const NARROW_BLOCK: usize = 32;

/// Shortest run reduced by [`sums_narrow`]: shorter runs spend more on
/// adding the one block's `f32` sums into the `f64` lanes than the `f32`
/// lanes save, and keep [`sums`] (64×512×7×7 `bf16`/`f16` train, runs of
/// 49, measured 0.9–1.6× the time of `f64` lanes).
pub const NARROW_MIN_RUN: usize = 256;

/// Whether runs of `s` values of `T` are reduced in `f32` blocks
/// ([`sums_narrow`]): half-precision data in runs of at least
/// [`NARROW_MIN_RUN`]. Depends on the dims only, as every level must
/// choose alike.
#[inline(always)]
pub fn narrow_sums<T: Lane>(s: usize) -> bool {
    T::NARROW && s >= NARROW_MIN_RUN
}

/// Relative precision (bits) of [`sums_narrow`]'s sums: `f32`'s 24 less
/// `log2(NARROW_BLOCK)` for the rounding errors a block accumulates.
pub const NARROW_SUM_BITS: u32 =
    f32::MANTISSA_DIGITS - NARROW_BLOCK.next_power_of_two().trailing_zeros();

/// Bits of relative precision of the run sums of runs of `s` values of
/// `T` ([`narrow_sums`], [`sum_bits_of`]).
#[inline(always)]
pub fn sum_bits<T: Lane>(s: usize) -> u32 {
    sum_bits_of(narrow_sums::<T>(s))
}

/// Bits of relative precision of statistics summed in `f32` blocks
/// (`narrow`: [`NARROW_SUM_BITS`]) or in `f64` lanes (53), for runs and
/// channels-last rows alike.
#[inline(always)]
pub const fn sum_bits_of(narrow: bool) -> u32 {
    if narrow {
        NARROW_SUM_BITS
    } else {
        f64::MANTISSA_DIGITS
    }
}

/// [`sums`] for half-precision data (`T::NARROW`), in `f32` lanes:
/// `d = x − k` and `Σd`, `Σd²` of each lane in `f32` over blocks of
/// [`NARROW_BLOCK`] iterations, each block's partial sums then added into
/// the `f64` lanes (the tail, `len mod 16` elements, is one more block).
/// Twice the lanes per register of [`sums`] and no `f64` conversion: the
/// issue's "statistics in `f32` or wider" (PyTorch's own half kernels
/// accumulate in `f32` over whole channels). `k` is split into `k_hi =
/// f32(k)` and `k_lo = f32(k − k_hi)`; a first-pass shift is a data value,
/// so `k_lo = 0` and `d = x − k_hi` is exact where it cancels (Sterbenz);
/// a second-pass shift subtracts `k_lo` too. What the `f32` blocks lose is
/// bounded by [`NARROW_SUM_BITS`], which sets the data types' cancellation
/// limit ([`crate::fused::coeffs::max_growth`]).
///
/// # Safety
/// The CPU has the features of `S` and `S32`.
#[inline(always)]
pub unsafe fn sums_narrow<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane>(
    x: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<2>,
) {
    let [hi, lo] = narrow_shift(k);
    // SAFETY: forwarded contract.
    unsafe {
        if lo == 0.0 {
            sums_narrow_body::<S, S32, T, false>(x, next, [hi, lo], acc)
        } else {
            sums_narrow_body::<S, S32, T, true>(x, next, [hi, lo], acc)
        }
    }
}

/// [`sums_narrow`] with the shift `[k_hi, k_lo]`, `k_lo` subtracted with `LO`.
///
/// # Safety
/// The CPU has the features of `S` and `S32`.
#[inline(always)]
unsafe fn sums_narrow_body<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane, const LO: bool>(
    x: &[T],
    next: Option<usize>,
    [hi, lo]: [f32; 2],
    acc: &mut RunAcc<2>,
) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: every load reads `x[i + j·W .. i + (j+1)·W]` with
    // `i + RUN_LANES <= body <= x.len()`; features by contract.
    unsafe {
        let mut wide = load_acc::<S, 2>(acc);
        let (hv, lv, p) = (S32::splat(hi), S32::splat(lo), x.as_ptr());
        let mut i = 0;
        while i < body {
            let end = body.min(i + NARROW_BLOCK * RUN_LANES);
            let [mut a, mut q] = [[S32::splat(0.0); RUN_LANES]; 2];
            while i < end {
                prefetch_inputs::<S, T, 1>([(x, true)], i, RUN_LANES, next);
                for j in 0..RUN_LANES / S32::W {
                    let mut d = S32::sub(T::load::<S32>(p.add(i + j * S32::W)), hv);
                    if LO {
                        d = S32::sub(d, lv);
                    }
                    a[j] = S32::add(a[j], d);
                    q[j] = S32::fma(d, d, q[j]);
                }
                i += RUN_LANES;
            }
            add_narrow::<S, S32, 2>(&[a, q], &mut wide);
        }
        store_acc::<S, 2>(&wide, acc);
    }
    for (l, v) in x[body..].iter().enumerate() {
        let d = narrow_d::<T, LO>(*v, [hi, lo]);
        acc[0][l] += d as f64;
        acc[1][l] += d.mul_add(d, 0.0) as f64;
    }
}

/// A shift `k` as the `f32` blocks subtract it: `[k_hi, k_lo]` with
/// `k_hi = f32(k)` and `k_lo = f32(k − k_hi)` (0 for a shift that is a
/// data value, so the kernels skip it).
#[inline(always)]
pub fn narrow_shift(k: f64) -> [f32; 2] {
    let hi = k as f32;
    [hi, (k - hi as f64) as f32]
}

/// `x − k_hi [− k_lo]` of one value in `f32`, as one lane of the `f32`
/// block sums ([`sums_narrow`], [`super::rows::sums_narrow`]).
#[inline(always)]
pub fn narrow_d<T: Lane, const LO: bool>(x: T, [hi, lo]: [f32; 2]) -> f32 {
    let d = lane::<f32, T>(x) - hi;
    if LO {
        d - lo
    } else {
        d
    }
}

/// A block's `f32` lane sums `part` added (exactly widened) into the `f64`
/// lanes `wide`, lane by lane.
///
/// # Safety
/// The CPU has the features of `S` and `S32`.
#[inline(always)]
pub(super) unsafe fn add_narrow<S: Simd<E = f64>, S32: Simd<E = f32>, const K: usize>(
    part: &[[S32::V; RUN_LANES]; K],
    wide: &mut [[S::V; RUN_LANES]; K],
) {
    let mut buf = [0f32; RUN_LANES];
    // SAFETY: lane `j·W + w` < RUN_LANES for j < RUN_LANES / W, for both
    // widths; features by contract.
    unsafe {
        for (p, w) in part.iter().zip(wide.iter_mut()) {
            for (j, v) in p.iter().take(RUN_LANES / S32::W).enumerate() {
                S32::store(buf.as_mut_ptr().add(j * S32::W), *v);
            }
            for (j, v) in w.iter_mut().take(RUN_LANES / S::W).enumerate() {
                *v = S::add(*v, S::load_f32(buf.as_ptr().add(j * S::W)));
            }
        }
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
        let mut r = load_acc::<S, 3>(acc);
        let (kv, p) = (S::splat(k), [x, dy, yo].map(|a| a.as_ptr()));
        let mut i = 0;
        while i < body {
            let v = [(x, true), (dy, true), (yo, MASK)];
            prefetch_inputs::<S, T, 3>(v, i, RUN_LANES, next);
            grad_block::<S, T, MASK>(p, i, kv, &mut r);
            i += RUN_LANES;
        }
        store_acc::<S, 3>(&r, acc);
    }
    grad_tail::<T, MASK>([x, dy, yo].map(|a| &a[body..]), k, acc);
}

/// [`grad`]'s register body: the `RUN_LANES` elements at `i` of
/// `p = [x, dy, yo]` into the lane registers `r` (`yo` read with `MASK`).
///
/// # Safety
/// The CPU has `S`'s features; the three pointers valid for `i + RUN_LANES` reads.
#[inline(always)]
unsafe fn grad_block<S: Simd<E = f64>, T: Lane, const MASK: bool>(
    [px, pg, po]: [*const T; 3],
    i: usize,
    kv: S::V,
    [s, t, u]: &mut [[S::V; RUN_LANES]; 3],
) {
    // SAFETY: by contract.
    unsafe {
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
    }
}

/// [`grad`]'s scalar tail: element `l` of `[x, dy, yo]` into lane `l`.
#[inline(always)]
fn grad_tail<T: Lane, const MASK: bool>([x, dy, yo]: [&[T]; 3], k: f64, acc: &mut RunAcc<3>) {
    for (l, ((v, g), o)) in x.iter().zip(dy).zip(yo).enumerate() {
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

/// [`grad_runs`] of one stretch of runs (`red = [x, dy]`, shifts `k`, into
/// `acc`) and [`dx`] of another stretch of as many runs of `s` (`v = [x,
/// dy]`, run `i` with `c[i]`, into `out`), in lock step: every
/// `RUN_LANES` elements of a run, one block of the sums, then the `dx`
/// registers of the same offsets. The sums' loads wait on memory while the
/// `dx` arithmetic (conversions and fused multiply-adds) runs from cache,
/// so each hides the other; the bits of both are those of the separate
/// kernels (the same lanes, the same per-element formula).
///
/// # Safety
/// The CPU has `S`'s features; the four inputs and `out` hold `k.len()·s`
/// values, `acc` and `c` `k.len()`.
#[inline(always)]
pub unsafe fn grad_dx_runs<S: Simd<E = f64>, T: Lane>(
    [x1, dy1]: [&[T]; 2],
    (k, acc): (&[f64], &mut [RunAcc<3>]),
    [x0, dy0]: [&[T]; 2],
    out: &mut [T],
    (c, s): (&[[f64; 4]], usize),
) {
    let body = s / RUN_LANES * RUN_LANES;
    let mut p = DxPass::<T, false, false, false> {
        v: [x0, dy0, dy0],
        dx: out.as_mut_ptr(),
        dres: std::ptr::null_mut(),
        pf: true,
    };
    for (run, ((&k, a), &c)) in k.iter().zip(acc.iter_mut()).zip(c).enumerate() {
        let o = run * s;
        let red = [x1, dy1, dy1].map(|v| &v[o..o + s]);
        // SAFETY: every index is below `o + s <= k.len()·s`, the length of
        // every slice (contract); features by contract.
        unsafe {
            let mut r = load_acc::<S, 3>(a);
            let (kv, pr) = (S::splat(k), red.map(|v| v.as_ptr()));
            let regs = splat_all::<S, 4>(c);
            let mut i = 0;
            while i < body {
                grad_block::<S, T, false>(pr, i, kv, &mut r);
                for j in 0..RUN_LANES / S::W {
                    RunPass::<S, T, 4>::step(&mut p, o + i + j * S::W, &regs);
                }
                i += RUN_LANES;
            }
            store_acc::<S, 3>(&r, a);
            for i in o + body..o + s {
                RunPass::<S, T, 4>::one(&mut p, i, c);
            }
        }
        grad_tail::<T, false>(red.map(|v| &v[body..]), k, a);
    }
}

/// Where the prefetch of run `i` of `count` consecutive runs of `s`
/// elements continues: the next run of the stretch, and after the last
/// one the caller's `next` (counted from the last run's start).
#[inline(always)]
pub(super) fn next_run(i: usize, count: usize, s: usize, next: Option<usize>) -> Option<usize> {
    if i + 1 < count {
        Some(s)
    } else {
        next
    }
}

/// The run sums of `x` (one run): [`sums_narrow`] for half data in runs of
/// at least [`NARROW_MIN_RUN`] ([`narrow_sums`]), else [`sums`].
///
/// # Safety
/// The CPU has the features of `S` and `S32`.
#[inline(always)]
pub unsafe fn sums_any<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane>(
    x: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<2>,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if narrow_sums::<T>(x.len()) {
            sums_narrow::<S, S32, T>(x, next, k, acc)
        } else {
            sums::<S, T>(x, next, k, acc)
        }
    }
}

/// [`sums_any`] of `k.len()` consecutive runs of `s` elements in one call:
/// run `i` with shift `k[i]` into `acc[i]`; `next` from the last run's start.
///
/// # Safety
/// The CPU has the features of `S` and `S32`.
#[inline(always)]
pub unsafe fn sums_runs<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane>(
    x: &[T],
    s: usize,
    next: Option<usize>,
    k: &[f64],
    acc: &mut [RunAcc<2>],
) {
    for (i, (xr, a)) in x.chunks_exact(s).zip(acc.iter_mut()).enumerate() {
        // SAFETY: forwarded contract.
        unsafe { sums_any::<S, S32, T>(xr, next_run(i, k.len(), s, next), k[i], a) }
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
    // for the rest; the element and register bodies are the sweep's
    // ([`AffinePass`]), so a run and a sweep over runs give the same bits.
    let len = x.len();
    let mut p = AffinePass::<T, ADD, RELU> {
        x,
        r,
        y: y.as_mut_ptr(),
        pf: true,
    };
    let (h, body) = nt::span::<S, T>(p.y, len);
    // SAFETY: `i < len == y.len()` for `one`; `h <= i`, `i + W <= body <=
    // len` for the registers; with `S::STREAM` every store is at `h + m·W`,
    // aligned (`nt::span`); features by contract.
    unsafe {
        for i in (0..h).chain(body..len) {
            RunPass::<S, T, 3>::one(&mut p, i, [k, a, b]);
        }
        let regs = splat_all::<S, 3>([k, a, b]);
        // Four registers per loop turn (more loads in flight per
        // instruction in a streaming pass), then one at a time.
        let mut i = h;
        while i + 4 * S::W <= body {
            prefetch_ahead::<S, T, 2>([(x, true), (r, ADD)], i, 4 * S::W);
            for u in 0..4 {
                p.reg::<S>(i + u * S::W, &regs);
            }
            i += 4 * S::W;
        }
        while i < body {
            RunPass::<S, T, 3>::step(&mut p, i, &regs);
            i += S::W;
        }
        S::fence();
    }
}

/// Shortest run [`affine_runs_post`] sweeps (at least the widest register,
/// so a register straddles at most two runs).
pub const SWEEP_MIN_RUN: usize = 16;

/// Longest run whose normalize pass sweeps across run ends at a level that
/// does not stream ([`sweep_short_half`]).
pub const SWEEP_HALF_MAX_RUN: usize = 256;

/// Whether half-precision data in runs of `s` values sweep across run ends
/// ([`sweep`]) when the level does not stream: runs shorter than
/// [`SWEEP_HALF_MAX_RUN`] that end inside a register. Run by run, each run's
/// last `s mod 16` values took the scalar tail, whose half conversion is
/// software, not F16C/AVX512-BF16. A/B on the 2-core EPYC VM (`bnh bench
/// --impls fused`, 1 thread, 3 alternated rounds, 2026-12-03): `bf16`/`f16`
/// eval 0.48–0.87× (64×512×7×7, 24×512×7×7, 16×256×14×14), train
/// 0.75–1.0×. Sweeping every run at non-streaming levels was slower for
/// 28×28 runs (1.1–1.36×) and for `f32` 7×7 eval (1.22×); `dx` sweeps
/// only when streaming (7×7 half backward measured within noise).
#[inline(always)]
pub fn sweep_short_half<T: Lane>(s: usize) -> bool {
    T::NARROW && s < SWEEP_HALF_MAX_RUN && !s.is_multiple_of(RUN_LANES)
}

/// `y = post((x − k)·a + b)` over consecutive runs of `s` values, run `i`
/// with `c[(c0 + i) mod c.len()]` (`r` read only by [`Post::AddRelu`]): in
/// one [`sweep`] when the level streams or [`sweep_short_half`] says so,
/// every run's coefficients are of one
/// lane type and `s >= SWEEP_MIN_RUN`; otherwise one [`affine_post`] per run
/// (`f64` lanes `S` or `f32` lanes `S32`, as each run's coefficients say).
/// The sweep prefetches its inputs only with `pf` (inputs not in cache).
///
/// # Safety
/// The CPU has the features of `S` and `S32`; `x`, `r`, `y` equally long, a
/// multiple of `s > 0`; `c` not empty, `c0 < c.len()`.
#[inline(always)]
pub unsafe fn affine_runs_post<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane>(
    (x, r, y): (&[T], &[T], &mut [T]),
    s: usize,
    (c, c0): (&[RunCoeffs<3>], usize),
    (post, pf): (Post, bool),
) {
    let runs = x.len() / s;
    if (S::STREAM || sweep_short_half::<T>(s)) && s >= SWEEP_MIN_RUN {
        let coef = RunCycle::new(c, c0);
        // SAFETY: forwarded contract; every run's coefficients are of the
        // sweep's lane type (`task_lanes`), so `lanes` gives them exactly.
        match task_lanes(c, c0, runs) {
            Some(true) => {
                return unsafe { affine_sweep_post::<S, T>((x, r, y), s, coef, (post, pf)) }
            }
            Some(false) => {
                return unsafe { affine_sweep_post::<S32, T>((x, r, y), s, coef, (post, pf)) }
            }
            None => {}
        }
    }
    let task = cycled_from(c, c0).take(runs);
    let runs = x.chunks_exact(s).zip(r.chunks_exact(s));
    for (((xr, rr), yr), k) in runs.zip(y.chunks_exact_mut(s)).zip(task) {
        // SAFETY: forwarded contract; each run's slices are equally long.
        unsafe {
            match *k {
                RunCoeffs::F64(k) => affine_post::<S, T>(xr, rr, yr, k, post),
                RunCoeffs::F32(k) => affine_post::<S32, T>(xr, rr, yr, k, post),
            }
        }
    }
}

/// [`affine_sweep`] with the epilogue chosen at run time.
///
/// # Safety
/// As [`affine_sweep`].
#[inline(always)]
unsafe fn affine_sweep_post<S: Simd, T: Lane>(
    (x, r, y): (&[T], &[T], &mut [T]),
    s: usize,
    coef: RunCycle<'_, 3>,
    (post, pf): (Post, bool),
) {
    // SAFETY: forwarded contract.
    unsafe {
        match post {
            Post::Plain => affine_sweep::<S, T, false, false>([x, x], y, s, coef, pf),
            Post::Relu => affine_sweep::<S, T, false, true>([x, x], y, s, coef, pf),
            Post::AddRelu => affine_sweep::<S, T, true, true>([x, r], y, s, coef, pf),
        }
    }
}

/// [`affine`] over consecutive runs of `s` values as one stretch, the runs'
/// `[k, a, b]` taken from `coef` in turn: the same operations per element,
/// so the same bits as one [`affine`] per run. Prefetches its inputs (on a
/// streaming level) only with `pf`.
///
/// # Safety
/// The CPU has `S`'s features; `x`, `r`, `y` equally long, a multiple of
/// `s >= S::W`.
#[inline(always)]
unsafe fn affine_sweep<S: Simd, T: Lane, const ADD: bool, const RELU: bool>(
    [x, r]: [&[T]; 2],
    y: &mut [T],
    s: usize,
    coef: RunCycle<'_, 3>,
    pf: bool,
) {
    let pass = AffinePass::<T, ADD, RELU> {
        x,
        r,
        y: y.as_mut_ptr(),
        pf,
    };
    // SAFETY: `pass.step` is sound for `i + W <= len` (its contract); the
    // rest by contract.
    unsafe { sweep::<S, T, 3>(pass, x.len(), s, coef) }
}

/// [`affine_sweep`]'s element-wise work: `y = post(fma(x − k, a, b))`.
struct AffinePass<'a, T, const ADD: bool, const RELU: bool> {
    x: &'a [T],
    r: &'a [T],
    y: *mut T,
    /// Whether [`RunPass::step`] prefetches (on a streaming level).
    pf: bool,
}

impl<S: Simd, T: Lane, const ADD: bool, const RELU: bool> RunPass<S, T, 3>
    for AffinePass<'_, T, ADD, RELU>
{
    fn out(&self) -> *const T {
        self.y
    }
    #[inline(always)]
    unsafe fn one(&mut self, i: usize, [k, a, b]: [S::E; 3]) {
        let v = (lane::<S::E, T>(self.x[i]) - k).fma(a, b);
        let v = T::from_f64(post_scalar::<S::E, T, ADD, RELU>(v, self.r[i]).to_f64());
        // SAFETY: `i < len` (contract), `y` valid for `len` writes.
        unsafe { *self.y.add(i) = v };
    }
    #[inline(always)]
    unsafe fn step(&mut self, i: usize, c: &[S::V; 3]) {
        let (x, r) = (self.x, self.r);
        if self.pf {
            prefetch_ahead::<S, T, 2>([(x, true), (r, ADD)], i, S::W);
        }
        // SAFETY: forwarded contract.
        unsafe { self.reg::<S>(i, c) }
    }
}

impl<T: Lane, const ADD: bool, const RELU: bool> AffinePass<'_, T, ADD, RELU> {
    /// The register at element `i` without a prefetch ([`affine`] prefetches
    /// four registers at a time).
    ///
    /// # Safety
    /// `i + W <= len`; the CPU has `S`'s features.
    #[inline(always)]
    unsafe fn reg<S: Simd>(&self, i: usize, [kv, av, bv]: &[S::V; 3]) {
        let (x, r) = (self.x, self.r);
        // SAFETY: `i + W <= len` (contract), `x`, `r`, `y` that long;
        // features by contract.
        unsafe {
            let v = S::fma(S::sub(T::load::<S>(x.as_ptr().add(i)), *kv), *av, *bv);
            let v = if ADD {
                S::add(v, T::load::<S>(r.as_ptr().add(i)))
            } else {
                v
            };
            T::store::<S>(self.y.add(i), if RELU { S::relu(v) } else { v });
        }
    }
}

/// An element-wise pass over `len` elements of consecutive runs, as
/// [`sweep`] drives it (`K` coefficients per run).
pub trait RunPass<S: Simd, T, const K: usize> {
    /// The output (where the stores are aligned).
    fn out(&self) -> *const T;
    /// Element `i` in scalar code, `c` its run's coefficients.
    ///
    /// # Safety
    /// `i < len`; the CPU has `S`'s features.
    unsafe fn one(&mut self, i: usize, c: [S::E; K]);
    /// The register at element `i`, `c` its lanes' coefficients.
    ///
    /// # Safety
    /// `i + W <= len`; the CPU has `S`'s features.
    unsafe fn step(&mut self, i: usize, c: &[S::V; K]);
}

/// `c` in registers.
///
/// # Safety
/// The CPU has `S`'s features.
#[inline(always)]
unsafe fn splat_all<S: Simd, const K: usize>(c: [S::E; K]) -> [S::V; K] {
    // SAFETY: features by contract.
    unsafe {
        let mut v = [S::splat(c[0]); K];
        for (v, e) in v.iter_mut().zip(c) {
            *v = S::splat(e);
        }
        v
    }
}

/// `c[c0], c[c0 + 1], …` wrapping around to `c[0]` without end: the
/// per-channel coefficients of consecutive runs starting at channel `c0`.
#[inline(always)]
fn cycled_from<C>(c: &[C], c0: usize) -> impl Iterator<Item = &C> {
    c[c0..].iter().chain(c.iter().cycle())
}

/// The lanes every one of `runs` consecutive runs from channel `c0` has
/// its coefficients in ([`RunCoeffs::is_in`]): `Some(true)` all `f64`,
/// `Some(false)` all `f32`, `None` a mix (half data with a coefficient out
/// of `f32`'s range). Each channel is looked at once, in two slices of `c`
/// (a cycling iterator here cost 3.4% of `bf16` eval 4096×64×8×8).
fn task_lanes<const K: usize>(c: &[RunCoeffs<K>], c0: usize, runs: usize) -> Option<bool> {
    let [head, wrapped] = if runs >= c.len() {
        [c, &[][..]]
    } else {
        let head = &c[c0.min(c.len())..];
        let take = runs.min(head.len());
        [&head[..take], &c[..runs - take]]
    };
    let all = |f: fn(&RunCoeffs<K>) -> bool| head.iter().chain(wrapped).all(f);
    if all(RunCoeffs::is_in::<f64>) {
        Some(true)
    } else if all(RunCoeffs::is_in::<f32>) {
        Some(false)
    } else {
        None
    }
}

/// The `dx` pass over consecutive runs of `s` values (`v = [x, dy, yo]`,
/// run `i` with `c[(c0 + i) mod c.len()] = [k, kd, kx, kc]`): with `MASK`
/// the ReLU backward's ([`dx_relu_any`], `fixed` statistics and `dres`
/// when not null), without it [`dx`] (`yo` unread). In one [`sweep`] when
/// the level streams, `dres` is null, every run's coefficients are of one
/// lane type and `s >= SWEEP_MIN_RUN`; otherwise one call per run (`f64`
/// lanes `S` or `f32` lanes `S32`, as each run's coefficients say). The
/// sweep prefetches its inputs only with `pf` (inputs not in cache).
///
/// # Safety
/// The CPU has the features of `S` and `S32`; `x`, `dy`, `yo`, `dx` equally
/// long, a multiple of `s > 0`; `c` not empty, `c0 < c.len()`; `dres` null
/// or valid for `x.len()` writes, not overlapping the slices; without
/// `MASK`, `fixed` false and `dres` null.
#[inline(always)]
pub unsafe fn dx_runs<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    (dx, dres): (&mut [T], *mut T),
    s: usize,
    (c, c0): (&[RunCoeffs<4>], usize),
    (fixed, pf): (bool, bool),
) {
    let runs = v[0].len() / s;
    if S::STREAM && s >= SWEEP_MIN_RUN && dres.is_null() {
        let coef = RunCycle::new(c, c0);
        // SAFETY: forwarded contract; every run's coefficients are of the
        // sweep's lane type (`task_lanes`), so `lanes` gives them exactly.
        match task_lanes(c, c0, runs) {
            Some(true) => {
                return unsafe { dx_sweep_any::<S, T, MASK>(v, dx, s, coef, (fixed, pf)) }
            }
            Some(false) => {
                return unsafe { dx_sweep_any::<S32, T, MASK>(v, dx, s, coef, (fixed, pf)) }
            }
            None => {}
        }
    }
    let task = cycled_from(c, c0).take(runs);
    for (i, (d, k)) in dx.chunks_exact_mut(s).zip(task).enumerate() {
        let r = i * s..(i + 1) * s;
        let vr = v.map(|a| &a[r.clone()]);
        // `dres` of run i: i·s + s <= x.len() values in (contract).
        let dr = if dres.is_null() {
            dres
        } else {
            // SAFETY: i·s + s <= x.len() (contract).
            unsafe { dres.add(i * s) }
        };
        // SAFETY: forwarded contract; each run's slices are equally long.
        unsafe {
            match (*k, MASK) {
                (RunCoeffs::F64(k), true) => dx_relu_any::<S, T>(vr, d, dr, k, fixed),
                (RunCoeffs::F32(k), true) => dx_relu_any::<S32, T>(vr, d, dr, k, fixed),
                (RunCoeffs::F64(k), false) => self::dx::<S, T>(vr[0], vr[1], d, k),
                (RunCoeffs::F32(k), false) => self::dx::<S32, T>(vr[0], vr[1], d, k),
            }
        }
    }
}

/// [`DxPass`] swept over runs, `fixed` chosen at run time.
///
/// # Safety
/// As [`sweep`] with [`DxPass`]'s contract: the three inputs and `dx`
/// equally long, a multiple of `s >= S::W`.
#[inline(always)]
unsafe fn dx_sweep_any<S: Simd, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    dx: &mut [T],
    s: usize,
    coef: RunCycle<'_, 4>,
    (fixed, pf): (bool, bool),
) {
    let (len, dx, dres) = (v[0].len(), dx.as_mut_ptr(), std::ptr::null_mut());
    // SAFETY: forwarded contract (no `RES`: `dres` unused).
    unsafe {
        if fixed {
            let pass = DxPass::<T, MASK, true, false> { v, dx, dres, pf };
            sweep::<S, T, 4>(pass, len, s, coef)
        } else {
            sweep::<S, T, 4>(
                DxPass::<T, MASK, false, false> { v, dx, dres, pf },
                len,
                s,
                coef,
            )
        }
    }
}

/// The `dx` pass's element-wise work (`v = [x, dy, yo]`), for one run
/// ([`dx_pass`]) and for [`sweep`] (never with `RES`): `g = dy`, masked by
/// `yo` with `MASK`, written to `dres` with `RES`; then `dx`.
struct DxPass<'a, T, const MASK: bool, const FIXED: bool, const RES: bool> {
    v: [&'a [T]; 3],
    dx: *mut T,
    /// Valid for the pass's `len` writes with `RES`, else unused.
    dres: *mut T,
    /// Whether [`RunPass::step`] prefetches (on a streaming level).
    pf: bool,
}

impl<S: Simd, T: Lane, const MASK: bool, const FIXED: bool, const RES: bool> RunPass<S, T, 4>
    for DxPass<'_, T, MASK, FIXED, RES>
{
    fn out(&self) -> *const T {
        self.dx
    }
    #[inline(always)]
    unsafe fn one(&mut self, i: usize, c: [S::E; 4]) {
        let (v, dres) = (self.v, self.dres);
        // SAFETY: `i < len` (contract), `dx` (and with `RES` `dres`) valid
        // for `len` writes.
        unsafe { *self.dx.add(i) = dx_scalar::<S::E, T, MASK, FIXED, RES>(v, dres, i, c) };
    }
    #[inline(always)]
    unsafe fn step(&mut self, i: usize, [k, kd, kx, kc]: &[S::V; 4]) {
        let [x, dy, yo] = self.v;
        if self.pf {
            let inputs = [(x, !FIXED), (dy, true), (yo, MASK)];
            prefetch_ahead::<S, T, 3>(inputs, i, S::W);
        }
        // SAFETY: `i + W <= len` (contract), the inputs, `dx` (and with
        // `RES` `dres`) that long; features by contract.
        unsafe {
            let mut m = T::load::<S>(dy.as_ptr().add(i));
            if MASK {
                m = S::relu_grad(T::load::<S>(yo.as_ptr().add(i)), m);
            }
            if RES {
                T::store::<S>(self.dres.add(i), m);
            }
            let v = if FIXED {
                S::fma(*kd, m, S::splat(S::E::from_f64(-0.0)))
            } else {
                let d = S::sub(T::load::<S>(x.as_ptr().add(i)), *k);
                S::fma(*kd, m, S::fma(*kx, d, *kc))
            };
            T::store::<S>(self.dx.add(i), v);
        }
    }
}

/// The coefficients of consecutive runs: channel `c0`'s first, then the
/// next channel's, cycling through `c` (no division per run).
pub struct RunCycle<'a, const K: usize> {
    c: &'a [RunCoeffs<K>],
    at: usize,
}

impl<'a, const K: usize> RunCycle<'a, K> {
    /// Starting at `c[c0]` (`c0 < c.len()`; an out-of-range `c0` starts at 0).
    pub fn new(c: &'a [RunCoeffs<K>], c0: usize) -> Self {
        Self {
            c,
            at: if c0 < c.len() { c0 } else { 0 },
        }
    }

    /// The next run's coefficients in lanes of `E` ([`RunCoeffs::lanes`]).
    #[inline(always)]
    fn next<E: Real>(&mut self) -> [E; K] {
        let v = self.c[self.at].lanes();
        self.at = if self.at + 1 == self.c.len() {
            0
        } else {
            self.at + 1
        };
        v
    }
}

/// Runs `p` over `len` elements of consecutive runs of `s >= W` elements
/// (coefficients from `coef`, one run after the other) in memory order:
/// [`RunPass::one`] for the elements outside [`nt::span`],
/// [`RunPass::step`] for each register in it with the coefficients
/// splatted — blended ([`Simd::blend`]) for a register that straddles two
/// runs, so the stores of a streaming level cover whole lines across run
/// ends. Runs shorter than a line would otherwise each need a scalar head
/// to align their own streaming stores, and the lines neighbouring runs
/// share would mix streaming and ordinary stores (measured slower than no
/// streaming). Fences at the end ([`Simd::fence`]).
///
/// # Safety
/// `s >= S::W`, `len` a multiple of `s`; `p`'s methods sound for the `i`
/// their contracts name; the CPU has `S`'s features.
#[inline(always)]
pub unsafe fn sweep<S: Simd, T: Lane, const K: usize>(
    mut p: impl RunPass<S, T, K>,
    len: usize,
    s: usize,
    mut coef: RunCycle<'_, K>,
) {
    let (h, end) = nt::span::<S, T>(p.out(), len);
    // The run being written: its coefficients, and where it ends.
    let (mut run, mut stop) = (coef.next::<S::E>(), s);
    // SAFETY: every `i` below is `< len`, every register `i + W <= end <=
    // len`, every blend's `m < W`; features by contract.
    unsafe {
        for i in 0..h {
            if i == stop {
                (run, stop) = (coef.next(), stop + s);
            }
            p.one(i, run);
        }
        let mut i = h;
        if i < end {
            if i == stop {
                (run, stop) = (coef.next(), stop + s);
            }
            let mut cur = splat_all::<S, K>(run);
            loop {
                // Whole registers of the run (which ends at `stop`).
                let lim = stop.min(end);
                while i + S::W <= lim {
                    p.step(i, &cur);
                    i += S::W;
                }
                if i >= end {
                    break;
                }
                // `i <= stop < i + W <= end`: lanes before `stop` are this
                // run's, the rest the next one's (`s >= W`).
                run = coef.next();
                let next = splat_all::<S, K>(run);
                let mut mixed = next;
                for (v, c) in mixed.iter_mut().zip(cur) {
                    *v = S::blend(stop - i, c, *v);
                }
                p.step(i, &mixed);
                (i, stop, cur) = (i + S::W, stop + s, next);
            }
        }
        for i in i..len {
            if i == stop {
                (run, stop) = (coef.next(), stop + s);
            }
            p.one(i, run);
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
/// slice's start, at the same distance: another run's distance chains a
/// reduction over a channel's runs (`n`, then `n + 1`), `None` prefetches
/// nothing past the end. `Some(len)`, the memory right after the slice, is
/// [`prefetch_ahead`]'s case (the element-wise passes').
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

/// [`prefetch_inputs`] for a pass that reads its inputs in memory order to
/// their ends (`next = Some(len)`): the line [`nt::PREFETCH_BYTES`] ahead
/// is prefetched wherever it lies, which is where `prefetch_inputs` would
/// have continued past the end anyway, without the end test per register
/// (five instructions of a loop that runs about 25 per register).
#[inline(always)]
pub fn prefetch_ahead<S: Simd, T, const K: usize>(v: [(&[T], bool); K], i: usize, n: usize) {
    prefetch_at::<S, T, K>(v, i + nt::PREFETCH_BYTES / std::mem::size_of::<T>(), n)
}

/// With `S::STREAM`, prefetch the lines of elements `p..p + n` of each
/// input `(slice, read)` the pass reads, wherever they lie (`p` may be past
/// the slice: a prefetch never faults); a no-op otherwise. For passes that
/// do not read in memory order ([`super::rows`]' column blocks), which
/// compute where their reads will be [`nt::PREFETCH_BYTES`] from now.
#[inline(always)]
pub fn prefetch_at<S: Simd, T, const K: usize>(v: [(&[T], bool); K], p: usize, n: usize) {
    if !S::STREAM {
        return;
    }
    for (s, read) in v {
        if read {
            nt::prefetch_lines::<T>(s.as_ptr().wrapping_add(p), n);
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
    let len = x.len();
    let mut p = DxPass::<T, MASK, FIXED, RES> {
        v: [x, dy, yo],
        dx: dx.as_mut_ptr(),
        dres,
        pf: true,
    };
    let (h, body) = nt::span::<S, T>(p.dx, len);
    // SAFETY: `i < len == dx.len()` for `one`, `h <= i`, `i + W <= body <=
    // len` for `step`, and `dy`, `yo` (and `dres` with `RES`) as long; with
    // `S::STREAM` (never with `RES`) the stores are aligned from `h`
    // (`nt::span`); features by contract.
    unsafe {
        for i in (0..h).chain(body..len) {
            RunPass::<S, T, 4>::one(&mut p, i, c);
        }
        let regs = splat_all::<S, 4>(c);
        let mut i = h;
        while i < body {
            RunPass::<S, T, 4>::step(&mut p, i, &regs);
            i += S::W;
        }
        S::fence();
    }
}
