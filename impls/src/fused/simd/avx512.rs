//! AVX-512F level: 8 `f64` lanes per zmm register; `f32` is widened with
//! `vcvtps2pd` (exact) and narrowed with `vcvtpd2ps` (round to nearest, as
//! `as f32`). No FMA, so results equal the scalar twin's bit for bit.

use super::Simd;
use std::arch::x86_64::*;

/// 8 lanes of `f64` in a zmm register.
#[derive(Debug, Clone, Copy)]
pub struct Avx512;

/// Row-reduction column blocks: 8 registers per sum (64 lanes, so C = 64
/// rows are one block). The three backward sums then hold 24 accumulators
/// and the shifts are re-read from L1 where registers run out; that
/// measured faster than 4-register blocks (64×64×56×56 channels-last
/// backward f32 17.3 → 15.5 ms, 1 thread, 2-core EPYC VM).
const SUM_BLOCK: usize = 8;
const GRAD_BLOCK: usize = 8;

impl Simd for Avx512 {
    const W: usize = 8;
    type V = __m512d;
    #[inline(always)]
    unsafe fn splat(v: f64) -> __m512d {
        _mm512_set1_pd(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> __m512d {
        _mm512_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: __m512d) {
        _mm512_storeu_pd(p, v)
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m512d {
        _mm512_cvtps_pd(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m512d) {
        _mm256_storeu_ps(p, _mm512_cvtpd_ps(v))
    }
    #[inline(always)]
    unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
        _mm512_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512d, b: __m512d) -> __m512d {
        _mm512_sub_pd(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512d, b: __m512d) -> __m512d {
        _mm512_mul_pd(a, b)
    }
}

super::level_kernels!(#[target_feature(enable = "avx512f")], Avx512);
