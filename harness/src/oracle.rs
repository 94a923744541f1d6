//! The oracle: batch norm computed in double-double, to measure every
//! implementation's error against.
//!
//! It is deliberately independent of the implementations: it does not use
//! `bn_impls::formulas`, `moments` or `Dims::offset`, and it is not
//! registered as an implementation. It transcribes the definitions
//! (Ioffe & Szegedy 2015, Algorithm 1 and §3; the module rules of
//! `docs/BN-CASE-FORMAT.md`) in [`DD`] arithmetic (≈106-bit significands):
//! - batch mean `μ = Σx / m` with a double-double sum (exact for any
//!   realistic batch: every `f32` and `f64` input is exact in `DD`);
//! - biased variance by two passes, `σ² = Σ(x − μ)² / m`, with the
//!   double-double `μ`, so a large offset against a small spread costs
//!   nothing (the textbook one-pass `E[x²] − μ²` is not used);
//! - `y = (x − μ)/√(σ² + ε)·w + b`, the running-statistics update, and the
//!   backward pass `dx = w/√(σ²+ε) · (dy − Σdy/m − x̂·Σ(dy·x̂)/m)` (batch
//!   statistics) or `dx = dy·w/√(σ²+ε)` (fixed statistics);
//! - with an activation ([`step_act`]): `relu(bn(x) [+ residual])` on the
//!   double-double value, and the backward with `dy` masked where that exact
//!   output is `<= 0` (PyTorch's ReLU: NaN kept, its gradient passed).
//!
//! Inputs are `f64` slices in the tensor's memory order (`f32` data widens
//! exactly); results are rounded once to `f64` at the end, so they are
//! correct to about one `f64` ulp — far below the error of any `f32`
//! implementation and below the tolerance for `f64` ones. The [`metrics`]
//! below turn a comparison into the numbers the tests bound.

use crate::case::{Case, Outputs};
use crate::data::round_to;
use crate::dd::DD;
use crate::error::Result;
use crate::num::{to_f64s, to_nums, Num};
use crate::run::Outcome;
use bn_impls::{Activation, DType, Dims, Error as BnError, GradMode, Layout};

/// Channel of the element at flat offset `i`, written from the layout's
/// definition (contiguous = row-major (N, C, S); channels-last = row-major (N, S, C)).
fn channel_of(dims: &Dims, i: usize) -> usize {
    match dims.layout {
        Layout::Contiguous => (i / dims.s) % dims.c,
        Layout::ChannelsLast => i % dims.c,
    }
}

/// Per-channel statistics in double-double.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub mean: Vec<DD>,
    /// Biased variance (divided by m = N·S).
    pub var: Vec<DD>,
}

impl Stats {
    /// Given (running) statistics, e.g. for eval mode.
    pub fn given(mean: &[f64], var: &[f64]) -> Stats {
        Stats {
            mean: mean.iter().copied().map(DD::from).collect(),
            var: var.iter().copied().map(DD::from).collect(),
        }
    }

    /// `1 / √(σ² + ε)` per channel. Where `σ² + ε` is 0, negative, NaN or
    /// +inf (eval with eps 0, a negative running variance, NaN or inf eps,
    /// all of which PyTorch accepts) the IEEE answer (+inf, NaN, NaN, 0) is
    /// exact and double-double arithmetic would only add NaN error terms.
    pub fn inv_std(&self, eps: f64) -> Vec<DD> {
        self.var
            .iter()
            .map(|&v| {
                let s = v + eps;
                if s.hi > 0.0 && s.hi.is_finite() {
                    s.sqrt().recip()
                } else {
                    DD::from(1.0 / s.hi.sqrt())
                }
            })
            .collect()
    }
}

/// Batch mean and biased variance of every channel, two passes in double-double.
pub fn batch_stats(x: &[f64], dims: &Dims) -> Stats {
    let m = dims.n * dims.s;
    let mut sums = vec![DD::ZERO; dims.c];
    for (i, &v) in x.iter().enumerate() {
        let c = channel_of(dims, i);
        sums[c] = sums[c] + v;
    }
    let mean: Vec<DD> = sums.into_iter().map(|s| s / m as f64).collect();
    let mut sq = vec![DD::ZERO; dims.c];
    for (i, &v) in x.iter().enumerate() {
        let c = channel_of(dims, i);
        let d = DD::from(v) - mean[c];
        sq[c] = sq[c] + d.sqr();
    }
    let var = sq.into_iter().map(|s| s / m as f64).collect();
    Stats { mean, var }
}

