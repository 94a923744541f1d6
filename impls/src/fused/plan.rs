//! `fused`'s fixed work decomposition. Every size here is a function of the
//! dims only — never of the thread count — so chunk boundaries, and with
//! them every rounding, are the same in any rayon pool.

use super::simd::nt;
use super::simd::runs::SWEEP_MIN_RUN;
use super::simd::{Lane, Level};
use super::task_rule::{self, TaskOp};
use crate::element::DType;
use crate::engine::caches::{caches, Caches};
use crate::engine::plan::{is_parallel, SuperRow};
use crate::layout::{Dims, Layout};

/// Values of one channel per contiguous reduction chunk (whole runs).
pub const CHUNK: usize = 1 << 16;
/// Elements per task of an element-wise pass.
pub const TASK: usize = 1 << 16;
/// Elements per channels-last reduction chunk, at least.
const ROW_CHUNK: usize = 1 << 17;
/// Rows per channels-last reduction chunk, at least: each chunk writes one
/// partial per channel, so with many channels short chunks would turn into
/// partial traffic (128 rows keep it under 2 % of the input for `f32`).
const MIN_CHUNK_ROWS: usize = 128;
/// Narrowest super-row: `m` rows of few channels are one row of ≥ 64 lanes.
const MIN_LANES: usize = 64;

/// Largest per-channel footprint (bytes of the arrays read) for which a
/// task owns whole channels and runs its second pass from cache (L2 plus a
/// share of L3 on the machine this was tuned on).
pub const CHANNEL_CACHE: usize = 2 << 20;

/// Largest per-channel footprint of a channel task on this machine: an
/// eighth of the L3, at least [`CHANNEL_CACHE`] and at most twice it (so
/// 4 MiB with a 32 MiB L3; unknown caches: `CHANNEL_CACHE`). Where one
/// core's L2 is smaller than a channel, its second pass reads from the L3,
/// which still beats a second read from memory. On the 2-core EPYC VM
/// (Zen 5, 1 MiB L2, 32 MiB L3, 2026-12-05; A/B of 2 MiB against 4 MiB,
/// `bnh bench`, 3–4 alternated rounds, absolute medians), backward with
/// 3.2 MB channels: `f64` 64×64×56×56 0.83× at 2 threads and 0.92× at 1,
/// `f32` 128×64×56×56 0.75× at 2 threads and level at 1; shapes with
/// smaller channels unchanged.
pub fn channel_cache() -> usize {
    let l3 = caches().map_or(0, |c| c.l3);
    (l3 / 8).clamp(CHANNEL_CACHE, 2 * CHANNEL_CACHE)
}
/// Shortest runs for which channel tasks pay: with short runs the second
/// pass jumps between many short stretches, which prefetches worse than
/// the address-ordered pass. 512 (was 1024) brings the 28×28 shapes in:
/// train/backward 12-25 % faster on the 2-core Xeon VM (A/B, best of 3),
/// 16×16 runs (256) measured level either way and stay out. Tried and not
/// kept (2026-12-02): tasks only for tensors of 12 MiB and more — 32×64×28×28
/// backward 0.92–0.97× (`f32`, `bf16`; 0.89–0.90× at 2 threads), but
/// 8×64×28×28 and 4×256×28×28 backward 1.15–1.34× slower (`f32`, `f64`).
const CHANNEL_MIN_RUN: usize = 512;
/// Shortest task stretch (bytes of one array) for which channel tasks of
/// runs shorter than [`CHANNEL_MIN_RUN`] pay, now that a stretch is one
/// kernel call. Backward on the 2-core Xeon VM (`f32`, 1 thread, A/B, 3
/// alternated rounds, tasks against address order): stretches of 7.8 KB
/// (16×256×14×14) 0.79×, 4 KB (32×64×16×16) 0.77×, 2 KB (64×128×8×8)
/// 0.93×; 1 KB (128×64×16×16) 1.14×, 512 B (256×64×8×8) 1.80×, 256 B
/// (1024×64×8×8) 3.7× — short stretches starve the reduction's prefetch.
const CHANNEL_MIN_STRETCH: usize = 2 << 10;
/// Fewest batch rows for which channel tasks of runs shorter than
/// [`CHANNEL_MIN_RUN`] run as pipelines ([`pipelined_tasks`]).
const PIPELINE_MIN_ROWS: usize = 64;

