//! The floating-point element types a batch may hold (`f32`, `f64`, and the
//! half-precision storage types `bf16` and `f16` of the `half` crate).
//!
//! Implementations are written once, generically over [`Element`], and
//! specialise (accumulator type, SIMD) only where it pays.

use crate::half_convert;
use num_traits::Float;
use serde::{Deserialize, Serialize};
use std::fmt::{Debug, Display};

/// Data type of a batch, as named in case files and CSV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
    /// bfloat16: f32's exponent range, 8 significant bits.
    BF16,
    /// IEEE binary16: 11 significant bits, largest finite value 65504.
    F16,
}

impl DType {
    /// Every dtype, in the order tables list them.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::BF16, DType::F16];

    /// The name used in case files, CLI flags and CSV (`"f32"`, `"f64"`,
    /// `"bf16"`, `"f16"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }

    /// Machine epsilon of the type (2^-23, 2^-52, 2^-7, 2^-10), as used by
    /// the tolerance rule.
    pub fn epsilon(self) -> f64 {
        (1.0f64 - self.mantissa_bits() as f64).exp2()
    }

    /// Whether this is a 16-bit storage type (`bf16`, `f16`), for which the
    /// stable implementations accumulate in a wider type and round once.
    pub fn is_half(self) -> bool {
        matches!(self, DType::BF16 | DType::F16)
    }

    /// Significand precision in bits, implicit bit included (24, 53, 8, 11).
    /// Kernels derive dtype-dependent thresholds from it instead of
    /// comparing dtypes, so a new dtype gets thresholds of its own precision.
    pub const fn mantissa_bits(self) -> u32 {
        match self {
            DType::F32 => f32::MANTISSA_DIGITS,
            DType::F64 => f64::MANTISSA_DIGITS,
            DType::BF16 => half::bf16::MANTISSA_DIGITS,
            DType::F16 => half::f16::MANTISSA_DIGITS,
        }
    }

    /// Exponent of the smallest normal value, `2^min_exponent` (−126,
    /// −1022, −126, −14).
    pub fn min_exponent(self) -> i32 {
        match self {
            DType::F32 => f32::MIN_EXP - 1,
            DType::F64 => f64::MIN_EXP - 1,
            DType::BF16 => half::bf16::MIN_EXP - 1,
            DType::F16 => half::f16::MIN_EXP - 1,
        }
    }