/// `y = (x − μ)/√(σ² + ε)·w + b` for every element (memory order kept).
pub fn normalize(
    x: &[f64],
    dims: &Dims,
    stats: &Stats,
    weight: Option<&[f64]>,
    bias: Option<&[f64]>,
    eps: f64,
) -> Vec<DD> {
    let inv = stats.inv_std(eps);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = channel_of(dims, i);
            let w = weight.map_or(1.0, |w| w[c]);
            let b = bias.map_or(0.0, |b| b[c]);
            if !inv[c].hi.is_finite() {
                // ±inf or NaN scale: IEEE f64 gives PyTorch's ±inf / NaN per
                // element (double-double error terms of ∞ are NaN).
                return DD::from((v - stats.mean[c].hi) * inv[c].hi * w + b);
            }
            let x_hat = (DD::from(v) - stats.mean[c]) * inv[c];
            x_hat * w + b
        })
        .collect()
}

/// One training step's update of the running buffers: `nbt + 1`, factor =
/// momentum or `1/nbt` (an `f64`, as PyTorch computes it), and
/// `r ← (1 − f)·r + f·batch`, with the unbiased variance `σ²·m/(m − 1)`.
/// `m` is the count the batch statistics averaged over; it must be ≥ 2
/// ([`step`] rejects smaller batches, as the module does).
pub fn update_running(
    running_mean: &[f64],
    running_var: &[f64],
    num_batches_tracked: i64,
    momentum: Option<f64>,
    stats: &Stats,
    m: usize,
) -> (Vec<DD>, Vec<DD>, i64) {
    let nbt = num_batches_tracked.saturating_add(1); // as the module: saturate at i64::MAX
    let factor = momentum.unwrap_or(1.0 / nbt as f64);
    let keep = DD::ONE - factor;
    let bessel = DD::from(m as f64) / DD::from((m - 1) as f64);
    let blend = |r: f64, b: DD| keep * r + b * factor;
    let rm = running_mean
        .iter()
        .zip(&stats.mean)
        .map(|(&r, &b)| blend(r, b))
        .collect();
    let rv = running_var
        .iter()
        .zip(&stats.var)
        .map(|(&r, &b)| blend(r, b * bessel))
        .collect();
    (rm, rv, nbt)
}

/// Gradients in double-double.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    pub grad_input: Vec<DD>,
    /// `Σ dy·x̂` per channel.
    pub grad_weight: Vec<DD>,
    /// `Σ dy` per channel.
    pub grad_bias: Vec<DD>,
}

/// The backward pass for the statistics the forward normalized with.
pub fn backward(
    x: &[f64],
    dy: &[f64],
    dims: &Dims,
    stats: &Stats,
    weight: Option<&[f64]>,
    eps: f64,
    mode: GradMode,
) -> Grads {
    let m = (dims.n * dims.s) as f64;
    let inv = stats.inv_std(eps);
    let x_hat = |i: usize, c: usize| (DD::from(x[i]) - stats.mean[c]) * inv[c];
    let mut sum_dy = vec![DD::ZERO; dims.c];
    // `Σ dy·x̂ = (Σ dy·(x − μ))·inv`, in PyTorch's order (`dotp · invstd`):
    // equal in exact arithmetic, and with an infinite `inv` (eps 0 on a zero
    // variance) it is PyTorch's ±inf where `Σ dy·(x − μ)·inv` would be NaN.
    let mut sum_dy_xc = vec![DD::ZERO; dims.c];
    for (i, &g) in dy.iter().enumerate() {
        let c = channel_of(dims, i);
        sum_dy[c] = sum_dy[c] + g;
        sum_dy_xc[c] = sum_dy_xc[c] + (DD::from(x[i]) - stats.mean[c]) * g;
    }
    let sum_dy_xhat: Vec<DD> = sum_dy_xc
        .iter()
        .zip(&inv)
        .map(|(&s, &v)| {
            if v.hi.is_finite() {
                s * v
            } else {
                DD::from(s.hi * v.hi)
            }
        })
        .collect();
    let grad_input = dy
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let c = channel_of(dims, i);
            let scale = inv[c] * weight.map_or(1.0, |w| w[c]);
            if !scale.hi.is_finite() {
                // As in `normalize`: IEEE arithmetic for a non-finite scale
                // (only reachable with fixed statistics: eps 0 on a zero variance).
                return DD::from(match mode {
                    GradMode::Batch => f64::NAN,
                    GradMode::Fixed => scale.hi * g,
                });
            }
            match mode {
                GradMode::Batch => {
                    let inner = DD::from(g) - sum_dy[c] / m - x_hat(i, c) * sum_dy_xhat[c] / m;
                    scale * inner
                }
                GradMode::Fixed => scale * g,
            }
        })
        .collect();
    Grads {
        grad_input,
        grad_weight: sum_dy_xhat,
        grad_bias: sum_dy,
    }
}

