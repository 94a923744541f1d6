//! Validated arguments of the three kernel operations.
//!
//! The constructors take validated [`Tensor`]s (made once from an `ndarray`
//! view or from flat memory with known dims, see [`crate::engine::tensor`]),
//! check that all tensors of a call agree and every per-channel length and
//! number, and hand the kernel flat memory plus [`Dims`]. A kernel therefore
//! never sees invalid input and never re-validates: adding an implementation
//! means writing arithmetic only. In particular a kernel never sees an empty
//! tensor (the constructors return [`Error::Empty`]); the module handles
//! empty batches itself, as PyTorch does.
//!
//! Per-channel quantities (weight, bias, mean, variance, gradients of weight
//! and bias) cross the boundary as `f64` whatever the data type: they are C
//! values, cost nothing to widen, and keep statistics accumulated in `f64`
//! (as PyTorch does for `f32` data) from being rounded before they are used.

use crate::engine::tensor::{Tensor, TensorMut};
use crate::error::{Error, Result};
use crate::layout::Dims;

/// Per-channel scale and shift; `None` means weight 1 / bias 0 (`affine=False`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Affine<'a> {
    pub weight: Option<&'a [f64]>,
    pub bias: Option<&'a [f64]>,
}

impl Affine<'_> {
    /// `weight[c]`, or 1 when there is no weight.
    #[inline(always)]
    pub fn weight(&self, c: usize) -> f64 {
        self.weight.map_or(1.0, |w| w[c])
    }

    /// `bias[c]`, or 0 when there is no bias.
    #[inline(always)]
    pub fn bias(&self, c: usize) -> f64 {
        self.bias.map_or(0.0, |b| b[c])
    }

    fn check(&self, c: usize) -> Result<()> {
        check_len("weight", self.weight, c)?;
        check_len("bias", self.bias, c)
    }
}

/// `1 / sqrt(var + eps)`: the inverse standard deviation every formula uses
/// (Ioffe & Szegedy 2015, Algorithm 1).
#[inline(always)]
pub fn inv_std(var: f64, eps: f64) -> f64 {
    1.0 / (var + eps).sqrt()
}

/// Check `eps` as PyTorch's `batch_norm` does: with batch statistics
/// (`batch_stats`, training) it must not be ≤ 0, otherwise not < 0. NaN and
/// +inf pass both checks in PyTorch, and so here: the results are then NaN
/// (NaN eps) or the bias (inf eps: `1/√(var + ∞) = 0`), as in PyTorch.
pub fn check_eps(eps: f64, batch_stats: bool) -> Result<()> {
    let bad = if batch_stats { eps <= 0.0 } else { eps < 0.0 };
    if bad {
        Err(Error::InvalidEps { eps, batch_stats })
    } else {
        Ok(())
    }
}

fn check_len<T>(what: &str, v: Option<&[T]>, c: usize) -> Result<()> {
    match v {
        Some(v) if v.len() != c => Err(Error::LengthMismatch {
            what: what.to_string(),
            expected: c,
            actual: v.len(),
        }),
        _ => Ok(()),
    }
}

/// Kernels never see an empty tensor: they may divide by N·S and index the
/// first element. Empty batches are the module's business.
fn check_not_empty(dims: Dims) -> Result<()> {
    if dims.is_empty() {
        return Err(Error::Empty {
            what: "x".into(),
            shape: vec![dims.n, dims.c, dims.s],
        });
    }
    Ok(())
}

fn same_dims(what: &str, dims: Dims, other: Dims) -> Result<()> {
    if (other.n, other.c, other.s) != (dims.n, dims.c, dims.s) {
        return Err(Error::ShapeMismatch {
            what: what.to_string(),
            expected: vec![dims.n, dims.c, dims.s],
            actual: vec![other.n, other.c, other.s],
        });
    }
    if other.layout != dims.layout {
        return Err(Error::LayoutMismatch {
            what: what.to_string(),
            expected: dims.layout.to_string(),
            actual: other.layout.to_string(),
        });
    }
    Ok(())
}

/// Proof of validation: only this module can make one.
#[derive(Debug, Clone, Copy)]
pub struct Checked(());

/// Training-mode forward: compute each channel's batch mean and biased
/// variance into `mean`/`var`, and `y = (x - mean) / sqrt(var + eps) * w + b`.
pub struct TrainForward<'a, T> {
    pub dims: Dims,
    pub x: &'a [T],
    pub y: &'a mut [T],
    pub affine: Affine<'a>,
    pub eps: f64,
    /// Output: batch mean per channel.
    pub mean: &'a mut [f64],
    /// Output: biased batch variance per channel (divided by N·S).
    pub var: &'a mut [f64],
    pub checked: Checked,
}

