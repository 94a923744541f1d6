//! `fused`'s inner kernels and their one runtime dispatch point.
//!
//! Every kernel is written once, generically over a vector of `f64` lanes
//! ([`Simd`]) and the element type ([`Lane`]), in [`runs`] (one contiguous
//! run, scalar coefficients) and [`rows`] (channels-last rows, per-lane
//! coefficient arrays). It is instantiated three times: AVX-512F
//! ([`avx512`], 8 lanes per register), AVX2 ([`avx2`], 4 lanes) and the
//! portable scalar twin ([`scalar`], 1 lane). The CPU is probed once
//! ([`Level::detected`]); a [`Level`] can only be obtained for a CPU that has
//! it, which is what makes the `unsafe` calls below sound.
//!
//! Bitwise equality of the three levels: each logical lane accumulates its
//! own elements in element order with separate multiply and add (no FMA, no
//! reassociation), whatever the register width — a run reduction has 16
//! logical lanes ([`RUN_LANES`]: element `i` of a run goes to lane `i mod 16`),
//! a row reduction one lane per column. So every level computes the same
//! bits, and the tests compare each SIMD level to the scalar twin bitwise.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod rows;
pub mod runs;
pub mod scalar;

use crate::element::Element;
use std::sync::OnceLock;

/// Logical lanes of a run reduction (two AVX-512 or four AVX2 registers).
pub const RUN_LANES: usize = 16;
/// Per-lane accumulators of a run reduction with `K` sums.
pub type RunAcc<const K: usize> = [[f64; RUN_LANES]; K];

/// A vector of `W` `f64` lanes and the operations the kernels use.
///
/// # Safety
/// Implementations may only be used on a CPU that has their features;
/// pointers must be valid for `W` reads or writes.
pub trait Simd: Copy {
    /// Lanes per register.
    const W: usize;
    /// The register type.
    type V: Copy;
    /// # Safety
    /// The CPU has the implementation's features.
    unsafe fn splat(v: f64) -> Self::V;
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    unsafe fn load(p: *const f64) -> Self::V;
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    unsafe fn store(p: *mut f64, v: Self::V);
    /// `W` `f32` values widened (exactly) to `f64`.
    /// # Safety
    /// `p` is valid for `W` reads; the CPU has the features.
    unsafe fn load_f32(p: *const f32) -> Self::V;
    /// `W` values rounded to nearest `f32`.
    /// # Safety
    /// `p` is valid for `W` writes; the CPU has the features.
    unsafe fn store_f32(p: *mut f32, v: Self::V);
    /// `W` `bf16` values widened (exactly) to `f64`. By default one at a
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
    /// `W` `f16` values widened (exactly) to `f64`.
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
}

/// An element type the kernels load widened to `f64` and store rounded:
/// `fused`'s own view of `f32`/`f64`, so no kernel casts by `TypeId`.
pub trait Lane: Element {
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
        S::load(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut f64, v: S::V) {
        S::store(p, v)
    }
}

/// The widest register of any level, in lanes (AVX-512: 8 `f64`).
const MAX_W: usize = 8;

/// `S::W` half-precision values at `p`, widened (exactly) one at a time
/// through a stack buffer.
///
/// # Safety
/// `p` is valid for `S::W` reads; the CPU has `S`'s features.
#[inline(always)]
unsafe fn load_via_buffer<S: Simd, H: Element>(p: *const H) -> S::V {
    let mut buf = [0.0f64; MAX_W];
    for (i, b) in buf[..S::W].iter_mut().enumerate() {
        // SAFETY: i < S::W, and `p` is valid for S::W reads.
        *b = unsafe { *p.add(i) }.as_f64();
    }
    // SAFETY: `buf` holds MAX_W ≥ S::W values; the caller vouches for the CPU.
    unsafe { S::load(buf.as_ptr()) }
}

/// `S::W` lanes rounded (once, to nearest even, by [`Element::from_f64`])
/// to half precision and written at `p`.
///
/// # Safety
/// `p` is valid for `S::W` writes; the CPU has `S`'s features.
#[inline(always)]
unsafe fn store_via_buffer<S: Simd, H: Element>(p: *mut H, v: S::V) {
    let mut buf = [0.0f64; MAX_W];
    // SAFETY: `buf` has room for MAX_W ≥ S::W values; the caller vouches for the CPU.
    unsafe { S::store(buf.as_mut_ptr(), v) };
    for (i, &b) in buf[..S::W].iter().enumerate() {
        // SAFETY: i < S::W, and `p` is valid for S::W writes.
        unsafe { *p.add(i) = H::from_f64(b) };
    }
}

/// `bf16` and `f16`: widening is exact and narrowing is one correct
/// rounding on every level, so every level stores the same bits.
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
}

