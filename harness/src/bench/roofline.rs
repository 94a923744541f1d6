//! The roofline every benchmark row is divided by: the fastest of three ways
//! to copy the same bytes, plus a read-only pass.
//!
//! A single copy routine is a soft ruler: glibc's `memcpy` picks its
//! strategy by size and may lose to a plain vector loop or to non-temporal
//! stores on large tensors, which would make every "× memcpy" figure look
//! better than it is. So three copies are timed (issue 13):
//!
//! - [`Copy::Memcpy`]: `copy_from_slice`, i.e. libc `memcpy`;
//! - [`Copy::Vector`]: an explicit 512/256/128-bit load-store loop (what a
//!   kernel's element-wise pass compiles to);
//! - [`Copy::NonTemporal`]: the same loop with streaming stores, which skip
//!   the read-for-ownership of the destination (STREAM's "copy" on x86).
//!
//! Each splits its bytes into one contiguous chunk per thread of the pool it
//! runs in, like the kernels. [`read`] is a STREAM-like read-only pass (a sum
//! of the words), so train and backward, which read `x` more often than they
//! write, can be set against their bytes-moved model.

use rayon::prelude::*;

/// One copy routine of the roofline; the CSV's `roofline` column names the
/// fastest ([`Copy::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Copy {
    /// libc `memcpy` (`<[u8]>::copy_from_slice`).
    Memcpy,
    /// Explicit SIMD load/store loop.
    Vector,
    /// Explicit SIMD loop with non-temporal (streaming) stores.
    NonTemporal,
}

impl Copy {
    /// Every copy, in the order they are timed.
    pub const ALL: [Copy; 3] = [Copy::Memcpy, Copy::Vector, Copy::NonTemporal];

    /// The CSV spelling.
    pub fn name(self) -> &'static str {
        match self {
            Copy::Memcpy => "memcpy",
            Copy::Vector => "vector",
            Copy::NonTemporal => "nontemporal",
        }
    }

    /// Copy `src` into `dst` (same length) with this routine, `threads`
    /// contiguous chunks in the current rayon pool.
    pub fn run(self, dst: &mut [u8], src: &[u8], threads: usize) {
        assert_eq!(dst.len(), src.len(), "roofline copy of unequal lengths");
        // Chunks are whole cache lines, so no two threads share one and the
        // streaming stores of each chunk start aligned when the buffer is.
        let chunk = src
            .len()
            .div_ceil(threads.max(1))
            .next_multiple_of(64)
            .max(64);
        let one = |d: &mut [u8], s: &[u8]| match self {
            Copy::Memcpy => d.copy_from_slice(s),
            Copy::Vector => simd::copy(d, s),
            Copy::NonTemporal => simd::copy_nontemporal(d, s),
        };
        if threads <= 1 {
            one(dst, src);
        } else {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| one(d, s));
        }
        if self == Copy::NonTemporal {
            simd::store_fence();
        }
        std::hint::black_box(dst);
    }
}

