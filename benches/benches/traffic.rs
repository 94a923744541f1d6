//! What do train's and backward's bytes alone cost on this machine?
//!
//! Issue 13 sets roofline targets for `fused`'s train and backward (their
//! time over the fastest copy of `x`: train ≤ 1.4× contiguous, ≤ 1.6×
//! channels-last and (N, C); backward ≤ 2.0×, ≤ 2.5× and ≤ 2.2×; issue 11
//! sets ≤ 1.6× and ≤ 2.5× for half data on 64×64×56×56) and asks, where
//! one is out of reach, for the measurement that proves it. This
//! probe replays each operation's memory traffic with the cheapest loops
//! that move it — a sum of the `f32` words for a reduction (four
//! accumulators, so it is bound by the loads, not by the adds), `y = x + 1`
//! or `dx = x + dy` with streaming stores for an element-wise pass (in
//! 512-bit registers where the CPU has AVX-512F, whole-line stores as
//! `fused` and the copy use), all prefetching 8 KiB ahead as `fused` does
//! past the caches — in the schedules `fused` runs:
//!
//! - **sweeps** (channels-last, (N, C), and contiguous where channel tasks
//!   do not pay): the reduction over the whole tensor, then the
//!   element-wise pass over the whole tensor, which finds none of it in
//!   cache once the tensors exceed the L3; also with the second sweep in
//!   blocks from the end, which starts on what the L3 may still hold;
//! - **channel tasks** (contiguous): channel by channel, its runs reduced,
//!   then its element-wise pass, which reads them back from L2/L3; that
//!   pass's prefetch reaches past each run into the next channel's, as in
//!   `fused` where the L2 is small (`plan::task_pass_level`).
//!
//! A kernel of the same schedule only adds arithmetic to these loops, so a
//! target below the replay's ratio to the copy is out of reach here for that
//! schedule; `fused`'s own time is printed beside it. Another schedule
//! would have to move fewer bytes: keep a channel's `x` and `dy` in cache
//! between the passes, which the L2 (1–2 MiB per core) cannot for the large
//! shapes here, and which (N, C) column blocks buy with strided reads that
//! measured slower (docs/BENCHMARKS.md).
//!
//! `cargo bench -p bn-benches --bench traffic`; `BN_TRAFFIC_ROUNDS`
//! (default 5) rounds, each timing every variant 7 times (median), one
//! thread, interleaved; prints the median over rounds as markdown. x86-64
//! with AVX2 only (elsewhere it says so and exits).

use bn_benches::{listing_only, median_ms, one_thread_pool, rounds_from_env};
use bn_harness::bench::grid::{BenchPoint, Shape};
use bn_harness::bench::roofline::{self, Copy};
use bn_harness::bench::workload::workload;
use bn_harness::bench::Op;
use bn_impls::{DType, Layout};

/// One probe shape: `fused`'s shape, layout and dtype, the contiguous run
/// geometry (`n` runs per channel of `s` values, `c` channels) when channel
/// tasks apply, and the targets for train and backward (issue 13's for
/// `f32`, issue 11's for half data). The replay moves the same bytes as
/// `f32` words, so a half tensor is replayed as half as many words.
struct Case {
    name: &'static str,
    shape: Vec<usize>,
    layout: Layout,
    dtype: DType,
    runs: Option<(usize, usize, usize)>,
    targets: [f64; 2],
}

fn cases() -> Vec<Case> {
    let case = |name, shape: &[usize], layout, dtype, runs, targets| Case {
        name,
        shape: shape.to_vec(),
        layout,
        dtype,
        runs,
        targets,
    };
    let (big, runs) = ([64, 64, 56, 56], Some((64, 64, 56 * 56)));
    let (contiguous, last) = (Layout::Contiguous, Layout::ChannelsLast);
    vec![
        case(
            "64x64x56x56 contiguous",
            &big,
            contiguous,
            DType::F32,
            runs,
            [1.4, 2.0],
        ),
        case(
            "64x64x56x56 channels-last",
            &big,
            last,
            DType::F32,
            None,
            [1.6, 2.5],
        ),
        case(
            "4096x4096 (N, C)",
            &[4096, 4096],
            contiguous,
            DType::F32,
            None,
            [1.6, 2.2],
        ),
        case(
            "64x64x56x56 contiguous",
            &big,
            contiguous,
            DType::BF16,
            runs,
            [1.6, 2.5],
        ),
        case(
            "64x64x56x56 channels-last",
            &big,
            last,
            DType::BF16,
            None,
            [1.6, 2.5],
        ),
    ]
}

