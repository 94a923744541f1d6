//! The batch-norm module: PyTorch's `nn.BatchNorm{1,2,3}d` rules, written once.
//!
//! Parameters, buffers, train/eval mode and the running-statistics update
//! live here; the arithmetic is delegated to any [`Implementation`], passed
//! per call so one module state can be run through every implementation.
//! Rules (see `docs/BN-CASE-FORMAT.md`):
//! - batch statistics are used in training, and in eval when the module does
//!   not track running statistics; they need N·S ≥ 2 values per channel;
//! - training with tracking: `num_batches_tracked += 1`, factor = `momentum`
//!   or `1 / num_batches_tracked` when momentum is `None` (cumulative
//!   average), `running = (1 − factor)·running + factor·batch`, with the
//!   **unbiased** variance `var · m / (m − 1)` for `running_var`. Like
//!   PyTorch, any momentum is accepted (no range check: a value outside
//!   [0, 1] extrapolates, NaN or ±inf propagate into the buffers);
//! - eval with tracking normalizes with the running buffers and leaves them unchanged;
//! - an empty input (N = 0 or a spatial size 0) is accepted in every mode,
//!   as PyTorch does: the output is empty, the running buffers are left
//!   unchanged, but `num_batches_tracked` is still incremented in training
//!   with tracking, and backward gives zero `grad_weight`/`grad_bias`. The
//!   module handles this itself; kernels never see an empty tensor;
//! - with an activation ([`BatchNorm::forward_act`], [`BatchNorm::backward_act`]):
//!   `relu(bn(x))` or `relu(bn(x) + residual)` as one operation, running
//!   statistics updated exactly as by the plain forward (the activation
//!   comes after the normalization and does not touch them).

use crate::activation::Activation;
use crate::dispatch::kernel;
use crate::element::Element;
use crate::engine::tensor::{Tensor, TensorMut};
use crate::error::{Error, Result};
use crate::kernel::{Implementation, Kernel};
use crate::layout::Dims;
use crate::problem::{
    check_eps, Affine, Backward, BackwardRelu, EvalForward, EvalRelu, GradMode, TrainForward,
    TrainRelu,
};
use ndarray::{ArrayViewD, ArrayViewMutD};
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;

/// Hyper-parameters, with PyTorch's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Number of channels C.
    pub num_features: usize,
    /// Added to the variance before the square root; finite and > 0.
    pub eps: f64,
    /// Weight of the new batch in the running averages; `None` for a
    /// cumulative moving average. Any value is accepted, as in PyTorch
    /// (outside [0, 1] the update extrapolates; NaN/inf propagate).
    pub momentum: Option<f64>,
    /// Whether the module has learnable `weight` and `bias`.
    pub affine: bool,
    /// Whether the module keeps `running_mean`, `running_var`, `num_batches_tracked`.
    pub track_running_stats: bool,
}

impl Config {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, affine, tracking.
    pub fn new(num_features: usize) -> Config {
        Config {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }

    /// Reject a zero channel count. Neither the momentum nor eps is checked
    /// here: PyTorch's module takes any value of both; eps is checked at
    /// each forward, against the mode ([`check_eps`]), as `batch_norm` does.
    pub fn validate(&self) -> Result<()> {
        if self.num_features == 0 {
            return Err(Error::InvalidState(
                "num_features is 0; a batch norm needs at least one channel".into(),
            ));
        }
        Ok(())
    }
}

/// Statistics the forward pass normalized with, kept for `backward`
/// (like autograd's saved tensors).
#[derive(Debug, Clone, PartialEq)]
struct Saved {
    shape: Vec<usize>,
    mean: Vec<f64>,
    var: Vec<f64>,
    mode: GradMode,
    /// The activation forward applied (backward must be the matching one).
    act: Activation,
}

/// The activation of one forward call and its residual tensor.
#[derive(Clone, Copy)]
struct Act<'a, T> {
    kind: Activation,
    residual: Option<Tensor<'a, T>>,
}

/// Gradients of the parameters (`None` when the module is not affine).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads<T> {
    pub weight: Option<Vec<T>>,
    pub bias: Option<Vec<T>>,
}

