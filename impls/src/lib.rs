//! Batch-normalization implementations behind one trait.
//!
//! - [`Kernel`] / [`Implementation`]: the trait every implementation implements;
//! - [`BatchNorm`]: PyTorch's module rules (parameters, buffers, modes), written once;
//! - [`registry`]: the implementations the harness knows by name;
//! - one module per implementation: [`naive`], [`welford`].
//!
//! Batch normalization: Ioffe & Szegedy, "Batch Normalization: Accelerating
//! Deep Network Training by Reducing Internal Covariate Shift", ICML 2015.

pub mod element;
pub mod engine;
pub mod error;
pub mod formulas;
pub mod fused;
pub mod kernel;
pub mod layout;
pub mod module;
pub mod moments;
pub mod naive;
pub mod parallel;
pub mod problem;
pub mod registry;
pub mod welford;

pub use element::{DType, Element, ForDtype};
pub use engine::dispatch::kernel;
pub use engine::tensor::{Tensor, TensorMut};
pub use error::{Error, Result};
pub use kernel::{Implementation, Info, Kernel, Kernels};
pub use layout::{Dims, Layout};
pub use module::{BatchNorm, Config, ParamGrads};
pub use moments::Moments;
pub use problem::{Affine, Backward, EvalForward, GradMode, TrainForward};
