//! The conditioning sweep: data of growing offset/spread ratio, size and
//! magnitude, run through every implementation's kernels and compared with
//! the oracle.
//!
//! A point is `(offset_ratio r, n_per_channel m, scale s)`: each channel holds
//! `x = s·(r + z)` with `z ~ N(0, 1)` rounded to the dtype, so the batch mean
//! is ≈ `s·r` and the spread `s`; `r` is the condition number of the
//! variance (Chan, Golub & LeVeque 1983: the textbook one-pass formula loses
//! about `2·log10(r)` digits, a two-pass one in the data's precision about
//! `log10(r)` through the rounded mean). `eps` is scaled with the data
//! (`1e-5·s²`) so that `BN(x; eps)` is the same function at every magnitude
//! (`BN(a·x; a²·eps) = BN(x; eps)`) and only the arithmetic is under test.
//! Inputs are exact values of the dtype; the oracle works on those exact
//! values, so input rounding is not counted as error.
//!
//! Measured outputs ("ops"): `y` (training forward), `batch_mean` and
//! `batch_var` (the statistics that feed the running buffers), and
//! `grad_input`, `grad_weight` (= Σdy·x̂) of the training backward with
//! `dy ~ N(0, 1)`. The backward uses the implementation's own forward
//! statistics, as the module does, so errors compound as in real use.

use super::export::AccuracyRow;
use crate::data::{round_to, Rng};
use crate::dd::DD;
use crate::error::{Error, Result};
use crate::oracle::{self, metrics::compare};
use bn_impls::{
    kernel, Affine, Backward, DType, Dims, Element, ForDtype, GradMode, Implementation,
};
use bn_impls::{Layout, TrainForward};
use rayon::prelude::*;

/// Channels per sweep batch: two, so every point also checks that channels stay apart.
pub const CHANNELS: usize = 2;

/// Bytes one point holds per value of `x`, with room to spare: `x`, `dy`
/// and five references in `f64`, the oracle's double-double `y` and
/// `grad_input` (16 bytes each) and their temporaries, the implementation's
/// outputs and their widened copies.
pub const BYTES_PER_VALUE: usize = 160;

/// The outputs a point measures, in CSV order.
pub const OPS: [&str; 5] = ["y", "batch_mean", "batch_var", "grad_input", "grad_weight"];

/// The axes of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Mean/spread ratios (≥ 1).
    pub offset_ratios: Vec<f64>,
    /// Values per channel N·S (≥ 2).
    pub n_per_channel: Vec<usize>,
    /// Spreads (the magnitude of the data), positive and finite.
    pub scales: Vec<f64>,
}

impl Grid {
    /// The full sweep: ratios 1..1e8 by decades, 2..1e6 values per channel,
    /// magnitudes 1e-30..1e30.
    pub fn full() -> Grid {
        Grid {
            offset_ratios: (0..=8).map(|k| 10f64.powi(k)).collect(),
            n_per_channel: vec![2, 100, 10_000, 1_000_000],
            scales: vec![1e-30, 1e-15, 1.0, 1e15, 1e30],
        }
    }

    /// A few seconds' worth: the ends and the middle of every axis.
    pub fn quick() -> Grid {
        Grid {
            offset_ratios: vec![1.0, 1e4, 1e6, 1e8],
            n_per_channel: vec![2, 1000],
            scales: vec![1e-30, 1.0, 1e30],
        }
    }

    /// Drop sizes above `max_n` (keeps at least the smallest size).
    pub fn cap_n(mut self, max_n: usize) -> Result<Grid> {
        if max_n < 2 {
            return Err(Error::Usage(format!(
                "--max-n {max_n} is too small; batch statistics need at least 2 values per channel"
            )));
        }
        self.n_per_channel.retain(|&n| n <= max_n);
        if self.n_per_channel.is_empty() {
            self.n_per_channel.push(max_n);
        }
        Ok(self)
    }

    /// Bytes the sweep may hold at once: [`BYTES_PER_VALUE`] per value of
    /// the largest point, times the points that run in parallel (one per
    /// rayon thread). Checked against the memory budget before sweeping.
    pub fn memory_needed(&self, dtypes: &[DType]) -> u64 {
        let largest = self.n_per_channel.iter().copied().max().unwrap_or(0);
        let jobs = self.points().len() * dtypes.len();
        let at_once = rayon::current_num_threads().min(jobs).max(1);
        (largest as u64)
            .saturating_mul((CHANNELS * BYTES_PER_VALUE) as u64)
            .saturating_mul(at_once as u64)
    }

