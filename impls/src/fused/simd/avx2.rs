//! AVX2 level: 4 `f64` lanes per ymm register (`vcvtps2pd`/`vcvtpd2ps` for
//! `f32`). No FMA, so results equal the scalar twin's bit for bit.

use super::Simd;
use std::arch::x86_64::*;

/// 4 lanes of `f64` in a ymm register.
#[derive(Debug, Clone, Copy)]
pub struct Avx2;

/// Row-reduction column blocks sized for the 16 ymm registers.
const SUM_BLOCK: usize = 4;
const GRAD_BLOCK: usize = 2;

impl Simd for Avx2 {
    const W: usize = 4;
    type V = __m256d;
    #[inline(always)]
    unsafe fn splat(v: f64) -> __m256d {
        _mm256_set1_pd(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> __m256d {
        _mm256_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: __m256d) {
        _mm256_storeu_pd(p, v)
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m256d {
        _mm256_cvtps_pd(_mm_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m256d) {
        _mm_storeu_ps(p, _mm256_cvtpd_ps(v))
    }
    #[inline(always)]
    unsafe fn add(a: __m256d, b: __m256d) -> __m256d {
        _mm256_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256d, b: __m256d) -> __m256d {
        _mm256_sub_pd(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256d, b: __m256d) -> __m256d {
        _mm256_mul_pd(a, b)
    }
}

super::level_kernels!(#[target_feature(enable = "avx2")], Avx2);
