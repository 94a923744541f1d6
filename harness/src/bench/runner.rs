//! Timing one measurement: warm-up, samples until `--min-time`, median and
//! spread, with the roofline copies and the read-only pass timed interleaved.
//!
//! Method (after hyperfine and criterion, simplified for in-process calls):
//! 1. warm-up: call the operation, each roofline copy and the read pass
//!    alternately for a tenth of `min_time` (at least once each), which maps
//!    pages, fills caches and estimates the cost of one call;
//! 2. batch size: calls shorter than [`TARGET_SAMPLE`] are grouped so each
//!    timed sample lasts about that long (timer resolution stays negligible);
//! 3. sampling: one sample of the operation, then one sample of the next
//!    roofline probe in rotation (memcpy, vector copy, non-temporal copy,
//!    read pass), repeated until the operation's samples add up to
//!    `min_time` and each probe has [`MIN_PROBE_SAMPLES`], so machine drift
//!    (frequency, other processes) affects both the same way;
//! 4. statistics: median, 10th and 90th percentile of the per-call times.
//!    The probes' samples are returned whole: the sweep pools them per size
//!    and thread count over the whole run and divides every row by the best
//!    copy of the run ([`super::sweep`]).

use super::roofline::Copy;
use super::workload::Workload;
use super::Op;
use bn_impls::Implementation;
use std::time::{Duration, Instant};

/// Fewest timed samples per measurement, however slow the call.
pub const MIN_SAMPLES: usize = 5;
/// Fewest samples of each roofline probe per measurement.
pub const MIN_PROBE_SAMPLES: usize = 2;
/// Most timed samples per measurement, however fast the call.
pub const MAX_SAMPLES: usize = 2000;
/// Aim for samples at least this long: far above timer resolution.
pub const TARGET_SAMPLE: Duration = Duration::from_micros(100);

/// The roofline probes timed beside each measurement: the three copies,
/// then the read-only pass.
const PROBES: usize = Copy::ALL.len() + 1;

/// Per-call times (ns) of the roofline probes taken during one measurement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    /// Samples of each copy, indexed like [`Copy::ALL`].
    pub copies: [Vec<f64>; 3],
    /// Samples of the read-only pass.
    pub read: Vec<f64>,
}

impl Probes {
    /// Add another measurement's samples (the sweep pools a whole run).
    pub fn extend(&mut self, other: &Probes) {
        for (a, b) in self.copies.iter_mut().zip(&other.copies) {
            a.extend_from_slice(b);
        }
        self.read.extend_from_slice(&other.read);
    }

    /// The fastest copy by median, with its median (None without samples).
    pub fn best_copy(&self) -> Option<(Copy, f64)> {
        Copy::ALL
            .into_iter()
            .zip(&self.copies)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (c, median(v)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Median of the read-only pass (None without samples).
    pub fn read_median(&self) -> Option<f64> {
        (!self.read.is_empty()).then(|| median(&self.read))
    }

    fn count(&self, probe: usize) -> usize {
        match self.copies.get(probe) {
            Some(v) => v.len(),
            None => self.read.len(),
        }
    }

    fn push(&mut self, probe: usize, ns: f64) {
        match self.copies.get_mut(probe) {
            Some(v) => v.push(ns),
            None => self.read.push(ns),
        }
    }
}

/// Timings of one measurement, in nanoseconds per call.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub median_ns: f64,
    pub p10_ns: f64,
    pub p90_ns: f64,
    pub samples: usize,
    /// The roofline probes timed interleaved with this measurement.
    pub probes: Probes,
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

fn median(v: &[f64]) -> f64 {
    percentile(&sorted(v.to_vec()), 0.5)
}

/// Calls per sample so one sample lasts about [`TARGET_SAMPLE`].
fn batch_for(per_call: Duration) -> usize {
    let per = per_call.as_nanos().max(1);
    (TARGET_SAMPLE.as_nanos() / per).clamp(1, 1_000_000) as usize
}

/// Run roofline probe `probe` (an index of [`Copy::ALL`], or the read pass
/// after them) once.
fn run_probe(work: &mut Workload, probe: usize, threads: usize) {
    match Copy::ALL.get(probe) {
        Some(&c) => work.copy(c, threads),
        None => {
            std::hint::black_box(work.read(threads));
        }
    }
}

/// Time `op` of `imp` on `work` for about `min_time`, with the roofline
/// probes interleaved at `threads` threads. Call it inside the rayon pool
/// the measurement is for.
pub fn measure(
    work: &mut Workload,
    imp: &dyn Implementation,
    op: Op,
    threads: usize,
    min_time: Duration,
) -> crate::Result<Timing> {
    // Warm-up, and per-call estimates.
    let warm_budget = min_time / 10;
    let (mut op_calls, mut op_time) = (0u32, Duration::ZERO);
    let mut probe_time = [Duration::ZERO; PROBES];
    let warm_start = Instant::now();
    while op_calls == 0 || warm_start.elapsed() < warm_budget {
        let t = Instant::now();
        work.call(imp, op)?;
        op_time += t.elapsed();
        op_calls += 1;
        for (probe, time) in probe_time.iter_mut().enumerate() {
            let t = Instant::now();
            run_probe(work, probe, threads);
            *time += t.elapsed();
        }
    }
    let op_batch = batch_for(op_time / op_calls);
    let probe_batch = probe_time.map(|t| batch_for(t / op_calls));

    let mut op_samples = Vec::new();
    let mut probes = Probes::default();
    let mut spent = Duration::ZERO;
    let enough = |ops: usize, probes: &Probes, spent: Duration| {
        ops >= MAX_SAMPLES
            || (spent >= min_time
                && ops >= MIN_SAMPLES
                && (0..PROBES).all(|p| probes.count(p) >= MIN_PROBE_SAMPLES))
    };
    while !enough(op_samples.len(), &probes, spent) {
        let t = Instant::now();
        for _ in 0..op_batch {
            work.call(imp, op)?;
        }
        let dt = t.elapsed();
        spent += dt;
        op_samples.push(dt.as_nanos() as f64 / op_batch as f64);
        let probe = (op_samples.len() - 1) % PROBES;
        // One untimed call first: it pays the write-back of the operation's
        // dirty lines, so the timed probe measures the copy alone (the
        // hardest ruler; the copy never gets a cache the operation warmed,
        // as every probe reads `x` and the operation left `y` dirty).
        run_probe(work, probe, threads);
        let t = Instant::now();
        for _ in 0..probe_batch[probe] {
            run_probe(work, probe, threads);
        }
        probes.push(
            probe,
            t.elapsed().as_nanos() as f64 / probe_batch[probe] as f64,
        );
    }
    let ops = sorted(op_samples);
    Ok(Timing {
        median_ns: percentile(&ops, 0.5),
        p10_ns: percentile(&ops, 0.1),
        p90_ns: percentile(&ops, 0.9),
        samples: ops.len(),
        probes,
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
