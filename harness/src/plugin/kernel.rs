//! The adapter that makes a loaded C kernel a bnh [`Implementation`].
//!
//! It does arithmetic calls only: validation, running statistics, momentum
//! and `num_batches_tracked` stay in [`bn_impls::BatchNorm`]. One generic
//! [`Fallible<T>`] (a `Kernel<T>` through [`Declines`], shared with the
//! peers) covers all four dtypes; `bf16`/`f16` cross as 16-bit
//! patterns, which `half::bf16`/`half::f16` are in memory (`repr(transparent)`
//! over `u16`). A nonzero return becomes [`bn_impls::Error::KernelUnsupported`]
//! through the `try_` methods, which every caller in bnh uses.

use super::ffi::{self, BackwardFn, Desc, ForwardEvalFn, ForwardTrainFn};
use crate::fallible::{Declines, Fallible};
use bn_impls::problem::{Backward, EvalForward, GradMode, TrainForward};
use bn_impls::{DType, Element, Implementation, Info, Kernels, Layout};
use std::sync::Mutex;

/// A validated plugin: its guarantees and its three functions.
pub struct Plugin {
    pub(crate) info: Info,
    pub(crate) forward_train: ForwardTrainFn,
    pub(crate) forward_eval: ForwardEvalFn,
    pub(crate) backward: BackwardFn,
    /// Held for every call: the ABI promises a plugin one call at a time per
    /// kernel object, while `bnh check` runs cases on several threads.
    pub(crate) calls: Mutex<()>,
}

/// The `bnh_desc` of a call on `T` data.
fn desc<T: Element>(dims: bn_impls::Dims, eps: f64) -> Desc {
    Desc {
        dtype: match T::DTYPE {
            DType::F32 => ffi::BNH_F32,
            DType::F64 => ffi::BNH_F64,
            DType::BF16 => ffi::BNH_BF16,
            DType::F16 => ffi::BNH_F16,
        },
        layout: match dims.layout {
            Layout::Contiguous => ffi::BNH_CONTIGUOUS,
            Layout::ChannelsLast => ffi::BNH_CHANNELS_LAST,
        },
        // Sizes of validated tensors fit in memory, hence in i64.
        n: dims.n as i64,
        c: dims.c as i64,
        s: dims.s as i64,
        eps,
        threads: i32::try_from(rayon::current_num_threads()).unwrap_or(i32::MAX),
    }
}

/// A per-channel slice as C's nullable pointer.
fn opt_ptr(v: Option<&[f64]>) -> *const f64 {
    v.map_or(std::ptr::null(), <[f64]>::as_ptr)
}

impl Plugin {
    /// `Ok` for a zero return, the typed "not supported" error otherwise.
    fn verdict(&self, op: &str, code: i32) -> bn_impls::Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(bn_impls::Error::KernelUnsupported {
                implementation: self.info.name.to_string(),
                op: op.to_string(),
                code,
            })
        }
    }

    /// One call at a time (a poisoned lock only means another call
    /// panicked on the Rust side; the plugin holds no Rust state).
    fn serialize(&self) -> std::sync::MutexGuard<'_, ()> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The three calls, each returning the plugin's verdict; [`Declines`] adds
/// the infallible `Kernel<T>` methods (NaN outputs when the plugin declines).
impl<T: Element> Fallible<T> for Plugin {
    fn try_forward_train(&self, p: TrainForward<'_, T>) -> bn_impls::Result<()> {
        let d = desc::<T>(p.dims, p.eps);
        let _one = self.serialize();
        // SAFETY: `TrainForward::new` checked that `x` and `y` hold n·c·s
        // elements of `T` (the dtype named in `d`, whose size and bits are the
        // header's: f32, f64 or a 16-bit pattern) and that `mean`, `var` and
        // any weight/bias hold c values; all live, and `y`/`mean`/`var`
        // exclusively borrowed, for the whole call. `forward_train` points into
        // a library that is never unloaded (see `super::load`). The plugin's
        // own correctness is the trust boundary of `--plugin`.
        let code = unsafe {
            (self.forward_train)(
                &d,
                p.x.as_ptr().cast(),
                p.y.as_mut_ptr().cast(),
                opt_ptr(p.affine.weight),
                opt_ptr(p.affine.bias),
                p.mean.as_mut_ptr(),
                p.var.as_mut_ptr(),
            )
        };
        self.verdict("forward_train", code)
    }

    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> bn_impls::Result<()> {
        let d = desc::<T>(p.dims, p.eps);
        let _one = self.serialize();
        // SAFETY: `EvalForward::new` checked that `x` and `y` hold n·c·s
        // elements of the dtype in `d` and `mean`, `var`, weight and bias c
        // values; all live for the call, `y` exclusively borrowed. The
        // function pointer stays valid: the library is never unloaded.
        let code = unsafe {
            (self.forward_eval)(
                &d,
                p.x.as_ptr().cast(),
                p.y.as_mut_ptr().cast(),
                opt_ptr(p.affine.weight),
                opt_ptr(p.affine.bias),
                p.mean.as_ptr(),
                p.var.as_ptr(),
            )
        };
        self.verdict("forward_eval", code)
    }

    fn try_backward(&self, p: Backward<'_, T>) -> bn_impls::Result<()> {
        let d = desc::<T>(p.dims, p.eps);
        let batch_stats = i32::from(p.mode == GradMode::Batch);
        let _one = self.serialize();
        // SAFETY: `Backward::new` checked that `x`, `dy` and `dx` hold n·c·s
        // elements of the dtype in `d` and `mean`, `var`, weight, `grad_weight`
        // and `grad_bias` c values; all live for the call, the outputs
        // exclusively borrowed. The library is never unloaded.
        let code = unsafe {
            (self.backward)(
                &d,
                batch_stats,
                p.x.as_ptr().cast(),
                p.dy.as_ptr().cast(),
                opt_ptr(p.weight),
                p.mean.as_ptr(),
                p.var.as_ptr(),
                p.dx.as_mut_ptr().cast(),
                p.grad_weight.as_mut_ptr(),
                p.grad_bias.as_mut_ptr(),
            )
        };
        self.verdict("backward", code)
    }
}

impl Implementation for Declines<Plugin> {
    fn info(&self) -> Info {
        self.0.info
    }

    /// Every dtype: the plugin itself says, per call, what it does not support.
    fn kernels(&self) -> Kernels<'_> {
        Kernels::every(self)
    }
}