/// One call of the module (forward, optional backward), every input given
/// as `f64` values of the data's dtype. Tracking is on when the running
/// buffers are given; the module is affine when `weight` and `bias` are.
#[derive(Debug, Clone, Copy)]
pub struct OracleStep<'a> {
    /// Shape as `(N, C, S)` plus memory format.
    pub dims: Dims,
    pub x: &'a [f64],
    pub grad_output: Option<&'a [f64]>,
    pub weight: Option<&'a [f64]>,
    pub bias: Option<&'a [f64]>,
    pub running_mean: Option<&'a [f64]>,
    pub running_var: Option<&'a [f64]>,
    pub num_batches_tracked: Option<i64>,
    pub eps: f64,
    pub momentum: Option<f64>,
    pub training: bool,
}

/// The oracle's results of a [`OracleStep`], rounded once to `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    pub y: Vec<f64>,
    pub running_mean: Option<Vec<f64>>,
    pub running_var: Option<Vec<f64>>,
    pub num_batches_tracked: Option<i64>,
    pub grad_input: Option<Vec<f64>>,
    pub grad_weight: Option<Vec<f64>>,
    pub grad_bias: Option<Vec<f64>>,
}

fn round(v: Vec<DD>) -> Vec<f64> {
    v.into_iter().map(DD::to_f64).collect()
}

