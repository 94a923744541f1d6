//! Non-temporal output stores: [`Nt<S>`] is the vector `S` whose stores of
//! data elements ([`Lane::store`]) bypass the caches.
//!
//! An ordinary store to a line that is not in cache first reads the line
//! from memory (read for ownership), so a pass that reads `x` and writes
//! `y` of a tensor far larger than the caches moves three tensors' worth of
//! bytes, not two. A non-temporal store writes the line without reading
//! it. With `S::STREAM` the element-wise kernels run their registers over
//! whole cache lines of the output ([`span`]; scalar code with ordinary
//! stores before and after) and fence at the end ([`Simd::fence`]); the
//! values written are the same bits, only the route of the stores differs.
//!
//! Kernels run with `Nt<S>` also prefetch their data [`PREFETCH_BYTES`]
//! ahead ([`prefetch`]); the reductions of such passes run with `Nt<S>` for
//! that alone (they store no data).
//!
//! Each register is rounded into a 64-byte-aligned stack spill by `S`'s own
//! store, then copied out with `S`'s non-temporal store of that width
//! ([`Simd::stream_bytes`]): the conversions stay written once, and the
//! spill is forwarded from the store buffer.
//!
//! Measured first with a staging buffer of 8–32 KiB copied out in bursts
//! (no kernel change): slower than ordinary stores on the 2-core Xeon VM,
//! because the bursts of streaming stores starve the loads of line-fill
//! buffers; streaming each register as it is computed keeps loads and
//! stores interleaved (a 64 MiB `y = a·x + b`: 12.3 ms ordinary, 10.1 ms
//! staged, 8.6 ms per register).

use super::{Lane, Simd};
use std::marker::PhantomData;

/// `S` with non-temporal data stores (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Nt<S>(PhantomData<S>);

/// Room for one register of any level and element type, line-aligned.
#[repr(C, align(64))]
struct Spill([u8; 128]);

/// How far ahead of a pass past the caches its data lines are prefetched
/// ([`prefetch`]).
pub const PREFETCH_BYTES: usize = 8 << 10;

/// Page-offset distance within which an output running just ahead of an
/// input stalls a streaming pass ([`aliased`]).
pub const ALIAS_WINDOW: usize = 256;

/// Whether an element-wise pass writing `y` with streaming stores while it
/// reads `x` in step would stall on 4K aliasing: `y` starts less than
/// [`ALIAS_WINDOW`] bytes past `x` in page offset (`0 < (y − x) mod 4096 <
/// 256`), so each load of `x` carries the page offset of a streaming store
/// to `y` issued a few registers earlier. The core cannot tell the two
/// addresses apart by their low 12 bits until the store leaves the store
/// buffer, and a non-temporal store leaves it late (it waits for a
/// write-combining buffer), so every such load waits for it. Measured on
/// the 2-core Zen 2 VM (2026-12-04; C model of `f16` eval, a 12.8 M-value
/// tensor, 16-byte streaming stores, best of 8): 2.35–2.6 ms at offsets 0
/// and 256–4080, 2.8 ms at 128, 4.4 ms at 64, 5.6 ms at 48, 7.9 ms at 32
/// and 15.8 ms at 16 — where ordinary stores take 3.0–3.7 ms at every
/// offset. Offset 16 is what two `malloc` blocks of a whole number of pages
/// get when one follows the other on the heap (16 bytes of chunk header).
pub fn aliased<T>(y: *const T, x: *const T) -> bool {
    let d = (y as usize).wrapping_sub(x as usize) % 4096;
    d != 0 && d < ALIAS_WINDOW
}

/// With `S::STREAM` (a pass over data far larger than the caches), prefetch
/// into L1 the lines [`PREFETCH_BYTES`] past the `n` elements at `p`: those
/// before `end`, and those at or past it at the same distance past `then`
/// (where the pass reads after `end`; none with `None`). A no-op otherwise.
///
/// The hardware prefetchers alone kept such passes well below a copy's
/// read rate on the 2-core Xeon VM: a 64 MiB `y = a[l]·(x − k[l]) + b[l]`
/// in `f64` lanes over `f32` data, 4096 lanes, took 16.0–16.8 ms without
/// and 13.2–14.8 ms with a prefetch 4–32 KiB ahead, against 9.9–10.5 ms
/// for a streaming copy (microbenchmark, medians of 9, alternated).
///
/// The contiguous run reductions continue into the run they reduce next
/// ([`super::runs::prefetch_inputs`]); the channels-last reductions' tiles
/// stop at their input's end. Where the lines after a slice are read next
/// (`then = end`: the element-wise passes, which walk runs and rows in
/// memory order, and the backward sums' row pairs) the address is the
/// same either way, and [`prefetch_from`] takes it without the end test.
#[inline(always)]
pub fn prefetch<S: Simd, T>(p: *const T, n: usize, end: *const T, then: Option<*const T>) {
    if !S::STREAM {
        return;
    }
    let (end, then) = (end as usize, then.map(|t| t.cast::<u8>()));
    let ahead = p.cast::<u8>().wrapping_add(PREFETCH_BYTES);
    for o in (0..n * std::mem::size_of::<T>()).step_by(64) {
        let q = ahead.wrapping_add(o);
        let at = match (q as usize).checked_sub(end) {
            None => Some(q),
            Some(past) => then.map(|t| t.wrapping_add(past)),
        };
        if let Some(a) = at {
            prefetch_line(a);
        }
    }
}

