//! The precision `fused`'s element-wise passes compute in, and their
//! coefficients prepared in it.
//!
//! Reductions run in `f64` lanes (the statistics are `f64` sums), except
//! train's statistics of half-precision data in contiguous runs of at least
//! [`super::runs::NARROW_MIN_RUN`] values or channels-last channels of at
//! least [`super::NARROW_MIN_ROWS`], which add `f32` blocks into the `f64`
//! lanes ([`super::runs::sums_narrow`], [`super::rows::sums_narrow`]: 19
//! bits, with a stricter cancellation limit for the one-read variance). The
//! element-wise passes — normalize and `dx` — run in `f64` lanes for `f32`
//! and `f64` data (one rounding per output) and in `f32` lanes for `bf16`
//! and `f16` data: twice the lanes per register and no `f64` round trip
//! (widening, then rounding to odd before the half rounding). The formulas
//! are written so the `f32` arithmetic does not cancel: the shift `k` (the
//! channel's mean) is split into `k_hi = f32(k)` and `k_lo = k − k_hi`, the
//! pass computes `x − k_hi` (exact by Sterbenz's lemma for `x` within a
//! factor 2 of `k_hi`, i.e. wherever the subtraction cancels) and folds
//! `k_lo` into the constant term in `f64` before rounding it once:
//!
//! - normalize: `y = fma(x − k_hi, a, b − a·k_lo)`;
//! - `dx`: `dx = fma(kd, dy, fma(kx, x − k_hi, kc − kx·k_lo))`.
//!
//! The `f32` result is within a few `f32` roundings of the terms (2⁻²⁴
//! relative each) — 2⁻¹⁶ (`bf16`) or 2⁻¹³ (`f16`) of the output's own half
//! ulp — and is then rounded once to the half type. Where a coefficient is
//! not finite in `f32` (eval with eps 0 on a zero variance, a mean beyond
//! `f32`'s range) the pass keeps `f64` lanes, so infinities and NaNs arise
//! exactly as in `f64`.
//!
//! `f32` data in `f32` lanes was measured twice and not kept. It is faster
//! where the data sit in L2/L3 (2026-12-02, 2-core Xeon VM, `bnh bench`,
//! builds alternated over 5 rounds, channels-last `f32`, 1 thread: eval
//! 0.84× on 256×1024, 0.90× on 32×64×28×28, 0.92× on 64×512×7×7; backward
//! 0.81×, 0.94×, 0.96×; the 2026-12-01 attempt saw only noise), but the
//! outputs stop being correctly rounded: where the bias cancels
//! `a·(x − k)` the error is a few `f32` roundings of the terms, not of the
//! result — `bnh accuracy --dtypes f32` found 2.9·10⁶ ulps on `y` and
//! 1.8·10⁶ on `grad_input` where `f64` lanes stay within 0.5 ulp (and the
//! agreement tests 4.3·2⁻²³·max(1, |y|)). One rounding per output is the
//! accuracy design; those in-cache cells pay for it.

use super::Lane;
use crate::engine::plan::{cycled, extend_cyclic};
use std::ops::{Add, Mul, Sub};

/// Lanes repeated after the `L` of a [`RowCoeffs`] array: the widest register.
pub const WRAP: usize = 16;

/// A lane's scalar type (`f64` or `f32`): the operations the scalar tails
/// of the kernels use, the same as one SIMD lane's (`+`, `−`, `·` rounded
/// once, as the vector instructions).
pub trait Real:
    Copy
    + Default
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
{
    /// `v` rounded to nearest.
    fn from_f64(v: f64) -> Self;
    /// Exact widening.
    fn to_f64(self) -> f64;
    /// `self·a + b` rounded once (IEEE fused multiply-add).
    fn fma(self, a: Self, b: Self) -> Self;
    /// Whether this is `f64` (the lanes of [`RunCoeffs::F64`]).
    const WIDE: bool;
}

