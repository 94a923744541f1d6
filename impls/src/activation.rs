//! Batch norm followed by an activation: `relu(bn(x))` and the residual
//! block's `relu(bn(x) + residual)`, with PyTorch's ReLU semantics, and the
//! default composition every [`Kernel`] gets for free.
//!
//! PyTorch's ReLU (measured with torch 2.15): forward `relu(v) = v < 0 ? 0 : v`
//! (so `relu(-0.0) = -0.0`, `relu(NaN) = NaN`); backward
//! `threshold_backward(dy, y, 0) = y <= 0 ? 0 : dy`, masked by the *output*
//! `y` (a NaN output passes the gradient). The residual's gradient is the
//! masked `dy` itself (the add passes it through).
//!
//! The default composition ([`train_then_relu`], [`eval_then_relu`],
//! [`mask_then_backward`]) is what PyTorch computes: the batch norm's output
//! is rounded to `T`, then the residual added and rounded again (in `f64`,
//! which for these formats is the correctly rounded sum), then the ReLU. It
//! costs extra passes over memory (forward: one read and one write of `y`,
//! plus the residual; backward: a masked copy of `dy`), which `fused` avoids.

use crate::element::Element;
use crate::error::Result;
use crate::kernel::Kernel;
use crate::problem::{Backward, BackwardRelu, EvalRelu, TrainRelu};
use serde::{Deserialize, Serialize};

/// What follows the batch norm (bn-case/1's optional `activation` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Plain batch norm.
    #[default]
    None,
    /// `relu(bn(x))`.
    Relu,
    /// `relu(bn(x) + residual)` (the end of a ResNet block).
    AddRelu,
}

impl Activation {
    /// The name in case files and flags: `"none"`, `"relu"`, `"add_relu"`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::AddRelu => "add_relu",
        }
    }

    /// Whether the operation has a `residual` input (and its gradient).
    pub fn has_residual(self) -> bool {
        self == Activation::AddRelu
    }
}

/// PyTorch's ReLU of one value: `v < 0 ? +0 : v` (NaN and −0 unchanged).
#[inline(always)]
pub fn relu(v: f64) -> f64 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// PyTorch's ReLU backward of one value: `y <= 0 ? +0 : g` (`y` the output).
#[inline(always)]
pub fn relu_grad(y: f64, g: f64) -> f64 {
    if y <= 0.0 {
        0.0
    } else {
        g
    }
}

/// `y = relu(y)` or `y = relu(y + residual)` in place, each element rounded
/// once to `T` after the add (the `T`-typed add PyTorch does).
fn relu_in_place<T: Element>(y: &mut [T], residual: Option<&[T]>) {
    match residual {
        Some(r) => {
            for (v, r) in y.iter_mut().zip(r) {
                *v = T::from_f64(relu(T::from_f64(v.as_f64() + r.as_f64()).as_f64()));
            }
        }
        None => {
            for v in y.iter_mut() {
                *v = T::from_f64(relu(v.as_f64()));
            }
        }
    }
}

/// The default [`Kernel::try_forward_train_relu`]: the kernel's training
/// forward, then a ReLU pass over `y` (passes: the kernel's, plus one read
/// and write of `y` and a read of the residual).
pub fn train_then_relu<T: Element, K: Kernel<T> + ?Sized>(
    k: &K,
    mut p: TrainRelu<'_, T>,
) -> Result<()> {
    k.try_forward_train(p.bn.reborrow())?;
    relu_in_place(p.bn.y, p.residual);
    Ok(())
}

/// The default [`Kernel::try_forward_eval_relu`]: the kernel's eval
/// forward, then a ReLU pass over `y`.
pub fn eval_then_relu<T: Element, K: Kernel<T> + ?Sized>(
    k: &K,
    mut p: EvalRelu<'_, T>,
) -> Result<()> {
    k.try_forward_eval(p.bn.reborrow())?;
    relu_in_place(p.bn.y, p.residual);
    Ok(())
}

/// The default [`Kernel::try_backward_relu`]: `dy` masked by the output
/// (`y <= 0 → 0`) into a new buffer, copied to `grad_residual` when asked,
/// then the kernel's plain backward on the masked gradient (passes: one
/// read of `dy` and `y` and one write of the mask, plus the kernel's).
pub fn mask_then_backward<T: Element, K: Kernel<T> + ?Sized>(
    k: &K,
    p: BackwardRelu<'_, T>,
) -> Result<()> {
    let BackwardRelu {
        bn,
        y,
        grad_residual,
    } = p;
    let masked: Vec<T> = bn
        .dy
        .iter()
        .zip(y)
        .map(|(g, y)| T::from_f64(relu_grad(y.as_f64(), g.as_f64())))
        .collect();
    if let Some(gr) = grad_residual {
        gr.copy_from_slice(&masked);
    }
    k.try_backward(Backward { dy: &masked, ..bn })
}
