//! AVX-512F level: 8 `f64` lanes per zmm register; `f32` is widened with
//! `vcvtps2pd` (exact) and narrowed with `vcvtpd2ps` (round to nearest, as
//! `as f32`); and 16 `f32` lanes for the element-wise passes of narrow data.
//! Reductions use separate multiply and add, element-wise passes IEEE fused
//! multiply-add — the scalar twin's operations, so the bits are its bits.
//!
//! Half precision (with F16C): widened exactly (`bf16` by a 16-bit shift,
//! `f16` by `vcvtph2ps`), narrowed with one correct rounding: `f64` → `f32`
//! rounded *to odd* (`vcvtpd2ps` toward zero, last bit set when inexact),
//! then `f32` → half to nearest even (integer rounding for `bf16`, or
//! `vcvtneps2bf16` where the CPU has AVX512-BF16, see [`bf16`];
//! `vcvtps2ph` for `f16`) — the same bits as the scalar twin's
//! `Element::from_f64` (Boldo & Melquiond 2008: rounding to odd in 24 bits,
//! then to nearest in ≤ 22 bits, is a correct single rounding).

use super::avx2::{bf16_bits8, pack16};
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
/// The same for rows shorter than [`super::rows::LONG_ROW_BYTES`].
const GRAD_BLOCK_SHORT: usize = 8;

impl Simd for Avx512 {
    const W: usize = 8;
    type E = f64;
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
    unsafe fn load_f64(p: *const f64) -> __m512d {
        _mm512_loadu_pd(p)
    }
    #[inline(always)]
    unsafe fn store_f64(p: *mut f64, v: __m512d) {
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
        _mm_storeu_si128(p.cast(), pack16(bf16_bits8(round_to_odd(v))))
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
    unsafe fn fma(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fmadd_pd(a, b, c)
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
    #[inline(always)]
    unsafe fn blend(m: usize, a: __m512d, b: __m512d) -> __m512d {
        // Mask bits set (lanes taken from `b`) from lane `m` up.
        _mm512_mask_blend_pd((0xffu32 << m) as u8, a, b)
    }
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded contract; the level has the instructions.
        unsafe { super::nt::stream_64(d, s, n) }
    }
}

/// 16 lanes of `f32` in a zmm register. With `BF16` the level also has
/// AVX512-BF16 and AVX512DQ and rounds `f32` lanes to `bf16` with one
/// `vcvtneps2bf16` (`store_bf16_native`) instead of the integer rounding.
#[derive(Debug, Clone, Copy)]
pub struct Avx512F32<const BF16: bool = false>;

/// `v` rounded to nearest even `bf16` on the bit patterns (as the scalar
/// twin's `half::bf16::from_f32` and `bf16_bits8`); NaN lanes keep their
/// top payload bits, quieted.
///
/// # Safety
/// The CPU has AVX-512F; `p` is valid for 16 writes.
#[inline(always)]
unsafe fn store_bf16_integer(p: *mut half::bf16, v: __m512) {
    let t = _mm512_castps_si512(v);
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(t), _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(t, bias));
    let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(t), _mm512_set1_epi32(0x40));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    let b = _mm512_mask_blend_epi32(nan, rounded, quiet);
    _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(b))
}

/// [`store_bf16_integer`]'s bits from one `vcvtneps2bf16` (2 µops where the
/// integer rounding takes about 10). The instruction rounds to nearest even
/// and quiets NaNs exactly as the integer rounding does, but treats
/// subnormal inputs as zero whatever MXCSR says (Intel SDM, VCVTNEPS2BF16);
/// a register with a subnormal lane (`vfpclassps` class 0x20) therefore
/// takes the integer rounding. A normal `f32` never rounds to a subnormal
/// `bf16` (same exponent range), so no other lane differs.
///
/// # Safety
/// The CPU has AVX-512F, AVX-512DQ and AVX512-BF16; `p` is valid for 16
/// writes.
#[inline(always)]
unsafe fn store_bf16_native(p: *mut half::bf16, v: __m512) {
    if _mm512_fpclass_ps_mask::<0x20>(v) == 0 {
        let h = _mm512_cvtneps_pbh(v);
        // SAFETY: `__m256bh` and `__m256i` are both 32 bytes of plain lanes.
        let bits = unsafe { std::mem::transmute::<__m256bh, __m256i>(h) };
        _mm256_storeu_si256(p.cast(), bits)
    } else {
        store_bf16_integer(p, v)
    }
}

impl<const BF16: bool> Simd for Avx512F32<BF16> {
    const W: usize = 16;
    type E = f32;
    type V = __m512;
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const half::bf16) -> __m512 {
        let w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w))
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: __m512) {
        if BF16 {
            store_bf16_native(p, v)
        } else {
            store_bf16_integer(p, v)
        }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: __m512) {
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        _mm256_storeu_si256(p.cast(), h)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn relu(v: __m512) -> __m512 {
        // vmaxps returns its second operand for a NaN or a pair of zeros.
        _mm512_max_ps(_mm512_setzero_ps(), v)
    }
    #[inline(always)]
    unsafe fn relu_grad(y: __m512, g: __m512) -> __m512 {
        // Not-less-or-equal, unordered: true for y > 0 and for NaN.
        let keep = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(y, _mm512_setzero_ps());
        _mm512_maskz_mov_ps(keep, g)
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: __m512, b: __m512) -> __m512 {
        // Mask bits set (lanes taken from `b`) from lane `m` up.
        _mm512_mask_blend_ps((0xffffu32 << m) as u16, a, b)
    }
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded contract; the level has the instructions.
        unsafe { super::nt::stream_64(d, s, n) }
    }
}

super::level_kernels!(
    #[target_feature(enable = "avx512f,avx2,fma,f16c")],
    Avx512,
    Avx512F32
);

/// The level's kernels with AVX512-BF16's rounding to `bf16`
/// (`store_bf16_native`); only the element-wise passes of `bf16` data
/// are routed here (`simd::dispatch_store!`), everything else runs the
/// level's plain kernels.
pub mod bf16 {
    use super::{Avx512, Avx512F32, GRAD_BLOCK, GRAD_BLOCK_SHORT, SUM_BLOCK};
    crate::fused::simd::level_kernels!(
        #[target_feature(enable = "avx512f,avx512dq,avx512bf16,avx2,fma,f16c")],
        Avx512,
        Avx512F32<true>
    );

    /// The same with non-temporal data stores ([`super::super::nt`]).
    pub mod nt {
        use super::super::{Avx512, Avx512F32, GRAD_BLOCK, GRAD_BLOCK_SHORT, SUM_BLOCK};
        use crate::fused::simd::nt::Nt;
        crate::fused::simd::level_kernels!(
            #[target_feature(enable = "avx512f,avx512dq,avx512bf16,avx2,fma,f16c")],
            Nt<Avx512>,
            Nt<Avx512F32<true>>
        );
    }
}

/// The level's kernels with non-temporal data stores ([`super::nt`]).
pub mod nt {
    use super::{Avx512, Avx512F32, GRAD_BLOCK, GRAD_BLOCK_SHORT, SUM_BLOCK};
    use crate::fused::simd::nt::Nt;
    crate::fused::simd::level_kernels!(
        #[target_feature(enable = "avx512f,avx2,fma,f16c")],
        Nt<Avx512>,
        Nt<Avx512F32>
    );
}