    /// Every point of the grid, sizes last-varying so work spreads evenly.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for &offset_ratio in &self.offset_ratios {
            for &scale in &self.scales {
                for &n in &self.n_per_channel {
                    out.push(Point {
                        offset_ratio,
                        n_per_channel: n,
                        scale,
                    });
                }
            }
        }
        out
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub offset_ratio: f64,
    pub n_per_channel: usize,
    pub scale: f64,
}

impl Point {
    /// The batch shape: `(m/4, C, 2, 2)` channels-first when 4 divides `m`
    /// (so spatial indexing is exercised), else `(m, C)`.
    pub fn shape(&self) -> Vec<usize> {
        let m = self.n_per_channel;
        if m.trailing_zeros() >= 2 {
            vec![m / 4, CHANNELS, 2, 2]
        } else {
            vec![m, CHANNELS]
        }
    }

    /// `eps` scaled with the data (see the module docs).
    pub fn eps(&self) -> f64 {
        (1e-5 * self.scale * self.scale).max(f64::MIN_POSITIVE)
    }

    /// Whether the point's data fits `dtype` with its full precision: the
    /// largest values (`s·(r + 8)`, 8 standard deviations out) at most a
    /// quarter of the largest finite value, and the spread `s` a normal
    /// number with all its significant bits (no subnormal loss). Points that
    /// do not fit (1e30 in f16, say) are left out of that dtype's sweep.
    pub fn fits(&self, dtype: DType) -> bool {
        let smallest = (dtype.min_exponent() + dtype.mantissa_bits() as i32).min(0);
        self.scale * (self.offset_ratio + 8.0) <= dtype.max_finite() / 4.0
            && self.scale >= 2f64.powi(smallest)
    }

    fn seed(&self, base: u64) -> u64 {
        base ^ self.offset_ratio.to_bits().rotate_left(7)
            ^ self.scale.to_bits().rotate_left(19)
            ^ (self.n_per_channel as u64).rotate_left(41)
    }
}

/// Inputs of a point in the dtype, with the oracle's results.
struct Prepared {
    dims: Dims,
    x: Vec<f64>,
    dy: Vec<f64>,
    eps: f64,
    reference: [Vec<f64>; 5],
}

fn prepare(p: &Point, dtype: DType, seed: u64) -> Result<Prepared> {
    let dims = Dims::from_shape("x", &p.shape(), Layout::Contiguous)?;
    let mut rng = Rng::new(p.seed(seed));
    let x: Vec<f64> = (0..dims.len())
        .map(|_| round_to(dtype, p.scale * (p.offset_ratio + rng.normal())))
        .collect();
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(Error::Usage(format!(
            "scale {} × offset ratio {} gives {bad} in {dtype}; use smaller magnitudes",
            p.scale, p.offset_ratio
        )));
    }
    let dy = rng.normal_vec(dims.len(), 0.0, 1.0, dtype);
    let eps = p.eps();
    let stats = oracle::batch_stats(&x, &dims);
    let y = oracle::normalize(&x, &dims, &stats, None, None, eps);
    let g = oracle::backward(&x, &dy, &dims, &stats, None, eps, GradMode::Batch);
    let f = |v: Vec<DD>| v.into_iter().map(DD::to_f64).collect::<Vec<f64>>();
    let reference = [
        f(y),
        f(stats.mean.clone()),
        f(stats.var.clone()),
        f(g.grad_input),
        f(g.grad_weight),
    ];
    Ok(Prepared {
        dims,
        x,
        dy,
        eps,
        reference,
    })
}

/// The implementation's outputs for a point, widened to `f64`, in [`OPS`] order.
fn run_impl<T: Element>(imp: &dyn Implementation, p: &Prepared) -> Result<[Vec<f64>; 5]> {
    let k = kernel::<T>(imp)?;
    let dims = p.dims;
    let x: Vec<T> = p.x.iter().map(|&v| T::from_f64(v)).collect();
    let dy: Vec<T> = p.dy.iter().map(|&v| T::from_f64(v)).collect();
    let mut y = vec![T::zero(); x.len()];
    let mut dx = vec![T::zero(); x.len()];
    let (mut mean, mut var) = (vec![0.0; dims.c], vec![0.0; dims.c]);
    k.try_forward_train(TrainForward::new(
        dims.tensor(&x)?,
        dims.tensor_mut(&mut y)?,
        Affine::default(),
        p.eps,
        &mut mean,
        &mut var,
    )?)?;
    let (mut gw, mut gb) = (vec![0.0; dims.c], vec![0.0; dims.c]);
    k.try_backward(Backward::new(
        dims.tensor(&x)?,
        dims.tensor(&dy)?,
        dims.tensor_mut(&mut dx)?,
        &mean,
        &var,
        None,
        p.eps,
        GradMode::Batch,
        &mut gw,
        &mut gb,
    )?)?;
    let wide = |v: Vec<T>| v.into_iter().map(T::as_f64).collect::<Vec<f64>>();
    Ok([wide(y), mean, var, wide(dx), gw])
}