impl<'a, T> TrainForward<'a, T> {
    /// The same problem borrowing this one's buffers, so a kernel can run a
    /// pass and still own the outputs afterwards (e.g. to redo a channel).
    pub fn reborrow(&mut self) -> TrainForward<'_, T> {
        TrainForward {
            dims: self.dims,
            x: self.x,
            y: &mut *self.y,
            affine: self.affine,
            eps: self.eps,
            mean: &mut *self.mean,
            var: &mut *self.var,
            checked: self.checked,
        }
    }

    /// Validate shapes, lengths and `eps`.
    pub fn new(
        x: Tensor<'a, T>,
        y: TensorMut<'a, T>,
        affine: Affine<'a>,
        eps: f64,
        mean: &'a mut [f64],
        var: &'a mut [f64],
    ) -> Result<Self> {
        let dims = x.dims();
        check_not_empty(dims)?;
        same_dims("y", dims, y.dims())?;
        let (x, y) = (x.data(), y.into_data());
        affine.check(dims.c)?;
        check_eps(eps, true)?;
        check_len("mean", Some(&*mean), dims.c)?;
        check_len("var", Some(&*var), dims.c)?;
        Ok(TrainForward {
            dims,
            x,
            y,
            affine,
            eps,
            mean,
            var,
            checked: Checked(()),
        })
    }
}

/// Forward with given statistics (eval mode with running stats):
/// `y = (x - mean) / sqrt(var + eps) * w + b`.
pub struct EvalForward<'a, T> {
    pub dims: Dims,
    pub x: &'a [T],
    pub y: &'a mut [T],
    pub mean: &'a [f64],
    pub var: &'a [f64],
    pub affine: Affine<'a>,
    pub eps: f64,
    pub checked: Checked,
}

impl<'a, T> EvalForward<'a, T> {
    /// The same problem borrowing this one's buffers (see [`TrainForward::reborrow`]).
    pub fn reborrow(&mut self) -> EvalForward<'_, T> {
        EvalForward {
            dims: self.dims,
            x: self.x,
            y: &mut *self.y,
            mean: self.mean,
            var: self.var,
            affine: self.affine,
            eps: self.eps,
            checked: self.checked,
        }
    }

    /// Validate shapes, lengths and `eps`.
    pub fn new(
        x: Tensor<'a, T>,
        y: TensorMut<'a, T>,
        mean: &'a [f64],
        var: &'a [f64],
        affine: Affine<'a>,
        eps: f64,
    ) -> Result<Self> {
        let dims = x.dims();
        check_not_empty(dims)?;
        same_dims("y", dims, y.dims())?;
        let (x, y) = (x.data(), y.into_data());
        check_len("mean", Some(mean), dims.c)?;
        check_len("var", Some(var), dims.c)?;
        affine.check(dims.c)?;
        check_eps(eps, false)?;
        Ok(EvalForward {
            dims,
            x,
            y,
            mean,
            var,
            affine,
            eps,
            checked: Checked(()),
        })
    }
}

/// Which statistics the forward pass normalized with, which decides the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradMode {
    /// Batch statistics: the gradient flows through the mean and variance.
    Batch,
    /// Fixed (running) statistics: `dx = dy * w / sqrt(var + eps)`.
    Fixed,
}

/// Backward pass. With `x_hat = (x - mean) / sqrt(var + eps)` and m = N·S:
/// `grad_bias = Σ dy`, `grad_weight = Σ dy·x_hat` (per channel), and
/// - `GradMode::Batch`: `dx = w·inv_std/m · (m·dy − Σdy − x_hat·Σ(dy·x_hat))`
///   (Ioffe & Szegedy 2015, section 3, simplified);
/// - `GradMode::Fixed`: `dx = dy · w · inv_std`.
pub struct Backward<'a, T> {
    pub dims: Dims,
    pub x: &'a [T],
    pub dy: &'a [T],
    pub dx: &'a mut [T],
    pub mean: &'a [f64],
    pub var: &'a [f64],
    pub weight: Option<&'a [f64]>,
    pub eps: f64,
    pub mode: GradMode,
    /// Output: `Σ dy·x_hat` per channel.
    pub grad_weight: &'a mut [f64],
    /// Output: `Σ dy` per channel.
    pub grad_bias: &'a mut [f64],
    pub checked: Checked,
}