impl Real for f64 {
    const WIDE: bool = true;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl Real for f32 {
    const WIDE: bool = false;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

/// `k` split into `f32` `k_hi` and the `f64` remainder `k_lo`, when `k_hi`
/// is finite.
fn split(k: f64) -> Option<(f32, f64)> {
    let hi = k as f32;
    hi.is_finite().then_some((hi, k - hi as f64))
}

/// `b − a·lo`, or `b` itself when `lo` is 0 (so a −0 constant stays −0,
/// which keeps the sign of a zero product as in `f64`).
fn fold(b: f64, a: f64, lo: f64) -> f64 {
    if lo == 0.0 {
        b
    } else {
        b - a * lo
    }
}

/// `v` in `f32` when it is 0 or a normal `f32` there: a NaN or infinite
/// `v` is refused (the `f64` lanes then produce exactly `f64`'s NaNs and
/// infinities), and so is one that under- or overflows `f32` (`dx`'s
/// `kx ~ w/σ³` does for data of magnitude 1e30: 1e-60).
fn finite(v: f64) -> Option<f32> {
    let f = v as f32;
    (v == 0.0 || f.is_normal()).then_some(f)
}

/// Normalize coefficients `[k, a, b]` (`y = (x − k)·a + b`) in `f32`:
/// `[k_hi, a, b − a·k_lo]`.
fn affine32([k, a, b]: [f64; 3]) -> Option<[f32; 3]> {
    let (hi, lo) = split(k)?;
    Some([hi, finite(a)?, finite(fold(b, a, lo))?])
}

/// `dx` coefficients `[k, kd, kx, kc]` (`dx = kd·dy + kx·(x − k) + kc`) in
/// `f32`: `[k_hi, kd, kx, kc − kx·k_lo]`.
fn dx32([k, kd, kx, kc]: [f64; 4]) -> Option<[f32; 4]> {
    let (hi, lo) = split(k)?;
    Some([hi, finite(kd)?, finite(kx)?, finite(fold(kc, kx, lo))?])
}

/// Folded `dx` coefficients `[kd, kx, kc]` (`dx = kd·dy + kx·x + kc`, the
/// shift already in `kc`) in `f32`: each as it is.
fn dx_folded32(c: [f64; 3]) -> Option<[f32; 3]> {
    let [kd, kx, kc] = c.map(finite);
    Some([kd?, kx?, kc?])
}

/// A scale `[a, b]` (`y = x·a + b`) in `f32`: fixed-statistics `dx`
/// (`b = −0`), and eval's folded `b = c − k·a` within `coeffs::fold_ratio`.
fn scale32([a, b]: [f64; 2]) -> Option<[f32; 2]> {
    Some([finite(a)?, finite(b)?])
}

/// One run's coefficients in the precision its pass computes in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunCoeffs<const K: usize> {
    /// `f64` lanes.
    F64([f64; K]),
    /// `f32` lanes (split shift, see the module docs).
    F32([f32; K]),
}

/// The precision `T`'s element-wise passes use, given the `f32` form.
fn pick<T: Lane, const K: usize, C>(
    wide: [f64; K],
    narrow: impl FnOnce([f64; K]) -> Option<C>,
) -> Result<C, [f64; K]> {
    if T::NARROW {
        narrow(wide).ok_or(wide)
    } else {
        Err(wide)
    }
}

impl<const K: usize> RunCoeffs<K> {
    /// Whether these coefficients were prepared for lanes of `E`.
    pub fn is_in<E: Real>(&self) -> bool {
        matches!(self, Self::F64(_)) == E::WIDE
    }