/// Whether backward's channel tasks run as pipelines, one task's `dx`
/// beside the next task's sums in lock step (`fused::backward`): for runs
/// of at least `CHANNEL_MIN_RUN` (512) values, and for shorter runs with at
/// least `PIPELINE_MIN_ROWS` (64) batch rows. On the 2-core Xeon VM (`f32`, 1
/// thread, A/B against separate passes, 3 alternated rounds): 32×64×28×28
/// 0.85–0.90×, 4×256×28×28 0.90×, 8×64×28×28 0.87×, 64×128×8×8 0.92×,
/// 64×256×8×8 0.91×; but short runs in fewer rows were slower — 16×512×8×8
/// 1.05× (1.14× at 2 threads), 32×256×8×8 1.07×, 32×128×8×8 1.07×,
/// 24×512×7×7 1.06×, 16×256×8×8 1.03× — and stay with separate passes
/// (a small loss at most: unchanged paths measured 1.02–1.05× in the same
/// builds).
pub fn pipelined_tasks(dims: Dims) -> bool {
    dims.s >= CHANNEL_MIN_RUN || dims.n >= PIPELINE_MIN_ROWS
}

/// Input bytes a channel task aims for.
const CHANNEL_TASK: usize = 256 << 10;

/// Output bytes from which the element-wise passes write with
/// non-temporal stores ([`super::simd::nt`]). A smaller output may still be
/// in cache when the next operation reads it, which streaming throws away:
/// on the 2-core Xeon VM (2 MiB L2 per core) 6.4 MB outputs (32×64×28×28
/// `f32`) measured up to 1.2× slower streamed, 12.8 MB level to faster
/// (channels-last 0.84–0.95×), 25 MB and more 0.55–0.8×. Since the
/// prefetches (which stay from [`PREFETCH_MIN_BYTES`]) 12.6–16.8 MB
/// outputs are faster unstreamed (2026-12-03, A/B `f32`, 1 thread, 4
/// alternated rounds in both orders: 256×3×64×64 and 8×32×16×32×32 eval
/// 0.91–0.95×, train 0.94–0.96×, backward 0.91–0.97×, both layouts; `f64`
/// 32×64×28×28 level), 25.7 MB level (128×64×28×28 channels-last), so the
/// threshold moved from 12 to 24 MiB.
pub const STREAM_MIN_BYTES: usize = 24 << 20;
/// Input bytes from which reductions prefetch ([`prefetch_reads`]).
pub const PREFETCH_MIN_BYTES: usize = 12 << 20;
/// Shortest contiguous run written with streaming stores. Each run aligns
/// its own stores with a scalar head, so the lines it shares with its
/// neighbours get ordinary stores between streaming ones: with 28×28 runs
/// (784, 2 of every 49 lines) eval/train were 1.2–1.75× *slower* than
/// without streaming on the 2-core Xeon VM (A/B, 12.8 MB outputs), 56×56
/// runs (3136) faster. That was run by run; passes now sweep across run
/// ends ([`super::simd::runs::sweep`]), and this stays the minimum for
/// channel tasks' passes ([`stream_task_runs`]) and the length below which
/// an address-ordered sweep needs [`SWEEP_SHORT_MIN_BYTES`]
/// ([`stream_sweep`]). Channels-last passes sweep across row ends
/// ([`super::simd::rows`]).
pub const STREAM_MIN_RUN: usize = 2048;

/// Whether an element-wise pass writing `len` elements of `T` streams them:
/// outputs of [`stream_min_bytes`] or more, or passes whose `arrays`
/// tensor-sized arrays (inputs read and outputs written, `len` elements
/// each) together exceed the level-3 cache ([`exceeds_l3`]).
pub fn stream<T>(len: usize, arrays: usize) -> bool {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    bytes >= stream_min_bytes() || exceeds_l3(bytes.saturating_mul(arrays))
}

