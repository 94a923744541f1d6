//! dtype dispatch, in one place.
//!
//! An implementation lists the kernels it has, one per element type
//! ([`Kernels`]); [`kernel`] is the one match over the element type that
//! picks one. A dtype an implementation does not support is
//! [`Error::UnsupportedDtype`], never a silent fallback to another type's
//! kernel. Adding a dtype adds a variant to [`DType`], which makes the match
//! below fail to compile until the new arm is written.

use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::kernel::{Implementation, Kernel, Kernels};
use std::any::TypeId;

/// `k` as the kernel of `T`, when `S` and `T` are the same type.
fn same_type<'a, S: Element, T: Element>(k: &'a dyn Kernel<S>) -> Option<&'a dyn Kernel<T>> {
    if TypeId::of::<S>() != TypeId::of::<T>() {
        return None;
    }
    // SAFETY: `S` and `T` have the same `TypeId`, so they are the same type
    // and `&dyn Kernel<S>` and `&dyn Kernel<T>` are the same fat-pointer
    // type (same vtable layout); the transmute is the identity.
    Some(unsafe { std::mem::transmute::<&'a dyn Kernel<S>, &'a dyn Kernel<T>>(k) })
}

/// The kernel of `imp` for element type `T`, or a typed error naming the
/// implementation and the dtype it lacks.
pub fn kernel<T: Element>(imp: &dyn Implementation) -> Result<&dyn Kernel<T>> {
    let Kernels {
        f32,
        f64,
        bf16,
        f16,
    } = imp.kernels();
    let found = match T::DTYPE {
        DType::F32 => f32.and_then(same_type::<f32, T>),
        DType::F64 => f64.and_then(same_type::<f64, T>),
        DType::BF16 => bf16.and_then(same_type::<half::bf16, T>),
        DType::F16 => f16.and_then(same_type::<half::f16, T>),
    };
    found.ok_or_else(|| Error::UnsupportedDtype {
        implementation: imp.info().name.to_string(),
        dtype: T::DTYPE.name().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Info;
    use crate::problem::{Backward, EvalForward, TrainForward};

    /// An implementation with an `f64` kernel only.
    struct OnlyF64;
    impl Kernel<f64> for OnlyF64 {
        fn forward_train(&self, _: TrainForward<'_, f64>) {}
        fn forward_eval(&self, _: EvalForward<'_, f64>) {}
        fn backward(&self, _: Backward<'_, f64>) {}
    }
    impl Implementation for OnlyF64 {
        fn info(&self) -> Info {
            Info {
                name: "only-f64",
                description: "test double",
                stable: true,
                deterministic: true,
            }
        }
        fn kernels(&self) -> Kernels<'_> {
            Kernels {
                f64: Some(self),
                ..Kernels::default()
            }
        }
    }

    #[test]
    fn picks_the_kernel_of_the_type_or_says_which_is_missing() {
        assert!(kernel::<f64>(&OnlyF64).is_ok());
        match kernel::<f32>(&OnlyF64) {
            Err(Error::UnsupportedDtype {
                implementation,
                dtype,
            }) => assert_eq!(
                (implementation.as_str(), dtype.as_str()),
                ("only-f64", "f32")
            ),
            other => panic!("expected UnsupportedDtype, got {:?}", other.map(|_| ())),
        }
    }
}
