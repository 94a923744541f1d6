//! Timing one measurement: warm-up, samples until `--min-time`, median and
//! spread, with a memcpy of the same tensor timed interleaved.
//!
//! Method (after hyperfine and criterion, simplified for in-process calls):
//! 1. warm-up: call the operation and the copy alternately for a tenth of
//!    `min_time` (at least once each), which maps pages, fills caches and
//!    estimates the cost of one call;
//! 2. batch size: calls shorter than [`TARGET_SAMPLE`] are grouped so each
//!    timed sample lasts about that long (timer resolution stays negligible);
//! 3. sampling: one sample of the operation, then one of the copy, repeated
//!    until the operation's samples add up to `min_time` (and at least
//!    [`MIN_SAMPLES`]), so machine drift (frequency, other processes) affects
//!    both the same way;
//! 4. statistics: median, 10th and 90th percentile of the per-call times.

use super::workload::Workload;
use super::Op;
use bn_impls::Implementation;
use std::time::{Duration, Instant};

/// Fewest timed samples per measurement, however slow the call.
pub const MIN_SAMPLES: usize = 5;
/// Most timed samples per measurement, however fast the call.
pub const MAX_SAMPLES: usize = 2000;
/// Aim for samples at least this long: far above timer resolution.
pub const TARGET_SAMPLE: Duration = Duration::from_micros(100);

/// Timings of one measurement, in nanoseconds per call.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub median_ns: f64,
    pub p10_ns: f64,
    pub p90_ns: f64,
    pub memcpy_ns: f64,
    pub samples: usize,
}

/// Linear-interpolated percentile `q` in [0, 1] of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Calls per sample so one sample lasts about [`TARGET_SAMPLE`].
fn batch_for(per_call: Duration) -> usize {
    let per = per_call.as_nanos().max(1);
    (TARGET_SAMPLE.as_nanos() / per).clamp(1, 1_000_000) as usize
}

/// Time `op` of `imp` on `work` for about `min_time`, with the interleaved
/// memcpy roofline at `threads` threads. Call it inside the rayon pool the
/// measurement is for.
pub fn measure(
    work: &mut Workload,
    imp: &dyn Implementation,
    op: Op,
    threads: usize,
    min_time: Duration,
) -> crate::Result<Timing> {
    // Warm-up, and per-call estimates.
    let warm_budget = min_time / 10;
    let (mut op_calls, mut op_time, mut cp_calls, mut cp_time) =
        (0u32, Duration::ZERO, 0u32, Duration::ZERO);
    let warm_start = Instant::now();
    while op_calls == 0 || warm_start.elapsed() < warm_budget {
        let t = Instant::now();
        work.call(imp, op)?;
        op_time += t.elapsed();
        op_calls += 1;
        let t = Instant::now();
        work.memcpy(threads);
        cp_time += t.elapsed();
        cp_calls += 1;
    }
    let op_batch = batch_for(op_time / op_calls);
    let cp_batch = batch_for(cp_time / cp_calls);

    let mut op_samples = Vec::new();
    let mut cp_samples = Vec::new();
    let mut spent = Duration::ZERO;
    while op_samples.len() < MAX_SAMPLES && (spent < min_time || op_samples.len() < MIN_SAMPLES) {
        let t = Instant::now();
        for _ in 0..op_batch {
            work.call(imp, op)?;
        }
        let dt = t.elapsed();
        spent += dt;
        op_samples.push(dt.as_nanos() as f64 / op_batch as f64);
        let t = Instant::now();
        for _ in 0..cp_batch {
            work.memcpy(threads);
        }
        cp_samples.push(t.elapsed().as_nanos() as f64 / cp_batch as f64);
    }
    let ops = sorted(op_samples);
    let cps = sorted(cp_samples);
    Ok(Timing {
        median_ns: percentile(&ops, 0.5),
        p10_ns: percentile(&ops, 0.1),
        p90_ns: percentile(&ops, 0.9),
        memcpy_ns: percentile(&cps, 0.5),
        samples: ops.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert!((percentile(&v, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn batches_short_calls_only() {
        assert_eq!(batch_for(Duration::from_millis(5)), 1);
        assert_eq!(batch_for(Duration::from_micros(1)), 100);
    }
}