/// Whether a pass over `bytes` (every array it reads and writes) overflows
/// the level-3 cache, so that ordinary stores' write-allocated lines evict
/// the inputs the next operation reads: its output then streams, whatever
/// its size. On the 2-core EPYC VM (Zen 5, 1 MiB L2, 32 MiB L3,
/// 2026-12-04; A/B, `bnh bench`, 1 thread, 3 alternated rounds, paired
/// medians, streamed ÷ ordinary), channels-last backward (`x`, `dy`, `dx`):
/// `f64` 64×512×7×7 (38.5 MB) 0.72–0.74×, `f64` 32×64×28×28 (38.5 MB)
/// 0.70×, `f32` 8×32×16×32×32 (50 MB) 0.86× (contiguous 0.82×), `f32`
/// 256×3×64×64 contiguous (37.7 MB) 0.89×; passes that fit (`f32`
/// 64×512×7×7, 19 MB) and outputs already streamed unchanged. At the
/// border, eval and train of `f32` 8×32×16×32×32 (`x` and `y`, 33.5 MB
/// against 32 MiB) measured level (0.98–1.02×, 6 rounds). At 2 threads
/// (4–6 rounds, absolute medians) 8×32×16×32×32 backward 0.90–0.94×,
/// 256×3×64×64 level. Unknown caches: never.
pub fn exceeds_l3(bytes: usize) -> bool {
    exceeds(bytes, caches().map(|c| c.l3))
}

/// [`exceeds_l3`] with a level-3 cache of `l3` bytes (`None`, or 0: unknown).
fn exceeds(bytes: usize, l3: Option<usize>) -> bool {
    matches!(l3, Some(l3) if l3 > 0 && bytes > l3)
}

/// Output bytes from which element-wise passes stream on this machine:
/// [`STREAM_MIN_BYTES`], or the level-3 cache where it is smaller (an
/// output larger than the L3 is out of cache when the next operation reads
/// it, whatever its stores). The 24 MiB were measured on machines with 32
/// MiB or more of L3; on the 2-core Zen 2 VM (16 MiB L3, 2026-12-04; A/B
/// at 16 MiB, `bnh bench`, `f32`, 1 thread, 3 alternated rounds, ratio to
/// the copy), 8×32×16×32×32 (16.8 MB) streamed took 0.74–0.75× the time in
/// eval, 0.77–0.80× in train and 0.86× / 0.97× in backward (channels-last
/// / contiguous). Only speed depends on it: streamed stores write the same
/// bits.
pub fn stream_min_bytes() -> usize {
    match caches() {
        Some(c) if c.l3 > 0 => c.l3.min(STREAM_MIN_BYTES),
        _ => STREAM_MIN_BYTES,
    }
}

/// Whether a channels-last (or (N, C)) element-wise pass writing `len`
/// elements of `T` streams its output: [`stream`], and only `f32`/`f64`
/// data. Half data write half a line per register, and on the 2-core Xeon
/// VM (whose 300 MB L3 holds these tensors) their streaming stores were
/// slower than ordinary ones: A/B of the builds (`bnh bench --impls fused`,
/// 1 thread, 2 alternated rounds, paired medians) channels-last
/// 64×64×56×56 `bf16`/`f16` eval 0.90×/0.92×, train 0.94×/0.95×, backward
/// 0.96×/0.95×; (N, C) 4096×4096 eval 0.95×/1.01×, train 1.00×/0.96×,
/// backward 0.98×/0.97× without them. Contiguous passes: [`half_streams`].
pub fn stream_out<T: Lane>(len: usize, arrays: usize) -> bool {
    stream::<T>(len, arrays) && !T::NARROW
}

/// Bytes of one channels-last row (one value per channel) from which half
/// data stream their normalize output anyway ([`stream_rows`]).
pub const HALF_STREAM_MIN_ROW_BYTES: usize = 8 << 10;