/// Non-finite values where the oracle's value is finite.
fn nan_count(got: &[f64], reference: &[f64]) -> usize {
    got.iter()
        .zip(reference)
        .filter(|(g, r)| !g.is_finite() && r.is_finite())
        .count()
}

/// [`run_impl`] for a runtime dtype.
struct RunImpl<'a>(&'a dyn Implementation, &'a Prepared);

impl ForDtype for RunImpl<'_> {
    type Output = Result<[Vec<f64>; 5]>;
    fn call<T: Element>(self) -> Self::Output {
        run_impl::<T>(self.0, self.1)
    }
}

/// An implementation that declined a point (a plugin returning nonzero, a
/// dtype it lacks): `(implementation, dtype, reason)`, not an error.
type Declined = (String, DType, String);

/// Measure one point for every implementation in one dtype; implementations
/// that decline it are left out and listed.
fn measure(
    p: &Point,
    dtype: DType,
    impls: &[&'static dyn Implementation],
    seed: u64,
) -> Result<(Vec<AccuracyRow>, Vec<Declined>)> {
    let prep = prepare(p, dtype, seed)?;
    let mut rows = Vec::new();
    let mut declined = Vec::new();
    for &imp in impls {
        let got = match dtype.dispatch(RunImpl(imp, &prep)) {
            Ok(got) => got,
            Err(Error::Bn(e)) if e.is_unsupported() => {
                declined.push((imp.info().name.to_string(), dtype, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        for (k, op) in OPS.iter().enumerate() {
            let e = compare(&got[k], &prep.reference[k], dtype);
            rows.push(AccuracyRow {
                imp: imp.info().name.to_string(),
                dtype: dtype.name().to_string(),
                op: op.to_string(),
                n_per_channel: p.n_per_channel,
                offset_ratio: p.offset_ratio,
                scale: p.scale,
                max_rel_err: e.rel,
                max_ulp_err: e.ulps,
                nan_count: nan_count(&got[k], &prep.reference[k]),
            });
        }
    }
    Ok((rows, declined))
}

/// One line per (implementation, dtype) that declined points: how many, and
/// the first reason (printed, so the missing rows are explained).
fn report_declined(declined: &[Declined]) {
    let mut seen: Vec<(&str, DType)> = Vec::new();
    for (imp, dtype, why) in declined {
        if seen.contains(&(imp.as_str(), *dtype)) {
            continue;
        }
        seen.push((imp, *dtype));
        let count = declined
            .iter()
            .filter(|(i, d, _)| i == imp && d == dtype)
            .count();
        crate::output::stdout::warn(&format!(
            "bnh accuracy: skipped {} on {dtype} at {count} point(s): declined as unsupported ({})",
            crate::output::escape(imp),
            crate::output::escape(why)
        ));
    }
}

/// Run the sweep: every point × dtype that [fits](Point::fits), points in
/// parallel (rayon), rows in a deterministic order (point, dtype,
/// implementation, op). `progress` is called after each finished point with
/// (done, total).
pub fn run(
    grid: &Grid,
    dtypes: &[DType],
    impls: &[&'static dyn Implementation],
    seed: u64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<AccuracyRow>> {
    let jobs: Vec<(Point, DType)> = grid
        .points()
        .into_iter()
        .flat_map(|p| dtypes.iter().map(move |&d| (p, d)))
        .filter(|(p, d)| p.fits(*d))
        .collect();
    let total = jobs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Result<(Vec<AccuracyRow>, Vec<Declined>)>> = jobs
        .par_iter()
        .map(|(p, d)| {
            let r = measure(p, *d, impls, seed);
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(k, total);
            r
        })
        .collect();
    let (mut rows, mut declined) = (Vec::new(), Vec::new());
    for part in parts {
        let (r, d) = part?;
        rows.extend(r);
        declined.extend(d);
    }
    report_declined(&declined);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stable_impl_is_accurate_and_naive_f32_fails_at_a_large_offset() {
        let grid = Grid {
            offset_ratios: vec![1.0, 1e6],
            n_per_channel: vec![100],
            scales: vec![1.0],
        };
        let impls = [
            bn_impls::registry::by_name("naive").unwrap(),
            bn_impls::registry::by_name("welford").unwrap(),
        ];
        let rows = run(&grid, &[DType::F32], &impls, 1, &|_, _| {}).unwrap();
        assert_eq!(rows.len(), 2 * 2 * OPS.len());
        let worst = |imp: &str, r: f64| {
            rows.iter()
                .filter(|x| x.imp == imp && x.offset_ratio == r)
                .map(|x| x.max_rel_err)
                .fold(0.0, f64::max)
        };
        assert!(worst("welford", 1e6) < 1e-6, "{}", worst("welford", 1e6));
        assert!(worst("naive", 1.0) < 1e-5);
        assert!(worst("naive", 1e6) > 1e-2, "{}", worst("naive", 1e6));
    }

    /// Worst `max_ulp_err` of `op` per implementation over `rows`.
    fn worst_ulps(rows: &[AccuracyRow], imp: &str, op: &str) -> f64 {
        rows.iter()
            .filter(|r| r.imp == imp && r.op == op)
            .map(|r| r.max_ulp_err)
            .fold(0.0, f64::max)
    }

    /// At N·S = 2 exact `grad_input` is only about `ε/σ²` of its terms, so
    /// any error in the terms shows; `f32` data in `f64` lanes still round
    /// each `dx` once, at every offset. Fails if channels-last/(N, C)
    /// backward folds the shift into `dx`'s constant under eval's `2^24`
    /// bound (26–96 ulps at offsets 1e5–1e6, measured) instead of
    /// `coeffs::DX_FOLD_RATIO`.
    #[test]
    fn f32_grad_input_is_rounded_once_where_it_cancels() {
        let grid = Grid {
            offset_ratios: (0..=8).map(|k| 10f64.powi(k)).collect(),
            n_per_channel: vec![2, 100],
            scales: vec![1.0, 1e15],
        };
        let impls =
            ["welford", "parallel", "fused"].map(|n| bn_impls::registry::by_name(n).unwrap());
        let rows = run(&grid, &[DType::F32], &impls, 1, &|_, _| {}).unwrap();
        for imp in ["welford", "parallel", "fused"] {
            for op in ["y", "grad_input"] {
                let w = worst_ulps(&rows, imp, op);
                assert!(w <= 1.0, "{imp} f32 {op}: {w} ulps");
            }
        }
    }

    /// Half data compute `dx` in `f32` lanes, so where it cancels (N·S = 2)
    /// the terms' `f32` roundings show as ulps of the output: without the
    /// shift's fold, 10.7 `bf16` ulps and 1.8 `f16` ulps at offset 3 (seed
    /// 1, measured). The fold must add little to that; under eval's bound
    /// (`2^10` `bf16`, `2^7` `f16`) it gave 22.6 `f16` ulps at offset 10.
    #[test]
    fn half_grad_input_keeps_near_the_unfolded_error_where_it_cancels() {
        let grid = Grid {
            offset_ratios: vec![1.0, 3.0, 10.0, 30.0, 100.0, 1000.0],
            n_per_channel: vec![2],
            scales: vec![1.0],
        };
        let fused = [bn_impls::registry::by_name("fused").unwrap()];
        let rows = run(&grid, &[DType::BF16, DType::F16], &fused, 1, &|_, _| {}).unwrap();
        for (dtype, bound) in [("f16", 4.0), ("bf16", 16.0)] {
            let mine: Vec<AccuracyRow> =
                rows.iter().filter(|r| r.dtype == dtype).cloned().collect();
            let w = worst_ulps(&mine, "fused", "grad_input");
            assert!(w <= bound, "fused {dtype} grad_input: {w} ulps > {bound}");
        }
    }

    #[test]
    fn grid_points_and_caps() {
        let g = Grid::quick();
        assert_eq!(g.points().len(), 4 * 2 * 3);
        assert_eq!(g.clone().cap_n(100).unwrap().n_per_channel, vec![2]);
        assert!(g.cap_n(1).is_err());
        let p = Point {
            offset_ratio: 1.0,
            n_per_channel: 100,
            scale: 1.0,
        };
        assert_eq!(p.shape(), vec![25, CHANNELS, 2, 2]);
        assert_eq!(
            Point {
                n_per_channel: 2,
                ..p
            }
            .shape(),
            vec![2, CHANNELS]
        );
    }
}
