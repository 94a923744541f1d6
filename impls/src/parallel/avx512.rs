//! The lane reductions of the statistics with explicit AVX-512 intrinsics.
//!
//! LLVM's auto-vectorizer leaves these reductions (16 `f64` lanes fed by
//! widened `f32`) partly scalar, so they are written out: lanes 0–7 live in
//! one zmm register, lanes 8–15 in another, and each step does exactly what
//! [`PortableSums`] does per lane (widen, subtract, separate multiply and
//! add — no FMA), with the same scalar tail into lane 0. The results are
//! therefore bitwise equal to the portable code; only the speed differs.
//! Used when the CPU reports AVX-512F (checked once per call, cached by std),
//! otherwise [`PortableSums`] runs.

use super::lanes::{LaneSums, PortableSums, LANES};
use crate::element::Element;
use std::any::TypeId;

/// AVX-512 lane reductions with a portable fallback.
pub struct X86Sums;

#[inline(always)]
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` as `&[f32]` or `&[f64]` (the only `Element` types of this crate).
fn as_f32<T: Element>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32 (checked by TypeId), so the cast is the identity.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) })
}

fn as_f64<T: Element>(x: &[T]) -> Option<&[f64]> {
    // SAFETY: T is f64 (checked by TypeId), so the cast is the identity.
    (TypeId::of::<T>() == TypeId::of::<f64>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f64, x.len()) })
}

impl LaneSums for X86Sums {
    fn shifted<T: Element>(x: &[T], k: f64) -> [f64; LANES] {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: AVX-512F is present (checked above).
            unsafe {
                if let Some(x) = as_f32(x) {
                    return imp::shifted(x, k);
                }
                if let Some(x) = as_f64(x) {
                    return imp::shifted(x, k);
                }
            }
        }
        PortableSums::shifted(x, k)
    }

    fn shifted_sq<T: Element>(x: &[T], k: f64) -> [[f64; LANES]; 2] {
        // `(x − k) − 0` is `x − k` exactly, so the deviations loop computes it.
        Self::deviations(x, k, 0.0)
    }

    fn deviations<T: Element>(x: &[T], k: f64, m: f64) -> [[f64; LANES]; 2] {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: AVX-512F is present (checked above).
            unsafe {
                if let Some(x) = as_f32(x) {
                    return imp::deviations(x, k, m);
                }
                if let Some(x) = as_f64(x) {
                    return imp::deviations(x, k, m);
                }
            }
        }
        PortableSums::deviations(x, k, m)
    }

    fn grad<T: Element>(x: &[T], dy: &[T], mean: f64) -> [[f64; LANES]; 3] {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: AVX-512F is present (checked above).
            unsafe {
                if let (Some(x), Some(dy)) = (as_f32(x), as_f32(dy)) {
                    return imp::grad(x, dy, mean);
                }
                if let (Some(x), Some(dy)) = (as_f64(x), as_f64(dy)) {
                    return imp::grad(x, dy, mean);
                }
            }
        }
        PortableSums::grad(x, dy, mean)
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::LANES;
    use std::arch::x86_64::*;

    /// Load 8 values at `p` widened to `f64`.
    pub trait Load8: Copy {
        /// # Safety
        /// `p` must be valid for 8 reads; AVX-512F must be present.
        unsafe fn load8(p: *const Self) -> __m512d;
        fn widen(self) -> f64;
    }

    impl Load8 for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m512d {
            _mm512_cvtps_pd(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        fn widen(self) -> f64 {
            self as f64
        }
    }

    impl Load8 for f64 {
        #[inline(always)]
        unsafe fn load8(p: *const f64) -> __m512d {
            _mm512_loadu_pd(p)
        }
        #[inline(always)]
        fn widen(self) -> f64 {
            self
        }
    }

    /// # Safety
    /// AVX-512F must be present.
    #[inline(always)]
    unsafe fn store(lo: __m512d, hi: __m512d) -> [f64; LANES] {
        // SAFETY: `a` holds LANES = 16 values; the two stores write 0..8 and 8..16.
        let mut a = [0.0f64; LANES];
        _mm512_storeu_pd(a.as_mut_ptr(), lo);
        _mm512_storeu_pd(a.as_mut_ptr().add(8), hi);
        a
    }

    /// # Safety
    /// AVX-512F must be present (the caller checks it at run time).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn shifted<E: Load8>(x: &[E], k: f64) -> [f64; LANES] {
        let kv = _mm512_set1_pd(k);
        let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let body = x.len() / LANES * LANES;
        let p = x.as_ptr();
        let mut i = 0;
        // SAFETY (loads): i + 16 ≤ body ≤ x.len(), so p + i .. p + i + 16 is in bounds.
        while i < body {
            lo = _mm512_add_pd(lo, _mm512_sub_pd(E::load8(p.add(i)), kv));
            hi = _mm512_add_pd(hi, _mm512_sub_pd(E::load8(p.add(i + 8)), kv));
            i += LANES;
        }
        let mut a = store(lo, hi);
        let mut tail = 0.0;
        for v in &x[body..] {
            tail += v.widen() - k;
        }
        a[0] += tail;
        a
    }

    /// # Safety
    /// AVX-512F must be present (the caller checks it at run time).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deviations<E: Load8>(x: &[E], k: f64, m: f64) -> [[f64; LANES]; 2] {
        let (kv, mv) = (_mm512_set1_pd(k), _mm512_set1_pd(m));
        let z = _mm512_setzero_pd();
        let (mut s_lo, mut s_hi, mut q_lo, mut q_hi) = (z, z, z, z);
        let body = x.len() / LANES * LANES;
        let p = x.as_ptr();
        let mut i = 0;
        // SAFETY (loads): i + 16 ≤ body ≤ x.len(), so p + i .. p + i + 16 is in bounds.
        while i < body {
            let e_lo = _mm512_sub_pd(_mm512_sub_pd(E::load8(p.add(i)), kv), mv);
            let e_hi = _mm512_sub_pd(_mm512_sub_pd(E::load8(p.add(i + 8)), kv), mv);
            s_lo = _mm512_add_pd(s_lo, e_lo);
            s_hi = _mm512_add_pd(s_hi, e_hi);
            q_lo = _mm512_add_pd(q_lo, _mm512_mul_pd(e_lo, e_lo));
            q_hi = _mm512_add_pd(q_hi, _mm512_mul_pd(e_hi, e_hi));
            i += LANES;
        }
        let (mut s, mut q) = (store(s_lo, s_hi), store(q_lo, q_hi));
        let (mut ts, mut tq) = (0.0, 0.0);
        for v in &x[body..] {
            let e = (v.widen() - k) - m;
            ts += e;
            tq += e * e;
        }
        s[0] += ts;
        q[0] += tq;
        [s, q]
    }

    /// # Safety
    /// AVX-512F must be present (the caller checks it at run time).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn grad<E: Load8>(x: &[E], dy: &[E], mean: f64) -> [[f64; LANES]; 3] {
        let mv = _mm512_set1_pd(mean);
        let z = _mm512_setzero_pd();
        let (mut s_lo, mut s_hi, mut t_lo, mut t_hi) = (z, z, z, z);
        let (mut u_lo, mut u_hi) = (z, z);
        let n = x.len().min(dy.len());
        let body = n / LANES * LANES;
        let (px, pg) = (x.as_ptr(), dy.as_ptr());
        let mut i = 0;
        // SAFETY (loads): i + 16 ≤ body ≤ n = min(x.len(), dy.len()), so both
        // px + i .. px + i + 16 and pg + i .. pg + i + 16 are in bounds.
        while i < body {
            let g_lo = E::load8(pg.add(i));
            let g_hi = E::load8(pg.add(i + 8));
            let d_lo = _mm512_sub_pd(E::load8(px.add(i)), mv);
            let d_hi = _mm512_sub_pd(E::load8(px.add(i + 8)), mv);
            s_lo = _mm512_add_pd(s_lo, g_lo);
            s_hi = _mm512_add_pd(s_hi, g_hi);
            t_lo = _mm512_add_pd(t_lo, _mm512_mul_pd(g_lo, d_lo));
            t_hi = _mm512_add_pd(t_hi, _mm512_mul_pd(g_hi, d_hi));
            u_lo = _mm512_add_pd(u_lo, d_lo);
            u_hi = _mm512_add_pd(u_hi, d_hi);
            i += LANES;
        }
        let (mut s, mut t, mut u) = (store(s_lo, s_hi), store(t_lo, t_hi), store(u_lo, u_hi));
        let (mut ts, mut tt, mut tu) = (0.0, 0.0, 0.0);
        for (v, g) in x[body..n].iter().zip(&dy[body..n]) {
            let g = g.widen();
            let d = v.widen() - mean;
            ts += g;
            tt += g * d;
            tu += d;
        }
        s[0] += ts;
        t[0] += tt;
        u[0] += tu;
        [s, t, u]
    }
}