fn main() {
    if listing_only() {
        return;
    }
    if !replay::supported() {
        println!("traffic: skipped, the replay loops need x86-64 with AVX2");
        return;
    }
    let rounds = rounds_from_env("BN_TRAFFIC_ROUNDS", 5, "traffic");
    let pool = one_thread_pool();
    println!("| shape | dtype | op | schedule | replay | fused | fastest copy | replay / copy | fused / copy | target |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    pool.install(|| {
        for case in cases() {
            probe(&case, rounds);
        }
    });
}

/// The median of `v` (not empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one round times, in order.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Copy(Copy),
    Read,
    Fused(Op),
    Sweeps(Op),
    SweepsBack(Op),
    Tasks(Op),
}

fn probe(case: &Case, rounds: usize) {
    let fused = bn_impls::registry::all()
        .iter()
        .copied()
        .find(|i| i.info().name == "fused")
        .expect("fused is registered");
    let point = BenchPoint {
        shape: Shape::new(case.shape.clone()).expect("probe shapes are valid"),
        layout: case.layout,
    };
    let mut work = workload(&point, case.dtype, false).expect("probe shapes are valid");
    let bytes = case.shape.iter().product::<usize>() * case.dtype.size();
    let words = |v: usize| {
        assert!((v * case.dtype.size()).is_multiple_of(4), "whole f32 words");
        v * case.dtype.size() / 4
    };
    let mut bufs = replay::Buffers::new(bytes / 4);
    let src: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut dst = vec![0u8; bytes];
    let ops = [Op::Train, Op::Backward];
    let mut variants: Vec<Variant> = Copy::ALL.map(Variant::Copy).to_vec();
    variants.push(Variant::Read);
    for op in ops {
        variants.push(Variant::Fused(op));
        variants.push(Variant::Sweeps(op));
        variants.push(Variant::SweepsBack(op));
        if case.runs.is_some() {
            variants.push(Variant::Tasks(op));
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (v, t) in variants.iter().zip(&mut times) {
            t.push(median_ms(|| match *v {
                Variant::Copy(c) => c.run(&mut dst, &src, 1),
                Variant::Read => {
                    std::hint::black_box(roofline::read(&src, 1));
                }
                Variant::Fused(op) => work.call(fused, op).expect("fused call"),
                Variant::Sweeps(op) => bufs.sweeps(op == Op::Backward),
                Variant::SweepsBack(op) => bufs.sweeps_back(op == Op::Backward),
                Variant::Tasks(op) => {
                    let (n, c, s) = case.runs.expect("tasks only with runs");
                    bufs.tasks(op == Op::Backward, (n, c, words(s)));
                }
            }));
        }
    }
    let med: Vec<f64> = times.into_iter().map(median).collect();
    let of = |want: Variant| variants.iter().position(|&v| v == want).map(|i| med[i]);
    let copy = Copy::ALL
        .iter()
        .filter_map(|&c| of(Variant::Copy(c)))
        .fold(f64::INFINITY, f64::min);
    let read = of(Variant::Read).expect("read timed");
    println!(
        "| {} | {} | read only | – | {read:.2} ms | | {copy:.2} ms | {:.2} | | |",
        case.name,
        case.dtype.name(),
        read / copy
    );
    for (op, target) in ops.into_iter().zip(case.targets) {
        let fused = of(Variant::Fused(op)).expect("fused timed");
        let schedules = [
            ("sweeps", Variant::Sweeps(op)),
            ("sweeps, second from the end", Variant::SweepsBack(op)),
            ("channel tasks", Variant::Tasks(op)),
        ];
        for (schedule, v) in schedules {
            if let Some(r) = of(v) {
                println!(
                    "| {} | {} | {} | {schedule} | {r:.2} ms | {fused:.2} ms | {copy:.2} ms | {:.2} | {:.2} | ≤ {target} |",
                    case.name,
                    case.dtype.name(),
                    op.name(),
                    r / copy,
                    fused / copy
                );
            }
        }
    }
}

/// The replay loops (x86-64, AVX2; the element-wise pass in AVX-512F where
/// present) and their buffers.
mod replay {
    /// Whether this CPU runs the loops.
    pub fn supported() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Values per block of [`Buffers::sweeps_back`] (256 KiB of `f32`).
    const BLOCK: usize = 1 << 16;

    /// `x`, `dy` and an output of `len` `f32` values; the output starts on
    /// a 64-byte line (streaming stores).
    pub struct Buffers {
        len: usize,
        x: Vec<f32>,
        dy: Vec<f32>,
        y: Vec<f32>,
        skip: usize,
    }

    impl Buffers {
        /// Allocate and fill (values in [-1, 3)).
        pub fn new(len: usize) -> Buffers {
            let v = |i: usize| (i % 1000) as f32 * 0.004 - 1.0;
            let y = vec![0.0f32; len + 16];
            let skip = (64 - y.as_ptr() as usize % 64) % 64 / 4;
            Buffers {
                len,
                x: (0..len).map(v).collect(),
                dy: (0..len).map(|i| v(i * 7)).collect(),
                y,
                skip,
            }
        }

        /// The two sweeps: reduce all of `x` (and `dy` when `backward`),
        /// then the element-wise pass over all of it.
        pub fn sweeps(&mut self, backward: bool) {
            let n = self.len;
            self.reduce(0, n, n, backward);
            self.pass(0, n, backward);
        }

        /// The two sweeps, the element-wise pass in blocks of [`BLOCK`]
        /// values from the end: its first blocks are the reduction's last,
        /// which may still be in the L3.
        pub fn sweeps_back(&mut self, backward: bool) {
            let n = self.len;
            self.reduce(0, n, n, backward);
            let mut end = n;
            while end > 0 {
                let at = end.saturating_sub(BLOCK);
                self.pass(at, end - at, backward);
                end = at;
            }
        }

        /// Channel tasks over `n` runs of `s` values per channel, `c`
        /// channels (run `(i, ch)` at `(i·c + ch)·s`): a channel's runs
        /// reduced, its reduction's prefetch chained into its next run (the
        /// next channel's first after its last), then its element-wise
        /// pass run by run.
        pub fn tasks(&mut self, backward: bool, (n, c, s): (usize, usize, usize)) {
            assert_eq!(n * c * s, self.len, "run geometry");
            for ch in 0..c {
                for i in 0..n {
                    let next = if i + 1 < n {
                        ((i + 1) * c + ch) * s
                    } else {
                        (ch + 1).min(c - 1) * s
                    };
                    self.reduce((i * c + ch) * s, s, next, backward);
                }
                for i in 0..n {
                    self.pass((i * c + ch) * s, s, backward);
                }
            }
        }

        /// Sums `x[at..at + len]` (and `dy`'s), prefetching ahead into
        /// `next..` past the end.
        fn reduce(&self, at: usize, len: usize, next: usize, backward: bool) {
            assert!(at + len <= self.len && next <= self.len, "reduce bounds");
            #[cfg(target_arch = "x86_64")]
            {
                assert!(supported(), "replay loops need AVX2");
                let (x, dy) = (self.x.as_ptr(), self.dy.as_ptr());
                // SAFETY: AVX2 (asserted); `at + len <= self.len` values of
                // `x` and `dy` (asserted); prefetches never fault.
                let s = unsafe {
                    let a = x86::sum(x.add(at), len, x.add(next));
                    if backward {
                        a + x86::sum(dy.add(at), len, dy.add(next))
                    } else {
                        a
                    }
                };
                std::hint::black_box(s);
            }
        }

        /// `y = x + 1` (or `x + dy` when `backward`) over `at..at + len`,
        /// streamed.
        fn pass(&mut self, at: usize, len: usize, backward: bool) {
            assert!(at + len <= self.len, "pass bounds");
            #[cfg(target_arch = "x86_64")]
            {
                assert!(supported(), "replay loops need AVX2");
                let y = self.y[self.skip..].as_mut_ptr();
                let (x, dy) = (self.x.as_ptr(), self.dy.as_ptr());
                // SAFETY: AVX2 (asserted); `at + len` values of `x`, `dy`
                // and of `y` past `skip` (it holds `len + 16`, `skip < 16`).
                unsafe {
                    let (x, dy, y) = (x.add(at), backward.then(|| dy.add(at)), y.add(at));
                    if is_x86_feature_detected!("avx512f") {
                        x86::pass512(x, dy, y, len)
                    } else {
                        x86::pass(x, dy, y, len)
                    }
                };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        /// How far ahead the loops prefetch (as `fused`'s passes past the caches).
        const AHEAD: usize = (8 << 10) / 4;

        /// Sum of `len` values at `p`, four registers of 8 lanes; prefetches
        /// [`AHEAD`] values on, continuing at `next` past the end.
        ///
        /// # Safety
        /// AVX2; `p` valid for `len` reads.
        #[target_feature(enable = "avx2")]
        pub unsafe fn sum(p: *const f32, len: usize, next: *const f32) -> f32 {
            let mut acc = [_mm256_setzero_ps(); 4];
            let body = len / 32 * 32;
            let mut i = 0;
            while i < body {
                for h in [0, 16] {
                    let j = i + h + AHEAD;
                    let q = if j < len {
                        p.wrapping_add(j)
                    } else {
                        next.wrapping_add(j - len)
                    };
                    // A prefetch never faults, whatever the address.
                    _mm_prefetch::<_MM_HINT_T0>(q.cast());
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    // SAFETY: i + 8r + 8 <= body <= len (contract).
                    *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(p.add(i + 8 * r)) });
                }
                i += 32;
            }
            let mut s = [0.0f32; 8];
            let t = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            // SAFETY: `s` holds 8 values.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), t) };
            // SAFETY: body + j < len (contract).
            s.iter().sum::<f32>() + (body..len).map(|j| unsafe { *p.add(j) }).sum::<f32>()
        }

        /// [`pass`] with 512-bit registers: whole-line loads and streaming
        /// stores, as `fused` and the roofline's copy use where the CPU has
        /// AVX-512 (32-byte stores write each line in two halves).
        ///
        /// # Safety
        /// AVX-512F; as [`pass`].
        #[target_feature(enable = "avx512f")]
        pub unsafe fn pass512(x: *const f32, dy: Option<*const f32>, y: *mut f32, len: usize) {
            let one = _mm512_set1_ps(1.0);
            let lead = ((64 - y as usize % 64) % 64 / 4).min(len);
            let body = lead + (len - lead) / 16 * 16;
            // SAFETY (both scalar loops and the body): j < len values of
            // every array (contract); `y.add(i)` is 64-byte aligned in the
            // body (from `lead`).
            let one_at =
                |j: usize| unsafe { *y.add(j) = *x.add(j) + dy.map_or(1.0, |d| *d.add(j)) };
            (0..lead).chain(body..len).for_each(one_at);
            let mut i = lead;
            while i < body {
                // Prefetches never fault, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(i + AHEAD).cast());
                if let Some(d) = dy {
                    _mm_prefetch::<_MM_HINT_T0>(d.wrapping_add(i + AHEAD).cast());
                }
                // SAFETY: i + 16 <= body <= len; `y.add(i)` aligned (above).
                unsafe {
                    let b = dy.map_or(one, |d| _mm512_loadu_ps(d.add(i)));
                    _mm512_stream_ps(y.add(i), _mm512_add_ps(_mm512_loadu_ps(x.add(i)), b));
                }
                i += 16;
            }
            _mm_sfence();
        }

        /// `y = x + dy` (`x + 1` without `dy`) over `len` values, streamed
        /// where `y` is 32-byte aligned, prefetching [`AHEAD`] values on.
        ///
        /// # Safety
        /// AVX2; `x`, `dy` valid for `len` reads, `y` for `len` writes.
        #[target_feature(enable = "avx2")]
        pub unsafe fn pass(x: *const f32, dy: Option<*const f32>, y: *mut f32, len: usize) {
            let one = _mm256_set1_ps(1.0);
            let lead = ((32 - y as usize % 32) % 32 / 4).min(len);
            let body = lead + (len - lead) / 8 * 8;
            // SAFETY (both scalar loops and the body): j < len values of
            // every array (contract); `y.add(i)` is 32-byte aligned in the
            // body (from `lead`).
            let one_at =
                |j: usize| unsafe { *y.add(j) = *x.add(j) + dy.map_or(1.0, |d| *d.add(j)) };
            (0..lead).chain(body..len).for_each(one_at);
            let mut i = lead;
            while i < body {
                if (i - lead).is_multiple_of(16) {
                    // Prefetches never fault, whatever the address.
                    _mm_prefetch::<_MM_HINT_T0>(x.wrapping_add(i + AHEAD).cast());
                    if let Some(d) = dy {
                        _mm_prefetch::<_MM_HINT_T0>(d.wrapping_add(i + AHEAD).cast());
                    }
                }
                // SAFETY: i + 8 <= body <= len; `y.add(i)` aligned (above).
                unsafe {
                    let b = dy.map_or(one, |d| _mm256_loadu_ps(d.add(i)));
                    _mm256_stream_ps(y.add(i), _mm256_add_ps(_mm256_loadu_ps(x.add(i)), b));
                }
                i += 8;
            }
            _mm_sfence();
        }
    }
}