/// The read-only pass: a wrapping sum of `src`'s 64-bit words (and tail
/// bytes), in `threads` chunks; returned so it cannot be optimized away.
pub fn read(src: &[u8], threads: usize) -> u64 {
    let chunk = src
        .len()
        .div_ceil(threads.max(1))
        .next_multiple_of(64)
        .max(64);
    let one = |s: &[u8]| -> u64 {
        let (words, tail) = s.split_at(s.len() / 8 * 8);
        let mut acc = [0u64; 8];
        for block in words.chunks_exact(64) {
            for (a, w) in acc.iter_mut().zip(block.chunks_exact(8)) {
                *a = a.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            }
        }
        let rest = words.len() / 64 * 64;
        let mut sum = acc.iter().fold(0u64, |s, &a| s.wrapping_add(a));
        for w in words[rest..].chunks_exact(8) {
            sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        tail.iter().fold(sum, |s, &b| s.wrapping_add(b as u64))
    };
    let sum = if threads <= 1 {
        one(src)
    } else {
        src.par_chunks(chunk)
            .map(one)
            .reduce(|| 0, u64::wrapping_add)
    };
    std::hint::black_box(sum)
}

/// The SIMD copies: one dispatch point on the CPU's features, a scalar twin
/// elsewhere.
mod simd {
    /// Copy with vector loads and stores (AVX-512, AVX2 or SSE2 on x86-64).
    pub fn copy(d: &mut [u8], s: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F was detected at run time just above.
                return unsafe { x86::copy_avx512(d, s, false) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected at run time just above.
                return unsafe { x86::copy_avx2(d, s, false) };
            }
            x86::copy_sse2(d, s, false)
        }
        #[cfg(not(target_arch = "x86_64"))]
        d.copy_from_slice(s)
    }

    /// Copy with vector loads and non-temporal stores.
    pub fn copy_nontemporal(d: &mut [u8], s: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F was detected at run time just above.
                return unsafe { x86::copy_avx512(d, s, true) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected at run time just above.
                return unsafe { x86::copy_avx2(d, s, true) };
            }
            x86::copy_sse2(d, s, true)
        }
        #[cfg(not(target_arch = "x86_64"))]
        d.copy_from_slice(s)
    }

    /// Order streaming stores before anything that follows (they are weakly
    /// ordered); a no-op where there are none.
    pub fn store_fence() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 (hence `sfence`) is part of the x86-64 baseline.
        unsafe {
            std::arch::x86_64::_mm_sfence()
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        /// Bytes before `d` reaches `align`, capped at `len`.
        fn head(d: &[u8], align: usize) -> usize {
            d.as_ptr().align_offset(align).min(d.len())
        }

        /// The body loop shared by the widths: `W`-byte vectors, four per
        /// iteration; `load`/`store` are the width's intrinsics. Streaming
        /// stores need an aligned destination, so the unaligned head is
        /// copied with `copy_from_slice` first; the tail likewise.
        ///
        /// # Safety
        /// `load` and `store` must be callable on this CPU and move exactly
        /// `W` bytes from/to the pointer they get.
        #[inline(always)]
        unsafe fn body<const W: usize>(
            d: &mut [u8],
            s: &[u8],
            aligned: bool,
            load: impl Fn(*const u8) -> [u8; W],
            store: impl Fn(*mut u8, [u8; W]),
        ) {
            let h = if aligned { head(d, W) } else { 0 };
            d[..h].copy_from_slice(&s[..h]);
            let n = (d.len() - h) / (4 * W) * (4 * W);
            let (dp, sp) = (d[h..].as_mut_ptr(), s[h..].as_ptr());
            let mut i = 0;
            while i < n {
                // SAFETY: i + 4W <= n <= d.len() - h == s.len() - h, so every
                // access stays inside both slices.
                let (a, b, c, e) = (
                    load(sp.add(i)),
                    load(sp.add(i + W)),
                    load(sp.add(i + 2 * W)),
                    load(sp.add(i + 3 * W)),
                );
                store(dp.add(i), a);
                store(dp.add(i + W), b);
                store(dp.add(i + 2 * W), c);
                store(dp.add(i + 3 * W), e);
                i += 4 * W;
            }
            d[h + n..].copy_from_slice(&s[h + n..]);
        }

        /// # Safety
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn copy_avx512(d: &mut [u8], s: &[u8], nt: bool) {
            // SAFETY (closures): unaligned loads/stores of 64 bytes within the
            // bounds `body` guarantees; streaming stores only at 64-byte
            // aligned addresses (`body` aligns the destination when `nt`).
            let load = |p: *const u8| {
                std::mem::transmute::<__m512i, [u8; 64]>(_mm512_loadu_si512(p.cast()))
            };
            if nt {
                body::<64>(d, s, true, load, |p, v| {
                    _mm512_stream_si512(p.cast(), std::mem::transmute::<[u8; 64], __m512i>(v))
                })
            } else {
                body::<64>(d, s, false, load, |p, v| {
                    _mm512_storeu_si512(p.cast(), std::mem::transmute::<[u8; 64], __m512i>(v))
                })
            }
        }

        /// # Safety
        /// The CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        pub unsafe fn copy_avx2(d: &mut [u8], s: &[u8], nt: bool) {
            // SAFETY (closures): as in `copy_avx512`, with 32-byte vectors.
            let load = |p: *const u8| {
                std::mem::transmute::<__m256i, [u8; 32]>(_mm256_loadu_si256(p.cast()))
            };
            if nt {
                body::<32>(d, s, true, load, |p, v| {
                    _mm256_stream_si256(p.cast(), std::mem::transmute::<[u8; 32], __m256i>(v))
                })
            } else {
                body::<32>(d, s, false, load, |p, v| {
                    _mm256_storeu_si256(p.cast(), std::mem::transmute::<[u8; 32], __m256i>(v))
                })
            }
        }

        /// SSE2 is the x86-64 baseline: no detection needed.
        pub fn copy_sse2(d: &mut [u8], s: &[u8], nt: bool) {
            // SAFETY: SSE2 is always present on x86-64; bounds and alignment
            // as in `copy_avx512`, with 16-byte vectors.
            unsafe {
                let load = |p: *const u8| {
                    std::mem::transmute::<__m128i, [u8; 16]>(_mm_loadu_si128(p.cast()))
                };
                if nt {
                    body::<16>(d, s, true, load, |p, v| {
                        _mm_stream_si128(p.cast(), std::mem::transmute::<[u8; 16], __m128i>(v))
                    })
                } else {
                    body::<16>(d, s, false, load, |p, v| {
                        _mm_storeu_si128(p.cast(), std::mem::transmute::<[u8; 16], __m128i>(v))
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + 7) as u8).collect()
    }

    /// Every copy, at every thread count, over lengths that exercise the
    /// unaligned head, the 4-vector body and every tail length, from
    /// misaligned source and destination offsets.
    #[test]
    fn every_copy_copies_exactly() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for len in (0..300).chain([1000, 4096, 4097, 65_536 + 13]) {
            for (so, doff) in [(0, 0), (1, 0), (0, 5), (3, 17)] {
                let src = pattern(len + so);
                for copy in Copy::ALL {
                    for threads in [1, 2, 3] {
                        let mut dst = vec![0u8; len + doff];
                        pool.install(|| copy.run(&mut dst[doff..], &src[so..], threads));
                        assert_eq!(&dst[doff..], &src[so..], "{copy:?} len {len} t{threads}");
                        assert!(dst[..doff].iter().all(|&b| b == 0), "{copy:?} wrote before");
                    }
                }
            }
        }
    }

    #[test]
    fn read_sums_every_byte_at_any_thread_count() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for len in [0, 1, 7, 8, 63, 64, 65, 1000, 4099] {
            let src = pattern(len);
            let words = src.len() / 8 * 8;
            let mut want = 0u64;
            for w in src[..words].chunks_exact(8) {
                want = want.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
            }
            for &b in &src[words..] {
                want = want.wrapping_add(b as u64);
            }
            // Chunk boundaries are multiples of 64 bytes, so word sums agree.
            for threads in [1, 2, 3] {
                assert_eq!(
                    pool.install(|| read(&src, threads)),
                    want,
                    "len {len} t{threads}"
                );
            }
        }
    }
}
