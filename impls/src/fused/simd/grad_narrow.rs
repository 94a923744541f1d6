//! Backward's run sums for half-precision data in `f32` blocks, about a
//! shifted `dy` as well as a shifted `x`: the six sums of
//! [`NarrowGrad`] from one read of `x` and `dy` (contiguous runs).
//!
//! Why both shifts: in `f32` a sum loses `2⁻¹⁹` of the magnitudes of its
//! terms (a block of [`NARROW_BLOCK`] terms, Higham 2002, §4.2), so the
//! terms must be about as small as what the result needs. `Σdy·(x − K)`
//! with a large common offset in `dy` has terms far larger than the
//! covariance it yields; about a `dy` value `d0` of the channel the terms
//! are `e·d`, `e = dy − d0`, and the covariance
//! `Σ(dy − μ_dy)(x − μ) = Σe·d − Σd·Σe/m` needs no term with the offset
//! ([`crate::fused::coeffs::grad_shifted`]). The squares `Σe²`, `Σd²` bound
//! what is left ([`crate::fused::coeffs::NarrowGradBound`]); a channel
//! past the bound is summed again in `f64` lanes.

use super::runs::NARROW_BLOCK;
use super::runs::{add_narrow, lane, load_acc, narrow_d, narrow_shift, next_run};
use super::runs::{prefetch_inputs, store_acc};
use super::{Lane, RunAcc, Simd, RUN_LANES};
use crate::activation::{relu, relu_grad};

/// The sums, in this order: `Σe`, `Σe·d`, `Σd`, `Σe²`, `Σd²`,
/// `Σmax(e, 0)`, with `e = dy − d0` (`dy` masked by the ReLU output first,
/// when it is) and `d = x − K`. The last tells a channel whose every `e`
/// is 0 (it and `Σe` both 0: positive terms cannot cancel, negative ones
/// alone cannot either) from one whose `e²` underflow `f32`.
pub const NARROW_GRAD_SUMS: usize = 6;

/// The per-lane accumulators of [`grad`].
pub type NarrowGrad = RunAcc<NARROW_GRAD_SUMS>;

/// The six sums of one run added into `acc` (element `i` into lane
/// `i mod 16`), in `f32` blocks of [`NARROW_BLOCK`] iterations each added
/// into the `f64` lanes, the tail (`len mod 16` values) one more block
/// per value. `k` is split into `f32` high and low parts as in
/// [`super::runs::sums_narrow`]; `d0` is a half value, exact in `f32`.
/// With `MASK`, `dy` is masked by `yo` (`yo <= 0 → 0`,
/// [`Simd::relu_grad`]) as it is loaded; without, `yo` is not read.
/// `next` as in [`super::runs::sums`].
///
/// # Safety
/// The CPU has the features of `S` and `S32`; `x`, `dy`, `yo` equally long.
#[inline(always)]
pub unsafe fn grad<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane, const MASK: bool>(
    [x, dy, yo]: [&[T]; 3],
    next: Option<usize>,
    (k, d0): (f64, f32),
    acc: &mut NarrowGrad,
) {
    let [hi, lo] = narrow_shift(k);
    // SAFETY: forwarded contract.
    unsafe {
        if lo == 0.0 {
            grad_body::<S, S32, T, MASK, false>([x, dy, yo], next, [hi, lo, d0], acc)
        } else {
            grad_body::<S, S32, T, MASK, true>([x, dy, yo], next, [hi, lo, d0], acc)
        }
    }
}

/// [`grad`] with `k_lo` subtracted when `LO` (`sh = [k_hi, k_lo, d0]`).
///
/// # Safety
/// As [`grad`].
#[inline(always)]
unsafe fn grad_body<
    S: Simd<E = f64>,
    S32: Simd<E = f32>,
    T: Lane,
    const MASK: bool,
    const LO: bool,