    /// Run code generic over the element type for this runtime dtype: the
    /// one place where a dtype name becomes a Rust type.
    pub fn dispatch<F: ForDtype>(self, f: F) -> F::Output {
        match self {
            DType::F32 => f.call::<f32>(),
            DType::F64 => f.call::<f64>(),
            DType::BF16 => f.call::<half::bf16>(),
            DType::F16 => f.call::<half::f16>(),
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

    /// The largest finite value (f32 3.4e38, f64 1.8e308, bf16 3.39e38,
    /// f16 65504).
    pub fn max_finite(self) -> f64 {
        struct Max;
        impl ForDtype for Max {
            type Output = f64;
            fn call<T: Element>(self) -> f64 {
                T::max_value().as_f64()
            }
        }
        self.dispatch(Max)
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::BF16 | DType::F16 => 2,
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
        DType::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown dtype '{s}'; use f32, f64, bf16 or f16"))
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

/// A floating-point element of a batch: `f32`, `f64`, `bf16` or `f16`.
///
/// Conversions to and from `f64` are infallible here (unlike `NumCast`),
/// because per-channel quantities cross the kernel boundary in `f64`.
pub trait Element:
    Float + Debug + Display + Default + Send + Sync + 'static + Serialize + for<'de> Deserialize<'de>
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Exact widening (f32, bf16, f16) or identity (f64).
    fn as_f64(self) -> f64;
    /// Round to nearest, ties to even, directly from `f64` (one rounding,
    /// never via `f32`), or identity (f64).
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

/// `v` rounded to `f32` *to odd*: truncated toward zero, with the last bit
/// set when the truncation was inexact. Rounding that result to a format of
/// at most 22 significant bits (bf16: 8, f16: 11) to nearest-even gives the
/// correctly rounded value of `v` — one rounding, as if done directly —
/// because round-to-odd keeps the sticky information that a plain
/// round-to-nearest `f32` loses (Boldo & Melquiond, "Emulation of FMA and
/// correctly rounded sums: proved algorithms using rounding to odd", IEEE
/// TC 2008, Thm. 1: needs `p_intermediate ≥ p_final + 2`). `half`'s own
/// `from_f64` rounds via `f32` to nearest, which double-rounds ties.
#[inline(always)]
fn round_to_odd_f32(v: f64) -> f32 {
    let f = v as f32;
    let back = f as f64;
    if f.is_nan() || back == v {
        return f;
    }
    // Inexact: step one unit toward zero if `f` was rounded away from zero
    // (sign-magnitude bits: minus one shrinks the magnitude; `f` is not
    // zero then), and make the last bit odd.
    let bits = f.to_bits() - u32::from(back.abs() > v.abs());
    f32::from_bits(bits | 1)
}

impl Element for half::bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        half_convert::bf16_to_f32(self.to_bits()) as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        half::bf16::from_bits(half_convert::f32_to_bf16(round_to_odd_f32(v)))
    }
}

impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        half_convert::f16_to_f32(self.to_bits()) as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        half::f16::from_bits(half_convert::f32_to_f16(round_to_odd_f32(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_f64` rounds once: a value just above the midpoint of two
    /// half-precision neighbours, by less than `f32` can hold, rounds up.
    /// Rounding via `f32` (as `half::bf16::from_f64` does) would land on the
    /// midpoint and tie to even (down).
    #[test]
    fn half_types_round_directly_from_f64() {
        let above = |ulp: f64| 1.0 + ulp / 2.0 + 2f64.powi(-40);
        assert_eq!(
            <half::bf16 as Element>::from_f64(above(2f64.powi(-7))).as_f64(),
            1.0 + 2f64.powi(-7)
        );
        assert_eq!(
            <half::f16 as Element>::from_f64(above(2f64.powi(-10))).as_f64(),
            1.0 + 2f64.powi(-10)
        );
        assert_eq!(DType::BF16.epsilon(), 2f64.powi(-7));
        assert_eq!(DType::F16.epsilon(), 2f64.powi(-10));
        assert_eq!(DType::F32.epsilon(), f32::EPSILON as f64);
        assert_eq!(DType::F64.epsilon(), f64::EPSILON);
    }

    /// Exhaustive over every finite `bf16`/`f16` pair of neighbours: the
    /// midpoint ties to even, and a nudge of 2^-30 of the gap (lost by a
    /// plain `f32` rounding) decides the direction either way.
    #[test]
    fn half_rounding_is_correct_at_every_midpoint() {
        fn check<H: Element>(from_bits: fn(u16) -> H, max_pattern: u16) {
            for b in 0..max_pattern {
                let (lo, hi) = (from_bits(b).as_f64(), from_bits(b + 1).as_f64());
                let (mid, nudge) = ((lo + hi) / 2.0, (hi - lo) * 2f64.powi(-30));
                let even = if b % 2 == 0 { lo } else { hi };
                for sign in [1.0, -1.0] {
                    let r = |v: f64| H::from_f64(sign * v).as_f64();
                    assert_eq!(r(mid), sign * even, "{} tie at {mid}", H::DTYPE);
                    assert_eq!(r(mid + nudge), sign * hi, "{} above {mid}", H::DTYPE);
                    assert_eq!(r(mid - nudge), sign * lo, "{} below {mid}", H::DTYPE);
                    assert_eq!(r(lo), sign * lo);
                }
            }
        }
        // Up to the largest finite value (bf16 0x7f7f, f16 0x7bff); the
        // last pair's upper neighbour is infinity, checked below.
        check(half::bf16::from_bits, 0x7f7e);
        check(half::f16::from_bits, 0x7bfe);
        assert!(<half::f16 as Element>::from_f64(65520.0).is_infinite());
        assert_eq!(<half::f16 as Element>::from_f64(65519.99).as_f64(), 65504.0);
        assert!(<half::bf16 as Element>::from_f64(1e39).is_infinite());
        assert!(<half::bf16 as Element>::from_f64(f64::NAN).is_nan());
        assert_eq!(<half::f16 as Element>::from_f64(1e-300).as_f64(), 0.0);
        assert_eq!(<half::f16 as Element>::from_f64(-1e-300).to_bits(), 0x8000);
    }

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>(), Ok(d));
        }
        assert!("f8".parse::<DType>().unwrap_err().contains("bf16"));
    }
}
