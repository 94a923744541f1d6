//! Running a case with one implementation through the module rules.

use crate::case::{Case, Outputs};
use crate::num::{to_nums, Num};
use bn_impls::layout::{nd_view, nd_view_mut};
use bn_impls::{Activation, BatchNorm, Config, Element, ForDtype, Implementation};

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
}

/// Run `case` with `imp`: forward, then backward when the case has `grad_output`.
pub fn run_case(case: &Case, imp: &dyn Implementation) -> Outcome {
    /// Picks the data type, then [`WithParams`] the parameter type.
    struct Typed<'a>(&'a Case, &'a dyn Implementation);
    impl ForDtype for Typed<'_> {
        type Output = bn_impls::Result<Outputs>;
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
        type Output = bn_impls::Result<Outputs>;
        fn call<P: Element>(self) -> Self::Output {
            run_typed::<T, P>(self.0, self.1)
        }
    }
    let result = case.dtype.dispatch(Typed(case, imp));
    match result {
        Ok(outputs) => Outcome::Outputs(outputs),
        Err(e) if e.is_unsupported() => Outcome::Unsupported(e.to_string()),
        Err(e) => Outcome::Rejected(e.to_string()),
    }
}

fn narrow<T: Element>(v: &[Num]) -> Vec<T> {
    v.iter().map(|n| T::from_f64(n.0)).collect()
}

fn widen<T: Element>(v: Vec<T>) -> Vec<Num> {
    to_nums(v.into_iter().map(T::as_f64))
}

/// Run `case` on data of type `T` with parameters of type `P`.
fn run_typed<T: Element, P: Element>(
    case: &Case,
    imp: &dyn Implementation,
) -> bn_impls::Result<Outputs> {
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

    let (shape, layout) = (&case.shape[..], case.memory_format);
    let x: Vec<T> = narrow(&inputs.x);
    let act = case.activation();
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
        running_mean: bn.running_mean.map(widen),
        running_var: bn.running_var.map(widen),
        num_batches_tracked: bn.num_batches_tracked,
        grad_input,
        grad_weight,
        grad_bias,
        grad_residual,
    })
}