/// Whether the channels-last (or (N, C)) normalize pass of eval and train,
/// writing `len` elements of `T` in rows of `lanes` channels, streams its
/// output: [`stream_out`], or half data of at least
/// [`HALF_STREAM_MIN_ROW_BYTES`] per row (4096 channels). On the 2-core
/// EPYC VM (Zen 4, 32 MiB L3; 2026-12-03, 4 alternated rounds, 1 thread)
/// streaming (N, C) 4096×4096 took 0.65–0.71× the time in `bf16`/`f16`
/// eval and 0.66–0.88× in train, where on the Xeon VM it was level
/// (0.95–1.01×, above); but channels-last 64×64×56×56 (64 channels) was
/// 1.26–1.76× slower streamed there, so short rows keep ordinary stores.
pub fn stream_rows<T: Lane>(len: usize, lanes: usize, arrays: usize) -> bool {
    let long = lanes.saturating_mul(std::mem::size_of::<T>()) >= HALF_STREAM_MIN_ROW_BYTES;
    stream::<T>(len, arrays) && (!T::NARROW || long)
}

/// Whether a reduction reading `len` elements of `T` per input runs at the
/// streaming level for its prefetches ([`super::simd::nt::prefetch`]; a
/// reduction stores no data, so nothing else changes): inputs of at least
/// [`PREFETCH_MIN_BYTES`] (12 MiB). On the 2-core Xeon VM (A/B alternated per cell, 6 rounds)
/// the `f32` statistics then took 0.77–0.87× the time in train and 0.84×
/// in channels-last backward on 64×64×56×56 and 4096×4096.
pub fn prefetch_reads<T>(len: usize) -> bool {
    len.saturating_mul(std::mem::size_of::<T>()) >= PREFETCH_MIN_BYTES
}

/// Input bytes from which channels-last reductions over rows of more than
/// [`STRIDED_MIN_LANES`] channels prefetch ([`prefetch_rows`]).
pub const PREFETCH_STRIDED_MIN_BYTES: usize = 2 << 20;
/// Channels per row from which the channels-last reductions read a tile's
/// rows in several column blocks (AVX-512: blocks of 64 lanes), so each
/// block walks the tile's rows at a stride of a row, not in address order
/// (AVX2's blocks are narrower: 8 or 16 lanes).
pub const STRIDED_MIN_LANES: usize = 65;

/// Whether a channels-last reduction over `len` elements of `T` in rows of
/// `lanes` channels runs at the prefetching level: [`prefetch_reads`], or
/// rows read in strided column blocks ([`STRIDED_MIN_LANES`]) once the
/// inputs outgrow L2 ([`PREFETCH_STRIDED_MIN_BYTES`]). The hardware
/// prefetchers follow address order, not the blocks' stride. On the 2-core
/// EPYC VM (Zen 4, 1 MiB L2, 32 MiB L3), 2026-12-03:
/// - a C microbenchmark of the backward sums' loop (512-lane `f32` rows,
///   12.8 MB of `x` and `dy`, in L3; medians of 31) took 0.6–0.7× the time
///   with the lines 4–8 rows ahead prefetched; 64-lane rows, read in
///   address order, gained nothing;
/// - `bnh bench`, channels-last 64×512×7×7, 1 thread, builds alternated
///   over 10 rounds in two sittings: `f32` backward 0.62–0.94× in 9 rounds
///   (one at 1.44×), train within noise (median 0.95×), `bf16` level.
pub fn prefetch_rows<T>(len: usize, lanes: usize) -> bool {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    prefetch_reads::<T>(len) || (lanes >= STRIDED_MIN_LANES && bytes >= PREFETCH_STRIDED_MIN_BYTES)
}

/// Whether a contiguous reduction prefetches: [`prefetch_reads`], and in
/// channel tasks ([`channel_tasks`]) only along runs of at least ¾ of
/// [`nt::PREFETCH_BYTES`]. A task reduces a channel's runs chained (lines
/// past a run's end are taken from the next run at the same distance `D`),
/// so of a run of `R < D` bytes only `(2R − D)/R` of the prefetched lines
/// fall in the next run (none when `R ≤ D/2`; ⅔ at `R = ¾D`, 56×56 `bf16`
/// 0.69); the rest lie past it, where the task never reads. On the 2-core
/// Xeon VM (A/B, `f32`, 1 thread, 2 alternated rounds) without them: contiguous
/// 128×64×28×28 (3 KiB runs) train 0.79–0.83×, backward 0.85–0.88×;
/// 64×1024×8×8 (256 B) 0.91–0.99× / 0.72–0.78×; but 64×64×56×56 (12.5 KiB)
/// 1.08–1.15×, which keeps them.
pub fn prefetch_contiguous<T>(dims: Dims, in_channel_tasks: bool) -> bool {
    let run = dims.s * std::mem::size_of::<T>();
    prefetch_reads::<T>(dims.len()) && (!in_channel_tasks || 4 * run >= 3 * nt::PREFETCH_BYTES)
}

