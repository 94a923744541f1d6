//! Double-double arithmetic: a value `hi + lo` with `|lo| ≤ ulp(hi)/2`,
//! about 106 significant bits (relative precision ≈ 1e-32).
//!
//! Used by the [`oracle`](crate::oracle) to compute batch norm far more
//! precisely than any implementation under test, so that an implementation's
//! error can be measured against it. Algorithms:
//! - error-free transformations `two_sum` (Knuth, TAOCP vol. 2, §4.2.2,
//!   Theorem B) and `two_prod` (Dekker, "A floating-point technique for
//!   extending the available precision", Numer. Math. 18, 1971; here with a
//!   fused multiply-add, `f64::mul_add`, which makes the product error exact);
//! - addition, multiplication, division and square root as in the QD library:
//!   Hida, Li & Bailey, "Algorithms for quad-double precision floating point
//!   arithmetic", ARITH-15, 2001 (the "accurate" double-double variants).
//!
//! Non-finite values propagate: a NaN or infinity in `hi` survives every
//! operation, and [`DD::to_f64`] returns `hi` (the `lo` part of a non-finite
//! value is meaningless and ignored).

use std::ops::{Add, Div, Mul, Neg, Sub};

/// An unevaluated sum `hi + lo` of two `f64`, normalized so `hi = fl(hi + lo)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DD {
    pub hi: f64,
    pub lo: f64,
}

/// `s + e = a + b` exactly, with `s = fl(a + b)` (Knuth's TwoSum, no branch).
#[inline]
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// `s + e = a + b` exactly, assuming `|a| ≥ |b|` (Dekker's FastTwoSum).
#[inline]
pub fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let e = b - (s - a);
    (s, e)
}

/// `p + e = a · b` exactly (barring over/underflow), with `p = fl(a · b)`:
/// the FMA computes the rounding error of the product exactly.
#[inline]
pub fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let e = a.mul_add(b, -p);
    (p, e)
}

impl DD {
    /// Zero.
    pub const ZERO: DD = DD { hi: 0.0, lo: 0.0 };
    /// One.
    pub const ONE: DD = DD { hi: 1.0, lo: 0.0 };

    /// Build from two parts, renormalizing.
    pub fn new(hi: f64, lo: f64) -> DD {
        let (hi, lo) = two_sum(hi, lo);
        DD::finite_or(hi, lo)
    }

    /// An exact `f64` (every `f64`, and so every `f32`, is representable).
    pub const fn from_f64(v: f64) -> DD {
        DD { hi: v, lo: 0.0 }
    }

    /// The exact sum of two `f64`.
    pub fn sum2(a: f64, b: f64) -> DD {
        let (hi, lo) = two_sum(a, b);
        DD::finite_or(hi, lo)
    }

    /// The exact product of two `f64`.
    pub fn prod2(a: f64, b: f64) -> DD {
        let (hi, lo) = two_prod(a, b);
        DD::finite_or(hi, lo)
    }

    /// Keep `lo` only when `hi` is finite, so infinities do not turn into
    /// NaN through `inf − inf` in the error terms.
    #[inline]
    fn finite_or(hi: f64, lo: f64) -> DD {
        if hi.is_finite() {
            DD { hi, lo }
        } else {
            DD { hi, lo: 0.0 }
        }
    }

    /// Rounded to the nearest `f64` (`hi`, since the pair is normalized).
    pub fn to_f64(self) -> f64 {
        self.hi
    }

    /// Absolute value.
    pub fn abs(self) -> DD {
        if self.hi < 0.0 || (self.hi == 0.0 && self.lo < 0.0) {
            -self
        } else {
            self
        }
    }

    /// True when the value is neither NaN nor infinite.
    pub fn is_finite(self) -> bool {
        self.hi.is_finite()
    }

    /// True when the value is NaN.
    pub fn is_nan(self) -> bool {
        self.hi.is_nan()
    }

    /// `self · self`.
    pub fn sqr(self) -> DD {
        self * self
    }

