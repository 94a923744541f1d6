//! `fused`'s inner kernels and their one runtime dispatch point.
//!
//! Every kernel is written once, generically over a vector of lanes
//! ([`Simd`]) and the element type ([`Lane`]), in [`runs`] (one contiguous
//! run, scalar coefficients) and [`rows`] (channels-last rows, per-lane
//! coefficient arrays). It is instantiated for three levels: AVX-512F
//! ([`avx512`]; with AVX512-BF16 a fourth, `avx512-bf16`, whose only
//! difference is the rounding of `f32` lanes to `bf16` outputs, see
//! [`avx512::bf16`]), AVX2 with FMA ([`avx2`]) and the portable scalar twin
//! ([`scalar`]), each with a vector of `f64` lanes (the reductions, and the
//! element-wise passes of `f64` data) and one of `f32` lanes (the
//! element-wise passes of `f32`, `bf16` and `f16` data; see [`prec`] for
//! why that keeps the accuracy). The CPU is probed once
//! ([`Level::detected`]); a [`Level`] can only be obtained for a CPU that has
//! it, which is what makes the `unsafe` calls below sound.
//!
//! Bitwise equality of the three levels: each logical lane accumulates its
//! own elements in element order with separate multiply and add (no
//! reassociation), whatever the register width — a run reduction has 16
//! logical lanes ([`RUN_LANES`]: element `i` of a run goes to lane `i mod 16`),
//! a row reduction one lane per column; element-wise passes use the same
//! correctly rounded operations (IEEE fused multiply-add included) on every
//! level. So every level computes the same bits, and the tests compare each
//! SIMD level to the scalar twin bitwise.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod grad_narrow;
pub mod nt;
pub mod per_channel;
pub mod prec;
pub mod rows;
pub mod runs;
pub mod scalar;

use crate::element::{DType, Element};
use crate::engine::scratch::Scratch;
pub use prec::{DxSlots, Real, RowCoeffs, RowsDx, RunCoeffs};
use std::sync::OnceLock;

/// Logical lanes of a run reduction (two AVX-512 or four AVX2 registers).
pub const RUN_LANES: usize = 16;
/// Per-lane accumulators of a run reduction with `K` sums.
pub type RunAcc<const K: usize> = [[f64; RUN_LANES]; K];

/// A vector of `W` lanes of type [`Simd::E`] (`f64` or `f32`) and the
/// operations the kernels use.
///
/// # Safety
/// Implementations may only be used on a CPU that has their features;
/// pointers must be valid for `W` reads or writes.
pub trait Simd: Copy {
    /// Lanes per register.
    const W: usize;
    /// One lane's type.
    type E: Real;
    /// The register type.
    type V: Copy;
    /// # Safety
    /// The CPU has the implementation's features.
    unsafe fn splat(v: Self::E) -> Self::V;
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    unsafe fn load(p: *const Self::E) -> Self::V;
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    unsafe fn store(p: *mut Self::E, v: Self::V);
    /// `W` `f64` values in the lanes (rounded to nearest for `f32` lanes;
    /// by default one at a time through a stack buffer).
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    #[inline(always)]
    unsafe fn load_f64(p: *const f64) -> Self::V {
        load_via_buffer::<Self, _>(p)
    }
    /// `W` lanes written as `f64` (exact).
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    #[inline(always)]
    unsafe fn store_f64(p: *mut f64, v: Self::V) {
        store_via_buffer::<Self, _>(p, v)
    }
    /// `W` `f32` values in the lanes (widened exactly to `f64` lanes).
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    unsafe fn load_f32(p: *const f32) -> Self::V;
    /// `W` lanes rounded to nearest `f32`.
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    unsafe fn store_f32(p: *mut f32, v: Self::V);
    /// `W` `bf16` values widened (exactly) to the lanes. By default one at a
    /// time through a stack buffer (the scalar twin's conversion).
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    #[inline(always)]
    unsafe fn load_bf16(p: *const half::bf16) -> Self::V {
        load_via_buffer::<Self, _>(p)
    }
    /// `W` lanes rounded once (to nearest, ties to even) to `bf16`.
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: Self::V) {
        store_via_buffer::<Self, _>(p, v)
    }
    /// `W` `f16` values widened (exactly) to the lanes.
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> Self::V {
        load_via_buffer::<Self, _>(p)
    }
    /// `W` lanes rounded once (to nearest, ties to even) to `f16`.
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: Self::V) {
        store_via_buffer::<Self, _>(p, v)
    }
    /// # Safety
    /// The CPU has the features.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// The CPU has the features.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// # Safety
    /// The CPU has the features.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` rounded once (IEEE fused multiply-add, as [`Real::fma`]).
    /// # Safety
    /// The CPU has the features.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// PyTorch's ReLU per lane: `v < 0 ? +0 : v`, so NaN and −0 pass
    /// unchanged (`torch.relu(-0.0)` is −0, `torch.relu(nan)` is NaN) —
    /// `maxpd(0, v)`, which returns its second operand for NaN and ±0.
    /// # Safety
    /// The CPU has the features.
    unsafe fn relu(v: Self::V) -> Self::V;
    /// PyTorch's ReLU backward per lane (`threshold_backward(g, y, 0)`):
    /// `g` where `!(y <= 0)` (also where `y` is NaN), else +0.
    /// # Safety
    /// The CPU has the features.
    unsafe fn relu_grad(y: Self::V, g: Self::V) -> Self::V;
    /// Lanes `j < m` of `a`, the rest of `b`: the coefficients of a register
    /// that straddles two contiguous runs ([`runs::sweep`]).
    /// # Safety
    /// `m <= W`; the CPU has the features.
    unsafe fn blend(m: usize, a: Self::V, b: Self::V) -> Self::V;
    /// Whether data stores bypass the caches ([`nt::Nt`]): the element-wise
    /// kernels then align their stores and fence at the end, and every
    /// kernel prefetches its inputs ahead ([`nt::prefetch`]).
    const STREAM: bool = false;
    /// `n` bytes (one register of data) from the aligned spill `s` to `d`
    /// with non-temporal stores: 16 bytes at a time by default (SSE2, part
    /// of x86-64); the levels use their widest store that fits `n` and `d`'s
    /// alignment. Sizes or destinations not a multiple of 16 are copied plainly.
    /// # Safety
    /// `s` and `d` are valid for `n` bytes, `s` is 64-byte aligned; the CPU
    /// has the features.
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: forwarded contract.
        unsafe { nt::stream_16(d, s, n) }
    }
    /// Orders this thread's streaming stores before what it does next (a
    /// no-op for ordinary stores).
    /// # Safety
    /// The CPU has the features.
    #[inline(always)]
    unsafe fn fence() {}
}