/// The level of a channel task's element-wise pass ([`channel_tasks`]),
/// given the streaming level `lv` ([`stream_task_runs`]): without software
/// prefetch ([`Level::inputs_cached`]) where one core's L2 holds a task's
/// largest footprint ([`CHANNEL_CACHE`]) or the caches are unknown; with it
/// where the L2 is smaller. The prefetches run in address order, so past
/// each run's end they reach into the next task's run of the same batch
/// row, which that task's reduction then finds in cache; and they bring
/// back a channel the small L2 could not keep. On the 2-core Xeon VM
/// (2 MiB L2) the pass was faster without them (see
/// [`Level::inputs_cached`]); on the 2-core EPYC VM (Zen 5, 1 MiB L2,
/// 2026-12-05) contiguous `f32` 64×64×56×56 backward took 1.6 ms less
/// with them (timers in a scratch build: sums 3.4 → 1.85 ms, `dx` 4.2 →
/// 4.0 ms), and the A/B is in docs/BENCHMARKS.md.
pub fn task_pass_level(lv: Level) -> Level {
    match task_passes_prefetch(caches()) {
        true => lv,
        false => lv.inputs_cached(),
    }
}

/// [`task_pass_level`]'s rule on a machine with caches `c`.
fn task_passes_prefetch(c: Option<Caches>) -> bool {
    c.is_some_and(task_rule::small_l2)
}

/// Whether the element-wise pass of a channel task ([`channel_tasks`])
/// streams its output: [`stream`], runs of at least [`STREAM_MIN_RUN`], and
/// only `f32`/`f64` data. There the second pass reads from cache and
/// alternates with the next task's read from memory, and `bf16`
/// train/backward on 64×64×56×56 measured 1.17–1.28× slower streamed
/// (`f32` 0.78–1.07×, `f64` 0.75–0.81×; A/B on the 2-core Xeon VM).
/// Address-ordered passes use [`stream_sweep`]. Half data as
/// [`half_streams`].
pub fn stream_task_runs<T: Lane>(dims: Dims, pass: Pass, arrays: usize) -> bool {
    stream::<T>(dims.len(), arrays) && dims.s >= STREAM_MIN_RUN && half_streams::<T>(pass)
}

/// The contiguous element-wise pass a streaming rule decides for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Eval, or train's normalize pass: reads `x`, writes `y`.
    Normalize,
    /// Backward's `dx` pass: reads `x` and `dy`, writes `dx`.
    Dx,
}

/// Whether a contiguous pass over data of type `T` may stream its output
/// ([`stream_sweep`], [`stream_task_runs`]): `f32` and `f64` always; half
/// data only in the normalize pass of `f16`. On the 2-core Zen 2 VM
/// (2026-12-04, AVX2; page-aligned buffers, A/B of the builds, 4 alternated
/// rounds, 1 thread, ratio to the copy), streamed: `f16` eval 0.79× /
/// 0.75× on 64×64×56×56 / 32×64×112×112 and train 0.85× / 0.91×, where
/// `bf16` measured 1.08× / 1.07× and 1.04× / 1.05× (its rounding is a
/// dozen integer instructions per register on AVX2, `f16`'s one
/// `vcvtps2ph`; why that makes streaming lose was not found), and half
/// backward's `dx` 0.97–0.99× (level). The earlier measurements that kept
/// all half data out (here and at [`stream_out`]) were taken in processes
/// whose buffers could sit 16 bytes apart in page offset, where streaming
/// stalls ([`nt::aliased`]; since then guarded, and `bnh bench` aligns its
/// buffers to pages).
pub fn half_streams<T: Lane>(pass: Pass) -> bool {
    !T::NARROW || (pass == Pass::Normalize && T::DTYPE == DType::F16)
}