>(
    [x, dy, yo]: [&[T]; 3],
    next: Option<usize>,
    [hi, lo, d0]: [f32; 3],
    acc: &mut NarrowGrad,
) {
    let body = x.len() / RUN_LANES * RUN_LANES;
    // SAFETY: every load reads `[i + j·W, i + (j+1)·W)` of a slice with
    // `i + RUN_LANES <= body <= x.len() == dy.len() == yo.len()`; features
    // by contract.
    unsafe {
        let mut wide = load_acc::<S, NARROW_GRAD_SUMS>(acc);
        let [hv, lv, dv] = [S32::splat(hi), S32::splat(lo), S32::splat(d0)];
        let [px, pg, po] = [x, dy, yo].map(|a| a.as_ptr());
        let mut i = 0;
        while i < body {
            let end = body.min(i + NARROW_BLOCK * RUN_LANES);
            let mut r = [[S32::splat(0.0); RUN_LANES]; NARROW_GRAD_SUMS];
            while i < end {
                let v = [(x, true), (dy, true), (yo, MASK)];
                prefetch_inputs::<S, T, 3>(v, i, RUN_LANES, next);
                for j in 0..RUN_LANES / S32::W {
                    let o = i + j * S32::W;
                    let mut g = T::load::<S32>(pg.add(o));
                    if MASK {
                        g = S32::relu_grad(T::load::<S32>(po.add(o)), g);
                    }
                    let e = S32::sub(g, dv);
                    let mut d = S32::sub(T::load::<S32>(px.add(o)), hv);
                    if LO {
                        d = S32::sub(d, lv);
                    }
                    let [se, t, u, ee, dd, pos] = &mut r;
                    se[j] = S32::add(se[j], e);
                    t[j] = S32::fma(e, d, t[j]);
                    u[j] = S32::add(u[j], d);
                    ee[j] = S32::fma(e, e, ee[j]);
                    dd[j] = S32::fma(d, d, dd[j]);
                    pos[j] = S32::add(pos[j], S32::relu(e));
                }
                i += RUN_LANES;
            }
            add_narrow::<S, S32, NARROW_GRAD_SUMS>(&r, &mut wide);
        }
        store_acc::<S, NARROW_GRAD_SUMS>(&wide, acc);
    }
    let tail = [x, dy, yo].map(|a| &a[body..]);
    for (l, ((v, g), o)) in tail[0].iter().zip(tail[1]).zip(tail[2]).enumerate() {
        let mut g: f32 = lane(*g);
        if MASK {
            g = relu_grad(o.as_f64(), g as f64) as f32;
        }
        let e = g - d0;
        let d = narrow_d::<T, LO>(*v, [hi, lo]);
        // `relu` as the lanes compute it (exact in `f64`: NaN and `−0` kept).
        let p = relu(e as f64) as f32;
        let terms = [
            e,
            e.mul_add(d, 0.0),
            d,
            e.mul_add(e, 0.0),
            d.mul_add(d, 0.0),
            p,
        ];
        for (a, t) in acc.iter_mut().zip(terms) {
            a[l] += t as f64;
        }
    }
}

/// [`grad`] of `k.len()` consecutive runs of `s` values in one call
/// (`v = [x, dy, yo]`): run `i` about `(k[i], d0[i])` into `acc[i]`;
/// `next` from the last run's start.
///
/// # Safety
/// The CPU has the features of `S` and `S32`; the three slices equally
/// long, `k`, `d0` and `acc` as long as there are runs.
#[inline(always)]
pub unsafe fn grad_runs<S: Simd<E = f64>, S32: Simd<E = f32>, T: Lane, const MASK: bool>(
    v: [&[T]; 3],
    s: usize,
    next: Option<usize>,
    (k, d0): (&[f64], &[f32]),
    acc: &mut [NarrowGrad],
) {
    let [x, dy, yo] = v.map(|a| a.chunks_exact(s));
    let runs = x.zip(dy).zip(yo).zip(acc.iter_mut()).enumerate();
    for (i, (((xr, gr), or), a)) in runs {
        let nx = next_run(i, k.len(), s, next);
        // SAFETY: forwarded contract (the three runs are equally long).
        unsafe { grad::<S, S32, T, MASK>([xr, gr, or], nx, (k[i], d0[i]), a) }
    }
}
