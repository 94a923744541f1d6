//! Running a case with one implementation through the module rules.

use crate::case::{Case, Outputs};
use crate::num::{to_nums, Num};
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{BatchNorm, Config, Element, ForDtype, Implementation};

/// What an implementation made of a case: outputs, the library's rejection,
/// or the implementation declining an input it does not support.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Outputs(Outputs),
    Rejected(String),
    /// The implementation does not support this input (a dtype it lacks, or
    /// a plugin function that returned nonzero): a verdict of its own, "not a
    /// failure and not a crash". Only for inputs PyTorch accepts: the module
    /// rules reject invalid input before any kernel runs.
    Unsupported(String),
    /// A multi-step case ([`crate::steps`]): one outcome per step run, in
    /// order. The run stops at the first step that is not `Outputs`, so the
    /// list is shorter than the case's steps when a step was rejected.
    Steps(Vec<Outcome>),
}

impl Outcome {
    /// One step's result as an outcome.
    fn of(result: bn_impls::Result<Outputs>) -> Outcome {
        match result {
            Ok(outputs) => Outcome::Outputs(outputs),
            Err(e) if e.is_unsupported() => Outcome::Unsupported(e.to_string()),
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// Run `case` with `imp`: forward, then backward when the case has
/// `grad_output`. A multi-step case runs every step in order on one module
/// and gives [`Outcome::Steps`].
pub fn run_case(case: &Case, imp: &dyn Implementation) -> Outcome {
    let mut results = run_calls(case, imp);
    if case.steps.is_some() {
        Outcome::Steps(results.into_iter().map(Outcome::of).collect())
    } else {
        Outcome::of(results.pop().expect("one call"))
    }
}

/// Every call of `case` (one for a single case) on one module, stopping at
/// the first error.
fn run_calls(case: &Case, imp: &dyn Implementation) -> Vec<bn_impls::Result<Outputs>> {
    /// Picks the data type, then [`WithParams`] the parameter type.
    struct Typed<'a>(&'a Case, &'a dyn Implementation);
    impl ForDtype for Typed<'_> {
        type Output = Vec<bn_impls::Result<Outputs>>;
        fn call<T: Element>(self) -> Self::Output {
            let params = WithParams::<T>(self.0, self.1, std::marker::PhantomData);
            self.0.param_dtype().dispatch(params)
        }
    }
    struct WithParams<'a, T>(
        &'a Case,
        &'a dyn Implementation,
        std::marker::PhantomData<T>,
    );
    impl<T: Element> ForDtype for WithParams<'_, T> {
        type Output = Vec<bn_impls::Result<Outputs>>;
        fn call<P: Element>(self) -> Self::Output {
            run_typed::<T, P>(self.0, self.1)
        }
    }
    case.dtype.dispatch(Typed(case, imp))
}

fn narrow<T: Element>(v: &[Num]) -> Vec<T> {
    v.iter().map(|n| T::from_f64(n.0)).collect()
}

fn widen<T: Element>(v: Vec<T>) -> Vec<Num> {
    to_nums(v.into_iter().map(T::as_f64))
}

/// The module of `case` in its initial state (the file's `inputs`).
fn module<T: Element, P: Element>(case: &Case) -> bn_impls::Result<BatchNorm<T, P>> {
    let cfg = case.config;
    let mut bn = BatchNorm::<T, P>::new(Config {
        num_features: case.channels(),
        eps: cfg.eps,
        momentum: cfg.momentum,
        affine: cfg.affine,
        track_running_stats: cfg.track_running_stats,
    })?;
    let inputs = &case.inputs;
    bn.training = case.training;
    bn.weight = inputs.weight.as_deref().map(narrow);
    bn.bias = inputs.bias.as_deref().map(narrow);
    bn.running_mean = inputs.running_mean.as_deref().map(narrow);
    bn.running_var = inputs.running_var.as_deref().map(narrow);
    bn.num_batches_tracked = inputs.num_batches_tracked;
    Ok(bn)
}

/// Run every call of `case` on data of type `T` with parameters of type `P`.
fn run_typed<T: Element, P: Element>(
    case: &Case,
    imp: &dyn Implementation,
) -> Vec<bn_impls::Result<Outputs>> {
    let mut bn = match module::<T, P>(case) {
        Ok(bn) => bn,
        Err(e) => return vec![Err(e)],
    };
    let mut results = Vec::new();
    for k in 0..case.step_count() {
        let result = call(&mut bn, &case.step_case(k), imp);
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    results
}

/// One call on `bn`: the mode, batch and gradient of `step` (a single case,
/// see [`Case::step_case`]); the module's buffers carry over to the next call.
fn call<T: Element, P: Element>(
    bn: &mut BatchNorm<T, P>,
    step: &Case,
    imp: &dyn Implementation,
) -> bn_impls::Result<Outputs> {
    bn.training = step.training;
    let inputs = &step.inputs;
    let (shape, layout) = (&step.shape[..], step.memory_format);
    let x: Vec<T> = narrow(&inputs.x);
    let mut y = vec![T::zero(); x.len()];
    bn.forward(
        imp,
        nd_view(shape, layout, &x)?,
        nd_view_mut(shape, layout, &mut y)?,
    )?;

    let (mut grad_input, mut grad_weight, mut grad_bias) = (None, None, None);
    if let Some(go) = &inputs.grad_output {
        let dy: Vec<T> = narrow(go);
        let mut dx = vec![T::zero(); x.len()];
        let grads = bn.backward(
            imp,
            nd_view(shape, layout, &x)?,
            nd_view(shape, layout, &dy)?,
            nd_view_mut(shape, layout, &mut dx)?,
        )?;
        grad_input = Some(widen(dx));
        grad_weight = grads.weight.map(widen);
        grad_bias = grads.bias.map(widen);
    }
    Ok(Outputs {
        y: Some(widen(y)),
        running_mean: bn.running_mean.clone().map(widen),
        running_var: bn.running_var.clone().map(widen),
        num_batches_tracked: bn.num_batches_tracked,
        grad_input,
        grad_weight,
        grad_bias,
    })
}
