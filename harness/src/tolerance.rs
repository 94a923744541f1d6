//! The bn-case/1 tolerance rule and the verdict on one run.
//!
//! An output agrees when every element satisfies
//! `|got − reference| ≤ max(4·e_torch, k·eps_dtype·max(1, max|reference|))`,
//! with `e_torch = max |expected − reference|` (PyTorch's own error on that
//! output) and NaN exactly where the reference has NaN; `k` is 16 for `f32`
//! and `f64`, 4 for `bf16` and `f16` (whose epsilon, 2^-7 or 2^-10, is
//! already coarse). `y` and `grad_input` are judged in the case's `dtype`,
//! the per-channel outputs in its `param_dtype`. When a case has no
//! `reference`, `expected` is the reference and `e_torch = 0`.

use crate::case::{Case, Outputs};
use crate::num::Num;
use crate::run::Outcome;
use bn_impls::DType;

/// The check of one output tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputCheck {
    pub name: &'static str,
    /// Largest `|got − reference|` over finite elements.
    pub max_abs_err: f64,
    /// The tolerance of this output.
    pub tol: f64,
    /// `max_abs_err / tol`; ≤ 1 passes. Infinite when a NaN/inf is misplaced.
    pub ratio: f64,
    /// Why it fails beyond the ratio (misplaced NaN, missing output, ...).
    pub problem: Option<String>,
    /// The step of a multi-step case this output belongs to (`None` for a
    /// single case).
    pub step: Option<usize>,
}

