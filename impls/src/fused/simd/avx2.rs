//! AVX2 + FMA level: 4 `f64` lanes per ymm register (`vcvtps2pd`/`vcvtpd2ps`
//! for `f32`), and 8 `f32` lanes for the element-wise passes of narrow data.
//! Reductions use separate multiply and add, element-wise passes IEEE fused
//! multiply-add — the scalar twin's operations, so the bits are its bits.
//!
//! Half precision (with F16C) as in the AVX-512 level: exact widening, and
//! `f64` → `f32` to odd → half to nearest even. Without an embedded
//! rounding mode, rounding to odd is `vcvtpd2ps` (to nearest) stepped one
//! unit toward zero where it rounded away, with the last bit set when
//! inexact.

use super::Simd;
use std::arch::x86_64::*;

/// The low 32 bits of each 64-bit lane (a compare mask narrowed to `f32` lanes).
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn narrow_mask(m: __m256d) -> __m128i {
    let even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), even))
}

/// `v` rounded to `f32` to odd, as `f32` bit patterns.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn round_to_odd(v: __m256d) -> __m128i {
    let f = _mm256_cvtpd_ps(v);
    let back = _mm256_cvtps_pd(f);
    let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
    // Ordered compares: a NaN lane is left as it is.
    let away = _mm256_cmp_pd::<_CMP_GT_OQ>(_mm256_and_pd(back, abs), _mm256_and_pd(v, abs));
    let inexact = _mm256_cmp_pd::<_CMP_NEQ_OQ>(back, v);
    // `away` lanes are −1: adding them steps the magnitude one unit down.
    let t = _mm_add_epi32(_mm_castps_si128(f), narrow_mask(away));
    _mm_or_si128(t, _mm_and_si128(narrow_mask(inexact), _mm_set1_epi32(1)))
}

/// `f32` bit patterns rounded to nearest even `bf16` (NaN quieted as
/// `half::bf16::from_f32` does), in the low 16 bits of each lane.
///
/// # Safety
/// The CPU has SSE4.1.
#[inline(always)]
unsafe fn bf16_bits(t: __m128i) -> __m128i {
    let lsb = _mm_and_si128(_mm_srli_epi32::<16>(t), _mm_set1_epi32(1));
    let rounded =
        _mm_srli_epi32::<16>(_mm_add_epi32(t, _mm_add_epi32(_mm_set1_epi32(0x7fff), lsb)));
    let tf = _mm_castsi128_ps(t);
    let nan = _mm_castps_si128(_mm_cmpunord_ps(tf, tf));
    let quiet = _mm_or_si128(_mm_srli_epi32::<16>(t), _mm_set1_epi32(0x40));
    _mm_blendv_epi8(rounded, quiet, nan)
}

/// `f32` bit patterns rounded to nearest even `bf16` (as [`bf16_bits`]),
/// 8 lanes, in the low 16 bits of each lane.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
pub(super) unsafe fn bf16_bits8(t: __m256i) -> __m256i {
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(t), _mm256_set1_epi32(1));
    let bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(t, bias));
    let tf = _mm256_castsi256_ps(t);
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(tf, tf));
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(t), _mm256_set1_epi32(0x40));
    _mm256_blendv_epi8(rounded, quiet, nan)
}

/// 8 lanes of 16-bit values (each `< 2^16` in a 32-bit lane) packed into
/// 128 bits, in order.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
pub(super) unsafe fn pack16(b: __m256i) -> __m128i {
    // Values < 2^16, so the saturating pack is exact; it leaves lanes 0–3
    // and 4–7 in quadwords 0 and 2.
    let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(b, b));
    _mm256_castsi256_si128(packed)
}

/// 4 lanes of `f64` in a ymm register.
#[derive(Debug, Clone, Copy)]
pub struct Avx2;

/// Blend masks of [`Simd::blend`]: four (eight) clear lanes, then four
/// (eight) with the sign bit set, read from `W − m`.
static BLEND64: [i64; 8] = [0, 0, 0, 0, -1, -1, -1, -1];
static BLEND32: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1];

/// Row-reduction column blocks sized for the 16 ymm registers.
const SUM_BLOCK: usize = 4;
/// Backward sums of rows of 1 KiB or more ([`super::rows::LONG_ROW_BYTES`]):
/// four registers of `f64` lanes, 16 `f32` values, one whole cache line of
/// each array per row visit. Two registers (half a line) ran those sums at
/// L2's pace: a tile's rows lie 4 KiB apart in 256×1024 `f32`, all in one
/// L1 set, so a line was evicted before its second half was read (`perf
/// annotate`: the loads' `vcvtps2pd` held 60% of `rows_grad`). With four,
/// the 12 accumulators stay in registers and the shifts are read from L1 as
/// memory operands: 256×1024 `f32` backward 0.72–0.99× the time (paired
/// geometric means of five sittings; ReLU backward 0.67–0.76×), 4096×4096
/// 0.87–0.92×, `f64` within noise (AMD EPYC Zen 2 VM, AVX2, 1 thread,
/// builds alternated).
const GRAD_BLOCK: usize = 4;
/// Shorter rows keep two registers: 32×200×14×14 channels-last `f32`
/// backward took 1.07–1.15× the time with four (three sittings), and a tile
/// of short rows stays in L1 anyway.
const GRAD_BLOCK_SHORT: usize = 2;