/// An instruction-set level this CPU supports. Only [`Level::detected`],
/// [`Level::available`] and [`Level::scalar`] make one, so holding a
/// `Level` proves its features are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(Isa);

impl Level {
    /// The portable scalar twin (always available).
    pub const fn scalar() -> Level {
        Level(Isa::Scalar)
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
            // F16C (half-precision conversions) came with AVX2 on every
            // x86 CPU; it is required so the half kernels need no other path.
            let f16c = std::arch::is_x86_feature_detected!("f16c");
            if std::arch::is_x86_feature_detected!("avx2") && f16c {
                v.push(Level(Isa::Avx2));
            }
            if std::arch::is_x86_feature_detected!("avx512f") && f16c {
                v.push(Level(Isa::Avx512));
            }
        }
        v
    }

    /// `"scalar"`, `"avx2"` or `"avx512"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
        }
    }
}

/// Instantiates the generic kernels for one level inside
/// `#[target_feature]` functions, so the `#[inline(always)]` bodies and
/// intrinsics compile with the level's instructions.
macro_rules! level_kernels {
    (#[$attr:meta], $S:ty) => {
        use super::{rows, runs, Lane, Post, RunAcc};

        /// # Safety
        /// The CPU has the level's features; slice bounds as in `runs::sums`.
        #[$attr]
        pub unsafe fn run_sums<T: Lane>(x: &[T], k: f64, acc: &mut RunAcc<2>) {
            runs::sums::<$S, T>(x, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; `x.len() == dy.len()`.
        #[$attr]
        pub unsafe fn run_grad<T: Lane>(x: &[T], dy: &[T], k: f64, acc: &mut RunAcc<3>) {
            runs::grad::<$S, T, false>(x, dy, dy, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; `x`, `dy`, `yo` equally long.
        #[$attr]
        pub unsafe fn run_grad_relu<T: Lane>(
            x: &[T],
            dy: &[T],
            yo: &[T],
            k: f64,
            acc: &mut RunAcc<3>,
        ) {
            runs::grad::<$S, T, true>(x, dy, yo, k, acc)
        }
        /// # Safety
        /// The CPU has the level's features; `x.len() == y.len()`.
        #[$attr]
        pub unsafe fn run_affine<T: Lane>(x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
            runs::affine::<$S, T, false, false>(x, x, y, k, a, b)
        }
        /// # Safety
        /// The CPU has the level's features; `x`, `r`, `y` equally long.
        #[$attr]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn run_affine_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            k: f64,
            a: f64,
            b: f64,
            post: Post,
        ) {
            match post {
                Post::Plain => runs::affine::<$S, T, false, false>(x, x, y, k, a, b),
                Post::Relu => runs::affine::<$S, T, false, true>(x, x, y, k, a, b),
                Post::AddRelu => runs::affine::<$S, T, true, true>(x, r, y, k, a, b),
            }
        }
        /// # Safety
        /// The CPU has the level's features; as `runs::dx_relu` (`dres`
        /// valid for `x.len()` writes when not null).
        #[$attr]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn run_dx_relu<T: Lane>(
            x: &[T],
            dy: &[T],
            yo: &[T],
            dx: &mut [T],
            dres: *mut T,
            k: f64,
            c: [f64; 3],
            fixed: bool,
        ) {
            match (fixed, dres.is_null()) {
                (false, true) => runs::dx_relu::<$S, T, false, false>(x, dy, yo, dx, dres, k, c),
                (false, false) => runs::dx_relu::<$S, T, false, true>(x, dy, yo, dx, dres, k, c),
                (true, true) => runs::dx_relu::<$S, T, true, false>(x, dy, yo, dx, dres, k, c),
                (true, false) => runs::dx_relu::<$S, T, true, true>(x, dy, yo, dx, dres, k, c),
            }
        }
        /// # Safety
        /// The CPU has the level's features; equal lengths.
        #[$attr]
        pub unsafe fn run_dx<T: Lane>(x: &[T], dy: &[T], dx: &mut [T], k: f64, c: [f64; 3]) {
            runs::dx::<$S, T>(x, dy, dx, k, c)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_sums`.
        #[$attr]
        pub unsafe fn rows_sums<T: Lane>(x: &[T], k: &[f64], s: [&mut [f64]; 2]) {
            rows::sums::<$S, T, { SUM_BLOCK }>(x, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_grad`.
        #[$attr]
        pub unsafe fn rows_grad<T: Lane>(x: &[T], dy: &[T], k: &[f64], s: [&mut [f64]; 3]) {
            rows::grad::<$S, T, { GRAD_BLOCK }, false>(x, dy, dy, k, s)
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
            rows::grad::<$S, T, { GRAD_BLOCK }, true>(x, dy, yo, k, s)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_affine`.
        #[$attr]
        pub unsafe fn rows_affine<T: Lane>(x: &[T], y: &mut [T], c: [&[f64]; 3]) {
            rows::affine::<$S, T, false, false>(x, x, y, c)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_affine_post`.
        #[$attr]
        pub unsafe fn rows_affine_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            c: [&[f64]; 3],
            post: Post,
        ) {
            match post {
                Post::Plain => rows::affine::<$S, T, false, false>(x, x, y, c),
                Post::Relu => rows::affine::<$S, T, false, true>(x, x, y, c),
                Post::AddRelu => rows::affine::<$S, T, true, true>(x, r, y, c),
            }
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_scale`.
        #[$attr]
        pub unsafe fn rows_scale<T: Lane>(x: &[T], y: &mut [T], c: [&[f64]; 2]) {
            rows::scale::<$S, T, false, false>(x, x, y, c)
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_scale_post`.
        #[$attr]
        pub unsafe fn rows_scale_post<T: Lane>(
            x: &[T],
            r: &[T],
            y: &mut [T],
            c: [&[f64]; 2],
            post: Post,
        ) {
            match post {
                Post::Plain => rows::scale::<$S, T, false, false>(x, x, y, c),
                Post::Relu => rows::scale::<$S, T, false, true>(x, x, y, c),
                Post::AddRelu => rows::scale::<$S, T, true, true>(x, r, y, c),
            }
        }
        /// # Safety
        /// The CPU has the level's features; lengths as checked in `simd::rows_dx`.
        #[$attr]
        pub unsafe fn rows_dx<T: Lane>(x: &[T], dy: &[T], dx: &mut [T], c: [&[f64]; 4]) {
            rows::dx::<$S, T>(x, dy, dx, c)
        }
        /// # Safety
        /// The CPU has the level's features; as `rows::dx_relu` (`dres`
        /// valid for `x.len()` writes when not null).
        #[$attr]
        pub unsafe fn rows_dx_relu<T: Lane>(
            v: [&[T]; 3],
            dx: &mut [T],
            dres: *mut T,
            c: [&[f64]; 4],
            fixed: bool,
        ) {
            match (fixed, dres.is_null()) {
                (false, true) => rows::dx_relu::<$S, T, false, false>(v, dx, dres, c),
                (false, false) => rows::dx_relu::<$S, T, false, true>(v, dx, dres, c),
                (true, true) => rows::dx_relu::<$S, T, true, false>(v, dx, dres, c),
                (true, false) => rows::dx_relu::<$S, T, true, true>(v, dx, dres, c),
            }
        }
    };
}
pub(crate) use level_kernels;

/// Calls `$f` of the module of `$lv`'s level; the scalar twin otherwise.
macro_rules! dispatch {
    ($lv:expr, $f:ident ( $($arg:expr),* )) => {
        match $lv.0 {
            // SAFETY: a `Level` with `Isa::Avx512` exists only when
            // `is_x86_feature_detected!("avx512f")` was true (`Level::available`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::$f($($arg),*) },
            // SAFETY: `Isa::Avx2` exists only when AVX2 was detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::$f($($arg),*) },
            // SAFETY: the scalar twin needs no CPU feature.
            Isa::Scalar => unsafe { scalar::$f($($arg),*) },
        }
    };
}

/// Per-lane `Σd` and `Σd²`, `d = x − k`, of one run added into `acc`
/// (element `i` into lane `i mod 16`).
pub fn run_sums<T: Lane>(lv: Level, x: &[T], k: f64, acc: &mut RunAcc<2>) {
    dispatch!(lv, run_sums(x, k, acc))
}

/// Per-lane `Σdy`, `Σdy·(x − k)`, `Σ(x − k)` of one run added into `acc`.
pub fn run_grad<T: Lane>(lv: Level, x: &[T], dy: &[T], k: f64, acc: &mut RunAcc<3>) {
    assert_eq!(x.len(), dy.len(), "run_grad: x and dy lengths");
    dispatch!(lv, run_grad(x, dy, k, acc))
}

/// `y = (x − k)·a + b` over one run.
pub fn run_affine<T: Lane>(lv: Level, x: &[T], y: &mut [T], k: f64, a: f64, b: f64) {
    assert_eq!(x.len(), y.len(), "run_affine: x and y lengths");
    dispatch!(lv, run_affine(x, y, k, a, b))
}

/// `dx = c₀·dy + c₁·(x − k) + c₂` over one run.
pub fn run_dx<T: Lane>(lv: Level, x: &[T], dy: &[T], dx: &mut [T], k: f64, c: [f64; 3]) {
    assert!(
        x.len() == dy.len() && x.len() == dx.len(),
        "run_dx: lengths"
    );
    dispatch!(lv, run_dx(x, dy, dx, k, c))
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

/// Per-lane `Σdy`, `Σdy·(x − k[l])`, `Σ(x − k[l])` over rows of `L = k.len()`.
pub fn rows_grad<T: Lane>(lv: Level, x: &[T], dy: &[T], k: &[f64], s: [&mut [f64]; 3]) {
    let ok = !k.is_empty() && x.len() == dy.len() && s.iter().all(|v| v.len() == k.len());
    assert!(ok, "rows_grad: lengths");
    dispatch!(lv, rows_grad(x, dy, k, s))
}

/// `y = (x − k[l])·a[l] + b[l]` over rows, `c = [k, a, b]` of equal length `L`.
pub fn rows_affine<T: Lane>(lv: Level, x: &[T], y: &mut [T], c: [&[f64]; 3]) {
    let ok = !c[0].is_empty() && x.len() == y.len() && c.iter().all(|v| v.len() == c[0].len());
    assert!(ok, "rows_affine: lengths");
    dispatch!(lv, rows_affine(x, y, c))
}

/// `y = x·a[l] + b[l]` over rows, `c = [a, b]` of equal length `L`.
pub fn rows_scale<T: Lane>(lv: Level, x: &[T], y: &mut [T], c: [&[f64]; 2]) {
    let ok = !c[0].is_empty() && x.len() == y.len() && c[1].len() == c[0].len();
    assert!(ok, "rows_scale: lengths");
    dispatch!(lv, rows_scale(x, y, c))
}

/// `dx = c₁[l]·dy + c₂[l]·(x − c₀[l]) + c₃[l]` over rows, arrays of length `L`.
pub fn rows_dx<T: Lane>(lv: Level, x: &[T], dy: &[T], dx: &mut [T], c: [&[f64]; 4]) {
    let same = x.len() == dy.len() && x.len() == dx.len();
    let ok = same && !c[0].is_empty() && c.iter().all(|v| v.len() == c[0].len());
    assert!(ok, "rows_dx: lengths");
    dispatch!(lv, rows_dx(x, dy, dx, c))
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
    dispatch!(lv, run_affine_post(x, r, y, k, a, b, post))
}

/// [`run_grad`] of `dy` masked by the ReLU output `yo` (same read).
pub fn run_grad_relu<T: Lane>(lv: Level, x: &[T], dy: &[T], yo: &[T], k: f64, acc: &mut RunAcc<3>) {
    assert!(
        x.len() == dy.len() && x.len() == yo.len(),
        "run_grad_relu: lengths"
    );
    dispatch!(lv, run_grad_relu(x, dy, yo, k, acc))
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
    let dres = dres.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr());
    dispatch!(lv, run_dx_relu(x, dy, yo, dx, dres, k, c, fixed))
}

/// Channels-last `y = post((x − k[l])·a[l] + b[l])` (`c = [k, a, b]`).
pub fn rows_affine_post<T: Lane>(
    lv: Level,
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: [&[f64]; 3],
    post: Post,
) {
    let ok = !c[0].is_empty() && x.len() == y.len() && x.len() == r.len();
    assert!(
        ok && c.iter().all(|v| v.len() == c[0].len()),
        "rows_affine_post: lengths"
    );
    dispatch!(lv, rows_affine_post(x, r, y, c, post))
}

/// Channels-last `y = post(x·a[l] + b[l])` (`c = [a, b]`).
pub fn rows_scale_post<T: Lane>(
    lv: Level,
    x: &[T],
    r: &[T],
    y: &mut [T],
    c: [&[f64]; 2],
    post: Post,
) {
    let ok = !c[0].is_empty() && x.len() == y.len() && x.len() == r.len();
    assert!(ok && c[1].len() == c[0].len(), "rows_scale_post: lengths");
    dispatch!(lv, rows_scale_post(x, r, y, c, post))
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

/// Channels-last [`run_dx_relu`]: `c = [k, kd, kx, kc]` per lane.
pub fn rows_dx_relu<T: Lane>(
    lv: Level,
    v: [&[T]; 3],
    dx: &mut [T],
    dres: Option<&mut [T]>,
    c: [&[f64]; 4],
    fixed: bool,
) {
    let n = v[0].len();
    let ok = v.iter().all(|s| s.len() == n) && dx.len() == n;
    let ok = ok && !c[0].is_empty() && c.iter().all(|a| a.len() == c[0].len());
    assert!(
        ok && dres.as_ref().is_none_or(|d| d.len() == n),
        "rows_dx_relu: lengths"
    );
    let dres = dres.map_or(std::ptr::null_mut(), |d| d.as_mut_ptr());
    dispatch!(lv, rows_dx_relu(v, dx, dres, c, fixed))
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