fn check_len(what: &str, v: Option<&[f64]>, want: usize) -> Result<()> {
    match v {
        Some(v) if v.len() != want => Err(BnError::LengthMismatch {
            what: what.into(),
            expected: want,
            actual: v.len(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Run one module call in double-double. Rejects what the module rules
/// reject (bad eps, exactly 1 value per channel with batch statistics) and
/// inconsistent lengths. Any momentum is accepted, as in PyTorch; an empty
/// batch gives PyTorch's results (empty outputs, buffers unchanged, the
/// count incremented in training, zero parameter gradients).
pub fn step(s: &OracleStep<'_>) -> Result<StepResult> {
    step_act(s, Activation::None, None).map(|(r, _)| r)
}

/// [`step`] followed by an activation: `y = relu(bn(x) [+ residual])` on the
/// double-double value (`residual` given exactly for
/// [`Activation::AddRelu`], in `x`'s memory order), the backward with `dy`
/// masked where that exact output is `<= 0`, and the residual's gradient
/// (the masked `dy`) returned beside the result when `grad_output` is given.
pub fn step_act(
    s: &OracleStep<'_>,
    act: Activation,
    residual: Option<&[f64]>,
) -> Result<(StepResult, Option<Vec<f64>>)> {
    let running = check_step(s)?;
    check_len("residual", residual, s.x.len())?;
    if act.has_residual() != residual.is_some() {
        return Err(BnError::Activation(format!(
            "the oracle needs a residual exactly for add_relu (activation {})",
            act.name()
        ))
        .into());
    }
    let batch = s.training || running.is_none();
    let stats = step_stats(s, batch, running)?;
    let mut z = normalize(s.x, &s.dims, &stats, s.weight, s.bias, s.eps);
    if let Some(r) = residual {
        z.iter_mut().zip(r).for_each(|(v, &r)| *v = *v + r);
    }
    if act != Activation::None {
        // torch.relu: v < 0 → 0, NaN kept.
        z.iter_mut()
            .filter(|v| v.to_f64() < 0.0)
            .for_each(|v| *v = DD::ZERO);
    }
    // threshold_backward on the exact output: dy where !(y <= 0).
    let masked: Option<Vec<f64>> = (act != Activation::None).then(|| {
        let dy = s.grad_output.unwrap_or(&[]);
        dy.iter()
            .zip(&z)
            .map(|(&g, v)| if v.to_f64() <= 0.0 { 0.0 } else { g })
            .collect()
    });
    let y = round(z);
    let (running_mean, running_var, num_batches_tracked) = step_running(s, running, &stats);
    let grad_step = OracleStep {
        grad_output: masked.as_deref().filter(|_| s.grad_output.is_some()),
        ..*s
    };
    let grad_step = if act == Activation::None {
        *s
    } else {
        grad_step
    };
    let (grad_input, grad_weight, grad_bias) = step_grads(&grad_step, batch, &stats);
    let grad_residual = masked.filter(|_| act.has_residual() && s.grad_output.is_some());
    Ok((
        StepResult {
            y,
            running_mean,
            running_var,
            num_batches_tracked,
            grad_input,
            grad_weight,
            grad_bias,
        },
        grad_residual,
    ))
}

/// The running buffers and `num_batches_tracked` of a step, when tracked.
type Running<'a> = Option<(&'a [f64], &'a [f64], i64)>;

/// Lengths, eps and the all-or-none running buffers; returns the buffers.
fn check_step<'a>(s: &OracleStep<'a>) -> Result<Running<'a>> {
    let d = &s.dims;
    let (len, c) = (d.n * d.c * d.s, d.c);
    check_len("x", Some(s.x), len)?;
    check_len("grad_output", s.grad_output, len)?;
    for (what, v) in [
        ("weight", s.weight),
        ("bias", s.bias),
        ("running_mean", s.running_mean),
        ("running_var", s.running_var),
    ] {
        check_len(what, v, c)?;
    }
    let running = match (s.running_mean, s.running_var, s.num_batches_tracked) {
        (Some(rm), Some(rv), Some(nbt)) => Some((rm, rv, nbt)),
        (None, None, None) => None,
        _ => {
            return Err(BnError::InvalidState(
                "give all of running_mean, running_var, num_batches_tracked, or none".into(),
            )
            .into())
        }
    };
    // PyTorch's eps rule, which depends on the statistics used.
    bn_impls::problem::check_eps(s.eps, s.training || running.is_none())?;
    Ok(running)
}

/// The statistics the step normalizes with: the batch's (at least 2 values
/// per channel) or the running buffers.
fn step_stats(s: &OracleStep<'_>, batch: bool, running: Running<'_>) -> Result<Stats> {
    let d = &s.dims;
    if !batch {
        let (rm, rv, _) = running.expect("eval with tracking");
        return Ok(Stats::given(rm, rv));
    }
    let m = d.n * d.s;
    if m == 0 {
        // An empty batch (PyTorch accepts it): no statistics to compute and
        // no element to normalize; the values are never read.
        return Ok(Stats::given(&vec![0.0; d.c], &vec![0.0; d.c]));
    }
    if m < 2 {
        return Err(BnError::TooFewValues {
            shape: vec![d.n, d.c, d.s],
            count: m,
        }
        .into());
    }
    Ok(batch_stats(s.x, d))
}

/// Running mean, variance and count after the step: updated in training,
/// returned unchanged in eval, None without tracking.
fn step_running(
    s: &OracleStep<'_>,
    running: Running<'_>,
    stats: &Stats,
) -> (Option<Vec<f64>>, Option<Vec<f64>>, Option<i64>) {
    let Some((rm, rv, n)) = running else {
        return (None, None, None);
    };
    if s.training {
        let m = s.dims.n * s.dims.s;
        if m == 0 {
            // PyTorch on an empty batch: buffers unchanged, count still incremented.
            return (
                Some(rm.to_vec()),
                Some(rv.to_vec()),
                Some(n.saturating_add(1)),
            );
        }
        let (rm, rv, n) = update_running(rm, rv, n, s.momentum, stats, m);
        (Some(round(rm)), Some(round(rv)), Some(n))
    } else {
        (Some(rm.to_vec()), Some(rv.to_vec()), Some(n))
    }
}

/// `grad_input`, `grad_weight`, `grad_bias` of a step, each None when not computed.
type StepGrads = (Option<Vec<f64>>, Option<Vec<f64>>, Option<Vec<f64>>);

/// Gradients of input, weight and bias when `grad_output` is given (weight
/// and bias ones only for an affine module).
fn step_grads(s: &OracleStep<'_>, batch: bool, stats: &Stats) -> StepGrads {
    let Some(dy) = s.grad_output else {
        return (None, None, None);
    };
    let mode = if batch {
        GradMode::Batch
    } else {
        GradMode::Fixed
    };
    let g = backward(s.x, dy, &s.dims, stats, s.weight, s.eps, mode);
    if s.weight.is_some() {
        (
            Some(round(g.grad_input)),
            Some(round(g.grad_weight)),
            Some(round(g.grad_bias)),
        )
    } else {
        (Some(round(g.grad_input)), None, None)
    }
}

/// Run a whole bn-case/1 case through the oracle: inputs are rounded to the
/// case's dtype (as `bnh run-case` does), outputs are the oracle's `f64`
/// values (not rounded to the dtype), so they can be compared with a
/// case's `reference`. A rejected input gives [`Outcome::Rejected`].
/// A multi-step case gives [`Outcome::Steps`]: each step computed from the
/// buffers PyTorch held before it ([`Case::step_case`]), as its `reference` is.
pub fn run_case(case: &Case) -> Outcome {
    let one = |case: &Case| match case_outputs(case) {
        Ok(o) => Outcome::Outputs(o),
        Err(e) => Outcome::Rejected(e.to_string()),
    };
    if case.steps.is_none() {
        return one(case);
    }
    let mut outcomes = Vec::new();
    for k in 0..case.step_count() {
        let outcome = one(&case.step_case(k));
        let stop = !matches!(outcome, Outcome::Outputs(_));
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    Outcome::Steps(outcomes)
}

fn case_outputs(case: &Case) -> Result<Outputs> {
    let in_dtype = |dt: DType| {
        move |v: &[Num]| -> Vec<f64> { to_f64s(v).into_iter().map(|x| round_to(dt, x)).collect() }
    };
    // Data in the case's dtype, parameters and buffers in its param_dtype.
    let (data, param) = (in_dtype(case.dtype), in_dtype(case.param_dtype()));
    let i = &case.inputs;
    let dims = Dims::from_shape("x", &case.shape, case.memory_format)?;
    let x = data(&i.x);
    let per_channel = |v: &Option<Vec<Num>>| v.as_deref().map(param);
    let (go, w, b, rm, rv) = (
        i.grad_output.as_deref().map(data),
        per_channel(&i.weight),
        per_channel(&i.bias),
        per_channel(&i.running_mean),
        per_channel(&i.running_var),
    );
    let act = case.activation.unwrap_or_default();
    let residual = i.residual.as_deref().map(data);
    let (r, grad_residual) = step_act(
        &OracleStep {
            dims,
            x: &x,
            grad_output: go.as_deref(),
            weight: w.as_deref(),
            bias: b.as_deref(),
            running_mean: rm.as_deref(),
            running_var: rv.as_deref(),
            num_batches_tracked: i.num_batches_tracked,
            eps: case.config.eps,
            momentum: case.config.momentum,
            training: case.training,
        },
        act,
        residual.as_deref(),
    )?;
    let nums = |v: Option<Vec<f64>>| v.map(to_nums);
    Ok(Outputs {
        y: Some(to_nums(r.y)),
        running_mean: nums(r.running_mean),
        running_var: nums(r.running_var),
        num_batches_tracked: r.num_batches_tracked,
        grad_input: nums(r.grad_input),
        grad_weight: nums(r.grad_weight),
        grad_bias: nums(r.grad_bias),
        grad_residual: nums(grad_residual),
    })
}

pub mod metrics {
    //! Error of a result against the oracle, in the units the tests bound.

    use bn_impls::DType;

    /// The spacing of `dtype` values at `|v|` (the ulp), with the subnormal
    /// spacing as the floor, so an error can be counted in ulps of the data's type.
    pub fn ulp(dtype: DType, v: f64) -> f64 {
        let (mant_bits, min_exp) = (dtype.mantissa_bits() as i32 - 1, dtype.min_exponent());
        let a = v.abs();
        if !a.is_finite() {
            return f64::NAN;
        }
        // Unbiased binary exponent of |v| from the f64 bits (exact, unlike log2).
        let e = if a == 0.0 || a < f64::MIN_POSITIVE {
            min_exp
        } else {
            (((a.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(min_exp)
        };
        2f64.powi(e - mant_bits)
    }

    /// The errors of one output tensor against its reference.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct ErrorStats {
        /// `max |got − ref|` over finite elements (infinite when a non-finite value is misplaced).
        pub abs: f64,
        /// `max |ref|` over finite elements.
        pub max_ref: f64,
        /// `abs / max|ref|`: error relative to the output's scale.
        pub rel: f64,
        /// `abs / (eps_dtype · max(1, max|ref|))`: the unit of the tests' bounds
        /// and of the bn-case/1 tolerance rule (which allows 16 of them).
        pub scaled: f64,
        /// `max |got − ref| / ulp_dtype(ref)` element by element.
        pub ulps: f64,
        /// Elements where one side is NaN/inf and the other is not the same.
        pub misplaced: usize,
    }

    impl ErrorStats {
        /// No error at all (an output both sides leave out).
        pub const ZERO: ErrorStats = ErrorStats {
            abs: 0.0,
            max_ref: 0.0,
            rel: 0.0,
            scaled: 0.0,
            ulps: 0.0,
            misplaced: 0,
        };

        /// The worse of two (field by field), for summaries.
        pub fn max(self, o: ErrorStats) -> ErrorStats {
            ErrorStats {
                abs: self.abs.max(o.abs),
                max_ref: self.max_ref.max(o.max_ref),
                rel: self.rel.max(o.rel),
                scaled: self.scaled.max(o.scaled),
                ulps: self.ulps.max(o.ulps),
                misplaced: self.misplaced + o.misplaced,
            }
        }
    }

    /// Compare `got` (values of `dtype`, widened) with `reference`.
    /// NaN must match NaN and infinities must match exactly; a mismatch, or a
    /// length mismatch, makes every error infinite.
    pub fn compare(got: &[f64], reference: &[f64], dtype: DType) -> ErrorStats {
        let mut s = ErrorStats::ZERO;
        if got.len() != reference.len() {
            s.misplaced = got.len().abs_diff(reference.len()).max(1);
        }
        for (&g, &r) in got.iter().zip(reference) {
            if r.is_finite() && g.is_finite() {
                let e = (g - r).abs();
                s.abs = s.abs.max(e);
                s.max_ref = s.max_ref.max(r.abs());
                s.ulps = s.ulps.max(e / ulp(dtype, r));
            } else if !(r.is_nan() && g.is_nan() || r == g) {
                s.misplaced += 1;
            }
        }
        if s.misplaced > 0 {
            s.abs = f64::INFINITY;
            s.ulps = f64::INFINITY;
        }
        s.rel = if s.max_ref > 0.0 {
            s.abs / s.max_ref
        } else {
            s.abs
        };
        s.scaled = s.abs / (dtype.epsilon() * s.max_ref.max(1.0));
        s
    }
}

/// The oracle's statistics of `x` rounded to `f64` (`(mean, biased var)` per channel).
pub fn mean_var(x: &[f64], dims: &Dims) -> (Vec<f64>, Vec<f64>) {
    let s = batch_stats(x, dims);
    (round(s.mean), round(s.var))
}

#[cfg(test)]
mod tests {
    use super::metrics::{compare, ulp};
    use super::*;
    use bn_impls::DType;

    fn dims(n: usize, c: usize, s: usize, layout: Layout) -> Dims {
        Dims { n, c, s, layout }
    }

    #[test]
    fn statistics_of_a_huge_offset_are_exact() {
        // Channel values 1e8 + {0, 1, 2, 3}: f64 two-pass is fine here, but the
        // one-pass E[x²] − μ² would lose everything; the oracle must give exactly 1.25.
        let x = [1e8, 1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0];
        let (mean, var) = mean_var(&x, &dims(4, 1, 1, Layout::Contiguous));
        assert_eq!(mean, vec![1e8 + 1.5]);
        assert_eq!(var, vec![1.25]);
        // Mean not representable in f64: 1e16 + {0, 1, 1, 1} has mean 1e16 + 0.75.
        let x = [1e16, 1e16 + 2.0, 1e16 + 2.0, 1e16 + 2.0];
        let s = batch_stats(&x, &dims(4, 1, 1, Layout::Contiguous));
        assert_eq!((s.mean[0] - 1e16).to_f64(), 1.5);
        assert_eq!(s.var[0].to_f64(), 0.75);
    }

    #[test]
    fn layouts_map_channels_from_their_definition() {
        // (N=2, C=2, S=2): contiguous memory is n0c0 n0c0 n0c1 n0c1 n1c0 ...
        let x = [1.0, 3.0, 10.0, 30.0, 5.0, 7.0, 50.0, 70.0];
        let (m, _) = mean_var(&x, &dims(2, 2, 2, Layout::Contiguous));
        assert_eq!(m, vec![4.0, 40.0]);
        // Channels-last memory is row-major (N, S, C).
        let (m, _) = mean_var(&x, &dims(2, 2, 2, Layout::ChannelsLast));
        assert_eq!(
            m,
            vec![
                (1.0 + 10.0 + 5.0 + 50.0) / 4.0,
                (3.0 + 30.0 + 7.0 + 70.0) / 4.0
            ]
        );
    }

    #[test]
    fn step_follows_the_module_rules() {
        let d = dims(2, 1, 1, Layout::Contiguous);
        let x = [1.0, 3.0];
        let base = OracleStep {
            dims: d,
            x: &x,
            grad_output: Some(&[1.0, 0.0]),
            weight: Some(&[2.0]),
            bias: Some(&[0.5]),
            running_mean: Some(&[0.0]),
            running_var: Some(&[1.0]),
            num_batches_tracked: Some(0),
            eps: 1e-5,
            momentum: None,
            training: true,
        };
        let r = step(&base).unwrap();
        // mean 2, var 1; y = ±1/sqrt(1 + 1e-5)·2 + 0.5.
        let inv = 1.0 / (1.0f64 + 1e-5).sqrt();
        assert!((r.y[0] - (0.5 - 2.0 * inv)).abs() < 1e-15);
        // momentum None with nbt 0 → factor 1: running = batch stats, var unbiased (m = 2 → ×2).
        assert_eq!(r.running_mean, Some(vec![2.0]));
        assert_eq!(r.running_var, Some(vec![2.0]));
        assert_eq!(r.num_batches_tracked, Some(1));
        // grad_bias = Σdy = 1; grad_weight = Σdy·x̂ = −inv.
        assert_eq!(r.grad_bias, Some(vec![1.0]));
        assert!((r.grad_weight.unwrap()[0] + inv).abs() < 1e-15);
        // dx = w·inv·(dy − 1/2 − x̂·(−inv)/2): for element 0, x̂ = −inv.
        let dx0 = 2.0 * inv * (1.0 - 0.5 - inv * inv / 2.0);
        assert!((r.grad_input.unwrap()[0] - dx0).abs() < 1e-15);

        // Eval with running stats: fixed statistics, buffers unchanged.
        let r = step(&OracleStep {
            training: false,
            ..base
        })
        .unwrap();
        assert_eq!(r.running_mean, Some(vec![0.0]));
        assert_eq!(r.num_batches_tracked, Some(0));
        let gi = r.grad_input.unwrap();
        assert!((gi[0] - 2.0 * inv).abs() < 1e-15 && gi[1] == 0.0);

        // Rejections.
        let one = dims(1, 1, 1, Layout::Contiguous);
        assert!(step(&OracleStep {
            dims: one,
            x: &x[..1],
            grad_output: None,
            ..base
        })
        .is_err());
        assert!(step(&OracleStep { eps: 0.0, ..base }).is_err());
        // No range check on momentum (as in PyTorch): 1.5 extrapolates,
        // running = −0.5·running + 1.5·batch (mean 2, unbiased var 2).
        let r = step(&OracleStep {
            momentum: Some(1.5),
            ..base
        })
        .unwrap();
        assert_eq!(r.running_mean, Some(vec![3.0]));
        assert_eq!(r.running_var, Some(vec![2.5]));
        assert!(step(&OracleStep {
            weight: Some(&[1.0, 2.0]),
            ..base
        })
        .is_err());
    }

    /// PyTorch on an empty batch: empty outputs, buffers unchanged, the
    /// count incremented in training only, zero parameter gradients.
    #[test]
    fn empty_batch_follows_pytorch() {
        for (n, s) in [(0, 4), (4, 0)] {
            for training in [true, false] {
                let r = step(&OracleStep {
                    dims: dims(n, 2, s, Layout::Contiguous),
                    x: &[],
                    grad_output: Some(&[]),
                    weight: Some(&[1.5, 2.0]),
                    bias: Some(&[0.25, 0.5]),
                    running_mean: Some(&[0.5, 0.5]),
                    running_var: Some(&[2.0, 2.0]),
                    num_batches_tracked: Some(2),
                    eps: 1e-5,
                    momentum: Some(f64::NAN),
                    training,
                })
                .unwrap();
                assert!(r.y.is_empty() && r.grad_input == Some(vec![]));
                assert_eq!(r.running_mean, Some(vec![0.5, 0.5]));
                assert_eq!(r.running_var, Some(vec![2.0, 2.0]));
                assert_eq!(r.num_batches_tracked, Some(if training { 3 } else { 2 }));
                assert_eq!(r.grad_weight, Some(vec![0.0, 0.0]));
                assert_eq!(r.grad_bias, Some(vec![0.0, 0.0]));
            }
        }
    }

    #[test]
    fn nan_stays_in_its_channel() {
        let x = [1.0, f64::NAN, 2.0, 5.0];
        let r = step(&OracleStep {
            dims: dims(2, 2, 1, Layout::Contiguous),
            x: &x,
            grad_output: None,
            weight: None,
            bias: None,
            running_mean: None,
            running_var: None,
            num_batches_tracked: None,
            eps: 1e-5,
            momentum: Some(0.1),
            training: true,
        })
        .unwrap();
        assert!(r.y[1].is_nan() && r.y[3].is_nan());
        assert!(r.y[0].is_finite() && r.y[2].is_finite());
    }

    #[test]
    fn metrics_count_ulps_and_scaled_error() {
        assert_eq!(ulp(DType::F32, 1.0), f32::EPSILON as f64);
        assert_eq!(ulp(DType::F32, 1.5), f32::EPSILON as f64);
        assert_eq!(ulp(DType::F32, 2.0), 2.0 * f32::EPSILON as f64);
        assert_eq!(ulp(DType::F64, 1e4), 8192.0 * f64::EPSILON);
        assert_eq!(ulp(DType::F32, 0.0), 2f64.powi(-149));
        let got = [1.0 + f32::EPSILON as f64, 4.0];
        let s = compare(&got, &[1.0, 4.0], DType::F32);
        assert_eq!(s.ulps, 1.0);
        assert_eq!(s.abs, f32::EPSILON as f64);
        assert_eq!(s.scaled, 0.25);
        assert_eq!(s.rel, f32::EPSILON as f64 / 4.0);
        let s = compare(&[f64::NAN, 1.0], &[f64::NAN, 1.0], DType::F64);
        assert_eq!((s.abs, s.misplaced), (0.0, 0));
        let s = compare(&[0.0, 1.0], &[f64::NAN, 1.0], DType::F64);
        assert!(s.scaled.is_infinite() && s.misplaced == 1);
        assert!(compare(&[1.0], &[1.0, 2.0], DType::F64)
            .scaled
            .is_infinite());
    }
}
