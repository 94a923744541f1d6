//! `#[repr(C)]` mirror of `include/bnh_kernel.h` (ABI version 1).
//!
//! Kept byte-for-byte equal to the header: the unit tests below pin every
//! offset and size on 64-bit targets, and `harness/tests/plugin.rs` compares
//! them with what a C compiler reports for the header itself.

use std::ffi::c_char;

/// `BNH_ABI_VERSION`: the only version this bnh loads.
pub const ABI_VERSION: u32 = 1;

/// `enum bnh_dtype` values.
pub const BNH_F32: i32 = 0;
/// `BNH_F64`.
pub const BNH_F64: i32 = 1;
/// `BNH_BF16` (16-bit patterns).
pub const BNH_BF16: i32 = 2;
/// `BNH_F16` (16-bit patterns).
pub const BNH_F16: i32 = 3;
/// `enum bnh_layout`: `x[n][c][s]`.
pub const BNH_CONTIGUOUS: i32 = 0;
/// `BNH_CHANNELS_LAST`: `x[n][s][c]`.
pub const BNH_CHANNELS_LAST: i32 = 1;

/// `bnh_desc`: the shape and options of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Desc {
    pub dtype: i32,
    pub layout: i32,
    pub n: i64,
    pub c: i64,
    pub s: i64,
    pub eps: f64,
    pub threads: i32,
}

/// `forward_train`'s pointer type.
pub type ForwardTrainFn = unsafe extern "C" fn(
    d: *const Desc,
    x: *const std::ffi::c_void,
    y: *mut std::ffi::c_void,
    weight: *const f64,
    bias: *const f64,
    mean: *mut f64,
    var: *mut f64,
) -> i32;

/// `forward_eval`'s pointer type.
pub type ForwardEvalFn = unsafe extern "C" fn(
    d: *const Desc,
    x: *const std::ffi::c_void,
    y: *mut std::ffi::c_void,
    weight: *const f64,
    bias: *const f64,
    mean: *const f64,
    var: *const f64,
) -> i32;

/// `backward`'s pointer type.
pub type BackwardFn = unsafe extern "C" fn(
    d: *const Desc,
    batch_stats: i32,
    x: *const std::ffi::c_void,
    dy: *const std::ffi::c_void,
    weight: *const f64,
    mean: *const f64,
    var: *const f64,
    dx: *mut std::ffi::c_void,
    grad_weight: *mut f64,
    grad_bias: *mut f64,
) -> i32;

/// `bnh_kernel_v1`: what the entry point returns. Function pointers are
/// `Option` so a NULL one is a value the loader can reject, not undefined behaviour.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KernelV1 {
    pub abi_version: u32,
    pub name: *const c_char,
    pub description: *const c_char,
    pub stable: i32,
    pub deterministic: i32,
    pub forward_train: Option<ForwardTrainFn>,
    pub forward_eval: Option<ForwardEvalFn>,
    pub backward: Option<BackwardFn>,
}

/// `bnh_kernel_entry_v1`'s type.
pub type EntryFn = unsafe extern "C" fn() -> *const KernelV1;

/// The exported symbol's name, NUL-terminated for `libloading`.
pub const ENTRY_SYMBOL: &[u8] = b"bnh_kernel_entry_v1\0";

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The header's layout on LP64 targets (what C's alignment rules give:
    /// `int64_t`/`double`/pointers 8-aligned, trailing padding to 8).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_matches_the_header_on_64_bit_targets() {
        assert_eq!(offset_of!(Desc, dtype), 0);
        assert_eq!(offset_of!(Desc, layout), 4);
        assert_eq!(offset_of!(Desc, n), 8);
        assert_eq!(offset_of!(Desc, c), 16);
        assert_eq!(offset_of!(Desc, s), 24);
        assert_eq!(offset_of!(Desc, eps), 32);
        assert_eq!(offset_of!(Desc, threads), 40);
        assert_eq!(size_of::<Desc>(), 48);
        assert_eq!(offset_of!(KernelV1, abi_version), 0);
        assert_eq!(offset_of!(KernelV1, name), 8);
        assert_eq!(offset_of!(KernelV1, description), 16);
        assert_eq!(offset_of!(KernelV1, stable), 24);
        assert_eq!(offset_of!(KernelV1, deterministic), 28);
        assert_eq!(offset_of!(KernelV1, forward_train), 32);
        assert_eq!(offset_of!(KernelV1, forward_eval), 40);
        assert_eq!(offset_of!(KernelV1, backward), 48);
        assert_eq!(size_of::<KernelV1>(), 56);
        // `Option<fn>` is a nullable pointer, the size of C's function pointer.
        assert_eq!(size_of::<Option<BackwardFn>>(), size_of::<*const u8>());
    }
}