    /// Square root: `f64` estimate `s`, then one Newton step in double-double,
    /// `s + (a − s²)/(2s)`, which doubles the ≈53 correct bits (QD's `sqrt`
    /// uses the same correction in the form `a·x + (a − (a·x)²)·x/2`).
    pub fn sqrt(self) -> DD {
        if self.hi <= 0.0 || !self.hi.is_finite() {
            // 0, negative (NaN), NaN and +inf: the f64 answer is the answer.
            return DD::from_f64(self.hi.sqrt());
        }
        let s = DD::from_f64(self.hi.sqrt());
        s + (self - s.sqr()) / (s * 2.0)
    }

    /// `1 / self`.
    pub fn recip(self) -> DD {
        DD::ONE / self
    }
}

impl From<f64> for DD {
    fn from(v: f64) -> DD {
        DD::from_f64(v)
    }
}

impl Neg for DD {
    type Output = DD;
    fn neg(self) -> DD {
        DD {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Add for DD {
    type Output = DD;
    /// QD's accurate ("IEEE") double-double addition: two TwoSums, relative
    /// error ≤ 2·2^-106 (Hida, Li & Bailey 2001).
    fn add(self, b: DD) -> DD {
        let (s1, s2) = two_sum(self.hi, b.hi);
        if !s1.is_finite() {
            return DD::from_f64(s1);
        }
        let (t1, t2) = two_sum(self.lo, b.lo);
        let s2 = s2 + t1;
        let (s1, s2) = quick_two_sum(s1, s2);
        let s2 = s2 + t2;
        let (hi, lo) = quick_two_sum(s1, s2);
        DD::finite_or(hi, lo)
    }
}

impl Add<f64> for DD {
    type Output = DD;
    fn add(self, b: f64) -> DD {
        let (s1, s2) = two_sum(self.hi, b);
        if !s1.is_finite() {
            return DD::from_f64(s1);
        }
        let s2 = s2 + self.lo;
        let (hi, lo) = quick_two_sum(s1, s2);
        DD::finite_or(hi, lo)
    }
}

impl Sub for DD {
    type Output = DD;
    fn sub(self, b: DD) -> DD {
        self + (-b)
    }
}

impl Sub<f64> for DD {
    type Output = DD;
    fn sub(self, b: f64) -> DD {
        self + (-b)
    }
}

impl Mul for DD {
    type Output = DD;
    /// `(a.hi + a.lo)(b.hi + b.lo)` with the exact `a.hi·b.hi` and the cross
    /// terms in `f64` (the `lo·lo` term is below the precision), QD's `mul`.
    fn mul(self, b: DD) -> DD {
        let (p1, p2) = two_prod(self.hi, b.hi);
        if !p1.is_finite() {
            return DD::from_f64(p1);
        }
        let p2 = p2 + (self.hi * b.lo + self.lo * b.hi);
        let (hi, lo) = quick_two_sum(p1, p2);
        DD::finite_or(hi, lo)
    }
}

impl Mul<f64> for DD {
    type Output = DD;
    fn mul(self, b: f64) -> DD {
        let (p1, p2) = two_prod(self.hi, b);
        if !p1.is_finite() {
            return DD::from_f64(p1);
        }
        let p2 = p2 + self.lo * b;
        let (hi, lo) = quick_two_sum(p1, p2);
        DD::finite_or(hi, lo)
    }
}

impl Div for DD {
    type Output = DD;
    /// Long division with three `f64` quotient digits, QD's accurate `div`:
    /// `q1 = a/b`, `r = a − q1·b`, `q2 = r/b`, `r −= q2·b`, `q3 = r/b`.
    fn div(self, b: DD) -> DD {
        let q1 = self.hi / b.hi;
        if !q1.is_finite() || b.hi == 0.0 {
            return DD::from_f64(q1);
        }
        let r = self - b * q1;
        let q2 = r.hi / b.hi;
        let r = r - b * q2;
        let q3 = r.hi / b.hi;
        let (q1, q2) = quick_two_sum(q1, q2);
        DD { hi: q1, lo: q2 } + q3
    }
}

impl Div<f64> for DD {
    type Output = DD;
    fn div(self, b: f64) -> DD {
        self / DD::from_f64(b)
    }
}

/// Sum of `f64` values in double-double (each addition error-free up to
/// 2^-106 relative): accurate enough for any realistic batch, unlike a plain
/// `f64` sum whose error grows with the count and the cancellation.
pub fn sum(values: impl IntoIterator<Item = f64>) -> DD {
    values.into_iter().fold(DD::ZERO, |acc, v| acc + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// |a − b| as an `f64` computed in double-double.
    fn diff(a: DD, b: DD) -> f64 {
        (a - b).abs().to_f64()
    }

    #[test]
    fn error_free_transformations_are_exact() {
        let (s, e) = two_sum(1.0, 1e-20);
        assert_eq!((s, e), (1.0, 1e-20));
        let (s, e) = two_sum(1e16, 1.0 + 2f64.powi(-30));
        // s + e must be exactly 1e16 + 1 + 2^-30; s is its rounding.
        assert_eq!(s, 1e16 + 2.0);
        assert_eq!(e, -1.0 + 2f64.powi(-30));
        let a = 1.0 + 2f64.powi(-30);
        let (p, e) = two_prod(a, a);
        // (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60: the last term is the rounding error.
        assert_eq!(p, 1.0 + 2f64.powi(-29));
        assert_eq!(e, 2f64.powi(-60));
    }

    #[test]
    fn sums_that_f64_gets_wrong() {
        // 1e16 + 1 − 1e16 is 0 in f64 (1 is below half an ulp of 1e16).
        let naive = 1e16 + 1.0 - 1e16;
        assert_eq!(naive, 0.0);
        let dd = DD::from(1e16) + 1.0 - 1e16;
        assert_eq!(dd.to_f64(), 1.0);
        // 0.1 added ten times is not 1 in f64, but is within 1e-30 of
        // 10 × fl(0.1) in double-double.
        let f: f64 = (0..10).map(|_| 0.1).sum();
        assert_ne!(f, 1.0);
        let d = sum((0..10).map(|_| 0.1));
        let exact = DD::prod2(0.1, 10.0);
        assert!(diff(d, exact) < 1e-30, "{d:?} vs {exact:?}");
        // Alternating big/small values.
        let vals = [1e20, 3.0, -1e20, 4.0, 1e-10];
        assert_eq!(sum(vals).to_f64(), 7.0000000001);
    }

    #[test]
    fn sqrt2_squared_is_two_to_1e32() {
        let r = DD::from(2.0).sqrt();
        assert!(diff(r.sqr(), DD::from(2.0)) < 1e-31);
        // And the lo part carries real digits: sqrt(2) = 1.41421356237309504880168872420969807856...
        assert_eq!(r.hi, std::f64::consts::SQRT_2);
        assert!((r.lo - (-9.667293313452913e-17)).abs() < 1e-31);
        for v in [1e-200, 3.0, 1e200] {
            let r = DD::from(v).sqrt();
            assert!(diff(r.sqr(), DD::from(v)) / v < 1e-31, "{v}");
        }
    }

    #[test]
    fn division_is_double_double_accurate() {
        let third = DD::ONE / DD::from(3.0);
        let back = third * 3.0;
        assert!(diff(back, DD::ONE) < 1e-31);
        let q = DD::from(22.0) / DD::from(7.0);
        assert!(diff(q * DD::from(7.0), DD::from(22.0)) < 1e-30);
        assert!(diff(DD::from(5.0).recip() * 5.0, DD::ONE) < 1e-31);
    }

    #[test]
    fn non_finite_values_propagate() {
        assert!(DD::from(f64::NAN).sqrt().is_nan());
        assert!((DD::from(f64::NAN) + 1.0).is_nan());
        assert!((DD::from(1.0) * f64::NAN).is_nan());
        assert_eq!((DD::from(f64::INFINITY) + 1.0).to_f64(), f64::INFINITY);
        assert_eq!((DD::from(f64::INFINITY) * 2.0).to_f64(), f64::INFINITY);
        assert!(DD::from(-1.0).sqrt().is_nan());
        assert_eq!(DD::ZERO.sqrt().to_f64(), 0.0);
        assert_eq!((DD::ONE / DD::ZERO).to_f64(), f64::INFINITY);
    }
}