/// An element type the kernels load widened to the lanes and store rounded:
/// `fused`'s own view of the dtypes, so no kernel casts by `TypeId`.
pub trait Lane: Element {
    /// Whether the element-wise passes compute in `f32` lanes (see [`prec`]):
    /// half-precision data, for which a few `f32` roundings are far below
    /// the output's own rounding. `f32` data keep `f64` lanes (one rounding
    /// per output; see [`prec`] for the measurement that decided it).
    const NARROW: bool = Self::DTYPE.mantissa_bits() < f32::MANTISSA_DIGITS;
    /// `S::W` elements at `p`, widened.
    /// # Safety
    /// `p` is valid for `S::W` reads; the CPU has `S`'s features.
    unsafe fn load<S: Simd>(p: *const Self) -> S::V;
    /// `S::W` lanes rounded to `Self` and written at `p`.
    /// # Safety
    /// `p` is valid for `S::W` writes; the CPU has `S`'s features.
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V);
}

impl Lane for f32 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f32) -> S::V {
        S::load_f32(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut f32, v: S::V) {
        S::store_f32(p, v)
    }
}

impl Lane for f64 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const f64) -> S::V {
        S::load_f64(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut f64, v: S::V) {
        S::store_f64(p, v)
    }
}

/// The widest register of any level, in lanes (AVX-512: 16 `f32`).
const MAX_W: usize = 16;

/// `S::W` values at `p`, converted to the lanes one at a time through a
/// stack buffer (exactly, for values the lanes' type holds).
///
/// # Safety
/// `p` is valid for `S::W` reads; the CPU has `S`'s features.
#[inline(always)]
unsafe fn load_via_buffer<S: Simd, H: Element>(p: *const H) -> S::V {
    let mut buf = [S::E::default(); MAX_W];
    for (i, b) in buf[..S::W].iter_mut().enumerate() {
        // SAFETY: i < S::W, and `p` is valid for S::W reads.
        *b = S::E::from_f64(unsafe { *p.add(i) }.as_f64());
    }
    // SAFETY: `buf` holds MAX_W ≥ S::W values; the caller vouches for the CPU.
    unsafe { S::load(buf.as_ptr()) }
}

/// `S::W` lanes rounded (once, to nearest even, by [`Element::from_f64`]
/// of the exact lane value) to `H` and written at `p`.
///
/// # Safety
/// `p` is valid for `S::W` writes; the CPU has `S`'s features.
#[inline(always)]
unsafe fn store_via_buffer<S: Simd, H: Element>(p: *mut H, v: S::V) {
    let mut buf = [S::E::default(); MAX_W];
    // SAFETY: `buf` has room for MAX_W ≥ S::W values; the caller vouches for the CPU.
    unsafe { S::store(buf.as_mut_ptr(), v) };
    for (i, &b) in buf[..S::W].iter().enumerate() {
        // SAFETY: i < S::W, and `p` is valid for S::W writes.
        unsafe { *p.add(i) = H::from_f64(b.to_f64()) };
    }
}

/// `bf16` and `f16`: widening is exact and narrowing is one correct
/// rounding of the lane's value on every level, so every level stores the
/// same bits.
impl Lane for half::bf16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Self) -> S::V {
        S::load_bf16(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V) {
        S::store_bf16(p, v)
    }
}

impl Lane for half::f16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Self) -> S::V {
        S::load_f16(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V) {
        S::store_f16(p, v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX-512F plus AVX512-BF16 and AVX512DQ: [`Isa::Avx512`]'s kernels,
    /// but element-wise passes of `bf16` data round with `vcvtneps2bf16`.
    #[cfg(target_arch = "x86_64")]
    Avx512Bf16,
}

/// An instruction-set level this CPU supports. Only [`Level::detected`],
/// [`Level::available`] and [`Level::scalar`] make one, so holding a
/// `Level` proves its features are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(Isa, bool, Inputs);

/// Where an element-wise pass of a streaming [`Level`] finds its inputs,
/// which decides whether it prefetches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inputs {
    /// Past the caches: prefetched ([`nt::prefetch`]).
    Memory,
    /// In cache, brought there by the reduction just before
    /// ([`Level::inputs_cached`]): not prefetched.
    Cache,
}

impl Level {
    /// The portable scalar twin (always available).
    pub const fn scalar() -> Level {
        Level(Isa::Scalar, false, Inputs::Memory)
    }

    /// This level for passes over data far larger than the caches when
    /// `on` ([`nt`]): non-temporal data stores in the element-wise passes,
    /// and software prefetches of the inputs in every kernel. The scalar
    /// twin always stores plainly and never prefetches.
    pub fn streaming(self, on: bool) -> Level {
        Level(self.0, on && self.0 != Isa::Scalar, self.2)
    }

    /// This level for an element-wise pass writing `y` from `inputs`
    /// (read in step with it): streaming turned off where a streaming
    /// store would stall the loads that follow it ([`nt::aliased`]: the
    /// output a little past an input in page offset; up to 6× slower
    /// than ordinary stores). The values are the same bits either way.
    pub fn unaliased<T>(self, y: *const T, inputs: &[*const T]) -> Level {
        let stalls = inputs.iter().any(|&x| nt::aliased(y, x));
        self.streaming(self.1 && !stalls)
    }

