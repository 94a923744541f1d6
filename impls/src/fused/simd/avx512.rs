//! AVX-512F level: 8 `f64` lanes per zmm register; `f32` is widened with
//! `vcvtps2pd` (exact) and narrowed with `vcvtpd2ps` (round to nearest, as
//! `as f32`). No FMA, so results equal the scalar twin's bit for bit.
//!
//! Half precision (with F16C): widened exactly (`bf16` by a 16-bit shift,
//! `f16` by `vcvtph2ps`), narrowed with one correct rounding: `f64` → `f32`
//! rounded *to odd* (`vcvtpd2ps` toward zero, last bit set when inexact),
//! then `f32` → half to nearest even (integer rounding for `bf16`,
//! `vcvtps2ph` for `f16`) — the same bits as the scalar twin's
//! `Element::from_f64` (Boldo & Melquiond 2008: rounding to odd in 24 bits,
//! then to nearest in ≤ 22 bits, is a correct single rounding).

use super::Simd;
use std::arch::x86_64::*;

/// `v` rounded to `f32` to odd, as `f32` bit patterns (see the module docs).
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn round_to_odd(v: __m512d) -> __m256i {
    let t = _mm512_cvt_roundpd_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    // Ordered compare: a NaN lane is "exact" and keeps its bits.
    let inexact = _mm512_cmp_pd_mask::<_CMP_NEQ_OQ>(_mm512_cvtps_pd(t), v);
    let odd = _mm512_cvtepi64_epi32(_mm512_maskz_set1_epi64(inexact, 1));
    _mm256_or_si256(_mm256_castps_si256(t), odd)
}

/// `f32` bit patterns rounded to nearest even `bf16` (a NaN stays a quiet
/// NaN with its top payload bits, as `half::bf16::from_f32`), in the low
/// 16 bits of each lane.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn bf16_bits(t: __m256i) -> __m256i {
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(t), _mm256_set1_epi32(1));
    let bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(t, bias));
    let tf = _mm256_castsi256_ps(t);
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(tf, tf));
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(t), _mm256_set1_epi32(0x40));
    _mm256_blendv_epi8(rounded, quiet, nan)
}

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
    unsafe fn load_bf16(p: *const half::bf16) -> __m512d {
        let h = _mm_loadu_si128(p.cast());
        let w = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h));
        _mm512_cvtps_pd(_mm256_castsi256_ps(w))
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: __m512d) {
        let b = bf16_bits(round_to_odd(v));
        // Values < 2^16, so the signed-saturating pack is exact; it leaves
        // lanes 0–3 and 4–7 in quadwords 0 and 2.
        let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(b, b));
        _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(packed))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> __m512d {
        _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128(p.cast())))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: __m512d) {
        let t = _mm256_castsi256_ps(round_to_odd(v));
        _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t))
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
    #[inline(always)]
    unsafe fn relu(v: __m512d) -> __m512d {
        // vmaxpd returns its second operand for a NaN or a pair of zeros.
        _mm512_max_pd(_mm512_setzero_pd(), v)
    }
    #[inline(always)]
    unsafe fn relu_grad(y: __m512d, g: __m512d) -> __m512d {
        // Not-less-or-equal, unordered: true for y > 0 and for NaN.
        let keep = _mm512_cmp_pd_mask::<_CMP_NLE_UQ>(y, _mm512_setzero_pd());
        _mm512_maskz_mov_pd(keep, g)
    }
}

super::level_kernels!(#[target_feature(enable = "avx512f,avx2,f16c")], Avx512);
