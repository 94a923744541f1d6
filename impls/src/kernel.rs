//! The one trait every batch-norm implementation implements.

use crate::activation;
use crate::element::Element;
use crate::error::Result;
use crate::problem::{Backward, BackwardRelu, EvalForward, EvalRelu, TrainForward, TrainRelu};

/// The arithmetic of batch normalization for one element type.
///
/// Arguments arrive validated (see [`crate::problem`]); a kernel only
/// computes. Write it once generically over [`Element`] and specialise
/// where it pays. Module rules (running statistics, momentum, modes) live
/// in [`crate::module::BatchNorm`], not here.
pub trait Kernel<T: Element>: Send + Sync {
    /// Training-mode forward: batch statistics out, normalized `y` out.
    fn forward_train(&self, p: TrainForward<'_, T>);
    /// Forward with given statistics (eval mode with running statistics).
    fn forward_eval(&self, p: EvalForward<'_, T>);
    /// Gradients of the input, weight and bias.
    fn backward(&self, p: Backward<'_, T>);

    /// [`Kernel::forward_train`] for a kernel that may decline an input at run
    /// time (a C plugin returning nonzero): `Err` means "not supported", never
    /// a crash. Built-in kernels always succeed and keep this default; every
    /// caller in bnh calls the `try_` methods.
    fn try_forward_train(&self, p: TrainForward<'_, T>) -> Result<()> {
        self.forward_train(p);
        Ok(())
    }
    /// [`Kernel::forward_eval`] that may decline (see [`Kernel::try_forward_train`]).
    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> Result<()> {
        self.forward_eval(p);
        Ok(())
    }
    /// [`Kernel::backward`] that may decline (see [`Kernel::try_forward_train`]).
    fn try_backward(&self, p: Backward<'_, T>) -> Result<()> {
        self.backward(p);
        Ok(())
    }

    /// Training forward then ReLU, `relu(bn(x) [+ residual])`. The default
    /// composes [`Kernel::try_forward_train`] with a ReLU pass
    /// ([`activation::train_then_relu`]), so every kernel (plugins and peers
    /// included) supports it; a kernel may fuse it into its own pass.
    fn try_forward_train_relu(&self, p: TrainRelu<'_, T>) -> Result<()> {
        activation::train_then_relu(self, p)
    }
    /// Eval forward then ReLU (default: [`activation::eval_then_relu`]).
    fn try_forward_eval_relu(&self, p: EvalRelu<'_, T>) -> Result<()> {
        activation::eval_then_relu(self, p)
    }
    /// Backward of `relu(bn(x) [+ residual])` (default: the masked `dy`
    /// into a buffer, then [`Kernel::try_backward`]; [`activation::mask_then_backward`]).
    fn try_backward_relu(&self, p: BackwardRelu<'_, T>) -> Result<()> {
        activation::mask_then_backward(self, p)
    }
}

/// What the harness needs to know about an implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Registry name (`bnh --impl NAME`).
    pub name: &'static str,
    /// One line for `bnh list`.
    pub description: &'static str,
    /// False for implementations kept for comparison that are not expected to
    /// be accurate on ill-conditioned inputs (bn-case/1's `stable` flag).
    pub stable: bool,
    /// True when results are bitwise identical for any rayon thread count.
    pub deterministic: bool,
}

/// The kernels of one implementation, one slot per element type; `None`
/// marks a dtype the implementation does not support (picked by
/// [`crate::dispatch::kernel`], which turns it into a typed error).
#[derive(Clone, Copy, Default)]
pub struct Kernels<'a> {
    pub f32: Option<&'a dyn Kernel<f32>>,
    pub f64: Option<&'a dyn Kernel<f64>>,
    pub bf16: Option<&'a dyn Kernel<half::bf16>>,
    pub f16: Option<&'a dyn Kernel<half::f16>>,
}

impl<'a> Kernels<'a> {
    /// The kernels of an implementation written generically over
    /// [`Element`]: one for every dtype (a new dtype is picked up here).
    pub fn every<K>(k: &'a K) -> Kernels<'a>
    where
        K: Kernel<f32> + Kernel<f64> + Kernel<half::bf16> + Kernel<half::f16>,
    {
        Kernels {
            f32: Some(k),
            f64: Some(k),
            bf16: Some(k),
            f16: Some(k),
        }
    }
}

/// A registered implementation: its [`Info`] and its kernels.
pub trait Implementation: Send + Sync {
    /// Name, description and guarantees.
    fn info(&self) -> Info;
    /// The kernel of every element type it supports.
    fn kernels(&self) -> Kernels<'_>;
}

impl std::fmt::Debug for dyn Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Implementation({})", self.info().name)
    }
}
