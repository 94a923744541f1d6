//! Running a case with one implementation through the module rules.

use crate::case::{Case, Outputs};
use crate::num::{to_nums, Num};
use crate::state_dict::ModuleState;
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{Activation, BatchNorm, Config, DType, Element, ForDtype, Implementation};

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
    run_case_with_state(case, imp, None).0
}

/// [`run_case`] starting from `initial` (a state dict read for this case's
/// module, see [`crate::state_dict::Expect::of`]) instead of the case's
/// `inputs` parameters and buffers; also returns the module's state after
/// the run (after the last step that ran; `None` when no module could be
/// built).
pub fn run_case_with_state(
    case: &Case,
    imp: &dyn Implementation,
    initial: Option<&ModuleState>,
) -> (Outcome, Option<ModuleState>) {
    let (mut results, state) = run_calls(case, imp, initial);
    let outcome = if case.steps.is_some() {
        Outcome::Steps(results.into_iter().map(Outcome::of).collect())
    } else {
        Outcome::of(results.pop().expect("one call"))
    };
    (outcome, state)
}

type Calls = (Vec<bn_impls::Result<Outputs>>, Option<ModuleState>);

/// Every call of `case` (one for a single case) on one module, stopping at
/// the first error; and the module's state at the end.
fn run_calls(case: &Case, imp: &dyn Implementation, initial: Option<&ModuleState>) -> Calls {
    /// Picks the data type, then [`WithParams`] the parameter type.
    struct Typed<'a>(&'a Case, &'a dyn Implementation, Option<&'a ModuleState>);
    impl ForDtype for Typed<'_> {
        type Output = Calls;
        fn call<T: Element>(self) -> Self::Output {
            let params = WithParams::<T>(self.0, self.1, self.2, std::marker::PhantomData);
            self.0.param_dtype().dispatch(params)
        }
    }
    struct WithParams<'a, T>(
        &'a Case,
        &'a dyn Implementation,
        Option<&'a ModuleState>,
        std::marker::PhantomData<T>,
    );
    impl<T: Element> ForDtype for WithParams<'_, T> {
        type Output = Calls;
        fn call<P: Element>(self) -> Self::Output {
            run_typed::<T, P>(self.0, self.1, self.2)
        }
    }
    case.dtype.dispatch(Typed(case, imp, initial))
}

fn narrow<T: Element>(v: &[Num]) -> Vec<T> {
    v.iter().map(|n| T::from_f64(n.0)).collect()
}

fn widen<T: Element>(v: Vec<T>) -> Vec<Num> {
    to_nums(v.into_iter().map(T::as_f64))
}

/// The module of `case` in its initial state: `initial` when given, else
/// the file's `inputs`.
fn module<T: Element, P: Element>(
    case: &Case,
    initial: Option<&ModuleState>,
) -> bn_impls::Result<BatchNorm<T, P>> {
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
    if let Some(state) = initial {
        let exact = |v: &Option<Vec<f64>>| {
            v.as_ref()
                .map(|v| v.iter().map(|&x| P::from_f64(x)).collect())
        };
        bn.weight = exact(&state.weight);
        bn.bias = exact(&state.bias);
        bn.running_mean = exact(&state.running_mean);
        bn.running_var = exact(&state.running_var);
        bn.num_batches_tracked = state.num_batches_tracked;
    }
    Ok(bn)
}

/// The parameters and buffers of `bn`, for a state dict.
fn state_of<T: Element, P: Element>(bn: &BatchNorm<T, P>, dtype: DType) -> ModuleState {
    let wide = |v: &Option<Vec<P>>| v.as_ref().map(|v| v.iter().map(|x| x.as_f64()).collect());
    ModuleState {
        dtype,
        weight: wide(&bn.weight),
        bias: wide(&bn.bias),
        running_mean: wide(&bn.running_mean),
        running_var: wide(&bn.running_var),
        num_batches_tracked: bn.num_batches_tracked,
    }
}

/// Run every call of `case` on data of type `T` with parameters of type `P`.
fn run_typed<T: Element, P: Element>(
    case: &Case,
    imp: &dyn Implementation,
    initial: Option<&ModuleState>,
) -> Calls {
    let mut bn = match module::<T, P>(case, initial) {
        Ok(bn) => bn,
        Err(e) => return (vec![Err(e)], None),
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
    (results, Some(state_of(&bn, case.param_dtype())))
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
    let act = step.activation();
    let residual: Option<Vec<T>> = inputs.residual.as_deref().map(narrow);
    let residual_view = residual
        .as_deref()
        .map(|r| nd_view(shape, layout, r))
        .transpose()?;
    let mut y = vec![T::zero(); x.len()];
    bn.forward_act(
        imp,
        act,
        nd_view(shape, layout, &x)?,
        residual_view,
        nd_view_mut(shape, layout, &mut y)?,
    )?;

    let (mut grad_input, mut grad_weight, mut grad_bias) = (None, None, None);
    let mut grad_residual = None;
    if let Some(go) = &inputs.grad_output {
        let dy: Vec<T> = narrow(go);
        let mut dx = vec![T::zero(); x.len()];
        let mut dres = act.has_residual().then(|| vec![T::zero(); x.len()]);
        let y_view = (act != Activation::None)
            .then(|| nd_view(shape, layout, &y))
            .transpose()?;
        let dres_view = dres
            .as_deref_mut()
            .map(|d| nd_view_mut(shape, layout, d))
            .transpose()?;
        let grads = bn.backward_act(
            imp,
            nd_view(shape, layout, &x)?,
            y_view,
            nd_view(shape, layout, &dy)?,
            nd_view_mut(shape, layout, &mut dx)?,
            dres_view,
        )?;
        grad_input = Some(widen(dx));
        grad_weight = grads.weight.map(widen);
        grad_bias = grads.bias.map(widen);
        grad_residual = dres.map(widen);
    }
    Ok(Outputs {
        y: Some(widen(y)),
        running_mean: bn.running_mean.clone().map(widen),
        running_var: bn.running_var.clone().map(widen),
        num_batches_tracked: bn.num_batches_tracked,
        grad_input,
        grad_weight,
        grad_bias,
        grad_residual,
    })
}