/// A batch-norm layer over `(N, C, *spatial)` tensors of element type `T`,
/// with parameters and running statistics of type `P` (by default `T`;
/// PyTorch also allows `bf16`/`f16` data with `f32` parameters, and keeps the
/// running statistics in `P` then).
///
/// Fields are public like PyTorch's attributes and serialize with PyTorch's
/// names; every call re-checks that they agree with `config`, so a state
/// edited by hand or loaded from a file is validated before it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "T: Element, P: Element")]
pub struct BatchNorm<T: Element, P: Element = T> {
    pub config: Config,
    /// Training (`true`) or eval mode.
    pub training: bool,
    pub weight: Option<Vec<P>>,
    pub bias: Option<Vec<P>>,
    pub running_mean: Option<Vec<P>>,
    pub running_var: Option<Vec<P>>,
    pub num_batches_tracked: Option<i64>,
    #[serde(skip)]
    saved: Option<Saved>,
    /// The data type the module runs on (it holds no data of it).
    #[serde(skip)]
    data: PhantomData<fn() -> T>,
}

/// The residual tensor of a forward call, checked against the activation
/// (given exactly for `add_relu`) and against `x`'s shape.
fn residual_tensor<'a, T: Element>(
    act: Activation,
    residual: Option<ArrayViewD<'a, T>>,
    shape: &[usize],
) -> Result<Option<Tensor<'a, T>>> {
    match (act.has_residual(), residual) {
        (true, None) => Err(Error::Activation(
            "add_relu needs a residual tensor of x's shape; pass one or use relu".into(),
        )),
        (false, Some(_)) => Err(Error::Activation(format!(
            "a residual was given but the activation is {}; use add_relu or drop the residual",
            act.name()
        ))),
        (false, None) => Ok(None),
        (true, Some(r)) => {
            if r.shape() != shape {
                return Err(Error::ShapeMismatch {
                    what: "residual".into(),
                    expected: shape.to_vec(),
                    actual: r.shape().to_vec(),
                });
            }
            Ok(Some(Tensor::from_ndarray("residual", r)?))
        }
    }
}

/// Backward's optional inputs against the forward's activation: `y` exactly
/// when there was an activation, `grad_residual` only for `add_relu`.
fn check_backward_act(act: Activation, has_y: bool, has_grad_residual: bool) -> Result<()> {
    let msg = match (act, has_y, has_grad_residual) {
        (Activation::None, true, _) | (Activation::None, _, true) => {
            "the last forward had no activation; call backward without y and grad_residual"
        }
        (Activation::Relu | Activation::AddRelu, false, _) => {
            "the last forward applied a ReLU; give its output y to backward (the ReLU mask)"
        }
        (Activation::Relu, _, true) => {
            "grad_residual was asked for but the last forward was relu without a residual"
        }
        _ => return Ok(()),
    };
    Err(Error::Activation(msg.into()))
}

fn to_f64<T: Element>(v: &Option<Vec<T>>) -> Option<Vec<f64>> {
    v.as_ref().map(|v| v.iter().map(|x| x.as_f64()).collect())
}