    /// This level for element-wise passes whose inputs a channel task's
    /// reduction has just read into cache: when streaming, the sweeps over
    /// runs ([`runs_affine_post`], [`runs_dx`], [`runs_dx_relu`]) still
    /// stream their stores but prefetch nothing. Their prefetches only
    /// re-requested lines already in L2, beside the streaming stores:
    /// without them contiguous 64×64×56×56 `f32` (1.6 MB per channel) took
    /// 0.91–0.96× the time in train and 0.94–1.0× in backward, where the
    /// sweeps from memory (eval) need them (1.05–1.12× slower without;
    /// 2026-12-03, 2-core Xeon VM, 1 thread, 3 alternated rounds).
    pub fn inputs_cached(self) -> Level {
        Level(self.0, self.1, Inputs::Cache)
    }

    /// Whether the element-wise passes of this level prefetch their inputs.
    fn prefetches(self) -> bool {
        self.1 && self.2 == Inputs::Memory
    }

    /// Whether this level streams ([`Level::streaming`]).
    pub fn streams(self) -> bool {
        self.1
    }

    /// The best level of this CPU, probed once and cached.
    pub fn detected() -> Level {
        static BEST: OnceLock<Level> = OnceLock::new();
        *BEST.get_or_init(|| *Level::available().last().expect("scalar"))
    }

    /// Every level this CPU supports, scalar first (tests run each).
    pub fn available() -> Vec<Level> {
        #[allow(unused_mut)]
        let mut v = vec![Level::scalar()];
        #[cfg(target_arch = "x86_64")]
        {
            // F16C (half-precision conversions) and FMA came with AVX2 on
            // x86 CPUs; both are required so the kernels need no other path.
            let f16c = std::arch::is_x86_feature_detected!("f16c");
            let fma = std::arch::is_x86_feature_detected!("fma");
            if std::arch::is_x86_feature_detected!("avx2") && f16c && fma {
                v.push(Level(Isa::Avx2, false, Inputs::Memory));
            }
            if std::arch::is_x86_feature_detected!("avx512f") && f16c && fma {
                v.push(Level(Isa::Avx512, false, Inputs::Memory));
                if std::arch::is_x86_feature_detected!("avx512bf16")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    v.push(Level(Isa::Avx512Bf16, false, Inputs::Memory));
                }
            }
        }
        v
    }

    /// `"scalar"`, `"avx2"`, `"avx512"` or `"avx512-bf16"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => "avx512-bf16",
        }
    }
}