/// Output bytes from which a sweep over runs shorter than
/// [`STREAM_MIN_RUN`] streams ([`stream_sweep`]). Swept eval on the 2-core
/// Xeon VM (A/B against ordinary stores, 3–4 alternated rounds, 1 thread):
/// 16.8 MB outputs level to slower (1024×64×8×8 `f32` 0.99–1.04×, `bf16`
/// 2048×64×8×8 1.0–1.13×), 25.7 MB `f32` 128×64×28×28 1.02–1.03×, 33.5 MB
/// and more faster (`f32` 2048×64×8×8 0.74–0.86×, 64×2048×8×8 0.75–0.89×,
/// 4096×64×8×8 0.57×). With this threshold, `f32` 1 thread: train
/// 0.88×/0.82×/0.64× and backward 0.85×/0.86×/0.76× on 2048×64×8×8 /
/// 64×2048×8×8 / 4096×64×8×8 (3 rounds).
pub const SWEEP_SHORT_MIN_BYTES: usize = 32 << 20;

/// Whether a contiguous element-wise pass that sweeps each task's runs as
/// one stretch ([`super::simd::runs::affine_runs_post`]) streams its output:
/// [`stream`], and runs of at least [`SWEEP_MIN_RUN`] — the sweep aligns
/// its stores once per task, not per run, so [`STREAM_MIN_RUN`] does not
/// apply. (A task whose runs mix `f32` and `f64` coefficients — half data
/// with a coefficient out of `f32`'s range — falls back to one streaming
/// call per run: correct, but slower than ordinary stores below
/// `STREAM_MIN_RUN`.) Half data as [`half_streams`].
pub fn stream_sweep<T: Lane>(dims: Dims, pass: Pass, arrays: usize) -> bool {
    if !half_streams::<T>(pass) {
        return false;
    }
    let bytes = dims.len().saturating_mul(std::mem::size_of::<T>());
    let short = dims.s < STREAM_MIN_RUN;
    stream::<T>(dims.len(), arrays)
        && dims.s >= SWEEP_MIN_RUN
        && (!short || bytes >= SWEEP_SHORT_MIN_BYTES)
}

/// Runs per contiguous reduction chunk.
pub fn runs_per_chunk(dims: Dims) -> usize {
    (CHUNK / dims.s).max(1)
}

/// Number of contiguous reduction chunks per channel.
pub fn chunks(dims: Dims) -> usize {
    dims.n.div_ceil(runs_per_chunk(dims))
}

/// Channels per contiguous reduction item: enough that an item reads about
/// [`CHUNK`] values, and that the item's runs in one batch row — read as
/// one address-ordered stretch, one kernel call — hold at least
/// `MIN_STRETCH` (4096) values. Changes who computes a chunk, never its result.
/// In a pool of several threads, no wider than leaves `ITEMS_PER_THREAD` (2)
/// items per thread where the channels allow (1024×64×8×8 has one chunk
/// per channel: all 64 channels in one item would leave one thread idle).
pub fn item_channels(dims: Dims) -> usize {
    let by_chunk = CHUNK / dims.per_channel().min(CHUNK);
    let cb = by_chunk.max(MIN_STRETCH.div_ceil(dims.s));
    let threads = rayon::current_num_threads();
    let cap = if threads > 1 && is_parallel(dims) {
        let blocks = (ITEMS_PER_THREAD * threads).div_ceil(chunks(dims));
        dims.c.div_ceil(blocks)
    } else {
        dims.c
    };
    cb.min(cap).clamp(1, dims.c)
}

/// Fewest reduction items per thread of a pool, where the channels allow.
const ITEMS_PER_THREAD: usize = 2;

/// Fewest values per batch row of a contiguous reduction item. With items of
/// [`CHUNK`] values alone, a large batch of short runs (4096×64×8×8: 2^18
/// values per channel) got one channel per item, read as one 64-value run
/// every 16 KiB with a kernel call per run.
const MIN_STRETCH: usize = 4096;