impl<'a, T> Backward<'a, T> {
    /// The same problem borrowing this one's buffers (see [`TrainForward::reborrow`]).
    pub fn reborrow(&mut self) -> Backward<'_, T> {
        Backward {
            dims: self.dims,
            x: self.x,
            dy: self.dy,
            dx: &mut *self.dx,
            mean: self.mean,
            var: self.var,
            weight: self.weight,
            eps: self.eps,
            mode: self.mode,
            grad_weight: &mut *self.grad_weight,
            grad_bias: &mut *self.grad_bias,
            checked: self.checked,
        }
    }

    /// Validate shapes, lengths and `eps`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: Tensor<'a, T>,
        dy: Tensor<'a, T>,
        dx: TensorMut<'a, T>,
        mean: &'a [f64],
        var: &'a [f64],
        weight: Option<&'a [f64]>,
        eps: f64,
        mode: GradMode,
        grad_weight: &'a mut [f64],
        grad_bias: &'a mut [f64],
    ) -> Result<Self> {
        let dims = x.dims();
        check_not_empty(dims)?;
        same_dims("grad_output", dims, dy.dims())?;
        same_dims("grad_input", dims, dx.dims())?;
        let (x, dy, dx) = (x.data(), dy.data(), dx.into_data());
        check_len("mean", Some(mean), dims.c)?;
        check_len("var", Some(var), dims.c)?;
        check_len("weight", weight, dims.c)?;
        check_len("grad_weight", Some(&*grad_weight), dims.c)?;
        check_len("grad_bias", Some(&*grad_bias), dims.c)?;
        check_eps(eps, mode == GradMode::Batch)?;
        Ok(Backward {
            dims,
            x,
            dy,
            dx,
            mean,
            var,
            weight,
            eps,
            mode,
            grad_weight,
            grad_bias,
            checked: Checked(()),
        })
    }
}

/// `residual` checked against the batch: same dims and memory format.
fn check_residual<'a, T>(dims: Dims, residual: Option<Tensor<'a, T>>) -> Result<Option<&'a [T]>> {
    residual
        .map(|r| {
            same_dims("residual", dims, r.dims())?;
            Ok(r.data())
        })
        .transpose()
}

/// Training forward followed by a ReLU: `y = relu(bn(x))`, or with a
/// residual `y = relu(bn(x) + residual)` (see [`crate::activation`]).
pub struct TrainRelu<'a, T> {
    /// The batch norm; its `y` receives the activated output.
    pub bn: TrainForward<'a, T>,
    /// Added before the ReLU; same dims and memory format as `x`.
    pub residual: Option<&'a [T]>,
}

impl<'a, T> TrainRelu<'a, T> {
    /// Validate the residual against the (validated) batch norm.
    pub fn new(bn: TrainForward<'a, T>, residual: Option<Tensor<'a, T>>) -> Result<Self> {
        let residual = check_residual(bn.dims, residual)?;
        Ok(TrainRelu { bn, residual })
    }
}

/// Eval forward followed by a ReLU (see [`TrainRelu`]).
pub struct EvalRelu<'a, T> {
    /// The batch norm; its `y` receives the activated output.
    pub bn: EvalForward<'a, T>,
    /// Added before the ReLU; same dims and memory format as `x`.
    pub residual: Option<&'a [T]>,
}

impl<'a, T> EvalRelu<'a, T> {
    /// Validate the residual against the (validated) batch norm.
    pub fn new(bn: EvalForward<'a, T>, residual: Option<Tensor<'a, T>>) -> Result<Self> {
        let residual = check_residual(bn.dims, residual)?;
        Ok(EvalRelu { bn, residual })
    }
}

/// Backward of `relu(bn(x) [+ residual])`: `bn.dy` is the gradient of the
/// activated output `y`; the kernel masks it (`y <= 0 → 0`, PyTorch's
/// `threshold_backward`), then runs the batch-norm backward on it. With
/// `grad_residual` it also writes the residual's gradient (the masked `dy`).
pub struct BackwardRelu<'a, T> {
    /// The batch-norm backward, with `dy` the gradient of the activated output.
    pub bn: Backward<'a, T>,
    /// The forward's activated output (the ReLU mask).
    pub y: &'a [T],
    /// Output: the residual's gradient, for `relu(bn(x) + residual)`.
    pub grad_residual: Option<&'a mut [T]>,
}

impl<'a, T> BackwardRelu<'a, T> {
    /// Validate `y` and `grad_residual` against the (validated) backward.
    pub fn new(
        bn: Backward<'a, T>,
        y: Tensor<'a, T>,
        grad_residual: Option<TensorMut<'a, T>>,
    ) -> Result<Self> {
        same_dims("y", bn.dims, y.dims())?;
        let grad_residual = grad_residual
            .map(|g| {
                same_dims("grad_residual", bn.dims, g.dims())?;
                Ok(g.into_data())
            })
            .transpose()?;
        Ok(BackwardRelu {
            bn,
            y: y.data(),
            grad_residual,
        })
    }
}
