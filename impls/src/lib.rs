//! Batch-normalization implementations behind one trait.
//!
//! Layers, bottom up (no module imports one above it):
//! - [`element`] ([`DType`], [`Element`]; `f32`, `f64`, `bf16`, `f16`),
//!   [`error`], [`layout`] ([`Dims`], [`Layout`]): element types, the one
//!   error type, memory formats;
//! - [`engine`]: the shared non-arithmetic layer — the validated [`Tensor`]
//!   and the work planning (fixed chunks, thread-count independent order);
//! - [`problem`]: the validated arguments of the three operations; [`huge`]:
//!   the redo, on power-of-two-scaled values, of a channel whose statistics
//!   overflowed on finite data (it runs an implementation's own pass);
//! - [`mod@kernel`] ([`Kernel`], [`Implementation`], [`Kernels`]) and
//!   [`dispatch`] (the one match over the dtype, [`fn@kernel`]);
//! - the implementations, peers that each own their arithmetic:
//!   [`naive`], [`welford`], [`parallel`], [`fused`]; [`formulas`] and
//!   [`moments`] hold the per-channel formulas and Welford/Chan updates that
//!   `welford` and `parallel` use;
//! - [`registry`]: the implementations by name; [`module`] ([`BatchNorm`]):
//!   PyTorch's module rules (parameters, buffers, modes), written once.
//!
//! Batch normalization: Ioffe & Szegedy, "Batch Normalization: Accelerating
//! Deep Network Training by Reducing Internal Covariate Shift", ICML 2015.

pub mod activation;
pub mod dispatch;
pub mod element;
pub mod engine;
pub mod error;
pub mod fold;
pub mod formulas;
pub mod fused;
mod half_convert;
pub mod huge;
pub mod kernel;
pub mod layout;
pub mod module;
pub mod moments;
pub mod naive;
pub mod parallel;
pub mod problem;
pub mod registry;
pub mod welford;

pub use activation::Activation;
pub use dispatch::kernel;
pub use element::{DType, Element, ForDtype};
pub use engine::tensor::{Tensor, TensorMut};
pub use error::{Error, Result};
pub use fold::{fold_into_conv, fold_into_linear, EvalBn, Folded};
pub use kernel::{Implementation, Info, Kernel, Kernels};
pub use layout::{Dims, Layout};
pub use module::{BatchNorm, Config, ParamGrads};
pub use moments::Moments;
pub use problem::{
    Affine, Backward, BackwardRelu, EvalForward, EvalRelu, GradMode, TrainForward, TrainRelu,
};