impl OutputCheck {
    /// The output's name as a report shows it: `y`, or `steps[2].y` in a
    /// multi-step case.
    pub fn label(&self) -> String {
        match self.step {
            Some(k) => format!("steps[{k}].{}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// The verdict on one case run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub checks: Vec<OutputCheck>,
    /// A failure of the run as a whole (rejected when PyTorch accepts, or the reverse).
    pub problem: Option<String>,
    /// True for an error case that the implementation rejected, as PyTorch does.
    pub rejected_as_expected: bool,
    /// The implementation declined the input ([`Outcome::Unsupported`]): neither
    /// a pass nor a failure, shown as `unsupported`.
    pub unsupported: Option<String>,
    /// An out-of-process implementation (`--external`) that gave no result:
    /// a failure (with the reason in [`Verdict::problem`]) of its own kind.
    pub run_failure: Option<RunFailure>,
}

/// Why an `--external` program gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFailure {
    /// Still running at `--timeout`; killed.
    Timeout,
    /// Nonzero exit, a signal, or no valid output file.
    Crashed,
}

impl Verdict {
    /// The verdict on a run that gave no result: a failure of kind `kind`.
    pub fn run_failed(kind: RunFailure, why: String) -> Verdict {
        Verdict {
            checks: Vec::new(),
            problem: Some(why),
            rejected_as_expected: false,
            unsupported: None,
            run_failure: Some(kind),
        }
    }
}

impl Verdict {
    /// Whether every output agrees (false when [`Verdict::unsupported`]).
    pub fn pass(&self) -> bool {
        self.unsupported.is_none()
            && self.problem.is_none()
            && self
                .checks
                .iter()
                .all(|c| c.problem.is_none() && c.ratio <= 1.0)
    }

    /// The largest error/tolerance ratio over all outputs (0 for an error case handled right).
    pub fn worst_ratio(&self) -> f64 {
        if self.problem.is_some() {
            return f64::INFINITY;
        }
        self.checks.iter().map(|c| c.ratio).fold(0.0, f64::max)
    }

    /// The check with the largest ratio, if any.
    pub fn worst(&self) -> Option<&OutputCheck> {
        self.checks
            .iter()
            .max_by(|a, b| a.ratio.total_cmp(&b.ratio))
    }
}

/// The multiple of `dtype`'s epsilon an output may be off by, per unit of
/// `max(1, max|reference|)`: 16 for `f32`/`f64`, 4 for the half types.
pub fn eps_multiple(dtype: DType) -> f64 {
    if dtype.is_half() {
        4.0
    } else {
        16.0
    }
}

/// The tolerance of one output in `dtype`:
/// `max(4·e_torch, eps_multiple·eps·max(1, max|ref|))`.
pub fn tolerance(expected: &[Num], reference: &[Num], dtype: DType) -> f64 {
    let e_torch = expected
        .iter()
        .zip(reference)
        .filter(|(e, r)| e.0.is_finite() && r.0.is_finite())
        .map(|(e, r)| (e.0 - r.0).abs())
        .fold(0.0, f64::max);
    let max_ref = reference
        .iter()
        .filter(|r| r.0.is_finite())
        .map(|r| r.0.abs())
        .fold(0.0, f64::max);
    let eps_term = eps_multiple(dtype) * dtype.epsilon() * max_ref.max(1.0);
    f64::max(4.0 * e_torch, eps_term)
}

/// Compare `got` with `reference` under `tol`.
pub fn check_tensor(name: &'static str, got: &[Num], reference: &[Num], tol: f64) -> OutputCheck {
    let mut check = OutputCheck {
        name,
        max_abs_err: 0.0,
        tol,
        ratio: 0.0,
        problem: None,
        step: None,
    };
    if got.len() != reference.len() {
        check.ratio = f64::INFINITY;
        check.problem = Some(format!(
            "{} values, expected {}",
            got.len(),
            reference.len()
        ));
        return check;
    }
    for (i, (g, r)) in got.iter().zip(reference).enumerate() {
        let (g, r) = (g.0, r.0);
        let misplaced = if r.is_nan() {
            (!g.is_nan()).then(|| format!("element {i} is {g}, reference is NaN"))
        } else if r.is_infinite() {
            (g != r).then(|| format!("element {i} is {g}, reference is {r}"))
        } else if !g.is_finite() {
            Some(format!("element {i} is {g}, reference is {r}"))
        } else {
            check.max_abs_err = check.max_abs_err.max((g - r).abs());
            None
        };
        if check.problem.is_none() {
            check.problem = misplaced;
        }
    }
    check.ratio = if check.problem.is_some() {
        f64::INFINITY
    } else {
        check.max_abs_err / tol
    };
    check
}

/// Judge an outcome against a case.
pub fn judge(case: &Case, outcome: &Outcome) -> Verdict {
    let mut verdict = Verdict {
        checks: Vec::new(),
        problem: None,
        rejected_as_expected: false,
        unsupported: None,
        run_failure: None,
    };
    match (outcome, &case.expected, &case.expected_error) {
        (Outcome::Steps(outcomes), _, _) => return judge_steps(case, outcomes),
        // Declining the whole case (an external that does not do multi-step
        // files) is "unsupported", for a steps case too.
        (Outcome::Unsupported(msg), _, _) => verdict.unsupported = Some(msg.clone()),
        (_, _, _) if case.steps.is_some() => {
            verdict.problem = Some(format!(
                "a multi-step case needs one result per step ({} steps), got a single result",
                case.step_count()
            ))
        }
        (Outcome::Rejected(_), _, Some(_)) => verdict.rejected_as_expected = true,
        (Outcome::Outputs(_), _, Some(hint)) => {
            verdict.problem = Some(format!(
                "PyTorch rejects this input ({hint}) but the implementation returned outputs"
            ))
        }
        (Outcome::Rejected(msg), _, None) => {
            verdict.problem = Some(format!("rejected an input PyTorch accepts: {msg}"))
        }
        (Outcome::Outputs(got), Some(expected), None) => {
            compare_outputs(case, got, expected, &mut verdict)
        }
        (Outcome::Outputs(_), None, None) => {
            verdict.problem = Some("case has neither expected nor expected_error".into())
        }
    }
    verdict
}

/// Judge the outcomes of a multi-step case: each step as a single case
/// (its own `expected`, `reference` and tolerance), merged into one verdict
/// whose checks carry their step. A step that was not run (the run stopped
/// earlier) fails the case. `rejected_as_expected` stays false: a last step
/// rejected as PyTorch does simply adds no check, and the verdict shows the
/// ratios of the steps before it.
fn judge_steps(case: &Case, outcomes: &[Outcome]) -> Verdict {
    let mut verdict = Verdict {
        checks: Vec::new(),
        problem: None,
        rejected_as_expected: false,
        unsupported: None,
        run_failure: None,
    };
    if case.steps.is_none() {
        verdict.problem = Some(format!(
            "a single case needs one result, got {} step results",
            outcomes.len()
        ));
        return verdict;
    }
    let n = case.step_count();
    if outcomes.len() > n {
        verdict.problem = Some(format!(
            "{} step results for a case of {n} steps",
            outcomes.len()
        ));
        return verdict;
    }
    for (k, outcome) in outcomes.iter().enumerate() {
        let v = judge(&case.step_case(k), outcome);
        if let Some(msg) = v.unsupported {
            verdict.unsupported = Some(format!("step {k}: {msg}"));
            return verdict;
        }
        if verdict.problem.is_none() {
            verdict.problem = v.problem.map(|p| format!("step {k}: {p}"));
        }
        verdict.checks.extend(
            v.checks
                .into_iter()
                .map(|c| OutputCheck { step: Some(k), ..c }),
        );
    }
    if outcomes.len() < n && verdict.problem.is_none() {
        verdict.problem = Some(format!(
            "only {} of {n} steps ran (the run stopped after step {})",
            outcomes.len(),
            outcomes.len().saturating_sub(1)
        ));
    }
    verdict
}

fn compare_outputs(case: &Case, got: &Outputs, expected: &Outputs, verdict: &mut Verdict) {
    if got.num_batches_tracked != expected.num_batches_tracked {
        verdict.problem = Some(format!(
            "num_batches_tracked is {:?}, expected {:?}",
            got.num_batches_tracked, expected.num_batches_tracked
        ));
    }
    let reference = case.reference.as_ref();
    for ((name, exp), (_, g)) in expected.tensors().into_iter().zip(got.tensors()) {
        let refv = reference
            .and_then(|r| r.tensors().into_iter().find(|(n, _)| *n == name)?.1)
            .filter(|r| exp.is_some_and(|e| e.len() == r.len()));
        match (exp, g) {
            (None, None) => {}
            (Some(e), Some(g)) => {
                let r = refv.unwrap_or(e);
                let dtype = case.output_dtype(name);
                verdict
                    .checks
                    .push(check_tensor(name, g, r, tolerance(e, r, dtype)));
            }
            (Some(_), None) => verdict.checks.push(missing(name, "missing (null)")),
            (None, Some(_)) => verdict
                .checks
                .push(missing(name, "given but PyTorch has null")),
        }
    }
}

fn missing(name: &'static str, why: &str) -> OutputCheck {
    OutputCheck {
        name,
        max_abs_err: f64::INFINITY,
        tol: 0.0,
        ratio: f64::INFINITY,
        problem: Some(why.to_string()),
        step: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(v: &[f64]) -> Vec<Num> {
        v.iter().copied().map(Num).collect()
    }

    #[test]
    fn tolerance_takes_the_larger_term() {
        let (f32, eps) = (DType::F32, f32::EPSILON as f64);
        // PyTorch's error dominates.
        let t = tolerance(&nums(&[1.0, 2.001]), &nums(&[1.0, 2.0]), f32);
        assert!((t - 0.004).abs() < 1e-12);
        // The eps term dominates, scaled by max |reference| (at least 1).
        let t = tolerance(&nums(&[0.5]), &nums(&[0.5]), f32);
        assert_eq!(t, 16.0 * eps);
        let t = tolerance(&nums(&[100.0]), &nums(&[100.0]), f32);
        assert_eq!(t, 16.0 * eps * 100.0);
        // Half types: 4 of their epsilon (2^-7, 2^-10).
        let t = tolerance(&nums(&[100.0]), &nums(&[100.0]), DType::BF16);
        assert_eq!(t, 4.0 * 2f64.powi(-7) * 100.0);
        let t = tolerance(&nums(&[0.25]), &nums(&[0.25]), DType::F16);
        assert_eq!(t, 4.0 * 2f64.powi(-10));
    }

    #[test]
    fn nan_must_be_where_the_reference_has_it() {
        let r = nums(&[f64::NAN, 1.0]);
        assert!(check_tensor("y", &nums(&[f64::NAN, 1.0]), &r, 1e-6)
            .problem
            .is_none());
        assert!(check_tensor("y", &nums(&[0.0, 1.0]), &r, 1e-6)
            .problem
            .is_some());
        assert!(check_tensor("y", &nums(&[f64::NAN, f64::NAN]), &r, 1e-6)
            .problem
            .is_some());
        let c = check_tensor("y", &nums(&[f64::NAN, 1.5]), &r, 1.0);
        assert_eq!(c.ratio, 0.5);
    }
}