/// Prefetch into L1 the lines [`PREFETCH_BYTES`] past the `n` elements at
/// `p`, wherever they lie (callers check `S::STREAM`): [`prefetch`] for a
/// pass that continues past `end` at `end` itself.
#[inline(always)]
pub fn prefetch_from<T>(p: *const T, n: usize) {
    prefetch_lines(p.cast::<u8>().wrapping_add(PREFETCH_BYTES).cast::<T>(), n)
}

/// Prefetch into L1 the lines of the `n` elements at `p`, wherever they
/// lie (callers check `S::STREAM`).
#[inline(always)]
pub fn prefetch_lines<T>(p: *const T, n: usize) {
    let p = p.cast::<u8>();
    for o in (0..n * std::mem::size_of::<T>()).step_by(64) {
        prefetch_line(p.wrapping_add(o));
    }
}

/// `prefetcht0` of the line holding `p` (any address).
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch (SSE, part of x86-64) reads no memory
    // architecturally and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Round `v` into a spill with `store`, then stream it to `p`.
///
/// # Safety
/// `p` is valid for `S::W` elements of `H` (which stream when `p` is aligned
/// to their total size, else are copied plainly); the CPU has `S`'s features.
#[inline(always)]
unsafe fn stream_via<S: Simd, H>(p: *mut H, v: S::V, store: unsafe fn(*mut H, S::V)) {
    let mut spill = Spill([0; 128]);
    let n = S::W * std::mem::size_of::<H>();
    // SAFETY: the spill holds 128 >= n bytes, aligned for any `H`; `p` by contract.
    unsafe {
        store(spill.0.as_mut_ptr().cast(), v);
        S::stream_bytes(p.cast(), spill.0.as_ptr(), n)
    }
}

impl<S: Simd> Simd for Nt<S> {
    const W: usize = S::W;
    const STREAM: bool = true;
    type E = S::E;
    type V = S::V;
    #[inline(always)]
    unsafe fn splat(v: Self::E) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::splat(v) }
    }
    #[inline(always)]
    unsafe fn load(p: *const Self::E) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::load(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut Self::E, v: Self::V) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::store(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f64(p: *const f64) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::load_f64(p) }
    }
    #[inline(always)]
    unsafe fn store_f64(p: *mut f64, v: Self::V) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { stream_via::<S, f64>(p, v, S::store_f64) }
    }
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::load_f32(p) }
    }
    #[inline(always)]
    unsafe fn store_f32(p: *mut f32, v: Self::V) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { stream_via::<S, f32>(p, v, S::store_f32) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const half::bf16) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::load_bf16(p) }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut half::bf16, v: Self::V) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { stream_via::<S, half::bf16>(p, v, S::store_bf16) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const half::f16) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::load_f16(p) }
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut half::f16, v: Self::V) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { stream_via::<S, half::f16>(p, v, S::store_f16) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::add(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::sub(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::mul(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::fma(a, b, c) }
    }
    #[inline(always)]
    unsafe fn relu(v: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::relu(v) }
    }
    #[inline(always)]
    unsafe fn relu_grad(y: Self::V, g: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::relu_grad(y, g) }
    }
    #[inline(always)]
    unsafe fn blend(m: usize, a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::blend(m, a, b) }
    }
    #[inline(always)]
    unsafe fn stream_bytes(d: *mut u8, s: *const u8, n: usize) {
        // SAFETY: `S`'s operation under the same contract.
        unsafe { S::stream_bytes(d, s, n) }
    }
    #[inline(always)]
    unsafe fn fence() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        }
    }
}

/// The register-aligned span `[h, e)` of an element-wise pass over `len`
/// elements of `T` at `p` that runs in whole registers; the elements before
/// `h` and from `e` go to scalar code. With `S::STREAM` (and registers that
/// divide a cache line) the span is whole 64-byte lines of `y`, so every
/// line is written either only by streaming stores or only by ordinary
/// ones: a line that mixes them is pulled into cache between the streaming
/// stores (runs whose edges mixed measured slower than no streaming at
/// all). Otherwise `h = 0` and `e` the last whole register.
#[inline(always)]
pub fn span<S: Simd, T: Lane>(p: *const T, len: usize) -> (usize, usize) {
    let sz = std::mem::size_of::<T>();
    let n = S::W * sz;
    if !S::STREAM || !n.is_multiple_of(16) || !64usize.is_multiple_of(n) {
        return (0, len / S::W * S::W);
    }
    let line = 64 / sz;
    let h = ((64 - p as usize % 64) % 64 / sz).min(len);
    (h, h + (len - h) / line * line)
}