    /// The coefficients in lanes of `E`: exactly themselves where
    /// [`Self::is_in`] holds (kernels sweeping runs of one lane type).
    pub fn lanes<E: Real>(&self) -> [E; K] {
        match self {
            Self::F64(c) => c.map(E::from_f64),
            Self::F32(c) => c.map(|v| E::from_f64(v as f64)),
        }
    }
}

impl RunCoeffs<3> {
    /// `y = (x − k)·a + b` (`c = [k, a, b]`) for data of type `T`.
    pub fn affine<T: Lane>(c: [f64; 3]) -> Self {
        pick::<T, 3, _>(c, affine32).map_or_else(Self::F64, Self::F32)
    }
}

impl RunCoeffs<4> {
    /// `dx = kd·dy + kx·(x − k) + kc` (`c = [k, kd, kx, kc]`) for `T`.
    pub fn dx<T: Lane>(c: [f64; 4]) -> Self {
        pick::<T, 4, _>(c, dx32).map_or_else(Self::F64, Self::F32)
    }
}

/// Per-lane coefficients of a channels-last pass (arrays of `L` lanes,
/// followed by their first [`WRAP`] lanes again, cyclically, so a register
/// that starts at any lane `j < L` can be loaded whole: the streaming passes
/// run across row ends), prepared once per operation in the precision its
/// pass computes in.
#[derive(Debug, Clone, PartialEq)]
pub enum RowCoeffs<const K: usize> {
    /// `f64` lanes.
    F64([Vec<f64>; K]),
    /// `f32` lanes (split shift, see the module docs).
    F32([Vec<f32>; K]),
}

impl<const K: usize> RowCoeffs<K> {
    /// Lanes per row (`L`).
    pub fn lanes(&self) -> usize {
        match self {
            Self::F64(c) => c[0].len() - WRAP,
            Self::F32(c) => c[0].len() - WRAP,
        }
    }

