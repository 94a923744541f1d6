//! Kernels that may decline or fail, adapted to [`Kernel<T>`].
//!
//! [`Kernel<T>`]'s required methods are infallible; kernels outside bnh's
//! control (peer libraries) can only promise a `Result`. A type implementing
//! [`Fallible<T>`] writes the three `try_` calls once; wrapping it in
//! [`Declines`] gives the full [`Kernel<T>`], whose infallible methods call
//! the `try_` ones and leave NaN in every output when they return `Err` (so a
//! caller that ignores `try_` still sees no number). Used by the C plugin
//! adapter (`crate::plugin::kernel`) and the peers.

use bn_impls::problem::{Backward, EvalForward, TrainForward};
use bn_impls::{Element, Kernel};

/// The three kernel calls, each allowed to return an error: a
/// [`bn_impls::Error::KernelDeclined`] for "not supported", a
/// [`bn_impls::Error::KernelFailed`] for a failure of the implementation.
pub trait Fallible<T: Element>: Send + Sync {
    /// See [`Kernel::try_forward_train`].
    fn try_forward_train(&self, p: TrainForward<'_, T>) -> bn_impls::Result<()>;
    /// See [`Kernel::try_forward_eval`].
    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> bn_impls::Result<()>;
    /// See [`Kernel::try_backward`].
    fn try_backward(&self, p: Backward<'_, T>) -> bn_impls::Result<()>;
}

/// A [`Fallible`] kernel as a [`Kernel`] (see the module docs).
pub struct Declines<K>(pub K);

/// Fill `v` with NaN: what the infallible methods leave after an `Err`.
fn poison<T: Element>(v: &mut [T]) {
    v.fill(T::from_f64(f64::NAN));
}

impl<T: Element, K: Fallible<T>> Kernel<T> for Declines<K> {
    fn forward_train(&self, mut p: TrainForward<'_, T>) {
        if self.0.try_forward_train(p.reborrow()).is_err() {
            poison(p.y);
            poison(p.mean);
            poison(p.var);
        }
    }

    fn forward_eval(&self, p: EvalForward<'_, T>) {
        let EvalForward {
            dims,
            x,
            y,
            mean,
            var,
            affine,
            eps,
            checked,
        } = p;
        let again = EvalForward {
            dims,
            x,
            y: &mut *y,
            mean,
            var,
            affine,
            eps,
            checked,
        };
        if self.0.try_forward_eval(again).is_err() {
            poison(y);
        }
    }

    fn backward(&self, mut p: Backward<'_, T>) {
        if self.0.try_backward(p.reborrow()).is_err() {
            poison(p.dx);
            poison(p.grad_weight);
            poison(p.grad_bias);
        }
    }

    fn try_forward_train(&self, p: TrainForward<'_, T>) -> bn_impls::Result<()> {
        self.0.try_forward_train(p)
    }

    fn try_forward_eval(&self, p: EvalForward<'_, T>) -> bn_impls::Result<()> {
        self.0.try_forward_eval(p)
    }

    fn try_backward(&self, p: Backward<'_, T>) -> bn_impls::Result<()> {
        self.0.try_backward(p)
    }
}