impl<T: Element, P: Element> BatchNorm<T, P> {
    /// A fresh module as PyTorch makes it: weight 1, bias 0, running mean 0,
    /// running variance 1, `num_batches_tracked` 0, in training mode.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let c = config.num_features;
        let param = |on: bool, v: f64| on.then(|| vec![P::from_f64(v); c]);
        Ok(BatchNorm {
            config,
            training: true,
            weight: param(config.affine, 1.0),
            bias: param(config.affine, 0.0),
            running_mean: param(config.track_running_stats, 0.0),
            running_var: param(config.track_running_stats, 1.0),
            num_batches_tracked: config.track_running_stats.then_some(0),
            saved: None,
            data: PhantomData,
        })
    }

    /// Switch to training mode.
    pub fn train(&mut self) -> &mut Self {
        self.training = true;
        self
    }

    /// Switch to eval mode.
    pub fn eval(&mut self) -> &mut Self {
        self.training = false;
        self
    }

    /// Whether this call normalizes with batch statistics (PyTorch's `bn_training`).
    pub fn uses_batch_stats(&self) -> bool {
        self.training || !self.config.track_running_stats
    }

    /// Check that parameters and buffers agree with the configuration.
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let c = self.config.num_features;
        let check = |what: &str, v: &Option<Vec<P>>, present: bool, flag: &str| match v {
            Some(v) if !present => Err(Error::InvalidState(format!(
                "{what} is present but {flag} is false; remove it or set {flag}"
            ))),
            None if present => Err(Error::InvalidState(format!(
                "{what} is missing but {flag} is true; provide {c} values or unset {flag}"
            ))),
            Some(v) if v.len() != c => Err(Error::LengthMismatch {
                what: what.to_string(),
                expected: c,
                actual: v.len(),
            }),
            _ => Ok(()),
        };
        let (affine, track) = (self.config.affine, self.config.track_running_stats);
        check("weight", &self.weight, affine, "affine")?;
        check("bias", &self.bias, affine, "affine")?;
        check(
            "running_mean",
            &self.running_mean,
            track,
            "track_running_stats",
        )?;
        check(
            "running_var",
            &self.running_var,
            track,
            "track_running_stats",
        )?;
        match (self.num_batches_tracked, track) {
            (Some(n), true) if n < 0 => Err(Error::InvalidState(format!(
                "num_batches_tracked = {n} is negative"
            ))),
            (Some(_), false) => Err(Error::InvalidState(
                "num_batches_tracked is present but track_running_stats is false".into(),
            )),
            (None, true) => Err(Error::InvalidState(
                "num_batches_tracked is missing but track_running_stats is true".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Reject an input whose channel count is not `num_features`.
    fn check_channels(&self, what: &str, shape: &[usize], dims: Dims) -> Result<()> {
        if dims.c != self.config.num_features {
            return Err(Error::ShapeMismatch {
                what: format!(
                    "{what} (dim 1 is the channel count, which must equal num_features = {})",
                    self.config.num_features
                ),
                expected: [&shape[..1], &[self.config.num_features], &shape[2..]].concat(),
                actual: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Forward pass: `y = BN(x)` with this module's mode and rules; updates the
    /// running buffers in training mode. `x` and `y` are `(N, C, *spatial)`
    /// views in the same memory format (contiguous or channels-last).
    pub fn forward(
        &mut self,
        imp: &dyn Implementation,
        x: ArrayViewD<'_, T>,
        y: ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        self.forward_act(imp, Activation::None, x, None, y)
    }

    /// Forward pass with an activation as one operation: `y = relu(BN(x))`
    /// ([`Activation::Relu`]) or `y = relu(BN(x) + residual)`
    /// ([`Activation::AddRelu`], `residual` of `x`'s shape and memory
    /// format); [`Activation::None`] is [`BatchNorm::forward`]. PyTorch
    /// semantics (`F.relu(bn(x) [+ residual])`); running buffers updated as
    /// by the plain forward. The kernel runs it through
    /// [`Kernel::try_forward_train_relu`] / [`Kernel::try_forward_eval_relu`].
    pub fn forward_act(
        &mut self,
        imp: &dyn Implementation,
        act: Activation,
        x: ArrayViewD<'_, T>,
        residual: Option<ArrayViewD<'_, T>>,
        y: ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        self.validate()?;
        let shape = x.shape().to_vec();
        let x = Tensor::from_ndarray("x", x)?;
        self.check_channels("x", &shape, x.dims())?;
        if y.shape() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                what: "y".into(),
                expected: shape,
                actual: y.shape().to_vec(),
            });
        }
        let y = TensorMut::from_ndarray("y", y)?;
        let act = Act {
            kind: act,
            residual: residual_tensor(act, residual, &shape)?,
        };
        self.saved = None;
        // Before the empty-batch path: PyTorch checks eps first.
        check_eps(self.config.eps, self.uses_batch_stats())?;
        if x.dims().is_empty() {
            kernel::<T>(imp)?; // still reject a dtype the implementation lacks
            let mut saved = self.forward_empty(shape);
            saved.act = act.kind;
            self.saved = Some(saved);
            return Ok(());
        }
        let (weight, bias) = (to_f64(&self.weight), to_f64(&self.bias));
        let affine = Affine {
            weight: weight.as_deref(),
            bias: bias.as_deref(),
        };
        let k = kernel::<T>(imp)?;
        let saved = if self.uses_batch_stats() {
            self.forward_batch(k, x, y, affine, shape, act)?
        } else {
            self.forward_fixed(k, x, y, affine, shape, act)?
        };
        self.saved = Some(saved);
        Ok(())
    }

    /// PyTorch's result on an input with no element (N·S = 0): nothing to
    /// write, running buffers unchanged, but `num_batches_tracked` is still
    /// incremented in training with tracking (measured with torch 2.15,
    /// also with `momentum=None`). The statistics saved for backward are
    /// never read, as there is no element to take a gradient for.
    fn forward_empty(&mut self, shape: Vec<usize>) -> Saved {
        if self.training && self.config.track_running_stats {
            let nbt = self.num_batches_tracked.get_or_insert(0);
            *nbt = nbt.saturating_add(1);
        }
        let c = self.config.num_features;
        let mode = if self.uses_batch_stats() {
            GradMode::Batch
        } else {
            GradMode::Fixed
        };
        Saved {
            shape,
            mean: vec![0.0; c],
            var: vec![0.0; c],
            mode,
            act: Activation::None,
        }
    }

    /// Normalize with batch statistics; in training with tracking, update the
    /// running buffers. Returns what backward needs.
    fn forward_batch(
        &mut self,
        k: &dyn Kernel<T>,
        x: Tensor<'_, T>,
        y: TensorMut<'_, T>,
        affine: Affine<'_>,
        shape: Vec<usize>,
        act: Act<'_, T>,
    ) -> Result<Saved> {
        let dims = x.dims();
        let m = dims.per_channel();
        if m < 2 {
            return Err(Error::TooFewValues { shape, count: m });
        }
        let (mut mean, mut var) = (vec![0.0; dims.c], vec![0.0; dims.c]);
        let eps = self.config.eps;
        let p = TrainForward::new(x, y, affine, eps, &mut mean, &mut var)?;
        match act.kind {
            Activation::None => k.try_forward_train(p)?,
            _ => k.try_forward_train_relu(TrainRelu::new(p, act.residual)?)?,
        }
        if self.training && self.config.track_running_stats {
            self.update_running(&mean, &var, m);
        }
        Ok(Saved {
            shape,
            mean,
            var,
            mode: GradMode::Batch,
            act: act.kind,
        })
    }

    /// Normalize with the running statistics (eval mode with tracking).
    fn forward_fixed(
        &self,
        k: &dyn Kernel<T>,
        x: Tensor<'_, T>,
        y: TensorMut<'_, T>,
        affine: Affine<'_>,
        shape: Vec<usize>,
        act: Act<'_, T>,
    ) -> Result<Saved> {
        let mean = to_f64(&self.running_mean).expect("validated: tracking");
        let var = to_f64(&self.running_var).expect("validated: tracking");
        let eps = self.config.eps;
        let p = EvalForward::new(x, y, &mean, &var, affine, eps)?;
        match act.kind {
            Activation::None => k.try_forward_eval(p)?,
            _ => k.try_forward_eval_relu(EvalRelu::new(p, act.residual)?)?,
        }
        Ok(Saved {
            shape,
            mean,
            var,
            mode: GradMode::Fixed,
            act: act.kind,
        })
    }

    /// The running-statistics update of one training step (see module docs).
    fn update_running(&mut self, mean: &[f64], var: &[f64], m: usize) {
        let nbt = self.num_batches_tracked.get_or_insert(0);
        // Saturate instead of overflowing on a (hand-set) i64::MAX count.
        *nbt = nbt.saturating_add(1);
        let factor = self.config.momentum.unwrap_or(1.0 / *nbt as f64);
        let bessel = m as f64 / (m - 1) as f64;
        let blend = |running: &mut Option<Vec<P>>, batch: &[f64], k: f64| {
            for (r, &b) in running.iter_mut().flatten().zip(batch) {
                *r = P::from_f64((1.0 - factor) * r.as_f64() + factor * (b * k));
            }
        };
        blend(&mut self.running_mean, mean, 1.0);
        blend(&mut self.running_var, var, bessel);
    }

    /// Backward pass of the last `forward`: writes `grad_input` into `dx` and
    /// returns the parameter gradients. `x` must be the batch that forward saw.
    pub fn backward(
        &self,
        imp: &dyn Implementation,
        x: ArrayViewD<'_, T>,
        dy: ArrayViewD<'_, T>,
        dx: ArrayViewMutD<'_, T>,
    ) -> Result<ParamGrads<P>> {
        self.backward_act(imp, x, None, dy, dx, None)
    }

    /// Backward of the last [`BatchNorm::forward_act`]: `dy` is the gradient
    /// of the activated output `y` (which must be given, as forward wrote it:
    /// the ReLU mask `y <= 0 → 0` is PyTorch's `threshold_backward` on the
    /// output); writes `grad_input` into `dx` and, for `add_relu` when
    /// `grad_residual` is given, the residual's gradient (the masked `dy`).
    /// With no activation `y` and `grad_residual` must be `None` (this is
    /// then [`BatchNorm::backward`]).
    pub fn backward_act(
        &self,
        imp: &dyn Implementation,
        x: ArrayViewD<'_, T>,
        y: Option<ArrayViewD<'_, T>>,
        dy: ArrayViewD<'_, T>,
        dx: ArrayViewMutD<'_, T>,
        grad_residual: Option<ArrayViewMutD<'_, T>>,
    ) -> Result<ParamGrads<P>> {
        self.validate()?;
        let saved = self.saved.as_ref().ok_or(Error::NoForward)?;
        check_backward_act(saved.act, y.is_some(), grad_residual.is_some())?;
        let y_shape = y.as_ref().map(|y| y.shape().to_vec());
        let r_shape = grad_residual.as_ref().map(|g| g.shape().to_vec());
        let extra = [("y", y_shape), ("grad_residual", r_shape)];
        for (what, shape) in extra.iter().filter_map(|(w, s)| Some((*w, s.as_ref()?))) {
            if shape != &saved.shape {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} (must match the forward input)"),
                    expected: saved.shape.clone(),
                    actual: shape.clone(),
                });
            }
        }
        for (what, shape) in [
            ("x", x.shape()),
            ("grad_output", dy.shape()),
            ("grad_input", dx.shape()),
        ] {
            if shape != saved.shape.as_slice() {
                return Err(Error::ShapeMismatch {
                    what: format!("{what} (must match the forward input)"),
                    expected: saved.shape.clone(),
                    actual: shape.to_vec(),
                });
            }
        }
        let x = Tensor::from_ndarray("x", x)?;
        let dy = Tensor::from_ndarray("grad_output", dy)?;
        let dx = TensorMut::from_ndarray("grad_input", dx)?;
        let weight = to_f64(&self.weight);
        let c = x.dims().c;
        let (mut gw, mut gb) = (vec![0.0; c], vec![0.0; c]);
        let round = |v: Vec<f64>| {
            self.config
                .affine
                .then(|| v.into_iter().map(P::from_f64).collect())
        };
        if x.dims().is_empty() {
            kernel::<T>(imp)?;
            // Sums over no element: PyTorch's grad_weight and grad_bias are 0
            // (grad_input is empty, so there is nothing to write).
            return Ok(ParamGrads {
                weight: round(gw),
                bias: round(gb),
            });
        }
        let p = Backward::new(
            x,
            dy,
            dx,
            &saved.mean,
            &saved.var,
            weight.as_deref(),
            self.config.eps,
            saved.mode,
            &mut gw,
            &mut gb,
        )?;
        let k = kernel::<T>(imp)?;
        match y {
            None => k.try_backward(p)?,
            Some(y) => {
                let y = Tensor::from_ndarray("y", y)?;
                let gr = grad_residual
                    .map(|g| TensorMut::from_ndarray("grad_residual", g))
                    .transpose()?;
                k.try_backward_relu(BackwardRelu::new(p, y, gr)?)?
            }
        }
        Ok(ParamGrads {
            weight: round(gw),
            bias: round(gb),
        })
    }
}