    /// Every lane's coefficients converted by `narrow` when `T` computes in
    /// `f32` and every lane converts; `f64` otherwise.
    fn build<T: Lane>(c: [&[f64]; K], narrow: fn([f64; K]) -> Option<[f32; K]>) -> Self {
        let l = c[0].len();
        assert!(
            l > 0 && c.iter().all(|v| v.len() == l),
            "RowCoeffs: lengths"
        );
        let wide = || Self::F64(c.map(wrapped));
        if !T::NARROW {
            return wide();
        }
        // Filled in place and wrapped there: no lane-by-lane pushes into `K`
        // vectors and no second copy (eval of 32×1024 `f16`: 2–3% faster).
        let mut out: [Vec<f32>; K] = std::array::from_fn(|_| {
            let mut v = Vec::with_capacity(l + WRAP);
            v.resize(l, 0.0);
            v
        });
        for i in 0..l {
            let Some(v) = narrow(c.map(|a| a[i])) else {
                return wide();
            };
            for (o, x) in out.iter_mut().zip(v) {
                o[i] = x;
            }
        }
        for o in &mut out {
            extend_cyclic(o, l + WRAP);
        }
        Self::F32(out)
    }
}

/// `v` followed by its first [`WRAP`] values again, cyclically (`v` not empty).
fn wrapped<E: Copy>(v: &[E]) -> Vec<E> {
    cycled(v, v.len() + WRAP)
}

impl RowCoeffs<3> {
    /// `y = (x − k[l])·a[l] + b[l]` (`c = [k, a, b]`) for data of type `T`.
    pub fn affine<T: Lane>(c: [&[f64]; 3]) -> Self {
        Self::build::<T>(c, affine32)
    }
}

impl RowCoeffs<2> {
    /// `y = x·a[l] + b[l]` (`c = [a, b]`) for `T`. A shift folded into `b`
    /// (`b = c − k·a`) is bounded by `coeffs::fold_ratio`, tighter for
    /// data computed in `f32` lanes, where the fold's roundings are larger.
    pub fn scale<T: Lane>(c: [&[f64]; 2]) -> Self {
        Self::build::<T>(c, scale32)
    }
}

/// A channels-last `dx` pass's coefficients, prepared once per operation.
#[derive(Debug, Clone, PartialEq)]
pub enum RowsDx {
    /// `dx = kd[l]·dy + kx[l]·(x − k[l]) + kc[l]`, `[k, kd, kx, kc]`.
    Shifted(RowCoeffs<4>),
    /// `dx = kd[l]·dy + kx[l]·x + kc[l]`, `[kd, kx, kc]`: the shift folded
    /// into `kc` (`kc − kx·k`, within `coeffs::folds_dx`), one stream fewer
    /// for the pass to load (2026-12-03, EPYC VM, 1 thread: (N, C) 256×1024
    /// `f32` backward 0.82–0.96× the time, channels-last 64×512×7×7
    /// 0.70–0.95×).
    Folded(RowCoeffs<3>),
}

/// [`RowsDx`]'s arrays as the kernels take them: four slots, the shift
/// first (a [`RowsDx::Folded`] repeats `kd` there, never read), and
/// whether the shift is read.
pub enum DxSlots<'a> {
    /// `f64` lanes.
    F64([&'a [f64]; 4], bool),
    /// `f32` lanes.
    F32([&'a [f32]; 4], bool),
}

impl RowsDx {
    /// `dx = kd[l]·dy + kx[l]·(x − k[l]) + kc[l]` (`c = [k, kd, kx, kc]`) for `T`.
    pub fn shifted<T: Lane>(c: [&[f64]; 4]) -> Self {
        Self::Shifted(RowCoeffs::build::<T>(c, dx32))
    }

    /// `dx = kd[l]·dy + kx[l]·x + kc[l]` (`c = [kd, kx, kc]`, the shift
    /// already folded into `kc`) for `T`.
    pub fn folded<T: Lane>(c: [&[f64]; 3]) -> Self {
        Self::Folded(RowCoeffs::build::<T>(c, dx_folded32))
    }

    /// Lanes per row (`L`).
    pub fn lanes(&self) -> usize {
        match self {
            Self::Shifted(c) => c.lanes(),
            Self::Folded(c) => c.lanes(),
        }
    }

    /// The kernels' view ([`DxSlots`]).
    pub fn slots(&self) -> DxSlots<'_> {
        match self {
            Self::Shifted(RowCoeffs::F64(c)) => DxSlots::F64(c.each_ref().map(|v| &v[..]), true),
            Self::Shifted(RowCoeffs::F32(c)) => DxSlots::F32(c.each_ref().map(|v| &v[..]), true),
            Self::Folded(RowCoeffs::F64([d, x, c])) => {
                DxSlots::F64([d, d, x, c].map(|v| &v[..]), false)
            }
            Self::Folded(RowCoeffs::F32([d, x, c])) => {
                DxSlots::F32([d, d, x, c].map(|v| &v[..]), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_shift_is_exact_and_folds_into_the_constant() {
        let k = 1e4 + 1.0 / 3.0;
        let RunCoeffs::F32([hi, a, b]) = RunCoeffs::<3>::affine::<half::bf16>([k, 2.0, 0.5]) else {
            panic!("finite coefficients take f32 lanes");
        };
        // k_hi + k_lo = k exactly; the constant absorbs −a·k_lo.
        let lo = k - hi as f64;
        assert_eq!(hi as f64 + lo, k);
        assert_eq!(a, 2.0);
        assert_eq!(b, (0.5 - 2.0 * lo) as f32);
        // Data x = k + 1 (the nearest f32): x − k_hi is exact, and the result
        // is within one f32 ulp of (x − k)·a + b.
        let x = (k + 1.0) as f32;
        let want = (x as f64 - k) * 2.0 + 0.5;
        let got = (x - hi).mul_add(a, b) as f64;
        assert!((got - want).abs() <= f32::EPSILON as f64 * want.abs());
    }

    #[test]
    fn non_finite_coefficients_keep_f64_lanes() {
        assert!(matches!(
            RunCoeffs::<3>::affine::<half::f16>([0.0, f64::INFINITY, 0.0]),
            RunCoeffs::F64(_)
        ));
        assert!(matches!(
            RunCoeffs::<4>::dx::<half::bf16>([1e39, 1.0, 1.0, 0.0]),
            RunCoeffs::F64(_)
        ));
        // kx of data of magnitude 1e30 underflows f32.
        assert!(matches!(
            RunCoeffs::<4>::dx::<half::bf16>([1e30, 1e-30, 1e-60, 0.0]),
            RunCoeffs::F64(_)
        ));
        assert!(matches!(
            RowCoeffs::<3>::affine::<half::bf16>([&[0.0, 1.0], &[1.0, f64::NAN], &[0.0, 0.0]]),
            RowCoeffs::F64(_)
        ));
        for wide in [
            RunCoeffs::<3>::affine::<f64>([0.0, 1.0, 0.0]),
            RunCoeffs::<3>::affine::<f32>([0.0, 1.0, 0.0]),
        ] {
            assert!(matches!(wide, RunCoeffs::F64(_)));
        }
        assert!(matches!(
            RowCoeffs::<2>::scale::<half::bf16>([&[1.0], &[-0.0]]),
            RowCoeffs::F32(_)
        ));
    }
}