/// Channels per task when `op`'s tasks own whole channels (contiguous layout,
/// `bytes` per channel over the arrays read, `elem` bytes per value), or
/// `None` when that does not pay: runs of at least `CHANNEL_MIN_RUN` (512)
/// values, or shorter runs whose task stretches (the task's runs in one
/// batch row, read and written as one) hold `CHANNEL_MIN_STRETCH` (2 KiB),
/// on a machine where they pay ([`task_rule::TaskRule::Machine`]).
/// Uses the thread count, so both schedules compute the same bits (see
/// `reduce`): only speed depends on the choice.
pub fn channel_tasks(op: TaskOp, dims: Dims, bytes: usize, elem: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    let ok = dims.layout == Layout::Contiguous
        && is_parallel(dims)
        && bytes <= channel_cache()
        && dims.c >= 4 * threads
        && task_rule::allows(op, bytes.saturating_mul(dims.c), threads);
    let cpt = (CHANNEL_TASK / bytes.max(1)).clamp(1, (dims.c / (4 * threads)).max(1));
    let long = dims.s >= CHANNEL_MIN_RUN || cpt * dims.s * elem >= CHANNEL_MIN_STRETCH;
    (ok && long).then_some(cpt)
}

/// Channels-last geometry: super-rows, reduction chunks, element-wise tasks.
#[derive(Debug, Clone, Copy)]
pub struct Rows {
    /// Super-row of `m` rows, `l` lanes.
    pub sr: SuperRow,
    /// Rows per reduction chunk (a multiple of `m`).
    pub chunk_rows: usize,
    /// Rows per element-wise task (a multiple of `m`).
    pub task_rows: usize,
}

impl Rows {
    /// Geometry of rows of `c` channels. Few channels: `m` rows with
    /// `m·c ≥ 64` and `m·c` a multiple of 8, so no lane is left to scalar code.
    pub fn new(c: usize) -> Rows {
        let m = if c >= MIN_LANES {
            1
        } else {
            let step = 8 / gcd(c, 8);
            MIN_LANES.div_ceil(c).div_ceil(step) * step
        };
        let sr = SuperRow { c, m, l: m * c };
        let chunk = ROW_CHUNK.div_ceil(sr.l).max(MIN_CHUNK_ROWS.div_ceil(m));
        Rows {
            sr,
            chunk_rows: chunk * m,
            task_rows: (TASK / sr.l).max(1) * m,
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::{exceeds, half_streams, task_passes_prefetch, Pass};
    use crate::engine::caches::Caches;

    /// Channel tasks' element-wise passes prefetch only where one core's
    /// L2 is smaller than a task's largest footprint (the 1 MiB L2 of the
    /// EPYC VMs, not the Xeon's 2 MiB), never where the caches are unknown.
    #[test]
    fn task_passes_prefetch_only_below_a_channel_task_in_l2() {
        let with = |l2: usize| Some(Caches { l2, l3: 32 << 20 });
        assert!(task_passes_prefetch(with(1 << 20)));
        assert!(task_passes_prefetch(with((2 << 20) - 1)));
        assert!(!task_passes_prefetch(with(2 << 20)));
        assert!(!task_passes_prefetch(None));
    }

    /// A pass overflows the L3 only past its size, and never where the
    /// size is unknown.
    #[test]
    fn footprints_overflow_a_known_l3_only_past_its_size() {
        let l3 = 32 << 20;
        assert!(!exceeds(l3, Some(l3)));
        assert!(exceeds(l3 + 1, Some(l3)));
        assert!(!exceeds(usize::MAX, None));
        assert!(!exceeds(usize::MAX, Some(0)));
    }

    /// Full-width data stream in every contiguous pass; of the half types
    /// only `f16`, and only in the normalize pass (see `half_streams`).
    #[test]
    fn half_data_stream_only_f16_normalize_passes() {
        for pass in [Pass::Normalize, Pass::Dx] {
            assert!(half_streams::<f32>(pass) && half_streams::<f64>(pass));
            assert!(!half_streams::<half::bf16>(pass));
        }
        assert!(half_streams::<half::f16>(Pass::Normalize));
        assert!(!half_streams::<half::f16>(Pass::Dx));
    }
}