/// Instantiates the generic kernels for one level inside
/// `#[target_feature]` functions, so the `#[inline(always)]` bodies and
/// intrinsics compile with the level's instructions: `$S` has `f64` lanes
/// (reductions, element-wise passes of `f64` coefficients), `$S32` `f32`
/// lanes (element-wise passes of `f32` coefficients).
macro_rules! level_kernels {
    (#[$attr:meta], $S:ty, $S32:ty) => {
        use $crate::fused::simd::{
            grad_narrow, rows, runs, DxSlots, Lane, Post, RowCoeffs, RowsDx, RunAcc, RunCoeffs,
        };

        /// # Safety
        /// The CPU has the level's features; slice bounds as in `runs::sums`.
        #[$attr]
        pub unsafe fn run_sums<T: Lane>(x: &[T], next: Option<usize>, k: f64, acc: &mut RunAcc<2>) {
            runs::sums_any::<$S, $S32, T>(x, next, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_sums`.
        #[$attr]
        pub unsafe fn runs_sums<T: Lane>(
            x: &[T],
            s: usize,
            next: Option<usize>,
            k: &[f64],
            acc: &mut [RunAcc<2>],
        ) {
            runs::sums_runs::<$S, $S32, T>(x, s, next, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_grad`.
        #[$attr]
        pub unsafe fn runs_grad<T: Lane>(
            (x, dy, yo): (&[T], &[T], Option<&[T]>),
            s: usize,
            next: Option<usize>,
            k: &[f64],
            acc: &mut [RunAcc<3>],
        ) {
            match yo {
                Some(yo) => runs::grad_runs::<$S, T, true>([x, dy, yo], s, next, k, acc),
                None => runs::grad_runs::<$S, T, false>([x, dy, dy], s, next, k, acc),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_grad_narrow`.
        #[$attr]
        pub unsafe fn runs_grad_narrow<T: Lane>(
            (x, dy, yo): (&[T], &[T], Option<&[T]>),
            s: usize,
            next: Option<usize>,
            shifts: (&[f64], &[f32]),
            acc: &mut [grad_narrow::NarrowGrad],
        ) {
            use grad_narrow::grad_runs as f;
            match yo {
                Some(yo) => f::<$S, $S32, T, true>([x, dy, yo], s, next, shifts, acc),
                None => f::<$S, $S32, T, false>([x, dy, dy], s, next, shifts, acc),
            }
        }
        /// # Safety
        /// The CPU has the level's features; `x.len() == dy.len()`.
        #[$attr]
        pub unsafe fn run_grad<T: Lane>(
            x: &[T],
            dy: &[T],
            next: Option<usize>,
            k: f64,
            acc: &mut RunAcc<3>,
        ) {
            runs::grad::<$S, T, false>(x, dy, dy, next, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; `x`, `dy`, `yo` equally long.
        #[$attr]
        pub unsafe fn run_grad_relu<T: Lane>(
            x: &[T],
            dy: &[T],
            yo: &[T],
            next: Option<usize>,
            k: f64,
            acc: &mut RunAcc<3>,
        ) {
            runs::grad::<$S, T, true>(x, dy, yo, next, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; `x`, `r`, `y` equally long.
        #[$attr]
        pub unsafe fn run_affine_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            c: RunCoeffs<3>,
            post: Post,
        ) {
            match c {
                RunCoeffs::F64(c) => runs::affine_post::<$S, T>(x, r, y, c, post),
                RunCoeffs::F32(c) => runs::affine_post::<$S32, T>(x, r, y, c, post),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_affine_post`.
        #[$attr]
        pub unsafe fn runs_affine_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            s: usize,
            (c, c0): (&[RunCoeffs<3>], usize),
            (post, pf): (Post, bool),
        ) {
            runs::affine_runs_post::<$S, $S32, T>((x, r, y), s, (c, c0), (post, pf))
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_dx`.
        #[$attr]
        pub unsafe fn runs_dx<T: Lane>(
            (x, dy, dx): (&[T], &[T], &mut [T]),
            s: usize,
            (c, c0): (&[RunCoeffs<4>], usize),
            pf: bool,
        ) {
            let null = std::ptr::null_mut();
            runs::dx_runs::<$S, $S32, T, false>([x, dy, dy], (dx, null), s, (c, c0), (false, pf))
        }
        /// # Safety
        /// The CPU has the level's features; `sd`, `inv` as long as `var`.
        #[$attr]
        pub unsafe fn std_inv(var: &[f64], eps: f64, sd: &mut [f64], inv: &mut [f64]) {
            $crate::fused::simd::std_inv_body(var, eps, sd, inv)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::train_stats`.
        #[$attr]
        pub unsafe fn train_stats(
            s: &$crate::fused::simd::per_channel::TrainSums<'_>,
            out: [&mut [f64]; 5],
        ) -> bool {
            $crate::fused::simd::per_channel::train_stats_body(s, out)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::grad_coeffs`.
        #[$attr]
        pub unsafe fn grad_coeffs(
            s: &$crate::fused::simd::per_channel::GradSums<'_>,
            out: [&mut [f64]; 5],
        ) {
            $crate::fused::simd::per_channel::grad_body(s, out)
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_grad_dx`.
        #[$attr]
        pub unsafe fn runs_grad_dx<T: Lane>(
            red: [&[T]; 2],
            sums: (&[f64], &mut [RunAcc<3>]),
            v: [&[T]; 2],
            out: &mut [T],
            cs: (&[[f64; 4]], usize),
        ) {
            runs::grad_dx_runs::<$S, T>(red, sums, v, out, cs)
        }
        /// # Safety
        /// The CPU has the level's features; equal lengths.
        #[$attr]
        pub unsafe fn run_dx<T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: RunCoeffs<4>) {
            match c {
                RunCoeffs::F64(c) => runs::dx::<$S, T>(x, dy, dx, c),
                RunCoeffs::F32(c) => runs::dx::<$S32, T>(x, dy, dx, c),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as `runs::dx_relu` (`dres`
        /// valid for `x.len()` writes when not null).
        #[$attr]
        pub unsafe fn run_dx_relu<T: Lane>(
            v: [&[T]; 3],
            dx: &mut [T],
            dres: *mut T,
            c: RunCoeffs<4>,
            fixed: bool,
        ) {
            match c {
                RunCoeffs::F64(c) => runs::dx_relu_any::<$S, T>(v, dx, dres, c, fixed),
                RunCoeffs::F32(c) => runs::dx_relu_any::<$S32, T>(v, dx, dres, c, fixed),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as checked in `simd::runs_dx_relu`
        /// (`dres` valid for `x.len()` writes when not null).
        #[$attr]
        pub unsafe fn runs_dx_relu<T: Lane>(
            [x, dy, yo]: [&[T]; 3],
            dx: &mut [T],
            dres: *mut T,
            s: usize,
            (c, c0): (&[RunCoeffs<4>], usize),
            (fixed, pf): (bool, bool),
        ) {
            runs::dx_runs::<$S, $S32, T, true>([x, dy, yo], (dx, dres), s, (c, c0), (fixed, pf))
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_sums`.
        #[$attr]
        pub unsafe fn rows_sums<T: Lane>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
            rows::sums::<$S, T, { SUM_BLOCK }>(x, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_sums_narrow`.
        #[$attr]
        pub unsafe fn rows_sums_narrow<T: Lane>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
            rows::sums_narrow::<$S, $S32, T, { SUM_BLOCK / 2 }>(x, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_grad`.
        #[$attr]
        pub unsafe fn rows_grad<T: Lane>(x: &[T], dy: &[T], k: &[f64], s: [&mut [f64]; 3]) {
            rows::grad::<$S, T, { GRAD_BLOCK }, { GRAD_BLOCK_SHORT }, false>(x, dy, dy, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_grad_relu`.
        #[$attr]
        pub unsafe fn rows_grad_relu<T: Lane>(
            x: &[T],
            dy: &[T],
            yo: &[T],
            k: &[f64],
            s: [&mut [f64]; 3],
        ) {
            rows::grad::<$S, T, { GRAD_BLOCK }, { GRAD_BLOCK_SHORT }, true>(x, dy, yo, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_affine_post`.
        #[$attr]
        pub unsafe fn rows_affine_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            c: &RowCoeffs<3>,
            post: Post,
        ) {
            match c {
                RowCoeffs::F64(c) => {
                    rows::affine_post::<$S, T, false>(x, r, y, &[&c[0], &c[1], &c[2]], post)
                }
                RowCoeffs::F32(c) => {
                    rows::affine_post::<$S32, T, false>(x, r, y, &[&c[0], &c[1], &c[2]], post)
                }
            }
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_scale_post`.
        #[$attr]
        pub unsafe fn rows_scale_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            c: &RowCoeffs<2>,
            post: Post,
        ) {
            match c {
                RowCoeffs::F64(c) => {
                    rows::affine_post::<$S, T, true>(x, r, y, &[&c[0], &c[1]], post)
                }
                RowCoeffs::F32(c) => {
                    rows::affine_post::<$S32, T, true>(x, r, y, &[&c[0], &c[1]], post)
                }
            }
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_dx`.
        #[$attr]
        pub unsafe fn rows_dx<T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: &RowsDx) {
            match c.slots() {
                DxSlots::F64(c, shift) => rows::dx::<$S, T>(x, dy, dx, c, shift),
                DxSlots::F32(c, shift) => rows::dx::<$S32, T>(x, dy, dx, c, shift),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as `rows::dx_relu` (`dres`
        /// valid for `x.len()` writes when not null).
        #[$attr]
        pub unsafe fn rows_dx_relu<T: Lane>(
            v: [&[T]; 3],
            dx: &mut [T],
            dres: *mut T,
            c: &RowsDx,
            fixed: bool,
        ) {
            match c.slots() {
                DxSlots::F64(c, shift) => {
                    rows::dx_relu_any::<$S, T>(v, dx, dres, c, (fixed, shift))
                }
                DxSlots::F32(c, shift) => {
                    rows::dx_relu_any::<$S32, T>(v, dx, dres, c, (fixed, shift))
                }
            }
        }
    };
}
pub(crate) use level_kernels;

/// [`dispatch`] for the kernels that store element-wise outputs of element
/// type `$T`: on the `avx512-bf16` level, `bf16` outputs go to
/// [`avx512::bf16`]'s kernels (native rounding); every other type and level
/// as [`dispatch`]. The guard is a constant per instantiation, so only the
/// `bf16` instantiations of [`avx512::bf16`] are built.
macro_rules! dispatch_store {
    ($T:ty, $lv:expr, $f:ident ( $($arg:expr),* )) => {
        match ($lv.0, $lv.1) {
            // SAFETY: `Isa::Avx512Bf16` exists only when AVX-512F,
            // AVX512-BF16 and AVX512DQ were detected (`Level::available`),
            // the features `avx512::bf16`'s kernels enable.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, false) if <$T as Element>::DTYPE == DType::BF16 => unsafe {
                avx512::bf16::$f($($arg),*)
            },
            // SAFETY: as above; the streaming variant needs no other feature.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Bf16, true) if <$T as Element>::DTYPE == DType::BF16 => unsafe {
                avx512::bf16::nt::$f($($arg),*)
            },
            _ => dispatch!($lv, $f($($arg),*)),
        }
    };
}

/// Calls `$f` of the module of `$lv`'s level; the scalar twin otherwise.
/// `avx512-bf16` runs the plain AVX-512 kernels here (see [`dispatch_store`]).
macro_rules! dispatch {
    ($lv:expr, $f:ident ( $($arg:expr),* )) => {
        match ($lv.0, $lv.1) {
            // SAFETY: a `Level` with `Isa::Avx512` or `Isa::Avx512Bf16` exists
            // only when `is_x86_feature_detected!("avx512f")` was true
            // (`Level::available`).
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512 | Isa::Avx512Bf16, false) => unsafe { avx512::$f($($arg),*) },
            // SAFETY: as above; the streaming variant needs no other feature.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512 | Isa::Avx512Bf16, true) => unsafe { avx512::nt::$f($($arg),*) },
            // SAFETY: `Isa::Avx2` exists only when AVX2 and FMA were detected.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, false) => unsafe { avx2::$f($($arg),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, true) => unsafe { avx2::nt::$f($($arg),*) },
            // SAFETY: the scalar twin needs no CPU feature (never streaming).
            (Isa::Scalar, _) => unsafe { scalar::$f($($arg),*) },
        }
    };
}

/// Per-lane `Σd` and `Σd²`, `d = x − k`, of one run added into `acc`
/// (element `i` into lane `i mod 16`). `next`: elements from the run's start
/// to the run the caller reduces next, where a streaming level's prefetch
/// continues ([`runs::prefetch_inputs`]; no effect on the values).
pub fn run_sums<T: Lane>(lv: Level, x: &[T], next: Option<usize>, k: f64, acc: &mut RunAcc<2>) {
    dispatch!(lv, run_sums(x, next, k, acc))
}

/// Per-lane `Σdy`, `Σdy·(x − k)`, `Σ(x − k)` of one run added into `acc`
/// (`next` as in [`run_sums`]).
pub fn run_grad<T: Lane>(
    lv: Level,
    x: &[T],
    dy: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<3>,
) {
    assert_eq!(x.len(), dy.len(), "run_grad: x and dy lengths");
    dispatch!(lv, run_grad(x, dy, next, k, acc))
}

/// [`run_sums`] of `k.len()` consecutive runs of `s` values in one call
/// (one batch row of a block of channels, contiguous layout): run `i` with
/// shift `k[i]` into `acc[i]`; `next` counted from the last run's start. A
/// call per run cost about as much set-up as a 7×7 run's arithmetic
/// (see [`runs_affine_post`]).
pub fn runs_sums<T: Lane>(
    lv: Level,
    x: &[T],
    s: usize,
    next: Option<usize>,
    k: &[f64],
    acc: &mut [RunAcc<2>],
) {
    let ok = s > 0 && x.len() == k.len() * s && acc.len() == k.len();
    assert!(ok, "runs_sums: lengths");
    dispatch!(lv, runs_sums(x, s, next, k, acc))
}

/// [`run_grad`] (with `yo`: [`run_grad_relu`]) of `k.len()` consecutive
/// runs of `s` values in one call, as [`runs_sums`].
pub fn runs_grad<T: Lane>(
    lv: Level,
    (x, dy, yo): (&[T], &[T], Option<&[T]>),
    s: usize,
    next: Option<usize>,
    k: &[f64],
    acc: &mut [RunAcc<3>],
) {
    let ok = s > 0 && x.len() == k.len() * s && acc.len() == k.len();
    let same = x.len() == dy.len() && yo.is_none_or(|yo| yo.len() == x.len());
    assert!(ok && same, "runs_grad: lengths");
    dispatch!(lv, runs_grad((x, dy, yo), s, next, k, acc))
}

/// [`runs_grad`] for half-precision data in `f32` blocks
/// ([`grad_narrow::grad`]): per lane the six sums `Σe`, `Σe·d`, `Σd`,
/// `Σe²`, `Σd²`, `Σmax(e, 0)` of run `i`, `e = dy − d0[i]` (`dy` masked by `yo` when
/// given), `d = x − k[i]`, added into `acc[i]`; `next` as in
/// [`runs_sums`]. `d0` must be values of `T` (exact in `f32`).
pub fn runs_grad_narrow<T: Lane>(
    lv: Level,
    (x, dy, yo): (&[T], &[T], Option<&[T]>),
    s: usize,
    next: Option<usize>,
    (k, d0): (&[f64], &[f32]),
    acc: &mut [grad_narrow::NarrowGrad],
) {
    let runs = k.len();
    let ok = s > 0 && x.len() == runs * s && acc.len() == runs && d0.len() == runs;
    let same = x.len() == dy.len() && yo.is_none_or(|yo| yo.len() == x.len());
    assert!(ok && same, "runs_grad_narrow: lengths");
    dispatch!(lv, runs_grad_narrow((x, dy, yo), s, next, (k, d0), acc))
}

/// [`run_dx`] over consecutive runs of `s` values in one call: run `i`
/// uses `c[(c0 + i) mod c.len()]` (one [`RunCoeffs::dx`] per channel, built
/// once per operation), as [`runs_affine_post`].
pub fn runs_dx<T: Lane>(
    lv: Level,
    (x, dy, dx): (&[T], &[T], &mut [T]),
    s: usize,
    (c, c0): (&[RunCoeffs<4>], usize),
) {
    let same = x.len() == dy.len() && x.len() == dx.len();
    assert!(
        same && s > 0 && x.len().is_multiple_of(s),
        "runs_dx: lengths"
    );
    assert!(c0 < c.len(), "runs_dx: coefficients");
    let lv = lv.unaliased(dx.as_ptr(), &[x.as_ptr(), dy.as_ptr()]);
    let pf = lv.prefetches();
    dispatch_store!(T, lv, runs_dx((x, dy, dx), s, (c, c0), pf))
}

/// [`runs_grad`] of one stretch of `k.len()` runs of `s` values (`red =
/// [x, dy]`, into `acc`) and [`runs_dx`] of another stretch of as many runs
/// (`v = [x, dy]`, run `i` with `c[i]`, into `out`) in one lock-step pass,
/// with the bits of the two separate calls: backward's channel tasks
/// pipelined, one task's `dx` (arithmetic on data in cache) beside the next
/// task's sums (loads from memory). `f64` lanes only (`c` of
/// [`RunCoeffs::dx`] for `f32` or `f64` data); the level must not stream.
pub fn runs_grad_dx<T: Lane>(
    lv: Level,
    red: [&[T]; 2],
    (k, acc): (&[f64], &mut [RunAcc<3>]),
    v: [&[T]; 2],
    out: &mut [T],
    (c, s): (&[[f64; 4]], usize),
) {
    let len = k.len() * s;
    let ok = s > 0 && acc.len() == k.len() && c.len() == k.len() && out.len() == len;
    let same = red.iter().chain(&v).all(|a| a.len() == len);
    assert!(ok && same, "runs_grad_dx: lengths");
    assert!(!lv.1, "runs_grad_dx: a streaming level");
    dispatch_store!(T, lv, runs_grad_dx(red, (k, acc), v, out, (c, s)))
}

/// `y = (x − k)·a + b` over one run (in `T`'s element-wise precision,
/// [`prec`]).
pub fn run_affine<T: Lane>(lv: Level, x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
    run_affine_post(lv, x, x, y, k, a, b, Post::Plain)
}

/// `dx = c₀·dy + c₁·(x − k) + c₂` over one run.
pub fn run_dx<T: Lane>(lv: Level, x: &[T], dy: &[T], dx: &mut [T], k: f64, c: [f64; 3]) {
    assert!(
        x.len() == dy.len() && x.len() == dx.len(),
        "run_dx: lengths"
    );
    let lv = lv.unaliased(dx.as_ptr(), &[x.as_ptr(), dy.as_ptr()]);
    let c = RunCoeffs::dx::<T>([k, c[0], c[1], c[2]]);
    dispatch_store!(T, lv, run_dx(x, dy, dx, c))
}

/// Rows of `L = k.len()` lanes (the last row may be shorter): per-lane
/// `Σd`, `Σd²`, `d = x − k[l]`, added into `s` (each of length `L`).
pub fn rows_sums<T: Lane>(lv: Level, x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
    assert!(
        !k.is_empty() && s.iter().all(|v| v.len() == k.len()),
        "rows_sums: lengths"
    );
    dispatch!(lv, rows_sums(x, k, s))
}

/// [`rows_sums`] of half-precision data in `f32` blocks of rows
/// ([`rows::sums_narrow`]; bounded by [`runs::NARROW_SUM_BITS`]), for
/// channels of at least [`NARROW_MIN_ROWS`] values.
pub fn rows_sums_narrow<T: Lane>(lv: Level, x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
    assert!(
        !k.is_empty() && s.iter().all(|v| v.len() == k.len()),
        "rows_sums_narrow: lengths"
    );
    dispatch!(lv, rows_sums_narrow(x, k, s))
}

/// Fewest values per channel for which channels-last half data sum their
/// statistics in `f32` blocks ([`rows_sums_narrow`]): their stricter
/// cancellation limit ([`crate::fused::coeffs::max_growth`] of 19 bits) sends
/// a channel to a second pass once its shift lies a standard deviation
/// from its mean, and one such channel re-reads every row; from 1024
/// values the shift is the nearest of at least 16 prefix values to their
/// mean ([`crate::fused::reduce::shifts`]), well within that.
pub const NARROW_MIN_ROWS: usize = 1024;

/// Whether channels-last statistics of `T` over channels of `n` values sum
/// in `f32` blocks ([`rows_sums_narrow`]): half data, `n >=`
/// [`NARROW_MIN_ROWS`].
pub fn narrow_rows<T: Lane>(n: usize) -> bool {
    T::NARROW && n >= NARROW_MIN_ROWS
}

/// Per-lane `Σdy`, `Σdy·(x − k[l])`, `Σ(x − k[l])` over rows of `L = k.len()`.
pub fn rows_grad<T: Lane>(lv: Level, x: &[T], dy: &[T], k: &[f64], s: [&mut [f64]; 3]) {
    let ok = !k.is_empty() && x.len() == dy.len() && s.iter().all(|v| v.len() == k.len());
    assert!(ok, "rows_grad: lengths");
    dispatch!(lv, rows_grad(x, dy, k, s))
}

/// `y = (x − k[l])·a[l] + b[l]` over rows ([`RowCoeffs::affine`]).
pub fn rows_affine<T: Lane>(lv: Level, x: &[T], y: &mut [T], c: &RowCoeffs<3>) {
    rows_affine_post(lv, x, x, y, c, Post::Plain)
}

/// `y = x·a[l] + b[l]` over rows ([`RowCoeffs::scale`]).
pub fn rows_scale<T: Lane>(lv: Level, x: &[T], y: &mut [T], c: &RowCoeffs<2>) {
    rows_scale_post(lv, x, x, y, c, Post::Plain)
}

/// `dx = kd[l]·dy + kx[l]·(x − k[l]) + kc[l]` over rows ([`RowsDx`]; a
/// folded shift: `kd[l]·dy + kx[l]·x + kc[l]`).
pub fn rows_dx<T: Lane>(lv: Level, x: &[T], dy: &[T], dx: &mut [T], c: &RowsDx) {
    let same = x.len() == dy.len() && x.len() == dx.len();
    assert!(same && c.lanes() > 0, "rows_dx: lengths");
    let lv = lv.unaliased(dx.as_ptr(), &[x.as_ptr(), dy.as_ptr()]);
    dispatch_store!(T, lv, rows_dx(x, dy, dx, c))
}

/// What an element-wise forward pass applies after the affine map, inside
/// the same pass (no extra read or write of the tensor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// Plain batch norm.
    Plain,
    /// PyTorch's ReLU ([`Simd::relu`]).
    Relu,
    /// Add the residual, then ReLU.
    AddRelu,
}

impl Post {
    /// Tensor-sized arrays a normalize pass with this epilogue reads and
    /// writes: `x` and `y`, and the residual for [`Post::AddRelu`] (the
    /// footprint [`super::plan::stream`] compares with the L3).
    pub fn arrays(self) -> usize {
        if self == Post::AddRelu {
            3
        } else {
            2
        }
    }
}

/// `y = post((x − k)·a + b)` over one run; `r` (the residual, as long as
/// `x`) is read only for [`Post::AddRelu`].
#[allow(clippy::too_many_arguments)]
pub fn run_affine_post<T: Lane>(
    lv: Level,
    x: &[T],
    r: &[T],
    y: &mut [T],
    k: f64,
    a: f64,
    b: f64,
    post: Post,
) {
    assert!(
        x.len() == y.len() && x.len() == r.len(),
        "run_affine_post: lengths"
    );
    let lv = lv.unaliased(y.as_ptr(), &[x.as_ptr(), r.as_ptr()]);
    let c = RunCoeffs::affine::<T>([k, a, b]);
    dispatch_store!(T, lv, run_affine_post(x, r, y, c, post))
}

/// [`run_affine_post`] over consecutive runs of `s` values in one call:
/// run `i` uses `c[(c0 + i) mod c.len()]` (one [`RunCoeffs`] per channel,
/// built once per operation). A call per run cost about 20 ns of set-up
/// (coefficient narrowing, dispatch, a call across the target-feature
/// boundary) — as much as a 7×7 run's arithmetic in `f16`/`bf16`.
pub fn runs_affine_post<T: Lane>(
    lv: Level,
    (x, r, y): (&[T], &[T], &mut [T]),
    s: usize,
    (c, c0): (&[RunCoeffs<3>], usize),
    post: Post,
) {
    assert!(
        x.len() == y.len() && x.len() == r.len() && s > 0 && x.len().is_multiple_of(s),
        "runs_affine_post: lengths"
    );
    assert!(c0 < c.len(), "runs_affine_post: coefficients");
    let lv = lv.unaliased(y.as_ptr(), &[x.as_ptr(), r.as_ptr()]);
    let pf = lv.prefetches();
    dispatch_store!(T, lv, runs_affine_post(x, r, y, s, (c, c0), (post, pf)))
}

/// [`run_grad`] of `dy` masked by the ReLU output `yo` (same read).
pub fn run_grad_relu<T: Lane>(
    lv: Level,
    x: &[T],
    dy: &[T],
    yo: &[T],
    next: Option<usize>,
    k: f64,
    acc: &mut RunAcc<3>,
) {
    assert!(
        x.len() == dy.len() && x.len() == yo.len(),
        "run_grad_relu: lengths"
    );
    dispatch!(lv, run_grad_relu(x, dy, yo, next, k, acc))
}

/// The ReLU backward's one element-wise pass over a run: `g = relu_grad(yo, dy)`,
/// `dx = c₀·g + c₁·(x − k) + c₂` (`fixed`: `c₀·g`), and `g` into `dres` when given.
#[allow(clippy::too_many_arguments)]
pub fn run_dx_relu<T: Lane>(
    lv: Level,
    v: [&[T]; 3],
    dx: &mut [T],
    dres: Option<&mut [T]>,
    k: f64,
    c: [f64; 3],
    fixed: bool,
) {
    let [x, dy, yo] = v;
    let n = x.len();
    let ok = dy.len() == n && yo.len() == n && dx.len() == n;
    assert!(
        ok && dres.as_ref().is_none_or(|d| d.len() == n),
        "run_dx_relu: lengths"
    );
    // The residual's gradient is not aligned with `dx`: plain stores for both.
    let lv = lv.streaming(lv.1 && dres.is_none());
    let lv = lv.unaliased(dx.as_ptr(), &v.map(<[T]>::as_ptr));
    let dres = dres.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr());
    let c = RunCoeffs::dx::<T>([k, c[0], c[1], c[2]]);
    dispatch_store!(T, lv, run_dx_relu(v, dx, dres, c, fixed))
}

/// [`run_dx_relu`] over consecutive runs of `s` values (`v = [x, dy, yo]`),
/// run `i` with the coefficients of channel `(c0 + i) mod c.len()`
/// ([`RunCoeffs::dx`]): the ReLU backward's address-ordered `dx` pass in one
/// call per task, as [`runs_dx`] is the plain one's (a call per 7×7 run
/// costs about as much as the run's arithmetic).
pub fn runs_dx_relu<T: Lane>(
    lv: Level,
    v: [&[T]; 3],
    dx: &mut [T],
    dres: Option<&mut [T]>,
    s: usize,
    (c, c0): (&[RunCoeffs<4>], usize),
    fixed: bool,
) {
    let n = dx.len();
    let same = v.iter().all(|a| a.len() == n) && dres.as_ref().is_none_or(|d| d.len() == n);
    assert!(
        same && s > 0 && n.is_multiple_of(s),
        "runs_dx_relu: lengths"
    );
    assert!(c0 < c.len(), "runs_dx_relu: coefficients");
    // The residual's gradient is not aligned with `dx`: plain stores for both.
    let lv = lv.streaming(lv.1 && dres.is_none());
    let lv = lv.unaliased(dx.as_ptr(), &v.map(<[T]>::as_ptr));
    let dres = dres.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr());
    let pf = lv.prefetches();
    dispatch_store!(T, lv, runs_dx_relu(v, dx, dres, s, (c, c0), (fixed, pf)))
}

/// Channels-last `y = post((x − k[l])·a[l] + b[l])` ([`RowCoeffs::affine`]).
pub fn rows_affine_post<T: Lane>(
    lv: Level,
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: &RowCoeffs<3>,
    post: Post,
) {
    let ok = c.lanes() > 0 && x.len() == y.len() && x.len() == r.len();
    assert!(ok, "rows_affine_post: lengths");
    let lv = lv.unaliased(y.as_ptr(), &[x.as_ptr(), r.as_ptr()]);
    dispatch_store!(T, lv, rows_affine_post(x, r, y, c, post))
}

/// Channels-last `y = post(x·a[l] + b[l])` ([`RowCoeffs::scale`]).
pub fn rows_scale_post<T: Lane>(
    lv: Level,
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: &RowCoeffs<2>,
    post: Post,
) {
    let ok = c.lanes() > 0 && x.len() == y.len() && x.len() == r.len();
    assert!(ok, "rows_scale_post: lengths");
    let lv = lv.unaliased(y.as_ptr(), &[x.as_ptr(), r.as_ptr()]);
    dispatch_store!(T, lv, rows_scale_post(x, r, y, c, post))
}

/// [`rows_grad`] of `dy` masked by the ReLU output `yo` (same read).
pub fn rows_grad_relu<T: Lane>(
    lv: Level,
    x: &[T],
    dy: &[T],
    yo: &[T],
    k: &[f64],
    s: [&mut [f64]; 3],
) {
    let ok = !k.is_empty() && x.len() == dy.len() && x.len() == yo.len();
    assert!(
        ok && s.iter().all(|v| v.len() == k.len()),
        "rows_grad_relu: lengths"
    );
    dispatch!(lv, rows_grad_relu(x, dy, yo, k, s))
}

/// Channels-last [`run_dx_relu`] ([`RowsDx`]).
pub fn rows_dx_relu<T: Lane>(
    lv: Level,
    v: [&[T]; 3],
    dx: &mut [T],
    dres: Option<&mut [T]>,
    c: &RowsDx,
    fixed: bool,
) {
    let n = v[0].len();
    let ok = v.iter().all(|s| s.len() == n) && dx.len() == n && c.lanes() > 0;
    assert!(
        ok && dres.as_ref().is_none_or(|d| d.len() == n),
        "rows_dx_relu: lengths"
    );
    // The residual's gradient is not aligned with `dx`: plain stores for both.
    let lv = lv.streaming(lv.1 && dres.is_none());
    let lv = lv.unaliased(dx.as_ptr(), &v.map(<[T]>::as_ptr));
    let dres = dres.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr());
    dispatch_store!(T, lv, rows_dx_relu(v, dx, dres, c, fixed))
}

/// Per channel `sd = √(var + ε)` and `inv = 1/sd` ([`crate::problem::inv_std`]'s
/// bits: IEEE square root and division are exact-rounded on every level),
/// vectorized at the level's width, in reused buffers ([`Scratch`]). One at
/// a time, the square roots and divisions of 1024 channels (which share
/// one unit) took longer than the (N, C) 32×1024 kernels' own passes
/// (`perf`, 2-core Xeon VM). Used by eval, train and backward.
pub fn std_inv(lv: Level, var: &[f64], eps: f64) -> (Scratch, Scratch) {
    let (mut sd, mut inv) = (Scratch::zeroed(var.len()), Scratch::zeroed(var.len()));
    dispatch!(lv, std_inv(var, eps, &mut sd, &mut inv));
    (sd, inv)
}

/// Train's per-channel statistics and normalize coefficients from the
/// one-read sums, at the level's width ([`per_channel::train_stats_body`]):
/// `Some([a, c, sd])` with the batch mean and biased variance written to
/// `mean`, `var`; `None` when a channel needs a second pass.
pub fn train_stats(
    lv: Level,
    s: &per_channel::TrainSums<'_>,
    mean: &mut [f64],
    var: &mut [f64],
) -> Option<[Scratch; 3]> {
    let c = s.shift.len();
    let same = [s.sums[0], s.sums[1], s.weight, s.bias]
        .iter()
        .all(|v| v.len() == c);
    assert!(
        same && mean.len() == c && var.len() == c,
        "train_stats: lengths"
    );
    let mut out: [Scratch; 3] = std::array::from_fn(|_| Scratch::zeroed(c));
    let [a, cc, sd] = out.each_mut().map(|v| &mut v[..]);
    let ok = dispatch!(lv, train_stats(s, [a, cc, sd, mean, var]));
    ok.then_some(out)
}

/// Backward's per-channel coefficients and parameter gradients at the
/// level's width ([`per_channel::grad_body`]): `[kd, kx, kc]`, with the
/// weight and bias gradients written to `gw`, `gb`.
pub fn grad_coeffs(
    lv: Level,
    s: &per_channel::GradSums<'_>,
    gw: &mut [f64],
    gb: &mut [f64],
) -> [Scratch; 3] {
    let c = s.inv.len();
    let same = [s.sums[0], s.sums[1], s.sums[2], s.weight]
        .iter()
        .all(|v| v.len() == c);
    assert!(
        same && gw.len() == c && gb.len() == c,
        "grad_coeffs: lengths"
    );
    let mut out: [Scratch; 3] = std::array::from_fn(|_| Scratch::zeroed(c));
    let [kd, kx, kc] = out.each_mut().map(|v| &mut v[..]);
    dispatch!(lv, grad_coeffs(s, [kd, kx, kc, gw, gb]));
    out
}

/// [`std_inv`]'s loop, written to vectorize.
#[inline(always)]
pub fn std_inv_body(var: &[f64], eps: f64, sd: &mut [f64], inv: &mut [f64]) {
    for ((s, i), v) in sd.iter_mut().zip(inv.iter_mut()).zip(var) {
        let r = (v + eps).sqrt();
        *s = r;
        *i = 1.0 / r;
    }
}

/// Fixed-order pairwise sum of run lanes (the same for every level).
pub fn hsum(a: &[f64; RUN_LANES]) -> f64 {
    let mut h = [0.0; 8];
    for (i, v) in h.iter_mut().enumerate() {
        *v = a[i] + a[i + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}
