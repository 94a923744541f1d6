//! The floating-point element types a batch may hold (`f32`, `f64`).
//!
//! Implementations are written once, generically over [`Element`], and
//! specialise (accumulator type, SIMD) only where it pays.

use num_traits::Float;
use serde::{Deserialize, Serialize};
use std::fmt::{Debug, Display};

/// Data type of a batch, as named in case files and CSV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
}

impl DType {
    /// The name used in case files, CLI flags and CSV (`"f32"`, `"f64"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Machine epsilon of the type (2^-23 or 2^-52), as used by the tolerance rule.
    pub fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64,
            DType::F64 => f64::EPSILON,
        }
    }

    /// Significand precision in bits, implicit bit included (24 or 53).
    /// Kernels derive dtype-dependent thresholds from it instead of
    /// comparing dtypes, so a new dtype gets thresholds of its own precision.
    pub fn mantissa_bits(self) -> u32 {
        match self {
            DType::F32 => f32::MANTISSA_DIGITS,
            DType::F64 => f64::MANTISSA_DIGITS,
        }
    }

    /// Exponent of the smallest normal value, `2^min_exponent` (−126 or −1022).
    pub fn min_exponent(self) -> i32 {
        match self {
            DType::F32 => f32::MIN_EXP - 1,
            DType::F64 => f64::MIN_EXP - 1,
        }
    }

    /// Run code generic over the element type for this runtime dtype: the
    /// one place where a dtype name becomes a Rust type.
    pub fn dispatch<F: ForDtype>(self, f: F) -> F::Output {
        match self {
            DType::F32 => f.call::<f32>(),
            DType::F64 => f.call::<f64>(),
        }
    }

    /// `v` rounded to the nearest value of this dtype (identity for `f64`).
    pub fn round(self, v: f64) -> f64 {
        struct Round(f64);
        impl ForDtype for Round {
            type Output = f64;
            fn call<T: Element>(self) -> f64 {
                T::from_f64(self.0).as_f64()
            }
        }
        self.dispatch(Round(v))
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(DType::F32),
            "f64" => Ok(DType::F64),
            other => Err(format!("unknown dtype '{other}'; use f32 or f64")),
        }
    }
}

/// Code generic over the element type, run by [`DType::dispatch`] for a
/// dtype known only at run time (a case file's, a CLI flag's).
pub trait ForDtype {
    /// What the code returns.
    type Output;
    /// The code, instantiated for element type `T`.
    fn call<T: Element>(self) -> Self::Output;
}

/// A floating-point element of a batch: `f32` or `f64`.
///
/// Conversions to and from `f64` are infallible here (unlike `NumCast`),
/// because per-channel quantities cross the kernel boundary in `f64`.
pub trait Element:
    Float + Debug + Display + Default + Send + Sync + 'static + Serialize + for<'de> Deserialize<'de>
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Exact widening (f32) or identity (f64).
    fn as_f64(self) -> f64;
    /// Round to nearest (f32) or identity (f64).
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}