impl Simd for Avx2 {
    const W: usize = 4;
    type E = f64;
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
    unsafe fn load_f64(p: *const f64) -> __m256d {
        _mm256_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn store_f64(p: *mut f64, v: __m256d) {
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
    unsafe fn load_bf16(p: *const half::bf16) -> __m256d {
        let w = _mm_slli_epi32::<16>(_mm_cvtepu16_epi32(_mm_loadl_epi64(p.cast())));
        _mm256_cvtps_pd(_mm_castsi128_ps(w))
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: __m256d) {
        let b = bf16_bits(round_to_odd(v));
        // Values < 2^16: the pack is exact; the low 8 bytes hold the 4 lanes.
        _mm_storel_epi64(p.cast(), _mm_packus_epi32(b, b))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> __m256d {
        _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(p.cast())))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: __m256d) {
        let t = _mm_castsi128_ps(round_to_odd(v));
        _mm_storel_epi64(p.cast(), _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(t))
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
    #[inline(always)]
    unsafe fn fma(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_fmadd_pd(a, b, c)
    }
    #[inline(always)]
    unsafe fn relu(v: __m256d) -> __m256d {
        // maxpd returns its second operand for a NaN or a pair of zeros.
        _mm256_max_pd(_mm256_setzero_pd(), v)
    }
    #[inline(always)]
    unsafe fn relu_grad(y: __m256d, g: __m256d) -> __m256d {
        // Not-less-or-equal, unordered: true for y > 0 and for NaN.
        let keep = _mm256_cmp_pd::<_CMP_NLE_UQ>(y, _mm256_setzero_pd());
        _mm256_and_pd(g, keep)
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: __m256d, b: __m256d) -> __m256d {
        // Lane `j` reads `BLEND64[4 − m + j]`: sign set (take `b`) for j >= m;
        // SAFETY: `m <= 4` (contract), so the 4 lanes read stay inside the 8.
        _mm256_blendv_pd(a, b, _mm256_loadu_pd(BLEND64.as_ptr().add(4 - m).cast()))
    }
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded contract; the level has the instructions.
        unsafe { super::nt::stream_32(d, s, n) }
    }
}

/// 8 lanes of `f32` in a ymm register.
#[derive(Debug, Clone, Copy)]
pub struct Avx2F32;

impl Simd for Avx2F32 {
    const W: usize = 8;
    type E = f32;
    type V = __m256;
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const half::bf16) -> __m256 {
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: __m256) {
        _mm_storeu_si128(p.cast(), pack16(bf16_bits8(_mm256_castps_si256(v))))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: __m256) {
        _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v))
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn relu(v: __m256) -> __m256 {
        // maxps returns its second operand for a NaN or a pair of zeros.
        _mm256_max_ps(_mm256_setzero_ps(), v)
    }
    #[inline(always)]
    unsafe fn relu_grad(y: __m256, g: __m256) -> __m256 {
        // Not-less-or-equal, unordered: true for y > 0 and for NaN.
        let keep = _mm256_cmp_ps::<_CMP_NLE_UQ>(y, _mm256_setzero_ps());
        _mm256_and_ps(g, keep)
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: __m256, b: __m256) -> __m256 {
        // Lane `j` reads `BLEND32[8 − m + j]`: sign set (take `b`) for j >= m;
        // SAFETY: `m <= 8` (contract), so the 8 lanes read stay inside the 16.
        _mm256_blendv_ps(a, b, _mm256_loadu_ps(BLEND32.as_ptr().add(8 - m).cast()))
    }
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded contract; the level has the instructions.
        unsafe { super::nt::stream_32(d, s, n) }
    }
}

super::level_kernels!(#[target_feature(enable = "avx2,fma,f16c")], Avx2, Avx2F32);

/// The level's kernels with non-temporal data stores ([`super::nt`]).
pub mod nt {
    use super::{Avx2, Avx2F32, GRAD_BLOCK, GRAD_BLOCK_SHORT, SUM_BLOCK};
    use crate::fused::simd::nt::Nt;
    crate::fused::simd::level_kernels!(
        #[target_feature(enable = "avx2,fma,f16c")],
        Nt<Avx2>,
        Nt<Avx2F32>
    );
}
