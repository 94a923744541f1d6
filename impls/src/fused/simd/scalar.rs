//! The portable scalar twin: one lane per "register" (`f64`, and `f32` for
//! the element-wise passes of narrow data), the same kernels and lane order
//! as the SIMD levels, and the fallback on CPUs without AVX2 and FMA.

use super::Simd;

/// One `f64` lane.
#[derive(Debug, Clone, Copy)]
pub struct Scalar;

/// Row-reduction column block (lanes kept in registers across a row tile).
const SUM_BLOCK: usize = 8;
const GRAD_BLOCK: usize = 4;
/// The same for rows shorter than [`super::rows::LONG_ROW_BYTES`].
const GRAD_BLOCK_SHORT: usize = 4;

impl Simd for Scalar {
    const W: usize = 1;
    type E = f64;
    type V = f64;
    #[inline(always)]
    unsafe fn splat(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> f64 {
        *p
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: f64) {
        *p = v
    }
    #[inline(always)]
    unsafe fn load_f64(p: *const f64) -> f64 {
        *p
    }
    #[inline(always)]
    unsafe fn store_f64(p: *mut f64, v: f64) {
        *p = v
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> f64 {
        *p as f64
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: f64) {
        *p = v as f32
    }
    #[inline(always)]
    unsafe fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f64, b: f64) -> f64 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
    #[inline(always)]
    unsafe fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn relu(v: f64) -> f64 {
        crate::activation::relu(v)
    }
    #[inline(always)]
    unsafe fn relu_grad(y: f64, g: f64) -> f64 {
        crate::activation::relu_grad(y, g)
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: f64, b: f64) -> f64 {
        if m > 0 {
            a
        } else {
            b
        }
    }
}

/// One `f32` lane.
#[derive(Debug, Clone, Copy)]
pub struct ScalarF32;

impl Simd for ScalarF32 {
    const W: usize = 1;
    type E = f32;
    type V = f32;
    #[inline(always)]
    unsafe fn splat(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> f32 {
        *p
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: f32) {
        *p = v
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn relu(v: f32) -> f32 {
        // Exact: relu returns its argument or +0.
        crate::activation::relu(v as f64) as f32
    }
    #[inline(always)]
    unsafe fn relu_grad(y: f32, g: f32) -> f32 {
        crate::activation::relu_grad(y as f64, g as f64) as f32
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: f32, b: f32) -> f32 {
        if m > 0 {
            a
        } else {
            b
        }
    }
}

super::level_kernels!(#[inline], Scalar, ScalarF32);
