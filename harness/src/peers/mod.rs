//! Peers: other Rust libraries' batch norm, registered as implementations
//! (`--features peers`), so `bnh list`, `check`, `bench`, `accuracy` and
//! `matrix` judge them by the same cases and rules as bnh's own kernels.
//!
//! - [`candle`](mod@candle): `candle_nn::BatchNorm` on candle's CPU device;
//! - [`burn`](mod@burn): `burn::nn::BatchNorm` on burn's ndarray backend.
//!
//! Each peer implements [`Fallible<T>`] for every dtype (wrapped in
//! [`Declines`] to be a [`bn_impls::Kernel<T>`]): module rules (running
//! statistics, momentum, `num_batches_tracked`, empty batches) stay in
//! [`bn_impls::BatchNorm`], the peer does the arithmetic of each call. What a
//! peer cannot do is declined with [`bn_impls::Error::KernelDeclined`] and a
//! reason (verdict `unsupported`); an error or panic inside the peer becomes
//! [`bn_impls::Error::KernelFailed`] (verdict `fail`). How each call maps
//! onto the peer's API is in `docs/PEERS.md`.

pub mod burn;
pub mod candle;

use crate::fallible::Declines;
use bn_impls::{Dims, Implementation, Layout};
use std::any::TypeId;
use std::panic::{catch_unwind, AssertUnwindSafe};

static CANDLE: Declines<candle::Candle> = Declines(candle::Candle);
static BURN: Declines<burn::Burn> = Declines(burn::Burn);

/// The peer implementations, in `bnh list` order.
pub fn all() -> [&'static dyn Implementation; 2] {
    [&CANDLE, &BURN]
}

/// The names the peers are registered under (a plugin may not take them).
pub fn names() -> [&'static str; 2] {
    [candle::NAME, burn::NAME]
}

/// "Not supported" with the reason shown in the verdict.
pub(crate) fn declined(implementation: &str, op: &str, reason: &str) -> bn_impls::Error {
    bn_impls::Error::KernelDeclined {
        implementation: implementation.to_string(),
        op: op.to_string(),
        reason: reason.to_string(),
    }
}

/// Run a call into a peer library: its error (`Err(String)`) or panic is a
/// [`bn_impls::Error::KernelFailed`] naming the peer and the operation, so a
/// peer's bug is a `fail` verdict and never takes bnh down. (Rust's panic
/// hook still prints the panic message on stderr.)
pub(crate) fn guarded<R>(
    implementation: &str,
    op: &str,
    f: impl FnOnce() -> Result<R, String>,
) -> bn_impls::Result<R> {
    let failed = |detail: String| bn_impls::Error::KernelFailed {
        implementation: implementation.to_string(),
        op: op.to_string(),
        detail,
    };
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(failed(e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(failed(format!("panicked: {msg}")))
        }
    }
}

/// `data` as a slice of `U` when `T` is `U` (checked by type id), so a
/// generic kernel can hand its data to a library that wants concrete types
/// without copying through `f64`.
pub(crate) fn same_type<T: 'static, U: 'static>(data: &[T]) -> Option<&[U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: T and U are the same type (equal TypeIds), so the slice's
        // pointer, length, alignment and element validity are unchanged.
        Some(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<U>(), data.len()) })
    } else {
        None
    }
}

/// Mutable version of [`same_type`].
pub(crate) fn same_type_mut<T: 'static, U: 'static>(data: &mut [T]) -> Option<&mut [U]> {
    if TypeId::of::<T>() == TypeId::of::<U>() {
        // SAFETY: as in `same_type`; the exclusive borrow of `data` is moved
        // into the returned slice, so no alias is created.
        Some(unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<U>(), data.len()) })
    } else {
        None
    }
}

/// The shape of the flat memory as the peer sees it: `[N, C, S]` for
/// contiguous data, `[N, S, C]` for channels-last (the peer then views it as
/// `(N, C, S)` with its own permute, so it computes on the strided data).
pub(crate) fn memory_shape(dims: Dims) -> [usize; 3] {
    match dims.layout {
        Layout::Contiguous => [dims.n, dims.c, dims.s],
        Layout::ChannelsLast => [dims.n, dims.s, dims.c],
    }
}

/// `weight`, or ones when there is none (the peer modules take both or neither).
pub(crate) fn weight_or_ones(weight: Option<&[f64]>, c: usize) -> Vec<f64> {
    weight.map_or_else(|| vec![1.0; c], <[f64]>::to_vec)
}

/// `bias`, or zeros when there is none.
pub(crate) fn bias_or_zeros(bias: Option<&[f64]>, c: usize) -> Vec<f64> {
    bias.map_or_else(|| vec![0.0; c], <[f64]>::to_vec)
}

/// Copy `src` into `dst`, or fail naming what the peer returned.
pub(crate) fn copy_out(what: &str, src: &[f64], dst: &mut [f64]) -> Result<(), String> {
    if src.len() != dst.len() {
        return Err(format!(
            "returned {} values for {what}, expected {}",
            src.len(),
            dst.len()
        ));
    }
    dst.copy_from_slice(src);
    Ok(())
}