/// [`Simd::stream_bytes`] 16 bytes at a time (SSE2, part of x86-64); sizes
/// or destinations that are not a multiple of 16, and other architectures,
/// copy plainly (so a misaligned store is slow, never a fault).
///
/// # Safety
/// As [`Simd::stream_bytes`].
#[inline(always)]
pub unsafe fn stream_16(d: *mut u8, s: *const u8, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if n.is_multiple_of(16) && (d as usize).is_multiple_of(16) {
        use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_stream_si128};
        for i in (0..n).step_by(16) {
            // SAFETY: 16-byte aligned pieces (`d` checked above, `s` by
            // contract) inside both ranges (contract).
            unsafe {
                _mm_stream_si128(d.add(i).cast(), _mm_load_si128(s.add(i).cast::<__m128i>()))
            };
        }
        return;
    }
    // SAFETY: both ranges valid for `n` bytes and distinct (contract).
    unsafe { std::ptr::copy_nonoverlapping(s, d, n) }
}

/// [`Simd::stream_bytes`] with 32-byte stores where `n` is a multiple of 32.
///
/// # Safety
/// As [`Simd::stream_bytes`]; the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn stream_32(d: *mut u8, s: *const u8, n: usize) {
    use std::arch::x86_64::{__m256i, _mm256_load_si256, _mm256_stream_si256};
    if !n.is_multiple_of(32) || !(d as usize).is_multiple_of(32) {
        // SAFETY: forwarded contract.
        return unsafe { stream_16(d, s, n) };
    }
    for i in (0..n).step_by(32) {
        // SAFETY: 32-byte aligned pieces inside both ranges (`d` checked
        // above, `s` 64-aligned by contract).
        unsafe {
            _mm256_stream_si256(
                d.add(i).cast(),
                _mm256_load_si256(s.add(i).cast::<__m256i>()),
            )
        };
    }
}

/// [`Simd::stream_bytes`] with 64-byte stores where `n` is a multiple of 64.
///
/// # Safety
/// As [`Simd::stream_bytes`]; the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn stream_64(d: *mut u8, s: *const u8, n: usize) {
    use std::arch::x86_64::{__m512i, _mm512_load_si512, _mm512_stream_si512};
    if !n.is_multiple_of(64) || !(d as usize).is_multiple_of(64) {
        // SAFETY: forwarded contract.
        return unsafe { stream_32(d, s, n) };
    }
    for i in (0..n).step_by(64) {
        // SAFETY: 64-byte aligned lines (`d` checked above, `s` by
        // contract) inside both ranges (contract).
        unsafe {
            _mm512_stream_si512(
                d.add(i).cast(),
                _mm512_load_si512(s.add(i).cast::<__m512i>()),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{aliased, ALIAS_WINDOW};
    use crate::fused::simd::Level;

    /// Only an output a little past an input in page offset counts, on
    /// either side of a page boundary; equal offsets and outputs behind the
    /// input do not.
    #[test]
    fn aliasing_is_an_output_just_past_an_input_in_page_offset() {
        let base = 1usize << 30;
        let x = base as *const f32;
        let at = |d: isize| base.wrapping_add_signed(d) as *const f32;
        for d in [16, 32, 64, 128, ALIAS_WINDOW as isize - 4] {
            assert!(aliased(at(d), x), "+{d}");
            assert!(aliased(at(d + (25 << 20)), x), "+{d} and 25 MiB");
            assert!(aliased(at(d - 4096), x), "+{d} a page back");
        }
        for d in [0, 4096, ALIAS_WINDOW as isize, 1024, 4080, -16, -4096 * 3] {
            assert!(!aliased(at(d), x), "{d}");
        }
    }

    /// `unaliased` turns streaming off for any input that aliases, and
    /// leaves a level that does not stream, or one clear of its inputs, as
    /// it was.
    #[test]
    fn unaliased_levels_stream_only_clear_of_every_input() {
        let x = vec![0f32; 4096];
        let clear = x.as_ptr();
        let close = x[4..].as_ptr(); // 16 bytes past `x`
        for lv in Level::available() {
            let nt = lv.streaming(true);
            assert_eq!(nt.unaliased(clear, &[clear, clear]), nt, "{}", lv.name());
            assert_eq!(nt.unaliased(close, &[clear]), nt.streaming(false));
            assert_eq!(nt.unaliased(close, &[close, clear]), nt.streaming(false));
            assert_eq!(lv.unaliased(close, &[clear]), lv);
        }
    }
}
